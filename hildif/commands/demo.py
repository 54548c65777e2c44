"""``hildif demo``: one whole HILDIF round on this machine (Label Studio, ML backend, baseline, round, ratings,
sync, before/after table). The options and what is printed live here; the steps in :mod:`hildif.demo`."""

from __future__ import annotations

import argparse
import signal

from hildif.commands.experiment import add_eval_sample_options, config_with_eval_samples
from hildif.options import add_config_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run one HILDIF round end to end: Label Studio, ML backend, baseline, ratings, before/after",
        description="Starts Label Studio and the ML backend on 127.0.0.1, trains (or reuses) the baseline, explains "
                    "the paper's five anchors, lets simulated annotators (default) or people rate the influential "
                    "examples, fine-tunes and prints the before/after HANS and MNLI accuracies. Stops what it "
                    "started, also on Ctrl-C.",
    )
    p.add_argument("--annotators", choices=["simulated", "human"], default="simulated",
                   help="simulated: three simulated annotators rate through the Label Studio API (default); "
                        "human: print the URL and wait for people to rate")
    p.add_argument("--round", dest="round_id", default="demo", help="round id (default demo; rerun continues it)")
    p.add_argument("--anchors-file", help="JSON lines of anchors (default data.anchors_file: the paper's five)")
    p.add_argument("--anchors", dest="n_anchors", type=int, default=5, help="how many anchors of the file (5)")
    p.add_argument("--p", dest="top_p", type=int, default=10, help="influential examples per anchor (10)")
    p.add_argument("--simulated-annotators", dest="simulated", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="simulated annotators' seed")
    p.add_argument("--ls-url", help="use this running Label Studio (API key from $LABEL_STUDIO_API_KEY) instead of "
                                    "starting one")
    p.add_argument("--ls-port", type=int, default=8080, help="port for the Label Studio the demo starts (8080)")
    p.add_argument("--backend-port", type=int, help="port for the ML backend (default: a free one)")
    p.add_argument("--no-backend", action="store_true", help="do not start the ML backend")
    p.add_argument("--people", nargs="+", default=[], metavar="EMAIL",
                   help="human mode: make a Label Studio account for each EMAIL (passwords shown once); each task "
                        "then needs as many raters as people named")
    p.add_argument("--raters", type=int, help="human mode: raters per task (default: the number of --people, else "
                                              "labelstudio.annotators_per_task)")
    p.add_argument("--wait-timeout", type=float, help="human mode: sync what is rated after this many seconds "
                                                      "(default 1800)")
    add_eval_sample_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_config_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hildif.demo import run_demo
    from hildif.logs import steps_console

    steps_console()  # the [demo] lines say what each step did; hildif's log records go to <run_dir>/logs/hildif.log
    # an interrupt (Ctrl-C, or SIGINT from the script that started the demo) stops what the demo started, also
    # when the demo was started in the background by a non-interactive shell (``hildif demo &``), which hands it
    # SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = run_demo(config_with_eval_samples(args), options_from_args(args), say=say)
    except KeyboardInterrupt:
        return 130
    print_result(result)
    return 0


def options_from_args(args: argparse.Namespace):
    """The :class:`hildif.demo.DemoOptions` of the command line."""
    from hildif.demo import DemoOptions

    return DemoOptions(
        annotators=args.annotators, round_id=args.round_id, n_anchors=args.n_anchors, anchors_file=args.anchors_file,
        top_p=args.top_p, simulated=args.simulated, seed=args.seed, ls_url=args.ls_url, ls_port=args.ls_port,
        backend=not args.no_backend, backend_port=args.backend_port, wait_timeout_s=args.wait_timeout,
        progress=not args.no_progress, people=list(args.people), raters=args.raters,
    )


def say(step: int | None, text: str) -> None:
    """One step's news on the terminal: ``[demo 3/7] text`` (``[demo] text`` outside the steps)."""
    from hildif.demo import STEPS

    prefix = f"[demo {step}/{STEPS}]" if step else "[demo]"
    print(f"{prefix} {text}", flush=True)


def _num(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_result(result) -> None:
    """The before/after table (the paper's Figure 1c layout), MNLI accuracy and the report files."""
    from hildif.utils.paths import display_path

    print("\nHANS accuracy (entailment %, non-entailment %) per heuristic; HANS and MNLI dev accuracy %:\n")
    print(result.table)
    mnli_b, mnli_a = (result.before.get("mnli") or {}).get("accuracy"), (result.after.get("mnli") or {}).get("accuracy")
    change = "" if mnli_b is None or mnli_a is None else f" ({mnli_a - mnli_b:+.2f} points)"
    print(f"MNLI dev accuracy (%, 2 decimals): {_num(mnli_b)} -> {_num(mnli_a)}{change}")
    print("reports (demo.html: one page with the plots, for a browser):")
    for name, path in result.paths.items():
        print(f"  {name}: {display_path(path)}")
    print(flush=True)
