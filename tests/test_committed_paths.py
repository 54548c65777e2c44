"""Committed files carry no absolute paths of the machine they were written on (results, docs, configs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = [REPO / name for name in out.decode().split("\0") if name]
    return [f for f in files if f.is_file() and b"\0" not in f.read_bytes()[:4096]]


def test_no_absolute_paths_of_this_machine_in_committed_files():
    # the checkout's own folder and its parent (where runs and data sit beside it), and home folders
    needles = {str(REPO) + "/", str(REPO.parent) + "/", str(Path.home()) + "/", "/home/"}
    needles.discard("/")
    here = Path(__file__).resolve()  # this file names the needles
    found = [f"{f.relative_to(REPO)}: {n}" for f in tracked_text_files() if f.resolve() != here
             for n in needles if n in f.read_text(encoding="utf-8", errors="replace")]
    assert not found, found
