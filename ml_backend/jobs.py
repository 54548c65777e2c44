"""A background job queue whose state lives in SQLite, so a job's status survives a restart of the backend.

One worker thread runs jobs one at a time in submission order (training and influence want the whole machine).
``submit`` only inserts a row and wakes the worker, so a webhook handler answers in milliseconds. A job submitted
while an identical one (same kind and parameters) is still queued is not queued twice: the existing id comes back.
Jobs left ``running`` by a backend that died are marked ``failed`` ("interrupted") at the next start; the work they
did is safe because every step they call (a round sync) is itself atomic and can simply be submitted again.

A job may be scheduled: ``submit(..., not_before=t)`` keeps it queued until time ``t`` (a debounced retraining,
:mod:`ml_backend.retrain`). Submitting an identical job while one is queued never queues a second one: the queued
job keeps its id and runs at the earlier of the two times (``not_before=None`` = now).

Table ``jobs``: id, kind, params (JSON), status (queued | running | done | failed), created_at, started_at,
finished_at, result (JSON), error, not_before (epoch seconds; NULL = as soon as possible).

A failed job's stored error (returned by ``GET /jobs/<id>``) is ``"<ExceptionType>: <message>"`` only for hildif's
own errors, whose messages are written for users and name the field or file at fault without its content
(:data:`USER_ERRORS`); any other exception is stored as its type and a generic sentence, and logged with its
traceback frames but without its message (a library's message may quote a file's lines or a token).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
import traceback
import uuid
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

from hildif.utils import sqlite

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]

# Exceptions whose messages are meant for users (they name a field, file or round, never quote a file's content).
USER_ERRORS = ("hildif.rounds.start:RoundError", "hildif.rounds.state:RoundStateError",
               "hildif.influence.anchors:AnchorSelectionError", "hildif.labelstudio.client:LabelStudioError",
               "ml_backend.schema:FieldError", "hildif.tasks.definition:TaskError",
               "hildif.data.loaders:DataFormatError", "hildif.service:InfluenceNotReady")
MAX_ERROR_CHARS = 2000


def _user_error_types() -> tuple[type, ...]:
    found = []
    for spec in USER_ERRORS:
        module, _, name = spec.partition(":")
        try:
            found.append(getattr(import_module(module), name))
        except (ImportError, AttributeError):  # pragma: no cover - a module that cannot load raises none of them
            continue
    return tuple(found)


def safe_error(exc: BaseException, kind: str, job_id: str, secrets: tuple[str, ...] = ()) -> str:
    """The error stored and returned for a failed job: the message of a user-facing hildif error (with any known
    secret masked and every server path cut to its last name, at most MAX_ERROR_CHARS), else the exception type
    and a generic sentence."""
    if is_user_error(exc):
        return without_paths(redact(f"{type(exc).__name__}: {exc}", secrets))[:MAX_ERROR_CHARS]
    return f"{type(exc).__name__}: unexpected error in the {kind} job (details in the backend log, job {job_id})"


# an absolute path (or ~/...) after a space, quote, bracket, "=" or ",": the server's layout, never the caller's business
_SERVER_PATH = re.compile(r"""(?:(?<=^)|(?<=[\s'"(\[=,]))(?:~/|/)[^\s'"()\[\],;]*""")


def without_paths(text: str) -> str:
    """``text`` with each server path replaced by its last name (``.../rounds.sqlite``): an error message may name
    the file at fault, not where the server keeps it."""
    def last_name(m: re.Match[str]) -> str:
        name = m.group().rstrip("/").rsplit("/", 1)[-1]
        return f".../{name}" if name and name != "~" else "..."
    return _SERVER_PATH.sub(last_name, text)


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, _user_error_types())


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL, result TEXT, error TEXT, not_before REAL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at);
"""


def _jobs_version(db: sqlite3.Connection) -> int:
    """A jobs table from before versions were kept: 1 without the ``not_before`` column, else 2."""
    return 2 if "not_before" in {r[1] for r in db.execute("PRAGMA table_info(jobs)")} else 1


JOBS_SCHEMA = sqlite.Schema("jobs_schema_version", 2, _SCHEMA,
                            {1: lambda db: db.execute("ALTER TABLE jobs ADD COLUMN not_before REAL")}, _jobs_version)


class JobQueue:
    """Persisted FIFO of jobs run by one daemon thread.

    Args:
        path: the SQLite file.
        handlers: ``{kind: fn(params) -> JSON-able result}``; an exception marks the job failed with its message.
    """

    def __init__(self, path: str | Path, handlers: dict[str, Handler],
                 secrets: Callable[[], tuple[str, ...]] | None = None) -> None:
        self.path = Path(path)
        self.secrets = secrets or (lambda: ())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handlers = dict(handlers)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        sqlite.open_database(self.path, JOBS_SCHEMA)
        with self._db() as db:
            n = db.execute(
                "UPDATE jobs SET status = 'failed', finished_at = ?, error = 'interrupted: the backend stopped "
                "while this job ran; submit it again' WHERE status = 'running'", (time.time(),)).rowcount
        if n:
            log.warning("marked %d interrupted job(s) as failed", n)

    def _db(self):
        return sqlite.connection(self.path, rows=True)

    # ------------------------------------------------------------------ API
    def submit(self, kind: str, params: dict[str, Any] | None = None,
               not_before: float | None = None, while_running: bool = False) -> tuple[str, bool]:
        """Queue a job to run once ``not_before`` (epoch seconds; None = now) has passed; returns (job id, created).
        An identical queued job is reused (created False) and moved to the earlier of its time and ``not_before``;
        with ``while_running``, so is an identical job that is running now (a replayed request finds it)."""
        if kind not in self.handlers:
            raise ValueError(f"unknown job kind {kind!r} (known: {', '.join(sorted(self.handlers))})")
        blob = json.dumps(params or {}, sort_keys=True)
        statuses = "('queued', 'running')" if while_running else "('queued')"
        with self._db() as db, sqlite.transaction(db):
            row = db.execute(f"SELECT id, not_before FROM jobs WHERE kind = ? AND params = ? AND status IN {statuses} "
                             "ORDER BY status = 'queued' DESC LIMIT 1", (kind, blob)).fetchone()
            if row:
                if row["not_before"] is not None and (not_before is None or not_before < row["not_before"]):
                    db.execute("UPDATE jobs SET not_before = ? WHERE id = ?", (not_before, row["id"]))
                job_id, created = row["id"], False
            else:
                job_id, created = uuid.uuid4().hex, True
                db.execute("INSERT INTO jobs (id, kind, params, status, created_at, not_before) "
                           "VALUES (?, ?, ?, 'queued', ?, ?)", (job_id, kind, blob, time.time(), not_before))
        self._wake.set()
        return job_id, created

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _decode(row) if row else None

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [_decode(r) for r in rows]

    def wait(self, job_id: str, timeout: float = 600.0, poll: float = 0.2) -> dict[str, Any]:
        """Block until the job is done or failed (for tests and the CLI); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(job_id)
            if job and job["status"] in ("done", "failed"):
                return job
            time.sleep(poll)
        raise TimeoutError(f"job {job_id} not finished after {timeout:.0f} s (status {self.get(job_id)})")

    # ------------------------------------------------------------------ worker
    def start(self) -> "JobQueue":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="hildif-jobs", daemon=True)
            self._thread.start()
            self._wake.set()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _claim(self) -> dict[str, Any] | None:
        with self._db() as db, sqlite.transaction(db):
            row = db.execute("SELECT * FROM jobs WHERE status = 'queued' AND (not_before IS NULL OR not_before <= ?) "
                             "ORDER BY created_at LIMIT 1", (time.time(),)).fetchone()
            if row is not None:
                db.execute("UPDATE jobs SET status = 'running', started_at = ? WHERE id = ?", (time.time(), row["id"]))
        return _decode(row) if row else None

    def _idle_wait(self, longest: float = 5.0) -> float:
        """Seconds until the next scheduled job is due (at most ``longest``)."""
        with self._db() as db:
            due = db.execute("SELECT MIN(not_before) FROM jobs WHERE status = 'queued'").fetchone()[0]
        return longest if due is None else min(longest, max(0.05, due - time.time()))

    def _finish(self, job_id: str, status: str, result: Any = None, error: str | None = None) -> None:
        with self._db() as db:
            db.execute("UPDATE jobs SET status = ?, finished_at = ?, result = ?, error = ? WHERE id = ?",
                       (status, time.time(), json.dumps(result, default=str) if result is not None else None,
                        error, job_id))

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self._claim()
            if job is None:
                self._wake.wait(self._idle_wait())
                self._wake.clear()
                continue
            log.info("job %s (%s) started", job["id"], job["kind"])
            try:
                result = self.handlers[job["kind"]](job["params"])
            except Exception as exc:  # a failed job must not kill the worker
                error = safe_error(exc, job["kind"], job["id"], self.secrets())
                log.error("job %s (%s) failed: %s", job["id"], job["kind"], error)
                if not is_user_error(exc):  # frames only: the message may quote a file or a token
                    log.error("job %s traceback (message withheld):\n%s", job["id"],
                              "".join(traceback.format_tb(exc.__traceback__))[-4000:])
                self._finish(job["id"], "failed", error=error)
            else:
                log.info("job %s (%s) done", job["id"], job["kind"])
                self._finish(job["id"], "done", result=result)


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["params"] = json.loads(d["params"]) if d.get("params") else {}
    d["result"] = json.loads(d["result"]) if d.get("result") else None
    return d
