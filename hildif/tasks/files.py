"""Examples of a task from CSV/TSV, JSONL (or a JSON array) and Parquet files, through the task's column mapping.

==================  ===================================================================================
file name           read as
==================  ===================================================================================
``*.csv[.gz]``      comma-separated, a header row first (row numbers are file lines)
``*.tsv[.gz]``      tab-separated, a header row first, no quoting
``*.jsonl[.gz]``    one JSON object per line
``*.json``          one JSON array of objects (row = position in the array, from 1)
``*.parquet``       Apache Parquet (needs ``pyarrow``; row = position in the file, from 1)
==================  ===================================================================================

The task names the text column (``task.text``, and ``task.text_pair`` for pairs), the label column (``task.label``)
and optionally an id column (``task.id``). A row whose label is missing or empty is unlabelled: it is not an example
and is counted in :class:`~hildif.data.loaders.LoadStats` as ``unlabelled``. Every other column is kept in the
example's ``metadata`` (the evaluation's slices read it), with ``source_file``. A bad row raises
:class:`hildif.data.loaders.DataFormatError` naming the file, the row and the field (never the cell's content); with
``skip_bad_rows`` it is counted instead.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from hildif.data.example import Example, stable_id
from hildif.data.loaders import DataFormatError, LoadStats, jsonl_rows, open_text
from hildif.tasks.definition import TaskDefinition, TaskError

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
PARQUET_BATCH_ROWS = 4096

Row = tuple[int, "dict[str, Any] | DataFormatError"]


def table_kind(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    for suffix in TABLE_SUFFIXES:
        if name.endswith(suffix):
            if suffix == ".parquet" and path.name.lower().endswith(".gz"):
                break
            return suffix[1:]
    raise TaskError(f"{path}: unknown file type (expected {', '.join(TABLE_SUFFIXES)}; .gz allowed except Parquet)")


def _delimited_rows(path: Path, delimiter: str) -> Iterator[Row]:
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataFormatError(path, 1, f"unreadable header row: {exc}") from None
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise DataFormatError(path, 1, f"header row: columns {', '.join(map(repr, dup))} appear twice")
        if any(not h for h in header):
            raise DataFormatError(path, 1, "header row: an empty column name")
        line = reader.line_num
        while True:
            start = line + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a field larger than csv.field_size_limit(), an unclosed quote
                yield start, DataFormatError(path, start, f"unreadable row: {exc}")
                return
            line = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) > len(header):
                yield start, DataFormatError(path, start,
                                             f"{len(cells)} cells but the header has {len(header)} columns")
                continue
            yield start, dict(zip(header, cells))


def _json_array_rows(path: Path) -> Iterator[Row]:
    with open_text(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, exc.lineno, f"broken JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(data, list):
        raise DataFormatError(path, 1, "a .json task file must hold one array of objects (use .jsonl for lines)")
    for i, row in enumerate(data, start=1):
        yield i, row if isinstance(row, dict) else DataFormatError(path, i, "array element is not an object")


def _parquet_rows(path: Path) -> Iterator[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TaskError(f"{path}: reading Parquet needs the pyarrow package (pip install pyarrow)") from None
    try:
        reader = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError subclasses for a file that is not Parquet
        raise DataFormatError(path, 0, f"not a readable Parquet file ({type(exc).__name__})") from None
    n = 0
    for batch in reader.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            n += 1
            yield n, row


def iter_table(path: str | Path) -> Iterator[Row]:
    """``(row number, row dict | DataFormatError)`` for every row of a CSV/TSV, JSONL, JSON-array or Parquet file."""
    path = Path(path)
    kind = table_kind(path)
    if kind == "csv":
        yield from _delimited_rows(path, ",")
    elif kind == "tsv":
        yield from _delimited_rows(path, "\t")
    elif kind == "jsonl":
        yield from jsonl_rows(path)
    elif kind == "json":
        yield from _json_array_rows(path)
    else:
        yield from _parquet_rows(path)


def _text(row: dict[str, Any], name: str, setting: str, path: Path, line: int) -> str:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataFormatError(path, line, f"field {name!r} ({setting}) is missing or empty")
    if not isinstance(value, str):
        raise DataFormatError(path, line, f"field {name!r} ({setting}) must be text, not {type(value).__name__}")
    return value.strip()


def label_value(value: Any) -> str | None:
    """A label cell as the string the label set holds (``"2"`` for 2); None when missing. Lists, objects,
    booleans and non-integral numbers are not labels (TypeError)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(type(value).__name__)
    if isinstance(value, float):
        if not value.is_integer():
            raise TypeError("a fractional number")
        value = int(value)
    return str(value).strip()


def _row_example(row: dict[str, Any], task: TaskDefinition, path: Path, line: int) -> tuple[Example, str] | None:
    """An example whose label is still the raw string (``label`` -1) and that string; None for an unlabelled row."""
    texts = [_text(row, name, setting, path, line)
             for name, setting in zip(task.text_fields, ("task.text", "task.text_pair"))]
    try:
        raw = label_value(row.get(task.label_field))
    except TypeError as exc:
        raise DataFormatError(path, line, f"field {task.label_field!r} (task.label) holds {exc}, not a label") from None
    if raw is None:
        return None
    if task.id_field:
        ident = row.get(task.id_field)
        if ident is None or isinstance(ident, (bool, dict, list)) or not str(ident).strip():
            raise DataFormatError(path, line, f"field {task.id_field!r} (task.id) is missing or not a scalar")
        ex_id = str(ident).strip()
    else:
        ex_id = stable_id(texts[0], texts[1] if len(texts) > 1 else "", prefix="t")
    used = set(task.text_fields) | {task.label_field, task.id_field}
    metadata = {k: v for k, v in row.items() if k not in used and v is not None}
    metadata["source_file"] = path.name
    second = texts[1] if len(texts) > 1 else None
    return Example(ex_id, texts[0], second, -1, metadata), raw


Labelled = tuple[Example, str, str, int]  # (example with label -1, raw label, file, row)


def read_labelled(path: str | Path, task: TaskDefinition, *, skip_bad_rows: bool = False,
                  stats: LoadStats | None = None) -> list[Labelled]:
    """Every row of one file as ``(example with label -1, raw label, file, row number)``; labels are mapped by
    :func:`assign_labels` once the label set is known (it may come from all files together)."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"task file {path} not found (task.files / task.eval_files; relative paths are in the data "
                        "directory)")
    stats = stats if stats is not None else LoadStats()
    stats.file = str(path)
    out: list[Labelled] = []
    for line, row in iter_table(path):
        stats.rows += 1
        try:
            if isinstance(row, DataFormatError):
                raise row
            found = _row_example(row, task, path, line)
        except DataFormatError as exc:
            if not skip_bad_rows:
                raise
            stats.skip("bad_row", str(exc))
            continue
        if found is None:
            stats.skip("unlabelled")
            continue
        out.append((found[0], found[1], str(path), line))
    return out


def assign_labels(rows: list[Labelled], labels: tuple[str, ...], field: str, *, skip_bad_rows: bool = False,
                  stats: LoadStats | None = None) -> list[Example]:
    """Map raw labels to class indices of ``labels``; a value outside the set names its file, row and ``field``."""
    index = {name: i for i, name in enumerate(labels)}
    out = []
    for ex, raw, file, line in rows:
        if raw not in index:
            err = DataFormatError(file, line, f"field {field!r} holds a value outside the task's label set "
                                              f"({len(labels)} labels: {', '.join(labels)}; task.labels)")
            if not skip_bad_rows:
                raise err
            if stats is not None:
                stats.skip("unknown_label", str(err))
            continue
        out.append(Example(ex.id, ex.premise, ex.hypothesis, index[raw], ex.metadata))
    return out
