# gunicorn settings for ml_backend.wsgi:app: the same as `python -m ml_backend` (ml_backend.launch.gunicorn_options).
# One worker: the job queue and the loaded model live in that process (more workers would run jobs twice and load the
# model twice). The worker reads each request whole before a thread takes it; /predict and /influence run in pools
# of their own (ml_backend.worker). A non-loopback bind needs basic auth or HILDIF_BACKEND_INSECURE=1 (checked by
# ml_backend.wsgi).
import os

from ml_backend.launch import gunicorn_options
from ml_backend.settings import BackendSettings

_host, _, _port = os.environ.get("HILDIF_BACKEND_BIND", "127.0.0.1:9090").rpartition(":")
globals().update(gunicorn_options(BackendSettings(host=_host or "127.0.0.1", port=int(_port or 9090),
                                                  threads=int(os.environ.get("HILDIF_BACKEND_THREADS", "8")))))
