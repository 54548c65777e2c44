"""Annotators who can log in (hildif.labelstudio.people, ``hildif annotators``) against a real Label Studio, and the
run's recorded Label Studio (hildif.labelstudio.access)."""

from __future__ import annotations

import contextlib
import json
import re
import stat
from typing import Iterator

import httpx
import pytest

from hildif.labelstudio.access import SERVER_FILE, TOKEN_FILE, AccessError, recorded, remember, use_run_access


@contextlib.contextmanager
def log_in(url: str, email: str, password: str) -> Iterator[httpx.Client]:
    """A session logged in through Label Studio's login form, as a browser would."""
    with httpx.Client(timeout=30, follow_redirects=True) as http:
        page = http.get(f"{url}/user/login/")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        http.post(f"{url}/user/login/", data={"csrfmiddlewaretoken": csrf, "email": email, "password": password},
                  headers={"Referer": f"{url}/user/login/"})
        yield http


@pytest.mark.labelstudio
def test_added_annotators_log_in_with_their_own_accounts_in_the_organization(label_studio):
    from hildif.labelstudio.client import LabelStudioClient
    from hildif.labelstudio.convert import load_label_config
    from hildif.labelstudio.people import add_annotators, invite_link

    client = LabelStudioClient(label_studio.url, label_studio.admin_token)
    link = invite_link(client)
    assert link.startswith(f"{label_studio.url}/user/signup/?token=")
    pid = client.ensure_project("HILDIF people test", load_label_config(), 2)

    made = add_annotators(client, ["ann.one@hildif.test", "Ann.Two@hildif.test", "ann.one@hildif.test"])
    assert [a.email for a in made] == ["ann.one@hildif.test", "ann.two@hildif.test"]  # lower case, once each
    assert all(a.created and len(a.password) >= 12 for a in made)
    assert made[0].password != made[1].password and made[0].user_id != made[1].user_id
    admin = client.check()
    for a in made:
        with log_in(label_studio.url, a.email, a.password) as http:
            me = http.get(f"{label_studio.url}/api/current-user/whoami").json()
            assert (me["id"], me["email"]) == (a.user_id, a.email)
            assert me["active_organization"] == admin["active_organization"]  # the admin's organization
            assert http.get(f"{label_studio.url}/api/projects/{pid}").status_code == 200  # sees the project
        with log_in(label_studio.url, a.email, "wrong-password-123") as http:
            assert http.get(f"{label_studio.url}/api/current-user/whoami").status_code in (401, 403)
    assert {a.user_id: a.email for a in made}.items() <= client.users().items()

    again = add_annotators(client, ["ann.one@hildif.test"])
    assert (again[0].user_id, again[0].password, again[0].created) == (made[0].user_id, None, False)


@pytest.mark.labelstudio
def test_a_bad_email_is_refused_before_any_account_is_made(label_studio):
    from hildif.labelstudio.client import LabelStudioClient
    from hildif.labelstudio.people import add_annotators

    client = LabelStudioClient(label_studio.url, label_studio.admin_token)
    before = client.users()
    for bad in ("not-an-email", "a b@x.org", "x@localhost", "<script>@x.org", ""):
        with pytest.raises(ValueError, match="not an email address"):
            add_annotators(client, ["fine.one@hildif.test", bad])
    assert client.users() == before


@pytest.mark.labelstudio
def test_annotators_command_prints_the_link_and_passwords_that_work(label_studio, tmp_path, monkeypatch, capsys):
    from hildif.cli import main

    monkeypatch.setenv("HILDIF_TEST_PEOPLE_KEY", label_studio.admin_token)
    common = ["--run-dir", str(tmp_path / "run"), "--ls-url", label_studio.url,
              "--set", "labelstudio.api_key_env=HILDIF_TEST_PEOPLE_KEY"]
    assert main(["annotators", "invite", *common]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^  {re.escape(label_studio.url)}/user/signup/\?token=\S+$", out, re.M), out

    assert main(["annotators", "add", "cli.person@hildif.test", *common]) == 0
    out = capsys.readouterr().out
    password = re.search(r"cli\.person@hildif\.test\s+password (\S+)$", out, re.M).group(1)
    assert f"log in at {label_studio.url}/user/login/" in out and "shown once" in out
    with log_in(label_studio.url, "cli.person@hildif.test", password) as http:
        assert http.get(f"{label_studio.url}/api/current-user/whoami").json()["email"] == "cli.person@hildif.test"
    assert main(["annotators", "add", "cli.person@hildif.test", *common]) == 0
    assert "already has an account" in capsys.readouterr().out

    assert main(["annotators", "add", "nope", *common]) == 1
    err = capsys.readouterr().err
    assert "'nope': not an email address" in err and "Traceback" not in err


def test_the_run_record_keeps_the_token_private_and_stays_inside_the_run(tmp_path, monkeypatch):
    from hildif.config import load_config

    run = tmp_path / "run"
    rec = remember(run, port=8123, token="tok-123", data_dir=run / "labelstudio", admin_email="admin@hildif.local")
    assert (rec.url, rec.port, rec.data_dir) == ("http://127.0.0.1:8123", 8123, (run / "labelstudio").resolve())
    assert stat.S_IMODE((run / TOKEN_FILE).stat().st_mode) == 0o600
    assert "tok-123" not in (run / SERVER_FILE).read_text()

    monkeypatch.delenv("HILDIF_TEST_NO_KEY", raising=False)
    cfg = load_config(overrides=[f"run.run_dir={run}", "labelstudio.api_key_env=HILDIF_TEST_NO_KEY"])
    assert use_run_access(cfg) == rec
    assert cfg.labelstudio.url == rec.url and cfg.labelstudio.api_key_file == str(run.resolve() / TOKEN_FILE)
    monkeypatch.setenv("HILDIF_TEST_NO_KEY", "configured")
    cfg = load_config(overrides=[f"run.run_dir={run}", "labelstudio.api_key_env=HILDIF_TEST_NO_KEY"])
    assert use_run_access(cfg) is None and cfg.labelstudio.url == "http://127.0.0.1:8080"  # a configured key wins

    with pytest.raises(AccessError, match="not inside the run directory"):
        remember(run, port=1, token="t", data_dir=tmp_path / "elsewhere", admin_email="a@b.c")
    for bad in ({"port": 8123, "data_dir": "../../etc", "admin_email": "a"}, {"port": "8123"}, [1]):
        (run / SERVER_FILE).write_text(json.dumps(bad))
        with pytest.raises(AccessError, match=SERVER_FILE) as err:
            recorded(run)
        assert "tok-123" not in str(err.value)
