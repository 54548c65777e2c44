"""Krippendorff's alpha for ordinal ratings (1..5), implemented directly and tested against the ``krippendorff`` package.

alpha = 1 - D_o / D_e with the coincidence matrix ``o[c, k] = sum_u (pairs c-k within unit u) / (m_u - 1)`` over
units with at least two ratings, marginals ``n_c = sum_k o[c, k]``, ``n = sum_c n_c``, the ordinal metric
``delta2(c, k) = (sum_{g=c..k} n_g - (n_c + n_k) / 2) ** 2``, ``D_o = sum o * delta2`` and
``D_e = sum n_c n_k delta2 / (n - 1)``. Values: 1 = perfect agreement, 0 = chance, < 0 = systematic disagreement.
``None`` where alpha is undefined (fewer than two pairable values, or a single value used throughout).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from hildif.feedback.ratings import PairKey, Rating

DOMAIN = (1, 2, 3, 4, 5)


def ordinal_alpha(units: Iterable[Sequence[int]], domain: Sequence[int] = DOMAIN) -> float | None:
    """Ordinal alpha over ``units``, each the list of values given to one unit by different raters."""
    index = {v: i for i, v in enumerate(domain)}
    o = np.zeros((len(domain), len(domain)))
    for values in units:
        m = len(values)
        if m < 2:
            continue
        counts = np.zeros(len(domain))
        for v in values:
            if v not in index:
                raise ValueError(f"value {v!r} outside the domain {list(domain)}")
            counts[index[v]] += 1
        o += (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n < 2:
        return None
    cum = np.concatenate([[0.0], np.cumsum(n_c)])
    c, k = np.meshgrid(np.arange(len(domain)), np.arange(len(domain)), indexing="ij")
    lo, hi = np.minimum(c, k), np.maximum(c, k)
    delta2 = (cum[hi + 1] - cum[lo] - (n_c[c] + n_c[k]) / 2) ** 2
    d_e = (np.outer(n_c, n_c) * delta2).sum() / (n - 1)
    if d_e <= 0:
        return None
    return float(1.0 - (o * delta2).sum() / d_e)


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
