"""Several processes (and GPUs, and machines) with PyTorch's own distributed stack: ``torchrun`` /
``torch.distributed``, NCCL on GPUs, gloo on CPUs.

A process started by ``torchrun`` finds ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous in its
environment; :func:`init` joins the process group (gloo on CPU, NCCL when the model runs on CUDA, each rank on GPU
``LOCAL_RANK``). Without those variables, or with ``WORLD_SIZE=1``, every function here is a no-op for one process:
:func:`rank` is 0, :func:`world_size` 1, gathers return ``[obj]``, broadcasts return their argument, so the
single-process code paths do not change.

Conventions of the callers (training, evaluation, influence): every rank runs the same code with the same
arguments; collectives (barrier, gather, broadcast) are called by every rank in the same order; only rank 0
(:func:`is_main`) writes files (checkpoints, the model registry, reports, caches).
"""

from __future__ import annotations

import datetime
import logging
import os
import subprocess
import sys
from typing import Any, Sequence, TypeVar

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)
T = TypeVar("T")

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def launched() -> bool:
    """Whether this process was started by ``torchrun`` with more than one process in the job."""
    return _env_int("WORLD_SIZE", 1) > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """Global rank: from the process group when joined, else ``RANK`` from torchrun, else 0."""
    return dist.get_rank() if is_initialized() else _env_int("RANK", 0)


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else _env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    """Rank on this machine (``LOCAL_RANK``): the GPU this process uses."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """Rank 0: the one process that writes files and prints."""
    return rank() == 0


def active() -> bool:
    """Whether a process group of more than one process is joined (the sharded code paths run)."""
    return is_initialized() and dist.get_world_size() > 1


def backend_for(device: str = "auto") -> str:
    """``nccl`` when this process computes on CUDA (``device`` ``auto`` with a GPU, ``cuda``, ``cuda:N``), else
    ``gloo``."""
    wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return "nccl" if wants_cuda and dist.is_nccl_available() else "gloo"


def init(device: str = "auto", timeout_s: float = 1800.0) -> bool:
    """Join the process group described by torchrun's environment; return whether one (of > 1 process) is joined.

    A no-op (False) without torchrun's variables or with ``WORLD_SIZE=1``, and when already joined (True). On
    CUDA each rank is pinned to GPU ``LOCAL_RANK`` first (``torch.cuda.set_device``), so a model put on ``"cuda"``
    lands on that rank's GPU.
    """
    if is_initialized():
        return dist.get_world_size() > 1
    if not launched():
        return False
    if not dist.is_available():  # pragma: no cover - every PyPI build has it
        raise RuntimeError("torch.distributed is not available in this PyTorch build")
    missing = [v for v in ENV_VARS if v not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE > 1 but {', '.join(missing)} not set: launch with torchrun "
                           "(python -m torch.distributed.run) or `hildif train --nproc N`")
    backend = backend_for(device)
    if backend == "nccl":  # pragma: no cover - needs GPUs
        if local_rank() >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={local_rank()} but this machine has {torch.cuda.device_count()} GPU(s): "
                               "--nproc-per-node must not exceed the GPUs per machine")
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    log.info("joined process group: rank %d of %d (local rank %d, %s)", rank(), world_size(), local_rank(), backend)
    return world_size() > 1


def shutdown() -> None:
    """Leave the process group (if joined)."""
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank reaches this point (no-op for one process)."""
    if active():
        if dist.get_backend() == "nccl":  # pragma: no cover - needs GPUs
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def comm_device() -> torch.device:
    """Where tensors for collectives live: this rank's GPU under NCCL, else the CPU."""
    if active() and dist.get_backend() == "nccl":  # pragma: no cover - needs GPUs
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------- collectives
def all_gather_object(obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: T, src: int = 0) -> T:
    """``obj`` of rank ``src`` on every rank (the others' argument is ignored)."""
    if not active():
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src, device=comm_device() if dist.get_backend() == "nccl" else None)
    return box[0]


def broadcast_tensor(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Rank ``src``'s tensor on every rank, on the caller's device; every rank passes a tensor of the same shape
    and dtype (the others' values are overwritten)."""
    if not active():
        return tensor
    buf = tensor.detach().to(comm_device()).contiguous()
    dist.broadcast(buf, src=src)
    return buf.to(tensor.device)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over ranks, on the caller's device."""
    if not active():
        return tensor
    buf = tensor.detach().to(comm_device()).clone()
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(tensor.device)


def all_gather_rows(rows: np.ndarray) -> list[np.ndarray]:
    """Every rank's 2-D array ((n_r, d), same d and dtype, n_r may differ), in rank order, on every rank.

    Sent as padded tensors by ``all_gather`` (NCCL: through the GPU), not pickled: for the training pool's kNN
    features (MNLI, BERT-base: 393k x 768 floats).
    """
    if not active():
        return [rows]
    rows = np.ascontiguousarray(rows)
    if rows.ndim != 2:
        raise ValueError(f"all_gather_rows: expected a 2-D array, got shape {rows.shape}")
    device = comm_device()
    counts = torch.tensor([rows.shape[0], rows.shape[1]], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(counts) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, counts)
    shapes = [tuple(int(x) for x in s.tolist()) for s in sizes]
    dims = {d for n, d in shapes if n}
    if len(dims) > 1:
        raise ValueError(f"all_gather_rows: ranks hold rows of different widths {sorted(dims)}")
    width = dims.pop() if dims else rows.shape[1]
    longest = max(n for n, _ in shapes)
    local = torch.zeros((longest, width), dtype=torch.from_numpy(rows[:0]).dtype, device=device)
    if rows.shape[0]:
        local[: rows.shape[0]] = torch.from_numpy(rows).to(device)
    parts = [torch.empty_like(local) for _ in shapes]
    dist.all_gather(parts, local)
    return [p[:n].cpu().numpy() for p, (n, _) in zip(parts, shapes)]


# ---------------------------------------------------------------------------------------------- sharding
def shard_batches(batches: Sequence[T]) -> list[T]:
    """This rank's share of a list of batches that every rank computed alike: batches ``rank, rank + W, ...``
    (round robin, so that length-sorted batches spread evenly)."""
    return list(batches[rank() :: world_size()])


def gather_by_index(indices: Sequence[int], values: np.ndarray, n: int) -> np.ndarray:
    """Assemble rows computed on every rank: this rank computed ``values[j]`` for example ``indices[j]``; return
    the (n, ...) array of all ranks' rows, on every rank. Every index in ``range(n)`` must be covered once."""
    values = np.asarray(values)
    if not active():
        parts = [(list(indices), values)]
    elif values.ndim == 2:  # rows (features, probabilities): as tensors, not pickled
        parts = list(zip(all_gather_object(list(indices)), all_gather_rows(values)))
    else:
        parts = all_gather_object((list(indices), values))
    filled = np.zeros(n, dtype=bool)
    out: np.ndarray | None = None
    for idx, vals in parts:
        if not len(idx):
            continue
        vals = np.asarray(vals)
        if out is None:
            out = np.zeros((n, *vals.shape[1:]), dtype=vals.dtype)
        out[np.asarray(idx, dtype=np.int64)] = vals
        filled[np.asarray(idx, dtype=np.int64)] = True
    if n and not filled.all():
        raise RuntimeError(f"gather_by_index: {int((~filled).sum())} of {n} rows computed by no rank")
    return out if out is not None else np.zeros((0,), dtype=values.dtype)


# ---------------------------------------------------------------------------------------------- launching
def torchrun_command(nproc: int, args: Sequence[str], nnodes: int = 1, module: str = "hildif.cli") -> list[str]:
    """The command that runs ``python -m <module> <args>`` (default: ``hildif <args>``) on ``nproc`` processes of
    this machine with torchrun (``python -m torch.distributed.run --standalone``)."""
    if nproc < 1:
        raise ValueError(f"--nproc {nproc}: must be at least 1")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nnodes={nnodes}",
            f"--nproc-per-node={nproc}", "-m", module, *args]


def launch_env(nproc: int) -> dict[str, str]:
    """This process's environment for a torchrun launch of ``nproc`` processes: an ``OMP_NUM_THREADS`` share of the
    cores unless set."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return env


def launch(nproc: int, args: Sequence[str]) -> int:
    """Run ``hildif <args>`` under torchrun on ``nproc`` local processes and wait; return its exit status."""
    cmd = torchrun_command(nproc, args)
    log.info("launching %d processes: %s", nproc, " ".join(cmd[1:]))
    return subprocess.call(cmd, env=launch_env(nproc))
