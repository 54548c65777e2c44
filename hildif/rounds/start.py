"""Start a round (Algorithm 1's SELECT ANCHORS, f(X), EXPLAIN, then "present to the user"):

1. select anchors from the validation set (random, handpicked by a pairID file, the paper's five, or a rule:
   :class:`hildif.influence.anchors.AnchorSelection`, one strategy class per method); on a team's own task
   (``task.source`` files or labelstudio, :mod:`hildif.rounds.task`) among its examples, e.g. the Label Studio tasks
   whose annotators disagree (``project``), and the rating tasks show that task's text fields;
2. explain them with influence functions (the current model version; GPU when present);
3. record the round, its anchors and (anchor, influential example) pairs in the round database, in one transaction;
4. create or reuse the round's own Label Studio project (``"<labelstudio.project_title> — <round id>"``, rating
   template, the round's ``annotators_per_task`` overlap) and push one task per pair that has no task yet, recording
   the task ids.

Label Studio's connection and API key are checked before step 1, so a Label Studio that is down or a wrong key costs
seconds, not an influence computation. The settings a round was started with (its project, its annotators per task)
are recorded with it; reruns, ``round status`` and the backend use those, not today's config.

Idempotent: a rerun reuses the recorded explanations and pushes only pairs without a task; a task deleted in Label
Studio is pushed again (``recreated``, and a note says so). Before pushing, tasks of
this round already in the project are matched to pairs (by round id, anchor id and example id in the task data), so
a crash between Label Studio's import and recording the ids creates no duplicates either.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from hildif.config import HildifConfig
from hildif.errors import HildifError
from hildif.feedback.ratings import PairKey
from hildif.influence.anchors import AnchorSelection  # the form a round records its selection in
from hildif.rounds.state import RoundAnchor, RoundPair, RoundState, project_title_for

log = logging.getLogger(__name__)

_ROUND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class RoundError(HildifError, ValueError):
    """A round cannot be started or synced as asked; the message says why and what to do."""


@dataclass
class StartResult:
    round_id: str
    project_id: int | None
    n_anchors: int
    n_pairs: int
    explained_now: bool
    pushed_now: int
    recovered: int
    already_pushed: int
    base_version: str
    recreated: int = 0  # tasks deleted in Label Studio and pushed again by this start
    project_title: str | None = None
    annotators_per_task: int | None = None  # the round's own, recorded when it was first started
    notes: list[str] = field(default_factory=list)  # what this start did that the admin should know, in words
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- the round
def validate_round_id(round_id: str) -> str:
    if not _ROUND_ID.fullmatch(round_id or ""):  # fullmatch: "$" alone lets "r1\n" through
        raise RoundError(f"round id {round_id!r}: use 1-64 letters, digits, '.', '_' or '-' (starting alphanumeric)")
    return round_id


def round_settings(cfg: HildifConfig, round_id: str) -> dict[str, Any]:
    """The Label Studio settings a new round is started with: its own project title and overlap."""
    return {"project_title": project_title_for(cfg.labelstudio.project_title, round_id),
            "annotators_per_task": int(cfg.labelstudio.annotators_per_task)}


@dataclass
class ChosenAnchors:
    """What :func:`choose_anchors` leaves for :func:`explain_round`: the current model (``classifier``,
    ``version``, ``path``), the ``anchors`` and, for a round on a team's own task, that task's data (None: MNLI)."""

    classifier: Any
    version: str
    path: str
    anchors: list
    task: Any = None

    def __iter__(self):  # (classifier, version, path, anchors), as before the task was added
        return iter((self.classifier, self.version, self.path, self.anchors))


def choose_anchors(cfg: HildifConfig, selection: AnchorSelection, client=None) -> ChosenAnchors:
    """The current model and the anchors ``selection`` picks with it (bad pair IDs, files or rules fail here, in
    seconds). A round on a team's own task (:mod:`hildif.rounds.task`) loads the task (through ``client`` for a
    Label Studio project) and picks among its examples."""
    from hildif.influence.anchors import select_anchors
    from hildif.model.loading import load_current
    from hildif.rounds import task as round_task

    if round_task.is_mnli(cfg):
        # a fresh run directory: model.name_or_path becomes the first version, so every round starts from a
        # recorded one
        current = load_current(cfg, missing="register")
        anchors = select_anchors(selection.strategy(), data=cfg.data, classifier=current.classifier)
        return ChosenAnchors(current.classifier, current.version, current.path, anchors)
    if selection.method == "paper":
        raise RoundError("the paper's anchors are MNLI examples: a round on task "
                         f"{cfg.task.name!r} takes --anchors project (or random, rule, pairids on its examples)")
    strategy = selection.strategy()  # a bad request fails before the task is read
    data = round_task.load_round_task(cfg, client)
    cfg = round_task.task_config(cfg, data.task)
    current = load_current(cfg, missing="error", **round_task.checkpoint_kwargs(cfg))
    round_task.check_model_labels(current.classifier, data.task)
    anchors = select_anchors(strategy, round_task.anchor_pool(data), classifier=current.classifier)
    log.info("task %s: %d anchors chosen by %s among %d examples", data.task.name, len(anchors), selection.method,
             len(round_task.anchor_pool(data)))
    return ChosenAnchors(current.classifier, current.version, current.path, anchors, data)


def explain_round(
    cfg: HildifConfig, state: RoundState, round_id: str, selection: AnchorSelection, progress: bool = True,
    chosen: ChosenAnchors | None = None,
) -> str:
    """Select anchors (or take ``chosen``, from :func:`choose_anchors`), explain them with the current model and
    record the round. Returns the base version. On a team's own task the candidates are its training examples
    without the anchors, and the task's shape is recorded with the round (its rating template follows it)."""
    from hildif.data.splits import load_train
    from hildif.influence.explain import explain
    from hildif.influence.knn import index_cache_dir
    from hildif.rounds import task as round_task

    chosen = chosen or choose_anchors(cfg, selection)
    clf, version, path, anchors = chosen
    config = {"influence": asdict(cfg.influence), "labelstudio": asdict(cfg.labelstudio),
              "feedback": asdict(cfg.feedback)}
    if chosen.task is None:
        train_examples = load_train(cfg.data)
    else:
        train_examples = round_task.influence_pool(chosen.task.train, anchors)
        config["task"] = round_task.task_record(chosen.task.task)
    log.info("round %s: explaining %d anchors against %d training examples (model %s, device %s)",
             round_id, len(anchors), len(train_examples), version, clf.device)
    explanations = explain(clf, train_examples, anchors, cfg.influence, cache_dir=index_cache_dir(cfg),
                           progress=progress, store_dir=cfg.cache_path("store"))  # the store hildif explain shares
    anchor_rows = [RoundAnchor(e.anchor, e.probs) for e in explanations]
    pair_rows = [RoundPair(e.anchor.id, inf.example, inf.rank, inf.score)
                 for e in explanations for inf in e.influential]
    if not pair_rows:
        raise RoundError(f"round {round_id}: influence found no training example for any anchor")
    state.create_round(round_id, version, path, selection.to_dict(), config,
                       anchor_rows, pair_rows, **round_settings(cfg, round_id))
    return version


@dataclass
class PushResult:
    project_id: int
    pushed: int  # tasks created now (new pairs and re-created ones)
    recovered: int  # tasks found in Label Studio but not recorded (an interrupted start), recorded now
    already: int  # pairs whose recorded task still exists
    recreated: int  # pairs whose recorded task was deleted in Label Studio, pushed again
    project_title: str
    annotators_per_task: int
    notes: list[str] = field(default_factory=list)


def _round_project(state: RoundState, info: dict[str, Any], client, title: str, label_config: str, overlap: int,
                   notes: list[str]) -> int:
    """The round's own Label Studio project: the recorded one (its template and overlap set to the round's), or,
    when none is recorded or it was deleted, the project titled ``title`` (created if missing). Its instructions are
    hildif's (:mod:`hildif.labelstudio.guidance`): MNLI's, or those of the round's own task."""
    from hildif.labelstudio.guidance import project_guidance

    guidance = project_guidance((info.get("config") or {}).get("task"))
    round_id = info["round_id"]
    pid = info["project_id"]
    if pid is not None:
        current = client.project_settings(int(pid))
        if current is None:
            notes.append(f"Label Studio project {pid} of round {round_id} no longer exists: the round's tasks go to "
                         f"a new project {title!r}")
            log.warning("round %s: %s", round_id, notes[-1])
        else:
            wanted = {"label_config": label_config, "maximum_annotations": overlap, **guidance}
            changes = {k: v for k, v in wanted.items() if current.get(k) != v}
            others = [r for r in state.rounds_of_project(int(pid)) if r != round_id]
            if changes and others:  # a project shared by rounds of an older hildif: leave it as it is
                notes.append(f"Label Studio project {pid} is shared with round(s) {', '.join(others)}; its "
                             f"{' and '.join(changes)} differ(s) from round {round_id}'s but stay(s) unchanged so "
                             "as not to change the other rounds (a new round gets a project of its own)")
                log.warning("round %s: %s", round_id, notes[-1])
            else:
                client.update_project(int(pid), **changes)
            return int(pid)
    found = client.find_project(title)
    others = [r for r in state.rounds_of_project(found) if r != round_id] if found is not None else []
    if others:
        raise RoundError(f"round {round_id}: the Label Studio project titled {title!r} ({found}) belongs to round(s) "
                         f"{', '.join(others)}; set another labelstudio.project_title")
    return client.ensure_project(
        title, label_config, overlap,
        description=f"HILDIF round {round_id}: rate how similar each influential training example is to the test case.",
        guidance=guidance,
    )


def push_tasks(cfg: HildifConfig, state: RoundState, round_id: str, client) -> PushResult:
    """Make sure the round's project exists with the round's settings and every pair has a task in it: push the
    pairs without one, adopt tasks pushed but not recorded, re-create tasks deleted in Label Studio."""
    from hildif.labelstudio.convert import task_identity, task_payload, text_task_payload
    from hildif.labelstudio.template import task_label_config

    info = state.round(round_id)
    settings = round_settings(cfg, round_id)
    title = info.get("project_title") or settings["project_title"]
    overlap = int(info.get("annotators_per_task") or settings["annotators_per_task"])
    notes: list[str] = []
    own_task = (info.get("config") or {}).get("task")  # a round on a team's own task: its fields and labels
    label_config = task_label_config(own_task["text_fields"] if own_task else ())
    project_id = _round_project(state, info, client, title, label_config, overlap, notes)
    state.set_project(round_id, project_id, title, overlap)
    tasks = client.tasks(project_id)
    present = {int(t["id"]) for t in tasks}
    gone = [p for p in state.pairs(round_id) if p.task_id is not None and p.task_id not in present]
    if gone:
        state.clear_task_ids(round_id, [p.task_id for p in gone])
        notes.append(f"{len(gone)} task(s) of round {round_id} were deleted in Label Studio (task ids "
                     f"{', '.join(str(p.task_id) for p in gone[:20])}{' ...' if len(gone) > 20 else ''}); "
                     "they are re-created now")
        log.warning("round %s: %s", round_id, notes[-1])
    pairs = state.pairs(round_id)
    already = sum(p.task_id is not None for p in pairs)
    todo = {p.pair: p for p in pairs if p.task_id is None}
    recovered: dict[PairKey, int] = {}
    if todo:
        known_ids = {p.task_id for p in pairs if p.task_id is not None}
        for task in tasks:
            ident = task_identity(task)
            if ident and ident.round_id == round_id and ident.pair in todo and task["id"] not in known_ids:
                recovered.setdefault(ident.pair, int(task["id"]))
        if recovered:
            log.warning("round %s: %d task(s) were in Label Studio but not recorded (an interrupted start); "
                        "recorded them now", round_id, len(recovered))
            state.set_task_ids(round_id, recovered)
    anchors = {a.anchor_id: a for a in state.anchors(round_id)}
    missing = [p for key, p in todo.items() if key not in recovered]
    if missing:
        if own_task:
            payloads = [text_task_payload(round_id, anchors[p.anchor_id].example, anchors[p.anchor_id].probs,
                                          p.example, p.rank, p.influence, own_task["labels"]) for p in missing]
        else:
            payloads = [task_payload(round_id, anchors[p.anchor_id].example, anchors[p.anchor_id].probs, p.example,
                                     p.rank, p.influence) for p in missing]
        ids = client.import_tasks(project_id, payloads)
        state.set_task_ids(round_id, {p.pair: tid for p, tid in zip(missing, ids)})
    gone_keys = {p.pair for p in gone}
    recreated = sum(p.pair in gone_keys for p in missing)
    return PushResult(project_id, len(missing), len(recovered), already, recreated, title, overlap, notes)


def start_round(
    cfg: HildifConfig,
    round_id: str,
    selection: AnchorSelection | None = None,
    *,
    client=None,
    progress: bool = True,
) -> StartResult:
    """Check Label Studio, explain (once), push (what is missing). ``client``: a :class:`LabelStudioClient`
    (default: from config).

    The anchors are selected first (a bad selection fails before anything else), then Label Studio's connection and
    API key are checked, so a Label Studio that is down or a wrong key fails in seconds, before any influence is
    computed, and nothing is recorded. The explanation is recorded before the
    tasks are pushed, so a Label Studio failing in between loses nothing: the error says the explanation is kept,
    and rerunning the same command pushes the recorded pairs without computing influence again.
    """
    from hildif.labelstudio.client import LabelStudioClient, LabelStudioError

    validate_round_id(round_id)
    selection = selection or AnchorSelection()
    state = RoundState(cfg.run_path("rounds.sqlite"))
    # the request first (anchors: bad pair IDs or rules), then Label Studio's connection and key, then influence:
    # each failure comes in seconds, having changed nothing
    from hildif.rounds.task import needs_label_studio

    if needs_label_studio(cfg) and not state.has_round(round_id):  # the task is read from a Label Studio project
        client = client or LabelStudioClient.from_config(cfg.labelstudio)
        client.check()
    chosen = None if state.has_round(round_id) else choose_anchors(cfg, selection, client)
    if client is None:
        client = LabelStudioClient.from_config(cfg.labelstudio)
    client.check()
    explained_now = False
    if state.has_round(round_id):
        recorded = state.round(round_id)
        if recorded["selection"] != selection.to_dict():
            log.info("round %s exists (selection %s); reusing its anchors, ignoring the new selection",
                     round_id, recorded["selection"])
        if recorded.get("annotators_per_task") not in (None, cfg.labelstudio.annotators_per_task):
            log.info("round %s keeps the %d annotators per task it was started with (config says %d)",
                     round_id, recorded["annotators_per_task"], cfg.labelstudio.annotators_per_task)
        base_version = recorded["base_version"]
    else:
        base_version = explain_round(cfg, state, round_id, selection, progress, chosen=chosen)
        explained_now = True
    try:
        push = push_tasks(cfg, state, round_id, client)
    except LabelStudioError as exc:
        n = len(state.pairs(round_id))
        raise type(exc)(
            f"{exc}\nRound {round_id} is recorded with its explanation ({n} pairs, in {state.path}): nothing of it is "
            f"lost. Rerun `hildif round start --round {round_id}` once Label Studio answers: it pushes the tasks "
            "still missing without computing influence again."
        ) from exc
    pairs = state.pairs(round_id)
    return StartResult(
        round_id=round_id, project_id=push.project_id, n_anchors=len(state.anchors(round_id)), n_pairs=len(pairs),
        explained_now=explained_now, pushed_now=push.pushed, recovered=push.recovered, already_pushed=push.already,
        base_version=base_version, recreated=push.recreated, project_title=push.project_title,
        annotators_per_task=push.annotators_per_task, notes=push.notes,
    )


__all__ = ["AnchorSelection", "ChosenAnchors", "StartResult", "PushResult", "RoundError", "start_round", "choose_anchors", "push_tasks",
           "explain_round", "round_settings"]
