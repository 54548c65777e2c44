"""Supervision of the processes hildif starts for a round on one machine (``hildif demo``): the ML backend as a
subprocess beside the local Label Studio (:mod:`hildif.labelstudio.server`), and a :class:`Supervisor` that stops
everything it was given, in reverse order, whatever ends the job (an error, Ctrl-C, SIGTERM).

Each child runs in its own process group (``start_new_session=True``) and is stopped through its own handle
(:func:`hildif.labelstudio.server.stop_process_group`): nothing else is ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import requests

from hildif.config import HildifConfig
from hildif.errors import HildifError
from hildif.labelstudio.server import stop_process_group
from hildif.utils.atomic import write_json_atomic

# The folder that holds the imported ``hildif`` package, and ``ml_backend`` beside it (a checkout or site-packages):
# the backend subprocess imports the same code as its parent.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class ProcessError(HildifError, RuntimeError):
    """A process hildif started did not come up; the message says which and where its log is."""


class Stoppable(Protocol):
    pid: int | None

    def stop(self) -> None: ...


def write_config_file(cfg: HildifConfig, path: Path) -> Path:
    """The effective configuration as a JSON file a subprocess loads (``--config``); no secrets are in it (the
    Label Studio key travels in the environment variable ``labelstudio.api_key_env`` names)."""
    return write_json_atomic(path, cfg.to_dict())


class BackendProcess:
    """``python -m ml_backend`` on 127.0.0.1 in its own process group, configured by a JSON config file."""

    def __init__(self, config_file: Path, run_dir: str, port: int, env: dict[str, str], log_file: Path) -> None:
        self.config_file, self.run_dir, self.port, self.env, self.log_file = config_file, run_dir, port, env, log_file
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 180.0) -> "BackendProcess":
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_file, "ab")
        pythonpath = os.pathsep.join(p for p in (str(PACKAGE_ROOT), self.env.get("PYTHONPATH", "")) if p)
        cmd = [sys.executable, "-m", "ml_backend", "--host", "127.0.0.1", "--port", str(self.port),
               "--config", str(self.config_file), "--run-dir", self.run_dir, "--threads", "4"]
        self.proc = subprocess.Popen(cmd, env={**self.env, "PYTHONPATH": pythonpath}, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise ProcessError(f"the ML backend exited with code {code} while starting; see {self.log_file}")
            if self.health() is not None:
                return self
            time.sleep(0.5)
        self.stop()
        raise ProcessError(f"the ML backend did not answer {self.url}/health within {timeout:.0f} s; see {self.log_file}")

    def health(self) -> dict[str, Any] | None:
        try:
            r = requests.get(f"{self.url}/health", timeout=2)
            return r.json() if r.ok else None
        except (requests.RequestException, ValueError):
            return None

    def stop(self, timeout: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        stop_process_group(proc, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class Supervisor:
    """Stops the processes :meth:`add`-ed to it, last first, when the ``with`` block ends for any reason; inside
    the block SIGTERM is turned into KeyboardInterrupt (main thread only), so a killed job cleans up like Ctrl-C.
    ``on_stop(name, pid)`` is told before each stop."""

    def __init__(self, on_stop: Callable[[str, int | None], None] | None = None) -> None:
        self.on_stop = on_stop
        self.started: list[Stoppable] = []
        self._previous: Any = None
        self._installed = False

    def add(self, proc: Stoppable) -> Stoppable:
        self.started.append(proc)
        return proc

    def __enter__(self) -> "Supervisor":
        try:
            self._previous = signal.signal(signal.SIGTERM, _interrupt)
            self._installed = True
        except ValueError:  # not the main thread: leave signals alone
            self._installed = False
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            while self.started:
                proc = self.started.pop()
                if self.on_stop is not None:
                    self.on_stop(type(proc).__name__, proc.pid)
                with contextlib.suppress(Exception):
                    proc.stop()
        finally:
            if self._installed:
                signal.signal(signal.SIGTERM, self._previous)
                self._installed = False


__all__ = ["BackendProcess", "PACKAGE_ROOT", "ProcessError", "Supervisor", "write_config_file"]
