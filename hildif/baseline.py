"""FIT and evaluation as whole jobs: load the configured data and model, train, version, evaluate, report."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from hildif import distributed
from hildif.config import HildifConfig
from hildif.data import evaluation_sets, load_dev, load_train, stratified_sample
from hildif.model.evaluation import evaluate, figure_1c_markdown, write_report
from hildif.model.loading import load_current, load_pretrained
from hildif.model.registry import ModelRegistry
from hildif.model.training import train

log = logging.getLogger(__name__)


def train_baseline(cfg: HildifConfig, resume: bool = False) -> dict[str, Any]:
    """Train the configured model on the train split, save it as a new current version, return a summary."""
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    train_set = load_train(cfg.data)
    dev_sample = stratified_sample(load_dev(cfg.data), cfg.train.eval_examples, key=lambda e: e.label)
    clf = load_pretrained(cfg)
    log.info("training %s on %d examples (%s, device %s)", cfg.model.name_or_path, len(train_set), cfg.profile,
             clf.device)
    work = Path(cfg.run.run_dir) / "training" / "baseline"
    result = train(clf, train_set, cfg.train, eval_examples=dev_sample, output_dir=work, resume=resume)
    registry = ModelRegistry(cfg.run.run_dir)
    meta = {
        "kind": "baseline", "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "profile": cfg.profile,
        "base_model": cfg.model.name_or_path, "train_examples": len(train_set), "train": result.to_dict(),
        "config": {"train": cfg.to_dict()["train"], "data": cfg.to_dict()["data"]},
    }
    version = registry.save(clf, meta)
    return {"version": version, "path": str(registry.path(version)), "train": result.to_dict()}


def evaluate_current(cfg: HildifConfig, title: str = "evaluation", model: str | None = None) -> dict[str, Any]:
    """Evaluate ``model`` (a directory) or the run's current model; write reports under ``<run_dir>/reports``."""
    clf = load_pretrained(cfg, model) if model else load_current(cfg).classifier
    result = evaluate(clf, *evaluation_sets(cfg.data, cfg.eval), batch_size=cfg.eval.batch_size, progress=True)
    paths = write_report({clf.version: result}, Path(cfg.run.run_dir) / "reports", title)
    if distributed.is_main():  # under torchrun every rank evaluates its shard; rank 0 alone writes and prints
        print(figure_1c_markdown({clf.version: result}))
        print("reports: " + ", ".join(str(p) for p in paths.values()))
    return {"result": result, "paths": {k: str(v) for k, v in paths.items()}}
