"""The sentences a round builds construction pairs from: what the people confirmed, and its neighbourhood.

A round's rated examples are too few to carry structure by themselves (ten per anchor). Their neighbourhood in the
training pool, in the feature space FastIF's kNN prefilter searches (:class:`hildif.influence.knn.FeatureIndex`),
extends what the raters confirmed: for a rated example with aggregated score ``s >= min_score``, its
``per_point x s`` nearest training rows. The control (``random``) draws as many rows from the pool at random, so a
measurement can tell what the people's judgement adds over the same volume of any rows.
"""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np

from hildif.data.example import Example
from hildif.data.splits import text_key

SOURCE_MODES = ("neighbourhood", "rated", "random")


def confirmed(scored: Sequence[tuple[Example, float | None]], min_score: float) -> list[Example]:
    """The rated examples whose aggregated score is at least ``min_score``, each once, in order."""
    seen: set[str] = set()
    out = []
    for z, s in scored:
        if s is not None and s >= min_score and z.id not in seen:
            seen.add(z.id)
            out.append(z)
    return out


def _without_rated(rows: Sequence[Example], scored: Sequence[tuple[Example, float | None]]) -> list[Example]:
    """``rows`` less the rated examples (by id or by text), in order."""
    rated_ids = {z.id for z, _ in scored}
    rated_text = {text_key(z) for z, _ in scored}
    return [e for e in rows if e.id not in rated_ids and text_key(e) not in rated_text]


def neighbourhood(classifier, index, pool: Sequence[Example], scored: Sequence[tuple[Example, float | None]], *,
                  per_point: int, min_score: float, batch_size: int = 128) -> list[Example]:
    """The ``per_point x s`` nearest pool rows of each confirmed example (score ``s >= min_score``), the rated
    examples themselves excluded, each row once, in pool order.

    Args:
        classifier: the model whose features ``index`` holds (the round's base model).
        index: the :class:`~hildif.influence.knn.FeatureIndex` over ``pool`` (the kNN prefilter's).
        pool: the training examples, in the index's order (row i of the index is ``pool[i]``).
    """
    if index.size != len(pool):
        raise ValueError(f"the kNN index holds {index.size} rows but the pool has {len(pool)}")
    chosen = confirmed(scored, min_score)
    if not chosen or per_point <= 0:
        return []
    score = {}
    for z, s in scored:
        if s is not None and z.id not in score:
            score[z.id] = s
    feats = np.asarray(classifier.features(chosen, batch_size=batch_size), dtype=np.float32)
    k_max = min(len(pool), int(per_point * max(score[z.id] for z in chosen)) + 1)
    _, found = index.search(feats, k_max)
    rows: set[int] = set()
    for z, ids in zip(chosen, found):
        k = int(per_point * score[z.id]) + 1  # + 1: the example itself is usually its own nearest row
        rows.update(int(i) for i in ids[:k] if i >= 0)
    return _without_rated([pool[i] for i in sorted(rows)], scored)


def random_rows(pool: Sequence[Example], n: int, scored: Sequence[tuple[Example, float | None]], seed: int
                ) -> list[Example]:
    """``n`` pool rows drawn with ``seed``, the rated examples excluded (the control of :func:`neighbourhood`)."""
    available = _without_rated(pool, scored)
    return random.Random(seed).sample(available, min(n, len(available)))


def construction_sources(mode: str, scored: Sequence[tuple[Example, float | None]], pool: Sequence[Example], *,
                         per_point: int, min_score: float, seed: int, classifier=None, index=None) -> list[Example]:
    """The source sentences of a round's construction pairs (``feedback.construction_sources``).

    ``neighbourhood``: the confirmed examples (score >= ``min_score``) and their :func:`neighbourhood`;
    ``rated``: the confirmed examples alone; ``random``: as many pool rows as ``neighbourhood`` would give, drawn
    with ``seed`` (the control: the same volume without the people's judgement). ``classifier`` and ``index`` (the
    kNN index over ``pool``) are needed by ``neighbourhood`` and ``random``.
    """
    if mode not in SOURCE_MODES:
        from hildif.config import ConfigError

        raise ConfigError(f"feedback.construction_sources={mode!r}: expected one of {', '.join(SOURCE_MODES)}")
    rated = confirmed(scored, min_score)
    if mode == "rated":
        return rated
    if classifier is None or index is None:
        raise ValueError(f"construction sources {mode!r} need the base model and its kNN index over the pool")
    near = neighbourhood(classifier, index, pool, scored, per_point=per_point, min_score=min_score)
    if mode == "neighbourhood":
        return rated + near
    return random_rows(pool, len(rated) + len(near), scored, seed)


def round_construction_sources(cfg, scored: Sequence[tuple[Example, float | None]], pool: Sequence[Example],
                               classifier, *, seed: int, progress: bool = False) -> list[Example]:
    """:func:`construction_sources` with the round's settings (``cfg.feedback``): the kNN index over ``pool`` of
    ``classifier`` (the round's base model) read from the influence cache (built when missing), for the sync and
    the ablation alike. ``classifier`` may be None for ``construction_sources = rated``."""
    from hildif.influence.knn import FeatureIndex, index_cache_dir

    fb = cfg.feedback
    index = None
    if fb.construction_sources != "rated":
        index = FeatureIndex.build_or_load(classifier, pool, cfg.influence.index, cache_dir=index_cache_dir(cfg),
                                           progress=progress)
    return construction_sources(fb.construction_sources, scored, pool, per_point=fb.construction_neighbours,
                                min_score=fb.construction_min_score, seed=seed, classifier=classifier, index=index)


__all__ = ["SOURCE_MODES", "confirmed", "construction_sources", "neighbourhood", "random_rows",
           "round_construction_sources"]
