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

On disk, in the cache folder: the artifact ``store-<key>/`` (:mod:`hildif.utils.artifacts`, written in one rename)
with ``rows.npy`` ((N, dim) float16: each projected gradient divided by its norm) and ``norms.npy`` ((N,) float32
norms; the split keeps float16 away from overflow and gives every row the same relative precision). The key covers
the model's weights, the training set, the parameter choice, the weight decay, the dimension and the seed, so a new
model version gets a new store, as the kNN index does.

``influence.store_build = projected`` (default ``exact``, the above) builds :class:`ProjectedStore` instead: no full
gradient, each linear layer's gradient projected as (G P_out)^T (X P_in) from one forward and backward pass per batch
(:mod:`hildif.influence.projected`), the rows streamed to disk, with its own curvature for queries without s_test.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hildif.config import ConfigError
from hildif.influence.knn import data_fingerprint, model_fingerprint
from hildif.influence.projected import FactoredProjection, ProjectedCurvature, ggn_factors, projected_batch
from hildif.model.classifier import length_sorted_batches
from hildif.utils.artifacts import ArtifactDir, ArtifactKeyError, key_digest

log = logging.getLogger(__name__)
PROJECTION_KIND = "countsketch/v1"
ROW_CHUNK = 8192  # rows converted from float16 at a time when scoring


ARTIFACT = "store"
ROWS, NORMS, CURVATURE = "rows.npy", "norms.npy", "curvature.npy"  # the files of a store's artifact


LEGACY_FILES = {".npy": ROWS, ".norm.npy": NORMS}  # store-<key>.* before artifacts (+ .curv.npy: projected)


def find_store(cache: ArtifactDir, parts: dict, version: str | None,
               legacy: dict[str, str] = LEGACY_FILES) -> Path | None:
    """The folder of the store of key ``parts`` in ``cache``, None when there is none (or it holds another key:
    then it is not read, and rebuilt)."""
    try:
        return cache.find(ARTIFACT, parts, version=version, legacy=legacy)
    except ArtifactKeyError as exc:
        log.warning("%s: rebuilding", exc)
        return None


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
    def key_parts(engine) -> dict:
        """What every store's key covers: the model's weights, the training set, the parameters, the weight decay."""
        clf = engine.classifier
        return {
            "model": model_fingerprint(clf.model), "data": data_fingerprint(engine.train), "n": len(engine.train),
            "max_length": clf.max_length, "params": list(engine.selection.names),
            "weight_decay": engine.objective.weight_decay,
        }

    @staticmethod
    def exact_key(engine, dim: int, seed: int) -> dict:
        return {**GradientStore.key_parts(engine), "dim": int(dim), "seed": int(seed), "projection": PROJECTION_KIND}

    @staticmethod
    def cache_key(engine, dim: int, seed: int) -> str:
        return key_digest(GradientStore.exact_key(engine, dim, seed))

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

        ``influence.store_build = projected``: :meth:`ProjectedStore.build_or_load` instead (``on_batch`` then gets
        the projected gradients, (B, D)).
        """
        if getattr(engine.cfg, "store_build", "exact") == "projected":
            return ProjectedStore.build_or_load(engine, dim, cache_dir, seed=seed, progress=progress,
                                                on_batch=on_batch)
        seed = engine.cfg.seed if seed is None else seed
        projector = CountSketch(engine.objective.size, dim, seed)
        parts = cls.exact_key(engine, dim, seed)
        key = key_digest(parts)
        n = len(engine.train)
        cache = ArtifactDir(cache_dir) if cache_dir else None
        path = cache.path(ARTIFACT, parts) if cache is not None else None
        folder = find_store(cache, parts, engine.classifier.version) if cache is not None else None
        loaded = cls._load(folder, n, dim) if folder is not None else None
        if loaded is not None:
            log.info("gradient store read from %s", folder)
            return cls(loaded[0], loaded[1], projector, key, True, folder)
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
        if cache is not None:
            cls.save(cache, parts, rows, norms, version=engine.classifier.version,
                     info={"params": engine.cfg.params, "build_seconds": round(seconds, 1)})
        return cls(rows, norms, projector, key, False, path, seconds)

    @staticmethod
    def _load(folder: Path, n: int, dim: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(rows memory-mapped, norms) of the store in ``folder``, None when they do not fit (n, dim)."""
        try:
            rows = np.load(folder / ROWS, mmap_mode="r")
            norms = np.load(folder / NORMS)
        except (OSError, ValueError) as exc:
            log.warning("gradient store %s unreadable (%s): rebuilding", folder.name, exc)
            return None
        if rows.shape != (n, dim) or rows.dtype != np.float16 or norms.shape != (n,):
            log.warning("gradient store %s has shape %s, expected (%d, %d): rebuilding", folder.name, rows.shape, n,
                        dim)
            return None
        return rows, norms

    @staticmethod
    def save(cache: ArtifactDir, parts: dict, rows: np.ndarray, norms: np.ndarray, *, version: str | None = None,
             info: dict | None = None) -> Path:
        """Write a store of key ``parts`` (:meth:`exact_key`) into ``cache``; its folder."""
        with cache.write(ARTIFACT, parts, version=version, info=info) as tmp:
            np.save(tmp / ROWS, rows)
            np.save(tmp / NORMS, norms)
        return cache.path(ARTIFACT, parts)

    # ------------------------------------------------------------------ queries
    def dots(self, vec: torch.Tensor, indices: Sequence[int] | None = None) -> np.ndarray:
        """Approximate vec . grad L(z) for every training example (or ``indices``), float64: (S vec) . (S grad L(z))."""
        return self.row_dots(self.projector(vec.detach().float().cpu()).numpy().astype(np.float32), indices)

    def row_dots(self, q: np.ndarray, indices: Sequence[int] | None = None) -> np.ndarray:
        """q . (projected gradient) for every training example (or ``indices``), float64, q: (dim,) float32."""
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


# ---------------------------------------------------------------------------------------------- projected build
STORE_BUILDS = ("exact", "projected")
PROJECTED_KIND = "projected/v1"  # the file layout and curvature of :class:`ProjectedStore`


def _pool_batches(engine, progress: bool, desc: str) -> Iterator[tuple[list[int], dict]]:
    """The pool in the engine's length-sorted batches as tail batches, inside the engine's mode. Prefixes the engine
    keeps (the kNN pass's, or the prefix cache's) are reused; missing ones are computed per batch and kept when the
    whole pool's fit ``prefix_memory_mb`` (as :meth:`InfluenceEngine.sweep_pool`), but no kNN features are run: the
    pass's own forward gives them (the pooler's output)."""
    lengths = engine.classifier.token_lengths(engine.train)
    split = engine.split
    keep = sum(split.item_floats(n) for n in lengths) * 4 / 2**20 <= engine.cfg.prefix_memory_mb
    if keep:
        engine._restore_prefixes()
    kept = engine._items
    batches = list(length_sorted_batches(lengths, max(1, engine.cfg.grad_batch_size)))
    with engine._mode():
        for idx in tqdm(batches, desc=desc, disable=not progress, unit="batch", leave=False):
            if all(i in kept for i in idx):
                items = [kept[i] for i in idx]
            else:
                items = split.prefix([engine.train[i] for i in idx], batch_size=len(idx))
                if keep:
                    kept.update(zip(idx, items))
            yield list(idx), split.collate(items, [engine.train[i].label for i in idx])
    if keep:
        engine._save_prefixes()


class ProjectedStore(GradientStore):
    """The gradient store built without full gradients (:mod:`hildif.influence.projected`): rows are the per-layer
    projections (G P_out)^T (X P_in) of each example's cross-entropy gradient from one forward and backward pass per
    batch; the weight-decay term, the same for every example, is added exactly at query time (:meth:`dots`).

    Biases: the column sum of G through the layer's P_out. LayerNorm gains and biases: sum_t G_t * xhat_t and
    sum_t G_t through their own (d x k) matrices (k = d keeps them exactly, up to a rotation).

    Curvature (:meth:`fast_influence`): C = P^T GGN P + 2 wd P^T D P + lambda I in the projected space, GGN the
    Gauss-Newton matrix J^T (diag p - p p^T) J of the engine's Hessian sample (the rows cg uses), built in the same
    kind of pass (one backward per class) and solved by Woodbury; its low-rank factor is kept with the store. The
    engine's s_test is (H + lambda I)^-1 v with H the exact Hessian of that sample: the fast path replaces H by its
    Gauss-Newton part and works in the subspace the projection spans; with lambda = 50 both are within a few per cent
    of v / lambda (docs/influence.md), and with a square orthogonal projection and the exact Hessian they agree.

    On disk: the artifact ``store-<key>/`` with ``rows.npy`` / ``norms.npy`` as the exact store's (the rows streamed
    into the artifact's temporary folder while they are computed) and ``curvature.npy`` ((D, r) float32: the
    curvature's factor U, GGN = U U^T); the key covers the model's weights, the training set, the parameters, the
    weight decay, the projection (its layout, seed and a digest of every matrix), the Hessian sample and the damping,
    and the artifact is read only when it holds that same key.
    """

    def __init__(self, rows, norms, projector: FactoredProjection, key, from_cache, path, build_seconds=0.0, *,
                 penalty: torch.Tensor, curvature: ProjectedCurvature) -> None:
        super().__init__(rows, norms, projector, key, from_cache, path, build_seconds)
        self.penalty = penalty.double()  # grad of the weight-decay term, (P,)
        self.curvature = curvature

    @staticmethod
    def projection(engine, dim: int, seed: int) -> FactoredProjection:
        return FactoredProjection(engine.classifier.model, engine.selection.names, engine.selection.decay, dim, seed)

    @staticmethod
    def projected_parts(engine, proj: FactoredProjection) -> dict:
        return {**GradientStore.key_parts(engine), "dim": proj.size, "seed": proj.seed, "projection": proj.kind,
                "digest": proj.digest, "store": PROJECTED_KIND, "damping": engine.damping_total,
                "curvature_sample": {"n": engine.cfg.hessian_samples, "seed": engine.cfg.seed}}

    @classmethod
    def projected_key(cls, engine, proj: FactoredProjection) -> str:
        return key_digest(cls.projected_parts(engine, proj))

    @classmethod
    def build_or_load(
        cls, engine, dim: int, cache_dir: str | Path | None = None, *, seed: int | None = None,
        progress: bool = False, on_batch: Callable[[list[int], torch.Tensor, np.ndarray | None], None] | None = None,
    ) -> "ProjectedStore":
        """Read from ``cache_dir`` when a complete store of this key is there, else build it by one forward and
        backward pass of the influence layers per batch (reusing the frozen prefixes the engine keeps) and stream it
        there. ``on_batch(indices, projected rows (B, D), kNN features or None)`` for every batch of a build."""
        seed = engine.cfg.seed if seed is None else seed
        proj = cls.projection(engine, dim, seed)
        parts = cls.projected_parts(engine, proj)
        key = key_digest(parts)
        theta, decay = engine.objective.theta.double().cpu(), engine.objective.decay.double().cpu()
        penalty = 2.0 * engine.objective.weight_decay * decay * theta
        n = len(engine.train)
        version = engine.classifier.version
        cache = ArtifactDir(cache_dir) if cache_dir else None
        path = cache.path(ARTIFACT, parts) if cache is not None else None
        folder = find_store(cache, parts, version, {**LEGACY_FILES, ".curv.npy": CURVATURE}) if cache is not None \
            else None
        loaded = cls._load_projected(folder, proj, n) if folder is not None else None
        if loaded is not None:
            log.info("projected gradient store read from %s", folder)
            rows, norms, factor = loaded
            return cls(rows, norms, proj, key, True, folder, penalty=penalty,
                       curvature=cls._curvature(engine, proj, torch.from_numpy(factor)))
        start = time.perf_counter()
        info: dict = {"k": proj.k, "params": engine.cfg.params}
        with cache.write(ARTIFACT, parts, version=version, info=info) if cache is not None \
                else contextlib.nullcontext() as tmp:
            if tmp is not None:
                rows = np.lib.format.open_memmap(tmp / ROWS, mode="w+", dtype=np.float16, shape=(n, proj.size))
            else:
                rows = np.zeros((n, proj.size), dtype=np.float16)
            norms = np.zeros(n, dtype=np.float32)
            for idx, batch in _pool_batches(engine, progress, "projected gradient store"):
                grads, _, feats = projected_batch(engine.split, proj, batch)
                if on_batch is not None:
                    on_batch(idx, grads, None if feats is None else feats.float().cpu().numpy())
                g = grads.double().cpu()
                norm = g.norm(dim=1)
                rows[idx] = (g / norm.clamp_min(1e-30)[:, None]).float().numpy().astype(np.float16)
                norms[idx] = norm.float().numpy()
            factor = cls.curvature_factor(engine, proj)
            seconds = time.perf_counter() - start
            if tmp is not None:
                rows.flush()
                del rows
                np.save(tmp / NORMS, norms)
                np.save(tmp / CURVATURE, factor.float().numpy())
                info["build_seconds"] = round(seconds, 1)
        if path is not None:
            rows = np.load(path / ROWS, mmap_mode="r")
        return cls(rows, norms, proj, key, False, path, seconds, penalty=penalty,
                   curvature=cls._curvature(engine, proj, factor))

    @staticmethod
    def curvature_factor(engine, proj: FactoredProjection) -> torch.Tensor:
        """U (D, r) with U U^T = P^T GGN P, GGN the mean Gauss-Newton matrix of the engine's Hessian sample."""
        sample = engine.hessian_sample()
        cols = []
        with engine._mode():
            for pos in engine.length_sorted_chunks(sample):
                batch = engine.batch([sample[j] for j in pos])
                with torch.no_grad():
                    probs = torch.softmax(engine.split.tail(batch).double(), dim=-1)
                rows, _, _ = projected_batch(engine.split, proj, batch, ggn_factors(probs))  # (C, B, D)
                cols.append(rows.double().cpu().reshape(-1, proj.size))
        return (torch.cat(cols) / math.sqrt(len(sample))).T.contiguous()

    @staticmethod
    def _curvature(engine, proj: FactoredProjection, factor: torch.Tensor) -> ProjectedCurvature:
        damping = engine.damping_total + 2.0 * engine.objective.weight_decay * proj.decay_diagonal()
        return ProjectedCurvature(damping, factor=factor)

    @classmethod
    def _load_projected(cls, folder: Path, proj: FactoredProjection, n: int):
        """(rows, norms, curvature factor) of the projected store in ``folder`` (its key, which holds the
        projection's digest, was checked by :func:`find_store`), None when they do not fit."""
        loaded = cls._load(folder, n, proj.size)
        if loaded is None:
            return None
        try:
            factor = np.load(folder / CURVATURE)
        except (OSError, ValueError):
            return None
        if factor.ndim != 2 or factor.shape[0] != proj.size:
            return None
        return loaded[0], loaded[1], factor

    # ------------------------------------------------------------------ queries
    def dots(self, vec: torch.Tensor, indices: Sequence[int] | None = None) -> np.ndarray:
        """Approximate vec . grad L(z): (P vec) . (P grad CE(z)) + vec . grad(weight decay) (the latter exact)."""
        return super().dots(vec, indices) + float(vec.detach().double().cpu() @ self.penalty)

    def fast_query(self, v: torch.Tensor) -> torch.Tensor:
        """q = C^-1 P v (D,) float64: the anchor's projected s_test under the store's curvature."""
        return self.curvature.solve(self.projector(v.detach().double().cpu()))

    def fast_influence(self, v: torch.Tensor, indices: Sequence[int] | None = None) -> np.ndarray:
        """I(z, x) ~ -(q . P grad CE(z)) - (P^T q) . grad(weight decay) for the pool (or ``indices``), q =
        :meth:`fast_query`: the whole pool ranked with no s_test of the engine (one anchor gradient, one solve in the
        projected space, one pass over the rows)."""
        q = self.fast_query(v)
        return -self.row_dots(q.float().numpy(), indices) - float(self.projector.adjoint(q) @ self.penalty)
