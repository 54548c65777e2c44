"""Ratings normalisation, aggregation methods and Krippendorff's alpha on hand-made cases.

hildif computes alpha with the ``krippendorff`` package; the comparisons with the package below check hildif's
conversion of its units (any number of raters per pair) into the package's input, the hand cases the values."""

from __future__ import annotations

import json
import math

import krippendorff
import numpy as np
import pytest

from hildif.feedback import Rating, RatingError, aggregate, normalize, ordinal_alpha
from hildif.feedback.agreement import compute_agreement
from hildif.feedback.ratings import reconcile


def r(anchor, example, annotator, score, status="submitted", t=0, source=""):
    return Rating(anchor, example, annotator, score, status, f"2024-05-01T10:{t:02d}:00Z", source or f"log:{t}")


# ---------------------------------------------------------------- normalisation


def test_updated_rating_replaces_earlier_one_by_time_not_log_order():
    log = [r("a", "x", "ann", 2, t=5), r("a", "x", "ann", 4, t=1), r("a", "x", "bob", 3, t=2)]
    norm = normalize(log)
    assert {x.annotator: x.score for x in norm.counted[("a", "x")]} == {"ann": 2, "bob": 3}
    assert [(e.score, why) for e, why in norm.excluded[("a", "x")]] == [(4, "superseded")]


def test_same_time_later_in_log_wins():
    norm = normalize([r("a", "x", "ann", 2, t=1), r("a", "x", "ann", 5, t=1)])
    assert norm.counted[("a", "x")][0].score == 5


def test_skipped_and_cancelled_do_not_count_nor_replace():
    log = [r("a", "x", "ann", 4, t=1), r("a", "x", "ann", None, "skipped", t=2), r("a", "x", "bob", None, "cancelled", t=3)]
    norm = normalize(log)
    assert [(x.annotator, x.score) for x in norm.counted[("a", "x")]] == [("ann", 4)]
    assert norm.counts() == {"counted": 1, "skipped": 1, "cancelled": 1, "superseded": 0, "withdrawn": 0}


def test_deleted_withdraws_and_a_later_submission_counts_again():
    log = [r("a", "x", "ann", 4, t=1), r("a", "x", "ann", None, "deleted", t=2)]
    assert ("a", "x") not in normalize(log).counted
    assert normalize(log).counts()["withdrawn"] == 2
    log.append(r("a", "x", "ann", 1, t=3))
    assert normalize(log).counted[("a", "x")][0].score == 1


@pytest.mark.parametrize(
    "rating, field",
    [
        (Rating("a", "x", "ann", 6), "score"),
        (Rating("a", "x", "ann", True), "score"),
        (Rating("a", "x", "ann", None), "score"),
        (Rating("a", "x", "ann", 3, "maybe"), "status"),
        (Rating("a", "x", "", 3), "annotator"),
        (Rating("a", "x", "ann", 3, updated_at="yesterday"), "updated_at"),
    ],
)
def test_bad_record_names_the_record_and_field(rating, field):
    bad = Rating(**{**rating.to_dict(), "source": "labelstudio:task/7"})
    with pytest.raises(RatingError, match=field) as info:
        normalize([r("a", "y", "ann", 3), bad])
    assert "labelstudio:task/7" in str(info.value)


def test_from_dict_round_trip_and_missing_field():
    rating = r("a", "x", "ann", 3, t=7)
    assert Rating.from_dict(json.loads(json.dumps(rating.to_dict()))) == rating
    with pytest.raises(RatingError, match="example_id"):
        Rating.from_dict({"anchor_id": "a", "annotator": "ann", "score": 3})


# ---------------------------------------------------------------- successive pulls


def _pulled(source, annotator, score, status="submitted", t="2026-01-01T00:00:00Z"):
    return Rating("a", "z", annotator, score, status, t, source)


def test_reconcile_detects_new_updated_unchanged_and_deleted():
    previous = [_pulled("s1", "u1", 4), _pulled("s2", "u2", 2), _pulled("s3", "u3", 5),
                _pulled("s0", "u0", 1, "deleted")]
    current = [_pulled("s1", "u1", 4), _pulled("s2", "u2", 3, t="2026-01-01T00:00:09Z"), _pulled("s4", "u4", 1)]
    ratings, counts = reconcile(current, previous, "2026-01-01T00:01:00Z")
    assert counts == {"new": 1, "updated": 1, "unchanged": 1, "deleted": 1, "still_deleted": 1}
    deleted = {r.source: r for r in ratings if r.status == "deleted"}
    assert set(deleted) == {"s3", "s0"}
    assert deleted["s3"] == _pulled("s3", "u3", 5, "deleted", "2026-01-01T00:01:00Z")  # stamped when seen gone
    assert deleted["s0"] == previous[3]  # carried forward unchanged
    # the deletion withdraws u3's 5: the median of 4, 3, 1 is 3
    agg = aggregate(ratings)
    assert agg.pairs[("a", "z")].score == 3.0 and agg.pairs[("a", "z")].n_raters == 3
    # a rating back after its deletion (Label Studio restored from a backup) is new again
    again, counts = reconcile([_pulled("s0", "u0", 1)], [deleted["s0"]], "2026-01-01T00:02:00Z")
    assert again == [_pulled("s0", "u0", 1)] and counts["new"] == 1


# ---------------------------------------------------------------- aggregation methods

LOG = [
    r("a1", "z1", "ann", 5), r("a1", "z1", "bob", 4), r("a1", "z1", "cat", 1),  # spread 4
    r("a1", "z2", "ann", 2), r("a1", "z2", "bob", 3),  # even count
    r("a2", "z3", "ann", 3), r("a2", "z3", "bob", 3), r("a2", "z3", "cat", 4), r("a2", "z3", "dan", 4),  # tie
    r("a2", "z4", "ann", 5),  # single rater
]


@pytest.mark.parametrize(
    "method, expected",
    [
        ("median", {"z1": 4.0, "z2": 2.5, "z3": 3.5, "z4": 5.0}),
        ("mean", {"z1": 10 / 3, "z2": 2.5, "z3": 3.5, "z4": 5.0}),
        ("trimmed_mean", {"z1": 4.0, "z2": 2.5, "z3": 3.5, "z4": 5.0}),
        ("majority", {"z1": 4.0, "z2": 2.0, "z3": 3.0, "z4": 5.0}),
    ],
)
def test_methods_on_hand_made_pairs(method, expected):
    res = aggregate(LOG, method=method)
    got = {k[1]: p.score for k, p in res.pairs.items()}
    assert got == pytest.approx(expected)
    assert all(p.method == method for p in res.pairs.values())


def test_majority_tie_is_recorded_and_goes_to_closest_to_median_then_lower():
    res = aggregate(LOG, method="majority")
    z1 = res.pairs[("a1", "z1")].details  # 5, 4, 1: three-way tie, median 4 -> 4
    assert z1["tie"] == [1, 4, 5] and res.pairs[("a1", "z1")].score == 4.0
    assert res.pairs[("a2", "z3")].details["tie"] == [3, 4]  # median 3.5 equidistant -> lower


def test_trimmed_mean_drops_extremes():
    log = [r("a", "x", n, s) for n, s in zip("pqrstu", [1, 5, 5, 4, 4, 5])]
    res = aggregate(log, method="trimmed_mean")
    assert res.pairs[("a", "x")].score == pytest.approx((4 + 4 + 5 + 5) / 4)
    assert res.pairs[("a", "x")].details["trimmed_each_side"] == 1


def test_weighted_downweights_the_annotator_who_disagrees():
    log = []
    for i in range(4):
        log += [r("a", f"z{i}", "ann", 4), r("a", f"z{i}", "bob", 4), r("a", f"z{i}", "odd", 1)]
    log += [r("a", "solo", "new", 2)]
    res = aggregate(log, method="weighted")
    w = res.annotator_weights
    # ann vs median(bob, odd) = 2.5 -> |4 - 2.5| = 1.5; odd vs median(4, 4) -> 3
    assert w["ann"] == pytest.approx(1 - 1.5 / 4) and w["odd"] == pytest.approx(1 - 3 / 4)
    assert w["new"] == pytest.approx((w["ann"] + w["bob"] + w["odd"]) / 3)
    expected = (w["ann"] * 4 + w["bob"] * 4 + w["odd"] * 1) / (w["ann"] + w["bob"] + w["odd"])
    assert res.pairs[("a", "z0")].score == pytest.approx(expected)
    assert res.pairs[("a", "z0")].score > aggregate(log, method="mean").pairs[("a", "z0")].score


def test_min_raters_marks_pending_and_spread_flags_review():
    res = aggregate(LOG, method="median", min_raters=3, review_spread=2)
    assert set(k[1] for k in res.pending) == {"z2", "z4"}
    assert res.pairs[("a1", "z2")].score is None and res.pairs[("a1", "z2")].method == "pending"
    assert set(k[1] for k in res.flagged) == {"z1"}
    assert res.pairs[("a1", "z1")].spread == 4 and res.pairs[("a2", "z3")].spread == 1
    assert set(k[1] for k in res.scores()) == {"z1", "z3"}


def test_pair_with_only_withdrawn_or_skipped_ratings_is_pending_with_audit_trail():
    log = [r("a", "x", "ann", 4, t=1), r("a", "x", "ann", None, "deleted", t=2), r("a", "x", "bob", None, "skipped", t=3)]
    pair = aggregate(log).pairs[("a", "x")]
    assert pair.pending and pair.n_raters == 0 and pair.spread is None and not pair.flagged
    assert sorted(why for _, why in pair.excluded) == ["skipped", "withdrawn", "withdrawn"]


def test_record_is_auditable_and_json_serialisable():
    log = LOG + [r("a1", "z1", "cat", 2, t=9, source="labelstudio:task/3/annotation/8")]  # cat updates 1 -> 2
    res = aggregate(log, method="median")
    d = json.loads(json.dumps(res.to_dict()))
    z1 = next(p for p in d["pairs"] if p["example_id"] == "z1")
    assert z1["method"] == "median" and z1["score"] == 4.0
    assert {(x["annotator"], x["score"], x["updated_at"]) for x in z1["ratings"]} == {
        ("ann", 5, "2024-05-01T10:00:00Z"), ("bob", 4, "2024-05-01T10:00:00Z"), ("cat", 2, "2024-05-01T10:09:00Z")
    }
    assert z1["excluded"][0]["reason"] == "superseded" and z1["excluded"][0]["score"] == 1
    assert "| a1 | z1 | 4.00 | 3 |" in res.to_markdown()


def test_bad_method_and_min_raters():
    with pytest.raises(ValueError, match="unknown aggregation method 'vote'"):
        aggregate(LOG, method="vote")
    with pytest.raises(ValueError, match="min_raters"):
        aggregate(LOG, min_raters=0)


# ---------------------------------------------------------------- agreement


def reference_alpha(units_by_rater: np.ndarray) -> float:
    return krippendorff.alpha(units_by_rater, value_domain=[1, 2, 3, 4, 5], level_of_measurement="ordinal")


def test_alpha_matches_krippendorff_package_on_random_data_with_missing_values():
    rng = np.random.default_rng(0)
    for trial in range(20):
        raters, units = rng.integers(2, 6), rng.integers(4, 30)
        truth = rng.integers(1, 6, size=units)
        data = np.clip(truth + rng.integers(-1, 2, size=(raters, units)), 1, 5).astype(float)
        data[rng.random(data.shape) < 0.3] = np.nan
        ours = ordinal_alpha([[int(v) for v in col if not np.isnan(v)] for col in data.T])
        ref = reference_alpha(data)
        if ours is None:
            assert math.isnan(ref) or ref == pytest.approx(0.0, abs=1e-12), trial
        else:
            assert ours == pytest.approx(ref, abs=1e-10), trial


def test_alpha_through_aggregate_matches_package_overall_per_anchor_and_per_annotator_pair():
    res = aggregate(LOG)
    names = ["ann", "bob", "cat", "dan"]
    pairs = [("a1", "z1"), ("a1", "z2"), ("a2", "z3"), ("a2", "z4")]
    table = np.full((4, 4), np.nan)
    for x in LOG:
        table[names.index(x.annotator), pairs.index(x.pair)] = x.score
    assert res.agreement.overall["alpha"] == pytest.approx(reference_alpha(table), abs=1e-12)
    assert res.agreement.overall["n_units"] == 3
    assert res.agreement.per_anchor["a2"]["alpha"] == pytest.approx(reference_alpha(table[:, 2:]), abs=1e-12)
    ab = res.agreement.per_annotator_pair["ann|bob"]
    assert ab["n_units"] == 3 and ab["alpha"] == pytest.approx(reference_alpha(table[:2, :3]), abs=1e-12)
    assert res.agreement.per_annotator_pair["cat|dan"]["n_units"] == 1


def test_alpha_hand_cases():
    assert ordinal_alpha([[1, 1], [3, 3], [5, 5]]) == pytest.approx(1.0)
    assert ordinal_alpha([[4, 4], [4, 4]]) is None  # one value only: expected disagreement 0
    assert ordinal_alpha([[3]]) is None  # nothing pairable
    assert ordinal_alpha([[1, 5], [5, 1], [1, 5]]) < 0  # systematic disagreement
    # worked by hand: coincidences o11 = o22 = 2, o12 = o21 = 1; n1 = n2 = 3; ordinal delta2(1, 2) = (6 - 3)^2 = 9;
    # D_o = 2 * 9 = 18, D_e = 2 * 3 * 3 * 9 / 5 = 32.4; alpha = 1 - 18 / 32.4 = 4/9 (unrated values 3..5 add 0)
    assert ordinal_alpha([[1, 1], [2, 2], [1, 2], [4]]) == pytest.approx(4 / 9)
    assert compute_agreement({}).overall == {"alpha": None, "n_units": 0}
    with pytest.raises(ValueError, match="outside the domain"):
        ordinal_alpha([[0, 1]])
