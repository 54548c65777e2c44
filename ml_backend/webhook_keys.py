"""Random per-project webhook keys, kept by the backend (table ``webhook_keys`` of its database).

Label Studio sends webhooks without the backend's credentials; the project's webhook carries a key instead, in the
header :data:`hildif.labelstudio.webhook.WEBHOOK_SECRET_HEADER`. A key is 256 random bits (``secrets.token_urlsafe``),
issued by ``POST /webhook-keys`` (basic auth) when hildif connects the backend to a project; issuing again rotates it
(the old key stops working at once). Only its SHA-256 is stored, so the database does not hold usable keys, and a key
says nothing about the backend password (the old HMAC of the project id under the password let a leaked secret be
brute-forced offline). The key names its project: a webhook is authenticated from its header before its body is
read, and a body about another project is refused.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from pathlib import Path

from hildif.utils import sqlite

_SCHEMA = ("CREATE TABLE IF NOT EXISTS webhook_keys (project INTEGER PRIMARY KEY, digest TEXT NOT NULL UNIQUE, "
           "created_at REAL NOT NULL)")
WEBHOOK_KEYS_SCHEMA = sqlite.Schema("webhook_keys_schema_version", 1, _SCHEMA)
MAX_KEY_CHARS = 200


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


class WebhookKeys:
    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path)
        self._lock = threading.Lock()
        sqlite.open_database(self.db_path, WEBHOOK_KEYS_SCHEMA)
        with self._db() as db:
            self._projects = {d: p for p, d in db.execute("SELECT project, digest FROM webhook_keys")}

    def _db(self):
        return sqlite.connection(self.db_path)

    def issue(self, project: int) -> str:
        """A new key for ``project``, replacing its previous one (returned once; only its digest is kept)."""
        key = secrets.token_urlsafe(32)
        with self._lock:
            with self._db() as db:
                db.execute("INSERT OR REPLACE INTO webhook_keys VALUES (?, ?, ?)", (project, _digest(key), time.time()))
            self._projects = {d: p for d, p in self._projects.items() if p != project}
            self._projects[_digest(key)] = project
        return key

    def project_of(self, key: str | None) -> int | None:
        """The project ``key`` was issued for; None for no key or an unknown (or rotated) one."""
        if not key or len(key) > MAX_KEY_CHARS:
            return None
        return self._projects.get(_digest(key))
