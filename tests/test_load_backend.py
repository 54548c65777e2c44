"""A bounded load test of the ML backend (real gunicorn process, basic auth on, pre-annotation on so /predict runs
the model): 50 clients on 127.0.0.1 each post a webhook and ask /predict at the same time (100 requests in flight
at most, 30 s timeout each). Every answer must be right, and every webhook counted exactly once (the counts are
written by the backend's background writer, flushed when it stops). The latency
figures (p50/p95/max per endpoint) are printed and written to ``test-artifacts/load_test.json`` - they are
reported, never asserted (speed belongs in benchmarks).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from round_env import start_backend, stop_backend

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
CLIENTS = 50
AUTH = ("labelstudio", "load-test-password")
TASKS = [{"id": 11, "data": {"anchor_premise": "The judge advised the doctor .", "anchor_hypothesis": "The doctor advised the judge .",
                             "example_premise": "The lawyer helped the banker .", "example_hypothesis": "The banker helped the lawyer ."}},
         {"id": 12, "data": {"anchor_premise": "The actor saw the tourist .", "anchor_hypothesis": "The tourist saw the actor .",
                             "example_premise": "A man is sleeping .", "example_hypothesis": "A person rests ."}}]


def test_fifty_concurrent_webhooks_and_predictions_all_answered_correctly(tmp_path, mnli_train_sample):
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier

    run = tmp_path / "run"
    version = ModelRegistry(run).save(build_tiny_classifier(mnli_train_sample[:200], seed=0))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HILDIF_BACKEND_")},
           "HILDIF_BACKEND_USER": AUTH[0], "HILDIF_BACKEND_PASSWORD": AUTH[1]}
    proc, url = start_backend(run, env, tmp_path / "backend.log", "--preannotate")
    try:
        reference = requests.post(f"{url}/predict", json={"tasks": TASKS, "project": "5.1"}, auth=AUTH, timeout=60)
        assert reference.status_code == 200
        expected = reference.json()["results"]
        assert len(expected) == 2 and all(r["model_version"] == version and r["result"] for r in expected)

        def call(kind: str, i: int):
            t0 = time.perf_counter()
            try:
                if kind == "webhook":
                    r = requests.post(f"{url}/webhook", auth=AUTH, timeout=30, json={
                        "action": "ANNOTATION_CREATED", "project": {"id": 5}, "annotation": {"id": i}, "task": {"id": 11}})
                    ok = r.status_code == 201 and r.json() == {"status": "noted", "event": "ANNOTATION_CREATED"}
                else:
                    r = requests.post(f"{url}/predict", json={"tasks": TASKS, "project": "5.1"}, auth=AUTH, timeout=30)
                    ok = r.status_code == 200 and r.json()["results"] == expected
                return kind, ok, time.perf_counter() - t0, r.status_code
            except requests.RequestException as exc:
                return kind, False, time.perf_counter() - t0, type(exc).__name__

        jobs = [(k, i) for i in range(CLIENTS) for k in ("webhook", "predict")]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            results = list(pool.map(lambda job: call(*job), jobs))
        wall = time.perf_counter() - t0
        webhooks = requests.get(f"{url}/health", timeout=30).json()["webhooks"]
    finally:
        stop_backend(proc)

    figures = {"clients": CLIENTS, "requests": len(results), "wall_s": round(wall, 3), "endpoints": {}}
    for kind in ("webhook", "predict"):
        mine = [r for r in results if r[0] == kind]
        lat = np.array([r[2] for r in mine]) * 1000
        figures["endpoints"][kind] = {
            "sent": len(mine), "correct": sum(r[1] for r in mine),
            "p50_ms": round(float(np.percentile(lat, 50)), 1), "p95_ms": round(float(np.percentile(lat, 95)), 1),
            "max_ms": round(float(lat.max()), 1), "failures": [r[3] for r in mine if not r[1]][:5],
        }
    out = REPO / "test-artifacts" / "load_test.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    for kind, f in figures["endpoints"].items():
        assert f["correct"] == f["sent"] == CLIENTS, (kind, f)
    db = sqlite3.connect(run / "backend.sqlite")
    counts = json.loads(db.execute("SELECT value FROM kv WHERE project = '5' AND key = 'events'").fetchone()[0])
    db.close()
    assert counts == {"ANNOTATION_CREATED": CLIENTS}  # every webhook counted once: none lost, none twice
    assert (webhooks["accepted"], webhooks["refused"]) == (CLIENTS, 0)
