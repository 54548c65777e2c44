"""Backend settings (no heavy imports: the CLI reads them while building its parser)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from hildif.errors import HildifError
from hildif.utils.net import is_loopback


@dataclass
class BackendSettings:
    """How the service runs. ``preannotate`` (off by default, so raters are not biased) pre-fills a similarity
    choice from the model's representations; ``basic_auth`` = (user, password) protects every endpoint but /health.
    Serving on anything but loopback needs ``basic_auth`` or ``insecure`` (see :func:`check_exposure`).
    ``threads``: gunicorn threads for webhooks/health/jobs, and as many again for /predict (its own pool).
    ``max_body_bytes``: larger request bodies are answered 413. ``read_timeout_s``: a client must have sent its
    whole request (headers and body) this many seconds after connecting, else 408; the worker reads requests in
    its event loop meanwhile, so slow clients hold no thread (:mod:`ml_backend.worker`).
    ``retrain_on_annotations`` (off by default): an annotation webhook of a text-classification project queues a
    ``train`` job on the project's annotated tasks, run ``retrain_debounce_s`` seconds after the first event; the
    events of that window collapse into that one job (:mod:`ml_backend.retrain`)."""

    host: str = "127.0.0.1"
    port: int = 9090
    basic_auth: tuple[str, str] | None = None
    preannotate: bool = False
    db_path: str | None = None  # default <run_dir>/backend.sqlite
    threads: int = 8
    insecure: bool = False
    max_body_bytes: int = 4 * 1024 * 1024
    read_timeout_s: float = 10.0
    retrain_on_annotations: bool = False
    retrain_debounce_s: float = 60.0


class SettingsError(HildifError, ValueError):
    """A backend option or environment variable is invalid; the message names it."""


AUTH_USER_ENV = "HILDIF_BACKEND_USER"
AUTH_PASSWORD_ENV = "HILDIF_BACKEND_PASSWORD"
AUTH_PASSWORD_FILE_ENV = "HILDIF_BACKEND_PASSWORD_FILE"


def _password_from_env() -> str | None:
    """``$HILDIF_BACKEND_PASSWORD``, else the first line of ``$HILDIF_BACKEND_PASSWORD_FILE``; never both."""
    password, path = os.environ.get(AUTH_PASSWORD_ENV), os.environ.get(AUTH_PASSWORD_FILE_ENV)
    if password and path:
        raise SettingsError(f"set ${AUTH_PASSWORD_ENV} or ${AUTH_PASSWORD_FILE_ENV}, not both")
    if not path:
        return password
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as exc:
        raise SettingsError(f"${AUTH_PASSWORD_FILE_ENV} {path}: cannot read it: {exc.strerror}") from None
    if not lines or not lines[0].strip():
        raise SettingsError(f"${AUTH_PASSWORD_FILE_ENV} {path}: the file is empty")
    return lines[0].strip()


def basic_auth_from_env() -> tuple[str, str] | None:
    """The backend's basic auth, ``(user, password)``, from ``$HILDIF_BACKEND_USER`` and ``$HILDIF_BACKEND_PASSWORD``
    or ``$HILDIF_BACKEND_PASSWORD_FILE``; None when neither is set. The backend serves with it and
    ``hildif round start --connect-backend`` gives it to Label Studio, so both read the same variables."""
    user, password = os.environ.get(AUTH_USER_ENV), _password_from_env()
    if bool(user) != bool(password):
        raise SettingsError(f"basic auth needs both ${AUTH_USER_ENV} and ${AUTH_PASSWORD_ENV} (or "
                            f"${AUTH_PASSWORD_FILE_ENV})")
    return (user, password) if user else None


RETRAIN_ENV = "HILDIF_BACKEND_RETRAIN_ON_ANNOTATIONS"
RETRAIN_DEBOUNCE_ENV = "HILDIF_BACKEND_RETRAIN_DEBOUNCE_S"
MAX_DEBOUNCE_S = 7 * 24 * 3600.0
MAX_READ_TIMEOUT_S = 300.0


def flag_from_env(name: str) -> bool | None:
    """``$name`` as a boolean (1/true/yes/on, 0/false/no/off, case-insensitive); None when unset or empty."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"${name} must be 1/true/yes/on or 0/false/no/off")


def check_debounce(value: float, name: str = "retrain_debounce_s") -> float:
    if not 0 <= value <= MAX_DEBOUNCE_S:
        raise SettingsError(f"{name} must be between 0 and {MAX_DEBOUNCE_S:.0f} seconds")
    return value


def retrain_from_env() -> tuple[bool | None, float | None]:
    """``($HILDIF_BACKEND_RETRAIN_ON_ANNOTATIONS, $HILDIF_BACKEND_RETRAIN_DEBOUNCE_S)``; None for what is unset."""
    raw = os.environ.get(RETRAIN_DEBOUNCE_ENV, "").strip()
    debounce = None
    if raw:
        try:
            debounce = float(raw)
        except ValueError:
            raise SettingsError(f"${RETRAIN_DEBOUNCE_ENV} must be a number of seconds") from None
        check_debounce(debounce, f"${RETRAIN_DEBOUNCE_ENV}")
    return flag_from_env(RETRAIN_ENV), debounce


class ExposureError(SettingsError):
    """Serving on a non-loopback interface without basic auth and without ``--insecure``."""


INSECURE_WARNING = ("WARNING: the ML backend serves on {host} WITHOUT authentication (--insecure): anyone who can "
                    "reach port {port} can queue jobs and read job results. Set HILDIF_BACKEND_USER and "
                    "HILDIF_BACKEND_PASSWORD (or HILDIF_BACKEND_PASSWORD_FILE) instead.")


def check_exposure(settings: BackendSettings) -> str | None:
    """Refuse a non-loopback bind without basic auth unless ``insecure``; returns the warning to print, if any."""
    if settings.basic_auth or is_loopback(settings.host):
        return None
    if not settings.insecure:
        raise ExposureError(
            f"refusing to serve on {settings.host} without authentication: set HILDIF_BACKEND_USER and "
            "HILDIF_BACKEND_PASSWORD (or HILDIF_BACKEND_PASSWORD_FILE), bind 127.0.0.1, or pass --insecure")
    return INSECURE_WARNING.format(host=settings.host, port=settings.port)
