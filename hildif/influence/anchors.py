"""SELECT ANCHORS of Algorithm 1: one small interface, one class per way of picking anchors.

Every caller (a round's start, ``hildif explain``, the ablation) goes through :func:`select_anchors` with an
:class:`AnchorStrategy`:

:class:`PaperAnchors`    the paper's handpicked anchors (``data.anchors_file``), the first ``n``
:class:`PairIdAnchors`   the examples with the given ``pairID``s (as data, or in a file: one per line with ``#``
                         comments, or JSON Lines with a ``pairID`` per object such as the anchors file; see
                         :func:`read_id_lines`), in that order
:class:`RandomAnchors`   ``n`` examples drawn with ``seed``
:class:`RuleAnchors`     the examples matching a rule, then ``n`` of them drawn with ``seed`` (all when ``n`` is None)
:class:`ProjectAnchors`  a team's own task's examples: annotators disagree, the model is wrong or unsure, or
                         Label Studio task ids (``round start --anchors project``)
:class:`UnionAnchors`    what several strategies pick, in turn (``hildif explain`` combines its options so)

A strategy picks from a pool it is given, or from the pool a round draws from (:meth:`AnchorStrategy.pool`: MNLI dev;
the anchors file for the paper's; the anchors file then dev for pairIDs, so handpicked anchors keep their heuristic
labels). Rules, in the grammar of :class:`RuleAnchors`:

``heuristic:NAME``   examples whose metadata ``heuristic`` equals NAME or whose ``heuristics`` list contains it (a
                     rule's own pool labels dev examples with :func:`hildif.data.heuristics.with_detected_heuristics`)
``label:NAME``       gold label ``entailment`` or ``non-entailment``
``misclassified``    the classifier's prediction differs from the gold label (needs a classifier)
``all``              the whole pool

joined by ``+`` (``heuristic:lexical_overlap+misclassified``). :class:`AnchorSelection` is the form a round records
(and the backend's HTTP API and the CLI pass): a method name and its options, turned into a strategy by
:meth:`AnchorSelection.strategy`.
"""

from __future__ import annotations

import json
import random
import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from hildif.data.example import LABEL_NAMES, Example
from hildif.data.loaders import _ID_KEYS
from hildif.errors import HildifError

if TYPE_CHECKING:  # pragma: no cover
    from hildif.config import DataConfig
    from hildif.model.classifier import Classifier


class AnchorSelectionError(HildifError, ValueError):
    """Unknown ids, a bad rule or an empty selection; the message says which."""


MAX_ID_FILE_BYTES = 16 * 2**20
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:#-]{0,127}$")


def read_id_lines(path: str | Path) -> list[tuple[int, str]]:
    """``(line number, pairID)`` for each id in ``path``, in file order. Two forms, mixable line by line:

    * a plain list: one pairID per line; ``#`` starts a comment; blank lines are skipped;
    * JSON Lines (the anchors file ``data.anchors_file``, a dev-set export): one object per line with ``pairID``
      (or ``pair_id`` / ``id``, as the data loaders accept); other fields are ignored.

    The file is outside input: errors name the file and the line numbers at fault, never the lines themselves.
    """
    path = Path(path)
    if not path.is_file():
        raise AnchorSelectionError(f"pair-ids file {path}: not found (or not a regular file)")
    with open(path, "rb") as f:
        raw = f.read(MAX_ID_FILE_BYTES + 1)
    if len(raw) > MAX_ID_FILE_BYTES:
        raise AnchorSelectionError(f"pair-ids file {path}: larger than {MAX_ID_FILE_BYTES // 2**20} MiB; "
                                   "expected one pairID (or one JSON object) per line")
    if b"\0" in raw:
        raise AnchorSelectionError(f"pair-ids file {path}: a binary file (NUL bytes); expected text with one pairID "
                                   "or one JSON object with a pairID per line")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise AnchorSelectionError(f"pair-ids file {path}: line {line} is not UTF-8 text; expected one pairID or one "
                                   "JSON object with a pairID per line") from None
    out: list[tuple[int, str]] = []
    bad: list[int] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                bad.append(n)
                continue
            value = next((obj[k] for k in _ID_KEYS if k in obj), None) if isinstance(obj, dict) else None
            ident = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
        else:
            ident = line.split("#", 1)[0].strip()
            if not ident:
                continue
        if _ID.match(ident):
            out.append((n, ident))
        else:
            bad.append(n)
    if bad:
        raise AnchorSelectionError(
            f"pair-ids file {path}: line(s) {_line_list(bad)} hold neither a pairID (letters, digits, '_.:#-'; one per "
            f"line) nor a JSON object with a 'pairID' field")
    if not out:
        raise AnchorSelectionError(f"pair-ids file {path} lists no pairID")
    return out


def read_id_file(path: str | Path) -> list[str]:
    """The pairIDs of ``path`` (see :func:`read_id_lines`), in file order."""
    return [ident for _, ident in read_id_lines(path)]


def _line_list(lines: Sequence[int], limit: int = 10) -> str:
    return ", ".join(map(str, lines[:limit])) + (f" (+{len(lines) - limit} more)" if len(lines) > limit else "")


def by_ids(pool: Sequence[Example], ids: Sequence[str], source: str = "pool") -> list[Example]:
    """The examples with these ids, in order (ids given as data; :func:`by_id_file` for ids read from a file)."""
    index = {e.id: e for e in pool}
    missing = [i for i in ids if i not in index]
    if missing:
        raise AnchorSelectionError(f"pairIDs not found in the {source}: {', '.join(missing[:10])}"
                                   + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else ""))
    return [index[i] for i in ids]


def by_id_file(pool: Sequence[Example], path: str | Path) -> list[Example]:
    """The examples whose pairIDs ``path`` lists; unknown ids are reported by line number, not by content."""
    index = {e.id: e for e in pool}
    entries = read_id_lines(path)
    missing = [n for n, ident in entries if ident not in index]
    if missing:
        raise AnchorSelectionError(f"pair-ids file {path}: the pairID(s) on line(s) {_line_list(missing)} are not in "
                                   "the pool (the anchors file and the dev set)")
    return [index[ident] for _, ident in entries]


def _has_heuristic(e: Example, name: str) -> bool:
    return e.metadata.get("heuristic") == name or name in (e.metadata.get("heuristics") or [])


RULE_KINDS = ("heuristic", "label", "misclassified", "all")


def parse_rule(rule: str) -> list[tuple[str, str]]:
    """``(kind, argument)`` for each ``+``-joined part of ``rule``; an unknown part is an error naming it."""
    parts = []
    for part in rule.split("+"):
        kind, _, arg = part.strip().partition(":")
        if (kind == "heuristic" and arg) or (kind == "label" and arg in LABEL_NAMES) or kind in ("misclassified", "all"):
            parts.append((kind, arg))
        else:
            raise AnchorSelectionError(
                f"unknown anchor rule {part!r}: expected heuristic:NAME, label:{'|'.join(LABEL_NAMES)}, "
                "misclassified or all (combine with '+')"
            )
    return parts


def by_rule(pool: Sequence[Example], rule: str, classifier: "Classifier | None" = None) -> list[Example]:
    """The examples of ``pool`` matching ``rule`` (see the module docstring), in pool order."""
    selected = list(pool)
    for kind, arg in parse_rule(rule):
        if kind == "heuristic":
            selected = [e for e in selected if _has_heuristic(e, arg)]
        elif kind == "label":
            selected = [e for e in selected if e.label == LABEL_NAMES.index(arg)]
        elif kind == "misclassified":
            if classifier is None:
                raise AnchorSelectionError("rule 'misclassified' needs the classifier")
            if selected:
                pred = classifier.predict(selected).argmax(1)
                selected = [e for e, p in zip(selected, pred) if int(p) != e.label]
    return selected


# ---------------------------------------------------------------------------------------------- the strategies
def _dev(data: "DataConfig") -> list[Example]:
    from hildif.data.splits import load_dev

    return load_dev(data)


class AnchorStrategy(ABC):
    """One way of picking anchors: :meth:`select` from a pool, :meth:`pool` the pool a round draws from.

    ``select`` returns examples of the pool in the strategy's order (duplicates and emptiness are
    :func:`select_anchors`'s to handle) and raises :class:`AnchorSelectionError` naming what is wrong.
    """

    method: ClassVar[str]

    @property
    def needs_classifier(self) -> bool:
        """Whether :meth:`select` runs the model (a rule with ``misclassified``)."""
        return False

    def pool(self, data: "DataConfig") -> list[Example]:
        """The examples a round picks from: MNLI dev (``data.dev_file``)."""
        return _dev(data)

    @abstractmethod
    def select(self, pool: Sequence[Example], classifier: "Classifier | None" = None) -> list[Example]:
        """The anchors this strategy picks from ``pool``."""


@dataclass(frozen=True)
class PaperAnchors(AnchorStrategy):
    """The first ``n`` of the paper's handpicked anchors (the anchors file, with their heuristic labels)."""

    method: ClassVar[str] = "paper"
    n: int = 5

    def pool(self, data: "DataConfig") -> list[Example]:
        from hildif.data.splits import load_anchors

        return load_anchors(data)

    def select(self, pool: Sequence[Example], classifier: "Classifier | None" = None) -> list[Example]:
        return list(pool[: self.n])


@dataclass(frozen=True)
class PairIdAnchors(AnchorStrategy):
    """The examples with ``pair_ids`` (given as data: unknown ones are named), then those ``ids_file`` lists (outside
    input: unknown ones are reported by line number, never quoted), in that order."""

    method: ClassVar[str] = "pairids"
    pair_ids: tuple[str, ...] = ()
    ids_file: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "pair_ids", tuple(self.pair_ids or ()))
        if not (self.pair_ids or self.ids_file):
            raise AnchorSelectionError("anchor selection 'pairids' needs pair IDs or a pair-ids file")

    def pool(self, data: "DataConfig") -> list[Example]:
        """The anchors file first (its rows carry their heuristics), then the dev examples it does not hold."""
        from hildif.data.splits import load_anchors

        handpicked = load_anchors(data)
        known = {e.id for e in handpicked}
        return handpicked + [e for e in _dev(data) if e.id not in known]

    def select(self, pool: Sequence[Example], classifier: "Classifier | None" = None) -> list[Example]:
        chosen = by_ids(pool, list(self.pair_ids)) if self.pair_ids else []
        return chosen + (by_id_file(pool, self.ids_file) if self.ids_file else [])


@dataclass(frozen=True)
class RandomAnchors(AnchorStrategy):
    """``n`` examples of the pool drawn with ``random.Random(seed)`` (all of them when the pool is smaller)."""

    method: ClassVar[str] = "random"
    n: int = 5
    seed: int = 0

    def select(self, pool: Sequence[Example], classifier: "Classifier | None" = None) -> list[Example]:
        return random.Random(self.seed).sample(list(pool), min(self.n, len(pool)))


@dataclass(frozen=True)
class RuleAnchors(AnchorStrategy):
    """The examples matching ``rule``; then ``n`` of them drawn with ``random.Random(seed)`` (all when ``n`` is
    None). The rule is checked when the strategy is made, before any data is read."""

    method: ClassVar[str] = "rule"
    rule: str = "all"
    n: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.rule:
            raise AnchorSelectionError("anchor selection 'rule' needs a rule, e.g. "
                                       "'heuristic:lexical_overlap+misclassified'")
        parse_rule(self.rule)

    @property
    def needs_classifier(self) -> bool:
        return any(kind == "misclassified" for kind, _ in parse_rule(self.rule))

    def pool(self, data: "DataConfig") -> list[Example]:
        """MNLI dev; for a ``heuristic:`` rule each example also gets the heuristics detected in its text (dev
        examples carry no heuristic labels)."""
        dev = _dev(data)
        if any(kind == "heuristic" for kind, _ in parse_rule(self.rule)):
            from hildif.data.heuristics import with_detected_heuristics

            return with_detected_heuristics(dev)
        return dev

    def select(self, pool: Sequence[Example], classifier: "Classifier | None" = None) -> list[Example]:
        picked = by_rule(pool, self.rule, classifier)
        return random.Random(self.seed).sample(picked, min(self.n, len(picked))) if self.n else picked


PROJECT_RULES = ("disagreement", "wrong", "uncertain", "ids")


@dataclass(frozen=True)
class ProjectAnchors(AnchorStrategy):
    """Anchors among a team's own task's examples (a Label Studio project's annotated tasks, whose metadata carries
    ``ls_task_id``, ``votes``, ``agreement`` and ``disagreement``: :mod:`hildif.tasks.labelstudio_export`), by
    ``rule``:

    ``disagreement``  tasks whose annotators chose different labels, most disagreement first (lowest share of votes
                      for the task's label, then most distinct labels chosen), the first ``n``;
    ``wrong``         tasks whose annotators' label differs from the model's prediction, the most confident wrong
                      prediction first, the first ``n``;
    ``uncertain``     the ``n`` tasks the model is least sure about (lowest top probability, then smallest margin
                      between its two most probable labels);
    ``ids``           the tasks with Label Studio ids ``task_ids``, in that order (all of them: ``n`` is ignored).

    Ties keep the pool's order. The pool is the task's examples (:meth:`pool` cannot read them from the data
    section alone: a round passes them, see :func:`hildif.rounds.task.anchor_pool`)."""

    method: ClassVar[str] = "project"
    rule: str = "disagreement"
    n: int = 5
    task_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "task_ids", tuple(self.task_ids or ()))
        if self.rule not in PROJECT_RULES:
            raise AnchorSelectionError(f"project anchors {self.rule!r} unknown: expected one of "
                                       f"{', '.join(PROJECT_RULES)}")
        if self.rule == "ids" and not self.task_ids:
            raise AnchorSelectionError("project anchors 'ids' need Label Studio task ids (--task-ids 1,2,3)")
        if any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in self.task_ids):
            raise AnchorSelectionError("Label Studio task ids are positive integers (--task-ids 1,2,3)")
        if self.n < 1:
            raise AnchorSelectionError(f"number of anchors must be >= 1, got {self.n}")

    @property
    def needs_classifier(self) -> bool:
        return self.rule in ("wrong", "uncertain")

    def pool(self, data: "DataConfig") -> list[Example]:
        raise AnchorSelectionError("project anchors are chosen among a task's own examples: set task.source to "
                                   "labelstudio (or files) and start the round on that task")

    def select(self, pool: Sequence[Example], classifier: "Classifier | None" = None) -> list[Example]:
        pool = list(pool)
        if self.rule == "ids":
            index: dict[int, Example] = {}
            for e in pool:
                tid = e.metadata.get("ls_task_id")
                if isinstance(tid, int) and not isinstance(tid, bool):
                    index.setdefault(tid, e)
            missing = [str(t) for t in self.task_ids if t not in index]
            if missing:
                raise AnchorSelectionError(
                    f"Label Studio task id(s) {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} are not "
                    "among the task's annotated examples (not in the project, not annotated, or a tie)")
            return [index[t] for t in self.task_ids]
        if self.rule == "disagreement":
            voted = [e for e in pool if isinstance(e.metadata.get("votes"), dict)]
            if not voted:
                raise AnchorSelectionError("project anchors 'disagreement': no example of the task carries its "
                                           "annotators' votes (only a Label Studio project's tasks do)")
            split = [e for e in voted if len(e.metadata["votes"]) > 1]
            if not split:
                raise AnchorSelectionError(f"project anchors 'disagreement': the annotators agree on all "
                                           f"{len(voted)} annotated tasks")
            split.sort(key=lambda e: (float(e.metadata.get("agreement", 1.0)), -len(e.metadata["votes"])))
            return split[: self.n]
        if classifier is None:
            raise AnchorSelectionError(f"project anchors {self.rule!r} need the classifier")
        if not pool:
            return []
        import numpy as np

        probs = np.asarray(classifier.predict(pool), dtype=np.float64)
        if probs.shape[1] <= max(e.label for e in pool):
            raise AnchorSelectionError(f"the model has {probs.shape[1]} labels, fewer than the task's: train it on "
                                       "the task first (hildif train)")
        pred = probs.argmax(1)
        top = probs.max(1)
        if self.rule == "wrong":
            wrong = [i for i, e in enumerate(pool) if int(pred[i]) != e.label]
            if not wrong:
                raise AnchorSelectionError(f"project anchors 'wrong': the model agrees with the annotators on all "
                                           f"{len(pool)} tasks")
            wrong.sort(key=lambda i: -top[i])
            return [pool[i] for i in wrong[: self.n]]
        ordered = np.sort(probs, axis=1)
        margin = ordered[:, -1] - ordered[:, -2] if probs.shape[1] > 1 else ordered[:, -1]
        order = sorted(range(len(pool)), key=lambda i: (top[i], margin[i]))
        return [pool[i] for i in order[: self.n]]


@dataclass(frozen=True)
class UnionAnchors(AnchorStrategy):
    """What each of ``parts`` picks from the same pool, one after the other (:func:`select_anchors` drops repeats)."""

    method: ClassVar[str] = "union"
    parts: tuple[AnchorStrategy, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.parts))

    @property
    def needs_classifier(self) -> bool:
        return any(p.needs_classifier for p in self.parts)

    def pool(self, data: "DataConfig") -> list[Example]:
        """The parts' pools merged, the first occurrence of each pairID kept."""
        seen: set[str] = set()
        return [e for p in self.parts for e in p.pool(data) if not (e.id in seen or seen.add(e.id))]

    def select(self, pool: Sequence[Example], classifier: "Classifier | None" = None) -> list[Example]:
        return [e for p in self.parts for e in p.select(pool, classifier)]


STRATEGIES: dict[str, type[AnchorStrategy]] = {
    cls.method: cls for cls in (PaperAnchors, RandomAnchors, PairIdAnchors, RuleAnchors, ProjectAnchors)
}
ANCHOR_METHODS = tuple(STRATEGIES)  # the methods a round can be started with


def combine(
    *,
    pair_ids: Sequence[str] | None = None,
    ids_file: str | Path | None = None,
    rule: str | None = None,
    random_n: int | None = None,
    seed: int = 0,
) -> AnchorStrategy:
    """The strategy of ``hildif explain``'s options: the given pairIDs and the ids file's, then the rule's matches
    (``random_n`` of them drawn with ``seed``; a number without a rule draws from the whole pool)."""
    parts: list[AnchorStrategy] = []
    if pair_ids or ids_file:
        parts.append(PairIdAnchors(tuple(pair_ids or ()), str(ids_file) if ids_file else None))
    if rule:
        parts.append(RuleAnchors(rule, random_n or None, seed))
    elif random_n:
        parts.append(RandomAnchors(random_n, seed))
    if not parts:
        raise AnchorSelectionError(NOTHING_SELECTED)
    return parts[0] if len(parts) == 1 else UnionAnchors(tuple(parts))


NOTHING_SELECTED = "no anchor selected: give pair ids, an anchors file, a rule that matches, or --random N"


def select_anchors(
    strategy: AnchorStrategy,
    pool: Sequence[Example] | None = None,
    *,
    data: "DataConfig | None" = None,
    classifier: "Classifier | None" = None,
) -> list[Example]:
    """The anchors ``strategy`` picks from ``pool`` (default: the strategy's own pool of ``data``), each once, in
    the strategy's order. A rule with ``misclassified`` needs ``classifier``. An empty selection is an error."""
    if pool is None:
        if data is None:
            raise ValueError("select_anchors needs a pool or the data configuration (data=)")
        pool = strategy.pool(data)
    seen: set[str] = set()
    out = [e for e in strategy.select(pool, classifier) if not (e.id in seen or seen.add(e.id))]
    if not out:
        raise AnchorSelectionError(NOTHING_SELECTED)
    return out


# ---------------------------------------------------------------------------------------------- a round's record
@dataclass
class AnchorSelection:
    """How a round picks its anchors, as recorded with the round (and as the CLI and the backend's HTTP API pass
    it); :meth:`strategy` is the :class:`AnchorStrategy` it names. ``method``:

    * ``paper``: :class:`PaperAnchors`, the first ``n``;
    * ``random``: :class:`RandomAnchors`, ``n`` dev examples drawn with ``seed``;
    * ``pairids``: :class:`PairIdAnchors`, the examples listed in ``pair_ids`` (as data: how the backend's HTTP API
      passes them) or in ``pair_ids_file`` (the CLI), looked up in the anchors file and the dev set;
    * ``rule``: :class:`RuleAnchors`, ``n`` dev examples (drawn with ``seed``) matching ``rule``; for ``heuristic:``
      rules each dev example gets the heuristics :func:`hildif.data.heuristics.heuristic_features` detects in its
      text (lexical_overlap, subsequence, constituent, negation, reversed_order, ...);
    * ``project``: :class:`ProjectAnchors`, ``n`` of a team's own task's examples by ``project_anchors``
      (``disagreement``, ``wrong``, ``uncertain``, or ``ids``: the Label Studio tasks ``task_ids``).
    """

    method: str = "paper"
    n: int = 5
    seed: int = 0
    pair_ids_file: str | None = None
    rule: str | None = None
    pair_ids: list[str] | None = None
    project_anchors: str | None = None
    task_ids: list[int] | None = None

    def __post_init__(self) -> None:
        if self.method not in STRATEGIES:
            raise AnchorSelectionError(f"anchor selection method {self.method!r} unknown "
                                       f"(known: {', '.join(ANCHOR_METHODS)})")
        if self.n < 1:
            raise AnchorSelectionError(f"number of anchors must be >= 1, got {self.n}")
        self.strategy()  # pairIDs or a file for 'pairids', a valid rule for 'rule': checked now

    def strategy(self) -> AnchorStrategy:
        if self.method == "paper":
            return PaperAnchors(self.n)
        if self.method == "random":
            return RandomAnchors(self.n, self.seed)
        if self.method == "pairids":
            return PairIdAnchors(tuple(self.pair_ids or ()), self.pair_ids_file)
        if self.method == "project":
            return ProjectAnchors(self.project_anchors or "disagreement", self.n, tuple(self.task_ids or ()))
        return RuleAnchors(self.rule or "", self.n, self.seed)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AnchorSelection":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        """The record; the project fields only when set, so a round recorded before they existed compares equal."""
        out = asdict(self)
        for key in ("project_anchors", "task_ids"):
            if out[key] is None:
                del out[key]
        return out


__all__ = ["ANCHOR_METHODS", "AnchorSelection", "AnchorSelectionError", "AnchorStrategy", "PairIdAnchors",
           "PROJECT_RULES", "PaperAnchors", "ProjectAnchors", "RULE_KINDS", "RandomAnchors", "RuleAnchors", "STRATEGIES", "UnionAnchors", "by_id_file",
           "by_ids", "by_rule", "combine", "parse_rule", "read_id_file", "read_id_lines", "select_anchors"]
