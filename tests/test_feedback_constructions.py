"""Construction minimal pairs (hildif.feedback.augmentation.constructions) with the real spaCy parser on genuine
MNLI training sentences: every construction keeps or flips the label as its docstring says, and both labels come in
equal numbers within every construction and premise form."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from hildif.config import ConfigError
from hildif.data.example import ENTAILMENT, NON_ENTAILMENT, Example
from hildif.feedback.augmentation.constructions import (CONSTRUCTIONS, FACTIVE, NON_FACTIVE, NON_VERIDICAL,
                                                        VERIDICAL, construction_pairs)
from hildif.feedback.augmentation.syntactic import load_parser


@pytest.fixture(scope="module")
def nlp():
    return load_parser()


@pytest.fixture(scope="module")
def mnli_pairs(nlp, data_dir):
    from hildif.config import DataConfig
    from hildif.data import load_train

    rows = random.Random(0).sample(load_train(DataConfig(data_dir=str(data_dir))), 600)
    return rows, construction_pairs(rows, seed=0, parser=nlp)


def _pairs(result):
    """The minimal pairs as (entailment member, non-entailment member), checked adjacent."""
    ex = result.examples
    assert len(ex) % 2 == 0
    out = []
    for a, b in zip(ex[::2], ex[1::2]):
        assert (a.label, b.label) == (ENTAILMENT, NON_ENTAILMENT)
        assert a.metadata["construction"] == b.metadata["construction"]
        assert a.metadata["transformed_from"] == b.metadata["transformed_from"]
        out.append((a, b))
    return out


CASE = {"him": "he", "her": "she", "them": "they", "me": "i", "us": "we"}  # a pronoun changes case with its role


def _words(text: str) -> list[str]:
    return [CASE.get(w, w) for w in re.findall(r"[\w'()-]+", text.lower())]


def test_every_construction_fires_on_mnli_and_both_labels_balance_within_it(mnli_pairs):
    rows, result = mnli_pairs
    pairs = _pairs(result)
    per = Counter((e.metadata["construction"], e.label) for e in result.examples)
    fired = {c for c, _ in per}
    assert fired >= set(CONSTRUCTIONS) - {"modifier"}, fired  # modifier needs a subject with a PP: rare, tested below
    for c in fired:
        assert per[(c, ENTAILMENT)] == per[(c, NON_ENTAILMENT)] > 0
    # premise forms: within each construction, short (clause) premises and source premises balance too
    forms = Counter((e.metadata["construction"], e.premise in {r.premise for r in rows}, e.label)
                    for e in result.examples)
    for (c, is_source, label), n in forms.items():
        assert forms[(c, is_source, 1 - label)] == n
    # yield: far above the label-by-construction generator's 0.31 pairs per row
    assert result.stats["pairs"] / len(rows) > 0.4, result.stats
    assert len({(e.premise, e.hypothesis) for e in result.examples}) == len(result.examples)


def test_order_and_passive_keep_the_premise_and_swap_the_roles(mnli_pairs):
    rows, result = mnli_pairs
    source = {r.id: r for r in rows}
    checked = Counter()
    for ent, non in _pairs(result):
        c = ent.metadata["construction"]
        if c not in ("order", "swap", "passive", "voice", "active"):
            continue
        if c in ("order", "passive"):
            assert ent.premise == non.premise == source[ent.metadata["transformed_from"]].premise
        else:  # swap, voice, active: the clause alone (or its passive) is the premise
            assert ent.premise == non.premise and len(ent.premise.split()) <= 20
        if c == "swap":  # the clause itself is entailed, its swap is not: the same words, other roles
            assert ent.hypothesis == ent.premise != non.hypothesis
            assert sorted(_words(ent.hypothesis)) == sorted(_words(non.hypothesis))
            checked[c] += 1
            continue
        if c == "active":  # a passive premise; both hypotheses active, the roles kept or swapped
            assert " by " in ent.premise and " by " not in ent.hypothesis + non.hypothesis
            assert sorted(_words(ent.hypothesis)) == sorted(_words(non.hypothesis))
            be = {"was", "were", "by"}
            assert sorted(set(_words(ent.premise)) - be) == sorted(set(_words(ent.hypothesis)))
            assert ent.hypothesis != non.hypothesis
            checked[c] += 1
            continue
        be = {"was", "were"}  # the passive's auxiliary agrees with its new subject
        assert sorted(set(_words(ent.hypothesis)) - be) == sorted(set(_words(non.hypothesis)) - be)  # other roles
        assert ent.hypothesis != non.hypothesis
        if c == "order":
            # the entailed member is the premise's clause: every word of it is the premise's (a long noun phrase
            # is cut to its core)
            assert set(_words(ent.hypothesis)) <= set(_words(ent.premise))
        else:
            assert " by " in ent.hypothesis and " by " in non.hypothesis
            ent_agent = ent.hypothesis.rsplit(" by ", 1)[1]
            non_agent = non.hypothesis.rsplit(" by ", 1)[1]
            assert _words(ent_agent) != _words(non_agent)
        checked[c] += 1
    assert min(checked[c] for c in ("order", "swap", "passive", "voice", "active")) >= 5, checked


def test_frames_differ_in_one_word_that_decides_the_label(mnli_pairs):
    _, result = mnli_pairs
    seen = Counter()
    for ent, non in _pairs(result):
        c = ent.metadata["construction"]
        if c not in ("embedding", "adverbial", "coordination"):
            continue
        assert ent.hypothesis == non.hypothesis
        clause = " ".join(_words(ent.hypothesis))
        assert clause in " ".join(_words(ent.premise)) and clause in " ".join(_words(non.premise))
        e, n = " ".join(_words(ent.premise)), " ".join(_words(non.premise))
        if c == "embedding":
            assert any(f" {v} that " in f" {e} " for v in FACTIVE)
            assert any(f" {v} that " in f" {n} " for v in NON_FACTIVE)
            assert e.split(" that ", 1)[1] == n.split(" that ", 1)[1]
        elif c == "adverbial":
            assert any(e.startswith(v + " ") for v in VERIDICAL)
            assert any(n.startswith(v + " ") for v in NON_VERIDICAL)
        else:
            joints = [i for i in range(len(e)) if e.startswith(" and ", i)]
            assert any(e[:i] + " or " + e[i + 5:] == n for i in joints)
        seen[c] += 1
    assert min(seen.values()) >= 10 and len(seen) == 3, seen


def test_hand_checked_sentences(nlp):
    src = [Example("a", "The committee approved the new plan after a long debate.", "x", 0),
           Example("b", "The doctors near the lawyer visited the museum.", "x", 1),
           Example("c", "The lawyer did not see the doctor.", "x", 0),  # negated: no order or passive pair
           Example("d", "The senator met the bankers.", "x", 0)]  # symmetric verb: no swap
    res = construction_pairs(src, constructions=["order", "swap", "passive", "voice", "active", "modifier"], seed=0,
                             parser=nlp)
    got = {(e.metadata["construction"], e.label, e.premise, e.hypothesis) for e in res.examples}
    p = src[0].premise
    assert ("order", 1, p, "The committee approved the new plan .") in got
    assert ("order", 0, p, "The new plan approved the committee .") in got
    assert ("passive", 1, p, "The new plan was approved by the committee .") in got
    assert ("passive", 0, p, "The committee was approved by the new plan .") in got
    assert ("voice", 1, "The committee approved the new plan .", "The new plan was approved by the committee .") in got
    assert ("swap", 1, "The committee approved the new plan .", "The committee approved the new plan .") in got
    assert ("swap", 0, "The committee approved the new plan .", "The new plan approved the committee .") in got
    assert ("active", 1, "The new plan was approved by the committee .", "The committee approved the new plan .") in got
    assert ("active", 0, "The new plan was approved by the committee .", "The new plan approved the committee .") in got
    q = src[1].premise
    assert ("modifier", 1, q, "The doctors visited the museum .") in got
    assert ("modifier", 0, q, "The lawyer visited the museum .") in got
    assert not {e for e in res.examples if e.metadata["transformed_from"] in ("c", "d")}
    assert res.stats["sources_without_pair"] == 2


def test_plural_agreement_in_the_passive(nlp):
    res = construction_pairs([Example("a", "The managers praised the artist.", "x", 1)], constructions=["passive"],
                             parser=nlp)
    hyps = {e.label: e.hypothesis for e in res.examples}
    assert hyps == {1: "The artist was praised by the managers .", 0: "The managers were praised by the artist ."}


def test_seeded_and_checked(nlp, mnli_train_sample):
    rows = list(mnli_train_sample)[:120]
    a = construction_pairs(rows, seed=3, parser=nlp)
    b = construction_pairs(rows, seed=3, parser=nlp)
    assert [(e.premise, e.hypothesis, e.label) for e in a.examples] == [
        (e.premise, e.hypothesis, e.label) for e in b.examples]
    capped = construction_pairs(rows, seed=3, parser=nlp, per_source=1)
    assert max(Counter(e.metadata["transformed_from"] for e in capped.examples).values()) == 2
    with pytest.raises(ConfigError, match="unknown.*inversion"):
        construction_pairs(rows, constructions=["order", "inversion"], parser=nlp)
    assert construction_pairs([], parser=nlp).examples == []
