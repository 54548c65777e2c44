"""How every model of a run is loaded: the one place (besides :meth:`Classifier.load` itself) that calls it.

Four doors, one per kind of source, all with the run's ``model`` settings (max length, device, mixed precision;
:func:`load_kwargs`):

* :func:`load_current`: the version the run serves (``<run_dir>/models/current.json``); a fresh run directory has
  none, and ``missing`` says what then (an error, ``model.name_or_path`` as it is, or that model registered as the
  first version);
* :func:`load_version`: one registered version by name (an unknown name is an error naming it);
* :func:`load_checkpoint`: a checkpoint directory (a round's recorded base, the ablation's baseline);
* :func:`load_pretrained`: ``model.name_or_path`` or a given name (a hub name, ``minilm``, a folder, or ``tiny``,
  the small BERT built over the training texts), with the task's labels: what training starts from.

The number of labels and their names come from one place, :func:`task_label_names`: MNLI keeps
``model.num_labels`` (2: non-entailment, entailment); any other task's model has the task's labels, in its order.
:func:`check_task_labels` refuses a model whose labels are not the task's, naming both label sets.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hildif.config import HildifConfig, ModelConfig
from hildif.model.classifier import Classifier, ModelLoadError, label_names_for
from hildif.model.registry import ModelRegistry, ModelVersionError

if TYPE_CHECKING:
    from hildif.tasks.definition import TaskDefinition
    from hildif.tasks.load import TaskData

log = logging.getLogger(__name__)

MISSING_CURRENT = ("error", "pretrained", "register")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass
class LoadedModel:
    """A loaded model and where it came from: ``version`` and ``path`` of the registry (both None when
    ``model.name_or_path`` was loaded without registering it)."""

    classifier: Classifier
    version: str | None
    path: str | None


def load_kwargs(model: ModelConfig | HildifConfig) -> dict[str, Any]:
    """How every checkpoint of a run is loaded: ``model``'s max length, device and mixed precision."""
    m = model.model if isinstance(model, HildifConfig) else model
    return dict(max_length=m.max_length, device=m.device, mixed_precision=m.mixed_precision)


def task_label_names(cfg: HildifConfig, task: "TaskDefinition | None" = None) -> tuple[str, ...]:
    """The label names (in class order) of a model for ``task`` (default: MNLI): the one place the number of labels
    is decided. MNLI (the paper's task) keeps ``model.num_labels`` and its names (2: non-entailment, entailment); any
    other task has its own labels, whatever ``model.num_labels`` says (a disagreement is logged)."""
    if task is None or task.source == "mnli":
        return label_names_for(cfg.model.num_labels)
    if cfg.model.num_labels != task.num_labels:
        log.debug("task %r has %d labels: its model gets %d (model.num_labels=%d is for MNLI)", task.name,
                 task.num_labels, task.num_labels, cfg.model.num_labels)
    return tuple(task.labels)


def check_task_labels(clf: Classifier, labels: tuple[str, ...] | list[str], task_name: str, what: str = "the model"
                      ) -> None:
    """:class:`ModelLoadError` when ``clf``'s labels (names, in class order) are not ``labels``, naming both."""
    if tuple(clf.label_names) != tuple(labels):
        raise ModelLoadError(f"{what} (version {clf.version}) has the labels ({', '.join(clf.label_names)}) but task "
                             f"{task_name!r} has ({', '.join(labels)}): train a model for this task (`hildif train` "
                             "with this task section) or select the task it was trained for")


def load_pretrained(cfg: HildifConfig, name_or_path: str | None = None, task_data: "TaskData | None" = None,
                    **overrides: Any) -> Classifier:
    """``name_or_path`` (default ``model.name_or_path``) with the labels of ``task_data``'s task
    (:func:`task_label_names`; default MNLI's): a hub name, ``minilm``, a model folder, or ``tiny`` (a small BERT
    whose vocabulary is built over the first 5,000 training examples of the task)."""
    name = name_or_path or cfg.model.name_or_path
    task = task_data.task if task_data is not None else None
    names = task_label_names(cfg, task)
    if name == "tiny":
        from hildif.model.tiny import build_tiny_classifier

        if task_data is not None:
            texts = task_data.train[:5000]
        else:
            from hildif.data.splits import load_train

            texts = load_train(cfg.data)[:5000]
        return build_tiny_classifier(texts, device=overrides.get("device", cfg.model.device), num_labels=len(names),
                                     label_names=names)
    if task is None or task.source == "mnli":
        return Classifier.load(name, num_labels=cfg.model.num_labels, **{**load_kwargs(cfg), **overrides})
    return Classifier.load(name, num_labels=len(names), label_names=names, **{**load_kwargs(cfg), **overrides})


def load_checkpoint(cfg: HildifConfig, path: str | Path, **overrides: Any) -> Classifier:
    """The checkpoint directory ``path`` with the run's load settings (``overrides`` win)."""
    return Classifier.load(str(path), **{**load_kwargs(cfg), **overrides})


def version_path(cfg: HildifConfig, version: str) -> Path:
    """The directory of the registered ``version``; :class:`ModelVersionError` naming it (and the registered
    ones) when the run has no such version. ``version`` may come from outside: only a plain name is looked up."""
    registry = ModelRegistry(cfg.run.run_dir)
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ModelVersionError(f"model version {version!r} is not a version name (letters, digits, '_', '.', '-')")
    try:
        return registry.path(version)
    except FileNotFoundError:
        known = [v["version"] for v in registry.versions()]
        listed = ", ".join(known[:10]) + (f" (+{len(known) - 10} more)" if len(known) > 10 else "")
        raise ModelVersionError(f"model version {version!r} not found under {registry.root} "
                                f"(registered: {listed or 'none'})") from None


def load_version(cfg: HildifConfig, version: str, **overrides: Any) -> Classifier:
    """The registered model ``version`` (see :func:`version_path`)."""
    return load_checkpoint(cfg, version_path(cfg, version), **overrides)


def load_current(cfg: HildifConfig, *, missing: str = "error", task_data: "TaskData | None" = None,
                 **overrides: Any) -> LoadedModel:
    """The version the run serves. When the run has none yet, ``missing`` decides:

    * ``"error"``: :class:`ModelVersionError` saying to train one (``hildif train``);
    * ``"pretrained"``: ``model.name_or_path`` (:func:`load_pretrained`), not registered (version and path None);
    * ``"register"``: ``model.name_or_path`` saved as the first version (kind ``base``) and made current, so
      everything after (a round) starts from a recorded version.

    ``task_data``: the task a pretrained model gets its labels from (default MNLI); the model served is returned
    as saved (:func:`check_task_labels` compares its labels with a task's).
    """
    if missing not in MISSING_CURRENT:
        raise ValueError(f"missing={missing!r}: expected one of {', '.join(MISSING_CURRENT)}")
    registry = ModelRegistry(cfg.run.run_dir)
    if registry.current() is None:
        if missing == "error":
            raise ModelVersionError(f"no current model under {registry.root}: run `hildif train` first")
        if missing == "pretrained":
            return LoadedModel(load_pretrained(cfg, task_data=task_data, **overrides), None, None)
        log.info("no current model in %s: registering %s as the first version", registry.root, cfg.model.name_or_path)
        registry.save(load_pretrained(cfg, task_data=task_data, **overrides),
                      {"kind": "base", "source": cfg.model.name_or_path}, make_current=True)
    version = registry.current()
    path = version_path(cfg, version)
    return LoadedModel(load_checkpoint(cfg, path, **overrides), version, str(path))


__all__ = ["LoadedModel", "MISSING_CURRENT", "ModelLoadError", "ModelVersionError", "check_task_labels",
           "load_checkpoint", "load_current", "load_kwargs", "load_pretrained", "load_version", "task_label_names",
           "version_path"]
