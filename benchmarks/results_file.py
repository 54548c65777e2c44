"""The end every benchmark script shares: the command line it ran (absolute paths elided, so the results file names
no path of the machine) and the results text written and printed."""

from __future__ import annotations

import sys
from pathlib import Path


def run_line(script: str) -> str:
    """``Run: `python benchmarks/<script> <args>` `` with every absolute path argument shown as ``<path>``."""
    args = " ".join("<path>" if a.startswith("/") else a for a in sys.argv[1:])
    return f"Run: `python benchmarks/{script} {args}` (absolute paths elided)."


def write_results(lines: list[str], output: str | Path) -> str:
    """Join ``lines``, write them to ``output`` and print them; returns the text."""
    text = "\n".join(lines) + "\n"
    Path(output).write_text(text, encoding="utf-8")
    print(text)
    return text
