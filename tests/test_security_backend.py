"""Security of the ML backend and the Label Studio credentials.

* With credentials configured, the backend (real gunicorn process) answers 401 to every endpoint but /health
  without them or with a wrong password, and Label Studio (the session's real server) connects with them.
* Secrets come from the environment or a file, never from command-line arguments: no CLI option takes one, and
  the secret never shows in the backend's command line, its log, its files, or an error message.
"""

from __future__ import annotations

import argparse
import os
import re
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
    from ml_backend.server import settings_from_env

    for k in ("HILDIF_BACKEND_USER", "HILDIF_BACKEND_PASSWORD", "HILDIF_BACKEND_PASSWORD_FILE"):
        monkeypatch.delenv(k, raising=False)
    assert settings_from_env().basic_auth is None
    secret_file = tmp_path / "backend_password"
    secret_file.write_text(SECRET + "\n")
    monkeypatch.setenv("HILDIF_BACKEND_USER", "ls")
    monkeypatch.setenv("HILDIF_BACKEND_PASSWORD_FILE", str(secret_file))
    assert settings_from_env().basic_auth == ("ls", SECRET)
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
    from ml_backend.server import add_serve_options

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
             ("post", "/jobs", {"kind": "sync", "params": {"round_id": "x"}})]


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

        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        assert SECRET not in cmdline and "python" in cmdline
    finally:
        stop_backend(proc)
    leaks = [p for p in [log_path, *run.rglob("*")] if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == []
    assert "401" in log_path.read_text()  # the refusals were logged (without the secret)
