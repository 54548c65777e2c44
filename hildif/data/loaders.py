"""Readers for every MNLI and HANS file form hildif accepts. Nothing else in hildif knows file formats.

Accepted forms (detected from the file name and, for tabular files, the header):

==========================================  =====================================================================
form                                        fields used
==========================================  =====================================================================
MNLI jsonl (multinli_1.0_*.jsonl)           sentence1, sentence2, gold_label, pairID, promptID, genre
shared jsonl.gz (MNLI / HANS)               sentence1|sentence1_tok, sentence2|sentence2_tok, gold_label, pairID,
                                            heuristic, subcase, template, genre, ...
GLUE MNLI tsv (train.tsv, dev_matched.tsv)  header with sentence1, sentence2, gold_label (last column), pairID, genre
HANS txt (heuristics_*_set.txt)             header with gold_label, sentence1, sentence2, pairID, heuristic,
                                            subcase, template
==========================================  =====================================================================

Labels become binary as in the paper (neutral + contradiction -> non-entailment). Every example gets a stable id:
its pairID, or a hash of its text (:func:`hildif.data.example.stable_id`) when there is none. All other fields are
kept in ``metadata``. MNLI rows whose gold label is ``-`` (no annotator consensus) are not examples: they are
skipped and counted in :class:`LoadStats` as ``no_consensus``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from hildif.data.example import Example, binary_label, stable_id
from hildif.errors import HildifError

log = logging.getLogger(__name__)

_PREMISE_KEYS = ("sentence1", "sentence1_tok", "premise")
_HYPOTHESIS_KEYS = ("sentence2", "sentence2_tok", "hypothesis")
_LABEL_KEYS = ("gold_label", "label")
_ID_KEYS = ("pairID", "pair_id", "id")
_TEXT_FIELDS = set(_PREMISE_KEYS + _HYPOTHESIS_KEYS) | {
    "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse", "sentence2_parse",
}


class DataFileNotFoundError(HildifError, FileNotFoundError):
    """A data file that was named (in the configuration or on the command line) does not exist."""


class DataFormatError(HildifError, ValueError):
    """A row cannot be read. ``file`` and ``line`` (1-based, counting a header) say where, ``reason`` what."""

    def __init__(self, file: str | Path, line: int, reason: str) -> None:
        self.file, self.line, self.reason = str(file), line, reason
        super().__init__(f"{file}:{line}: {reason}")


@dataclass
class LoadStats:
    """What a load read and skipped. ``skipped`` maps a reason to a count; ``errors`` keeps the first few."""

    file: str = ""
    rows: int = 0
    loaded: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def skip(self, reason: str, detail: str | None = None) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if detail and len(self.errors) < 20:
            self.errors.append(detail)


def open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _first(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = row.get(key)
        if value is not None and value != "":
            return value
    return None


def row_to_example(row: dict[str, Any], file: str | Path, line: int) -> Example | None:
    """Turn one parsed row into an Example; ``None`` for MNLI's no-consensus label ``-``.

    Raises :class:`DataFormatError` for a missing premise, hypothesis or label, or an unknown label.
    """
    premise = _first(row, _PREMISE_KEYS)
    hypothesis = _first(row, _HYPOTHESIS_KEYS)
    raw_label = _first(row, _LABEL_KEYS)
    for name, value in (("sentence1/premise", premise), ("sentence2/hypothesis", hypothesis),
                        ("gold_label", raw_label)):
        if value is None:
            raise DataFormatError(file, line, f"missing field {name}")
    if not isinstance(premise, str) or not isinstance(hypothesis, str):
        raise DataFormatError(file, line, "premise and hypothesis must be strings")
    if raw_label == "-":
        return None
    try:
        label = binary_label(raw_label)
    except ValueError as exc:
        raise DataFormatError(file, line, str(exc)) from None
    pair_id = _first(row, _ID_KEYS)
    ex_id = str(pair_id) if pair_id is not None else stable_id(premise.strip(), hypothesis.strip())
    metadata = {k: v for k, v in row.items() if k not in _TEXT_FIELDS and v is not None and k not in _ID_KEYS}
    if "gold_label" not in metadata and "label" in metadata:
        metadata["gold_label"] = metadata.pop("label")
    metadata["source_file"] = Path(file).name
    return Example(id=ex_id, premise=premise.strip(), hypothesis=hypothesis.strip(), label=label, metadata=metadata)


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | DataFormatError]]:
    with open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield line_no, DataFormatError(path, line_no, f"broken JSON: {exc.msg} (column {exc.colno})")
                continue
            if not isinstance(row, dict):
                yield line_no, DataFormatError(path, line_no, "a JSON line must be an object")
                continue
            yield line_no, row


def _tsv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | DataFormatError]]:
    with open_text(path) as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            header = next(reader)
        except StopIteration:
            return
        header = [h.strip() for h in header]
        if "sentence1" not in header or "sentence2" not in header:
            raise DataFormatError(path, 1, f"header lacks sentence1/sentence2 columns: {header[:12]}")
        # GLUE MNLI puts the gold label last (label1..label5 precede it in train/dev files).
        label_col = "gold_label" if "gold_label" in header else None
        for line_no, cells in enumerate(reader, start=2):
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) < len(header):
                yield line_no, DataFormatError(
                    path, line_no, f"expected {len(header)} tab-separated columns, found {len(cells)}"
                )
                continue
            row = dict(zip(header, cells))
            if label_col is None or header[0] == "index":
                row["gold_label"] = cells[-1]
            yield line_no, row


def iter_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | DataFormatError]]:
    """Yield ``(line_number, row_dict | DataFormatError)`` for any supported file."""
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".json")):
        yield from jsonl_rows(path)
    elif name.endswith((".tsv", ".txt")):
        yield from _tsv_rows(path)
    else:
        raise DataFormatError(path, 0, "unknown file type (expected .jsonl[.gz], .tsv or HANS .txt)")


def load_examples(
    path: str | Path,
    *,
    skip_bad_rows: bool = False,
    stats: LoadStats | None = None,
) -> list[Example]:
    """Read every example of one file.

    Args:
        path: an MNLI or HANS file in any form listed in the module docstring.
        skip_bad_rows: when False (default) the first bad row raises :class:`DataFormatError` naming the file and
            line; when True bad rows are skipped and counted in ``stats.skipped`` (and logged once).
        stats: filled in with counts when given.
    Returns:
        the examples in file order.
    """
    path = Path(path)
    if not path.exists():
        raise DataFileNotFoundError(f"data file not found: {path}")
    stats = stats if stats is not None else LoadStats()
    stats.file = str(path)
    examples: list[Example] = []
    for line_no, row in iter_rows(path):
        stats.rows += 1
        try:
            if isinstance(row, DataFormatError):
                raise row
            ex = row_to_example(row, path, line_no)
        except DataFormatError as exc:
            if not skip_bad_rows:
                raise
            stats.skip("bad_row", str(exc))
            continue
        if ex is None:
            stats.skip("no_consensus")
            continue
        examples.append(ex)
    stats.loaded = len(examples)
    if stats.skipped:
        log.warning("%s: loaded %d rows, skipped %s", path, stats.loaded, stats.skipped)
    return examples
