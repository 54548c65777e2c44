"""``hildif config show``: every setting with its type, default, what it allows and one line of help; with
``--profile``, ``--config`` or ``--set``, the value they give where it differs from the default (and a bad value
fails as it would for any command, naming the key, the value and what is allowed)."""

from __future__ import annotations

import argparse
import json

from hildif.config import describe_settings, load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="the settings: `hildif config show` lists every key with its type, default, "
                                      "allowed values and help")
    actions = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="list every setting (section.key) with its type, default, allowed "
                                           "values and help")
    show.add_argument("--profile", help="named profile whose values to show beside the defaults (default, paper)")
    show.add_argument("--config", help="TOML or JSON file whose values to show beside the defaults")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                      help="an override whose value to show (repeatable); checked like any command's")
    show.add_argument("--json", action="store_true", help="one JSON list of rows instead of the table")
    show.set_defaults(func=run_show)


def _text(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else repr(value)


def run_show(args: argparse.Namespace) -> int:
    cfg = load_config(profile=args.profile, file=args.config, overrides=args.overrides)
    rows = describe_settings(cfg)
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    key_w = max(len(r["key"]) for r in rows)
    type_w = max(len(r["type"]) for r in rows)
    print(f"{'key':<{key_w}}  {'type':<{type_w}}  default  (profile {cfg.profile})")
    for r in rows:
        now = f"  now {_text(r['value'])}" if r["value"] != r["default"] else ""
        allowed = f"  [{r['allowed']}]" if r["allowed"] else ""
        print(f"{r['key']:<{key_w}}  {r['type']:<{type_w}}  {_text(r['default'])}{now}")
        print(f"{'':<{key_w}}  {r['help']}{allowed}")
    return 0
