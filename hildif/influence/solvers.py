"""Solvers for s_test = (H + lambda I)^-1 v, the inverse-Hessian-vector product of influence functions.

``lissa``  FastIF's stochastic recursion  h <- v + (1 - damping) h - HVP_batch(h) / scale,  s_test = h / scale,
           over ``steps`` random training batches, averaged over ``repetitions``. Its fixed point is
           (H + damping * scale * I)^-1 v, reached to within (1 - damping)^steps when H is small against scale.
``cg``     conjugate gradient on (H_S + lambda I) x = v with exact HVPs on a fixed sample S: the same fixed point
           (with the Hessian of S) in a handful of products when lambda dominates.
``exact``  builds the explicit P x P Hessian of the sample (P HVPs) and solves it; the oracle for small P.

Every solver takes ``hvp(vec, batch_indices) -> H_batch vec`` (mean over the batch) and returns a
:class:`SolveResult` with the solution and a trace.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

HVP = Callable[[torch.Tensor, Sequence[int]], torch.Tensor]


class LissaDivergenceWarning(RuntimeWarning):
    """The LiSSA recursion left its theoretical bound: the estimate is unusable; raise ``scale``."""


@dataclass
class SolveResult:
    """s_test and how it was reached.

    Attributes:
        s_test: (P,) approximate (H + lambda I)^-1 v.
        solver: ``lissa``, ``cg`` or ``exact``.
        trace: per step ``{"step", "norm"}`` (LiSSA: ||h_t|| / scale, every ``trace_every`` steps, per repetition;
            CG: relative residual).
        diverged: LiSSA only: the recursion blew up in at least one repetition.
        hvps: number of Hessian-vector products on single batches.
    """

    s_test: torch.Tensor
    solver: str
    trace: list[dict] = field(default_factory=list)
    diverged: bool = False
    hvps: int = 0

    def summary(self) -> dict:
        return {"solver": self.solver, "hvps": self.hvps, "diverged": self.diverged,
                "s_test_norm": float(self.s_test.norm()), "trace": self.trace}


def lissa(
    hvp: HVP,
    v: torch.Tensor,
    num_examples: int,
    *,
    damping: float = 5e-3,
    scale: float = 1e4,
    steps: int = 1000,
    batch_size: int = 1,
    repetitions: int = 1,
    seed: int = 0,
    pool: Sequence[int] | None = None,
    trace_every: int = 10,
    progress: bool = False,
) -> SolveResult:
    """LiSSA as in FastIF. Batches are drawn uniformly with replacement from ``pool`` (default: all
    ``num_examples`` training indices) by a generator seeded with ``seed`` (repetition r uses ``seed + r``).

    Divergence: with H positive semi-definite the iterate obeys ||h_t|| <= ||v|| / damping; leaving 10x that bound
    (or a non-finite value) stops the repetition, warns with :class:`LissaDivergenceWarning` and excludes it from the
    average (all diverged: the last iterate is returned with ``diverged=True``).
    """
    pool_arr = np.asarray(pool if pool is not None else range(num_examples))
    if len(pool_arr) == 0:
        raise ValueError("LiSSA needs at least one training example")
    bound = 10.0 * float(v.norm()) / damping
    estimates: list[torch.Tensor] = []
    trace: list[dict] = []
    diverged = False
    last = v
    hvps = 0
    for rep in range(repetitions):
        rng = np.random.default_rng(seed + rep)
        h = v.clone()
        bar = tqdm(range(1, steps + 1), desc=f"LiSSA {rep + 1}/{repetitions}", disable=not progress, leave=False)
        for step in bar:
            batch = pool_arr[rng.integers(0, len(pool_arr), size=batch_size)].tolist()
            h = v + (1.0 - damping) * h - hvp(h, batch) / scale
            hvps += 1
            norm = float(h.norm())
            if step % trace_every == 0 or step == steps or not math.isfinite(norm) or norm > bound:
                trace.append({"repetition": rep, "step": step, "norm": norm / scale})
            if not math.isfinite(norm) or norm > bound:
                diverged = True
                warnings.warn(
                    f"LiSSA diverged in repetition {rep} at step {step}: ||h|| = {norm:.3g} exceeds the bound "
                    f"10 ||v|| / damping = {bound:.3g}; the Hessian is too large for scale={scale:g} "
                    f"(raise influence.scale, e.g. x100)",
                    LissaDivergenceWarning,
                    stacklevel=2,
                )
                break
        else:
            estimates.append(h / scale)
        last = h / scale
    s_test = torch.stack(estimates).mean(0) if estimates else last
    return SolveResult(s_test, "lissa", trace, diverged, hvps)


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    v: torch.Tensor,
    *,
    tol: float = 1e-6,
    max_iter: int = 100,
) -> SolveResult:
    """Solve A x = v for symmetric positive-definite A given by ``matvec`` (plain CG, x0 = 0).

    Stops when ||r|| <= tol ||v||. The trace records the relative residual after each product.
    """
    x = torch.zeros_like(v)
    r = v.clone()
    p = r.clone()
    rs = float(r @ r)
    vnorm = math.sqrt(rs) or 1.0
    trace = [{"step": 0, "residual": math.sqrt(rs) / vnorm}]
    products = 0
    for it in range(1, max_iter + 1):
        if math.sqrt(rs) <= tol * vnorm:
            break
        ap = matvec(p)
        products += 1
        curvature = float(p @ ap)
        if curvature <= 0:
            log.warning("CG met non-positive curvature %.3g at iteration %d: damping too small", curvature, it)
            break
        alpha = rs / curvature
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = float(r @ r)
        trace.append({"step": it, "residual": math.sqrt(rs_new) / vnorm})
        p = r + (rs_new / rs) * p
        rs = rs_new
    return SolveResult(x, "cg", trace, False, products)


def explicit_hessian(hvp_full: Callable[[torch.Tensor], torch.Tensor], size: int, progress: bool = False) -> torch.Tensor:
    """The P x P matrix of a Hessian-vector product, column by column (P products: small P only)."""
    cols = []
    eye = torch.zeros(size)
    for i in tqdm(range(size), desc="explicit Hessian", disable=not progress, leave=False):
        e = eye.clone()
        e[i] = 1.0
        cols.append(hvp_full(e))
    h = torch.stack(cols, dim=1)
    return 0.5 * (h + h.T)


def exact_solve(
    hvp_full: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor, damping_total: float, max_size: int = 20000,
    progress: bool = False,
) -> SolveResult:
    """(H + damping_total I)^-1 v with the explicit Hessian, in float64."""
    size = v.numel()
    if size > max_size:
        raise ValueError(
            f"exact solver: {size} parameters exceed {max_size} (a {size}x{size} Hessian); use solver='cg' or "
            "params='head'"
        )
    h = explicit_hessian(lambda e: hvp_full(e.to(v.device)).cpu(), size, progress).double()
    a = h + damping_total * torch.eye(size, dtype=torch.float64)
    x = torch.linalg.solve(a, v.detach().cpu().double())
    return SolveResult(x.to(v.dtype).to(v.device), "exact", [], False, size)
