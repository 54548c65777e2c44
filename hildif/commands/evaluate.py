"""``hildif evaluate``: MNLI: HANS per heuristic x class (Figure 1c layout), per subcase, and MNLI dev accuracy; any
other task: accuracy per label and per slice on its held-out examples (a Label Studio project's task fetched as in
``hildif train``)."""

from __future__ import annotations

import argparse

from hildif.options import add_config_options, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a model (MNLI: on HANS and MNLI dev_matched; any task: per label "
                                         "and slice on its held-out set); write JSON, Markdown, PNG")
    add_config_options(p)
    p.add_argument("--ls-url", help="Label Studio URL of a task.project_id task (default labelstudio.url)")
    p.add_argument("--title", default="evaluation", help="report name (files <title>.json/.md/.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hildif import distributed
    from hildif.baseline import evaluate_current
    from hildif.labelstudio.export import load_command_task

    cfg = config_from_args(args)
    distributed.init(cfg.model.device)  # under torchrun: sharded, rank 0 writes the reports
    evaluate_current(cfg, title=args.title, model=args.model, task_data=load_command_task(cfg, args.ls_url))
    distributed.shutdown()
    return 0
