"""scripts/setup.sh's FAISS choice: faiss-cpu (the package's dependency) unless torch is a CUDA build, where
faiss-gpu-cu12 replaces it. The choice is tested with stand-in interpreters (this machine has no CUDA); the
replacement itself needs PyPI and CUDA, so here only its outcome on this CPU machine is checked: one FAISS, the CPU one.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SETUP = REPO / "scripts" / "setup.sh"


def fake_python(tmp_path: Path, cuda: str | None) -> Path:
    """An executable that answers setup.sh's probe like a Python whose torch has ``torch.version.cuda == cuda``."""
    exe = tmp_path / f"python-{cuda or 'cpu'}"
    exe.write_text(f"#!/bin/sh\nexit {0 if cuda else 1}\n")
    exe.chmod(0o755)
    return exe


def faiss_build(python: Path, choice: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HILDIF_FAISS"}
    if choice is not None:
        env["HILDIF_FAISS"] = choice
    return subprocess.run(["bash", "-c", f'source "{SETUP}" && faiss_build "{python}"'], capture_output=True,
                          text=True, env=env, timeout=60)


@pytest.mark.parametrize("cuda, choice, expected", [
    (None, None, "cpu"), ("12.8", None, "gpu"), ("12.8", "cpu", "cpu"), (None, "gpu", "gpu"), (None, "auto", "cpu"),
])
def test_faiss_follows_torch_unless_told(tmp_path, cuda, choice, expected):
    proc = faiss_build(fake_python(tmp_path, cuda), choice)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_a_wrong_choice_is_a_clear_error(tmp_path):
    proc = faiss_build(fake_python(tmp_path, None), "cuda")
    assert proc.returncode != 0 and "HILDIF_FAISS must be auto, cpu or gpu, not 'cuda'" in proc.stderr


def test_sourcing_the_script_installs_nothing(tmp_path):
    proc = subprocess.run(["bash", "-c", f'source "{SETUP}"; type install_faiss >/dev/null && echo defined'],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.stdout.strip() == "defined" and "[setup]" not in proc.stdout + proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_this_environment_has_the_faiss_its_torch_calls_for():
    import faiss
    import torch

    proc = faiss_build(Path(sys.executable))
    assert proc.stdout.strip() == ("gpu" if torch.version.cuda else "cpu")
    installed = {d for d in ("faiss-cpu", "faiss-gpu-cu12") if _installed(d)}
    assert installed == ({"faiss-gpu-cu12"} if torch.version.cuda else {"faiss-cpu"}), installed
    index = faiss.IndexFlatL2(4)  # the module works, whichever wheel provides it
    index.add(torch.eye(4).numpy())
    assert index.search(torch.eye(4)[:1].numpy(), 1)[1][0, 0] == 0


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
