"""What a person sees after a round, on a real sync: tiny BERT, three raters who do not always agree, real
augmentation with syntactic pairs and rehearsal rows, fine-tuning and evaluation; no Label Studio (the ratings are
stored as a snapshot directly, as in test_rounds_gate.py).

It checks ``round.md`` (tables and sentences: no JSON block, every table says how it is rounded and keeps to it),
``fine_tuning_set.csv`` (its rows add up to round.json's counts; every copy names a rated source that is in the set
and in the round), ``hildif round show`` and ``round.html`` in the real browser (Chromium, as test_browser_rating.py
drives it: renders, every image embedded and loading, every link resolving, no console error).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from report_checks import check_link, check_page, check_rounding, markdown_links
from test_browser_rating import ARTIFACTS, browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = pytest.mark.integration

RATERS = ("ann1@hildif.test", "ann2@hildif.test", "ann3@hildif.test")
# per influential example, the three raters' scores: agreeing, one apart, flagged (3 apart), low
SCORES = [(5, 5, 5), (4, 5, 4), (2, 5, 4), (1, 1, 2), (3, 4, 4), (5, 4, 5)]


@pytest.fixture(scope="module")
def synced(tmp_path_factory, data_dir):
    from hildif.config import load_config
    from hildif.data.splits import load_anchors, load_train
    from hildif.feedback import Rating
    from hildif.model.registry import ModelRegistry
    from hildif.model.tiny import build_tiny_classifier
    from hildif.rounds.state import RoundAnchor, RoundPair, RoundState, now
    from hildif.rounds.sync import PulledRatings, sync_snapshot
    from hildif.utils.locks import file_lock

    run = tmp_path_factory.mktemp("report-run")
    cfg = load_config(overrides=[
        f"data.data_dir={data_dir}", "data.max_train_examples=300", f"run.run_dir={run}", "model.device=cpu",
        "feedback.augmenters=synonym", "feedback.copies_per_point=1", "feedback.syntactic=swap,passive,clause",
        "finetune.rehearsal_ratio=0.5", "finetune.epochs=1", "finetune.batch_size=8", "eval.hans_sample=60",
        "eval.mnli_sample=60", "eval.batch_size=64", "labelstudio.annotators_per_task=3",
    ])
    pool = load_train(cfg.data)
    anchors = load_anchors(cfg.data)[:2]
    base = ModelRegistry(run).save(build_tiny_classifier(list(pool) + list(anchors), seed=0),
                                   {"kind": "base", "source": "tiny"})
    examples = {anchors[0].id: pool[0:3], anchors[1].id: pool[3:6]}
    state = RoundState(cfg.run_path("rounds.sqlite"))
    state.create_round("r1", base, str(ModelRegistry(run).path(base)), {"method": "test"}, {},
                       [RoundAnchor(a, [0.5, 0.5]) for a in anchors],
                       [RoundPair(a, z, i + 1, -1.0) for a, zs in examples.items() for i, z in enumerate(zs)])
    pairs = [(a, z) for a, zs in examples.items() for z in zs]
    ratings = [Rating(a, z.id, who, s, "submitted", now(), f"test:{a}/{z.id}/{who}")
               for (a, z), scores in zip(pairs, SCORES) for who, s in zip(RATERS, scores)]
    snapshot = state.add_snapshot("r1", ratings)
    with file_lock(cfg.run_path(".sync.lock")):
        result = sync_snapshot(cfg, "r1", PulledRatings(snapshot.snapshot_id, ratings, {"new": len(ratings)}),
                               progress=False)
    assert result.status == "trained", result
    report = Path(result.report_dir)
    return {"cfg": cfg, "run": run, "result": result, "report": report, "pairs": pairs, "state": state,
            "summary": json.loads((report / "round.json").read_text())}


def test_round_md_is_tables_and_sentences_rounded_as_each_table_declares(synced):
    md = (synced["report"] / "round.md").read_text()
    summary = synced["summary"]
    assert check_rounding(md) >= 8  # gate, evaluation, a table per anchor, kinds, classes, samples, training
    for section in ("## Decision", "## What to do next", "## Evaluation", "## Ratings", "## Fine-tuning set",
                    "### Samples", "## Training", "## Files and links"):
        assert section in md
    # the numbers a person reads are rounded: the raw loss and alpha of round.json are not in it
    train = summary["train"]
    assert f"| {train['first_loss']:.3f} | {train['last_loss']:.3f} |" in md
    assert repr(train["first_loss"]) not in md
    alpha = summary["aggregation"]["agreement"]["overall"]["alpha"]
    assert alpha is not None and f"{alpha:.3f} over 6 pairs" in md and repr(alpha) not in md
    # each rater's score per pair and the aggregate: the flagged pair (2, 5, 4) -> median 4.00, spread 3
    assert "| 2 | 5 | 4 | 4.00 | 3 | flagged |" in md and "| 5 | 5 | 5 | 5.00 | 0 | all agree |" in md
    for a, z in synced["pairs"]:
        assert f"`{z.id}`" in md and f"Anchor `{a}`" in md
    # before/after with the change, and the gate's decision in words
    before, after = summary["metrics"]["before"]["mnli_accuracy"], summary["metrics"]["after"]["mnli_accuracy"]
    assert f"| MNLI dev | {before:.2f} | {after:.2f} | {after - before:+.2f} |" in md
    assert ("Served: **" in md) == summary["gate"]["serve"] and ("Not served" in md) != summary["gate"]["serve"]
    assert "1 pair(s) are flagged" in md
    # the plot is the evaluation's, titled with the two model versions
    from PIL import Image

    assert "![" in md and "(evaluation.png)" in md
    title = Image.open(synced["report"] / "evaluation.png").info["Title"]
    assert title == f"{summary['base_version']} (before) -> {summary['version']} (after)"
    evaluation = json.loads((synced["report"] / "evaluation.json").read_text())["results"]
    assert evaluation["after"]["model_version"] == summary["version"]
    assert evaluation["before"]["model_version"] == summary["base_version"]
    for target in markdown_links(md):
        check_link(target, synced["report"])


def test_the_set_file_adds_up_to_round_json_and_every_copy_names_a_rated_source(synced):
    from hildif.rounds.setfile import SET_FILE, kind_counts, read_set

    rows = read_set(synced["report"] / SET_FILE)
    fts = synced["summary"]["fine_tuning_set"]
    assert len(rows) == fts["size"] == synced["summary"]["n_augmented"]
    counts = kind_counts(rows)
    assert {k: counts[k] for k in fts["parts"]} == fts["parts"]
    assert all(fts["parts"][k] > 0 for k in ("rated", "copies", "syntactic", "rehearsal")), fts["parts"]
    assert Counter(r.label for r in rows) == Counter({k: v for k, v in fts["labels"].items() if v})
    assert [r.position for r in rows] == list(range(1, len(rows) + 1))

    by_id = {r.id: r for r in rows}
    pairs = {(a, z.id): z for a, z in synced["pairs"]}
    scores = {(p["anchor_id"], p["example_id"]): p["score"] for p in synced["summary"]["aggregation"]["pairs"]}
    rated = {r.id: r for r in rows if r.kind == "rated"}
    for r in rated.values():  # a rated row is the pair's training example, with the pair's aggregate score
        z = pairs[(r.anchor_id, r.id)]
        assert (r.premise, r.hypothesis, r.score) == (z.premise, z.hypothesis, scores[(r.anchor_id, r.id)])
    for r in (r for r in rows if r.kind == "copy"):
        assert r.source_id in rated, f"copy {r.id} names {r.source_id}, which is no rated row"
        assert r.anchor_id == rated[r.source_id].anchor_id and r.score == rated[r.source_id].score
        assert r.augmenter == "synonym" and (r.premise, r.hypothesis) != (rated[r.source_id].premise,
                                                                          rated[r.source_id].hypothesis)
    for r in (r for r in rows if r.kind == "syntactic"):
        assert r.source_id in by_id and by_id[r.source_id].kind in ("rated", "copy"), r
        assert r.augmenter.startswith("syntactic:")
    rated_ids = {z.id for _, z in synced["pairs"]}
    for r in (r for r in rows if r.kind == "rehearsal"):
        assert r.source_id == r.id and r.id not in rated_ids and r.score is None
    # the round state's record of the set is the same set
    assert [e.id for e in synced["state"].augmented(synced["result"].sync_id)] == [r.id for r in rows]


def test_round_show_prints_and_exports_the_set(synced, capsys, tmp_path):
    from hildif.cli import main
    from hildif.rounds.setfile import SET_FILE, read_set, to_csv

    base = ["round", "show", "--round", "r1", "--run-dir", str(synced["run"]),
            "--data-dir", synced["cfg"].data.data_dir]
    assert main(base) == 0
    out = capsys.readouterr().out
    rows = read_set(synced["report"] / SET_FILE)
    assert f"round r1 sync {synced['result'].sync_id}: model " in out and f"{len(rows)} examples" in out
    assert "round.html: " in out
    assert main(base + ["--fine-tuning-set", "--format", "csv"]) == 0
    assert capsys.readouterr().out == to_csv(rows)
    assert main(base + ["--fine-tuning-set", "--kind", "copy", "--limit", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 3 and all(" copy " in line for line in table[1:])
    out_file = tmp_path / "set.jsonl"
    assert main(base + ["--fine-tuning-set", "--format", "jsonl", "--kind", "rehearsal", "-o", str(out_file)]) == 0
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert lines and {row["kind"] for row in lines} == {"rehearsal"}
    assert main(base + ["--sync", "99"]) == 1
    assert "has no successful sync 99" in capsys.readouterr().err


def test_round_html_renders_in_chromium_with_its_plot_and_links(synced, browser):  # noqa: F811
    html = synced["report"] / "round.html"
    seen = check_page(browser, html, ARTIFACTS / "round_report.png")
    assert seen["images"] >= 1 and seen["links"] >= 5 and seen["tables"] >= 8
    page = html.read_text()
    assert "http://" not in page.replace("http://www.w3.org", "")  # nothing to fetch: no server, no network
    assert synced["summary"]["version"] in page and synced["summary"]["base_version"] in page


def test_a_sync_without_the_set_file_gets_the_same_rows_from_the_round_state(synced):
    """A sync made before fine_tuning_set.csv was kept: ``hildif round show`` rebuilds the rows from what the round
    state recorded (the set's examples and the pairs' scores), the same rows the file holds."""
    from hildif.rounds.setfile import SET_FILE, read_set, sync_rows

    state = synced["state"]
    sync = state.last_done_sync("r1")
    assert sync["sync_id"] == synced["result"].sync_id
    rebuilt = sync_rows(state, {**sync, "report_dir": None})
    assert rebuilt == read_set(synced["report"] / SET_FILE)
