"""The kNN prefilter: a FAISS index over the classifier's features of the training set, cached on disk.

Features are :meth:`Classifier.features` (the pooler output, eval mode), float32 (n, hidden). The index is exact L2
(``IndexFlatL2``) by default, or approximate (``IndexIVFFlat``, nlist ~ 4 sqrt(n), nprobe = nlist / 8) for large
training sets; it moves to the GPU when faiss has GPUs and the classifier is on CUDA.

Cache key: sha256 of the weights the features read (every tensor of the base model's state dict, the encoder and
pooler, so in-place training invalidates it, but a change of the classification head alone does not), a
fingerprint of the training set (ids, texts and labels in order), the feature definition and the index kind. On disk:
the artifact ``<cache_dir>/knn-<key>/`` (:mod:`hildif.utils.artifacts`: ``index.faiss`` and ``artifact.json``); a
run keeps them in one folder, :func:`index_cache_dir`.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import faiss
import numpy as np
import torch

from hildif.config import ConfigError
from hildif.data.example import Example
from hildif.model.classifier import Classifier
from hildif.utils.artifacts import ArtifactDir, ArtifactKeyError, key_digest

if TYPE_CHECKING:  # pragma: no cover
    from hildif.config import HildifConfig

log = logging.getLogger(__name__)
FEATURE_KIND = "pooler_output/v1"
ARTIFACT = "knn"
INDEX_FILE = "index.faiss"
LEGACY_FILES = {".faiss": INDEX_FILE}  # knn-<key>.faiss (+ .json) before artifacts
INDEX_KINDS = ("flat", "ivf")


def index_cache_dir(cfg: "HildifConfig") -> Path:
    """The run's one folder of kNN indexes, ``<cache>/influence``: a round's start, ``hildif explain`` and the
    ablation all read and write it, so an index is built once per model and training set."""
    return cfg.cache_path("influence")


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 (16 hex) over the names, shapes and bytes of every state-dict tensor."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def feature_module(model: torch.nn.Module) -> torch.nn.Module:
    """The part of ``model`` that :meth:`Classifier.features` reads: its base model (encoder + pooler), not the
    head; the whole model where it has no separate base model."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, torch.nn.Module) else model


def data_fingerprint(examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for e in examples:
        h.update(f"{e.id}\t{e.premise}\t{e.hypothesis}\t{e.label}\n".encode("utf-8"))
    return h.hexdigest()[:16]


def _use_gpu(classifier: Classifier) -> bool:
    return classifier.device.type == "cuda" and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _cpu_shards(index: "faiss.Index", shards: int) -> "faiss.Index":
    """``index`` split into ``shards`` consecutive slices of its vectors (a ``faiss.IndexShards`` with successive
    ids, so the ids it returns are the original ones); each shard a clone of ``index`` (same quantizer, nprobe)."""
    n = int(index.ntotal)
    if isinstance(index, faiss.IndexIVF):
        index.make_direct_map()
    vectors = index.reconstruct_n(0, n)
    sharded = faiss.IndexShards(index.d, True, True)  # threaded search, successive ids
    for chunk in np.array_split(np.arange(n), min(shards, n)):
        part = faiss.clone_index(index)
        part.reset()
        part.add(np.ascontiguousarray(vectors[chunk]))
        sharded.add_shard(part)
        part.this.disown()  # the C++ IndexShards owns (and frees) its shards, not Python
    sharded.own_indices = True
    return sharded


class FeatureIndex:
    """A FAISS index over training features.

    Attributes:
        key: the cache key; kind: ``flat`` or ``ivf``; size: number of vectors; dim: feature size;
        from_cache: whether it was read from disk; path: its artifact folder (None without a cache dir).
    """

    def __init__(self, index: "faiss.Index", key: str, kind: str, from_cache: bool, path: Path | None) -> None:
        self.index = index
        self.key = key
        self.kind = kind
        self.from_cache = from_cache
        self.path = path

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @staticmethod
    def key_parts(classifier: Classifier, examples: Sequence[Example], kind: str) -> dict:
        return {
            "model": model_fingerprint(feature_module(classifier.model)), "data": data_fingerprint(examples),
            "n": len(examples), "features": FEATURE_KIND, "max_length": classifier.max_length, "index": kind,
        }

    @classmethod
    def cache_key(cls, classifier: Classifier, examples: Sequence[Example], kind: str) -> str:
        return key_digest(cls.key_parts(classifier, examples, kind))

    @classmethod
    def is_cached(cls, classifier: Classifier, examples: Sequence[Example], kind: str,
                  cache_dir: str | Path | None) -> bool:
        """Whether ``cache_dir`` holds this index's artifact (complete, of this key)."""
        if not cache_dir:
            return False
        try:
            return ArtifactDir(cache_dir).find(ARTIFACT, cls.key_parts(classifier, examples, kind)) is not None
        except ArtifactKeyError:
            return False

    @classmethod
    def build(cls, features: np.ndarray, kind: str = "flat", use_gpu: bool = False, key: str = "",
              shards: int = 1) -> "FeatureIndex":
        return cls(cls._place(cls._make(features, kind), use_gpu, shards), key, kind, False, None)

    @staticmethod
    def _make(features: np.ndarray, kind: str) -> "faiss.Index":
        """The CPU index over ``features`` (n, d): what is cached on disk, before :meth:`_place`."""
        if kind not in INDEX_KINDS:
            raise ConfigError(f"influence.index={kind!r}: expected one of {INDEX_KINDS}")
        feats = np.ascontiguousarray(features, dtype=np.float32)
        n, d = feats.shape
        if kind == "flat":
            index = faiss.IndexFlatL2(d)
        else:
            nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
            index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
            index.train(feats)
            index.nprobe = max(1, nlist // 8)
        index.add(feats)
        return index

    @staticmethod
    def _place(index: "faiss.Index", use_gpu: bool, shards: int = 1) -> "faiss.Index":
        """Where the index is searched: as it is (CPU), on GPU 0, or split into ``shards`` (``influence.index_shards``)
        whose results faiss merges, so a pool too large for one device fits: with several GPUs each shard goes to its
        own GPU (faiss's sharding cloner), on CPU the shards are searched in parallel threads. Sharding does not
        change the results: every shard has the same quantizer and search parameters."""
        if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
            raise ConfigError(f"influence.index_shards={shards!r}: must be an integer >= 1")
        if shards == 1 or index.ntotal < 2:
            if not use_gpu:
                return index
            res = faiss.StandardGpuResources()  # pragma: no cover - needs faiss-gpu and CUDA
            return faiss.index_cpu_to_gpu(res, 0, index)  # pragma: no cover
        if use_gpu:  # pragma: no cover - needs faiss-gpu and several GPUs
            co = faiss.GpuMultipleClonerOptions()
            co.shard = True
            return faiss.index_cpu_to_all_gpus(index, co=co, ngpu=min(shards, faiss.get_num_gpus()))
        return _cpu_shards(index, shards)

    @classmethod
    def build_or_load(
        cls,
        classifier: Classifier,
        examples: Sequence[Example],
        kind: str = "flat",
        cache_dir: str | Path | None = None,
        batch_size: int = 128,
        progress: bool = False,
        features: Callable[[], np.ndarray | None] | None = None,
        shards: int = 1,
    ) -> "FeatureIndex":
        """The index for this model and training set: read from ``cache_dir`` when its key matches, else built from
        the features (and saved there).

        ``features``: computes the training set's features when the index has to be built (e.g.
        :meth:`InfluenceEngine.pool_features`, which keeps the frozen prefix from the same pass); when it is absent
        or returns None, :meth:`Classifier.features` does. ``shards``: see :meth:`_place` (the cache holds the one
        unsharded index, so the setting can change without a rebuild).
        """
        if kind not in INDEX_KINDS:
            raise ConfigError(f"influence.index={kind!r}: expected one of {INDEX_KINDS}")
        parts = cls.key_parts(classifier, examples, kind)
        key = key_digest(parts)
        use_gpu = _use_gpu(classifier)
        cache = ArtifactDir(cache_dir) if cache_dir else None
        path = cache.path(ARTIFACT, parts) if cache is not None else None
        if cache is not None:
            try:
                folder = cache.find(ARTIFACT, parts, version=classifier.version, legacy=LEGACY_FILES)
            except ArtifactKeyError as exc:
                log.warning("%s: rebuilding", exc)
                folder = None
            if folder is not None:
                index = faiss.read_index(str(folder / INDEX_FILE))
                if index.ntotal == len(examples):
                    log.info("kNN index read from %s", folder)
                    return cls(cls._place(index, use_gpu, shards), key, kind, True, folder)
                log.warning("cached index %s has %d vectors, expected %d: rebuilding", folder, index.ntotal,
                            len(examples))
        feats = features() if features is not None else None
        if feats is None:
            feats = classifier.features(examples, batch_size=batch_size, progress=progress)
        cpu_index = cls._make(feats, kind)
        built = cls(cls._place(cpu_index, use_gpu, shards), key, kind, False, path)
        if cache is not None:
            with cache.write(ARTIFACT, parts, version=classifier.version,
                             info={"n": len(examples), "dim": int(feats.shape[1])}) as tmp:
                faiss.write_index(cpu_index, str(tmp / INDEX_FILE))
        return built

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices), each (m, min(k, size)); squared L2 distances, nearest first."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.dim:
            raise ValueError(f"query features have size {q.shape[1]}, the index {self.dim}")
        return self.index.search(q, min(k, self.size))
