"""Simulated annotators: rate how much an anchor and an influential example share HANS-style heuristics.

The features are :func:`hildif.data.heuristics.heuristic_features` (the detectors live in the data layer).
:class:`SimulatedAnnotator` compares the feature sets of the anchor and the example: similarity
``sim = 0.7 * J + 0.3 * (1 - |rate_a - rate_e|)`` where ``J`` is the Jaccard index of the active binary heuristics
(lexical_overlap, subsequence, constituent, negation, reversed_order, passive; 1 when both have none), and the
score is ``round(1 + 4 * sim + bias + noise)`` clipped to 1..5, ``noise ~ N(0, noise)``. The noise draw depends
only on (seed, annotator name, anchor id, example id), so a rating does not depend on the order of calls.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterable, Sequence

import numpy as np

from hildif.data.example import Example
from hildif.data.heuristics import active_heuristics, heuristic_features
from hildif.feedback.augmentation.seeding import derive_seed
from hildif.feedback.ratings import Rating


def heuristic_similarity(anchor: Example, example: Example) -> float:
    """``sim`` in [0, 1] as documented above."""
    fa = heuristic_features(anchor.premise, anchor.hypothesis)
    fe = heuristic_features(example.premise, example.hypothesis)
    a, e = active_heuristics(fa), active_heuristics(fe)
    jaccard = len(a & e) / len(a | e) if a | e else 1.0
    return 0.7 * jaccard + 0.3 * (1.0 - abs(fa["lexical_overlap_rate"] - fe["lexical_overlap_rate"]))


class SimulatedAnnotator:
    """A stand-in for a human rater: ``rate(anchor, example) -> int in 1..5``.

    Args:
        name: annotator name (also part of the noise seed).
        noise: standard deviation of the Gaussian noise added before rounding (0 = deterministic).
        bias: constant added before rounding (a lenient rater > 0, a strict one < 0).
        seed: base seed.
        skip_rate: probability that :meth:`ratings` emits a ``skipped`` event instead of a score.
    """

    def __init__(self, name: str, noise: float = 0.5, bias: float = 0.0, seed: int = 0, skip_rate: float = 0.0):
        if noise < 0 or not 0 <= skip_rate <= 1:
            raise ValueError(f"annotator {name}: noise must be >= 0 and skip_rate in [0, 1]")
        self.name, self.noise, self.bias, self.seed, self.skip_rate = name, noise, bias, seed, skip_rate

    def _rng(self, anchor: Example, example: Example) -> np.random.Generator:
        return np.random.default_rng(derive_seed(self.seed, self.name, anchor.id, example.id))

    def rate(self, anchor: Example, example: Example) -> int:
        noise = self._rng(anchor, example).normal(0.0, self.noise) if self.noise > 0 else 0.0
        raw = 1.0 + 4.0 * heuristic_similarity(anchor, example) + self.bias + noise
        return int(min(5, max(1, np.floor(raw + 0.5))))

    def ratings(
        self, pairs: Iterable[tuple[Example, Example]], start: datetime | None = None
    ) -> list[Rating]:
        """Rating events (``submitted``, or ``skipped`` with probability ``skip_rate``) for ``(anchor, example)``."""
        t0 = start or datetime(2024, 1, 1, tzinfo=timezone.utc)
        out = []
        for i, (anchor, example) in enumerate(pairs):
            skip = self.skip_rate > 0 and self._rng(anchor, example).random() < self.skip_rate
            out.append(
                Rating(
                    anchor_id=anchor.id,
                    example_id=example.id,
                    annotator=self.name,
                    score=None if skip else self.rate(anchor, example),
                    status="skipped" if skip else "submitted",
                    updated_at=(t0 + timedelta(seconds=i)).isoformat(),
                    source=f"simulated:{self.name}",
                )
            )
        return out


def simulate_ratings(annotators: Sequence[SimulatedAnnotator], pairs: Sequence[tuple[Example, Example]]) -> list[Rating]:
    """All annotators' rating events over the same pairs."""
    return [r for annotator in annotators for r in annotator.ratings(pairs)]
