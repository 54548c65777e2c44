"""The Flask 3 app Label Studio connects to as an ML backend (protocol of Label Studio 1.23).

=====================  ===================================================================  ===============
endpoint               does                                                                 LS timeout
=====================  ===================================================================  ===============
``GET /health``        ``{"status": "UP", "model_version", "loaded_version", "webhooks"}``   1 s
                       (no auth; ``webhooks`` counts accepted and refused webhooks)
``POST /setup``        remembers the project's token/host; ``{"model_version": ...}``        3 s
``POST /predict``      ``{"results": [{result, score, model_version}, ...]}``, one per task   100 s
``POST /webhook``      any event; START_TRAINING queues a sync (rating project) or train      1 s
                       (text-classification project) job; answers at once
``GET /versions``      ``{"versions", "current"}``: saved model versions (oldest first)     -
``GET /jobs[/<id>]``   background jobs and their persisted status                           -
``POST /jobs``         ``{"kind": "sync"|"start"|"train", "params": {...}}`` queues a job    -
``POST /influence``    a text (pair) or task's most influential training examples           -
                       (:mod:`ml_backend.influence_api`; 202 while the store is being opened)
``POST /webhook-keys`` ``{"project": id}`` -> ``{"project", "key"}``: a new webhook key for     -
                       the project (the previous one stops working; :mod:`ml_backend.webhook_keys`)
=====================  ===================================================================  ===============

/setup refuses (400) a label config hildif cannot serve (:mod:`ml_backend.projects`), and a START_TRAINING nothing can
be done for is answered 422: Label Studio shows only the HTTP status line of a failed call (``400 Client Error:
<reason> for url: ...``), so error answers carry their message in the status line's reason phrase too
(:func:`status_line`), as well as in the JSON body.

Bodies are checked by :mod:`ml_backend.schema` (data only, never server paths; a field that names a file is refused
with 400 naming it; /setup, /predict and /webhook take the top-level fields Label Studio sends and refuse any other
by name); bodies over ``BackendSettings.max_body_bytes`` get 413, a body that is not a JSON object (or nests deeper
than ``schema.MAX_DEPTH``) 400. Error answers name the field at fault and never echo what was sent.

Basic auth (:class:`BackendSettings.basic_auth`) guards every endpoint but /health. ``/webhook`` also accepts the
per-project key header that hildif adds to the project's webhook when it connects the backend
(:mod:`hildif.labelstudio.webhook`, :mod:`ml_backend.webhook_keys`), because Label Studio sends webhooks without the
backend's credentials. Either is checked before the body is read; refused webhooks are logged and counted in /health.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from hildif.config import HildifConfig
from hildif.labelstudio.webhook import WEBHOOK_KEYS_PATH, WEBHOOK_SECRET_HEADER
from ml_backend import schema
from ml_backend.influence_api import answer as influence_answer
from ml_backend.accesslog import escape
from ml_backend.ls_model import HildifModel, project_id_of
from ml_backend.runtime import BackendRuntime
from ml_backend.schema import FieldError
from ml_backend.settings import BackendSettings

log = logging.getLogger(__name__)
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]+")
MAX_REASON_CHARS = 400


def status_line(code: int, message: str) -> str:
    """``"<code> <message>"``: an HTTP status whose reason phrase is ``message`` in printable ASCII, at most
    MAX_REASON_CHARS (Label Studio shows the reason phrase of a failed call to its user, not the body)."""
    reason = " ".join(_NOT_PRINTABLE.sub(" ", message).split())[:MAX_REASON_CHARS] or "error"
    return f"{code} {reason}"


def create_app(cfg: HildifConfig, settings: BackendSettings | None = None, runtime: BackendRuntime | None = None) -> Flask:
    """Build the app around one :class:`BackendRuntime` (created here unless given)."""
    runtime = runtime or BackendRuntime(cfg, settings)
    service = runtime.service
    app = Flask("hildif-ml-backend")
    app.config["HILDIF_RUNTIME"] = runtime
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_body_bytes
    app.config["HILDIF_READ_TIMEOUT_S"] = runtime.settings.read_timeout_s  # read by ml_backend.worker
    auth = runtime.settings.basic_auth

    def basic_auth_ok() -> bool:
        given = request.authorization
        return (given is not None and given.type == "basic"
                and hmac.compare_digest(str(given.username or "").encode(), auth[0].encode())
                and hmac.compare_digest(str(given.password or "").encode(), auth[1].encode()))

    def refuse(project: int | None = None, reason: str | None = None):
        if reason:
            runtime.events.refused(project, reason)
        return jsonify({"error": "authentication required"}), 401, {"WWW-Authenticate": 'Basic realm="hildif"'}

    @app.before_request
    def _check_auth():  # before any body is read
        g.webhook_project = None
        if not auth or request.path == "/health" or basic_auth_ok():
            return None
        if request.path != "/webhook":
            return refuse()
        # Label Studio's webhooks carry their project's key instead; the key names the project
        given = request.headers.get(WEBHOOK_SECRET_HEADER)
        g.webhook_project = runtime.webhook_keys.project_of(given)
        if g.webhook_project is None:
            return refuse(None, "no credentials" if given is None else "wrong webhook key")
        return None

    def body(allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        data = schema.json_object(request.get_data(cache=True))  # RequestEntityTooLarge (413) past the limit
        return schema.known_fields(data, allowed) if allowed else data

    def model_for(project: Any, label_config: str | None = None) -> HildifModel:
        pid = project_id_of(project)
        return HildifModel(project_id=str(pid) if pid is not None else None, label_config=label_config, runtime=runtime)

    @app.errorhandler(FieldError)
    def _bad(exc: FieldError):
        return jsonify({"error": str(exc), "field": exc.field}), status_line(exc.status, str(exc))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):
        return jsonify({"error": f"body: larger than {runtime.settings.max_body_bytes} bytes", "field": "body"}), 413

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return jsonify({"error": exc.name}), exc.code
        log.error("%s %s failed: %s (message withheld)", request.method, escape(request.path), type(exc).__name__)
        return jsonify({"error": f"{type(exc).__name__}: internal error"}), 500

    @app.get("/health")
    @app.get("/")
    def health():
        return jsonify({"status": "UP", "model_class": "HildifModel", "model_version": service.current_version(),
                        "loaded_version": service.loaded_version(), "webhooks": runtime.events.totals()})

    @app.post("/setup")
    def setup():
        data = body(schema.SETUP_FIELDS)
        schema_xml = schema.optional_string(data, "schema", 200_000)
        hostname = schema.optional_string(data, "hostname", 2000)
        token = schema.optional_string(data, "access_token", 1000)
        model = model_for(data.get("project"), schema_xml)
        model.setup()
        pid = project_id_of(data.get("project"))
        if pid is not None and token:
            runtime.setups[pid] = {"hostname": hostname or "", "access_token": token}
        return jsonify({"model_version": model.model_version})

    @app.post("/predict")
    def predict():
        data = body(schema.PREDICT_FIELDS)
        tasks = schema.tasks_list(data)
        model = model_for(data.get("project"), schema.optional_string(data, "label_config", 200_000))
        params = data.get("params") if isinstance(data.get("params"), dict) else {}
        schema.known_fields(params, schema.PREDICT_PARAMS, "params")
        response = model.predict(tasks, context=params.get("context"))
        return jsonify({"results": response["predictions"], "model_version": response["model_version"]})

    @app.post("/webhook")
    def webhook():
        data = body(schema.WEBHOOK_FIELDS)
        project = project_id_of(data.get("project"))
        if g.webhook_project is not None and project != g.webhook_project:
            return refuse(project, "webhook key of another project")
        action = schema.webhook_action(data)
        result = model_for(data.get("project")).fit(action, data)
        if result.get("status") == "refused":
            return jsonify(result), status_line(422, str(result.get("reason") or "refused"))
        return jsonify(result), 201

    @app.get("/versions")
    def versions():
        return jsonify({"versions": service.versions(), "current": service.current_version()})

    @app.get("/jobs")
    def jobs():
        return jsonify({"jobs": runtime.jobs.list()})

    @app.get("/jobs/<job_id>")
    def job(job_id: str):
        found = runtime.jobs.get(job_id)
        if found is None:
            return jsonify({"error": "unknown job id", "field": "job_id"}), 404
        return jsonify(found)

    @app.post("/jobs")
    def submit():
        kind, params = schema.job_request(body())
        job_id, created = runtime.jobs.submit(kind, params)
        return jsonify({"job_id": job_id, "created": created}), 202

    @app.post("/influence")
    def influence():
        payload, status = influence_answer(runtime, body())
        return jsonify(payload), status

    @app.post(WEBHOOK_KEYS_PATH)
    def webhook_key():
        data = body(("project",))
        pid = schema.integer(1, schema.MAX_ID)("project", data.get("project"))
        return jsonify({"project": pid, "key": runtime.webhook_keys.issue(pid)}), 201

    return app
