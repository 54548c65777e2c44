"""The Flask 3 app Label Studio connects to as an ML backend (protocol of Label Studio 1.23).

=====================  ===================================================================  ===============
endpoint               does                                                                 LS timeout
=====================  ===================================================================  ===============
``GET /health``        ``{"status": "UP", "model_version", "loaded_version"}`` (no auth)    1 s
``POST /setup``        remembers the project's token/host; ``{"model_version": ...}``        3 s
``POST /predict``      ``{"results": [{result, score, model_version}, ...]}``, one per task   100 s
``POST /webhook``      any event; START_TRAINING queues a sync job; answers at once         1 s
``GET /versions``      ``{"versions": [...]}``: model versions, newest last                  -
``GET /jobs[/<id>]``   background jobs and their persisted status                           -
``POST /jobs``         ``{"kind": "sync"|"start", "params": {...}}`` queues a job            -
=====================  ===================================================================  ===============

Optional basic auth (every endpoint but /health) from :class:`BackendSettings.basic_auth`.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Flask, jsonify, request

from hildif.config import HildifConfig
from ml_backend.model import BackendRuntime, BackendSettings, HildifModel, project_id_of

log = logging.getLogger(__name__)


def create_app(cfg: HildifConfig, settings: BackendSettings | None = None, runtime: BackendRuntime | None = None) -> Flask:
    """Build the app around one :class:`BackendRuntime` (created here unless given)."""
    runtime = runtime or BackendRuntime(cfg, settings)
    app = Flask("hildif-ml-backend")
    app.config["HILDIF_RUNTIME"] = runtime
    auth = runtime.settings.basic_auth

    @app.before_request
    def _check_auth():
        if not auth or request.path == "/health":
            return None
        given = request.authorization
        ok = (given is not None and given.type == "basic"
              and hmac.compare_digest(str(given.username or ""), auth[0])
              and hmac.compare_digest(str(given.password or ""), auth[1]))
        if not ok:
            return jsonify({"error": "authentication required"}), 401, {"WWW-Authenticate": 'Basic realm="hildif"'}
        return None

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise BadRequest("expected a JSON object body")
        return data

    def model_for(project: Any, label_config: str | None = None) -> HildifModel:
        pid = project_id_of(project)
        return HildifModel(project_id=str(pid) if pid is not None else None, label_config=label_config, runtime=runtime)

    @app.errorhandler(BadRequest)
    def _bad(exc: "BadRequest"):
        return jsonify({"error": str(exc)}), 400

    @app.get("/health")
    @app.get("/")
    def health():
        return jsonify({"status": "UP", "model_class": "HildifModel", "model_version": runtime.current_version(),
                        "loaded_version": runtime.loaded_version()})

    @app.post("/setup")
    def setup():
        data = body()
        model = model_for(data.get("project"), data.get("schema"))
        model.setup()
        pid = project_id_of(data.get("project"))
        if pid is not None and data.get("access_token"):
            runtime.setups[pid] = {"hostname": str(data.get("hostname") or ""), "access_token": str(data["access_token"])}
        return jsonify({"model_version": model.model_version})

    @app.post("/predict")
    def predict():
        data = body()
        tasks = data.get("tasks")
        if not isinstance(tasks, list):
            raise BadRequest("predict: 'tasks' must be a list of task objects")
        model = model_for(data.get("project"), data.get("label_config"))
        params = data.get("params") or {}
        response = model.predict(tasks, context=params.get("context"))
        return jsonify({"results": response["predictions"], "model_version": response["model_version"]})

    @app.post("/webhook")
    def webhook():
        data = body()
        action = data.get("action")
        if not action:
            raise BadRequest("webhook: missing 'action'")
        result = model_for(data.get("project")).fit(str(action), data)
        return jsonify(result), 201

    @app.get("/versions")
    def versions():
        known = [v["version"] for v in runtime.state.model_versions()]
        current = runtime.current_version()
        if current and current not in known:
            known.append(current)
        return jsonify({"versions": known, "current": current})

    @app.get("/jobs")
    def jobs():
        return jsonify({"jobs": runtime.jobs.list()})

    @app.get("/jobs/<job_id>")
    def job(job_id: str):
        found = runtime.jobs.get(job_id)
        if found is None:
            return jsonify({"error": f"unknown job {job_id}"}), 404
        return jsonify(found)

    @app.post("/jobs")
    def submit():
        data = body()
        try:
            job_id, created = runtime.jobs.submit(str(data.get("kind")), data.get("params") or {})
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return jsonify({"job_id": job_id, "created": created}), 202

    return app


class BadRequest(ValueError):
    """A request body the protocol does not allow; answered with 400 and this message."""
