"""Pairs short of ratings: rated by fewer people than the round's ``annotators_per_task``, and what a sync does with
them (``feedback.short_pairs``):

* ``use``: aggregate what there is (down to ``feedback.min_raters``), as for any pair;
* ``skip``: leave them out of this sync (they count once they have the round's raters);
* ``wait``: train nothing while any pair is short (the sync says ``waiting``; sync again later).

The round report says which rule applied and to which pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from hildif.config import ConfigError

RULES = ("use", "skip", "wait")


class ShortPairsError(ConfigError):
    """``feedback.short_pairs`` is not a known rule."""


@dataclass
class Shortfall:
    """``short``: ``(anchor_id, example_id, counted ratings)`` of each pair with fewer than ``target``."""

    rule: str
    target: int
    pairs: int
    short: list[tuple[str, str, int]] = field(default_factory=list)

    def min_raters(self, configured: int) -> int:
        """The ``min_raters`` aggregation needs under the rule (``skip``: the round's raters per task)."""
        return max(configured, self.target) if self.rule == "skip" else configured

    @property
    def waits(self) -> bool:
        return self.rule == "wait" and bool(self.short)

    def describe(self) -> str:
        """One sentence for the report and the terminal."""
        if not self.short:
            return f"every pair has its {self.target} rating(s) (rule for short pairs: {self.rule})"
        what = {"use": "used with the ratings they have", "skip": "left out of this sync",
                "wait": "so nothing is trained until they have them"}[self.rule]
        return (f"{len(self.short)} of {self.pairs} pair(s) have fewer than {self.target} rating(s) "
                f"(feedback.short_pairs = {self.rule}): {what}")

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "target": self.target, "pairs": self.pairs, "n_short": len(self.short),
                "short": [{"anchor_id": a, "example_id": e, "ratings": n} for a, e, n in self.short],
                "summary": self.describe()}


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ShortPairsError(f"feedback.short_pairs {rule!r}: expected one of {', '.join(RULES)}")
    return rule


def shortfall(ratings: Iterable[Any], pair_keys: Sequence[tuple[str, str]], target: int, rule: str) -> Shortfall:
    """Which of ``pair_keys`` have fewer than ``target`` counted ratings (each annotator's latest, submitted)."""
    from hildif.feedback import normalize

    check_rule(rule)
    counted = normalize(list(ratings)).counted
    short = [(a, e, len(counted.get((a, e), []))) for a, e in pair_keys if len(counted.get((a, e), [])) < target]
    return Shortfall(rule, int(target), len(pair_keys), short)


__all__ = ["RULES", "ShortPairsError", "Shortfall", "check_rule", "shortfall"]
