"""How later commands reach the Label Studio a run started itself (the demo's).

When the demo starts Label Studio for a run, it records how to reach it in the run directory:
``labelstudio-admin-token`` (the admin's API token, mode 600) and ``labelstudio-server.json`` (its URL, port and data
folder, no secret). Later commands on that run (``hildif round ...``, ``hildif annotators ...``) use them when no API
key is configured (``$LABEL_STUDIO_API_KEY`` / ``labelstudio.api_key_file`` win), and a sync can start that Label
Studio when it is not running (:func:`running`). Both files are read as hostile input: the URL must be loopback on the
recorded port and the data folder inside the run directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from hildif.config import HildifConfig
from hildif.errors import HildifError

log = logging.getLogger(__name__)

TOKEN_FILE = "labelstudio-admin-token"
SERVER_FILE = "labelstudio-server.json"


class AccessError(HildifError, ValueError):
    """A run's Label Studio record is unreadable or points outside the run; the message names the file."""


@dataclass(frozen=True)
class RunLabelStudio:
    """The Label Studio a run started: ``url`` (``http://127.0.0.1:<port>``), ``port``, ``data_dir`` (absolute,
    inside the run directory), ``token_file`` (the admin token, mode 600), ``admin_email``."""

    url: str
    port: int
    data_dir: Path
    token_file: Path
    admin_email: str


def remember(run_dir: str | Path, *, port: int, token: str, data_dir: str | Path, admin_email: str) -> RunLabelStudio:
    """Record the run's own Label Studio (on 127.0.0.1:``port``, data in ``data_dir`` inside the run)."""
    run = Path(run_dir).resolve()
    data = Path(data_dir).resolve()
    if run not in data.parents:
        raise AccessError(f"Label Studio's data folder {data} is not inside the run directory {run}")
    run.mkdir(parents=True, exist_ok=True)
    token_path = run / TOKEN_FILE
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token.strip() + "\n")
    os.chmod(token_path, 0o600)  # an older file keeps its mode through O_CREAT
    record = {"port": int(port), "data_dir": data.relative_to(run).as_posix(), "admin_email": admin_email}
    tmp = run / f".{SERVER_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, run / SERVER_FILE)
    return recorded(run)  # type: ignore[return-value]


def recorded(run_dir: str | Path) -> RunLabelStudio | None:
    """The run's recorded Label Studio, or None when the run has none. :class:`AccessError` for a record that is
    malformed or points outside the run."""
    run = Path(run_dir).resolve()
    path, token_path = run / SERVER_FILE, run / TOKEN_FILE
    if not path.exists():
        return None
    try:
        if path.stat().st_size > 10_000:
            raise ValueError("too large")
        rec = json.loads(path.read_text(encoding="utf-8"))
        port, rel, email = rec["port"], rec["data_dir"], rec["admin_email"]
        if not (isinstance(port, int) and 1 <= port <= 65535 and isinstance(rel, str) and isinstance(email, str)):
            raise ValueError("bad field types")
    except (OSError, ValueError, KeyError, TypeError):
        raise AccessError(f"{path}: not the record hildif writes (port, data_dir, admin_email); remove it and "
                          "rerun the demo, or configure labelstudio.url and an API key") from None
    data = (run / rel).resolve()
    if run not in data.parents:
        raise AccessError(f"{path}: data_dir must be a folder inside the run directory")
    if not token_path.exists():
        raise AccessError(f"{path} has no {TOKEN_FILE} beside it; rerun the demo or configure an API key")
    return RunLabelStudio(f"http://127.0.0.1:{port}", port, data, token_path, email)


def api_key_configured(cfg: HildifConfig) -> bool:
    return bool(os.environ.get(cfg.labelstudio.api_key_env, "").strip() or cfg.labelstudio.api_key_file)


def use_run_access(cfg: HildifConfig, ls_url: str | None = None) -> RunLabelStudio | None:
    """Point ``cfg.labelstudio`` at the run's own Label Studio (URL and token file) when no API key is configured
    and the run has one; returns it (None: nothing changed). ``ls_url``: a URL the caller named (``--ls-url``): it
    becomes ``labelstudio.url`` and is kept."""
    if ls_url:
        cfg.labelstudio.url = ls_url
    url_given = bool(ls_url)
    if api_key_configured(cfg):
        return None
    rec = recorded(cfg.run.run_dir)
    if rec is None:
        return None
    if url_given and cfg.labelstudio.url.rstrip("/") != rec.url:
        return None
    cfg.labelstudio.url = rec.url
    cfg.labelstudio.api_key_file = str(rec.token_file)
    return rec


@contextlib.contextmanager
def running(rec: RunLabelStudio | None, say=print) -> Iterator[object | None]:
    """Make sure the run's own Label Studio answers: start it (same port, data and admin) when it does not, and
    stop it on exit; yields the server started here, or None when nothing was started."""
    from hildif.labelstudio.server import LabelStudioServer

    if rec is None:
        yield None
        return
    token = rec.token_file.read_text(encoding="utf-8").strip()
    server = LabelStudioServer(rec.data_dir, port=rec.port, admin_email=rec.admin_email, admin_token=token,
                               allow_local_backends=True)
    if server.is_healthy():
        yield None
        return
    if not (rec.data_dir / "label_studio.sqlite3").exists():
        raise AccessError(f"the run's Label Studio data folder {rec.data_dir} has no database; rerun the demo")
    say(f"starting the run's Label Studio at {rec.url} (data {rec.data_dir}); it stops when this command ends")
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["AccessError", "RunLabelStudio", "SERVER_FILE", "TOKEN_FILE", "api_key_configured", "recorded",
           "remember", "running", "use_run_access"]
