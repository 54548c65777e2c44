"""Pairs short of ratings (feedback.short_pairs: use / skip / wait): the rule, and a real sync under each of skip and
wait (tiny BERT, real augmentation and fine-tuning; the ratings are stored as a snapshot directly, no Label Studio)."""

from __future__ import annotations

import pytest

from hildif.feedback import Rating
from hildif.rounds.shortfall import ShortPairsError, shortfall

A, B, C = ("a1", "x1"), ("a1", "x2"), ("a2", "x3")


def r(pair, who, score, status="submitted", at="2026-01-01T00:00:00+00:00"):
    return Rating(pair[0], pair[1], who, score, status, at, f"test:{who}:{pair[1]}:{status}")


def test_short_pairs_count_each_persons_latest_submitted_rating():
    ratings = [r(A, "ann", 4), r(A, "bob", 2), r(B, "ann", 5), r(B, "bob", None, "skipped"),
               r(B, "cy", 3), r(B, "cy", None, "deleted", "2026-01-02T00:00:00+00:00")]
    s = shortfall(ratings, [A, B, C], target=2, rule="skip")
    assert s.short == [("a1", "x2", 1), ("a2", "x3", 0)] and s.pairs == 3
    assert (s.min_raters(1), shortfall(ratings, [A], 2, "use").min_raters(1)) == (2, 1)
    assert not s.waits and shortfall(ratings, [A, B], 2, "wait").waits and not shortfall(ratings, [A], 2, "wait").waits
    assert "2 of 3 pair(s) have fewer than 2 rating(s) (feedback.short_pairs = skip): left out" in s.describe()
    assert s.to_dict()["short"][1] == {"anchor_id": "a2", "example_id": "x3", "ratings": 0}
    with pytest.raises(ShortPairsError, match="feedback.short_pairs 'later': expected one of use, skip, wait"):
        shortfall(ratings, [A], 2, "later")


@pytest.mark.integration
def test_a_sync_waits_or_skips_the_short_pairs_and_the_report_says_which(tmp_path, data_dir):
    from round_env import register_tiny_base, round_config

    from hildif.data.splits import load_anchors, load_train
    from hildif.model.registry import ModelRegistry
    from hildif.rounds.state import RoundAnchor, RoundPair, RoundState
    from hildif.rounds.sync import PulledRatings, sync_snapshot

    cfg = round_config(tmp_path / "run", data_dir, "http://127.0.0.1:9", "unused", annotators=2,
                       extra=("feedback.short_pairs=wait",))
    version = register_tiny_base(cfg)
    anchor = load_anchors(cfg.data)[0]
    train = load_train(cfg.data)
    state = RoundState(cfg.run_path("rounds.sqlite"))
    state.create_round("rs", version, str(ModelRegistry(cfg.run.run_dir).path(version)), {"method": "paper"}, {},
                       [RoundAnchor(anchor, [0.5, 0.5])],
                       [RoundPair(anchor.id, train[0], 1, -2.0), RoundPair(anchor.id, train[1], 2, -1.0)],
                       annotators_per_task=2)
    full, short = (anchor.id, train[0].id), (anchor.id, train[1].id)
    ratings = [r(full, "ann@x.org", 5), r(full, "bob@x.org", 4), r(short, "ann@x.org", 5)]
    pulled = PulledRatings(state.add_snapshot("rs", ratings).snapshot_id, ratings, {})

    waited = sync_snapshot(cfg, "rs", pulled, progress=False)
    assert waited.status == "waiting" and waited.sync_id is None and state.syncs("rs") == []
    assert waited.short_pairs["short"] == [{"anchor_id": anchor.id, "example_id": train[1].id, "ratings": 1}]

    cfg.feedback.short_pairs = "skip"
    done = sync_snapshot(cfg, "rs", pulled, progress=False)
    assert done.status == "trained" and done.n_scored_pairs == 1
    rows = {(s["anchor_id"], s["example_id"]): (s["score"], s["n_raters"], s["pending"]) for s in state.scores(done.sync_id)}
    assert rows[full] == (4.5, 2, 0) and rows[short] == (None, 1, 1)
    report = (tmp_path / "run" / "rounds" / "rs" / f"sync-{done.sync_id:03d}" / "round.md").read_text()
    assert ("Pairs short of ratings: 1 of 2 pair(s) have fewer than 2 rating(s) (feedback.short_pairs = skip): "
            "left out of this sync.") in report
