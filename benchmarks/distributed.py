"""Training step time and pool-pass throughput on 1 and 2 (or more) processes under torchrun, side by side.

    python benchmarks/distributed.py [--nprocs 1,2] [--size tiny|minilm-sized|bert-base-sized] [--steps 8]
                                     [--batch-size 32] [--pool 2000] [--anchor-k 0] [--device auto]

For each process count the script starts itself under ``python -m torch.distributed.run --standalone``; every rank
builds the same randomly initialised BERT in code (no download: ``bert-base-sized`` is BERT-base's 12 x 768
layout with a word vocabulary of the data), trains ``--steps`` optimizer steps on the global batch (the first step,
warm-up, is not timed) and runs the influence engine's sharded pool pass (frozen prefix + kNN features) over
``--pool`` MNLI rows. ``--anchor-k K`` also times one anchor's influence (s_test + K candidate scores, the sharded
:func:`hildif.influence.explain.explain`) after the pool pass. Rank 0 writes a JSON line per run; the launcher prints
a Markdown table. On 2 CPU cores expect no speed-up from 2 processes (they share the cores); the ratio that matters
is on a machine with one GPU per process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = {  # hidden, layers, heads, intermediate
    "tiny": (32, 2, 2, 64),
    "minilm-sized": (384, 6, 12, 1536),
    "bert-base-sized": (768, 12, 12, 3072),
}


def worker(args: argparse.Namespace) -> None:
    import torch

    from hildif import distributed
    from hildif.config import DataConfig, InfluenceConfig, TrainConfig
    from hildif.data import load_hans, load_train
    from hildif.influence.engine import InfluenceEngine
    from hildif.model.tiny import build_tiny_classifier
    from hildif.model.training import train

    distributed.init(args.device)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = load_train(DataConfig(max_train_examples=max(args.pool, args.batch_size * (args.steps + 1))))
    hidden, layers, heads, inter = SIZES[args.size]
    clf = build_tiny_classifier(rows, hidden_size=hidden, num_layers=layers, num_heads=heads,
                                intermediate_size=inter, max_length=128, device=device)
    clf.mixed_precision = True
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    cfg = TrainConfig(max_steps=1, batch_size=args.batch_size, learning_rate=1e-5, length_grouping=True, seed=0)
    train(clf, rows, cfg, progress=False)  # warm-up: allocator, kernels, DDP buckets
    sync()
    distributed.barrier()
    t0 = time.perf_counter()
    cfg.max_steps = args.steps
    train(clf, rows, cfg, progress=False)
    sync()
    distributed.barrier()
    step_s = (time.perf_counter() - t0) / args.steps
    pool = rows[: args.pool]
    engine = InfluenceEngine(clf, pool, InfluenceConfig(grad_batch_size=args.grad_batch_size, prefix_memory_mb=10**6))
    distributed.barrier()
    t0 = time.perf_counter()
    feats = engine.pool_features()
    sync()
    distributed.barrier()
    pool_s = time.perf_counter() - t0
    anchor_s = None
    if args.anchor_k:
        from hildif.influence.explain import explain

        anchors = load_hans(DataConfig())[:1]
        icfg = InfluenceConfig(k=min(args.anchor_k, len(pool)), top_p=10, grad_batch_size=args.grad_batch_size,
                               prefix_memory_mb=10**6)
        found = explain(clf, pool, anchors, icfg, engine=engine, progress=False)
        anchor_s = found[0].details["seconds"]
    if distributed.is_main():
        line = {"nproc": distributed.world_size(), "size": args.size, "device": device,
                "batch_size": args.batch_size, "step_s": step_s,
                "train_examples_per_s": args.batch_size / step_s, "pool": len(pool),
                "pool_rows_per_s": len(pool) / pool_s, "features": list(feats.shape) if feats is not None else None,
                "anchor_k": args.anchor_k or None, "anchor_s": anchor_s}
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
    distributed.shutdown()


def launch(args: argparse.Namespace, rest: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.jsonl"
        for n in [int(x) for x in args.nprocs.split(",")]:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
                   __file__, "--worker", "--out", str(out), *rest]
            env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count()
                                                                                                   or 1) // n))))
            subprocess.run(cmd, check=True, env=env)
        results = [json.loads(line) for line in out.read_text().splitlines()]
    print(f"\n{args.size}, device {results[0]['device']}, global batch {args.batch_size}, pool {args.pool} rows\n")
    print("| processes | train step (s) | train examples/s | pool pass rows/s | one anchor, k candidates (s) |")
    print("|---|---|---|---|---|")
    for r in results:
        anchor = f"{r['anchor_s']:.2f} (k={r['anchor_k']})" if r["anchor_s"] is not None else "-"
        print(f"| {r['nproc']} | {r['step_s']:.3f} | {r['train_examples_per_s']:.1f} | {r['pool_rows_per_s']:.1f} | "
              f"{anchor} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nprocs", default="1,2", help="process counts to compare, comma-separated")
    p.add_argument("--size", choices=sorted(SIZES), default="tiny")
    p.add_argument("--steps", type=int, default=8, help="timed optimizer steps (after one warm-up step)")
    p.add_argument("--batch-size", type=int, default=32, help="global batch (divisible by every process count)")
    p.add_argument("--pool", type=int, default=2000, help="MNLI rows in the influence pool pass")
    p.add_argument("--grad-batch-size", type=int, default=32)
    p.add_argument("--anchor-k", type=int, default=0, help="also time one anchor with this many kNN candidates")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
    else:
        launch(args, ["--size", args.size, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                      "--pool", str(args.pool), "--grad-batch-size", str(args.grad_batch_size),
                      "--anchor-k", str(args.anchor_k), "--device", args.device])


if __name__ == "__main__":
    main()
