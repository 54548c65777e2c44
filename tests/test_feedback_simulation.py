"""Heuristic features on hand-made and genuine HANS rows; simulated annotators."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict

import pytest

from hildif.data.example import Example
from hildif.feedback import SimulatedAnnotator, aggregate, heuristic_features, simulate_ratings


def test_features_on_the_paper_examples():
    lo = heuristic_features("The professors advised the judge.", "The judge advised the professors.")
    assert lo["lexical_overlap"] and lo["reversed_order"] and not lo["subsequence"] and not lo["constituent"]
    sub = heuristic_features(
        "The professor who introduced the doctors recognized the secretaries.", "The doctors recognized the secretaries."
    )
    assert sub["subsequence"] and not sub["constituent"] and not sub["reversed_order"]
    con = heuristic_features("Certainly the senators recognized the actor.", "The senators recognized the actor.")
    assert con["subsequence"] and con["constituent"]
    neg = heuristic_features(
        "Life, unlike Reich's book, is not a series of morality fables.", "Reich's book is a series of morality fables."
    )
    assert neg["negation"] and neg["negation_mismatch"] and neg["lexical_overlap"]
    # tokenisation differences (GLUE vs the paper's printed text) do not matter
    tok = heuristic_features("From Cockpit Country to St . Ann ’ s Bay.", "From St. Ann's Bay to Cockpit Country.")
    assert tok["lexical_overlap"] and tok["reversed_order"]
    passive = heuristic_features("The artist was introduced by the secretary .", "The artist introduced the secretary .")
    assert passive["passive"]
    none = heuristic_features("A man plays the guitar on stage.", "Nobody is outside.")
    assert none["lexical_overlap_rate"] == 0.0 and none["negation"] and not none["lexical_overlap"]
    assert none["length_ratio"] == pytest.approx(3 / 7)


def test_detectors_fire_on_hans_rows_of_their_heuristic(data_dir):
    """A deterministic 1-in-10 sample of the 30,000 HANS evaluation rows (the full table: benchmarks/)."""
    fired = defaultdict(lambda: defaultdict(int))
    rows = defaultdict(int)
    with gzip.open(data_dir / "hans" / "heuristics_evaluation_set.jsonl.gz", "rt") as f:
        for i, line in enumerate(f):
            if i % 10:
                continue
            row = json.loads(line)
            feats = heuristic_features(row["sentence1"], row["sentence2"])
            rows[row["heuristic"]] += 1
            for name in ("lexical_overlap", "subsequence", "constituent"):
                fired[row["heuristic"]][name] += feats[name]
    rate = {h: {d: fired[h][d] / rows[h] for d in fired[h]} for h in rows}
    assert sum(rows.values()) == 3000
    assert min(rate[h]["lexical_overlap"] for h in rate) >= 0.95  # every HANS row has full overlap
    assert rate["subsequence"]["subsequence"] >= 0.95 and rate["constituent"]["subsequence"] >= 0.95
    assert rate["lexical_overlap"]["subsequence"] <= 0.05  # lexical_overlap rows are the non-contiguous ones
    assert rate["constituent"]["constituent"] >= 0.95
    assert rate["subsequence"]["constituent"] <= 0.05


ANCHOR = Example("98315c", "From Cockpit Country to St. Ann's Bay", "From St. Ann's Bay to Cockpit Country.", 0)
SIMILAR = Example("z1", "The doctor advised the judge .", "The judge advised the doctor .", 0)
DIFFERENT = Example("z2", "A man plays the guitar on stage.", "Nobody is outside.", 0)


def test_noiseless_annotator_scores_shared_heuristics_high():
    ann = SimulatedAnnotator("exact", noise=0.0)
    assert ann.rate(ANCHOR, SIMILAR) == 5 and ann.rate(ANCHOR, DIFFERENT) == 1
    assert SimulatedAnnotator("strict", noise=0.0, bias=-1.0).rate(ANCHOR, SIMILAR) == 4
    assert SimulatedAnnotator("lenient", noise=0.0, bias=2.0).rate(ANCHOR, DIFFERENT) == 3


def test_noise_is_seeded_per_pair_and_independent_of_call_order():
    pairs = [(ANCHOR, Example(f"z{i}", SIMILAR.premise, SIMILAR.hypothesis, 0)) for i in range(200)]
    ann = SimulatedAnnotator("noisy", noise=1.0, seed=3)
    first = [ann.rate(a, e) for a, e in pairs]
    assert [ann.rate(a, e) for a, e in reversed(pairs)] == first[::-1]
    assert set(first) <= {1, 2, 3, 4, 5} and len(set(first)) >= 3  # noise spreads the scores
    other = SimulatedAnnotator("noisy", noise=1.0, seed=4)
    assert [other.rate(a, e) for a, e in pairs] != first


def test_simulated_ratings_feed_aggregation_with_skips():
    pairs = [(ANCHOR, SIMILAR), (ANCHOR, DIFFERENT)] + [
        (ANCHOR, Example(f"q{i}", src.premise, src.hypothesis, 0)) for i, src in enumerate([SIMILAR, DIFFERENT] * 15)
    ]
    annotators = [SimulatedAnnotator(n, noise=0.3, seed=1, skip_rate=0.1) for n in ("ann", "bob", "cat")]
    ratings = simulate_ratings(annotators, pairs)
    assert len(ratings) == 96 and all(r.source.startswith("simulated:") for r in ratings)
    skipped = sum(r.status == "skipped" for r in ratings)
    assert 0 < skipped < 30
    res = aggregate(ratings, min_raters=2)
    assert res.counts["skipped"] == skipped
    assert res.pairs[("98315c", "z1")].score >= 4 and res.pairs[("98315c", "z2")].score <= 2
    assert res.agreement.overall["alpha"] > 0.5  # low noise -> the simulated raters agree


def test_bad_annotator_settings():
    with pytest.raises(ValueError, match="annotator x"):
        SimulatedAnnotator("x", noise=-1)
