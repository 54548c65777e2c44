"""WSGI entry for running gunicorn directly: ``gunicorn -c ml_backend/gunicorn.conf.py ml_backend.wsgi:app``.

The configuration comes from the environment: ``HILDIF_CONFIG`` (TOML/JSON file), ``HILDIF_PROFILE``,
``HILDIF_RUN_DIR``, ``HILDIF_BACKEND_BIND`` (host:port, as in gunicorn.conf.py), ``HILDIF_BACKEND_INSECURE=1`` (allow a
non-loopback bind without basic auth, with a warning) and the backend variables of :mod:`ml_backend.launch`.
"""

import os
import sys

from hildif.config import load_config
from ml_backend.app import create_app
from ml_backend.launch import settings_from_env
from ml_backend.settings import check_exposure

_cfg = load_config(file=os.environ.get("HILDIF_CONFIG") or None)
if os.environ.get("HILDIF_RUN_DIR"):
    _cfg.run.run_dir = os.environ["HILDIF_RUN_DIR"]
_host, _, _port = os.environ.get("HILDIF_BACKEND_BIND", "127.0.0.1:9090").rpartition(":")
_settings = settings_from_env(_host or "127.0.0.1", int(_port or 9090),
                              insecure=os.environ.get("HILDIF_BACKEND_INSECURE", "").lower() in ("1", "true", "yes"))
_warning = check_exposure(_settings)
if _warning:
    print(_warning, file=sys.stderr, flush=True)
app = create_app(_cfg, _settings)
