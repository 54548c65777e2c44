"""``hildif train``: FIT, the baseline classifier on MNLI train, then its HANS/MNLI evaluation."""

from __future__ import annotations

import argparse

from hildif.options import add_config_options, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the baseline classifier on MNLI (the paper's FIT) and evaluate it")
    add_config_options(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its saved state")
    p.add_argument("--no-eval", action="store_true", help="skip the HANS/MNLI evaluation after training")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hildif.baseline import evaluate_current, train_baseline

    cfg = config_from_args(args)
    info = train_baseline(cfg, resume=args.resume)
    print(f"trained model version {info['version']} in {info['train']['seconds'] / 60:.1f} min "
          f"({info['train']['steps']} steps); saved to {info['path']}")
    if not args.no_eval:
        evaluate_current(cfg, title="baseline")
    return 0
