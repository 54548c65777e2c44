"""``hildif demo`` end to end against the real Label Studio of the test session, with the tiny model: baseline
training, the real ML backend subprocess, real influence, three simulated annotators rating through the Label
Studio API as their own users, sync (augmentation, fine-tuning, evaluation), the printed and written results (a
terminal of ``[demo]`` lines without log records; demo.md's links resolving from its own folder; demo.html in
Chromium), a rerun that continues the round, and an error after the backend started (which must still stop it).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from report_checks import check_link, check_page, check_rounding, markdown_links
from test_browser_rating import ARTIFACTS, browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.integration, pytest.mark.labelstudio]

KEY_ENV = "HILDIF_TEST_DEMO_LS_KEY"
SETTINGS = [
    "model.name_or_path=tiny", "model.device=cpu", "data.max_train_examples=300",
    "train.max_steps=10", "train.batch_size=16", "train.eval_examples=100", "train.learning_rate=2e-3",
    "influence.k=20", "influence.lissa_steps=10", "influence.grad_batch_size=16",
    "feedback.augmenters=synonym", "feedback.copies_per_point=1", "finetune.epochs=1", "finetune.batch_size=8",
    "eval.hans_sample=60", "eval.mnli_sample=60", "eval.batch_size=64",
    f"labelstudio.api_key_env={KEY_ENV}", "labelstudio.project_title=HILDIF demo test",
    "labelstudio.annotators_per_task=3",
    "finetune.gate_max_mnli_drop=none", "finetune.gate_min_hans_gain=none",  # the gate: test_rounds_gate.py
]


def demo_args(run_dir: Path, data_dir: Path, url: str, *extra: str) -> list[str]:
    return ["demo", "--ls-url", url, "--run-dir", str(run_dir), "--data-dir", str(data_dir), "--anchors", "2",
            "--p", "2", "--no-progress", *extra, *sum((["--set", s] for s in SETTINGS), [])]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def demo_run(label_studio, tmp_path_factory, data_dir):
    from hildif.cli import main

    os.environ[KEY_ENV] = label_studio.admin_token
    run = tmp_path_factory.mktemp("demo-run")
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(demo_args(run, data_dir, label_studio.url))
    return {"code": code, "out": out.getvalue(), "err": err.getvalue(), "run": run, "url": label_studio.url,
            "data_dir": data_dir}


TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


def test_demo_terminal_shows_its_steps_not_log_records(demo_run):
    assert demo_run["code"] == 0, demo_run["out"] + demo_run["err"]
    terminal = demo_run["out"].splitlines() + demo_run["err"].splitlines()
    assert not [line for line in terminal if TIMESTAMP.search(line)], demo_run["err"][-3000:]
    assert not [line for line in terminal if re.search(r"\bINFO\b|hildif\.\w+:", line)]
    # the records are in the run's log, with their times
    logged = (demo_run["run"] / "logs" / "hildif.log").read_text()
    assert TIMESTAMP.search(logged) and "INFO hildif.rounds.sync" in logged
    # each step ends with a line naming what it produced
    out = demo_run["out"]
    for what in ("[demo 1/7] ready: data in ", "[demo 4/7] explained; tasks pushed now 4, already there 0: 4 rating "
                 "tasks in ", "[demo 5/7] 12 ratings submitted to ", "fine_tuning_set.csv); report ",
                 "[demo 7/7] wrote "):
        assert what in out, (what, out)


def test_demo_md_links_resolve_from_its_own_folder_and_demo_html_renders(demo_run, browser):  # noqa: F811
    assert demo_run["code"] == 0, demo_run["out"]
    folder = demo_run["run"] / "demo"
    md = (folder / "demo.md").read_text()
    check_rounding(md)
    links = markdown_links(md)
    assert any(t.endswith("evaluation.png") for t in links) and any(t.endswith("fine_tuning_set.csv") for t in links)
    assert any(t.startswith(demo_run["url"] + "/projects/") for t in links)  # the rating project
    for target in links:
        check_link(target, folder)  # relative to demo.md's own folder, not the repository's
    seen = check_page(browser, folder / "demo.html", ARTIFACTS / "demo_report.png")
    assert seen["images"] >= 1 and seen["tables"] >= 5


def test_demo_prints_progress_the_table_and_the_report_paths(demo_run):
    out = demo_run["out"]
    assert demo_run["code"] == 0, out
    for step in range(1, 8):
        assert f"[demo {step}/7]" in out
    assert "trained model" in out  # a fresh run directory: the baseline was trained
    assert "12 ratings submitted" in out  # 2 anchors x 2 influential examples x 3 annotators
    summary = json.loads((demo_run["run"] / "demo" / "demo.json").read_text())
    before, after = summary["before"], summary["after"]
    for name, res in ((f"before ({summary['base_version']})", before), (f"after ({summary['version']})", after)):
        row = next(line for line in out.splitlines() if line.startswith(f"| {name} |"))
        cells = row.split(" | ")
        lo = res["hans"]["by_heuristic"]["lexical_overlap"]
        assert cells[1] == f"({lo['entailment']:.2f}, {lo['non-entailment']:.2f})"
        assert cells[-1].rstrip(" |") == f"{res['mnli']['accuracy']:.2f}"
    b, a = before["mnli"]["accuracy"], after["mnli"]["accuracy"]
    assert f"MNLI dev accuracy (%, 2 decimals): {b:.2f} -> {a:.2f} ({a - b:+.2f} points)" in out
    for name in ("round.md", "round.html", "fine_tuning_set.csv", "evaluation.json", "evaluation.png", "demo.md",
                 "demo.html"):
        assert f"  {name}: " in out and Path(summary["paths"][name]).exists()
    assert summary["table"] in (demo_run["run"] / "demo" / "demo.md").read_text()
    assert "annotators: open " + demo_run["url"] + f"/projects/{summary['project_id']}" in out


def test_demo_trains_a_new_served_model_from_the_simulated_ratings(demo_run):
    from hildif.labelstudio.client import LabelStudioClient
    from hildif.model.registry import ModelRegistry
    from hildif.rounds.state import RoundState
    from hildif.experiments.panel import simulated_panel

    assert demo_run["code"] == 0, demo_run["out"]
    run = demo_run["run"]
    summary = json.loads((run / "demo" / "demo.json").read_text())
    assert summary["sync_status"] == "trained" and summary["version"] != summary["base_version"]
    assert ModelRegistry(run).current() == summary["version"]
    assert summary["backend"]["serving_after_sync"] == summary["version"]  # the backend serves the new model
    evaluation = json.loads(Path(summary["paths"]["evaluation.json"]).read_text())["results"]
    assert evaluation["before"] == summary["before"] and evaluation["after"] == summary["after"]

    # every task carries three annotations, one per simulated user, with the annotator's own score
    state = RoundState(run / "rounds.sqlite")
    anchors = {a.anchor_id: a.example for a in state.anchors("demo")}
    pairs = state.pairs("demo")
    assert len(anchors) == 2 and len(pairs) == 4
    client = LabelStudioClient(demo_run["url"], os.environ[KEY_ENV])
    ratings = client.ratings(summary["project_id"], {p.task_id: (p.anchor_id, p.example_id) for p in pairs})
    panel = simulated_panel(3, seed=0, names=[f"sim{i}@hildif.local" for i in (1, 2, 3)])
    expected = {(p.anchor_id, p.example_id, a.name): a.rate(anchors[p.anchor_id], p.example) for p in pairs
                for a in panel}
    assert {(r.anchor_id, r.example_id, r.annotator): r.score for r in ratings} == expected

    # the backend the demo started is gone
    pid = int(re.search(r"ML backend is up \(pid (\d+)\)", demo_run["out"]).group(1))
    assert not _alive(pid)
    assert f"stopping BackendProcess (pid {pid})" in demo_run["out"]


def test_rerun_in_human_mode_continues_the_round_without_training_again(demo_run, capsys):
    from hildif.cli import main

    assert demo_run["code"] == 0, demo_run["out"]
    first = json.loads((demo_run["run"] / "demo" / "demo.json").read_text())
    code = main(demo_args(demo_run["run"], demo_run["data_dir"], demo_run["url"], "--annotators", "human",
                          "--no-backend", "--wait-timeout", "0"))
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"reusing model {first['version']}" in out  # the served model after the first round
    assert "reused the recorded explanations; tasks pushed now 0, already there 4" in out
    assert "ratings 12/12 | tasks done 4/4 | sim1@hildif.local 4/4, sim2@hildif.local 4/4, sim3@hildif.local 4/4" in out
    assert "going on: every task has its 3 ratings" in out
    again = json.loads((demo_run["run"] / "demo" / "demo.json").read_text())
    assert again["sync_status"] == "unchanged" and again["version"] == first["version"]
    assert again["after"] == first["after"]


def test_an_error_after_the_backend_started_still_stops_it(label_studio, tmp_path, data_dir, capsys):
    from hildif.cli import main

    os.environ[KEY_ENV] = label_studio.admin_token
    bad = tmp_path / "anchors.jsonl"
    bad.write_text('{"pairID": "x1", "sentence1": "A man sleeps."}\n')  # no hypothesis, no label
    code = main(demo_args(tmp_path / "run", data_dir, label_studio.url, "--anchors-file", str(bad)))
    captured = capsys.readouterr()
    assert code == 1
    assert str(bad) in captured.err  # the error names the file at fault
    pid = int(re.search(r"ML backend is up \(pid (\d+)\)", captured.out).group(1))
    assert f"stopping BackendProcess (pid {pid})" in captured.out and not _alive(pid)


def test_missing_anchors_file_is_a_clear_error(tmp_path, data_dir, capsys):
    from hildif.cli import main

    code = main(demo_args(tmp_path / "run", data_dir, "http://127.0.0.1:9", "--anchors-file",
                          str(tmp_path / "nope.jsonl")))
    assert code == 1
    assert f"--anchors-file {tmp_path / 'nope.jsonl'} does not exist" in capsys.readouterr().err
