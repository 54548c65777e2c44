"""The ML backend killed during fine-tuning, and the recovery after it.

* Fast: a sync row left ``running`` by a dead process is marked failed (``interrupted: ...``) by the backend's start
  and by the next sync - but never while a sync really runs (another process holds the sync lock).
* Integration, against the session's real Label Studio and a real gunicorn backend (tiny model, real influence,
  augmentation and fine-tuning): three annotators rate both pairs of a round; the backend (its own process group)
  starts a sync with fine-tuning made endless (``finetune.max_steps``) and is killed with SIGKILL once fine-tuning
  runs: the sync row reads ``running`` and the training loop has logged its first optimizer step. The previous model stays served and loads, no partial model shows up, and after a restart the job and the
  sync read as interrupted; a resubmitted sync counts every rating once and serves its new model.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from round_env import KEY_ENV, register_tiny_base, round_config, start_backend, stop_backend


# ---------------------------------------------------------------------------------------------- the recovery (fast)
def _state_with_syncs(run_dir: Path):
    """A round with one ``done`` and one ``running`` sync (its process is gone): (cfg, state, done id, running id)."""
    from hildif.config import load_config
    from hildif.data.example import Example
    from hildif.feedback import Rating
    from hildif.rounds.state import RoundAnchor, RoundPair, RoundState

    cfg = load_config(overrides=[f"run.run_dir={run_dir}"])
    state = RoundState(cfg.run_path("rounds.sqlite"))
    z = Example("z0", "A man sleeps .", "A person rests .", 1)
    state.create_round("r1", "v0", "/models/v0", {}, {}, [RoundAnchor(Example("a1", "A b .", "B a .", 0), [0.5, 0.5])],
                       [RoundPair("a1", z, 1, -1.0)])
    sid = state.add_snapshot("r1", [Rating("a1", "z0", "u1", 4, "submitted", "2026-01-01T00:00:00Z", "s1")]).snapshot_id
    done = state.begin_sync("r1", sid)
    state.finish_sync(done, scores=[], augmented=[z], version="v1", metrics={}, report_dir="/r", summary={})
    return cfg, state, done, state.begin_sync("r1", sid)


def test_stale_running_sync_is_marked_interrupted_only_when_no_sync_holds_the_lock(tmp_path):
    from hildif.rounds.sync import recover_interrupted_syncs

    cfg, state, done, stale = _state_with_syncs(tmp_path / "run")
    # a sync running in another process (an admin's `hildif round sync`) holds the lock: its row is left alone
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); sys.stdin.read()", str(cfg.run_path(".sync.lock"))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert recover_interrupted_syncs(cfg) == []
        assert [s["status"] for s in state.syncs("r1")] == ["done", "running"]
    finally:
        holder.stdin.close()  # its sync "ends": the process exits and the lock goes with it
        holder.wait(10)
    assert recover_interrupted_syncs(cfg) == [stale]
    rows = state.syncs("r1")
    assert [s["status"] for s in rows] == ["done", "failed"] and rows[1]["error"].startswith("interrupted: ")
    assert rows[1]["finished_at"] and rows[0]["error"] is None and rows[0]["version"] == "v1"
    assert recover_interrupted_syncs(cfg) == []  # once


def test_the_next_sync_marks_a_stale_sync_before_anything_else(tmp_path):
    from hildif.rounds.state import RoundStateError
    from hildif.rounds.sync import sync_round

    cfg, state, _, stale = _state_with_syncs(tmp_path / "run")
    with pytest.raises(RoundStateError, match="unknown round 'nope'"):  # fails after taking the lock
        sync_round(cfg, "nope", client=object(), progress=False)
    assert state.syncs("r1")[-1]["sync_id"] == stale and state.syncs("r1")[-1]["status"] == "failed"


# ---------------------------------------------------------------------------------------------- the kill (integration)
RATINGS = ((5, 4, 2), (1, 3, 5))  # pair 0 and pair 1, by annotators 1..3: medians 4 and 3
ROUND = "rk"


def _wait(condition, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    """Poll ``condition`` (returns a truthy value when met) every 0.3 s; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"backend exited ({proc.returncode}) while waiting for {what}: {log.read_text()[-3000:]}")
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"no {what} after {timeout:.0f} s: {log.read_text()[-3000:]}")


def _group(pgid: int) -> dict[int, tuple[str, float]]:
    """The processes of one process group (gunicorn's master and worker): pid -> (state, user + system CPU s)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == pgid:  # fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15
            found[int(stat.parent.name)] = (fields[0], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return found


def _job(url: str, job_id: str) -> dict:
    r = requests.get(f"{url}/jobs/{job_id}", timeout=10)
    r.raise_for_status()
    return r.json()


def _train(url: str, project_id: int) -> str:
    r = requests.post(f"{url}/webhook", json={"action": "START_TRAINING", "project": {"id": project_id}}, timeout=10)
    assert r.status_code == 201 and r.json()["status"] == "queued", r.text
    return r.json()["job_id"]


@pytest.mark.integration
@pytest.mark.labelstudio
def test_backend_killed_during_fine_tuning_keeps_the_model_and_recovers(label_studio, tmp_path, data_dir, monkeypatch):
    from hildif.labelstudio.processes import write_config_file
    from hildif.labelstudio.client import LabelStudioClient
    from hildif.model.classifier import Classifier
    from hildif.model.registry import ModelRegistry
    from hildif.rounds.start import AnchorSelection, start_round
    from hildif.rounds.state import RoundState

    monkeypatch.setenv(KEY_ENV, label_studio.admin_token)
    run = tmp_path / "run"
    cfg = round_config(run, data_dir, label_studio.url, "HILDIF backend kill test", annotators=3,
                       extra=("influence.lissa_steps=5",))  # the explanations' quality is not under test here
    base = register_tiny_base(cfg)
    client = LabelStudioClient(label_studio.url, label_studio.admin_token)
    started = start_round(cfg, ROUND, AnchorSelection("paper", n=1), client=client, progress=False)
    state, registry = RoundState(cfg.run_path("rounds.sqlite")), ModelRegistry(run)
    pairs = state.pairs(ROUND)
    assert len(pairs) == 2 and all(p.task_id for p in pairs)
    users = [client.ensure_user(f"kill{i}@hildif.test") for i in (1, 2, 3)]
    for pair, scores in zip(pairs, RATINGS):
        for user, score in zip(users, scores):
            client.annotate(pair.task_id, user, score)

    config = write_config_file(cfg, tmp_path / "config.json")  # the backend's config; the key stays in $KEY_ENV
    env = {k: v for k, v in os.environ.items() if not k.startswith("HILDIF_BACKEND_")}
    log = tmp_path / "backend.log"
    proc, url = start_backend(run, env, log, "--config", str(config), "--set", "finetune.max_steps=1000000")
    try:
        job_id = _train(url, started.project_id)
        # the sync runs, and the base model's evaluation (the last step before FINE_TUNE) is recorded ...
        _wait(lambda: [s["status"] for s in state.syncs(ROUND)] == ["running"] and state.evaluation(base),
              120, "running sync past the base evaluation", proc, log)
        # ... then fine-tuning runs: the training loop reports its first optimizer step of the endless run
        assert len(_group(proc.pid)) == 2  # gunicorn's master and its one worker
        _wait(lambda: "train: step 1 of 1000000 done" in log.read_text(errors="replace"), 120,
              "fine-tuning's first step in the backend log", proc, log)
        assert _job(url, job_id)["status"] == "running" and state.syncs(ROUND)[0]["status"] == "running"
        os.killpg(proc.pid, signal.SIGKILL)  # the backend's own process group: gunicorn master and worker
        proc.wait(30)
        deadline = time.monotonic() + 10
        while any(st != "Z" for st, _ in _group(proc.pid).values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(st == "Z" for st, _ in _group(proc.pid).values())  # the worker died too (at most a zombie)
    finally:
        stop_backend(proc, signal.SIGKILL)

    # killed: the previous model is still the one served, it loads, and nothing half-made looks like a version
    assert registry.current() == base
    probs = Classifier.load(str(registry.current_path()), device="cpu").predict([p.example for p in pairs])
    assert probs.shape == (2, 2) and abs(float(probs.sum()) - 2.0) < 1e-4
    assert [v["version"] for v in registry.versions()] == [base]
    assert sorted(p.name for p in (run / "models").iterdir()) == sorted([base, "current.json"])
    assert state.evaluation(base) is not None  # the base's evaluation ("before") was recorded before the kill
    assert [s["status"] for s in state.syncs(ROUND)] == ["running"]  # what the dead process left behind
    with sqlite3.connect(f"file:{run / 'backend.sqlite'}?mode=ro", uri=True) as db:
        assert db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone() == ("running",)

    # restarted with the usual (short) fine-tuning: the job and the sync read as interrupted
    proc, url = start_backend(run, env, log, "--config", str(config))
    try:
        job = _job(url, job_id)
        assert job["status"] == "failed" and "interrupted" in job["error"]
        stale = state.syncs(ROUND)[0]
        assert stale["status"] == "failed" and stale["error"].startswith("interrupted: ")
        assert requests.get(f"{url}/health", timeout=5).json()["model_version"] == base

        again = _train(url, started.project_id)
        assert again != job_id
        done = _wait(lambda: (j := _job(url, again))["status"] in ("done", "failed") and j, 240, "finished resync",
                     proc, log)
        assert done["status"] == "done", done["error"]
        result = done["result"]
        health = requests.get(f"{url}/health", timeout=5).json()
    finally:
        stop_backend(proc)

    # every rating counted exactly once: the interrupted sync's snapshot is reused, the medians are of three raters
    assert result["status"] == "trained" and result["previous_version"] == base
    assert result["changes"] == {"new": 0, "updated": 0, "unchanged": 6, "deleted": 0, "still_deleted": 0}
    syncs = state.syncs(ROUND)
    assert [s["status"] for s in syncs] == ["failed", "done"] and syncs[1]["sync_id"] == result["sync_id"]
    assert syncs[0]["snapshot_id"] == syncs[1]["snapshot_id"] == state.latest_snapshot(ROUND).snapshot_id
    assert state.snapshot(syncs[1]["snapshot_id"]).n_active == 6
    scored = {(r["anchor_id"], r["example_id"]): (r["score"], r["n_raters"]) for r in state.scores(result["sync_id"])}
    assert scored == {(pairs[0].anchor_id, pairs[0].example_id): (4.0, 3),
                      (pairs[1].anchor_id, pairs[1].example_id): (3.0, 3)}
    # and its model is the one served now
    new = result["version"]
    assert new != base and registry.current() == new and health["model_version"] == new
    assert sorted(v["version"] for v in registry.versions()) == sorted([base, new])
    assert Classifier.load(str(registry.path(new)), device="cpu").predict([pairs[0].example]).shape == (1, 2)
