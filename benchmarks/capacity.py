"""Issue 25's capacity curve: how many pairs of which kind, at which recipe, move which HANS subcases.

From the run's baseline, each cell fine-tunes a fresh copy on N pairs of one kind plus ``rehearsal x N`` original
MNLI training rows (drawn at random from the pool, the pairs' sources excluded) with one recipe and one seed, through
the round's own fine-tuning step (:func:`hildif.rounds.finetune.fine_tune`), and scores it on HANS (stratified by
subcase: ``--hans-sample`` / 30 per subcase) and MNLI dev_matched (stratified by class). The baseline is scored on
the same samples. Kinds of pairs (:data:`KINDS`):

* ``hans``: genuine HANS *training* rows, half per class. The bound: what the model can learn from data shaped like
  the test. Never a product option (benchmarks only; ``tests/test_no_hans_in_product.py`` keeps it out of the
  package).
* ``mnli``: N more original MNLI training rows (the control: the recipe's steps with no structure in them).
* ``syntactic``: hildif's syntactic pairs (:func:`hildif.feedback.augmentation.syntactic.syntactic_examples`, all
  eight operations, source premises) made from random MNLI training rows, equal classes.
* ``constructions``: hildif's construction minimal pairs
  (:func:`hildif.feedback.augmentation.constructions.construction_pairs`: both labels within every construction and
  premise form) made from random MNLI training rows.

Recipes (:data:`RECIPES`): ``round`` is the round's FINE_TUNE as shipped (lr 1e-5, 2 epochs, batch 16); ``strong`` lr
5e-5, 3 epochs, batch 32 (the issue's measurement outside hildif); ``mid`` lr 3e-5, 3 epochs, batch 32.

Each cell is written to ``<out>/cells/<key>.json`` (a rerun skips finished cells; the pairs of a kind and seed are
kept in ``<out>/pairs/`` for every N and recipe); ``--results`` collects every finished cell of ``<out>`` into a JSON
file and a Markdown table (mean and std over seeds).

    HILDIF_DATA_DIR=../shared/data python benchmarks/capacity.py --run-dir runs/default \
        --kinds hans,syntactic,constructions,mnli --ns 250,1000,4000 --recipes round,strong --seeds 0 \
        --results benchmarks/results/capacity
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import run_line  # noqa: E402

from hildif.config import HildifConfig, load_config  # noqa: E402
from hildif.data.example import Example  # noqa: E402
from hildif.utils.atomic import write_json_atomic  # noqa: E402

HEURISTICS = ("lexical_overlap", "subsequence", "constituent")
SHORT = {"lexical_overlap": "LO", "subsequence": "SUB", "constituent": "CON"}
RECIPES: dict[str, dict[str, Any]] = {
    "round": {"learning_rate": 1e-5, "epochs": 2.0, "batch_size": 16},
    "mid": {"learning_rate": 3e-5, "epochs": 3.0, "batch_size": 32},
    "strong": {"learning_rate": 5e-5, "epochs": 3.0, "batch_size": 32},
}
HANS_TRAIN_FILE = "hans/heuristics_train_set.jsonl.gz"  # the bound only: never read by the package


# ---------------------------------------------------------------------------------------------- kinds of pairs
def _hans_pairs(cfg: HildifConfig, pool: list[Example], n: int, seed: int) -> tuple[list[Example], list[Example],
                                                                                      dict[str, Any]]:
    from hildif.data.splits import load_hans

    rows = load_hans(dataclasses.replace(cfg.data, hans_file=HANS_TRAIN_FILE))
    rng = random.Random(seed)
    out = [e for c in (0, 1) for e in rng.sample([x for x in rows if x.label == c], n // 2)]
    return out, [], {"from": "HANS training rows", "available": len(rows)}


def _mnli_pairs(cfg: HildifConfig, pool: list[Example], n: int, seed: int):
    rows = random.Random(10_000 + seed).sample(pool, n)
    return rows, rows, {"from": "MNLI training rows"}


def _generated(make: Callable[[list[Example]], tuple[list[Example], dict[str, Any]]], pool: list[Example], n: int,
               seed: int, chunk: int = 2000):
    """Pairs made by ``make`` from random training rows, chunk by chunk until ``n`` balanced pairs exist: ``n / 2``
    of each class, the first made of each (sources in pool order of the seeded draw). Returns pairs, the source
    rows used and the yield."""
    order = random.Random(20_000 + seed).sample(range(len(pool)), len(pool))
    by_class: dict[int, list[Example]] = {0: [], 1: []}
    used: list[Example] = []
    stats: Counter[str] = Counter()
    for start in range(0, len(order), chunk):
        sources = [pool[i] for i in order[start:start + chunk]]
        made, s = make(sources)
        used += sources
        stats.update({k: v for k, v in s.items() if isinstance(v, int)})
        for e in made:
            by_class[e.label].append(e)
            stats["pairs:" + str(e.metadata.get("construction") or e.metadata.get("syntactic"))] += 1
        if min(len(v) for v in by_class.values()) >= n // 2:
            break
    have = min(len(v) for v in by_class.values())
    if have < n // 2:
        raise SystemExit(f"only {have} pairs per class from the whole pool of {len(pool)} rows; asked {n // 2}")
    pairs = by_class[0][: n // 2] + by_class[1][: n // 2]
    used_ids = {p.metadata.get("transformed_from") for p in pairs}
    info = {"sources_read": len(used), "sources_giving_pairs": len(used_ids),
            "made": dict(stats), "yield_per_row": round(sum(len(v) for v in by_class.values()) / len(used), 3)}
    return pairs, [e for e in used if e.id in used_ids], info


def _syntactic_pairs(cfg: HildifConfig, pool: list[Example], n: int, seed: int):
    from hildif.feedback.augmentation.syntactic import OPERATIONS, syntactic_examples

    def make(sources):
        res = syntactic_examples(sources, per_example=4, operations=OPERATIONS, premise="source")
        return res.examples, {"produced": res.stats["produced"]}

    return _generated(make, pool, n, seed)


def _construction_pairs(cfg: HildifConfig, pool: list[Example], n: int, seed: int):
    from hildif.feedback.augmentation.constructions import construction_pairs

    def make(sources):
        res = construction_pairs(sources, constructions=cfg.feedback.constructions, seed=seed)
        return res.examples, {"produced": len(res.examples), "by_construction": res.stats["by_construction"]}

    return _generated(make, pool, n, seed)


# the constructions of the first cells (issue 25); a cell made with another list is named for the difference
FIRST_CONSTRUCTIONS = ("order", "passive", "voice", "embedding", "adverbial", "coordination", "modifier")


def kind_name(kind: str, cfg: HildifConfig) -> str:
    """The cell's kind as keyed and reported: ``constructions+swap+active`` for constructions beyond the first
    list, ``constructions-modifier`` for fewer, ``constructions[voice+active]`` for a list that keeps few of them;
    every other kind as given."""
    if kind != "constructions":
        return kind
    have = list(cfg.feedback.constructions)
    added = [c for c in have if c not in FIRST_CONSTRUCTIONS]
    removed = [c for c in FIRST_CONSTRUCTIONS if c not in have]
    if len(removed) > len(FIRST_CONSTRUCTIONS) // 2:
        return f"{kind}[{'+'.join(have)}]"
    return kind + "".join(f"+{c}" for c in added) + "".join(f"-{c}" for c in removed)


KINDS = {"hans": _hans_pairs, "mnli": _mnli_pairs, "syntactic": _syntactic_pairs,
         "constructions": _construction_pairs}


# ---------------------------------------------------------------------------------------------- cells
def _example_row(e: Example) -> dict[str, Any]:
    return {"id": e.id, "premise": e.premise, "hypothesis": e.hypothesis, "label": e.label, "metadata": e.metadata}


def pairs_for(cfg, pool, kind: str, n: int, seed: int, folder: Path) -> tuple[list[Example], list[Example], dict]:
    """The ``n`` pairs of ``kind`` for ``seed`` (cached in ``folder``: the largest set made so far is cut to n, so
    a smaller N is the start of a larger one), the source rows they came from, and the generator's yield."""
    folder.mkdir(parents=True, exist_ok=True)
    name = kind_name(kind, cfg)
    for path in sorted(folder.glob(f"{glob.escape(name)}_s{seed}_n*.json"), key=lambda p: int(p.stem.rsplit("_n", 1)[1])):
        have = int(path.stem.rsplit("_n", 1)[1])
        if have >= n:
            data = json.loads(path.read_text())
            pairs = [Example(**r) for r in data["pairs"]]
            half = [p for p in pairs if p.label == 0][: n // 2] + [p for p in pairs if p.label == 1][: n // 2]
            src = {p.metadata.get("transformed_from") or p.id for p in half}
            return half, [e for e in pool if e.id in src], data["info"]
    pairs, sources, info = KINDS[kind](cfg, pool, n, seed)
    write_json_atomic(folder / f"{name}_s{seed}_n{n}.json", {"info": info, "pairs": [_example_row(e) for e in pairs]})
    return pairs, sources, info


def _summary(ev: dict[str, Any]) -> dict[str, Any]:
    h = ev["hans"]
    return {"hans": h["accuracy"], "mnli": ev["mnli"]["accuracy"],
            "by_heuristic": {k: {c: h["by_heuristic"][k][c] for c in ("entailment", "non-entailment")}
                             for k in HEURISTICS},
            "by_subcase": {s: v["accuracy"] for s, v in h["by_subcase"].items()}}


def run_cells(args) -> None:
    from hildif.data.splits import cached_train, load_dev, load_hans, stratified_sample
    from hildif.experiments.ablation import resolve_baseline
    from hildif.model.evaluation import evaluate
    from hildif.model.loading import load_checkpoint
    from hildif.rounds.finetune import fine_tune, rehearsal_rows

    cfg = load_config(overrides=[f"run.run_dir={args.run_dir}", *args.overrides])
    out = Path(args.out or Path(args.run_dir) / "experiments" / "capacity")
    baseline_path = resolve_baseline(cfg, None)
    pool = cached_train(cfg.data)
    hans = stratified_sample(load_hans(cfg.data), args.hans_sample, key=lambda e: e.metadata.get("subcase"))
    mnli = stratified_sample(load_dev(cfg.data), args.mnli_sample, key=lambda e: e.label)
    samples = f"h{len(hans)}_m{len(mnli)}"
    base_file = out / f"baseline_{samples}.json"
    if not base_file.exists():
        ev = evaluate(load_checkpoint(cfg, baseline_path), hans, mnli, batch_size=cfg.eval.batch_size, progress=True)
        write_json_atomic(base_file, {"baseline": baseline_path.name, "samples": samples, **_summary(ev)})
    base = json.loads(base_file.read_text())
    print(f"baseline {base['baseline']}: HANS {base['hans']:.2f} MNLI {base['mnli']:.2f} ({samples})", flush=True)
    for seed in args.seeds:
        for n in args.ns:
            for kind in args.kinds:
                for recipe in args.recipes:
                    key = f"{kind_name(kind, cfg)}_n{n}_{recipe}_r{args.rehearsal:g}_s{seed}_{samples}"
                    path = out / "cells" / f"{key}.json"
                    if path.exists():
                        continue
                    t0 = time.perf_counter()
                    pairs, sources, info = pairs_for(cfg, pool, kind, n, seed, out / "pairs")
                    rehearsal, _ = rehearsal_rows(pool, int(round(args.rehearsal * n)), "train", current=pairs,
                                                  exclude=sources, seed=30_000 + seed) if args.rehearsal else ([], {})
                    rcfg = dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, **RECIPES[recipe]))
                    clf, tr = fine_tune(baseline_path, pairs + rehearsal, rcfg, seed=seed, progress=True)
                    ev = evaluate(clf, hans, mnli, batch_size=cfg.eval.batch_size)
                    result = {"key": key, "kind": kind_name(kind, cfg), "n": n, "recipe": recipe, "recipe_settings": RECIPES[recipe],
                              "rehearsal": args.rehearsal, "seed": seed, "baseline": base["baseline"],
                              "samples": samples, "size": len(pairs) + len(rehearsal),
                              "pair_labels": dict(Counter(e.label for e in pairs)), "pairs_info": info,
                              "steps": tr.steps, "seconds": round(time.perf_counter() - t0, 1), **_summary(ev)}
                    write_json_atomic(path, result)
                    print(f"{key}: HANS {result['hans']:.2f} ({result['hans'] - base['hans']:+.2f}) MNLI "
                          f"{result['mnli']:.2f} ({result['mnli'] - base['mnli']:+.2f}) {result['seconds']} s",
                          flush=True)


# ---------------------------------------------------------------------------------------------- results
def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def collect(out: Path, results: Path) -> None:
    """Every finished cell of ``out`` into ``results``.json (cells + per (kind, N, recipe) means) and .md."""
    bases = {json.loads(p.read_text())["samples"]: json.loads(p.read_text()) for p in out.glob("baseline_*.json")}
    cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    groups: dict[tuple, list[dict]] = {}
    for c in cells:
        groups.setdefault((c["kind"], c["n"], c["recipe"], c["rehearsal"], c["samples"]), []).append(c)
    order = {k: i for i, k in enumerate(KINDS)}
    rows = []
    for (kind, n, recipe, reh, samples), cs in sorted(groups.items(), key=lambda kv: (
            order.get(kv[0][0], 99), kv[0][2], kv[0][1], kv[0][3])):
        base = bases[samples]
        hans, hans_sd = _mean_std([c["hans"] for c in cs])
        mnli, mnli_sd = _mean_std([c["mnli"] for c in cs])
        heur = {h: {cl: statistics.fmean(c["by_heuristic"][h][cl] for c in cs) for cl in ("entailment", "non-entailment")}
                for h in HEURISTICS}
        subcases = {s: statistics.fmean(c["by_subcase"][s] for c in cs) for s in cs[0]["by_subcase"]}
        rows.append({"kind": kind, "n": n, "recipe": recipe, "rehearsal": reh, "samples": samples,
                     "seeds": sorted(c["seed"] for c in cs), "steps": cs[0]["steps"], "hans": hans, "hans_std": hans_sd,
                     "mnli": mnli, "mnli_std": mnli_sd, "d_hans": hans - base["hans"], "d_mnli": mnli - base["mnli"],
                     "mean_non_entailment": statistics.fmean(heur[h]["non-entailment"] for h in HEURISTICS),
                     "by_heuristic": heur, "by_subcase": subcases,
                     "yield_per_row": cs[0]["pairs_info"].get("yield_per_row")})
    write_json_atomic(results.with_suffix(".json"), {"baselines": bases, "rows": rows, "cells": cells})
    lines = ["# Capacity curve: which pairs, how many, at which recipe, move HANS (issue 25)", "",
             "Cells come from several calls of `benchmarks/capacity.py` (each cell's JSON records its kind, N, recipe, "
             "rehearsal and seed); the table was collected by the last one. " + run_line("capacity.py"), "",
             "From the default baseline; every cell fine-tunes a fresh copy on N pairs of one kind + rehearsal x N random "
             "MNLI training rows with the round's own fine-tuning step, and is scored on HANS stratified by subcase and "
             "MNLI dev_matched stratified by class (samples named per row; the goal's numbers are on the full sets, "
             "`ablation_default.md`). Kinds and recipes: `benchmarks/capacity.py`'s docstring. `hans` is the bound (HANS's "
             "own training rows), never a product option.", ""]
    for samples, b in sorted(bases.items()):
        lines.append(f"Baseline `{b['baseline']}` on {samples}: HANS {b['hans']:.2f}, MNLI {b['mnli']:.2f}; "
                     + ", ".join(f"{SHORT[h]} ({b['by_heuristic'][h]['entailment']:.1f}, "
                                 f"{b['by_heuristic'][h]['non-entailment']:.1f})" for h in HEURISTICS) + ".")
    lines += ["", "| kind | N | recipe | rehearsal | seeds | steps | HANS | Δ HANS | MNLI | Δ MNLI | LO (ent, non) | "
              "SUB (ent, non) | CON (ent, non) | mean non-ent |", "|" + "---|" * 14]
    for r in rows:
        heur = " | ".join(f"({r['by_heuristic'][h]['entailment']:.1f}, {r['by_heuristic'][h]['non-entailment']:.1f})"
                          for h in HEURISTICS)
        sd = lambda v: f" ± {v:.2f}" if len(r["seeds"]) > 1 else ""  # noqa: E731
        lines.append(f"| {r['kind']} | {r['n']} | {r['recipe']} | {r['rehearsal']:g} | "
                     f"{','.join(map(str, r['seeds']))} | {r['steps']} | {r['hans']:.2f}{sd(r['hans_std'])} | "
                     f"{r['d_hans']:+.2f} | {r['mnli']:.2f}{sd(r['mnli_std'])} | {r['d_mnli']:+.2f} | {heur} | "
                     f"{r['mean_non_entailment']:.1f} |")
    if rows:
        subs = sorted(rows[0]["by_subcase"])
        base = next(iter(bases.values()))
        lines += ["", "Per subcase (accuracy %; the baseline first):", "",
                  "| subcase | baseline | " + " | ".join(f"{r['kind']} {r['n']} {r['recipe']}" for r in rows) + " |",
                  "|" + "---|" * (len(rows) + 2)]
        for s in subs:
            lines.append(f"| {s} | {base['by_subcase'][s]:.0f} | "
                         + " | ".join(f"{r['by_subcase'][s]:.0f}" for r in rows) + " |")
        lines += ["", "Generator yield (pairs of both classes per source row read): " + ", ".join(
            f"{r['kind']} {r['yield_per_row']}" for r in rows if r["yield_per_row"] and r["recipe"] == rows[0]["recipe"]
            and r["n"] == max(x["n"] for x in rows if x["kind"] == r["kind"])) + "."]
    results.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default="runs/default")
    ap.add_argument("--out", default=None, help="cells folder (default <run_dir>/experiments/capacity)")
    ap.add_argument("--kinds", default="hans,mnli,syntactic,constructions")
    ap.add_argument("--ns", default="250,1000,4000")
    ap.add_argument("--recipes", default="round,strong")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--rehearsal", type=float, default=1.0, help="original MNLI rows per pair")
    ap.add_argument("--hans-sample", type=int, default=3000)
    ap.add_argument("--mnli-sample", type=int, default=2000)
    ap.add_argument("--results", default=None, help="write <results>.json/.md from every finished cell")
    ap.add_argument("--collect-only", action="store_true")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (1 keeps a shared machine's cores from stalling each other's steps)")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    args.kinds = [k for k in args.kinds.split(",") if k]
    bad = [k for k in args.kinds if k not in KINDS] + [r for r in args.recipes.split(",") if r not in RECIPES]
    if bad:
        ap.error(f"unknown kind or recipe {bad} (kinds: {', '.join(KINDS)}; recipes: {', '.join(RECIPES)})")
    args.recipes = args.recipes.split(",")
    args.ns = [int(v) for v in args.ns.split(",")]
    args.seeds = [int(v) for v in args.seeds.split(",")]
    if not args.collect_only:
        run_cells(args)
    if args.results:
        collect(Path(args.out or Path(args.run_dir) / "experiments" / "capacity"), Path(args.results))


if __name__ == "__main__":
    main()
