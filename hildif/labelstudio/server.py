"""Start and stop a local Label Studio server (for rounds on one machine, the demo and the test suite).

Label Studio runs as a separate process from its own virtual environment (``.venv-ls`` at the repository root, made
by ``python3 -m venv .venv-ls && .venv-ls/bin/pip install label-studio==1.23.2``), so its exact pins (Django, numpy,
the SDK) stay out of hildif's environment. This module imports no Label Studio code; it speaks HTTP only.

Facts it relies on (docs/label-studio.md): Label Studio reads the bare variables ``USERNAME PASSWORD PORT HOST
USER_TOKEN`` (removed here), silently moves to port+1 when the port is busy (checked first here), writes under
``$HOME`` and ``LABEL_STUDIO_BASE_DATA_DIR`` (both point at ``data_dir``), phones the package index and Sentry unless
told not to, and answers ``GET /health`` with ``{"status": "UP"}`` when ready. The first admin and its legacy token
come from ``LABEL_STUDIO_USERNAME/PASSWORD/USER_TOKEN`` when the database is created; legacy tokens are enabled by
``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN`` at that moment only, so a data folder made here keeps them enabled.

On loopback (the default) the admin gets hildif's fixed local credentials, so tests and the demo can share one
migrated template. On any other interface the admin password and token are generated once per data folder
(:func:`generated_admin_credentials`: printed once, kept in ``<data_dir>/hildif-admin-credentials.json`` with mode
600), never the fixed defaults; a data folder created with the defaults is refused there.

A cold start on an empty data folder runs the migrations (about 25 s); :func:`prepare_data_dir` copies a folder that
was migrated once (about 3 s to start).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

from hildif.errors import HildifError
from hildif.utils.locks import file_lock
from hildif.utils.net import is_loopback
from hildif.utils.paths import display_path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
LABEL_STUDIO_VERSION = "1.23.2"
# Variables Label Studio would read from the caller's environment under bare names.
_BARE_NAMES = ("USERNAME", "PASSWORD", "PORT", "HOST", "USER_TOKEN")
# The fixed credentials of a Label Studio on loopback only (local development, tests, the demo).
LOCAL_ADMIN_PASSWORD = "hildif-admin-pass"
LOCAL_ADMIN_TOKEN = "hildif0admin0token0for0local0use0only00"
CREDENTIALS_FILE = "hildif-admin-credentials.json"


class LabelStudioServerError(HildifError, RuntimeError):
    """The local Label Studio could not be started (binary missing, port busy, no answer); the message says which."""


def find_label_studio_bin(explicit: str | None = None) -> Path:
    """The ``label-studio`` executable: ``explicit`` > ``$HILDIF_LABEL_STUDIO_BIN`` > ``$HILDIF_LS_VENV/bin`` >
    ``<repo>/.venv-ls/bin`` > PATH."""
    ls_venv = os.environ.get("HILDIF_LS_VENV")
    candidates = [explicit, os.environ.get("HILDIF_LABEL_STUDIO_BIN"),
                  str(Path(ls_venv) / "bin" / "label-studio") if ls_venv else None,
                  str(REPO_ROOT / ".venv-ls" / "bin" / "label-studio")]
    for cand in candidates:
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return Path(cand)
    which = shutil.which("label-studio")
    if which:
        return Path(which)
    raise LabelStudioServerError(
        "label-studio executable not found (looked at $HILDIF_LABEL_STUDIO_BIN, "
        f"{REPO_ROOT / '.venv-ls/bin/label-studio'} and PATH); install it with: "
        f"python3 -m venv .venv-ls && .venv-ls/bin/pip install label-studio=={LABEL_STUDIO_VERSION}"
    )


def stop_process_group(proc: subprocess.Popen | None, timeout: float = 20.0) -> None:
    """Stop a child started with ``start_new_session=True`` and everything it spawned: SIGTERM to its process
    group, SIGKILL after ``timeout`` seconds. Only that group is signalled; a finished or None process is a no-op."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free right now (there is a small race until the server binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class LabelStudioServer:
    """A Label Studio process bound to ``host:port`` with its data in ``data_dir``.

    ``admin_token`` (at most 40 characters) becomes the admin's legacy API token when the database is created.
    ``allow_local_backends`` turns off Label Studio's SSRF protection so that it may call an ML backend or webhook on
    127.0.0.1: for local development and tests only.
    """

    data_dir: Path
    port: int = 8080
    host: str = "127.0.0.1"
    admin_email: str = "admin@hildif.local"
    admin_password: str = LOCAL_ADMIN_PASSWORD
    admin_token: str = LOCAL_ADMIN_TOKEN
    allow_local_backends: bool = False
    binary: str | None = None
    log_file: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _log_handle: object | None = field(default=None, init=False, repr=False)
    _announce: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        if len(self.admin_token) > 40:
            raise LabelStudioServerError("admin_token: Label Studio accepts at most 40 characters")
        uses_defaults = self.admin_password == LOCAL_ADMIN_PASSWORD or self.admin_token == LOCAL_ADMIN_TOKEN
        if uses_defaults and not is_loopback(self.host):
            password, token, created = generated_admin_credentials(self.data_dir)
            if self.admin_password == LOCAL_ADMIN_PASSWORD:
                self.admin_password = password
            if self.admin_token == LOCAL_ADMIN_TOKEN:
                self.admin_token = token
            if created:
                self._announce = (
                    f"Label Studio on {self.host}: generated admin credentials (shown once) - login {self.admin_email} "
                    f"/ {self.admin_password}, API token {self.admin_token}; kept in "
                    f"{self.data_dir / CREDENTIALS_FILE} (mode 600)")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _BARE_NAMES and not k.startswith("LABEL_STUDIO_")}
        env.update(
            HOME=str(self.data_dir),
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            DJANGO_DB="sqlite",
            LABEL_STUDIO_USERNAME=self.admin_email,
            LABEL_STUDIO_PASSWORD=self.admin_password,
            LABEL_STUDIO_USER_TOKEN=self.admin_token,
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
            LABEL_STUDIO_LATEST_VERSION_CHECK="false",
            LABEL_STUDIO_COLLECT_ANALYTICS="false",
            SENTRY_DSN="",
            FRONTEND_SENTRY_DSN="",
        )
        if self.allow_local_backends:
            env.update(LABEL_STUDIO_ML_BLOCK_LOCAL_IP="false", LABEL_STUDIO_SSRF_PROTECTION_ENABLED="false")
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 180.0) -> "LabelStudioServer":
        """Start the process and wait until ``/health`` answers UP; raise :class:`LabelStudioServerError` if not."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        if not port_is_free(self.port, self.host):
            raise LabelStudioServerError(
                f"port {self.host}:{self.port} is busy (Label Studio would silently move to the next port); "
                "stop what uses it or choose another port"
            )
        binary = find_label_studio_bin(self.binary)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_file or self.data_dir / "label-studio.log"
        self._log_handle = open(log_path, "ab")
        cmd = [str(binary), "start", "--no-browser", "--internal-host", self.host, "--port", str(self.port)]
        log.info("starting Label Studio: %s (data %s, log %s)", " ".join(cmd), self.data_dir, log_path)
        self._proc = subprocess.Popen(
            cmd, env=self.environment(), cwd=self.data_dir, stdout=self._log_handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._close_log()
                self._proc = None
                raise LabelStudioServerError(f"Label Studio exited with code {code} while starting; see {log_path}")
            if self.is_healthy():
                log.info("Label Studio is up at %s (pid %s)", self.url, self._proc.pid)
                if self._announce:
                    print(self._announce, flush=True)
                    self._announce = None
                return self
            time.sleep(0.5)
        self.stop()
        raise LabelStudioServerError(f"Label Studio did not answer {self.url}/health within {timeout:.0f} s; see {log_path}")

    def is_healthy(self) -> bool:
        try:
            r = requests.get(f"{self.url}/health", timeout=2)
            return r.ok and r.json().get("status") == "UP"
        except (requests.RequestException, ValueError):
            return False

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the process group this object started (SIGTERM, then SIGKILL after ``timeout``)."""
        proc, self._proc = self._proc, None
        stop_process_group(proc, timeout)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> "LabelStudioServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def generated_admin_credentials(data_dir: Path) -> tuple[str, str, bool]:
    """(password, token, created now) for a Label Studio served beyond loopback, from
    ``<data_dir>/hildif-admin-credentials.json`` (made here with mode 600 when the folder has no database yet).

    A data folder whose database exists without that file was created with the fixed local credentials: it is
    refused (its admin would keep the well-known password), with what to do instead.
    """
    data_dir = Path(data_dir)
    path = data_dir / CREDENTIALS_FILE
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            return str(stored["password"]), str(stored["token"]), False
        except (OSError, ValueError, KeyError, TypeError):
            raise LabelStudioServerError(f"{path}: unreadable or not the credentials hildif wrote "
                                         "(keys 'password' and 'token'); remove it with the data folder") from None
    if (data_dir / "label_studio.sqlite3").exists():
        raise LabelStudioServerError(
            f"{data_dir} was created with hildif's fixed local admin credentials, which must not be served beyond "
            "loopback: use a new data folder (its credentials are generated), or serve on 127.0.0.1")
    data_dir.mkdir(parents=True, exist_ok=True)
    password, token = secrets.token_urlsafe(18), secrets.token_hex(20)  # the token: 40 characters, LS's maximum
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"password": password, "token": token}, fh)
    os.chmod(path, 0o600)
    return password, token, True


def prepare_data_dir(target: Path, template: Path, *, build_timeout: float = 300.0, **server_kwargs) -> Path:
    """Fill ``target`` with a copy of a migrated Label Studio data folder kept at ``template``.

    The template is built once (a cold start on an empty folder, then a clean stop) under an exclusive file lock,
    so concurrent callers wait instead of migrating twice. ``server_kwargs`` (admin credentials, binary) must match
    the ones the copy will be started with, because the admin and its token live in the copied database.
    """
    template = Path(template)
    template.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(template.parent / f".{template.name}.lock"):
        if not (template / ".ready").exists():
            building = template.parent / f".{template.name}.building"
            shutil.rmtree(building, ignore_errors=True)
            server = LabelStudioServer(building, port=free_port(), **server_kwargs)
            server.start(timeout=build_timeout)
            server.stop()
            (building / ".ready").write_text(f"label-studio {LABEL_STUDIO_VERSION}\n")
            shutil.rmtree(template, ignore_errors=True)
            os.replace(building, template)
    target = Path(target)
    shutil.copytree(template, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.log"))
    return target


def start_local_server(data_dir: Path, port: int, template: Path,
                       notify: Callable[[str], None] | None = None) -> LabelStudioServer:
    """A Label Studio on 127.0.0.1 for one run, with local ML backends allowed: its data folder is filled from the
    migrated ``template`` (:func:`prepare_data_dir`) when it has no database yet, and a busy ``port`` gives way to a
    free one. ``notify`` hears about both."""
    notify = notify or log.info
    data_dir = Path(data_dir).resolve()
    if not (data_dir / "label_studio.sqlite3").exists():
        notify(f"preparing Label Studio's data folder {display_path(data_dir)} (the first time runs its migrations: "
               "a minute or two)")
        prepare_data_dir(data_dir, template, allow_local_backends=True)
    chosen = port
    if not port_is_free(port):
        chosen = free_port()
        notify(f"port {port} is busy; Label Studio will use {chosen}")
    return LabelStudioServer(data_dir, port=chosen, allow_local_backends=True).start()


def main(argv: list[str] | None = None) -> int:
    """``python -m hildif.labelstudio.server``: run a local Label Studio until Ctrl-C (for rounds on one machine)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m hildif.labelstudio.server", description=main.__doc__)
    parser.add_argument("--data-dir", default="runs/label-studio", help="Label Studio's data folder (SQLite database)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--allow-local-backends", action="store_true",
                        help="let Label Studio call an ML backend/webhook on this machine (turns SSRF protection off)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    server = LabelStudioServer(Path(args.data_dir), port=args.port, host=args.host,
                               allow_local_backends=args.allow_local_backends,
                               admin_password=os.environ.get("HILDIF_LS_ADMIN_PASSWORD", LOCAL_ADMIN_PASSWORD),
                               admin_token=os.environ.get("HILDIF_LS_ADMIN_TOKEN", LOCAL_ADMIN_TOKEN))
    server.start()
    where = (f"the generated token in {server.data_dir / CREDENTIALS_FILE}" if not is_loopback(server.host)
             else "the admin token ($HILDIF_LS_ADMIN_TOKEN when the data folder was created)")
    print(f"Label Studio {LABEL_STUDIO_VERSION} at {server.url} (data {server.data_dir}, pid {server.pid}); "
          f"log in as {server.admin_email}. For hildif: export LABEL_STUDIO_API_KEY=<{where}>", flush=True)
    try:
        while server._proc is not None and server._proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
