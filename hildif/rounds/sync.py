"""Sync a round (the rest of Algorithm 1): pull ratings, S <- U g(z_ij, s_ij), f <- FINE_TUNE(f, S), evaluate,
and serve the new model.

Order, chosen so that a crash at any point leaves the previous model serving and the state consistent:

1. pull every annotation of the round's tasks from Label Studio (read-only);
2. snapshot them (one transaction); deletions are found by comparing with the previous snapshot;
3. if the ratings say the same as at the last successful sync (same digest): stop, nothing changes;
4. aggregate per pair -> scores; augment each rated influential example (``copies_per_point * score`` copies);
5. fine-tune a fresh copy of the round's base model (the model the explanations came from) on the fine-tuning set
   (augmented copies, plus rehearsal rows when ``finetune.rehearsal_ratio`` > 0), so a re-sync after edited
   ratings recomputes the round from the latest ratings instead of stacking on itself; steps 4-6 are
   :mod:`hildif.rounds.finetune`, the code the ablation runs too;
6. evaluate on HANS and MNLI dev samples (``eval.hans_sample``, ``eval.mnli_sample``), the base model too (once,
   cached in the ``metrics`` table); the promotion gate (:mod:`hildif.rounds.gate`) decides whether to serve it.
   A round on a team's own task (:mod:`hildif.rounds.task`) instead evaluates on the task's held-out set per label
   and per slice, rehearses with the task's training examples and leaves the NLI-only syntactic augmentation off;
7. save the model version (atomic directory rename), write the round report (``round.md``, ``round.html``,
   ``round.json``, :mod:`hildif.rounds.report`) and the fine-tuning set (``fine_tuning_set.csv``, one row per example,
   :mod:`hildif.rounds.setfile`), record scores, the augmented set, the version, its metrics and the gate's decision
   (one transaction);
8. when the gate passes, switch ``models/current.json`` to the new version (atomic rename) - last. Otherwise the
   previous model keeps serving and ``hildif round promote`` can serve the new one.

A failure in 4-7 marks the sync ``failed`` with the error and re-raises; nothing served changes.
A process killed mid-sync cannot mark anything: its row stays ``running`` until the next sync (holding the lock)
or the backend's start (when the lock is free) marks it ``failed``, ``interrupted: ...``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hildif.config import HildifConfig
from hildif.errors import HildifError
from hildif.feedback.ratings import SUBMITTED, Rating, ratings_digest, reconcile
from hildif.rounds.start import RoundError
from hildif.rounds.state import RoundState, now
from hildif.utils.locks import file_lock

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    """``status``: ``trained`` (a new version is trained and recorded; served when ``served``, else ``gate`` says
    why the previous model keeps serving), ``unchanged`` (same ratings as the last successful sync),
    ``no_ratings`` (nothing rated yet, nothing to train on), or ``waiting`` (``feedback.short_pairs = wait`` and some
    pair has fewer ratings than the round's annotators per task: nothing trained; ``short_pairs`` says which)."""

    round_id: str
    status: str
    snapshot_id: int
    digest: str
    changes: dict[str, int]
    sync_id: int | None = None
    version: str | None = None
    previous_version: str | None = None
    report_dir: str | None = None
    n_scored_pairs: int = 0
    n_augmented: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    served: bool = False  # whether this sync's version is served (False: the gate kept the previous one; see gate)
    gate: dict[str, Any] = field(default_factory=dict)  # hildif.rounds.gate.GateDecision.to_dict()
    # the full evaluations {"before": ..., "after": ...} (hildif.model.evaluation.evaluate results) of the base model
    # and of ``version``, and the report files by name (round.md, evaluation.json, ...); empty for no_ratings
    evaluation: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    short_pairs: dict[str, Any] = field(default_factory=dict)  # hildif.rounds.shortfall.Shortfall.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """The record for JSON (the backend's job result, ``hildif round sync``): ``metrics`` holds the headline
        numbers; the full ``evaluation`` and the ``files`` (in ``report_dir``) stay in process."""
        return {k: v for k, v in asdict(self).items() if k not in ("evaluation", "files")}


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The few numbers worth a glance: HANS and MNLI accuracy, HANS per heuristic and class, each stress set's
    accuracy overall and per gold class; on a team's own task its held-out accuracy, macro F1, accuracy per label and
    per slice value."""
    out: dict[str, Any] = {}
    task = result.get("task") or {}
    if task:
        out["task_accuracy"] = task.get("accuracy")
        out["task_macro_f1"] = task.get("macro_f1")
        out["task_by_label"] = {name: cell.get("accuracy") for name, cell in (task.get("by_label") or {}).items()}
        out["task_by_slice"] = {f: {v: cell.get("accuracy") for v, cell in values.items()}
                                for f, values in (task.get("by_slice") or {}).items()}
    if result.get("mnli"):
        out["mnli_accuracy"] = result["mnli"].get("accuracy")
    hans = result.get("hans") or {}
    if hans:
        out["hans_accuracy"] = hans.get("accuracy")
        out["hans_by_heuristic"] = hans.get("by_heuristic")
    if result.get("stress"):  # Naik et al.'s stress sets: overall and per gold class
        out["stress"] = {name: {"accuracy": cell.get("accuracy"), "by_class": cell.get("by_class"), "n": cell.get("n")}
                         for name, cell in result["stress"].items()}
    return out


@dataclass(frozen=True)
class PulledRatings:
    """What steps 1-2 leave: the snapshot the ratings are stored as, its ratings (deleted ones included) and the
    change counts since the previous snapshot (:func:`hildif.feedback.ratings.reconcile`)."""

    snapshot_id: int
    ratings: list[Rating]
    changes: dict[str, int]


def pull_and_snapshot(cfg: HildifConfig, state: RoundState, round_id: str, client) -> PulledRatings:
    """Steps 1-2: pull the round's ratings from Label Studio and store them as a snapshot."""
    info = state.round(round_id)
    pairs = state.pairs(round_id)
    by_task = {p.task_id: p.pair for p in pairs if p.task_id is not None}
    if info["project_id"] is None or not by_task:
        raise RoundError(f"round {round_id!r} has no tasks in Label Studio yet: run `hildif round start` first")
    current = client.ratings(int(info["project_id"]), by_task)
    last = state.latest_snapshot(round_id)
    previous = state.snapshot_ratings(last.snapshot_id) if last else []
    ratings, changes = reconcile(current, previous, now())
    snapshot = state.add_snapshot(round_id, ratings)
    log.info("round %s: snapshot %d (%s): %s", round_id, snapshot.snapshot_id,
             "new" if snapshot.created else "unchanged", changes)
    return PulledRatings(snapshot.snapshot_id, ratings, changes)


INTERRUPTED = "its process stopped during the sync (killed or crashed); nothing it did is served: sync again"


def recover_interrupted_syncs(cfg: HildifConfig) -> list[int]:
    """Mark syncs left ``running`` by a process that died as failed (``interrupted: ...``), unless a sync is running
    now (its lock is held: then nothing is touched). Returns the ids marked; for the backend's start."""
    with file_lock(cfg.run_path(".sync.lock"), blocking=False) as free:
        if not free:
            return []
        return _recover(cfg)


def _recover(cfg: HildifConfig) -> list[int]:
    from hildif.model.registry import ModelRegistry

    state = RoundState(cfg.run_path("rounds.sqlite"))
    ids = state.interrupt_running_syncs(INTERRUPTED)
    if ids:
        log.warning("marked interrupted sync(s) %s as failed", ids)
        discard_versions_of(ModelRegistry(cfg.run.run_dir), state, ids)
    return ids


def discard_versions_of(registry, state: RoundState, sync_ids: list[int]) -> list[str]:
    """Remove the model a failed or interrupted sync saved before it could record it: the registry is the record
    of model versions, and such a model is not one (never recorded in the round state, never served). A model is
    taken for that sync's only if its ``hildif.json`` names the sync and its round and it was made after the sync
    began; the served model is never removed."""
    syncs = {s["sync_id"]: s for r in state.round_ids() for s in state.syncs(r) if s["sync_id"] in sync_ids}
    current = registry.current()
    gone = []
    for v in registry.versions():
        sync = syncs.get(v["sync_id"])
        if (v["kind"] == "round" and sync is not None and v["round_id"] == sync["round_id"]
                and str(v["created_at"]) >= sync["started_at"] and v["version"] != current):
            try:
                registry.discard(v["version"])
            except OSError as exc:  # never hides why the sync failed; the next failed sync tries again
                log.error("could not remove model %s of failed sync %s: %s", v["version"], v["sync_id"], exc)
                continue
            log.warning("removed model %s saved by failed sync %s", v["version"], v["sync_id"])
            gone.append(v["version"])
    return gone


def sync_round(cfg: HildifConfig, round_id: str, *, client=None, progress: bool = True) -> SyncResult:
    """Run one sync of ``round_id`` (see the module docstring). ``client``: a :class:`LabelStudioClient`."""
    # one sync at a time per run directory (the backend's job and an admin's command may overlap): the second
    # waits, then finds the ratings unchanged. Holding the lock, a sync still marked running is one that died.
    with file_lock(cfg.run_path(".sync.lock")):
        _recover(cfg)
        return _sync_round(cfg, round_id, client=client, progress=progress)


def _sync_round(cfg: HildifConfig, round_id: str, *, client=None, progress: bool = True) -> SyncResult:
    state = RoundState(cfg.run_path("rounds.sqlite"))
    state.round(round_id)  # unknown round: a clear error before Label Studio is asked
    if client is None:
        from hildif.labelstudio.client import LabelStudioClient

        client = LabelStudioClient.from_config(cfg.labelstudio)
    return sync_snapshot(cfg, round_id, pull_and_snapshot(cfg, state, round_id, client), progress=progress,
                         client=client)


def sync_snapshot(cfg: HildifConfig, round_id: str, pulled: PulledRatings, *, progress: bool = True,
                  client=None) -> SyncResult:
    """Steps 3-8 on ratings already stored as a snapshot (:func:`pull_and_snapshot`, or
    :meth:`RoundState.add_snapshot`). The caller holds the run's sync lock (:func:`sync_round` does). ``client``:
    for a round on a task read from a Label Studio project (default: from config)."""
    from hildif.model.registry import ModelRegistry

    state = RoundState(cfg.run_path("rounds.sqlite"))
    info = state.round(round_id)
    snapshot_id, ratings, changes = pulled.snapshot_id, pulled.ratings, pulled.changes
    digest = ratings_digest(ratings)
    registry = ModelRegistry(cfg.run.run_dir)
    previous_version = registry.current()
    base = SyncResult(round_id, "unchanged", snapshot_id, digest, changes, previous_version=previous_version)
    last = state.last_done_sync(round_id)
    if last is not None:
        if state.snapshot(last["snapshot_id"]).digest == digest:
            base.sync_id, base.version, base.report_dir = last["sync_id"], last["version"], last["report_dir"]
            base.served = last["version"] == previous_version
            base.gate = (last.get("summary") or {}).get("gate") or {}
            base.evaluation = {"before": state.evaluation(info["base_version"]) or {},
                               "after": state.evaluation(last["version"]) or {}}
            base.files = report_files(last["report_dir"])
            log.info("round %s: ratings unchanged since sync %d; model %s stays", round_id, last["sync_id"], last["version"])
            return base
    if not any(r.status == SUBMITTED for r in ratings):
        base.status = "no_ratings"
        log.info("round %s: no submitted rating yet; nothing to fine-tune on", round_id)
        return base
    short = round_shortfall(cfg, state, info, ratings)
    base.short_pairs = short.to_dict()
    if short.waits:
        base.status = "waiting"
        log.info("round %s: %s", round_id, short.describe())
        return base
    sync_id = state.begin_sync(round_id, snapshot_id)
    try:
        result = _train_and_record(cfg, state, registry, info, sync_id, ratings, progress, short, client)
    except BaseException as exc:
        state.fail_sync(sync_id, f"{type(exc).__name__}: {exc}")
        discard_versions_of(registry, state, [sync_id])
        raise
    gate = result["gate"]
    if gate["serve"]:
        registry.set_current(result["version"])  # last: only now does the backend serve the new model
        log.info("round %s: sync %d served model %s (was %s)", round_id, sync_id, result["version"], previous_version)
    else:
        log.warning("round %s: sync %d trained model %s but keeps serving %s: %s; `hildif round promote --round %s "
                    "--version %s` serves it anyway", round_id, sync_id, result["version"], previous_version,
                    "; ".join(gate["reasons"]), round_id, result["version"])
    return SyncResult(
        round_id, "trained", snapshot_id, digest, changes, sync_id=sync_id, version=result["version"],
        previous_version=previous_version, report_dir=result["report_dir"], n_scored_pairs=result["n_scored"],
        n_augmented=result["n_augmented"], metrics=result["headline"], served=gate["serve"], gate=gate,
        evaluation=result["evaluation"], files=report_files(result["report_dir"]), short_pairs=base.short_pairs,
    )


def round_shortfall(cfg: HildifConfig, state: RoundState, info: dict[str, Any], ratings: list[Rating]):
    """The round's pairs short of its annotators per task, under ``feedback.short_pairs``."""
    from hildif.rounds.shortfall import shortfall

    target = int(info.get("annotators_per_task") or cfg.labelstudio.annotators_per_task)
    return shortfall(ratings, [p.pair for p in state.pairs(info["round_id"])], target, cfg.feedback.short_pairs)


REPORT_FILES = ("round.md", "round.html", "round.json", "evaluation.md", "evaluation.json", "evaluation.png",
                "fine_tuning_set.csv")


def report_files(report_dir: str | None) -> dict[str, str]:
    """The report files a sync wrote into ``report_dir``, by name."""
    if not report_dir:
        return {}
    return {name: str(Path(report_dir) / name) for name in REPORT_FILES if (Path(report_dir) / name).exists()}


def round_task_data(cfg: HildifConfig, info: dict[str, Any], client=None):
    """``(cfg, task data)`` of a round on a team's own task (``cfg`` with the task's number of labels and, for a
    task that is not NLI, ``feedback.syntactic`` off); ``(cfg, None)`` for an MNLI round. The task is loaded again
    (a Label Studio project's current export) and must still have the labels the round was started with."""
    from hildif.rounds import task as round_task

    recorded = (info.get("config") or {}).get("task")
    if not recorded:
        return cfg, None
    if round_task.is_mnli(cfg):
        raise RoundError(f"round {info['round_id']} was started on task {recorded['name']!r}, but task.source is "
                         "mnli now: sync it with the task's configuration")
    if client is None and round_task.needs_label_studio(cfg):
        from hildif.labelstudio.client import LabelStudioClient

        client = LabelStudioClient.from_config(cfg.labelstudio)
    data = round_task.load_round_task(cfg, client)
    if list(data.task.labels) != list(recorded["labels"]):
        raise RoundError(f"round {info['round_id']}: task {data.task.name!r} now has the labels "
                         f"{', '.join(data.task.labels)}, the round was started with {', '.join(recorded['labels'])}")
    cfg = round_task.task_config(cfg, data.task)
    if cfg.feedback.syntactic or cfg.feedback.constructions:
        import dataclasses

        log.info("round %s: feedback.syntactic / feedback.constructions (%s) make NLI pairs; they are off for task "
                 "%r", info["round_id"], ", ".join(cfg.feedback.syntactic + cfg.feedback.constructions),
                 data.task.name)
        cfg = dataclasses.replace(cfg, feedback=dataclasses.replace(cfg.feedback, syntactic=[], constructions=[]))
    return cfg, data


def round_construction_sources(cfg: HildifConfig, info: dict[str, Any], scored, pool, progress: bool):
    """The sentences the round's construction pairs are made from (``feedback.construction_sources``), found with
    the round's base model and its kNN index over the training pool (cached since the round's start)."""
    from hildif.influence.neighbourhood import round_construction_sources
    from hildif.model.loading import load_checkpoint

    fb = cfg.feedback
    clf = load_checkpoint(cfg, info["base_path"]) if fb.construction_sources != "rated" else None
    return round_construction_sources(cfg, scored, pool, clf, seed=fb.seed, progress=progress)


def _train_and_record(cfg: HildifConfig, state: RoundState, registry, info: dict[str, Any], sync_id: int,
                      ratings: list[Rating], progress: bool, short, client=None) -> dict[str, Any]:
    from hildif.data.splits import cached_train, evaluation_sets
    from hildif.feedback import aggregate
    from hildif.model.evaluation import write_report
    from hildif.model.loading import load_checkpoint
    from hildif.rounds import gate as promotion
    from hildif.rounds.finetune import (build_finetuning_set, evaluate_model, evaluate_task_model, fine_tune,
                                        heldout_digest)
    from hildif.data.example import LABEL_NAMES
    from hildif.rounds import setfile
    from hildif.rounds.report import write_round_report
    from hildif.rounds.task import checkpoint_kwargs

    cfg, task_data = round_task_data(cfg, info, client)
    round_id = info["round_id"]
    fb = cfg.feedback
    min_raters = short.min_raters(fb.min_raters)  # feedback.short_pairs = skip: the round's raters per task
    agg = aggregate(ratings, method=fb.aggregation, min_raters=min_raters, review_spread=fb.review_spread)
    examples = {p.pair: p.example for p in state.pairs(round_id)}
    rated = [(key, float(pair.score)) for key, pair in sorted(agg.pairs.items())
             if not pair.pending and pair.score is not None and key in examples]
    scored = [(examples[key], score) for key, score in rated]
    if not scored:
        raise RoundError(f"round {round_id}: no pair has enough ratings (at least {min_raters}: feedback.min_raters "
                         f"= {fb.min_raters}, feedback.short_pairs = {short.rule})")
    if task_data is None:
        pool = cached_train(cfg.data) if cfg.finetune.rehearsal_ratio > 0 or fb.constructions else None
        sources = round_construction_sources(cfg, info, scored, pool, progress) if fb.constructions else None
        fts = build_finetuning_set(scored, cfg, train_pool=pool, progress=progress, construction_sources=sources)
    else:  # the task's own training examples for rehearsal, its labels
        fts = build_finetuning_set(scored, cfg, train_pool=task_data.train, progress=progress,
                                   label_names=task_data.task.labels)
    aug_stats = fts.stats.get("augmentation") or {}
    if not fts.stats["parts"]["rated"] + fts.stats["parts"]["copies"]:
        raise RoundError(f"round {round_id}: augmentation produced no example (scores {[s for _, s in scored]}, "
                         f"feedback.score_threshold = {fb.score_threshold})")
    if task_data is None:  # MNLI: HANS and MNLI dev samples
        sets = evaluation_sets(cfg.data, cfg.eval)

        def evaluate_on(model):
            return evaluate_model(model, cfg, sets, progress=progress)

        def reusable(result):  # evaluated on every stress set asked for now (eval.stress_sets)
            return result is not None and set(cfg.eval.stress_sets) <= set(result.get("stress") or {})
    else:  # a team's task: its held-out set, per label and per slice

        def evaluate_on(model):
            return evaluate_task_model(model, cfg, task_data, progress=progress)

        digest = heldout_digest(task_data.heldout)

        def reusable(result):
            return result is not None and (result.get("task") or {}).get("heldout_digest") == digest
    before = state.evaluation(info["base_version"])
    if not reusable(before):  # evaluated once per base version (same samples: eval.* settings; same held-out set)
        base_clf = load_checkpoint(cfg, info["base_path"], **checkpoint_kwargs(cfg))
        before = evaluate_on(base_clf)
        state.record_evaluation(info["base_version"], before)
        del base_clf
    t0 = time.perf_counter()
    clf, train_result = fine_tune(info["base_path"], fts, cfg, progress=progress)
    after = evaluate_on(clf)
    version = registry.save(clf, {
        "kind": "round", "parent": info["base_version"], "round_id": round_id, "sync_id": sync_id,
        "ratings_digest": ratings_digest(ratings), "created_at": now(),
    }, make_current=False)
    versions = {v["version"]: v for v in registry.versions()}
    decision = promotion.decide(before, after, cfg.finetune, round_id=round_id, base_version=info["base_version"],
                                current_version=registry.current(), versions=versions).to_dict()
    report_dir = cfg.run_path("rounds", round_id, f"sync-{sync_id:03d}")
    eval_results = {"before": before, "after": after}
    after["model_version"] = version  # evaluated before it was saved: the classifier still named its base
    eval_paths = write_report(eval_results, report_dir, title="evaluation",
                              plot_title=f"{info['base_version']} (before) -> {version} (after)",
                              legend={"before": f"before ({info['base_version']})", "after": f"after ({version})"})
    label_names = task_data.task.labels if task_data is not None else LABEL_NAMES
    set_rows = setfile.set_rows(fts.examples, [(a, z, score) for (a, z), score in rated], label_names)
    setfile.write_set(report_dir / setfile.SET_FILE, set_rows)
    summary = {
        "round_id": round_id, "sync_id": sync_id, "base_version": info["base_version"], "version": version,
        "ratings_digest": ratings_digest(ratings), "aggregation": agg.to_dict(), "augmentation": aug_stats,
        "fine_tuning_set": {k: v for k, v in fts.stats.items() if k != "augmentation"},
        "n_scored_pairs": len(scored), "n_augmented": len(fts.examples), "train": train_result.to_dict(),
        "seconds": round(time.perf_counter() - t0, 2),
        "metrics": {"before": headline(eval_results["before"]), "after": headline(after)},
        "evaluation_files": {k: str(v) for k, v in eval_paths.items()},
        "gate": decision, "served": decision["serve"], "previous_version": registry.current(),
        "short_pairs": short.to_dict(),
        **report_context(cfg, state, info, version, registry, label_names),
    }
    write_round_report(report_dir, summary, rows=set_rows)
    state.finish_sync(
        sync_id, scores=list(agg.pairs.values()), augmented=fts.examples, version=version, metrics=after,
        report_dir=str(report_dir),
        summary={k: summary[k] for k in ("n_scored_pairs", "n_augmented", "metrics", "ratings_digest", "gate",
                                         "served")},
    )
    return {"version": version, "report_dir": str(report_dir), "n_scored": len(scored),
            "n_augmented": len(fts.examples), "headline": summary["metrics"], "gate": decision,
            "evaluation": eval_results}


def report_context(cfg: HildifConfig, state: RoundState, info: dict[str, Any], version: str, registry,
                   label_names) -> dict[str, Any]:
    """What the round report shows beyond the numbers: the texts of the rated pairs (``texts``: anchors and
    examples by id, with their label), the Label Studio project (``label_studio``) and the model's folder
    (``model_dir``)."""
    from hildif.rounds.setfile import label_name

    def text(e) -> dict[str, Any]:
        return {"premise": e.premise, "hypothesis": e.hypothesis, "label": label_name(e.label, label_names)}

    round_id = info["round_id"]
    texts = {"anchors": {a.anchor_id: text(a.example) for a in state.anchors(round_id)},
             "examples": {p.example_id: text(p.example) for p in state.pairs(round_id)}}
    ls: dict[str, Any] = {}
    if info.get("project_id") is not None:
        url = str(cfg.labelstudio.url).rstrip("/")
        ls = {"url": url, "project_id": info["project_id"], "project_url": f"{url}/projects/{info['project_id']}"}
    return {"texts": texts, "label_studio": ls, "model_dir": str(registry.path(version))}


def rewrite_report(report_dir: str | None, patch: dict[str, Any]) -> None:
    """Merge ``patch`` into a sync's ``round.json`` and write its report again (round.md, round.html), so that
    what a person reads stays true after the sync (an admin's promotion). A sync without a report is left alone;
    a report that cannot be written is logged, never an error of the promotion itself."""
    import json

    from hildif.rounds.report import write_round_report
    from hildif.rounds.setfile import SET_FILE, read_set

    if not report_dir or not (Path(report_dir) / "round.json").is_file():
        return
    try:
        summary = {**json.loads((Path(report_dir) / "round.json").read_text(encoding="utf-8")), **patch}
        rows = read_set(Path(report_dir) / SET_FILE) if (Path(report_dir) / SET_FILE).is_file() else None
        write_round_report(report_dir, summary, rows=rows)
    except (OSError, ValueError, KeyError) as exc:
        log.error("could not rewrite the round report in %s: %s", report_dir, exc)


class PromoteError(HildifError, ValueError):
    """``hildif round promote`` cannot serve the version asked for; the message says why."""


def promote(cfg: HildifConfig, round_id: str, version: str | None = None) -> dict[str, Any]:
    """Serve ``version`` (default: the round's last successful sync's model) whatever the gate said: the admin's
    explicit promotion. The version must be one a successful sync of ``round_id`` made. Records the promotion in
    that sync's summary (``promoted``) and returns ``{"round_id", "version", "previous_version", "sync_id"}``."""
    from hildif.model.registry import ModelRegistry

    with file_lock(cfg.run_path(".sync.lock")):
        state = RoundState(cfg.run_path("rounds.sqlite"))
        state.round(round_id)
        done = [s for s in state.syncs(round_id) if s["status"] == "done"]
        if not done:
            raise PromoteError(f"round {round_id!r} has no successful sync: nothing to promote")
        chosen = done[-1] if version is None else next((s for s in reversed(done) if s["version"] == version), None)
        if chosen is None:
            made = ", ".join(dict.fromkeys(s["version"] for s in done))
            raise PromoteError(f"version {version!r} was not made by a successful sync of round {round_id!r} "
                               f"(its versions: {made})")
        registry = ModelRegistry(cfg.run.run_dir)
        try:
            registry.path(chosen["version"])
        except FileNotFoundError as exc:
            raise PromoteError(str(exc)) from None
        previous = registry.current()
        promoted = {"at": now(), "previous_version": previous}
        state.update_sync_summary(chosen["sync_id"], {"promoted": promoted})
        registry.set_current(chosen["version"])
        log.info("round %s: promoted %s (sync %d), was %s", round_id, chosen["version"], chosen["sync_id"], previous)
        rewrite_report(chosen.get("report_dir"), {"promoted": promoted, "served": True})
        return {"round_id": round_id, "version": chosen["version"], "previous_version": previous,
                "sync_id": chosen["sync_id"]}


__all__ = ["PromoteError", "PulledRatings", "SyncResult", "sync_round", "sync_snapshot", "promote",
           "recover_interrupted_syncs", "pull_and_snapshot", "headline", "discard_versions_of"]
