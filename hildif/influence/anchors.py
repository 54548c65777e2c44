"""SELECT ANCHORS of Algorithm 1: pick anchor points from a validation pool.

By id (``pairID``s given directly, or in a file: one per line with ``#`` comments, or JSON Lines with a
``pairID`` per object such as the anchors file; see :func:`read_id_lines`), by rule, or at random:

``heuristic:NAME``   examples whose metadata ``heuristic`` equals NAME or whose ``heuristics`` list contains it
``label:NAME``       gold label ``entailment`` or ``non-entailment``
``misclassified``    the classifier's prediction differs from the gold label (needs a classifier)
``all``              the whole pool

Rules can be combined with ``+`` (``heuristic:lexical_overlap+misclassified``); ``random_n`` then samples from the
result with ``seed``.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Sequence

from hildif.data.example import LABEL_NAMES, Example
from hildif.data.loaders import _ID_KEYS
from hildif.errors import HildifError
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
        chosen += by_id_file(pool, ids_file)
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
