"""A real task nobody here wrote: MNLI genre classification from the premise (one text, five classes).

``mnli/train_subset_original_text.jsonl.gz`` (12,861 genuine rows) carries a ``genre`` on 2,673 of them (fiction,
government, slate, telephone, travel); the others are unlabelled for this task. The test defines the task from the
JSONL file and from a CSV copy (other column names) through a column mapping, FITs a tiny model built in code,
evaluates per genre and per slice (the rows' NLI gold label), and explains one held-out anchor with FastIF.
"""

from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pytest

from hildif.config import DataConfig, InfluenceConfig, LoopConfig, TaskConfig
from hildif.tasks import TaskDefinition, load_task

SOURCE = "mnli/train_subset_original_text.jsonl.gz"
GENRES = ("fiction", "government", "slate", "telephone", "travel")


@pytest.fixture(scope="module")
def genre_task(data_dir):
    cfg = TaskConfig(source="files", name="mnli-genre", files=[SOURCE], text="sentence1", label="genre",
                     slices=["gold_label"], heldout_fraction=0.1, max_examples=800)
    return load_task(TaskDefinition.from_config(cfg), DataConfig(data_dir=str(data_dir)))


def test_genre_task_from_jsonl_and_from_a_csv_with_other_column_names(genre_task, data_dir, tmp_path):
    task = genre_task.task
    assert task.labels == GENRES and not task.is_pair and task.num_labels == 5
    assert len(genre_task.train) == 800 and 200 <= len(genre_task.heldout) <= 330
    assert set(genre_task.summary()["heldout_per_label"]) == set(GENRES)
    assert min(genre_task.summary()["heldout_per_label"].values()) >= 30
    skipped = {k: v for s in genre_task.stats for k, v in s.skipped.items()}
    assert skipped["unlabelled"] == 12861 - 2673 and skipped["duplicate"] > 0
    ex = genre_task.heldout[0]
    assert ex.hypothesis is None and "sentence2" in ex.metadata and "genre" not in ex.metadata
    # the same task from a CSV with its own column names
    with gzip.open(data_dir / SOURCE, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    path = tmp_path / "genre.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["passage", "category", "nli"])
        w.writerows([[r["sentence1"], r["genre"] or "", r["gold_label"]] for r in rows])
    cfg = TaskConfig(source="files", name="genre-csv", files=[str(path)], text="passage", label="category",
                     slices=["nli"], heldout_fraction=0.1, max_examples=800)
    from_csv = load_task(TaskDefinition.from_config(cfg), DataConfig())
    assert from_csv.task.labels == GENRES
    assert [(e.id, e.premise, e.label) for e in from_csv.heldout] == [(e.id, e.premise, e.label)
                                                                     for e in genre_task.heldout]
    assert [e.metadata["nli"] for e in from_csv.heldout] == [e.metadata["gold_label"] for e in genre_task.heldout]


def test_fit_evaluate_per_genre_and_explain_one_anchor(genre_task, tmp_path):
    from hildif.influence.explain import explain
    from hildif.model.evaluation import evaluate_task, write_report
    from hildif.model.tiny import build_tiny_classifier
    from hildif.model.training import train

    task, train_set, held = genre_task.task, genre_task.train, genre_task.heldout
    clf = build_tiny_classifier(train_set + held, num_labels=task.num_labels, label_names=task.labels, seed=0)
    before = evaluate_task(clf, held, slices=task.slices)
    result = train(clf, train_set, LoopConfig(learning_rate=5e-3, max_steps=60, batch_size=32, warmup_ratio=0.1,
                                              seed=0), progress=False)
    assert result.steps == 60
    assert np.mean(result.losses[-10:]) < np.mean(result.losses[:5]) - 0.1  # it learns
    after = evaluate_task(clf, held, slices=task.slices)
    table = after["task"]
    assert list(table["by_label"]) == list(GENRES) and table["labels"] == list(GENRES)
    assert sum(c["n"] for c in table["by_label"].values()) == table["n"] == len(held)
    assert set(table["by_slice"]["gold_label"]) <= {"entailment", "neutral", "contradiction"}
    assert sum(c["n"] for c in table["by_slice"]["gold_label"].values()) == len(held)
    assert table["accuracy"] > before["task"]["accuracy"] and table["accuracy"] > table["majority_class"]
    paths = write_report({"before": before, "after": after}, tmp_path, "genre")
    md = paths["markdown"].read_text()
    assert all(f"| {g} | {table['by_label'][g]['n']} |" in md for g in GENRES) and "### per gold_label" in md

    # FastIF for one held-out anchor: kNN candidates, s_test by CG, the most helpful training examples
    anchor = held[0]
    cfg = InfluenceConfig(k=200, top_p=10, params="fastif", solver="cg", hessian_samples=64)
    (exp,) = explain(clf, train_set, [anchor], cfg, progress=False)
    assert len(exp.probs) == 5 and exp.details["candidates"] == 200
    scores = [i.score for i in exp.influential]
    assert len(scores) == 10 and scores == sorted(scores) and np.isfinite(scores).all() and scores[0] < 0
    # the scores are the engine's: recompute two of them directly
    from hildif.influence.engine import InfluenceEngine

    engine = InfluenceEngine(clf, train_set, cfg)
    s = engine.s_test(engine.anchor_gradient(anchor)).s_test
    idx = [train_set.index(exp.influential[0].example), train_set.index(exp.influential[-1].example)]
    np.testing.assert_allclose(engine.influence(s, idx), [scores[0], scores[-1]], rtol=1e-3, atol=1e-6)
