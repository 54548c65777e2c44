"""Versioned model checkpoints under ``<run_dir>/models``.

Layout::

    models/<version>/        weights, tokenizer, config, hildif.json (training metadata)
    models/current.json      {"version": ..., "path": ..., "updated_at": ...}: the model that is served

The registry is the one record of model versions: which exist (:meth:`ModelRegistry.versions`, with the lineage
their ``hildif.json`` holds: ``kind``, ``parent``, ``round_id``, ``sync_id``, ``created_at``) and which is served
(:meth:`ModelRegistry.current`). The round database keeps only what rounds measured about a version (its
evaluation), keyed by the version name.

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


VERSION_FIELDS = ("created_at", "kind", "parent", "round_id", "sync_id")


def _now(seconds: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class ModelRegistry:
    def __init__(self, run_dir: str | Path) -> None:
        self.root = Path(run_dir) / "models"

    def save(self, clf: Classifier, metadata: dict[str, Any] | None = None, make_current: bool = True) -> str:
        """Save ``clf`` as a new version (its weight digest) and, by default, make it current. ``metadata`` goes into
        the version's ``hildif.json``; ``created_at`` is now unless it says otherwise.

        Under torchrun every rank calls it; rank 0 alone writes, and every rank returns once the version is saved."""
        staging = self.root / f".staging-{time.time_ns()}"
        # rank 0 writes, the others receive the version
        version = clf.save(staging, {"created_at": _now(), **(metadata or {})})
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
        """Every saved version in the order they were saved (oldest first, by the time their ``hildif.json`` was
        written): ``{"version", "created_at", "kind", "parent", "round_id", "sync_id"}``, None where ``hildif.json``
        does not say (a checkpoint saved without ``created_at`` is dated by that file's modification time)."""
        out = []
        for d in self.root.glob("*/hildif.json"):
            if d.parent.name.startswith("."):  # a staging folder of a save in progress (or cut off by a crash)
                continue
            meta = json.loads(d.read_text())
            mtime = d.stat().st_mtime_ns
            row = {"version": d.parent.name, **{k: meta.get(k) for k in VERSION_FIELDS}}
            row["created_at"] = row["created_at"] or _now(mtime / 1e9)
            out.append((mtime, row["version"], row))
        return [row for *_, row in sorted(out, key=lambda t: t[:2])]

    def discard(self, version: str) -> None:
        """Remove a version that must not stay one (the model of a sync that failed after saving it). The served
        version cannot be discarded."""
        if version == self.current():
            raise ValueError(f"model version {version!r} is the one served: it cannot be discarded")
        path = self.path(version)
        trash = self.root / f".discarded-{version}-{time.time_ns()}"
        path.replace(trash)  # atomic: the version is gone from versions() at once, then the files are removed
        shutil.rmtree(trash, ignore_errors=True)
