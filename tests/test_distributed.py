"""Training, evaluation and influence on 2 CPU processes (torchrun, gloo) against 1 process.

Each comparison launches tests/distributed_worker.py twice, alone and under ``python -m torch.distributed.run
--standalone --nproc-per-node 2``, with the same tiny BERT built in code and genuine MNLI/HANS rows; each process
gives its files the folder ``rank<R>/``, so a file written by rank 1 would show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hildif import distributed

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "distributed_worker.py"
SAFETY_TIMEOUT_S = 1800  # a hung collective fails the test instead of blocking CI; not a speed requirement


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def _launch(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
    assert proc.returncode == 0, f"{' '.join(cmd[1:])} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc


def run_worker(task: str, out: Path, nproc: int) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    if nproc == 1:
        cmd = [sys.executable, str(WORKER), str(out), task]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               str(WORKER), str(out), task]
    _launch(cmd, out)
    return [torch.load(out / f"result-{r}.pt", weights_only=False) for r in range(nproc)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    cache: dict[str, tuple[dict, list[dict], Path]] = {}

    def get(task: str):
        if task not in cache:
            base = tmp_path_factory.mktemp(f"dist-{task}")
            one = run_worker(task, base / "one", 1)[0]
            two = run_worker(task, base / "two", 2)
            cache[task] = (one, two, base / "two")
        return cache[task]

    return get


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---------------------------------------------------------------------------------------------- one process
def test_one_process_is_a_no_op():
    assert not distributed.active() and distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.is_main()
    assert distributed.all_gather_object({"a": 1}) == [{"a": 1}]
    assert distributed.broadcast_object("x") == "x"
    t = torch.arange(3.0)
    assert distributed.broadcast_tensor(t) is t and distributed.all_reduce_sum(t) is t
    assert distributed.shard_batches([[0, 1], [2], [3]]) == [[0, 1], [2], [3]]
    np.testing.assert_array_equal(distributed.gather_by_index([2, 0, 1], np.array([[3.0], [1.0], [2.0]]), 3),
                                  [[1.0], [2.0], [3.0]])
    with pytest.raises(RuntimeError, match="1 of 3 rows computed by no rank"):
        distributed.gather_by_index([0, 1], np.zeros((2, 1)), 3)
    distributed.barrier()
    assert distributed.init("cpu") is False  # no torchrun environment: nothing to join


def test_torchrun_command_and_relaunch_arguments():
    import argparse

    from hildif.commands.train import relaunch_args

    cmd = distributed.torchrun_command(4, ["train", "--resume"])
    assert cmd[1:] == ["-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc-per-node=4", "-m",
                       "hildif.cli", "train", "--resume"]
    with pytest.raises(ValueError, match="at least 1"):
        distributed.torchrun_command(0, ["train"])
    args = argparse.Namespace(profile="paper", config=None, data_dir="d", run_dir="r", model=None,
                              overrides=["train.batch_size=64"], resume=True, no_eval=False, verbose=True, nproc=8)
    assert relaunch_args(args) == ["train", "--profile", "paper", "--data-dir", "d", "--run-dir", "r", "--set",
                                   "train.batch_size=64", "--resume", "--verbose"]


# ---------------------------------------------------------------------------------------------- training
def test_training_on_two_processes_matches_one(runs):
    one, two, _ = runs("train")
    assert [r["world_size"] for r in two] == [2, 2] and one["world_size"] == 1
    for res in two:
        assert res["steps"] == one["steps"] == 14 and res["examples_seen"] == one["examples_seen"]
        np.testing.assert_allclose(res["losses"], one["losses"], rtol=1e-5, atol=1e-6)
        assert [e["step"] for e in res["evals"]] == [e["step"] for e in one["evals"]]
        np.testing.assert_allclose([e["accuracy"] for e in res["evals"]], [e["accuracy"] for e in one["evals"]])
        for name, w in one["weights"].items():
            torch.testing.assert_close(res["weights"][name], w, rtol=1e-5, atol=1e-6, msg=name)
    # every rank reports the same (all-reduced) losses
    assert two[0]["losses"] == two[1]["losses"]


def test_training_resumes_on_two_processes(runs):
    one, two, _ = runs("train")
    for res in two:
        assert res["part_steps"] == 3 and res["resumed_from"] == 3
        np.testing.assert_allclose(res["resumed_losses"], one["losses"], rtol=1e-5, atol=1e-6)
        for name, w in one["weights"].items():  # resuming into another initialisation ends where the full run does
            torch.testing.assert_close(res["resumed_weights"][name], w, rtol=1e-5, atol=1e-6, msg=name)


def test_only_rank_0_writes_training_state_checkpoints_and_reports(runs):
    _, two, out = runs("train")
    assert _files(out / "rank1") == []  # rank 1 was given its own folders and wrote nothing there
    files = _files(out / "rank0")
    assert "state/train_state/state.pt" in files
    version = two[0]["version"]
    assert two[1]["version"] == version  # broadcast by rank 0
    assert f"run/models/{version}/hildif.json" in files and "run/models/current.json" in files
    assert not [f for f in files if "/." in f or f.startswith(".")], "no staging or temporary file left"
    assert two[1]["report_paths"] == two[0]["report_paths"] == ["reports/report.json", "reports/report.md",
                                                                "reports/report.png"]
    assert set(two[0]["report_paths"]) <= set(files)
    state = torch.load(out / "rank0" / "state" / "train_state" / "state.pt", weights_only=False)
    assert len(state["rank_rngs"]) == 2  # each rank's RNG state travels with the checkpoint


# ---------------------------------------------------------------------------------------------- evaluation
def test_sharded_evaluation_gives_the_same_metrics(runs):
    one, two, out = runs("evaluate")
    for res in two:
        assert res["result"] == one["result"]  # every HANS cell, subcase and MNLI accuracy
        np.testing.assert_allclose(res["probs"], one["probs"], rtol=0, atol=1e-6)
    assert one["result"]["hans"]["n"] == 300 and one["result"]["mnli"]["n"] == 200
    assert _files(out / "rank1") == []


# ---------------------------------------------------------------------------------------------- influence
@pytest.mark.parametrize("variant", ["cg", "cg-no-prefix", "lissa", "mean-query", "cg-cached"])
def test_sharded_explain_gives_the_single_process_top_p(runs, variant):
    one, two, out = runs("explain")
    for res in two:
        assert len(res[variant]) == len(one[variant]) == 3
        for mine, ref in zip(res[variant], one[variant]):
            assert [(i, r) for i, _, r in mine] == [(i, r) for i, _, r in ref]  # the same examples, same ranks
            np.testing.assert_allclose([s for _, s, _ in mine], [s for _, s, _ in ref], rtol=1e-6, atol=1e-9)
    assert two[0][variant] == two[1][variant]  # every rank returns the same explanations
    if variant == "cg-cached":
        assert two[0]["cg-cached:from_cache"] == [True] * 3
    assert _files(out / "rank1") == []
    assert any(f.endswith(".faiss") for f in _files(out / "rank0" / "cache"))


# ---------------------------------------------------------------------------------------------- the command
def _hildif_train(run_dir: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "hildif.cli", "train", "--nproc", "2", "--run-dir", str(run_dir), "--data-dir",
           str(data_dir), "--set", "model.name_or_path=tiny", "--set", "data.max_train_examples=120",
           "--set", "train.max_steps=3", "--set", "train.eval_examples=20", "--set", "eval.hans_sample=60",
           "--set", "eval.mnli_sample=40", *extra]
    return subprocess.run(cmd, cwd=run_dir.parent, env=_env(), capture_output=True, text=True,
                          timeout=SAFETY_TIMEOUT_S)


def test_hildif_train_nproc_2_trains_saves_once_and_evaluates(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    proc = _hildif_train(run_dir, data_dir, "--set", "train.batch_size=8")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("trained model version") == 1  # rank 0 alone prints
    versions = [p.name for p in (run_dir / "models").iterdir() if p.is_dir()]
    assert len(versions) == 1 and not versions[0].startswith(".")
    assert json.loads((run_dir / "models" / "current.json").read_text())["version"] == versions[0]
    meta = json.loads((run_dir / "models" / versions[0] / "hildif.json").read_text())
    assert meta["train"]["steps"] == 3 and meta["train"]["examples_seen"] == 24  # 3 global batches of 8
    report = json.loads((run_dir / "reports" / "baseline.json").read_text())
    assert report["results"][versions[0]]["hans"]["n"] == 60 and report["results"][versions[0]]["mnli"]["n"] == 40
    assert (run_dir / "logs" / "hildif.log").exists() and (run_dir / "logs" / "hildif.rank1.log").exists()


def test_hildif_train_nproc_rejects_a_batch_the_processes_do_not_divide(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    proc = _hildif_train(run_dir, data_dir, "--set", "train.batch_size=7", "--no-eval")
    assert proc.returncode != 0
    assert "batch_size=7 is the global batch size: it must be divisible by the 2 processes" in proc.stderr
    assert not (run_dir / "models").exists()
