"""Per-step latency of this runtime and, when torch is installed, of the same model in torch
eager (rebuilt from its checkpoint), measured in one process on the same input."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence

import numpy as np

from .policies import FixedT
from .protocol import STATIC_KINDS
from .session import Session


def bench_input(session: Session, batch: int, steps: int, seed: int = 0) -> np.ndarray:
    """What a run of ``steps`` steps takes: an image in [0, 1) ``[B, *shape]`` (repeated by
    the runtime), or sparse event-count frames ``[steps, B, *shape]``."""
    rng = np.random.default_rng(seed)
    shape = (batch, *session.protocol.input_shape)
    if session.protocol.input_kind in STATIC_KINDS:
        return rng.random(shape, dtype=np.float32)
    return rng.poisson(0.05, (steps, *shape)).astype(np.float32)


def runtime_step_ms(session: Session, x: np.ndarray, steps: int, repeats: int) -> float:
    """Median over ``repeats`` runs of (loop wall time / steps), the whole SDK loop included."""
    session.run(x, FixedT(steps), counts=False)  # warm up: sessions, allocations
    return 1e3 * float(np.median([session.run(x, FixedT(steps), counts=False).seconds / steps for _ in range(repeats)]))


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def torch_step_ms(checkpoint: str, x: np.ndarray, frames: bool, steps: int, repeats: int, threads: int) -> float:
    """Torch eager's time per step, measured by the trainer (the torch side of the product):
    imported only here, when a checkpoint is given and torch is installed."""
    from trainer.eager import step_ms

    return step_ms(checkpoint, x, frames, steps, repeats, threads)


def bench(
    session: Session,
    batches: Sequence[int],
    steps: int = 20,
    repeats: int = 5,
    checkpoint: str | None = None,
    threads: int = 0,
) -> list[dict]:
    """One row per batch size. Torch runs with the thread count the runtime uses at that
    batch (1 at batch 1, ``threads`` or all cores above) so the ratio compares like with like."""
    all_cores = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    rows = []
    for b in batches:
        x = bench_input(session, b, steps)
        row: dict = {"batch": b, "runtime_ms_per_step": runtime_step_ms(session, x, steps, repeats)}
        if checkpoint and torch_available():
            t = torch_step_ms(
                checkpoint,
                x,
                session.protocol.input_kind not in STATIC_KINDS,
                steps,
                repeats,
                1 if b == 1 else all_cores,
            )
            row.update(torch_ms_per_step=t, speedup=t / row["runtime_ms_per_step"])
        rows.append(row)
    return rows
