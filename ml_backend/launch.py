"""Serve the backend with gunicorn: one worker process (the job queue and the loaded model live in it), several
threads (so /health and /webhook answer while /predict runs). Binds to 127.0.0.1 unless told otherwise.

Basic auth comes from the environment only: ``HILDIF_BACKEND_USER`` and ``HILDIF_BACKEND_PASSWORD``, or
``HILDIF_BACKEND_PASSWORD_FILE`` (first line of a file, e.g. a Docker secret); never from the command line.
Pre-annotation: ``--preannotate`` or ``HILDIF_BACKEND_PREANNOTATE=1`` (off by default, so raters are not biased).
Retraining on a text-classification project's annotations: ``--retrain-on-annotations`` or
``HILDIF_BACKEND_RETRAIN_ON_ANNOTATIONS=1`` (off by default), debounced by ``--retrain-debounce-s`` /
``HILDIF_BACKEND_RETRAIN_DEBOUNCE_S`` (default 60 s).

On anything but loopback the backend refuses to start without basic auth, unless ``--insecure`` (which prints a
warning). ``--threads N``: gunicorn threads for webhooks, /health and jobs; /predict gets its own pool of N
(:mod:`ml_backend.worker`), so predictions never hold up Label Studio's webhooks.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from hildif.config import ConfigError, HildifConfig
from hildif.options import add_config_options, config_from_args
from ml_backend.settings import (
    MAX_READ_TIMEOUT_S, BackendSettings, SettingsError, basic_auth_from_env, check_debounce, check_exposure, retrain_from_env,
)

PREANNOTATE_ENV = "HILDIF_BACKEND_PREANNOTATE"


def settings_from_env(host: str = "127.0.0.1", port: int = 9090, preannotate: bool | None = None,
                      threads: int = 8, insecure: bool = False, retrain_on_annotations: bool | None = None,
                      retrain_debounce_s: float | None = None) -> BackendSettings:
    basic_auth = basic_auth_from_env()
    if preannotate is None:
        preannotate = os.environ.get(PREANNOTATE_ENV, "").lower() in ("1", "true", "yes", "on")
    env_retrain, env_debounce = retrain_from_env()
    retrain = retrain_on_annotations if retrain_on_annotations is not None else bool(env_retrain)
    debounce = retrain_debounce_s if retrain_debounce_s is not None else env_debounce
    debounce = BackendSettings.retrain_debounce_s if debounce is None else check_debounce(debounce,
                                                                                          "--retrain-debounce-s")
    return BackendSettings(host=host, port=port, basic_auth=basic_auth, preannotate=preannotate,
                           threads=threads, insecure=insecure, retrain_on_annotations=retrain,
                           retrain_debounce_s=debounce)


def settings_from_args(args: argparse.Namespace) -> BackendSettings:
    """The settings of ``python -m ml_backend`` / ``hildif backend serve`` (options plus environment)."""
    if args.threads < 1:
        raise SettingsError(f"--threads must be >= 1, got {args.threads}")
    timeout = getattr(args, "read_timeout", BackendSettings.read_timeout_s)
    if not 0.5 <= timeout <= MAX_READ_TIMEOUT_S:
        raise SettingsError(f"--read-timeout must be between 0.5 and {MAX_READ_TIMEOUT_S:.0f} seconds, got {timeout}")
    settings = settings_from_env(args.host, args.port, args.preannotate, args.threads, args.insecure,
                                 getattr(args, "retrain_on_annotations", None),
                                 getattr(args, "retrain_debounce_s", None))
    settings.read_timeout_s = timeout
    return settings


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--threads", type=int, default=8,
                        help="gunicorn threads for webhooks/health/jobs; /predict gets its own pool of as many")
    parser.add_argument("--read-timeout", type=float, default=BackendSettings.read_timeout_s, metavar="SECONDS",
                        help="a client must have sent its whole request this many seconds after connecting, else "
                             "408 (default %(default)s); no thread waits for it meanwhile")
    parser.add_argument("--insecure", action="store_true",
                        help="allow serving on a non-loopback --host without basic auth (prints a warning)")
    parser.add_argument("--preannotate", action="store_true", default=None,
                        help="pre-fill a similarity choice from the model (off by default: raters are not biased)")
    parser.add_argument("--retrain-on-annotations", action="store_true", default=None,
                        help="annotations of a text-classification project queue a debounced retraining on its "
                             "annotated tasks (off by default)")
    parser.add_argument("--retrain-debounce-s", type=float, default=None,
                        help="seconds after the first annotation event before the retraining runs (default 60)")
    add_config_options(parser)


# The access log without the query string (%(U)s, not the request line %(r)s): a URL may carry a token.
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms "%(a)s"'


def gunicorn_options(settings: BackendSettings) -> dict[str, Any]:
    """gunicorn's settings for the backend (``serve`` and ``gunicorn.conf.py``). ``keepalive`` 0: one request per
    connection, each read whole by the worker's event loop before a thread takes it (:mod:`ml_backend.worker`);
    the access log escapes control characters (:mod:`ml_backend.accesslog`)."""
    from ml_backend.accesslog import LOGGER_CLASS

    return {
        "bind": f"{settings.host}:{settings.port}", "workers": 1, "threads": settings.threads,
        "worker_class": "ml_backend.worker.SplitPoolWorker", "timeout": 300, "graceful_timeout": 30,
        "keepalive": 0, "accesslog": "-", "access_log_format": ACCESS_LOG_FORMAT, "errorlog": "-",
        "loglevel": "info", "logger_class": LOGGER_CLASS,
        "limit_request_line": 8190, "limit_request_fields": 100, "limit_request_field_size": 8190,
    }


def serve(cfg: HildifConfig, settings: BackendSettings) -> None:
    """Run gunicorn in this process until it is stopped (SIGTERM/SIGINT)."""
    from gunicorn.app.base import BaseApplication

    from ml_backend.app import create_app

    warning = check_exposure(settings)  # ExposureError: non-loopback without auth or --insecure
    if warning:
        print(warning, file=sys.stderr, flush=True)

    class _App(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options(settings).items():
                self.cfg.set(key, value)

        def load(self):
            return create_app(cfg, settings)

    _App().run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_backend", description="hildif's Label Studio ML backend")
    add_serve_options(parser)
    args = parser.parse_args(argv)
    try:
        serve(config_from_args(args), settings_from_args(args))
    except (SettingsError, ConfigError) as exc:  # a bad setting fails at start, naming it
        print(f"python -m ml_backend: {exc}", file=sys.stderr)
        return 2
    return 0
