"""``hildif demo --annotators human`` as a person runs it, in a subprocess: it starts the run's own Label Studio,
makes the named people's accounts and prints how they log in (never the admin's login), waits on one quiet line,
and, interrupted (Ctrl-C), stops Label Studio and prints a hint; that hint, run as printed (no API key in the
environment), starts the run's Label Studio again, syncs the ratings made and trains. The terminal output is kept in
``test-artifacts/demo_human_terminal.txt``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.labelstudio]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
PEOPLE = ("ana.human@hildif.test", "ben.human@hildif.test")
SETTINGS = [
    "model.device=cpu", "data.max_train_examples=300", "influence.k=20", "influence.grad_batch_size=16",
    "feedback.augmenters=swap", "feedback.fill_augmenters=delete", "feedback.copies_per_point=1",
    "finetune.epochs=1", "finetune.batch_size=8", "eval.hans_sample=60", "eval.mnli_sample=60", "eval.batch_size=64",
    "finetune.gate_max_mnli_drop=none", "finetune.gate_min_hans_gain=none",
]


@pytest.fixture()
def machine_cache(tmp_path):
    """A machine cache holding the tests' migrated Label Studio template (built once per machine), so the demo's
    own Label Studio starts from a copy instead of migrating."""
    from hildif.labelstudio.server import LABEL_STUDIO_VERSION, LabelStudioServerError, find_label_studio_bin
    from hildif.labelstudio.server import prepare_data_dir
    from required import LABEL_STUDIO, skip_or_fail

    try:
        find_label_studio_bin()
    except LabelStudioServerError as exc:
        skip_or_fail(str(exc), LABEL_STUDIO)
    tests_cache = Path(os.environ.get("HILDIF_TEST_CACHE") or Path.home() / ".cache" / "hildif-tests")
    name = f"label-studio-{LABEL_STUDIO_VERSION}-template"
    prepare_data_dir(tmp_path / "unused-copy", tests_cache / name, allow_local_backends=True)
    cache = tmp_path / "machine-cache"
    cache.mkdir()
    (cache / name).symlink_to(tests_cache / name)
    return cache


def read_until(proc: subprocess.Popen, lines: list[str], pattern: str, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line.rstrip("\n"))
        found = re.search(pattern, line)
        if found:
            return found
    pytest.fail(f"no {pattern!r} in the demo's output:\n" + "\n".join(lines[-60:]))


def test_the_printed_hint_finishes_an_interrupted_human_demo(tmp_path, data_dir, machine_cache):
    from round_env import register_tiny_base

    from hildif.config import load_config
    from hildif.labelstudio.client import LabelStudioClient
    from hildif.labelstudio.server import free_port, port_is_free
    from hildif.rounds.state import RoundState

    run = tmp_path / "run"
    register_tiny_base(load_config(overrides=[f"data.data_dir={data_dir}", f"run.run_dir={run}", *SETTINGS]))
    env = {k: v for k, v in os.environ.items() if k != "LABEL_STUDIO_API_KEY"}
    env.update(HILDIF_CACHE_DIR=str(machine_cache), PYTHONPATH=str(REPO), HILDIF_DATA_DIR=str(data_dir))
    port = free_port()
    cmd = [sys.executable, "-m", "hildif.cli", "demo", "--annotators", "human", "--people", *PEOPLE,
           "--run-dir", str(run), "--ls-port", str(port), "--no-backend", "--anchors", "1", "--p", "2",
           "--no-progress", *sum((["--set", s] for s in SETTINGS), [])]
    # the demo starts with SIGINT ignored, as a script's ``hildif demo &`` hands it: the interrupt must still stop it
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines: list[str] = []
    try:
        read_until(proc, lines, r"waiting for 2 people", timeout=900)
        read_until(proc, lines, r"^ratings 0/4 \| tasks done 0/2", timeout=300)
        out = "\n".join(lines)
        passwords = dict(re.findall(r"(\S+@hildif\.test)\s+password (\S+)$", out, re.M))
        assert set(passwords) == set(PEOPLE), out
        assert "admin@hildif.local" not in out and "hildif-admin-pass" not in out  # nobody rates as the admin
        assert f"log in at http://127.0.0.1:{port}/user/login/" in out

        # both people rate one task each (recorded for them with the admin's key, which the run keeps)
        token = (run / "labelstudio-admin-token").read_text().strip()
        client = LabelStudioClient(f"http://127.0.0.1:{port}", token)
        users = {name: uid for uid, name in client.users().items()}
        pair = RoundState(run / "rounds.sqlite").pairs("demo")[0]
        client.annotate(pair.task_id, users[PEOPLE[0]], 5)
        client.annotate(pair.task_id, users[PEOPLE[1]], 4)
        read_until(proc, lines, r"^ratings 2/4 \| tasks done 1/2 \| ana\.human@hildif\.test 1/2, "
                                r"ben\.human@hildif\.test 1/2", timeout=300)
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=900)  # stopping Label Studio takes long on a loaded machine
        lines += rest.splitlines()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "demo_human_terminal.txt").write_text("\n".join(lines) + "\n")
    out = "\n".join(lines)
    assert proc.returncode == 130, out
    assert port_is_free(port), "the demo left its Label Studio running"
    hint = re.search(r"`(hildif round sync [^`]+)`", out)
    assert hint, out

    argv = shlex.split(hint.group(1))
    done = subprocess.run([sys.executable, "-m", "hildif.cli", *argv[1:]], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "starting the run's Label Studio" in done.stderr
    result = json.loads(done.stdout[done.stdout.index("{"):])
    assert result["status"] == "trained" and result["n_scored_pairs"] == 1 and result["changes"]["new"] == 2
    assert result["short_pairs"]["n_short"] == 1  # the task nobody rated; the default rule uses what there is
    assert port_is_free(port), "the sync left the Label Studio it started running"
