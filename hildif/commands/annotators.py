"""``hildif annotators invite | add EMAIL...``: let people into Label Studio, each with an account of their own.

Label Studio from ``labelstudio.url`` (or ``--ls-url``) with the admin's key from ``$LABEL_STUDIO_API_KEY`` /
``labelstudio.api_key_file``, or, when neither is set, the run's own Label Studio that the demo recorded.
"""

from __future__ import annotations

import argparse

from hildif.options import add_config_options, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("annotators", help="invite annotators to Label Studio or make their accounts")
    asub = p.add_subparsers(dest="annotators_command", metavar="ACTION")
    inv = asub.add_parser("invite", help="print the organization's invite link (people sign up with it)")
    _common(inv)
    inv.set_defaults(func=run_invite)
    add = asub.add_parser("add", help="make an account for each EMAIL with a generated password, shown once")
    add.add_argument("emails", nargs="+", metavar="EMAIL")
    _common(add)
    add.set_defaults(func=run_add)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--round", dest="round_id", help="also print where to rate this round (its project's link)")
    p.add_argument("--ls-url", help="Label Studio URL (default labelstudio.url, or the run's own)")
    add_config_options(p)


def _client(args: argparse.Namespace):
    from hildif.labelstudio.access import use_run_access
    from hildif.labelstudio.client import LabelStudioClient

    cfg = config_from_args(args)
    use_run_access(cfg, args.ls_url)
    return cfg, LabelStudioClient.from_config(cfg.labelstudio)


def where_to_rate(cfg, client, round_id: str | None) -> str:
    """The round's project link (or the projects page) on ``client``'s Label Studio."""
    if round_id:
        from hildif.rounds.state import RoundState

        project = RoundState(cfg.run_path("rounds.sqlite")).round(round_id).get("project_id")
        if project is not None:
            return f"{client.url}/projects/{project}"
    return f"{client.url}/projects"


def run_invite(args: argparse.Namespace) -> int:
    from hildif.labelstudio.people import invite_link

    cfg, client = _client(args)
    print(f"invite link (whoever opens it can make an account in this Label Studio; send it privately):\n"
          f"  {invite_link(client)}\n"
          f"after signing up, rate at {where_to_rate(cfg, client, args.round_id)}")
    return 0


def run_add(args: argparse.Namespace) -> int:
    from hildif.labelstudio.people import add_annotators

    cfg, client = _client(args)
    people = add_annotators(client, args.emails)
    width = max(len(a.email) for a in people)
    print(f"annotator accounts in {client.url} (log in at {client.url}/user/login/, then rate at "
          f"{where_to_rate(cfg, client, args.round_id)}):")
    for a in people:
        what = f"password {a.password}" if a.created else "already has an account (password unchanged)"
        print(f"  {a.email:<{width}}  {what}")
    if any(a.created for a in people):
        print("passwords are shown once and not stored: pass each on to its person now")
    return 0
