"""``hildif cache list`` and ``hildif cache prune``: a run's kNN indexes, gradient stores and frozen prefixes by
model version, and removing those no served model, recent version or open round needs (:mod:`hildif.caches`)."""

from __future__ import annotations

import argparse
import json

from hildif.options import add_config_options, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="the run's influence caches: `hildif cache list`, `hildif cache prune`")
    actions = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="every cache (kNN index, gradient store, prefixes) with its versions, size "
                                         "and whether prune would keep it")
    add_config_options(ls)
    ls.add_argument("--json", action="store_true", help="one JSON list of entries instead of the table")
    ls.set_defaults(func=run_list)
    pr = actions.add_parser("prune", help="remove the caches of versions that are neither served, among the newest "
                                          "influence.cache_keep_versions, nor an open round's base")
    add_config_options(pr)
    pr.add_argument("--keep", type=int, default=None, metavar="N",
                    help="newest versions to keep (default: influence.cache_keep_versions)")
    pr.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    pr.set_defaults(func=run_prune)


def _row(d) -> str:
    from hildif.caches import human_bytes

    e = d.entry
    versions = ",".join(v[:12] for v in e.versions) or "-"
    return (f"{d.folder.name + '/' + e.name:<34} {e.kind:<7} {e.state:<8} {human_bytes(e.size):>10}  {e.created:<20} "
            f"{versions:<26} {'keep' if d.keep else 'prune'}: {d.reason}")


def run_list(args: argparse.Namespace) -> int:
    from hildif.caches import human_bytes, plan

    decisions = plan(config_from_args(args))
    if args.json:
        print(json.dumps([d.to_dict() for d in decisions], indent=1, default=str))
        return 0
    if not decisions:
        print("no caches")
        return 0
    print(f"{'cache':<34} {'kind':<7} {'state':<8} {'size':>10}  {'created':<20} {'versions':<26} prune would")
    for d in decisions:
        print(_row(d))
    total = sum(d.entry.size for d in decisions)
    print(f"{len(decisions)} entries, {human_bytes(total)}")
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from hildif.caches import human_bytes, plan, prune
    from hildif.config import ConfigError

    if args.keep is not None and args.keep < 0:
        raise ConfigError(f"--keep {args.keep}: must be 0 or more")
    decisions = plan(config_from_args(args), args.keep)
    going = [d for d in decisions if not d.keep]
    verb = "would remove" if args.dry_run else "removed"
    for d in going:
        print(f"{verb} {d.folder.name}/{d.entry.name} ({d.entry.kind}, {human_bytes(d.entry.size)}): {d.reason}")
    freed = prune(decisions, dry_run=args.dry_run)
    kept = len(decisions) - len(going)
    print(f"{verb} {len(going)} cache{'s' if len(going) != 1 else ''}, {'freeing' if args.dry_run else 'freed'} "
          f"{freed} bytes ({human_bytes(freed)}); {kept} kept")
    return 0
