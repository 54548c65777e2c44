"""HANS-style heuristics detected in the text: hand-made and genuine HANS rows; labelling a pool with them."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict

import pytest

from hildif.data.example import Example
from hildif.data.heuristics import active_heuristics, heuristic_features, with_detected_heuristics


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


def test_detected_heuristics_are_added_to_the_labels_an_example_carries():
    carried = Example("a1", "The doctor advised the judge.", "The judge advised the doctor.", 0,
                      {"heuristics": ["reverse_ordering"], "genre": "x"})
    plain = Example("d1", "A man plays the guitar on stage.", "A man plays.", 1)
    out = with_detected_heuristics([carried, plain])
    assert [e.id for e in out] == ["a1", "d1"] and out[0].label == 0 and out[0].metadata["genre"] == "x"
    assert out[0].metadata["heuristics"] == ["lexical_overlap", "reverse_ordering", "reversed_order"]
    assert set(out[1].metadata["heuristics"]) == active_heuristics(heuristic_features(plain.premise, plain.hypothesis))
    assert "subsequence" in out[1].metadata["heuristics"]
    assert carried.metadata["heuristics"] == ["reverse_ordering"] and "heuristics" not in plain.metadata  # copies
