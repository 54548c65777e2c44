"""Persisted round state: one SQLite file (``<run_dir>/rounds.sqlite``), every write in one transaction.

Tables (ids are strings; JSON columns hold :meth:`Example.to_dict` or plain dicts):

* ``rounds``        round_id, created_at, project_id, project_title, base_version, base_path, selection, config,
                    annotators_per_task: what the round was started with (``config`` holds the influence, Label Studio
                    and feedback settings of that start); status and later starts use these, not today's config.
                    One Label Studio project per round (``project_title``: :func:`project_title_for`).
* ``anchors``       (round_id, anchor_id) -> position, example, probs (model's [p(non-ent), p(ent)] at start)
* ``pairs``         (round_id, anchor_id, example_id) -> rank (1 = most helpful), influence, example, task_id
* ``snapshots``     snapshot_id -> round_id, created_at, digest (of the active ratings), n_active
* ``ratings``       (snapshot_id, source) -> anchor_id, example_id, annotator, score, status, updated_at
* ``syncs``         sync_id -> round_id, snapshot_id, status (running | done | failed), version, report_dir, error
                    (a sync whose process died: ``failed``, ``interrupted: ...``, set by the next sync or backend start)
* ``scores``        (sync_id, anchor_id, example_id) -> aggregated score, n_raters, spread, flagged, pending
* ``augmented``     (sync_id, position) -> example: the fine-tuning set S of that sync
* ``evaluations``   version -> created_at, evaluation (the full evaluate() JSON of that model version)
* ``metrics``       (version, name) -> value: flattened evaluation numbers (``hans.accuracy``, ``mnli.accuracy`` ...)

Records in and out: :class:`RoundAnchor`, :class:`RoundPair`, :class:`Snapshot` (this module),
:class:`hildif.feedback.ratings.Rating` (snapshot ratings; what their statuses mean is that module's business) and
:class:`hildif.feedback.aggregation.AggregatedPair` (a sync's scores).

Model versions themselves (which exist, their lineage, which is served) are recorded once, by the registry
(:class:`hildif.model.registry.ModelRegistry`: ``models/<version>/hildif.json`` and ``models/current.json``); this
database only refers to them by name. The served model is switched by the sync only after everything above is
committed; so the database never points at a half-written model and a crash leaves the previous model serving.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from hildif.data.example import Example
from hildif.errors import HildifError
from hildif.feedback.ratings import ACTIVE_STATUSES, DELETED, PairKey, Rating, ratings_digest
from hildif.utils import sqlite

if TYPE_CHECKING:
    from hildif.feedback.aggregation import AggregatedPair

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS rounds (
    round_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, project_id INTEGER, project_title TEXT,
    base_version TEXT NOT NULL, base_path TEXT NOT NULL, selection TEXT NOT NULL, config TEXT NOT NULL,
    annotators_per_task INTEGER
);
CREATE TABLE IF NOT EXISTS anchors (
    round_id TEXT NOT NULL REFERENCES rounds(round_id), anchor_id TEXT NOT NULL, position INTEGER NOT NULL,
    example TEXT NOT NULL, probs TEXT NOT NULL, PRIMARY KEY (round_id, anchor_id)
);
CREATE TABLE IF NOT EXISTS pairs (
    round_id TEXT NOT NULL, anchor_id TEXT NOT NULL, example_id TEXT NOT NULL, rank INTEGER NOT NULL,
    influence REAL NOT NULL, example TEXT NOT NULL, task_id INTEGER,
    PRIMARY KEY (round_id, anchor_id, example_id), FOREIGN KEY (round_id, anchor_id) REFERENCES anchors
);
CREATE UNIQUE INDEX IF NOT EXISTS pairs_task ON pairs(task_id) WHERE task_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id INTEGER PRIMARY KEY AUTOINCREMENT, round_id TEXT NOT NULL REFERENCES rounds(round_id),
    created_at TEXT NOT NULL, digest TEXT NOT NULL, n_active INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ratings (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(snapshot_id), source TEXT NOT NULL,
    anchor_id TEXT NOT NULL, example_id TEXT NOT NULL, annotator TEXT NOT NULL, score INTEGER,
    status TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (snapshot_id, source)
);
CREATE TABLE IF NOT EXISTS syncs (
    sync_id INTEGER PRIMARY KEY AUTOINCREMENT, round_id TEXT NOT NULL REFERENCES rounds(round_id),
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(snapshot_id), started_at TEXT NOT NULL, finished_at TEXT,
    status TEXT NOT NULL, version TEXT, report_dir TEXT, error TEXT, summary TEXT
);
CREATE TABLE IF NOT EXISTS scores (
    sync_id INTEGER NOT NULL REFERENCES syncs(sync_id), anchor_id TEXT NOT NULL, example_id TEXT NOT NULL,
    score REAL, n_raters INTEGER NOT NULL, spread REAL, flagged INTEGER NOT NULL, pending INTEGER NOT NULL,
    PRIMARY KEY (sync_id, anchor_id, example_id)
);
CREATE TABLE IF NOT EXISTS augmented (
    sync_id INTEGER NOT NULL REFERENCES syncs(sync_id), position INTEGER NOT NULL, example TEXT NOT NULL,
    PRIMARY KEY (sync_id, position)
);
CREATE TABLE IF NOT EXISTS evaluations (
    version TEXT PRIMARY KEY, created_at TEXT NOT NULL, evaluation TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    version TEXT NOT NULL, name TEXT NOT NULL, value REAL, PRIMARY KEY (version, name)
);
"""

PROJECT_TITLE_MAX = 50  # Label Studio's limit on a project title


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Version 2 stores each round's ``annotators_per_task`` (before, status used whatever the config said then);
    rounds recorded by version 1 get the value their stored config holds."""
    db.execute("ALTER TABLE rounds ADD COLUMN annotators_per_task INTEGER")
    for row in db.execute("SELECT round_id, config FROM rounds").fetchall():
        try:
            value = (json.loads(row[1]).get("labelstudio") or {}).get("annotators_per_task")
        except (ValueError, AttributeError):
            value = None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            db.execute("UPDATE rounds SET annotators_per_task = ? WHERE round_id = ?", (value, row[0]))


def _migrate_2_to_3(db: sqlite3.Connection) -> None:
    """Version 3 keeps only each model version's evaluation (table ``evaluations``); the rest of the old
    ``model_versions`` rows (path, parent, round, sync) is what the registry's ``hildif.json`` records."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'model_versions'").fetchone():
        db.execute("INSERT OR IGNORE INTO evaluations SELECT version, created_at, evaluation FROM model_versions "
                   "WHERE evaluation IS NOT NULL")
        db.execute("DROP TABLE model_versions")


MIGRATIONS = {1: _migrate_1_to_2, 2: _migrate_2_to_3}  # from version -> step to version + 1 (each in the caller's transaction)
ROUNDS_SCHEMA = sqlite.Schema("schema_version", SCHEMA_VERSION, SCHEMA, MIGRATIONS)


def project_title_for(base: str, round_id: str) -> str:
    """The Label Studio project title of a round: ``"<base> — <round_id>"``, shortened to Label Studio's 50
    characters (the base first; a long round id keeps its start and a digest, so titles stay distinct)."""
    suffix = f" — {round_id}"
    if len(suffix) > PROJECT_TITLE_MAX - 12:
        digest = hashlib.sha256(round_id.encode("utf-8")).hexdigest()[:8]
        suffix = f" — {round_id[:PROJECT_TITLE_MAX - 24]}~{digest}"
    room = PROJECT_TITLE_MAX - len(suffix)
    return (base.strip()[:room].rstrip() or "HILDIF") + suffix


class RoundStateError(HildifError, RuntimeError):
    """The round state is missing something the caller needs (unknown round, ...); the message says what."""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9 // 10**6:03d}Z"


@dataclass(frozen=True)
class RoundAnchor:
    """An anchor of a round: the test example and the model's ``probs`` [p(non-entailment), p(entailment)] on it
    when the round started. :meth:`RoundState.create_round` takes them, :meth:`RoundState.anchors` returns them."""

    example: Example
    probs: list[float]

    @property
    def anchor_id(self) -> str:
        return self.example.id


@dataclass(frozen=True)
class RoundPair:
    """An (anchor, influential training example) pair of a round: ``rank`` 1 = most helpful, ``influence`` its
    score (negative = helpful), ``task_id`` its Label Studio task once pushed. :meth:`RoundState.create_round` takes
    them, :meth:`RoundState.pairs` returns them."""

    anchor_id: str
    example: Example
    rank: int
    influence: float
    task_id: int | None = None

    @property
    def example_id(self) -> str:
        return self.example.id

    @property
    def pair(self) -> PairKey:
        return (self.anchor_id, self.example.id)


@dataclass(frozen=True)
class Snapshot:
    """A stored snapshot of a round's ratings (its ratings: :meth:`RoundState.snapshot_ratings`). ``digest``:
    :func:`hildif.feedback.ratings.ratings_digest` of them; ``n_active``: how many are not deleted. ``created``:
    whether the :meth:`RoundState.add_snapshot` call that returned it stored it (False: the latest snapshot said
    the same already; always False when read back)."""

    snapshot_id: int
    round_id: str
    created_at: str
    digest: str
    n_active: int
    created: bool = field(default=False, compare=False)

    @classmethod
    def _from_row(cls, row: sqlite3.Row, created: bool = False) -> "Snapshot":
        return cls(int(row["snapshot_id"]), row["round_id"], row["created_at"], row["digest"], int(row["n_active"]),
                   created)


_RATING_FIELDS = tuple(f.name for f in fields(Rating))


def flatten_metrics(result: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"hans": {"accuracy": 51.0, "by_heuristic": {...}}}`` -> ``{"hans.accuracy": 51.0, ...}`` (numbers only)."""
    out: dict[str, float] = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_metrics(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


class RoundState:
    """Access to the round database. Each method opens a short connection; writes are single transactions.

    Safe to use from several threads and processes (WAL journal, ``BEGIN IMMEDIATE`` for writes).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._init_schema()

    # ------------------------------------------------------------------ connections
    def _init_schema(self) -> None:
        sqlite.open_database(self.path, ROUNDS_SCHEMA, timeout=60, error=RoundStateError)

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A connection (autocommit), closed on exit."""
        with sqlite.connection(self.path, timeout=60, rows=True, foreign_keys=True) as db:
            yield db

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        with self._read() as db, sqlite.transaction(db):
            yield db

    # ------------------------------------------------------------------ rounds, anchors, pairs
    def create_round(
        self,
        round_id: str,
        base_version: str,
        base_path: str,
        selection: dict[str, Any],
        config: dict[str, Any],
        anchors: Sequence[RoundAnchor],
        pairs: Sequence[RoundPair],
        *,
        annotators_per_task: int | None = None,
        project_title: str | None = None,
    ) -> None:
        """Record a round with its explained anchors (in order) and their pairs, atomically (the pairs' task ids are
        left empty: :meth:`set_task_ids` records them once pushed).

        ``annotators_per_task`` and ``project_title``: the Label Studio settings the round is started with (left
        empty, the first push records the config's)."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM rounds WHERE round_id = ?", (round_id,)).fetchone():
                raise RoundStateError(f"round {round_id!r} already exists in {self.path}")
            db.execute(
                "INSERT INTO rounds (round_id, created_at, project_id, project_title, base_version, base_path, "
                "selection, config, annotators_per_task) VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?)",
                (round_id, now(), project_title, base_version, base_path, json.dumps(selection),
                 json.dumps(config, default=str), annotators_per_task),
            )
            db.executemany(
                "INSERT INTO anchors VALUES (?, ?, ?, ?, ?)",
                [(round_id, a.anchor_id, i, json.dumps(a.example.to_dict()),
                  json.dumps([float(p) for p in a.probs])) for i, a in enumerate(anchors)],
            )
            db.executemany(
                "INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?, NULL)",
                [(round_id, p.anchor_id, p.example_id, int(p.rank), float(p.influence), json.dumps(p.example.to_dict()))
                 for p in pairs],
            )

    def round(self, round_id: str) -> dict[str, Any]:
        with self._read() as db:
            row = db.execute("SELECT * FROM rounds WHERE round_id = ?", (round_id,)).fetchone()
        if row is None:
            raise RoundStateError(f"unknown round {round_id!r} in {self.path} (known: {', '.join(self.round_ids()) or 'none'})")
        out = dict(row)
        out["selection"] = json.loads(out["selection"])
        out["config"] = json.loads(out["config"])
        return out

    def has_round(self, round_id: str) -> bool:
        with self._read() as db:
            return db.execute("SELECT 1 FROM rounds WHERE round_id = ?", (round_id,)).fetchone() is not None

    def open_rounds(self) -> dict[str, str]:
        """round id -> base version of every round not finished: no sync done yet, or a sync running now (what
        ``hildif cache prune`` keeps the caches of), oldest first."""
        with self._read() as db:
            rows = db.execute(
                "SELECT round_id, base_version FROM rounds r WHERE NOT EXISTS (SELECT 1 FROM syncs s WHERE "
                "s.round_id = r.round_id AND s.status = 'done') OR EXISTS (SELECT 1 FROM syncs s WHERE "
                "s.round_id = r.round_id AND s.status = 'running') ORDER BY created_at, round_id").fetchall()
        return {r["round_id"]: r["base_version"] for r in rows}

    def round_ids(self) -> list[str]:
        with self._read() as db:
            return [r[0] for r in db.execute("SELECT round_id FROM rounds ORDER BY created_at, round_id")]

    def rounds_of_project(self, project_id: int) -> list[str]:
        with self._read() as db:
            return [r[0] for r in db.execute(
                "SELECT round_id FROM rounds WHERE project_id = ? ORDER BY created_at, round_id", (project_id,))]

    def set_project(self, round_id: str, project_id: int, title: str, annotators_per_task: int | None = None) -> None:
        """Record the round's Label Studio project (and, unless recorded already, its overlap)."""
        with self._write() as db:
            db.execute("UPDATE rounds SET project_id = ?, project_title = ?, "
                       "annotators_per_task = COALESCE(annotators_per_task, ?) WHERE round_id = ?",
                       (project_id, title, annotators_per_task, round_id))

    def clear_task_ids(self, round_id: str, task_ids: Iterable[int]) -> int:
        """Forget the given task ids of the round (tasks deleted in Label Studio), so the next push re-creates
        them; returns how many pairs were cleared."""
        with self._write() as db:
            return sum(db.execute("UPDATE pairs SET task_id = NULL WHERE round_id = ? AND task_id = ?",
                                  (round_id, int(t))).rowcount for t in task_ids)

    def anchors(self, round_id: str) -> list[RoundAnchor]:
        with self._read() as db:
            rows = db.execute("SELECT * FROM anchors WHERE round_id = ? ORDER BY position", (round_id,)).fetchall()
        return [RoundAnchor(Example.from_dict(json.loads(r["example"])), json.loads(r["probs"])) for r in rows]

    def pairs(self, round_id: str) -> list[RoundPair]:
        with self._read() as db:
            rows = db.execute(
                "SELECT p.* FROM pairs p JOIN anchors a USING (round_id, anchor_id) WHERE p.round_id = ? "
                "ORDER BY a.position, p.rank", (round_id,)).fetchall()
        return [RoundPair(r["anchor_id"], Example.from_dict(json.loads(r["example"])), r["rank"], r["influence"],
                          r["task_id"]) for r in rows]

    def set_task_ids(self, round_id: str, task_ids: dict[PairKey, int]) -> None:
        """Record Label Studio task ids for pairs (by :data:`PairKey`), all or nothing."""
        with self._write() as db:
            for (aid, eid), tid in task_ids.items():
                cur = db.execute(
                    "UPDATE pairs SET task_id = ? WHERE round_id = ? AND anchor_id = ? AND example_id = ?",
                    (int(tid), round_id, aid, eid))
                if cur.rowcount != 1:
                    raise RoundStateError(f"round {round_id!r} has no pair ({aid}, {eid}) to attach task {tid} to")

    # ------------------------------------------------------------------ ratings snapshots
    def latest_snapshot(self, round_id: str) -> Snapshot | None:
        with self._read() as db:
            row = db.execute("SELECT * FROM snapshots WHERE round_id = ? ORDER BY snapshot_id DESC LIMIT 1",
                             (round_id,)).fetchone()
        return Snapshot._from_row(row) if row else None

    def snapshot(self, snapshot_id: int) -> Snapshot:
        with self._read() as db:
            row = db.execute("SELECT * FROM snapshots WHERE snapshot_id = ?", (snapshot_id,)).fetchone()
        if row is None:
            raise RoundStateError(f"unknown ratings snapshot {snapshot_id} in {self.path}")
        return Snapshot._from_row(row)

    def snapshot_ratings(self, snapshot_id: int) -> list[Rating]:
        """The ratings stored with a snapshot, as the records :meth:`add_snapshot` was given (deleted ones too)."""
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM ratings WHERE snapshot_id = ? ORDER BY anchor_id, example_id, annotator, source",
                (snapshot_id,)).fetchall()
        return [Rating(**{k: r[k] for k in _RATING_FIELDS}) for r in rows]

    def add_snapshot(self, round_id: str, ratings: Sequence[Rating]) -> Snapshot:
        """Store ``ratings`` as a new snapshot unless the latest one of the round says the same (same
        :func:`ratings_digest` and the same deleted set): then that one is returned (``created`` False)."""
        digest = ratings_digest(ratings)
        deleted = sorted(r.source for r in ratings if r.status == DELETED)
        with self._write() as db:
            last = db.execute("SELECT * FROM snapshots WHERE round_id = ? ORDER BY snapshot_id DESC LIMIT 1",
                              (round_id,)).fetchone()
            if last is not None and last["digest"] == digest:
                last_deleted = [r[0] for r in db.execute(
                    "SELECT source FROM ratings WHERE snapshot_id = ? AND status = ? ORDER BY source",
                    (last["snapshot_id"], DELETED))]
                if last_deleted == deleted:
                    return Snapshot._from_row(last)
            n_active = sum(1 for r in ratings if r.status in ACTIVE_STATUSES)
            cur = db.execute("INSERT INTO snapshots (round_id, created_at, digest, n_active) VALUES (?, ?, ?, ?)",
                             (round_id, now(), digest, n_active))
            sid = int(cur.lastrowid)
            db.executemany(
                "INSERT INTO ratings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(sid, r.source, r.anchor_id, r.example_id, r.annotator, r.score, r.status, r.updated_at)
                 for r in ratings],
            )
            row = db.execute("SELECT * FROM snapshots WHERE snapshot_id = ?", (sid,)).fetchone()
        return Snapshot._from_row(row, created=True)

    # ------------------------------------------------------------------ syncs
    def begin_sync(self, round_id: str, snapshot_id: int) -> int:
        with self._write() as db:
            cur = db.execute("INSERT INTO syncs (round_id, snapshot_id, started_at, status) VALUES (?, ?, ?, 'running')",
                             (round_id, snapshot_id, now()))
            return int(cur.lastrowid)

    def fail_sync(self, sync_id: int, error: str) -> None:
        with self._write() as db:
            db.execute("UPDATE syncs SET status = 'failed', finished_at = ?, error = ? WHERE sync_id = ?",
                       (now(), error[:4000], sync_id))

    def interrupt_running_syncs(self, reason: str) -> list[int]:
        """Mark every ``running`` sync ``failed`` with ``"interrupted: <reason>"``; returns their ids. Only for a
        caller that knows no sync runs (it holds the sync lock): a sync left ``running`` then died with its process."""
        with self._write() as db:
            ids = [r[0] for r in db.execute("SELECT sync_id FROM syncs WHERE status = 'running' ORDER BY sync_id")]
            db.executemany("UPDATE syncs SET status = 'failed', finished_at = ?, error = ? WHERE sync_id = ?",
                           [(now(), f"interrupted: {reason}", i) for i in ids])
        return ids

    def finish_sync(
        self,
        sync_id: int,
        *,
        scores: Sequence["AggregatedPair"],
        augmented: Sequence[Example],
        version: str,
        metrics: dict[str, Any],
        report_dir: str,
        summary: dict[str, Any],
    ) -> None:
        """Record everything a successful sync produced in one transaction (the model is already on disk).
        ``scores``: the aggregation's pairs (:class:`hildif.feedback.aggregation.AggregatedPair`), pending ones too."""
        with self._write() as db:
            row = db.execute("SELECT round_id FROM syncs WHERE sync_id = ?", (sync_id,)).fetchone()
            if row is None:
                raise RoundStateError(f"unknown sync {sync_id}")
            db.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [(sync_id, p.anchor_id, p.example_id, p.score, p.n_raters, p.spread, int(p.flagged),
                             int(p.pending)) for p in scores])
            db.executemany("INSERT INTO augmented VALUES (?, ?, ?)",
                           [(sync_id, i, json.dumps(ex.to_dict())) for i, ex in enumerate(augmented)])
            db.execute("INSERT OR IGNORE INTO evaluations VALUES (?, ?, ?)", (version, now(), json.dumps(metrics)))
            self._put_metrics(db, version, metrics)
            db.execute(
                "UPDATE syncs SET status = 'done', finished_at = ?, version = ?, report_dir = ?, summary = ? "
                "WHERE sync_id = ?", (now(), version, report_dir, json.dumps(summary, default=str), sync_id))

    @staticmethod
    def _put_metrics(db: sqlite3.Connection, version: str, metrics: dict[str, Any]) -> None:
        db.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?)",
                       [(version, k, v) for k, v in flatten_metrics(metrics).items()])

    def record_evaluation(self, version: str, metrics: dict[str, Any]) -> None:
        """Record the evaluation of a model version made outside a sync (a round's base model)."""
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?)", (version, now(), json.dumps(metrics)))
            self._put_metrics(db, version, metrics)

    def update_sync_summary(self, sync_id: int, patch: dict[str, Any]) -> None:
        """Merge ``patch`` into a sync's summary JSON (e.g. an admin's promotion), in one transaction."""
        with self._write() as db:
            row = db.execute("SELECT summary FROM syncs WHERE sync_id = ?", (sync_id,)).fetchone()
            if row is None:
                raise RoundStateError(f"unknown sync {sync_id}")
            summary = {**(json.loads(row[0]) if row[0] else {}), **patch}
            db.execute("UPDATE syncs SET summary = ? WHERE sync_id = ?", (json.dumps(summary, default=str), sync_id))

    def syncs(self, round_id: str) -> list[dict[str, Any]]:
        with self._read() as db:
            rows = [dict(r) for r in db.execute("SELECT * FROM syncs WHERE round_id = ? ORDER BY sync_id", (round_id,))]
        for r in rows:
            r["summary"] = json.loads(r["summary"]) if r["summary"] else None
        return rows

    def last_done_sync(self, round_id: str) -> dict[str, Any] | None:
        done = [s for s in self.syncs(round_id) if s["status"] == "done"]
        return done[-1] if done else None

    def scores(self, sync_id: int) -> list[dict[str, Any]]:
        with self._read() as db:
            return [dict(r) for r in db.execute(
                "SELECT * FROM scores WHERE sync_id = ? ORDER BY anchor_id, example_id", (sync_id,))]

    def augmented(self, sync_id: int) -> list[Example]:
        with self._read() as db:
            return [Example.from_dict(json.loads(r[0])) for r in db.execute(
                "SELECT example FROM augmented WHERE sync_id = ? ORDER BY position", (sync_id,))]

    def metrics(self, version: str) -> dict[str, float]:
        with self._read() as db:
            return {r["name"]: r["value"] for r in db.execute(
                "SELECT name, value FROM metrics WHERE version = ? ORDER BY name", (version,))}

    def evaluation(self, version: str) -> dict[str, Any] | None:
        """The full :func:`hildif.model.evaluation.evaluate` result recorded for ``version``, if any."""
        with self._read() as db:
            row = db.execute("SELECT evaluation FROM evaluations WHERE version = ?", (version,)).fetchone()
        return json.loads(row[0]) if row else None


def round_for_project(state: RoundState, project_id: int) -> str | None:
    """The round whose Label Studio project is ``project_id`` (what Label Studio's "Start training" button syncs),
    or None when no round uses it. Each round has a project of its own; a project shared by rounds of an older
    hildif maps to the latest of them."""
    rounds = state.rounds_of_project(int(project_id))
    if len(rounds) > 1:
        log.warning("Label Studio project %s is shared by rounds %s (made by an older hildif): taking the latest",
                    project_id, ", ".join(rounds))
    return rounds[-1] if rounds else None
