"""benchmarks/own_project_genre.py's controls, without the benchmark's model: the sets of variants (b) and (c) built
from a shipped round's set on genuine genre rows, then the whole script on the tiny model (one seed, every variant),
its results file, and a rerun that reuses every finished cell."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "own_project_genre.py"


def _module():
    spec = importlib.util.spec_from_file_location("own_project_genre", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def genre(data_dir):
    from hildif.rounds.task import load_round_task

    mod = _module()
    args = argparse.Namespace(run_dir="unused", train_examples=300, top_p=3, set=[f"data.data_dir={data_dir}"])
    cfg = mod.round_config(args)
    return mod, cfg, load_round_task(cfg)


def test_controls_hold_no_rated_row_and_match_the_rounds_size(genre):
    from hildif.data.splits import text_key
    from hildif.rounds.finetune import build_finetuning_set

    mod, cfg, data = genre
    assert not cfg.feedback.constructions and not cfg.feedback.syntactic  # a task round's NLI pairs are off
    scored = [(e, 4.0) for e in data.train[:6]]
    shipped = build_finetuning_set(scored, cfg, train_pool=data.train, seed=0, label_names=data.task.labels)
    rehearsal = [e for e in shipped.examples if mod.is_rehearsal(e)]
    core = len(shipped.examples) - len(rehearsal)
    assert rehearsal and core == shipped.stats["parts"]["rated"] + shipped.stats["parts"]["copies"] > len(scored)
    sets = mod.control_sets(shipped, scored, data.train, seed=1000)
    rated_ids, rated_text = {e.id for e, _ in scored}, {text_key(e) for e, _ in scored}
    copies = {e.premise for e in shipped.examples[:core]}  # the rated examples and their augmented copies
    b, c = sets["rehearsal"].examples, sets["random"].examples
    assert [e.id for e in b] == [e.id for e in rehearsal]  # (b): the round's rehearsal rows, nothing else
    assert not {e.id for e in b} & rated_ids and not {e.premise for e in b} & copies
    assert len(c) == len(shipped.examples) and c[core:] == rehearsal  # (c): the round's size, the same rehearsal
    drawn = c[:core]
    assert all(e.metadata.get("random_control") and not mod.is_rehearsal(e) for e in drawn)
    assert len({e.id for e in drawn}) == core and not {e.id for e in drawn} & ({e.id for e in rehearsal} | rated_ids)
    assert not {text_key(e) for e in drawn} & rated_text and not {e.premise for e in drawn} & copies
    train_ids = {e.id for e in data.train}
    assert {e.id for e in drawn} <= train_ids
    assert sets["random"].stats["parts"] == {"random": core, "rehearsal": len(rehearsal)}
    again = mod.control_sets(shipped, scored, data.train, seed=1000)["random"].examples
    assert [e.id for e in again] == [e.id for e in c]  # seeded
    assert [e.id for e in mod.control_sets(shipped, scored, data.train, seed=1001)["random"].examples] != \
        [e.id for e in c]


def _run(run_dir: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    return subprocess.run([sys.executable, str(SCRIPT), "--model", "tiny", "--train-examples", "200", "--anchors", "2",
                           "--top-p", "3", "--seeds", "0", "--run-dir", str(run_dir), "--out", str(out),
                           "--set", "finetune.epochs=1"], env=env, capture_output=True, text=True, timeout=600)


def test_one_run_has_every_variant_and_a_rerun_reuses_them(tmp_path):
    run, out = tmp_path / "run", tmp_path / "own_project_genre.md"
    proc = _run(run, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert res["missing"] == [] and set(res["explain_seconds"]) == {"genre-knn", "genre-store"}
    cells = {v: res["variants"][v]["seeds"]["0"] for v in ("shipped", "rehearsal", "random", "store")}
    a, b, c = cells["shipped"]["fine_tuning_set"], cells["rehearsal"]["fine_tuning_set"], \
        cells["random"]["fine_tuning_set"]
    assert b["parts"] == {"rated": 0, "copies": 0, "rehearsal": a["parts"]["rehearsal"]}
    assert c["size"] == a["size"] and c["parts"]["random"] == a["parts"]["rated"] + a["parts"]["copies"]
    for cell in cells.values():
        assert 0 <= cell["metrics"]["accuracy"] <= 100 and set(cell["by_label"]) == {
            "fiction", "government", "slate", "telephone", "travel"}
    assert set(res["differences"]) == {"a - b", "a - c", "d - a"}
    assert res["differences"]["a - b"]["accuracy"]["values"] == [round(
        cells["shipped"]["metrics"]["accuracy"] - cells["rehearsal"]["metrics"]["accuracy"], 2)]
    text = out.read_text(encoding="utf-8")
    assert "(b) rehearsal rows alone" in text and "Not finished" not in text
    stamps = {p.name: p.stat().st_mtime_ns for p in (run / "controls").glob("*-seed0.json")}
    assert len(stamps) == 4
    proc = _run(run, out)  # everything finished: nothing is trained again
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in (run / "controls").glob("*-seed0.json")} == stamps
    assert "train:" not in proc.stderr
