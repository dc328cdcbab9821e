"""DistributedDataParallel on CPU (gloo), active when started by ``torchrun``."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .config import ConfigError


def check_environment() -> int:
    """The world size torchrun set (1 without it), refused when WORLD_SIZE > 1 comes without
    the rest of torchrun's variables (e.g. left over from a job's environment: torch's
    ValueError traceback); checked before any data is read."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if world > 1 and missing and not dist.is_initialized():
        raise ConfigError(
            f"WORLD_SIZE={world} is set but {', '.join(missing)} not: start N processes with "
            f"torchrun --nproc_per_node={world} -m trainer ..., or unset WORLD_SIZE for one process"
        )
    return world


def setup() -> tuple[int, int]:
    """``(rank, world_size)``; joins the process group when torchrun set WORLD_SIZE > 1."""
    world = check_environment()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def teardown() -> None:
    """Leave the process group; the DDP wrapper must be gone first.

    gloo's worker thread destroys finished work objects, and that takes the GIL. A group
    destroyed while the main thread holds the GIL (a Python dealloc) and joins that thread
    deadlocks; it did in about 1 of 4 two-process runs, when the last DDP reference died
    after ``destroy_process_group``. So: every rank past a barrier, then a short sleep
    that releases the GIL so the worker finishes, then the group goes."""
    if dist.is_initialized():
        dist.barrier()
        time.sleep(0.2)
        dist.destroy_process_group()


def wrap(model: nn.Module, world: int) -> nn.Module:
    return nn.parallel.DistributedDataParallel(model) if world > 1 else model


def no_sync(model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """Skip the gradient all-reduce except on the last backward of an iteration."""
    if isinstance(model, nn.parallel.DistributedDataParallel) and not sync:
        return model.no_sync()
    return contextlib.nullcontext()


def average_gradients(model: nn.Module) -> None:
    """Mean of every gradient over the ranks, in place (no-op in one process): what DDP's
    all-reduce does for the stage methods, called by the online methods before each
    optimizer step (once per batch for ``-a``/SLTT, at every time step for ``-o``),
    because they run ``model.step`` and never DDP's forward. Every rank runs the same
    number of optimizer steps and has gradients for the same parameters."""
    world = rank_and_world()[1]
    if world == 1:
        return
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of the joined group; ``(0, 1)`` in one process."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm statistics) on every rank, in place (every rank calls it;
    no-op in one process): DDP broadcasts them before each forward, so after an epoch's
    last batch each rank holds its own share's, and rank 0's model is the one kept."""
    if rank_and_world()[1] == 1:
        return
    for b in model.buffers():
        dist.broadcast(b, 0)


def sum_over_ranks(x: int | float) -> float:
    """The sum of ``x`` over the ranks (every rank calls it; ``x`` itself in one process),
    exact for counts: an int is summed as int64, a float as float64."""
    if rank_and_world()[1] == 1:
        return x
    t = torch.tensor([x], dtype=torch.int64 if isinstance(x, int) else torch.float64)
    dist.all_reduce(t)
    return t.item()


def mean_over_ranks(x: float) -> float:
    """The mean of ``x`` over the ranks (every rank calls it; ``x`` itself in one process):
    an epoch's loss, which each rank computed on its share of every batch (rank 0's half
    alone was reported)."""
    return sum_over_ranks(float(x)) / rank_and_world()[1]


def gather(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order, on every rank (every rank calls it; ``[obj]``
    in one process)."""
    world = rank_and_world()[1]
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def rank_batches(order: Sequence[int] | np.ndarray, rank: int, world: int, batch_size: int) -> list[list[int]]:
    """This rank's share of each of an epoch's batches. The batches are one process's
    (``batch_size`` of ``order`` at a time, so ``--batch-size`` means the same under
    torchrun) and rank r takes every world-th sample of each: N processes train on the same
    batches as one. Every share of a batch has one size, because DDP averages the ranks'
    gradients with equal weights and every rank must run the same number of backward
    passes: the caller checks that ``batch_size`` is a multiple of ``world``, and the epoch
    is cut to a multiple of ``world`` (at most world - 1 samples left out, other ones each
    epoch as the order is reshuffled)."""
    n = len(order) - len(order) % world
    return [list(order[i : min(i + batch_size, n)][rank::world]) for i in range(0, n, batch_size)]
