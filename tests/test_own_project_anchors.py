"""A round on a team's own task, the parts that need no Label Studio: anchors from the project (each rule), the pool
without the anchors, the rating template and tasks generated from the task, rehearsal over the task's labels and the
promotion gate on its held-out set. The model is the real tiny BERT (five genres); the examples are genuine MNLI
premises with their genre, with annotators' votes as a Label Studio export gives them
(:mod:`hildif.tasks.labelstudio_export`)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from hildif.data.example import Example
from hildif.influence.anchors import AnchorSelection, AnchorSelectionError, ProjectAnchors, select_anchors

GENRES = ("fiction", "government", "slate", "telephone", "travel")


def _voted(i: int, text: str, label: int, votes: dict[str, int]) -> Example:
    top = max(votes.values())
    return Example(f"ls-{100 + i}", text, None, label, {
        "ls_task_id": 100 + i, "votes": votes, "annotators": sum(votes.values()),
        "agreement": round(top / sum(votes.values()), 4), "disagreement": len(votes) > 1})


@pytest.fixture(scope="module")
def pool(data_dir):
    with gzip.open(data_dir / "mnli/train_subset_original_text.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [r for r in map(json.loads, f) if r.get("genre")][:40]
    out = []
    for i, r in enumerate(rows):
        g = r["genre"]
        other = GENRES[(GENRES.index(g) + 1) % 5]
        third = GENRES[(GENRES.index(g) + 2) % 5]
        votes = {g: 3}
        if i in (3, 11):
            votes = {g: 2, other: 1}  # agreement 2/3
        if i == 7:
            votes = {g: 1, other: 1, third: 1}  # three different labels: the most disagreement (the label: g)
        if i == 20:
            votes = {g: 3, other: 1}  # agreement 3/4
        out.append(_voted(i, r["sentence1"], GENRES.index(g), votes))
    return out


@pytest.fixture(scope="module")
def genre_clf(pool):
    """The tiny BERT with five genre labels over the pool's texts, trained a little so its predictions differ."""
    from hildif.config import LoopConfig
    from hildif.model.tiny import build_tiny_classifier
    from hildif.model.training import train

    clf = build_tiny_classifier(pool, seed=0, num_labels=5, label_names=GENRES)
    train(clf, pool[:20], LoopConfig(epochs=2, batch_size=8, learning_rate=1e-3, seed=0))
    return clf


def ids(examples):
    return [e.metadata["ls_task_id"] for e in examples]


def test_disagreement_picks_the_tasks_annotators_disagree_on_most_first(pool):
    picked = select_anchors(ProjectAnchors("disagreement", n=3), pool)
    assert ids(picked) == [107, 103, 111]  # 1/3 agreement first, then the two 2/3 tasks in pool order
    assert ids(select_anchors(ProjectAnchors("disagreement", n=10), pool)) == [107, 103, 111, 120]
    agreeing = [e for e in pool if not e.metadata["disagreement"]]
    with pytest.raises(AnchorSelectionError, match="the annotators agree on all 36 annotated tasks"):
        select_anchors(ProjectAnchors("disagreement"), agreeing)
    with pytest.raises(AnchorSelectionError, match="carries its annotators' votes"):
        select_anchors(ProjectAnchors("disagreement"), [Example("x", "A text.", None, 0)])


def test_wrong_picks_the_most_confident_wrong_predictions(pool, genre_clf):
    probs = genre_clf.predict(pool)
    pred, top = probs.argmax(1), probs.max(1)
    wrong = [i for i, e in enumerate(pool) if pred[i] != e.label]
    assert 3 < len(wrong) < len(pool)  # the rule has something to choose from and something to leave
    picked = select_anchors(ProjectAnchors("wrong", n=3), pool, classifier=genre_clf)
    at = [pool.index(e) for e in picked]
    assert len(at) == 3 and all(pred[i] != pool[i].label for i in at)
    assert list(top[at]) == sorted(top[at], reverse=True)
    assert min(top[at]) >= max(top[i] for i in wrong if i not in at)  # none left out is more confidently wrong
    assert ProjectAnchors("wrong").needs_classifier
    with pytest.raises(AnchorSelectionError, match="need the classifier"):
        select_anchors(ProjectAnchors("wrong"), pool)
    right = [e for i, e in enumerate(pool) if pred[i] == e.label]
    with pytest.raises(AnchorSelectionError, match="agrees with the annotators on all"):
        select_anchors(ProjectAnchors("wrong"), right, classifier=genre_clf)


def test_uncertain_picks_the_lowest_top_probability(pool, genre_clf):
    probs = genre_clf.predict(pool)
    top = probs.max(1)
    picked = select_anchors(ProjectAnchors("uncertain", n=4), pool, classifier=genre_clf)
    at = [pool.index(e) for e in picked]
    assert list(top[at]) == sorted(top[at])
    assert max(top[at]) <= np.sort(top)[3] + 1e-7  # exactly the four least sure
    assert not ProjectAnchors("disagreement").needs_classifier and ProjectAnchors("uncertain").needs_classifier


def test_ids_picks_the_label_studio_tasks_in_order_and_names_missing_ones(pool):
    assert ids(select_anchors(ProjectAnchors("ids", task_ids=(120, 101, 139)), pool)) == [120, 101, 139]
    with pytest.raises(AnchorSelectionError, match=r"task id\(s\) 99, 5000 are not among"):
        select_anchors(ProjectAnchors("ids", task_ids=(101, 99, 5000)), pool)
    with pytest.raises(AnchorSelectionError, match="need Label Studio task ids"):
        ProjectAnchors("ids")
    with pytest.raises(AnchorSelectionError, match="unknown: expected one of disagreement, wrong, uncertain, ids"):
        ProjectAnchors("loudest")


def test_the_recorded_selection_round_trips_and_old_records_stay_equal():
    sel = AnchorSelection("project", n=2, project_anchors="ids", task_ids=[5, 6])
    assert sel.strategy() == ProjectAnchors("ids", 2, (5, 6))
    assert AnchorSelection.from_dict(sel.to_dict()) == sel
    assert "task_ids" not in AnchorSelection("paper").to_dict()  # rounds recorded before: the same selection
    with pytest.raises(AnchorSelectionError, match="project anchors are chosen among a task's own examples"):
        sel.strategy().pool(None)


def test_the_influence_pool_never_holds_an_anchor(pool):
    from hildif.rounds.task import influence_pool

    anchors = select_anchors(ProjectAnchors("disagreement", n=2), pool)
    same_text = Example("other-id", anchors[0].premise.upper() + " ", None, 0)  # the same text under another id
    candidates = influence_pool(pool + [same_text], anchors)
    assert len(candidates) == len(pool) - 2
    assert not {e.id for e in candidates} & {a.id for a in anchors} and same_text not in candidates


def test_rating_template_and_tasks_follow_the_task(pool):
    from hildif.labelstudio.convert import FROM_NAME, TO_NAME, text_task_payload
    from hildif.labelstudio.template import load_label_config, rating_tags, task_label_config
    from hildif.tasks import parse_label_config

    assert task_label_config(()) == load_label_config()  # MNLI: the shipped template, byte for byte
    single = task_label_config(["text"])
    texts = {t.key for t in parse_label_config(single).texts}
    assert texts == {"anchor_premise", "anchor_verdict", "example_premise", "example_verdict"}
    assert '<Header value="Text"' in single and "Premise" not in single and "hypothesis" not in single
    assert rating_tags(single) == rating_tags()  # same tag names, the same five choices
    pair = task_label_config(["question", "answer_text"])
    assert {t.key for t in parse_label_config(pair).texts} >= {"anchor_hypothesis", "example_hypothesis"}
    assert '<Header value="Question"' in pair and '<Header value="Answer text"' in pair
    anchor = pool[7]
    probs = [0.1, 0.6, 0.1, 0.1, 0.1]
    task = text_task_payload("r1", anchor, probs, pool[0], 2, -0.5, GENRES)
    data = task["data"]
    assert data["anchor_premise"] == anchor.premise and "anchor_hypothesis" not in data
    assert data["anchor_prediction"] == "government" and data["anchor_gold"] == GENRES[anchor.label]
    assert "(annotators: " in data["anchor_verdict"] and data["anchor_verdict"].endswith(
        "the model is right" if anchor.label == 1 else "the model is WRONG")
    assert data["example_verdict"].startswith(f"Training label {GENRES[pool[0].label]}; influence rank 2")
    assert (FROM_NAME, TO_NAME) == ("similarity", "anchor_premise")
    with pytest.raises(ValueError, match="expected 5 class probabilities"):
        text_task_payload("r1", anchor, [0.5, 0.5], pool[0], 1, 0.0, GENRES)


def test_rehearsal_draws_every_class_of_the_task(pool):
    from hildif.rounds.finetune import rehearsal_rows

    rows, stats = rehearsal_rows(pool, 10, "balanced", current=[], exclude=pool[:1], seed=0, label_names=GENRES)
    assert stats["per_class"] == {g: 2 for g in GENRES}
    assert sorted({r.label for r in rows}) == [0, 1, 2, 3, 4] and pool[0].id not in {r.id for r in rows}


def test_gate_holds_the_task_held_out_accuracy():
    from hildif.config import FineTuneConfig
    from hildif.rounds.gate import decide

    def res(acc):
        return {"task": {"accuracy": acc, "name": "genre"}}

    ft = FineTuneConfig(gate_max_mnli_drop=1.0)
    kept = decide(res(60.0), res(59.5), ft, round_id="r", base_version="b", current_version="b", versions={})
    assert kept.serve and kept.checks["task"]["drop"] == 0.5 and "hans" not in kept.checks
    fell = decide(res(60.0), res(55.0), ft, round_id="r", base_version="b", current_version="b", versions={})
    assert not fell.serve and "held-out accuracy of genre fell 5.00 points" in fell.reasons[0]


def test_round_start_command_line_takes_project_anchors():
    from hildif.cli import build_parser

    args = build_parser().parse_args(["round", "start", "--round", "r1", "--anchors", "project", "--project-anchors",
                                      "ids", "--task-ids", "31,47"])
    assert (args.anchors, args.project_anchors, args.task_ids) == ("project", "ids", [31, 47])
    assert build_parser().parse_args(["round", "start", "--round", "r1"]).project_anchors == "disagreement"
    for bad in ("31,x", "0", ","):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["round", "start", "--round", "r1", "--anchors", "project", "--task-ids", bad])
