"""Exploration for issue 11: can syntactic augmentation carry the correction? Volume, source and premise form.

One round's rated pairs (the paper's five anchors, p = 10, the simulated panel's scores) give the round's DA set
(:func:`hildif.rounds.finetune.build_finetuning_set`, as shipped). Each variant adds one kind of extra pairs and is
fine-tuned from the same baseline with the round's own step (:func:`hildif.rounds.finetune.fine_tune`), then scored
on a stratified HANS sample and a random MNLI dev sample. Variants (``+``-joined):

* ``nbr``: syntactic pairs (:func:`hildif.feedback.augmentation.syntactic.syntactic_examples`) from the
  neighbourhood of the rated examples: for an example with score s, its ``m x s`` nearest training examples in the
  run's kNN index (the FastIF prefilter's), the rated examples excluded;
* ``rand``: as many source rows drawn at random from the training pool (the control: no human in it);
* ``hans``: ``--hans-n`` genuine HANS *training* rows, half per class (an upper bound, not a product option);
* ``rehearsal``: as many original training rows as the rest (:func:`hildif.rounds.finetune.rehearsal_rows`).

The syntactic pairs are balanced: equal classes within each premise form (``--premise clause`` makes swap/passive
pairs from the clause alone). One seed per call, samples: the results file is ``benchmarks/results/
syntactic_sources.md``.

    HILDIF_DATA_DIR=../shared/data python benchmarks/syntactic_sources.py --run-dir runs/default \
        --variants nbr,nbr+rehearsal,rand+rehearsal,hans+rehearsal --m 100 --premise clause
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from pathlib import Path

from hildif.config import load_config
from hildif.data.example import Example
from hildif.utils.atomic import write_json_atomic

HEURISTICS = ("lexical_overlap", "subsequence", "constituent")


def balanced(examples: list[Example], premise: str, seed: int) -> list[Example]:
    """Equal classes within each premise form (short clause premises, the source sentence), drawn with ``seed``."""
    rng = random.Random(seed)
    out: list[Example] = []
    for short in (True, False):
        by: dict[int, list[Example]] = {}
        for e in examples:
            if (premise == "clause" and e.metadata.get("syntactic") in ("swap", "passive")) == short:
                by.setdefault(e.label, []).append(e)
        n = min(len(v) for v in by.values()) if len(by) == 2 else 0
        for c in sorted(by):
            out += rng.sample(by[c], n)
    return out


def neighbourhood(scored, train: list[Example], index, m: int) -> list[Example]:
    """The ``m x score`` nearest training rows of each rated example (the rated examples excluded), in pool order."""
    pos = {e.id: i for i, e in enumerate(train)}
    rated = {z.id for z, _ in scored}
    chosen: set[int] = set()
    for z, s in scored:
        if s is None or s < 1 or z.id not in pos:
            continue
        _, found = index.search(index.index.reconstruct(pos[z.id]).reshape(1, -1), int(m * s) + 1)
        chosen.update(int(i) for i in found[0] if i >= 0 and train[i].id not in rated)
    return [train[i] for i in sorted(chosen)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default="runs/default")
    ap.add_argument("--out", default=None)
    ap.add_argument("--variants", default="nbr,nbr+rehearsal,rand+rehearsal,hans+rehearsal")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--m", type=int, default=30, help="neighbours per score point")
    ap.add_argument("--per", type=int, default=4, help="syntactic pairs asked per source row")
    ap.add_argument("--premise", default="source", choices=("source", "clause"))
    ap.add_argument("--ops", default="swap,clause,passive,embedded",
                    help="syntactic operations (hildif.feedback.augmentation.syntactic.OPERATIONS)")
    ap.add_argument("--hans-n", type=int, default=1000)
    ap.add_argument("--hans-sample", type=int, default=3000)
    ap.add_argument("--mnli-sample", type=int, default=2000)
    args = ap.parse_args()

    import dataclasses

    from hildif.data.splits import load_dev, load_hans, stratified_sample
    from hildif.experiments.ablation import (AblationContext, AblationSettings, Cell, CONFIGURATIONS, cell_scores,
                                             resolve_baseline)
    from hildif.feedback.augmentation.syntactic import syntactic_examples
    from hildif.influence.knn import FeatureIndex, index_cache_dir
    from hildif.model.evaluation import evaluate
    from hildif.rounds.finetune import build_finetuning_set, fine_tune, rehearsal_rows

    cfg = load_config(overrides=[f"run.run_dir={args.run_dir}"])
    out = Path(args.out or Path(args.run_dir) / "experiments" / "syntactic_sources")
    settings = AblationSettings(top_ps=[10], seeds=[args.seed])
    baseline_path = resolve_baseline(cfg, None)
    ctx = AblationContext(cfg, settings, baseline_path, out, progress=True)
    hans = stratified_sample(load_hans(cfg.data), args.hans_sample)
    mnli = random.Random(0).sample(load_dev(cfg.data), args.mnli_sample)
    cell = Cell(CONFIGURATIONS[0], 10, args.seed)  # HS, DA, H
    pairs = [(a, z) for a, infl in ctx.explanations(ctx.anchors(cell)) for z, _ in infl[:10]]
    scores, _ = cell_scores(cell, pairs, settings, cfg)
    scored = [(z, s) for (_, z), s in zip(pairs, scores)]
    train = ctx.train_examples
    index = FeatureIndex.build_or_load(ctx.baseline, train, cfg.influence.index, cache_dir=index_cache_dir(cfg),
                                       progress=True)
    print("scores", dict(Counter(scores)))

    for variant in [v for v in args.variants.split(",") if v]:
        parts = set(variant.split("+"))
        ops = args.ops.split(",")
        tag = "" if args.ops == "swap,clause,passive,embedded" else "_ops-" + "-".join(ops)
        name = f"{variant}_m{args.m}_per{args.per}_{args.premise}_h{args.hans_n}{tag}_s{args.seed}"
        path = out / f"{name}.json"
        if path.exists():
            continue
        t0 = time.perf_counter()
        examples = list(build_finetuning_set(scored, cfg, train_pool=train, seed=args.seed, chains=ctx.chains(),
                                             fill_chains=ctx.fill_chains()).examples)
        sources = neighbourhood(scored, train, index, args.m) if parts & {"nbr", "rand"} else []
        if "rand" in parts:
            rated = {z.id for z, _ in scored}
            sources = random.Random(1000 + args.seed).sample([e for e in train if e.id not in rated], len(sources))
        extra: list[Example] = []
        if sources:
            syn = syntactic_examples(sources, per_example=args.per, premise=args.premise, operations=ops)
            extra = balanced(syn.examples, args.premise, args.seed)
        if "hans" in parts:
            hans_train = load_hans(dataclasses.replace(cfg.data, hans_file="hans/heuristics_train_set.jsonl.gz"))
            rng = random.Random(args.seed)
            extra = [e for c in (0, 1) for e in rng.sample([x for x in hans_train if x.label == c], args.hans_n // 2)]
        examples += extra
        if "rehearsal" in parts:
            rows, _ = rehearsal_rows(train, len(examples), "train", current=examples,
                                     exclude=[z for z, _ in scored] + sources, seed=7 + args.seed)
            examples += rows
        clf, _ = fine_tune(baseline_path, examples, cfg, seed=args.seed)
        ev = evaluate(clf, hans, mnli, batch_size=cfg.eval.batch_size)
        result = {"variant": variant, "sources": len(sources), "extra": len(extra), "size": len(examples),
                  "labels": dict(Counter(e.label for e in examples)), "evaluation": ev,
                  "seconds": round(time.perf_counter() - t0, 1)}
        write_json_atomic(path, result)
        h = ev["hans"]["by_heuristic"]
        cells = " | ".join(f"({h[k]['entailment']:.1f}, {h[k]['non-entailment']:.1f})" for k in HEURISTICS)
        print(f"| {name} | {len(extra)} | {len(examples)} | {ev['mnli']['accuracy']:.2f} | "
              f"{ev['hans']['accuracy']:.2f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
