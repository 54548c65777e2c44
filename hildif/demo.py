"""``hildif demo``: one whole HILDIF round on one machine, the first thing a newcomer runs.

Steps (each announced through ``say(step, text)``):

1. check the data directory, the Label Studio executable and the augmentation resources (WordNet is built offline
   on first use, Apertium is checked);
2. baseline: reuse the run's current model, or train one (:func:`hildif.baseline.train_baseline`);
3. start Label Studio (data in ``<run_dir>/labelstudio``; or use a running one given by ``ls_url``) and the ML
   backend (``python -m ml_backend``, a subprocess on 127.0.0.1);
4. start the round: the anchors (the paper's five by default), ``top_p`` influential examples each, rating tasks
   pushed to the project, the backend connected to it; announce the URL and credentials for annotators;
5. ratings: either simulated annotators rate every task through the Label Studio API, each as their own Label
   Studio user (default; :func:`hildif.experiments.panel.rate_through_api`), or people rate
   (``annotators="human"``): the named people get accounts of their own (:mod:`hildif.labelstudio.people`; else
   the invite link is announced), each task needs as many raters as people were named, and the demo waits on one
   progress line until every task has them, the time limit passes, the admin presses Enter or a sync of the round
   runs elsewhere (:mod:`hildif.rounds.waiting`);
6. sync: aggregate, augment, fine-tune, evaluate, serve the new model (:func:`hildif.rounds.sync.sync_round`);
7. the before/after evaluations, from the sync's result, as a :class:`DemoResult`, also written to
   ``<run_dir>/demo/demo.{json,md,html}`` (``hildif demo`` prints the table): ``demo.md`` holds the round report's
   sections with links relative to its own folder, ``demo.html`` is the same as one page with the plots embedded.

The configuration it is given is not changed (the demo works on a copy). Whatever happens (an error, Ctrl-C,
SIGTERM), the processes the demo started are stopped, by their own handles
(:class:`hildif.labelstudio.processes.Supervisor`); the Label Studio it started is recorded in the run directory
(:mod:`hildif.labelstudio.access`: its admin token with mode 600), so the hint printed on an interrupt,
``hildif round sync --round R --config <run>/demo/config.json``, works as printed: it starts that Label Studio
again when needed. Rerunning the demo on the same run directory continues the same
round: recorded explanations and tasks are reused, simulated annotators do not rate twice, and an unchanged set of
ratings is not trained on again.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hildif.config import HildifConfig, machine_cache_dir
from hildif.errors import HildifError
from hildif.utils.atomic import write_json_atomic, write_text_atomic
from hildif.utils.paths import display_path

log = logging.getLogger(__name__)

ANNOTATOR_MODES = ("simulated", "human")
HUMAN_WAIT_S = 30 * 60.0  # human mode: the default time limit for people to rate
STEPS = 7
Say = Callable[[int | None, str], None]  # (step 1..STEPS or None, text)


class DemoError(HildifError, RuntimeError):
    """The demo cannot go on; the message says which step failed and what to do."""


@dataclass
class DemoOptions:
    """How the demo runs. ``ls_url``: use a Label Studio that is already running (API key from
    ``labelstudio.api_key_env``/``api_key_file``) instead of starting one on ``ls_port``."""

    annotators: str = "simulated"
    round_id: str = "demo"
    n_anchors: int = 5
    anchors_file: str | None = None
    top_p: int = 10
    simulated: int = 3
    seed: int = 0
    noise: float = 0.5
    ls_url: str | None = None
    ls_port: int = 8080
    backend: bool = True
    backend_port: int | None = None
    wait_timeout_s: float | None = None  # human mode's time limit; None: HUMAN_WAIT_S
    poll_s: float = 10.0
    progress: bool = True
    people: list[str] = field(default_factory=list)  # human mode: accounts to make (emails)
    raters: int | None = None  # human mode: raters per task (default: the number of people, else the config's)

    def __post_init__(self) -> None:
        if self.annotators not in ANNOTATOR_MODES:
            raise DemoError(f"--annotators {self.annotators!r}: expected one of {', '.join(ANNOTATOR_MODES)}")
        if self.top_p < 1 or self.n_anchors < 1 or self.simulated < 1:
            raise DemoError("--p, --anchors and --simulated-annotators must be >= 1")
        if self.raters is not None and self.raters < 1:
            raise DemoError(f"--raters {self.raters}: at least one person must rate each task")
        if self.people and self.annotators != "human":
            raise DemoError("--people needs --annotators human")

    def time_limit(self) -> float | None:
        """Human mode's time limit in seconds."""
        return HUMAN_WAIT_S if self.wait_timeout_s is None else max(0.0, float(self.wait_timeout_s))


@dataclass
class DemoResult:
    round_id: str
    label_studio_url: str
    project_id: int | None
    sync_status: str
    base_version: str | None
    version: str | None
    before: dict[str, Any]
    after: dict[str, Any]
    table: str
    paths: dict[str, str]
    ratings_made: int = 0
    backend: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    served: bool = True
    gate_reasons: list[str] = field(default_factory=list)
    started_ls: bool = False  # the demo started Label Studio (and stopped it when it ended)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def _log_step(step: int | None, text: str) -> None:
    log.info("demo%s: %s", f" {step}/{STEPS}" if step else "", text)


# ---------------------------------------------------------------------------------------------- steps
def check_setup(cfg: HildifConfig, opts: DemoOptions) -> None:
    """Fail early, with what to do, on a missing data directory, Label Studio or augmentation resource."""
    from hildif.data.splits import data_file

    for rel in (*cfg.data.train_files, cfg.data.dev_file, cfg.data.hans_file, cfg.data.anchors_file):
        data_file(cfg.data, rel)
    if not opts.ls_url:
        from hildif.labelstudio.server import LabelStudioServerError, find_label_studio_bin

        try:
            find_label_studio_bin()
        except LabelStudioServerError as exc:
            raise DemoError(f"{exc} (or pass --ls-url to use a running Label Studio)") from None
    from hildif.feedback import build_chains

    build_chains(cfg.feedback)  # builds WordNet offline on first use; checks Apertium


def ensure_baseline(cfg: HildifConfig) -> tuple[str, bool]:
    """The run's current model version, trained now when there is none. Returns (version, trained_now)."""
    from hildif.model.registry import ModelRegistry

    registry = ModelRegistry(cfg.run.run_dir)
    current = registry.current()
    if current is not None:
        return current, False
    from hildif.baseline import train_baseline

    return train_baseline(cfg)["version"], True


def raters_per_task(cfg: HildifConfig, opts: DemoOptions) -> int:
    """Human mode: ``--raters``, else the number of people named, else ``labelstudio.annotators_per_task``."""
    return opts.raters or len(opts.people) or int(cfg.labelstudio.annotators_per_task)


def invite_people(cfg: HildifConfig, opts: DemoOptions, client, project_url: str, say: Say) -> None:
    """Human mode: accounts for the named people (passwords announced once), or the invite link."""
    from hildif.labelstudio.people import add_annotators, invite_link

    if opts.people:
        people = add_annotators(client, opts.people)
        width = max(len(a.email) for a in people)
        say(4, f"annotator accounts: log in at {client.url}/user/login/, then rate at {project_url} "
               "(Label All Tasks); passwords are shown once:")
        for a in people:
            say(4, f"  {a.email:<{width}}  " + (f"password {a.password}" if a.created
                                                else "already has an account (password unchanged)"))
    else:
        say(4, f"annotators: each signs up with this invite link, then rates at {project_url} (Label All Tasks): "
               f"{invite_link(client)}  (or make accounts: hildif annotators add EMAIL... --run-dir "
               f"{cfg.run.run_dir})")


def wait_for_people(cfg: HildifConfig, opts: DemoOptions, client, say: Say = _log_step):
    """Human mode: wait (:func:`hildif.rounds.waiting.wait_for_ratings`, Enter on a terminal goes on); returns the
    :class:`hildif.rounds.waiting.WaitOutcome`."""
    from hildif.rounds.waiting import EnterToProceed, wait_for_ratings

    limit = opts.time_limit()
    with EnterToProceed() as enter:
        outcome = wait_for_ratings(cfg, opts.round_id, client, timeout_s=limit, poll_s=opts.poll_s,
                                   proceed=enter.event if enter.active else None)
    say(5, f"going on: {outcome.describe()}")
    return outcome


def sync_hint(cfg: HildifConfig, opts: DemoOptions) -> str:
    """The command that syncs the demo's round later, as printed (it works without an API key in the
    environment: the run keeps the token, and starts its Label Studio when needed)."""
    import shlex

    config = cfg.run_path("demo", "config.json")
    where = (f"--config {shlex.quote(display_path(config))}" if config.exists()
             else f"--run-dir {shlex.quote(display_path(cfg.run.run_dir))}")
    return f"hildif round sync --round {shlex.quote(opts.round_id)} {where}"


def demo_config(cfg: HildifConfig, opts: DemoOptions) -> HildifConfig:
    """A copy of ``cfg`` with the demo's options applied (``top_p``, ``anchors_file``); ``cfg`` is not changed."""
    cfg = copy.deepcopy(cfg)
    cfg.influence.top_p = opts.top_p
    if opts.anchors_file:
        path = Path(opts.anchors_file).expanduser()
        if not path.exists():
            raise DemoError(f"--anchors-file {path} does not exist")
        cfg.data.anchors_file = str(path.resolve())
    return cfg


# ---------------------------------------------------------------------------------------------- the demo
def run_demo(cfg: HildifConfig, opts: DemoOptions | None = None, *, say: Say = _log_step) -> DemoResult:
    """Run the demo (see the module docstring); ``say(step, text)`` hears each step (default: the log). Returns the
    result, also written to ``<run_dir>/demo/demo.{json,md}``."""
    from hildif.labelstudio.processes import Supervisor

    opts = opts or DemoOptions()
    t0 = time.perf_counter()
    cfg = demo_config(cfg, opts)
    with Supervisor(on_stop=lambda name, pid: say(None, f"stopping {name} (pid {pid})")) as supervisor:
        try:
            return _run(cfg, opts, supervisor, say, t0)
        except KeyboardInterrupt:
            say(None, f"interrupted; the round is saved in {display_path(cfg.run_path('rounds.sqlite'))}: rerun the "
                      f"demo to continue, or sync what is rated with `{sync_hint(cfg, opts)}`")
            raise


def _run(cfg: HildifConfig, opts: DemoOptions, supervisor, say: Say, t0: float) -> DemoResult:
    from hildif.labelstudio.access import remember
    from hildif.labelstudio.client import LabelStudioClient, resolve_api_key
    from hildif.labelstudio.processes import BackendProcess, write_config_file
    from hildif.labelstudio.server import LABEL_STUDIO_VERSION, free_port, start_local_server
    from hildif.model.evaluation import figure_1c_markdown
    from hildif.rounds.html_report import write_html
    from hildif.rounds.setfile import SET_FILE
    from hildif.rounds.start import AnchorSelection, start_round
    from hildif.rounds.sync import sync_round

    demo_dir = Path(cfg.run_path("demo"))
    data_dir = display_path(cfg.data.data_dir or os.environ.get("HILDIF_DATA_DIR") or "?")
    say(1, f"checking data ({data_dir}), Label Studio and the augmentation resources "
           f"({', '.join(cfg.feedback.augmenters)})")
    check_setup(cfg, opts)
    say(1, f"ready: data in {data_dir}, "
           + (f"Label Studio at {opts.ls_url}" if opts.ls_url else "Label Studio installed")
           + f", augmenters {', '.join(cfg.feedback.augmenters)}")

    say(2, f"baseline model in {display_path(cfg.run_path('models'))}")
    version, trained = ensure_baseline(cfg)
    say(2, f"{'trained' if trained else 'reusing'} model {version} ({display_path(cfg.run_path('models', version))})")

    if opts.ls_url:
        url, key = opts.ls_url.rstrip("/"), resolve_api_key(cfg.labelstudio)
        login = "your own Label Studio account"
        say(3, f"using the Label Studio at {url}")
    else:
        say(3, "starting Label Studio")
        template = machine_cache_dir() / f"label-studio-{LABEL_STUDIO_VERSION}-template"
        server = supervisor.add(start_local_server(cfg.run_path("labelstudio"), opts.ls_port, template,
                                                   notify=lambda text: say(3, text)))
        url, key = server.url, server.admin_token
        login = f"{server.admin_email} / {server.admin_password}"
        say(3, f"Label Studio is up at {url} (pid {server.pid})")
        remember(cfg.run.run_dir, port=server.port, token=key, data_dir=server.data_dir,
                 admin_email=server.admin_email)  # for later `hildif round ...` commands on this run
    cfg.labelstudio.url = url
    if opts.annotators == "human":
        cfg.labelstudio.annotators_per_task = raters_per_task(cfg, opts)
    write_config_file(cfg, demo_dir / "config.json")  # what the backend and the printed hints load
    client = LabelStudioClient(url, key, cfg.labelstudio.timeout_s)
    client.check()
    backend = None
    if opts.backend:
        port = opts.backend_port or free_port()
        env = {**os.environ, cfg.labelstudio.api_key_env: key}
        backend = BackendProcess(demo_dir / "config.json", cfg.run.run_dir, port, env, demo_dir / "backend.log")
        say(3, f"starting the ML backend on {backend.url} (log {display_path(backend.log_file)})")
        supervisor.add(backend.start())
        say(3, f"ML backend is up (pid {backend.pid}), serving model {(backend.health() or {}).get('model_version')}")

    n_pairs = opts.n_anchors * opts.top_p
    anchors = display_path(cfg.data.anchors_file) + ("" if Path(cfg.data.anchors_file).is_absolute()
                                                     else f" in {data_dir}")
    say(4, f"round {opts.round_id}: explaining {opts.n_anchors} anchors ({anchors}), "
           f"{opts.top_p} influential training examples each ({n_pairs} rating tasks)")
    start = start_round(cfg, opts.round_id, AnchorSelection("paper", n=opts.n_anchors), client=client,
                        progress=opts.progress)
    project_url = f"{url}/projects/{start.project_id}"
    say(4, f"{'explained' if start.explained_now else 'reused the recorded explanations'}; tasks pushed now "
           f"{start.pushed_now}, already there {start.already_pushed + start.recovered}: {start.n_pairs} rating tasks "
           f"in {project_url}")
    backend_info: dict[str, Any] = {}
    if backend is not None:
        try:
            backend_info["id"] = client.connect_ml_backend(start.project_id, backend.url)
            backend_info["url"] = backend.url
        except Exception as exc:  # the round works without it; say so plainly
            backend_info["error"] = str(exc)
            say(4, f"WARNING: could not connect the ML backend to the project: {exc}")
    made = 0
    if opts.annotators == "simulated":
        say(4, f"annotators: open {project_url} to watch (log in as {login}); people rate in the human mode")
        say(5, f"{opts.simulated} simulated annotators rate every task through the Label Studio API")
        made = _rate_simulated(cfg, opts, client, start.project_id)
        say(5, f"{made} ratings submitted to {project_url}")
    else:
        invite_people(cfg, opts, client, project_url, say)
        n, raters, limit = start.n_pairs, start.annotators_per_task or raters_per_task(cfg, opts), opts.time_limit()
        say(5, f"waiting for {raters} {'person' if raters == 1 else 'people'} to rate each of the {n} tasks "
               f"({n * raters} ratings); going on when every task has them, "
               + f"after {limit / 60:.0f} min (--wait-timeout), "
               + f"on Enter, or when `{sync_hint(cfg, opts)}` runs in another terminal; Ctrl-C stops "
               "(the round is kept)")
        wait_for_people(cfg, opts, client, say=say)

    say(6, "sync: aggregate ratings, augment, fine-tune, evaluate, serve the new model")
    synced = sync_round(cfg, opts.round_id, client=client, progress=opts.progress)
    if synced.short_pairs:
        say(6, synced.short_pairs["summary"])
    if synced.status == "waiting":
        raise DemoError(f"round {opts.round_id}: {synced.short_pairs['summary']}; when they are rated: "
                        f"`{sync_hint(cfg, opts)}`")
    if synced.status == "no_ratings" or not synced.report_dir:
        raise DemoError(f"round {opts.round_id}: nothing to fine-tune on (sync status {synced.status})")
    before, after = synced.evaluation["before"], synced.evaluation["after"]
    report = Path(synced.report_dir)
    if synced.status == "trained":
        say(6, f"model {synced.version} fine-tuned on {synced.n_augmented} examples "
               f"({display_path(report / SET_FILE)}); report {display_path(report / 'round.md')}")
    else:
        say(6, f"ratings unchanged: model {synced.version} stays; report {display_path(report / 'round.md')}")
    if backend is not None:
        backend_info["serving_after_sync"] = (backend.health() or {}).get("model_version")

    rows = {f"before ({start.base_version})": before, f"after ({synced.version})": after}
    paths = {**synced.files, **{name: str(demo_dir / name) for name in DEMO_FILES}}
    result = DemoResult(
        round_id=opts.round_id, label_studio_url=url, project_id=start.project_id, sync_status=synced.status,
        base_version=start.base_version, version=synced.version, before=before, after=after,
        table=figure_1c_markdown(rows), paths=paths, ratings_made=made, backend=backend_info,
        seconds=round(time.perf_counter() - t0, 1), served=synced.served,
        gate_reasons=list(synced.gate.get("reasons") or []), started_ls=not opts.ls_url,
    )
    write_json_atomic(demo_dir / "demo.json", result.to_dict())
    write_text_atomic(demo_dir / "demo.md", demo_markdown(result, report, demo_dir))
    write_html(demo_dir / "demo.md", demo_dir / "demo.html", title=f"hildif demo: round {opts.round_id}")
    say(7, f"sync {synced.status}: model {start.base_version} -> {synced.version}")
    if synced.status == "trained" and not synced.served:
        say(7, f"{synced.version} is NOT served (promotion gate): " + "; ".join(result.gate_reasons)
            + f"; `hildif round promote --round {opts.round_id}` serves it anyway")
    say(7, f"wrote {display_path(demo_dir / 'demo.md')} and {display_path(demo_dir / 'demo.html')} (one page with "
           "the plots: open it in a browser)")
    return result


def _rate_simulated(cfg: HildifConfig, opts: DemoOptions, client, project_id: int) -> int:
    """The demo's simulated annotators (``sim1@hildif.local`` ...) rate the round's pushed pairs."""
    from hildif.experiments.panel import rate_through_api, simulated_panel
    from hildif.rounds.state import RoundState

    state = RoundState(cfg.run_path("rounds.sqlite"))
    anchors = {a.anchor_id: a.example for a in state.anchors(opts.round_id)}
    names = [f"sim{i + 1}@hildif.local" for i in range(opts.simulated)]
    panel = simulated_panel(opts.simulated, seed=opts.seed, noise=opts.noise, names=names)
    return rate_through_api(client, project_id, anchors, state.pairs(opts.round_id), panel, progress=opts.progress)


DEMO_FILES = ("demo.md", "demo.html", "demo.json")


def demo_markdown(result: DemoResult, report_dir: str | Path, demo_dir: str | Path) -> str:
    """``demo.md``: what ran, the before/after table, then the round report's sections (the sync's ``round.json``
    and ``fine_tuning_set.csv`` in ``report_dir``), every link relative to ``demo_dir`` (the file's own folder)."""
    import json

    from hildif.rounds.report import link, round_body
    from hildif.rounds.setfile import SET_FILE, read_set

    report_dir, demo_dir = Path(report_dir), Path(demo_dir)
    summary = json.loads((report_dir / "round.json").read_text(encoding="utf-8"))
    rows = read_set(report_dir / SET_FILE) if (report_dir / SET_FILE).exists() else None
    project = f"<{result.label_studio_url}/projects/{result.project_id}>" if result.project_id is not None else "-"
    return "\n".join([
        f"# hildif demo: round {result.round_id}",
        "",
        f"Label Studio {result.label_studio_url}, rating project {project}; {result.ratings_made} ratings made in this "
        f"run; sync {result.sync_status}; model {result.base_version} -> {result.version}; "
        f"{result.seconds:.0f} s.",
        "",
        *(["The Label Studio the demo started, and so the project's link, stopped when the demo ended; rerunning the "
           "demo starts it again (and continues the round).", ""] if result.started_ls else []),
        f"The round's own report: [round.md]({link(report_dir / 'round.md', demo_dir)}), "
        f"[round.html]({link(report_dir / 'round.html', demo_dir)}); this page's numbers: "
        f"[demo.json](demo.json).",
        "",
        "## Before and after",
        "",
        "HANS accuracy (entailment %, non-entailment %) per heuristic (LO lexical overlap, SUB subsequence, CON "
        "constituent); HANS and MNLI dev accuracy %; 2 decimals.",
        "",
        result.table,
        *round_body(summary, rows, report_dir, demo_dir),
    ]).rstrip() + "\n"


__all__ = ["DemoError", "DemoOptions", "DemoResult", "run_demo", "wait_for_people", "check_setup",
           "ensure_baseline", "demo_config", "demo_markdown"]
