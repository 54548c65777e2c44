"""``hildif experiment ablation``: the paper's eight configurations x p x seeds (Figure 1), with simulated annotators.

Library calls only (no Label Studio), so it runs alone on a GPU machine; a rerun resumes where it stopped.
"""

from __future__ import annotations

import argparse

from hildif.options import add_config_options, config_from_args
from hildif.utils.paths import display_path


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def add_eval_sample_options(parser: argparse.ArgumentParser) -> None:
    """``--hans-sample N`` / ``--mnli-sample N``: evaluate on stratified samples (eval.hans_sample, eval.mnli_sample)."""
    parser.add_argument("--hans-sample", type=int, help="evaluate on a stratified HANS sample (eval.hans_sample)")
    parser.add_argument("--mnli-sample", type=int, help="evaluate on a stratified MNLI dev sample (eval.mnli_sample)")


def config_with_eval_samples(args: argparse.Namespace):
    """The configuration of ``args`` with the ``--hans-sample`` / ``--mnli-sample`` overrides applied."""
    cfg = config_from_args(args)
    if args.hans_sample is not None:
        cfg.eval.hans_sample = args.hans_sample
    if args.mnli_sample is not None:
        cfg.eval.mnli_sample = args.mnli_sample
    return cfg


def register(sub: argparse._SubParsersAction) -> None:
    from hildif.experiments.ablation import BY_KEY, NO_AUGMENTATION_MODES

    p = sub.add_parser("experiment", help="experiments that compare HILDIF configurations (the paper's ablation)")
    esub = p.add_subparsers(dest="experiment_command", metavar="EXPERIMENT")
    a = esub.add_parser(
        "ablation", help="HS/DA/H configurations x p x seeds from one baseline; Figure 1c table, MNLI, plots",
        description="Each cell (configuration, p, seed) fine-tunes a fresh copy of the baseline and is saved as "
                    "soon as it finishes; rerunning the same command skips finished cells.",
    )
    a.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1; default 3)")
    a.add_argument("--seed-list", type=_ints, help="explicit seeds, e.g. 0,5 (overrides --seeds)")
    a.add_argument("--p", dest="top_ps", type=_ints, default=[10, 20], help="influential examples per anchor (10,20)")
    a.add_argument("--configs", default="all",
                   help=f"comma-separated configurations (default all): {', '.join(BY_KEY)}")
    a.add_argument("--anchors", type=int, default=5, help="anchors per round (default 5, the paper's)")
    a.add_argument("--annotators", type=int, default=3, help="simulated annotators scoring each pair (HS)")
    a.add_argument("--annotator-noise", type=float, default=0.5)
    a.add_argument("--no-augmentation", choices=NO_AUGMENTATION_MODES, default="repeat",
                   help="¬DA fine-tuning set: each influential example repeated copies(s) times, or once")
    add_eval_sample_options(a)
    a.add_argument("--baseline", help="baseline checkpoint directory (default: the run's current model)")
    a.add_argument("--out", help="output directory (default <run_dir>/experiments/ablation)")
    a.add_argument("--no-progress", action="store_true", help="no progress bars")
    a.add_argument("--keep-models", action="store_true",
                   help="save each cell computed now as a model version of the run (not served; its record names it)")
    add_config_options(a)
    a.set_defaults(func=run_ablation_command)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_ablation_command(args: argparse.Namespace) -> int:
    from hildif.experiments.ablation import AblationSettings, parse_configurations, run_ablation
    from hildif.experiments.ablation_report import figure_1c_table, per_configuration_table

    cfg = config_with_eval_samples(args)
    settings = AblationSettings(
        configurations=parse_configurations(args.configs), top_ps=args.top_ps,
        seeds=args.seed_list or list(range(args.seeds)), n_anchors=args.anchors, annotators=args.annotators,
        annotator_noise=args.annotator_noise, no_augmentation=args.no_augmentation,
    )
    n_cells = len(settings.configurations) * len(settings.top_ps) * len(settings.seeds)
    print(f"ablation: {len(settings.configurations)} configuration(s) x p {settings.top_ps} x seeds {settings.seeds} "
          f"= {n_cells} cells")
    run = run_ablation(cfg, settings, out_dir=args.out, baseline=args.baseline, progress=not args.no_progress,
                       keep_models=args.keep_models)
    print(f"cells computed now: {len(run.computed)}, reused from {display_path(run.out_dir / 'cells')}: {len(run.reused)}; "
          f"{run.seconds:.0f} s")
    print("\nHANS (entailment %, non-entailment %), mean ± std over seeds:\n")
    print(figure_1c_table(run.summary))
    print("MNLI dev accuracy %:\n")
    print(per_configuration_table(run.summary, "mnli"))
    print("HANS overall accuracy %:\n")
    print(per_configuration_table(run.summary, "hans"))
    print("report: " + ", ".join(display_path(p) for p in run.paths.values()))
    return 0
