"""The SQLite round state: atomic writes, snapshot deduplication, sync records (no server, no model)."""

from __future__ import annotations

import sqlite3

import pytest

from hildif.data.example import Example
from hildif.feedback import Rating
from hildif.feedback.aggregation import AggregatedPair
from hildif.feedback.ratings import ratings_digest
from hildif.rounds.state import RoundAnchor, RoundPair, RoundState, RoundStateError, Snapshot, flatten_metrics
from hildif.rounds.start import AnchorSelection, RoundError, validate_round_id

A1 = Example("a1", "The judge advised the doctor .", "The doctor advised the judge .", 0)
A2 = Example("a2", "The cat slept .", "The cat slept .", 1)
Z = [Example(f"z{i}", f"premise {i}", f"hypothesis {i}", i % 2) for i in range(4)]


@pytest.fixture()
def state(tmp_path):
    st = RoundState(tmp_path / "rounds.sqlite")
    st.create_round("r1", "v0", "/models/v0", {"method": "paper"}, {},
                    [RoundAnchor(A1, [0.3, 0.7]), RoundAnchor(A2, [0.9, 0.1])],
                    [RoundPair("a1", Z[0], 1, -2.0), RoundPair("a1", Z[1], 2, -1.0), RoundPair("a2", Z[2], 1, -3.0),
                     RoundPair("a2", Z[3], 2, -0.5)])
    return st


def test_round_round_trip_and_order(state):
    info = state.round("r1")
    assert info["base_version"] == "v0" and info["selection"] == {"method": "paper"} and info["project_id"] is None
    assert [a.anchor_id for a in state.anchors("r1")] == ["a1", "a2"]
    assert state.anchors("r1")[0] == RoundAnchor(A1, [0.3, 0.7])  # what was recorded comes back
    pairs = state.pairs("r1")
    assert pairs[2] == RoundPair("a2", Z[2], 1, -3.0) and pairs[2].pair == ("a2", "z2")
    assert [(p.anchor_id, p.example_id, p.rank) for p in pairs] == [("a1", "z0", 1), ("a1", "z1", 2),
                                                                      ("a2", "z2", 1), ("a2", "z3", 2)]
    assert pairs[0].example == Z[0] and all(p.task_id is None for p in pairs)
    with pytest.raises(RoundStateError, match="already exists"):
        state.create_round("r1", "v0", "/m", {}, {}, [], [])
    with pytest.raises(RoundStateError, match="unknown round 'nope'.*known: r1"):
        state.round("nope")


def test_task_ids_are_all_or_nothing(state):
    with pytest.raises(RoundStateError, match=r"no pair \(a1, zz\)"):
        state.set_task_ids("r1", {("a1", "z0"): 10, ("a1", "zz"): 11})
    assert all(p.task_id is None for p in state.pairs("r1"))  # the first update was rolled back
    state.set_task_ids("r1", {("a1", "z0"): 10, ("a2", "z3"): 13})
    assert {p.example_id: p.task_id for p in state.pairs("r1")} == {"z0": 10, "z1": None, "z2": None, "z3": 13}
    with pytest.raises(sqlite3.IntegrityError):  # one task, one pair
        state.set_task_ids("r1", {("a1", "z1"): 10})


def _rating(src, who, score, status="submitted", t="2026-01-01T00:00:00Z"):
    return Rating("a1", "z0", who, score, status, t, src)


def test_snapshots_are_deduplicated_by_content(state):
    first = [_rating("s1", "u1", 4), _rating("s2", "u2", None, "skipped")]
    snap = state.add_snapshot("r1", first)
    assert snap.created and snap.digest == ratings_digest(first) and snap.n_active == 2
    assert state.latest_snapshot("r1") == snap and not state.latest_snapshot("r1").created
    # same content, other timestamps and order: same snapshot
    again = [_rating("s2", "u2", None, "skipped", "2026-02-01T00:00:00Z"), _rating("s1", "u1", 4, t="2026-02-01T00:00:00Z")]
    same = state.add_snapshot("r1", again)
    assert same == snap and not same.created
    changed = [_rating("s1", "u1", 5), _rating("s2", "u2", None, "skipped")]
    snap2 = state.add_snapshot("r1", changed)
    assert snap2.created and snap2.snapshot_id > snap.snapshot_id
    assert ratings_digest(first) != ratings_digest(changed)
    # a deletion-only change leaves the digest (what the ratings say) but is recorded as a new snapshot
    deleted = changed + [_rating("s9", "u9", 2, "deleted")]
    assert ratings_digest(deleted) == ratings_digest(changed)
    snap3 = state.add_snapshot("r1", deleted)
    assert snap3.created and state.snapshot(snap3.snapshot_id) == snap3 and snap3.n_active == 2
    assert isinstance(snap3, Snapshot) and state.latest_snapshot("r1") == snap3
    # the stored ratings come back as the records that were stored
    assert sorted(state.snapshot_ratings(snap3.snapshot_id), key=lambda r: r.source) == deleted


def test_sync_records_and_metrics(state):
    sid = state.add_snapshot("r1", [_rating("s1", "u1", 4)]).snapshot_id
    sync_id = state.begin_sync("r1", sid)
    assert state.syncs("r1")[0]["status"] == "running" and state.last_done_sync("r1") is None
    metrics = {"model_version": "v1", "hans": {"accuracy": 50.0, "n": 60, "by_heuristic": {"lexical_overlap": {
        "entailment": 90.0, "non-entailment": 10.0}}}, "mnli": {"accuracy": 61.5, "n": 40}}
    scored = AggregatedPair("a1", "z0", 4.0, 1, 0, False, False, [_rating("s1", "u1", 4)], "median")
    pending = AggregatedPair("a1", "z1", None, 0, None, True, True, [], "pending")
    state.finish_sync(sync_id, scores=[scored, pending], augmented=[Z[0], Z[1]], version="v1",
                      metrics=metrics, report_dir="/r", summary={"x": 1})
    done = state.last_done_sync("r1")
    assert (done["sync_id"], done["version"], done["summary"]) == (sync_id, "v1", {"x": 1})
    assert [(s["example_id"], s["score"], s["n_raters"], s["flagged"], s["pending"]) for s in state.scores(sync_id)] \
        == [("z0", 4.0, 1, 0, 0), ("z1", None, 0, 1, 1)]
    assert state.augmented(sync_id) == [Z[0], Z[1]]
    assert state.metrics("v1") == {"hans.accuracy": 50.0, "hans.n": 60.0, "mnli.accuracy": 61.5, "mnli.n": 40.0,
                                   "hans.by_heuristic.lexical_overlap.entailment": 90.0,
                                   "hans.by_heuristic.lexical_overlap.non-entailment": 10.0}
    failed = state.begin_sync("r1", sid)
    state.fail_sync(failed, "RuntimeError: boom")
    assert state.syncs("r1")[-1]["status"] == "failed" and state.last_done_sync("r1")["sync_id"] == sync_id
    assert state.evaluation("v1") == metrics and state.evaluation("v0") is None
    state.record_evaluation("v0", {"mnli": {"accuracy": 60.0}})
    assert state.evaluation("v0") == {"mnli": {"accuracy": 60.0}} and state.metrics("v0") == {"mnli.accuracy": 60.0}


def test_flatten_metrics_keeps_numbers_only():
    assert flatten_metrics({"a": {"b": 1, "c": "x", "d": True}, "e": 2.5}) == {"a.b": 1.0, "e": 2.5}


def test_selection_validation():
    from hildif.influence.anchors import AnchorSelectionError

    with pytest.raises(AnchorSelectionError, match="unknown"):
        AnchorSelection(method="clever")
    with pytest.raises(AnchorSelectionError, match="pair-ids file"):
        AnchorSelection(method="pairids")
    with pytest.raises(AnchorSelectionError, match="needs a rule"):
        AnchorSelection(method="rule")
    with pytest.raises(AnchorSelectionError, match="unknown anchor rule 'genre:x'"):
        AnchorSelection(method="rule", rule="label:entailment+genre:x")  # checked before any data is read
    with pytest.raises(RoundError, match="round id"):
        validate_round_id("../etc")
    assert AnchorSelection.from_dict({"method": "random", "n": 2, "extra": 1}) == AnchorSelection("random", 2)


def test_pair_ids_random_and_rule_selection_on_the_real_dev_set(tmp_path, data_dir):
    from hildif.config import load_config
    from hildif.data.heuristics import heuristic_features
    from hildif.influence.anchors import AnchorSelectionError, select_anchors as pick

    cfg = load_config(overrides=[f"data.data_dir={data_dir}"])
    select_anchors = lambda cfg, selection: pick(selection.strategy(), data=cfg.data)  # noqa: E731 (a round's way)
    f = tmp_path / "ids.txt"
    f.write_text("# handpicked\n98315c\n63735n  # the first dev row\n")
    chosen = select_anchors(cfg, AnchorSelection(method="pairids", pair_ids_file=str(f)))
    assert [e.id for e in chosen] == ["98315c", "63735n"]
    assert chosen[0].metadata["heuristics"] == ["lexical_overlap", "reverse_ordering"]  # from the anchors file
    assert chosen[1].premise == "The new rights are nice enough"
    f.write_text("98315c\nnot-an-id\n")
    with pytest.raises(AnchorSelectionError, match=r"ids.txt: the pairID\(s\) on line\(s\) 2 are not in") as err:
        select_anchors(cfg, AnchorSelection(method="pairids", pair_ids_file=str(f)))
    assert "not-an-id" not in str(err.value)  # the file is outside input: its lines are not echoed
    rnd = select_anchors(cfg, AnchorSelection(method="random", n=3, seed=7))
    assert len({e.id for e in rnd}) == 3
    assert [e.id for e in rnd] == [e.id for e in select_anchors(cfg, AnchorSelection(method="random", n=3, seed=7))]
    lo = select_anchors(cfg, AnchorSelection(method="rule", n=4, rule="label:non-entailment+heuristic:lexical_overlap"))
    assert len(lo) == 4 and all(e.label == 0 for e in lo)
    assert all(heuristic_features(e.premise, e.hypothesis)["lexical_overlap"] for e in lo)


def test_schema_1_database_is_migrated_with_each_rounds_annotators(tmp_path):
    """A rounds.sqlite written by schema 1 (no annotators_per_task column) opens and gets each round's value from
    the config it was started with."""
    import json

    from hildif.rounds.state import SCHEMA_VERSION

    path = tmp_path / "rounds.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE rounds (
            round_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, project_id INTEGER, project_title TEXT,
            base_version TEXT NOT NULL, base_path TEXT NOT NULL, selection TEXT NOT NULL, config TEXT NOT NULL);
    """)
    db.execute("INSERT INTO rounds VALUES ('old', 't', 7, 'HILDIF influence rating', 'v0', '/m', '{}', ?)",
               (json.dumps({"labelstudio": {"annotators_per_task": 2}}),))
    db.execute("INSERT INTO rounds VALUES ('bare', 't', 7, 'HILDIF influence rating', 'v0', '/m', '{}', '{}')")
    db.commit()
    db.close()
    st = RoundState(path)
    assert st.round("old")["annotators_per_task"] == 2 and st.round("bare")["annotators_per_task"] is None
    assert RoundState(path).round("old")["project_id"] == 7  # opening again: nothing left to migrate
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(RoundStateError, match="schema version 99"):
        RoundState(path)


def test_schema_2_database_keeps_its_evaluations_only(tmp_path):
    """Schema 3 drops ``model_versions`` (the registry records versions) and keeps each version's evaluation."""
    import json

    path = tmp_path / "rounds.sqlite"
    RoundState(path)
    db = sqlite3.connect(path)
    db.executescript("""
        DROP TABLE evaluations;
        UPDATE meta SET value = '2' WHERE key = 'schema_version';
        CREATE TABLE model_versions (
            version TEXT PRIMARY KEY, path TEXT NOT NULL, parent TEXT, round_id TEXT, sync_id INTEGER,
            created_at TEXT NOT NULL, evaluation TEXT);
        INSERT INTO model_versions VALUES ('v0', '/m/v0', NULL, NULL, NULL, 't0', NULL);
    """)
    db.execute("INSERT INTO model_versions VALUES ('v1', '/m/v1', 'v0', 'r1', 1, 't1', ?)",
               (json.dumps({"mnli": {"accuracy": 61.5}}),))
    db.commit()
    db.close()
    st = RoundState(path)
    assert st.evaluation("v1") == {"mnli": {"accuracy": 61.5}} and st.evaluation("v0") is None
    db = sqlite3.connect(path)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "model_versions" not in tables and "evaluations" in tables
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "3"
    db.close()


def test_round_keeps_its_settings_and_project_maps_back_to_it(tmp_path):
    from hildif.rounds.state import project_title_for, round_for_project

    st = RoundState(tmp_path / "rounds.sqlite")
    st.create_round("r2", "v0", "/m", {}, {}, [RoundAnchor(A1, [0.5, 0.5])], [RoundPair("a1", Z[0], 1, -1.0)],
                    annotators_per_task=2, project_title=project_title_for("HILDIF influence rating", "r2"))
    info = st.round("r2")
    assert (info["annotators_per_task"], info["project_title"]) == (2, "HILDIF influence rating — r2")
    st.set_project("r2", 11, info["project_title"], 5)  # a recorded overlap is not overwritten
    assert (st.round("r2")["annotators_per_task"], st.round("r2")["project_id"]) == (2, 11)
    assert round_for_project(st, 11) == "r2" and round_for_project(st, 12) is None


def test_project_titles_fit_label_studio_and_stay_distinct():
    from hildif.rounds.state import PROJECT_TITLE_MAX, project_title_for

    long_ids = ["r" + "x" * 60 + "1", "r" + "x" * 60 + "2"]
    titles = [project_title_for("HILDIF influence rating", r) for r in ["r1", "r2", *long_ids]]
    assert titles[0] == "HILDIF influence rating — r1"
    assert len(set(titles)) == 4 and all(3 <= len(t) <= PROJECT_TITLE_MAX for t in titles)
    assert project_title_for("A" * 80, "r1").endswith(" — r1") and len(project_title_for("A" * 80, "r1")) == 50


def test_a_failed_syncs_saved_model_is_no_version(state, tiny_clf, tmp_path):
    """The registry records model versions, so the model a sync saved before failing is removed with it; models of
    other syncs, one made before that sync began (an older database's sync of the same number) and the served one
    stay."""
    import torch

    from hildif.model.registry import ModelRegistry
    from hildif.rounds.state import now
    from hildif.rounds.sync import discard_versions_of

    registry = ModelRegistry(tmp_path)
    base = registry.save(tiny_clf, {"kind": "base"})
    sid = state.add_snapshot("r1", [_rating("s1", "u1", 4)]).snapshot_id

    def save(**meta):
        with torch.no_grad():
            tiny_clf.model.classifier.bias.add_(1.0)
        return registry.save(tiny_clf, {"kind": "round", "round_id": "r1", **meta}, make_current=False)

    old = save(sync_id=2, created_at="2020-01-01T00:00:00.000Z")
    done = state.begin_sync("r1", sid)
    kept = save(sync_id=done, created_at=now())
    state.finish_sync(done, scores=[], augmented=[], version=kept, metrics={}, report_dir="/r", summary={})
    failed = state.begin_sync("r1", sid)
    assert failed == 2
    lost = save(sync_id=failed, created_at=now())
    state.fail_sync(failed, "OSError: disk full")
    assert discard_versions_of(registry, state, [failed]) == [lost]
    assert [v["version"] for v in registry.versions()] == [base, old, kept]
    registry.set_current(kept)
    assert discard_versions_of(registry, state, [done]) == []  # the served model stays, whatever its sync did
