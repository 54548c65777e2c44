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
=====================  ===================================================================  ===============

/setup refuses (400) a label config hildif cannot serve (:mod:`ml_backend.projects`), and a START_TRAINING nothing can
be done for is answered 422: Label Studio shows only the HTTP status line of a failed call (``400 Client Error:
<reason> for url: ...``), so error answers carry their message in the status line's reason phrase too
(:func:`status_line`), as well as in the JSON body.

Bodies are checked by :mod:`ml_backend.schema` (data only, never server paths; a field that names a file is refused
with 400 naming it); bodies over ``BackendSettings.max_body_bytes`` get 413. Error answers name the field at fault
and never echo what was sent.

Basic auth (:class:`BackendSettings.basic_auth`) guards every endpoint but /health. ``/webhook`` also accepts the
per-project secret header that hildif adds to the project's webhook when it connects the backend
(:mod:`hildif.labelstudio.webhook`), because Label Studio sends webhooks without the backend's credentials. Refused
webhooks are logged and counted in /health.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from hildif.config import HildifConfig
from hildif.labelstudio.webhook import WEBHOOK_SECRET_HEADER, webhook_secret_matches
from ml_backend import schema
from ml_backend.influence_api import answer as influence_answer
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
    auth = runtime.settings.basic_auth

    def basic_auth_ok() -> bool:
        given = request.authorization
        return (given is not None and given.type == "basic"
                and hmac.compare_digest(str(given.username or "").encode(), auth[0].encode())
                and hmac.compare_digest(str(given.password or "").encode(), auth[1].encode()))

    @app.before_request
    def _check_auth():
        if not auth or request.path == "/health" or basic_auth_ok():
            return None
        if request.path == "/webhook":
            return None  # checked in the handler: Label Studio's webhooks carry a per-project secret instead
        return jsonify({"error": "authentication required"}), 401, {"WWW-Authenticate": 'Basic realm="hildif"'}

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise FieldError("body", "expected a JSON object")
        return data

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
        log.error("%s %s failed: %s (message withheld)", request.method, request.path, type(exc).__name__)
        return jsonify({"error": f"{type(exc).__name__}: internal error"}), 500

    @app.get("/health")
    @app.get("/")
    def health():
        return jsonify({"status": "UP", "model_class": "HildifModel", "model_version": service.current_version(),
                        "loaded_version": service.loaded_version(), "webhooks": runtime.events.totals()})

    @app.post("/setup")
    def setup():
        data = body()
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
        data = body()
        tasks = schema.tasks_list(data)
        model = model_for(data.get("project"), schema.optional_string(data, "label_config", 200_000))
        params = data.get("params") if isinstance(data.get("params"), dict) else {}
        response = model.predict(tasks, context=params.get("context"))
        return jsonify({"results": response["predictions"], "model_version": response["model_version"]})

    @app.post("/webhook")
    def webhook():
        data = body()
        project = project_id_of(data.get("project"))
        if auth and not basic_auth_ok() and not webhook_secret_matches(
                auth[1], project, request.headers.get(WEBHOOK_SECRET_HEADER)):
            runtime.events.refused(project, "no credentials" if WEBHOOK_SECRET_HEADER not in request.headers
                                   else "wrong webhook secret")
            return jsonify({"error": "authentication required"}), 401, {"WWW-Authenticate": 'Basic realm="hildif"'}
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

    return app
