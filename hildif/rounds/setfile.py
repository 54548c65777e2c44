"""The fine-tuning set of a sync as a file a person can open: ``fine_tuning_set.csv`` in the sync's report folder,
one row per example the model was fine-tuned on, in the set's order.

Each row says what the example is (``kind``) and where it came from, read from what the set's builder
(:func:`hildif.rounds.finetune.build_finetuning_set`) leaves on every example:

========== =========================== ================================================== ===================
kind       what                        ``source_id``                                      ``augmenter``
========== =========================== ================================================== ===================
rated      a rated influential example its own id (the training row people rated)         (none)
copy       an augmented copy           the rated example it copies (``augmented_from``)   the augmenter chain
syntactic  a syntactic pair            the row it was made from (``transformed_from``)    ``syntactic:<op>``
construc-  a construction minimal      the row it was made from (``transformed_from``)    ``construction:<name>``
tion       pair's member
rehearsal  an original training row    its own id (a training row nobody rated)           (none)
========== =========================== ================================================== ===================

``score`` is the aggregated rating that made the row (rated rows, copies and syntactic pairs), ``anchor_id`` the
anchor of that rating (when the row follows its rated example in the set, as the builder writes them).
The counts per kind are the set's ``parts`` (``rated``, ``copies``, ``syntactic``, ``constructions``, ``rehearsal``)
in ``round.json``.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from hildif.data.example import LABEL_NAMES, Example
from hildif.utils.atomic import write_text_atomic

SET_FILE = "fine_tuning_set.csv"
# kind -> (what a person calls it, the key of the set's ``parts`` in round.json)
KINDS = {
    "rated": ("rated original", "rated"),
    "copy": ("augmented copy", "copies"),
    "syntactic": ("syntactic pair", "syntactic"),
    "construction": ("construction pair", "constructions"),
    "rehearsal": ("rehearsal row", "rehearsal"),
}


@dataclass
class SetRow:
    """One example of the fine-tuning set (see the module docstring)."""

    position: int
    kind: str
    id: str
    source_id: str
    anchor_id: str
    score: float | None
    augmenter: str
    label: str
    premise: str
    hypothesis: str


COLUMNS = tuple(f.name for f in fields(SetRow))


def label_name(label: int, label_names: Sequence[str] = LABEL_NAMES) -> str:
    """The class name of ``label`` (the number itself when it is not one of ``label_names``)."""
    return label_names[label] if 0 <= int(label) < len(label_names) else str(label)


def kind_of(example: Example) -> str:
    """``rated``, ``copy``, ``syntactic``, ``construction`` or ``rehearsal``, from the marks the set's builder leaves in the
    example's metadata."""
    meta = example.metadata or {}
    if meta.get("rehearsal"):
        return "rehearsal"
    if meta.get("syntactic"):
        return "syntactic"
    if meta.get("construction"):
        return "construction"
    if meta.get("augmented_from"):
        return "copy"
    return "rated"


def set_rows(examples: Sequence[Example], scored: Sequence[tuple[str, str, float]],
             label_names: Sequence[str] = LABEL_NAMES) -> list[SetRow]:
    """The rows of a fine-tuning set's ``examples``; ``scored`` is ``(anchor_id, example_id, score)`` of every rated
    pair in the order the set was built from (a sync's sorted pairs)."""
    pending = list(scored)
    anchor_of: dict[str, tuple[str, float]] = {}  # example id -> (anchor, score) of the rated row last seen
    rows: list[SetRow] = []
    for i, e in enumerate(examples):
        meta = e.metadata or {}
        kind = kind_of(e)
        source, anchor, score, augmenter = str(e.id), "", None, ""
        if kind == "rated":
            hit = next((j for j, (_, ex_id, _) in enumerate(pending) if ex_id == e.id), None)
            if hit is not None:
                anchor, _, score = pending.pop(hit)
                anchor_of[str(e.id)] = (anchor, score)
        elif kind == "copy":
            source = str(meta["augmented_from"])
            augmenter = str(meta.get("augmenter") or "") + (" (fill)" if meta.get("phase") == "fill" else "")
            anchor, score = anchor_of.get(source, ("", meta.get("score")))
            score = meta.get("score", score)
        elif kind in ("syntactic", "construction"):
            source = str(meta.get("transformed_from") or "")
            augmenter = f"{kind}:{meta[kind]}"
            root = source.split("~")[0]
            anchor, score = anchor_of.get(root, ("", meta.get("score")))
            score = meta.get("score", score)
        rows.append(SetRow(i + 1, kind, str(e.id), source, anchor, None if score is None else float(score),
                           augmenter, label_name(e.label, label_names), e.premise, e.hypothesis or ""))
    return rows


def kind_counts(rows: Iterable[SetRow]) -> dict[str, int]:
    """Rows per ``parts`` key of round.json (``rated``, ``copies``, ``syntactic``, ``rehearsal``)."""
    counts = Counter(KINDS[r.kind][1] for r in rows)
    return {part: counts.get(part, 0) for _, part in KINDS.values()}


def to_csv(rows: Iterable[SetRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**asdict(r), "score": "" if r.score is None else repr(r.score)})
    return out.getvalue()


def to_jsonl(rows: Iterable[SetRow]) -> str:
    return "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rows)


def write_set(path: str | Path, rows: Iterable[SetRow]) -> Path:
    """Write the rows as CSV (atomically); returns the path."""
    return write_text_atomic(Path(path), to_csv(rows))


def read_set(path: str | Path) -> list[SetRow]:
    """The rows of a ``fine_tuning_set.csv``."""
    with open(path, encoding="utf-8", newline="") as f:
        return [_row(r) for r in csv.DictReader(f)]


def _row(r: dict[str, Any]) -> SetRow:
    return SetRow(**{**r, "position": int(r["position"]), "score": float(r["score"]) if r["score"] else None})


def sync_rows(state, sync: dict[str, Any], label_names: Sequence[str] = LABEL_NAMES) -> list[SetRow]:
    """The fine-tuning set of a done sync (a row of :meth:`hildif.rounds.state.RoundState.syncs`): its
    ``fine_tuning_set.csv``, or, for a sync made before the file was kept, the same rows rebuilt from the examples the
    round state recorded (:meth:`~hildif.rounds.state.RoundState.augmented`) and the sync's scores."""
    path = Path(sync.get("report_dir") or "") / SET_FILE
    if sync.get("report_dir") and path.is_file():
        return read_set(path)
    scored = [(s["anchor_id"], s["example_id"], s["score"]) for s in state.scores(sync["sync_id"])
              if not s["pending"] and s["score"] is not None]
    return set_rows(state.augmented(sync["sync_id"]), scored, label_names)


def sample_rows(rows: Sequence[SetRow], per_kind: int = 3) -> list[SetRow]:
    """The first ``per_kind`` rows of each kind, kinds in the set's order."""
    seen: Counter = Counter()
    out = []
    for r in rows:
        if seen[r.kind] < per_kind:
            seen[r.kind] += 1
            out.append(r)
    return sorted(out, key=lambda r: (list(KINDS).index(r.kind), r.position))


__all__ = ["COLUMNS", "KINDS", "SET_FILE", "SetRow", "kind_counts", "kind_of", "label_name", "read_set", "sample_rows",
           "set_rows", "sync_rows", "to_csv", "to_jsonl", "write_set"]
