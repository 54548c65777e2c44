"""The ML backend serving a team's own text-classification project.

Against a real Label Studio (marker ``labelstudio``): the backend connected to a five-class genre project (one text,
:func:`own_project_env.build_genre_project`) with a tiny model trained briefly on genre examples returns one
``choices`` prediction per task in the project's own tags, with a score, visible through Label Studio's API; a
project whose config is not text classification (image boxes) is refused at connect time with the reason; a burst of
annotation webhooks queues one debounced ``train`` job, which "Start training" runs at once.

Without Label Studio (Flask's test client): /setup and /predict on hostile payloads (missing data keys, non-string
texts, huge task lists, a model whose labels are not the project's), the webhook decisions and the job schedule.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
import requests
from own_project_env import GENRE_CONFIG, GENRES, SOURCE, build_genre_project, genre_rows

IMAGE_CONFIG = """<View>
  <Image name="photo" value="$image"/>
  <RectangleLabels name="box" toName="photo"><Label value="Car"/><Label value="Person"/></RectangleLabels>
  <Header value="UNIQUE-MARKER-7f3a"/>
</View>"""
PAIR_CONFIG = """<View>
  <Text name="p" value="$premise"/><Text name="h" value="$hypothesis"/>
  <Choices name="nli" toName="p" choice="single-radio"><Choice value="entailment"/><Choice value="non-entailment"/>
  </Choices>
</View>"""
KEY_ENV = "HILDIF_TEST_LS_KEY_OWN_PROJECT"


@pytest.fixture(scope="module")
def genre_data(data_dir):
    from hildif.config import DataConfig, TaskConfig
    from hildif.tasks import TaskDefinition, load_task

    cfg = TaskConfig(source="files", name="mnli-genre", files=[SOURCE], text="sentence1", label="genre",
                     heldout_fraction=0.1, max_examples=400)
    return load_task(TaskDefinition.from_config(cfg), DataConfig(data_dir=str(data_dir)))


@pytest.fixture(scope="module")
def genre_model(genre_data):
    """A tiny BERT with the genre label names, trained briefly on genre examples (its labels are what matters)."""
    from hildif.config import LoopConfig
    from hildif.model.tiny import build_tiny_classifier
    from hildif.model.training import train

    data = genre_data
    clf = build_tiny_classifier(data.train + data.heldout, num_labels=5, label_names=data.task.labels, seed=0)
    train(clf, data.train, LoopConfig(learning_rate=5e-3, max_steps=10, batch_size=32, seed=0), progress=False)
    assert clf.label_names == GENRES
    return clf


def _config(run, *extra):
    from hildif.config import load_config

    return load_config(overrides=[f"run.run_dir={run}", "model.device=cpu", f"labelstudio.api_key_env={KEY_ENV}",
                                  *extra])


# ---------------------------------------------------------------------------------------------- Flask test client
@pytest.fixture()
def app(tmp_path, genre_model):
    """A factory of (test client, runtime) over a run whose served model is the genre model. The job thread is not
    started: these tests look at what is queued and when, not at training (the Label Studio test below runs it)."""
    from hildif.model.registry import ModelRegistry
    from ml_backend.app import create_app
    from ml_backend.runtime import BackendRuntime
    from ml_backend.settings import BackendSettings

    cfg = _config(tmp_path / "run")
    version = ModelRegistry(cfg.run.run_dir).save(genre_model)
    runtimes = []

    def make(**settings):
        rt = BackendRuntime(cfg, BackendSettings(**settings), start_jobs=False)
        runtimes.append(rt)
        return create_app(cfg, runtime=rt).test_client(), rt

    yield make, version
    for rt in runtimes:
        rt.close()


def _predict(client, tasks, config=GENRE_CONFIG, project="11.1700000000"):
    r = client.post("/predict", json={"tasks": tasks, "project": project, "label_config": config})
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    return r.get_json()["results"]


def test_setup_accepts_text_classification_and_refuses_other_configs_naming_what_is_missing(app):
    make, version = app
    client, rt = make()
    ok = client.post("/setup", json={"project": "11.1700000000", "schema": GENRE_CONFIG, "access_token": "tok"})
    assert ok.status_code == 200 and ok.get_json() == {"model_version": version}
    assert rt.kv_get("11", "label_config") == GENRE_CONFIG
    bad = client.post("/setup", json={"project": "12.1700000000", "schema": IMAGE_CONFIG, "access_token": "tok"})
    assert bad.status_code == 400
    body = bad.get_json()
    assert body["field"] == "schema" and "hildif cannot serve this project" in body["error"]
    assert "no single-choice <Choices>" in body["error"]
    # Label Studio shows only the status line of a failed /setup: the reason travels there too, in ASCII
    assert "hildif cannot serve this project" in bad.status and "<Choices>" in bad.status
    assert "UNIQUE-MARKER-7f3a" not in bad.get_data(as_text=True) + bad.status  # the config is never echoed
    assert rt.kv_get("12", "label_config") is None and 12 not in rt.setups
    for hostile, what in (("<View><Text name='t' value='$t'/>", "not valid XML"),
                          ("<!DOCTYPE x [<!ENTITY a 'b'>]><View/>", "DTD"),
                          (GENRE_CONFIG.replace("single-radio", "multiple"), "multi-label"),
                          ("<View><Choices name='c' toName='x'><Choice value='a'/><Choice value='b'/></Choices>"
                           "</View>", "no <Text")):
        r = client.post("/setup", json={"project": "13.1", "schema": hostile})
        assert r.status_code == 400 and what in r.get_json()["error"], (what, r.get_json())
    three = ("<View><Text name='a' value='$a'/><Text name='b' value='$b'/><Text name='c' value='$c'/>"
             "<Choices name='k' toName='a,b,c'><Choice value='x'/><Choice value='y'/></Choices></View>")
    r = client.post("/setup", json={"project": "13.1", "schema": three})
    assert r.status_code == 400 and "one text or a pair" in r.get_json()["error"]
    assert client.post("/setup", json={"project": "13.1", "schema": 5}).status_code == 400


def test_predict_answers_each_task_in_the_projects_tags_and_survives_hostile_task_data(app, genre_data):
    make, version = app
    client, rt = make()
    texts = [e.premise for e in genre_data.heldout[:3]]
    tasks = [{"id": 1, "data": {"text": texts[0]}},
             {"id": 2, "data": {"other": texts[1]}},  # the config's key is missing
             {"id": 3, "data": {"text": 42}},  # not a string
             {"id": 4, "data": {"text": ["a", "list"]}},
             {"id": 5, "data": {"text": "   "}},  # empty
             {"id": 6, "data": {"text": {"nested": "object"}}},
             {"id": 7},  # no data at all
             {"id": 8, "data": {"text": texts[2] + " word" * 3000}},  # long: truncated by the tokenizer
             {"id": 9, "data": {"text": texts[1], "extra": None}}]
    results = _predict(client, tasks)
    assert len(results) == len(tasks)
    for i, pred in enumerate(results):
        assert pred["model_version"] == version
        if tasks[i]["id"] in (2, 3, 4, 5, 6, 7):
            assert pred == {"result": [], "score": 0.0, "model_version": version}
            continue
        (item,) = pred["result"]
        assert (item["from_name"], item["to_name"], item["type"]) == ("genre", "passage", "choices")
        assert item["value"]["choices"][0] in GENRES
        assert 1 / len(GENRES) <= pred["score"] <= 1.0  # the probability of the most probable label
    # the score is the model's probability of that label
    probs = rt.service.classify([(texts[0], None)]).probs[0]
    assert results[0]["score"] == pytest.approx(float(probs.max()), abs=1e-4)
    assert results[0]["result"][0]["value"]["choices"][0] == GENRES[int(probs.argmax())]
    # the body's shape is checked before anything is predicted
    for body, field in (({"tasks": [{"id": 1, "data": "text"}]}, "tasks[0].data"), ({"tasks": ["x"]}, "tasks[0]"),
                        ({"tasks": [{"id": i, "data": {"text": "a"}} for i in range(1001)]}, "tasks"),
                        ({"tasks": [], "label_config": 7}, "label_config")):
        r = client.post("/predict", json={**body, "project": "11.1"})
        assert r.status_code == 400 and r.get_json()["field"] == field, (field, r.get_json())
    # a text over the per-text limit is refused before the model sees it (it held the inference lock for seconds)
    from ml_backend.schema import MAX_TASK_TEXT_CHARS

    r = client.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "w " * MAX_TASK_TEXT_CHARS}}]})
    assert r.status_code == 413 and r.get_json()["field"] == "tasks[0].data.text", r.get_json()
    assert _predict(client, []) == []
    # a config /setup would refuse is refused at /predict too, naming the field
    r = client.post("/predict", json={"tasks": tasks[:1], "label_config": IMAGE_CONFIG})
    assert r.status_code == 400 and r.get_json()["field"] == "label_config"


def test_predict_uses_the_config_stored_at_setup_and_serves_a_pair_project(app, tmp_path, mnli_train_sample):
    make, version = app
    client, _ = make()
    client.post("/setup", json={"project": "21.1", "schema": GENRE_CONFIG})
    r = client.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "The hotel is near the beach."}}],
                                      "project": "21.1"}).get_json()["results"]
    assert r[0]["result"][0]["from_name"] == "genre"
    # a pair project served by a model with its two labels reads both texts
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier
    from ml_backend.app import create_app
    from ml_backend.runtime import BackendRuntime

    cfg = _config(tmp_path / "pair-run")
    pair_version = ModelRegistry(cfg.run.run_dir).save(build_tiny_classifier(mnli_train_sample[:100], seed=0))
    rt = BackendRuntime(cfg, start_jobs=False)
    try:
        pair = create_app(cfg, runtime=rt).test_client()
        ex = mnli_train_sample[0]
        (pred, missing) = _predict(pair, [{"id": 1, "data": {"premise": ex.premise, "hypothesis": ex.hypothesis}},
                                          {"id": 2, "data": {"premise": ex.premise}}], PAIR_CONFIG)
        probs = rt.service.classify([(ex.premise, ex.hypothesis)]).probs[0]
        assert pred["result"][0]["from_name"] == "nli" and pred["result"][0]["to_name"] == "p"
        assert pred["result"][0]["value"]["choices"] == [("non-entailment", "entailment")[int(probs.argmax())]]
        assert pred["score"] == pytest.approx(float(probs.max()), abs=1e-4) and pred["model_version"] == pair_version
        assert missing["result"] == []  # the second text is missing
    finally:
        rt.close()


def test_a_model_whose_labels_are_not_the_projects_gives_empty_predictions_and_one_warning(
        tmp_path, mnli_train_sample, caplog):
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier
    from ml_backend.app import create_app
    from ml_backend.runtime import BackendRuntime

    cfg = _config(tmp_path / "run")
    version = ModelRegistry(cfg.run.run_dir).save(build_tiny_classifier(mnli_train_sample[:100], seed=0))
    rt = BackendRuntime(cfg, start_jobs=False)
    try:
        client = create_app(cfg, runtime=rt).test_client()
        tasks = [{"id": i, "data": {"text": "Some passage."}} for i in range(3)]
        with caplog.at_level(logging.WARNING, logger="ml_backend.runtime"):
            for _ in range(3):
                assert _predict(client, tasks) == [{"result": [], "score": 0.0, "model_version": version}] * 3
        warnings = [r.getMessage() for r in caplog.records if "predictions are empty" in r.getMessage()]
        assert len(warnings) == 1, warnings  # once per project and model version, not per request
        assert "project 11" in warnings[0] and "non-entailment, entailment" in warnings[0]
        assert "fiction, government, slate, telephone, travel" in warnings[0] and "Start training" in warnings[0]
        # hildif's rating projects keep today's behaviour: empty without --preannotate
        from hildif.labelstudio.convert import load_label_config

        assert _predict(client, tasks, load_label_config())[0]["result"] == []
    finally:
        rt.close()


def test_webhooks_queue_one_debounced_train_job_and_start_training_runs_it_now(app, monkeypatch):
    make, _ = app
    monkeypatch.delenv(KEY_ENV, raising=False)
    project = {"id": 11, "label_config": GENRE_CONFIG}
    # off by default: annotations are only noted
    client, rt = make()
    client.post("/setup", json={"project": "11.1", "schema": GENRE_CONFIG, "access_token": "tok"})
    r = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": project, "annotation": {"id": 1}})
    assert r.status_code == 201 and r.get_json() == {"status": "noted", "event": "ANNOTATION_CREATED"}
    assert rt.jobs.list() == []

    client, rt = make(retrain_on_annotations=True, retrain_debounce_s=600)
    client.post("/setup", json={"project": "11.1", "schema": GENRE_CONFIG, "access_token": "tok"})
    t0 = time.time()
    answers = [client.post("/webhook", json={"action": action, "project": project, "annotation": {"id": i}})
               for i, action in enumerate(["ANNOTATION_CREATED"] * 4 + ["ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"])]
    assert all(a.status_code == 201 for a in answers)
    trains = [a.get_json()["train"] for a in answers]
    assert [t["status"] for t in trains] == ["queued"] + ["already queued"] * 5
    (job,) = rt.jobs.list()  # the burst collapsed into one job
    assert {t["job_id"] for t in trains} == {job["id"]}
    assert (job["kind"], job["params"], job["status"]) == ("train", {"project_id": 11}, "queued")
    assert t0 + 600 <= job["not_before"] <= time.time() + 600  # due a debounce after the first event
    assert rt.jobs._claim() is None  # not due yet
    # an event of a project hildif cannot train (its rating config) queues nothing
    from hildif.labelstudio.convert import load_label_config

    r = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "annotation": {"id": 9},
                                      "project": {"id": 12, "label_config": load_label_config()}})
    assert r.get_json() == {"status": "noted", "event": "ANNOTATION_CREATED"} and len(rt.jobs.list()) == 1

    # "Start training" runs the same job now instead of queueing a second one
    r = client.post("/webhook", json={"action": "START_TRAINING", "project": project})
    assert r.status_code == 201
    assert r.get_json() == {"status": "already queued", "job_id": job["id"], "kind": "train", "project_id": 11,
                            "not_before": None}
    assert len(rt.jobs.list()) == 1 and rt.jobs._claim()["id"] == job["id"]
    # while it runs, a new event queues the next one (the running job may have read the tasks already)
    r = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": project, "annotation": {"id": 10}})
    assert r.get_json()["train"]["status"] == "queued" and r.get_json()["train"]["job_id"] != job["id"]
    # the same job through the API
    r = client.post("/jobs", json={"kind": "train", "params": {"project_id": 11}})
    assert r.status_code == 202 and r.get_json()["created"] is False
    assert client.post("/jobs", json={"kind": "train", "params": {"project_id": "11"}}).status_code == 400


def test_start_training_says_why_when_nothing_can_be_done(app, monkeypatch):
    from hildif.labelstudio.convert import load_label_config

    make, _ = app
    monkeypatch.delenv(KEY_ENV, raising=False)
    client, rt = make()
    cases = [
        ({"action": "START_TRAINING"}, "without a project id"),
        ({"action": "START_TRAINING", "project": {"id": 5}}, "does not know Label Studio project 5's label config"),
        ({"action": "START_TRAINING", "project": {"id": 5, "label_config": IMAGE_CONFIG}}, "no single-choice"),
        ({"action": "START_TRAINING", "project": {"id": 5, "label_config": load_label_config()}},
         "no hildif round uses Label Studio project 5"),
        ({"action": "START_TRAINING", "project": {"id": 5, "label_config": GENRE_CONFIG}}, f"${KEY_ENV}"),
    ]
    for body, reason in cases:
        r = client.post("/webhook", json=body)
        assert r.status_code == 422 and r.get_json()["status"] == "refused", (reason, r.get_json())
        assert reason in r.get_json()["reason"] and reason in r.status, (reason, r.status)
        assert "UNIQUE-MARKER-7f3a" not in r.get_data(as_text=True) + r.status
    assert rt.jobs.list() == []
    monkeypatch.setenv(KEY_ENV, "a-key")  # with a configured key the job can reach Label Studio: queued
    r = client.post("/webhook", json=cases[-1][0])
    assert r.status_code == 201 and r.get_json()["status"] == "queued"


def test_retraining_settings_from_the_environment(monkeypatch):
    from ml_backend.launch import settings_from_env
    from ml_backend.settings import RETRAIN_DEBOUNCE_ENV, RETRAIN_ENV, SettingsError

    for name in ("HILDIF_BACKEND_USER", "HILDIF_BACKEND_PASSWORD", "HILDIF_BACKEND_PASSWORD_FILE", RETRAIN_ENV,
                 RETRAIN_DEBOUNCE_ENV):
        monkeypatch.delenv(name, raising=False)
    s = settings_from_env()
    assert (s.retrain_on_annotations, s.retrain_debounce_s) == (False, 60.0)
    monkeypatch.setenv(RETRAIN_ENV, "yes")
    monkeypatch.setenv(RETRAIN_DEBOUNCE_ENV, "2.5")
    s = settings_from_env()
    assert (s.retrain_on_annotations, s.retrain_debounce_s) == (True, 2.5)
    assert settings_from_env(retrain_on_annotations=False, retrain_debounce_s=9).retrain_debounce_s == 9
    for name, value in ((RETRAIN_DEBOUNCE_ENV, "soon"), (RETRAIN_DEBOUNCE_ENV, "-1"), (RETRAIN_DEBOUNCE_ENV, "nan"),
                        (RETRAIN_ENV, "maybe")):
        monkeypatch.setenv(RETRAIN_ENV, "1")
        monkeypatch.setenv(RETRAIN_DEBOUNCE_ENV, "1")
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError, match=f"\\${name}"):
            settings_from_env()


# ---------------------------------------------------------------------------------------------- real Label Studio
@pytest.fixture(scope="module")
def served(label_studio, tmp_path_factory, data_dir, genre_model):
    """The backend (werkzeug, in a thread) over a run serving the genre model, retraining on annotations with a
    long debounce, connected to a genre project of the real Label Studio."""
    from werkzeug.serving import make_server

    from hildif.labelstudio.client import LabelStudioClient
    from hildif.labelstudio.server import free_port
    from hildif.model.registry import ModelRegistry
    from ml_backend.app import create_app
    from ml_backend.runtime import BackendRuntime
    from ml_backend.settings import BackendSettings

    os.environ[KEY_ENV] = label_studio.admin_token
    run = tmp_path_factory.mktemp("own-project-run")
    cfg = _config(run, f"labelstudio.url={label_studio.url}", f"data.data_dir={data_dir}", "model.name_or_path=tiny",
                  "train.max_steps=5", "train.batch_size=4", "train.eval_examples=0", "task.heldout_fraction=0.0")
    base = ModelRegistry(run).save(genre_model)
    client = LabelStudioClient(label_studio.url, label_studio.admin_token)
    rows = genre_rows(data_dir, 8)
    pid, ids = build_genre_project(client, rows, title="Genre project served by hildif")
    runtime = BackendRuntime(cfg, BackendSettings(retrain_on_annotations=True, retrain_debounce_s=3600))
    port = free_port()
    http = make_server("127.0.0.1", port, create_app(cfg, runtime=runtime), threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield {"cfg": cfg, "client": client, "pid": pid, "ids": ids, "rows": rows, "runtime": runtime, "base": base,
           "url": f"http://127.0.0.1:{port}", "ls": label_studio}
    http.shutdown()
    runtime.close()
    os.environ.pop(KEY_ENV, None)


def _ls(served, method, path, **kw):
    ls = served["ls"]
    r = requests.request(method, ls.url + path, headers={"Authorization": f"Token {ls.admin_token}"}, timeout=120, **kw)
    assert r.ok, (path, r.status_code, r.text[:500])
    return r.json() if r.text else None


@pytest.mark.labelstudio
def test_connected_genre_project_gets_one_prediction_per_task_in_its_own_tags(served):
    client, pid, ids = served["client"], served["pid"], served["ids"]
    backend_id = client.connect_ml_backend(pid, served["url"])
    assert client.ml_backend_state(backend_id)["state"] == "CO"
    assert served["runtime"].kv_get(str(pid), "label_config") == GENRE_CONFIG
    _ls(served, "POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}",
        json={"selectedItems": {"all": True, "excluded": []}})
    served["backend_id"] = backend_id
    for task_id in ids:
        (pred,) = _ls(served, "GET", f"/api/predictions?task={task_id}")  # one per task, through Label Studio's API
        assert pred["model_version"] == served["base"]
        (item,) = pred["result"]
        assert (item["from_name"], item["to_name"], item["type"]) == ("genre", "passage", "choices")
        assert item["value"]["choices"][0] in GENRES
        assert 1 / len(GENRES) <= pred["score"] <= 1.0
    assert all(len(t["predictions"]) == 1 for t in client.tasks(pid))


@pytest.mark.labelstudio
def test_a_project_that_is_not_text_classification_is_refused_at_connect_with_the_reason(served):
    from hildif.labelstudio.client import LabelStudioError

    client = served["client"]
    pid = client.ensure_project("Image boxes, not text", IMAGE_CONFIG, maximum_annotations=1)
    with pytest.raises(LabelStudioError) as refused:
        client.connect_ml_backend(pid, served["url"])
    message = str(refused.value)
    print(f"Label Studio's answer to connecting the backend to an image project: {message}")
    assert "hildif cannot serve this project" in message and "no single-choice <Choices>" in message, message
    assert "UNIQUE-MARKER-7f3a" not in message
    assert list(client.sdk.ml.list(project=pid)) == []  # nothing half-connected
    assert requests.get(f"{served['url']}/health", timeout=5).json()["status"] == "UP"  # no crash


@pytest.mark.labelstudio
def test_annotation_burst_queues_one_train_job_and_start_training_runs_it(served):
    from hildif.model.registry import ModelRegistry

    client, pid, ids, rows, rt = served["client"], served["pid"], served["ids"], served["rows"], served["runtime"]
    backend_id = served.get("backend_id") or client.connect_ml_backend(pid, served["url"])
    user = client.ensure_user("annotator-late@example.org")
    t0 = time.time()
    for task_id, row in list(zip(ids, rows))[:5]:  # Label Studio sends each webhook synchronously
        client.sdk.annotations.create(id=task_id, completed_by=user, result=[
            {"from_name": "genre", "to_name": "passage", "type": "choices", "value": {"choices": [row["genre"]]}}])
    assert rt.kv_get(str(pid), "events").get("ANNOTATION_CREATED") == 5
    (job,) = rt.jobs.list()
    assert (job["kind"], job["params"], job["status"]) == ("train", {"project_id": pid}, "queued")
    assert job["not_before"] >= t0 + 3600  # debounced: waits for the burst to end
    # "Start training" in Label Studio: the same job, now
    client.train(backend_id)
    done = rt.jobs.wait(job["id"], timeout=900)
    assert [j["id"] for j in rt.jobs.list()] == [job["id"]]
    assert done["status"] == "done", done["error"]
    result = done["result"]
    assert result["labels"] == list(GENRES) and result["project_id"] == pid
    assert ModelRegistry(served["cfg"].run.run_dir).current() == result["version"] != served["base"]
    # the next predictions come from the new model, still in the project's tags
    r = requests.post(f"{served['url']}/predict", timeout=120, json={
        "tasks": [{"id": ids[0], "data": {"text": rows[0]["sentence1"]}}], "project": f"{pid}.1",
        "label_config": GENRE_CONFIG}).json()
    assert r["results"][0]["model_version"] == result["version"]
    assert r["results"][0]["result"][0]["value"]["choices"][0] in GENRES


def test_a_job_database_of_an_older_backend_gains_the_schedule_column(tmp_path):
    import sqlite3

    from ml_backend.jobs import JobQueue

    old = sqlite3.connect(tmp_path / "backend.sqlite")
    old.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT "
                "NULL, created_at REAL NOT NULL, started_at REAL, finished_at REAL, result TEXT, error TEXT)")
    old.execute("INSERT INTO jobs VALUES ('old', 'train', '{}', 'queued', 1.0, NULL, NULL, NULL, NULL)")
    old.commit()
    old.close()
    q = JobQueue(tmp_path / "backend.sqlite", {"train": lambda p: None})
    assert q.get("old")["not_before"] is None and q._claim()["id"] == "old"  # an old queued job runs as before
    later, _ = q.submit("train", {"project_id": 1}, not_before=time.time() + 3600)
    assert q._claim() is None and 3590 < q._idle_wait(longest=7200) <= 3600
    assert q.submit("train", {"project_id": 1}, not_before=time.time() + 7200) == (later, False)
    assert q.get(later)["not_before"] < time.time() + 3600  # the earlier time stays
