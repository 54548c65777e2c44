"""``hildif evaluate``: HANS per heuristic x class (Figure 1c layout), per subcase, and MNLI dev accuracy."""

from __future__ import annotations

import argparse

from hildif.options import add_config_options, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a model on HANS and MNLI dev_matched; write JSON, Markdown, PNG")
    add_config_options(p)
    p.add_argument("--title", default="evaluation", help="report name (files <title>.json/.md/.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hildif import distributed
    from hildif.baseline import evaluate_current

    cfg = config_from_args(args)
    distributed.init(cfg.model.device)  # under torchrun: sharded, rank 0 writes the reports
    evaluate_current(cfg, title=args.title, model=args.model)
    distributed.shutdown()
    return 0
