"""Influence over the whole training pool, in one run: the exact oracle, FastIF's kNN prefilter, the exact gradient
store (old: full per-example gradients, CountSketched) and the projected store (new: per-layer projections from hooks,
``influence.store_build = projected``), side by side on the same model, pool and anchors.

On a trained model (the run's current one) and the paper's anchors, over the training pool:

knn pass   the one-off pass of the kNN mode: every example's frozen prefix and kNN features (``pool_features``), then
           the FAISS flat index. The stores below reuse the prefixes it keeps, as a round would after it.
oracle     every training example scored exactly by the engine. With ``--old`` from the old store's pass (per-example
           gradients dotted with each anchor's s_test); without it by the engine's ``jvp`` over the whole pool.
knn        FastIF: the k nearest neighbours scored exactly.
old d      the exact store at dimension d: ``only``: the pool scored with v / lambda (no s_test); ``+rerank R``: the
           pool scored with the projected s_test, its best R re-scored exactly.
new D      the projected store capped at D numbers: ``only``: its own curvature (the Hessian sample's damped
           Gauss-Newton matrix in the projected space, no s_test of the engine); ``v/lambda``: as the old store's;
           ``+rerank R``: as the old store's. Its build is timed after the kNN pass (prefixes reused) and, with
           ``--fresh``, on a fresh engine (prefixes computed in the same pass: a store-mode round with no kNN pass).

Per-anchor times include everything after the one-off passes (anchor gradient, s_test by CG where used, candidate
scores). Recall@m: the share of the oracle's top-m (most negative) that a method's own top-m contains.

Usage: python benchmarks/influence_pool.py --run-dir runs/default --cache-dir <empty dir> [--train N]
       [--old --dims 256,1024] [--new-dims 1024,4096] [--fresh] [--rerank 200] [--k 1000] [--threads 2]
       [--output benchmarks/results/influence_pool.md]
The run folder is only read (its current model); caches go to --cache-dir.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HILDIF_DATA_DIR", str(REPO.parent / "shared" / "data"))

from hildif.config import load_config  # noqa: E402
from hildif.data.splits import load_anchors, load_train  # noqa: E402
from hildif.influence.engine import InfluenceEngine  # noqa: E402
from hildif.influence.explain import candidate_indices, rank  # noqa: E402
from hildif.influence.knn import FeatureIndex  # noqa: E402
from hildif.influence.store import CountSketch, GradientStore, ProjectedStore  # noqa: E402
from hildif.model.classifier import Classifier  # noqa: E402
from hildif.model.registry import ModelRegistry  # noqa: E402
from hildif.utils.artifacts import ArtifactDir  # noqa: E402
from results_file import run_line, write_results  # noqa: E402


def recall(top: np.ndarray, oracle_top: np.ndarray) -> float:
    return len(set(top.tolist()) & set(oracle_top.tolist())) / len(oracle_top)


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def old_store(engine, S, dims, store_dir, seed):
    """The exact store's pass (its prefixes reused): the store at dims[0], the other dims' sketches and the oracle's
    exact dot products from the same per-example gradients. Returns (stores, oracle dots (A, N), seconds, extras)."""
    n = len(engine.train)
    others = {d: (CountSketch(engine.objective.size, d, seed), np.zeros((n, d), np.float16), np.zeros(n, np.float32))
              for d in dims[1:]}
    dots = np.zeros((len(S), n), dtype=np.float64)
    extra = {"projections": 0.0, "oracle": 0.0}

    def on_batch(idx, grads, _feats):
        t0 = time.perf_counter()
        dots[:, idx] = (grads @ S.T).double().T.numpy()
        t1 = time.perf_counter()
        for proj, rows, norms in others.values():
            p = proj(grads).double()
            nm = p.norm(dim=1)
            rows[idx] = (p / nm.clamp_min(1e-30)[:, None]).float().numpy().astype(np.float16)
            norms[idx] = nm.float().numpy()
        extra["oracle"] += t1 - t0
        extra["projections"] += time.perf_counter() - t1

    first, seconds = timed(GradientStore.build_or_load, engine, dims[0], store_dir, progress=True, on_batch=on_batch)
    if first.from_cache:
        raise SystemExit(f"store for dim {dims[0]} already cached in {store_dir}: use an empty --cache-dir")
    stores = {dims[0]: first}
    for d, (proj, rows, norms) in others.items():
        GradientStore.save(ArtifactDir(store_dir), GradientStore.exact_key(engine, d, seed), rows, norms)
        stores[d] = GradientStore.build_or_load(engine, d, store_dir)  # read back, memory-mapped
    penalty = np.array([float(engine.objective.penalty_dot(s.double()) - engine.objective.penalty_dot(s)) for s in S])
    return stores, -(dots + penalty[:, None]), seconds, extra


def exact_oracle(engine, S) -> np.ndarray:
    """(A, N): every anchor's exact influence on every pool example from one forward and backward pass per batch
    (the hooks' layer-by-layer exact dot products, :func:`hildif.influence.projected.exact_batch_dots`)."""
    from hildif.influence.projected import exact_batch_dots
    from hildif.influence.store import _pool_batches

    layout = ProjectedStore.projection(engine, 1, 0)  # only its layout is used
    dots = np.zeros((len(S), len(engine.train)), dtype=np.float64)
    for idx, batch in _pool_batches(engine, True, "oracle"):
        dots[:, idx] = exact_batch_dots(engine.split, layout, batch, S).T.cpu().numpy()
    penalty = np.array([float(engine.objective.penalty_dot(s.double())) for s in S])
    return -(dots + penalty[:, None])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default="runs/default")
    ap.add_argument("--cache-dir", required=True, help="where the stores are written (not the run folder)")
    ap.add_argument("--train", type=int, default=None, help="subsample the pool (seeded, data.max_train_examples)")
    ap.add_argument("--old", action="store_true", help="also build the old (exact) store; its pass gives the oracle")
    ap.add_argument("--dims", default="256,1024", help="the old store's dimensions")
    ap.add_argument("--new-dims", default="1024,4096", help="the projected store's caps on numbers per example")
    ap.add_argument("--fresh", action="store_true", help="also time the projected build on a fresh engine")
    ap.add_argument("--rerank", type=int, default=200)
    ap.add_argument("--check-oracle", action="store_true", help="check the oracle on one anchor by the engine's jvp")
    ap.add_argument("--k", default="1000", help="comma-separated kNN sizes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "influence_pool.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dims = [int(d) for d in args.dims.split(",")]
    new_dims = [int(d) for d in args.new_dims.split(",")]
    ks = [int(k) for k in args.k.split(",")]
    overrides = [f"run.run_dir={args.run_dir}", f"run.cache_dir={args.cache_dir}"]
    if args.train:
        overrides.append(f"data.max_train_examples={args.train}")
    cfg = load_config(overrides=overrides)
    current = ModelRegistry(cfg.run.run_dir).current_path()
    if current is None:
        raise SystemExit(f"no current model in {args.run_dir}")
    clf = Classifier.load(str(current), num_labels=cfg.model.num_labels, max_length=cfg.model.max_length,
                          device="cpu", attn_implementation="eager")
    train = load_train(cfg.data)
    anchors = load_anchors(cfg.data)
    icfg = cfg.influence
    engine = InfluenceEngine(clf, train, icfg)
    n = len(train)
    print(f"model {clf.version}, pool {n}, anchors {len(anchors)}, params {engine.objective.size}", flush=True)

    # the kNN mode's one-off pass: prefixes + features, then the index
    feats, knn_pass_s = timed(engine.pool_features)
    index, index_s = timed(FeatureIndex.build, feats, icfg.index)
    print(f"kNN pass {knn_pass_s:.1f} s, index {index_s:.1f} s", flush=True)

    # s_test of every anchor (CG, the engine's default); the Hessian sample's graph is one-off
    _, hessian_s = timed(engine.hessian_operator, engine.hessian_sample())
    grads_v, s_tests, s_test_s = [], [], []
    for a in anchors:
        t = time.perf_counter()
        v = engine.anchor_gradient(a)
        s_tests.append(engine.s_test(v).s_test)
        s_test_s.append(time.perf_counter() - t)
        grads_v.append(v)
    S = torch.stack(s_tests)  # (A, P)
    store_dir = cfg.cache_path("store")

    olds, old_s, old_extra, oracle_s, oracle_check, plain = {}, None, None, None, None, None
    if args.old:
        olds, oracle, old_s, old_extra = old_store(engine, S, dims, store_dir, icfg.seed)
        print(f"old store {old_s:.1f} s", flush=True)
    else:
        t = time.perf_counter()
        both = exact_oracle(engine, torch.cat([S, torch.stack(grads_v) / engine.damping_total]))
        oracle, plain = both[: len(S)], both[len(S):]  # plain: exact -v/lambda . grad L(z), no curvature
        oracle_s = time.perf_counter() - t
        print(f"oracle (exact, every anchor in one pass) {oracle_s:.1f} s", flush=True)
        if args.check_oracle:
            jvp = engine.influence(S[0], range(n))
            oracle_check = (recall(rank(jvp, 10), rank(oracle[0], 10)),
                            float(np.abs(jvp - oracle[0]).max() / np.abs(oracle[0]).max()))

    news, new_s, fresh_s = {}, {}, {}
    for d in new_dims:
        news[d], new_s[d] = timed(ProjectedStore.build_or_load, engine, d, store_dir, progress=True)
        if news[d].from_cache:
            raise SystemExit(f"projected store {d} already cached in {store_dir}: use an empty --cache-dir")
        print(f"new store cap {d} (D = {news[d].dim}, k = {news[d].projector.k}): {new_s[d]:.1f} s", flush=True)
    if args.fresh:
        for d in new_dims[:1]:
            fresh = InfluenceEngine(clf, train, icfg)
            _, fresh_s[d] = timed(ProjectedStore.build_or_load, fresh, d, None, progress=True)
            print(f"new store cap {d} on a fresh engine: {fresh_s[d]:.1f} s", flush=True)
            del fresh

    def exact_rerank(ai, approx):
        cand = rank(approx, args.rerank)
        sc = engine.influence(S[ai], cand)
        return cand[rank(sc, 50)]

    rows_out = []
    for ai, a in enumerate(anchors):
        o10, o50 = rank(oracle[ai], 10), rank(oracle[ai], 50)
        res = {"anchor": a.id}

        def record(key, seconds, top):
            res[key] = (seconds, recall(top[:10], o10), recall(top[:50], o50))

        if plain is not None:
            record("plain", 0.0, rank(plain[ai], 50))
        for k in ks:
            t = time.perf_counter()
            cand = candidate_indices(clf, index, [a], k, icfg.query)[0]
            top = cand[rank(engine.influence(S[ai], cand), 50)]
            record(f"knn{k}", s_test_s[ai] + time.perf_counter() - t, top)
        for label, stores in (("old", olds), ("new", news)):
            for d, store in stores.items():
                t = time.perf_counter()
                v = engine.anchor_gradient(a)
                top = rank(store.fast_influence(v) if label == "new" else store.influence(v / engine.damping_total),
                           50)
                record(f"{label}{d}", time.perf_counter() - t, top)
                if label == "new":
                    t = time.perf_counter()
                    top = rank(store.influence(engine.anchor_gradient(a) / engine.damping_total), 50)
                    record(f"{label}{d}v", time.perf_counter() - t, top)
                t = time.perf_counter()
                top = exact_rerank(ai, store.influence(S[ai]))
                record(f"{label}{d}r", s_test_s[ai] + time.perf_counter() - t, top)
        rows_out.append(res)
        print(res, flush=True)

    methods = [("plain", "exact gradient dot products -v/lambda . grad L(z), whole pool (no curvature, no "
                         "projection; from the oracle's pass, untimed)")] if plain is not None else []
    methods += [(f"knn{k}", f"kNN k={k} (exact on candidates)") for k in ks]
    for d in olds:
        methods += [(f"old{d}", f"old store d={d}, store scores only (v / lambda)"),
                    (f"old{d}r", f"old store d={d} + exact re-rank of top {args.rerank}")]
    for d, st in news.items():
        methods += [(f"new{d}", f"new store D={st.dim} (k={st.projector.k}), store only, GGN curvature"),
                    (f"new{d}v", f"new store D={st.dim}, store only, v / lambda"),
                    (f"new{d}r", f"new store D={st.dim} + exact re-rank of top {args.rerank}")]
    mean = lambda key, j: float(np.mean([r[key][j] for r in rows_out]))  # noqa: E731
    worst = lambda key, j: float(np.min([r[key][j] for r in rows_out]))  # noqa: E731
    lines = [
        "## The run's output",
        "",
        f"Model {clf.version} (MiniLM-L6); pool: {n} training examples"
        + (f" (a seeded subsample, `--train {args.train}`)" if args.train else "") + f"; anchors: the paper's "
        f"{len(anchors)}; params: FastIF's ({engine.objective.size:,}); s_test by CG (damping x scale = "
        f"{engine.damping_total:g}); torch threads {args.threads}; {platform.machine()} CPU, {os.cpu_count()} cores "
        "shared with other work.",
        "",
        "One-off work per model version:",
        f"- kNN pass (frozen prefixes + kNN features of the pool): {knn_pass_s:.1f} s; FAISS flat index {index_s:.1f} s;"
        f" the CG Hessian sample's graph {hessian_s:.1f} s;",
    ]
    if args.old:
        lines.append(f"- old store build (prefixes reused; per-example gradients, CountSketch d = {dims[0]}): "
                     f"{old_s - old_extra['oracle'] - old_extra['projections']:.1f} s (the pass took {old_s:.1f} s with "
                     f"the benchmark's extras: {old_extra['oracle']:.1f} s oracle dot products, "
                     f"{old_extra['projections']:.1f} s other dimensions' sketches);")
    else:
        lines.append(f"- old store: not built in this run (`--old` not given); the oracle (exact dot products from "
                     f"the hooks, every anchor in one pass): {oracle_s:.1f} s"
                     + (f"; against the engine's jvp on the first anchor: top-10 overlap {oracle_check[0]:.2f}, "
                        f"largest difference {oracle_check[1]:.1e} of the largest score" if oracle_check else "") + ";")
    for d, st in news.items():
        lines.append(f"- new store build, cap {d} (D = {st.dim}, k = {st.projector.k}; prefixes reused; rows, the "
                     f"Gauss-Newton factor and the files): {new_s[d]:.1f} s = {new_s[d] / knn_pass_s:.2f} x the kNN "
                     f"pass; {st.nbytes / 2**20:.1f} MiB on disk"
                     + (f"; on a fresh engine (its own prefixes and features in the same pass): {fresh_s[d]:.1f} s = "
                        f"{fresh_s[d] / knn_pass_s:.2f} x the kNN pass" if d in fresh_s else "") + ";")
    lines += [
        "",
        "Per anchor (mean over the anchors; the worst anchor's recall in brackets) against the oracle's top lists:",
        "",
        "| method | per-anchor time | recall@10 | recall@50 |",
        "|---|---|---|---|",
    ]
    for key, label in methods:
        lines.append(f"| {label} | {mean(key, 0):.2f} s | {mean(key, 1):.2f} ({worst(key, 1):.2f}) | "
                     f"{mean(key, 2):.2f} ({worst(key, 2):.2f}) |")
    lines += ["", "Per anchor (time / recall@10 / recall@50):", "",
              "| anchor | s_test (CG) | " + " | ".join(k for k, _ in methods) + " |",
              "|---|---|" + "---|" * len(methods)]
    for ai, r in enumerate(rows_out):
        lines.append(f"| {r['anchor']} | {s_test_s[ai]:.1f} s | " + " | ".join(
            f"{r[k][0]:.2f} s / {r[k][1]:.2f} / {r[k][2]:.2f}" for k, _ in methods) + " |")
    lines += ["", run_line("influence_pool.py")]
    write_results(lines, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
