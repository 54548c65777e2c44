"""The one training loop behind the paper's FIT (baseline on MNLI) and FINE_TUNE (on the augmented set).

AdamW with weight decay on every weight except biases and LayerNorm, linear warm-up then linear decay, dynamic
padding with length-grouped batches, gradient accumulation, gradient clipping, seeded, tqdm progress, periodic
evaluation, and resumable: every ``save_every`` optimizer steps the full training state (weights, optimizer,
scheduler, step, RNG) is written atomically to ``output_dir/train_state``; ``resume=True`` continues from it on the
same batch plan. Mixed precision on CUDA.

Under ``torchrun`` (:mod:`hildif.distributed`) the same loop runs on every rank with DistributedDataParallel: every
rank draws the same plan of *global* batches (``batch_size`` is the global batch) and takes every W-th example of
each (a distributed batch sampler: the examples of a step are the single-process run's, which keeps the losses,
the weights and resuming equal to one process; torch's ``DistributedSampler`` would regroup them). Each rank's loss
is its examples' summed cross-entropy over the global batch size, times W, so DDP's gradient average is the global
batch's mean gradient even when the last batch does not divide evenly. Rank 0 alone writes the training state;
resuming reads it on rank 0 and broadcasts it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hildif import distributed
from hildif.config import LoopConfig
from hildif.data.example import Example
from hildif.model.classifier import Classifier
from hildif.utils.atomic import atomic_dir

log = logging.getLogger(__name__)
LOG_EVERY = 100  # optimizer steps between two progress records in the log (and the first step of a call)

STATE_DIR = "train_state"


@dataclass
class TrainResult:
    """What a run did. ``losses`` has one mean loss per optimizer step; ``evals`` one dict per evaluation."""

    steps: int = 0
    total_steps: int = 0
    examples_seen: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int = 0

    @property
    def examples_per_second(self) -> float:
        return self.examples_seen / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps, "total_steps": self.total_steps, "examples_seen": self.examples_seen,
            "seconds": round(self.seconds, 2), "examples_per_second": round(self.examples_per_second, 2),
            "first_loss": self.losses[0] if self.losses else None,
            "last_loss": self.losses[-1] if self.losses else None,
            "evals": self.evals, "resumed_from": self.resumed_from,
        }


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, group: bool = True, mega: int = 50
) -> list[list[int]]:
    """One epoch's batches of indices, deterministic for ``seed``.

    With ``group`` the indices are shuffled, cut into mega-batches of ``mega * batch_size``, each sorted by length
    (so a batch pads little), and the batch order is shuffled again (as Hugging Face's LengthGroupedSampler does).
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not group:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    size = mega * batch_size
    for start in range(0, len(order), size):
        chunk = sorted(order[start : start + size], key=lambda i: -lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def decay_parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: weights with ``weight_decay``; biases and LayerNorm weights without."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name or "layernorm" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _rng_state() -> dict[str, Any]:
    return {"torch_rng": torch.get_rng_state(), "python_rng": random.getstate(), "numpy_rng": np.random.get_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    np.random.set_state(state["numpy_rng"])


def _save_state(path: Path, clf: Classifier, opt, sched, step: int, losses: list[float]) -> None:
    """Write the training state (rank 0 only; with several ranks every rank's RNG state goes with it). Every rank
    calls it: the RNG states are gathered, and the others wait until the file is written."""
    ranks = distributed.all_gather_object(_rng_state()) if distributed.active() else None
    if distributed.is_main():
        with atomic_dir(path) as tmp:
            torch.save(
                {
                    "model": clf.model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "step": step, "losses": losses, **_rng_state(),
                    **({"rank_rngs": ranks} if ranks else {}),
                },
                tmp / "state.pt",
            )
    distributed.barrier()


def _load_state(path: Path, device: torch.device) -> dict[str, Any] | None:
    """The saved training state, or None. With several ranks rank 0 reads it (on the CPU) and broadcasts it, so
    the other ranks need not see rank 0's disk."""
    file = path / "state.pt"
    if not distributed.active():
        return torch.load(file, map_location=device, weights_only=False) if file.exists() else None
    state = None
    if distributed.is_main() and file.exists():
        state = torch.load(file, map_location="cpu", weights_only=False)
    return distributed.broadcast_object(state)


def _wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model under DistributedDataParallel (rank 0's weights are broadcast to every rank here)."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":  # pragma: no cover - needs GPUs
        index = device.index if device.index is not None else torch.cuda.current_device()
        return DistributedDataParallel(model, device_ids=[index], output_device=index)
    return DistributedDataParallel(model)


def train(
    clf: Classifier,
    examples: Sequence[Example],
    cfg: LoopConfig,
    *,
    eval_examples: Sequence[Example] | None = None,
    eval_every: int | None = None,
    output_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    save_every: int | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``clf`` in place on ``examples`` and return what happened.

    Args:
        clf: the classifier; its model is put in train mode and left in eval mode.
        examples: labelled examples (texts or pairs; labels below ``clf.num_labels``, MNLI: 1 = entailment).
        cfg: learning rate, epochs or max_steps, batch size, accumulation, warm-up ratio, weight decay, clipping,
            seed, length grouping.
        eval_examples: when given, accuracy on them is measured every ``eval_every`` steps and at the end.
        output_dir: where the resumable training state goes (nothing is written when None).
        resume: continue from ``output_dir/train_state`` when it exists.
        stop_after: stop after this many optimizer steps in this call (to test resuming; the schedule still spans
            the full run).

    Under torchrun (several ranks) every rank calls it with the same arguments and gets the same result; rank 0
    alone writes ``output_dir`` (module docstring).
    """
    if not examples:
        raise ValueError("train: no training examples")
    check_labels(examples, clf.num_labels)
    set_seed(cfg.seed)
    model = clf.model
    device = clf.device
    world = distributed.world_size() if distributed.init(str(device)) else 1
    rank = distributed.rank() if world > 1 else 0
    main = rank == 0
    if world > 1 and cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} is the global batch size: it must be divisible by the "
                         f"{world} processes (per-process batch = batch_size / processes)")
    eval_every = eval_every if eval_every is not None else cfg.eval_every
    save_every = save_every if save_every is not None else cfg.save_every
    lengths = clf.token_lengths(examples)
    steps_per_epoch = math.ceil(math.ceil(len(examples) / cfg.batch_size) / cfg.grad_accum_steps)
    total = cfg.max_steps or max(1, math.ceil(steps_per_epoch * cfg.epochs))
    warmup = int(round(cfg.warmup_ratio * total))
    opt = torch.optim.AdamW(decay_parameter_groups(model, cfg.weight_decay), lr=cfg.learning_rate)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_schedule(warmup, total))
    use_amp = device.type == "cuda" and clf.mixed_precision
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    result = TrainResult(total_steps=total)
    state_path = Path(output_dir) / STATE_DIR if output_dir else None
    step = 0
    if world > 1:
        torch.manual_seed(cfg.seed + rank)  # dropout differs between ranks (rank 0 keeps the single-process seed)
    state = _load_state(state_path, device) if resume and state_path else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = result.resumed_from = int(state["step"])
        result.losses = list(state["losses"])
        rngs = state.get("rank_rngs")
        _set_rng_state(rngs[rank] if rngs and len(rngs) == world else state)
        log.info("resumed training at step %d of %d from %s", step, total, state_path)
        del state
    ddp = _wrap_ddp(model, device) if world > 1 else None
    forward = ddp if ddp is not None else model

    # The full batch plan, epoch by epoch, is a function of the seed alone: resuming skips what was done.
    def plan():
        epoch = 0
        while True:
            for batch in length_grouped_batches(lengths, cfg.batch_size, cfg.seed + epoch, cfg.length_grouping):
                yield batch
            epoch += 1

    batches = plan()
    for _ in range(step * cfg.grad_accum_steps):
        next(batches)
    start = time.perf_counter()
    model.train()
    bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=not progress or not main)
    steps_this_call = 0
    try:
        while step < total and (stop_after is None or steps_this_call < stop_after):
            opt.zero_grad(set_to_none=True)
            step_loss = 0.0
            shared_loss = torch.zeros((), device=device)  # this rank's part of the step's mean loss
            for micro in range(cfg.grad_accum_steps):
                idx = next(batches)
                if world == 1:
                    batch = [examples[i] for i in idx]
                    enc = clf.encode(batch)
                    labels = torch.tensor([e.label for e in batch], device=device)
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                        loss = torch.nn.functional.cross_entropy(model(**enc).logits.float(), labels)
                    scaler.scale(loss / cfg.grad_accum_steps).backward()
                    step_loss += loss.item() / cfg.grad_accum_steps
                else:
                    mine = idx[rank::world]
                    # a rank left without rows (a last batch smaller than the ranks) still joins DDP's all-reduce,
                    # with one row weighted 0
                    batch = [examples[i] for i in (mine or idx[:1])]
                    enc = clf.encode(batch)
                    labels = torch.tensor([e.label for e in batch], device=device)
                    last = micro == cfg.grad_accum_steps - 1
                    with contextlib.nullcontext() if last else ddp.no_sync():  # all-reduce once per optimizer step
                        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                            summed = torch.nn.functional.cross_entropy(forward(**enc).logits.float(), labels,
                                                                       reduction="sum") * (1.0 if mine else 0.0)
                            loss = summed * world / len(idx)  # DDP divides the summed gradients by world
                        scaler.scale(loss / cfg.grad_accum_steps).backward()
                    shared_loss += summed.detach() / len(idx) / cfg.grad_accum_steps
                result.examples_seen += len(idx)
            if world > 1:
                step_loss = float(distributed.all_reduce_sum(shared_loss))
            scaler.unscale_(opt)
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            steps_this_call += 1
            result.losses.append(step_loss)
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
            if steps_this_call == 1 or step % LOG_EVERY == 0:  # INFO where no bar shows progress (a backend job)
                log.log(logging.DEBUG if progress or not main else logging.INFO,
                        "train: step %d of %d done (loss %.4f)", step, total, step_loss)
            if eval_examples and eval_every and step % eval_every == 0 and step < total:
                result.evals.append({"step": step, "accuracy": accuracy(clf, eval_examples)})
                model.train()
                log.info("step %d: eval accuracy %.2f", step, result.evals[-1]["accuracy"])
            if state_path and save_every and step % save_every == 0:
                _save_state(state_path, clf, opt, sched, step, result.losses)
    finally:
        bar.close()
        model.eval()
        del forward, ddp  # the raw module (clf.model) keeps the trained weights
    result.steps = step
    result.seconds = time.perf_counter() - start
    if state_path and step < total:
        _save_state(state_path, clf, opt, sched, step, result.losses)
    if eval_examples and step >= total:
        result.evals.append({"step": step, "accuracy": accuracy(clf, eval_examples)})
    return result


def check_labels(examples: Sequence[Example], num_labels: int) -> None:
    """ValueError naming the first example whose label is not a class of a ``num_labels``-label model."""
    for e in examples:
        if not isinstance(e.label, (int, np.integer)) or not 0 <= e.label < num_labels:
            raise ValueError(f"train: example {e.id!r} has label {e.label!r}, not a class of this {num_labels}-label "
                             "model (the model's number of labels must be the task's)")


def accuracy(clf: Classifier, examples: Sequence[Example], batch_size: int = 128) -> float:
    """Percent of ``examples`` whose argmax prediction equals the label (sharded across ranks under torchrun)."""
    from hildif.model.evaluation import predict_probs

    probs = predict_probs(clf, examples, batch_size=batch_size)
    gold = np.array([e.label for e in examples])
    return float((probs.argmax(1) == gold).mean() * 100.0)
