"""EXPLAIN of Algorithm 1: for each anchor, the top-p training examples by influence (FastIF: kNN + s_test, or
the whole pool through the gradient store with an exact re-ranking: ``influence.candidates``).

Sign: I(z, x) = -grad L(x)^T (H + lambda I)^-1 grad L(z); the most NEGATIVE scores are the most helpful
(upweighting them lowers the anchor's loss) and come first; ``harmful=True`` ranks the most positive first.

Under torchrun (:mod:`hildif.distributed`, every rank calling :func:`explain` alike): the pass over the training
pool is sharded and its features gathered; rank 0 builds (or reads) the FAISS index, finds the candidates and
computes s_test once, which it broadcasts; each rank scores the candidates whose frozen prefix it holds, and the
scores are gathered, so every rank ranks the same full score vector and returns the single-process result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hildif import distributed
from hildif.config import ConfigError, InfluenceConfig
from hildif.data.example import Example
from hildif.influence.engine import InfluenceEngine
from hildif.influence.knn import FeatureIndex
from hildif.influence.store import GradientStore
from hildif.model.classifier import Classifier

QUERIES = ("per_anchor", "mean")
CANDIDATES = ("knn", "store")


@dataclass
class Influential:
    """One training example with its influence on an anchor; ``rank`` 1 = shown first."""

    example: Example
    score: float
    rank: int

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "score": self.score, "example": self.example.to_dict()}


@dataclass
class AnchorExplanation:
    """An anchor, the model's probabilities for it (index 1 = entailment) and its influential training examples.

    ``details``: candidates scored, solver summary (with the LiSSA trace), seconds, sign convention.
    """

    anchor: Example
    probs: list[float]
    influential: list[Influential]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probs))

    def to_dict(self) -> dict[str, Any]:
        return {
            "anchor": self.anchor.to_dict(),
            "probs": list(self.probs),
            "predicted": self.predicted,
            "influential": [i.to_dict() for i in self.influential],
            "details": self.details,
        }


def candidate_indices(
    classifier: Classifier, index: FeatureIndex, anchors: Sequence[Example], k: int, query: str
) -> list[np.ndarray]:
    """Training indices of each anchor's k nearest neighbours in feature space (``mean``: one shared query)."""
    if query not in QUERIES:
        raise ConfigError(f"influence.query={query!r}: expected one of {QUERIES}")
    feats = classifier.features(anchors)
    if query == "mean":
        _, idx = index.search(feats.mean(0, keepdims=True), k)
        return [idx[0][idx[0] >= 0]] * len(anchors)
    _, idx = index.search(feats, k)
    return [row[row >= 0] for row in idx]


def prefix_dir(cfg: InfluenceConfig, cache_dir: str | Path | None) -> str | Path | None:
    """Where an engine caches the pool's frozen prefixes: ``cache_dir`` when ``cfg.prefix_cache`` is on."""
    return cache_dir if cfg.prefix_cache and cache_dir is not None else None


def rank(scores: np.ndarray, top_p: int, harmful: bool = False) -> np.ndarray:
    """Positions of the top ``top_p`` scores: most negative first (helpful), or most positive first (harmful).
    Ties keep candidate order (stable sort)."""
    order = np.argsort(-scores if harmful else scores, kind="stable")
    return order[:top_p]


def explain(
    classifier: Classifier,
    train_examples: Sequence[Example],
    anchors: Sequence[Example],
    cfg: InfluenceConfig,
    *,
    cache_dir: str | Path | None = None,
    harmful: bool = False,
    progress: bool = True,
    engine: InfluenceEngine | None = None,
    store_dir: str | Path | None = None,
) -> list[AnchorExplanation]:
    """FastIF for each anchor: kNN candidates (``cfg.k``), s_test (``cfg.solver``), scores, top ``cfg.top_p``.

    Args:
        classifier: the model to explain (eval mode and eager attention are set while computing, then restored).
        train_examples: the training set it was trained on.
        anchors: examples with gold labels (the loss is taken at the gold label).
        cache_dir: where the FAISS index is cached (None: not cached).
        harmful: rank the most positive (harmful) scores first instead of the most negative (helpful).
        engine: reuse an engine (and its prefix cache) built for the same model and training set.
        store_dir: where the gradient store is cached (``candidates = store``; default ``cache_dir``).
            With ``cfg.prefix_cache`` the pool's frozen prefixes are cached in ``cache_dir`` too.
    Returns:
        one :class:`AnchorExplanation` per anchor, in order.
    """
    if cfg.candidates not in CANDIDATES:
        raise ConfigError(f"influence.candidates={cfg.candidates!r}: expected one of {CANDIDATES}")
    if not anchors:
        return []
    sharded = distributed.active()
    progress = progress and distributed.is_main()
    engine = engine or InfluenceEngine(classifier, train_examples, cfg, progress=progress,
                                       prefix_dir=prefix_dir(cfg, cache_dir))
    if cfg.candidates == "store":
        if sharded:
            raise ConfigError("influence.candidates=store runs in one process (not under torchrun); use knn there")
        return _explain_store(classifier, train_examples, anchors, cfg, engine, cache_dir, store_dir or cache_dir,
                              harmful, progress)
    if sharded:
        index_info, candidates = _sharded_candidates(classifier, engine, anchors, cfg, cache_dir, progress)
    else:
        # a fresh index gets its features from the pass that also computes every example's frozen prefix
        index = FeatureIndex.build_or_load(classifier, train_examples, cfg.index, cache_dir, progress=progress,
                                           features=engine.pool_features, shards=cfg.index_shards)
        candidates = candidate_indices(classifier, index, anchors, cfg.k, cfg.query)
        index_info = {"kind": index.kind, "key": index.key, "from_cache": index.from_cache}
    probs = classifier.predict(anchors)
    out: list[AnchorExplanation] = []
    for anchor, cand, p in tqdm(list(zip(anchors, candidates, probs)), desc="explain", disable=not progress,
                                unit="anchor"):
        start = time.perf_counter()
        if sharded:
            s_test, summary = _shared_s_test(engine, anchor)
            mine = engine.owned_positions(cand)
            scores = distributed.gather_by_index(mine, engine.influence(s_test, cand[mine]), len(cand))
        else:
            solved = engine.s_test(engine.anchor_gradient(anchor))
            summary = solved.summary()
            scores = engine.influence(solved.s_test, cand)
        top = rank(scores, cfg.top_p, harmful)
        influential = [
            Influential(train_examples[int(cand[j])], float(scores[j]), r + 1) for r, j in enumerate(top)
        ]
        out.append(AnchorExplanation(anchor, [float(x) for x in p], influential, {
            "candidates": int(len(cand)),
            "ranking": "harmful" if harmful else "helpful",
            "sign": "I(z,x) = -grad L(x)^T (H + damping*scale*I)^-1 grad L(z); negative = helpful",
            "params": cfg.params,
            "num_params": engine.objective.size,
            "index": index_info,
            "solver": summary,
            "seconds": time.perf_counter() - start,
        }))
    return out


def _sharded_candidates(
    classifier: Classifier, engine: InfluenceEngine, anchors: Sequence[Example], cfg: InfluenceConfig,
    cache_dir: str | Path | None, progress: bool,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Collective: the sharded pool pass (every rank keeps its shard's prefixes; features gathered when the index
    must be built), then rank 0 builds or reads the index and broadcasts each anchor's candidates."""
    train = engine.train
    cached = None
    if distributed.is_main():
        cached = FeatureIndex.is_cached(classifier, train, cfg.index, cache_dir)
    cached = distributed.broadcast_object(cached)
    feats = engine.pool_features(gather=not cached)
    if feats is None and not cached:  # no prefix pass (layout or memory): the features alone, sharded
        from hildif.model.evaluation import sharded_rows

        feats = sharded_rows(classifier, train, classifier.features, batch_size=128)
    if cfg.solver in ("cg", "exact"):  # rank 0 solves with the very prefixes of the Hessian sample one process uses
        engine.share_items(engine.hessian_sample())
    found = None
    if distributed.is_main():
        index = FeatureIndex.build_or_load(classifier, train, cfg.index, cache_dir, progress=progress,
                                           features=(lambda: feats) if feats is not None else None,
                                           shards=cfg.index_shards)
        found = ({"kind": index.kind, "key": index.key, "from_cache": index.from_cache},
                 candidate_indices(classifier, index, anchors, cfg.k, cfg.query))
    return distributed.broadcast_object(found)


def _shared_s_test(engine: InfluenceEngine, anchor: Example) -> tuple[torch.Tensor, dict[str, Any]]:
    """Collective: s_test of ``anchor`` computed once, on rank 0, and broadcast with its solver summary."""
    theta = engine.objective.theta
    if distributed.is_main():
        solved = engine.s_test(engine.anchor_gradient(anchor))
        s_test, summary = solved.s_test.to(theta.dtype), solved.summary()
    else:
        s_test, summary = torch.empty_like(theta), None
    return distributed.broadcast_tensor(s_test), distributed.broadcast_object(summary)


SIGN = "I(z,x) = -grad L(x)^T (H + damping*scale*I)^-1 grad L(z); negative = helpful"


def store_ranking(
    engine: InfluenceEngine, store: GradientStore, anchor: Example, cfg: InfluenceConfig, harmful: bool = False
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One anchor through the gradient store: (training indices, their scores, details), best first.

    With ``cfg.store_rerank`` > 0 the store scores the whole pool with the projected s_test and the engine re-scores
    its best ``store_rerank`` exactly (the scores returned are the engine's); with 0 it scores the pool with v /
    lambda (s_test's value when lambda dominates the Hessian, FastIF's damping) and returns the store's scores.
    """
    v = engine.anchor_gradient(anchor)
    details: dict[str, Any] = {"store": {"dim": store.dim, "key": store.key, "from_cache": store.from_cache,
                                         "scored": store.size, "rerank": int(cfg.store_rerank)}}
    if cfg.store_rerank > 0:
        solved = engine.s_test(v)
        approx = store.influence(solved.s_test)
        cand = rank(approx, cfg.store_rerank, harmful)
        scores = engine.influence(solved.s_test, cand)
        details["solver"] = solved.summary()
        details["candidates"] = int(len(cand))
        details["store"]["exact"] = True
    else:
        approx = store.influence(v / engine.damping_total)
        cand = rank(approx, cfg.top_p, harmful)
        scores = approx[cand]
        details["candidates"] = store.size
        details["store"]["exact"] = False
    top = rank(scores, cfg.top_p, harmful)
    return np.asarray(cand)[top], np.asarray(scores)[top], details


class StoreExplainer:
    """The store mode held open for one model and training set: the gradient store is built (or read) once, then
    each query is one anchor gradient and one pass over the store (plus the exact re-ranking of its best
    ``store_rerank``, when asked for): about a second per anchor without re-ranking.

    Used by :func:`explain` (``influence.candidates = store``) and by a front end answering interactive queries
    (:meth:`hildif.service.Service.influential`), which keeps one per served model version.
    """

    def __init__(
        self, classifier: Classifier, train_examples: Sequence[Example], cfg: InfluenceConfig, *,
        index_dir: str | Path | None = None, store_dir: str | Path | None = None, progress: bool = False,
        engine: InfluenceEngine | None = None, keep_prefixes: bool = True,
    ) -> None:
        self.classifier, self.train, self.cfg = classifier, list(train_examples), cfg
        self.engine = engine or InfluenceEngine(classifier, self.train, cfg, progress=progress,
                                                prefix_dir=prefix_dir(cfg, index_dir))
        feats: dict[int, np.ndarray] = {}

        def keep_features(idx, _grads, batch_feats):
            if batch_feats is not None:
                feats.update(zip(idx, batch_feats))

        start = time.perf_counter()
        self.store = GradientStore.build_or_load(self.engine, cfg.store_dim, store_dir, progress=progress,
                                                 on_batch=keep_features)
        if len(feats) == len(self.train) and index_dir is not None:
            # the store's pass gave every example's kNN features: the kNN mode's index costs nothing more
            FeatureIndex.build_or_load(classifier, self.train, cfg.index, index_dir,
                                       features=lambda: np.stack([feats[i] for i in range(len(self.train))]))
        if not keep_prefixes:  # a long-lived explainer needs no pool prefixes (a re-ranking computes its own)
            self.engine.drop_items()
        self.ready_seconds = time.perf_counter() - start

    def explain(
        self, anchors: Sequence[Example], *, harmful: bool = False, top_p: int | None = None,
        rerank: int | None = None, progress: bool = False,
    ) -> list[AnchorExplanation]:
        """Each anchor's top ``top_p`` (default ``cfg.top_p``) through the store, re-ranking the store's best
        ``rerank`` (default ``cfg.store_rerank``; 0: the store's approximate scores, no s_test)."""
        changes = {k: v for k, v in (("top_p", top_p), ("store_rerank", rerank)) if v is not None}
        cfg = replace(self.cfg, **changes) if changes else self.cfg
        if cfg.top_p < 1 or cfg.store_rerank < 0:
            raise ConfigError(f"top_p={cfg.top_p}, store_rerank={cfg.store_rerank}: need top_p >= 1, rerank >= 0")
        if not anchors:
            return []
        probs = self.classifier.predict(anchors)
        out: list[AnchorExplanation] = []
        for anchor, p in tqdm(list(zip(anchors, probs)), desc="explain", disable=not progress, unit="anchor"):
            start = time.perf_counter()
            idx, scores, details = store_ranking(self.engine, self.store, anchor, cfg, harmful)
            influential = [Influential(self.train[int(i)], float(s), r + 1)
                           for r, (i, s) in enumerate(zip(idx, scores))]
            out.append(AnchorExplanation(anchor, [float(x) for x in p], influential, {
                **details,
                "ranking": "harmful" if harmful else "helpful",
                "sign": SIGN,
                "params": cfg.params,
                "num_params": self.engine.objective.size,
                "seconds": time.perf_counter() - start,
            }))
        return out


def _explain_store(classifier, train_examples, anchors, cfg, engine, index_dir, store_dir, harmful, progress):
    explainer = StoreExplainer(classifier, train_examples, cfg, index_dir=index_dir, store_dir=store_dir,
                               progress=progress, engine=engine)
    return explainer.explain(anchors, harmful=harmful, progress=progress)
