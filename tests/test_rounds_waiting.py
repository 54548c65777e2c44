"""Waiting for people (hildif.rounds.waiting): the one progress line, and the ways a wait ends, against a real Label
Studio (a round of the tiny model: one anchor, two tasks, two raters per task)."""

from __future__ import annotations

import io
import os
import threading

import pytest

from hildif.rounds.waiting import EnterToProceed, progress_line


def test_the_progress_line_names_each_person_and_the_tasks_done():
    status = {"progress": {"ratings": 3, "ratings_needed": 8, "pairs_done": 1, "pairs": 4},
              "annotators": {"ana@x.org": {"submitted": 2, "skipped": 0}, "ben@x.org": {"submitted": 1, "skipped": 1}}}
    assert progress_line(status, 1785.2, enter=True) == (
        "ratings 3/8 | tasks done 1/4 | ana@x.org 2/4, ben@x.org 1/4 | 29:45 left, Enter: go on")
    status["annotators"] = {}
    assert progress_line(status, None, enter=False) == "ratings 3/8 | tasks done 1/4 | nobody has rated yet"
    assert not EnterToProceed(io.StringIO("\n")).active  # not a terminal: no reader thread


@pytest.mark.integration
@pytest.mark.labelstudio
def test_a_wait_ends_on_the_time_limit_the_admin_or_complete_ratings(label_studio, tmp_path, data_dir):
    from round_env import KEY_ENV, register_tiny_base, round_config

    from hildif.labelstudio.client import LabelStudioClient
    from hildif.rounds.start import AnchorSelection, start_round
    from hildif.rounds.state import RoundState
    from hildif.rounds.waiting import wait_for_ratings

    os.environ[KEY_ENV] = label_studio.admin_token
    cfg = round_config(tmp_path / "run", data_dir, label_studio.url, "HILDIF waiting test", annotators=2)
    register_tiny_base(cfg)
    client = LabelStudioClient(label_studio.url, label_studio.admin_token)
    start_round(cfg, "rw", AnchorSelection("paper", n=1), client=client, progress=False)
    out = io.StringIO()
    timed = wait_for_ratings(cfg, "rw", client, timeout_s=0, out=out)
    assert timed.reason == "timeout" and "0/4 ratings" in timed.describe()
    assert out.getvalue() == "ratings 0/4 | tasks done 0/2 | nobody has rated yet | 0:00 left\n"

    go = threading.Event()
    go.set()
    assert wait_for_ratings(cfg, "rw", client, timeout_s=None, proceed=go, out=out).reason == "admin"

    users = [client.ensure_user(f"wait{i}@hildif.test") for i in (1, 2)]
    for p in RoundState(cfg.run_path("rounds.sqlite")).pairs("rw"):
        for uid in users:
            client.annotate(p.task_id, uid, 4)
    out = io.StringIO()
    done = wait_for_ratings(cfg, "rw", client, timeout_s=600, out=out)
    assert done.reason == "complete" and done.describe() == "every task has its 2 ratings"
    assert "ratings 4/4 | tasks done 2/2 | wait1@hildif.test 2/2, wait2@hildif.test 2/2" in out.getvalue()
