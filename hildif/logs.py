"""Logging for the ``hildif`` command: a quiet terminal, a complete log file in the run directory.

The terminal shows hildif's own messages (loggers ``hildif.*``, ``ml_backend.*``, ``__main__``) at INFO and
anything else only from ERROR up (WARNING for libraries not in :data:`CHATTY`): no HTTP request lines from the
Label Studio client, no FAISS loader tracebacks, no transformers load reports, no library warnings.
``--verbose`` shows every record at DEBUG. A command that prints its own line per step (``hildif demo``) calls
:func:`steps_console`: then hildif's INFO records (timestamped, with absolute paths) go to the log file only and the
terminal shows the command's lines, progress bars, and warnings and errors as ``warning: text``. Whatever the
terminal shows, ``<run_dir>/logs/hildif.log`` receives
every record at DEBUG (hildif) / INFO (libraries), including those emitted before the run directory was known:
they are held in memory until :func:`attach_run_log` names the file.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONSOLE_FORMAT = "%(asctime)s %(name)s: %(message)s"
STEPS_CONSOLE_FORMAT = "%(levelname_lower)s: %(message)s"  # under steps_console
OWN = ("hildif", "ml_backend", "__main__")
# Libraries whose INFO and WARNING records are noise for a user of the command (request logs, loader fallbacks,
# load reports that read like errors); the terminal shows their errors only.
CHATTY = (
    "httpx", "httpcore", "urllib3", "requests", "faiss", "transformers", "huggingface_hub", "label_studio_sdk",
    "werkzeug", "filelock", "matplotlib", "PIL", "nltk", "py.warnings", "torch", "accelerate", "gunicorn",
)
LOG_FILE = Path("logs") / "hildif.log"
_BUFFER_LIMIT = 20_000


def _is_own(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in OWN)


def _is_chatty(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in CHATTY)


class ConsoleFilter(logging.Filter):
    """Own records from INFO; chatty libraries from ERROR; other libraries from WARNING (all of it when verbose)."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose
        self.own_level = logging.INFO  # steps_console raises it to WARNING

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose:
            return True
        if _is_own(record.name):
            return record.levelno >= self.own_level
        if _is_chatty(record.name):
            return record.levelno >= logging.ERROR
        return record.levelno >= logging.WARNING


class FileFilter(logging.Filter):
    """Everything of hildif's; libraries from INFO (their DEBUG is wire-level detail, kept only when verbose)."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        return self.verbose or _is_own(record.name) or record.levelno >= logging.INFO


class _Pending(logging.Handler):
    """Holds records until the run's log file is known (bounded: the oldest are dropped)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) >= _BUFFER_LIMIT:
            del self.records[0]
        self.records.append(record)


class _Console(logging.StreamHandler):
    """Writes to the ``sys.stderr`` of the moment (or to a fixed stream), so that a replaced stderr (pytest's capture,
    a redirect) is followed rather than a closed one kept."""

    def __init__(self, stream=None) -> None:
        self._fixed = stream
        super().__init__(stream)

    @property
    def stream(self):  # type: ignore[override]
        return self._fixed or sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


_state: dict[str, object] = {}


def _route_transformers(verbose: bool) -> None:
    """transformers logs through its own stderr handler on the ``transformers`` logger and does not propagate (its
    load report, "MISSING classifier.weight ... Consider training on your downstream task", is a WARNING there):
    hand its records to ours instead, so that the console filter and the log file apply to them too. Its progress
    bars (weight loading) show with ``--verbose`` only."""
    try:
        from transformers.utils import logging as hf_logging
    except Exception:  # pragma: no cover - transformers is a dependency
        return
    hf_logging.set_verbosity_debug() if verbose else hf_logging.set_verbosity_info()
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
    if verbose:
        hf_logging.enable_progress_bar()
    else:
        hf_logging.disable_progress_bar()


def setup_logging(verbose: bool = False, stream=None) -> None:
    """Configure the root logger for one command: a filtered console handler and a pending file handler."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_hildif", False):
            root.removeHandler(handler)
            handler.close()
    # Libraries' DEBUG records are not even created unless verbose; hildif's own go to the file at DEBUG.
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in OWN:
        logging.getLogger(name).setLevel(logging.DEBUG)
    console = _Console(stream)
    console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    console.addFilter(ConsoleFilter(verbose))
    pending = _Pending()
    pending.addFilter(FileFilter(verbose))
    for handler in (console, pending):
        handler._hildif = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    _state.update(verbose=verbose, pending=pending, file=None, console=console)
    # Python's own warning printer would bypass the handlers: route warnings.warn to the py.warnings logger.
    logging.captureWarnings(True)
    _route_transformers(verbose)


class _StepsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.levelname_lower = record.levelname.lower()
        return super().format(record)


def steps_console() -> None:
    """For a command that says itself what each step did (``hildif demo``): hildif's INFO records stay out of the
    terminal (the run's log file keeps them) and its warnings and errors show as ``warning: text``, without time
    or logger. Nothing changes under ``--verbose`` or without :func:`setup_logging`."""
    console = _state.get("console")
    if console is None or _state.get("verbose"):
        return
    assert isinstance(console, logging.Handler)
    for f in console.filters:
        if isinstance(f, ConsoleFilter):
            f.own_level = logging.WARNING
    console.setFormatter(_StepsFormatter(STEPS_CONSOLE_FORMAT))


def attach_run_log(run_dir: str | Path) -> Path | None:
    """Start writing ``<run_dir>/logs/hildif.log`` (appending), with the records held so far. Idempotent;
    a no-op unless :func:`setup_logging` ran (library use keeps the caller's logging)."""
    pending = _state.get("pending")
    if pending is None:
        return None
    path = Path(run_dir) / LOG_FILE
    rank = os.environ.get("RANK", "0")  # under torchrun the other ranks keep their own log beside rank 0's
    if rank not in ("", "0"):
        path = path.with_name(f"{path.stem}.rank{rank}{path.suffix}")
    if _state.get("file") == path:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(FileFilter(bool(_state.get("verbose"))))
    handler._hildif = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    assert isinstance(pending, _Pending)
    for record in pending.records:
        handler.handle(record)
    root.removeHandler(pending)
    pending.records.clear()
    for old in list(root.handlers):
        if isinstance(old, logging.FileHandler) and getattr(old, "_hildif", False):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    _state.update(pending=pending, file=path)
    return path
