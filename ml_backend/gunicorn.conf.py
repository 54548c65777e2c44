# gunicorn settings for ml_backend.wsgi:app. One worker: the job queue and the loaded model live in that process
# (more workers would run jobs twice and load the model twice). Threads keep /health and /webhook responsive.
import os

bind = os.environ.get("HILDIF_BACKEND_BIND", "127.0.0.1:9090")
workers = 1
worker_class = "gthread"
threads = int(os.environ.get("HILDIF_BACKEND_THREADS", "8"))
timeout = 300
graceful_timeout = 30
accesslog = "-"
errorlog = "-"
