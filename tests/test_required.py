"""tests/required.py: a missing tool skips a test, except under its HILDIF_REQUIRE_* variable, where it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

PROBE = '''
from required import import_or_fail, skip_or_fail

def test_tool():
    skip_or_fail("the frobnicator is not installed", "HILDIF_REQUIRE_FROB")

def test_module():
    import_or_fail("hildif_no_such_module", "HILDIF_REQUIRE_FROB", "pip install it")
'''


def run_probe(tmp_path: Path, required: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "HILDIF_REQUIRE_FROB"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    if required:
        env["HILDIF_REQUIRE_FROB"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rsf", "-c", "/dev/null",
                           str(tmp_path / "test_probe.py")], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)


@pytest.mark.parametrize("required", [False, True])
def test_skip_or_fail(tmp_path, required):
    proc = run_probe(tmp_path, required)
    out = proc.stdout + proc.stderr
    if required:
        assert proc.returncode == 1, out
        assert "2 failed" in out and "HILDIF_REQUIRE_FROB=1: this test must run here" in out
    else:
        assert proc.returncode == 0, out
        assert "2 skipped" in out and "the frobnicator is not installed" in out and "hildif_no_such_module" in out
