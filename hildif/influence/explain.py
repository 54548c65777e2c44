"""EXPLAIN of Algorithm 1: for each anchor, the top-p training examples by influence (FastIF: kNN + s_test).

Sign: I(z, x) = -grad L(x)^T (H + lambda I)^-1 grad L(z); the most NEGATIVE scores are the most helpful
(upweighting them lowers the anchor's loss) and come first; ``harmful=True`` ranks the most positive first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from hildif.config import ConfigError, InfluenceConfig
from hildif.data.example import Example
from hildif.influence.engine import InfluenceEngine
from hildif.influence.knn import FeatureIndex
from hildif.model.classifier import Classifier

QUERIES = ("per_anchor", "mean")


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
) -> list[AnchorExplanation]:
    """FastIF for each anchor: kNN candidates (``cfg.k``), s_test (``cfg.solver``), scores, top ``cfg.top_p``.

    Args:
        classifier: the model to explain (eval mode and eager attention are set while computing, then restored).
        train_examples: the training set it was trained on.
        anchors: examples with gold labels (the loss is taken at the gold label).
        cache_dir: where the FAISS index is cached (None: not cached).
        harmful: rank the most positive (harmful) scores first instead of the most negative (helpful).
        engine: reuse an engine (and its prefix cache) built for the same model and training set.
    Returns:
        one :class:`AnchorExplanation` per anchor, in order.
    """
    if not anchors:
        return []
    engine = engine or InfluenceEngine(classifier, train_examples, cfg, progress=progress)
    # a fresh index gets its features from the pass that also computes every example's frozen prefix
    index = FeatureIndex.build_or_load(classifier, train_examples, cfg.index, cache_dir, progress=progress,
                                       features=engine.pool_features)
    candidates = candidate_indices(classifier, index, anchors, cfg.k, cfg.query)
    probs = classifier.predict(anchors)
    out: list[AnchorExplanation] = []
    for anchor, cand, p in tqdm(list(zip(anchors, candidates, probs)), desc="explain", disable=not progress,
                                unit="anchor"):
        start = time.perf_counter()
        v = engine.anchor_gradient(anchor)
        solved = engine.s_test(v)
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
            "index": {"kind": index.kind, "key": index.key, "from_cache": index.from_cache},
            "solver": solved.summary(),
            "seconds": time.perf_counter() - start,
        }))
    return out
