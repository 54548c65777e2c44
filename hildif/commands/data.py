"""``hildif data``: download the official files (``fetch``) and inspect a data file (``check``)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="download the official HANS/MNLI files or check a data file")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    f = dsub.add_parser("fetch", help="download HANS and MNLI with digest checks into DEST")
    f.add_argument("--dest", required=True, help="data directory to fill (then set HILDIF_DATA_DIR to it)")
    f.add_argument("--manifest", help="a JSON manifest of files (default: the official sources)")
    f.add_argument("--only", action="append", help="fetch only this entry (repeatable)")
    f.add_argument("--allow-unverified", action="store_true", help="accept files with no pinned digest")
    f.set_defaults(func=run_fetch)
    c = dsub.add_parser("check", help="read a data file and report rows, labels and bad rows")
    c.add_argument("path")
    c.add_argument("--skip-bad-rows", action="store_true", help="count bad rows instead of stopping at the first")
    c.set_defaults(func=run_check)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def run_fetch(args: argparse.Namespace) -> int:
    from hildif.data.fetch import fetch

    for row in fetch(args.dest, args.manifest, args.only, args.allow_unverified):
        print(f"{row['name']:<12} {row['status']:<20} {row['path']}  sha256={row['sha256']}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from hildif.data.loaders import LoadStats, load_examples

    stats = LoadStats()
    examples = load_examples(args.path, skip_bad_rows=args.skip_bad_rows, stats=stats)
    ent = sum(e.label for e in examples)
    print(json.dumps({"file": stats.file, "rows": stats.rows, "loaded": stats.loaded, "entailment": ent,
                      "non_entailment": len(examples) - ent, "skipped": stats.skipped,
                      "first_errors": stats.errors[:5]}, indent=2))
    return 0
