"""How fast the ML backend answers Label Studio's webhooks, against Label Studio's 1 s webhook timeout, also while
it is under load and under a slow-client attack.

Serves the real backend (``python -m ml_backend``: gunicorn, basic auth on, pre-annotation on so /predict runs the
model, a small influence pool) over a run directory holding a tiny model, on 127.0.0.1, and measures:

* ``sequential``: N webhooks one after another (ANNOTATION_CREATED with the project's webhook key, as Label Studio
  sends them), then N /health;
* ``burst``: C clients at once, each posting one webhook and one /predict (2 tasks), as in tests/test_load_backend.py;
* ``attack``: while S slow clients trickle (half of them headers, half a /webhook body, one byte every 0.5 s, each
  reconnecting when answered 408) and M clients post /influence (exact re-ranking) back to back, webhooks and
  /health alternately (at least N each, for at least ``--attack-s`` seconds), with more slow clients than
  ``--threads``.

Prints p50/p95/max (ms) per case as a Markdown table (and writes it with ``--output``). Figures depend on the machine
and its load; they are reported, not asserted (tests/test_security_hostile_clients.py asserts the 1 s bound).

    .venv/bin/python benchmarks/bench_backend_webhook.py [--n 200] [--clients 50] [--rounds 3] [--slow 16]
        [--influence 4] [--threads 4] [--attack-s 25] [--output benchmarks/results/backend_webhook.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import run_line, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
AUTH = ("labelstudio", "bench-password")
PROJECT = 5
TASKS = [{"id": 11, "data": {"anchor_premise": "The judge advised the doctor .", "anchor_hypothesis": "The doctor advised the judge .",
                             "example_premise": "The lawyer helped the banker .", "example_hypothesis": "The banker helped the lawyer ."}},
         {"id": 12, "data": {"anchor_premise": "The actor saw the tourist .", "anchor_hypothesis": "The tourist saw the actor .",
                             "example_premise": "A man is sleeping .", "example_hypothesis": "A person rests ."}}]
INFLUENCE = {"premise": "The doctor near the actor danced .", "hypothesis": "The actor danced .", "rerank": 100}


def row(case: str, ms: list[float], failed: int = 0) -> str:
    a = np.array(ms) if ms else np.array([np.nan])
    return (f"| {case} | {len(ms)} | {failed} | {np.percentile(a, 50):.1f} | {np.percentile(a, 95):.1f} | "
            f"{a.max():.1f} |")


def timed(call) -> float | None:
    """Milliseconds of ``call()`` (a request), None when it failed or did not answer in time."""
    t0 = time.perf_counter()
    try:
        call().raise_for_status()
    except requests.RequestException:
        return None
    return (time.perf_counter() - t0) * 1000


def measure(n: int, call) -> tuple[list[float], int]:
    out = [timed(call) for _ in range(n)]
    return [m for m in out if m is not None], sum(m is None for m in out)


def _add(sofar: tuple[list[float], int], ms: float | None) -> tuple[list[float], int]:
    return (sofar[0] + [ms], sofar[1]) if ms is not None else (sofar[0], sofar[1] + 1)


class SlowClients:
    """``count`` connections that trickle one byte every ``interval`` s: half send headers that never end, half a
    /webhook body that never completes; a connection the backend answers (408) is opened again."""

    def __init__(self, url: str, count: int, interval: float = 0.5) -> None:
        host, port = url.rsplit("/", 1)[-1].split(":")
        self.address, self.count, self.interval = (host, int(port)), count, interval
        self.stop = threading.Event()
        self.answered = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, i: int) -> socket.socket:
        s = socket.create_connection(self.address, timeout=5)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" if i % 2 == 0 else
                  b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9999"
                  b"\r\n\r\n{")
        return s

    def _run(self) -> None:
        socks = [self._open(i) for i in range(self.count)]
        while not self.stop.wait(self.interval):
            for i, s in enumerate(socks):
                try:
                    s.sendall(b"X" if i % 2 == 0 else b" ")
                except OSError:  # answered and closed (408): come back
                    self.answered += 1
                    s.close()
                    socks[i] = self._open(i)
        for s in socks:
            s.close()

    def __enter__(self) -> "SlowClients":
        self._thread.start()
        time.sleep(2 * self.interval)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self._thread.join(10)


def influence_load(url: str, clients: int, stop: threading.Event, done: list[float]) -> list[threading.Thread]:
    def loop() -> None:
        while not stop.is_set():
            ms = timed(lambda: requests.post(f"{url}/influence", json=INFLUENCE, auth=AUTH, timeout=300))
            if ms is not None:
                done.append(ms)
    threads = [threading.Thread(target=loop, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    return threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slow", type=int, default=16, help="slow clients in the attack case")
    parser.add_argument("--influence", type=int, default=4, help="concurrent /influence clients in the attack case")
    parser.add_argument("--threads", type=int, default=4, help="the backend's --threads")
    parser.add_argument("--attack-s", type=float, default=25.0,
                        help="the attack case lasts at least this long (past the backend's 10 s read timeout)")
    parser.add_argument("--output", help="also write the table to this Markdown file")
    args = parser.parse_args()

    from hildif.labelstudio.server import free_port
    from hildif.labelstudio.webhook import WEBHOOK_SECRET_HEADER
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier

    lines = ["# The ML backend's webhook and /health latency, also under load and attack", "",
             run_line("bench_backend_webhook.py"), "",
             f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), shared with other work; the backend with "
             f"`--threads {args.threads}`, a tiny model, an influence pool of 200 examples.", "",
             "| case | requests | failed (> 5 s or error) | p50 ms | p95 ms | max ms |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        ModelRegistry(tmp).save(build_tiny_classifier([t["data"]["anchor_premise"] for t in TASKS] + ["a cat sat"], seed=0))
        port = free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("HILDIF_BACKEND_")},
               "HILDIF_BACKEND_USER": AUTH[0], "HILDIF_BACKEND_PASSWORD": AUTH[1], "PYTHONPATH": str(REPO)}
        log = open(Path(tmp) / "backend.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "ml_backend", "--port", str(port), "--run-dir", tmp,
                                 "--threads", str(args.threads), "--set", "model.device=cpu", "--preannotate",
                                 "--set", "data.max_train_examples=200", "--set", "influence.store_dim=64",
                                 "--set", "influence.hessian_samples=8"], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    requests.get(f"{url}/health", timeout=1).raise_for_status()
                    break
                except requests.RequestException:
                    time.sleep(0.2)
            key = requests.post(f"{url}/webhook-keys", json={"project": PROJECT}, auth=AUTH, timeout=30).json()["key"]
            headers = {WEBHOOK_SECRET_HEADER: key}
            event = {"action": "ANNOTATION_CREATED", "project": {"id": PROJECT}, "annotation": {"id": 1},
                     "task": {"id": 11}}
            requests.post(f"{url}/predict", json={"tasks": TASKS}, auth=AUTH, timeout=60).raise_for_status()  # load

            def webhook():
                return requests.post(f"{url}/webhook", json=event, headers=headers, timeout=5)

            def health():
                return requests.get(f"{url}/health", timeout=5)

            lines.append(row("sequential POST /webhook (key header)", *measure(args.n, webhook)))
            lines.append(row("sequential GET /health", *measure(args.n, health)))
            for r in range(args.rounds):
                def call(kind: str) -> tuple[str, float | None]:
                    if kind == "webhook":
                        return kind, timed(lambda: requests.post(f"{url}/webhook", json=event, headers=headers,
                                                                 timeout=30))
                    return kind, timed(lambda: requests.post(f"{url}/predict", json={"tasks": TASKS}, auth=AUTH,
                                                             timeout=60))

                jobs = [k for _ in range(args.clients) for k in ("webhook", "predict")]
                with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                    out = list(pool.map(call, jobs))
                for kind in ("webhook", "predict"):
                    ms = [m for k, m in out if k == kind]
                    lines.append(row(f"burst {r + 1}: {args.clients} x POST /{kind} at once",
                                     [m for m in ms if m is not None], sum(m is None for m in ms)))

            # the attack: the influence store first (one job), then slow clients and influence load together
            first = requests.post(f"{url}/influence", json=INFLUENCE, auth=AUTH, timeout=60)
            if first.status_code == 202:
                job = first.json()["job_id"]
                while requests.get(f"{url}/jobs/{job}", auth=AUTH, timeout=30).json()["status"] not in ("done", "failed"):
                    time.sleep(0.5)
            stop, influence_ms = threading.Event(), []
            with SlowClients(url, args.slow) as slow:
                loaders = influence_load(url, args.influence, stop, influence_ms)
                time.sleep(1)
                wh, he = ([], 0), ([], 0)
                deadline = time.monotonic() + args.attack_s  # past the read timeout: the slow clients cycle
                while len(wh[0]) + wh[1] < args.n or time.monotonic() < deadline:
                    wh = _add(wh, timed(webhook))
                    he = _add(he, timed(health))
                    time.sleep(0.05)
                stop.set()
                for t in loaders:
                    t.join(300)
            attack = f"{args.slow} slow clients + {args.influence} x /influence"
            lines.append(row(f"{attack}: POST /webhook", *wh))
            lines.append(row(f"{attack}: GET /health", *he))
            lines.append(row(f"{attack}: the /influence queries themselves", influence_ms))
            lines += ["", f"Slow clients answered 408 (read timeout) and reconnected during the attack: "
                          f"{slow.answered}."]
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(30)
            log.close()
    if args.output:
        write_results(lines, args.output)
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
