"""The one way hildif opens its SQLite files: a busy timeout, autocommit with explicit ``BEGIN IMMEDIATE`` write
transactions, the WAL journal, and schemas that carry their version and migrate one step per transaction.

Users: the round database (:mod:`hildif.rounds.state`) and the backend's file (``ml_backend.jobs``, ``events``,
``runtime``, ``webhook_keys``: one file, each part with its own :class:`Schema` and version key in ``meta``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from hildif.errors import HildifError

DEFAULT_TIMEOUT_S = 30.0
META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
Migration = Callable[[sqlite3.Connection], None]


class SchemaVersionError(HildifError, RuntimeError):
    """A database written by a newer hildif (or an old version with no migration); the message names the file."""


def connect(path: str | Path, *, timeout: float = DEFAULT_TIMEOUT_S, rows: bool = False,
            foreign_keys: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (``isolation_level=None``: a write outside :func:`transaction` commits at
    once) that waits up to ``timeout`` seconds for a lock; ``rows``: :class:`sqlite3.Row` rows."""
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    if rows:
        db.row_factory = sqlite3.Row
    if foreign_keys:
        db.execute("PRAGMA foreign_keys = ON")
    db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    return db


@contextlib.contextmanager
def connection(path: str | Path, **kwargs) -> Iterator[sqlite3.Connection]:
    """:func:`connect` as a ``with`` block, closed on exit (sqlite3's own ``with`` only commits); closing rolls back
    a transaction left open by an exception."""
    db = connect(path, **kwargs)
    try:
        yield db
    finally:
        db.close()


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction on ``db`` (``BEGIN IMMEDIATE``: the write lock is taken first, so two writers never
    deadlock on an upgrade): committed on success, rolled back on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@dataclass(frozen=True)
class Schema:
    """A versioned schema: ``script`` creates the latest tables (``CREATE ... IF NOT EXISTS``), ``migrations[v]``
    takes a database from version v to v + 1 (in the caller's transaction), the version is kept in table ``meta``
    under ``version_key``. ``unversioned(db)``: the version of a database that has no record yet (one written
    before it kept versions); without it such a database is taken as new, at ``version``."""

    version_key: str
    version: int
    script: str
    migrations: dict[int, Migration] = field(default_factory=dict)
    unversioned: Callable[[sqlite3.Connection], int] | None = None


def _stored(db: sqlite3.Connection, key: str) -> int | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else int(row[0])


def open_database(path: str | Path, schema: Schema, *, timeout: float = DEFAULT_TIMEOUT_S,
                  error: type[Exception] = SchemaVersionError) -> None:
    """Create or migrate ``path`` to ``schema``: WAL journal, the tables (``script`` runs first, so a migration may
    fill a table it creates), then each missing migration step in its own transaction (a concurrent opener may have
    done it already: the version is read again inside). ``error(message)`` is raised for a version this code cannot
    read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with connection(path, timeout=timeout) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(f"{META};\n{schema.script}")
        with transaction(db):
            version = _stored(db, schema.version_key)
            if version is None:
                version = schema.unversioned(db) if schema.unversioned is not None else schema.version
                db.execute("INSERT INTO meta VALUES (?, ?)", (schema.version_key, str(version)))
        if version > schema.version or any(v not in schema.migrations for v in range(version, schema.version)):
            raise error(f"{path}: schema version {version}, this hildif reads up to {schema.version}")
        while version < schema.version:
            with transaction(db):
                if _stored(db, schema.version_key) == version:
                    schema.migrations[version](db)
                    db.execute("UPDATE meta SET value = ? WHERE key = ?", (str(version + 1), schema.version_key))
                version = _stored(db, schema.version_key) or version
