"""A round on a team's own Label Studio project, against a real Label Studio: the genre of MNLI premises (one text,
five genres, three annotators who sometimes disagree) -> a tiny model trained on the project's annotated tasks ->
``hildif round start --anchors project --project-anchors disagreement`` -> rating tasks that show one text per side
-> ratings posted through the Label Studio API -> sync: fine-tune with the task's own rehearsal rows, per-genre
evaluation on the task's held-out set in the round report. Nothing is mocked."""

from __future__ import annotations

import json
import logging
import os

import pytest
from own_project_env import GENRES, build_genre_project, genre_rows, genre_votes
from round_env import KEY_ENV, round_config

pytestmark = [pytest.mark.integration, pytest.mark.labelstudio]

N_TASKS = 60
# the tasks whose annotators disagree with a majority left: the third of three chose another genre
DISAGREE = tuple(n for n in range(N_TASKS) if len(genre_votes(n, "slate")) == 3 and n % 8 in (1, 4))


@pytest.fixture(scope="module")
def env(label_studio, data_dir, tmp_path_factory):
    """The genre project (60 tasks, 12 per genre, the votes of own_project_env.genre_votes), a run whose task is that
    project, a tiny model trained on it as the served version, and the run's config as a file for the command line."""
    from hildif.config import LoopConfig
    from hildif.labelstudio.client import LabelStudioClient
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier
    from hildif.model.training import train
    from hildif.rounds.task import load_round_task

    os.environ[KEY_ENV] = label_studio.admin_token
    client = LabelStudioClient(label_studio.url, label_studio.admin_token)
    rows = genre_rows(data_dir, N_TASKS, balanced=True)
    users = [client.ensure_user(f"genre-ann{i}@hildif.test") for i in range(2)]  # the round's raters
    pid, task_ids = build_genre_project(client, rows, "Genre of premises (own project round)")
    run = tmp_path_factory.mktemp("own-project-run")
    cfg = round_config(run, data_dir, label_studio.url, "HILDIF genre rating", annotators=2, extra=(
        "task.source=labelstudio", "task.name=genre", f"task.project_id={pid}", "task.heldout_fraction=0.3",
        "task.slices=disagreement", "feedback.syntactic=swap", "finetune.rehearsal_ratio=0.5",
        "finetune.gate_max_mnli_drop=100", "finetune.epochs=2"))
    data = load_round_task(cfg, client)
    clf = build_tiny_classifier(data.train + data.heldout, seed=0, num_labels=5, label_names=data.task.labels)
    train(clf, data.train, LoopConfig(epochs=3, batch_size=8, learning_rate=1e-3, seed=0))
    base = ModelRegistry(run).save(clf, {"kind": "base", "source": "tiny-genre"})
    config_file = run / "hildif.json"
    config_file.write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
    return {"cfg": cfg, "client": client, "pid": pid, "task_ids": task_ids, "rows": rows, "users": users,
            "data": data, "base": base, "config_file": config_file, "run": run}


@pytest.fixture(scope="module")
def started(env):
    """``hildif round start --anchors project --project-anchors disagreement``: (exit code, printed JSON)."""
    import contextlib
    import io

    from hildif.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["round", "start", "--round", "g1", "--anchors", "project", "--project-anchors", "disagreement",
                   "-n", "2", "--config", str(env["config_file"])])
    return rc, out.getvalue()


def _round_tasks(env, project_id):
    from hildif.labelstudio.convert import task_identity

    return [t for t in env["client"].tasks(project_id) if (task_identity(t) or ("",))[0] == "g1"]


def test_start_takes_the_disagreements_as_anchors_and_never_their_own_text(env, started):
    from hildif.rounds.state import RoundState
    from hildif.rounds.task import anchor_pool

    rc, out = started
    assert rc == 0, out
    result = json.loads(out)
    assert result["n_anchors"] == 2 and result["pushed_now"] == result["n_pairs"] == 4
    state = RoundState(env["cfg"].run_path("rounds.sqlite"))
    anchors = [a.example for a in state.anchors("g1")]
    disagreeing = [e for e in anchor_pool(env["data"]) if e.metadata["disagreement"]]
    assert len(disagreeing) == len(DISAGREE)
    assert [a.id for a in anchors] == [e.id for e in disagreeing[:2]]  # all 2/3 agreement: in the pool's order
    assert {a.metadata["ls_task_id"] for a in anchors} <= {env["task_ids"][n] for n in DISAGREE}
    pairs = state.pairs("g1")
    assert not {p.example.id for p in pairs} & {a.id for a in anchors}
    assert not {p.example.premise for p in pairs} & {a.premise for a in anchors}
    assert all(p.example.hypothesis is None for p in pairs)
    recorded = state.round("g1")["config"]["task"]
    assert recorded["labels"] == list(GENRES) and recorded["text_fields"] == ["text"]


def test_rating_tasks_show_one_text_per_side(env, started):
    from hildif.labelstudio.guidance import instructions_html
    from hildif.rounds.state import RoundState
    from hildif.tasks import parse_label_config

    state = RoundState(env["cfg"].run_path("rounds.sqlite"))
    project_id = state.round("g1")["project_id"]
    config = env["client"].project_settings(project_id)["label_config"]
    assert {t.key for t in parse_label_config(config).texts} == {"anchor_premise", "anchor_verdict",
                                                                  "example_premise", "example_verdict"}
    assert '<Header value="Text"' in config and "Hypothesis" not in config
    settings = env["client"].project_settings(project_id)  # the instructions speak of the genre task, not of NLI
    assert settings["show_instruction"]
    assert settings["expert_instruction"] == instructions_html(state.round("g1")["config"]["task"])
    assert all(f"<b>{g}</b>" in settings["expert_instruction"] for g in GENRES)
    assert not {"premise", "hypothesis", "negation"} & set(settings["expert_instruction"].lower().split())
    tasks = _round_tasks(env, project_id)
    anchors = {a.anchor_id: a.example for a in state.anchors("g1")}
    assert len(tasks) == 4
    for t in tasks:
        data = t["data"]
        anchor = anchors[data["anchor_id"]]
        assert data["anchor_premise"] == anchor.premise and "anchor_hypothesis" not in data
        assert data["anchor_gold"] == GENRES[anchor.label] and data["anchor_prediction"] in GENRES
        assert "(annotators: " in data["anchor_verdict"]  # the annotators' split votes are shown
        assert data["example_label"] in GENRES and "example_hypothesis" not in data


@pytest.fixture(scope="module")
def synced(env, started):
    """Two annotators rate every pair through the Label Studio API, then a sync."""
    from hildif.rounds.state import RoundState
    from hildif.rounds.sync import sync_round

    state = RoundState(env["cfg"].run_path("rounds.sqlite"))
    for p in state.pairs("g1"):
        high = p.rank == 1
        env["client"].annotate(p.task_id, env["users"][0], 5 if high else 2)
        env["client"].annotate(p.task_id, env["users"][1], 4 if high else 3)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("hildif").addHandler(handler)
    try:
        result = sync_round(env["cfg"], "g1", client=env["client"], progress=False)
    finally:
        logging.getLogger("hildif").removeHandler(handler)
    return result, [r.getMessage() for r in records]


def test_sync_fine_tunes_on_the_task_and_reports_per_genre(env, synced):
    from pathlib import Path

    result, messages = synced
    assert result.status == "trained", result
    assert any("feedback.syntactic / feedback.constructions (swap) make NLI pairs; they are off for task 'genre'"
               in m for m in messages)
    heldout = env["data"].heldout
    after = result.evaluation["after"]["task"]
    assert after["n"] == len(heldout) > 5 and "hans" not in result.evaluation["after"]
    assert list(after["by_label"]) == list(GENRES)
    assert set(after["by_slice"]["disagreement"]) <= {"false", "true"}
    assert list(result.metrics["after"]["task_by_label"]) == list(GENRES)
    assert result.gate["checks"]["task"]["before"] == result.evaluation["before"]["task"]["accuracy"]
    report = Path(result.report_dir)
    round_md = (report / "round.md").read_text(encoding="utf-8")
    for genre in GENRES:
        assert f"| label {genre} |" in round_md
    assert "| held-out accuracy |" in round_md and "MNLI" not in round_md.split("## Evaluation")[1].split("##")[0]
    summary = json.loads((report / "round.json").read_text(encoding="utf-8"))
    fts = summary["fine_tuning_set"]
    assert list(fts["labels"]) == list(GENRES)
    assert fts["rehearsal"]["pool"] == len(env["data"].train) and fts["parts"]["rehearsal"] > 0
    assert "syntactic" not in fts["parts"]
    evaluation_md = (report / "evaluation.md").read_text(encoding="utf-8")
    assert "## accuracy per label" in evaluation_md and "### per disagreement" in evaluation_md
