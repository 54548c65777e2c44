"""The model Label Studio talks to, shaped like label-studio-ml 2.x's ``LabelStudioMLBase``.

``HildifModel(project_id, label_config, runtime=...)`` has ``setup()``, ``predict(tasks, context=None, **kwargs)``
returning ``{"predictions": [...], "model_version": ...}`` (2.x's ``ModelResponse`` as a dict), ``fit(event, data,
**kwargs)``, ``get(key)`` / ``set(key, value)`` (a per-project key-value store, persisted in the backend database)
and ``model_version``. A team running the label-studio-ml 2.x server can subclass its base with these methods.

Process-wide state (the loaded classifier, the job queue, the round database) lives in one :class:`BackendRuntime`,
so the classifier is loaded once per model version, not per request: each call compares the registry's current
version with the loaded one (one small file read) and reloads only when a sync switched it.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hildif.config import HildifConfig
from hildif.data.example import Example
from hildif.labelstudio.convert import CHOICE_SCORES, FROM_NAME, SCORE_CHOICES, TO_NAME
from hildif.model.registry import ModelRegistry
from hildif.rounds.state import RoundState, round_for_project
from hildif.rounds.sync import recover_interrupted_syncs
from ml_backend.events import EventLog
from ml_backend.jobs import JobQueue
from ml_backend.settings import BackendSettings

log = logging.getLogger(__name__)

# Label Studio's webhook actions for annotations; these are only acknowledged (a sync pulls everything anyway).
ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED", "ANNOTATIONS_DELETED")
TRAIN_EVENT = "START_TRAINING"


class BackendRuntime:
    """Everything one backend process shares between requests and its job thread."""

    def __init__(self, cfg: HildifConfig, settings: BackendSettings | None = None, start_jobs: bool = True) -> None:
        from ml_backend import handlers  # the job kinds: sync and start (import here: they pull in torch)

        self.cfg = cfg
        self.settings = settings or BackendSettings()
        self.registry = ModelRegistry(cfg.run.run_dir)
        self.state = RoundState(cfg.run_path("rounds.sqlite"))
        recover_interrupted_syncs(cfg)  # a sync row left running by a killed backend (not if a sync runs now)
        self.db_path = Path(self.settings.db_path or cfg.run_path("backend.sqlite"))
        self.setups: dict[int, dict[str, str]] = {}  # project id -> {"hostname", "access_token"} from /setup
        self.jobs = JobQueue(self.db_path, handlers.make_handlers(self), secrets=self.secrets)
        self._kv_init()
        self.events = EventLog(self.db_path)
        self._lock = threading.Lock()
        # Hugging Face fast tokenizers are not thread-safe (concurrent calls change each other's padding: seen as
        # "expected sequence of length 15 at dim 1 (got 12)" under 50 concurrent /predict): one inference at a time.
        self.inference_lock = threading.Lock()
        self._classifier = None
        self._classifier_version: str | None = None
        if start_jobs:
            self.jobs.start()

    # ------------------------------------------------------------------ the served model
    def current_version(self) -> str | None:
        return self.registry.current()

    def classifier(self):
        """The current model version, loaded once and reloaded only when the registry's pointer moves."""
        version = self.current_version()
        if version is None:
            return None
        with self._lock:
            if self._classifier is None or self._classifier_version != version:
                from hildif.model.loading import load_version

                log.info("loading model version %s", version)
                self._classifier = load_version(self.cfg, version)
                self._classifier_version = version
            return self._classifier

    def loaded_version(self) -> str | None:
        return self._classifier_version

    # ------------------------------------------------------------------ per-project key-value store
    def _kv_init(self) -> None:
        db = sqlite3.connect(self.db_path, timeout=30)
        with db:
            db.execute("CREATE TABLE IF NOT EXISTS kv (project TEXT, key TEXT, value TEXT, PRIMARY KEY (project, key))")
        db.close()

    def kv_get(self, project: str, key: str) -> Any:
        if key == "events":
            self.events.flush()
        db = sqlite3.connect(self.db_path, timeout=30)
        try:
            row = db.execute("SELECT value FROM kv WHERE project = ? AND key = ?", (project, key)).fetchone()
        finally:
            db.close()
        return json.loads(row[0]) if row else None

    def count_event(self, project: str, event: str) -> None:
        """Count a webhook event per project (``get("events")``), for diagnostics: queued, written in the background
        by :class:`ml_backend.events.EventLog`, so a webhook does no I/O."""
        self.events.record(project, event)

    def kv_set(self, project: str, key: str, value: Any) -> None:
        db = sqlite3.connect(self.db_path, timeout=30)
        with db:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (project, key, json.dumps(value)))
        db.close()

    def secrets(self) -> tuple[str, ...]:
        """Every secret this process knows (masked wherever a message could carry one)."""
        found = [self.settings.basic_auth[1]] if self.settings.basic_auth else []
        found += [s["access_token"] for s in self.setups.values() if s.get("access_token")]
        found += [os.environ.get(self.cfg.labelstudio.api_key_env, ""), os.environ.get("HILDIF_BACKEND_PASSWORD", "")]
        return tuple(s for s in found if s)

    def close(self) -> None:
        self.jobs.stop()
        self.events.close()


def project_id_of(value: Any) -> int | None:
    """Label Studio names projects ``"<id>.<created timestamp>"`` in /setup and /predict, an int or a dict elsewhere."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("id")
    try:
        return int(str(value).split(".")[0])
    except ValueError:
        return None


def similarity_score(cosine: float) -> int:
    """Map a cosine similarity in [-1, 1] to the five-point scale: equal-width bins, 1 = Very different."""
    return int(min(5, max(1, 1 + int((float(cosine) + 1.0) / 2.0 * 5))))


class HildifModel:
    """hildif's answer to Label Studio for one project (label-studio-ml 2.x ``LabelStudioMLBase`` shape)."""

    def __init__(self, project_id: str | None = None, label_config: str | None = None, *, runtime: BackendRuntime):
        self.project_id = str(project_id) if project_id is not None else ""
        self.label_config = label_config
        self.runtime = runtime

    # -- LabelStudioMLBase API
    def get(self, key: str) -> Any:
        return self.runtime.kv_get(self.project_id, key)

    def set(self, key: str, value: Any) -> None:
        self.runtime.kv_set(self.project_id, key, value)

    @property
    def model_version(self) -> str:
        return self.runtime.current_version() or "none"

    def setup(self) -> None:
        """Called on /setup: remember the project's label config."""
        if self.label_config:
            self.set("label_config", self.label_config)

    def predict(self, tasks: Sequence[dict[str, Any]], context: dict[str, Any] | None = None, **kwargs: Any) -> dict:
        """One prediction per task, in order. Rating tasks get a pre-filled similarity choice only when
        pre-annotation is on; otherwise (the default) an empty result, so raters are not biased."""
        version = self.model_version
        if not self.runtime.settings.preannotate:
            return {"predictions": [{"result": [], "score": 0.0, "model_version": version} for _ in tasks],
                    "model_version": version}
        clf = self.runtime.classifier()
        preds = []
        for task in tasks:
            data = task.get("data") or {}
            if clf is None or not data.get("anchor_premise") or not data.get("example_premise"):
                preds.append({"result": [], "score": 0.0, "model_version": version})
                continue
            pair = [Example("anchor", data["anchor_premise"], data.get("anchor_hypothesis", ""), 0),
                    Example("example", data["example_premise"], data.get("example_hypothesis", ""), 0)]
            with self.runtime.inference_lock:
                feats = clf.features(pair)
            cos = float(np.dot(feats[0], feats[1]) / (np.linalg.norm(feats[0]) * np.linalg.norm(feats[1]) + 1e-12))
            score = similarity_score(cos)
            preds.append({
                "result": [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
                            "value": {"choices": [SCORE_CHOICES[score - 1]]}}],
                "score": round(abs(cos), 4), "model_version": version,
            })
        return {"predictions": preds, "model_version": version}

    def fit(self, event: str, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Webhook events. START_TRAINING queues a sync of the project's round and returns at once."""
        self.runtime.count_event(self.project_id or str(project_id_of(data.get("project")) or ""), event)
        if event == TRAIN_EVENT:
            pid = project_id_of(data.get("project")) or project_id_of(self.project_id)
            if pid is None:
                return {"status": "ignored", "reason": "START_TRAINING without a project id"}
            round_id = round_for_project(self.runtime.state, pid)
            if round_id is None:
                return {"status": "ignored", "reason": f"no hildif round uses Label Studio project {pid}"}
            job_id, created = self.runtime.jobs.submit("sync", {"round_id": round_id, "project_id": pid})
            return {"status": "queued" if created else "already queued", "job_id": job_id, "round_id": round_id}
        if event in ANNOTATION_EVENTS or event.startswith("ANNOTATION"):
            return {"status": "noted", "event": event}
        return {"status": "ignored", "event": event}


__all__ = ["BackendRuntime", "BackendSettings", "HildifModel", "CHOICE_SCORES", "similarity_score", "project_id_of"]
