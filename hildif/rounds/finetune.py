"""The one fine-tuning step of a round, from scored influential examples to a trained and evaluated model.

A sync (:mod:`hildif.rounds.sync`, so the demo and the ML backend too) and the ablation
(:mod:`hildif.experiments.ablation`) both run exactly these functions, so the experiment measures what a round does:

1. :func:`build_finetuning_set`: the scored examples -> the fine-tuning set S:

   * with augmentation (DA, a round always): g(z, s), the rated example and ``copies(s)`` augmented copies
     (:func:`hildif.feedback.augment`, with ``feedback.fill_augmenters`` filling what synonyms and back
     translation cannot make);
   * without (the ablation's ¬DA): each example repeated ``copies(s)`` times (``no_augmentation="repeat"``: the score
     still weighs it and S has DA's size) or used once (``"once"``); scores below the threshold drop it;
   * syntactic augmentation (``feedback.syntactic`` not empty; beyond the paper): up to
     ``feedback.syntactic_per_example`` pairs per example of the set above whose label holds by construction
     (:mod:`hildif.feedback.augmentation.syntactic`: subject/object swap, passive, main clause, embedded clause);
   * construction minimal pairs (``feedback.constructions``, on by default): both labels of every construction,
     from the confirmed examples and their neighbourhood (the caller's ``construction_sources``,
     :func:`hildif.influence.neighbourhood.construction_sources`), at most ``feedback.construction_pairs``
     (:func:`construction_set`);
   * rehearsal (``finetune.rehearsal_ratio`` > 0, 2 by default): ``round(ratio x |S|)`` original training rows, drawn with the
     seed from the training pool without the rated examples, in the class balance ``finetune.rehearsal_balance``
     (:data:`REHEARSAL_BALANCES`), marked ``metadata["rehearsal"] = True``.

2. :func:`fine_tune`: a fresh copy of the base checkpoint trained on S (``cfg.finetune``, seed
   ``finetune.seed + seed``), in this process or, with ``run.nproc`` > 1, on that many processes of a torchrun
   subprocess (:mod:`hildif.rounds.finetune_worker`).
3. :func:`evaluate_model`: HANS and MNLI dev on :func:`hildif.data.splits.evaluation_sets`; on a team's own task
   :func:`evaluate_task_model`: its held-out set per label and per slice.

``seed`` is an offset (0 in a sync; the cell's seed in the ablation) added to ``feedback.seed`` (augmentation,
rehearsal draw) and ``finetune.seed`` (training order, dropout).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hildif.config import HildifConfig
from hildif.data.example import LABEL_NAMES, Example
from hildif.errors import HildifError

log = logging.getLogger(__name__)

NO_AUGMENTATION_MODES = ("repeat", "once")
# train: the training pool's class distribution; balanced: equal per class; match: the class distribution of S
# (before rehearsal); complement: each row to the class S has least of, so S + rehearsal is as balanced as it can be;
# contrast: for each example of S a row of another class with about the same word overlap (see contrast_rows), so that
# within every overlap level S + rehearsal holds the classes alike and overlap alone predicts no class
REHEARSAL_BALANCES = ("train", "balanced", "match", "complement", "contrast")
# the word-overlap levels of the contrast draw: the hypothesis words found in the premise, in CONTRAST_BINS equal bins
CONTRAST_BINS = 5
# a fine-tune on run.nproc > 1 processes: the torchrun worker module and its job folder <run_dir>/tmp/finetune-*
WORKER_MODULE = "hildif.rounds.finetune_worker"
JOB_TMP_DIR = "tmp"
JOB_PREFIX = "finetune-"
JOB_CONFIG_FILE = "config.json"  # the whole configuration
JOB_EXAMPLES_FILE = "examples.jsonl"  # the fine-tuning set, one Example dict a line
JOB_FILE = "job.json"  # the base checkpoint's path and the seed offset
JOB_MODEL_DIR = "model"  # the trained checkpoint (rank 0)
JOB_RESULT_FILE = "result.json"  # the TrainResult (rank 0)


class FineTuneError(HildifError, ValueError):
    """The fine-tuning step cannot run as asked (bad setting, empty set, no training pool); the message says why."""


class FineTuneProcessError(HildifError, RuntimeError):
    """The fine-tune's torchrun subprocess (``run.nproc`` > 1) failed; the message names its exit code and the log
    file with its output."""


@dataclass
class FineTuningSet:
    """``examples``: what the model is fine-tuned on (the rated/augmented part first, then rehearsal rows).

    ``stats``: ``size``; ``parts`` (``rated``: rated examples included, ``copies``: augmented copies or repeats,
    ``syntactic``: transformed pairs (when on),
    ``rehearsal``: training rows added); ``labels`` (count per class name); ``augmentation`` (the augmenter's stats,
    DA only) or ``no_augmentation`` (``mode``, ``items``, ``examples``, ``distinct``; ¬DA only); ``rehearsal``
    (``ratio``, ``balance``, ``requested``, ``per_class``, ``short``, ``pool``, ``excluded``); ``overlap_by_label``
    (pair tasks: :func:`overlap_by_label` of the set ``without_rehearsal`` and, when there is rehearsal,
    ``with_rehearsal``)."""

    examples: list[Example]
    stats: dict[str, Any] = field(default_factory=dict)


def _label_counts(examples: Sequence[Example], label_names: Sequence[str] = LABEL_NAMES) -> dict[str, int]:
    counts = Counter(e.label for e in examples)
    return {label_names[c]: counts.get(c, 0) for c in range(len(label_names))}


def overlap_by_label(examples: Sequence[Example], label_names: Sequence[str] = LABEL_NAMES
                     ) -> dict[str, dict[str, Any]] | None:
    """Per class, how many examples and their mean word overlap (the fraction of the hypothesis's words found in the
    premise, :func:`hildif.data.heuristics.overlap_rate`, in [0, 1], rounded to 3 places); ``None`` when an example
    has no hypothesis (a single-text task) or there are none. Classes that differ here make overlap a cue for the
    class with more of it: the lexical-overlap heuristic or its reverse, whatever the examples' meaning."""
    from hildif.data.heuristics import overlap_rate

    if not examples or any(not e.hypothesis for e in examples):
        return None
    rates: dict[int, list[float]] = {}
    for e in examples:
        rates.setdefault(e.label, []).append(overlap_rate(e.premise, e.hypothesis))
    return {label_names[c]: {"n": len(rates[c]), "mean": round(sum(rates[c]) / len(rates[c]), 3)}
            for c in sorted(rates)}


def _proportional(n: int, weights: dict[int, float]) -> dict[int, int]:
    """``n`` split in proportion to ``weights`` (largest remainder; ties to the lower label): sums to ``n``."""
    total = sum(weights.values())
    if n <= 0:
        return {c: 0 for c in weights}
    if total <= 0:
        weights, total = {c: 1.0 for c in weights}, float(len(weights))
    exact = {c: n * w / total for c, w in weights.items()}
    counts = {c: int(v) for c, v in exact.items()}
    for c in sorted(weights, key=lambda c: (-(exact[c] - counts[c]), c))[: n - sum(counts.values())]:
        counts[c] += 1
    return counts


def rehearsal_counts(n: int, balance: str, *, pool: dict[int, int], current: dict[int, int],
                     num_labels: int = len(LABEL_NAMES)) -> dict[int, int]:
    """Rows per class (MNLI: 0 = non-entailment, 1 = entailment; a task's ``num_labels`` classes) for ``n``
    rehearsal rows under ``balance``; ``pool`` and ``current`` are the class counts of the training pool and of the
    set being completed. Sums to ``n``."""
    labels = range(num_labels)
    if balance == "train":
        return _proportional(n, {c: float(pool.get(c, 0)) for c in labels})
    if balance == "balanced":
        return _proportional(n, {c: 1.0 for c in labels})
    if balance == "match":
        return _proportional(n, {c: float(current.get(c, 0)) for c in labels})
    if balance == "complement":
        have = {c: current.get(c, 0) for c in labels}
        added = {c: 0 for c in labels}
        for _ in range(n):
            c = min(labels, key=lambda c: (have[c] + added[c], c))
            added[c] += 1
        return added
    raise FineTuneError(f"finetune.rehearsal_balance={balance!r}: expected one of {', '.join(REHEARSAL_BALANCES)}")


def _rehearsal_copy(e: Example) -> Example:
    """A copy of training row ``e`` marked ``metadata["rehearsal"] = True`` (the pool's row is not changed)."""
    return Example(e.id, e.premise, e.hypothesis, e.label, {**e.metadata, "rehearsal": True})


def rehearsal_rows(pool: Sequence[Example], n: int, balance: str, *, current: Sequence[Example],
                   exclude: Sequence[Example], seed: int, label_names: Sequence[str] = LABEL_NAMES
                   ) -> tuple[list[Example], dict[str, Any]]:
    """``n`` training rows from ``pool`` in the class balance ``balance`` (see :data:`REHEARSAL_BALANCES`), none of
    ``exclude`` (by id or by text), drawn with ``random.Random(seed)`` class by class; each a copy of the row with
    ``metadata["rehearsal"] = True``. A class with fewer rows than asked gives all it has (``short`` says how many
    are missing). Returns (rows, stats)."""
    from hildif.data.splits import text_key

    excluded_ids = {e.id for e in exclude}
    excluded_text = {text_key(e) for e in exclude}
    available = [e for e in pool if e.id not in excluded_ids and text_key(e) not in excluded_text]
    if balance == "contrast":
        rows, stats = contrast_rows(available, n, current=current, seed=seed, label_names=label_names)
        return rows, {**stats, "pool": len(pool), "excluded": len(pool) - len(available)}
    by_class: dict[int, list[Example]] = {}
    for e in available:
        by_class.setdefault(e.label, []).append(e)
    counts = rehearsal_counts(n, balance, pool={c: len(v) for c, v in by_class.items()},
                              current=Counter(e.label for e in current), num_labels=len(label_names))
    rng = random.Random(seed)
    rows: list[Example] = []
    short: dict[str, int] = {}
    for c in sorted(counts):
        candidates = by_class.get(c, [])
        k = min(counts[c], len(candidates))
        if k < counts[c]:
            short[label_names[c]] = counts[c] - k
        rows += [_rehearsal_copy(e) for e in rng.sample(candidates, k)]
    stats = {"balance": balance, "requested": n, "per_class": {label_names[c]: counts[c] for c in sorted(counts)},
             "short": short, "pool": len(pool), "excluded": len(pool) - len(available), "seed": seed}
    return rows, stats


def overlap_bin(example: Example) -> int:
    """The word-overlap level of ``example`` for the contrast draw: 0 .. CONTRAST_BINS - 1 (a single text: 0)."""
    from hildif.data.heuristics import overlap_rate

    return min(int(overlap_rate(example.premise, example.hypothesis) * CONTRAST_BINS), CONTRAST_BINS - 1)


def contrast_rows(available: Sequence[Example], n: int, *, current: Sequence[Example], seed: int,
                  label_names: Sequence[str] = LABEL_NAMES) -> tuple[list[Example], dict[str, Any]]:
    """``n`` rehearsal rows that contrast ``current`` (the set S being completed): S's examples in turn (each
    ``n // |S|`` times, then ``n % |S|`` of them drawn with the seed) each ask for one row of another class (two
    classes: the other one; more: the others in turn) at the same word-overlap level (:func:`overlap_bin`: the share
    of hypothesis words found in the premise, in ``CONTRAST_BINS`` bins), drawn without replacement from
    ``available`` with ``random.Random(seed)``. When a level of that class is used up the nearest level gives the row
    (``moved`` counts them); when the class is, the row is missing (``short``).

    Why: the rows the round confirms share a heuristic with their anchor, e.g. high overlap and non-entailment. Drawn
    at random, rehearsal rows mostly have low overlap and so teach "overlap means entailment" again; contrasting rows
    hold the other class at the same overlap, so that overlap alone no longer tells the classes apart.
    Returns (rows marked ``metadata["rehearsal"] = True``, stats: ``balance``, ``requested``, ``per_class``,
    ``per_level`` (requested rows per overlap level, level ``i`` covering [i / bins, (i + 1) / bins)), ``moved``,
    ``short``, ``seed``).
    """
    rng = random.Random(seed)
    num_labels = len(label_names)
    levels: dict[tuple[int, int], list[Example]] = {}
    for e in available:
        levels.setdefault((e.label, overlap_bin(e)), []).append(e)
    for rows_of_level in levels.values():
        rng.shuffle(rows_of_level)
    source = list(current)
    level_of = {id(e): overlap_bin(e) for e in source}
    order = source * (n // len(source)) + rng.sample(source, n % len(source)) if source and n > 0 else []
    turn: dict[int, int] = {}
    rows: list[Example] = []
    per_class: Counter = Counter()
    per_level: Counter = Counter()
    short: Counter = Counter()
    moved = 0
    for e in order:
        others = [c for c in range(num_labels) if c != e.label]
        if not others:
            break
        target = others[turn.get(e.label, 0) % len(others)]
        turn[e.label] = turn.get(e.label, 0) + 1
        level = level_of[id(e)]
        per_class[target] += 1
        per_level[level] += 1
        nearest = sorted((b for b in range(CONTRAST_BINS) if levels.get((target, b))),
                         key=lambda b: (abs(b - level), b))
        if not nearest:
            short[label_names[target]] += 1
            continue
        moved += nearest[0] != level
        rows.append(_rehearsal_copy(levels[(target, nearest[0])].pop()))
    stats = {"balance": "contrast", "requested": n,
             "per_class": {label_names[c]: per_class.get(c, 0) for c in range(num_labels)},
             "per_level": {f"{b / CONTRAST_BINS:.1f}-{(b + 1) / CONTRAST_BINS:.1f}": per_level.get(b, 0)
                           for b in range(CONTRAST_BINS)},
             "moved": moved, "short": dict(short), "seed": seed}
    return rows, stats


def construction_set(scored: Sequence[tuple[Example, float | None]], fb, sources: Sequence[Example] | None, *,
                     seed: int) -> tuple[list[Example], dict[str, Any]]:
    """The construction minimal pairs of a round (``feedback.constructions``): built from ``sources`` (None = the
    rated examples scored at least ``feedback.construction_min_score``), at most ``feedback.construction_pairs`` of
    them (drawn with ``seed``, both members of a pair together). Returns (examples, stats)."""
    from hildif.feedback.augmentation.constructions import construction_pairs
    from hildif.influence.neighbourhood import confirmed

    src = list(sources) if sources is not None else confirmed(scored, fb.construction_min_score)
    res = construction_pairs(src, constructions=fb.constructions, seed=seed)
    pairs = [res.examples[i:i + 2] for i in range(0, len(res.examples), 2)]
    cap = fb.construction_pairs
    if cap is not None and len(pairs) > cap:
        pairs = [pairs[i] for i in sorted(random.Random(seed).sample(range(len(pairs)), cap))]
    kept = [e for pair in pairs for e in pair]
    return kept, {"sources": len(src), "sources_mode": fb.construction_sources if sources is not None else "rated",
                  "made": res.stats.get("pairs", 0), "pairs": len(pairs),
                  "by_construction": dict(Counter(p[0].metadata["construction"] for p in pairs))}


def build_finetuning_set(
    scored: Sequence[tuple[Example, float | None]],
    cfg: HildifConfig,
    *,
    train_pool: Sequence[Example] | None = None,
    seed: int = 0,
    augmentation: bool = True,
    no_augmentation: str = "repeat",
    chains: list | None = None,
    fill_chains: list | None = None,
    encoder: Any = None,
    progress: bool = False,
    label_names: Sequence[str] = LABEL_NAMES,
    construction_sources: Sequence[Example] | None = None,
) -> FineTuningSet:
    """The fine-tuning set S of scored influential examples (see the module docstring).

    Args:
        scored: ``(influential example, aggregated score or None)``; one entry per (anchor, example) pair.
        cfg: uses ``cfg.feedback`` (copies, augmenters, fill) and ``cfg.finetune`` (rehearsal).
        train_pool: the training examples rehearsal draws from; required when ``finetune.rehearsal_ratio`` > 0.
        seed: offset added to ``feedback.seed`` (augmentation and the rehearsal draw).
        augmentation: DA (g(z, s)); False is the ablation's ¬DA, with ``no_augmentation`` "repeat" or "once".
        chains, fill_chains: prebuilt augmenter chains (:func:`hildif.feedback.build_chains`,
            :func:`hildif.feedback.build_fill_chains`), to reuse their caches across calls.
        encoder: for ``feedback.similarity_filter`` (see :func:`hildif.feedback.augment`).
        label_names: the task's classes (default MNLI's two), for the class balance of rehearsal and the stats.
        construction_sources: the sentences ``feedback.constructions`` builds minimal pairs from
            (:func:`hildif.influence.neighbourhood.construction_sources`); None = the confirmed rated examples.
    """
    from hildif.feedback import augment, copies_for_score
    from hildif.feedback.augmentation.seeding import derive_seed

    fb = dataclasses.replace(cfg.feedback, seed=cfg.feedback.seed + seed)
    stats: dict[str, Any] = {}
    if augmentation:
        res = augment(scored, fb, encoder, chains=chains, fill_chains=fill_chains, progress=progress)
        core = res.examples
        stats["augmentation"] = res.stats
        parts = {"rated": res.stats["originals"], "copies": res.stats["produced"]}
    else:
        if no_augmentation not in NO_AUGMENTATION_MODES:
            raise FineTuneError(f"no_augmentation={no_augmentation!r}: expected one of {NO_AUGMENTATION_MODES}")
        core = []
        for example, score in scored:
            n = copies_for_score(score, fb)
            if n > 0:
                core += [example] * (n if no_augmentation == "repeat" else 1)
        included = sum(1 for example, score in scored if copies_for_score(score, fb) > 0)
        stats["no_augmentation"] = {"mode": no_augmentation, "items": len(scored), "examples": len(core),
                                    "distinct": len({e.id for e in core})}
        parts = {"rated": included, "copies": len(core) - included}

    if fb.syntactic and core:
        from hildif.feedback.augmentation.syntactic import syntactic_examples

        syn = syntactic_examples(core, per_example=fb.syntactic_per_example, operations=fb.syntactic,
                                 premise=fb.syntactic_premise)
        core = core + syn.examples
        stats["syntactic"] = syn.stats
        parts["syntactic"] = len(syn.examples)

    if fb.constructions and core:
        pairs, cstats = construction_set(scored, fb, construction_sources, seed=derive_seed("constructions", fb.seed))
        core = core + pairs
        stats["constructions"] = cstats
        parts["constructions"] = len(pairs)

    ft = cfg.finetune
    ratio = float(getattr(ft, "rehearsal_ratio", 0.0) or 0.0)
    rehearsal: list[Example] = []
    if ratio < 0:
        raise FineTuneError(f"finetune.rehearsal_ratio={ratio}: must be >= 0 (0 = off)")
    if ratio > 0 and core:
        if train_pool is None:
            raise FineTuneError("finetune.rehearsal_ratio > 0 needs the training pool (train_pool)")
        n = int(round(ratio * len(core)))
        rehearsal, rstats = rehearsal_rows(train_pool, n, getattr(ft, "rehearsal_balance", "train"), current=core,
                                           exclude=[e for e, _ in scored], seed=derive_seed("rehearsal", fb.seed),
                                           label_names=label_names)
        stats["rehearsal"] = {"ratio": ratio, **rstats}
    parts["rehearsal"] = len(rehearsal)
    examples = core + rehearsal
    overlap = {"without_rehearsal": overlap_by_label(core, label_names),
               "with_rehearsal": overlap_by_label(examples, label_names) if rehearsal else None}
    return FineTuningSet(examples, {"size": len(examples), "parts": parts,
                                    "labels": _label_counts(examples, label_names),
                                    **({"overlap_by_label": overlap} if overlap["without_rehearsal"] else {}),
                                    **stats})


def fine_tune(base_path: str | Path, fine_tuning_set: FineTuningSet | Sequence[Example], cfg: HildifConfig, *,
              seed: int = 0, progress: bool = False):
    """FINE_TUNE: a fresh copy of the checkpoint ``base_path`` trained on the set (``cfg.finetune``, seed
    ``finetune.seed + seed``). Returns ``(classifier, TrainResult)``.

    ``run.nproc`` = 1 trains in this process (:func:`train_copy`); N > 1 trains on N processes of a torchrun
    subprocess (:func:`fine_tune_subprocess`) and waits for it, the same global batch, so the same weights to float
    rounding. Inside a torchrun job (every rank calls it) it trains in this job's process group.
    """
    from hildif import distributed
    from hildif.config import check_nproc

    examples = fine_tuning_set.examples if isinstance(fine_tuning_set, FineTuningSet) else list(fine_tuning_set)
    if not examples:
        raise FineTuneError("the fine-tuning set is empty")
    check_nproc(cfg)
    if cfg.run.nproc > 1 and not distributed.launched():
        return fine_tune_subprocess(base_path, examples, cfg, seed=seed)
    return train_copy(base_path, examples, cfg, seed=seed, progress=progress)


def train_copy(base_path: str | Path, examples: Sequence[Example], cfg: HildifConfig, *, seed: int = 0,
               progress: bool = False):
    """The checkpoint ``base_path`` loaded and trained on ``examples`` in this process (on every rank under
    torchrun). Returns ``(classifier, TrainResult)``."""
    from hildif.influence.params import restrict_training
    from hildif.model.loading import load_checkpoint
    from hildif.model.training import train
    from hildif.rounds.task import checkpoint_kwargs

    clf = load_checkpoint(cfg, base_path, **checkpoint_kwargs(cfg))
    restrict_training(clf.model, cfg.finetune.train_params, cfg.influence.params)  # finetune.train_params
    ft = dataclasses.replace(cfg.finetune, seed=cfg.finetune.seed + seed)
    return clf, train(clf, examples, ft, progress=progress)


def _stop_group(proc) -> None:
    """End the process group of ``proc`` (torchrun and the workers it started): SIGTERM, then SIGKILL after 30 s."""
    import os
    import signal
    import subprocess

    for sig, wait_s in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def fine_tune_subprocess(base_path: str | Path, examples: Sequence[Example], cfg: HildifConfig, *, seed: int = 0):
    """:func:`train_copy` on ``run.nproc`` processes: ``python -m torch.distributed.run --standalone`` of
    :mod:`hildif.rounds.finetune_worker`, waited for (the caller's thread blocks, not its process: the backend runs
    syncs in its job thread). The job (config, the set as JSONL, the base path) goes to a folder
    ``<run_dir>/tmp/finetune-*`` where rank 0 saves the trained checkpoint and the :class:`TrainResult`; the
    processes' output goes to ``<run_dir>/logs/finetune-*.log``. The folder is removed whatever happens; a failed
    subprocess raises :class:`FineTuneProcessError` with its exit code and log file."""
    import json
    import os
    import shutil
    import subprocess
    import tempfile
    import time

    from hildif import distributed
    from hildif.model.loading import load_checkpoint
    from hildif.model.training import TrainResult
    from hildif.utils.atomic import write_json_atomic, write_text_atomic

    base = Path(base_path)
    if not base.is_dir():
        raise FineTuneError(f"base checkpoint {base} is not a directory")
    n = cfg.run.nproc
    if distributed.backend_for(cfg.model.device) == "nccl":  # pragma: no cover - needs GPUs
        import torch

        if n > torch.cuda.device_count():
            raise FineTuneError(f"run.nproc={n}: this machine has {torch.cuda.device_count()} GPU(s), one per "
                                f"process (or model.device=cpu for gloo processes)")
    parent = cfg.run_path(JOB_TMP_DIR)
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=JOB_PREFIX, dir=parent)).resolve()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    log_file = cfg.run_path("logs", f"{JOB_PREFIX}{stamp}-{work.name[len(JOB_PREFIX):]}.log")
    try:
        write_json_atomic(work / JOB_CONFIG_FILE, cfg.to_dict())
        write_text_atomic(work / JOB_EXAMPLES_FILE,
                          "".join(json.dumps(e.to_dict(), ensure_ascii=False, default=str) + "\n" for e in examples))
        write_json_atomic(work / JOB_FILE, {"base": str(base.resolve()), "seed": int(seed)})
        env = {k: v for k, v in distributed.launch_env(n).items() if k not in distributed.ENV_VARS}
        package_root = str(Path(__file__).resolve().parents[2])  # the workers import this very hildif
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        cmd = distributed.torchrun_command(n, [str(work)], module=WORKER_MODULE)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log.info("fine-tuning on %d processes (torchrun); output in %s", n, log_file)
        with open(log_file, "wb") as out:
            # its own session, so that an interrupted wait (Ctrl-C, a stopped job) ends torchrun and its workers too
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                rc = proc.wait()
            except BaseException:
                _stop_group(proc)
                raise
        done = (work / JOB_MODEL_DIR).is_dir() and (work / JOB_RESULT_FILE).is_file()
        if rc != 0 or not done:
            raise FineTuneProcessError(
                f"the fine-tune on run.nproc={n} processes (torchrun) failed with exit code {rc}"
                + ("" if rc else " and saved no checkpoint") + f"; its output is in {log_file}")
        from hildif.rounds.task import checkpoint_kwargs

        clf = load_checkpoint(cfg, work / JOB_MODEL_DIR, **checkpoint_kwargs(cfg))
        result = TrainResult(**json.loads((work / JOB_RESULT_FILE).read_text(encoding="utf-8")))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return clf, result


def evaluate_model(clf, cfg: HildifConfig, sets: tuple[Sequence[Example], Sequence[Example]] | None = None, *,
                   progress: bool = False) -> dict[str, Any]:
    """:func:`hildif.model.evaluation.evaluate` on ``sets`` (``(hans, mnli)``; default
    :func:`hildif.data.splits.evaluation_sets` of ``cfg``) with ``eval.batch_size``, and on the stress sets
    ``eval.stress_sets`` built from those MNLI rows (:func:`hildif.data.stress.stress_sets`)."""
    from hildif.data.splits import evaluation_sets
    from hildif.data.stress import stress_sets
    from hildif.model.evaluation import evaluate

    hans, mnli = sets if sets is not None else evaluation_sets(cfg.data, cfg.eval)
    stress = stress_sets(mnli, cfg.eval.stress_sets) if mnli and cfg.eval.stress_sets else None
    return evaluate(clf, hans, mnli, batch_size=cfg.eval.batch_size, progress=progress, stress=stress)


def heldout_digest(examples: Sequence[Example]) -> str:
    """A digest of a held-out set (ids and labels), so an evaluation is reused only on the same set."""
    import hashlib

    h = hashlib.sha256()
    for e in examples:
        h.update(f"{e.id}\t{e.label}\n".encode("utf-8"))
    return h.hexdigest()[:16]


def evaluate_task_model(clf, cfg: HildifConfig, task_data, *, progress: bool = False) -> dict[str, Any]:
    """A team's task instead of HANS/MNLI: :func:`hildif.model.evaluation.evaluate_task` on its held-out examples,
    per label and per slice (``task.slices``), with the held-out set's digest (``task.heldout_digest``)."""
    from hildif.model.evaluation import evaluate_task

    task = task_data.task
    if not task_data.heldout:
        raise FineTuneError(f"task {task.name!r} has no held-out examples to evaluate on (task.heldout_fraction or "
                            "task.eval_files)")
    result = evaluate_task(clf, task_data.heldout, task.labels, task.slices, batch_size=cfg.eval.batch_size,
                           progress=progress)
    result["task"].update(name=task.name, heldout_digest=heldout_digest(task_data.heldout))
    return result


__all__ = ["FineTuneError", "FineTuneProcessError", "FineTuningSet", "NO_AUGMENTATION_MODES", "REHEARSAL_BALANCES",
           "build_finetuning_set", "contrast_rows", "evaluate_model", "evaluate_task_model", "fine_tune",
           "fine_tune_subprocess", "overlap_bin", "overlap_by_label", "rehearsal_counts", "rehearsal_rows",
           "train_copy"]
