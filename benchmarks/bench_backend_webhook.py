"""How fast the ML backend answers Label Studio, against Label Studio's timeouts (webhook and /health: 1 s).

Serves the real app (werkzeug, threaded, 127.0.0.1) over a run directory holding a tiny model, then times N requests
of each kind over HTTP, while a background job keeps the job thread busy (as during a sync). Prints a table:
endpoint, p50, p95, max (ms), Label Studio's limit.

    .venv/bin/python benchmarks/bench_backend_webhook.py [--n 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time

import requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    from werkzeug.serving import make_server

    from hildif.config import load_config
    from hildif.labelstudio.server import free_port
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier
    from ml_backend.app import create_app
    from ml_backend.model import BackendRuntime

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(overrides=[f"run.run_dir={tmp}", "model.device=cpu"])
        ModelRegistry(tmp).save(build_tiny_classifier(["the judge advised the doctor", "a cat sat"], seed=0))
        rt = BackendRuntime(cfg)
        busy = threading.Event()
        rt.jobs.handlers["busy"] = lambda p: (busy.set(), sum(i * i for i in range(30_000_000)))
        rt.jobs.submit("busy")
        port = free_port()
        http = make_server("127.0.0.1", port, create_app(cfg, runtime=rt), threaded=True)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        busy.wait(30)
        url = f"http://127.0.0.1:{port}"
        cases = {
            "POST /webhook ANNOTATION_CREATED": lambda: requests.post(
                f"{url}/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 1}}, timeout=5),
            "POST /webhook START_TRAINING": lambda: requests.post(
                f"{url}/webhook", json={"action": "START_TRAINING", "project": {"id": 1}}, timeout=5),
            "GET /health": lambda: requests.get(f"{url}/health", timeout=5),
        }
        print(f"{'endpoint':<36} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'LS limit ms':>12}")
        for name, call in cases.items():
            times = []
            for _ in range(args.n):
                t0 = time.perf_counter()
                call().raise_for_status()
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            p95 = times[int(0.95 * (len(times) - 1))]
            print(f"{name:<36} {statistics.median(times):>8.1f} {p95:>8.1f} {times[-1]:>8.1f} {1000:>12}")
        http.shutdown()
        rt.close()


if __name__ == "__main__":
    main()
