"""Tasks as data: a text-classification task (one text or a pair, a label set, a source) and its loaders.

See :mod:`hildif.tasks.definition` (the definition and the ``task`` config section), :mod:`hildif.tasks.files`
(CSV/TSV, JSONL, Parquet with a column mapping), :mod:`hildif.tasks.labelstudio_export` (a Label Studio project's label
config and export) and :mod:`hildif.tasks.load` (training and held-out examples).
"""

from hildif.tasks.definition import MNLI_TASK, TaskDefinition, TaskError, is_heldout
from hildif.tasks.labelstudio_export import LabelConfigError, TextClassificationConfig, parse_label_config
from hildif.tasks.load import TaskData, load_configured_task, load_task

__all__ = [
    "MNLI_TASK", "TaskDefinition", "TaskError", "is_heldout",
    "LabelConfigError", "TextClassificationConfig", "parse_label_config",
    "TaskData", "load_configured_task", "load_task",
]
