"""Process-wide state of one backend process, shared by its requests and its job thread: hildif's
:class:`~hildif.service.Service` (the served model, loaded once per version, and the rounds), the job queue, the
per-project key-value store, the webhook event log and keys, and the tokens Label Studio sent to /setup."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from hildif.config import HildifConfig
from hildif.service import Service
from hildif.utils import sqlite
from ml_backend import handlers
from ml_backend.events import EventLog
from ml_backend.influence_api import InfluenceJobs
from ml_backend.jobs import JobQueue
from ml_backend.settings import BackendSettings
from ml_backend.webhook_keys import WebhookKeys

log = logging.getLogger(__name__)

# the per-project key-value table (set up, webhook counts: ml_backend.events); version 1 = the table as first shipped
KV_SCHEMA = sqlite.Schema("kv_schema_version", 1, "CREATE TABLE IF NOT EXISTS kv (project TEXT, key TEXT, value TEXT, "
                                                  "PRIMARY KEY (project, key))")


class BackendRuntime:
    """Everything one backend process shares between requests and its job thread."""

    def __init__(self, cfg: HildifConfig, settings: BackendSettings | None = None, start_jobs: bool = True) -> None:
        self.cfg = cfg
        self.settings = settings or BackendSettings()
        self.service = Service(cfg)
        self.service.recover()  # a sync row left running by a killed backend (not if a sync runs now)
        self.db_path = Path(self.settings.db_path or cfg.run_path("backend.sqlite"))
        self.setups: dict[int, dict[str, str]] = {}  # project id -> {"hostname", "access_token"} from /setup
        self.jobs = JobQueue(self.db_path, handlers.make_handlers(self.service, self.label_studio_client),
                             secrets=self.secrets)
        self.influence_jobs = InfluenceJobs()  # POST /influence: the store-opening job of each version
        self._kv_init()
        self._warned: set[tuple[str, str]] = set()
        self._warned_lock = threading.Lock()
        self.events = EventLog(self.db_path)
        self.webhook_keys = WebhookKeys(self.db_path)  # per-project keys of Label Studio's webhooks
        if start_jobs:
            self.jobs.start()

    def label_studio_client(self, project_id: int | None):
        """A client from the configured URL and key; without a configured key, the token Label Studio sent to /setup
        for this project (the project creator's legacy token) is used."""
        from hildif.labelstudio.client import LabelStudioClient, LabelStudioError

        cfg = self.cfg.labelstudio
        try:
            return LabelStudioClient.from_config(cfg)
        except LabelStudioError:
            setup = self.setups.get(project_id or -1)
            if not setup or not setup.get("access_token"):
                raise
            return LabelStudioClient(cfg.url or setup["hostname"], setup["access_token"], cfg.timeout_s)

    def has_label_studio_access(self, project_id: int | None) -> bool:
        """Whether :meth:`label_studio_client` can build a client for the project (a configured key, or a token
        from /setup), without building it (webhooks answer at once)."""
        cfg = self.cfg.labelstudio
        if os.environ.get(cfg.api_key_env, "").strip() or cfg.api_key_file:
            return True
        return bool((self.setups.get(project_id or -1) or {}).get("access_token"))

    def warn_once(self, key: tuple[str, str], message: str) -> bool:
        """Log ``message`` as a warning the first time ``key`` is seen by this process; whether it was logged."""
        with self._warned_lock:
            if key in self._warned:
                return False
            self._warned.add(key)
        log.warning("%s", message)
        return True

    # ------------------------------------------------------------------ per-project key-value store
    def _kv_init(self) -> None:
        sqlite.open_database(self.db_path, KV_SCHEMA)

    def kv_get(self, project: str, key: str) -> Any:
        if key == "events":
            self.events.flush()
        with sqlite.connection(self.db_path) as db:
            row = db.execute("SELECT value FROM kv WHERE project = ? AND key = ?", (project, key)).fetchone()
        return json.loads(row[0]) if row else None

    def count_event(self, project: str, event: str) -> None:
        """Count a webhook event per project (``get("events")``), for diagnostics: queued, written in the background
        by :class:`ml_backend.events.EventLog`, so a webhook does no I/O."""
        self.events.record(project, event)

    def kv_set(self, project: str, key: str, value: Any) -> None:
        with sqlite.connection(self.db_path) as db:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (project, key, json.dumps(value)))

    def secrets(self) -> tuple[str, ...]:
        """Every secret this process knows (masked wherever a message could carry one)."""
        found = [self.settings.basic_auth[1]] if self.settings.basic_auth else []
        found += [s["access_token"] for s in self.setups.values() if s.get("access_token")]
        found += [os.environ.get(self.cfg.labelstudio.api_key_env, ""), os.environ.get("HILDIF_BACKEND_PASSWORD", "")]
        return tuple(s for s in found if s)

    def close(self) -> None:
        self.jobs.stop()
        self.events.close()
