"""Faults and bad input around a round, against the session's real Label Studio (tiny model, real influence,
augmentation and fine-tuning). Each ends with a clear error or a correct recovery, and no rating is lost or counted
twice. The tests share one round ("rf", two annotators, one anchor -> two pairs) that moves through stages, each
a module fixture building on the one before (``rated``: three ratings and a sync; ``task_deleted``: a task deleted
in Label Studio and two syncs), so any subset of the tests sets up what it needs.

Covered elsewhere: annotations edited and deleted after a sync, a crash mid-sync, Label Studio down at start
(tests/test_rounds_labelstudio.py); a backend job interrupted by a crash (tests/test_ml_backend.py).
"""

from __future__ import annotations

import os

import pytest

from round_env import KEY_ENV, register_tiny_base, round_config

pytestmark = [pytest.mark.integration, pytest.mark.labelstudio]


@pytest.fixture(scope="module")
def env(label_studio, tmp_path_factory, data_dir):
    from hildif.labelstudio.client import LabelStudioClient
    from hildif.rounds.start import AnchorSelection, start_round
    from hildif.rounds.state import RoundState

    os.environ[KEY_ENV] = label_studio.admin_token
    cfg = round_config(tmp_path_factory.mktemp("faults-run"), data_dir, label_studio.url, "HILDIF faults test",
                       annotators=2)
    register_tiny_base(cfg)
    client = LabelStudioClient(label_studio.url, label_studio.admin_token)
    started = start_round(cfg, "rf", AnchorSelection("paper", n=1), client=client, progress=False)
    state = RoundState(cfg.run_path("rounds.sqlite"))
    users = [client.ensure_user(f"fault{i}@hildif.test") for i in (1, 2)]
    return {"cfg": cfg, "client": client, "state": state, "pairs": state.pairs("rf"), "users": users,
            "project": started.project_id, "server": label_studio}


@pytest.fixture(scope="module")
def rated(env):
    """Three ratings (p0: 5 and 3, p1: 2) and the sync that counts them."""
    from hildif.rounds.sync import sync_round

    p0, p1 = env["pairs"][:2]
    u1, u2 = env["users"]
    env["client"].annotate(p0.task_id, u1, 5)
    env["client"].annotate(p0.task_id, u2, 3)
    env["client"].annotate(p1.task_id, u1, 2)
    return sync_round(env["cfg"], "rf", client=env["client"], progress=False)


@pytest.fixture(scope="module")
def task_deleted(env, rated):
    """p1's task deleted in Label Studio, then two syncs."""
    from hildif.rounds.sync import sync_round

    env["client"].sdk.tasks.delete(id=env["pairs"][1].task_id)
    first = sync_round(env["cfg"], "rf", client=env["client"], progress=False)
    again = sync_round(env["cfg"], "rf", client=env["client"], progress=False)
    return first, again


def scores(env, sync_id):
    return {(r["anchor_id"], r["example_id"]): (r["score"], r["n_raters"]) for r in env["state"].scores(sync_id)}


def key(pair):
    return (pair.anchor_id, pair.example_id)


def raw_annotation(env, task_id, user, result):
    """An annotation whose result hildif did not write (another template, a script, a hand-made import)."""
    return int(env["client"].sdk.annotations.create(id=task_id, completed_by=user, result=result).id)


@pytest.mark.parametrize("result, message", [
    ([{"from_name": "similarity", "to_name": "anchor_premise", "type": "choices", "value": {"choices": ["Maybe"]}}],
     r"similarity choice \['Maybe'\] is not one of"),
    # (a result item without "value" at all is refused by Label Studio itself: HTTP 500 "'value'")
    ([{"from_name": "similarity", "to_name": "anchor_premise", "type": "choices", "value": {}}],
     r"similarity choice \[\] is not one of"),
    ([{"from_name": "verdict", "to_name": "anchor_premise", "type": "choices", "value": {"choices": ["Similar"]}}],
     "submitted without a similarity choice"),
    ([], "submitted without a similarity choice"),
])
def test_malformed_result_is_a_clear_error_naming_the_annotation_and_nothing_is_recorded(env, result, message):
    from hildif.labelstudio.convert import ConversionError
    from hildif.model.registry import ModelRegistry
    from hildif.rounds.sync import sync_round

    pair, user = env["pairs"][0], env["users"][0]
    serving = ModelRegistry(env["cfg"].run.run_dir).current()
    snapshot = env["state"].latest_snapshot("rf")
    bad = raw_annotation(env, pair.task_id, user, result)
    try:
        with pytest.raises(ConversionError, match=message) as err:
            sync_round(env["cfg"], "rf", client=env["client"], progress=False)
        assert f"annotation {bad} of task {pair.task_id}" in str(err.value)
        assert env["state"].latest_snapshot("rf") == snapshot and env["state"].syncs("rf") == []
        assert ModelRegistry(env["cfg"].run.run_dir).current() == serving
    finally:
        env["client"].delete_annotation(bad)


def test_after_fixing_the_bad_input_every_rating_counts_once(env, rated):
    p0, p1 = env["pairs"][:2]
    res = rated
    assert res.status == "trained" and res.changes == {"new": 3, "updated": 0, "unchanged": 0, "deleted": 0,
                                                      "still_deleted": 0}
    assert scores(env, res.sync_id) == {key(p0): (4.0, 2), key(p1): (2.0, 1)}


def test_task_deleted_in_label_studio_drops_its_ratings_once(env, task_deleted):
    p0, p1 = env["pairs"][:2]
    res, again = task_deleted
    assert res.status == "trained" and (res.changes["deleted"], res.changes["unchanged"]) == (1, 2)
    assert scores(env, res.sync_id)[key(p0)] == (4.0, 2)
    assert scores(env, res.sync_id).get(key(p1), (None, 0))[1] == 0  # the deleted task's rating no longer counts
    assert again.status == "unchanged" and again.changes["still_deleted"] == 1 and again.changes["deleted"] == 0


def test_label_studio_restarted_during_a_sync_loses_nothing(env, task_deleted, monkeypatch):
    """Label Studio goes down while the sync pulls the tasks (stopped for real), then comes back: the sync fails with
    a clear error and records nothing; the next sync counts the new rating once."""
    from hildif.labelstudio.client import LabelStudioClient, LabelStudioUnavailable
    from hildif.model.registry import ModelRegistry
    from hildif.rounds.sync import sync_round

    server, client, state = env["server"], env["client"], env["state"]
    p0 = env["pairs"][0]
    third = client.ensure_user("fault3@hildif.test")
    client.annotate(p0.task_id, third, 1)  # a third annotator on p0: 5, 3, 1 -> median 3
    syncs, snapshot = state.syncs("rf"), state.latest_snapshot("rf")
    serving = ModelRegistry(env["cfg"].run.run_dir).current()
    real_tasks = LabelStudioClient.tasks

    def tasks_during_restart(self, project_id):
        server.stop()  # Label Studio restarts now (this is a real stop: the request below finds nothing)
        try:
            return real_tasks(self, project_id)
        finally:
            server.start()

    monkeypatch.setattr(LabelStudioClient, "tasks", tasks_during_restart)
    with pytest.raises(LabelStudioUnavailable, match="is it running"):
        sync_round(env["cfg"], "rf", client=client, progress=False)
    monkeypatch.undo()
    assert server.is_healthy()
    assert state.syncs("rf") == syncs and state.latest_snapshot("rf") == snapshot
    assert ModelRegistry(env["cfg"].run.run_dir).current() == serving

    res = sync_round(env["cfg"], "rf", client=client, progress=False)
    assert res.status == "trained" and (res.changes["new"], res.changes["unchanged"]) == (1, 2)
    assert scores(env, res.sync_id)[key(p0)] == (3.0, 3)
