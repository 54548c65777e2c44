"""The paper's ablation (section 4, Figure 1): eight debugging configurations x top-p x seeds, one round (T = 1).

Three binary propositions define a configuration:

``HS`` human scoring    influential examples are scored by the simulated panel (:mod:`hildif.experiments.panel`,
                        aggregated with ``feedback.aggregation``); without it (``¬HS``) every one scores 5.
``DA`` augmentation     fine-tune on g(z, s): ``copies_per_point * s`` augmented copies plus the original
                        (:func:`hildif.feedback.augment`). Without it (``¬DA``) "fine tuning is done on each
                        influential sample only": ``no_augmentation = "repeat"`` (default) repeats each influential
                        example ``copies_for_score(s)`` times, so the score still weighs it and the fine-tuning set
                        has DA's size; ``"once"`` uses each example once (scores below the threshold drop it).
``H``  handpicked       the paper's five anchors (``data.anchors_file``); without it (``¬H``) ``n_anchors`` random
                        MNLI dev examples, drawn with the cell's seed.

Every cell (configuration, p, seed) starts from the same baseline checkpoint: explain the anchors with FastIF
(explanations cached per anchor set at the largest p, so p = 10 reuses the first 10 of p = 20), score, then the very
fine-tuning step a round's sync runs (:mod:`hildif.rounds.finetune`: build the fine-tuning set, with rehearsal when
``finetune.rehearsal_ratio`` > 0; fine-tune, seed ``finetune.seed + seed``; evaluate on
:func:`hildif.data.splits.evaluation_sets`, ``eval.hans_sample``, ``eval.mnli_sample``). Each finished cell is written atomically to
``<out>/cells/<key>.json`` with every setting that shapes it (and their digest); a rerun skips cells recorded with
the current settings, so an interrupted run resumes where it stopped, a finished one recomputes nothing, and adding a
p or a seed computes only the new cells.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm.auto import tqdm

from hildif.config import HildifConfig
from hildif.data.example import Example
from hildif.errors import HildifError
from hildif.rounds.finetune import NO_AUGMENTATION_MODES  # re-exported for the CLI
from hildif.utils.atomic import write_json_atomic

log = logging.getLogger(__name__)



class AblationError(HildifError, ValueError):
    """An ablation cannot run as asked (unknown configuration, no baseline, bad settings); the message says which."""


# ---------------------------------------------------------------------------------------------- configurations
@dataclass(frozen=True)
class Configuration:
    """One of the paper's eight debugging configurations."""

    human_scoring: bool
    augmentation: bool
    handpicked: bool

    @property
    def key(self) -> str:
        """Shell-friendly name: ``hs-da-h`` ... ``nohs-noda-noh``."""
        return "-".join(("" if on else "no") + name for on, name in
                        ((self.human_scoring, "hs"), (self.augmentation, "da"), (self.handpicked, "h")))

    @property
    def label(self) -> str:
        """The paper's notation: ``HS, DA, H`` ... ``¬HS, ¬DA, ¬H``."""
        return ", ".join(("" if on else "¬") + name for on, name in
                         ((self.human_scoring, "HS"), (self.augmentation, "DA"), (self.handpicked, "H")))

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, **dataclasses.asdict(self)}


# The paper's order (Figure 1c): HS before ¬HS, DA before ¬DA, H before ¬H.
CONFIGURATIONS: tuple[Configuration, ...] = tuple(
    Configuration(hs, da, h) for hs in (True, False) for da in (True, False) for h in (True, False)
)
BY_KEY = {c.key: c for c in CONFIGURATIONS}


def parse_configurations(spec: str | Sequence[str] | None) -> list[Configuration]:
    """``"all"``/None, or keys like ``hs-da-h,nohs-noda-noh`` (comma-separated string or list), in paper order."""
    if spec is None:
        return list(CONFIGURATIONS)
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not items or items == ["all"]:
        return list(CONFIGURATIONS)
    unknown = [s for s in items if s.lower() not in BY_KEY]
    if unknown:
        raise AblationError(f"unknown configuration(s) {', '.join(unknown)} (known: all, {', '.join(BY_KEY)})")
    wanted = {s.lower() for s in items}
    return [c for c in CONFIGURATIONS if c.key in wanted]


@dataclass
class AblationSettings:
    """What to run. ``configurations`` x ``top_ps`` x ``seeds`` cells; the rest shapes every cell (and its digest)."""

    configurations: list[Configuration] = field(default_factory=lambda: list(CONFIGURATIONS))
    top_ps: list[int] = field(default_factory=lambda: [10, 20])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    n_anchors: int = 5
    annotators: int = 3
    annotator_noise: float = 0.5
    no_augmentation: str = "repeat"

    def __post_init__(self) -> None:
        if not self.configurations:
            raise AblationError("no configuration selected")
        if not self.top_ps or any(int(p) < 1 for p in self.top_ps):
            raise AblationError(f"top-p values must be >= 1, got {self.top_ps}")
        if not self.seeds:
            raise AblationError("no seed selected")
        if self.n_anchors < 1 or self.annotators < 1:
            raise AblationError(f"n_anchors and annotators must be >= 1 (got {self.n_anchors}, {self.annotators})")
        if self.no_augmentation not in NO_AUGMENTATION_MODES:
            raise AblationError(f"no_augmentation={self.no_augmentation!r}: expected one of {NO_AUGMENTATION_MODES}")
        self.top_ps = sorted({int(p) for p in self.top_ps})
        self.seeds = sorted({int(s) for s in self.seeds})

    def shaping(self) -> dict[str, Any]:
        """The settings that change a cell's result (not which cells are selected). The largest p is not one: a cell
        at p takes the first p of its anchors' explanations, which rank the same whatever the largest p."""
        return {"n_anchors": self.n_anchors, "annotators": self.annotators, "annotator_noise": self.annotator_noise,
                "no_augmentation": self.no_augmentation}


@dataclass(frozen=True)
class Cell:
    configuration: Configuration
    top_p: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.configuration.key}_p{self.top_p}_s{self.seed}"


def cells_of(settings: AblationSettings) -> list[Cell]:
    """All cells, grouped so that cells sharing an anchor set run together (H first, then ¬H by seed)."""
    cells = [Cell(c, p, s) for c in settings.configurations for p in settings.top_ps for s in settings.seeds]
    return sorted(cells, key=lambda c: (not c.configuration.handpicked,
                                        c.seed if not c.configuration.handpicked else 0,
                                        CONFIGURATIONS.index(c.configuration), c.top_p, c.seed))


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def flatten_settings(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``{"section.key": value}`` (any depth)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(flatten_settings(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# recorded by earlier runs as shaping a cell, found not to: dropped from a cell's recorded settings before comparing
NOT_SHAPING = {"settings": ("explained_top_p",)}


def recorded_shaping(cell_record: dict[str, Any]) -> dict[str, Any] | None:
    """The settings a finished cell was computed with, less those that do not change a cell (:data:`NOT_SHAPING`);
    ``None`` for a cell recorded before cells kept their settings."""
    recorded = cell_record.get("settings")
    if not isinstance(recorded, dict):
        return None
    return {section: ({k: v for k, v in values.items() if k not in NOT_SHAPING[section]}
                      if section in NOT_SHAPING and isinstance(values, dict) else values)
            for section, values in recorded.items()}


def is_current(cell_record: dict[str, Any], digest: str) -> bool:
    """Whether a finished cell can be reused by a run whose settings have ``digest``: its own settings (less
    :data:`NOT_SHAPING`) digest to it, or, for a cell that did not keep its settings, its recorded digest is it."""
    recorded = recorded_shaping(cell_record)
    return (_digest(recorded) if recorded is not None else cell_record.get("digest")) == digest


# what manifest.json holds besides the settings that shape a cell (see run_ablation)
MANIFEST_FIELDS = ("digest", "baseline_path", "explained_top_p")


def manifest_digest(manifest: dict[str, Any]) -> str:
    """The digest a run folder's cells are current against: of the settings its ``manifest.json`` records, less the
    manifest's own fields and :data:`NOT_SHAPING` (so a folder written before a setting was found not to shape a
    cell still matches its cells)."""
    shaping = {k: v for k, v in manifest.items() if k not in MANIFEST_FIELDS}
    return _digest(recorded_shaping({"settings": shaping}))


def settings_changes(recorded: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """What differs between the settings a cell was recorded with and the run's (``section.key: old -> new``, sorted;
    a key the cell did not record, such as a setting added since, shows ``(not recorded)``). A cell recorded before
    cells kept their settings gives one line saying so."""
    if recorded is None:
        return ["settings not stored with the cell (recorded by an older hildif)"]
    old, new = flatten_settings(recorded), flatten_settings(current)
    show = lambda d, k: json.dumps(d[k], default=str) if k in d else "(not recorded)"  # noqa: E731
    return [f"{k}: {show(old, k)} -> {show(new, k)}" for k in sorted(set(old) | set(new))
            if json.dumps(old.get(k), default=str) != json.dumps(new.get(k), default=str) or (k in old) != (k in new)]


# ---------------------------------------------------------------------------------------------- the runner
@dataclass
class AblationRun:
    """What :func:`run_ablation` did: cells computed now, cells reused from disk, and the aggregated summary."""

    out_dir: Path
    computed: list[str]
    reused: list[str]
    summary: dict[str, Any]
    paths: dict[str, Path]
    seconds: float


class AblationContext:
    """Things shared by the cells of one run (and by explorations built on the ablation, such as
    ``benchmarks/finetune_recipes.py``): the baseline, the evaluation sets, each cell's anchors and their
    explanations, the training pool, the augmenter chains."""

    def __init__(self, cfg: HildifConfig, settings: AblationSettings, baseline_path: Path, out: Path,
                 progress: bool) -> None:
        from hildif.data.splits import evaluation_sets
        from hildif.model.loading import load_checkpoint

        self.cfg, self.settings, self.baseline_path, self.out, self.progress = cfg, settings, baseline_path, out, progress
        self.baseline = load_checkpoint(cfg, baseline_path)
        self.hans, self.mnli = evaluation_sets(cfg.data, cfg.eval)
        self._train: list[Example] | None = None
        self._engine = None
        self._chains = None
        self._fill_chains = None
        self._explanations: dict[str, list[tuple[Example, list[tuple[Example, float]]]]] = {}
        self.keep_models = False  # run_ablation(keep_models=True): each computed cell's model saved (keep_model)

    @property
    def train_examples(self) -> list[Example]:
        if self._train is None:
            from hildif.data.splits import cached_train

            self._train = cached_train(self.cfg.data)
        return self._train

    def chains(self):
        if self._chains is None:
            from hildif.feedback import build_chains

            self._chains = build_chains(self.cfg.feedback)
        return self._chains

    def fill_chains(self):
        if self._fill_chains is None:
            from hildif.feedback import build_fill_chains

            self._fill_chains = build_fill_chains(self.cfg.feedback)
        return self._fill_chains

    def construction_sources(self, scored: list[tuple[Example, float | None]], seed: int) -> list[Example]:
        """The sentences the cell's construction pairs are made from (``feedback.construction_sources``), found
        in the baseline's kNN index over the training pool (the index the explanations used, read from its cache)."""
        from hildif.influence.neighbourhood import round_construction_sources

        return round_construction_sources(self.cfg, scored, self.train_examples, self.baseline,
                                          seed=self.cfg.feedback.seed + seed, progress=self.progress)

    def anchors(self, cell: Cell) -> list[Example]:
        """The cell's anchors: the paper's first ``n_anchors`` (H), or ``n_anchors`` dev examples drawn with the
        cell's seed (¬H)."""
        from hildif.influence.anchors import PaperAnchors, RandomAnchors, select_anchors

        n = self.settings.n_anchors
        strategy = PaperAnchors(n) if cell.configuration.handpicked else RandomAnchors(n, seed=cell.seed)
        anchors = select_anchors(strategy, data=self.cfg.data)
        if len(anchors) < n:
            raise AblationError(f"{n} anchors asked, the anchors file {self.cfg.data.anchors_file} has {len(anchors)}")
        return anchors

    def explanations(self, anchors: list[Example]) -> list[tuple[Example, list[tuple[Example, float]]]]:
        """Per anchor, its influential training examples (most helpful first) with their influence, at the
        largest p; computed once per anchor set and kept in ``<out>/explanations/<digest>.json``."""
        from hildif.influence.explain import explain
        from hildif.influence.knn import index_cache_dir

        top = max(self.settings.top_ps)
        inf_cfg = dataclasses.replace(self.cfg.influence, top_p=top)
        key = _digest({"model": self.baseline.version, "anchors": [a.id for a in anchors],
                       "influence": dataclasses.asdict(inf_cfg), "data": dataclasses.asdict(self.cfg.data)})
        if key in self._explanations:
            return self._explanations[key]
        path = self.out / "explanations" / f"{key}.json"
        if path.exists():
            rows = json.loads(path.read_text())["explanations"]
        else:
            if self._engine is None:
                from hildif.influence.engine import InfluenceEngine

                self._engine = InfluenceEngine(self.baseline, self.train_examples, self.cfg.influence,
                                               progress=self.progress)
            t0 = time.perf_counter()
            found = explain(self.baseline, self.train_examples, anchors, inf_cfg,
                            cache_dir=index_cache_dir(self.cfg), progress=self.progress, engine=self._engine)
            rows = [e.to_dict() for e in found]
            write_json_atomic(path, {"model": self.baseline.version, "anchors": [a.id for a in anchors],
                                     "influence": dataclasses.asdict(inf_cfg),
                                     "seconds": round(time.perf_counter() - t0, 2), "explanations": rows})
        result = [(Example.from_dict(r["anchor"]),
                   [(Example.from_dict(i["example"]), float(i["score"])) for i in r["influential"]]) for r in rows]
        self._explanations[key] = result
        return result


def cell_scores(cell: Cell, pairs: list[tuple[Example, Example]], settings: AblationSettings, cfg: HildifConfig
                ) -> tuple[list[float | None], dict[str, Any]]:
    """The score of each (anchor, influential example) pair: the simulated panel's aggregate (HS; the panel of
    ``settings.annotators`` with the cell's seed, aggregated by ``feedback.aggregation``) or 5 (¬HS). Returns
    ``(scores, how)`` where ``how`` says the method, the annotators and their agreement (alpha)."""
    if not cell.configuration.human_scoring:
        return [5.0] * len(pairs), {"method": "constant 5 (no human scoring)"}
    from hildif.experiments.panel import simulated_panel
    from hildif.feedback import aggregate, simulate_ratings

    panel = simulated_panel(settings.annotators, seed=cell.seed, noise=settings.annotator_noise)
    fb = cfg.feedback
    agg = aggregate(simulate_ratings(panel, pairs), method=fb.aggregation, min_raters=fb.min_raters,
                    review_spread=fb.review_spread)
    scores = [agg.pairs[(a.id, z.id)].score for a, z in pairs]
    alpha = ((agg.agreement.to_dict() or {}).get("overall") or {}).get("alpha")
    return [float(s) if s is not None else None for s in scores], {
        "method": fb.aggregation, "annotators": [a.name for a in panel], "alpha": alpha,
    }


def run_cell(ctx: AblationContext, cell: Cell) -> dict[str, Any]:
    """Explain (cached), score, then the round's own fine-tuning step (:mod:`hildif.rounds.finetune`): build the
    fine-tuning set, fine-tune a fresh baseline copy, evaluate."""
    from hildif.rounds.finetune import build_finetuning_set, evaluate_model, fine_tune

    cfg, settings = ctx.cfg, ctx.settings
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    anchors = ctx.anchors(cell)
    explained = ctx.explanations(anchors)
    timings["explain"] = time.perf_counter() - t0
    pairs = [(anchor, z) for anchor, infl in explained for z, _ in infl[: cell.top_p]]
    influence = {(anchor.id, z.id): s for anchor, infl in explained for z, s in infl[: cell.top_p]}
    if not pairs:
        raise AblationError(f"cell {cell.key}: influence found no training example for the anchors")
    scores, scoring = cell_scores(cell, pairs, settings, cfg)
    scored = [(z, s) for (_, z), s in zip(pairs, scores)]
    t1 = time.perf_counter()
    da = cell.configuration.augmentation
    fts = build_finetuning_set(
        scored, cfg, train_pool=ctx.train_examples if cfg.finetune.rehearsal_ratio > 0 else None, seed=cell.seed,
        augmentation=da, no_augmentation=settings.no_augmentation, chains=ctx.chains() if da else None,
        fill_chains=ctx.fill_chains() if da else None, progress=ctx.progress,
        construction_sources=ctx.construction_sources(scored, cell.seed) if cfg.feedback.constructions else None)
    timings["build"] = time.perf_counter() - t1
    if not fts.examples:
        raise AblationError(f"cell {cell.key}: the fine-tuning set is empty (scores {scores}, "
                            f"feedback.score_threshold = {cfg.feedback.score_threshold})")
    t2 = time.perf_counter()
    clf, trained = fine_tune(ctx.baseline_path, fts, cfg, seed=cell.seed, progress=ctx.progress)
    timings["fine_tune"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    result = evaluate_model(clf, cfg, (ctx.hans, ctx.mnli), progress=ctx.progress)
    timings["evaluate"] = time.perf_counter() - t3
    kept = keep_model(ctx, cell, clf) if ctx.keep_models else None
    if kept:
        result["model_version"] = kept  # evaluated before it was saved: the classifier still named the baseline
    return {
        "key": cell.key, "model_version": kept, "configuration": cell.configuration.to_dict(), "top_p": cell.top_p, "seed": cell.seed,
        "anchors": [a.id for a in anchors],
        "pairs": [{"anchor_id": a.id, "example_id": z.id, "influence": influence[(a.id, z.id)], "score": s}
                  for (a, z), s in zip(pairs, scores)],
        "scoring": scoring, "fine_tuning_set": {"size": len(fts.examples), "stats": fts.stats},
        "train": trained.to_dict(), "evaluation": result,
        "seconds": {k: round(v, 2) for k, v in timings.items()} | {"total": round(time.perf_counter() - t0, 2)},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def keep_model(ctx: AblationContext, cell: Cell, clf) -> str:
    """Save a cell's fine-tuned model as a version of the run's registry (``<run_dir>/models/<version>``, not served;
    ``kind`` ablation, its parent the baseline, the cell's key and folder in its ``hildif.json``); returns the
    version (``hildif evaluate --model <run_dir>/models/<version>`` evaluates it again)."""
    from hildif.model.registry import ModelRegistry

    return ModelRegistry(ctx.cfg.run.run_dir).save(clf, {
        "kind": "ablation", "parent": ctx.baseline.version, "cell": cell.key, "experiment": ctx.out.name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S")}, make_current=False)


def cell_progress(running: str | None, last: dict[str, Any] | None) -> str:
    """The progress bar's note: the cell running now and the last finished cell's HANS and MNLI accuracy."""
    parts = [running] if running else []
    if last:
        ev = last.get("evaluation") or {}
        acc = lambda name: (ev.get(name) or {}).get("accuracy")  # noqa: E731
        parts.append(f"last {last['key']}: HANS {acc('hans')}, MNLI {acc('mnli')}")
    return "; ".join(parts)


def resolve_baseline(cfg: HildifConfig, baseline: str | Path | None) -> Path:
    """The given checkpoint directory, or the run's current model (``<run_dir>/models/current.json``)."""
    if baseline:
        path = Path(baseline)
        if not path.is_dir():
            raise AblationError(f"baseline {path} is not a directory (give a model checkpoint folder)")
        return path
    from hildif.model.registry import ModelRegistry

    current = ModelRegistry(cfg.run.run_dir).current_path()
    if current is None:
        raise AblationError(f"no baseline: {Path(cfg.run.run_dir) / 'models' / 'current.json'} does not exist; "
                            "train one with `hildif train` or pass --baseline DIR")
    return current


def run_ablation(
    cfg: HildifConfig,
    settings: AblationSettings | None = None,
    *,
    out_dir: str | Path | None = None,
    baseline: str | Path | None = None,
    progress: bool = True,
    keep_models: bool = False,
) -> AblationRun:
    """Run (or resume) the ablation and write its report. Returns what was computed and where the files are.

    ``out_dir`` defaults to ``<run_dir>/experiments/ablation``; ``baseline`` to the run's current model.
    ``keep_models``: save each cell computed now as a model version of the run (:func:`keep_model`; the cell's
    record names it, ``model_version``); otherwise a cell's model is dropped once evaluated.
    """
    from hildif.experiments.ablation_report import summarize, write_ablation_report
    from hildif.rounds.finetune import evaluate_model

    start = time.perf_counter()
    settings = settings or AblationSettings()
    out = Path(out_dir) if out_dir else cfg.run_path("experiments", "ablation")
    baseline_path = resolve_baseline(cfg, baseline)
    ctx = AblationContext(cfg, settings, baseline_path, out, progress)
    ctx.keep_models = keep_models
    shaping = {
        "baseline": ctx.baseline.version, "settings": settings.shaping(),
        **{name: dataclasses.asdict(getattr(cfg, name)) for name in ("data", "model", "eval", "influence", "feedback")},
        # the promotion gate decides what a sync serves, not what a cell measures
        "finetune": {k: v for k, v in dataclasses.asdict(cfg.finetune).items() if not k.startswith("gate_")},
    }
    digest = _digest(shaping)
    manifest = dict(zip(MANIFEST_FIELDS, (digest, str(baseline_path), max(settings.top_ps))))
    write_json_atomic(out / "manifest.json", {**manifest, **shaping})

    base_file = out / "baseline.json"
    base = json.loads(base_file.read_text()) if base_file.exists() else None
    eval_digest = _digest({"baseline": ctx.baseline.version, "eval": dataclasses.asdict(cfg.eval),
                           "data": dataclasses.asdict(cfg.data), "model": dataclasses.asdict(cfg.model)})
    if base is None or base.get("digest") != eval_digest:
        base = {"digest": eval_digest, "version": ctx.baseline.version,
                "evaluation": evaluate_model(ctx.baseline, cfg, (ctx.hans, ctx.mnli), progress=progress)}
        write_json_atomic(base_file, base)

    computed, reused, done = [], [], []
    recomputed: dict[str, list[str]] = {}
    cells = cells_of(settings)
    bar = tqdm(cells, desc="ablation", unit="cell", disable=not progress)
    for cell in bar:
        path = out / "cells" / f"{cell.key}.json"
        if path.exists():
            try:
                previous = json.loads(path.read_text())
            except ValueError:
                previous = None
            if previous and is_current(previous, digest):
                reused.append(cell.key)
                done.append(previous)
                continue
            recomputed[cell.key] = (settings_changes(recorded_shaping(previous), shaping) if previous
                                    else ["the recorded cell could not be read"])
            log.info("cell %s: recorded with other settings (%s); recomputing", cell.key,
                     "; ".join(recomputed[cell.key][:6]) + (" ..." if len(recomputed[cell.key]) > 6 else ""))
        bar.set_postfix_str(cell_progress(cell.key, done[-1] if done else None))
        record = {"digest": digest, "settings": shaping, **run_cell(ctx, cell)}
        write_json_atomic(path, record)
        computed.append(cell.key)
        done.append(record)
        bar.set_postfix_str(cell_progress(None, record))
        ev = record["evaluation"]
        log.info("cell %s done in %.0f s: MNLI %s, HANS %s", cell.key, record["seconds"]["total"],
                 (ev.get("mnli") or {}).get("accuracy"), (ev.get("hans") or {}).get("accuracy"))
    bar.close()
    summary = summarize(done, base, settings)
    summary["wall_seconds_this_run"] = round(time.perf_counter() - start, 1)
    summary["cells_computed"], summary["cells_reused"] = computed, reused
    summary["cells_recomputed"] = recomputed  # cell -> what differed from the settings it had been recorded with
    paths = write_ablation_report(summary, out)
    return AblationRun(out, computed, reused, summary, paths, time.perf_counter() - start)


__all__ = ["AblationContext", "AblationError", "AblationRun", "AblationSettings", "BY_KEY", "CONFIGURATIONS", "Cell",
           "Configuration", "cell_scores", "cells_of", "flatten_settings", "is_current", "keep_model", "manifest_digest",
           "parse_configurations", "recorded_shaping", "resolve_baseline", "run_ablation", "run_cell",
           "settings_changes"]
