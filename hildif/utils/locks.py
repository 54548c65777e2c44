"""An exclusive advisory file lock (``fcntl.flock``) for work that must not run twice at once across processes."""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def file_lock(path: str | Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block; others wait.

    With ``blocking=False`` nothing waits: the block gets ``False`` (and holds nothing) when someone else holds the
    lock - another process, or another open of the file in this one - and ``True`` when it took it.
    The lock is released when the block ends or the process dies, so a crash never leaves it held.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
