"""One-pass numba clock steps of the LIF/IF kinds, for the split executor (runtime/split.py).

The ONNX function body of a LIF layer (rules.py) makes five to nine full passes over the
state (Mul, Add, GreaterOrEqual, Cast, Mul, Sub, ...); this kernel reads the current and
the membrane once and writes spikes and membrane once, doing the SAME float32 operations
in the same order (``decay * u + I``; ``v >= theta``; ``floor(v / theta)``; ``v - theta *
s`` or ``v * keep``; ``max(u, v_min)``), so spikes and states are bit-identical to the
bodies (tests/test_split.py checks every variant). Without fast-math LLVM contracts
nothing into FMAs, which would change the rounding.

numba is imported only by :func:`kernel` (the Raspberry Pi profile runs without it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

import numpy as np

from .base import NeuronSpec

KINDS = ("LIF", "IF")  # kinds with a kernel; the others run on the function bodies

Kernel = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


@cache
def _compiled() -> Callable:
    from numba import njit

    @njit(cache=True, nogil=True, boundscheck=False)
    def lif_step(cur, u, s, decay, theta, multi, zero_reset, clamp, v_min):
        c, uu, ss = cur.ravel(), u.ravel(), s.reshape(-1)
        zero = np.float32(0.0)
        one = np.float32(1.0)
        for i in range(c.size):
            v = decay * uu[i] + c[i]
            fire = v >= theta
            if multi:
                out = np.float32(np.floor(v / theta)) if fire else zero
            else:
                out = one if fire else zero
            if zero_reset:
                r = v * (zero if fire else one)
            else:
                r = v - theta * out
            if clamp:
                r = max(r, v_min)
            ss[i] = out
            uu[i] = r

    return lif_step


def supported(spec: NeuronSpec) -> bool:
    return spec.kind in KINDS


def kernel(spec: NeuronSpec) -> Kernel:
    """``k(current, u, spikes)``: one step, the membrane ``u`` updated in place (C-contiguous
    float32 arrays of one shape)."""
    if not supported(spec):
        raise ValueError(f"no numba kernel for kind {spec.kind!r}; kernels exist for {list(KINDS)}")
    step = _compiled()
    f32 = np.float32
    args = (
        f32(spec.decay),
        f32(spec.v_th),
        spec.spike == "multi",
        spec.reset == "zero",
        spec.v_min != -math.inf,
        f32(spec.v_min if spec.v_min != -math.inf else 0.0),
    )
    return lambda cur, u, s: step(cur, u, s, *args)
