"""The ``hildif`` console command. Each subcommand lives in its own module under :mod:`hildif.commands`
and exposes ``register(subparsers)``; this file only discovers and dispatches them."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import hildif.commands as commands_pkg
from hildif import __version__
from hildif.config import ConfigError
from hildif.logs import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hildif",
        description="Human In the Loop Debugging using Influence Functions (HILDIF).",
    )
    parser.add_argument("--version", action="version", version=f"hildif {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show every log record on the terminal, libraries' included (the run directory's "
                             "logs/hildif.log keeps them either way)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "common":
            continue
        module = importlib.import_module(f"hildif.commands.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(verbose=args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as exc:
        if args.verbose:
            raise
        print(f"hildif {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
