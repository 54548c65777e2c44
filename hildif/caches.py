"""A run's caches by model version: what ``hildif cache list`` shows and what ``hildif cache prune`` removes.

The caches are the artifacts (:mod:`hildif.utils.artifacts`) in ``<cache>/influence`` (kNN indexes, frozen
prefixes) and ``<cache>/store`` (gradient stores). Each records the model versions that wrote or read it. Pruning
keeps an artifact when one of its versions is protected:

* the served version (``models/current.json``),
* the newest ``influence.cache_keep_versions`` versions of the registry (by the time they were saved),
* the base version of every open round (no sync done yet, or one running: :meth:`RoundState.open_rounds`);

and removes every other artifact, the files of the older flat layout (never read) and writes that did not finish
(temporary folders older than :data:`PARTIAL_AGE_S`, so a build in progress is left alone).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hildif.utils.artifacts import ArtifactDir, ArtifactInfo

if TYPE_CHECKING:  # pragma: no cover
    from hildif.config import HildifConfig

CACHE_FOLDERS = ("influence", "store")  # under the run's cache folder
PARTIAL_AGE_S = 6 * 3600  # an unfinished write younger than this may still be running


def cache_dirs(cfg: "HildifConfig") -> list[ArtifactDir]:
    return [ArtifactDir(cfg.cache_path(name)) for name in CACHE_FOLDERS]


def protected_versions(cfg: "HildifConfig", keep: int | None = None) -> dict[str, str]:
    """version -> why its caches stay: served, one of the newest ``keep`` (default ``influence.cache_keep_versions``),
    base of an open round."""
    from hildif.model.registry import ModelRegistry
    from hildif.rounds.state import RoundState

    keep = cfg.influence.cache_keep_versions if keep is None else keep
    registry = ModelRegistry(cfg.run.run_dir)
    reasons: dict[str, list[str]] = {}
    newest = [v["version"] for v in registry.versions()][::-1][:max(0, keep)]
    for version in newest:
        reasons.setdefault(version, []).append(f"one of the newest {keep}")
    db = Path(cfg.run_path("rounds.sqlite"))
    if db.exists():
        for round_id, base in RoundState(db).open_rounds().items():
            reasons.setdefault(base, []).append(f"base of open round {round_id}")
    served = registry.current()
    if served:
        reasons.setdefault(served, []).insert(0, "served")
    return {v: ", ".join(r) for v, r in reasons.items()}


@dataclass(frozen=True)
class Decision:
    """One cache entry and whether pruning keeps it, with the reason."""

    folder: Path
    entry: ArtifactInfo
    keep: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"folder": self.folder.name, **self.entry.to_dict(), "keep": self.keep, "reason": self.reason}


def _newest_mtime(entry: ArtifactInfo) -> float:
    times = [p.stat().st_mtime for p in entry.paths if p.exists()]
    for p in entry.paths:
        if p.is_dir():
            times += [f.stat().st_mtime for f in p.rglob("*") if f.exists()]
    return max(times, default=0.0)


def decide(entry: ArtifactInfo, protected: dict[str, str], now: float | None = None) -> tuple[bool, str]:
    """Whether ``entry`` stays, and why (a protected version's reason, or why it may go)."""
    if entry.state == "legacy":
        return False, "older cache layout, never read"
    if entry.state == "partial":
        age = (time.time() if now is None else now) - _newest_mtime(entry)
        if age < PARTIAL_AGE_S:
            return True, "a write in progress (or stopped less than 6 h ago)"
        return False, "a write that did not finish"
    if entry.state == "broken":
        return False, "unreadable artifact.json"
    kept = [f"{v}: {protected[v]}" for v in entry.versions if v in protected]
    if kept:
        return True, "; ".join(kept)
    return False, f"version{'s' if len(entry.versions) != 1 else ''} {', '.join(entry.versions) or '(none)'} not kept"


def plan(cfg: "HildifConfig", keep: int | None = None) -> list[Decision]:
    """Every cache entry of the run with pruning's decision, by folder and name."""
    protected = protected_versions(cfg, keep)
    out = []
    for cache in cache_dirs(cfg):
        for entry in cache.list():
            stays, reason = decide(entry, protected)
            out.append(Decision(cache.root, entry, stays, reason))
    return out


def prune(decisions: list[Decision], dry_run: bool = False) -> int:
    """Remove every entry ``decisions`` does not keep (nothing with ``dry_run``); the bytes freed (or that would be)."""
    freed = 0
    for d in decisions:
        if not d.keep:
            freed += d.entry.size if dry_run else ArtifactDir.remove(d.entry)
    return freed


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
