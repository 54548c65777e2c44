"""The ablation runner with the tiny model: real influence (FastIF, k = 20), real simulated annotators and
aggregation, real augmentation (WordNet synonyms), real fine-tuning and evaluation on small HANS/MNLI samples.

Two configurations (HS,DA,H and ¬HS,¬DA,¬H) x p in {2, 4} x one seed, then resuming, adding a seed, the CLI, and
a changed setting. The tests of the integration part share one output directory and run in order.
"""

from __future__ import annotations

import json
import random
import statistics

import pytest

from hildif.experiments.ablation import (
    BY_KEY, CONFIGURATIONS, AblationError, AblationSettings, cells_of, parse_configurations,
)
from hildif.rounds.finetune import build_finetuning_set

OVERRIDES = [
    "data.max_train_examples=300", "model.device=cpu", "influence.k=20", "influence.lissa_steps=10",
    "influence.grad_batch_size=16", "feedback.augmenters=synonym", "feedback.copies_per_point=1",
    "finetune.epochs=1", "finetune.batch_size=8", "eval.hans_sample=60", "eval.mnli_sample=60", "eval.batch_size=64",
    # the runner is tested on the paper's g(z, s) alone; construction pairs and rehearsal have their own tests
    # (tests/test_influence_neighbourhood.py, tests/test_rounds_finetune.py)
    "feedback.constructions=", "finetune.rehearsal_ratio=0",
]
PAIR = "hs-da-h,nohs-noda-noh"


# ---------------------------------------------------------------------------------------------- unit
def test_the_papers_eight_configurations_in_figure_1c_order():
    assert len(CONFIGURATIONS) == 8 and len(set(CONFIGURATIONS)) == 8
    assert [c.key for c in CONFIGURATIONS] == [
        "hs-da-h", "hs-da-noh", "hs-noda-h", "hs-noda-noh", "nohs-da-h", "nohs-da-noh", "nohs-noda-h", "nohs-noda-noh"]
    assert CONFIGURATIONS[0].label == "HS, DA, H" and CONFIGURATIONS[-1].label == "¬HS, ¬DA, ¬H"
    assert parse_configurations("nohs-noda-noh, HS-DA-H") == [BY_KEY["hs-da-h"], BY_KEY["nohs-noda-noh"]]
    assert parse_configurations("all") == list(CONFIGURATIONS) == parse_configurations(None)
    with pytest.raises(AblationError, match="unknown configuration.*hs-xx.*known: all, hs-da-h"):
        parse_configurations("hs-da-h,hs-xx")


def test_settings_are_checked_and_cells_grouped_by_anchor_set():
    with pytest.raises(AblationError, match="top-p values must be >= 1"):
        AblationSettings(top_ps=[0])
    with pytest.raises(AblationError, match="no_augmentation='twice'"):
        AblationSettings(no_augmentation="twice")
    s = AblationSettings(configurations=parse_configurations(PAIR), top_ps=[20, 10, 10], seeds=[1, 0])
    assert s.top_ps == [10, 20] and s.seeds == [0, 1] and "explained_top_p" not in s.shaping()
    keys = [c.key for c in cells_of(s)]
    # handpicked cells first (one anchor set), then random-anchor cells seed by seed (one anchor set per seed)
    assert keys == ["hs-da-h_p10_s0", "hs-da-h_p10_s1", "hs-da-h_p20_s0", "hs-da-h_p20_s1",
                    "nohs-noda-noh_p10_s0", "nohs-noda-noh_p20_s0", "nohs-noda-noh_p10_s1", "nohs-noda-noh_p20_s1"]


def test_settings_changes_name_each_setting_that_differs():
    from hildif.experiments.ablation import settings_changes

    recorded = {"finetune": {"learning_rate": 1e-5, "epochs": 2.0}, "settings": {"n_anchors": 5}}
    current = {"finetune": {"learning_rate": 1e-5, "epochs": 3.0, "rehearsal_balance": "contrast"},
               "settings": {"n_anchors": 5}}
    assert settings_changes(recorded, current) == [
        "finetune.epochs: 2.0 -> 3.0", 'finetune.rehearsal_balance: (not recorded) -> "contrast"']
    assert settings_changes(current, current) == []
    assert settings_changes(None, current) == ["settings not stored with the cell (recorded by an older hildif)"]


def test_without_augmentation_each_influential_example_is_repeated_by_score_or_used_once():
    from hildif.config import load_config
    from hildif.data.example import Example

    cfg = load_config(overrides=["feedback.copies_per_point=2", "feedback.score_threshold=2",
                                 "feedback.constructions=", "finetune.rehearsal_ratio=0"])
    a, b, c = (Example(i, f"premise {i}", f"hypothesis {i}", 1) for i in "abc")
    scored = [(a, 5.0), (b, 1.0), (c, 2.5)]
    fts = build_finetuning_set(scored, cfg, augmentation=False, no_augmentation="repeat")
    assert [e.id for e in fts.examples] == ["a"] * 10 + ["c"] * 5  # round(2 * s); b is below the threshold
    assert fts.stats["no_augmentation"] == {"mode": "repeat", "items": 3, "examples": 15, "distinct": 2}
    assert fts.stats["parts"] == {"rated": 2, "copies": 13, "rehearsal": 0} and fts.stats["size"] == 15
    once = build_finetuning_set(scored, cfg, augmentation=False, no_augmentation="once")
    assert [e.id for e in once.examples] == ["a", "c"]


# ---------------------------------------------------------------------------------------------- integration
@pytest.fixture(scope="module")
def env(tmp_path_factory, data_dir):
    """A run directory whose current model is a tiny BERT trained for 40 steps on 300 MNLI rows."""
    from hildif.config import TrainConfig, load_config
    from hildif.data.splits import load_anchors, load_dev, load_train
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier
    from hildif.model.training import train

    run = tmp_path_factory.mktemp("ablation-run")
    cfg = load_config(overrides=[f"data.data_dir={data_dir}", f"run.run_dir={run}", *OVERRIDES])
    train_set = load_train(cfg.data)
    clf = build_tiny_classifier(train_set + load_anchors(cfg.data) + load_dev(cfg.data)[:3000], seed=0)
    train(clf, train_set, TrainConfig(max_steps=40, batch_size=16, learning_rate=2e-3, warmup_ratio=0.0),
          progress=False)
    version = ModelRegistry(run).save(clf, {"kind": "baseline", "source": "tiny"})
    return {"cfg": cfg, "run": run, "out": run / "ablation", "version": version}


FIRST_KEYS = ["hs-da-h_p2_s0", "hs-da-h_p4_s0", "nohs-noda-noh_p2_s0", "nohs-noda-noh_p4_s0"]


@pytest.fixture(scope="module")
def first_run(env):
    """The first ablation run (two configurations, p = 2 and 4, seed 0) and its cells' modification times."""
    from hildif.experiments.ablation import run_ablation

    run = run_ablation(env["cfg"], _settings(), out_dir=env["out"], progress=False)
    mtimes = {k: (env["out"] / "cells" / f"{k}.json").stat().st_mtime_ns for k in run.computed}
    return run, mtimes


def _settings(seeds=(0,), configs=PAIR):
    return AblationSettings(configurations=parse_configurations(configs), top_ps=[2, 4], seeds=list(seeds),
                            n_anchors=2)


def _cell(env, key):
    return json.loads((env["out"] / "cells" / f"{key}.json").read_text())


@pytest.mark.integration
def test_ablation_cells_tables_and_plots(env, first_run):
    from hildif.data.splits import load_anchors, load_dev, load_train
    from hildif.experiments.panel import simulated_panel
    from hildif.feedback import simulate_ratings

    cfg, out = env["cfg"], env["out"]
    run = first_run[0]
    keys = FIRST_KEYS
    assert run.computed == keys and run.reused == []
    cells = {k: _cell(env, k) for k in keys}
    assert all(c["digest"] == json.loads((out / "manifest.json").read_text())["digest"] for c in cells.values())
    # one explanation per anchor set (handpicked; random with seed 0), computed at p = 4 and shared with p = 2
    assert len(list((out / "explanations").glob("*.json"))) == 2
    assert len(list((env["run"] / "cache" / "influence").glob("knn-*/index.faiss"))) == 1  # one index, where rounds keep it
    assert cells["hs-da-h_p2_s0"]["anchors"] == ["49703e", "98315c"]  # the paper's first two anchors
    dev = load_dev(cfg.data)
    assert cells["nohs-noda-noh_p2_s0"]["anchors"] == [e.id for e in random.Random(0).sample(dev, 2)]
    for conf in ("hs-da-h", "nohs-noda-noh"):
        p2, p4 = cells[f"{conf}_p2_s0"]["pairs"], cells[f"{conf}_p4_s0"]["pairs"]
        assert len(p2) == 4 and len(p4) == 8
        for anchor in cells[f"{conf}_p2_s0"]["anchors"]:
            first4 = [p["example_id"] for p in p4 if p["anchor_id"] == anchor]
            assert [p["example_id"] for p in p2 if p["anchor_id"] == anchor] == first4[:2]
            influence = [p["influence"] for p in p4 if p["anchor_id"] == anchor]
            assert influence == sorted(influence)  # most helpful (most negative) first

    # ¬HS: every pair scores 5; ¬DA (repeat): each influential example 5 x copies_per_point (= 1) times
    noh = cells["nohs-noda-noh_p4_s0"]
    assert {p["score"] for p in noh["pairs"]} == {5.0}
    assert noh["fine_tuning_set"]["size"] == 5 * 8
    assert noh["fine_tuning_set"]["stats"]["no_augmentation"]["mode"] == "repeat"
    # HS: the median of the three simulated annotators' ratings, recomputed here from the annotators directly
    hs = cells["hs-da-h_p4_s0"]
    train_by_id = {e.id: e for e in load_train(cfg.data)}
    anchors = {e.id: e for e in load_anchors(cfg.data)}
    pairs = [(anchors[p["anchor_id"]], train_by_id[p["example_id"]]) for p in hs["pairs"]]
    ratings = simulate_ratings(simulated_panel(3, seed=0), pairs)
    for (a, z), p in zip(pairs, hs["pairs"]):
        mine = sorted(r.score for r in ratings if (r.anchor_id, r.example_id) == (a.id, z.id))
        assert len(mine) == 3 and p["score"] == float(mine[1])
    # DA: originals plus synonym copies (round(1 x score) per pair)
    stats = hs["fine_tuning_set"]["stats"]["augmentation"]
    assert hs["fine_tuning_set"]["size"] == stats["originals"] + stats["produced"] > len(hs["pairs"])
    assert stats["requested"] == sum(int(p["score"] + 0.5) for p in hs["pairs"])
    assert hs["train"]["steps"] >= 1 and hs["evaluation"]["hans"]["n"] == 60 and hs["evaluation"]["mnli"]["n"] == 60

    # the report: single seed -> means equal the cell's numbers; the baseline row is the baseline's evaluation
    summary = json.loads((out / "ablation.json").read_text())
    md = (out / "ablation.md").read_text()
    for key, cell in cells.items():
        group = summary["groups"][key.rsplit("_", 1)[0]]
        ev = cell["evaluation"]
        assert group["mnli"] == {"mean": ev["mnli"]["accuracy"], "std": None, "values": [ev["mnli"]["accuracy"]]}
        for h, classes in ev["hans"]["by_heuristic"].items():
            assert group["by_heuristic"][h]["entailment"]["mean"] == classes["entailment"]
            assert group["by_heuristic"][h]["non-entailment"]["mean"] == classes["non-entailment"]
    row = next(line for line in md.splitlines() if line.startswith("| HS, DA, H |"))
    lo = cells["hs-da-h_p2_s0"]["evaluation"]["hans"]["by_heuristic"]["lexical_overlap"]
    assert row.split(" | ")[1] == f"({lo['entailment']:.2f}, {lo['non-entailment']:.2f})"
    base = json.loads((out / "baseline.json").read_text())
    assert base["version"] == env["version"]
    base_row = next(line for line in md.splitlines() if line.startswith("| baseline |") and "(" in line)
    con = base["evaluation"]["hans"]["by_heuristic"]["constituent"]
    assert base_row.split(" | ")[3] == f"({con['entailment']:.2f}, {con['non-entailment']:.2f})"
    assert "| ¬HS, ¬DA, ¬H |" in md and "## MNLI dev_matched accuracy % (Figure 1a)" in md
    for name in ("figure_1a.png", "figure_1b_p2.png", "figure_1b_p4.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration
def test_rerun_resumes_without_recomputing_and_a_new_seed_adds_only_its_cells(env, first_run):
    from hildif.experiments.ablation import run_ablation

    cfg, out = env["cfg"], env["out"]
    mtimes = first_run[1]
    assert sorted(mtimes) == sorted(FIRST_KEYS)
    again = run_ablation(cfg, _settings(), out_dir=out, progress=False)
    assert again.computed == [] and len(again.reused) == 4
    now = {k: (out / "cells" / f"{k}.json").stat().st_mtime_ns for k in mtimes}
    assert now == mtimes

    more = run_ablation(cfg, _settings(seeds=(0, 1), configs="nohs-noda-noh"), out_dir=out, progress=False)
    assert more.computed == ["nohs-noda-noh_p2_s1", "nohs-noda-noh_p4_s1"]
    assert more.reused == ["nohs-noda-noh_p2_s0", "nohs-noda-noh_p4_s0"]
    group = more.summary["groups"]["nohs-noda-noh_p2"]
    values = [_cell(env, f"nohs-noda-noh_p2_s{s}")["evaluation"]["mnli"]["accuracy"] for s in (0, 1)]
    assert group["seeds"] == [0, 1] and group["mnli"]["values"] == values
    assert group["mnli"]["std"] == round(statistics.stdev(values), 2)
    assert _cell(env, "nohs-noda-noh_p2_s1")["anchors"] != _cell(env, "nohs-noda-noh_p2_s0")["anchors"]
    assert len(list((out / "explanations").glob("*.json"))) == 3  # + the random anchors of seed 1


@pytest.mark.integration
def test_a_larger_p_computes_only_its_cells_and_extends_the_smaller_ps_ranking(env, first_run):
    from hildif.experiments.ablation import run_ablation

    cfg, out = env["cfg"], env["out"]
    only_two = run_ablation(cfg, AblationSettings(configurations=parse_configurations("hs-da-h"), top_ps=[2],
                                                  seeds=[0], n_anchors=2), out_dir=out, progress=False)
    assert only_two.computed == [] and only_two.reused == ["hs-da-h_p2_s0"]
    wider = run_ablation(cfg, AblationSettings(configurations=parse_configurations("hs-da-h"), top_ps=[4, 6],
                                               seeds=[0], n_anchors=2), out_dir=out, progress=False)
    assert wider.computed == ["hs-da-h_p6_s0"] and wider.reused == ["hs-da-h_p4_s0"]
    # explained at p = 6 now (a new explanation file); each anchor's first 4 are the p = 4 cell's, in order
    six, four = _cell(env, "hs-da-h_p6_s0")["pairs"], _cell(env, "hs-da-h_p4_s0")["pairs"]
    for anchor in {p["anchor_id"] for p in six}:
        assert ([p["example_id"] for p in six if p["anchor_id"] == anchor][:4]
                == [p["example_id"] for p in four if p["anchor_id"] == anchor])


@pytest.mark.integration
def test_cli_resumes_and_prints_the_tables(env, first_run, capsys):
    from hildif.cli import main

    cfg = env["cfg"]
    args = ["experiment", "ablation", "--run-dir", str(env["run"]), "--data-dir", cfg.data.data_dir,
            "--out", str(env["out"]), "--configs", PAIR, "--p", "2,4", "--seeds", "1", "--anchors", "2",
            "--no-progress", *sum((["--set", o] for o in OVERRIDES), [])]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "cells computed now: 0, reused" in printed and ": 4;" in printed
    assert "| HS, DA, H |" in printed and "| ¬HS, ¬DA, ¬H |" in printed and "ablation.md" in printed

    assert main(["experiment", "ablation", "--run-dir", str(env["run"]), "--configs", "hs-da-x"]) == 1
    assert "unknown configuration(s) hs-da-x" in capsys.readouterr().err


@pytest.mark.integration
def test_a_changed_setting_recomputes_the_cell_and_no_baseline_is_a_clear_error(env, first_run, tmp_path):
    import dataclasses

    from hildif.experiments.ablation import run_ablation

    cfg, out = env["cfg"], env["out"]
    changed = dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, learning_rate=2e-5))
    before = _cell(env, "nohs-noda-noh_p2_s0")
    run = run_ablation(changed, _settings(configs="nohs-noda-noh"), out_dir=out, progress=False)
    assert run.computed == ["nohs-noda-noh_p2_s0", "nohs-noda-noh_p4_s0"]  # fine-tuning changed: recomputed
    # and the run says what changed since each cell was recorded
    assert run.summary["cells_recomputed"] == {k: [f"finetune.learning_rate: {json.dumps(cfg.finetune.learning_rate)} "
                                                   f"-> 2e-05"] for k in run.computed}
    after = _cell(env, "nohs-noda-noh_p2_s0")
    assert after["digest"] != before["digest"] and after["pairs"] == before["pairs"]  # explanation reused

    empty = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, run_dir=str(tmp_path)))
    with pytest.raises(AblationError, match=r"no baseline: .*models/current.json does not exist"):
        run_ablation(empty, _settings(), out_dir=tmp_path / "x", progress=False)


def test_a_cell_recorded_with_a_setting_found_not_to_shape_it_stays_current():
    from hildif.experiments.ablation import _digest, is_current, manifest_digest, recorded_shaping, settings_changes

    current = {"baseline": "v1", "settings": {"n_anchors": 5}, "finetune": {"epochs": 2.0}}
    digest = _digest(current)
    older = {"digest": "0" * 16, "settings": {**current, "settings": {"n_anchors": 5, "explained_top_p": 10}}}
    assert recorded_shaping(older) == current and is_current(older, digest)
    assert settings_changes(recorded_shaping(older), current) == []
    changed = {"digest": digest, "settings": {**current, "finetune": {"epochs": 3.0}}}
    assert not is_current(changed, digest)  # its settings, not the digest it carries, decide
    assert is_current({"digest": digest}, digest) and not is_current({"digest": "x"}, digest)  # no settings kept
    # a folder's manifest names the digest its cells are current against, whichever hildif wrote it
    manifest = {"digest": "0" * 16, "baseline_path": "models/v1", **older["settings"]}
    assert manifest_digest(manifest) == digest
    assert manifest_digest({**manifest, "explained_top_p": 20, "settings": current["settings"]}) == digest


@pytest.mark.integration
def test_the_written_manifest_names_the_digest_of_its_cells(env, first_run):
    from hildif.experiments.ablation import is_current, manifest_digest

    manifest = json.loads((env["out"] / "manifest.json").read_text())
    assert manifest_digest(manifest) == manifest["digest"] and manifest["explained_top_p"] >= 2
    # the last run (the changed learning rate above) recomputed nohs-noda-noh; hs-da-h keeps the old rate's cells
    assert is_current(_cell(env, "nohs-noda-noh_p2_s0"), manifest_digest(manifest))
    assert not is_current(_cell(env, "hs-da-h_p2_s0"), manifest_digest(manifest))
