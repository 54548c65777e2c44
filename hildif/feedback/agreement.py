"""Krippendorff's alpha for ordinal ratings (1..5), computed by the ``krippendorff`` package.

:func:`ordinal_alpha` only turns hildif's units (the values each pair received, any number of raters) into the
package's value-count table and maps its undefined cases to ``None``: fewer than two pairable values (the package
raises) or a single value used throughout (expected disagreement 0: the package returns NaN). Values: 1 = perfect
agreement, 0 = chance, < 0 = systematic disagreement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Iterable, Mapping, Sequence

import krippendorff
import numpy as np

from hildif.feedback.ratings import PairKey, Rating

DOMAIN = (1, 2, 3, 4, 5)


def ordinal_alpha(units: Iterable[Sequence[int]], domain: Sequence[int] = DOMAIN) -> float | None:
    """Ordinal alpha over ``units``, each the list of values given to one unit by different raters."""
    index = {v: i for i, v in enumerate(domain)}
    rows = []
    for values in units:
        counts = np.zeros(len(domain))
        for v in values:
            if v not in index:
                raise ValueError(f"value {v!r} outside the domain {list(domain)}")
            counts[index[v]] += 1
        if len(values) >= 2:  # a unit rated once pairs with nothing
            rows.append(counts)
    if not rows:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = krippendorff.alpha(value_counts=np.array(rows), value_domain=list(domain),
                                   level_of_measurement="ordinal")
    return float(alpha) if math.isfinite(alpha) else None


@dataclass
class Agreement:
    """Ordinal alpha overall, per anchor and per annotator pair, each ``{"alpha": float|None, "n_units": int}``.

    ``n_units`` counts units (pairs) with at least two ratings among those considered.
    """

    overall: dict[str, Any]
    per_anchor: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_annotator_pair: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall, "per_anchor": self.per_anchor, "per_annotator_pair": self.per_annotator_pair}


def _summary(units: list[list[int]]) -> dict[str, Any]:
    return {"alpha": ordinal_alpha(units), "n_units": sum(len(u) >= 2 for u in units)}


def compute_agreement(counted: Mapping[PairKey, Sequence[Rating]]) -> Agreement:
    """Agreement over the counted ratings (see :func:`hildif.feedback.ratings.normalize`)."""
    by_pair = {pair: {r.annotator: r.score for r in ratings} for pair, ratings in counted.items()}
    overall = _summary([list(v.values()) for v in by_pair.values()])
    per_anchor: dict[str, list[list[int]]] = {}
    for (anchor, _), scores in sorted(by_pair.items()):
        per_anchor.setdefault(anchor, []).append(list(scores.values()))
    annotators = sorted({a for scores in by_pair.values() for a in scores})
    per_annotator_pair = {}
    for a, b in combinations(annotators, 2):
        units = [[s[a], s[b]] for s in by_pair.values() if a in s and b in s]
        if units:
            per_annotator_pair[f"{a}|{b}"] = _summary(units)
    return Agreement(overall, {k: _summary(v) for k, v in per_anchor.items()}, per_annotator_pair)
