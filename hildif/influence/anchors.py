"""SELECT ANCHORS of Algorithm 1: pick anchor points from a validation pool.

By id (``pairID``s given directly or one per line in a file; ``#`` starts a comment), by rule, or at random:

``heuristic:NAME``   examples whose metadata ``heuristic`` equals NAME or whose ``heuristics`` list contains it
``label:NAME``       gold label ``entailment`` or ``non-entailment``
``misclassified``    the classifier's prediction differs from the gold label (needs a classifier)
``all``              the whole pool

Rules can be combined with ``+`` (``heuristic:lexical_overlap+misclassified``); ``random_n`` then samples from the
result with ``seed``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from hildif.data.example import LABEL_NAMES, Example
from hildif.model.classifier import Classifier


class AnchorSelectionError(ValueError):
    """Unknown ids, a bad rule or an empty selection; the message says which."""


def read_id_file(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"anchors file not found: {path}")
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line)
    if not ids:
        raise AnchorSelectionError(f"anchors file {path} lists no pairID")
    return ids


def by_ids(pool: Sequence[Example], ids: Sequence[str], source: str = "pool", ids_file: str | Path | None = None
           ) -> list[Example]:
    """The examples with these ids, in order. Ids read from ``ids_file`` are not quoted in the error (a file named by
    mistake must not have its lines echoed): it counts them and gives their entry numbers instead."""
    index = {e.id: e for e in pool}
    missing = [i for i in ids if i not in index]
    if missing and ids_file is not None:
        where = [n + 1 for n, i in enumerate(ids) if i not in index]
        raise AnchorSelectionError(
            f"{len(missing)} of the {len(ids)} pairIDs listed in {ids_file} are not in the {source} (entries "
            f"{', '.join(map(str, where[:10]))}{' ...' if len(where) > 10 else ''}, counting non-comment lines)")
    if missing:
        raise AnchorSelectionError(f"pairIDs not found in the {source}: {', '.join(missing[:10])}"
                                   + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else ""))
    return [index[i] for i in ids]


def _has_heuristic(e: Example, name: str) -> bool:
    return e.metadata.get("heuristic") == name or name in (e.metadata.get("heuristics") or [])


def by_rule(pool: Sequence[Example], rule: str, classifier: Classifier | None = None) -> list[Example]:
    selected = list(pool)
    for part in rule.split("+"):
        kind, _, arg = part.strip().partition(":")
        if kind == "heuristic" and arg:
            selected = [e for e in selected if _has_heuristic(e, arg)]
        elif kind == "label" and arg in LABEL_NAMES:
            selected = [e for e in selected if e.label == LABEL_NAMES.index(arg)]
        elif kind == "misclassified":
            if classifier is None:
                raise AnchorSelectionError("rule 'misclassified' needs the classifier")
            if selected:
                pred = classifier.predict(selected).argmax(1)
                selected = [e for e, p in zip(selected, pred) if int(p) != e.label]
        elif kind == "all":
            continue
        else:
            raise AnchorSelectionError(
                f"unknown anchor rule {part!r}: expected heuristic:NAME, label:{'|'.join(LABEL_NAMES)}, "
                "misclassified or all (combine with '+')"
            )
    return selected


def select_anchors(
    pool: Sequence[Example],
    *,
    pair_ids: Sequence[str] | None = None,
    ids_file: str | Path | None = None,
    rule: str | None = None,
    random_n: int | None = None,
    seed: int = 0,
    classifier: Classifier | None = None,
) -> list[Example]:
    """Anchors from ``pool``: the union of ids (given order) then the rule/random selection, without duplicates."""
    chosen: list[Example] = []
    if pair_ids:
        chosen += by_ids(pool, list(pair_ids))
    if ids_file:
        chosen += by_ids(pool, read_id_file(ids_file), ids_file=ids_file)
    if rule or random_n:
        picked = by_rule(pool, rule or "all", classifier)
        if random_n:
            picked = random.Random(seed).sample(picked, min(random_n, len(picked)))
        chosen += picked
    seen: set[str] = set()
    out = [e for e in chosen if not (e.id in seen or seen.add(e.id))]
    if not out:
        raise AnchorSelectionError("no anchor selected: give pair ids, an anchors file, a rule that matches, or --random N")
    return out
