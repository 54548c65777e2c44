# gunicorn settings for ml_backend.wsgi:app. One worker: the job queue and the loaded model live in that process
# (more workers would run jobs twice and load the model twice). Threads keep /health and /webhook responsive, and
# /predict runs in its own pool (ml_backend.worker). A non-loopback bind needs basic auth or
# HILDIF_BACKEND_INSECURE=1 (checked by ml_backend.wsgi).
import os

from ml_backend.launch import ACCESS_LOG_FORMAT

bind = os.environ.get("HILDIF_BACKEND_BIND", "127.0.0.1:9090")
workers = 1
worker_class = "ml_backend.worker.SplitPoolWorker"
threads = int(os.environ.get("HILDIF_BACKEND_THREADS", "8"))
timeout = 300
graceful_timeout = 30
accesslog = "-"
access_log_format = ACCESS_LOG_FORMAT
errorlog = "-"
