"""The panel of simulated annotators that stands in for people (ablation runner, demo).

Three raters by default, as in a round with ``labelstudio.annotators_per_task = 3``: one neutral, one lenient, one
strict, each with Gaussian noise (see :class:`hildif.feedback.SimulatedAnnotator`). Their ratings are aggregated
like human ones (``feedback.aggregation``, median by default).
"""

from __future__ import annotations

from hildif.feedback import SimulatedAnnotator

BIASES = (0.0, 0.3, -0.3)


def simulated_panel(n: int = 3, seed: int = 0, noise: float = 0.5, names: list[str] | None = None) -> list[SimulatedAnnotator]:
    """``n`` annotators named ``names`` (default ``sim1..simN``) with biases cycling through 0, +0.3, -0.3.

    A rating depends only on (seed, name, anchor id, example id), never on the order of calls.
    """
    if n < 1:
        raise ValueError(f"a panel needs at least one annotator, got {n}")
    names = list(names) if names is not None else [f"sim{i + 1}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"simulated_panel: {n} annotators but {len(names)} names")
    return [SimulatedAnnotator(name, noise=noise, bias=BIASES[i % len(BIASES)], seed=seed)
            for i, name in enumerate(names)]
