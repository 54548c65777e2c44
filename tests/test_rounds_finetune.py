"""The one fine-tuning step (hildif.rounds.finetune): rehearsal on the real MNLI training rows, the fine-tuning set's
parts; the promotion gate's decisions on metric dicts; the round report's metric table. No server, no model."""

from __future__ import annotations

from collections import Counter

import pytest

from hildif.config import FineTuneConfig, load_config
from hildif.data.example import Example
from hildif.rounds.finetune import (
    CONTRAST_BINS, FineTuneError, build_finetuning_set, contrast_rows, overlap_bin, rehearsal_counts, rehearsal_rows,
)
from hildif.rounds.gate import decide


# the round's default set adds construction pairs and rehearsal; these tests build sets one part at a time
PLAIN = ("feedback.constructions=", "finetune.rehearsal_ratio=0")

@pytest.fixture(scope="module")
def pool(data_dir):
    from hildif.config import DataConfig
    from hildif.data.splits import load_train

    rows = load_train(DataConfig(data_dir=str(data_dir), max_train_examples=600))
    assert 0 < sum(e.label for e in rows) < len(rows)
    return rows


def _labels(rows):
    c = Counter(e.label for e in rows)
    return {0: c.get(0, 0), 1: c.get(1, 0)}


# ---------------------------------------------------------------------------------------------- rehearsal
def test_rehearsal_counts_per_balance_mode_sum_to_n():
    pool, current = {0: 600, 1: 300}, {0: 40, 1: 0}
    assert rehearsal_counts(90, "train", pool=pool, current=current) == {0: 60, 1: 30}
    assert rehearsal_counts(91, "train", pool=pool, current=current) == {0: 61, 1: 30}  # largest remainder
    assert rehearsal_counts(91, "balanced", pool=pool, current=current) == {0: 46, 1: 45}
    assert rehearsal_counts(10, "match", pool=pool, current=current) == {0: 10, 1: 0}
    assert rehearsal_counts(30, "complement", pool=pool, current=current) == {0: 0, 1: 30}
    assert rehearsal_counts(50, "complement", pool=pool, current=current) == {0: 5, 1: 45}  # 45 + 45
    assert rehearsal_counts(0, "train", pool=pool, current=current) == {0: 0, 1: 0}
    with pytest.raises(FineTuneError, match="rehearsal_balance='even'"):
        rehearsal_counts(5, "even", pool=pool, current=current)


@pytest.mark.parametrize("balance", ["train", "balanced", "match", "complement"])
def test_rehearsal_keeps_the_class_balance_is_seeded_and_excludes_the_rated_examples(pool, balance):
    rated = [e for e in pool[:40]]
    current = [e for e in rated if e.label == 0] * 3  # a set pushed towards non-entailment, as a round's often is
    rows, stats = rehearsal_rows(pool, 101, balance, current=current, exclude=rated, seed=7)
    remaining = [e for e in pool if e.id not in {r.id for r in rated}]
    expected = rehearsal_counts(101, balance, pool=_labels(remaining), current=_labels(current))
    assert _labels(rows) == expected and len(rows) == 101  # exact counts per class
    assert stats["per_class"] == {"non-entailment": expected[0], "entailment": expected[1]} and stats["short"] == {}
    assert stats["excluded"] == 40 and stats["pool"] == len(pool)
    assert not {r.id for r in rows} & {e.id for e in rated}
    assert len({r.id for r in rows}) == 101 and all(r.metadata["rehearsal"] is True for r in rows)
    assert not any("rehearsal" in e.metadata for e in pool)  # the pool's rows are not modified
    again, _ = rehearsal_rows(pool, 101, balance, current=current, exclude=rated, seed=7)
    assert [r.id for r in again] == [r.id for r in rows]
    other, _ = rehearsal_rows(pool, 101, balance, current=current, exclude=rated, seed=8)
    assert [r.id for r in other] != [r.id for r in rows]
    if balance == "train":
        share = expected[1] / 101
        assert abs(share - _labels(remaining)[1] / len(remaining)) < 0.01
    if balance == "balanced":
        assert abs(expected[0] - expected[1]) <= 1
    if balance == "complement":
        union = {c: _labels(current)[c] + expected[c] for c in (0, 1)}
        assert expected[1] > expected[0] and abs(union[0] - union[1]) <= 1  # the union is balanced


def test_contrast_rehearsal_matches_each_examples_overlap_with_the_other_class(pool):
    from hildif.data.heuristics import overlap_rate

    rated = pool[:40]
    # a round's typical set: high-overlap non-entailment (rated) and low-overlap entailment, repeated
    high = [e for e in pool[40:] if e.label == 0 and overlap_rate(e.premise, e.hypothesis) >= 0.8][:6]
    low = [e for e in pool[40:] if e.label == 1 and overlap_rate(e.premise, e.hypothesis) < 0.4][:3]
    assert len(high) == 6 and len(low) == 3
    current = high * 2 + low * 2  # 18 examples
    rows, stats = rehearsal_rows(pool, 27, "contrast", current=current, exclude=rated + high + low, seed=3)
    assert len(rows) == 27 and stats["short"] == {} and stats["balance"] == "contrast"
    assert all(r.metadata["rehearsal"] is True for r in rows) and len({r.id for r in rows}) == 27
    assert not {r.id for r in rows} & {e.id for e in rated + high + low}
    # every example once (18), then 9 drawn: the classes flip, and each level asked for is the example's own
    assert stats["per_class"]["entailment"] + stats["per_class"]["non-entailment"] == 27
    assert stats["per_class"]["entailment"] >= 12 and stats["per_class"]["non-entailment"] >= 6
    assert _labels(rows) == {0: stats["per_class"]["non-entailment"], 1: stats["per_class"]["entailment"]}
    top = f"{(CONTRAST_BINS - 1) / CONTRAST_BINS:.1f}-1.0"
    assert stats["per_level"][top] == stats["per_class"]["entailment"]  # the high-overlap examples ask at the top
    # the pool has enough rows at each level here: every row sits at the level of the example that asked for it
    assert stats["moved"] == 0
    ent_rows = [r for r in rows if r.label == 1]
    assert all(overlap_bin(r) == CONTRAST_BINS - 1 for r in ent_rows)  # high-overlap entailment rows
    assert all(overlap_bin(r) in {overlap_bin(e) for e in low} for r in rows if r.label == 0)
    again, _ = rehearsal_rows(pool, 27, "contrast", current=current, exclude=rated + high + low, seed=3)
    assert [r.id for r in again] == [r.id for r in rows]
    other, _ = rehearsal_rows(pool, 27, "contrast", current=current, exclude=rated + high + low, seed=4)
    assert [r.id for r in other] != [r.id for r in rows]


def test_contrast_rehearsal_moves_to_the_nearest_level_then_runs_short(pool):
    high_ent = [e for e in pool if e.label == 1 and overlap_bin(e) == CONTRAST_BINS - 1][:2]
    next_ent = [e for e in pool if e.label == 1 and overlap_bin(e) == CONTRAST_BINS - 2][:2]
    low_ent = [e for e in pool if e.label == 1 and overlap_bin(e) == 0][:1]
    asking = [e for e in pool if e.label == 0 and overlap_bin(e) == CONTRAST_BINS - 1][:1]
    available = high_ent + low_ent + next_ent
    rows, stats = contrast_rows(available, 6, current=asking, seed=0)
    # two at the example's own level, then the nearest level's two, then the far one, then nothing is left
    assert [overlap_bin(r) for r in rows] == [CONTRAST_BINS - 1] * 2 + [CONTRAST_BINS - 2] * 2 + [0]
    assert stats["moved"] == 3 and stats["short"] == {"entailment": 1} and stats["requested"] == 6
    assert contrast_rows(available, 0, current=asking, seed=0)[0] == []
    assert contrast_rows(available, 3, current=[], seed=0)[0] == []


def test_rehearsal_short_of_a_class_says_so(pool):
    only_ent = [e for e in pool if e.label == 1][:10]
    rows, stats = rehearsal_rows(only_ent, 20, "balanced", current=[], exclude=[], seed=0)
    assert _labels(rows) == {0: 0, 1: 10} and stats["short"] == {"non-entailment": 10}


def test_fine_tuning_set_with_rehearsal(pool):
    cfg = load_config(overrides=[*PLAIN, "feedback.copies_per_point=2", "finetune.rehearsal_ratio=1.5",
                                 "finetune.rehearsal_balance=balanced"])
    rated = [Example(e.id, e.premise, e.hypothesis, 0, e.metadata) for e in pool[:3]]  # all non-entailment
    scored = [(rated[0], 5.0), (rated[1], 2.0), (rated[2], None)]
    fts = build_finetuning_set(scored, cfg, train_pool=pool, augmentation=False, no_augmentation="repeat")
    core = 10 + 4
    assert fts.stats["parts"] == {"rated": 2, "copies": core - 2, "rehearsal": 21} and fts.stats["size"] == core + 21
    assert [e.id for e in fts.examples[:core]] == [rated[0].id] * 10 + [rated[1].id] * 4
    extra = fts.examples[core:]
    assert all(e.metadata["rehearsal"] for e in extra) and not {e.id for e in extra} & {e.id for e in rated}
    assert _labels(extra) in ({0: 11, 1: 10}, {0: 10, 1: 11})
    assert fts.stats["labels"] == {"non-entailment": core + _labels(extra)[0], "entailment": _labels(extra)[1]}
    assert fts.stats["rehearsal"]["ratio"] == 1.5
    overlap = fts.stats["overlap_by_label"]  # the rated part alone and with the rehearsal rows
    assert {k: v["n"] for k, v in overlap["with_rehearsal"].items()} == fts.stats["labels"]
    assert overlap["without_rehearsal"] == {"non-entailment": {"n": core, "mean": overlap["without_rehearsal"][
        "non-entailment"]["mean"]}}
    same = build_finetuning_set(scored, cfg, train_pool=pool, augmentation=False)
    assert [e.id for e in same.examples] == [e.id for e in fts.examples]  # seeded
    shifted = build_finetuning_set(scored, cfg, train_pool=pool, augmentation=False, seed=1)
    assert [e.id for e in shifted.examples[core:]] != [e.id for e in extra]  # the cell's seed changes the draw
    with pytest.raises(FineTuneError, match="needs the training pool"):
        build_finetuning_set(scored, cfg, augmentation=False)
    off = build_finetuning_set(scored, load_config(overrides=[*PLAIN, "feedback.copies_per_point=2"]), augmentation=False)
    assert off.stats["parts"]["rehearsal"] == 0 and "rehearsal" not in off.stats


# ---------------------------------------------------------------------------------------------- the gate
def _ev(mnli, hans):
    return {"mnli": {"accuracy": mnli}, "hans": {"accuracy": hans}}


def test_gate_on_metrics():
    ft = FineTuneConfig()  # defaults: MNLI may fall 1 point, HANS must not fall, forward-only lineage
    kw = dict(round_id="r1", base_version="v0", current_version="v0", versions={})
    assert decide(_ev(80.0, 50.0), _ev(79.0, 50.0), ft, **kw).serve  # exactly at the threshold
    no = decide(_ev(80.93, 50.58), _ev(76.16, 49.28), ft, **kw)  # the round
    assert not no.serve and len(no.reasons) == 2
    assert "MNLI fell 4.77 points (80.93 -> 76.16)" in no.reasons[0] and "gate_max_mnli_drop = 1" in no.reasons[0]
    assert "HANS changed -1.30 points" in no.reasons[1] and no.checks["hans"]["ok"] is False
    only_hans = decide(_ev(80.0, 50.0), _ev(80.5, 49.9), ft, **kw)
    assert not only_hans.serve and only_hans.reasons[0].startswith("HANS")
    off = FineTuneConfig(gate_max_mnli_drop=None, gate_min_hans_gain=None)
    assert decide(_ev(80.0, 50.0), _ev(60.0, 40.0), off, **kw).serve
    assert decide(_ev(80.0, 50.0), _ev(60.0, 50.0), FineTuneConfig(gate_max_mnli_drop=-1), **kw).serve
    tolerant = FineTuneConfig(gate_max_mnli_drop=5.0, gate_min_hans_gain=-2.0)
    assert decide(_ev(80.93, 50.58), _ev(76.16, 49.28), tolerant, **kw).serve
    assert decide({}, {}, ft, **kw).checks["mnli"]["skipped"] == "MNLI not evaluated"


def test_gate_lineage_the_served_model_only_moves_forward():
    ft = FineTuneConfig()
    versions = {"v1": {"parent": "v0", "round_id": "r1"}, "w": {"parent": "v1", "round_id": "r2"}}
    good = _ev(80.0, 50.0)
    ok = lambda current: decide(good, good, ft, round_id="r1", base_version="v0", current_version=current,  # noqa
                                versions=versions)
    assert ok(None).serve and ok("v0").serve  # nothing served yet; the round's base
    assert ok("v1").serve  # an earlier sync of this round, from the same base: a re-sync replaces it
    late = ok("w")  # r2 was trained from r1's model: a late r1 sync must not roll back to a child of v0
    assert not late.serve and "the served model w (made by round r2)" in late.reasons[0]
    assert late.checks["lineage"] == {"enabled": True, "served": "w", "base": "v0", "ok": False}
    assert decide(good, good, FineTuneConfig(gate_lineage=False), round_id="r1", base_version="v0",
                  current_version="w", versions=versions).serve


# ---------------------------------------------------------------------------------------------- the report
def test_round_report_metric_table_shows_class_accuracies_not_counts():
    from hildif.rounds.report import metrics_table

    by_h = lambda ent, non: {"lexical_overlap": {"entailment": ent, "non-entailment": non, "n": 10000}}  # noqa
    before = {"mnli_accuracy": 80.93, "hans_accuracy": 50.58, "hans_by_heuristic": by_h(97.42, 1.78)}
    after = {"mnli_accuracy": 76.16, "hans_accuracy": 49.28, "hans_by_heuristic": by_h(91.18, 9.14)}
    table = metrics_table(before, after)
    assert table.rows == [
        ["MNLI dev", "80.93", "76.16", "-4.77"],
        ["HANS (all)", "50.58", "49.28", "-1.30"],
        ["HANS lexical overlap, entailment", "97.42", "91.18", "-6.24"],
        ["HANS lexical overlap, non-entailment", "1.78", "9.14", "+7.36"],
    ]
    lines = table.lines()
    assert lines[0] == "Accuracy in %, 2 decimals; change = after - before, in points." and lines[1] == ""
    assert lines[2] == "| metric | before | after | change |" and lines[4] == "| MNLI dev | 80.93 | 76.16 | -4.77 |"
    assert not any("10000" in line for line in lines)


def test_syntactic_pairs_join_the_set_before_rehearsal(pool):
    """feedback.syntactic on (real spaCy parser): the transformed pairs follow the rated examples and come before the
    rehearsal rows, whose number counts them; off, the set has none."""
    rated = [Example("r1", "The doctor advised the lawyers in the morning .", "The doctor advised someone .", 1),
             Example("r2", "The judges praised the young artist .", "The artist was young .", 1)]
    scored = [(rated[0], 3.0), (rated[1], 2.0)]
    cfg = load_config(overrides=[*PLAIN, "feedback.copies_per_point=1", "feedback.syntactic=swap,passive,clause",
                                 "feedback.syntactic_per_example=3", "finetune.rehearsal_ratio=1.0"])
    fts = build_finetuning_set(scored, cfg, train_pool=pool, augmentation=False, no_augmentation="once")
    syn = [e for e in fts.examples if "syntactic" in e.metadata]
    assert fts.stats["parts"]["syntactic"] == len(syn) == 6
    assert {(e.hypothesis, e.label) for e in syn if e.metadata["transformed_from"] == "r1"} == {
        ("The lawyers advised the doctor .", 0), ("The lawyers were advised by the doctor .", 1),
        ("The doctor advised the lawyers .", 1)}
    kinds = ["rated" if e.id in ("r1", "r2") else "syn" if "syntactic" in e.metadata else "rehearsal"
             for e in fts.examples]
    assert kinds == ["rated"] * 2 + ["syn"] * 6 + ["rehearsal"] * 8
    off = build_finetuning_set(scored, load_config(overrides=[*PLAIN, "feedback.copies_per_point=1"]),
                               augmentation=False, no_augmentation="once")
    assert "syntactic" not in off.stats["parts"] and len(off.examples) == 2


def test_the_sets_word_overlap_per_class_is_reported_and_a_gap_named():
    from hildif.rounds.finetune import overlap_by_label
    from hildif.rounds.report import overlap_lines

    swap = Example("s", "the cat saw the dog", "the dog saw the cat", 0)  # overlap 1.0, non-entailment
    half = Example("h", "a man is eating", "a man is sleeping now", 1)  # 3 of 5 words: 0.6, entailment
    fts = build_finetuning_set([(swap, 2.0), (half, 1.0)], _cfg_plain(), augmentation=False)
    assert fts.stats["overlap_by_label"] == {
        "without_rehearsal": {"non-entailment": {"n": 2, "mean": 1.0}, "entailment": {"n": 1, "mean": 0.6}},
        "with_rehearsal": None}
    lines = overlap_lines(fts.stats["overlap_by_label"])
    assert lines[0].startswith("- Word overlap per class, the rated examples and their copies")
    assert "non-entailment 1.00 (n = 2), entailment 0.60 (n = 1)" in lines[0]
    assert "cue for non-entailment" in lines[0] and "rehearsal_balance = contrast" in lines[0]
    assert lines[-1] == ""
    # close means: reported, no cue named; a single-text task (no hypothesis): nothing
    near = overlap_lines({"without_rehearsal": {"non-entailment": {"n": 3, "mean": 0.75},
                                                "entailment": {"n": 3, "mean": 0.7}}, "with_rehearsal": None})
    assert len(near) == 2 and "cue" not in near[0]
    assert overlap_by_label([Example("t", "a review", None, 1)]) is None and overlap_lines(None) == []
    assert "overlap_by_label" not in build_finetuning_set([(Example("t", "a review", None, 1), 5.0)], _cfg_plain(),
                                                          augmentation=False).stats


def _cfg_plain():
    return load_config(overrides=[*PLAIN, "feedback.copies_per_point=1"])
