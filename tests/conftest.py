"""Shared fixtures. Data comes from HILDIF_DATA_DIR (default ../shared/data beside the checkout), never copied here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HILDIF_DATA_DIR", str(REPO.parent / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ["HILDIF_DATA_DIR"])
    if not (path / "mnli" / "dev_matched.jsonl.gz").exists():
        pytest.fail(f"test data not found in {path}: set HILDIF_DATA_DIR to the shared data directory")
    return path


@pytest.fixture(scope="session")
def mnli_train_sample(data_dir):
    """600 genuine MNLI train rows (both subsets), deterministic."""
    from hildif.config import DataConfig
    from hildif.data import load_train

    cfg = DataConfig(data_dir=str(data_dir), max_train_examples=600)
    return load_train(cfg)


@pytest.fixture(scope="session")
def hans_sample(data_dir):
    from hildif.config import DataConfig
    from hildif.data import load_hans, stratified_sample

    return stratified_sample(load_hans(DataConfig(data_dir=str(data_dir))), 300, seed=1)


@pytest.fixture()
def tiny_clf(mnli_train_sample, hans_sample):
    """A fresh 2-layer, hidden-32 BERT with a word vocabulary covering the samples (CPU, seed 0)."""
    from hildif.model.tiny import build_tiny_classifier

    return build_tiny_classifier(list(mnli_train_sample) + list(hans_sample), seed=0)
