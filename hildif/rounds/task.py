"""The task a round works on, when it is not the paper's MNLI/HANS (``task.source`` = ``files`` or ``labelstudio``).

An MNLI round is unchanged: anchors from MNLI dev, influence over the MNLI train files, the rating template of
:mod:`hildif.labelstudio.template`, HANS and MNLI evaluation. A round on a team's own task instead

* loads the task (:func:`load_round_task`: its files, or its Label Studio project's export fetched live);
* picks anchors among the task's examples (:func:`anchor_pool`: training and held-out examples) and explains them
  against its training examples without the anchors themselves (:func:`influence_pool`: an anchor is never its own
  candidate);
* records the task's shape with the round (:func:`task_record`), from which the rating template and the tasks'
  verdict lines are generated;
* fine-tunes and evaluates on the task (:mod:`hildif.rounds.sync`): rehearsal from its training examples, its
  held-out set per label and per slice.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, Sequence

from hildif.config import HildifConfig
from hildif.data.example import Example
from hildif.errors import HildifError

if TYPE_CHECKING:  # pragma: no cover
    from hildif.tasks import TaskData, TaskDefinition

log = logging.getLogger(__name__)


class RoundTaskError(HildifError, ValueError):
    """The round's task cannot be loaded as configured; the message says what to set."""


def is_mnli(cfg: HildifConfig) -> bool:
    """Whether the run's task is the paper's MNLI/HANS (``task.source = mnli``, the default)."""
    return cfg.task.source == "mnli"


def needs_label_studio(cfg: HildifConfig) -> bool:
    """Whether loading the task asks a Label Studio project (its export, or the label config of export files:
    :func:`hildif.labelstudio.export.project_to_fetch`)."""
    return cfg.task.source == "labelstudio" and cfg.task.project_id is not None


def load_round_task(cfg: HildifConfig, client=None) -> "TaskData":
    """The run's task (not MNLI), as FIT loads it: :func:`hildif.tasks.load.load_configured_task`, or, for a task
    read from a Label Studio project, :func:`hildif.labelstudio.export.load_project_task` through ``client``."""
    from hildif.tasks.load import load_configured_task

    if needs_label_studio(cfg):
        if client is None:
            raise RoundTaskError(f"task {cfg.task.name!r} reads Label Studio project {cfg.task.project_id}: a Label "
                                 "Studio client is needed to fetch it")
        from hildif.labelstudio.export import load_project_task

        data = load_project_task(cfg, client)
    else:
        data = load_configured_task(cfg)
    log.info("task %s: %d training and %d held-out examples, labels %s", data.task.name, len(data.train),
             len(data.heldout), ", ".join(data.task.labels))
    return data


def task_config(cfg: HildifConfig, task: "TaskDefinition") -> HildifConfig:
    """``cfg`` with ``model.num_labels`` set to the task's number of labels (a copy; ``cfg`` is not changed)."""
    if cfg.model.num_labels == task.num_labels:
        return cfg
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_labels=task.num_labels))


def checkpoint_kwargs(cfg: HildifConfig) -> dict[str, Any]:
    """What loading a checkpoint of this run's task needs beyond the run's load settings: the task's number of
    labels (nothing for MNLI, whose checkpoints load as they always did)."""
    return {} if is_mnli(cfg) else {"num_labels": int(cfg.model.num_labels)}


def anchor_pool(data: "TaskData") -> list[Example]:
    """The examples a round on the task picks anchors from: its training examples, then its held-out ones."""
    return list(data.train) + list(data.heldout)


def influence_pool(train: Sequence[Example], anchors: Sequence[Example]) -> list[Example]:
    """``train`` without the anchors (by example id and by text), so that no anchor is its own candidate."""
    from hildif.data.splits import text_key

    ids = {a.id for a in anchors}
    keys = {text_key(a) for a in anchors}
    return [e for e in train if e.id not in ids and text_key(e) not in keys]


def task_record(task: "TaskDefinition") -> dict[str, Any]:
    """The task's shape as a round records it (its rating template and tasks are generated from it)."""
    return {"name": task.name, "source": task.source, "text_fields": list(task.text_fields),
            "labels": list(task.labels), "slices": list(task.slices)}


def check_model_labels(clf, task: "TaskDefinition") -> None:
    """A model trained on another task (another number of labels) cannot serve this one: say so."""
    if clf.num_labels != task.num_labels:
        raise RoundTaskError(f"the current model has {clf.num_labels} labels, task {task.name!r} has "
                             f"{task.num_labels} ({', '.join(task.labels)}): train a baseline on the task first "
                             "(hildif train)")
    names = tuple(clf.label_names)
    if names != tuple(task.labels) and names != tuple(f"LABEL_{i}" for i in range(clf.num_labels)):
        raise RoundTaskError(f"the current model's labels ({', '.join(names)}) are not task {task.name!r}'s "
                             f"({', '.join(task.labels)}), in that order: train a baseline on the task first "
                             "(hildif train)")


__all__ = ["RoundTaskError", "anchor_pool", "check_model_labels", "checkpoint_kwargs", "influence_pool", "is_mnli",
           "load_round_task", "needs_label_studio", "task_config", "task_record"]
