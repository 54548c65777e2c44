"""Label Studio and the hildif ML backend talking to each other for real: ``ml.create`` (health, setup, webhook),
predictions fetched by Label Studio, annotation webhooks, and a START_TRAINING webhook that syncs the round in the
background and makes the backend serve the new model.

The round here is recorded directly (real training examples as its "influential" pairs) instead of being explained,
to keep the test about the backend; explanation is covered by test_rounds_labelstudio.py.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import requests

pytestmark = [pytest.mark.integration, pytest.mark.labelstudio]

KEY_ENV = "HILDIF_TEST_LS_KEY_BACKEND"


@pytest.fixture(scope="module")
def served(label_studio, tmp_path_factory, data_dir):
    from werkzeug.serving import make_server

    from hildif.config import load_config
    from hildif.data.splits import load_anchors, load_train
    from hildif.labelstudio.client import LabelStudioClient
    from hildif.labelstudio.server import free_port
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier
    from hildif.rounds.start import push_tasks
    from hildif.rounds.state import RoundAnchor, RoundPair, RoundState
    from ml_backend.app import create_app
    from ml_backend.runtime import BackendRuntime
    from ml_backend.settings import BackendSettings

    os.environ[KEY_ENV] = label_studio.admin_token
    run = tmp_path_factory.mktemp("backend-run")
    cfg = load_config(overrides=[
        f"data.data_dir={data_dir}", "data.max_train_examples=200", f"run.run_dir={run}", "model.device=cpu",
        "feedback.augmenters=synonym", "feedback.copies_per_point=1", "finetune.epochs=1", "finetune.batch_size=8",
        "eval.hans_sample=30", "eval.mnli_sample=30", f"labelstudio.url={label_studio.url}",
        f"labelstudio.api_key_env={KEY_ENV}", "labelstudio.project_title=HILDIF backend test",
        "finetune.gate_max_mnli_drop=none", "finetune.gate_min_hans_gain=none",  # the gate: test_rounds_gate.py
    ])
    train = load_train(cfg.data)
    anchors = load_anchors(cfg.data)[:1]
    clf = build_tiny_classifier(list(train) + list(anchors), seed=1)
    registry = ModelRegistry(run)
    base = registry.save(clf)
    state = RoundState(cfg.run_path("rounds.sqlite"))
    probs = clf.predict(anchors)[0].tolist()
    state.create_round("b1", base, str(registry.path(base)), {"method": "paper", "n": 1}, {},
                       [RoundAnchor(anchors[0], probs)],
                       [RoundPair(anchors[0].id, train[i], i + 1, -1.0 / (i + 1)) for i in range(3)])
    client = LabelStudioClient(label_studio.url, label_studio.admin_token)
    push = push_tasks(cfg, state, "b1", client)
    project_id = push.project_id
    assert push.pushed == 3

    runtime = BackendRuntime(cfg, BackendSettings(preannotate=True))
    port = free_port()
    http = make_server("127.0.0.1", port, create_app(cfg, runtime=runtime), threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield {"cfg": cfg, "client": client, "project_id": project_id, "runtime": runtime, "state": state,
           "url": f"http://127.0.0.1:{port}", "base": base, "ls": label_studio}
    http.shutdown()
    runtime.close()


def _ls(served, method, path, **kw):
    ls = served["ls"]
    r = requests.request(method, ls.url + path, headers={"Authorization": f"Token {ls.admin_token}"}, timeout=60, **kw)
    assert r.ok, (path, r.status_code, r.text[:500])
    return r.json() if r.text else None


def test_connect_predict_webhooks_and_train(served):
    from hildif.labelstudio.convert import SCORE_CHOICES
    from hildif.model.registry import ModelRegistry

    client, pid, rt = served["client"], served["project_id"], served["runtime"]
    backend_id = client.connect_ml_backend(pid, served["url"])
    assert client.connect_ml_backend(pid, served["url"]) == backend_id  # reused, not duplicated
    assert client.ml_backend_state(backend_id)["state"] == "CO"  # connected: /health and /setup answered
    assert pid in rt.setups and rt.setups[pid]["access_token"]
    assert f"{served['url']}/webhook" in [w["url"] for w in client.webhooks(pid)]

    # Label Studio asks the backend for predictions on every task (Data Manager action)
    _ls(served, "POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}",
        json={"selectedItems": {"all": True, "excluded": []}})
    tasks = client.tasks(pid)
    assert len(tasks) == 3
    for t in tasks:
        (pred,) = t["predictions"]
        assert pred["model_version"] == served["base"]
        assert pred["result"][0]["value"]["choices"][0] in SCORE_CHOICES

    # annotations reach the backend as webhooks, answered at once
    users = [client.ensure_user(f"b{i}@hildif.test") for i in range(3)]
    t0 = time.perf_counter()
    for t, scores in zip(sorted(tasks, key=lambda t: t["id"]), ([5, 4, 5], [1, 2, 1], [3, 3, 4])):
        for user, score in zip(users, scores):
            client.annotate(t["id"], user, score)
    per_annotation = (time.perf_counter() - t0) / 9
    events = rt.kv_get(str(pid), "events") or {}
    assert events.get("ANNOTATION_CREATED") == 9, events
    print(f"mean annotation round trip including the synchronous webhook: {per_annotation * 1000:.0f} ms")

    # START_TRAINING from Label Studio queues a sync; it runs in the background and switches the served model
    client.train(backend_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not rt.jobs.list():
        time.sleep(0.2)
    (job,) = rt.jobs.list()
    assert (job["kind"], job["params"]) == ("sync", {"round_id": "b1", "project_id": pid})
    done = rt.jobs.wait(job["id"], timeout=900)
    assert done["status"] == "done", done["error"]
    assert done["result"]["status"] == "trained"
    new_version = done["result"]["version"]
    assert ModelRegistry(served["cfg"].run.run_dir).current() == new_version != served["base"]
    health = requests.get(f"{served['url']}/health", timeout=5).json()
    assert health["model_version"] == new_version
    assert new_version in requests.get(f"{served['url']}/versions", timeout=5).json()["versions"]
    scores = {r["example_id"]: r["score"] for r in served["state"].scores(done["result"]["sync_id"])}
    assert sorted(scores.values()) == [1.0, 3.0, 5.0]
    # the next prediction loads the new version once
    r = requests.post(f"{served['url']}/predict", json={"tasks": [tasks[0]]}, timeout=60).json()
    assert r["results"][0]["model_version"] == new_version and rt.service.loaded_version() == new_version
