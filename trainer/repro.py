"""Threads, deterministic algorithms, and the record of what a run depended on.

Float sums on CPU are split over threads, and the split changes the rounding: the same
seed gives slightly different losses at a different thread count, and training amplifies
the difference; so does the CPU's instruction set, by which torch picks its kernels. A run
is therefore reproducible for a fixed (seed, thread count, library versions, CPU
capability); :func:`environment` is that record, stored in the checkpoint's metrics.
"""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np
import torch

from runtime.limits import available_cores
from runtime.report import cpu_name, versions

from .config import ConfigError

# One thread by default: on the small, shared machines this project targets one thread was
# the fastest per epoch (README, "Threads"), and a fixed count makes figures repeatable.
DEFAULT_THREADS = 1


def setup(threads: int, deterministic: bool = False) -> None:
    """Use ``threads`` intra-op threads (0: every core this process may use, as the
    runtime's ``--threads 0``) and one inter-op thread; optionally only deterministic
    algorithms (an op without one raises instead of running). The count set is what
    ``environment`` records."""
    if threads < 0:
        raise ConfigError(f"--threads must be a non-negative integer (0: all cores), got {threads}")
    torch.set_num_threads(threads or available_cores())
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process (tests run several commands)
        pass
    torch.use_deterministic_algorithms(deterministic)


def environment(seed: int) -> dict[str, Any]:
    """What a rerun must match to give the same figures."""
    return {
        "seed": seed,
        "threads": torch.get_num_threads(),
        # torchrun's process count: BatchNorm statistics and summation order depend on it
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "flexsnn": versions("flexsnn")["flexsnn"],  # the code: a change to it can move every figure
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "python": platform.python_version(),
        "machine": platform.machine(),
        # torch picks its CPU kernels by instruction set: the same run on an AVX-512 and on an
        # AVX2 machine (or under ATEN_CPU_CAPABILITY=avx2) gives other losses from epoch 1
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
