"""``hildif demo``: one whole HILDIF round on one machine, the first thing a newcomer runs.

Steps (each announced on the terminal):

1. check the data directory, the Label Studio executable and the augmentation resources (WordNet is built offline
   on first use, Apertium is checked);
2. baseline: reuse the run's current model, or train one (:func:`hildif.baseline.train_baseline`);
3. start Label Studio (data in ``<run_dir>/labelstudio``; or use a running one given by ``ls_url``) and the ML
   backend (``python -m ml_backend``, a subprocess on 127.0.0.1);
4. start the round: the anchors (the paper's five by default), ``top_p`` influential examples each, rating tasks
   pushed to the project, the backend connected to it; print the URL and credentials for annotators;
5. ratings: either three simulated annotators rate every task through the Label Studio API, each as their own
   Label Studio user (default), or wait for people to rate (``annotators="human"``), showing progress;
6. sync: aggregate, augment, fine-tune, evaluate, serve the new model (:func:`hildif.rounds.sync.sync_round`);
7. print the before/after HANS table (Figure 1c layout) and MNLI accuracy, with the report and plot paths, and
   write ``<run_dir>/demo/demo.{json,md}``.

Whatever happens (an error, Ctrl-C, SIGTERM), the processes the demo started are stopped, by their own handles.
Rerunning the demo on the same run directory continues the same round: recorded explanations and tasks are reused,
simulated annotators do not rate twice, and an unchanged set of ratings is not trained on again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import requests

from hildif.config import HildifConfig, machine_cache_dir
from hildif.errors import HildifError
from hildif.utils.atomic import write_json_atomic, write_text_atomic
from hildif.utils.paths import display_path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
ANNOTATOR_MODES = ("simulated", "human")
STEPS = 7


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
    wait_timeout_s: float | None = None
    poll_s: float = 10.0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.annotators not in ANNOTATOR_MODES:
            raise DemoError(f"--annotators {self.annotators!r}: expected one of {', '.join(ANNOTATOR_MODES)}")
        if self.top_p < 1 or self.n_anchors < 1 or self.simulated < 1:
            raise DemoError("--p, --anchors and --simulated-annotators must be >= 1")


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

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def say(step: int | None, text: str) -> None:
    prefix = f"[demo {step}/{STEPS}]" if step else "[demo]"
    print(f"{prefix} {text}", flush=True)


# ---------------------------------------------------------------------------------------------- processes
class BackendProcess:
    """``python -m ml_backend`` on 127.0.0.1 in its own process group, configured by a JSON config file."""

    def __init__(self, config_file: Path, run_dir: str, port: int, env: dict[str, str], log_file: Path) -> None:
        self.config_file, self.run_dir, self.port, self.env, self.log_file = config_file, run_dir, port, env, log_file
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> "BackendProcess":
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_file, "ab")
        pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), self.env.get("PYTHONPATH", "")) if p)
        cmd = [sys.executable, "-m", "ml_backend", "--host", "127.0.0.1", "--port", str(self.port),
               "--config", str(self.config_file), "--run-dir", self.run_dir, "--threads", "4"]
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env={**self.env, "PYTHONPATH": pythonpath},
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise DemoError(f"the ML backend exited with code {code} while starting; see {self.log_file}")
            if self.health() is not None:
                return self
            time.sleep(0.5)
        self.stop()
        raise DemoError(f"the ML backend did not answer {self.url}/health within {timeout:.0f} s; see {self.log_file}")

    def health(self) -> dict[str, Any] | None:
        try:
            r = requests.get(f"{self.url}/health", timeout=2)
            return r.json() if r.ok else None
        except (requests.RequestException, ValueError):
            return None

    def stop(self, timeout: float = 20.0) -> None:
        from hildif.labelstudio.server import stop_process_group

        proc, self.proc = self.proc, None
        stop_process_group(proc, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while the demo runs, so that its cleanup runs for both."""
    try:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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


def start_label_studio(cfg: HildifConfig, opts: DemoOptions):
    """A local Label Studio for the run (data in ``<run_dir>/labelstudio``); returns the server object."""
    from hildif.labelstudio.server import (
        LABEL_STUDIO_VERSION, LabelStudioServer, free_port, port_is_free, prepare_data_dir,
    )

    data = Path(cfg.run_path("labelstudio")).resolve()
    if not (data / "label_studio.sqlite3").exists():
        template = machine_cache_dir() / f"label-studio-{LABEL_STUDIO_VERSION}-template"
        say(3, f"preparing Label Studio's data folder {display_path(data)} (the first time runs its migrations: a minute or two)")
        prepare_data_dir(data, template, allow_local_backends=True)
    port = opts.ls_port
    if not port_is_free(port):
        port = free_port()
        say(3, f"port {opts.ls_port} is busy; Label Studio will use {port}")
    return LabelStudioServer(data, port=port, allow_local_backends=True).start()


def rate_simulated(cfg: HildifConfig, opts: DemoOptions, client, project_id: int) -> int:
    """Each simulated annotator rates every task of the round as its own Label Studio user (skipping tasks it has
    already rated). Returns the number of ratings made now."""
    from tqdm.auto import tqdm

    from hildif.experiments.panel import simulated_panel
    from hildif.rounds.state import RoundState

    state = RoundState(cfg.run_path("rounds.sqlite"))
    anchors = {a.anchor_id: a.example for a in state.anchors(opts.round_id)}
    pairs = [p for p in state.pairs(opts.round_id) if p.task_id is not None]
    names = [f"sim{i + 1}@hildif.local" for i in range(opts.simulated)]
    panel = simulated_panel(opts.simulated, seed=opts.seed, noise=opts.noise, names=names)
    users = {a.name: client.ensure_user(a.name) for a in panel}
    by_task = {p.task_id: (p.anchor_id, p.example_id) for p in pairs}
    done = {(r.anchor_id, r.example_id, r.annotator) for r in client.ratings(project_id, by_task)}
    made = 0
    todo = [(p, a) for p in pairs for a in panel if (p.anchor_id, p.example_id, a.name) not in done]
    for p, annotator in tqdm(todo, desc="simulated ratings", unit="rating", disable=not opts.progress):
        client.annotate(p.task_id, users[annotator.name], annotator.rate(anchors[p.anchor_id], p.example))
        made += 1
    return made


def wait_for_people(cfg: HildifConfig, opts: DemoOptions, client, sleep: Callable[[float], None] = time.sleep) -> dict:
    """Poll the round's progress until every pair has ``labelstudio.annotators_per_task`` ratings (or the timeout).
    Returns the last status."""
    from hildif.rounds.status import round_status

    start = time.monotonic()
    last = None
    while True:
        status = round_status(cfg, opts.round_id, client=client)
        pr = status["progress"]
        line = f"ratings {pr['ratings']}/{pr['ratings_needed']}, pairs done {pr['pairs_done']}/{pr['pairs']}"
        if line != last:
            say(5, line)
            last = line
        if pr["pairs_done"] >= pr["pairs"]:
            return status
        if opts.wait_timeout_s is not None and time.monotonic() - start >= opts.wait_timeout_s:
            say(5, f"stopped waiting after {opts.wait_timeout_s:.0f} s; syncing the ratings made so far")
            return status
        sleep(opts.poll_s)


def before_after(report_dir: str | Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The before/after evaluations a sync wrote (``evaluation.json``) and the report files beside it."""
    report_dir = Path(report_dir)
    data = json.loads((report_dir / "evaluation.json").read_text())
    results = data["results"]
    paths = {name: str(report_dir / name) for name in ("round.md", "round.json", "evaluation.md", "evaluation.json",
                                                       "evaluation.png") if (report_dir / name).exists()}
    return results["before"], results["after"], paths


def write_config_file(cfg: HildifConfig, path: Path) -> Path:
    """The effective configuration as a JSON file the backend subprocess loads (``--config``)."""
    tree = cfg.to_dict()
    return write_json_atomic(path, tree)


# ---------------------------------------------------------------------------------------------- the demo
def run_demo(cfg: HildifConfig, opts: DemoOptions | None = None) -> DemoResult:
    """Run the demo (see the module docstring); returns what it printed, as data."""
    opts = opts or DemoOptions()
    t0 = time.perf_counter()
    cfg.influence.top_p = opts.top_p
    if opts.anchors_file:
        path = Path(opts.anchors_file).expanduser()
        if not path.exists():
            raise DemoError(f"--anchors-file {path} does not exist")
        cfg.data.anchors_file = str(path.resolve())
    demo_dir = Path(cfg.run_path("demo"))
    started: list[Any] = []
    with _sigterm_as_interrupt():
        try:
            return _run(cfg, opts, demo_dir, started, t0)
        except KeyboardInterrupt:
            say(None, f"interrupted; the round is saved in {cfg.run_path('rounds.sqlite')} (rerun to continue, or "
                      f"`hildif round sync --round {opts.round_id}`)")
            raise
        finally:
            for proc in reversed(started):
                name = type(proc).__name__
                pid = getattr(proc, "pid", None) or getattr(getattr(proc, "proc", None), "pid", None)
                say(None, f"stopping {name} (pid {pid})")
                with contextlib.suppress(Exception):
                    proc.stop()


def _run(cfg: HildifConfig, opts: DemoOptions, demo_dir: Path, started: list, t0: float) -> DemoResult:
    from hildif.labelstudio.client import LabelStudioClient, resolve_api_key
    from hildif.labelstudio.server import free_port
    from hildif.model.evaluation import figure_1c_markdown
    from hildif.rounds.start import AnchorSelection, start_round
    from hildif.rounds.sync import sync_round

    say(1, f"checking data ({cfg.data.data_dir or os.environ.get('HILDIF_DATA_DIR')}), Label Studio and the "
           f"augmentation resources ({', '.join(cfg.feedback.augmenters)})")
    check_setup(cfg, opts)

    say(2, f"baseline model in {cfg.run.run_dir}")
    version, trained = ensure_baseline(cfg)
    say(2, f"{'trained' if trained else 'reusing'} model {version}")

    if opts.ls_url:
        url, key = opts.ls_url.rstrip("/"), resolve_api_key(cfg.labelstudio)
        login = "your own Label Studio account"
        say(3, f"using the Label Studio at {url}")
    else:
        say(3, "starting Label Studio")
        server = start_label_studio(cfg, opts)
        started.append(server)
        url, key = server.url, server.admin_token
        login = f"{server.admin_email} / {server.admin_password}"
        say(3, f"Label Studio is up at {url} (pid {server.pid})")
    cfg.labelstudio.url = url
    client = LabelStudioClient(url, key, cfg.labelstudio.timeout_s)
    client.check()
    backend = None
    if opts.backend:
        port = opts.backend_port or free_port()
        env = {**os.environ, cfg.labelstudio.api_key_env: key}
        backend = BackendProcess(write_config_file(cfg, demo_dir / "config.json"), cfg.run.run_dir, port, env,
                                 demo_dir / "backend.log")
        say(3, f"starting the ML backend on {backend.url} (log {display_path(backend.log_file)})")
        backend.start()
        started.append(backend)
        say(3, f"ML backend is up (pid {backend.proc.pid}), serving model {(backend.health() or {}).get('model_version')}")

    n_pairs = opts.n_anchors * opts.top_p
    say(4, f"round {opts.round_id}: explaining {opts.n_anchors} anchors ({cfg.data.anchors_file}), {opts.top_p} "
           f"influential training examples each ({n_pairs} rating tasks)")
    start = start_round(cfg, opts.round_id, AnchorSelection("paper", n=opts.n_anchors), client=client,
                        progress=opts.progress)
    say(4, f"{'explained' if start.explained_now else 'reused the recorded explanations'}; tasks pushed now "
           f"{start.pushed_now}, already there {start.already_pushed + start.recovered}")
    backend_info: dict[str, Any] = {}
    if backend is not None:
        try:
            backend_info["id"] = client.connect_ml_backend(start.project_id, backend.url)
            backend_info["url"] = backend.url
        except Exception as exc:  # the round works without it; say so plainly
            backend_info["error"] = str(exc)
            say(4, f"WARNING: could not connect the ML backend to the project: {exc}")
    say(4, f"annotators: open {url}/projects/{start.project_id} and log in as {login}")

    made = 0
    if opts.annotators == "simulated":
        say(5, f"{opts.simulated} simulated annotators rate every task through the Label Studio API")
        made = rate_simulated(cfg, opts, client, start.project_id)
        say(5, f"{made} ratings submitted")
    else:
        say(5, f"waiting for people to rate ({cfg.labelstudio.annotators_per_task} ratings per task; Ctrl-C stops)")
        wait_for_people(cfg, opts, client)

    say(6, "sync: aggregate ratings, augment, fine-tune, evaluate, serve the new model")
    synced = sync_round(cfg, opts.round_id, client=client, progress=opts.progress)
    if synced.status == "no_ratings" or not synced.report_dir:
        raise DemoError(f"round {opts.round_id}: nothing to fine-tune on (sync status {synced.status})")
    before, after, paths = before_after(synced.report_dir)
    if backend is not None:
        backend_info["serving_after_sync"] = (backend.health() or {}).get("model_version")

    rows = {f"before ({start.base_version})": before, f"after ({synced.version})": after}
    table = figure_1c_markdown(rows)
    result = DemoResult(
        round_id=opts.round_id, label_studio_url=url, project_id=start.project_id, sync_status=synced.status,
        base_version=start.base_version, version=synced.version, before=before, after=after, table=table,
        paths=paths, ratings_made=made, backend=backend_info, seconds=round(time.perf_counter() - t0, 1),
    )
    paths["demo.json"], paths["demo.md"] = str(demo_dir / "demo.json"), str(demo_dir / "demo.md")
    write_json_atomic(demo_dir / "demo.json", result.to_dict())
    write_text_atomic(demo_dir / "demo.md", _markdown(result))
    say(7, f"sync {synced.status}: model {start.base_version} -> {synced.version}")
    if synced.status == "trained" and not synced.served:
        say(7, f"{synced.version} is NOT served (promotion gate): " + "; ".join(synced.gate.get("reasons") or [])
            + f"; `hildif round promote --round {opts.round_id}` serves it anyway")
    print("\nHANS accuracy (entailment %, non-entailment %) per heuristic; HANS and MNLI dev accuracy %:\n")
    print(table)
    mnli_b, mnli_a = (before.get("mnli") or {}).get("accuracy"), (after.get("mnli") or {}).get("accuracy")
    print(f"MNLI dev accuracy: {mnli_b} -> {mnli_a}")
    print("reports:")
    for name, p in paths.items():
        print(f"  {name}: {display_path(p)}")
    print(flush=True)
    return result


def _markdown(result: DemoResult) -> str:
    return "\n".join([
        f"# hildif demo: round {result.round_id}",
        "",
        f"Label Studio {result.label_studio_url}, project {result.project_id}; sync {result.sync_status}; "
        f"model {result.base_version} -> {result.version}; {result.seconds} s.",
        "",
        "HANS accuracy (entailment %, non-entailment %) per heuristic; HANS and MNLI dev accuracy %.",
        "",
        result.table,
        "Reports: " + ", ".join(f"[{k}]({v})" for k, v in result.paths.items() if not k.startswith("demo")),
        "",
    ])


__all__ = ["DemoError", "DemoOptions", "DemoResult", "BackendProcess", "run_demo", "rate_simulated",
           "wait_for_people", "before_after", "check_setup", "ensure_baseline"]
