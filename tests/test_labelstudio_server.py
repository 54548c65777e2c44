"""The local Label Studio manager and the SDK client against the real server (session fixture)."""

from __future__ import annotations

import socket

import pytest
import requests

from hildif.labelstudio.server import LabelStudioServer, LabelStudioServerError, find_label_studio_bin, port_is_free


def test_a_busy_port_is_refused_before_starting(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert not port_is_free(port)
        with pytest.raises(LabelStudioServerError, match=f"port 127.0.0.1:{port} is busy"):
            LabelStudioServer(tmp_path / "ls", port=port).start()
    assert not (tmp_path / "ls").exists()  # nothing was started or written


def test_missing_executable_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("HILDIF_LABEL_STUDIO_BIN", str(tmp_path / "nope"))
    monkeypatch.delenv("HILDIF_LS_VENV", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("hildif.labelstudio.server.REPO_ROOT", tmp_path)
    with pytest.raises(LabelStudioServerError, match=r"pip install label-studio==1\.23\.2"):
        find_label_studio_bin()
    with pytest.raises(LabelStudioServerError, match="at most 40"):
        LabelStudioServer(tmp_path, admin_token="x" * 41)


@pytest.mark.labelstudio
def test_server_environment_and_client_basics(label_studio):
    from hildif.labelstudio.client import LabelStudioClient, LabelStudioError
    from hildif.labelstudio.convert import load_label_config

    env = label_studio.environment()
    assert env["LABEL_STUDIO_LATEST_VERSION_CHECK"] == "false" and env["SENTRY_DSN"] == ""
    assert not {"USERNAME", "PASSWORD", "PORT", "HOST", "USER_TOKEN"} & set(env)
    assert env["HOME"] == env["LABEL_STUDIO_BASE_DATA_DIR"] == str(label_studio.data_dir)
    assert requests.get(f"{label_studio.url}/health", timeout=5).json() == {"status": "UP"}

    client = LabelStudioClient(label_studio.url, label_studio.admin_token)
    assert client.check()["email"] == label_studio.admin_email
    pid = client.ensure_project("HILDIF server test", load_label_config(), 2)
    assert client.ensure_project("HILDIF server test", load_label_config(), 3) == pid  # reused, overlap updated
    assert client.sdk.projects.get(id=pid).maximum_annotations == 3
    uid = client.ensure_user("server-test@hildif.test")
    assert client.ensure_user("server-test@hildif.test") == uid
    with pytest.raises(LabelStudioError, match="HTTP 401"):
        LabelStudioClient(label_studio.url, "wrong-token").check()
    with pytest.raises(LabelStudioError, match="at least 3 characters"):
        client.ensure_project("ab", load_label_config(), 1)
