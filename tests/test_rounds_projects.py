"""Round start and status against the session's real Label Studio (tiny model, real influence): what a round is
started with stays the round's (its own project, its annotators per task), Label Studio is checked before any
influence, the pair-ids file forms, and tasks deleted in Label Studio come back on a rerun.

Each test starts the rounds it needs (its own round ids, in one run directory shared through a module fixture), so
any subset runs alone. Nothing is mocked; two tests wrap a function to watch it (a spy that calls the real one) or
to stop the real Label Studio at a chosen moment.
"""

from __future__ import annotations

import json
import os

import pytest

from round_env import KEY_ENV, register_tiny_base, round_config

pytestmark = [pytest.mark.integration, pytest.mark.labelstudio]

TITLE = "HILDIF projects test"


@pytest.fixture(scope="module")
def lab(label_studio, tmp_path_factory, data_dir):
    """A run directory with a tiny base model served, an admin client, and a config maker (annotators per task)."""
    from hildif.labelstudio.client import LabelStudioClient

    os.environ[KEY_ENV] = label_studio.admin_token
    run = tmp_path_factory.mktemp("projects-run")

    def cfg(annotators: int = 1, url: str | None = None, extra: tuple = ()):
        return round_config(run, data_dir, url or label_studio.url, TITLE, annotators=annotators, extra=extra)

    register_tiny_base(cfg())
    return {"cfg": cfg, "run": run, "client": LabelStudioClient(label_studio.url, label_studio.admin_token),
            "server": label_studio, "data_dir": data_dir}


def state_of(lab):
    from hildif.rounds.state import RoundState

    return RoundState(lab["cfg"]().run_path("rounds.sqlite"))


def start(lab, round_id, annotators=1, n=1, **selection):
    from hildif.rounds.start import AnchorSelection, start_round

    sel = AnchorSelection(**selection) if selection else AnchorSelection("paper", n=n)
    return start_round(lab["cfg"](annotators), round_id, sel, client=lab["client"], progress=False)


def cli_overrides(cfg):
    return sum((["--set", s] for s in (
        f"labelstudio.url={cfg.labelstudio.url}", f"labelstudio.api_key_env={KEY_ENV}",
        f"labelstudio.project_title={cfg.labelstudio.project_title}",
        f"labelstudio.annotators_per_task={cfg.labelstudio.annotators_per_task}")), [])


@pytest.fixture()
def explain_spy(monkeypatch):
    """Records each call of :func:`hildif.rounds.start.explain_round` (then runs the real one)."""
    import hildif.rounds.start as start_mod

    calls = []
    real = start_mod.explain_round

    def spy(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(start_mod, "explain_round", spy)
    return calls


# ---------------------------------------------------------------------------------------------- status
def test_status_counts_against_the_rounds_own_annotators_per_task(lab, capsys):
    """A round started with 2 raters per task is done at 2 ratings, whatever the config says when asked."""
    from hildif.cli import main
    from hildif.rounds.status import format_status, round_status

    client = lab["client"]
    res = start(lab, "st2", annotators=2)
    assert (res.annotators_per_task, res.n_pairs) == (2, 2)
    users = [client.ensure_user(f"status{i}@hildif.test") for i in (1, 2)]
    for p in state_of(lab).pairs("st2"):
        for u, score in zip(users, (4, 5)):
            client.annotate(p.task_id, u, score)

    later = lab["cfg"](annotators=3)  # today's config says 3
    st = round_status(later, "st2", client=client)
    assert st["annotators_per_task"] == 2
    assert [(r["submitted"], r["target"], r["done"]) for r in st["pairs"]] == [(2, 2, True), (2, 2, True)]
    assert st["progress"] == {"pairs": 2, "pushed": 2, "pairs_done": 2, "ratings": 4, "ratings_needed": 4}
    text = format_status(st)
    assert "done 2/2" in text and "ratings 4/4" in text and "2/2" in text.split("rated/target")[1]
    code = main(["round", "status", "--round", "st2", "--json", "--run-dir", str(lab["run"]), *cli_overrides(later)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["progress"]["pairs_done"] == 2 and out["pairs"][0]["target"] == 2


# ---------------------------------------------------------------------------------------------- fail fast
def test_start_with_label_studio_down_fails_before_any_influence(lab, explain_spy):
    from hildif.labelstudio.client import LabelStudioUnavailable
    from hildif.labelstudio.server import free_port
    from hildif.rounds.start import AnchorSelection, start_round

    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LabelStudioUnavailable, match=f"{down} is unreachable while checking the connection") as err:
        start_round(lab["cfg"](url=down), "down1", AnchorSelection("paper", n=1), progress=False)
    assert "nothing was changed" in str(err.value)
    assert explain_spy == [] and not state_of(lab).has_round("down1")  # true: nothing computed, nothing recorded


def test_start_with_a_wrong_token_fails_before_any_influence(lab, explain_spy, monkeypatch):
    from hildif.labelstudio.client import LabelStudioError
    from hildif.rounds.start import AnchorSelection, start_round

    monkeypatch.setenv("HILDIF_TEST_WRONG_LS_KEY", "wrong-token-4f1c")
    cfg = lab["cfg"](extra=("labelstudio.api_key_env=HILDIF_TEST_WRONG_LS_KEY",))
    with pytest.raises(LabelStudioError, match="HTTP 401.*check the API key") as err:
        start_round(cfg, "badkey1", AnchorSelection("paper", n=1), progress=False)
    assert "wrong-token-4f1c" not in str(err.value)
    assert explain_spy == [] and not state_of(lab).has_round("badkey1")


def test_label_studio_failing_after_the_explanation_says_it_is_kept(lab, explain_spy, monkeypatch):
    """Label Studio passes the check, then stops (for real) before the project is looked up: the error says the
    explanation is recorded, and the rerun pushes without computing influence again."""
    from hildif.labelstudio.client import LabelStudioClient, LabelStudioUnavailable

    server, real_find = lab["server"], LabelStudioClient.find_project

    def find_during_outage(self, title):
        server.stop()
        try:
            return real_find(self, title)
        finally:
            server.start()

    monkeypatch.setattr(LabelStudioClient, "find_project", find_during_outage)
    with pytest.raises(LabelStudioUnavailable, match="is recorded with its explanation") as err:
        start(lab, "late1")
    monkeypatch.undo()
    assert "without computing influence again" in str(err.value)
    pairs = state_of(lab).pairs("late1")
    assert len(pairs) == 2 and all(p.task_id is None for p in pairs) and len(explain_spy) == 1

    again = start(lab, "late1")
    assert (again.explained_now, again.pushed_now, again.already_pushed) == (False, 2, 0)


# ---------------------------------------------------------------------------------------------- pair-ids file
def test_pair_ids_file_forms_start_a_round(lab, tmp_path, explain_spy):
    """A plain list and the anchors JSONL select the same anchors; a binary file fails naming the file, before
    influence, without echoing what it holds."""
    from hildif.config import DataConfig
    from hildif.influence.anchors import AnchorSelectionError

    anchors_file = lab["data_dir"] / DataConfig().anchors_file
    lines = anchors_file.read_text().splitlines()[1:3]
    jsonl = tmp_path / "two_anchors.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    plain = tmp_path / "two_anchors.txt"
    plain.write_text("".join(json.loads(line)["pairID"] + "  # from the anchors file\n" for line in lines))

    res = start(lab, "ids-jsonl", method="pairids", pair_ids_file=str(jsonl))
    expected = [json.loads(line)["pairID"] for line in lines]
    assert [a.anchor_id for a in state_of(lab).anchors("ids-jsonl")] == expected and res.n_pairs == 4
    plain_res = start(lab, "ids-plain", method="pairids", pair_ids_file=str(plain))
    assert [a.anchor_id for a in state_of(lab).anchors("ids-plain")] == expected and plain_res.n_pairs == 4

    binary = tmp_path / "environ"
    binary.write_bytes(b"HILDIF_BACKEND_PASSWORD=hunter2\0LABEL_STUDIO_API_KEY=abc\0")
    with pytest.raises(AnchorSelectionError, match=f"pair-ids file {binary}: a binary file") as err:
        start(lab, "ids-binary", method="pairids", pair_ids_file=str(binary))
    assert "hunter2" not in str(err.value) and not state_of(lab).has_round("ids-binary")
    assert "ids-binary" not in explain_spy  # the selection failed first: explain_round never ran, no round recorded


# ---------------------------------------------------------------------------------------------- projects
def test_two_rounds_get_two_projects_and_start_training_syncs_its_own(lab):
    """Rounds started with other settings do not change each other's project; Label Studio's "Start training" on
    a project queues the sync of that project's round (the real Label Studio calls the real backend app)."""
    import threading
    import time

    from werkzeug.serving import make_server

    from hildif.labelstudio.server import free_port
    from ml_backend.app import create_app
    from ml_backend.runtime import BackendRuntime

    client = lab["client"]
    a = start(lab, "proj-a", annotators=2)
    b = start(lab, "proj-b", annotators=3)
    assert a.project_id != b.project_id
    assert (a.project_title, b.project_title) == (f"{TITLE} — proj-a", f"{TITLE} — proj-b")
    projects = {p: client.sdk.projects.get(id=p) for p in (a.project_id, b.project_id)}
    assert (projects[a.project_id].maximum_annotations, projects[b.project_id].maximum_annotations) == (2, 3)
    assert projects[a.project_id].title == a.project_title

    again = start(lab, "proj-a", annotators=3)  # a rerun with today's config keeps the round's settings
    assert (again.project_id, again.annotators_per_task, again.pushed_now) == (a.project_id, 2, 0)
    assert client.sdk.projects.get(id=a.project_id).maximum_annotations == 2

    runtime = BackendRuntime(lab["cfg"](), start_jobs=False)  # the queued sync is looked at, not run
    port = free_port()
    http = make_server("127.0.0.1", port, create_app(lab["cfg"](), runtime=runtime), threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        for res in (a, b):
            backend_id = client.connect_ml_backend(res.project_id, f"http://127.0.0.1:{port}")
            client.train(backend_id)
        deadline = time.monotonic() + 60  # Label Studio's webhook call may land after train() returns
        while time.monotonic() < deadline and len(runtime.jobs.list()) < 2:
            time.sleep(0.2)
        jobs = sorted((j["params"]["project_id"], j["params"]["round_id"]) for j in runtime.jobs.list())
    finally:
        http.shutdown()
        runtime.close()
    assert jobs == sorted([(a.project_id, "proj-a"), (b.project_id, "proj-b")])


# ---------------------------------------------------------------------------------------------- deleted tasks
def test_tasks_deleted_in_label_studio_are_recreated_on_rerun(lab, capsys):
    from hildif.cli import main
    from hildif.labelstudio.convert import task_identity

    client = lab["client"]
    res = start(lab, "del1")
    first, second = state_of(lab).pairs("del1")
    client.sdk.tasks.delete(id=second.task_id)

    code = main(["round", "start", "--round", "del1", "--run-dir", str(lab["run"]), *cli_overrides(lab["cfg"]())])
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert code == 0 and (out["recreated"], out["pushed_now"], out["already_pushed"]) == (1, 1, 1)
    assert f"task ids {second.task_id}" in captured.err and "re-created" in captured.err
    now = {(p.anchor_id, p.example_id): p.task_id for p in state_of(lab).pairs("del1")}
    assert now[(first.anchor_id, first.example_id)] == first.task_id
    new_id = now[(second.anchor_id, second.example_id)]
    assert new_id is not None  # (Label Studio on SQLite may hand the deleted task's id out again)
    tasks = {t["id"]: task_identity(t) for t in client.tasks(res.project_id)}
    assert tasks == {first.task_id: ("del1", first.anchor_id, first.example_id),
                     new_id: ("del1", second.anchor_id, second.example_id)}

    again = start(lab, "del1")  # nothing deleted since: nothing pushed
    assert (again.recreated, again.pushed_now, again.notes) == (0, 0, [])


def test_a_round_whose_project_was_deleted_gets_a_new_one(lab):
    client = lab["client"]
    res = start(lab, "delproj")
    client.sdk.projects.delete(id=res.project_id)
    again = start(lab, "delproj")
    assert again.project_id != res.project_id and (again.recreated, again.pushed_now) == (2, 2)
    assert any("no longer exists" in n for n in again.notes)
    assert len(client.tasks(again.project_id)) == 2
