"""The model Label Studio talks to, shaped like label-studio-ml 2.x's ``LabelStudioMLBase``.

``HildifModel(project_id, label_config, runtime=...)`` has ``setup()``, ``predict(tasks, context=None, **kwargs)``
returning ``{"predictions": [...], "model_version": ...}`` (2.x's ``ModelResponse`` as a dict), ``fit(event, data,
**kwargs)``, ``get(key)`` / ``set(key, value)`` (a per-project key-value store, persisted in the backend database)
and ``model_version``. A team running the label-studio-ml 2.x server can subclass its base with these methods.

What a project gets depends on its label config (:mod:`ml_backend.projects`): hildif's rating projects a similarity
pre-annotation (or nothing), a team's text-classification project the served model's label in its own tags.

It only converts Label Studio's JSON to calls of :class:`hildif.service.Service` (held by the process-wide
:class:`ml_backend.runtime.BackendRuntime`) and their answers back to Label Studio's JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from hildif.labelstudio.convert import FROM_NAME, SCORE_CHOICES, TO_NAME
from hildif.tasks.labelstudio_export import TextClassificationConfig
from ml_backend.projects import (
    TEXT, ProjectConfig, UnservableConfig, choices_result, read_label_config, served_tags, task_texts,
)
from ml_backend.retrain import queue_training, training_blocker
from ml_backend.schema import project_id

if TYPE_CHECKING:  # pragma: no cover
    from ml_backend.runtime import BackendRuntime

# Label Studio's webhook actions for annotations: acknowledged (a sync pulls everything anyway); for a text-
# classification project they may queue a debounced retraining (BackendSettings.retrain_on_annotations).
ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED", "ANNOTATIONS_DELETED")
TRAIN_EVENT = "START_TRAINING"
MAX_LABEL_CONFIG_CHARS = 200_000


def project_id_of(value: Any) -> int | None:
    """Label Studio names projects ``"<id>.<created timestamp>"`` in /setup and /predict, an int or a dict elsewhere
    (:func:`ml_backend.schema.project_id`: an id out of range is a FieldError naming ``project``)."""
    return project_id("project", value)


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
        """Called on /setup: check and remember the project's label config. A config hildif cannot serve (neither its
        rating config nor a text-classification config) raises :class:`UnservableConfig` naming what is missing."""
        if self.label_config:
            read_label_config(self.label_config, "schema")
            self.set("label_config", self.label_config)

    def project_config(self, label_config: Any = None, field_name: str = "label_config") -> ProjectConfig | None:
        """What this project is (:mod:`ml_backend.projects`), from ``label_config``, else the config given to this
        model, else the one /setup stored; None when none is known."""
        xml = label_config if isinstance(label_config, str) and label_config.strip() else self.label_config
        if not xml and self.project_id:
            stored = self.get("label_config")
            xml, field_name = (stored, "schema") if isinstance(stored, str) else (None, field_name)
        return read_label_config(xml, field_name) if xml else None

    def predict(self, tasks: Sequence[dict[str, Any]], context: dict[str, Any] | None = None, **kwargs: Any) -> dict:
        """One prediction per task, in order. A text-classification project gets the served model's label in its
        own ``<Choices>`` (:meth:`_predict_text`). Rating tasks get a pre-filled similarity choice only when
        pre-annotation is on; otherwise (the default) an empty result, so raters are not biased."""
        config = self.project_config()
        if config is not None and config.kind == TEXT:
            return self._predict_text(tasks, config.text)
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

    def _predict_text(self, tasks: Sequence[dict[str, Any]], config: TextClassificationConfig) -> dict:
        """The served model's most probable label per task, as a ``choices`` result in the project's own tags, its
        probability as the score. Empty predictions (with a warning logged once per project and model version)
        when no model is served or its labels are not the project's; an empty prediction for a task whose data
        lacks the text."""
        service, where = self.runtime.service, f"Label Studio project {self.project_id or '?'}"
        probe = service.classify([])
        version = probe.version if probe is not None else self.model_version

        def empty() -> dict[str, Any]:
            return {"result": [], "score": 0.0, "model_version": version}

        if probe is None:
            self.runtime.warn_once((self.project_id, "no model"), f"{where}: no model is served yet, predictions are "
                                   "empty; train one (Start training in Label Studio, or hildif train)")
            return {"predictions": [empty() for _ in tasks], "model_version": version}
        tags = served_tags(config, probe.labels)
        if isinstance(tags, str):
            self.runtime.warn_once((self.project_id, f"labels {version}"), f"{where}: predictions are empty: {tags}")
            return {"predictions": [empty() for _ in tasks], "model_version": version}
        texts = [task_texts(t, tags.keys) for t in tasks]
        missing = sum(t is None for t in texts)
        if missing:
            self.runtime.warn_once((self.project_id, f"text {tags.keys}"), f"{where}: {missing} of {len(tasks)} "
                                   f"task(s) have no text in data.{' / data.'.join(tags.keys)}: their predictions "
                                   "are empty")
        valid = [i for i, t in enumerate(texts) if t is not None]
        answer = service.classify([texts[i] for i in valid]) if valid else probe
        if answer is None or answer.labels != probe.labels:  # the served model changed meanwhile: answer next time
            return {"predictions": [empty() for _ in tasks], "model_version": version}
        version = answer.version
        preds = [empty() for _ in tasks]
        for row, i in enumerate(valid):
            best = int(answer.probs[row].argmax())
            preds[i] = {"result": choices_result(tags, answer.labels[best]),
                        "score": round(float(answer.probs[row][best]), 4), "model_version": version}
        return {"predictions": preds, "model_version": version}

    def fit(self, event: str, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Webhook events. START_TRAINING queues a sync of the project's round, or for a text-classification project
        a ``train`` job on its annotated tasks (:mod:`ml_backend.retrain`), and returns at once; when nothing can be
        done the answer is ``{"status": "refused", "reason": ...}``. Annotation events of a text-classification
        project queue a debounced ``train`` job when ``retrain_on_annotations`` is on."""
        pid = project_id_of(data.get("project")) or project_id_of(self.project_id)
        self.runtime.count_event(self.project_id or str(pid or ""), event)
        if event == TRAIN_EVENT:
            return self._start_training(pid, data)
        if event in ANNOTATION_EVENTS or event.startswith("ANNOTATION"):
            noted: dict[str, Any] = {"status": "noted", "event": event}
            settings = self.runtime.settings
            if settings.retrain_on_annotations and pid is not None:
                try:
                    config = self._payload_config(data)
                except UnservableConfig:
                    config = None
                if config is not None and config.kind == TEXT and training_blocker(self.runtime, pid) is None:
                    noted["train"] = queue_training(self.runtime, pid, settings.retrain_debounce_s)
            return noted
        return {"status": "ignored", "event": event}

    def _start_training(self, pid: int | None, data: dict[str, Any]) -> dict[str, Any]:
        if pid is None:
            return refused("START_TRAINING without a project id")
        round_id = self.runtime.service.round_for_project(pid)
        if round_id is not None:  # a replayed START_TRAINING finds the project's sync while it is queued or running
            job_id, created = self.runtime.jobs.submit("sync", {"round_id": round_id, "project_id": pid},
                                                       while_running=True)
            status = "queued" if created else f"already {(self.runtime.jobs.get(job_id) or {}).get('status', 'queued')}"
            return {"status": status, "job_id": job_id, "round_id": round_id}
        try:
            config = self._payload_config(data)
        except UnservableConfig as exc:
            return refused(str(exc))
        if config is None:
            return refused(f"the backend does not know Label Studio project {pid}'s label config: reconnect the "
                           "backend to the project (Label Studio then sends it to /setup)")
        if config.kind != TEXT:
            return refused(f"no hildif round uses Label Studio project {pid}: nothing to train")
        blocker = training_blocker(self.runtime, pid)
        return refused(blocker) if blocker else queue_training(self.runtime, pid, while_running=True)

    def _payload_config(self, data: dict[str, Any]) -> ProjectConfig | None:
        """The project's kind from a webhook's project (Label Studio sends its label config), else from /setup."""
        project = data.get("project")
        xml = project.get("label_config") if isinstance(project, dict) else None
        if not isinstance(xml, str) or len(xml) > MAX_LABEL_CONFIG_CHARS:
            xml = None
        return self.project_config(xml, "project.label_config")


def refused(reason: str) -> dict[str, Any]:
    """A webhook answer for an event the backend can do nothing with (sent as an HTTP error Label Studio shows)."""
    return {"status": "refused", "reason": reason}


__all__ = ["ANNOTATION_EVENTS", "HildifModel", "TRAIN_EVENT", "project_id_of", "refused", "similarity_score"]
