"""The ML backend without Label Studio: the persisted job queue, the Flask app (Flask's test client), the model
class, and gunicorn serving it (a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from hildif.labelstudio.convert import SCORE_CHOICES
from ml_backend.jobs import JobQueue
from ml_backend.ls_model import similarity_score

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- job queue
def test_jobs_run_in_order_persist_and_deduplicate(tmp_path):
    seen: list[int] = []
    release = threading.Event()

    def work(params):
        release.wait(10)
        seen.append(params["n"])
        if params["n"] == 3:
            raise RuntimeError("bad input 3")
        return {"doubled": params["n"] * 2}

    q = JobQueue(tmp_path / "jobs.sqlite", {"work": work})
    ids = [q.submit("work", {"n": n})[0] for n in (1, 2, 3)]
    again, created = q.submit("work", {"n": 2})  # identical job still queued: reused
    assert (again, created) == (ids[1], False)
    assert [q.get(i)["status"] for i in ids] == ["queued"] * 3  # worker not started: nothing ran
    q.start()
    release.set()
    done = [q.wait(i, timeout=30) for i in ids]
    q.stop()
    assert seen == [1, 2, 3]
    assert [d["status"] for d in done] == ["done", "done", "failed"]
    # an unexpected exception is stored as its type and a generic sentence: its message may quote a file or a token
    assert done[0]["result"] == {"doubled": 2} and done[2]["error"].startswith("RuntimeError: unexpected error")
    assert "bad input 3" not in done[2]["error"]
    # a new queue on the same file sees the history
    q2 = JobQueue(tmp_path / "jobs.sqlite", {"work": work})
    assert q2.get(ids[0])["result"] == {"doubled": 2} and len(q2.list()) == 3
    with pytest.raises(ValueError, match="unknown job kind 'train'"):
        q2.submit("train")


def test_a_job_interrupted_by_a_crash_is_marked_failed_at_restart(tmp_path):
    q = JobQueue(tmp_path / "jobs.sqlite", {"work": lambda p: None})
    job_id, _ = q.submit("work")
    assert q._claim()["id"] == job_id  # the worker took it... and the process died
    assert q.get(job_id)["status"] == "running"
    restarted = JobQueue(tmp_path / "jobs.sqlite", {"work": lambda p: None})
    job = restarted.get(job_id)
    assert job["status"] == "failed" and "interrupted" in job["error"]


def test_similarity_score_bins():
    # five equal bins of width 0.4 over [-1, 1]
    assert [similarity_score(c) for c in (-1.0, -0.61, -0.59, 0.0, 0.19, 0.21, 0.59, 0.61, 1.0)] == [
        1, 1, 2, 3, 3, 4, 4, 5, 5]


# ---------------------------------------------------------------------------------------------- the app
@pytest.fixture()
def backend(tmp_path, mnli_train_sample):
    """A run directory with a tiny model as the current version, and a factory for apps over it."""
    from hildif.config import load_config
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier
    from ml_backend.app import create_app
    from ml_backend.runtime import BackendRuntime
    from ml_backend.settings import BackendSettings

    cfg = load_config(overrides=[f"run.run_dir={tmp_path / 'run'}", "model.device=cpu"])
    version = ModelRegistry(cfg.run.run_dir).save(build_tiny_classifier(mnli_train_sample[:200], seed=0))
    runtimes = []

    def make(**settings):
        rt = BackendRuntime(cfg, BackendSettings(**settings))
        runtimes.append(rt)
        return create_app(cfg, runtime=rt).test_client(), rt

    yield make, version, cfg
    for rt in runtimes:
        rt.close()


TASKS = [
    {"id": 1, "data": {"anchor_premise": "The judge advised the doctor .", "anchor_hypothesis": "The doctor advised the judge .",
                       "example_premise": "The lawyer helped the banker .", "example_hypothesis": "The banker helped the lawyer ."}},
    {"id": 2, "data": {"text": "not a rating task"}},
]


def test_health_setup_predict_versions(backend):
    make, version, _ = backend
    client, rt = make()
    h = client.get("/health").get_json()
    assert h["status"] == "UP" and h["model_version"] == version and h["loaded_version"] is None
    from hildif.labelstudio.convert import load_label_config

    rating = load_label_config()
    setup = client.post("/setup", json={"project": "7.1700000000", "schema": rating, "hostname": "http://localhost:8080",
                                        "access_token": "tok"})
    assert setup.get_json() == {"model_version": version}
    assert rt.setups[7] == {"hostname": "http://localhost:8080", "access_token": "tok"}
    assert rt.kv_get("7", "label_config") == rating
    r = client.post("/predict", json={"tasks": TASKS, "project": "7.1700000000", "label_config": rating}).get_json()
    # pre-annotation is off by default: one empty prediction per task, the model is not even loaded
    assert r["results"] == [{"result": [], "score": 0.0, "model_version": version}] * 2
    assert rt.service.loaded_version() is None
    assert client.get("/versions").get_json() == {"versions": [version], "current": version}
    assert client.post("/predict", json={"tasks": "x"}).status_code == 400
    assert client.post("/predict", data="not json").status_code == 400


def test_preannotation_uses_the_model_loaded_once(backend):
    make, version, _ = backend
    client, rt = make(preannotate=True)
    first = client.post("/predict", json={"tasks": TASKS}).get_json()["results"]
    assert first[1] == {"result": [], "score": 0.0, "model_version": version}
    choice = first[0]["result"][0]
    assert choice["from_name"] == "similarity" and choice["value"]["choices"][0] in SCORE_CHOICES
    assert 0.0 <= first[0]["score"] <= 1.0
    loaded = rt.service.classifier()
    second = client.post("/predict", json={"tasks": TASKS}).get_json()["results"]
    assert second == first and rt.service.classifier() is loaded and rt.service.loaded_version() == version


def test_webhooks_answer_at_once_and_jobs_are_visible(backend):
    make, _, _ = backend
    client, rt = make()
    r = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 3}, "annotation": {"id": 1}})
    assert r.status_code == 201 and r.get_json() == {"status": "noted", "event": "ANNOTATION_CREATED"}
    r = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 3}})
    # no round uses project 3 and its label config is unknown: refused with the reason, in the status line too
    assert r.status_code == 422 and r.get_json()["status"] == "refused"
    assert "label config" in r.get_json()["reason"] and "reconnect" in r.status
    assert rt.kv_get("3", "events") == {"ANNOTATION_CREATED": 1, "START_TRAINING": 1}
    missing = client.post("/webhook", json={"project": 3})
    assert missing.status_code == 400 and missing.get_json()["field"] == "action"
    bad = client.post("/jobs", json={"kind": "explode"})
    assert bad.status_code == 400 and bad.get_json() == {"error": "kind: must be one of sync, start, train", "field": "kind"}
    sub = client.post("/jobs", json={"kind": "sync", "params": {"round_id": "nope"}})
    assert sub.status_code == 202
    job = rt.jobs.wait(sub.get_json()["job_id"], timeout=60)
    assert job["status"] == "failed" and "unknown round 'nope'" in job["error"]
    assert client.get(f"/jobs/{job['id']}").get_json()["status"] == "failed"
    assert client.get("/jobs/none").status_code == 404


def test_basic_auth_protects_everything_but_health(backend):
    make, _, _ = backend
    client, _ = make(basic_auth=("ls", "s3cret"))
    assert client.get("/health").status_code == 200
    assert client.get("/versions").status_code == 401
    assert client.get("/versions", auth=("ls", "wrong")).status_code == 401
    assert client.get("/versions", auth=("ls", "s3cret")).status_code == 200
    assert client.post("/webhook", json={"action": "X"}).status_code == 401
    assert client.get("/health").get_json()["webhooks"]["refused"] == 1  # refused webhooks are counted


def test_webhooks_with_the_project_key_pass_basic_auth(backend):
    """Label Studio sends webhooks without the backend's credentials; the per-project key the backend issues (and
    hildif adds to the project's webhook) lets them through, for that project only; issuing again rotates it."""
    from hildif.labelstudio.webhook import WEBHOOK_SECRET_HEADER

    make, _, _ = backend
    client, rt = make(basic_auth=("ls", "s3cret"))
    assert client.post("/webhook-keys", json={"project": 4}).status_code == 401  # basic auth only
    issued = client.post("/webhook-keys", json={"project": 4}, auth=("ls", "s3cret"))
    assert issued.status_code == 201 and issued.get_json()["project"] == 4
    key = issued.get_json()["key"]
    assert len(key) >= 40 and key not in open(rt.db_path, "rb").read().decode("latin-1")  # only its digest is kept
    event = {"action": "ANNOTATION_CREATED", "project": {"id": 4}, "annotation": {"id": 1}}
    ok = client.post("/webhook", json=event, headers={WEBHOOK_SECRET_HEADER: key})
    assert ok.status_code == 201 and ok.get_json()["status"] == "noted"
    other_project = client.post("/webhook", json={**event, "project": {"id": 5}}, headers={WEBHOOK_SECRET_HEADER: key})
    wrong = client.post("/webhook", json=event, headers={WEBHOOK_SECRET_HEADER: key[:-2] + "xx"})
    assert other_project.status_code == wrong.status_code == 401
    # the key opens /webhook only
    assert client.get("/jobs", headers={WEBHOOK_SECRET_HEADER: key}).status_code == 401
    rotated = client.post("/webhook-keys", json={"project": 4}, auth=("ls", "s3cret")).get_json()["key"]
    assert rotated != key and client.post("/webhook", json=event, headers={WEBHOOK_SECRET_HEADER: key}).status_code == 401
    assert client.post("/webhook", json=event, headers={WEBHOOK_SECRET_HEADER: rotated}).status_code == 201
    stats = client.get("/health").get_json()["webhooks"]
    assert stats["accepted"] == 2 and stats["refused"] == 3
    assert stats["refused_by_reason"] == {"webhook key of another project": 1, "wrong webhook key": 2}
    assert rt.kv_get("4", "events") == {"ANNOTATION_CREATED": 2} and rt.kv_get("5", "events") is None
    # keys outlive the process (the database keeps their digests)
    _, again = make(basic_auth=("ls", "s3cret"))
    assert again.webhook_keys.project_of(rotated) == 4 and again.webhook_keys.project_of(key) is None


# ---------------------------------------------------------------------------------------------- gunicorn
@pytest.mark.integration
def test_python_m_ml_backend_serves_with_gunicorn_on_loopback(backend, tmp_path):
    from hildif.labelstudio.server import free_port

    _, version, cfg = backend
    port = free_port()
    env = {**os.environ, "HILDIF_BACKEND_USER": "ls", "HILDIF_BACKEND_PASSWORD": "pw", "PYTHONPATH": str(REPO)}
    log = open(tmp_path / "backend.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "ml_backend", "--port", str(port), "--run-dir", str(cfg.run.run_dir),
                             "--set", "model.device=cpu"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "backend.log").read_text()[-3000:]
            try:
                health = requests.get(f"{url}/health", timeout=2).json()
                break
            except requests.RequestException:
                time.sleep(0.5)
        else:
            pytest.fail("backend did not answer /health: " + (tmp_path / "backend.log").read_text()[-3000:])
        assert health["model_version"] == version
        assert requests.get(f"{url}/versions", timeout=5).status_code == 401
        assert requests.get(f"{url}/versions", auth=("ls", "pw"), timeout=5).json()["current"] == version
        assert "gunicorn" in (tmp_path / "backend.log").read_text().lower()
        assert "Listening at: http://127.0.0.1:" in (tmp_path / "backend.log").read_text()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


# ---------------------------------------------------------------------------------------------- POST /influence
@pytest.fixture()
def influence_backend(tmp_path, mnli_train_sample):
    """A served tiny model over a 60-example training pool, small store settings, basic auth."""
    from hildif.config import load_config
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier
    from ml_backend.app import create_app
    from ml_backend.runtime import BackendRuntime
    from ml_backend.settings import BackendSettings

    cfg = load_config(overrides=[
        f"run.run_dir={tmp_path / 'run'}", "model.device=cpu", "data.max_train_examples=60",
        "influence.store_dim=64", "influence.grad_batch_size=16", "influence.hessian_samples=8"])
    registry = ModelRegistry(cfg.run.run_dir)
    version = registry.save(build_tiny_classifier(mnli_train_sample[:200], seed=0))
    rt = BackendRuntime(cfg, BackendSettings(basic_auth=("ls", "pw")), start_jobs=False)  # the test starts them
    yield create_app(cfg, runtime=rt).test_client(), rt, registry, version, cfg
    rt.close()


QUERY = {"premise": "The doctor near the actor danced .", "hypothesis": "The actor danced ."}


def test_influence_endpoint_opens_the_store_once_then_answers_from_it(influence_backend, mnli_train_sample):
    import numpy as np

    from hildif.data.example import Example
    from hildif.data.splits import load_train
    from hildif.influence.explain import StoreExplainer
    from hildif.model.loading import load_version
    from hildif.model.tiny import build_tiny_classifier

    client, rt, registry, version, cfg = influence_backend
    auth = ("ls", "pw")
    assert client.post("/influence", json=QUERY).status_code == 401
    first = client.post("/influence", json=QUERY, auth=auth)
    assert first.status_code == 202, first.get_json()
    job_id = first.get_json()["job_id"]
    assert first.get_json()["model_version"] == version and "Ask again" in first.get_json()["message"]
    assert client.post("/influence", json=QUERY, auth=auth).get_json()["job_id"] == job_id  # one job per version
    rt.jobs.start()
    assert rt.jobs.wait(job_id, timeout=600)["status"] == "done"
    assert rt.jobs.get(job_id)["result"]["opened"] and not rt.jobs.get(job_id)["result"]["from_cache"]

    r = client.post("/influence", json=QUERY, auth=auth)
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    assert out["model_version"] == version and len(out["influential"]) == 10
    assert out["details"]["scored"] == 60 and not out["details"]["exact"]
    scores = [i["score"] for i in out["influential"]]
    assert scores == sorted(scores)  # most helpful (negative) first
    assert [i["rank"] for i in out["influential"]] == list(range(1, 11))
    assert out["query"]["label"] == out["query"]["predicted"]  # default: explain the model's own prediction
    # the library's answer for the same text, model and pool (the store read back from the run's cache)
    train = load_train(cfg.data)
    lib = StoreExplainer(load_version(cfg, version, attn_implementation="eager"), train, rt.service._explainer[1].cfg,
                         store_dir=cfg.cache_path("store"))
    assert lib.store.from_cache
    want = lib.explain([Example("q", QUERY["premise"], QUERY["hypothesis"], out["query"]["label"])], rerank=0)[0]
    assert [i["id"] for i in out["influential"]] == [i.example.id for i in want.influential]
    np.testing.assert_allclose(scores, [i.score for i in want.influential], rtol=1e-6)
    by_id = {e.id: e for e in train}
    for item in out["influential"]:
        ex = by_id[item["id"]]
        assert item["label"] == ex.label and item["label_name"] in ("entailment", "non-entailment")
        assert len(item["premise"]) <= 300 and ex.premise.startswith(item["premise"].rstrip("…"))

    # a Label Studio task (a rating task's anchor; other keys, even file-like ones, are ignored), k, harmful, label
    task = {"id": 9, "data": {"anchor_premise": QUERY["premise"], "anchor_hypothesis": QUERY["hypothesis"],
                              "example_premise": "x"}, "annotations": [], "file_upload": "tasks.json"}
    t = client.post("/influence", json={"task": task, "k": 3, "harmful": True, "label": "entailment"}, auth=auth)
    assert t.status_code == 200, t.get_json()
    hs = [i["score"] for i in t.get_json()["influential"]]
    assert len(hs) == 3 and hs == sorted(hs, reverse=True) and t.get_json()["query"]["label_name"] == "entailment"
    # an exact re-ranking of the store's best 8: the engine's scores
    exact = client.post("/influence", json={**QUERY, "k": 4, "rerank": 8, "label": 1}, auth=auth).get_json()
    assert exact["details"]["exact"] and exact["details"]["reranked"] == 8
    engine = rt.service._explainer[1].engine
    s_test = engine.s_test(engine.anchor_gradient(Example("q", QUERY["premise"], QUERY["hypothesis"], 1))).s_test
    direct = engine.influence(s_test, [train.index(by_id[i["id"]]) for i in exact["influential"]])
    np.testing.assert_allclose([i["score"] for i in exact["influential"]], direct, rtol=1e-5, atol=1e-9)

    # hostile or wrong bodies: 400 naming the field, nothing echoed
    secret = "TOP-SECRET-VALUE"
    bad = {
        "k": {**QUERY, "k": 0}, "rerank": {**QUERY, "rerank": 201}, "premise": {"premise": secret * 400},
        "harmful": {**QUERY, "harmful": "yes"}, "store_path": {**QUERY, "store_path": secret},
        "config": {**QUERY, "config": {"x": 1}}, "label": {**QUERY, "label": secret},
        "task": {**QUERY, "task": task}, "task.data": {"task": {"data": {"image": secret}}},
        "hypothesis": {"task": task, "hypothesis": "h"}, "other": {**QUERY, "other": 1},
    }
    for field, payload in bad.items():
        res = client.post("/influence", json=payload, auth=auth)
        assert res.status_code == 400 and res.get_json()["field"] == field, (field, res.get_json())
        assert secret not in res.get_data(as_text=True)
    assert client.post("/influence", json={}, auth=auth).get_json()["field"] == "task"
    assert client.post("/influence", json={**QUERY, "label": 7}, auth=auth).get_json()["field"] == "label"
    assert client.post("/influence", json=[QUERY], auth=auth).status_code == 400
    assert client.post("/influence", json={"premise": "   "}, auth=auth).status_code == 400
    assert client.post("/jobs", json={"kind": "influence", "params": {"model_version": version}},
                       auth=auth).status_code == 400  # the endpoint queues it, never a client

    # a new served version: its own store, opened by a new job
    new_version = registry.save(build_tiny_classifier(mnli_train_sample[:200], seed=1))
    assert new_version != version and registry.current() == new_version
    r = client.post("/influence", json=QUERY, auth=auth)
    assert r.status_code == 202 and r.get_json()["model_version"] == new_version and r.get_json()["job_id"] != job_id
    assert rt.jobs.wait(r.get_json()["job_id"], timeout=600)["status"] == "done"
    assert client.post("/influence", json=QUERY, auth=auth).get_json()["model_version"] == new_version


def test_job_api_takes_a_project_anchor_rule_and_task_ids():
    from ml_backend.schema import FieldError, job_request

    kind, params = job_request({"kind": "start", "params": {"round_id": "r1", "selection": {
        "method": "project", "n": 3, "project_anchors": "ids", "task_ids": [4, 9]}}})
    assert kind == "start" and params["selection"] == {"method": "project", "n": 3, "project_anchors": "ids",
                                                       "task_ids": [4, 9]}
    from hildif.influence.anchors import AnchorSelection
    assert AnchorSelection.from_dict(params["selection"]).strategy().rule == "ids"
    for selection, field in [({"method": "project", "project_anchors": "ids"}, "params.selection.task_ids"),
                             ({"method": "project", "project_anchors": "loudest"}, "params.selection.project_anchors"),
                             ({"method": "project", "task_ids": ["7"]}, "params.selection.task_ids[0]"),
                             ({"method": "paper", "task_ids": [7]}, "params.selection.task_ids")]:
        with pytest.raises(FieldError) as err:
            job_request({"kind": "start", "params": {"round_id": "r1", "selection": selection}})
        assert str(err.value).startswith(field), (selection, str(err.value))
