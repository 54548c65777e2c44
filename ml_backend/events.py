"""Webhook bookkeeping that never makes Label Studio wait: counts per project and event, written to the backend
database by one background thread (one short transaction per batch), plus the refused webhooks.

A webhook handler only calls :meth:`EventLog.record` (an in-memory queue put) and answers; the writer drains the queue
every ``interval`` seconds. Readers call :meth:`flush` first, so what they read includes every recorded event; the
queue is also flushed when the runtime closes and at interpreter exit. One writer means no lost increments without
taking SQLite's write lock in every request (50 concurrent posts used to queue on ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import threading
from collections import Counter
from pathlib import Path

from hildif.utils import sqlite

log = logging.getLogger(__name__)


class EventLog:
    def __init__(self, db_path: str | Path, interval: float = 0.05) -> None:
        self.db_path = Path(db_path)
        self.interval = interval
        self._queue: "queue.SimpleQueue[tuple[str, str]]" = queue.SimpleQueue()
        self._write_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._accepted = 0
        self._refused: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hildif-webhook-events", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # ------------------------------------------------------------------ request side (no I/O)
    def record(self, project: str, event: str) -> None:
        self._queue.put((project, event))
        with self._stats_lock:
            self._accepted += 1

    def refused(self, project: int | None, reason: str) -> None:
        with self._stats_lock:
            self._refused[reason] += 1
            total = sum(self._refused.values())
        log.warning("webhook refused (%s) for project %s; %d refused so far", reason,
                    project if project is not None else "?", total)

    def totals(self) -> dict[str, object]:
        with self._stats_lock:
            return {"accepted": self._accepted, "refused": sum(self._refused.values()),
                    "refused_by_reason": dict(self._refused)}

    # ------------------------------------------------------------------ writer
    def flush(self) -> None:
        """Write every queued event now (callers that read the counts call this first)."""
        with self._write_lock:
            batch: Counter[tuple[str, str]] = Counter()
            while True:
                try:
                    batch[self._queue.get_nowait()] += 1
                except queue.Empty:
                    break
            if batch:
                self._write(batch)

    def _write(self, batch: Counter[tuple[str, str]]) -> None:
        with sqlite.connection(self.db_path) as db, sqlite.transaction(db):
            for project in sorted({p for p, _ in batch}):
                row = db.execute("SELECT value FROM kv WHERE project = ? AND key = 'events'", (project,)).fetchone()
                counts = json.loads(row[0]) if row else {}
                for (p, event), n in batch.items():
                    if p == project:
                        counts[event] = counts.get(event, 0) + n
                db.execute("INSERT OR REPLACE INTO kv VALUES (?, 'events', ?)", (project, json.dumps(counts)))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception as exc:  # keep running; the events stay counted in memory only
                log.error("writing webhook counts failed: %s", type(exc).__name__)

    def close(self) -> None:
        self._stop.set()
        try:
            self.flush()
        except Exception as exc:  # pragma: no cover - at exit
            log.error("writing webhook counts at exit failed: %s", type(exc).__name__)
