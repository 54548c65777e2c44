"""Exploration for issue 11: which fine-tuning set makes one round better? Side by side from one baseline.

One round's rated pairs (the paper's five anchors, p influential examples each, the simulated panel's scores) are
turned into several fine-tuning sets that differ in one thing at a time; each is fine-tuned from the same baseline
with the same recipe (``cfg.finetune``) and scored on the evaluation sets every model is scored on
(:func:`hildif.data.splits.evaluation_sets`: HANS stratified by heuristic x label, MNLI dev stratified by label), here
sampled to ``--hans-sample`` / ``--mnli-sample``. Exploration only (samples, one seed per call): the tables that decide defaults come from
``hildif experiment ablation`` on the full sets.

    HILDIF_DATA_DIR=../shared/data python benchmarks/finetune_recipes.py --run-dir runs/default \
        --variants da,da+rehearsal,da+syntactic,da+syntactic+rehearsal --out runs/default/experiments/recipes
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import Counter
from pathlib import Path

from hildif.config import load_config
from hildif.utils.atomic import write_json_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default="runs/default")
    ap.add_argument("--out", default=None)
    ap.add_argument("--variants", default="da,da+rehearsal,da+syntactic,da+syntactic+rehearsal")
    ap.add_argument("--p", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hans-sample", type=int, default=3000)
    ap.add_argument("--mnli-sample", type=int, default=2000)
    ap.add_argument("--rehearsal-ratio", type=float, default=1.0)
    ap.add_argument("--tag", default="", help="suffix of this run's result files (e.g. the overrides it tries)")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    args = ap.parse_args()

    from hildif.experiments.ablation import (AblationContext, AblationSettings, Cell, CONFIGURATIONS, cell_scores,
                                             resolve_baseline)
    from hildif.rounds.finetune import build_finetuning_set
    from hildif.data.splits import evaluation_sets
    from hildif.feedback.augmentation.syntactic import DEFAULT_OPERATIONS
    from hildif.model.loading import load_checkpoint
    from hildif.model.evaluation import evaluate
    from hildif.model.training import train

    cfg = load_config(overrides=[f"run.run_dir={args.run_dir}", *args.overrides])
    out = Path(args.out or Path(args.run_dir) / "experiments" / "recipes")
    settings = AblationSettings(top_ps=[args.p], seeds=[args.seed])
    baseline_path = resolve_baseline(cfg, None)
    ctx = AblationContext(cfg, settings, baseline_path, out, progress=True)
    hans, mnli = evaluation_sets(cfg.data, dataclasses.replace(cfg.eval, hans_sample=args.hans_sample,
                                                               mnli_sample=args.mnli_sample))
    samples = f"eval-h{args.hans_sample}_m{args.mnli_sample}"  # in file names: results of other samples are not reused
    cell = Cell(CONFIGURATIONS[0], args.p, args.seed)  # HS, DA, H
    explained = ctx.explanations(ctx.anchors(cell))
    pairs = [(a, z) for a, infl in explained for z, _ in infl[: args.p]]
    scores, scoring = cell_scores(cell, pairs, settings, cfg)
    scored = [(z, s) for (_, z), s in zip(pairs, scores)]
    print("scores", Counter(scores))

    results: dict[str, dict] = {}
    base_file = out / f"baseline_{samples}.json"
    if base_file.exists():
        results["baseline"] = json.loads(base_file.read_text())
    else:
        results["baseline"] = {"evaluation": evaluate(ctx.baseline, hans, mnli, batch_size=cfg.eval.batch_size,
                                                      progress=True)}
        write_json_atomic(base_file, results["baseline"])
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        path = out / f"{variant}_p{args.p}_s{args.seed}_{samples}{args.tag}.json"
        if path.exists():
            results[variant + args.tag] = json.loads(path.read_text())
            continue
        parts = set(variant.split("+"))
        vcfg = dataclasses.replace(cfg, feedback=dataclasses.replace(
            cfg.feedback, syntactic=list(DEFAULT_OPERATIONS) if "syntactic" in parts else []), finetune=dataclasses.replace(
            cfg.finetune, rehearsal_ratio=args.rehearsal_ratio if "rehearsal" in parts else 0.0))
        fts = build_finetuning_set(scored, vcfg, train_pool=ctx.train_examples, seed=args.seed,
                                   augmentation="da" in parts, chains=ctx.chains(), fill_chains=ctx.fill_chains(),
                                   progress=True)
        examples, stats = fts.examples, fts.stats
        t0 = time.perf_counter()
        clf = load_checkpoint(cfg, baseline_path)
        tr = train(clf, examples, dataclasses.replace(cfg.finetune, seed=cfg.finetune.seed + args.seed), progress=True)
        ev = evaluate(clf, hans, mnli, batch_size=cfg.eval.batch_size, progress=True)
        results[variant + args.tag] = {"variant": variant, "size": len(examples), "stats": stats, "train": tr.to_dict(),
                            "evaluation": ev, "seconds": round(time.perf_counter() - t0, 1)}
        write_json_atomic(path, results[variant + args.tag])
        print(variant, len(examples), ev["hans"]["accuracy"], ev["mnli"]["accuracy"])

    print("\n| fine-tuning set | size | MNLI | HANS | LO (ent, non-ent) | SUB | CON |\n|---|---|---|---|---|---|---|")
    for name, r in results.items():
        ev = r["evaluation"]
        h = ev["hans"]["by_heuristic"]
        cells = " | ".join(f"({h[k]['entailment']:.1f}, {h[k]['non-entailment']:.1f})"
                           for k in ("lexical_overlap", "subsequence", "constituent"))
        print(f"| {name} | {r.get('size', '-')} | {ev['mnli']['accuracy']:.2f} | {ev['hans']['accuracy']:.2f} | {cells} |")


if __name__ == "__main__":
    main()
