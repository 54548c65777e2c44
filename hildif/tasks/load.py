"""Load a task's examples: the training set and the held-out evaluation set, whatever the source.

:func:`load_task` returns a :class:`TaskData`: the task with its label set (and, for Label Studio, text fields) filled
in, the training examples and the held-out examples. MNLI keeps the paper's files (the data section's train files,
dev_matched held out; HANS is evaluated beside it by :func:`hildif.data.splits.evaluation_sets`).
:func:`load_configured_task` does the same for a configuration's ``task`` section (what FIT and evaluation call; a
Label Studio project fetched live goes through :func:`hildif.labelstudio.export.load_project_task`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hildif.config import DataConfig, HildifConfig
from hildif.data.example import Example
from hildif.data.loaders import LoadStats, open_text
from hildif.data.splits import data_file, deduplicate, load_dev, load_train, text_key
from hildif.tasks.definition import TaskDefinition, TaskError, is_heldout
from hildif.tasks.files import assign_labels, read_labelled
from hildif.tasks.labelstudio_export import examples_from_export, parse_label_config, resolve_labelstudio_task


@dataclass
class TaskData:
    """A loaded task: ``task`` resolved (labels known), ``train`` and ``heldout`` examples, what each file gave."""

    task: TaskDefinition
    train: list[Example]
    heldout: list[Example]
    stats: list[LoadStats] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def per_label(examples: list[Example]) -> dict[str, int]:
            counts = {name: 0 for name in self.task.labels}
            for e in examples:
                counts[self.task.labels[e.label]] += 1
            return counts

        return {"task": self.task.name, "labels": list(self.task.labels), "text_fields": list(self.task.text_fields),
                "train": len(self.train), "heldout": len(self.heldout), "train_per_label": per_label(self.train),
                "heldout_per_label": per_label(self.heldout),
                "skipped": {s.file: s.skipped for s in self.stats if s.skipped}}


def _path(data: DataConfig, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else data_file(data, name)


def _split(task: TaskDefinition, examples: list[Example]) -> tuple[list[Example], list[Example]]:
    train = [e for e in examples if not is_heldout(e, task.heldout_fraction, task.split_seed)]
    held = [e for e in examples if is_heldout(e, task.heldout_fraction, task.split_seed)]
    return train, held


def _finish(task: TaskDefinition, train: list[Example], held: list[Example], separate_heldout: bool,
            stats: list[LoadStats]) -> TaskData:
    if task.deduplicate:
        before = len(train) + len(held)
        train, held = deduplicate(train), deduplicate(held)
        if before > len(train) + len(held):
            dup = LoadStats(file="(repeated texts)")
            dup.skipped["duplicate"] = before - len(train) - len(held)
            stats.append(dup)
    if separate_heldout:  # held-out files given: a training example with a held-out text would leak
        seen = {text_key(e) for e in held}
        kept = [e for e in train if text_key(e) not in seen]
        if len(kept) < len(train):
            leak = LoadStats(file="(training examples also in the held-out files)")
            leak.skipped["in_heldout"] = len(train) - len(kept)
            stats.append(leak)
        train = kept
    else:
        train, held = _split(task, train)
    if task.max_examples and len(train) > task.max_examples:
        rng = random.Random(task.split_seed)
        train = [train[i] for i in sorted(rng.sample(range(len(train)), task.max_examples))]
    if not train:
        raise TaskError(f"task {task.name!r}: no training examples (check task.files and the column mapping)")
    return TaskData(task, train, held, stats)


def load_file_task(task: TaskDefinition, data: DataConfig) -> TaskData:
    def read(names: tuple[str, ...]):
        out = []
        for name in names:
            st = LoadStats()
            out.append((st, read_labelled(_path(data, name), task, skip_bad_rows=data.skip_bad_rows, stats=st)))
        return out

    train_files, held_files = read(task.files), read(task.eval_files)
    labels = task.labels or tuple(sorted({row[1] for _, rows in train_files + held_files for row in rows}))
    if len(labels) < 2:
        raise TaskError(f"task {task.name!r}: the label column {task.label_field!r} holds fewer than two distinct "
                        "values: a classification task needs at least two labels")
    task = task.replace(labels=labels)

    def assign(files) -> list[Example]:
        out = []
        for st, rows in files:
            out += assign_labels(rows, labels, task.label_field, skip_bad_rows=data.skip_bad_rows, stats=st)
            st.loaded = st.rows - sum(st.skipped.values())
        return out

    train, held = assign(train_files), assign(held_files)
    return _finish(task, train, held, bool(task.eval_files), [st for st, _ in train_files + held_files])


def read_export_file(path: Path) -> Any:
    """A Label Studio JSON export saved to a file, parsed (a list of tasks)."""
    try:
        with open_text(path) as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise TaskError(f"{path}:{exc.lineno}: not a Label Studio JSON export (broken JSON: {exc.msg})") from None


def load_labelstudio_task(
    task: TaskDefinition, data: DataConfig, label_config: str, exports: dict[str, Any] | None = None
) -> TaskData:
    """A Label Studio task from its label config and its export(s).

    ``exports``: ``{name: export}`` already in memory (fetched through the API: :mod:`hildif.labelstudio.export`);
    when None, the JSON export files ``task.files`` (train) and ``task.eval_files`` (held out) are read.
    """
    task = resolve_labelstudio_task(task, parse_label_config(label_config))
    stats: list[LoadStats] = []

    def examples(source: str, export: Any) -> list[Example]:
        st = LoadStats()
        out = examples_from_export(export, task, source=source, skip_bad_rows=data.skip_bad_rows, stats=st)
        stats.append(st)
        return out

    if exports is not None:
        train = [e for name, export in exports.items() for e in examples(name, export)]
        return _finish(task, train, [], False, stats)
    train = [e for name in task.files for e in examples(name, read_export_file(_path(data, name)))]
    held = [e for name in task.eval_files for e in examples(name, read_export_file(_path(data, name)))]
    return _finish(task, train, held, bool(task.eval_files), stats)


def load_task(task: TaskDefinition, data: DataConfig, label_config: str | None = None,
              exports: dict[str, Any] | None = None) -> TaskData:
    """Load ``task``: MNLI from the data section's files, a files task through its column mapping, a Label Studio
    task from ``label_config`` and its export (``exports`` or the files ``task.files``)."""
    if task.source == "mnli":
        return TaskData(task, load_train(data), load_dev(data))
    if task.source == "files":
        return load_file_task(task, data)
    if label_config is None:
        raise TaskError(f"task {task.name!r}: a Label Studio task needs the project's label config (fetch it with "
                        "hildif.labelstudio.export.fetch_project_export)")
    return load_labelstudio_task(task, data, label_config, exports)


def _label_config_from_task(task: TaskDefinition) -> str | None:
    """A label config equivalent to what ``task`` names (its text field(s), ``task.label`` as the ``<Choices>`` name,
    ``task.labels``), for export files read without their project; None when the task does not name them all."""
    if not task.text_fields or not task.labels:
        return None
    from xml.sax.saxutils import quoteattr

    texts = "".join(f"<Text name={quoteattr(f)} value={quoteattr('$' + f)}/>" for f in task.text_fields)
    choices = "".join(f"<Choice value={quoteattr(label)}/>" for label in task.labels)
    return (f"<View>{texts}<Choices name={quoteattr(task.label_field)} toName={quoteattr(task.text_fields[0])}>"
            f"{choices}</Choices></View>")


def load_configured_task(cfg: HildifConfig, label_config: str | None = None,
                         exports: dict[str, Any] | None = None) -> TaskData:
    """The task of ``cfg.task`` (:meth:`TaskDefinition.from_config`), loaded with the data section ``cfg.data``.

    Returns a :class:`TaskData`: ``.task`` resolved (labels in class order and text fields filled in), ``.train``
    (the training examples FIT and the rounds' pool use), ``.heldout`` (the evaluation set) and ``.stats`` (what each
    file or export gave and skipped). By source:

    * ``mnli``: today's files: the data section's MNLI train files, dev_matched held out (HANS is evaluated beside);
    * ``files``: CSV/TSV, JSONL or Parquet ``task.files`` through the column mapping;
    * ``labelstudio``: ``label_config`` with ``exports`` (``{name: export}``, fetched through the API by
      :func:`hildif.labelstudio.export.load_project_task`), or the JSON export files ``task.files``; export files
      without a ``label_config`` need ``task.text``, ``task.label`` (the ``<Choices>`` name) and ``task.labels``.

    :class:`TaskError` names the setting at fault (a project to fetch that was not fetched, a label config missing).
    """
    task = TaskDefinition.from_config(cfg.task)
    if task.source != "labelstudio":
        return load_task(task, cfg.data)
    if exports is None and not task.files:
        raise TaskError(f"task {task.name!r}: task.project_id={task.project_id} names a Label Studio project: fetch "
                        "it through Label Studio (hildif.labelstudio.export.load_project_task; the `hildif train` and "
                        "`hildif evaluate` commands do) or give its JSON export in task.files")
    if label_config is None:
        if exports is not None:
            raise TaskError(f"task {task.name!r}: a Label Studio export needs its project's label config")
        label_config = _label_config_from_task(task)
        if label_config is None:
            where = (f"fetch it from project {task.project_id} (hildif.labelstudio.export.load_project_task)"
                     if task.project_id is not None else "set task.project_id (it is read from the project)")
            raise TaskError(f"task {task.name!r}: Label Studio export files (task.files) are read with their "
                            f"project's label config: {where}, or name task.text, task.label (the <Choices> name) "
                            "and task.labels")
    return load_task(task, cfg.data, label_config=label_config, exports=exports)
