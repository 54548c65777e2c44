"""How fast the ML backend answers Label Studio's webhooks, against Label Studio's 1 s webhook timeout.

Serves the real backend (``python -m ml_backend``: gunicorn, basic auth on, pre-annotation on so /predict runs the
model) over a run directory holding a tiny model, on 127.0.0.1, and measures two things:

* ``sequential``: N webhooks one after another (ANNOTATION_CREATED with the project's webhook secret, as Label
  Studio sends them), then N /health;
* ``burst``: C clients at once, each posting one webhook and one /predict (2 tasks), as in tests/test_load_backend.py.

Prints p50/p95/max (ms) per endpoint. Figures depend on the machine and its load; they are reported, not asserted.

    .venv/bin/python benchmarks/bench_backend_webhook.py [--n 200] [--clients 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parents[1]
AUTH = ("labelstudio", "bench-password")
TASKS = [{"id": 11, "data": {"anchor_premise": "The judge advised the doctor .", "anchor_hypothesis": "The doctor advised the judge .",
                             "example_premise": "The lawyer helped the banker .", "example_hypothesis": "The banker helped the lawyer ."}},
         {"id": 12, "data": {"anchor_premise": "The actor saw the tourist .", "anchor_hypothesis": "The tourist saw the actor .",
                             "example_premise": "A man is sleeping .", "example_hypothesis": "A person rests ."}}]


def figures(ms: list[float]) -> str:
    a = np.array(ms)
    return f"p50 {np.percentile(a, 50):7.1f}  p95 {np.percentile(a, 95):7.1f}  max {a.max():7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from hildif.labelstudio.server import free_port
    from hildif.labelstudio.webhook import WEBHOOK_SECRET_HEADER, webhook_secret
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier

    with tempfile.TemporaryDirectory() as tmp:
        ModelRegistry(tmp).save(build_tiny_classifier([t["data"]["anchor_premise"] for t in TASKS] + ["a cat sat"], seed=0))
        port = free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("HILDIF_BACKEND_")},
               "HILDIF_BACKEND_USER": AUTH[0], "HILDIF_BACKEND_PASSWORD": AUTH[1], "PYTHONPATH": str(REPO)}
        log = open(Path(tmp) / "backend.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "ml_backend", "--port", str(port), "--run-dir", tmp,
                                 "--set", "model.device=cpu", "--preannotate"], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    requests.get(f"{url}/health", timeout=1).raise_for_status()
                    break
                except requests.RequestException:
                    time.sleep(0.2)
            headers = {WEBHOOK_SECRET_HEADER: webhook_secret(AUTH[1], 5)}
            event = {"action": "ANNOTATION_CREATED", "project": {"id": 5}, "annotation": {"id": 1}, "task": {"id": 11}}
            requests.post(f"{url}/predict", json={"tasks": TASKS}, auth=AUTH, timeout=60).raise_for_status()  # load

            def timed(call) -> float:
                t0 = time.perf_counter()
                call().raise_for_status()
                return (time.perf_counter() - t0) * 1000

            print(f"{'case':<44} {'latency ms':>40}")
            seq = [timed(lambda: requests.post(f"{url}/webhook", json=event, headers=headers, timeout=5))
                   for _ in range(args.n)]
            print(f"{'sequential POST /webhook (secret header)':<44} {figures(seq)}")
            health = [timed(lambda: requests.get(f"{url}/health", timeout=5)) for _ in range(args.n)]
            print(f"{'sequential GET /health':<44} {figures(health)}")
            for r in range(args.rounds):
                def call(kind: str) -> tuple[str, float]:
                    if kind == "webhook":
                        return kind, timed(lambda: requests.post(f"{url}/webhook", json=event, headers=headers, timeout=30))
                    return kind, timed(lambda: requests.post(f"{url}/predict", json={"tasks": TASKS}, auth=AUTH, timeout=60))

                jobs = [k for _ in range(args.clients) for k in ("webhook", "predict")]
                with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                    out = list(pool.map(call, jobs))
                for kind in ("webhook", "predict"):
                    print(f"{f'burst {r + 1}: {args.clients} x POST /{kind}':<44} "
                          f"{figures([ms for k, ms in out if k == kind])}")
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(30)
            log.close()


if __name__ == "__main__":
    main()
