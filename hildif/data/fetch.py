"""Download the official HANS and MNLI files with digest checks (``hildif data fetch``).

Each manifest entry names a URL, a destination under the data directory, and a digest: ``sha256`` and/or
``git_blob_sha1`` (the id git gives the file, which is what the HANS repository pins). A download is written to a
temporary name, checked, and only then renamed into place; a mismatch removes it and raises :class:`FetchError`.
An existing file that already matches is not downloaded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from tqdm.auto import tqdm

from hildif.errors import HildifError

DEFAULT_MANIFEST = Path(__file__).with_name("sources.json")


class FetchError(HildifError, RuntimeError):
    """A download failed or its digest did not match; the message names the file and both digests."""


@dataclass
class Digests:
    sha256: str
    git_blob_sha1: str


def file_digests(path: str | Path) -> Digests:
    path = Path(path)
    sha = hashlib.sha256()
    blob = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
            blob.update(chunk)
    return Digests(sha.hexdigest(), blob.hexdigest())


def _check(entry: dict[str, Any], digests: Digests, allow_unverified: bool) -> str:
    """Return "verified" or "unverified"; raise FetchError on a mismatch or a missing pin (unless allowed)."""
    pinned = False
    for key in ("sha256", "git_blob_sha1"):
        want = entry.get(key)
        if want:
            pinned = True
            got = getattr(digests, key)
            if got != want:
                raise FetchError(f"{entry['name']} ({entry['url']}): {key} mismatch: expected {want}, got {got}")
    if pinned:
        return "verified"
    if not allow_unverified:
        raise FetchError(
            f"{entry['name']}: no digest is pinned in the manifest; its sha256 is {digests.sha256}. "
            "Pin it in the manifest, or pass --allow-unverified"
        )
    return "unverified"


def load_manifest(path: str | Path | None = None) -> list[dict[str, Any]]:
    path = Path(path) if path else DEFAULT_MANIFEST
    try:
        entries = json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise FetchError(f"manifest {path} is unreadable or has no 'files' list: {exc}") from exc
    for i, e in enumerate(entries):
        for key in ("name", "url", "dest"):
            if key not in e:
                raise FetchError(f"manifest {path}: entry {i} lacks field {key!r}")
    return entries


def _download(url: str, target: Path, timeout: float) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f, requests.get(url, stream=True, timeout=timeout) as r:
            if r.status_code != 200:
                raise FetchError(f"{url}: HTTP {r.status_code}")
            total = int(r.headers.get("content-length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
                for chunk in r.iter_content(1 << 16):
                    f.write(chunk)
                    bar.update(len(chunk))
        os.replace(tmp, target.with_name(target.name + ".download"))
    except requests.RequestException as exc:
        raise FetchError(f"{url}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fetch(
    dest: str | Path,
    manifest: str | Path | None = None,
    only: list[str] | None = None,
    allow_unverified: bool = False,
    timeout: float = 60.0,
) -> list[dict[str, Any]]:
    """Fetch every manifest entry (or those named in ``only``) into ``dest``; return one status dict per entry."""
    dest = Path(dest)
    report = []
    for entry in load_manifest(manifest):
        if only and entry["name"] not in only:
            continue
        target = dest / entry["dest"]
        status = None
        if target.exists():
            try:
                status = "present-" + _check(entry, file_digests(target), allow_unverified)
            except FetchError:
                status = None  # stale or corrupt: download again
        if status is None:
            _download(entry["url"], target, timeout)
            part = target.with_name(target.name + ".download")
            try:
                status = _check(entry, file_digests(part), allow_unverified)
            except FetchError:
                part.unlink()
                raise
            os.replace(part, target)
        for member, out in (entry.get("extract") or {}).items():
            _extract(target, member, dest / out)
        report.append({"name": entry["name"], "path": str(target), "status": status,
                       "sha256": file_digests(target).sha256})
    return report


def _extract(archive: Path, member: str, out: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as z, z.open(member) as src:
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
            with os.fdopen(fd, "wb") as f:
                while chunk := src.read(1 << 20):
                    f.write(chunk)
            os.replace(tmp, out)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise FetchError(f"{archive}: cannot extract {member}: {exc}") from exc
