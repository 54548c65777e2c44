"""Aggregate several annotators' 1..5 ratings of each (anchor, influential example) pair into one score.

Methods (one class each, chosen by name):

``median`` (default)  the median; with an even count the mean of the two middle values (e.g. 3.5).
``mean``              the arithmetic mean.
``trimmed_mean``      drop the ``k`` lowest and ``k`` highest, ``k = max(1, floor(0.2 n))`` when ``n >= 3``, else
                      ``k = 0``; mean of the rest.
``majority``          the most frequent score; a tie goes to the tied score closest to the median, then to the
                      lower one (fewer copies, the cautious side). ``details.tie`` records it.
``weighted``          weighted mean, annotator weights from leave-one-out agreement: for each annotator ``a``,
                      over the pairs ``a`` rated together with others, ``w_a = 1 - mean|s_a - median(others)| / 4``
                      (1 = always agrees with the rest, 0 = always 4 points away). An annotator with no shared
                      pair gets the mean weight of the others (1 when nobody has one). All weights zero -> mean.

Pairs with fewer than ``min_raters`` counted ratings are ``pending`` (score ``None``, not used). ``spread`` is
max - min of the counted scores; ``spread >= review_spread`` sets ``flagged`` (to review). Each
:class:`AggregatedPair` keeps the counted ratings, the excluded events with reasons, and the deciding method.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from hildif.config import ConfigError
from hildif.feedback.agreement import Agreement, compute_agreement
from hildif.feedback.ratings import NormalizedRatings, PairKey, Rating, normalize


class Median:
    name = "median"

    def __call__(self, ratings: Sequence[Rating]) -> tuple[float, dict[str, Any]]:
        return float(statistics.median(r.score for r in ratings)), {}


class Mean:
    name = "mean"

    def __call__(self, ratings: Sequence[Rating]) -> tuple[float, dict[str, Any]]:
        return float(statistics.fmean(r.score for r in ratings)), {}


class TrimmedMean:
    name = "trimmed_mean"

    def __init__(self, proportion: float = 0.2) -> None:
        self.proportion = proportion

    def __call__(self, ratings: Sequence[Rating]) -> tuple[float, dict[str, Any]]:
        scores = sorted(r.score for r in ratings)
        n = len(scores)
        k = max(1, math.floor(self.proportion * n)) if n >= 3 else 0
        kept = scores[k : n - k]
        return float(statistics.fmean(kept)), {"trimmed_each_side": k}


class Majority:
    name = "majority"

    def __call__(self, ratings: Sequence[Rating]) -> tuple[float, dict[str, Any]]:
        counts = Counter(r.score for r in ratings)
        top = max(counts.values())
        modes = sorted(s for s, c in counts.items() if c == top)
        if len(modes) == 1:
            return float(modes[0]), {"votes": top}
        median = statistics.median(r.score for r in ratings)
        chosen = min(modes, key=lambda s: (abs(s - median), s))
        return float(chosen), {"votes": top, "tie": modes, "tie_break": "closest to median, then lower"}


class Weighted:
    """Needs :meth:`fit` on all counted ratings first (the weights are global, per annotator)."""

    name = "weighted"

    def __init__(self) -> None:
        self.weights: dict[str, float] = {}
        self.overlap: dict[str, int] = {}

    def fit(self, counted: dict[PairKey, list[Rating]]) -> "Weighted":
        errors: dict[str, list[float]] = {}
        annotators = set()
        for ratings in counted.values():
            for r in ratings:
                annotators.add(r.annotator)
                others = [o.score for o in ratings if o.annotator != r.annotator]
                if others:
                    errors.setdefault(r.annotator, []).append(abs(r.score - statistics.median(others)))
        self.weights = {a: 1.0 - statistics.fmean(e) / 4.0 for a, e in errors.items()}
        self.overlap = {a: len(errors.get(a, [])) for a in sorted(annotators)}
        default = statistics.fmean(self.weights.values()) if self.weights else 1.0
        for a in annotators - set(self.weights):
            self.weights[a] = default
        return self

    def __call__(self, ratings: Sequence[Rating]) -> tuple[float, dict[str, Any]]:
        w = [self.weights.get(r.annotator, 1.0) for r in ratings]
        if sum(w) <= 0:
            return float(statistics.fmean(r.score for r in ratings)), {"weights": w, "fallback": "mean"}
        score = sum(wi * r.score for wi, r in zip(w, ratings)) / sum(w)
        return float(score), {"weights": dict(zip((r.annotator for r in ratings), w))}


AGGREGATORS = {cls.name: cls for cls in (Median, Mean, TrimmedMean, Majority, Weighted)}


@dataclass
class AggregatedPair:
    """One (anchor, example) pair after aggregation.

    ``score``: aggregated score in [1, 5] or None when pending. ``ratings``: the counted ratings (who, what, when,
    source). ``excluded``: ``[(event, reason)]`` that did not count. ``method``: the method that decided, or
    ``"pending"``. ``details``: method specifics (weights, tie, trimming).
    """

    anchor_id: str
    example_id: str
    score: float | None
    n_raters: int
    spread: int | None
    flagged: bool
    pending: bool
    ratings: list[Rating]
    method: str
    excluded: list[tuple[Rating, str]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "anchor_id": self.anchor_id,
            "example_id": self.example_id,
            "score": self.score,
            "n_raters": self.n_raters,
            "spread": self.spread,
            "flagged": self.flagged,
            "pending": self.pending,
            "method": self.method,
            "details": self.details,
            "ratings": [r.to_dict() for r in self.ratings],
            "excluded": [{**r.to_dict(), "reason": reason} for r, reason in self.excluded],
        }


@dataclass
class AggregationResult:
    """``pairs``: (anchor_id, example_id) -> :class:`AggregatedPair`; ``agreement``: :class:`Agreement`."""

    pairs: dict[PairKey, AggregatedPair]
    agreement: Agreement
    method: str
    min_raters: int
    review_spread: int
    counts: dict[str, int]
    annotator_weights: dict[str, float] | None = None

    @property
    def pending(self) -> list[PairKey]:
        return [k for k, p in self.pairs.items() if p.pending]

    @property
    def flagged(self) -> list[PairKey]:
        return [k for k, p in self.pairs.items() if p.flagged]

    def scores(self) -> dict[PairKey, float]:
        """Aggregated score of every pair that is not pending."""
        return {k: p.score for k, p in self.pairs.items() if not p.pending}

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "min_raters": self.min_raters,
            "review_spread": self.review_spread,
            "counts": self.counts,
            "n_pairs": len(self.pairs),
            "n_pending": len(self.pending),
            "n_flagged": len(self.flagged),
            "annotator_weights": self.annotator_weights,
            "agreement": self.agreement.to_dict(),
            "pairs": [p.to_dict() for p in self.pairs.values()],
        }

    def to_markdown(self) -> str:
        def fmt(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.3f}"

        lines = [
            f"# Aggregated ratings ({self.method}, min raters {self.min_raters})",
            "",
            f"Pairs: {len(self.pairs)}, pending: {len(self.pending)}, flagged (spread >= {self.review_spread}): "
            f"{len(self.flagged)}. Events: " + ", ".join(f"{k} {v}" for k, v in self.counts.items()) + ".",
            "",
            f"Krippendorff's alpha (ordinal): overall {fmt(self.agreement.overall['alpha'])} "
            f"over {self.agreement.overall['n_units']} pairs.",
            "",
            "| anchor | example | score | raters | spread | flagged | ratings |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in self.pairs.values():
            rated = ", ".join(f"{r.annotator}={r.score}" for r in p.ratings)
            score = "pending" if p.pending else f"{p.score:.2f}"
            lines.append(
                f"| {p.anchor_id} | {p.example_id} | {score} | {p.n_raters} | {p.spread if p.spread is not None else ''}"
                f" | {'yes' if p.flagged else ''} | {rated} |"
            )
        return "\n".join(lines) + "\n"


def aggregate(
    ratings: Iterable[Rating] | NormalizedRatings,
    method: str = "median",
    min_raters: int = 1,
    review_spread: int = 2,
) -> AggregationResult:
    """Normalise the event log, aggregate each pair with ``method`` and measure agreement.

    Raises :class:`~hildif.config.ConfigError` (a ``ValueError``) for an unknown method or ``min_raters < 1``;
    ``RatingError`` for a malformed record.
    """
    if method not in AGGREGATORS:
        raise ConfigError(f"unknown aggregation method {method!r} (known: {', '.join(AGGREGATORS)})")
    if min_raters < 1:
        raise ConfigError(f"min_raters must be >= 1, got {min_raters}")
    norm = ratings if isinstance(ratings, NormalizedRatings) else normalize(ratings)
    strategy = AGGREGATORS[method]()
    weights = None
    if isinstance(strategy, Weighted):
        weights = strategy.fit(norm.counted).weights
    pairs: dict[PairKey, AggregatedPair] = {}
    for key in norm.pairs():
        counted = norm.counted.get(key, [])
        n = len(counted)
        spread = (max(r.score for r in counted) - min(r.score for r in counted)) if counted else None
        pending = n < min_raters or n == 0
        score, details = (None, {}) if pending else strategy(counted)
        pairs[key] = AggregatedPair(
            anchor_id=key[0],
            example_id=key[1],
            score=score,
            n_raters=n,
            spread=spread,
            flagged=spread is not None and spread >= review_spread,
            pending=pending,
            ratings=list(counted),
            method="pending" if pending else method,
            excluded=norm.excluded.get(key, []),
            details=details,
        )
    return AggregationResult(
        pairs=pairs,
        agreement=compute_agreement(norm.counted),
        method=method,
        min_raters=min_raters,
        review_spread=review_spread,
        counts=norm.counts(),
        annotator_weights=weights,
    )
