"""The round flow against Label Studio backed by PostgreSQL (Debian's postgresql), as in docker/compose.yaml.

The test makes a throwaway cluster in a temporary folder (initdb; as the ``postgres`` user when run as root, since
initdb refuses root), serves it on a free 127.0.0.1 port, starts its own Label Studio with ``DJANGO_DB=postgresql``
(a cold start: migrations on PostgreSQL), and runs start -> ratings -> sync; the annotations are then read back
from PostgreSQL itself. The database password goes through files and the environment only.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from required import LABEL_STUDIO, POSTGRES, skip_or_fail
from round_env import KEY_ENV, register_tiny_base, round_config

pytestmark = [pytest.mark.integration, pytest.mark.labelstudio]

DB, USER, PASSWORD = "labelstudio", "hildif", "pg-test-password-0c1d"


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        skip_or_fail("PostgreSQL not installed (Debian package postgresql)", POSTGRES)
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL cluster on 127.0.0.1:<free port> with database ``labelstudio``; stopped and removed after."""
    from hildif.labelstudio.server import free_port

    bindir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="hildif-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as Debian's postgres user
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    pwfile = root / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if as_user:
        os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
    pwfile.chmod(0o600)
    port = free_port()

    def run(*cmd: str, **kw) -> subprocess.CompletedProcess:
        env = {**os.environ, "PGPASSWORD": PASSWORD, "LC_ALL": "C.UTF-8"}
        proc = subprocess.run([*as_user, *cmd], capture_output=True, text=True, env=env, timeout=120, **kw)
        assert proc.returncode == 0, f"{cmd[0]} failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
        return proc

    data = root / "data"
    run(str(bindir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}", "--auth-local=trust",
        "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "postgres.log"), "-w", "-t", "60", "-o",
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=off", "start")
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, DB)

        def sql(query: str) -> str:
            return run(str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, "-d", DB, "-At", "-c",
                       query).stdout.strip()

        yield {"port": port, "sql": sql, "root": root}
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def ls_postgres(postgres, tmp_path_factory):
    from hildif.labelstudio.server import LabelStudioServer, find_label_studio_bin, free_port, LabelStudioServerError

    try:
        find_label_studio_bin()
    except LabelStudioServerError as exc:
        skip_or_fail(str(exc), LABEL_STUDIO)
    server = LabelStudioServer(
        tmp_path_factory.mktemp("ls-postgres"), port=free_port(), allow_local_backends=True,
        extra_env={"DJANGO_DB": "postgresql", "POSTGRE_NAME": DB, "POSTGRE_USER": USER, "POSTGRE_PASSWORD": PASSWORD,
                   "POSTGRE_HOST": "127.0.0.1", "POSTGRE_PORT": str(postgres["port"])},
    )
    server.start(timeout=600)  # migrations on an empty PostgreSQL database
    yield server
    server.stop()


def test_round_start_ratings_sync_on_postgres(ls_postgres, postgres, tmp_path, data_dir):
    from hildif.labelstudio.client import LabelStudioClient
    from hildif.rounds.start import AnchorSelection, start_round
    from hildif.rounds.state import RoundState
    from hildif.rounds.sync import sync_round

    os.environ[KEY_ENV] = ls_postgres.admin_token
    cfg = round_config(tmp_path / "run", data_dir, ls_postgres.url, "HILDIF postgres test", annotators=2)
    register_tiny_base(cfg)
    client = LabelStudioClient(ls_postgres.url, ls_postgres.admin_token)
    started = start_round(cfg, "rp", AnchorSelection("paper", n=1), client=client, progress=False)
    assert started.pushed_now == 2
    pairs = RoundState(cfg.run_path("rounds.sqlite")).pairs("rp")
    u1, u2 = client.ensure_user("pg1@hildif.test"), client.ensure_user("pg2@hildif.test")
    client.annotate(pairs[0].task_id, u1, 5)
    client.annotate(pairs[0].task_id, u2, 3)
    client.annotate(pairs[1].task_id, u1, 2)

    result = sync_round(cfg, "rp", client=client, progress=False)
    assert result.status == "trained" and result.changes["new"] == 3
    scores = {(r["anchor_id"], r["example_id"]): (r["score"], r["n_raters"])
              for r in RoundState(cfg.run_path("rounds.sqlite")).scores(result.sync_id)}
    assert scores == {(pairs[0].anchor_id, pairs[0].example_id): (4.0, 2),
                      (pairs[1].anchor_id, pairs[1].example_id): (2.0, 1)}
    assert sync_round(cfg, "rp", client=client, progress=False).status == "unchanged"

    # the annotations live in PostgreSQL, and Label Studio made no SQLite database
    ids = ",".join(str(p.task_id) for p in pairs)
    assert postgres["sql"](f"SELECT count(*) FROM task_completion WHERE task_id IN ({ids})") == "3"
    assert postgres["sql"](f"SELECT title FROM project WHERE id = {started.project_id}") == "HILDIF postgres test — rp"  # one project per round
    assert not list(Path(ls_postgres.data_dir).rglob("*.sqlite3"))
