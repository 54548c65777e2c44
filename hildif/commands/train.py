"""``hildif train``: FIT, the baseline classifier on the task's training examples (MNLI train by default), then its
evaluation (MNLI: HANS and MNLI dev; any other task: per label and per slice on its held-out examples).

A task in a Label Studio project (``task.source=labelstudio``, ``task.project_id``) is fetched through
``labelstudio.url`` (or ``--ls-url``) with the API key from ``$LABEL_STUDIO_API_KEY`` / ``labelstudio.api_key_file``,
or through the run's own Label Studio (the demo's), as ``hildif round`` does.

``--nproc N`` runs the same command on N processes of this machine under torchrun (DistributedDataParallel; see
:mod:`hildif.distributed`); a command started by torchrun itself joins its process group.
"""

from __future__ import annotations

import argparse

from hildif.options import add_config_options, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the baseline classifier on the task (MNLI: the paper's FIT) and "
                                      "evaluate it")
    add_config_options(p)
    p.add_argument("--ls-url", help="Label Studio URL of a task.project_id task (default labelstudio.url)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its saved state")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train on N processes of this machine (torchrun; one per GPU, or gloo on CPU); "
                        "train.batch_size stays the global batch and must be divisible by N")
    p.set_defaults(func=run)


def relaunch_args(args: argparse.Namespace) -> list[str]:
    """``hildif train`` arguments that repeat ``args`` without ``--nproc`` (for the processes torchrun starts)."""
    out = ["train"]
    for flag, value in (("--profile", args.profile), ("--config", args.config), ("--data-dir", args.data_dir),
                        ("--run-dir", args.run_dir), ("--model", args.model),
                        ("--ls-url", getattr(args, "ls_url", None))):
        if value:
            out += [flag, value]
    for item in args.overrides:
        out += ["--set", item]
    out += [flag for flag, on in (("--resume", args.resume), ("--no-eval", args.no_eval),
                                  ("--verbose", getattr(args, "verbose", False))) if on]
    return out


def run(args: argparse.Namespace) -> int:
    from hildif import distributed

    if args.nproc < 1:
        raise ValueError(f"--nproc {args.nproc}: must be at least 1")
    if args.nproc > 1 and not distributed.launched():
        return distributed.launch(args.nproc, relaunch_args(args))
    from hildif.baseline import evaluate_current, train_baseline
    from hildif.labelstudio.export import load_command_task

    cfg = config_from_args(args)
    distributed.init(cfg.model.device)
    task_data = load_command_task(cfg, args.ls_url)  # None: the task is read from files
    info = train_baseline(cfg, resume=args.resume, task_data=task_data)
    if distributed.is_main():
        print(f"trained model version {info['version']} in {info['train']['seconds'] / 60:.1f} min "
              f"({info['train']['steps']} steps); saved to {info['path']}")
    if not args.no_eval:
        evaluate_current(cfg, title="baseline", task_data=task_data)
    distributed.shutdown()
    return 0
