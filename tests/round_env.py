"""Helpers shared by the deployment and hardening tests (browser, faults, PostgreSQL, security, load): a run
directory with a tiny base model registered as the served version, a small-sample round configuration, and Label
Studio annotators who can log in (invite link + signup form, the only way Community Edition makes them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]

KEY_ENV = "HILDIF_TEST_HARDENING_LS_KEY"
# the promotion gate's MNLI/HANS checks off: on 60-example samples a tiny model's accuracy moves by whole examples,
# and these tests are about serving what a sync trains (the gate has its own tests: test_rounds_gate.py)
NO_METRIC_GATE = ("finetune.gate_max_mnli_drop=none", "finetune.gate_min_hans_gain=none")


def round_config(run_dir: Path, data_dir: Path, url: str, title: str, annotators: int = 1, extra: tuple = ()):
    """A config small enough for tests (300 training examples, k=20, two influential examples per anchor, one
    fine-tuning epoch, 60+60 evaluation examples); the Label Studio key comes from ``$KEY_ENV``."""
    from hildif.config import load_config

    return load_config(overrides=[
        f"data.data_dir={data_dir}", "data.max_train_examples=300", f"run.run_dir={run_dir}", "model.device=cpu",
        "influence.k=20", "influence.top_p=2", "influence.lissa_steps=20", "influence.grad_batch_size=16",
        "feedback.augmenters=synonym", "feedback.copies_per_point=1", "finetune.epochs=1", "finetune.batch_size=8",
        "eval.hans_sample=60", "eval.mnli_sample=60", "eval.batch_size=64",
        f"labelstudio.url={url}", f"labelstudio.api_key_env={KEY_ENV}", f"labelstudio.project_title={title}",
        f"labelstudio.annotators_per_task={annotators}", *NO_METRIC_GATE,
        # the rated set alone (g(z, s)): the round's construction pairs and rehearsal have tests of their own, and the
        # demo's test runs them in a sync
        "feedback.constructions=", "finetune.rehearsal_ratio=0", *extra,
    ])


def register_tiny_base(cfg) -> str:
    """Build the tiny BERT over the round's texts and register it as the served version; returns the version."""
    from hildif.data.splits import load_anchors, load_train
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier

    texts = list(load_train(cfg.data)) + list(load_anchors(cfg.data))
    return ModelRegistry(cfg.run.run_dir).save(build_tiny_classifier(texts, seed=0), {"kind": "base", "source": "tiny"})


def invite_url(ls_url: str, admin_token: str) -> str:
    """The organization's signup link (``GET /api/invite``), absolute."""
    r = requests.get(f"{ls_url}/api/invite", headers={"Authorization": f"Token {admin_token}"}, timeout=30)
    r.raise_for_status()
    return ls_url + r.json()["invite_url"]


def sign_up(ls_url: str, admin_token: str, email: str, password: str) -> requests.Session:
    """Create an annotator through the signup form (as a browser would post it); returns its logged-in session."""
    s = requests.Session()
    link = invite_url(ls_url, admin_token)
    page = s.get(link, timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert csrf, f"no CSRF token on {link}"
    r = s.post(link, data={"csrfmiddlewaretoken": csrf.group(1), "email": email, "password": password},
               headers={"Referer": link}, timeout=30)
    r.raise_for_status()
    me = s.get(f"{ls_url}/api/current-user/whoami", timeout=30)
    assert me.ok and me.json()["email"] == email, f"signup of {email} failed: {me.status_code} {me.text[:300]}"
    return s


def start_backend(run_dir: Path, env: dict[str, str], log_path: Path, *extra: str):
    """``python -m ml_backend`` on a free loopback port; returns (process, url) once /health answers."""
    from hildif.labelstudio.server import free_port

    port = free_port()
    log = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "ml_backend", "--port", str(port), "--run-dir", str(run_dir),
                             "--set", "model.device=cpu", *extra], cwd=REPO, env={**env, "PYTHONPATH": str(REPO)},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"backend exited with {proc.returncode}: {log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                return proc, url
        except requests.RequestException:
            time.sleep(0.3)
    stop_backend(proc)
    pytest.fail("backend did not answer /health: " + log_path.read_text()[-3000:])


def stop_backend(proc: subprocess.Popen, sig: int = 15) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(30)
