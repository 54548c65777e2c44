"""Projected per-example gradients without the full gradient: one forward and backward pass per batch, with hooks
(``influence.store_build = projected``; LoGra, Choe et al. 2024; the structure TRAK's and kronfluence's factored
curvature use).

For a linear layer with an example's input activations X (T x d_in) and output gradients G (T x d_out) the
weight's gradient is G^T X. Its projection by two small matrices, P_out^T (G^T X) P_in, equals
(G P_out)^T (X P_in): two thin products and a (k_out x k_in) result per example, so no (d_out x d_in) gradient is
ever formed. The other influence parameters:

* a linear layer's bias: its gradient is the column sum of G, projected by the layer's own P_out (k_out numbers);
* a LayerNorm's gain and bias: their gradients are sum_t G_t * xhat_t (xhat the normalised input, recomputed from the
  input the hook saw with the module's eps) and sum_t G_t, each projected by its own (d x k) matrix;
* anything else (embeddings, other module kinds): refused (``ConfigError``); the exact store handles those.

Each (d x k) matrix has orthonormal random columns scaled by sqrt(d / k) (QR of a seeded Gaussian), so
E[P P^T] = I (inner products are kept on average) and P^T P = (d / k) I; at k = d it is a scaled-free rotation and
the projected vector is the exact gradient in rotated coordinates. One k serves every side, capped by the side's
size, and is the largest whose whole projected vector fits ``dim`` numbers (:meth:`FactoredProjection.sizes`).

The projected vector is the gradient of the loss in the random subspace theta + P phi (phi = 0): its Hessian there is
P^T H P. The fast path's curvature (:class:`ProjectedCurvature`) is the damped Gauss-Newton matrix of the engine's
fixed Hessian sample (the rows cg uses) in that subspace, P^T GGN P, plus the weight-decay term P^T (2 wd D) P (exact:
(d_out d_in / k_out k_in) 2 wd on a decayed weight's coordinates) and lambda I, solved once per store by Woodbury
(rank = sample x classes). When P is square and orthogonal and the curvature the exact Hessian, its scores are the
engine's exactly (``tests/test_influence_projected.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hildif.config import ConfigError
from hildif.influence.split import Batch, SplitModel

PROJECTION_KIND = "factored/v1"
LINEAR, BIAS, LN_WEIGHT, LN_BIAS = "weight", "bias", "ln_weight", "ln_bias"


@dataclass(frozen=True)
class Block:
    """One influence parameter's place in the flat parameter vector (``offset``, ``shape``) and in the projected
    vector (``start``, ``size``); ``module`` is the layer it belongs to, ``kind`` one of weight, bias, ln_weight,
    ln_bias; ``decayed``: whether the weight-decay term covers it."""

    name: str
    module: str
    kind: str
    offset: int
    shape: tuple[int, ...]
    start: int
    size: int
    decayed: bool

    @property
    def numel(self) -> int:
        return int(math.prod(self.shape))


def _side(gen: torch.Generator, d: int, k: int) -> torch.Tensor:
    """(d, k): orthonormal random columns times sqrt(d / k)."""
    q, r = torch.linalg.qr(torch.randn(d, k, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))[None, :]  # a unique, sign-fixed Q
    return (q * math.sqrt(d / k)).float()


class FactoredProjection:
    """The seeded per-layer projection of a model's influence parameters to at most ``dim`` numbers.

    ``proj(flat)``: (P,) or (B, P) gradients in the objective's flat order -> (D,) or (B, D); :meth:`adjoint` maps
    back. ``blocks``: the layout; ``k``: the per-side size; ``digest``: sha256 of the layout and every matrix.
    """

    kind = PROJECTION_KIND

    def __init__(self, model: nn.Module, names: Sequence[str], decay: Sequence[bool], dim: int, seed: int) -> None:
        if dim < 1:
            raise ConfigError(f"influence.store_dim={dim}: must be at least 1")
        modules = dict(model.named_modules())
        params = dict(model.named_parameters())
        entries = []  # (name, module name, kind, shape, decayed)
        for name, dec in zip(names, decay):
            mod_name, _, attr = name.rpartition(".")
            mod = modules.get(mod_name)
            if isinstance(mod, nn.Linear) and attr in ("weight", "bias"):
                kind = LINEAR if attr == "weight" else BIAS
            elif isinstance(mod, nn.LayerNorm) and attr in ("weight", "bias") and mod.elementwise_affine:
                kind = LN_WEIGHT if attr == "weight" else LN_BIAS
            else:
                raise ConfigError(
                    f"influence.store_build=projected: {name} is not a linear layer's or a LayerNorm's weight or bias "
                    "(the projected build covers those only; use influence.store_build=exact)")
            entries.append((name, mod_name, kind, tuple(params[name].shape), bool(dec)))
        self.model = model
        self.dim, self.seed = int(dim), int(seed)
        self.k = self._choose_k(entries, self.dim)
        gen = torch.Generator().manual_seed(self.seed)
        self.p_in: dict[str, torch.Tensor] = {}
        self.p_out: dict[str, torch.Tensor] = {}
        self.p_vec: dict[str, torch.Tensor] = {}
        blocks, offset, start = [], 0, 0
        for name, mod_name, kind, shape, dec in entries:
            if kind in (LINEAR, BIAS) and mod_name not in self.p_out:
                lin = modules[mod_name]
                self.p_out[mod_name] = _side(gen, lin.out_features, min(self.k, lin.out_features))
                self.p_in[mod_name] = _side(gen, lin.in_features, min(self.k, lin.in_features))
            if kind in (LN_WEIGHT, LN_BIAS):
                self.p_vec[name] = _side(gen, shape[0], min(self.k, shape[0]))
            size = self._block_size(kind, shape, self.k)
            blocks.append(Block(name, mod_name, kind, offset, shape, start, size, dec))
            offset += int(math.prod(shape))
            start += size
        self.blocks: list[Block] = blocks
        self.size_in, self.size = offset, start
        h = hashlib.sha256(f"{PROJECTION_KIND}:{self.k}:{self.seed}".encode())
        for b in blocks:
            h.update(f"{b.name}:{b.kind}:{b.shape}:{b.start}:{b.size}".encode())
        for mats in (self.p_in, self.p_out, self.p_vec):
            for key in sorted(mats):
                h.update(key.encode() + mats[key].numpy().tobytes())
        self.digest = h.hexdigest()[:16]

    @staticmethod
    def _block_size(kind: str, shape: tuple[int, ...], k: int) -> int:
        if kind == LINEAR:
            return min(k, shape[0]) * min(k, shape[1])
        return min(k, shape[0])

    @classmethod
    def sizes(cls, entries, k: int) -> int:
        return sum(cls._block_size(kind, shape, k) for _, _, kind, shape, _ in entries)

    @classmethod
    def _choose_k(cls, entries, dim: int) -> int:
        """The largest per-side size whose projected vector fits ``dim`` (1 at least)."""
        top = max(max(shape) for _, _, _, shape, _ in entries)
        k = 1
        while k < top and cls.sizes(entries, k + 1) <= dim:
            k += 1
        return k

    # ------------------------------------------------------------------ explicit vectors
    def __call__(self, flat: torch.Tensor) -> torch.Tensor:
        """Project full gradients (P,) or (B, P) (the objective's flat order) to (D,) or (B, D)."""
        single = flat.dim() == 1
        rows = flat.reshape(1, -1) if single else flat
        if rows.shape[1] != self.size_in:
            raise ValueError(f"projection of vectors of size {rows.shape[1]}, expected {self.size_in}")
        dtype = rows.dtype
        out = torch.zeros(rows.shape[0], self.size, dtype=dtype, device=rows.device)
        for b in self.blocks:
            part = rows[:, b.offset : b.offset + b.numel]
            if b.kind == LINEAR:
                w = part.reshape(-1, *b.shape)
                res = self.p_out[b.module].to(dtype).T @ w @ self.p_in[b.module].to(dtype)
            else:
                res = part @ self._vector_side(b).to(dtype)
            out[:, b.start : b.start + b.size] = res.reshape(rows.shape[0], -1)
        return out[0] if single else out

    def adjoint(self, proj: torch.Tensor) -> torch.Tensor:
        """P q: a projected vector (D,) back in the parameters' space (P,) (the transpose of :meth:`__call__`)."""
        dtype = proj.dtype
        out = torch.zeros(self.size_in, dtype=dtype)
        for b in self.blocks:
            part = proj[b.start : b.start + b.size]
            if b.kind == LINEAR:
                q = part.reshape(self.p_out[b.module].shape[1], self.p_in[b.module].shape[1])
                res = self.p_out[b.module].to(dtype) @ q @ self.p_in[b.module].to(dtype).T
            else:
                res = self._vector_side(b).to(dtype) @ part
            out[b.offset : b.offset + b.numel] = res.reshape(-1)
        return out

    def _vector_side(self, b: Block) -> torch.Tensor:
        return self.p_out[b.module] if b.kind == BIAS else self.p_vec[b.name]

    def decay_diagonal(self) -> torch.Tensor:
        """The diagonal of P^T D P ((D,) float64), D the weight-decay mask: P^T P = (d_out d_in / k_out k_in) I on a
        decayed weight's block, 0 on undecayed ones (its off-diagonal entries are zero: the columns are orthogonal)."""
        out = torch.zeros(self.size, dtype=torch.float64)
        for b in self.blocks:
            if not b.decayed:
                continue
            if b.kind == LINEAR:
                ko, ki = self.p_out[b.module].shape[1], self.p_in[b.module].shape[1]
                out[b.start : b.start + b.size] = b.shape[0] * b.shape[1] / (ko * ki)
            else:
                out[b.start : b.start + b.size] = b.shape[0] / self._vector_side(b).shape[1]
        return out

    # ------------------------------------------------------------------ from hooks
    @contextlib.contextmanager
    def capture(self, feature_module: nn.Module | None = None) -> Iterator[dict]:
        """Forward hooks on the projected layers: ``calls`` gets (module name, input, output) of every call,
        ``features`` the output of ``feature_module`` (the pooler: the kNN features), both per forward."""
        modules = dict(self.model.named_modules())
        seen = {b.module for b in self.blocks}
        record: dict = {"calls": [], "features": None}
        handles = []

        def hook(name):
            def fn(_mod, inputs, output):
                record["calls"].append((name, inputs[0].detach(), output))
            return fn

        for name in sorted(seen):
            handles.append(modules[name].register_forward_hook(hook(name)))
        if feature_module is not None:
            handles.append(feature_module.register_forward_hook(
                lambda _m, _i, out: record.__setitem__("features", out.detach())))
        try:
            yield record
        finally:
            for h in handles:
                h.remove()

    def _terms(self, calls, grads: Sequence[torch.Tensor | None], batch_size: int):
        """(block, X (B, T, d_in), G (B, T, d_out), module) for every block of every hooked call with a gradient."""
        modules = dict(self.model.named_modules())
        by_module: dict[str, list[Block]] = {}
        for b in self.blocks:
            by_module.setdefault(b.module, []).append(b)
        for (name, x, _), g in zip(calls, grads):
            if g is None:
                continue
            x3 = x.reshape(batch_size, -1, x.shape[-1])
            g3 = g.reshape(batch_size, -1, g.shape[-1])
            for b in by_module[name]:
                yield b, x3, g3, modules[name]

    def exact_dots(self, calls, grads: Sequence[torch.Tensor | None], vectors: torch.Tensor,
                   batch_size: int) -> torch.Tensor:
        """(B, A): vectors (A, P) dotted with each example's exact gradient, one layer's gradient (B, d_out, d_in)
        at a time (never the whole (B, P)); no projection is used, only the layout."""
        out = torch.zeros(batch_size, vectors.shape[0], dtype=torch.float64, device=vectors.device)
        for b, x3, g3, mod in self._terms(calls, grads, batch_size):
            vec = vectors[:, b.offset : b.offset + b.numel].to(g3)
            if b.kind == LINEAR:
                grad = torch.einsum("bto,bti->boi", g3, x3).reshape(batch_size, -1)
            elif b.kind == LN_WEIGHT:
                grad = (g3 * F.layer_norm(x3, mod.normalized_shape, eps=mod.eps)).sum(1)
            else:
                grad = g3.sum(1)
            out += (grad @ vec.T).double()
        return out

    def combine(self, calls, grads: Sequence[torch.Tensor | None], batch_size: int) -> torch.Tensor:
        """(B, D) projected gradients from the hooked calls' inputs and their outputs' gradients."""
        first = next((g for g in grads if g is not None), None)
        dtype = first.dtype if first is not None else torch.float32
        out = torch.zeros(batch_size, self.size, dtype=dtype, device=first.device if first is not None else "cpu")
        for b, x3, g3, mod in self._terms(calls, grads, batch_size):
            if b.kind == LINEAR:
                res = torch.einsum("btk,btj->bkj", g3 @ self.p_out[b.module].to(g3), x3 @ self.p_in[b.module].to(x3))
            elif b.kind == BIAS:
                res = g3.sum(1) @ self.p_out[b.module].to(g3)
            elif b.kind == LN_WEIGHT:
                xhat = F.layer_norm(x3, mod.normalized_shape, eps=mod.eps)
                res = (g3 * xhat).sum(1) @ self.p_vec[b.name].to(g3)
            else:
                res = g3.sum(1) @ self.p_vec[b.name].to(g3)
            out[:, b.start : b.start + b.size] += res.reshape(batch_size, -1)
        return out


def _tail_input(split: SplitModel, batch: Batch) -> Batch:
    """The batch with its tail input a leaf that requires grad (so every hooked output is in the graph, while no
    parameter's .grad is touched: gradients are taken with respect to the hooked outputs only)."""
    key = {"layers": "hidden", "head": "pooled"}.get(split.kind)
    if key is None:
        raise ConfigError(f"influence.store_build=projected needs a 'layers' or 'head' split (this one is "
                          f"{split.kind!r}: embeddings selected or an unknown layout); use influence.store_build=exact")
    return {**batch, key: batch[key].detach().clone().requires_grad_(True)}


def projected_batch(
    split: SplitModel, proj: FactoredProjection, batch: Batch, logit_vectors: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One forward and backward pass of the tail over ``batch``.

    Returns (rows, logits, features): rows (B, D) the projected gradients of each example's cross-entropy (no
    weight-decay term), or with ``logit_vectors`` (C', B, C) the projected J^T r of each example for every r (one
    backward each; rows then (C', B, D)); logits (B, C) detached; features the pooler output (B, hidden) for a
    ``layers`` split with a pooler, the tail input for a ``head`` split, else None.
    """
    pooler = getattr(split.model.base_model, "pooler", None) if split.kind == "layers" else None
    inputs = _tail_input(split, batch)
    b = batch["labels"].shape[0]
    with torch.enable_grad(), proj.capture(pooler) as rec:
        logits = split.tail(inputs)
        outputs = [out for _, _, out in rec["calls"]]
        if logit_vectors is None:
            rows = proj.combine(rec["calls"], _ce_output_grads(logits, batch, outputs), b)
        else:
            parts = []
            for j, r in enumerate(logit_vectors):
                grads = torch.autograd.grad(logits, outputs, grad_outputs=r.to(logits), allow_unused=True,
                                            retain_graph=j < len(logit_vectors) - 1)
                parts.append(proj.combine(rec["calls"], grads, b))
            rows = torch.stack(parts)
    feats = rec["features"] if pooler is not None else (batch["pooled"] if split.kind == "head" else None)
    return rows.detach(), logits.detach(), feats


def _ce_output_grads(logits: torch.Tensor, batch: Batch, outputs: list[torch.Tensor]):
    """Each hooked output's gradient of the summed cross-entropy: example i's rows hold dCE_i / d output_i."""
    loss = F.cross_entropy(logits.float(), batch["labels"], reduction="sum")
    return torch.autograd.grad(loss, outputs, allow_unused=True)


def exact_batch_dots(split: SplitModel, proj: FactoredProjection, batch: Batch, vectors: torch.Tensor) -> torch.Tensor:
    """(B, A) float64: each of ``vectors`` (A, P) dotted with each example's exact cross-entropy gradient (no
    weight-decay term), from one forward and backward pass: an exact whole-pool scorer of several anchors at once."""
    inputs = _tail_input(split, batch)
    with torch.enable_grad(), proj.capture() as rec:
        logits = split.tail(inputs)
        grads = _ce_output_grads(logits, batch, [out for _, _, out in rec["calls"]])
        return proj.exact_dots(rec["calls"], grads, vectors, batch["labels"].shape[0])


def ggn_factors(probs: torch.Tensor) -> torch.Tensor:
    """(C, B, C): for each example the columns r_c of a square root of diag(p) - p p^T (the cross-entropy's Hessian
    in the logits), so that sum_c (J^T r_c)(J^T r_c)^T is the example's Gauss-Newton matrix J^T (diag p - p p^T) J."""
    p = probs.double()
    lam = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    evals, evecs = torch.linalg.eigh(lam)
    root = evecs * evals.clamp_min(0).sqrt()[:, None, :]  # (B, C, C): lam = root root^T
    return root.permute(2, 0, 1).contiguous()


class ProjectedCurvature:
    """C = M + diag(damping) in the projected space, solved by Woodbury when M = U U^T is low-rank (U: (D, r)) or
    by Cholesky when M is given dense. ``solve(q)`` = C^-1 q (float64)."""

    def __init__(self, damping: torch.Tensor, factor: torch.Tensor | None = None,
                 dense: torch.Tensor | None = None) -> None:
        self.damping = damping.double()
        self.factor = factor.double() if factor is not None else None
        self.dense = dense
        if dense is not None:
            self._chol = torch.linalg.cholesky(dense.double() + torch.diag(self.damping))
        elif self.factor is not None and self.factor.shape[1]:
            u = self.factor / self.damping[:, None]  # D^-1 U
            inner = torch.eye(self.factor.shape[1], dtype=torch.float64) + self.factor.T @ u
            self._inner = torch.linalg.cholesky(inner)
            self._u = u

    def solve(self, q: torch.Tensor) -> torch.Tensor:
        q = q.double()
        if self.dense is not None:
            return torch.cholesky_solve(q[:, None], self._chol)[:, 0]
        base = q / self.damping
        if self.factor is None or not self.factor.shape[1]:
            return base
        # (D + U U^T)^-1 q = D^-1 q - D^-1 U (I + U^T D^-1 U)^-1 U^T D^-1 q
        return base - self._u @ torch.cholesky_solve((self.factor.T @ base)[:, None], self._inner)[:, 0]
