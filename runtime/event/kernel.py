"""numba kernels: run input events through the packed network (:mod:`.network`).

Semantics (DESIGN.md §1, event-driven form). Input events with the same timestamp are
simultaneous and form one *wave*. A wave enters layer 0; every layer in turn

1. fans each arriving spike (index, count n) out through its weights: every target
   group (spatial position) reached is first brought to time t,
   ``v <- v * exp(-(t - t_last) / tau)`` (LIF and LI; IF and a plain readout: no decay),
   then ``v <- v + n * w`` for each output channel;
2. applies the spike and reset rules once to every neuron it touched:
   ``s = 1[v >= v_th]`` ("single") or ``floor(v / v_th)`` ("multi") when ``v >= v_th``;
   ``v <- v - v_th * s`` ("subtract") or ``0`` ("zero"); ``v <- max(v, v_min)``;
   an adaptive threshold (ALIF, ``beta > 0``) is ``v_th + a`` in these rules, where ``a``
   decays like ``v`` with its own ``tau_adapt`` and rises by ``beta * s`` after a spike;
3. sends the spikes on, with the wave's timestamp (zero synaptic delay).

A layer with a synaptic current (CubaLIF, ``charge > 0``) differs in three ways
(the maths section below): bringing a neuron to time t solves its two ODEs exactly, an arriving
spike adds ``n * w`` to the current, not the membrane, and after every update the time
of the neuron's next threshold crossing is solved for (``crossing``: bounded first, and
solved when the run reaches the bound, :func:`lazy_crossing`; a heap holds each group's
earliest neuron, :func:`_regroup`). The crossings form
waves of their own, in time order with the input waves (a crossing at the same time as
an input wave goes first; crossings of one layer at one time are one wave): the neuron
is brought to the crossing time (it is at ``v_th`` there), fires one spike, resets, and
its layer's spikes travel on from the next layer with that (float) time. Its neurons
keep one last-update time each (``tn``), since a crossing updates one neuron alone.
Crossings are run up to ``until`` after the last input event.

A neuron that no spike reaches is not updated (it would not change, except by the decay
that is applied lazily when it is next reached, or when an LI readout is read:
:func:`readout_at`). Everything is float64 except the weights (float32, as exported).

Speed (docs/event_driven.md, docs/runtime.md):

* no reference counting: every function the kernel runs is compiled without numba's
  runtime (``NO_NRT``). With it, each array handed to an inlined helper cost an atomic
  increment and decrement per call, which numba's pruning pass leaves in branching code
  (numba issues #2345, #2350): perf showed ``NRT_incref``/``NRT_decref`` as most of the
  kernel's time on N-MNIST, and dropping them made it about 4x faster. Such functions
  may not allocate: the spike buffers come sized from :func:`make_scratch`;
* the per-group helpers are ``inline="always"``: a plain njit-to-njit call passes each
  array as ~7 scalars and LLVM did not inline it, so the call cost more than the adds;
* no array views in the per-wave loop: rows are indexed from their offset, as unsigned
  integers (:func:`_u`; a signed ``v[vb + o]`` may be negative for all numba knows, and
  its wraparound handling kept LLVM from vectorising the row adds), and the two spike
  buffers are the rows of one array per field, not arrays swapped per layer;
* no fastmath: adds are neither reassociated nor fused (bit-identical to the reference);
  the threshold test is an integer count, which vectorises without it;
* spikes of one input position (one run in the previous layer's output) share one set
  of target groups, so touches and index arithmetic are paid once per run;
* the spike pass finds a group's channels at threshold as the set bits of one 64-bit
  word built in a vectorised pass (:func:`_mask_at`), takes each group's row and column
  from a table, not a division, and a row of one spike is added without the multiply
  by its count (``1.0 * w == w``: the same bits).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import missing_package

# runtime.event's one module-level import of numba: its other modules import this one first,
# so an install without numba gets one line, not a traceback, from one place
try:
    from numba import get_num_threads, prange
    from numba.core.cpu import CPUTargetOptions

    from ..jit import cached_njit
except ImportError as e:
    raise missing_package("numba", "the event-driven engine (runtime.event)", e) from e


from .network import (
    BETA,
    CHARGE,
    CI,
    CO,
    GOFF,
    HI,
    HO,
    INV_TAU,
    INV_TAU_A,
    INV_TAU_S,
    KH,
    KIND,
    KIND_LI,
    KIND_SPIKING,
    KW,
    OP,
    PL,
    POOL,
    PT,
    RESET,
    SH,
    SPIKE,
    SW,
    VMIN,
    VOFF,
    VTH,
    WI,
    WO,
    WOFF,
)


def kernel_threads() -> int:
    """Threads numba's parallel kernels use when called from this thread
    (``numba.get_num_threads``: the calling thread's setting)."""
    return get_num_threads()


# what the kernel's functions compile with: no numba runtime (NRT), hence no reference
# counts (see the module docstring); numba's own workaround for its unpruned counts. The
# option is private: a numba without it compiles the same kernel with the counts (slower)
NO_NRT: dict[str, Any] = {"_nrt": False} if hasattr(CPUTargetOptions, "_nrt") else {}

# ---- CubaLIF: the exact continuous-time maths ----------------------------------------
# The exact continuous-time maths of a neuron with a synaptic current (CubaLIF's
# event-driven form, runtime/neuron/cuba_lif.py), as plain functions of floats.
#
# Between input events the current and the membrane follow (time in µs)::
#
#     di/dt = -ls * i                       ls = 1 / tau_syn (0: no decay)
#     dv/dt = -lm * v + c * i               lm = 1 / tau_mem (0: no leak), c the charge rate
#
# so, ``tau`` after a state ``(v0, i0)``::
#
#     i(tau) = i0 e^{-ls tau}
#     v(tau) = v0 e^{-lm tau} + c i0 phi(tau),   phi = (e^{-ls tau} - e^{-lm tau}) / (lm - ls)
#
# and ``phi = tau e^{-lm tau}`` when ``lm == ls``. ``phi`` is computed as
# ``e^{-min(lm, ls) tau} (1 - e^{-|lm - ls| tau}) / |lm - ls|`` with ``expm1``: no
# cancellation when the two time constants are close, no overflow for long gaps.
#
# The membrane can cross the threshold between inputs (the current keeps charging it):
# :func:`next_crossing` finds the first time it does. ``v`` is a sum of two exponentials,
# so it has at most one extremum, and with ``i0 > 0`` that extremum is a maximum
# (``v'' = -ls c i < 0`` where ``v' = 0``). Hence: no crossing if ``i0 <= 0`` or
# ``v'(0) <= 0``; else ``v`` rises up to its peak (closed form below, or ``inf``) and the
# crossing, if the peak reaches the threshold, is the unique root on ``[0, peak]``, found
# down to adjacent float64 times (see :func:`next_crossing`).
#
# The plain-Python reference (:mod:`.reference`) calls these same compiled functions, so
# both round alike. They live in this file because numba's cache of a kernel is
# invalidated by changes to the kernel's own file only.


@cached_njit(inline="always", **NO_NRT)
def flow(tau: float, lm: float, ls: float, c: float) -> tuple[float, float, float]:
    """``(em, es, k)`` with ``v(tau) = em * v0 + k * i0`` and ``i(tau) = es * i0``."""
    em = math.exp(-tau * lm)
    es = math.exp(-tau * ls)
    d = lm - ls
    if d == 0.0:
        k = c * tau * em
    elif d > 0.0:
        k = c * es * (-math.expm1(-d * tau)) / d
    else:
        k = c * em * (-math.expm1(d * tau)) / (-d)
    return em, es, k


@cached_njit(inline="always", **NO_NRT)
def _v_at(tau: float, v0: float, i0: float, lm: float, ls: float, c: float) -> float:
    em, _, k = flow(tau, lm, ls, c)
    return em * v0 + k * i0


@cached_njit(**NO_NRT)
def _peak(v0: float, ci: float, lm: float, ls: float) -> float:
    """Time of the membrane's maximum after ``(v0, i0)`` with ``ci = c * i0 > ci - lm * v0 > 0``
    (rising at 0); ``inf`` when it rises for ever (towards its limit).

    ``v' = 0`` where ``ls e^{d tau} = lm (1 - v0 d / ci)``, ``d = lm - ls``:
    ``tau = (log1p(d / ls) + log1p(-v0 d / ci)) / d`` (``1 / ls - v0 / ci`` when ``d = 0``)."""
    if lm == 0.0 or ls == 0.0:
        return math.inf  # a single exponential (or a line): monotone
    d = lm - ls
    if d == 0.0:
        peak = 1.0 / ls - v0 / ci
    else:
        x = -v0 * d / ci
        if x <= -1.0:
            return math.inf  # v' never vanishes
        peak = (math.log1p(d / ls) + math.log1p(x)) / d
    return peak if peak > 0.0 else 0.0


@cached_njit(**NO_NRT)
def _limit(v0: float, ci: float, lm: float, ls: float) -> float:
    """``v(inf)``: 0 with both decays, the steady state ``ci / lm`` with a constant current,
    ``v0 + ci / ls`` without a leak, ``inf`` with neither."""
    if lm > 0.0 and ls > 0.0:
        return 0.0
    if lm > 0.0:
        return ci / lm
    if ls > 0.0:
        return v0 + ci / ls
    return math.inf


@cached_njit(**NO_NRT)
def next_crossing(t0: float, v0: float, i0: float, th: float, lm: float, ls: float, c: float) -> float:
    """The first time ``t > t0`` (µs, float64) at which the membrane, from ``(v0, i0)`` at
    ``t0`` with no further input, reaches ``th``; ``t0`` if it is already there; ``inf``
    if it never does. Resolution: the earliest float64 time ``t`` found with ``v(t) >= th``
    whose predecessor is below (the bracket narrowed until it holds adjacent floats)."""
    if v0 >= th:
        return t0
    ci = c * i0
    if ci <= 0.0 or ci - lm * v0 <= 0.0:
        return math.inf  # v <= max(v0, 0) < th, or falling from the start (no minimum)
    peak = _peak(v0, ci, lm, ls)
    if peak == 0.0:
        return math.inf
    # the bracket's upper end is checked at the float time the bracket holds (t0 + peak
    # rounds: at t0 = 2e8 µs a line's end fell 2e-15 below th, returned as its crossing)
    if peak < math.inf:
        hi_t = t0 + peak
        if _v_at(hi_t - t0, v0, i0, lm, ls, c) < th:
            return math.inf  # below th at the float time nearest its peak (or by more)
    else:
        if _limit(v0, ci, lm, ls) <= th:
            return math.inf  # approaches its limit from below, never reaching th
        hi = (th - v0) / ci  # the time at the initial slope at most; grow until above
        hi_t = t0 + hi
        while _v_at(hi_t - t0, v0, i0, lm, ls, c) < th:
            hi *= 2.0
            hi_t = t0 + hi
            if hi_t == math.inf:
                return math.inf  # the limit exceeds th by less than the rounding of v
    # narrow the bracket [lo_t, hi_t] (absolute times, v(lo_t) < th <= v(hi_t)) until it
    # holds adjacent float64 times: a Newton step inside it (bisection where it leaves it),
    # then a probe twice Newton's next correction past that point, across the root once the
    # correction is good to a factor of 2 (a one-sided Newton run would never close the
    # other end); about 10 evaluations where bisection took 50 to 60
    lo_t = t0
    x, f, df = t0, v0 - th, ci - lm * v0
    while True:
        mid = 0.5 * (lo_t + hi_t)
        if mid <= lo_t or mid >= hi_t:
            return hi_t
        x = x - f / df if df > 0.0 else mid  # v rises (df > 0) up to its peak
        if not lo_t < x < hi_t:
            x = mid
        f, df = _f_df(x - t0, v0, i0, th, lm, ls, c)
        if f >= 0.0:
            hi_t = x
        else:
            lo_t = x
        if df > 0.0:
            p = x - 2.0 * f / df
            if p == x:  # within rounding of the root: its neighbour on the other side
                p = np.nextafter(x, math.inf if f < 0.0 else -math.inf)
            if lo_t < p < hi_t:
                if _f_df(p - t0, v0, i0, th, lm, ls, c)[0] >= 0.0:
                    hi_t = p
                else:
                    lo_t = p


@cached_njit(inline="always", **NO_NRT)
def _f_df(tau: float, v0: float, i0: float, th: float, lm: float, ls: float, c: float) -> tuple[float, float]:
    """``(v - th, v')`` at ``tau`` after ``(v0, i0)``: ``v`` as :func:`_v_at` (so ``f >= 0``
    exactly where ``v >= th``), ``v' = -lm v + c i``."""
    em, es, k = flow(tau, lm, ls, c)
    v = em * v0 + k * i0
    return v - th, c * es * i0 - lm * v


@cached_njit(**NO_NRT)
def max_wave(et: np.ndarray, start: int, end: int) -> int:
    """Most events sharing one timestamp in ``et[start:end]`` (sorted)."""
    best, run = 0, 0
    for i in range(start, end):
        run = run + 1 if i > start and et[i] == et[i - 1] else 1
        best = max(best, run)
    return best


@cached_njit(inline="always", **NO_NRT)
def _u(i: int) -> np.uint64:
    """An index as unsigned: numba then skips the negative-index wraparound test, which
    otherwise keeps LLVM from vectorising a row loop (``v[vb + o]`` may be negative for
    all it knows)."""
    return np.uint64(i)


@cached_njit(inline="always", **NO_NRT)
def _advance(vb: int, co: int, t: float, dec, v, cur, tn) -> None:
    """Bring the neurons ``vb..vb+co`` of a CubaLIF layer to time t: the exact solution of
    their ODEs (:func:`flow`) over each one's own time since its last update
    (neurons of one group share it unless one crossed alone: the factors are reused)."""
    last, em, es, k = -1.0, 1.0, 1.0, 0.0
    b = _u(vb)
    for o in range(_u(co)):
        j = b + o
        if tn[j] != t:
            if tn[j] != last:
                last = tn[j]
                em, es, k = flow(t - last, dec[0], dec[2], dec[3])
            v[j] = em * v[j] + k * cur[j]
            cur[j] = es * cur[j]
            tn[j] = t


@cached_njit(inline="always", **NO_NRT)
def _touch(g: int, vb: int, co: int, t: float, dec, v, ath, tl, tn, flag, touch, ntouch: int) -> int:
    """Mark group ``g`` touched in this wave; decay its membranes (and adaptive thresholds)
    to time t on first touch. ``dec`` = (1/tau, 1/tau_adapt, 1/tau_syn, charge) of the layer."""
    if flag[g]:
        return ntouch
    flag[g] = 1
    touch[ntouch] = g
    if dec[3] > 0.0:  # CubaLIF: membrane and current, per neuron
        _advance(vb, co, t, dec, v, ath, tn)
        tl[g] = t
        return ntouch + 1
    b = _u(vb)
    if dec[0] > 0.0:  # IF and plain readouts (decay 1) skip the exp and the multiply
        d = math.exp(-(t - tl[g]) * dec[0])  # exact decay over the time since the last update
        for o in range(_u(co)):
            v[b + o] *= d
    if dec[1] > 0.0:  # ALIF: the threshold increment decays on its own time constant
        d = math.exp(-(t - tl[g]) * dec[1])
        for o in range(_u(co)):
            ath[b + o] *= d
    tl[g] = t
    return ntouch + 1


@cached_njit(inline="always", **NO_NRT)
def _taps(i: int, pad: int, k: int, s: int, n_out: int, first: np.ndarray) -> int:
    """Output rows Y (or columns) that input row ``i`` reaches: ``Y * s + ky - pad = i``.
    Writes (Y, ky) pairs into ``first`` and returns how many."""
    m = 0
    if s == 1:  # Y = i + pad - ky for ky with 0 <= Y < n_out: a contiguous range, no division
        lo, hi = max(0, i + pad - k + 1), min(n_out - 1, i + pad)
        for Y in range(lo, hi + 1):
            first[2 * m], first[2 * m + 1] = Y, i + pad - Y
            m += 1
        return m
    for ky in range(k):
        yy = i + pad - ky
        if yy >= 0 and yy % s == 0 and yy // s < n_out:
            first[2 * m], first[2 * m + 1] = yy // s, ky
            m += 1
    return m


@cached_njit(inline="always", **NO_NRT)
def _run_end(sy, sx, r: int, s: int, nin: int, k: int) -> int:
    """End of the run of spikes from ``s`` (of buffer row ``r``) on that share one
    (pooled) input position.

    The previous layer emits all spiking channels of a position together, so such runs
    are common; each is fanned out with one set of target groups (fewer touches and
    index computations per synaptic operation)."""
    yi, xi = sy[r, s] // k, sx[r, s] // k
    e = s + 1
    while e < nin and sy[r, e] // k == yi and sx[r, e] // k == xi:
        e += 1
    return e


@cached_njit(inline="always", **NO_NRT)
def _add_rows(v, vb: int, co: int, W, wb: int, stride: int, sc, sn, r: int, s: int, e: int) -> None:
    """``v[vb:vb+co] += n * W[row]`` for the spikes ``s..e-1`` of buffer row ``r`` in order
    (channel c's row starts at ``wb + c * stride``). One spike at a time, so every membrane
    gets its additions in the same order, with the same roundings, as in the reference."""
    b = _u(vb)
    for j in range(s, e):
        n, w0 = sn[r, j], _u(wb + sc[r, j] * stride)
        if n == 1.0:  # one spike (always, with "single" spikes): n * w == w, the multiply is skipped
            for o in range(_u(co)):
                v[b + o] += W[w0 + o]
        else:
            for o in range(_u(co)):
                v[b + o] += n * W[w0 + o]


@cached_njit(inline="always", **NO_NRT)
def _fan_out_conv(
    P, L: int, dec, W, sc, sy, sx, sn, r: int, nin: int, v, ath, tl, tn, flag, touch, rows, cols, t: float
) -> tuple:
    """Conv fan-out of layer ``L``'s input spikes (buffer row ``r``): a spike at (c, yi, xi)
    reaches (Y, X) with Y * sh + ky - pt = yi. Returns (groups touched, synaptic ops)."""
    k = P[L, POOL]
    hi, wi, co, ho, wo = P[L, HI], P[L, WI], P[L, CO], P[L, HO], P[L, WO]
    voff, goff, woff = P[L, VOFF], P[L, GOFF], P[L, WOFF]
    kh, kw, sh, sw, pt, pl = P[L, KH], P[L, KW], P[L, SH], P[L, SW], P[L, PT], P[L, PL]
    cstride = kh * kw * co  # from one input channel's weights to the next
    ntouch, syn, s = 0, 0, 0
    while s < nin:
        e = _run_end(sy, sx, r, s, nin, k)  # sum pooling: k x k sources share one input position
        yi, xi = sy[r, s] // k, sx[r, s] // k
        if yi < hi and xi < wi:  # else beyond the last full pooling window: AveragePool drops it
            nr = _taps(yi, pt, kh, sh, ho, rows)
            nc = _taps(xi, pl, kw, sw, wo, cols)
            for a in range(nr):
                Y, ky = rows[2 * a], rows[2 * a + 1]
                for b in range(nc):
                    X, kx = cols[2 * b], cols[2 * b + 1]
                    g = Y * wo + X
                    vb = voff + g * co
                    ntouch = _touch(goff + g, vb, co, t, dec, v, ath, tl, tn, flag, touch, ntouch)
                    wb = woff + (ky * kw + kx) * co
                    if dec[3] > 0.0:  # CubaLIF: a spike adds to the synaptic current
                        _add_rows(ath, vb, co, W, wb, cstride, sc, sn, r, s, e)
                    else:
                        _add_rows(v, vb, co, W, wb, cstride, sc, sn, r, s, e)
            syn += (e - s) * nr * nc * co
        s = e
    return ntouch, syn


@cached_njit(inline="always", **NO_NRT)
def _fan_out_dense(P, L: int, dec, W, sc, sy, sx, sn, r: int, nin: int, v, ath, tl, tn, flag, touch, t: float) -> tuple:
    """Dense fan-out: every spike adds one contiguous weight row to the single group."""
    k = P[L, POOL]
    ci, hi, wi, co = P[L, CI], P[L, HI], P[L, WI], P[L, CO]
    voff, goff, woff = P[L, VOFF], P[L, GOFF], P[L, WOFF]
    ntouch, syn = 0, 0
    for s in range(nin):
        yi, xi = sy[r, s] // k, sx[r, s] // k
        if yi >= hi or xi >= wi:
            continue  # beyond the last full pooling window: AveragePool drops it
        ntouch = _touch(goff, voff, co, t, dec, v, ath, tl, tn, flag, touch, ntouch)
        wb = woff + ((yi * wi + xi) * ci) * co
        if dec[3] > 0.0:  # CubaLIF: a spike adds to the synaptic current
            _add_rows(ath, voff, co, W, wb, co, sc, sn, r, s, s + 1)
        else:
            _add_rows(v, voff, co, W, wb, co, sc, sn, r, s, s + 1)
        syn += co
    return ntouch, syn


# the index of a 64-bit word's single set bit: (bit * DE_BRUIJN) >> 58 is distinct for
# each of the 64 bits (a de Bruijn sequence), so a table maps it back
DE_BRUIJN = np.uint64(0x03F79D71B4CB0A89)
LOWEST_BIT = np.zeros(64, np.int64)
LOWEST_BIT[(np.uint64(1) << np.arange(64, dtype=np.uint64)) * DE_BRUIJN >> np.uint64(58)] = np.arange(64)


@cached_njit(inline="always", **NO_NRT)
def _mask_at(v, vb: int, co: int, v_th: float) -> np.uint64:
    """Bit o set where membrane o of the group (``co <= 64``) is at threshold: one
    vectorised pass (compare, shift, or) in place of a count and then a gather."""
    b = _u(vb)
    m = np.uint64(0)
    for o in range(_u(co)):
        m |= np.uint64(v[b + o] >= v_th) << np.uint64(o)
    return m


@cached_njit(inline="always", **NO_NRT)
def _count_at(v, vb: int, co: int, v_th: float) -> int:
    """How many membranes of a group are at threshold: an integer count, which LLVM
    vectorises without fastmath (a cheap test before the per-neuron pass)."""
    b = _u(vb)
    hot = 0
    for o in range(_u(co)):
        hot += v[b + o] >= v_th
    return hot


@cached_njit(inline="always", **NO_NRT)
def _fire(P, F, L: int, v, ath, flag, touch, ntouch: int, cnt, sc, sy, sx, sn, r: int, hits, place) -> int:
    """Spike and reset rules on layer ``L``'s touched groups; returns the number of
    spiking neurons, written as (channel, row, column, count) into buffer row ``r``."""
    co, ho, wo, voff, goff = P[L, CO], P[L, HO], P[L, WO], P[L, VOFF], P[L, GOFF]
    spiking = P[L, KIND] == KIND_SPIKING
    multi, zero = P[L, SPIKE] == 1, P[L, RESET] == 1
    v_th, v_min, beta = F[L, VTH], F[L, VMIN], F[L, BETA]
    clamp = v_min > -math.inf
    nout = 0
    for k in range(ntouch):
        g = touch[k]
        flag[g] = 0
        if not spiking:
            continue
        local = g - goff
        vb = voff + local * co
        b = _u(vb)
        if clamp:
            for o in range(_u(co)):
                v[b + o] = max(v[b + o], v_min)
        # the channels to look at: those at threshold (with beta > 0, all: each has its own)
        nhit = 0
        if beta > 0.0:
            for o in range(co):
                hits[nhit] = o
                nhit += 1
        elif co <= 64:
            m = _mask_at(v, vb, co, v_th)
            while m:  # most touched groups have none
                low = m & (~m + np.uint64(1))
                hits[nhit] = LOWEST_BIT[(low * DE_BRUIJN) >> np.uint64(58)]
                nhit += 1
                m ^= low
        else:
            if _count_at(v, vb, co, v_th) == 0:
                continue  # most touched groups have no neuron at threshold
            # gathered without a branch per neuron (a mispredicted branch at each spike
            # cost more than the gathering)
            for o in range(co):
                hits[nhit] = o
                nhit += v[b + _u(o)] >= v_th
        if nhit == 0:
            continue
        Y, X = place[0, g], place[1, g]  # a table, not a division per group
        for q in range(nhit):
            o = hits[q]
            j = b + _u(o)
            u = v[j]
            th = v_th + ath[j] if beta > 0.0 else v_th
            if u >= th:
                s = math.floor(u / th) if multi else 1.0
                u = 0.0 if zero else u - th * s
                sc[r, nout], sy[r, nout], sx[r, nout], sn[r, nout] = o, Y, X, s
                nout += 1
                cnt[voff + (o * ho + Y) * wo + X] += np.int64(s)  # ONNX order (C, H, W)
                v[j] = max(u, v_min)
                if beta > 0.0:
                    ath[j] += beta * s
    return nout


@cached_njit(inline="always", **NO_NRT)
def _before(pred, a: int, b: int) -> bool:
    """Heap order: earlier crossing first, then lower neuron index (layers in order)."""
    return pred[a] < pred[b] or (pred[a] == pred[b] and a < b)


@cached_njit(**NO_NRT)
def _sift(heap, hpos, pred, k: int, n: int) -> None:
    """Restore the heap order around position ``k`` (up, then down)."""
    j = heap[k]
    while k > 0:
        q = heap[(k - 1) // 2]
        if not _before(pred, j, q):
            break
        heap[k], hpos[q] = q, k
        k = (k - 1) // 2
    while True:
        c = 2 * k + 1
        if c >= n:
            break
        if c + 1 < n and _before(pred, heap[c + 1], heap[c]):
            c += 1
        if not _before(pred, heap[c], j):
            break
        heap[k], hpos[heap[c]] = heap[c], k
        k = c
    heap[k], hpos[j] = j, k


@cached_njit(**NO_NRT)
def _drop(heap, hpos, n: int, pred, j: int) -> int:
    """Remove neuron ``j``'s heap entry; returns the heap's new size."""
    k = hpos[j]
    hpos[j] = -1
    n -= 1
    if k < n:
        heap[k] = heap[n]
        hpos[heap[k]] = k
        _sift(heap, hpos, pred, k, n)
    return n


@cached_njit(**NO_NRT)
def _regroup(heap, hpos, n: int, pred, rep, g: int, vb: int, co: int) -> int:
    """Group ``g`` (neurons ``vb .. vb + co``) after its crossing times changed: its one heap
    entry is its earliest neuron (the lowest index of equal times), none if no neuron has a
    time. The heap's first entry is then the earliest neuron of all, in the order of one
    entry per neuron, at a heap move per group rather than per neuron. Returns the heap's
    size."""
    best, bt = -1, math.inf
    for j in range(vb, vb + co):
        if pred[j] < bt:
            bt, best = pred[j], j
    old = rep[g]
    rep[g] = best
    if old >= 0 and old != best:
        n = _drop(heap, hpos, n, pred, old)
    if best < 0:
        return n
    if hpos[best] < 0:
        heap[n], hpos[best] = best, n
        _sift(heap, hpos, pred, n, n + 1)
        return n + 1
    _sift(heap, hpos, pred, hpos[best], n)
    return n


@cached_njit(inline="always", **NO_NRT)
def _group_of(P, j: int) -> tuple[int, int, int]:
    """Neuron ``j``'s group: its index among all groups, its first neuron and its size (the
    layer's channels)."""
    L = _layer_of(P, j)
    co, voff = P[L, CO], P[L, VOFF]
    g = (j - voff) // co
    return P[L, GOFF] + g, voff + g * co, co


@cached_njit(inline="always", **NO_NRT)
def _regroup_of(P, j: int, heap, hpos, n: int, pred, rep) -> int:
    """:func:`_regroup` of neuron ``j``'s group."""
    g, vb, co = _group_of(P, j)
    return _regroup(heap, hpos, n, pred, rep, g, vb, co)


# A crossing solved for after every touch is mostly thrown away: the neuron is touched again
# (by the next wave that reaches it) before it would cross, and the solve
# (:func:`next_crossing`: its peak and about 10 evaluations of two exponentials) was 97% of
# a CubaLIF stream's time on the digits (docs/event_driven.md). So a touch enters a lower
# bound on the crossing (marked in ``tent``), and the exact time is solved for when the
# run's clock reaches that bound with the neuron untouched since (:func:`_resolve`), from
# the state the eager solve read: the same times, the same spikes, bit for bit. A state
# handed back holds exact times only (:func:`_settle`).
#
# The bound: while v rises towards a crossing, ``v >= v0`` and ``i <= i0`` (``i0 > 0``
# decays), so ``v' = c i - lm v <= c i0 - lm v0 = v'(0)``, and ``v`` cannot reach ``th``
# before ``(th - v0) / v'(0)``. The solve's root is the first float time at which the
# *computed* ``v`` is at ``th``, early by its rounding at most (a few ulps of ``|v0| +
# th``, under 1e-5 of the gap ``th - v0`` once the gap is over ``NEAR * th``; nearer, it
# is solved at once); the bound is taken at ``LAZY`` of its value, far below the root.
# (A tighter bound, ``log1p`` of the decaying current, cost more than it saved.)
# Never crossing is found without a solve where the most the current can still add,
# ``peak_gain * i0``, leaves ``v`` below ``th`` by more than rounding (``NEVER``).
NEAR = 1e-9
LAZY = 0.9
NEVER = 1.0 - 1e-12


@cached_njit(inline="always", **NO_NRT)
def peak_gain(lm: float, ls: float, c: float) -> float:
    """``max_tau k(tau)`` (:func:`flow`): the most a current of 1 ever adds to the membrane,
    at ``tau = ln(lm / ls) / (lm - ls)`` (``1 / ls`` when equal); ``c / ls`` without a leak,
    ``inf`` when the current does not decay."""
    if ls == 0.0:
        return math.inf
    if lm == 0.0:
        return c / ls
    d = lm - ls
    tau = 1.0 / ls if d == 0.0 else math.log1p(d / ls) / d  # log1p: exact for rates ulps apart
    return flow(tau, lm, ls, c)[2]


@cached_njit(inline="always", **NO_NRT)
def lazy_crossing(
    t0: float, v0: float, i0: float, th: float, lm: float, ls: float, c: float, gain: float
) -> tuple[float, bool]:
    """``(time, exact)``: :func:`next_crossing`'s time where it is found without solving
    (already at threshold, never rising, never reaching ``th``, or too near to bound) with
    ``exact`` True; else a time at or before it (see above) with ``exact`` False.
    ``gain``: :func:`peak_gain` of the layer."""
    if v0 >= th:
        return t0, True
    ci = c * i0
    if ci <= 0.0 or ci - lm * v0 <= 0.0:
        return math.inf, True  # next_crossing's own test, to the bit
    if max(v0, 0.0) + gain * i0 < NEVER * th:
        return math.inf, True  # v = e^{-lm tau} v0 + k i0 <= max(v0, 0) + gain i0 < th for ever
    gap = th - v0
    if gap <= NEAR * th:
        return next_crossing(t0, v0, i0, th, lm, ls, c), True
    return t0 + LAZY * gap / (ci - lm * v0), False


@cached_njit(inline="always", **NO_NRT)
def _layer_of(P, j: int) -> int:
    """The layer of neuron ``j`` (internal order: layers from their offsets ``VOFF``)."""
    L = 0
    while L + 1 < P.shape[0] and j >= P[L + 1, VOFF]:
        L += 1
    return L


@cached_njit(inline="always", **NO_NRT)
def _solve(P, F, j: int, v, cur, tn, pred, tent) -> None:
    """Neuron ``j``'s bound replaced by its exact crossing (:func:`next_crossing`)."""
    L = _layer_of(P, j)
    pred[j] = next_crossing(tn[j], v[j], cur[j], F[L, VTH], F[L, INV_TAU], F[L, INV_TAU_S], F[L, CHARGE])
    tent[j] = 0


@cached_njit(**NO_NRT)
def _resolve(P, F, v, cur, tn, pred, tent, heap, hpos, rep, n: int, limit: float) -> int:
    """Solve the heap's first entry while it is a bound at or before ``limit``: afterwards it
    is an exact crossing, or after ``limit`` (entries tied with it may still be bounds: the
    crossing wave solves those). Returns the heap's size."""
    while n > 0 and tent[heap[0]] and pred[heap[0]] <= limit:
        j = heap[0]
        _solve(P, F, j, v, cur, tn, pred, tent)
        n = _regroup_of(P, j, heap, hpos, n, pred, rep)
    return n


@cached_njit(**NO_NRT)
def _settle(P, F, v, cur, tn, pred, tent, heap, n: int) -> None:
    """Solve every bound left (each in a group with a heap entry): the state a run hands
    back holds exact crossing times only (the next run rebuilds its heap from them)."""
    for k in range(n):
        _, vb, co = _group_of(P, heap[k])
        for j in range(vb, vb + co):
            if tent[j]:
                _solve(P, F, j, v, cur, tn, pred, tent)


@cached_njit(inline="always", **NO_NRT)
def _repredict(P, F, L: int, v, cur, tn, pred, tent, touch, ntouch: int, heap, hpos, rep, n: int) -> int:
    """The next crossing of every neuron of the touched groups of CubaLIF layer ``L``, or a
    bound on it (:func:`lazy_crossing`)."""
    co, voff, goff = P[L, CO], P[L, VOFF], P[L, GOFF]
    v_th, lm, ls, c = F[L, VTH], F[L, INV_TAU], F[L, INV_TAU_S], F[L, CHARGE]
    gain = peak_gain(lm, ls, c)
    for k in range(ntouch):
        vb = voff + (touch[k] - goff) * co
        for j in range(vb, vb + co):
            pred[j], exact = lazy_crossing(tn[j], v[j], cur[j], v_th, lm, ls, c, gain)
            tent[j] = 0 if exact else 1
        n = _regroup(heap, hpos, n, pred, rep, touch[k], vb, co)
    return n


@cached_njit()
def _spike_buffers(n: int) -> tuple:
    """Two spike buffers, rows 0 and 1, used in turn from layer to layer: channel, row,
    column (int64) and count (float64) of each spike. One array per field with the two
    buffers as rows, not eight arrays swapped per layer: an array variable reassigned
    in the per-wave loop costs numba an atomic reference count each time (measured: the
    per-wave overhead was most of the kernel's time on N-MNIST, docs/runtime.md)."""
    return np.empty((2, n), np.int64), np.empty((2, n), np.int64), np.empty((2, n), np.int64), np.empty((2, n))


@cached_njit()
def make_scratch(P, n_neurons: int, n_groups: int, wave: int = 0) -> tuple:
    """The working arrays of :func:`run_events`, sized for the network (a caller keeps
    them across runs: allocated per run, their megabytes were most of a short stream's
    cost on a large network). The spike buffers (:func:`_spike_buffers`), sized for the
    largest layer or an input wave of ``wave`` events, whichever is larger; touched
    groups; a spike's target rows and columns; per-group touch flags; the heap of
    pending CubaLIF crossings and each neuron's place in it; the channels of a group at
    threshold; each group's row and column in its layer (a table the kernel reads); which
    CubaLIF neurons hold a bound, not a crossing (:func:`lazy_crossing`); each CubaLIF
    group's neuron in the heap (:func:`_regroup`)."""
    maxn, maxg, maxk, maxc = max(1, wave), 1, 1, 1
    for L in range(P.shape[0]):
        maxn = max(maxn, P[L, HO] * P[L, WO] * P[L, CO])
        maxg = max(maxg, P[L, HO] * P[L, WO])
        maxk = max(maxk, P[L, KH], P[L, KW])
        maxc = max(maxc, P[L, CO])
    sc, sy, sx, sn = _spike_buffers(maxn)
    place = np.empty((2, max(1, n_groups)), np.int64)  # each group's (row, column) in its layer
    for L in range(P.shape[0]):
        for g in range(P[L, HO] * P[L, WO]):
            place[0, P[L, GOFF] + g], place[1, P[L, GOFF] + g] = g // P[L, WO], g % P[L, WO]
    return (
        sc,
        sy,
        sx,
        sn,
        np.empty(maxg, np.int64),
        np.empty(2 * maxk, np.int64),
        np.empty(2 * maxk, np.int64),
        np.zeros(n_groups, np.uint8),
        np.empty(n_neurons, np.int64),
        np.empty(n_neurons, np.int64),
        np.empty(maxc, np.int64),
        place,
        np.zeros(n_neurons, np.uint8),
        np.empty(max(1, n_groups), np.int64),
    )


# nogil: the early-exit runs advance streams side by side on Python threads (.exit)
@cached_njit(nogil=True, **NO_NRT)
def run_events(
    P,
    F,
    W,
    ex,
    ey,
    ep,
    et,
    start: int,
    end: int,
    until: float,
    v,
    ath,
    tl,
    tn,
    pred,
    cnt,
    rec_layer: int,
    rec_t,
    rec_i,
    rec_c,
    tally,
    scratch,
) -> int:
    """Run events ``[start, end)`` of one stream (its state ``v, ath, tl, tn, pred, cnt``;
    ``ath``: the second state, ALIF's threshold increments or CubaLIF's currents; ``tn``,
    ``pred``: CubaLIF neurons' last-update and next-crossing times) wave by wave, then the
    threshold crossings up to time ``until``.

    ``cnt`` counts each neuron's spikes in ONNX order (each layer's (C, H, W) from its
    offset: results use it as it is). Spikes of layer ``rec_layer`` (-1: none) are
    recorded as (t, neuron in C, H, W order, count) from ``tally[0]`` on; ``tally[1]``
    counts the synaptic operations (weight additions). ``scratch``: :func:`make_scratch`'s
    arrays (the working arrays' contents are not read: every run starts them afresh; the
    group table is read). Returns the index of the first event not run, with ``tally[2]``
    0: all done; 1: stopped before a wave whose spikes might not fit the record (call
    again from there); 2: a CubaLIF neuron crossed its threshold again at the same float64
    time (a current too large to resolve in time: the run cannot go on); 3: nothing run,
    an input wave has more events than the spike buffers hold (call again with
    ``make_scratch(..., wave=max_wave(et, start, end))``).
    """
    nl = P.shape[0]
    sc, sy, sx, sn, touch, rows, cols, flag, heap, hpos, hits, place, tent, rep = scratch
    if max_wave(et, start, end) > sc.shape[1]:  # an input wave wider than every layer
        tally[2] = 3
        return start
    flag[:] = 0  # per group: 1 touched in this wave (a run stopped mid-wave can leave ones)
    rec_size = P[rec_layer, HO] * P[rec_layer, WO] * P[rec_layer, CO] if rec_layer >= 0 else 0
    # the pending crossings, earliest first, one entry per group (rebuilt from ``pred``,
    # which the state carries)
    nh = 0
    for L in range(nl):  # only CubaLIF groups enter the heap: only theirs need places
        if F[L, CHARGE] > 0.0:
            hpos[P[L, VOFF] : P[L, VOFF] + P[L, HO] * P[L, WO] * P[L, CO]] = -1
            tent[P[L, VOFF] : P[L, VOFF] + P[L, HO] * P[L, WO] * P[L, CO]] = 0  # the state's times are exact
            rep[P[L, GOFF] : P[L, GOFF] + P[L, HO] * P[L, WO]] = -1
    for L in range(nl):
        if F[L, CHARGE] > 0.0:
            for g in range(P[L, HO] * P[L, WO]):
                nh = _regroup(heap, hpos, nh, pred, rep, P[L, GOFF] + g, P[L, VOFF] + g * P[L, CO], P[L, CO])
    i = start
    while True:
        if rec_layer >= 0 and tally[0] + rec_size > rec_t.size:
            _settle(P, F, v, ath, tn, pred, tent, heap, nh)
            tally[2] = 1
            return i
        limit = float(et[i]) if i < end else until
        nin = 0
        # the first entry is an exact crossing now, or after limit (a bound is at or before its
        # crossing); bounds tied with it are solved as the wave reaches them, below
        nh = _resolve(P, F, v, ath, tn, pred, tent, heap, hpos, rep, nh, limit)
        if nh > 0 and pred[heap[0]] <= limit:  # a crossing wave: one layer's crossings at one time
            t = pred[heap[0]]
            first = _layer_of(P, heap[0])
            co, ho, wo, voff = P[first, CO], P[first, HO], P[first, WO], P[first, VOFF]
            lm, ls, c = F[first, INV_TAU], F[first, INV_TAU_S], F[first, CHARGE]
            v_th, v_min = F[first, VTH], F[first, VMIN]
            while nh > 0 and pred[heap[0]] == t and voff <= heap[0] < voff + ho * wo * co:
                j = heap[0]
                if tent[j]:  # a bound tied with this wave's time: solved, it fires now if it crosses at t
                    _solve(P, F, j, v, ath, tn, pred, tent)
                    nh = _regroup_of(P, j, heap, hpos, nh, pred, rep)
                    continue
                if tn[j] != t:  # the current decays to t; the membrane is at v_th there
                    ath[j] *= flow(t - tn[j], lm, ls, c)[1]
                    tn[j] = t
                v[j] = max(0.0, v_min)  # at v = v_th: one spike, and either reset leaves 0
                g, o = (j - voff) // co, (j - voff) % co
                Y, X = g // wo, g % wo
                chw = (o * ho + Y) * wo + X  # the neuron in ONNX order
                cnt[voff + chw] += 1
                sc[0, nin], sy[0, nin], sx[0, nin], sn[0, nin] = o, Y, X, 1.0
                nin += 1
                if first == rec_layer:
                    r = tally[0]
                    rec_t[r], rec_i[r], rec_c[r] = t, chw, 1
                    tally[0] = r + 1
                pred[j] = next_crossing(t, v[j], ath[j], v_th, lm, ls, c)
                if pred[j] <= t:
                    _settle(P, F, v, ath, tn, pred, tent, heap, nh)
                    tally[2] = 2
                    return i
                nh = _regroup_of(P, j, heap, hpos, nh, pred, rep)
            first += 1
        elif i < end:
            ti = et[i]
            t = float(ti)
            first = 0
            while i < end and et[i] == ti:  # the wave: every input event at time t
                sc[0, nin], sy[0, nin], sx[0, nin], sn[0, nin] = ep[i], ey[i], ex[i], 1.0
                nin += 1
                i += 1
        else:
            _settle(P, F, v, ath, tn, pred, tent, heap, nh)
            break
        r = 0  # the buffer row holding the current layer's input spikes
        for L in range(first, nl):
            if nin == 0:
                break
            dec = (F[L, INV_TAU], F[L, INV_TAU_A], F[L, INV_TAU_S], F[L, CHARGE])
            if P[L, OP] == 0:
                ntouch, syn = _fan_out_conv(
                    P, L, dec, W, sc, sy, sx, sn, r, nin, v, ath, tl, tn, flag, touch, rows, cols, t
                )
            else:
                ntouch, syn = _fan_out_dense(P, L, dec, W, sc, sy, sx, sn, r, nin, v, ath, tl, tn, flag, touch, t)
            tally[1] += syn
            r = 1 - r  # this layer's spikes go to the other row
            nin = _fire(P, F, L, v, ath, flag, touch, ntouch, cnt, sc, sy, sx, sn, r, hits, place)
            if dec[3] > 0.0:
                nh = _repredict(P, F, L, v, ath, tn, pred, tent, touch, ntouch, heap, hpos, rep, nh)
            if L == rec_layer:
                ho, wo = P[L, HO], P[L, WO]
                for k in range(nin):
                    q = tally[0]
                    rec_t[q], rec_i[q], rec_c[q] = t, (sc[r, k] * ho + sy[r, k]) * wo + sx[r, k], np.int64(sn[r, k])
                    tally[0] = q + 1
    return end


@cached_njit(**NO_NRT)
def readout_at(P, F, layers, v, tl, t: float, dst) -> None:
    """The membranes ``v`` (internal order, :mod:`.network`) of ``layers`` read at time ``t``
    into ``dst``, layer after layer, each in ONNX order (C, H, W). An LI layer's are decayed
    from their group's last update ``tl`` to ``t`` as an input at ``t`` would decay them
    (:func:`_touch`'s factor): the membrane a clock run reads at the end of its last bin, as
    bins get finer. Other layers' (a plain readout's summed current, a spiking layer's
    membranes) and an LI's without a leak (``INV_TAU`` 0) are copied as they are. The one
    place both :meth:`.engine.EventEngine.result` and :func:`run_worker` read a readout, so
    streamed and whole-stream results agree bit for bit. Reads are strided by the channel
    count; ``v`` is in cache after a run, and every write is sequential."""
    o = 0
    for L in layers:
        co, n_pos, voff, goff = P[L, CO], P[L, HO] * P[L, WO], P[L, VOFF], P[L, GOFF]
        lm = F[L, INV_TAU] if P[L, KIND] == KIND_LI else 0.0
        for c in range(co):
            for g in range(n_pos):
                u = v[voff + g * co + c]
                if lm > 0.0:  # decay 1 keeps the membrane's bits: no exp, no multiply
                    u *= math.exp(-(t - tl[goff + g]) * lm)
                dst[o] = u
                o += 1


@cached_njit()
def run_worker(
    P, F, W, ex, ey, ep, et, offsets, until, n_groups: int, n2: int, nc: int, readout, w: int, workers: int, V, CNT, SYN
) -> None:
    """Streams ``w, w + workers, ...`` of :func:`run_streams`, one after another: the state
    (membranes, ``n2`` second states, ``nc`` update and crossing times: 0 where no layer has
    them, :class:`.network.Net`, the group update times) and the kernel's working arrays
    are made once and reset per stream while in cache: no per-stream allocation, and no
    ``[streams, neurons]`` membranes (their megabytes were most of a short stream's cost)."""
    B, n = offsets.size - 1, CNT.shape[1]
    wave = 0
    for b in range(w, B, workers):
        wave = max(wave, max_wave(et, offsets[b], offsets[b + 1]))
    scratch = make_scratch(P, n, n_groups, wave)
    tally = np.zeros(3, np.int64)
    v, ath, tl, tn, pred = np.empty(n), np.empty(n2), np.empty(n_groups), np.empty(nc), np.empty(nc)
    none_i, none_t = np.empty(0, np.int64), np.empty(0, np.float64)
    for b in range(w, B, workers):
        v[:] = 0.0
        ath[:] = 0.0
        tl[:] = 0.0
        tn[:] = 0.0
        pred[:] = np.inf
        tally[:] = 0
        run_events(
            P,
            F,
            W,
            ex,
            ey,
            ep,
            et,
            offsets[b],
            offsets[b + 1],
            until[b],
            v,
            ath,
            tl,
            tn,
            pred,
            CNT[b],
            -1,
            none_t,
            none_i,
            none_i,
            tally,
            scratch,
        )
        SYN[b] = -1 if tally[2] == 2 else tally[1]
        readout_at(P, F, readout, v, tl, until[b], V[b])


@cached_njit(parallel=True)
def run_streams(
    P, F, W, ex, ey, ep, et, offsets, until, n_groups: int, n2: int, nc: int, readout, workers: int, V, CNT, SYN
) -> None:
    """Whole streams in parallel: stream b is ``[offsets[b], offsets[b + 1])``, its
    crossings run up to ``until[b]``; its spike counts end in ``CNT[b]`` (zeroed by the
    caller; layer after layer, each in ONNX order) and the membranes of layer
    ``readout[0]`` in ``V[b]``, read at ``until[b]`` (:func:`readout_at`). Each of
    ``workers`` threads (numba's thread count: given, not asked, since a compiled function
    that asks cannot be cached) runs every ``workers``-th stream (:func:`run_worker`). ``SYN[b]`` -1: the stream
    stopped as :func:`run_events` does with ``tally[2] = 2``."""
    workers = min(offsets.size - 1, workers)
    for w in prange(workers):
        run_worker(P, F, W, ex, ey, ep, et, offsets, until, n_groups, n2, nc, readout, w, workers, V, CNT, SYN)


@cached_njit()
def run_streams_serial(
    P, F, W, ex, ey, ep, et, offsets, until, n_groups: int, n2: int, nc: int, readout, V, CNT, SYN
) -> None:
    """:func:`run_streams` on the calling thread alone, outside numba's threading layer
    (the same numbers: each stream runs as it does there): for a process forked after its
    parent ran the parallel kernel, where GNU OpenMP's thread pool aborts the child."""
    run_worker(P, F, W, ex, ey, ep, et, offsets, until, n_groups, n2, nc, readout, 0, 1, V, CNT, SYN)
