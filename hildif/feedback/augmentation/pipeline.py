"""The paper's augmentation g(z, s): ``copies(s)`` label-preserving variants of each rated influential example.

Copies per score (:func:`copies_for_score`): ``round(copies_per_point * s)`` (paper: 10 x s), or a table
``copies_table[s - 1]`` (linear in between for fractional aggregated scores); scores below ``score_threshold``
(and ``None``, a pending pair) give none.

Methods (``cfg.augmenters``): each entry is a chain of method names joined by ``>`` and applied in order, e.g.
``"synonym"``, ``"backtranslation"``, ``"backtranslation>synonym"``. Copy attempts cycle through the entries. A
deterministic chain (back translation alone) is tried once per example, since every later try would give the same
text. Every attempt has its own seed, derived from ``cfg.seed``, the example id, its occurrence and the attempt
number, so results do not depend on batch order. Copies identical to the original or to an earlier copy (after
whitespace and case folding) are dropped and counted, as are round trips rejected by the quality filter and, when
``cfg.similarity_filter`` is set, copies whose similarity to the original under ``encoder`` is below it. Attempts
stop at ``attempts_factor`` x the requested number.

Filling (``cfg.fill_augmenters``, e.g. ``["swap", "delete"]``): an example still short of its copies then gets up
to ``attempts_factor`` x the missing number of attempts with word-level EDA operations on the premise
(:mod:`hildif.feedback.augmentation.eda`: random swap, deletion, insertion, never touching negations or the words
the hypothesis shares), so the score keeps its weight instead of silently getting fewer copies. What remains short
is reported in ``stats``: ``per_score`` (items, requested, produced, missing), ``by_augmenter``, ``fill`` and the
``shortfall`` list.

Single-text examples (``hypothesis`` None, a team's own task) go through the same methods with an empty second text,
and their copies are single texts again.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

from tqdm.auto import tqdm

from hildif.config import ConfigError, FeedbackConfig
from hildif.data.example import Example
from hildif.feedback.augmentation.seeding import derive_seed
from hildif.feedback.augmentation.similarity import copy_similarity


@dataclass
class AugmentResult:
    """``examples``: the fine-tuning set (originals first when included, then their copies, in input order).

    ``stats``: counts (requested, produced, originals, dropped by reason, per score, per augmenter, shortfalls).
    """

    examples: list[Example]
    stats: dict[str, Any] = field(default_factory=dict)


def copies_for_score(score: float | None, cfg: FeedbackConfig) -> int:
    """Number of copies g(z, s) makes for a score ``s`` in 1..5 (see module docstring)."""
    if score is None or (isinstance(score, float) and math.isnan(score)) or score < cfg.score_threshold:
        return 0
    if not 1 <= score <= 5:
        raise ValueError(f"score {score!r} outside 1..5")
    table = getattr(cfg, "copies_table", None)
    if table:
        if len(table) != 5:
            raise ConfigError(f"feedback.copies_table needs 5 entries (scores 1..5), got {len(table)}")
        low = int(math.floor(score))
        high = min(low + 1, 5)
        value = table[low - 1] + (score - low) * (table[high - 1] - table[low - 1])
    else:
        value = cfg.copies_per_point * score
    return int(math.floor(value + 0.5))


def _make_method(name: str, cfg: FeedbackConfig):
    if name == "synonym":
        from hildif.feedback.augmentation.synonym import SynonymAugmenter

        return SynonymAugmenter(aug_p=getattr(cfg, "synonym_p", 0.3))
    if name == "backtranslation":
        from hildif.feedback.augmentation import backtranslation as bt

        dirs = list(getattr(cfg, "marian_model_dirs", []) or [])
        if dirs:
            if len(dirs) != 2:
                raise ConfigError("feedback.marian_model_dirs needs two folders: English->pivot, pivot->English")
            return bt.MarianBackTranslator(dirs[0], dirs[1])
        return bt.ApertiumBackTranslator(getattr(cfg, "apertium_pair", "eng-spa"))
    if name in EDA_OPERATIONS:
        from hildif.feedback.augmentation.eda import EdaAugmenter

        return EdaAugmenter(name, aug_p=getattr(cfg, "eda_p", 0.1))
    raise ConfigError(f"feedback.augmenters: unknown method {name!r} "
                     f"(known: synonym, backtranslation, {', '.join(EDA_OPERATIONS)})")


EDA_OPERATIONS = ("swap", "delete", "insert")


def build_chains(cfg: FeedbackConfig, entries: Sequence[str] | None = None,
                 setting: str = "feedback.augmenters") -> list[tuple[str, list[Any]]]:
    """``[(chain name, [method objects])]`` for ``entries`` (default ``cfg.augmenters``); raises
    ``ResourceMissingError`` early."""
    entries = cfg.augmenters if entries is None else entries
    if not entries:
        raise ConfigError(f"{setting} is empty")
    methods: dict[str, Any] = {}
    chains = []
    for entry in entries:
        names = [n.strip() for n in entry.split(">") if n.strip()]
        if not names:
            raise ConfigError(f"{setting}: empty entry {entry!r}")
        for n in names:
            if n not in methods:
                methods[n] = _make_method(n, cfg)
        chains.append((">".join(names), [methods[n] for n in names]))
    return chains


def build_fill_chains(cfg: FeedbackConfig) -> list[tuple[str, list[Any]]]:
    """The chains of ``cfg.fill_augmenters`` (EDA operations, see :mod:`hildif.feedback.augmentation.eda`), tried
    for the copies the main augmenters could not make distinct; ``[]`` when the setting is empty."""
    entries = list(getattr(cfg, "fill_augmenters", None) or [])
    return build_chains(cfg, entries, "feedback.fill_augmenters") if entries else []


def _key(premise: str, hypothesis: str | None) -> tuple[str, str]:
    return " ".join(premise.split()).casefold(), " ".join((hypothesis or "").split()).casefold()


def _texts(example: Example) -> tuple[str, str]:
    """What the augmenters get: the pair, or a single text with an empty second text (they leave it empty)."""
    return example.premise, "" if example.hypothesis is None else example.hypothesis


@dataclass
class _Item:
    index: int
    example: Example
    score: float
    target: int
    occurrence: int
    attempts: int = 0
    done_deterministic: set[str] = field(default_factory=set)
    copies: list[Example] = field(default_factory=list)
    tries: int = 0  # attempts in the current phase
    limit: int = 0  # attempts allowed in the current phase


def _run_chain(steps: list[Any], pairs: list[tuple[str, str]], seeds: list[int]) -> list[tuple[str, str] | None]:
    results: list[tuple[str, str] | None] = list(pairs)
    for depth, step in enumerate(steps):
        live = [i for i, r in enumerate(results) if r is not None]
        out = step.augment_batch([results[i] for i in live], [derive_seed(seeds[i], depth) for i in live])
        for i, r in zip(live, out):
            results[i] = r
    return results


def _phase(work: list[_Item], chains: list[tuple[str, list[Any]]], *, budget, tag: str | None, cfg: FeedbackConfig,
           encoder: Any, seen: dict[str, set[tuple[str, str]]], dropped: Counter, by_augmenter: Counter, bar) -> None:
    """Attempt copies for ``work`` with ``chains`` until each item has its target or ``budget(item)`` attempts
    (counted per phase); adds the distinct copies to ``item.copies``. ``tag`` (None for the first phase) enters
    the seeds, so a later phase's attempts differ from the first's."""
    deterministic = {name: all(getattr(s, "deterministic", False) for s in steps) for name, steps in chains}
    for it in work:
        it.tries, it.limit, it.done_deterministic = 0, budget(it), set()
    while True:
        jobs: dict[str, list[tuple[_Item, int]]] = defaultdict(list)
        for it in work:
            need = it.target - len(it.copies)
            while need > 0 and it.tries < it.limit:
                active = [n for n, _ in chains if n not in it.done_deterministic]
                if not active:
                    break
                name = active[it.tries % len(active)]
                if deterministic[name]:
                    it.done_deterministic.add(name)
                jobs[name].append((it, it.tries))
                it.tries += 1
                it.attempts += 1
                need -= 1
        if not jobs:
            break
        candidates = []
        for name, steps in chains:
            batch = jobs.get(name, [])
            if not batch:
                continue
            seeds = [derive_seed(cfg.seed, it.example.id, it.occurrence, a) if tag is None else
                     derive_seed(cfg.seed, it.example.id, it.occurrence, tag, a) for it, a in batch]
            outs = _run_chain(steps, [_texts(it.example) for it, _ in batch], seeds)
            # a single-text example's copy is a single text again (its empty second text dropped)
            outs = [out if out is None or it.example.hypothesis is not None else (out[0], None)
                    for (it, _), out in zip(batch, outs)]
            candidates += [(it, a, name, seed, out) for (it, a), seed, out in zip(batch, seeds, outs)]
        candidates.sort(key=lambda c: (c[0].index, c[1]))
        fresh = []
        for it, a, name, seed, out in candidates:
            if out is None:
                dropped["rejected"] += 1
                continue
            key = _key(*out)
            if key == _key(it.example.premise, it.example.hypothesis):
                dropped["identical"] += 1
            elif key in seen[it.example.id]:
                dropped["duplicate"] += 1
            else:
                seen[it.example.id].add(key)
                fresh.append((it, a, name, seed, out))
        sims = [None] * len(fresh)
        if cfg.similarity_filter is not None and fresh:
            copies = [Example(f"c{i}", p, h, it.example.label) for i, (it, _, _, _, (p, h)) in enumerate(fresh)]
            sims = [float(s) for s in copy_similarity([c[0].example for c in fresh], copies, encoder)]
        for (it, a, name, seed, (p, h)), sim in zip(fresh, sims):
            if sim is not None and sim < cfg.similarity_filter:
                dropped["dissimilar"] += 1
                continue
            if len(it.copies) >= it.target:
                continue
            meta = dict(it.example.metadata)
            meta.update(augmented_from=it.example.id, augmenter=name, score=it.score, seed=seed, attempt=a)
            if tag is not None:
                meta["phase"] = tag
            if sim is not None:
                meta["similarity"] = sim
            it.copies.append(Example("", p, h, it.example.label, meta))
            by_augmenter[name] += 1
            bar.update(1)


def augment(
    scored: Sequence[tuple[Example, float | None]],
    cfg: FeedbackConfig,
    encoder: Any = None,
    *,
    include_originals: bool = True,
    attempts_factor: int = 3,
    chains: list[tuple[str, list[Any]]] | None = None,
    fill_chains: list[tuple[str, list[Any]]] | None = None,
    progress: bool = False,
) -> AugmentResult:
    """g(z, s) over rated influential examples.

    Args:
        scored: ``(example, score)`` pairs; the score is the aggregated rating (1..5, may be fractional) or None.
        cfg: the ``feedback`` section (copies_per_point, score_threshold, augmenters, similarity_filter, seed).
        encoder: needed when ``cfg.similarity_filter`` is set; see :mod:`hildif.feedback.augmentation.similarity`.
        include_originals: put each example that gets copies into the output too (as HILDIF's code does).
        chains: prebuilt :func:`build_chains` (reuse across calls to keep the WordNet and translation caches).
        fill_chains: prebuilt :func:`build_fill_chains` (built on demand when an item falls short).
    Returns:
        :class:`AugmentResult`; copies keep the label, get ids ``<id>~aug<k>`` and metadata ``augmented_from``,
        ``augmenter``, ``score``, ``seed`` (and ``similarity`` when filtered).
    """
    if cfg.similarity_filter is not None and encoder is None:
        raise ValueError("feedback.similarity_filter is set but no encoder was given to augment()")
    occurrences: Counter[str] = Counter()
    items = []
    for i, (example, score) in enumerate(scored):
        items.append(_Item(i, example, score, copies_for_score(score, cfg), occurrences[example.id]))
        occurrences[example.id] += 1
    work = [it for it in items if it.target > 0]
    chains = chains if chains is not None else (build_chains(cfg) if work else [])
    seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for it in work:
        seen[it.example.id].add(_key(it.example.premise, it.example.hypothesis))
    dropped: Counter[str] = Counter()
    by_augmenter: Counter[str] = Counter()
    bar = tqdm(total=sum(it.target for it in work), desc="augment", disable=not progress)
    run = dict(cfg=cfg, encoder=encoder, seen=seen, dropped=dropped, by_augmenter=by_augmenter, bar=bar)
    _phase(work, chains, budget=lambda it: attempts_factor * it.target, tag=None, **run)
    short = [it for it in work if len(it.copies) < it.target]
    fill_names = list(getattr(cfg, "fill_augmenters", None) or [])
    filled = 0
    if short and fill_names:
        fill = fill_chains if fill_chains is not None else build_fill_chains(cfg)
        before = sum(len(it.copies) for it in short)
        _phase(short, fill, budget=lambda it: attempts_factor * (it.target - len(it.copies)), tag="fill", **run)
        filled = sum(len(it.copies) for it in short) - before
    bar.close()

    examples: list[Example] = []
    counter: Counter[str] = Counter()
    per_score: dict[str, Counter[str]] = defaultdict(Counter)
    for it in items:
        bucket = per_score[str(it.score)]
        bucket["items"] += 1
        bucket["requested"] += it.target
        bucket["produced"] += len(it.copies)
        bucket["missing"] += it.target - len(it.copies)
        if it.target > 0 and include_originals:
            examples.append(it.example)
        for c in it.copies:
            examples.append(Example(f"{it.example.id}~aug{counter[it.example.id]}", c.premise, c.hypothesis,
                                    c.label, c.metadata))
            counter[it.example.id] += 1
    stats = {
        "items": len(items),
        "items_with_copies": sum(1 for it in items if it.copies),
        "requested": sum(it.target for it in items),
        "produced": sum(len(it.copies) for it in items),
        "originals": sum(1 for it in items if it.target > 0) if include_originals else 0,
        "attempts": sum(it.attempts for it in items),
        "dropped": {k: dropped[k] for k in ("identical", "duplicate", "rejected", "dissimilar")},
        "by_augmenter": dict(by_augmenter),
        "fill": {"augmenters": fill_names, "produced": filled},
        "per_score": {k: dict(v) for k, v in per_score.items()},
        "shortfall": [
            {"id": it.example.id, "occurrence": it.occurrence, "missing": it.target - len(it.copies)}
            for it in items
            if len(it.copies) < it.target
        ],
    }
    return AugmentResult(examples, stats)
