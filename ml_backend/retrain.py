"""Retraining a team's text-classification project from its annotations, as one ``train`` job per burst.

``START_TRAINING`` (Label Studio's "Start training") queues the job to run now. With
``BackendSettings.retrain_on_annotations`` on, an annotation webhook queues it to run ``retrain_debounce_s`` seconds
later; further events meanwhile find that queued job (same kind and parameters) and do not queue another
(:meth:`ml_backend.jobs.JobQueue.submit` keeps one queued job per project, at the earlier of the two times), so a
burst of annotations trains once. An event that arrives while the job already runs queues the next one: the running
job may have fetched the project's tasks before that annotation existed. ``START_TRAINING`` finds a running job
too (Label Studio's webhooks carry no nonce: a replayed one must not queue a second run).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ml_backend.runtime import BackendRuntime

TRAIN_JOB = "train"


def queue_training(runtime: BackendRuntime, project_id: int, delay_s: float = 0.0,
                   while_running: bool = False) -> dict[str, Any]:
    """Queue (or find queued) the ``train`` job of ``project_id``, due in ``delay_s`` seconds (0 = now); with
    ``while_running`` (START_TRAINING, which a replay may repeat) a running one is found too."""
    due = time.time() + delay_s if delay_s > 0 else None
    job_id, created = runtime.jobs.submit(TRAIN_JOB, {"project_id": project_id}, not_before=due,
                                          while_running=while_running)
    job = runtime.jobs.get(job_id) or {}
    return {"status": "queued" if created else f"already {job.get('status', 'queued')}", "job_id": job_id,
            "kind": TRAIN_JOB, "project_id": project_id, "not_before": job.get("not_before")}


def training_blocker(runtime: BackendRuntime, project_id: int) -> str | None:
    """Why a ``train`` job for ``project_id`` could not reach Label Studio (None when it can): neither a configured
    API key nor the token Label Studio sent to /setup for the project."""
    cfg = runtime.cfg.labelstudio
    if runtime.has_label_studio_access(project_id):
        return None
    return (f"no Label Studio access to read project {project_id}'s annotations: set ${cfg.api_key_env} (or "
            "labelstudio.api_key_file) for the backend, or reconnect the backend to the project so Label Studio "
            "sends its token to /setup")


__all__ = ["TRAIN_JOB", "queue_training", "training_blocker"]
