"""Versioned model checkpoints under ``<run_dir>/models``.

Layout::

    models/<version>/        weights, tokenizer, config, hildif.json (training metadata)
    models/current.json      {"version": ..., "path": ..., "updated_at": ...}: the model that is served

Checkpoints are written with :meth:`Classifier.save` (atomic directory rename); ``current.json`` is switched last
and atomically, so a crash at any point leaves the previous model current. Loading them: :mod:`hildif.model.loading`.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from hildif import distributed
from hildif.model.classifier import Classifier, ModelLoadError
from hildif.utils.atomic import write_json_atomic


class ModelVersionError(ModelLoadError, FileNotFoundError):
    """A model version that is not registered in the run (or no current version); the message names it."""


class ModelRegistry:
    def __init__(self, run_dir: str | Path) -> None:
        self.root = Path(run_dir) / "models"

    def save(self, clf: Classifier, metadata: dict[str, Any] | None = None, make_current: bool = True) -> str:
        """Save ``clf`` as a new version (its weight digest) and, by default, make it current.

        Under torchrun every rank calls it; rank 0 alone writes, and every rank returns once the version is saved."""
        staging = self.root / f".staging-{time.time_ns()}"
        version = clf.save(staging, metadata)  # rank 0 writes, the others receive the version
        if distributed.is_main():
            target = self.root / version
            if target.exists():
                shutil.rmtree(staging)
            else:
                staging.replace(target)
            if make_current:
                self.set_current(version)
        distributed.barrier()
        return version

    def path(self, version: str) -> Path:
        p = self.root / version
        if not (p / "hildif.json").exists():
            raise ModelVersionError(f"model version {version!r} not found under {self.root}")
        return p

    def set_current(self, version: str) -> None:
        path = self.path(version)
        write_json_atomic(
            self.root / "current.json",
            {"version": version, "path": str(path.resolve()), "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S")},
        )

    def current(self) -> str | None:
        f = self.root / "current.json"
        return json.loads(f.read_text())["version"] if f.exists() else None

    def current_path(self) -> Path | None:
        v = self.current()
        return self.path(v) if v else None

    def versions(self) -> list[dict[str, Any]]:
        out = []
        for d in sorted(self.root.glob("*/hildif.json")):
            if d.parent.name.startswith("."):  # a staging folder of a save in progress (or cut off by a crash)
                continue
            meta = json.loads(d.read_text())
            out.append({"version": d.parent.name, **{k: meta.get(k) for k in ("created_at", "kind", "parent")}})
        return out
