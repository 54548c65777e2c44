"""A round's fine-tune on ``run.nproc`` = 2 CPU processes (a torchrun subprocess, gloo) against the in-process one
(``run.nproc`` = 1): the same weights with the same global batch, the setting's validation, and a failing
subprocess. The tiny BERT is built in code; the rows are genuine MNLI training pairs."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hildif.config import ConfigError, load_config
from hildif.errors import HildifError
from hildif.rounds.finetune import JOB_PREFIX, JOB_TMP_DIR, FineTuneProcessError, fine_tune

ROWS = 45  # with batch 8: the last batch holds 5 rows, which 2 processes do not share evenly


def _cfg(run_dir: Path, data_dir: Path, *extra: str):
    return load_config(overrides=[
        f"run.run_dir={run_dir}", f"data.data_dir={data_dir}", "model.device=cpu", "finetune.batch_size=8",
        "finetune.epochs=1", "finetune.learning_rate=2e-3", "finetune.warmup_ratio=0.1", "finetune.seed=3",
        *extra])


def _leftovers(run_dir: Path) -> list[str]:
    tmp = run_dir / JOB_TMP_DIR
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


def _weights(clf) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in clf.model.named_parameters()}


@pytest.fixture()
def base(tmp_path, tiny_clf) -> Path:
    path = tmp_path / "base"
    tiny_clf.save(path)
    return path


def test_fine_tune_on_two_processes_gives_the_weights_of_one(tmp_path, base, data_dir, mnli_train_sample,
                                                              tiny_clf, monkeypatch):
    rows = mnli_train_sample[:ROWS]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same kernels as the single-threaded workers
    try:
        one_clf, one = fine_tune(base, rows, _cfg(tmp_path / "one", data_dir), seed=1)
    finally:
        torch.set_num_threads(threads)
    assert not (tmp_path / "one" / "logs").exists()  # in process: no subprocess, no log of one

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_dir = tmp_path / "two"
    two_clf, two = fine_tune(base, rows, _cfg(run_dir, data_dir, "run.nproc=2"), seed=1)

    assert one.steps == two.steps == 6 and one.examples_seen == two.examples_seen == ROWS
    torch.testing.assert_close(torch.tensor(two.losses), torch.tensor(one.losses), rtol=1e-5, atol=1e-6)
    start = _weights(tiny_clf)
    ref, got = _weights(one_clf), _weights(two_clf)
    assert ref.keys() == got.keys()
    for name, w in ref.items():
        torch.testing.assert_close(got[name], w, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(ref[n], start[n]) for n in ref)  # it did train
    # the checkpoint read back is usable as today's: same tokenizer, max length, CPU
    assert two_clf.max_length == one_clf.max_length and two_clf.device.type == "cpu"
    assert _leftovers(run_dir) == []  # the job folder is gone
    logs = sorted((run_dir / "logs").glob(f"{JOB_PREFIX}*.log"))
    assert len(logs) == 1
    assert "rank 1 of 2" in logs[0].read_text(encoding="utf-8")  # both processes trained (their output is there)


def test_a_bad_nproc_is_rejected_naming_the_setting(tmp_path, base, data_dir, mnli_train_sample):
    with pytest.raises(ConfigError, match=r"run\.nproc=0: must be an integer >= 1"):
        _cfg(tmp_path, data_dir, "run.nproc=0")
    with pytest.raises(ConfigError, match=r"run\.nproc: expected int, got 'two'"):
        _cfg(tmp_path, data_dir, "run.nproc=two")
    with pytest.raises(ConfigError, match=r"run\.nproc=3 does not divide finetune\.batch_size=8: the batch size is "
                                          r"the global batch"):
        _cfg(tmp_path, data_dir, "run.nproc=3")
    assert _cfg(tmp_path, data_dir, "run.nproc=4").run.nproc == 4
    # a configuration changed in code is checked by fine_tune itself, before anything starts
    cfg = _cfg(tmp_path / "run", data_dir)
    for bad, message in ((0, r"run\.nproc=0"), (-2, r"run\.nproc=-2"), (3, r"run\.nproc=3 does not divide")):
        changed = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, nproc=bad))
        with pytest.raises(ConfigError, match=message):
            fine_tune(base, mnli_train_sample[:10], changed)
    assert not (tmp_path / "run").exists()


def test_a_failing_worker_gives_a_clear_error_and_leaves_no_job_folder(tmp_path, base, data_dir,
                                                                       mnli_train_sample, monkeypatch):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in base.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    secret = "MARKER-7f3a-not-a-config"
    (broken / "config.json").write_text(secret + "{", encoding="utf-8")  # the workers cannot load this checkpoint
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_dir = tmp_path / "run"
    with pytest.raises(FineTuneProcessError) as caught:
        fine_tune(broken, mnli_train_sample[:16], _cfg(run_dir, data_dir, "run.nproc=2"))
    message = str(caught.value)
    assert isinstance(caught.value, HildifError)
    assert "run.nproc=2" in message and "exit code" in message and "exit code 0" not in message
    logs = sorted((run_dir / "logs").glob(f"{JOB_PREFIX}*.log"))
    assert len(logs) == 1 and str(logs[0]) in message
    assert "cannot load model" in logs[0].read_text(encoding="utf-8")  # the workers' own error is in the log ...
    assert secret not in message  # ... and nothing of it or of the file in the message
    assert _leftovers(run_dir) == []


def test_an_interrupted_wait_ends_torchrun_and_its_workers():
    """What fine_tune_subprocess does when its wait is interrupted (Ctrl-C, a stopped job): the launched process
    and the processes it started (here one sleeping child standing in for torchrun's workers) all end."""
    from hildif.rounds.finetune import _stop_group

    code = ("import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])"
            "; print(c.pid, flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    child = int(proc.stdout.readline())
    _stop_group(proc)
    assert proc.returncode is not None and proc.returncode < 0  # ended by a signal
    deadline = time.monotonic() + 60  # the orphaned child is reaped by init; this only bounds the wait
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (ended, not yet reaped) counts as ended
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
