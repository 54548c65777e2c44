"""Command-line options for the configuration, shared by every hildif subcommand and the ML backend
(``python -m ml_backend``): profile, config file, overrides, data and run directories."""

from __future__ import annotations

import argparse

from hildif.config import HildifConfig, load_config
from hildif.logs import attach_run_log


def add_config_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("configuration")
    g.add_argument("--profile", help="named profile: default (MiniLM, MNLI subsets, CPU) or paper (bert-base-cased)")
    g.add_argument("--config", help="TOML or JSON file with [section] tables overriding the profile")
    g.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override one setting, e.g. --set train.learning_rate=3e-5 (repeatable)",
    )
    g.add_argument("--data-dir", help="data directory (default: $HILDIF_DATA_DIR)")
    g.add_argument("--run-dir", help="where checkpoints, caches and reports go (default: runs/<profile>)")
    g.add_argument("--model", help="model directory or name (overrides model.name_or_path)")
    # also accepted after the subcommand (`hildif demo --verbose`); SUPPRESS keeps `hildif --verbose demo` working
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show libraries' log records on the terminal too (<run_dir>/logs/hildif.log keeps them)")


def config_from_args(args: argparse.Namespace) -> HildifConfig:
    cfg = load_config(profile=args.profile, file=args.config, overrides=args.overrides)
    if getattr(args, "data_dir", None):
        cfg.data.data_dir = args.data_dir
    if getattr(args, "run_dir", None):
        cfg.run.run_dir = args.run_dir
    if getattr(args, "model", None):
        cfg.model.name_or_path = args.model
    attach_run_log(cfg.run.run_dir)
    return cfg
