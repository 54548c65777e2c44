"""The training pool's frozen prefixes on disk, keyed on the weights they depend on, not on the model version.

A prefix (:mod:`hildif.influence.split`) is what the layers below the influence parameters make of an example: for a
``layers`` split the hidden state entering block ``first_layer`` (embeddings + blocks ``0 .. first_layer-1``), for a
``head`` split the pooled feature (the whole base model). What a new model version changes decides what stays valid:

* the prefixes: valid while the tensors they read are bit-for-bit the same. Their key covers exactly those tensors
  (every base-model tensor but the blocks from ``first_layer`` up and the pooler; for a ``head`` split every
  base-model tensor), the tokenizer, ``max_length`` and the training set. A FINE_TUNE that trains only the influence
  parameters (``finetune.train_params = influence``) leaves them valid, so the next version's pass over the pool runs
  only the blocks above the split; a FINE_TUNE of every layer (the default) gives a new key.
* the kNN features (pooler output): read the whole base model, so they change with the top blocks (recomputed here
  from the cached prefixes, which is the cheap part); the FAISS index is keyed on the base model alone
  (:meth:`hildif.influence.knn.FeatureIndex.cache_key`), so it stays valid when only the head changes.
* the gradient store: the influence parameters' gradients change with them; always rebuilt (from cached prefixes).

On disk, in the run's influence cache: the artifact ``prefix-<key>/`` (:mod:`hildif.utils.artifacts`, written in one
rename) with ``rows.npy`` ((rows, hidden) float32: every example's prefix rows one after another) and
``offsets.npy`` ((N + 1,) int64: example i is rows ``offsets[i]:offsets[i+1]``). The prefix of a 32k-pair pool for
MiniLM with FastIF's parameters (4 frozen blocks) is about 2 GB, hence opt-in: ``influence.prefix_cache``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from hildif.data.example import Example
from hildif.influence.knn import data_fingerprint
from hildif.influence.params import layer_index
from hildif.influence.split import Item, SplitModel
from hildif.utils.artifacts import ArtifactDir, ArtifactKeyError, key_digest

log = logging.getLogger(__name__)
PREFIX_KIND = "prefix/v1"
ARTIFACT = "prefix"
LEGACY_FILES = {".npy": "rows.npy", ".offsets.npy": "offsets.npy"}  # prefix-<key>.* before artifacts
ITEM_KEYS = {"layers": "hidden", "head": "pooled"}
DTYPES = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64}
CONFIG_FIELDS = ("model_type", "hidden_size", "num_attention_heads", "hidden_act", "layer_norm_eps",
                 "position_embedding_type", "type_vocab_size", "max_position_embeddings")


def frozen_names(split: SplitModel) -> list[str]:
    """The base-model state-dict names a ``layers`` or ``head`` prefix may read (conservatively: everything in the
    base model except, for ``layers``, the blocks from ``first_layer`` up and the pooler)."""
    names = list(split.model.base_model.state_dict())
    if split.kind == "head":
        return names
    return [n for n in names if not n.startswith("pooler.")
            and not ((li := layer_index(n)) is not None and li >= (split.first_layer or 0))]


def frozen_fingerprint(split: SplitModel) -> str:
    """sha256 (16 hex) of the names, shapes, dtypes and bytes of :func:`frozen_names`' tensors."""
    state = split.model.base_model.state_dict()
    h = hashlib.sha256()
    for name in frozen_names(split):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    for attr in ("do_lower_case", "truncation_side", "padding_side", "model_max_length"):
        h.update(f"{attr}={getattr(tokenizer, attr, None)!r};".encode())
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    h.update(json.dumps(sorted(vocab.items()), ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()[:16]


class PrefixCache:
    """The disk cache of one split model's pool prefixes (:meth:`load` / :meth:`save`); ``key`` is None when the
    split has nothing worth caching (``tokens``/``full``: its items are token ids)."""

    def __init__(self, split: SplitModel, train: Sequence[Example], cache_dir: str | Path) -> None:
        self.split, self.n = split, len(train)
        self.item_key = ITEM_KEYS.get(split.kind)
        self.key: str | None = None
        self.parts: dict | None = None
        self.frozen = None
        self.cache = ArtifactDir(cache_dir)
        if self.item_key is not None:
            config = getattr(split.model, "config", None)
            self.frozen = frozen_fingerprint(split)
            self.parts = {
                "frozen": self.frozen, "data": data_fingerprint(train), "n": len(train), "kind": split.kind,
                "first_layer": split.first_layer, "max_length": split.classifier.max_length,
                "tokenizer": tokenizer_fingerprint(split.classifier.tokenizer), "prefix": PREFIX_KIND,
                "config": {f: getattr(config, f, None) for f in CONFIG_FIELDS},
            }
            self.key = key_digest(self.parts)
        self.path = self.cache.path(ARTIFACT, self.parts) if self.parts else None

    def load(self, device: torch.device, version: str | None = None) -> list[Item] | None:
        """Every example's prefix (views into one tensor on ``device``), or None when there is no complete cache of
        this key (or it does not fit the pool: then it is rebuilt). ``version``: the model version reading it."""
        if self.parts is None:
            return None
        try:
            folder = self.cache.find(ARTIFACT, self.parts, version=version, legacy=LEGACY_FILES)
        except ArtifactKeyError as exc:
            log.warning("%s: recomputing", exc)
            return None
        if folder is None:
            return None
        try:
            rows = np.load(folder / "rows.npy")
            offsets = np.load(folder / "offsets.npy")
        except (OSError, ValueError) as exc:
            log.warning("prefix cache %s unreadable (%s): recomputing", folder.name, exc)
            return None
        squeeze = self.item_key == "pooled"
        if (rows.ndim != 2 or offsets.shape != (self.n + 1,) or offsets[0] != 0 or offsets[-1] != rows.shape[0]
                or np.any(np.diff(offsets) < (1 if not squeeze else 0))
                or (squeeze and not np.array_equal(offsets, np.arange(self.n + 1)))):
            log.warning("prefix cache %s does not fit a pool of %d examples: recomputing", folder.name, self.n)
            return None
        data = torch.from_numpy(rows).to(device)
        if squeeze:
            return [{"pooled": data[i]} for i in range(self.n)]
        return [{"hidden": data[int(offsets[i]) : int(offsets[i + 1])]} for i in range(self.n)]

    def save(self, items: Sequence[Item], model_version: str | None = None) -> bool:
        """Write ``items`` (every pool example, in order); False (nothing written) when their dtype cannot be."""
        if self.parts is None or len(items) != self.n or not items:
            return False
        first = items[0][self.item_key]
        if first.dtype not in DTYPES:
            return False
        sizes = [1 if self.item_key == "pooled" else int(it[self.item_key].shape[0]) for it in items]
        offsets = np.zeros(self.n + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(sizes)
        info = {"rows": int(offsets[-1]), "item": self.item_key}
        with self.cache.write(ARTIFACT, self.parts, version=model_version, info=info) as tmp:
            out = np.lib.format.open_memmap(tmp / "rows.npy", mode="w+", dtype=DTYPES[first.dtype],
                                            shape=(int(offsets[-1]), int(first.shape[-1])))
            for i, it in enumerate(items):  # one example at a time: no second copy of the whole pool in memory
                out[offsets[i] : offsets[i + 1]] = it[self.item_key].detach().cpu().reshape(sizes[i], -1).numpy()
            out.flush()
            del out
            np.save(tmp / "offsets.npy", offsets)
        log.info("frozen prefixes of %d examples written to %s", self.n, self.path)
        return True
