"""The named splits a round needs (train, dev, HANS, anchors), read from the data directory.

Data directory resolution: an explicit value (``--data-dir`` / ``data.data_dir``) > ``HILDIF_DATA_DIR`` > an error
that says how to get data (``hildif data fetch``).
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

from hildif.config import DataConfig, EvalConfig
from hildif.data.example import Example
from hildif.data.loaders import LoadStats, load_examples
from hildif.errors import HildifError

_NORMALISE = re.compile(r"[^a-z0-9]+")


class DataDirError(HildifError, FileNotFoundError):
    """No data directory, or a file missing in it; the message says how to fix it."""


def resolve_data_dir(explicit: str | Path | None = None) -> Path:
    candidate = explicit or os.environ.get("HILDIF_DATA_DIR")
    if not candidate:
        raise DataDirError(
            "no data directory: pass --data-dir, set HILDIF_DATA_DIR, or download the official HANS and MNLI "
            "files with `hildif data fetch --dest DIR` and point HILDIF_DATA_DIR at DIR"
        )
    path = Path(candidate).expanduser()
    if not path.is_dir():
        raise DataDirError(f"data directory {path} does not exist (from {'--data-dir' if explicit else 'HILDIF_DATA_DIR'})")
    return path


def data_file(cfg: DataConfig, relative: str) -> Path:
    path = Path(relative)
    if not path.is_absolute():
        path = resolve_data_dir(cfg.data_dir) / path
    if not path.exists():
        raise DataDirError(f"data file {path} not found (configured in the data section; `hildif data fetch` "
                           "downloads the official files)")
    return path


def text_key(example: Example) -> tuple[str, str]:
    """Lower-cased alphanumeric text of premise and hypothesis: equal for the same sentence pair in any
    tokenization (whatever its id; a rated pair's identity is :data:`hildif.feedback.ratings.PairKey`). A single
    text has ``""`` as its second part."""
    return _NORMALISE.sub("", example.premise.lower()), _NORMALISE.sub("", (example.hypothesis or "").lower())


def deduplicate(examples: list[Example]) -> list[Example]:
    """Keep the first example of each :func:`text_key` and make ids unique (``id#2`` for a repeated pairID)."""
    seen_keys: set[tuple[str, str]] = set()
    seen_ids: dict[str, int] = {}
    out = []
    for ex in examples:
        key = text_key(ex)
        if key in seen_keys:
            continue
        seen_keys.add(key)
        n = seen_ids.get(ex.id, 0) + 1
        seen_ids[ex.id] = n
        out.append(ex if n == 1 else Example(f"{ex.id}#{n}", ex.premise, ex.hypothesis, ex.label, ex.metadata))
    return out


def load_train(cfg: DataConfig, stats: list[LoadStats] | None = None) -> list[Example]:
    """All configured train files, without rows flagged ``text_artifacts_suspected`` (when configured), deduplicated,
    optionally subsampled to ``max_train_examples`` (seeded, so the same subset every time)."""
    examples: list[Example] = []
    for rel in cfg.train_files:
        st = LoadStats()
        rows = load_examples(data_file(cfg, rel), skip_bad_rows=cfg.skip_bad_rows, stats=st)
        if cfg.skip_suspected_artifacts:
            kept = [e for e in rows if not e.metadata.get("text_artifacts_suspected")]
            st.skipped["text_artifacts_suspected"] = len(rows) - len(kept)
            rows = kept
        examples += rows
        if stats is not None:
            stats.append(st)
    if cfg.deduplicate:
        examples = deduplicate(examples)
    if cfg.max_train_examples and len(examples) > cfg.max_train_examples:
        rng = random.Random(0)
        idx = sorted(rng.sample(range(len(examples)), cfg.max_train_examples))
        examples = [examples[i] for i in idx]
    return examples


def load_dev(cfg: DataConfig) -> list[Example]:
    return load_examples(data_file(cfg, cfg.dev_file), skip_bad_rows=cfg.skip_bad_rows)


def load_hans(cfg: DataConfig) -> list[Example]:
    return load_examples(data_file(cfg, cfg.hans_file), skip_bad_rows=cfg.skip_bad_rows)


def load_anchors(cfg: DataConfig) -> list[Example]:
    return load_examples(data_file(cfg, cfg.anchors_file), skip_bad_rows=cfg.skip_bad_rows)


def stratified_sample(examples: list[Example], n: int | None, key=lambda e: (e.metadata.get("heuristic"), e.label),
                      seed: int = 0) -> list[Example]:
    """Up to ``n`` examples with the strata of ``key`` (default: HANS heuristic x label) equally represented."""
    if not n or n >= len(examples):
        return list(examples)
    groups: dict[object, list[Example]] = {}
    for ex in examples:
        groups.setdefault(key(ex), []).append(ex)
    rng = random.Random(seed)
    per = max(1, n // len(groups))
    out: list[Example] = []
    for k in sorted(groups, key=str):
        g = groups[k]
        out += g if len(g) <= per else rng.sample(g, per)
    return out


def evaluation_sets(data: DataConfig, ev: EvalConfig) -> tuple[list[Example], list[Example]]:
    """The evaluation sets every model is scored on (base, round and ablation models alike): HANS stratified by
    heuristic x label to ``ev.hans_sample`` (None = all 30,000) and MNLI dev_matched stratified by label to
    ``ev.mnli_sample`` (None = all, natural class distribution). Returns ``(hans, mnli)``."""
    hans = stratified_sample(load_hans(data), ev.hans_sample)
    mnli = stratified_sample(load_dev(data), ev.mnli_sample, key=lambda e: e.label)
    return hans, mnli


_TRAIN_CACHE: dict[str, list[Example]] = {}


def cached_train(cfg: DataConfig) -> list[Example]:
    """:func:`load_train`, loaded once per process and data configuration (the rehearsal pool of every sync).
    Callers must not modify the returned list."""
    import dataclasses
    import json

    key = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str) + f"|{os.environ.get('HILDIF_DATA_DIR')}"
    if key not in _TRAIN_CACHE:
        _TRAIN_CACHE.clear()  # one training set at a time: it is the largest thing a process keeps
        _TRAIN_CACHE[key] = load_train(cfg)
    return _TRAIN_CACHE[key]
