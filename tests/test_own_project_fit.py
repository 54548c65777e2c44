"""FIT and evaluation on a team's own task: MNLI genre classification from the premise (one text, five classes),
defined from files and from a real Label Studio project annotated by three users.

A tiny BERT built in code (``model.name_or_path=tiny``) is trained with a few steps; the saved version carries the
genre labels and the task; the evaluation's per-genre and per-slice numbers are recomputed here from the model's
predictions; a model whose labels are not the task's is refused with both label sets named.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from own_project_env import GENRES, SOURCE, build_genre_project, genre_rows

from hildif.config import load_config
from hildif.model.registry import ModelRegistry

TRAIN = ("model.name_or_path=tiny", "model.device=cpu", "train.max_steps=60", "train.batch_size=32",
         "train.learning_rate=5e-3", "train.warmup_ratio=0.1", "train.seed=0", "train.eval_examples=100",
         "train.save_every=0", "eval.batch_size=64")
FILES_TASK = ("task.source=files", "task.name=mnli-genre", f"task.files={SOURCE}", "task.text=sentence1",
              "task.label=genre", "task.slices=gold_label", "task.max_examples=800")


def direct_tables(clf, examples, labels, field):
    """Accuracy per label and per value of the metadata ``field``, computed here from the model's predictions."""
    pred = clf.predict(examples).argmax(1)
    gold = np.array([e.label for e in examples])
    per_label = {name: round(100.0 * float(np.mean(pred[gold == c] == c)), 2)
                 for c, name in enumerate(labels) if (gold == c).any()}
    values = [json.dumps(v) if not isinstance(v, str) else v for v in (e.metadata.get(field) for e in examples)]
    per_slice = {v: round(100.0 * float(np.mean([p == g for p, g, w in zip(pred, gold, values) if w == v])), 2)
                 for v in set(values)}
    return round(100.0 * float(np.mean(pred == gold)), 2), per_label, per_slice


def check_report(report, clf, data, field):
    """The report's overall, per-label and per-slice accuracies are the ones computed directly."""
    (result,) = report["results"].values()
    table = result["task"]
    overall, per_label, per_slice = direct_tables(clf, data.heldout, data.task.labels, field)
    assert table["n"] == len(data.heldout) and table["labels"] == list(GENRES)
    assert table["accuracy"] == pytest.approx(overall, abs=0.01)
    assert {k: v["accuracy"] for k, v in table["by_label"].items() if v["n"]} == pytest.approx(per_label, abs=0.01)
    assert {k: v["accuracy"] for k, v in table["by_slice"][field].items()} == pytest.approx(per_slice, abs=0.01)
    return table


# ---------------------------------------------------------------------------------------------- files
@pytest.fixture(scope="module")
def files_run(tmp_path_factory, data_dir):
    """The genre task from the JSONL file, FIT once for the module."""
    from hildif.baseline import train_baseline

    run = tmp_path_factory.mktemp("genre-files")
    cfg = load_config(overrides=[f"data.data_dir={data_dir}", f"run.run_dir={run}", *TRAIN, *FILES_TASK])
    return cfg, train_baseline(cfg)


def test_files_task_fit_saves_a_version_with_the_genre_labels_and_the_task(files_run):
    from hildif.model.loading import load_current
    from hildif.tasks import load_configured_task

    cfg, info = files_run
    assert cfg.model.num_labels == 2  # the MNLI setting: the task's five labels win
    meta = json.loads((ModelRegistry(cfg.run.run_dir).path(info["version"]) / "hildif.json").read_text())
    data = load_configured_task(cfg)
    assert meta["label_names"] == list(GENRES) and meta["kind"] == "baseline"
    assert meta["task"]["name"] == "mnli-genre" and meta["task"]["source"] == "files"
    assert meta["task"]["labels"] == list(GENRES) and meta["task"]["text_fields"] == ["sentence1"]
    assert meta["task"]["train"] == len(data.train) == meta["train_examples"] == 800
    assert meta["task"]["heldout"] == len(data.heldout) and sum(meta["task"]["heldout_per_label"].values()) == len(
        data.heldout)
    assert meta["train"]["steps"] == 60 and meta["train"]["evals"][-1]["step"] == 60
    clf = load_current(cfg).classifier
    assert clf.version == info["version"] and clf.label_names == GENRES and clf.num_labels == 5


def test_files_task_evaluation_per_genre_and_slice_matches_a_direct_computation(files_run, capsys):
    from hildif.baseline import evaluate_current
    from hildif.model.loading import load_current
    from hildif.tasks import load_configured_task

    cfg, info = files_run
    out = evaluate_current(cfg, title="genre")
    paths = {k: Path(v) for k, v in out["paths"].items()}
    assert set(paths) == {"json", "markdown", "plot"} and all(p.exists() for p in paths.values())
    assert paths["json"].parent.name == "reports" and paths["plot"].read_bytes()[:4] == b"\x89PNG"
    report = json.loads(paths["json"].read_text())
    assert report["task"]["name"] == "mnli-genre" and report["task"]["labels"] == list(GENRES)
    data = load_configured_task(cfg)
    table = check_report(report, load_current(cfg).classifier, data, "gold_label")
    assert set(table["by_slice"]["gold_label"]) <= {"entailment", "neutral", "contradiction"}
    assert table["accuracy"] > table["majority_class"]  # 60 steps learn something about genres
    assert "hans" not in report["results"][info["version"]]  # MNLI's evaluation is MNLI's alone
    md = paths["markdown"].read_text()
    for g in GENRES:
        cell = table["by_label"][g]
        assert f"| {g} | {cell['n']} | {cell['accuracy']:.2f} |" in md
    assert "### per gold_label" in md
    printed = capsys.readouterr().out
    assert f"task mnli-genre: accuracy {table['accuracy']} % on {len(data.heldout)} held-out examples" in printed
    assert f"| travel | {table['by_label']['travel']['n']} |" in printed and str(paths["json"]) in printed


def test_a_model_with_other_labels_is_refused_naming_both_label_sets(files_run, data_dir, capsys):
    from hildif.baseline import evaluate_current
    from hildif.cli import main
    from hildif.model.classifier import ModelLoadError

    cfg, info = files_run
    genres = ", ".join(GENRES)
    # the run's current model (five genres) evaluated as the MNLI task
    mnli = load_config(overrides=[f"data.data_dir={data_dir}", f"run.run_dir={cfg.run.run_dir}", *TRAIN])
    with pytest.raises(ModelLoadError, match=rf"has the labels \({genres}\) but task 'mnli' has "
                                             r"\(non-entailment, entailment\)"):
        evaluate_current(mnli, title="wrong")
    # the same genres in another order are other classes
    order = ["travel", "fiction", "government", "slate", "telephone"]
    reordered = load_config(overrides=[f"data.data_dir={data_dir}", f"run.run_dir={cfg.run.run_dir}", *TRAIN,
                                       *FILES_TASK, f"task.labels={','.join(order)}"])
    with pytest.raises(ModelLoadError, match=rf"\({genres}\) but task 'mnli-genre' has \({', '.join(order)}\)"):
        evaluate_current(reordered, title="wrong")
    assert not (ModelRegistry(cfg.run.run_dir).root.parent / "reports" / "wrong.json").exists()
    # a model folder given on the command line: one line, exit code 1, both label sets
    path = ModelRegistry(cfg.run.run_dir).path(info["version"])
    capsys.readouterr()
    code = main(["evaluate", "--run-dir", cfg.run.run_dir, "--data-dir", str(data_dir), "--model", str(path),
                 *[a for s in (*TRAIN[1:], *FILES_TASK, f"task.labels={','.join(order)}") for a in ("--set", s)]])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("hildif evaluate: error: ") and f"trained with the labels ({genres})" in err
    assert f"({', '.join(order)})" in err


def test_configured_labelstudio_tasks_say_what_they_need(tmp_path):
    from hildif.tasks import TaskError, load_configured_task

    export = [{"id": i, "data": {"text": f"passage number {i}"}, "annotations": [
        {"id": i, "completed_by": 1, "result": [{"from_name": "genre", "to_name": "passage", "type": "choices",
                                                 "value": {"choices": [GENRES[i % 2]]}}]}]} for i in range(1, 9)]
    (tmp_path / "export.json").write_text(json.dumps(export))
    base = [f"data.data_dir={tmp_path}", "task.source=labelstudio", "task.name=genre", "task.heldout_fraction=0"]
    with pytest.raises(TaskError, match=r"task.project_id=7 names a Label Studio project: fetch it through Label "
                                        r"Studio"):
        load_configured_task(load_config(overrides=[*base, "task.project_id=7"]))
    with pytest.raises(TaskError, match=r"read with their project's label config: set task.project_id"):
        load_configured_task(load_config(overrides=[*base, "task.files=export.json"]))
    # export files read without their project: the task section names the text, the Choices and the labels
    named = load_config(overrides=[*base, "task.files=export.json", "task.text=text", "task.label=genre",
                                   f"task.labels={','.join(GENRES)}"])
    data = load_configured_task(named)
    assert data.task.labels == GENRES and data.task.text_fields == ("text",)
    assert [(e.id, e.label) for e in data.train] == [(f"ls-{i}", i % 2) for i in range(1, 9)]


# ---------------------------------------------------------------------------------------------- Label Studio
KEY_ENV = "HILDIF_TEST_FIT_LS_KEY"


@pytest.fixture(scope="module")
def genre_project(label_studio, data_dir):
    """32 premises taken in turn from the five genres, annotated by three users (own_project_env.genre_votes: 24
    get a label, 8 of them with a disagreement kept as metadata; 4 ties and 4 unannotated tasks get none)."""
    from hildif.labelstudio.client import LabelStudioClient

    client = LabelStudioClient(label_studio.url, label_studio.admin_token)
    rows = genre_rows(data_dir, 32, balanced=True)
    pid, ids = build_genre_project(client, rows, title="Genre of MNLI premises (FIT)")
    return client, pid, ids, rows


@pytest.mark.labelstudio
def test_hildif_train_and_evaluate_on_a_label_studio_project(genre_project, label_studio, data_dir, tmp_path,
                                                             monkeypatch, capsys):
    from hildif.cli import main
    from hildif.labelstudio.export import load_project_task
    from hildif.model.loading import load_current

    client, pid, ids, rows = genre_project
    monkeypatch.setenv(KEY_ENV, label_studio.admin_token)
    overrides = [*TRAIN, "train.max_steps=10", "train.batch_size=8", "task.source=labelstudio",
                 "task.name=genre-ls", f"task.project_id={pid}", "task.heldout_fraction=0.3",
                 "task.slices=disagreement", f"labelstudio.api_key_env={KEY_ENV}"]
    args = ["--run-dir", str(tmp_path / "run"), "--data-dir", str(data_dir), "--ls-url", label_studio.url,
            *[a for s in overrides for a in ("--set", s)]]
    assert main(["train", "--no-eval", *args]) == 0
    assert "trained model version" in capsys.readouterr().out

    cfg = load_config(overrides=[f"data.data_dir={data_dir}", f"run.run_dir={tmp_path / 'run'}", *overrides,
                                 f"labelstudio.url={label_studio.url}"])
    data = load_project_task(cfg, client)  # what the command fetched, fetched again here
    assert data.task.labels == GENRES and data.task.text_fields == ("text",) and data.task.label_field == "genre"
    assert len(data.train) + len(data.heldout) == 24 and data.heldout and data.train
    assert {e.metadata["ls_task_id"] for e in data.train + data.heldout} == {
        ids[n] for n in range(32) if n % 8 not in (5, 7)}
    loaded = load_current(cfg)
    meta = json.loads((ModelRegistry(cfg.run.run_dir).path(loaded.version) / "hildif.json").read_text())
    assert meta["task"]["source"] == "labelstudio" and meta["task"]["project_id"] == pid
    assert meta["task"]["labels"] == list(GENRES) and loaded.classifier.label_names == GENRES
    assert (meta["task"]["train"], meta["task"]["heldout"]) == (len(data.train), len(data.heldout))

    assert main(["evaluate", "--title", "genre-ls", *args]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "run" / "reports" / "genre-ls.json").read_text())
    table = check_report(report, loaded.classifier, data, "disagreement")
    assert set(table["by_slice"]["disagreement"]) <= {"true", "false"}
    assert sum(c["n"] for c in table["by_slice"]["disagreement"].values()) == len(data.heldout)
    assert report["task"]["project_id"] == pid and f"task genre-ls: accuracy {table['accuracy']} %" in printed
    assert (tmp_path / "run" / "reports" / "genre-ls.png").exists()

    # a project that does not exist: one line naming task.project_id, exit code 1
    missing = [a if a != f"task.project_id={pid}" else "task.project_id=987654" for a in args]
    assert main(["train", *missing]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "hildif train: error: Label Studio project 987654 does not exist (task.project_id)"
