"""Anchor selection: one strategy class per way of picking anchors, one select_anchors, a round's recorded form."""

from __future__ import annotations

import random

import pytest

from hildif.data.example import Example
from hildif.influence.anchors import (ANCHOR_METHODS, AnchorSelection, AnchorSelectionError, PairIdAnchors,
                                      PaperAnchors, RandomAnchors, RuleAnchors, UnionAnchors, select_anchors)

POOL = [
    Example("lo1", "The doctor advised the judge.", "The judge advised the doctor.", 0, {"heuristic": "lexical_overlap"}),
    Example("sub1", "The doctor near the actor danced.", "The actor danced.", 0, {"heuristics": ["subsequence"]}),
    Example("e1", "A man plays the guitar on stage.", "A man plays.", 1),
    Example("e2", "Two dogs run in the park.", "Animals are outside.", 1),
    Example("n1", "A woman sleeps.", "Nobody is asleep.", 0),
]


def ids(examples):
    return [e.id for e in examples]


def test_each_strategy_picks_from_a_given_pool():
    assert ids(select_anchors(PaperAnchors(2), POOL)) == ["lo1", "sub1"]  # the first n, in file order
    assert ids(select_anchors(PairIdAnchors(("e2", "lo1")), POOL)) == ["e2", "lo1"]  # the given order
    drawn = select_anchors(RandomAnchors(3, seed=5), POOL)
    assert ids(drawn) == ids(random.Random(5).sample(POOL, 3)) == ids(select_anchors(RandomAnchors(3, seed=5), POOL))
    assert sorted(ids(select_anchors(RandomAnchors(50), POOL))) == sorted(ids(POOL))  # more than the pool: all
    assert ids(select_anchors(RuleAnchors("label:non-entailment"), POOL)) == ["lo1", "sub1", "n1"]  # n None: all
    assert ids(select_anchors(RuleAnchors("heuristic:subsequence"), POOL)) == ["sub1"]  # metadata list
    assert ids(select_anchors(RuleAnchors("heuristic:lexical_overlap+label:non-entailment"), POOL)) == ["lo1"]
    two = select_anchors(RuleAnchors("label:entailment+all", n=1, seed=3), POOL)
    assert len(two) == 1 and two[0].label == 1


def test_union_keeps_each_anchor_once_in_order_and_empty_selections_fail():
    union = UnionAnchors((PairIdAnchors(("n1", "e1")), RuleAnchors("label:entailment")))
    assert ids(select_anchors(union, POOL)) == ["n1", "e1", "e2"]
    with pytest.raises(AnchorSelectionError, match="no anchor selected"):
        select_anchors(RuleAnchors("heuristic:constituent"), POOL)
    with pytest.raises(AnchorSelectionError, match="no anchor selected"):
        select_anchors(PaperAnchors(3), [])
    with pytest.raises(ValueError, match="needs a pool or the data configuration"):
        select_anchors(PaperAnchors(3))


def test_bad_requests_fail_when_the_strategy_is_made_naming_the_fault(tmp_path):
    with pytest.raises(AnchorSelectionError, match="unknown anchor rule 'genre:fiction'"):
        RuleAnchors("label:entailment+genre:fiction")
    with pytest.raises(AnchorSelectionError, match="unknown anchor rule 'label:maybe'"):
        RuleAnchors("label:maybe")
    with pytest.raises(AnchorSelectionError, match="needs a rule"):
        RuleAnchors("")
    with pytest.raises(AnchorSelectionError, match="needs pair IDs or a pair-ids file"):
        PairIdAnchors()
    with pytest.raises(AnchorSelectionError, match="pairIDs not found in the pool: nope, gone"):
        select_anchors(PairIdAnchors(("e1", "nope", "gone")), POOL)
    f = tmp_path / "ids.txt"
    f.write_text("e1\nsecret-looking-id\n")
    with pytest.raises(AnchorSelectionError, match=r"line\(s\) 2 are not in") as err:
        select_anchors(PairIdAnchors(ids_file=str(f)), POOL)
    assert "secret-looking-id" not in str(err.value)  # a file's lines are not echoed


def test_misclassified_runs_the_model(tiny_clf):
    rule = RuleAnchors("misclassified")
    assert rule.needs_classifier and not RuleAnchors("label:entailment").needs_classifier
    assert UnionAnchors((PaperAnchors(1), rule)).needs_classifier and not PaperAnchors(1).needs_classifier
    with pytest.raises(AnchorSelectionError, match="needs the classifier"):
        select_anchors(rule, POOL)
    wrong = [e.id for e, p in zip(POOL, tiny_clf.predict(POOL).argmax(1)) if int(p) != e.label]
    if wrong:
        assert ids(select_anchors(rule, POOL, classifier=tiny_clf)) == wrong
    else:
        with pytest.raises(AnchorSelectionError, match="no anchor selected"):
            select_anchors(rule, POOL, classifier=tiny_clf)


def test_each_strategy_has_the_pool_a_round_draws_from(data_dir):
    from hildif.config import DataConfig
    from hildif.data.splits import load_anchors, load_dev

    data = DataConfig(data_dir=str(data_dir))
    handpicked, dev = load_anchors(data), load_dev(data)
    assert ids(PaperAnchors(5).pool(data)) == ids(handpicked)
    assert ids(select_anchors(PaperAnchors(2), data=data)) == ids(handpicked[:2])
    assert ids(RandomAnchors(3).pool(data)) == ids(dev)
    merged = PairIdAnchors(("x",)).pool(data)
    assert ids(merged[: len(handpicked)]) == ids(handpicked) and len(set(ids(merged))) == len(merged)
    chosen = select_anchors(PairIdAnchors(("98315c", dev[0].id)), data=data)
    assert chosen[0].metadata["heuristics"] == ["lexical_overlap", "reverse_ordering"]  # the anchors file's row
    plain = RuleAnchors("label:entailment").pool(data)
    assert "heuristics" not in plain[0].metadata  # only heuristic rules label the pool
    labelled = RuleAnchors("heuristic:negation").pool(data)
    assert ids(labelled) == ids(dev) and all("heuristics" in e.metadata for e in labelled)
    negated = select_anchors(RuleAnchors("heuristic:negation", n=4, seed=1), data=data)
    assert len(negated) == 4 and all("negation" in e.metadata["heuristics"] for e in negated)


def test_a_rounds_recorded_selection_names_its_strategy():
    assert ANCHOR_METHODS == ("paper", "random", "pairids", "rule", "project")
    assert AnchorSelection("paper", n=3).strategy() == PaperAnchors(3)
    assert AnchorSelection("random", n=2, seed=7).strategy() == RandomAnchors(2, 7)
    assert AnchorSelection("pairids", pair_ids=["a", "b"]).strategy() == PairIdAnchors(("a", "b"))
    assert AnchorSelection("pairids", pair_ids_file="f.txt").strategy() == PairIdAnchors((), "f.txt")
    assert AnchorSelection("rule", n=4, seed=2, rule="misclassified").strategy() == RuleAnchors("misclassified", 4, 2)
    sel = AnchorSelection("rule", n=4, rule="label:entailment")
    assert AnchorSelection.from_dict({**sel.to_dict(), "unknown": 1}) == sel
    with pytest.raises(AnchorSelectionError,
                       match=r"method 'clever' unknown \(known: paper, random, pairids, rule, project\)"):
        AnchorSelection("clever")
    with pytest.raises(AnchorSelectionError, match="must be >= 1"):
        AnchorSelection("paper", n=0)
