"""``hildif backend serve``: the Label Studio ML backend (same as ``python -m ml_backend``)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ml_backend.launch import add_serve_options

    p = sub.add_parser("backend", help="the ML backend Label Studio connects to")
    bsub = p.add_subparsers(dest="backend_command", metavar="ACTION")
    s = bsub.add_parser("serve", help="serve /health /setup /predict /webhook /versions with gunicorn")
    add_serve_options(s)
    s.set_defaults(func=run_serve)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_serve(args: argparse.Namespace) -> int:
    from hildif.options import config_from_args
    from ml_backend.launch import serve, settings_from_args

    serve(config_from_args(args), settings_from_args(args))
    return 0
