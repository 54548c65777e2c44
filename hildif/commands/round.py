"""``hildif round start | status | sync | promote``: run a HILDIF round through Label Studio.

The Label Studio URL comes from ``labelstudio.url`` (``--set labelstudio.url=...`` or ``--ls-url``); the API key
from ``$LABEL_STUDIO_API_KEY`` (``labelstudio.api_key_env``) or ``labelstudio.api_key_file``, never the command line.
"""

from __future__ import annotations

import argparse
import json
import sys

from hildif.config import ConfigError
from hildif.options import add_config_options, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("round", help="start, inspect and sync a human-in-the-loop round in Label Studio")
    rsub = p.add_subparsers(dest="round_command", metavar="ACTION")

    s = rsub.add_parser("start", help="check Label Studio, select anchors, explain them, push rating tasks to the "
                                      "round's own project (idempotent; re-creates tasks deleted in Label Studio)")
    _common(s)
    from hildif.influence.anchors import ANCHOR_METHODS

    from hildif.influence.anchors import PROJECT_RULES

    s.add_argument("--anchors", choices=list(ANCHOR_METHODS), default="paper",
                   help="paper: the paper's 5 handpicked anchors; random; pairids: --pair-ids FILE; rule: --rule; "
                        "project: the configured task's examples by --project-anchors")
    s.add_argument("--project-anchors", choices=list(PROJECT_RULES), default="disagreement",
                   help="with --anchors project: disagreement (annotators disagree, most first), wrong (the model "
                        "contradicts the annotators, most confident first), uncertain (the model is least sure), ids "
                        "(--task-ids)")
    s.add_argument("--task-ids", type=_task_ids, metavar="ID,ID,...",
                   help="with --anchors project --project-anchors ids: Label Studio task ids, comma-separated")
    s.add_argument("-n", "--num-anchors", type=int, default=5)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--pair-ids", metavar="FILE",
                   help="with --anchors pairids: a file listing the anchors' pairIDs, one per line ('#' comments), "
                        "or JSON Lines with a pairID per object (e.g. the anchors file); looked up in the anchors "
                        "file and the dev set")
    s.add_argument("--rule", help="e.g. 'heuristic:lexical_overlap+misclassified' or 'label:non-entailment' "
                                  "(heuristics detected in the text of dev examples)")
    s.add_argument("--raters", type=int, metavar="N",
                   help="people who rate each task (default labelstudio.annotators_per_task; kept with the round)")
    s.add_argument("--connect-backend", metavar="URL",
                   help="also connect the hildif ML backend at URL to the project (basic auth from "
                        "$HILDIF_BACKEND_USER / $HILDIF_BACKEND_PASSWORD or $HILDIF_BACKEND_PASSWORD_FILE)")
    s.set_defaults(func=run_start)

    st = rsub.add_parser("status", help="progress per pair and annotator, agreement, syncs")
    _common(st)
    st.add_argument("--offline", action="store_true", help="use the last snapshot instead of asking Label Studio")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=run_status)

    sy = rsub.add_parser("sync", help="pull ratings, aggregate, augment, fine-tune, evaluate, serve the new model")
    _common(sy)
    sy.set_defaults(func=run_sync)

    pr = rsub.add_parser("promote", help="serve a model a sync of the round trained, whatever the promotion gate said")
    pr.add_argument("--round", dest="round_id", required=True, help="round id")
    pr.add_argument("--version", help="model version (default: the round's last successful sync's model)")
    add_config_options(pr)
    pr.set_defaults(func=run_promote)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _task_ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected Label Studio task ids: positive integers separated by commas") \
            from None
    if not ids or min(ids) < 1:
        raise argparse.ArgumentTypeError("expected Label Studio task ids: positive integers separated by commas")
    return ids


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--round", dest="round_id", required=True, help="round id (letters, digits, . _ -)")
    p.add_argument("--ls-url", help="Label Studio URL (default labelstudio.url)")
    add_config_options(p)


def _cfg(args: argparse.Namespace):
    from hildif.labelstudio.access import use_run_access

    cfg = config_from_args(args)
    # no API key configured: the run's own Label Studio (the demo's), which status and sync start when it is down
    args.run_label_studio = use_run_access(cfg, args.ls_url)
    return cfg


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_start(args: argparse.Namespace) -> int:
    from hildif.rounds.start import AnchorSelection, start_round

    cfg = _cfg(args)
    if args.raters is not None:
        if args.raters < 1:
            raise ConfigError(f"--raters {args.raters}: at least one person must rate each task")
        cfg.labelstudio.annotators_per_task = args.raters
    project = {"project_anchors": args.project_anchors, "task_ids": args.task_ids} if args.anchors == "project" else {}
    selection = AnchorSelection(method=args.anchors, n=args.num_anchors, seed=args.seed,
                                pair_ids_file=args.pair_ids, rule=args.rule, **project)
    result = start_round(cfg, args.round_id, selection)
    print(json.dumps(result.to_dict(), indent=2))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.connect_backend:
        from hildif.labelstudio.client import LabelStudioClient
        from ml_backend.settings import basic_auth_from_env

        client = LabelStudioClient.from_config(cfg.labelstudio)
        backend_id = client.connect_ml_backend(result.project_id, args.connect_backend,
                                               basic_auth=basic_auth_from_env())
        print(f"ML backend {args.connect_backend} connected to project {result.project_id} (id {backend_id})")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from hildif.labelstudio.access import running
    from hildif.rounds.status import format_status, round_status

    cfg = _cfg(args)
    with running(None if args.offline else args.run_label_studio, say=_note):
        status = round_status(cfg, args.round_id, live=not args.offline)
    print(json.dumps(status, indent=2, default=str) if args.json else format_status(status))
    return 0


def run_sync(args: argparse.Namespace) -> int:
    from hildif.labelstudio.access import running
    from hildif.rounds.sync import sync_round

    cfg = _cfg(args)
    with running(args.run_label_studio, say=_note):
        result = sync_round(cfg, args.round_id)
    print(json.dumps(result.to_dict(), indent=2, default=str))
    return 0


def run_promote(args: argparse.Namespace) -> int:
    from hildif.rounds.sync import promote

    result = promote(config_from_args(args), args.round_id, args.version)
    print(f"round {result['round_id']}: now serving {result['version']} (sync {result['sync_id']}; was "
          f"{result['previous_version'] or 'none'})")
    return 0
