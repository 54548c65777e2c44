"""``hildif explain``: the most influential training examples of some anchors (FastIF), as JSON and a table.

Anchors come from a pool (the paper's anchors file + MNLI dev by default, or HANS) by ``--pair-ids``,
``--anchors-file`` (pairIDs one per line, or JSON Lines with a ``pairID`` per object), ``--rule`` (see
:mod:`hildif.influence.anchors`) or ``--random N``.
The model is the run's current one (``<run_dir>/models/current.json``), else ``model.name_or_path``.
"""

from __future__ import annotations

import argparse
import textwrap
import time
from pathlib import Path
from typing import Sequence

from hildif.options import add_config_options, config_from_args
from hildif.utils.paths import display_path

POOLS = ("anchors+dev", "anchors", "dev", "hans")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="top influential training examples for anchors (FastIF: kNN + s_test, or the "
                       "gradient store with --set influence.candidates=store)")
    add_config_options(p)
    g = p.add_argument_group("anchors")
    g.add_argument("--pair-ids", help="comma-separated pairIDs of anchors in the pool")
    g.add_argument("--anchors-file", help="file with one anchor pairID per line, or JSON Lines "
                   "with a pairID per object (e.g. the anchors file)")
    g.add_argument("--rule", help="heuristic:NAME, label:NAME, misclassified or all; combine with '+'")
    g.add_argument("--random", type=int, metavar="N", help="N random anchors (from the rule's selection if given)")
    g.add_argument("--pool", choices=POOLS, default="anchors+dev", help="where anchors are looked up")
    p.add_argument("--harmful", action="store_true", help="rank the most harmful (positive) examples first")
    p.add_argument("--output", help="JSON path (default: <run_dir>/explanations/explain-<time>.json)")
    p.set_defaults(func=run)


def load_pool(cfg, name: str):
    from hildif.data.splits import load_anchors, load_dev, load_hans

    out = []
    if "anchors" in name:
        out += load_anchors(cfg.data)
    if "dev" in name:
        out += load_dev(cfg.data)
    if name == "hans":
        out += load_hans(cfg.data)
    return out


def load_model(cfg):
    """The run's current model, else ``model.name_or_path`` (not registered), with eager attention."""
    from hildif.model.loading import load_current

    return load_current(cfg, missing="pretrained", attn_implementation="eager").classifier


def format_table(explanations: Sequence, width: int = 70) -> str:
    """A plain-text table: each anchor, its prediction, then rank / score / label / premise | hypothesis."""
    from hildif.data.example import LABEL_NAMES

    lines = []
    for exp in explanations:
        a = exp.anchor
        lines.append(f"ANCHOR {a.id}  gold={a.label_name}  predicted={LABEL_NAMES[exp.predicted]} "
                     f"(p_entail={exp.probs[1]:.3f})  [{exp.details.get('ranking', 'helpful')}]")
        lines.append("  P: " + textwrap.shorten(a.premise, width))
        lines.append("  H: " + textwrap.shorten(a.hypothesis, width))
        lines.append(f"  {'rank':>4}  {'score':>11}  {'label':<14}  premise | hypothesis")
        for inf in exp.influential:
            e = inf.example
            text = textwrap.shorten(f"{e.premise} | {e.hypothesis}", width)
            lines.append(f"  {inf.rank:>4}  {inf.score:>11.4g}  {e.label_name:<14}  {text}")
        lines.append("")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from hildif.data.splits import load_train
    from hildif.influence.anchors import combine, select_anchors
    from hildif.influence.explain import explain
    from hildif.influence.knn import index_cache_dir
    from hildif.utils.atomic import write_json_atomic, write_text_atomic

    from hildif import distributed

    cfg = config_from_args(args)
    distributed.init(cfg.model.device)  # under torchrun: the pool pass and the scoring sharded, rank 0 writes
    clf = load_model(cfg)
    pool = load_pool(cfg, args.pool)
    strategy = combine(
        pair_ids=[s.strip() for s in args.pair_ids.split(",") if s.strip()] if args.pair_ids else None,
        ids_file=args.anchors_file, rule=args.rule, random_n=args.random, seed=cfg.influence.seed,
    )
    anchors = select_anchors(strategy, pool, classifier=clf)
    train = load_train(cfg.data)
    results = explain(clf, train, anchors, cfg.influence, cache_dir=index_cache_dir(cfg), harmful=args.harmful,
                      store_dir=cfg.cache_path("store"))
    if not distributed.is_main():
        distributed.shutdown()
        return 0
    out = Path(args.output) if args.output else cfg.run_path("explanations", f"explain-{time.strftime('%Y%m%d-%H%M%S')}.json")
    payload = {
        "model_version": clf.version,
        "train_examples": len(train),
        "influence": vars(cfg.influence),
        "explanations": [r.to_dict() for r in results],
    }
    write_json_atomic(out, payload)
    table = format_table(results)
    write_text_atomic(out.with_suffix(".txt"), table + "\n")
    print(table)
    print(f"wrote {display_path(out)}")
    distributed.shutdown()
    return 0
