"""The terminal of a ``hildif`` command shows hildif's own messages only; ``--verbose`` shows the libraries' too;
``<run_dir>/logs/hildif.log`` keeps everything either way (hildif/logs.py)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHATTER = ("httpx", "HTTP Request", "swigfaiss", "MISSING", "LOAD REPORT", "Consider training", "faiss.loader")


@pytest.fixture()
def restore_logging():
    from transformers.utils import logging as hf_logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)
    logging.captureWarnings(False)
    hf_logging.disable_propagation()
    hf_logging.enable_default_handler()
    hf_logging.set_verbosity_warning()
    hf_logging.enable_progress_bar()


def emit_sample() -> None:
    logging.getLogger("httpx").info('HTTP Request: GET http://127.0.0.1:8080/api/projects "HTTP/1.1 200 OK"')
    logging.getLogger("faiss.loader").info("Could not load library with AVX512 support due to:\n"
                                           "ModuleNotFoundError(\"No module named 'faiss.swigfaiss_avx512'\")")
    logging.getLogger("transformers.modeling_utils").warning("BertForSequenceClassification LOAD REPORT\n"
                                                             "classifier.weight | MISSING")
    logging.getLogger("some.library").warning("a library warning")
    logging.getLogger("hildif.demo").info("step 3: Label Studio is up")
    logging.getLogger("hildif.rounds.sync").debug("a debug detail")


@pytest.mark.parametrize("verbose", [False, True])
def test_console_filter_and_the_run_log(tmp_path, restore_logging, verbose):
    from hildif.logs import attach_run_log, setup_logging

    console = io.StringIO()
    setup_logging(verbose=verbose, stream=console)
    logging.getLogger("hildif.commands").info("before the run directory is known")
    emit_sample()
    path = attach_run_log(tmp_path / "run")
    assert path == tmp_path / "run" / "logs" / "hildif.log"
    emit_sample()
    shown = console.getvalue()
    assert "step 3: Label Studio is up" in shown and "before the run directory is known" in shown
    assert "a library warning" in shown  # libraries outside the chatty list still warn
    if verbose:
        assert all(word in shown for word in ("HTTP Request", "swigfaiss", "MISSING", "a debug detail"))
    else:
        assert not [word for word in CHATTER if word in shown], shown
        assert "a debug detail" not in shown
    for handler in logging.getLogger().handlers:
        handler.flush()
    logged = path.read_text()
    # everything, including what came before attach_run_log (held in memory), twice
    for text in ("before the run directory is known", "HTTP Request", "swigfaiss_avx512", "MISSING",
                 "step 3: Label Studio is up", "a debug detail"):
        assert logged.count(text) == (1 if text.startswith("before") else 2), (text, logged)


@pytest.mark.integration
def test_explain_on_the_shipped_model_keeps_the_terminal_free_of_library_chatter(tmp_path, data_dir):
    """A real command in a fresh process: it imports FAISS (whose loader logs its fallbacks) and loads MiniLM
    into a classification model (transformers reports the new head as MISSING)."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "hildif.cli", "explain", "--run-dir", str(run), "--data-dir", str(data_dir),
           "--pair-ids", "49703e", "--pool", "anchors", "--set", "data.max_train_examples=100",
           "--set", "influence.k=5", "--set", "influence.top_p=2", "--set", "influence.params=head",
           "--set", "influence.hessian_samples=8"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    terminal = proc.stdout + proc.stderr
    assert proc.returncode == 0, terminal[-3000:]
    assert "ANCHOR 49703e" in proc.stdout and "wrote run/explanations/explain-" in proc.stdout  # relative to the cwd
    assert list((run / "cache" / "influence").glob("knn-*/index.faiss"))  # the folder a round's start reads indexes from
    assert not [word for word in CHATTER if word in terminal], terminal[-3000:]
    logged = (run / "logs" / "hildif.log").read_text()
    assert "faiss.loader" in logged and "Successfully loaded faiss" in logged
    assert "LOAD REPORT" in logged and "classifier.weight" in logged and "MISSING" in logged


def test_paths_are_shown_relative_to_the_working_directory(tmp_path, monkeypatch):
    from hildif.utils.paths import display_path

    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "runs" / "default" / "demo" / "demo.md") == "runs/default/demo/demo.md"
    assert display_path("runs/default") == "runs/default"
    assert display_path("/elsewhere/x") == "/elsewhere/x"  # outside the working directory: kept as it is


def test_verbose_is_accepted_before_and_after_the_subcommand():
    from hildif.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["demo", "--verbose"]).verbose and parser.parse_args(["-v", "demo"]).verbose
    assert not parser.parse_args(["demo"]).verbose and not parser.parse_args(["data", "check", "x"]).verbose


def test_steps_console_keeps_hildif_info_records_in_the_log_file_only(tmp_path, restore_logging):
    """``hildif demo`` prints its own line per step: its INFO records (timestamped, with absolute paths) go to the
    run's log only, its warnings show without time or logger; ``--verbose`` shows everything as before."""
    from hildif.logs import attach_run_log, setup_logging, steps_console

    console = io.StringIO()
    setup_logging(verbose=False, stream=console)
    steps_console()
    path = attach_run_log(tmp_path / "run")
    logging.getLogger("hildif.rounds.sync").info("round demo: snapshot 1 (new) in /abs/run/rounds.sqlite")
    logging.getLogger("hildif.rounds.sync").warning("sync 1 keeps serving v0")
    emit_sample()
    for handler in logging.getLogger().handlers:
        handler.flush()
    shown = console.getvalue().splitlines()
    assert shown == ["warning: sync 1 keeps serving v0", "warning: a library warning"], shown
    logged = path.read_text()
    assert "INFO hildif.rounds.sync: round demo: snapshot 1 (new) in /abs/run/rounds.sqlite" in logged
    assert "step 3: Label Studio is up" in logged and "WARNING hildif.rounds.sync: sync 1 keeps serving v0" in logged

    verbose = io.StringIO()
    setup_logging(verbose=True, stream=verbose)
    steps_console()  # a no-op under --verbose
    logging.getLogger("hildif.demo").info("step 3: Label Studio is up")
    assert "hildif.demo: step 3: Label Studio is up" in verbose.getvalue()
