"""Issue 26: the ML backend against slow and hostile clients, each finding against one real gunicorn backend
(``python -m ml_backend --threads 4 --read-timeout 3``, basic auth, a tiny served model, a small influence pool).

* slow clients: /health answers within 1 s while more than ``--threads`` connections trickle headers or a
  /webhook body, and each trickler is answered 408 once the read timeout has passed;
* /influence runs in a pool of its own: a burst of influence queries leaves /health answering within 1 s;
* deep JSON: 400, not 500 (and nothing logged as an error); on /webhook without credentials, 401 before the body
  is read, counted as refused, for non-JSON too;
* ids, actions, rules, pair IDs and labels with a trailing newline: 400 naming the field;
* a failed job's error names no server path;
* access-log lines cannot be forged (newline, NUL escaped);
* integers out of range: 400; a text over the per-text limit on /predict: 413 naming it; a chunked body over
  4 MiB: 413; unknown top-level fields on /setup, /predict, /webhook: 400 naming them;
* a replayed START_TRAINING queues one sync while that sync runs.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from ml_backend.worker import INFLUENCE_QUEUE
from round_env import start_backend, stop_backend

pytestmark = pytest.mark.integration

AUTH = ("labelstudio", "hostile-test-Pa55")
THREADS = 4
READ_TIMEOUT_S = 3
PROJECT = 41  # the project of the round the replay test syncs
INFLUENCE = {"premise": "The doctor near the actor danced .", "hypothesis": "The actor danced .", "rerank": 200}


class Silent:
    """A TCP server that accepts connections and never answers: the sync job's Label Studio, so the job stays
    running (its client waits for ``labelstudio.timeout_s``) while the replays arrive."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for s in self.held:
            s.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, mnli_train_sample):
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier
    from hildif.rounds.state import RoundAnchor, RoundPair, RoundState

    tmp = tmp_path_factory.mktemp("hostile")
    run = tmp / "run"
    registry = ModelRegistry(run)
    version = registry.save(build_tiny_classifier(mnli_train_sample[:200], seed=0))
    state = RoundState(run / "rounds.sqlite")  # a round with one pushed pair: its sync asks Label Studio
    anchor, example = mnli_train_sample[0], mnli_train_sample[1]
    state.create_round("replayed", version, str(run / "models" / version), {"method": "paper"}, {},
                       [RoundAnchor(anchor, [0.5, 0.5])], [RoundPair(anchor.id, example, 1, -0.1)])
    state.set_project("replayed", PROJECT, "replay test")
    state.set_task_ids("replayed", {(anchor.id, example.id): 1})
    silent = Silent()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HILDIF_BACKEND_")},
           "HILDIF_BACKEND_USER": AUTH[0], "HILDIF_BACKEND_PASSWORD": AUTH[1], "LABEL_STUDIO_API_KEY": "not-a-key"}
    log = tmp / "backend.log"
    proc, url = start_backend(run, env, log, "--threads", str(THREADS), "--read-timeout", str(READ_TIMEOUT_S),
                              "--set", "data.max_train_examples=200", "--set", "influence.store_dim=64",
                              "--set", "influence.hessian_samples=8", "--set", "influence.grad_batch_size=16",
                              "--set", f"labelstudio.url={silent.url}", "--set", "labelstudio.timeout_s=60")
    try:
        yield {"url": url, "run": run, "log": log, "version": version}
    finally:
        stop_backend(proc)
        silent.close()


def _health_ms(url: str) -> float:
    t0 = time.perf_counter()
    requests.get(f"{url}/health", timeout=1).raise_for_status()  # raises past 1 s
    return (time.perf_counter() - t0) * 1000


def _connect(url: str) -> socket.socket:
    host, port = url.rsplit("/", 1)[-1].split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return out
        if not data:
            return out
        out += data


# ---------------------------------------------------------------------------------------------- 1. slow clients
def test_health_answers_while_more_than_threads_connections_trickle(served):
    url = served["url"]
    heads = [_connect(url) for _ in range(THREADS)]
    bodies = [_connect(url) for _ in range(THREADS)]
    for s in heads:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    for s in bodies:
        s.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{")
    started = time.monotonic()
    latencies = []
    for _ in range(2 * READ_TIMEOUT_S - 2):  # one byte each every 0.5 s, for most of the read timeout
        for s in heads:
            s.sendall(b"X")
        for s in bodies:
            s.sendall(b" ")
        latencies.append(_health_ms(url))
        time.sleep(0.5)
    assert max(latencies) < 1000, latencies
    # past the read timeout each trickler is answered 408 and closed; no thread waited for it
    answers = [_read_all(s) for s in heads + bodies]
    assert time.monotonic() - started < READ_TIMEOUT_S + 5
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), [a[:40] for a in answers]
    for s in heads + bodies:
        s.close()
    assert _health_ms(url) < 1000


# ---------------------------------------------------------------------------------------------- 2. /influence pool
def _wait_job(url: str, job_id: str, want=("done", "failed"), timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/jobs/{job_id}", auth=AUTH, timeout=30).json()
        if job["status"] in want:
            return job
        time.sleep(0.2)
    pytest.fail(f"job {job_id} not {want} after {timeout} s")


def test_influence_queries_do_not_hold_up_health(served):
    url = served["url"]
    first = requests.post(f"{url}/influence", json=INFLUENCE, auth=AUTH, timeout=60)
    if first.status_code == 202:  # the store is opened by a job first
        assert _wait_job(url, first.json()["job_id"])["status"] == "done"
    t0 = time.perf_counter()
    assert requests.post(f"{url}/influence", json=INFLUENCE, auth=AUTH, timeout=60).status_code == 200
    one = time.perf_counter() - t0
    n = max(4 * THREADS, int(3 / max(one, 0.05)))  # enough queries for several seconds of work
    latencies: list[float] = []
    with ThreadPoolExecutor(max_workers=n) as pool:
        t0 = time.perf_counter()
        futures = [pool.submit(requests.post, f"{url}/influence", json=INFLUENCE, auth=AUTH, timeout=300)
                   for _ in range(n)]
        time.sleep(0.3)
        while not all(f.done() for f in futures):
            latencies.append(_health_ms(url))
            time.sleep(0.2)
        burst = time.perf_counter() - t0
    statuses = [f.result().status_code for f in futures]  # 503: more than INFLUENCE_QUEUE were waiting
    assert set(statuses) <= {200, 503} and statuses.count(200) >= min(n, INFLUENCE_QUEUE), statuses
    assert burst > 1.5, f"the burst took {burst:.1f} s: too short to show anything"
    assert latencies and max(latencies) < 1000, (burst, latencies)


# ---------------------------------------------------------------------------------------------- 3. deep JSON, auth first
def _refused(url: str) -> int:
    return requests.get(f"{url}/health", timeout=5).json()["webhooks"]["refused"]


def test_deep_json_is_400_and_webhook_auth_comes_before_the_body(served):
    url = served["url"]
    deep = b"[" * 10_000 + b"]" * 10_000
    for path in ("/jobs", "/predict", "/setup", "/influence", "/webhook"):
        r = requests.post(url + path, data=deep, headers={"Content-Type": "application/json"}, auth=AUTH, timeout=30)
        assert r.status_code == 400 and r.json()["field"] == "body", (path, r.status_code, r.text[:200])
    nested = json.dumps({"action": "X", "task": {"data": json.loads("[" * 100 + "]" * 100)}})
    r = requests.post(f"{url}/webhook", data=nested, headers={"Content-Type": "application/json"}, auth=AUTH, timeout=30)
    assert r.status_code == 400 and "nested deeper" in r.json()["error"]
    before = _refused(url)
    for data in (deep, b"\x00\xff not json", b'{"action": "START_TRAINING", "project": 1}'):
        r = requests.post(f"{url}/webhook", data=data, headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 401, (data[:20], r.status_code)
    assert _refused(url) == before + 3
    assert "RecursionError" not in served["log"].read_text()


# ---------------------------------------------------------------------------------------------- 4. trailing newlines
NEWLINE_CASES = [  # (path, body, the field named)
    ("/jobs", {"kind": "sync", "params": {"round_id": "k3\n"}}, "params.round_id"),
    ("/jobs", {"kind": "start", "params": {"round_id": "k3\n", "selection": {"method": "paper"}}}, "params.round_id"),
    ("/jobs", {"kind": "start", "params": {"round_id": "k3", "selection": {"method": "pairids",
                                                                          "pair_ids": ["53088c\n"]}}},
     "params.selection.pair_ids[0]"),
    ("/jobs", {"kind": "start", "params": {"round_id": "k3", "selection": {"method": "rule", "rule": "all\n"}}},
     "params.selection.rule"),
    ("/webhook", {"action": "START_TRAINING\n", "project": {"id": 3}}, "action"),
    ("/influence", {**INFLUENCE, "label": "entailment\n"}, "label"),
]


@pytest.mark.parametrize("path, body, field", NEWLINE_CASES, ids=[c[2] for c in NEWLINE_CASES])
def test_a_trailing_newline_is_refused_naming_the_field(served, path, body, field):
    r = requests.post(served["url"] + path, json=body, auth=AUTH, timeout=30)
    assert r.status_code == 400 and r.json()["field"] == field, r.text
    db = sqlite3.connect(served["run"] / "rounds.sqlite")
    assert [row[0] for row in db.execute("SELECT round_id FROM rounds WHERE round_id LIKE 'k3%'")] == []
    db.close()


# ---------------------------------------------------------------------------------------------- 5. paths in job errors
def test_a_failed_job_names_no_server_path(served):
    url, run = served["url"], served["run"]
    r = requests.post(f"{url}/jobs", json={"kind": "sync", "params": {"round_id": "nosuchround"}}, auth=AUTH, timeout=30)
    job = _wait_job(url, r.json()["job_id"])
    assert job["status"] == "failed" and "unknown round 'nosuchround'" in job["error"], job
    listing = requests.get(f"{url}/jobs", auth=AUTH, timeout=30).text
    for text in (job["error"], listing):
        assert str(run.resolve()) not in text and str(Path.cwd()) not in text and str(Path.home()) not in text
    assert "rounds.sqlite" in job["error"]  # the file at fault is still named


# ---------------------------------------------------------------------------------------------- 6. forged log lines
def test_access_log_lines_cannot_be_forged(served):
    url, log = served["url"], served["log"]
    forged = "2026-12-07 00:00:00,000 ml_backend.jobs: job FORGED done"
    r = requests.get(f"{url}/jobs/x%0a{forged.replace(' ', '%20')}%00end", timeout=30)
    assert r.status_code == 401
    assert requests.get(f"{url}/health", headers={"User-Agent": "agent\x1b[2K"}, timeout=30).status_code == 400
    time.sleep(0.5)  # the access log is written after the answer
    text = log.read_bytes()
    assert b"\x00" not in text and b"\x1b" not in text
    lines = text.decode().splitlines()
    assert not [line for line in lines if line.startswith(forged)]
    assert [line for line in lines if "/jobs/x\\n2026-12-07" in line and "\\x00end" in line], lines[-5:]


# ---------------------------------------------------------------------------------------------- 7-9, 11. bodies
BAD_BODIES = [  # (path, body, status, field)
    ("/webhook", {"action": "START_TRAINING", "project": 9223372036854775808}, 400, "project"),
    ("/webhook", {"action": "START_TRAINING", "project": {"id": 2**70}}, 400, "project.id"),
    ("/predict", {"tasks": [], "project": "9223372036854775808.1"}, 400, "project"),
    ("/jobs", {"kind": "train", "params": {"project_id": 9223372036854775808}}, 400, "params.project_id"),
    ("/webhook-keys", {"project": 9223372036854775808}, 400, "project"),
    ("/predict", {"tasks": [{"id": 1, "data": {"text": "long " * 700_000}}]}, 413, "tasks[0].data.text"),
    ("/predict", {"tasks": [], "pair_ids_file": "/etc/passwd"}, 400, "pair_ids_file"),
    ("/predict", {"tasks": [], "params": {"context": None, "extra": 1}}, 400, "params.extra"),
    ("/setup", {"project": "1.1", "schema": "<View/>", "run_dir": "/"}, 400, "run_dir"),
    ("/webhook", {"action": "ANNOTATION_CREATED", "project": {"id": 3}, "surprise": 1}, 400, "surprise"),
]


@pytest.mark.parametrize("path, body, status, field", BAD_BODIES, ids=[f"{c[0]}:{c[3]}" for c in BAD_BODIES])
def test_out_of_range_long_and_unknown_fields_are_refused_by_name(served, path, body, status, field):
    r = requests.post(served["url"] + path, json=body, auth=AUTH, timeout=60)
    assert r.status_code == status and r.json()["field"] == field, (r.status_code, r.text[:300])
    assert "/etc/passwd" not in r.text


def test_label_studio_fields_are_accepted(served):
    """What Label Studio 1.23 sends to /setup, /predict and /webhook passes the field checks."""
    from hildif.labelstudio.convert import load_label_config

    url = served["url"]
    setup = {"project": "7.1700000000", "schema": load_label_config(), "hostname": "http://localhost:8080",
             "access_token": "tok", "extra_params": None}
    r = requests.post(f"{url}/setup", json=setup, auth=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    predict = {"tasks": [{"id": 1, "data": {"text": "a"}, "meta": {}, "annotations": []}], "project": "7.1700000000",
               "label_config": None, "params": {"login": None, "password": None, "context": None}}
    assert requests.post(f"{url}/predict", json=predict, auth=AUTH, timeout=60).status_code == 200
    for event in ({"action": "ANNOTATION_CREATED", "project": {"id": 3, "label_config": "<View/>"},
                   "annotation": {"id": 1}, "task": {"id": 2}},
                  {"action": "ANNOTATIONS_DELETED", "project": {"id": 3}, "annotations": [{"id": 1}]},
                  {"action": "TASKS_CREATED", "project": {"id": 3}, "tasks": [{"id": 2}]},
                  {"action": "LABEL_LINK_UPDATED", "project": {"id": 3}, "label_link": {}, "label": {}}):
        r = requests.post(f"{url}/webhook", json=event, auth=AUTH, timeout=30)
        assert r.status_code == 201, (event["action"], r.text)


def test_a_chunked_body_over_the_limit_is_413(served):
    def chunks():
        for _ in range(5 * 16):  # 5 MiB in 64 KiB chunks
            yield b" " * 65536

    r = requests.post(f"{served['url']}/jobs", data=chunks(), headers={"Content-Type": "application/json"},
                      auth=AUTH, timeout=60)
    assert r.status_code == 413 and r.json()["field"] == "body"
    small = requests.post(f"{served['url']}/jobs", data=iter([b'{"kind": ', b'"nope"}']), auth=AUTH, timeout=60,
                          headers={"Content-Type": "application/json"})
    assert small.status_code == 400 and small.json()["field"] == "kind"  # a chunked body within the limit is read


# ---------------------------------------------------------------------------------------------- 10. replays
def test_a_replayed_start_training_queues_one_sync(served):
    url = served["url"]
    key = requests.post(f"{url}/webhook-keys", json={"project": PROJECT}, auth=AUTH, timeout=30).json()["key"]
    from hildif.labelstudio.webhook import WEBHOOK_SECRET_HEADER

    event, headers = {"action": "START_TRAINING", "project": {"id": PROJECT}}, {WEBHOOK_SECRET_HEADER: key}
    first = requests.post(f"{url}/webhook", json=event, headers=headers, timeout=30)
    assert first.status_code == 201 and first.json()["status"] == "queued", first.text
    job_id = first.json()["job_id"]
    _wait_job(url, job_id, want=("running",), timeout=120)  # waiting on the silent Label Studio
    replays = [requests.post(f"{url}/webhook", json=event, headers=headers, timeout=30).json() for _ in range(3)]
    assert [r["job_id"] for r in replays] == [job_id] * 3 and {r["status"] for r in replays} == {"already running"}
    syncs = [j for j in requests.get(f"{url}/jobs", auth=AUTH, timeout=30).json()["jobs"]
             if j["kind"] == "sync" and j["params"].get("project_id") == PROJECT]
    assert [j["id"] for j in syncs] == [job_id]
