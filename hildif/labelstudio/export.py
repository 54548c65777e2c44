"""Fetch a team's Label Studio project as a task source: its label config and its JSON export.

The result feeds :func:`hildif.tasks.load.load_task` (``label_config=``, ``exports=``); parsing and validation live
in :mod:`hildif.tasks.labelstudio_export`, which treats both as hostile input. :func:`load_project_task` loads the
configured task with them; :func:`load_command_task` is how a command (``hildif train``, ``hildif evaluate``) reaches
the project.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from hildif.config import HildifConfig
from hildif.labelstudio.client import LabelStudioClient, LabelStudioError
from hildif.tasks.definition import TaskDefinition
from hildif.tasks.load import TaskData, load_configured_task

MAX_EXPORT_BYTES = 512 * 2**20


@dataclass
class ProjectExport:
    project_id: int
    label_config: str
    tasks: list[Any]

    @property
    def source(self) -> str:
        """How errors name this export."""
        return f"Label Studio project {self.project_id} export"


def fetch_project_export(client: LabelStudioClient, project_id: int,
                         max_bytes: int = MAX_EXPORT_BYTES) -> ProjectExport:
    """The project's label config and annotated tasks; :class:`LabelStudioError` names the project when it does
    not exist or the export is not a JSON list of tasks."""
    settings = client.project_settings(project_id)
    if settings is None:
        raise LabelStudioError(f"Label Studio project {project_id} does not exist (task.project_id)")
    raw = client.export_json(project_id, max_bytes)
    try:
        tasks = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LabelStudioError(f"the export of Label Studio project {project_id} is not JSON") from None
    if not isinstance(tasks, list):
        raise LabelStudioError(f"the export of Label Studio project {project_id} is not a list of tasks")
    return ProjectExport(project_id, str(settings.get("label_config") or ""), tasks)


def project_to_fetch(cfg: HildifConfig) -> int | None:
    """The Label Studio project ``cfg.task`` reads (its export, or the label config of its export files), or None
    when the task needs no Label Studio (MNLI, files, export files with the labels named in the task section)."""
    return cfg.task.project_id if cfg.task.source == "labelstudio" else None


def load_project_task(cfg: HildifConfig, client: LabelStudioClient) -> TaskData:
    """The configured task (:func:`hildif.tasks.load.load_configured_task`) with its Label Studio project fetched
    through ``client``: project ``task.project_id``'s label config and export (the annotated tasks, split into
    training and held-out examples by ``task.heldout_fraction``), or, when ``task.files`` names export files, the
    project's label config only. A task without a project is loaded from its files (``client`` unused).

    Returns the :class:`~hildif.tasks.load.TaskData`. :class:`LabelStudioError` names ``task.project_id`` when the
    project does not exist; :class:`~hildif.tasks.TaskError` names the label config or the export's task at fault.
    """
    TaskDefinition.from_config(cfg.task)  # a bad task section fails before any request
    project_id = project_to_fetch(cfg)
    if project_id is None:
        return load_configured_task(cfg)
    if cfg.task.files:
        settings = client.project_settings(project_id)
        if settings is None:
            raise LabelStudioError(f"Label Studio project {project_id} does not exist (task.project_id)")
        return load_configured_task(cfg, label_config=str(settings.get("label_config") or ""))
    export = fetch_project_export(client, project_id)
    return load_configured_task(cfg, label_config=export.label_config, exports={export.source: export.tasks})


def load_command_task(cfg: HildifConfig, ls_url: str | None = None, say: Callable[[str], None] = print
                      ) -> TaskData | None:
    """The task of a command that works on a Label Studio project (:func:`project_to_fetch`), fetched through
    ``labelstudio.url`` (``ls_url``: the command's ``--ls-url``) with the configured API key, or, with none, the
    run's own Label Studio (:func:`hildif.labelstudio.access.use_run_access`, started for the fetch when it is
    down), as ``hildif round`` reaches it. None for a task that needs no Label Studio (the command loads it).

    Under torchrun rank 0 fetches and the other ranks receive the same examples (or its error's message).
    """
    from hildif import distributed
    from hildif.errors import HildifError
    from hildif.labelstudio.access import running, use_run_access

    if project_to_fetch(cfg) is None:
        return None

    def fetch() -> TaskData:
        with running(use_run_access(cfg, ls_url), say=say):
            return load_project_task(cfg, LabelStudioClient.from_config(cfg.labelstudio))

    if not distributed.active():
        return fetch()
    data, error = None, None
    if distributed.is_main():
        try:
            data = fetch()
        except HildifError as exc:
            error = str(exc)
            distributed.broadcast_object((None, error))
            raise
    data, error = distributed.broadcast_object((data, error))
    if error is not None:
        raise LabelStudioError(error)
    return data
