"""Rounds against a real Label Studio (session fixture) with the tiny model, real influence, augmentation,
fine-tuning and evaluation on small samples.

The tests share one run directory and one round ("r1") that moves through stages: start, re-start, recovery
of unrecorded tasks, three annotators' ratings, sync, idempotent re-sync, edited and deleted ratings, a crash
mid-sync, status, and Label Studio being unreachable. Each stage is a module fixture (``started``, ``rated``,
``first_sync``, ``edited``, ``crashed``) that builds on the one before, so any subset of the tests (``-k``, a
single test) sets up what it needs; a test only asserts on the stage its fixtures produced. Fault injection (the
crash) patches one function to raise; nothing else is mocked.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.labelstudio]

KEY_ENV = "HILDIF_TEST_LS_KEY"
ANNOTATORS = ("ann1@hildif.test", "ann2@hildif.test", "ann3@hildif.test")


def make_config(run_dir: Path, data_dir: Path, url: str):
    from hildif.config import load_config

    return load_config(overrides=[
        f"data.data_dir={data_dir}", "data.max_train_examples=300", f"run.run_dir={run_dir}", "model.device=cpu",
        "influence.k=20", "influence.top_p=2", "influence.lissa_steps=20", "influence.grad_batch_size=16",
        "feedback.augmenters=synonym", "feedback.copies_per_point=1", "finetune.epochs=1", "finetune.batch_size=8",
        "eval.hans_sample=60", "eval.mnli_sample=60", "eval.batch_size=64",
        f"labelstudio.url={url}", f"labelstudio.api_key_env={KEY_ENV}", "labelstudio.project_title=HILDIF rounds test",
        "labelstudio.annotators_per_task=3",
        # the gate's metric checks off (tiny model, 60-example samples); test_rounds_gate.py tests the gate
        "finetune.gate_max_mnli_drop=none", "finetune.gate_min_hans_gain=none",
        # the rated set alone: construction pairs and rehearsal have their own tests (the demo's runs them in a sync)
        "feedback.constructions=", "finetune.rehearsal_ratio=0",
    ])


@pytest.fixture(scope="module")
def env(label_studio, tmp_path_factory, data_dir):
    """Run directory with a tiny base model registered as current, a config, a client and three annotators."""
    from hildif.data.splits import load_anchors, load_train
    from hildif.labelstudio.client import LabelStudioClient
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier

    os.environ[KEY_ENV] = label_studio.admin_token
    run = tmp_path_factory.mktemp("round-run")
    cfg = make_config(run, data_dir, label_studio.url)
    texts = list(load_train(cfg.data)) + list(load_anchors(cfg.data))
    clf = build_tiny_classifier(texts, seed=0)
    base = ModelRegistry(run).save(clf, {"kind": "base", "source": "tiny"})
    client = LabelStudioClient(label_studio.url, label_studio.admin_token)
    users = {name: client.ensure_user(name) for name in ANNOTATORS}
    return {"cfg": cfg, "run": run, "base": base, "client": client, "users": users}


@pytest.fixture(scope="module")
def started(env):
    """Round r1 started on the paper's first two anchors: the result of the first ``start_round``."""
    from hildif.rounds.start import AnchorSelection, start_round

    return start_round(env["cfg"], "r1", AnchorSelection("paper", n=2), client=env["client"], progress=False)


# plan: pair index -> {annotator index: score}; annotator 0 skips pair 2
RATING_PLAN = {0: {0: 5, 1: 4, 2: 1}, 1: {0: 2, 1: 2, 2: 3}, 2: {1: 3, 2: 5}}


@pytest.fixture(scope="module")
def rated(env, started):
    """Three annotators' ratings on r1 (RATING_PLAN) and one skip; returns {(pair index, user id): annotation id}."""
    client, users = env["client"], [env["users"][a] for a in ANNOTATORS]
    p = _pairs(env)
    ann = {}
    for i, scores in RATING_PLAN.items():
        for who, score in scores.items():
            ann[(i, users[who])] = client.annotate(p[i].task_id, users[who], score)
    client.skip(p[2].task_id, users[0])
    return ann


@pytest.fixture(scope="module")
def first_sync(env, rated):
    from hildif.rounds.sync import sync_round

    return sync_round(env["cfg"], "r1", client=env["client"], progress=False)


@pytest.fixture(scope="module")
def edited(env, rated, first_sync):
    """One rating edited (pair 0, annotator 3: 1 -> 5), synced; then one deleted (pair 1, annotator 2), synced."""
    from hildif.rounds.sync import sync_round

    cfg, client, users = env["cfg"], env["client"], env["users"]
    client.update_annotation(rated[(0, users[ANNOTATORS[2]])], 5)
    after_edit = sync_round(cfg, "r1", client=client, progress=False)
    client.delete_annotation(rated[(1, users[ANNOTATORS[1]])])
    after_delete = sync_round(cfg, "r1", client=client, progress=False)
    return after_edit, after_delete


@pytest.fixture(scope="module")
def crashed(env, rated, edited):
    """An edit (pair 2, annotator 2: 3 -> 1), a sync that crashes writing its report, then a sync that works."""
    import hildif.rounds.report as report
    from hildif.model.registry import ModelRegistry
    from hildif.rounds.state import RoundState
    from hildif.rounds.sync import sync_round

    cfg, client, users = env["cfg"], env["client"], env["users"]
    registry = ModelRegistry(cfg.run.run_dir)
    state = RoundState(cfg.run_path("rounds.sqlite"))
    out = {"serving": registry.current(), "n_versions": len(registry.versions())}
    client.update_annotation(rated[(2, users[ANNOTATORS[1]])], 1)  # 3, 5 -> 1, 5: median 4 -> 3

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device (injected)")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report, "write_round_report", disk_full)
        with pytest.raises(OSError, match="injected"):
            sync_round(cfg, "r1", client=client, progress=False)
    out["current_after_crash"] = registry.current()
    out["last_sync_after_crash"] = state.syncs("r1")[-1]
    out["n_versions_after_crash"] = len(registry.versions())  # the crashed sync's saved model was removed
    out["last_done_after_crash"] = state.last_done_sync("r1")["version"]
    out["result"] = sync_round(cfg, "r1", client=client, progress=False)
    return out


def round_tasks(client, project_id, round_id):
    from hildif.labelstudio.convert import task_identity

    return [t for t in client.tasks(project_id) if (task_identity(t) or ("",))[0] == round_id]


def test_start_pushes_each_pair_once_with_its_metadata(env, started):
    from hildif.rounds.start import AnchorSelection, start_round
    from hildif.rounds.state import RoundState

    cfg, client = env["cfg"], env["client"]
    res = started
    assert (res.n_anchors, res.n_pairs, res.pushed_now, res.explained_now) == (2, 4, 4, True)
    assert res.base_version == env["base"]
    state = RoundState(cfg.run_path("rounds.sqlite"))
    pairs = state.pairs("r1")
    tasks = {t["id"]: t for t in round_tasks(client, res.project_id, "r1")}
    assert sorted(tasks) == sorted(p.task_id for p in pairs)
    anchors = {a.anchor_id: a for a in state.anchors("r1")}
    assert list(anchors) == ["49703e", "98315c"]  # the paper's first two anchors, in file order
    for p in pairs:
        data, meta = tasks[p.task_id]["data"], tasks[p.task_id]["meta"]
        a = anchors[p.anchor_id]
        assert (data["round_id"], data["anchor_id"], data["example_id"]) == ("r1", p.anchor_id, p.example_id)
        assert data["anchor_premise"] == a.example.premise and data["example_premise"] == p.example.premise
        assert data["example_hypothesis"] == p.example.hypothesis and data["influence_rank"] == p.rank
        assert data["anchor_confidence"] == f"{max(a.probs):.2f}"
        assert meta == {"round_id": "r1", "anchor_id": p.anchor_id, "example_id": p.example_id, "rank": p.rank}
    assert sorted(p.rank for p in pairs) == [1, 1, 2, 2]
    assert client.sdk.projects.get(id=res.project_id).maximum_annotations == 3

    again = start_round(cfg, "r1", AnchorSelection("paper", n=2), client=client, progress=False)
    assert (again.pushed_now, again.already_pushed, again.recovered, again.explained_now) == (0, 4, 0, False)
    assert len(round_tasks(client, res.project_id, "r1")) == 4


def test_start_recovers_tasks_pushed_but_not_recorded(env, started):
    """A crash between Label Studio's import and recording the ids: the rerun adopts the tasks, pushes none."""
    from hildif.rounds.start import start_round

    cfg, client = env["cfg"], env["client"]
    db = sqlite3.connect(cfg.run_path("rounds.sqlite"))
    with db:
        db.execute("UPDATE pairs SET task_id = NULL WHERE round_id = 'r1' AND rank = 2")
    db.close()
    res = start_round(cfg, "r1", client=client, progress=False)
    assert (res.pushed_now, res.recovered, res.already_pushed) == (0, 2, 2)
    assert len(round_tasks(client, res.project_id, "r1")) == 4


def test_cli_round_start_again_pushes_nothing(env, started, capsys):
    from hildif.cli import main

    cfg = env["cfg"]
    code = main(["round", "start", "--round", "r1", "--run-dir", str(cfg.run.run_dir), "--data-dir",
                 cfg.data.data_dir, *sum((["--set", s] for s in _overrides(cfg)), [])])
    out = capsys.readouterr().out
    assert code == 0, out
    assert json.loads(out)["pushed_now"] == 0


def _overrides(cfg):
    return [f"labelstudio.url={cfg.labelstudio.url}", f"labelstudio.api_key_env={KEY_ENV}",
            f"labelstudio.project_title={cfg.labelstudio.project_title}", "labelstudio.annotators_per_task=3"]


def _pairs(env):
    from hildif.rounds.state import RoundState

    return RoundState(env["cfg"].run_path("rounds.sqlite")).pairs("r1")


def _scores(env, sync_id):
    from hildif.rounds.state import RoundState

    st = RoundState(env["cfg"].run_path("rounds.sqlite"))
    return {(r["anchor_id"], r["example_id"]): (r["score"], r["n_raters"]) for r in st.scores(sync_id)}


def test_three_annotators_then_sync_aggregates_fine_tunes_and_serves(env, first_sync):
    from hildif.model.registry import ModelRegistry
    from hildif.rounds.state import RoundState
    from hildif.rounds.sync import sync_round

    cfg, client = env["cfg"], env["client"]
    p = _pairs(env)
    res = first_sync
    assert res.status == "trained" and res.changes["new"] == 9
    keys = [(x.anchor_id, x.example_id) for x in p]
    assert _scores(env, res.sync_id) == {keys[0]: (4.0, 3), keys[1]: (2.0, 3), keys[2]: (4.0, 2)}
    state = RoundState(cfg.run_path("rounds.sqlite"))
    flagged = {(r["anchor_id"], r["example_id"]): r["flagged"] for r in state.scores(res.sync_id)}
    assert flagged == {keys[0]: 1, keys[1]: 0, keys[2]: 1}  # spreads 4, 1, 2 against review_spread 2
    augmented = state.augmented(res.sync_id)
    report = json.loads((Path(res.report_dir) / "round.json").read_text())
    assert report["augmentation"]["requested"] == 4 + 2 + 4  # copies_per_point (1) x score per rated example
    assert len(augmented) == report["augmentation"]["produced"] + report["augmentation"]["originals"]
    assert {e.metadata.get("augmented_from", e.id) for e in augmented} == {x.example_id for x in p[:3]}
    # a new version is saved, recorded with its metrics and served
    registry = ModelRegistry(cfg.run.run_dir)
    assert registry.current() == res.version and res.previous_version == env["base"] and res.version != env["base"]
    assert {"hans.accuracy", "mnli.accuracy"} <= set(state.metrics(res.version))
    assert {"hans.accuracy", "mnli.accuracy"} <= set(state.metrics(env["base"]))  # "before", evaluated once
    for name in ("round.json", "round.md", "round.html", "fine_tuning_set.csv", "evaluation.json", "evaluation.md",
                 "evaluation.png"):
        assert (Path(res.report_dir) / name).exists(), name
    assert "| MNLI dev |" in (Path(res.report_dir) / "round.md").read_text()

    again = sync_round(cfg, "r1", client=client, progress=False)
    assert (again.status, again.version, again.sync_id) == ("unchanged", res.version, res.sync_id)
    assert again.snapshot_id == res.snapshot_id and again.changes["unchanged"] == 9
    assert len(state.syncs("r1")) == 1 and registry.current() == res.version


def test_edited_and_deleted_ratings_change_the_next_sync(env, first_sync, edited):
    from hildif.model.registry import ModelRegistry

    cfg = env["cfg"]
    keys = [(x.anchor_id, x.example_id) for x in _pairs(env)]
    v1 = first_sync
    res, res2 = edited
    # the edit: 5, 4, 1 -> 5, 4, 5: median 4 -> 5
    assert res.status == "trained" and res.changes["updated"] == 1
    assert _scores(env, res.sync_id)[keys[0]] == (5.0, 3)
    assert res.version != v1.version and res.previous_version == v1.version
    # the deletion: 2, 2, 3 -> 2, 3: median 2 -> 2.5
    assert res2.status == "trained" and res2.changes["deleted"] == 1
    assert _scores(env, res2.sync_id)[keys[1]] == (2.5, 2)
    assert res2.previous_version == res.version and ModelRegistry(cfg.run.run_dir).current() == res2.version


def test_crash_mid_sync_keeps_the_previous_model_and_a_consistent_state(env, crashed):
    from hildif.model.registry import ModelRegistry

    cfg, serving = env["cfg"], crashed["serving"]
    assert crashed["current_after_crash"] == serving
    last = crashed["last_sync_after_crash"]
    assert last["status"] == "failed" and "No space left" in last["error"]
    assert crashed["n_versions_after_crash"] == crashed["n_versions"] and crashed["last_done_after_crash"] == serving

    res = crashed["result"]
    assert res.status == "trained" and ModelRegistry(cfg.run.run_dir).current() == res.version != serving
    keys = [(x.anchor_id, x.example_id) for x in _pairs(env)]
    assert _scores(env, res.sync_id)[keys[2]] == (3.0, 2)


def test_status_reports_progress_per_pair_and_annotator(env, crashed, capsys):
    from hildif.cli import main
    from hildif.rounds.status import format_status, round_status

    cfg = env["cfg"]
    st = round_status(cfg, "r1", client=env["client"])
    a1, a2, a3 = ANNOTATORS
    assert st["annotators"] == {a1: {"submitted": 2, "skipped": 1}, a2: {"submitted": 2, "skipped": 0},
                                a3: {"submitted": 3, "skipped": 0}}
    assert [(r["submitted"], r["skipped"], r["done"]) for r in st["pairs"]] == [
        (3, 0, True), (2, 0, False), (2, 1, False), (0, 0, False)]
    assert st["progress"] == {"pairs": 4, "pushed": 4, "pairs_done": 1, "ratings": 7, "ratings_needed": 12}
    assert st["agreement"]["overall"]["n_units"] == 3 and st["agreement"]["overall"]["alpha"] is not None
    assert [s["status"] for s in st["syncs"]] == ["done", "done", "done", "failed", "done"]
    offline = round_status(cfg, "r1", live=False)
    assert offline["annotators"] == st["annotators"] and offline["progress"] == st["progress"]
    text = format_status(st)
    assert "ratings 7/12" in text and a3 in text
    code = main(["round", "status", "--round", "r1", "--json", "--run-dir", str(cfg.run.run_dir),
                 *sum((["--set", s] for s in _overrides(cfg)), [])])
    assert code == 0 and json.loads(capsys.readouterr().out)["progress"]["ratings"] == 7


def test_label_studio_unreachable_is_a_clear_error_and_loses_nothing(env, started, data_dir):
    from hildif.labelstudio.client import LabelStudioUnavailable
    from hildif.labelstudio.server import free_port
    from hildif.model.registry import ModelRegistry
    from hildif.rounds.start import AnchorSelection, start_round
    from hildif.rounds.state import RoundState
    from hildif.rounds.sync import sync_round

    cfg = env["cfg"]
    down_url = f"http://127.0.0.1:{free_port()}"
    down = make_config(Path(cfg.run.run_dir), data_dir, down_url)
    state = RoundState(cfg.run_path("rounds.sqlite"))
    registry = ModelRegistry(cfg.run.run_dir)
    serving = registry.current()
    snapshots = state.latest_snapshot("r1")

    with pytest.raises(LabelStudioUnavailable, match=down_url):
        sync_round(down, "r1", progress=False)
    assert registry.current() == serving and state.latest_snapshot("r1") == snapshots

    with pytest.raises(LabelStudioUnavailable, match=down_url):
        start_round(down, "r2", AnchorSelection("paper", n=1), progress=False)
    assert not state.has_round("r2")  # Label Studio is checked before any influence: nothing was computed

    res = start_round(cfg, "r2", AnchorSelection("paper", n=1), progress=False)
    assert (res.explained_now, res.pushed_now) == (True, 2)
    assert len(round_tasks(env["client"], res.project_id, "r2")) == 2


def test_backend_start_job_explains_and_pushes_a_random_round(env):
    """``POST /jobs {"kind": "start"}`` on the backend: influence runs in its job thread, tasks reach Label Studio."""
    from ml_backend.app import create_app
    from ml_backend.runtime import BackendRuntime

    cfg = env["cfg"]
    runtime = BackendRuntime(cfg)
    try:
        http = create_app(cfg, runtime=runtime).test_client()
        r = http.post("/jobs", json={"kind": "start", "params": {
            "round_id": "r3", "selection": {"method": "random", "n": 1, "seed": 3}}})
        assert r.status_code == 202
        job = runtime.jobs.wait(r.get_json()["job_id"], timeout=600)
    finally:
        runtime.close()
    assert job["status"] == "done", job["error"]
    assert (job["result"]["pushed_now"], job["result"]["n_anchors"], job["result"]["explained_now"]) == (2, 1, True)
    assert len(round_tasks(env["client"], job["result"]["project_id"], "r3")) == 2
