"""The influence engine: anchor gradients, s_test and candidate scores for one model and training set.

Sign convention (Koh & Liang, FastIF, the HILDIF paper):

    I(z, x) = - grad L(x)^T (H + lambda I)^-1 grad L(z) = - s_test(x) . grad L(z)

NEGATIVE = helpful: upweighting z lowers the anchor's loss (first order: dL(x)/d eps = I(z, x) when z's weight in
the training loss grows by eps). HILDIF shows the most negative ones. L includes FastIF's weight-decay term
(:mod:`hildif.influence.objective`), lambda = damping * scale (FastIF: 5e-3 * 1e4 = 50).

The engine computes the frozen prefix of each training example once (:mod:`hildif.influence.split`) and keeps it
in memory, so later anchors reuse it; :meth:`InfluenceEngine.pool_features` computes it for the whole training set
in the pass that gives the kNN index its features. With ``prefix_dir`` (``influence.prefix_cache``) the pool's
prefixes also go to disk, keyed on the frozen layers' weights (:mod:`hildif.influence.prefix_cache`), so a later model
version that changed only the layers above them reads them back and runs only its own top blocks over the pool.

Under torchrun (:mod:`hildif.distributed`) that pass is sharded: every rank cuts the training set into the same
length-sorted batches as one process and computes every W-th batch, keeping the frozen prefixes of its own rows
(its *shard*: :meth:`InfluenceEngine.owner`); the features are gathered. A candidate is then scored by the rank that
holds its prefix (:meth:`InfluenceEngine.owned_positions`), see :func:`hildif.influence.explain.explain`.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hildif import distributed
from hildif.config import ConfigError, InfluenceConfig
from hildif.data.example import Example
from hildif.influence.objective import Objective
from hildif.influence.params import select_parameters
from hildif.influence.prefix_cache import PrefixCache
from hildif.influence.solvers import SolveResult, conjugate_gradient, exact_solve, lissa
from hildif.influence.split import Batch, Item, SplitModel, eager_attention
from hildif.model.classifier import Classifier, length_sorted_batches

log = logging.getLogger(__name__)

SOLVERS = ("lissa", "cg", "exact")
GRADIENT_METHODS = ("jvp", "vmap")


class InfluenceEngine:
    """Influence of training examples on anchors for a fixed model (its weights are read once, at construction).

    Args:
        classifier: the model; it is put in eval mode (no dropout) and eager attention while the engine works.
        train_examples: the training set; candidates and LiSSA/CG samples are indices into it.
        cfg: :class:`InfluenceConfig` (params, solver, damping, scale, lissa_*, hessian_samples, cg_*, seed ...).
    """

    def __init__(
        self, classifier: Classifier, train_examples: Sequence[Example], cfg: InfluenceConfig, progress: bool = False,
        prefix_dir: str | Path | None = None,
    ) -> None:
        if cfg.solver not in SOLVERS:
            raise ConfigError(f"influence.solver={cfg.solver!r}: expected one of {SOLVERS}")
        if cfg.gradient_method not in GRADIENT_METHODS:
            raise ConfigError(f"influence.gradient_method={cfg.gradient_method!r}: expected one of {GRADIENT_METHODS}")
        if not train_examples:
            raise ValueError("influence needs a non-empty training set")
        self.classifier = classifier
        self.train = list(train_examples)
        self.cfg = cfg
        self.progress = progress
        self.selection = select_parameters(classifier.model, cfg.params)
        self.split = SplitModel(classifier, self.selection)
        self.objective = Objective(self.split, cfg.weight_decay)
        self._items: dict[int, Item] = {}
        self._owner: np.ndarray | None = None  # rank holding each row's prefix after a sharded pool pass
        self._hessian: tuple[tuple[int, ...], list] | None = None
        self._prefix_cache = PrefixCache(self.split, self.train, prefix_dir) if prefix_dir is not None else None
        self.prefixes_from_cache = False  # whether the pool's prefixes were read from the prefix cache

    @property
    def damping_total(self) -> float:
        """lambda = damping * scale: LiSSA's effective damping, used by every solver."""
        return self.cfg.damping * self.cfg.scale

    @contextlib.contextmanager
    def _mode(self) -> Iterator[None]:
        model = self.classifier.model
        was_training = model.training
        model.eval()
        try:
            with eager_attention(model):
                yield
        finally:
            model.train(was_training)

    # ------------------------------------------------------------------ inputs
    def items(self, indices: Sequence[int]) -> list[Item]:
        """Tail inputs of training examples, computing (and keeping) the missing ones in one batched pass."""
        missing = sorted({int(i) for i in indices if int(i) not in self._items})
        if missing:
            with self._mode():
                fresh = self.split.prefix([self.train[i] for i in missing], batch_size=self.cfg.grad_batch_size)
            self._items.update(zip(missing, fresh))
        return [self._items[int(i)] for i in indices]

    def drop_items(self) -> None:
        """Forget the kept prefixes (memory); they are computed again where needed."""
        self._items.clear()

    def _restore_prefixes(self) -> bool:
        """Whether every pool prefix is held: already, or read now from the prefix cache (one process only)."""
        if len(self._items) == len(self.train) and all(i in self._items for i in range(len(self.train))):
            return True
        if self._prefix_cache is None or distributed.active():
            return False
        loaded = self._prefix_cache.load(self.classifier.device, self.classifier.version)
        if loaded is None:
            return False
        log.info("frozen prefixes of %d examples read from %s", len(loaded), self._prefix_cache.path)
        self._items.update(enumerate(loaded))
        self.prefixes_from_cache = True
        return True

    def _save_prefixes(self) -> None:
        if (self._prefix_cache is None or self.prefixes_from_cache or distributed.active()
                or len(self._items) < len(self.train)):
            return
        self._prefix_cache.save([self._items[i] for i in range(len(self.train))], self.classifier.version)

    def _features_of_kept(self, batches: Sequence[Sequence[int]]) -> np.ndarray:
        """kNN features of the whole pool from the kept prefixes, in ``batches`` (only the blocks above the split)."""
        feats = np.zeros((len(self.train), 0), dtype=np.float32)
        with self._mode():
            for idx in tqdm(batches, desc="kNN features (cached prefixes)", disable=not self.progress,
                            unit="batch", leave=False):
                part = self.split.features_of_items([self._items[i] for i in idx])
                if feats.shape[1] == 0:
                    feats = np.zeros((len(self.train), part.shape[1]), dtype=np.float32)
                feats[list(idx)] = part
        return feats

    def pool_features(self, gather: bool = True) -> np.ndarray | None:
        """kNN features of the whole training set ((N, hidden) float32, as :meth:`Classifier.features`) from the same
        pass that computes and keeps every example's frozen prefix: building the kNN index then leaves no candidate
        prefix to compute per anchor.

        Returns None, keeping nothing, when the split cannot give features (all parameters or an unknown layout) or
        the prefixes would take more than ``cfg.prefix_memory_mb``; the caller then computes the features alone.

        Under torchrun every rank calls it: each computes and keeps its shard (``prefix_memory_mb`` is then per
        rank), and the features are gathered on every rank (``gather=False``: not gathered, None returned).
        """
        if not self.split.gives_features:
            return None
        lengths = self.classifier.token_lengths(self.train)
        world = distributed.world_size() if distributed.active() else 1
        batches = list(length_sorted_batches(lengths, self.cfg.grad_batch_size))
        shards = [[i for b in batches[r::world] for i in b] for r in range(world)]
        need_mb = max(sum(self.split.item_floats(lengths[i]) for i in shard) for shard in shards) * 4 / 2**20
        if need_mb > self.cfg.prefix_memory_mb:
            log.info("frozen prefix of %d examples needs %.0f MB%s > influence.prefix_memory_mb=%d: computed per "
                     "candidate instead", len(self.train), need_mb, " per process" if world > 1 else "",
                     self.cfg.prefix_memory_mb)
            return None
        if world == 1 and self._restore_prefixes():
            return self._features_of_kept(batches)
        mine = shards[distributed.rank()] if world > 1 else list(range(len(self.train)))
        # the shard's rows are in the global length order, so the pass below cuts exactly this rank's batches
        with self._mode():
            items, feats = self.split.prefix_and_features(
                [self.train[i] for i in mine], batch_size=self.cfg.grad_batch_size, progress=self.progress,
                lengths=[lengths[i] for i in mine],
            )
        self._items.update(zip(mine, items))
        if world == 1:
            self._save_prefixes()
            return feats
        owner = np.zeros(len(self.train), dtype=np.int64)
        for r, shard in enumerate(shards):
            owner[shard] = r
        self._owner = owner
        return distributed.gather_by_index(mine, feats, len(self.train)) if gather else None

    def owner(self, indices: Sequence[int]) -> np.ndarray:
        """The rank that scores each training index: the one holding its prefix after a sharded pool pass, else
        ``index mod W``."""
        idx = np.asarray(indices, dtype=np.int64)
        if self._owner is not None:
            return self._owner[idx]
        return idx % max(1, distributed.world_size() if distributed.active() else 1)

    def owned_positions(self, indices: Sequence[int]) -> list[int]:
        """Positions into ``indices`` that this rank scores (all of them for one process)."""
        if not distributed.active():
            return list(range(len(indices)))
        return np.flatnonzero(self.owner(indices) == distributed.rank()).tolist()

    def share_items(self, indices: Sequence[int]) -> None:
        """Collective: every rank receives the prefixes of ``indices`` from the ranks that hold them (e.g. the fixed
        Hessian sample, so that the rank computing s_test uses the very prefixes one process would). A no-op
        for one process or before a sharded pool pass."""
        if not distributed.active() or self._owner is None:
            return
        indices = sorted({int(i) for i in indices})
        mine = {i: {k: v.cpu() for k, v in self._items[i].items()} for i in indices
                if self._owner[i] == distributed.rank() and i in self._items}
        device = self.classifier.device
        for part in distributed.all_gather_object(mine):
            for i, item in part.items():
                self._items.setdefault(i, {k: v.to(device) for k, v in item.items()})

    def sweep_pool(self, progress: bool = False, desc: str = "pool") -> Iterator[tuple[list[int], Batch, np.ndarray | None]]:
        """One pass over the whole training set in length-sorted batches of ``grad_batch_size``, yielding each batch's
        training indices, its tail batch and its kNN features ((B, hidden) float32; None where the split gives none).

        The frozen prefixes are kept for later anchors when the whole pool's fit in ``prefix_memory_mb`` (as
        :meth:`pool_features`); prefixes kept before, or read from the prefix cache, are reused (then only the
        blocks above the split run for the features). The engine's mode (eval, eager attention) holds
        while the caller works on a batch, so it may take gradients of it (the gradient store does).
        """
        lengths = self.classifier.token_lengths(self.train)
        keep = sum(self.split.item_floats(n) for n in lengths) * 4 / 2**20 <= self.cfg.prefix_memory_mb
        batches = list(length_sorted_batches(lengths, max(1, self.cfg.grad_batch_size)))
        if keep:
            self._restore_prefixes()
        with self._mode():
            for idx in tqdm(batches, desc=desc, disable=not progress, unit="batch", leave=False):
                examples = [self.train[i] for i in idx]
                feats = None
                if all(i in self._items for i in idx):  # kept (or read from the prefix cache): the top blocks only
                    items = [self._items[i] for i in idx]
                    if self.split.gives_features:
                        feats = self.split.features_of_items(items)
                elif self.split.gives_features:
                    items, feats = self.split.prefix_and_features(examples, batch_size=len(idx),
                                                                  lengths=[lengths[i] for i in idx])
                else:
                    items = self.split.prefix(examples, batch_size=len(idx))
                if keep:
                    self._items.update(zip(idx, items))
                yield list(idx), self.split.collate(items, [e.label for e in examples]), feats
        if keep:
            self._save_prefixes()

    def batch(self, indices: Sequence[int]) -> Batch:
        return self.split.collate(self.items(indices), [self.train[i].label for i in indices])

    def length_sorted_chunks(self, indices: Sequence[int]) -> list[list[int]]:
        """Positions into ``indices`` in chunks of ``grad_batch_size``, longest examples first, so that a padded batch
        holds examples of similar length (any grouping gives the same sums; this one wastes the least padding)."""
        items = self.items(indices)
        order = sorted(range(len(indices)), key=lambda j: -next(iter(items[j].values())).shape[0])
        chunk = max(1, self.cfg.grad_batch_size)
        return [order[start : start + chunk] for start in range(0, len(order), chunk)]

    def example_batch(self, examples: Sequence[Example]) -> Batch:
        with self._mode():
            items = self.split.prefix(examples)
        return self.split.collate(items, [e.label for e in examples])

    def hessian_sample(self) -> list[int]:
        """The fixed training sample of the cg/exact solvers (``hessian_samples`` indices, seeded)."""
        n = len(self.train)
        rng = np.random.default_rng(self.cfg.seed)
        size = min(self.cfg.hessian_samples, n)
        return sorted(rng.choice(n, size=size, replace=False).tolist())

    # ------------------------------------------------------------------ first and second order
    def anchor_gradient(self, anchor: Example) -> torch.Tensor:
        """v = grad L(anchor) (P,), with the anchor's gold label and the weight-decay term."""
        with self._mode():
            return self.objective.grad(self.example_batch([anchor]))

    def hessian_operator(self, indices: Sequence[int]) -> Callable[[torch.Tensor], torch.Tensor]:
        """``vec -> H vec`` for the mean Hessian over ``indices`` (the cg/exact solvers' fixed sample).

        With ``keep_hessian_graph`` (default) the sample's forward and first backward passes run once per engine
        and their graphs are kept (memory: the sample's activations), so each product is one backward pass and
        later anchors reuse them; otherwise every product is a fresh :meth:`hvp`.
        """
        indices = [int(i) for i in indices]
        if not self.cfg.keep_hessian_graph:
            return lambda vec: self.hvp(vec, indices)
        key = tuple(indices)
        if self._hessian is None or self._hessian[0] != key:
            self._hessian = None  # free the previous sample's graphs first
            self._hessian = (key, list(self._chunk_hessians(indices)))
        parts = self._hessian[1]
        return lambda vec: self._weighted_sum(vec, parts)

    def hvp(self, vec: torch.Tensor, indices: Sequence[int]) -> torch.Tensor:
        """Hessian of the mean loss over ``indices`` times ``vec``, in chunks of ``grad_batch_size`` (each chunk's
        graph is dropped once its product is taken)."""
        return self._weighted_sum(vec, self._chunk_hessians([int(i) for i in indices]))

    def _chunk_hessians(self, indices: list[int]) -> Iterator[tuple[float, Callable[[torch.Tensor], torch.Tensor]]]:
        """(weight, Hessian operator) per length-sorted chunk of ``indices``; the weights sum to 1."""
        for pos in self.length_sorted_chunks(indices):
            with self._mode():
                op = self.objective.hessian(self.batch([indices[j] for j in pos]))
            yield len(pos) / len(indices), op

    @staticmethod
    def _weighted_sum(vec: torch.Tensor, parts) -> torch.Tensor:
        total = torch.zeros_like(vec)
        for weight, product in parts:
            total += product(vec) * weight
        return total

    def s_test(self, v: torch.Tensor, solver: str | None = None, sample: Sequence[int] | None = None) -> SolveResult:
        """(H + lambda I)^-1 v by ``solver`` (default ``cfg.solver``).

        ``sample``: the training indices whose Hessian is used: LiSSA draws its batches from it (default: the whole
        training set, as FastIF); cg/exact use its mean Hessian (default: :meth:`hessian_sample`).
        """
        cfg = self.cfg
        solver = solver or cfg.solver
        if solver == "lissa":
            return lissa(
                self.hvp, v, len(self.train), damping=cfg.damping, scale=cfg.scale, steps=cfg.lissa_steps,
                batch_size=cfg.lissa_batch_size, repetitions=cfg.lissa_repetitions, seed=cfg.seed, pool=sample,
                progress=self.progress,
            )
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}: expected one of {SOLVERS}")
        hessian = self.hessian_operator(sample if sample is not None else self.hessian_sample())
        if solver == "cg":
            return conjugate_gradient(
                lambda p: hessian(p) + self.damping_total * p, v, tol=cfg.cg_tol, max_iter=cfg.cg_max_iter
            )
        return exact_solve(hessian, v, self.damping_total, progress=self.progress)

    # ------------------------------------------------------------------ candidates
    def gradient_dots(self, vec: torch.Tensor, indices: Sequence[int], method: str | None = None) -> np.ndarray:
        """vec . grad L(z) for each training index (same order), shape (len(indices),), float64.

        Candidates go in length-sorted batches of ``grad_batch_size``; ``jvp`` gets the dot products of a batch in one
        forward-mode pass, ``vmap`` materialises the batch's per-example gradients (B, P) and dots them; neither holds
        more than one batch of gradients.
        """
        method = method or self.cfg.gradient_method
        if method not in GRADIENT_METHODS:
            raise ValueError(f"gradient method {method!r}: expected one of {GRADIENT_METHODS}")
        indices = [int(i) for i in indices]
        out = np.zeros(len(indices), dtype=np.float64)
        if not indices:
            return out
        with self._mode():
            for pos in tqdm(self.length_sorted_chunks(indices), desc="candidate gradients", disable=not self.progress,
                            leave=False, unit="batch"):
                batch = self.batch([indices[j] for j in pos])
                if method == "jvp":
                    d = self.objective.dots(vec, batch, penalty=False)
                else:
                    d = self.objective.per_example_grads(batch) @ vec - self.objective.penalty_dot(vec)
                out[pos] = d.double().cpu().numpy()
        # the weight-decay term is the same for every candidate: added in float64 so that it does not swamp the
        # candidates' differences in float32
        return out + float(self.objective.penalty_dot(vec.double()))

    def influence(self, s_test: torch.Tensor, indices: Sequence[int], method: str | None = None) -> np.ndarray:
        """I(z, x) = - s_test . grad L(z) for each training index; negative = helpful."""
        return -self.gradient_dots(s_test, indices, method)
