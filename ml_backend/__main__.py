"""``python -m ml_backend [--port 9090] [--run-dir runs/default] ...``: serve the backend with gunicorn."""

import logging
import sys

from ml_backend.launch import main

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
sys.exit(main())
