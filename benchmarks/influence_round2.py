"""Round-2 start: the one-off pass over the training pool a new model version needs, with and without the prefix cache.

Every new model version repeats a pass over the whole pool before its first anchor is scored: the frozen prefixes
(embeddings + the blocks below the influence parameters) and the kNN features (the blocks above, the pooler). With
``influence.prefix_cache`` the prefixes go to disk keyed on the frozen layers' weights
(:mod:`hildif.influence.prefix_cache`); a FINE_TUNE that trains only the influence parameters
(``finetune.train_params = influence``) leaves those layers bit-for-bit the same, so round 2 reads the prefixes back
and runs only the top blocks.

Steps, on the run's current model (round 1's model) and a seeded subsample of the pool:
1. round 1: the pass with the prefix cache on (prefixes computed and written);
2. a real FINE_TUNE of the influence parameters only (a few steps of the training loop), i.e. round 2's model;
3. round 2 before: the pass without the cache (what every version does today);
   round 2 after: the pass reading the cached prefixes; the kNN features of both are compared;
4. round 2 with a FINE_TUNE of every layer (the default) and the cache on: a miss (the pass, and the prefixes written
   under a new key), the cost of turning the cache on when nothing can be reused.
Optionally (``--store N``) the same before/after for the gradient store's build on the first N examples.

Usage: python benchmarks/influence_round2.py --run-dir runs/default --cache-dir runs/i16/round2 [--train 2000]
       [--steps 4] [--store 0] [--output benchmarks/results/influence_round2.md]
The run folder is only read (its current model); caches go to --cache-dir (emptied of earlier prefix files first).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HILDIF_DATA_DIR", str(REPO.parent / "shared" / "data"))

from hildif.config import load_config  # noqa: E402
from hildif.data.splits import load_train  # noqa: E402
from hildif.influence.engine import InfluenceEngine  # noqa: E402
from hildif.influence.params import restrict_training  # noqa: E402
from hildif.influence.store import GradientStore  # noqa: E402
from hildif.model.classifier import Classifier  # noqa: E402
from hildif.model.registry import ModelRegistry  # noqa: E402
from hildif.model.training import train as train_loop  # noqa: E402
from hildif.utils.artifacts import ArtifactDir  # noqa: E402
from results_file import run_line, write_results  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def fine_tune(clf, examples, cfg, steps: int, train_params: str) -> float:
    restrict_training(clf.model, train_params, cfg.influence.params)
    ft = dataclasses.replace(cfg.finetune, max_steps=steps)
    _, seconds = timed(lambda: train_loop(clf, examples, ft, progress=False))
    for p in clf.model.parameters():
        p.requires_grad_(True)
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default="runs/default")
    ap.add_argument("--cache-dir", required=True, help="where the prefix caches go (not the run folder)")
    ap.add_argument("--train", type=int, default=2000, help="seeded subsample of the pool (data.max_train_examples)")
    ap.add_argument("--steps", type=int, default=4, help="FINE_TUNE steps standing in for round 1's fine-tune")
    ap.add_argument("--store", type=int, default=0, help="also time the gradient store build on this many examples")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "influence_round2.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(overrides=[f"run.run_dir={args.run_dir}", f"data.max_train_examples={args.train}",
                                 "influence.prefix_cache=true"])
    current = ModelRegistry(cfg.run.run_dir).current_path()
    if current is None:
        raise SystemExit(f"no current model in {args.run_dir}")
    cache = Path(args.cache_dir)
    for old in ArtifactDir(cache).list():
        if old.kind == "prefix":
            ArtifactDir.remove(old)
    icfg = cfg.influence
    pool = load_train(cfg.data)
    tune_rows = pool[: 8 * cfg.finetune.batch_size]  # rows to fine-tune on (the content does not matter here)

    def load() -> Classifier:
        return Classifier.load(str(current), num_labels=cfg.model.num_labels, max_length=cfg.model.max_length,
                               device="cpu", attn_implementation="eager")

    def pass_over_pool(clf, cached: bool):
        engine = InfluenceEngine(clf, pool, icfg, prefix_dir=cache if cached else None)
        feats, seconds = timed(engine.pool_features)
        return engine, feats, seconds

    clf = load()
    engine1, _, round1_s = pass_over_pool(clf, True)
    split = engine1.split
    cache_mb = sum(a.size for a in ArtifactDir(cache).list() if a.kind == "prefix") / 2**20
    print(f"round 1 pass (cache written): {round1_s:.1f} s, cache {cache_mb:.0f} MiB", flush=True)
    del engine1

    tune_s = fine_tune(clf, tune_rows, cfg, args.steps, "influence")
    _, feats_before, before_s = pass_over_pool(clf, False)
    print(f"round 2 before (no cache): {before_s:.1f} s", flush=True)
    engine_after, feats_after, after_s = pass_over_pool(clf, True)
    assert engine_after.prefixes_from_cache, "the prefix cache was not read"
    print(f"round 2 after (cached prefixes): {after_s:.1f} s", flush=True)
    diff = float(np.abs(feats_after - feats_before).max())

    store_rows = []
    if args.store:
        small = pool[: args.store]
        for label, cached in (("before (no cache)", False), ("after (cached prefixes)", True)):
            seed_engine = InfluenceEngine(clf, small, icfg, prefix_dir=cache / "store-prefix" if cached else None)
            if cached:  # round 1's prefixes of this smaller pool
                seed_engine.pool_features()
            engine = InfluenceEngine(clf, small, icfg, prefix_dir=cache / "store-prefix" if cached else None)
            store, seconds = timed(lambda: GradientStore.build_or_load(engine, icfg.store_dim, None))
            store_rows.append((label, seconds, engine.prefixes_from_cache))
            print(f"store build {label}: {seconds:.1f} s", flush=True)
        shutil.rmtree(cache / "store-prefix", ignore_errors=True)

    clf_all = load()
    tune_all_s = fine_tune(clf_all, tune_rows, cfg, args.steps, "all")
    engine_miss, _, miss_s = pass_over_pool(clf_all, True)
    assert not engine_miss.prefixes_from_cache
    print(f"round 2 after an all-layer fine-tune (cache miss + write): {miss_s:.1f} s", flush=True)

    n_sel = engine_after.objective.size
    lines = [
        "# Round-2 start: the pass over the pool with and without the prefix cache",
        "",
        f"Model: the run's current model ({clf.version} before the fine-tune; MiniLM-L6, {cfg.model.max_length} "
        f"tokens); pool: a seeded subsample of {len(pool)} training examples (`--train {args.train}`); influence "
        f"parameters: `{icfg.params}` ({n_sel:,}), split `{split.kind}` at block {split.first_layer} (the prefix is "
        f"the embeddings and blocks 0-{(split.first_layer or 1) - 1}); torch threads {args.threads}; "
        f"{platform.machine()} CPU, {os.cpu_count()} cores shared with other work.",
        "",
        f"Round 2's model: round 1's after a real FINE_TUNE of {args.steps} steps (batch {cfg.finetune.batch_size}, "
        f"{tune_s:.0f} s) with `finetune.train_params = influence`; the pass is what a new version needs before "
        "its first anchor (frozen prefixes + kNN features, `InfluenceEngine.pool_features`).",
        "",
        "| pass over the pool | seconds |",
        "|---|---|",
        f"| round 1 (prefixes computed, cache written: {cache_mb:.0f} MiB) | {round1_s:.1f} |",
        f"| round 2, before: no prefix cache (every version today) | {before_s:.1f} |",
        f"| round 2, after: prefixes read from the cache, top blocks only | {after_s:.1f} |",
        f"| round 2 after a FINE_TUNE of every layer (default), cache on: miss + write | {miss_s:.1f} |",
        "",
        f"Speed-up of round 2's pass: {before_s / max(after_s, 1e-9):.1f}x. kNN features after vs before: largest "
        f"difference {diff:.1e} (the prefixes themselves are the same bits; the exact scores are identical, "
        "`tests/test_influence_store.py`).",
    ]
    if store_rows:
        lines += ["", f"Gradient store build on {args.store} examples (per-example gradients dominate):", "",
                  "| store build | seconds |", "|---|---|"]
        lines += [f"| {label} | {s:.1f} |" for label, s, _ in store_rows]
    lines += ["", "What stays valid across versions: the prefixes, while the frozen layers' weights, the tokenizer, "
              "`max_length` and the pool are unchanged; the kNN features and index read the whole encoder (the index "
              "is keyed on the base model, so only a head-only change keeps it); the gradient store reads the "
              "influence parameters and is always rebuilt. The all-layer fine-tune row is the cost of the cache when "
              f"nothing can be reused (an all-layer fine-tune took {tune_all_s:.0f} s here).",
              "", run_line("influence_round2.py")]
    write_results(lines, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
