"""One process of the distributed tests (tests/test_distributed.py): run it alone (one process) or under torchrun
(``python -m torch.distributed.run --standalone --nproc-per-node 2 tests/distributed_worker.py ...``).

    python tests/distributed_worker.py OUT train|evaluate|explain

Every process works with the same tiny BERT built in code and genuine MNLI/HANS rows (``HILDIF_DATA_DIR``), gives
its file outputs the folder ``OUT/rank<R>/`` (so a rank that writes anything shows), and saves what it computed to
``OUT/result-<R>.pt`` for the test to compare. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)  # the same kernels in every process: the test compares numbers across launches

from hildif import distributed  # noqa: E402
from hildif.config import DataConfig, InfluenceConfig, TrainConfig  # noqa: E402
from hildif.data import load_dev, load_hans, load_train, stratified_sample  # noqa: E402
from hildif.model.tiny import build_tiny_classifier  # noqa: E402
from hildif.model.training import train  # noqa: E402

TRAIN_ROWS = 97  # with batch 8: the epoch's last batch holds 1 row, so one rank of two gets none


def data():
    cfg = DataConfig(data_dir=os.environ["HILDIF_DATA_DIR"], max_train_examples=600)
    pool = load_train(cfg)
    hans = stratified_sample(load_hans(cfg), 300, seed=1)
    dev = stratified_sample(load_dev(cfg), 200, seed=1)
    return pool, hans, dev


def tiny(pool, hans, seed=0):
    return build_tiny_classifier(list(pool) + list(hans), seed=seed)


def loop_cfg(**kw):
    base = dict(learning_rate=2e-3, epochs=2.0, batch_size=8, grad_accum_steps=2, warmup_ratio=0.1, seed=3,
                weight_decay=0.005, max_grad_norm=1.0)
    base.update(kw)
    return TrainConfig(**base)


def weights(clf):
    return {n: p.detach().cpu().clone() for n, p in clf.model.named_parameters()}


def trained(pool, hans):
    """A tiny model trained a little in this process alone, before the process group is joined: every process
    gets the same weights, so explain and evaluate compare the same model."""
    clf = tiny(pool, hans)
    train(clf, pool[:64], loop_cfg(epochs=1.0, batch_size=16, grad_accum_steps=1), progress=False)
    return clf


def run_train(own: Path, pool, hans, dev, clf) -> dict:
    from hildif.model.evaluation import write_report
    from hildif.model.registry import ModelRegistry

    rows = pool[:TRAIN_ROWS]
    cfg = loop_cfg()
    full_clf = tiny(pool, hans)
    full = train(full_clf, rows, cfg, progress=False, eval_examples=dev[::5], eval_every=4)
    # stop after 3 steps, then resume into a classifier with another initialisation (resume must overwrite it)
    part_clf = tiny(pool, hans)
    part = train(part_clf, rows, cfg, output_dir=own / "state", progress=False, stop_after=3)
    resumed_clf = tiny(pool, hans, seed=5)
    resumed = train(resumed_clf, rows, cfg, output_dir=own / "state", resume=True, progress=False)
    version = ModelRegistry(own / "run").save(resumed_clf, {"kind": "test"})
    paths = write_report({"hans": {"accuracy": 50.0, "n": 1}}, own / "reports", "report")
    return {"losses": full.losses, "evals": full.evals, "steps": full.steps, "examples_seen": full.examples_seen,
            "weights": weights(full_clf), "part_steps": part.steps, "resumed_from": resumed.resumed_from,
            "resumed_losses": resumed.losses, "resumed_weights": weights(resumed_clf), "version": version,
            "report_paths": sorted(str(p.relative_to(own)) for p in paths.values())}


def run_evaluate(own: Path, pool, hans, dev, clf) -> dict:
    from hildif.model.evaluation import evaluate, predict_probs

    result = evaluate(clf, hans, dev, batch_size=32)
    for table in ("hans", "mnli"):
        for key in ("seconds", "examples_per_second"):
            result[table].pop(key)
    return {"result": result, "probs": predict_probs(clf, hans, batch_size=32)}


def run_explain(own: Path, pool, hans, dev, clf) -> dict:
    from hildif.influence.explain import explain

    anchors = hans[:3]
    out = {}
    for name, kw in (("cg", dict(solver="cg")),
                     ("cg-no-prefix", dict(solver="cg", prefix_memory_mb=0)),
                     ("lissa", dict(solver="lissa", lissa_steps=30, lissa_batch_size=4, scale=100.0)),
                     ("mean-query", dict(solver="cg", query="mean"))):
        cfg = InfluenceConfig(k=60, top_p=8, grad_batch_size=8, hessian_samples=32, **kw)
        found = explain(clf, pool[:300], anchors, cfg, cache_dir=own / "cache" / name, progress=False)
        out[name] = [[(i.example.id, i.score, i.rank) for i in e.influential] for e in found]
        out[name + ":cand"] = [e.details["candidates"] for e in found]
    # the second call reads the index from the cache on rank 0 and still shards the candidates
    cfg = InfluenceConfig(k=60, top_p=8, grad_batch_size=8, hessian_samples=32, solver="cg")
    found = explain(clf, pool[:300], anchors, cfg, cache_dir=own / "cache" / "cg", progress=False)
    out["cg-cached"] = [[(i.example.id, i.score, i.rank) for i in e.influential] for e in found]
    out["cg-cached:from_cache"] = [e.details["index"]["from_cache"] for e in found]
    return out


def main() -> int:
    out, task = Path(sys.argv[1]), sys.argv[2]
    pool, hans, dev = data()
    clf = trained(pool, hans) if task != "train" else None
    distributed.init("cpu")
    rank = distributed.rank()
    own = out / f"rank{rank}"
    result = {"train": run_train, "evaluate": run_evaluate, "explain": run_explain}[task](own, pool, hans, dev, clf)
    result["world_size"] = distributed.world_size()
    torch.save(result, out / f"result-{rank}.pt")
    distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
