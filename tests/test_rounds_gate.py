"""The promotion gate in a real sync: tiny BERT, real augmentation, fine-tuning and evaluation; no Label Studio.

The ratings are stored as a snapshot directly (what :func:`hildif.rounds.sync.pull_and_snapshot` stores after
reading Label Studio; the pull itself is tested against a real server in test_rounds_labelstudio.py) and the sync
runs from there (:func:`hildif.rounds.sync.sync_snapshot`). The base model has learnt the evaluation samples, and the
rated examples are all relabelled non-entailment: a fine-tuning set built to hurt it. The tests run in order and
share one run directory.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _config(run, data_dir, *extra):
    from hildif.config import load_config

    return load_config(overrides=[
        f"data.data_dir={data_dir}", "data.max_train_examples=300", f"run.run_dir={run}", "model.device=cpu",
        "feedback.augmenters=synonym", "feedback.copies_per_point=1", "finetune.epochs=3", "finetune.batch_size=8",
        "finetune.learning_rate=5e-3", "finetune.warmup_ratio=0", "eval.hans_sample=30", "eval.mnli_sample=30",
        "eval.batch_size=64", "feedback.constructions=", "finetune.rehearsal_ratio=0", *extra,  # the rated set alone
    ])


@pytest.fixture(scope="module")
def env(tmp_path_factory, data_dir):
    from hildif.config import TrainConfig
    from hildif.data.splits import evaluation_sets, load_anchors, load_train
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier
    from hildif.model.training import train

    run = tmp_path_factory.mktemp("gate-run")
    cfg = _config(run, data_dir)
    hans, mnli = evaluation_sets(cfg.data, cfg.eval)
    pool = load_train(cfg.data)
    clf = build_tiny_classifier(pool + load_anchors(cfg.data) + hans + mnli, seed=0)
    # a base that gets the evaluation samples right, so that a harmful fine-tune shows on them
    train(clf, hans + mnli, TrainConfig(max_steps=120, batch_size=16, learning_rate=3e-3, warmup_ratio=0.0),
          progress=False)
    registry = ModelRegistry(run)
    base = registry.save(clf, {"kind": "base", "source": "tiny"})
    return {"cfg": cfg, "run": run, "data_dir": data_dir, "base": base, "pool": pool, "shared": {}}


def _round(env, round_id, base_version, offset):
    """A round from ``base_version`` with one anchor and six influential examples, all relabelled non-entailment."""
    from hildif.data.example import Example
    from hildif.data.splits import load_anchors
    from hildif.model.registry import ModelRegistry
    from hildif.rounds.state import RoundAnchor, RoundPair, RoundState

    anchor = load_anchors(env["cfg"].data)[0]
    hurt = [Example(z.id, z.premise, z.hypothesis, 0, z.metadata) for z in env["pool"][offset: offset + 6]]
    path = str(ModelRegistry(env["run"]).path(base_version))
    RoundState(env["cfg"].run_path("rounds.sqlite")).create_round(
        round_id, base_version, path, {"method": "test"}, {}, [RoundAnchor(anchor, [0.5, 0.5])],
        [RoundPair(anchor.id, z, i + 1, -1.0) for i, z in enumerate(hurt)])
    return anchor, hurt


def _sync(cfg, round_id, anchor, examples, score):
    from hildif.feedback import Rating
    from hildif.rounds.state import RoundState, now
    from hildif.rounds.sync import PulledRatings, sync_snapshot
    from hildif.utils.locks import file_lock

    ratings = [Rating(anchor.id, z.id, "rater@hildif.test", score, "submitted", now(), f"test:{round_id}/{z.id}")
               for z in examples]
    state = RoundState(cfg.run_path("rounds.sqlite"))
    snapshot = state.add_snapshot(round_id, ratings)
    with file_lock(cfg.run_path(".sync.lock")):
        return sync_snapshot(cfg, round_id, PulledRatings(snapshot.snapshot_id, ratings, {"new": len(ratings)}),
                             progress=False)


def test_a_regressing_sync_keeps_the_previous_model_and_says_why(env, capsys):
    from hildif.cli import main
    from hildif.model.registry import ModelRegistry
    from hildif.rounds.state import RoundState
    from hildif.rounds.status import format_status, round_status

    cfg = env["cfg"]
    anchor, hurt = _round(env, "r1", env["base"], 0)
    env["shared"]["r1"] = (anchor, hurt)
    res = _sync(cfg, "r1", anchor, hurt, 5)
    registry = ModelRegistry(cfg.run.run_dir)
    assert res.status == "trained" and res.version and res.version != env["base"]
    mnli = res.gate["checks"]["mnli"]
    assert mnli["before"] - mnli["after"] > 1.0, mnli  # the set hurt the model
    assert res.served is False and registry.current() == env["base"]  # ... so the gate kept the base serving
    assert any(r.startswith("MNLI fell") for r in res.gate["reasons"]) and res.gate["serve"] is False
    # the decision is in the state, the round report and the status
    state = RoundState(cfg.run_path("rounds.sqlite"))
    summary = state.last_done_sync("r1")["summary"]
    assert summary["served"] is False and summary["gate"] == res.gate
    report = json.loads((Path(res.report_dir) / "round.json").read_text())
    assert report["gate"] == res.gate and report["previous_version"] == env["base"]
    md = (Path(res.report_dir) / "round.md").read_text()
    assert "Not served" in md and "MNLI fell" in md and f"hildif round promote --round r1 --version {res.version}" in md
    assert "/ n %" not in md
    # the set's word overlap per class (all six relabelled non-entailment: one class, so no gap to name)
    assert "- Word overlap per class, the rated examples and their copies" in md and "cue for" not in md
    text = format_status(round_status(cfg, "r1", live=False))
    assert "not served (promotion gate): MNLI fell" in text and f"serving model {env['base']}" in text
    # the same ratings again: unchanged, still not served
    again = _sync(cfg, "r1", anchor, hurt, 5)
    assert again.status == "unchanged" and again.version == res.version and again.served is False

    # the admin promotes it explicitly
    args = ["round", "promote", "--round", "r1", "--run-dir", str(env["run"]), "--data-dir", str(env["data_dir"])]
    assert main(args) == 0
    assert f"now serving {res.version}" in capsys.readouterr().out and registry.current() == res.version
    promoted = state.last_done_sync("r1")["summary"]["promoted"]
    assert promoted["previous_version"] == env["base"]
    md = (Path(res.report_dir) / "round.md").read_text()  # the report says so now, in both its forms
    assert f"Promoted: an admin served **{res.version}** at {promoted['at']}" in md and "Not served" not in md
    assert "Promoted: an admin served" in (Path(res.report_dir) / "round.html").read_text()
    assert json.loads((Path(res.report_dir) / "round.json").read_text())["promoted"] == promoted
    assert "promoted by an admin" in format_status(round_status(cfg, "r1", live=False))
    assert main(args[:4] + ["--version", "nope", *args[4:]]) == 1
    assert "version 'nope' was not made by a successful sync of round 'r1'" in capsys.readouterr().err
    env["shared"]["v1"] = res.version


def test_a_late_sync_of_an_older_round_does_not_roll_back_the_served_model(env):
    from hildif.model.registry import ModelRegistry

    # metric checks off: only the lineage is under test here
    cfg = _config(env["run"], env["data_dir"], "finetune.gate_max_mnli_drop=none", "finetune.gate_min_hans_gain=none")
    registry = ModelRegistry(cfg.run.run_dir)
    v1 = env["shared"]["v1"]
    anchor, examples = _round(env, "r2", v1, 6)  # r2 starts from r1's (promoted, served) model
    r2 = _sync(cfg, "r2", anchor, examples, 4)
    assert r2.served and registry.current() == r2.version and r2.gate["checks"]["lineage"]["ok"]

    anchor1, hurt1 = env["shared"]["r1"]
    late = _sync(cfg, "r1", anchor1, hurt1, 3)  # an r1 rating edited, r1 re-synced: a new child of the base
    assert late.status == "trained" and late.version not in (v1, r2.version)
    assert late.served is False and registry.current() == r2.version  # no silent roll-back
    assert late.gate["checks"]["lineage"] == {"enabled": True, "served": r2.version, "base": env["base"], "ok": False}
    assert "made by round r2" in late.gate["reasons"][0]

    forward = dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, gate_lineage=False))
    anyway = _sync(forward, "r1", anchor1, hurt1, 2)
    assert anyway.served and registry.current() == anyway.version
