"""The panel of simulated annotators that stands in for people (ablation runner, demo), and its rating through the
Label Studio API (:func:`rate_through_api`, the demo's simulated annotators).

Three raters by default, as in a round with ``labelstudio.annotators_per_task = 3``: one neutral, one lenient, one
strict, each with Gaussian noise (see :class:`hildif.feedback.SimulatedAnnotator`). Their ratings are aggregated
like human ones (``feedback.aggregation``, median by default).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from hildif.data.example import Example
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


def rate_through_api(client, project_id: int, anchors: Mapping[str, Example], pairs: Sequence[Any],
                     panel: Sequence[SimulatedAnnotator], *, progress: bool = True) -> int:
    """Each annotator of ``panel`` rates every pushed pair as its own Label Studio user (named like the annotator),
    through ``client`` (a :class:`hildif.labelstudio.client.LabelStudioClient` with the admin's key); a pair an
    annotator already rated is skipped, so a rerun rates only what is missing. Returns the number of ratings made.

    ``anchors``: anchor id -> anchor; ``pairs``: the round's pairs (``anchor_id``, ``example_id``, ``example``,
    ``task_id``; pairs without a task are left out).
    """
    from tqdm.auto import tqdm

    pushed = [p for p in pairs if p.task_id is not None]
    users = {a.name: client.ensure_user(a.name) for a in panel}
    by_task = {p.task_id: (p.anchor_id, p.example_id) for p in pushed}
    done = {(r.anchor_id, r.example_id, r.annotator) for r in client.ratings(project_id, by_task)}
    todo = [(p, a) for p in pushed for a in panel if (p.anchor_id, p.example_id, a.name) not in done]
    made = 0
    for p, annotator in tqdm(todo, desc="simulated ratings", unit="rating", disable=not progress):
        client.annotate(p.task_id, users[annotator.name], annotator.rate(anchors[p.anchor_id], p.example))
        made += 1
    return made
