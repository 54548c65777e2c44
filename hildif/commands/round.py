"""``hildif round start | status | sync | show | promote``: run a HILDIF round through Label Studio.

The Label Studio URL comes from ``labelstudio.url`` (``--set labelstudio.url=...`` or ``--ls-url``); the API key
from ``$LABEL_STUDIO_API_KEY`` (``labelstudio.api_key_env``) or ``labelstudio.api_key_file``, never the command line.
"""

from __future__ import annotations

import argparse
import json
import sys

from hildif.config import ConfigError
from hildif.options import add_config_options, config_from_args
from hildif.rounds.setfile import KINDS

SET_FORMATS = ("table", "csv", "jsonl")


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

    sh = rsub.add_parser("show", help="a sync's report files, or the examples its model was fine-tuned on",
                         description="Without --fine-tuning-set: where a sync's report is (round.md, round.html) and "
                                     "what it did. With it: the fine-tuning set, one row per example (kind: rated, "
                                     "copy, syntactic, rehearsal; its source, score, augmenter, label and texts), as "
                                     "a table, CSV or JSON lines, on the terminal or into --output.")
    sh.add_argument("--round", dest="round_id", required=True, help="round id")
    sh.add_argument("--sync", dest="sync_id", type=int, help="sync id (default: the round's last successful sync)")
    sh.add_argument("--fine-tuning-set", dest="show_set", action="store_true",
                    help="the fine-tuning set (not --set: that overrides a setting, as in every command)")
    sh.add_argument("--kind", action="append", choices=list(KINDS), help="only rows of this kind (repeatable)")
    sh.add_argument("--format", choices=SET_FORMATS, default="table",
                    help="table (default; texts cut to fit), csv or jsonl (whole texts)")
    sh.add_argument("--limit", type=int, help="at most this many rows")
    sh.add_argument("--output", "-o", metavar="FILE", help="write the rows to FILE instead of the terminal")
    add_config_options(sh)
    sh.set_defaults(func=run_show)

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
    if result.report_dir:
        from pathlib import Path

        from hildif.utils.paths import display_path

        report = Path(result.report_dir)
        _note(f"round report: {display_path(report / 'round.md')} (one page with the plots: "
              f"{display_path(report / 'round.html')}); the fine-tuning set: hildif round show --round "
              f"{args.round_id} --fine-tuning-set")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from hildif.rounds import setfile
    from hildif.rounds.start import RoundError
    from hildif.rounds.state import RoundState
    from hildif.utils.atomic import write_text_atomic
    from hildif.utils.paths import display_path

    cfg = config_from_args(args)
    state = RoundState(cfg.run_path("rounds.sqlite"))
    info = state.round(args.round_id)
    done = [s for s in state.syncs(args.round_id) if s["status"] == "done"]
    sync = next((s for s in reversed(done) if args.sync_id in (None, s["sync_id"])), None)
    if sync is None:
        made = ", ".join(str(s["sync_id"]) for s in done) or "none"
        raise RoundError(f"round {args.round_id!r} has no successful sync {args.sync_id or ''}".rstrip()
                         + f" (its successful syncs: {made})")
    labels = ((info.get("config") or {}).get("task") or {}).get("labels") or setfile.LABEL_NAMES
    rows = setfile.sync_rows(state, sync, labels)
    if not args.show_set:
        print(format_sync(args.round_id, sync, rows, info["base_version"]))
        return 0
    rows = [r for r in rows if not args.kind or r.kind in args.kind][: args.limit]
    text = {"csv": setfile.to_csv, "jsonl": setfile.to_jsonl, "table": format_set}[args.format](rows)
    if args.output:
        path = write_text_atomic(args.output, text)
        print(f"wrote {len(rows)} rows of round {args.round_id} sync {sync['sync_id']}'s fine-tuning set to "
              f"{display_path(path)}")
    else:
        sys.stdout.write(text)
    return 0


def format_sync(round_id: str, sync: dict, rows: list, base_version: str) -> str:
    """What ``hildif round show`` prints without ``--fine-tuning-set``: the sync in a few lines and where its report
    is."""
    from pathlib import Path

    from hildif.rounds import setfile
    from hildif.utils.paths import display_path

    summary = sync.get("summary") or {}
    served = ("promoted by an admin" if summary.get("promoted") else
              "served" if summary.get("served") else "not served (promotion gate)")
    counts = ", ".join(f"{setfile.KINDS[k][0]} {n}" for k, n in
                       zip(setfile.KINDS, setfile.kind_counts(rows).values()) if n)
    lines = [f"round {round_id} sync {sync['sync_id']}: model {base_version} -> {sync['version']}, {served}",
             f"  fine-tuning set: {len(rows)} examples ({counts or 'none'})"]
    report = Path(sync["report_dir"]) if sync.get("report_dir") else None
    for name in ("round.md", "round.html", setfile.SET_FILE):
        if report is not None and (report / name).exists():
            lines.append(f"  {name}: {display_path(report / name)}")
    lines.append(f"  the set's rows: hildif round show --round {round_id} --sync {sync['sync_id']} --fine-tuning-set "
                 "[--kind copy] [--format csv --output set.csv]")
    return "\n".join(lines)


def format_set(rows: list) -> str:
    """The set's rows as a table for the terminal (texts cut to fit)."""
    def cut(text: str, width: int) -> str:
        text = " ".join(text.split())
        return text if len(text) <= width else text[: width - 1] + "…"

    head = f"{'row':>5}  {'kind':<9}  {'id':<18}  {'source':<14}  {'score':>5}  {'augmenter':<16}  {'label':<14}  texts"
    out = [head]
    for r in rows:
        score = "" if r.score is None else f"{r.score:.2f}"
        out.append(f"{r.position:>5}  {r.kind:<9}  {cut(r.id, 18):<18}  {cut(r.source_id, 14):<14}  {score:>5}  "
                   f"{cut(r.augmenter, 16):<16}  {cut(r.label, 14):<14}  "
                   f"{cut(r.premise, 60)} / {cut(r.hypothesis, 40)}")
    return "\n".join(out) + "\n"


def run_promote(args: argparse.Namespace) -> int:
    from hildif.rounds.sync import promote

    result = promote(config_from_args(args), args.round_id, args.version)
    print(f"round {result['round_id']}: now serving {result['version']} (sync {result['sync_id']}; was "
          f"{result['previous_version'] or 'none'})")
    return 0
