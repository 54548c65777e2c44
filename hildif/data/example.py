"""The one record type that flows through hildif: one text or a text pair with a class label.

The paper's task is MNLI/HANS: premise/hypothesis pairs with binary labels (:data:`LABEL_NAMES`). Other tasks
(:mod:`hildif.tasks`) use the same record: a single-text example has ``hypothesis=None`` and its label indexes the
task's own label set."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

NON_ENTAILMENT = 0
ENTAILMENT = 1
LABEL_NAMES = ("non-entailment", "entailment")

# Gold labels as they appear in MNLI, HANS and GLUE files, mapped to the paper's two classes
# (neutral + contradiction -> non-entailment).
_LABEL_MAP = {
    "entailment": ENTAILMENT,
    "non-entailment": NON_ENTAILMENT,
    "non_entailment": NON_ENTAILMENT,
    "neutral": NON_ENTAILMENT,
    "contradiction": NON_ENTAILMENT,
}


def binary_label(value: Any) -> int:
    """Map a gold label (name or 0/1 int) to 0 = non-entailment, 1 = entailment; ValueError if unknown."""
    if isinstance(value, bool):
        raise ValueError(f"unknown label {value!r}")
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str) and value.strip().lower() in _LABEL_MAP:
        return _LABEL_MAP[value.strip().lower()]
    raise ValueError(f"unknown label {value!r} (expected one of {sorted(_LABEL_MAP)})")


def stable_id(premise: str, hypothesis: str, prefix: str = "h") -> str:
    """A deterministic id for a pair that has no pairID: ``prefix`` + 12 hex digits of sha1(premise \\t hypothesis)."""
    digest = hashlib.sha1(f"{premise}\t{hypothesis}".encode("utf-8")).hexdigest()[:12]
    return f"{prefix}{digest}"


@dataclass(frozen=True)
class Example:
    """One example: an NLI pair, or any task's text (pair).

    Attributes:
        id: stable string id (the file's pairID, or :func:`stable_id` when there is none).
        premise, hypothesis: the text the model sees: the first and second text of a pair, or ``premise`` alone with
            ``hypothesis=None`` for a single-text task.
        label: the class index: for MNLI/HANS 0 = non-entailment, 1 = entailment; for another task the position of
            its label in the task's label set.
        metadata: everything else the source carries (gold_label, heuristic, subcase, template, genre, source ...).
    """

    id: str
    premise: str
    hypothesis: str | None
    label: int
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def label_name(self) -> str:
        """The MNLI/HANS name of the label (other tasks name labels through their task definition)."""
        return LABEL_NAMES[self.label]

    @property
    def texts(self) -> tuple[str] | tuple[str, str]:
        """What the model reads: ``(text,)`` or ``(text, text_pair)``."""
        return (self.premise,) if self.hypothesis is None else (self.premise, self.hypothesis)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "premise": self.premise,
            "hypothesis": self.hypothesis,
            "label": self.label,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Example":
        return cls(
            id=str(d["id"]),
            premise=d["premise"],
            hypothesis=d.get("hypothesis"),
            label=int(d["label"]),
            metadata=dict(d.get("metadata") or {}),
        )
