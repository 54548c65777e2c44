"""Naik et al.'s stress sets (hildif.data.stress): each rule's exact text on real MNLI dev rows, labels kept, and the
sets in ``hildif evaluate``, a sync's round report, the promotion gate (reported; deciding only when configured) and
the ablation's summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hildif.config import ConfigError, DataConfig, load_config
from hildif.data.example import Example


@pytest.fixture(scope="module")
def dev(data_dir):
    from hildif.data.splits import load_dev

    return load_dev(DataConfig(data_dir=str(data_dir)))


def _row(dev, pair_id):
    return next(e for e in dev if e.id == pair_id)


def test_distraction_rules_give_the_documented_text_on_dev_rows(dev):
    from hildif.data.stress import length_mismatch, negation, word_overlap

    first = dev[0]  # idx 0, no closing mark: the phrase goes at the end
    assert (first.premise, first.hypothesis) == ("The new rights are nice enough",
                                                 "Everyone really likes the newest benefits")
    assert word_overlap(first).hypothesis == "Everyone really likes the newest benefits and true is true"
    assert negation(first).hypothesis == "Everyone really likes the newest benefits and false is not true"
    assert length_mismatch(first).premise == "The new rights are nice enough" + " and true is true" * 5
    second = dev[1]  # a closing "." stays last
    assert second.hypothesis == ("The Government Executive articles housed on the website are not able to be "
                                 "searched.")
    assert word_overlap(second).hypothesis == ("The Government Executive articles housed on the website are not "
                                               "able to be searched and true is true.")
    assert negation(second).hypothesis == ("The Government Executive articles housed on the website are not able "
                                           "to be searched and false is not true.")
    assert length_mismatch(second).premise == (second.premise[:-1] + " and true is true" * 5 + ".")
    question = next(e for e in dev if e.hypothesis.endswith("?"))
    assert word_overlap(question).hypothesis == question.hypothesis[:-1] + " and true is true?"
    for rule in (word_overlap, negation):  # the premise is untouched, and length mismatch keeps the hypothesis
        assert rule(second).premise == second.premise
    assert length_mismatch(second).hypothesis == second.hypothesis


def test_append_phrase_keeps_a_space_before_the_marks_and_never_cuts():
    from hildif.data.stress import append_phrase

    assert append_phrase("He left .", " and true is true") == "He left and true is true ."
    assert append_phrase("Mr. Smith left. He came back!! ", " and x") == "Mr. Smith left. He came back and x!!"
    assert append_phrase("no mark  ", " and x") == "no mark and x"


def test_spelling_error_is_one_keyboard_typo_seeded_per_row(dev):
    from hildif.data.stress import KEYBOARD, build_stress_set, spelling_error

    rows = dev[:300]
    typos = build_stress_set("spelling_error", rows)
    assert len(typos) == len(rows)
    for ex, typo in zip(rows, typos):
        assert typo.premise == ex.premise and len(typo.hypothesis) == len(ex.hypothesis)
        diff = [i for i, (a, b) in enumerate(zip(ex.hypothesis, typo.hypothesis)) if a != b]
        assert len(diff) == 1, (ex.hypothesis, typo.hypothesis)
        a, b = ex.hypothesis[diff[0]], typo.hypothesis[diff[0]]
        assert b.lower() in KEYBOARD[a.lower()] and a.isupper() == b.isupper()
    # the same row gets the same typo in any sample and order; another seed draws another
    shuffled = rows[::-1]
    assert build_stress_set("spelling_error", shuffled)[::-1] == typos
    assert [spelling_error(e, seed=1) for e in rows] != typos
    assert spelling_error(Example("x", "p", "a 1 ?", 0)) is None  # nothing to misspell: left out


def test_every_set_keeps_labels_ids_and_size(dev):
    from hildif.data.stress import STRESS_SETS, stress_sets

    rows = dev[:500]
    sets = stress_sets(rows, STRESS_SETS)
    assert list(sets) == list(STRESS_SETS)
    for name, made in sets.items():
        assert len(made) == len(rows)
        for ex, s in zip(rows, made):
            assert s.label == ex.label and s.id == f"{ex.id}@{name}"
            assert s.metadata["stress"] == name and s.metadata["source_id"] == ex.id
            assert s.metadata["gold_label"] == ex.metadata["gold_label"]


def test_the_config_vocabulary_is_the_module_s_and_a_bad_name_names_the_field():
    from hildif.config import STRESS_SETS as CONFIG_SETS
    from hildif.data.stress import STRESS_SETS, StressSetError, stress_sets

    assert CONFIG_SETS == STRESS_SETS
    assert load_config().eval.stress_sets == list(STRESS_SETS)
    assert load_config(overrides=["eval.stress_sets="]).eval.stress_sets == []
    with pytest.raises(ConfigError, match=r"eval\.stress_sets=.*'negations'.*expected one of word_overlap"):
        load_config(overrides=["eval.stress_sets=word_overlap,negations"])
    with pytest.raises(StressSetError, match="unknown stress set 'nope'"):
        stress_sets([], ["nope"])


def test_evaluate_reports_each_set_per_gold_class(tiny_clf, hans_sample, dev, tmp_path):
    from hildif.data.stress import stress_sets
    from hildif.model.evaluation import evaluate, write_report

    mnli = dev[:40]
    res = evaluate(tiny_clf, hans_sample[:30], mnli, stress=stress_sets(mnli, ["negation", "length_mismatch"]))
    assert list(res["stress"]) == ["negation", "length_mismatch"]
    for table in (*res["stress"].values(), res["stress_reference"]):
        assert table["n"] == 40 and set(table["by_class"]) == {"entailment", "non-entailment"}
        assert table["n_by_class"]["entailment"] == sum(e.label for e in mnli)
    assert res["stress_reference"]["accuracy"] == res["mnli"]["accuracy"]
    md = Path(write_report(res, tmp_path)["markdown"]).read_text()
    assert "## stress tests (Naik et al. 2018" in md and "| negation | model | 40 |" in md


def test_hildif_evaluate_writes_the_configured_sets(tiny_clf, data_dir, tmp_path, capsys):
    from hildif.cli import main
    from hildif.model.registry import ModelRegistry

    ModelRegistry(tmp_path).save(tiny_clf, {"kind": "base", "source": "tiny"})
    args = ["evaluate", "--run-dir", str(tmp_path), "--data-dir", str(data_dir), "--set", "model.device=cpu",
            "--set", "eval.hans_sample=30", "--set", "eval.mnli_sample=30"]
    assert main([*args, "--set", "eval.stress_sets=word_overlap,spelling_error"]) == 0
    out = capsys.readouterr().out
    assert "Stress tests (Naik et al. 2018)" in out and "| spelling error |" in out and "| negation |" not in out
    result = json.loads((tmp_path / "reports" / "evaluation.json").read_text())["results"]
    (stress,) = [r["stress"] for r in result.values()]
    assert list(stress) == ["word_overlap", "spelling_error"] and all(s["n"] == 30 for s in stress.values())
    assert main([*args, "--set", "eval.stress_sets=", "--title", "plain"]) == 0
    plain = json.loads((tmp_path / "reports" / "plain.json").read_text())["results"]
    assert all("stress" not in r for r in plain.values())


def _result(mnli, hans, stress):
    return {"mnli": {"accuracy": mnli}, "hans": {"accuracy": hans},
            "stress": {name: {"accuracy": acc, "by_class": {"entailment": acc, "non-entailment": acc}, "n": 10}
                       for name, acc in stress.items()}}


def test_the_gate_reports_the_sets_and_decides_on_them_only_when_configured():
    from hildif.rounds.gate import decide
    from hildif.rounds.report import gate_table

    before = _result(80.0, 50.0, {"negation": 60.0, "word_overlap": 70.0})
    after = _result(80.0, 51.0, {"negation": 40.0, "word_overlap": 70.5})
    kw = {"round_id": "r1", "base_version": "b", "current_version": "b", "versions": {}}
    ft = load_config().finetune
    d = decide(before, after, ft, **kw)
    assert d.serve and not d.reasons  # negation fell 20 points: reported, not decided on
    assert d.checks["stress"]["enabled"] is False
    assert d.checks["stress"]["sets"]["negation"] == {"before": 60.0, "after": 40.0, "drop": 20.0, "ok": True}
    rows = {r[0]: r for r in gate_table(d.to_dict()).rows}
    assert rows["stress negation"][1:4] == ["60.00", "40.00", "-20.00"]
    assert "reported only" in rows["stress negation"][4] and rows["stress negation"][5] == "-"
    ft = load_config(overrides=["finetune.gate_stress_max_drop=1"]).finetune
    d = decide(before, after, ft, **kw)
    assert not d.serve and d.reasons == [
        "stress set negation fell 20.00 points (60.00 -> 40.00), more than finetune.gate_stress_max_drop = 1"]
    rows = {r[0]: r for r in gate_table(d.to_dict()).rows}
    assert rows["stress negation"][5] == "**no**" and rows["stress word overlap"][5] == "yes"


def test_the_ablation_summary_has_the_sets(dev):
    from hildif.experiments.ablation import AblationSettings, parse_configurations
    from hildif.experiments.ablation_report import markdown, summarize

    settings = AblationSettings(configurations=parse_configurations("hs-da-h"), top_ps=[10], seeds=[0, 1])
    cells = [{"key": f"hs-da-h_p10_s{s}", "configuration": settings.configurations[0].to_dict(), "top_p": 10,
              "seed": s, "evaluation": _result(79.0, 60.0, {"negation": 50.0 + s}),
              "fine_tuning_set": {"size": 10}, "seconds": {"total": 1.0}} for s in (0, 1)]
    summary = summarize(cells, {"version": "b", "evaluation": _result(80.0, 50.0, {"negation": 40.0})}, settings)
    group = summary["groups"]["hs-da-h_p10"]
    assert group["stress"]["negation"]["all"] == {"mean": 50.5, "std": 0.71, "values": [50.0, 51.0]}
    assert summary["baseline"]["stress"]["negation"]["entailment"]["mean"] == 40.0
    md = markdown(summary)
    assert "| negation | HS, DA, H | 50.50 ± 0.71 (50.50 ± 0.71, 50.50 ± 0.71) |" in md
    assert "| negation | baseline | 40.00 (40.00, 40.00) |" in md


# ---------------------------------------------------------------------------------------------- a real sync
@pytest.fixture(scope="module")
def sync_env(tmp_path_factory, data_dir):
    from hildif.data.splits import evaluation_sets, load_anchors, load_train
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier

    run = tmp_path_factory.mktemp("stress-run")
    overrides = [
        f"data.data_dir={data_dir}", "data.max_train_examples=300", f"run.run_dir={run}", "model.device=cpu",
        "feedback.augmenters=synonym", "feedback.copies_per_point=1", "finetune.epochs=1", "finetune.batch_size=8",
        "eval.hans_sample=30", "eval.mnli_sample=30", "eval.batch_size=64", "feedback.constructions=",
        "finetune.rehearsal_ratio=0", "finetune.gate_max_mnli_drop=none", "finetune.gate_min_hans_gain=none"]
    cfg = load_config(overrides=overrides)
    hans, mnli = evaluation_sets(cfg.data, cfg.eval)
    pool = load_train(cfg.data)
    clf = build_tiny_classifier(pool + load_anchors(cfg.data) + hans + mnli, seed=0)
    base = ModelRegistry(run).save(clf, {"kind": "base", "source": "tiny"})
    return {"cfg": cfg, "overrides": overrides, "run": run, "base": base, "pool": pool}


def _sync_round(env, cfg, round_id):
    from hildif.data.splits import load_anchors
    from hildif.feedback import Rating
    from hildif.model.registry import ModelRegistry
    from hildif.rounds.state import RoundAnchor, RoundPair, RoundState, now
    from hildif.rounds.sync import PulledRatings, sync_snapshot
    from hildif.utils.locks import file_lock

    anchor = load_anchors(cfg.data)[0]
    rated = env["pool"][:4]
    base = ModelRegistry(env["run"]).current()
    state = RoundState(cfg.run_path("rounds.sqlite"))
    state.create_round(round_id, base, str(ModelRegistry(env["run"]).path(base)), {"method": "test"}, {},
                       [RoundAnchor(anchor, [0.5, 0.5])],
                       [RoundPair(anchor.id, z, i + 1, -1.0) for i, z in enumerate(rated)])
    ratings = [Rating(anchor.id, z.id, "rater@hildif.test", 5, "submitted", now(), f"test:{round_id}/{z.id}")
               for z in rated]
    snapshot = state.add_snapshot(round_id, ratings)
    with file_lock(cfg.run_path(".sync.lock")):
        return sync_snapshot(cfg, round_id, PulledRatings(snapshot.snapshot_id, ratings, {"new": len(ratings)}),
                             progress=False)


def test_a_sync_reports_the_sets_and_the_gate_uses_them_when_configured(sync_env):
    from hildif.data.stress import STRESS_SETS

    res = _sync_round(sync_env, sync_env["cfg"], "r1")
    assert res.status == "trained" and res.served  # MNLI/HANS checks off; the stress sets do not decide
    stress = res.gate["checks"]["stress"]
    assert stress["enabled"] is False and list(stress["sets"]) == list(STRESS_SETS)
    report = Path(res.report_dir)
    summary = json.loads((report / "round.json").read_text())
    assert set(summary["metrics"]["after"]["stress"]) == set(STRESS_SETS)
    md = (report / "round.md").read_text()
    for name in ("word overlap", "negation", "length mismatch", "spelling error"):
        assert f"| stress {name} (all) |" in md and f"| stress {name}, entailment |" in md
        assert f"| stress {name} |" in md  # the gate's table, reported only
    assert "reported only (finetune.gate_stress_max_drop off)" in md
    evaluation = json.loads((report / "evaluation.json").read_text())["results"]
    assert all(set(r["stress"]) == set(STRESS_SETS) and r["stress"]["negation"]["n"] == 30
               for r in evaluation.values())
    assert "## stress tests (Naik et al. 2018" in (report / "evaluation.md").read_text()

    # asked to gain 200 points on every set (impossible): the same kind of sync is held back, naming the sets
    strict = load_config(overrides=[*sync_env["overrides"], "finetune.gate_stress_max_drop=-200"])
    held = _sync_round(sync_env, strict, "r2")
    assert held.status == "trained" and not held.served
    assert held.gate["checks"]["stress"]["enabled"] is True
    assert any(r.startswith("stress set negation fell") and "finetune.gate_stress_max_drop = -200" in r
               for r in held.gate["reasons"])
