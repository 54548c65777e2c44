"""Fetch a team's Label Studio project as a task source: its label config and its JSON export.

The result feeds :func:`hildif.tasks.load.load_task` (``label_config=``, ``exports=``); parsing and validation live
in :mod:`hildif.tasks.labelstudio_export`, which treats both as hostile input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hildif.labelstudio.client import LabelStudioClient, LabelStudioError

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
