"""The ``hildif`` console command. Each subcommand lives in its own module under :mod:`hildif.commands`
and exposes ``register(subparsers)``; this file only discovers and dispatches them.

A :class:`hildif.errors.HildifError` ends the command with its message on one line and exit code 1 (``--verbose``:
with its traceback); any other exception is a bug and surfaces with its traceback."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import hildif.commands as commands_pkg
from hildif import __version__
from hildif.errors import HildifError
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
    except HildifError as exc:  # ours: the message says what is at fault; anything else is a bug and surfaces
        if args.verbose:
            raise
        print(f"hildif {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 1


def one_line(exc: BaseException) -> str:
    """The error's message on one line (a multi-line message's lines joined by "; ")."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
