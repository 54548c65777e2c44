"""FIT and evaluation as whole jobs: load the configured task and model, train, version, evaluate, report.

Any task (``cfg.task``, :mod:`hildif.tasks`): the model is trained on the task's training examples with the task's
labels (:func:`hildif.model.loading.task_label_names`) and evaluated on its held-out examples, per label and per
slice (``task.slices``). MNLI, the paper's task, keeps its evaluation: HANS per heuristic x class and MNLI
dev_matched.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from hildif import distributed
from hildif.config import HildifConfig
from hildif.data import stratified_sample
from hildif.model.evaluation import evaluate_task, figure_1c_markdown, stress_markdown, task_markdown, write_report
from hildif.model.loading import check_task_labels, load_current, load_pretrained, task_label_names
from hildif.model.registry import ModelRegistry
from hildif.model.training import train
from hildif.tasks.definition import TaskDefinition, TaskError
from hildif.tasks.load import TaskData, load_configured_task

log = logging.getLogger(__name__)


def task_record(data: TaskData) -> dict[str, Any]:
    """What a model version records about the task it was trained on: name, source, text fields, labels (in class
    order), the Label Studio project (if any) and the example counts per split and label."""
    summary = data.summary()
    task = data.task
    return {"name": task.name, "source": task.source, "text_fields": list(task.text_fields),
            "labels": list(task.labels), "project_id": task.project_id, "train": summary["train"],
            "heldout": summary["heldout"], "train_per_label": summary["train_per_label"],
            "heldout_per_label": summary["heldout_per_label"]}


def train_baseline(cfg: HildifConfig, resume: bool = False, task_data: TaskData | None = None) -> dict[str, Any]:
    """Train the configured model on the task's training examples, save it as a new current version, return a
    summary (``version``, ``path``, ``train``, ``task``).

    ``task_data``: the task already loaded (a Label Studio project fetched by the caller:
    :func:`hildif.labelstudio.export.load_project_task`); default :func:`hildif.tasks.load.load_configured_task`.
    The model gets the task's labels; periodic evaluation uses a label-stratified sample of the held-out examples
    (``train.eval_examples``; MNLI: dev_matched as before). The version's ``hildif.json`` records the task.
    """
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    data = task_data if task_data is not None else load_configured_task(cfg)
    task = data.task
    # train.eval_examples = 0: no dev evaluation (stratified_sample(rows, 0) would return every row)
    dev_sample = (stratified_sample(data.heldout, cfg.train.eval_examples, key=lambda e: e.label)
                  if cfg.train.eval_examples else [])
    clf = load_pretrained(cfg, task_data=data)
    log.info("training %s on %d examples of task %s (%d labels; %s, device %s)", cfg.model.name_or_path,
             len(data.train), task.name, clf.num_labels, cfg.profile, clf.device)
    work = Path(cfg.run.run_dir) / "training" / "baseline"
    result = train(clf, data.train, cfg.train, eval_examples=dev_sample, output_dir=work, resume=resume)
    registry = ModelRegistry(cfg.run.run_dir)
    record = task_record(data)
    meta = {
        "kind": "baseline", "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "profile": cfg.profile,
        "base_model": cfg.model.name_or_path, "train_examples": len(data.train), "train": result.to_dict(),
        "task": record,
        "config": {"train": cfg.to_dict()["train"], "data": cfg.to_dict()["data"], "task": cfg.to_dict()["task"]},
    }
    version = registry.save(clf, meta)
    return {"version": version, "path": str(registry.path(version)), "train": result.to_dict(), "task": record}


def evaluate_current(cfg: HildifConfig, title: str = "evaluation", model: str | None = None,
                     task_data: TaskData | None = None) -> dict[str, Any]:
    """Evaluate ``model`` (a directory) or the run's current model; write reports under ``<run_dir>/reports``.

    MNLI: HANS (Figure 1c layout), MNLI dev_matched and Naik et al.'s stress sets of the MNLI rows
    (``eval.stress_sets``; :mod:`hildif.data.stress`). Any other task: accuracy overall, per label and
    per slice (``task.slices``) on all its held-out examples (:func:`hildif.model.evaluation.evaluate_task`),
    written as ``<title>.json``, ``.md`` and ``.png`` (accuracy per label) and printed. A model whose labels are not
    the task's is refused (:class:`hildif.model.classifier.ModelLoadError` naming both label sets).
    Returns ``{"result", "paths"}``.
    """
    task = task_data.task if task_data is not None else TaskDefinition.from_config(cfg.task)
    if task.source == "mnli":
        return _evaluate_mnli(cfg, title, model)
    data = task_data if task_data is not None else load_configured_task(cfg)
    task = data.task
    if not data.heldout:
        raise TaskError(f"task {task.name!r} has no held-out examples to evaluate on (task.heldout_fraction, or "
                        "task.eval_files)")
    clf = load_pretrained(cfg, model, task_data=data) if model else load_current(cfg).classifier
    check_task_labels(clf, task_label_names(cfg, task), task.name,
                      f"model {model!r}" if model else "the run's current model")
    result = evaluate_task(clf, data.heldout, label_names=task.labels, slices=task.slices,
                           batch_size=cfg.eval.batch_size, progress=True)
    result["task"]["task"] = task.name
    results = {clf.version: result}
    paths = write_report(results, Path(cfg.run.run_dir) / "reports", title, extra={"task": task_record(data)})
    if distributed.is_main():
        table = result["task"]
        print(f"task {task.name}: accuracy {table['accuracy']} % on {table['n']} held-out examples "
              f"(macro F1 {table['macro_f1']}, majority class {table['majority_class']} %)")
        print(task_markdown(results))
        print("reports: " + ", ".join(str(p) for p in paths.values()))
    return {"result": result, "paths": {k: str(v) for k, v in paths.items()}}


def _evaluate_mnli(cfg: HildifConfig, title: str, model: str | None) -> dict[str, Any]:
    from hildif.rounds.finetune import evaluate_model

    clf = load_pretrained(cfg, model) if model else load_current(cfg).classifier
    check_task_labels(clf, task_label_names(cfg), "mnli", f"model {model!r}" if model else "the run's current model")
    result = evaluate_model(clf, cfg, progress=True)  # HANS, MNLI dev and the stress sets (eval.stress_sets)
    paths = write_report({clf.version: result}, Path(cfg.run.run_dir) / "reports", title)
    if distributed.is_main():  # under torchrun every rank evaluates its shard; rank 0 alone writes and prints
        print(figure_1c_markdown({clf.version: result}))
        stress = stress_markdown({clf.version: result})
        if stress:
            print("Stress tests (Naik et al. 2018), 2-class accuracy %:\n\n" + stress)
        print("reports: " + ", ".join(str(p) for p in paths.values()))
    return {"result": result, "paths": {k: str(v) for k, v in paths.items()}}
