"""Deterministic seeds and a scope that seeds the global RNGs nlpaug draws from, then restores them."""

from __future__ import annotations

import contextlib
import hashlib
import random
from typing import Iterator

import numpy as np


def derive_seed(*parts: object) -> int:
    """A 32-bit seed from any parts (stable across runs and processes, unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little")


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed ``random`` and ``numpy.random`` (nlpaug uses both) inside the block; restore their states after."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
