"""The model Label Studio talks to, shaped like label-studio-ml 2.x's ``LabelStudioMLBase``.

``HildifModel(project_id, label_config, runtime=...)`` has ``setup()``, ``predict(tasks, context=None, **kwargs)``
returning ``{"predictions": [...], "model_version": ...}`` (2.x's ``ModelResponse`` as a dict), ``fit(event, data,
**kwargs)``, ``get(key)`` / ``set(key, value)`` (a per-project key-value store, persisted in the backend database)
and ``model_version``. A team running the label-studio-ml 2.x server can subclass its base with these methods.

It only converts Label Studio's JSON to calls of :class:`hildif.service.Service` (held by the process-wide
:class:`ml_backend.runtime.BackendRuntime`) and their answers back to Label Studio's JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from hildif.labelstudio.convert import FROM_NAME, SCORE_CHOICES, TO_NAME

if TYPE_CHECKING:  # pragma: no cover
    from ml_backend.runtime import BackendRuntime

# Label Studio's webhook actions for annotations; these are only acknowledged (a sync pulls everything anyway).
ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED", "ANNOTATIONS_DELETED")
TRAIN_EVENT = "START_TRAINING"


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
        return self.runtime.service.current_version() or "none"

    def setup(self) -> None:
        """Called on /setup: remember the project's label config."""
        if self.label_config:
            self.set("label_config", self.label_config)

    def predict(self, tasks: Sequence[dict[str, Any]], context: dict[str, Any] | None = None, **kwargs: Any) -> dict:
        """One prediction per task, in order. Rating tasks get a pre-filled similarity choice only when
        pre-annotation is on; otherwise (the default) an empty result, so raters are not biased."""
        version = self.model_version
        empty = {"result": [], "score": 0.0, "model_version": version}
        if not self.runtime.settings.preannotate:
            return {"predictions": [dict(empty) for _ in tasks], "model_version": version}
        service = self.runtime.service
        preds = []
        for task in tasks:
            data = task.get("data") or {}
            cos = None
            if data.get("anchor_premise") and data.get("example_premise"):
                cos = service.similarity((data["anchor_premise"], data.get("anchor_hypothesis", "")),
                                         (data["example_premise"], data.get("example_hypothesis", "")))
            if cos is None:  # not a rating task, or no model served yet
                preds.append(dict(empty))
                continue
            preds.append({
                "result": [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
                            "value": {"choices": [SCORE_CHOICES[similarity_score(cos) - 1]]}}],
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
            round_id = self.runtime.service.round_for_project(pid)
            if round_id is None:
                return {"status": "ignored", "reason": f"no hildif round uses Label Studio project {pid}"}
            job_id, created = self.runtime.jobs.submit("sync", {"round_id": round_id, "project_id": pid})
            return {"status": "queued" if created else "already queued", "job_id": job_id, "round_id": round_id}
        if event in ANNOTATION_EVENTS or event.startswith("ANNOTATION"):
            return {"status": "noted", "event": event}
        return {"status": "ignored", "event": event}


__all__ = ["ANNOTATION_EVENTS", "HildifModel", "TRAIN_EVENT", "project_id_of", "similarity_score"]
