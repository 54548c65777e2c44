"""WSGI entry for running gunicorn directly: ``gunicorn -c ml_backend/gunicorn.conf.py ml_backend.wsgi:app``.

The configuration comes from the environment: ``HILDIF_CONFIG`` (TOML/JSON file), ``HILDIF_PROFILE``,
``HILDIF_RUN_DIR``, and the backend variables of :mod:`ml_backend.server`.
"""

import os

from hildif.config import load_config
from ml_backend.app import create_app
from ml_backend.server import settings_from_env

_cfg = load_config(file=os.environ.get("HILDIF_CONFIG") or None)
if os.environ.get("HILDIF_RUN_DIR"):
    _cfg.run.run_dir = os.environ["HILDIF_RUN_DIR"]
app = create_app(_cfg, settings_from_env())
