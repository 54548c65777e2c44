"""The gradient store: every training example's gradient of the influence parameters, randomly projected to
``dim`` numbers, float16 on disk, memory-mapped at query time (TRAK / TracInCPFastRandProj style).

With s_test = (H + lambda I)^-1 v the influence is I(z, x) = -s_test . grad L(z). A random projection S with
E[S^T S] = I keeps inner products on average, so -(S s_test) . (S grad L(z)) scores the whole pool with one (N, dim)
matrix-vector product; :func:`hildif.influence.explain.explain` then re-scores the store's best few hundred exactly
with the engine (``influence.store_rerank``). With FastIF's damping (lambda = 50) s_test is within a few per cent of
v / lambda, so without re-ranking the store needs no Hessian at all.

Projection: CountSketch (a sparse Johnson-Lindenstrauss map: coordinate i goes to bucket h(i) with sign s(i)), torch
ops only. For any x, y:  E[Sx . Sy] = x . y  and  Var[Sx . Sy] = (|x|^2 |y|^2 + (x . y)^2 - 2 sum_i x_i^2 y_i^2) / dim
<= 2 |x|^2 |y|^2 / dim, no more than a dense Gaussian projection's variance, at the cost of one pass over the P
gradient numbers per example instead of P x dim multiply-adds (3.7 M x 1,024 per example for MiniLM: hours for the
pool on 2 CPU cores).

Files, in the cache folder: ``store-<key>.npy`` ((N, dim) float16: each projected gradient divided by its norm),
``store-<key>.norm.npy`` ((N,) float32 norms; the split keeps float16 away from overflow and gives every row the same
relative precision) and ``store-<key>.json`` (written last: a store without it is incomplete and rebuilt). The key
covers the model's weights, the training set, the parameter choice, the weight decay, the dimension and the seed, so
a new model version gets a new store, as the kNN index does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from hildif.config import ConfigError
from hildif.influence.knn import data_fingerprint, model_fingerprint
from hildif.utils.atomic import write_json_atomic

log = logging.getLogger(__name__)
PROJECTION_KIND = "countsketch/v1"
ROW_CHUNK = 8192  # rows converted from float16 at a time when scoring


class CountSketch:
    """A seeded CountSketch from ``size`` to ``dim`` numbers: ``(B, size) -> (B, dim)`` (or ``(size,) -> (dim,)``)."""

    def __init__(self, size: int, dim: int, seed: int = 0) -> None:
        if dim < 1:
            raise ConfigError(f"influence.store_dim={dim}: must be at least 1")
        gen = torch.Generator().manual_seed(int(seed))
        self.size, self.dim = int(size), int(dim)
        self.bucket = torch.randint(0, self.dim, (self.size,), generator=gen)
        self.sign = torch.randint(0, 2, (self.size,), generator=gen).float() * 2 - 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        single = x.dim() == 1
        rows = x.reshape(1, -1) if single else x
        if rows.shape[1] != self.size:
            raise ValueError(f"projection of vectors of size {rows.shape[1]}, expected {self.size}")
        bucket, sign = self.bucket.to(rows.device), self.sign.to(rows.device, rows.dtype)
        out = torch.zeros(rows.shape[0], self.dim, dtype=rows.dtype, device=rows.device)
        out.index_add_(1, bucket, rows * sign)
        return out[0] if single else out


class GradientStore:
    """Projected training gradients of one model and training set.

    Attributes:
        rows: (N, dim) float16, unit rows (memory-mapped when read from disk); norms: (N,) float32.
        key, dim, from_cache, path (the ``.npy`` file, None without a cache folder), build_seconds (0 when read).
    """

    def __init__(self, rows: np.ndarray, norms: np.ndarray, projector: CountSketch, key: str, from_cache: bool,
                 path: Path | None, build_seconds: float = 0.0) -> None:
        self.rows, self.norms, self.projector = rows, norms, projector
        self.key, self.from_cache, self.path, self.build_seconds = key, from_cache, path, build_seconds

    @property
    def dim(self) -> int:
        return int(self.rows.shape[1])

    @property
    def size(self) -> int:
        return int(self.rows.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes on disk (or in memory) of the rows and norms."""
        return int(self.rows.nbytes + self.norms.nbytes)

    @staticmethod
    def cache_key(engine, dim: int, seed: int) -> str:
        clf = engine.classifier
        parts = {
            "model": model_fingerprint(clf.model), "data": data_fingerprint(engine.train), "n": len(engine.train),
            "max_length": clf.max_length, "params": list(engine.selection.names),
            "weight_decay": engine.objective.weight_decay, "dim": int(dim), "seed": int(seed),
            "projection": PROJECTION_KIND,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]

    # ------------------------------------------------------------------ build / load
    @classmethod
    def build_or_load(
        cls, engine, dim: int, cache_dir: str | Path | None = None, *, seed: int | None = None,
        progress: bool = False, on_batch: Callable[[list[int], torch.Tensor, np.ndarray | None], None] | None = None,
    ) -> "GradientStore":
        """The store of ``engine``'s model and training set: memory-mapped from ``cache_dir`` when its key matches,
        else built by one pass over the pool (:meth:`InfluenceEngine.sweep_pool`, which also keeps the frozen
        prefixes and gives the kNN features) and saved there.

        ``on_batch(indices, gradients (B, P), features or None)``: called for every batch of a build with the exact
        per-example gradients (e.g. to build the kNN index from the same pass, or for benchmarks' exact scores).
        """
        seed = engine.cfg.seed if seed is None else seed
        projector = CountSketch(engine.objective.size, dim, seed)
        key = cls.cache_key(engine, dim, seed)
        n = len(engine.train)
        path = Path(cache_dir) / f"store-{key}.npy" if cache_dir else None
        if path is not None:
            loaded = cls._load(path, n, dim)
            if loaded is not None:
                log.info("gradient store read from %s", path)
                return cls(loaded[0], loaded[1], projector, key, True, path)
        start = time.perf_counter()
        rows = np.zeros((n, dim), dtype=np.float16)
        norms = np.zeros(n, dtype=np.float32)
        for idx, batch, feats in engine.sweep_pool(progress=progress, desc="gradient store"):
            grads = engine.objective.per_example_grads(batch)
            if on_batch is not None:
                on_batch(idx, grads, feats)
            proj = projector(grads).double()
            norm = proj.norm(dim=1)
            rows[idx] = (proj / norm.clamp_min(1e-30)[:, None]).float().cpu().numpy().astype(np.float16)
            norms[idx] = norm.float().cpu().numpy()
        seconds = time.perf_counter() - start
        if path is not None:
            cls._save(path, rows, norms, {"key": key, "n": n, "dim": int(dim), "seed": int(seed),
                                          "projection": PROJECTION_KIND, "model_version": engine.classifier.version,
                                          "params": engine.cfg.params, "build_seconds": round(seconds, 1)})
        return cls(rows, norms, projector, key, False, path, seconds)

    @staticmethod
    def _load(path: Path, n: int, dim: int) -> tuple[np.ndarray, np.ndarray] | None:
        meta_path, norm_path = path.with_suffix(".json"), path.with_suffix(".norm.npy")
        if not (path.exists() and norm_path.exists() and meta_path.exists()):
            return None
        try:
            rows = np.load(path, mmap_mode="r")
            norms = np.load(norm_path)
        except (OSError, ValueError) as exc:
            log.warning("gradient store %s unreadable (%s): rebuilding", path.name, exc)
            return None
        if rows.shape != (n, dim) or rows.dtype != np.float16 or norms.shape != (n,):
            log.warning("gradient store %s has shape %s, expected (%d, %d): rebuilding", path.name, rows.shape, n, dim)
            return None
        return rows, norms

    @staticmethod
    def _save(path: Path, rows: np.ndarray, norms: np.ndarray, meta: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, array in ((path, rows), (path.with_suffix(".norm.npy"), norms)):
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, array)
            os.replace(tmp, target)
        write_json_atomic(path.with_suffix(".json"), meta)

    # ------------------------------------------------------------------ queries
    def dots(self, vec: torch.Tensor, indices: Sequence[int] | None = None) -> np.ndarray:
        """Approximate vec . grad L(z) for every training example (or ``indices``), float64: (S vec) . (S grad L(z))."""
        q = self.projector(vec.detach().float().cpu()).numpy().astype(np.float32)
        rows = self.rows if indices is None else self.rows[np.asarray(indices, dtype=np.int64)]
        norms = self.norms if indices is None else self.norms[np.asarray(indices, dtype=np.int64)]
        out = np.empty(len(rows), dtype=np.float64)
        for start in range(0, len(rows), ROW_CHUNK):
            part = np.asarray(rows[start : start + ROW_CHUNK], dtype=np.float32)
            out[start : start + len(part)] = part @ q
        return out * norms

    def influence(self, vec: torch.Tensor) -> np.ndarray:
        """Approximate I(z, x) = -vec . grad L(z) for the whole pool, ``vec`` = s_test (or v / lambda)."""
        return -self.dots(vec)
