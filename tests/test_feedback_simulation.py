"""Simulated annotators (the heuristic detectors they compare: tests/test_data_heuristics.py)."""

from __future__ import annotations

import pytest

from hildif.data.example import Example
from hildif.feedback import SimulatedAnnotator, aggregate, simulate_ratings


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
