"""``POST /influence``: the most influential training examples of a text (pair) or a Label Studio task, for
interactive use (:meth:`hildif.service.Service.influential`).

The served version's gradient store is opened once per version by an ``influence`` job (read from the run's cache,
or built by one pass over the training pool: minutes). Until it is open the endpoint answers 202 with the job's id
and a message saying to ask again (``GET /jobs/<id>`` shows the build); a failed build is answered 500 with the
job's error, once (the next request queues a new build). Then a query costs about a second.
"""

from __future__ import annotations

import threading
from typing import Any

from hildif.service import InfluenceNotReady, InfluenceQueryError
from ml_backend import schema
from ml_backend.schema import FieldError

JOB_KIND = "influence"


class InfluenceJobs:
    """The ``influence`` job of each model version this process asked for (one at a time per version)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, str] = {}

    def pending(self, runtime, version: str) -> tuple[dict[str, Any], int]:
        """The answer while ``version``'s store is not open: queue (or find) its job."""
        with self._lock:
            job = runtime.jobs.get(self._jobs[version]) if version in self._jobs else None
            if job is not None and job["status"] == "failed":
                del self._jobs[version]  # reported once; the next request queues a new build
                return {"error": f"building the influence store of model version {version} failed: {job['error']}",
                        "job_id": job["id"], "model_version": version}, 500
            if job is None or job["status"] == "done":  # never asked, or opened then closed: (re)open, cheap if cached
                job_id, _ = runtime.jobs.submit(JOB_KIND, {"model_version": version})
                self._jobs[version] = job_id
                job = runtime.jobs.get(job_id)
        return {"status": "building", "job_id": job["id"], "model_version": version,
                "message": f"the influence store of model version {version} is being opened (job {job['id']}, "
                           f"{job['status']}); building it takes one pass over the training pool the first time. "
                           f"Ask again when GET /jobs/{job['id']} says done."}, 202


def answer(runtime, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The JSON answer and status of ``POST /influence`` with body ``data``."""
    task = runtime.cfg.task
    query = schema.influence_request(data, (getattr(task, "text", None), getattr(task, "text_pair", None)))
    service = runtime.service
    version = service.current_version()
    if version is None:
        return {"error": "no model is served yet: train one first", "field": "model_version"}, 409
    try:
        return service.influential(query["premise"], query["hypothesis"], label=query["label"], k=query["k"],
                                   harmful=query["harmful"], rerank=query["rerank"]), 200
    except InfluenceNotReady:
        return runtime.influence_jobs.pending(runtime, version)
    except InfluenceQueryError as exc:
        raise FieldError(exc.field, str(exc).split(": ", 1)[-1]) from None
