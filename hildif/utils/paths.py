"""Paths as shown to people: relative to the working directory when they lie under it, so that terminal output
pasted into reports (benchmarks/results/) carries no machine's absolute paths."""

from __future__ import annotations

import os
from pathlib import Path


def display_path(path: str | os.PathLike) -> str:
    """``path`` relative to the current directory when it lies under it, else unchanged."""
    p = Path(path)
    if not p.is_absolute():
        return str(p)
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)
