"""Security of the ML backend and the Label Studio credentials.

* The HTTP API takes data, not server paths: a field naming a file (``pair_ids_file``, ``run_dir`` ...), a ``../``
  path, a symlink, a wrong type and an oversized body each get a 4xx naming the field, and a fake secret in the
  backend's environment never reaches a response, the log or the job records (real gunicorn process).
* A non-loopback bind needs basic auth or ``--insecure`` (which warns); ``--threads`` reaches gunicorn.
* A Label Studio started beyond loopback gets generated admin credentials, kept with mode 600.
* With credentials configured, the backend (real gunicorn process) answers 401 to every endpoint but /health
  without them or with a wrong password, and Label Studio (the session's real server) connects with them; its
  webhook carries a random per-project key the backend issued (rotated by connecting again).
* Secrets come from the environment or a file, never from command-line arguments: no CLI option takes one, and
  the secret never shows in the backend's command line, its log, its files, or an error message.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

import pytest
import requests

from round_env import start_backend, stop_backend

REPO = Path(__file__).resolve().parents[1]
SECRET = "s3cret-backend-Pa55-7f2c9e"
LS_KEY = "not0a0real0key0but0a0secret0all0the0same"[:40]


def _env_without_auth() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HILDIF_BACKEND_")}


# ---------------------------------------------------------------------------------------------- where secrets come from
def test_password_from_a_file_the_environment_or_a_clear_error(tmp_path, monkeypatch):
    from ml_backend.launch import settings_from_env
    from ml_backend.settings import basic_auth_from_env  # also what `round start --connect-backend` sends

    for k in ("HILDIF_BACKEND_USER", "HILDIF_BACKEND_PASSWORD", "HILDIF_BACKEND_PASSWORD_FILE"):
        monkeypatch.delenv(k, raising=False)
    assert settings_from_env().basic_auth is None
    secret_file = tmp_path / "backend_password"
    secret_file.write_text(SECRET + "\n")
    monkeypatch.setenv("HILDIF_BACKEND_USER", "ls")
    monkeypatch.setenv("HILDIF_BACKEND_PASSWORD_FILE", str(secret_file))
    assert settings_from_env().basic_auth == ("ls", SECRET) == basic_auth_from_env()
    monkeypatch.setenv("HILDIF_BACKEND_PASSWORD", "other")
    with pytest.raises(ValueError, match="not both"):
        settings_from_env()
    monkeypatch.delenv("HILDIF_BACKEND_PASSWORD")
    secret_file.write_text("\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(secret_file))}: the file is empty"):
        settings_from_env()
    monkeypatch.setenv("HILDIF_BACKEND_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="missing: cannot read it"):
        settings_from_env()
    monkeypatch.delenv("HILDIF_BACKEND_PASSWORD_FILE")
    with pytest.raises(ValueError, match="needs both"):  # a user without a password is refused, not open
        settings_from_env()


def _all_options(parser: argparse.ArgumentParser, path: str = "hildif"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_options(sub, f"{path} {name}")
        else:
            for opt in action.option_strings:
                yield path, opt


def test_no_command_line_option_takes_a_secret():
    from hildif.cli import build_parser
    from ml_backend.launch import add_serve_options

    backend = argparse.ArgumentParser()
    add_serve_options(backend)
    options = list(_all_options(build_parser())) + list(_all_options(backend, "python -m ml_backend"))
    assert any(opt == "--port" for _, opt in options)  # the walk does reach the subcommands
    offending = [(p, o) for p, o in options if re.search(r"pass|secret|token|api[-_]?key|auth", o)]
    assert offending == []


def test_label_studio_key_errors_never_echo_the_key(tmp_path, monkeypatch):
    from hildif.config import LabelStudioConfig
    from hildif.labelstudio.client import LabelStudioClient, LabelStudioError, resolve_api_key

    key_file = tmp_path / "ls_key"
    key_file.write_text(LS_KEY + "\n")
    monkeypatch.delenv("HILDIF_SECURITY_NO_SUCH_ENV", raising=False)
    cfg = LabelStudioConfig(api_key_env="HILDIF_SECURITY_NO_SUCH_ENV", api_key_file=str(key_file))
    assert resolve_api_key(cfg) == LS_KEY
    # a server that is not there, and one that refuses the key: neither message contains the key
    from hildif.labelstudio.server import free_port

    with pytest.raises(LabelStudioError) as down:
        LabelStudioClient(f"http://127.0.0.1:{free_port()}", LS_KEY, timeout=3).check()
    assert LS_KEY not in str(down.value)


@pytest.mark.labelstudio
def test_wrong_label_studio_key_is_a_clear_error_without_the_key(label_studio):
    from hildif.labelstudio.client import LabelStudioClient, LabelStudioError

    with pytest.raises(LabelStudioError, match="HTTP 401") as refused:
        LabelStudioClient(label_studio.url, LS_KEY).check()
    assert LS_KEY not in str(refused.value) and LS_KEY not in repr(refused.value.__cause__)


# ---------------------------------------------------------------------------------------------- the running backend
@pytest.fixture()
def tiny_run(tmp_path, mnli_train_sample):
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier

    run = tmp_path / "run"
    version = ModelRegistry(run).save(build_tiny_classifier(mnli_train_sample[:200], seed=0))
    return run, version


PROTECTED = [("get", "/versions", None), ("get", "/jobs", None), ("get", "/jobs/abc", None),
             ("post", "/setup", {"project": "1.1", "schema": "<View/>"}),
             ("post", "/predict", {"tasks": [{"id": 1, "data": {}}]}),
             ("post", "/webhook", {"action": "START_TRAINING", "project": {"id": 1}}),
             ("post", "/jobs", {"kind": "sync", "params": {"round_id": "x"}}), ("post", "/webhook-keys", {"project": 1})]


@pytest.mark.integration
@pytest.mark.labelstudio
def test_backend_with_credentials_refuses_anonymous_requests_and_keeps_the_secret_out(tiny_run, tmp_path, label_studio):
    from hildif.labelstudio.client import LabelStudioClient, LabelStudioError
    from ml_backend.jobs import JobQueue

    run, version = tiny_run
    secret_file = tmp_path / "secrets" / "backend_password"
    secret_file.parent.mkdir()
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    env = {**_env_without_auth(), "HILDIF_BACKEND_USER": "labelstudio", "HILDIF_BACKEND_PASSWORD_FILE": str(secret_file)}
    log_path = tmp_path / "backend.log"
    proc, url = start_backend(run, env, log_path)
    try:
        assert requests.get(f"{url}/health", timeout=5).json()["model_version"] == version  # open: LS probes it
        for method, path, body in PROTECTED:
            for auth in (None, ("labelstudio", "wrong"), ("intruder", SECRET)):
                r = requests.request(method, url + path, json=body, auth=auth, timeout=10)
                assert r.status_code == 401, (method, path, auth, r.status_code)
                assert r.headers.get("WWW-Authenticate", "").startswith("Basic")
        assert JobQueue(run / "backend.sqlite", {}).list() == []  # nothing anonymous was queued
        good = ("labelstudio", SECRET)
        assert requests.get(f"{url}/versions", auth=good, timeout=10).json()["current"] == version
        assert requests.post(f"{url}/predict", json=PROTECTED[4][2], auth=good, timeout=30).status_code == 200

        # Label Studio connects with the pair and is refused without it
        client = LabelStudioClient(label_studio.url, label_studio.admin_token)
        from hildif.labelstudio.convert import load_label_config

        pid = client.ensure_project("HILDIF security test", load_label_config(), 1)
        with pytest.raises(LabelStudioError):
            client.connect_ml_backend(pid, url, basic_auth=("labelstudio", "wrong"))
        backend_id = client.connect_ml_backend(pid, url, basic_auth=("labelstudio", SECRET))
        assert client.ml_backend_state(backend_id)["state"] in ("CO", "connected", "Connected")

        # Label Studio's webhook carries the project's key, issued by the backend: random, not derived from the
        # password; connecting again rotates it (the old key stops working, the webhook gets the new one)
        from hildif.labelstudio.webhook import WEBHOOK_SECRET_HEADER

        def hook_key() -> str:
            (hook,) = [w for w in client.webhooks(pid) if w["url"].rstrip("/") == f"{url}/webhook"]
            assert set(hook["headers"]) == {WEBHOOK_SECRET_HEADER}
            return hook["headers"][WEBHOOK_SECRET_HEADER]

        old_key = hook_key()
        assert len(old_key) >= 40 and SECRET not in old_key
        assert client.connect_ml_backend(pid, url, basic_auth=("labelstudio", SECRET)) == backend_id  # idempotent
        assert len([w for w in client.webhooks(pid) if w["url"].rstrip("/") == f"{url}/webhook"]) == 1
        assert hook_key() != old_key
        event = {"action": "ANNOTATION_CREATED", "project": {"id": pid}}
        assert requests.post(f"{url}/webhook", json=event, headers={WEBHOOK_SECRET_HEADER: old_key},
                             timeout=10).status_code == 401
        before = requests.get(f"{url}/health", timeout=5).json()["webhooks"]
        from hildif.data.example import Example
        from hildif.labelstudio.convert import task_payload

        payload = task_payload("sec", Example("a1", "A man sleeps .", "A man rests .", 0), [0.6, 0.4],
                               Example("e1", "A cat sat .", "A cat is sitting .", 0), 1, -0.5)
        (task_id,) = client.import_tasks(pid, [payload])
        client.annotate(task_id, client.ensure_user("sec1@hildif.test"), 4)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            after = requests.get(f"{url}/health", timeout=5).json()["webhooks"]
            if after["accepted"] > before["accepted"]:
                break
            time.sleep(0.2)
        assert after["accepted"] > before["accepted"] and after["refused"] == before["refused"], (before, after)

        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        assert SECRET not in cmdline and "python" in cmdline
    finally:
        stop_backend(proc)
    leaks = [p for p in [log_path, *run.rglob("*")] if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == []
    assert "401" in log_path.read_text()  # the refusals were logged (without the secret)


# ---------------------------------------------------------------------------------------------- data, not paths
FILE_FIELDS = [  # (request body, the field the answer must name)
    ({"kind": "start", "params": {"round_id": "x", "selection": {"method": "pairids",
                                                                 "pair_ids_file": "/proc/self/environ"}}},
     "params.selection.pair_ids_file"),
    ({"kind": "start", "params": {"round_id": "x", "selection": {"method": "pairids",
                                                                 "pair_ids_file": "../../../../etc/passwd"}}},
     "params.selection.pair_ids_file"),
    ({"kind": "start", "params": {"round_id": "x", "selection": {"method": "pairids", "anchors_file": "a.jsonl"}}},
     "params.selection.anchors_file"),
    ({"kind": "sync", "params": {"round_id": "x", "run_dir": "/"}}, "params.run_dir"),
    ({"kind": "sync", "params": {"round_id": "x", "config": "/etc/passwd"}}, "params.config"),
    ({"kind": "start", "params": {"round_id": "x", "selection": {"method": "pairids", "pair_ids": ["../../etc/passwd"]}}},
     "params.selection.pair_ids[0]"),
    ({"kind": "start", "params": {"round_id": "../x", "selection": {"method": "paper"}}}, "params.round_id"),
    ({"kind": "start", "params": {"round_id": "x", "selection": {"method": "random", "n": "5"}}},
     "params.selection.n"),
    ({"kind": "start", "params": {"round_id": "x", "selection": {"method": "pairids", "pair_ids": "53088c"}}},
     "params.selection.pair_ids"),
    ({"kind": "start", "params": {"round_id": "x", "selection": {"method": "pairids"}}}, "params.selection.pair_ids"),
    ({"kind": "sync", "params": {"round_id": "x", "project_id": True}}, "params.project_id"),
    ({"kind": "sync", "params": {"round_id": "x", "surprise": 1}}, "params.surprise"),
    ({"kind": ["sync"]}, "kind"),
]


def _secret_env(run: Path) -> dict[str, str]:
    """The backend's environment: basic auth and a Label Studio key, both the fake secret."""
    return {**_env_without_auth(), "HILDIF_BACKEND_USER": "labelstudio", "HILDIF_BACKEND_PASSWORD": SECRET,
            "LABEL_STUDIO_API_KEY": SECRET, "HILDIF_SECURITY_CANARY": SECRET}


@pytest.mark.integration
def test_job_api_takes_data_not_paths_and_never_leaks_the_environment(tiny_run, tmp_path):
    run, version = tiny_run
    link = tmp_path / "innocent.txt"
    link.symlink_to("/proc/self/environ")  # a symlink to the backend's environment
    cases = FILE_FIELDS + [
        ({"kind": "start", "params": {"round_id": "x", "selection": {"method": "pairids", "pair_ids_file": str(link)}}},
         "params.selection.pair_ids_file"),
    ]
    log_path = tmp_path / "backend.log"
    proc, url = start_backend(run, _secret_env(run), log_path)
    auth = ("labelstudio", SECRET)
    answers = []
    try:
        for body, field in cases:
            r = requests.post(f"{url}/jobs", json=body, auth=auth, timeout=60)
            answers.append(r.text)
            assert r.status_code == 400, (body, r.status_code, r.text)
            assert r.json()["field"] == field and r.json()["error"].startswith(field + ":"), (body, r.json())
        # an oversized body: 413 naming the body, before anything is parsed
        big = requests.post(f"{url}/jobs", data=b'{"kind": "sync", "pad": "' + b"x" * (5 * 1024 * 1024) + b'"}',
                            headers={"Content-Type": "application/json"}, auth=auth, timeout=120)
        assert big.status_code == 413 and big.json()["field"] == "body"
        notjson = requests.post(f"{url}/jobs", data=b"\x00\xff", auth=auth, timeout=60)
        assert notjson.status_code == 400 and notjson.json()["field"] == "body"
        answers += [big.text, notjson.text]

        # pair IDs travel as data; unknown ones fail the job with the IDs sent (caller data), nothing else
        r = requests.post(f"{url}/jobs", auth=auth, timeout=60, json={
            "kind": "start", "params": {"round_id": "sec1", "selection": {"method": "pairids", "pair_ids": ["nope1"]}}})
        assert r.status_code == 202, r.text
        job = _wait_job(url, auth, r.json()["job_id"])
        assert job["status"] == "failed" and job["error"].startswith("AnchorSelectionError: pairIDs not found"), job
        assert "nope1" in job["error"]
        answers.append(json.dumps(job))
        sync = requests.post(f"{url}/jobs", json={"kind": "sync", "params": {"round_id": "nope"}}, auth=auth, timeout=60)
        answers.append(json.dumps(_wait_job(url, auth, sync.json()["job_id"])))
        answers.append(requests.get(f"{url}/jobs", auth=auth, timeout=60).text)
        answers.append(requests.get(f"{url}/health", timeout=60).text)
    finally:
        stop_backend(proc)
    for text in answers:
        assert SECRET not in text and "root:x:0:0" not in text and "HILDIF_SECURITY_CANARY" not in text
    leaks = [p for p in [log_path, *run.rglob("*")] if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == []
    assert "HILDIF_SECURITY_CANARY" not in log_path.read_text()


def _wait_job(url: str, auth, job_id: str, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/jobs/{job_id}", auth=auth, timeout=60).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.3)
    pytest.fail(f"job {job_id} did not finish")


def test_a_queued_job_naming_a_file_fails_on_the_field_without_reading_it(tiny_run, tmp_path):
    """A row queued by an older backend (which took paths) is checked again when it runs: it fails naming the
    field, and neither the file's content nor the exception text of anything unexpected is stored."""
    from hildif.config import load_config
    from ml_backend.runtime import BackendRuntime

    run, _ = tiny_run
    secret_file = tmp_path / "ids.txt"
    secret_file.write_text(SECRET + "\n")
    rt = BackendRuntime(load_config(overrides=[f"run.run_dir={run}", "model.device=cpu"]))
    try:
        job_id, _ = rt.jobs.submit("start", {"round_id": "x", "selection": {"method": "pairids",
                                                                            "pair_ids_file": str(secret_file)}})
        job = rt.jobs.wait(job_id, timeout=60)
        rt.jobs.handlers["boom"] = lambda p: (_ for _ in ()).throw(OSError(f"cannot parse {SECRET}"))
        boom = rt.jobs.wait(rt.jobs.submit("boom")[0], timeout=60)
    finally:
        rt.close()
    assert job["status"] == "failed" and job["error"].startswith("FieldError: params.selection.pair_ids_file: names")
    assert boom["status"] == "failed" and boom["error"].startswith("OSError: unexpected error in the boom job")
    assert SECRET not in json.dumps(job) + json.dumps(boom)


def test_an_ids_file_error_names_lines_without_quoting_them(tmp_path):
    from hildif.data.example import Example
    from hildif.influence.anchors import AnchorSelectionError, PairIdAnchors, select_anchors

    ids = tmp_path / "ids.txt"
    ids.write_text("# header\nroot:x:0:0:root:/root:/bin/bash\nok1\nLABEL_STUDIO_API_KEY=" + SECRET + "\n")
    pool = [Example("ok1", "p", "h", 0)]
    with pytest.raises(AnchorSelectionError) as err:
        select_anchors(PairIdAnchors(ids_file=str(ids)), pool)
    message = str(err.value)
    assert "line(s) 2, 4" in message and str(ids) in message
    assert "root:x" not in message and SECRET not in message
    with pytest.raises(AnchorSelectionError, match="pairIDs not found in the pool: nope"):
        select_anchors(PairIdAnchors(("nope",)), pool)  # IDs sent as data are the caller's own: named


# ---------------------------------------------------------------------------------------------- exposure
def test_non_loopback_needs_auth_or_insecure(monkeypatch, capsys, tmp_path):
    """``serve`` refuses 0.0.0.0 without auth; with --insecure it warns and hands gunicorn the bind and --threads.
    gunicorn's ``run`` is replaced by a recorder here: the test suite binds 127.0.0.1 only."""
    from gunicorn.app.base import BaseApplication

    from ml_backend import launch
    from ml_backend.settings import ExposureError, check_exposure

    for k in ("HILDIF_BACKEND_USER", "HILDIF_BACKEND_PASSWORD", "HILDIF_BACKEND_PASSWORD_FILE"):
        monkeypatch.delenv(k, raising=False)
    parser = argparse.ArgumentParser()
    launch.add_serve_options(parser)
    for host in ("0.0.0.0", "::", "192.168.1.20", "backend.example.org"):
        with pytest.raises(ExposureError, match=f"refusing to serve on {re.escape(host)} without authentication"):
            check_exposure(launch.settings_from_args(parser.parse_args(["--host", host])))
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1"):
        assert check_exposure(launch.settings_from_args(parser.parse_args(["--host", host]))) is None
    assert launch.main(["--host", "0.0.0.0", "--run-dir", str(tmp_path / "run")]) == 2
    assert "refusing to serve on 0.0.0.0" in capsys.readouterr().err

    seen = {}

    def record(app):
        app.load_config()
        seen.update(bind=app.cfg.bind, threads=app.cfg.threads, worker=app.cfg.worker_class_str)

    monkeypatch.setattr(BaseApplication, "run", record)
    assert launch.main(["--host", "0.0.0.0", "--port", "9999", "--insecure", "--threads", "3",
                        "--run-dir", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "0.0.0.0 WITHOUT authentication (--insecure)" in err
    assert seen == {"bind": ["0.0.0.0:9999"], "threads": 3, "worker": "ml_backend.worker.SplitPoolWorker"}
    monkeypatch.setenv("HILDIF_BACKEND_USER", "u")
    monkeypatch.setenv("HILDIF_BACKEND_PASSWORD", "p")
    assert check_exposure(launch.settings_from_args(parser.parse_args(["--host", "0.0.0.0"]))) is None


# ---------------------------------------------------------------------------------------------- Label Studio credentials
def test_label_studio_beyond_loopback_gets_generated_credentials(tmp_path):
    from hildif.labelstudio.server import (
        CREDENTIALS_FILE, LOCAL_ADMIN_PASSWORD, LOCAL_ADMIN_TOKEN, LabelStudioServer, LabelStudioServerError,
    )

    local = LabelStudioServer(tmp_path / "local")
    assert (local.admin_password, local.admin_token) == (LOCAL_ADMIN_PASSWORD, LOCAL_ADMIN_TOKEN)
    assert not (tmp_path / "local" / CREDENTIALS_FILE).exists()

    shared = LabelStudioServer(tmp_path / "shared", host="0.0.0.0")
    creds = tmp_path / "shared" / CREDENTIALS_FILE
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    stored = json.loads(creds.read_text())
    assert (shared.admin_password, shared.admin_token) == (stored["password"], stored["token"])
    assert LOCAL_ADMIN_PASSWORD not in (shared.admin_password,) and shared.admin_token != LOCAL_ADMIN_TOKEN
    assert len(shared.admin_token) == 40 and len(shared.admin_password) >= 20
    env = shared.environment()
    assert env["LABEL_STUDIO_PASSWORD"] == stored["password"] and env["LABEL_STUDIO_USER_TOKEN"] == stored["token"]
    assert shared._announce and stored["password"] in shared._announce  # printed once, when started
    again = LabelStudioServer(tmp_path / "shared", host="0.0.0.0")  # the same folder keeps its credentials
    assert (again.admin_password, again.admin_token) == (shared.admin_password, shared.admin_token)
    assert again._announce is None
    other = LabelStudioServer(tmp_path / "other", host="10.1.2.3")
    assert other.admin_token != shared.admin_token

    # a folder whose database was made with the fixed local credentials is refused beyond loopback
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "label_studio.sqlite3").write_bytes(b"")
    with pytest.raises(LabelStudioServerError, match="fixed local admin credentials"):
        LabelStudioServer(tmp_path / "old", host="0.0.0.0")
