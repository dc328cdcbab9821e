"""Resource bounds: a request's memory is estimated before anything is allocated, and a
request that would not fit is refused with one line naming the estimate and the limit.

The limit is the memory available now (``MemAvailable`` on Linux), or the value of the
``FLEXSNN_MAX_MEMORY`` environment variable (bytes, or with a K/M/G/T suffix) when set:
a lower value keeps a shared machine safe, a higher one overrides the check.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import numpy as np

MAX_T = 100_000  # time steps: far above any real use; beyond it a typo, not a request
ENV = "FLEXSNN_MAX_MEMORY"
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class ResourceError(ValueError):
    """A request that needs more memory (or steps) than allowed; the message says how much."""


def available_cores() -> int:
    """The cores this process may run on (its affinity mask: a container or `taskset`
    limit, not the machine's count); what `--threads 0` means in every CLI."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parse_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not m:
        raise ResourceError(f"{ENV}={text!r} is not a size; expected bytes or a number with K, M, G or T")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def available_bytes() -> int:
    """The memory a request may use: ``FLEXSNN_MAX_MEMORY`` or what the system has available."""
    if os.environ.get(ENV):
        return parse_bytes(os.environ[ENV])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # no way to tell: do not refuse
        return 2**63 - 1


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check_memory(need: float, what: str) -> None:
    """Refuse ``what`` if its estimated ``need`` (bytes) exceeds the limit."""
    limit = available_bytes()
    if need > limit:
        raise ResourceError(
            f"{what} needs about {human(need)} of memory; {human(limit)} is available (set {ENV} to change the limit)"
        )


def run_bytes(protocol: Any, batch: int, frames: int = 1) -> int:
    """About the memory a clock-driven run of ``batch`` samples takes: the input
    (``frames`` steps of it, counted as binning builds them: int64 counts and float32),
    and the state buffers (in and out, swapped each step) with as much again for
    onnxruntime's intermediate tensors."""
    elems = math.prod(protocol.input_shape)
    states = sum(math.prod(s.shape) for s in protocol.states)
    return batch * (12 * elems * max(frames, 1) + 4 * 4 * states + 8 * protocol.num_classes)


def positive_int(value: object) -> bool:
    """Whether ``value`` is a whole number > 0 as Python or numpy holds one (not a bool,
    whose True is 1; not 2.0): a count of steps, samples or streams."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and bool(value > 0)


def check_steps(T: int, what: str = "time steps") -> None:
    if T > MAX_T:
        raise ResourceError(f"{T} {what} asked; at most {MAX_T} are supported")
