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


# ---------------------------------------------------------------------------------------------- Label Studio
@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A real Label Studio 1.23.2 on 127.0.0.1 (SQLite), for the whole session.

    The executable is ``$HILDIF_LABEL_STUDIO_BIN`` or ``.venv-ls/bin/label-studio``. Its data folder is a copy of a
    migrated one cached in ``$HILDIF_TEST_CACHE`` (default ``~/.cache/hildif-tests``), built by the first run
    (about 30-100 s), so later sessions start in a few seconds. SSRF protection is off so that Label Studio may
    call the ML backend started by the tests on 127.0.0.1. Skipped when Label Studio is not installed, unless
    ``HILDIF_REQUIRE_LABEL_STUDIO=1`` (CI), where that is an error.
    """
    from required import LABEL_STUDIO, skip_or_fail

    from hildif.labelstudio.server import (
        LABEL_STUDIO_VERSION, LabelStudioServer, LabelStudioServerError, find_label_studio_bin, free_port,
        prepare_data_dir,
    )

    try:
        find_label_studio_bin()
    except LabelStudioServerError as exc:
        skip_or_fail(str(exc), LABEL_STUDIO)
    cache = Path(os.environ.get("HILDIF_TEST_CACHE") or Path.home() / ".cache" / "hildif-tests")
    data = prepare_data_dir(tmp_path_factory.mktemp("label-studio"), cache / f"label-studio-{LABEL_STUDIO_VERSION}-template",
                            allow_local_backends=True)
    server = LabelStudioServer(data, port=free_port(), allow_local_backends=True)
    server.start(timeout=float(os.environ.get("HILDIF_TEST_LS_START_TIMEOUT", 180)))  # more on a crowded machine
    yield server
    server.stop()
