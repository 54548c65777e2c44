"""The one SQLite connection helper: timeouts, autocommit with BEGIN IMMEDIATE transactions, WAL, versioned schemas."""

import sqlite3

import pytest

from hildif.utils import sqlite

SCHEMA_V2 = sqlite.Schema(
    "things_schema_version", 2,
    "CREATE TABLE IF NOT EXISTS things (id TEXT PRIMARY KEY, size INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS sizes (id TEXT PRIMARY KEY, size INTEGER)",
    {1: lambda db: db.execute("INSERT INTO sizes SELECT id, 1 FROM things")},
)


def _stored(path, key):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]


def test_connect_sets_the_busy_timeout_and_autocommit(tmp_path):
    with sqlite.connection(tmp_path / "a.sqlite", timeout=12.5, rows=True, foreign_keys=True) as db:
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 12500
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.isolation_level is None  # autocommit: writes outside a transaction commit at once
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")
        assert isinstance(db.execute("SELECT x FROM t").fetchone(), sqlite3.Row)
    with sqlite3.connect(tmp_path / "a.sqlite") as other:
        assert other.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_a_transaction_rolls_back_on_error_and_the_connection_closes(tmp_path):
    path = tmp_path / "a.sqlite"
    with sqlite.connection(path) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(RuntimeError), sqlite.connection(path) as db, sqlite.transaction(db):
        db.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")
    with pytest.raises(sqlite3.ProgrammingError):
        db.execute("SELECT 1")  # closed
    with sqlite.connection(path) as db:
        assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0
        with sqlite.transaction(db):
            db.execute("INSERT INTO t VALUES (2)")
        assert db.execute("SELECT x FROM t").fetchall() == [(2,)]


def test_open_database_sets_wal_creates_and_records_the_version(tmp_path):
    path = tmp_path / "a.sqlite"
    sqlite.open_database(path, SCHEMA_V2)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert _stored(path, "things_schema_version") == "2"
    sqlite.open_database(path, SCHEMA_V2)  # again: nothing to do
    assert _stored(path, "things_schema_version") == "2"


def test_an_old_schema_is_migrated_once_and_a_newer_one_refused(tmp_path):
    path = tmp_path / "a.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                         "INSERT INTO meta VALUES ('things_schema_version', '1');"
                         "CREATE TABLE things (id TEXT PRIMARY KEY, size INTEGER NOT NULL DEFAULT 0);"
                         "INSERT INTO things VALUES ('a', 5);")
    sqlite.open_database(path, SCHEMA_V2)
    sqlite.open_database(path, SCHEMA_V2)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id, size FROM sizes").fetchall() == [("a", 1)]  # migrated once, not twice
    assert _stored(path, "things_schema_version") == "2"
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '7' WHERE key = 'things_schema_version'")
    with pytest.raises(sqlite.SchemaVersionError, match="schema version 7, this hildif reads up to 2"):
        sqlite.open_database(path, SCHEMA_V2)


def test_an_unversioned_database_gets_its_version_from_the_schema(tmp_path):
    """A file written before it kept versions: ``unversioned`` says which version it is, and it is migrated."""
    from ml_backend.jobs import JOBS_SCHEMA

    path = tmp_path / "backend.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, params TEXT NOT NULL, status TEXT "
                   "NOT NULL, created_at REAL NOT NULL, started_at REAL, finished_at REAL, result TEXT, error TEXT)")
    sqlite.open_database(path, JOBS_SCHEMA)
    with sqlite3.connect(path) as db:
        assert "not_before" in {r[1] for r in db.execute("PRAGMA table_info(jobs)")}
    assert _stored(path, "jobs_schema_version") == "2"
    fresh = tmp_path / "fresh.sqlite"
    sqlite.open_database(fresh, JOBS_SCHEMA)
    assert _stored(fresh, "jobs_schema_version") == "2"


def test_every_database_of_hildif_opens_through_the_helper(tmp_path):
    """The round database and the backend's file: WAL, and each part's schema version recorded."""
    from hildif.rounds.state import SCHEMA_VERSION, RoundState
    from ml_backend.jobs import JobQueue
    from ml_backend.webhook_keys import WebhookKeys

    RoundState(tmp_path / "rounds.sqlite")
    JobQueue(tmp_path / "backend.sqlite", {})
    WebhookKeys(tmp_path / "backend.sqlite")
    for name in ("rounds.sqlite", "backend.sqlite"):
        with sqlite3.connect(tmp_path / name) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert _stored(tmp_path / "rounds.sqlite", "schema_version") == str(SCHEMA_VERSION)
    assert _stored(tmp_path / "backend.sqlite", "webhook_keys_schema_version") == "1"
