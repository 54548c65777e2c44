"""A classification task as data: which text field(s) the model reads, the label set and where the examples come from.

A :class:`TaskDefinition` is built from the configuration's ``task`` section (:class:`hildif.config.TaskConfig`) by
:meth:`TaskDefinition.from_config`. Three sources:

``mnli``         the paper's task (default): premise/hypothesis pairs of the data section's MNLI files, two labels
                 (non-entailment, entailment), MNLI dev_matched held out, HANS evaluated beside it.
``files``        CSV/TSV, JSONL (or a JSON array) and Parquet files read through a column mapping
                 (:mod:`hildif.tasks.files`).
``labelstudio``  the annotated tasks of a Label Studio project, from its JSON export
                 (:mod:`hildif.tasks.labelstudio_export`); text fields and labels come from its label config.

Labels may be left empty in the configuration: a file task then takes the sorted distinct values of its label column,
a Label Studio task the ``<Choice>`` values of its config; :func:`hildif.tasks.load.load_task` returns the definition
with them filled in.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

from hildif.config import TaskConfig
from hildif.data.example import LABEL_NAMES, Example
from hildif.data.splits import text_key
from hildif.errors import HildifError

SOURCES = ("mnli", "files", "labelstudio")
LABEL_POLICIES = ("majority", "ground_truth")


class TaskError(HildifError, ValueError):
    """A task definition is invalid, or its source cannot serve it; the message names the setting (``task.<key>``),
    or the file, row and field at fault."""


@dataclass(frozen=True)
class TaskDefinition:
    """One text-classification task.

    Attributes:
        name: a short name for reports.
        source: ``mnli``, ``files`` or ``labelstudio`` (module docstring).
        text_fields: the field the model reads, or two for a pair task (``()`` for a Label Studio task until its
            label config is read).
        labels: the label set in class order: class ``i`` is ``labels[i]`` (``()`` until read from the data or the
            label config).
        label_field: the column (files) or ``<Choices>`` name (Label Studio) holding the label.
        id_field: the column of a stable example id, or None (ids are then a digest of the text).
        files, eval_files: the source files (relative to the data directory unless absolute); ``eval_files`` are
            the held-out set, else ``heldout_fraction`` of the examples is held out by a digest of their text.
        slices: metadata fields the evaluation reports per value (e.g. ``genre``).
    """

    name: str
    source: str
    text_fields: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    label_field: str = "label"
    id_field: str | None = None
    files: tuple[str, ...] = ()
    eval_files: tuple[str, ...] = ()
    slices: tuple[str, ...] = ()
    heldout_fraction: float = 0.1
    split_seed: int = 0
    deduplicate: bool = True
    max_examples: int | None = None
    label_policy: str = "majority"
    min_annotations: int = 1
    project_id: int | None = None

    @property
    def is_pair(self) -> bool:
        return len(self.text_fields) == 2

    @property
    def num_labels(self) -> int:
        if not self.labels:
            raise TaskError(f"task {self.name!r}: its label set is not known yet (load the task first)")
        return len(self.labels)

    def label_name(self, index: int) -> str:
        return self.labels[index]

    def replace(self, **changes: Any) -> "TaskDefinition":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_config(cls, cfg: TaskConfig) -> "TaskDefinition":
        """Validate the ``task`` section and build the definition; :class:`TaskError` names the key at fault."""
        if cfg.source not in SOURCES:
            raise TaskError(f"task.source={cfg.source!r}: expected one of {', '.join(SOURCES)}")
        slices = tuple(_names(cfg.slices, "task.slices"))
        if cfg.source == "mnli":
            return MNLI_TASK.replace(slices=slices)
        if not cfg.name.strip():
            raise TaskError("task.name must not be empty")
        if not 0.0 <= cfg.heldout_fraction < 1.0:
            raise TaskError(f"task.heldout_fraction={cfg.heldout_fraction}: expected 0 <= fraction < 1")
        if cfg.label_policy not in LABEL_POLICIES:
            raise TaskError(f"task.label_policy={cfg.label_policy!r}: expected one of {', '.join(LABEL_POLICIES)}")
        if cfg.min_annotations < 1:
            raise TaskError(f"task.min_annotations={cfg.min_annotations}: expected at least 1")
        if cfg.max_examples is not None and cfg.max_examples < 1:
            raise TaskError(f"task.max_examples={cfg.max_examples}: expected at least 1 (or none)")
        labels = tuple(_names(cfg.labels, "task.labels"))
        if len(labels) == 1:
            raise TaskError("task.labels: a classification task needs at least two labels")
        text = cfg.text.strip()
        pair = (cfg.text_pair or "").strip() or None
        if pair and not text:
            raise TaskError("task.text_pair is set but task.text is empty: name the first text's field too")
        if pair and pair == text:
            raise TaskError(f"task.text and task.text_pair both name {text!r}")
        if cfg.source == "files":
            if not cfg.files:
                raise TaskError("task.files: a files task needs at least one CSV/TSV, JSONL or Parquet file")
            if not text:
                raise TaskError("task.text: name the column that holds the text (task.text_pair for a pair's second)")
            if not cfg.label.strip():
                raise TaskError("task.label: name the column that holds the label")
        elif not cfg.files and cfg.project_id is None:
            raise TaskError("a labelstudio task needs task.files (a JSON export) or task.project_id")
        fields = (text, pair) if pair else ((text,) if text else ())
        id_field = (cfg.id or "").strip() or None
        if id_field and id_field in fields + (cfg.label,):
            raise TaskError(f"task.id={id_field!r} is also a text or label field")
        if cfg.label in fields:
            raise TaskError(f"task.label={cfg.label!r} is also a text field")
        return cls(
            name=cfg.name.strip(), source=cfg.source, text_fields=fields, labels=labels, label_field=cfg.label.strip(),
            id_field=id_field, files=tuple(cfg.files), eval_files=tuple(cfg.eval_files), slices=slices,
            heldout_fraction=float(cfg.heldout_fraction), split_seed=int(cfg.split_seed),
            deduplicate=bool(cfg.deduplicate), max_examples=cfg.max_examples, label_policy=cfg.label_policy,
            min_annotations=int(cfg.min_annotations), project_id=cfg.project_id,
        )


def _names(values: Sequence[str], where: str) -> list[str]:
    out = [str(v).strip() for v in values]
    if any(not v for v in out):
        raise TaskError(f"{where}: an empty name")
    dup = sorted({v for v in out if out.count(v) > 1})
    if dup:
        raise TaskError(f"{where}: {', '.join(map(repr, dup))} given twice")
    return out


#: The paper's task: MNLI premise/hypothesis pairs, binary labels, MNLI dev held out (HANS evaluated beside it).
MNLI_TASK = TaskDefinition(
    name="mnli", source="mnli", text_fields=("premise", "hypothesis"), labels=tuple(LABEL_NAMES),
    label_field="gold_label", id_field="pairID",
)


def is_heldout(example: Example, fraction: float, seed: int = 0) -> bool:
    """Whether ``example`` belongs to the held-out share ``fraction``: decided by a digest of its text
    (:func:`hildif.data.splits.text_key`: lower-cased alphanumerics, so any tokenization or casing), so the same
    text is always on the same side (duplicates cannot leak) and the split does not move when examples are added."""
    if fraction <= 0:
        return False
    digest = hashlib.sha1("\t".join((str(seed), *text_key(example))).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction
