"""Cached artifacts on disk: named, keyed, written atomically, refused on a mismatched key, listable and prunable.

An artifact is one folder ``<root>/<kind>-<digest>/`` holding its data files and ``artifact.json``:
``{"format", "kind", "digest", "key", "created", "versions", "info"}``. ``key`` is everything the contents depend
on (weight digests, the pool's digest, the settings that shape it) and ``digest`` its sha256, so the folder name
says which key it holds; ``versions`` are the model versions that wrote or read it (what :mod:`hildif.caches`
prunes by: an artifact can serve several versions, e.g. prefixes whose frozen layers a fine-tune left alone);
``info`` is free metadata (sizes, build time).

Writing (:meth:`ArtifactDir.write`) fills a temporary folder beside the target (``.<name>.<random>.tmp``) and renames
it into place in one step (:func:`hildif.utils.atomic.atomic_dir`), ``artifact.json`` last inside it: a crash
leaves no folder under the artifact's name, only a temporary one that :meth:`ArtifactDir.list` reports as
``partial`` and pruning removes. Reading (:meth:`ArtifactDir.find`) returns the folder only when its
``artifact.json`` holds exactly the key asked for; any other key raises :class:`ArtifactKeyError` before a data file
is opened. Files of the older flat layout (``knn-<key>.faiss``, ``store-<key>.npy``, ``prefix-<key>.npy`` and their
siblings) are moved into an artifact when a cache asks for their key and they are complete (:meth:`ArtifactDir.adopt`),
else never read: listed as ``legacy`` and pruned.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from hildif.errors import HildifError
from hildif.utils.atomic import atomic_dir, write_json_atomic

log = logging.getLogger(__name__)
FORMAT = 1
META_FILE = "artifact.json"
LEGACY = re.compile(r"^(knn|store|prefix)-([0-9a-f]{20})\.")  # the flat files of the layout before artifacts
PARTIAL = re.compile(r"^\.(.+)\.[^.]+\.tmp$")  # atomic_dir's temporary folders (and old temp files)


class ArtifactKeyError(HildifError, ValueError):
    """An artifact on disk holds another key than the one asked for; it is not read (the message says which)."""


def normalise(key: dict[str, Any]) -> dict[str, Any]:
    """``key`` as it reads back from JSON (tuples as lists, other values as strings), for comparison."""
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def key_digest(key: dict[str, Any]) -> str:
    """sha256 (20 hex) of ``key`` as sorted JSON: the artifact's name after its kind."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _stamp(seconds: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass(frozen=True)
class ArtifactInfo:
    """One entry of a cache folder: ``state`` is ``ok`` (a complete artifact), ``legacy`` (a file of the flat layout,
    never read), ``partial`` (a write that did not finish) or ``broken`` (a folder whose ``artifact.json`` is
    unreadable). ``paths``: what removing it deletes; ``versions``: the model versions it serves."""

    name: str
    kind: str
    state: str
    paths: tuple[Path, ...]
    size: int
    created: str
    versions: tuple[str, ...] = ()
    key: dict[str, Any] | None = None
    info: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "state": self.state, "size": self.size, "created": self.created,
                "versions": list(self.versions), "key": self.key, "info": self.info}


class ArtifactDir:
    """A folder of artifacts (one run's ``<cache>/influence`` or ``<cache>/store``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, key: dict[str, Any]) -> Path:
        return self.root / f"{kind}-{key_digest(key)}"

    # ------------------------------------------------------------------ read
    def find(self, kind: str, key: dict[str, Any], *, version: str | None = None,
             legacy: dict[str, str] | None = None) -> Path | None:
        """The folder of the complete ``kind`` artifact of ``key``, or None when there is none; raises
        :class:`ArtifactKeyError` when the folder of that name holds another key or kind (nothing in it is read).
        ``version``: the model version reading it, added to its ``versions``. ``legacy``: the flat files of the
        layout before artifacts, ``{suffix: file name in the artifact}``, adopted when no artifact is there
        (:meth:`adopt`)."""
        folder = self.path(kind, key)
        meta_path = folder / META_FILE
        if not meta_path.is_file() and (legacy is None or self.adopt(kind, key, legacy) is None):
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArtifactKeyError(f"cache {folder.name}: {META_FILE} unreadable ({exc}); not read") from None
        want = normalise(key)
        if meta.get("format") != FORMAT or meta.get("kind") != kind or meta.get("key") != want:
            theirs = meta.get("key") if isinstance(meta.get("key"), dict) else {}
            differ = sorted(k for k in set(theirs) | set(want) if theirs.get(k) != want.get(k))
            raise ArtifactKeyError(
                f"cache {folder.name} was written for another key (format {meta.get('format')}, kind "
                f"{meta.get('kind')}; differing: {', '.join(differ) or 'none'}); not read")
        if version and version not in meta.get("versions", []):
            meta["versions"] = [*meta.get("versions", []), version]
            with contextlib.suppress(OSError):  # a read-only cache still serves; only the record of users is lost
                write_json_atomic(meta_path, meta)
        return folder

    def adopt(self, kind: str, key: dict[str, Any], files: dict[str, str]) -> Path | None:
        """Move the flat files ``<kind>-<digest><suffix>`` of the layout before artifacts into the artifact of
        ``key`` (one rename each, then the folder's): only when every one of them is there and their
        ``<kind>-<digest>.json``, written last by the old code, names this digest as its key (the old key was the
        same digest of the same parts). The folder, or None."""
        digest = key_digest(key)
        stem = self.root / f"{kind}-{digest}"
        meta_path = stem.with_name(f"{stem.name}.json")
        sources = {stem.with_name(f"{stem.name}{suffix}"): name for suffix, name in files.items()}
        if not meta_path.is_file() or not all(src.is_file() for src in sources):
            return None
        try:
            old = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(old, dict) or old.get("key") != digest:
            return None
        info = {k: v for k, v in old.items() if k not in ("key", "model_version")}
        with self.write(kind, key, version=old.get("model_version"), info=info) as tmp:
            for src, name in sources.items():
                os.replace(src, tmp / name)
        meta_path.unlink(missing_ok=True)
        log.info("cache %s moved into the artifact layout", stem.name)
        return self.path(kind, key)

    def meta(self, folder: str | Path) -> dict[str, Any]:
        """The ``artifact.json`` of ``folder`` (as :meth:`find` returned it)."""
        return json.loads((Path(folder) / META_FILE).read_text(encoding="utf-8"))

    # ------------------------------------------------------------------ write
    @contextlib.contextmanager
    def write(self, kind: str, key: dict[str, Any], *, version: str | None = None,
              info: dict[str, Any] | None = None) -> Iterator[Path]:
        """Yield a fresh temporary folder for the artifact's files; when the block ends without an exception,
        ``artifact.json`` is written into it and the folder renamed to the artifact's name in one step (replacing
        an older one of that name). The block may add to ``info`` (a dict it passed in) until it ends; on an
        exception the temporary folder is removed and nothing under the artifact's name changes."""
        info = {} if info is None else info
        with atomic_dir(self.path(kind, key)) as tmp:
            yield tmp
            write_json_atomic(tmp / META_FILE, {
                "format": FORMAT, "kind": kind, "digest": key_digest(key), "key": normalise(key),
                "created": _stamp(), "versions": [version] if version else [], "info": normalise(info)})

    # ------------------------------------------------------------------ list, remove
    def list(self) -> list[ArtifactInfo]:
        """Every entry of the folder (artifacts, legacy files grouped by their key, partial writes), by name."""
        if not self.root.is_dir():
            return []
        out: list[ArtifactInfo] = []
        legacy: dict[str, list[Path]] = {}
        for entry in sorted(self.root.iterdir()):
            if (m := PARTIAL.match(entry.name)) is not None:
                out.append(ArtifactInfo(entry.name, m.group(1).split("-")[0], "partial", (entry,), _size(entry),
                                        _stamp(entry.stat().st_mtime)))
            elif entry.is_dir() and (entry / META_FILE).exists():
                try:
                    meta = self.meta(entry)
                except (OSError, ValueError):
                    meta = None
                if not isinstance(meta, dict):
                    out.append(ArtifactInfo(entry.name, entry.name.split("-")[0], "broken", (entry,), _size(entry),
                                            _stamp(entry.stat().st_mtime)))
                    continue
                out.append(ArtifactInfo(entry.name, str(meta.get("kind")), "ok", (entry,), _size(entry),
                                        str(meta.get("created")), tuple(meta.get("versions") or ()),
                                        meta.get("key"), meta.get("info")))
            elif entry.is_file() and (m := LEGACY.match(entry.name)) is not None:
                legacy.setdefault(f"{m.group(1)}-{m.group(2)}", []).append(entry)
        for name, files in legacy.items():
            version = None
            with contextlib.suppress(OSError, ValueError, AttributeError):
                version = json.loads((self.root / f"{name}.json").read_text()).get("model_version")
            out.append(ArtifactInfo(name, name.split("-")[0], "legacy", tuple(files), sum(_size(f) for f in files),
                                    _stamp(max(f.stat().st_mtime for f in files)), (version,) if version else ()))
        return sorted(out, key=lambda a: a.name)

    @staticmethod
    def remove(entry: ArtifactInfo) -> int:
        """Delete ``entry``'s files; the bytes freed."""
        freed = 0
        for path in entry.paths:
            size = _size(path) if path.exists() else 0
            if path.is_dir():
                trash = path.with_name(f".{path.name}.removing-{os.getpid()}.tmp")
                os.replace(path, trash)  # gone from its name at once, so no reader finds half a folder
                shutil.rmtree(trash, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            freed += size
        log.info("removed %s (%d bytes)", entry.name, freed)
        return freed
