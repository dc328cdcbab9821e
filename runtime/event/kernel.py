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
of the neuron's next threshold crossing is solved for (``crossing``). The crossings form
waves of their own, in time order with the input waves (a crossing at the same time as
an input wave goes first; crossings of one layer at one time are one wave): the neuron
is brought to the crossing time (it is at ``v_th`` there), fires one spike, resets, and
its layer's spikes travel on from the next layer with that (float) time. Its neurons
keep one last-update time each (``tn``), since a crossing updates one neuron alone.
Crossings are run up to ``until`` after the last input event.

A neuron that no spike reaches is not updated (it would not change, except by the decay
that is applied lazily when it is next reached). Everything is float64 except the
weights (float32, as exported).

Speed (what made the hot path about 2.5x faster, see docs/event_driven.md):

* the per-group helpers are ``inline="always"``: a plain njit-to-njit call passes each
  array as ~7 scalars and LLVM did not inline it, so the call cost more than the adds;
* channel loops index slices ``v[vb:vb + co]`` from 0: ``v[vb + o]`` may be negative for
  all numba knows, and its wraparound handling kept LLVM from vectorising the row adds;
* no fastmath: adds are neither reassociated nor fused (bit-identical to the reference);
  the threshold test is an integer count, which vectorises without it;
* spikes of one input position (one run in the previous layer's output) share one set
  of target groups, so touches and index arithmetic are paid once per run.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

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
# by bisection down to adjacent float64 times.
#
# The plain-Python reference (:mod:`.reference`) calls these same compiled functions, so
# both round alike. They live in this file because numba's cache of a kernel is
# invalidated by changes to the kernel's own file only.


@njit(cache=True, inline="always")
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


@njit(cache=True, inline="always")
def _v_at(tau: float, v0: float, i0: float, lm: float, ls: float, c: float) -> float:
    em, _, k = flow(tau, lm, ls, c)
    return em * v0 + k * i0


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
def next_crossing(t0: float, v0: float, i0: float, th: float, lm: float, ls: float, c: float) -> float:
    """The first time ``t > t0`` (µs, float64) at which the membrane, from ``(v0, i0)`` at
    ``t0`` with no further input, reaches ``th``; ``t0`` if it is already there; ``inf``
    if it never does. Resolution: the earliest float64 time ``t`` found with ``v(t) >= th``
    whose predecessor is below (bisection until the bracket holds adjacent floats)."""
    if v0 >= th:
        return t0
    ci = c * i0
    if ci <= 0.0 or ci - lm * v0 <= 0.0:
        return math.inf  # v <= max(v0, 0) < th, or falling from the start (no minimum)
    peak = _peak(v0, ci, lm, ls)
    if peak == 0.0:
        return math.inf
    if peak < math.inf:
        if _v_at(peak, v0, i0, lm, ls, c) < th:
            return math.inf
        hi = peak
    else:
        if _limit(v0, ci, lm, ls) <= th:
            return math.inf  # approaches its limit from below, never reaching th
        hi = (th - v0) / ci  # the time at the initial slope at most; grow until above
        while _v_at(hi, v0, i0, lm, ls, c) < th:
            hi *= 2.0
            if hi == math.inf:
                return math.inf  # the limit exceeds th by less than the rounding of v
    lo_t, hi_t = t0, t0 + hi  # bisect on absolute times: stop at adjacent float64 times
    while True:
        mid = 0.5 * (lo_t + hi_t)
        if mid <= lo_t or mid >= hi_t:
            return hi_t
        if _v_at(mid - t0, v0, i0, lm, ls, c) >= th:
            hi_t = mid
        else:
            lo_t = mid


@njit(cache=True)
def _max_wave(et: np.ndarray, start: int, end: int) -> int:
    """Most events sharing one timestamp in ``et[start:end]`` (sorted)."""
    best, run = 0, 0
    for i in range(start, end):
        run = run + 1 if i > start and et[i] == et[i - 1] else 1
        best = max(best, run)
    return best


@njit(cache=True, inline="always")
def _advance(vb: int, co: int, t: float, dec, v, cur, tn) -> None:
    """Bring the neurons ``vb..vb+co`` of a CubaLIF layer to time t: the exact solution of
    their ODEs (:func:`flow`) over each one's own time since its last update
    (neurons of one group share it unless one crossed alone: the factors are reused)."""
    vg, ig, tg = v[vb : vb + co], cur[vb : vb + co], tn[vb : vb + co]
    last, em, es, k = -1.0, 1.0, 1.0, 0.0
    for o in range(co):
        if tg[o] != t:
            if tg[o] != last:
                last = tg[o]
                em, es, k = flow(t - last, dec[0], dec[2], dec[3])
            vg[o] = em * vg[o] + k * ig[o]
            ig[o] = es * ig[o]
            tg[o] = t


@njit(cache=True, inline="always")
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
    if dec[0] > 0.0:  # IF and plain readouts (decay 1) skip the exp and the multiply
        d = math.exp(-(t - tl[g]) * dec[0])  # exact decay over the time since the last update
        vg = v[vb : vb + co]
        for o in range(co):
            vg[o] *= d
    if dec[1] > 0.0:  # ALIF: the threshold increment decays on its own time constant
        d = math.exp(-(t - tl[g]) * dec[1])
        ag = ath[vb : vb + co]
        for o in range(co):
            ag[o] *= d
    tl[g] = t
    return ntouch + 1


@njit(cache=True, inline="always")
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


@njit(cache=True, inline="always")
def _run_end(in_y, in_x, s: int, nin: int, k: int) -> int:
    """End of the run of spikes from ``s`` on that share one (pooled) input position.

    The previous layer emits all spiking channels of a position together, so such runs
    are common; each is fanned out with one set of target groups (fewer touches and
    index computations per synaptic operation)."""
    yi, xi = in_y[s] // k, in_x[s] // k
    e = s + 1
    while e < nin and in_y[e] // k == yi and in_x[e] // k == xi:
        e += 1
    return e


@njit(cache=True, inline="always")
def _add_rows(v, vb: int, co: int, W, wb: int, stride: int, in_c, in_cnt, s: int, e: int) -> None:
    """``v[vb:vb+co] += n * W[row]`` for the spikes ``s..e-1`` in order (channel c's row
    starts at ``wb + c * stride``). One spike at a time, so every membrane gets its
    additions in the same order, with the same roundings, as in the reference."""
    vg = v[vb : vb + co]
    for j in range(s, e):
        n, w0 = in_cnt[j], wb + in_c[j] * stride
        w = W[w0 : w0 + co]
        for o in range(co):
            vg[o] += n * w[o]


@njit(cache=True, inline="always")
def _fan_out_conv(
    p, dec, W, in_c, in_y, in_x, in_cnt, nin: int, v, ath, tl, tn, flag, touch, rows, cols, t: float
) -> tuple:
    """Conv fan-out: a spike at (c, yi, xi) reaches (Y, X) with Y * sh + ky - pt = yi.
    Returns (groups touched, synaptic ops)."""
    tgt = ath if dec[3] > 0.0 else v  # CubaLIF: a spike adds to the synaptic current
    k = p[POOL]
    hi, wi, co, ho, wo = p[HI], p[WI], p[CO], p[HO], p[WO]
    voff, goff, woff = p[VOFF], p[GOFF], p[WOFF]
    kh, kw, sh, sw, pt, pl = p[KH], p[KW], p[SH], p[SW], p[PT], p[PL]
    cstride = kh * kw * co  # from one input channel's weights to the next
    ntouch, syn, s = 0, 0, 0
    while s < nin:
        e = _run_end(in_y, in_x, s, nin, k)  # sum pooling: k x k sources share one input position
        yi, xi = in_y[s] // k, in_x[s] // k
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
                    _add_rows(tgt, vb, co, W, woff + (ky * kw + kx) * co, cstride, in_c, in_cnt, s, e)
            syn += (e - s) * nr * nc * co
        s = e
    return ntouch, syn


@njit(cache=True, inline="always")
def _fan_out_dense(p, dec, W, in_c, in_y, in_x, in_cnt, nin: int, v, ath, tl, tn, flag, touch, t: float) -> tuple:
    """Dense fan-out: every spike adds one contiguous weight row to the single group."""
    tgt = ath if dec[3] > 0.0 else v  # CubaLIF: a spike adds to the synaptic current
    k = p[POOL]
    ci, hi, wi, co = p[CI], p[HI], p[WI], p[CO]
    voff, goff, woff = p[VOFF], p[GOFF], p[WOFF]
    ntouch, syn = 0, 0
    for s in range(nin):
        yi, xi = in_y[s] // k, in_x[s] // k
        if yi >= hi or xi >= wi:
            continue  # beyond the last full pooling window: AveragePool drops it
        ntouch = _touch(goff, voff, co, t, dec, v, ath, tl, tn, flag, touch, ntouch)
        _add_rows(tgt, voff, co, W, woff + ((yi * wi + xi) * ci) * co, co, in_c, in_cnt, s, s + 1)
        syn += co
    return ntouch, syn


@njit(cache=True, inline="always")
def _any_at(vg, v_th: float) -> bool:
    """Whether some membrane of a group is at threshold: an integer count, which LLVM
    vectorises without fastmath (a cheap test before the per-neuron pass)."""
    co = vg.size
    hot = 0
    for o in range(co):
        hot += vg[o] >= v_th
    return hot > 0


@njit(cache=True, inline="always")
def _fire(p, f, v, ath, flag, touch, ntouch: int, cnt, out_c, out_y, out_x, out_n) -> int:
    """Spike and reset rules on the touched groups; returns the number of spiking neurons,
    written as (channel, row, column, count)."""
    co, wo, voff, goff = p[CO], p[WO], p[VOFF], p[GOFF]
    spiking = p[KIND] == KIND_SPIKING
    multi, zero = p[SPIKE] == 1, p[RESET] == 1
    v_th, v_min, beta = f[VTH], f[VMIN], f[BETA]
    clamp = v_min > -math.inf
    nout = 0
    for k in range(ntouch):
        g = touch[k]
        flag[g] = 0
        if not spiking:
            continue
        local = g - goff
        vb = voff + local * co
        vg, cg, ag = v[vb : vb + co], cnt[vb : vb + co], ath[vb : vb + co]
        if clamp:
            for o in range(co):
                vg[o] = max(vg[o], v_min)
        if beta == 0.0 and not _any_at(vg, v_th):
            continue  # most touched groups have no neuron at threshold
        Y, X = local // wo, local % wo
        for o in range(co):
            u = vg[o]
            th = v_th + ag[o] if beta > 0.0 else v_th
            if u >= th:
                s = math.floor(u / th) if multi else 1.0
                u = 0.0 if zero else u - th * s
                out_c[nout], out_y[nout], out_x[nout], out_n[nout] = o, Y, X, s
                nout += 1
                cg[o] += np.int64(s)
                vg[o] = max(u, v_min)
                if beta > 0.0:
                    ag[o] += beta * s
    return nout


@njit(cache=True, inline="always")
def _before(pred, a: int, b: int) -> bool:
    """Heap order: earlier crossing first, then lower neuron index (layers in order)."""
    return pred[a] < pred[b] or (pred[a] == pred[b] and a < b)


@njit(cache=True)
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


@njit(cache=True)
def _reschedule(heap, hpos, n: int, pred, j: int) -> int:
    """Neuron ``j``'s crossing time ``pred[j]`` changed: move, add or drop (inf) its heap
    entry; returns the heap's new size. One entry per neuron at most."""
    k = hpos[j]
    if pred[j] == math.inf:
        if k < 0:
            return n
        hpos[j] = -1
        n -= 1
        if k < n:
            heap[k] = heap[n]
            hpos[heap[k]] = k
            _sift(heap, hpos, pred, k, n)
        return n
    if k < 0:
        heap[n], hpos[j] = j, n
        _sift(heap, hpos, pred, n, n + 1)
        return n + 1
    _sift(heap, hpos, pred, k, n)
    return n


@njit(cache=True, inline="always")
def _repredict(p, f, v, cur, tn, pred, touch, ntouch: int, heap, hpos, n: int) -> int:
    """Solve for the next crossing of every neuron of the touched groups of a CubaLIF layer."""
    co, voff, goff = p[CO], p[VOFF], p[GOFF]
    v_th, lm, ls, c = f[VTH], f[INV_TAU], f[INV_TAU_S], f[CHARGE]
    for k in range(ntouch):
        vb = voff + (touch[k] - goff) * co
        for j in range(vb, vb + co):
            pred[j] = next_crossing(tn[j], v[j], cur[j], v_th, lm, ls, c)
            n = _reschedule(heap, hpos, n, pred, j)
    return n


@njit(cache=True)
def make_scratch(P, n_neurons: int, n_groups: int) -> tuple:
    """The working arrays of :func:`run_events`, sized for the network (a caller keeps
    them across runs: allocated per run, their megabytes were most of a short stream's
    cost on a large network). Two spike buffers (channel, row, column, count), swapped
    from layer to layer; touched groups; a spike's target rows and columns; per-group
    touch flags; the heap of pending CubaLIF crossings and each neuron's place in it."""
    maxn, maxg, maxk = 1, 1, 1
    for L in range(P.shape[0]):
        maxn = max(maxn, P[L, HO] * P[L, WO] * P[L, CO])
        maxg = max(maxg, P[L, HO] * P[L, WO])
        maxk = max(maxk, P[L, KH], P[L, KW])
    return (
        np.empty(maxn, np.int64),
        np.empty(maxn, np.int64),
        np.empty(maxn, np.int64),
        np.empty(maxn, np.float64),
        np.empty(maxn, np.int64),
        np.empty(maxn, np.int64),
        np.empty(maxn, np.int64),
        np.empty(maxn, np.float64),
        np.empty(maxg, np.int64),
        np.empty(2 * maxk, np.int64),
        np.empty(2 * maxk, np.int64),
        np.zeros(n_groups, np.uint8),
        np.empty(n_neurons, np.int64),
        np.empty(n_neurons, np.int64),
    )


@njit(cache=True)
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

    Spikes of layer ``rec_layer`` (-1: none) are recorded as (t, neuron in C, H, W
    order, count) from ``tally[0]`` on; ``tally[1]`` counts the synaptic operations
    (weight additions). ``scratch``: :func:`make_scratch`'s arrays (their contents are not
    read: every run starts them afresh). Returns the index of the first event not run, with ``tally[2]``
    0: all done; 1: stopped before a wave whose spikes might not fit the record (call
    again from there); 2: a CubaLIF neuron crossed its threshold again at the same float64
    time (a current too large to resolve in time: the run cannot go on).
    """
    nl = P.shape[0]
    a_c, a_y, a_x, a_n, b_c, b_y, b_x, b_n, touch, rows, cols, flag, heap, hpos = scratch
    wave = _max_wave(et, start, end)
    if wave > a_c.size:  # an input wave wider than every layer: spike buffers for it
        a_c, a_y, a_x, a_n = (
            np.empty(wave, np.int64),
            np.empty(wave, np.int64),
            np.empty(wave, np.int64),
            np.empty(wave),
        )
        b_c, b_y, b_x, b_n = (
            np.empty(wave, np.int64),
            np.empty(wave, np.int64),
            np.empty(wave, np.int64),
            np.empty(wave),
        )
    flag[:] = 0  # per group: 1 touched in this wave (a run stopped mid-wave can leave ones)
    rec_size = P[rec_layer, HO] * P[rec_layer, WO] * P[rec_layer, CO] if rec_layer >= 0 else 0
    # the pending crossings, earliest first (rebuilt from ``pred``, which the state carries)
    nh = 0
    for L in range(nl):  # only CubaLIF neurons enter the heap: only theirs need places
        if F[L, CHARGE] > 0.0:
            hpos[P[L, VOFF] : P[L, VOFF] + P[L, HO] * P[L, WO] * P[L, CO]] = -1
    for L in range(nl):
        if F[L, CHARGE] > 0.0:
            for j in range(P[L, VOFF], P[L, VOFF] + P[L, HO] * P[L, WO] * P[L, CO]):
                nh = _reschedule(heap, hpos, nh, pred, j)
    i = start
    while True:
        if rec_layer >= 0 and tally[0] + rec_size > rec_t.size:
            tally[2] = 1
            return i
        limit = float(et[i]) if i < end else until
        nin = 0
        if nh > 0 and pred[heap[0]] <= limit:  # a crossing wave: one layer's crossings at one time
            t = pred[heap[0]]
            first = 0
            while first + 1 < nl and heap[0] >= P[first + 1, VOFF]:
                first += 1
            p, f = P[first], F[first]
            co, ho, wo, voff = p[CO], p[HO], p[WO], p[VOFF]
            v_min = f[VMIN]
            while nh > 0 and pred[heap[0]] == t and voff <= heap[0] < voff + ho * wo * co:
                j = heap[0]
                if tn[j] != t:  # the current decays to t; the membrane is at v_th there
                    ath[j] *= flow(t - tn[j], f[INV_TAU], f[INV_TAU_S], f[CHARGE])[1]
                    tn[j] = t
                v[j] = max(0.0, v_min)  # at v = v_th: one spike, and either reset leaves 0
                cnt[j] += 1
                g, o = (j - voff) // co, (j - voff) % co
                a_c[nin], a_y[nin], a_x[nin], a_n[nin] = o, g // wo, g % wo, 1.0
                nin += 1
                if first == rec_layer:
                    r = tally[0]
                    rec_t[r], rec_i[r], rec_c[r] = t, (o * ho + g // wo) * wo + g % wo, 1
                    tally[0] = r + 1
                pred[j] = next_crossing(t, v[j], ath[j], f[VTH], f[INV_TAU], f[INV_TAU_S], f[CHARGE])
                if pred[j] <= t:
                    tally[2] = 2
                    return i
                nh = _reschedule(heap, hpos, nh, pred, j)
            first += 1
        elif i < end:
            ti = et[i]
            t = float(ti)
            first = 0
            while i < end and et[i] == ti:  # the wave: every input event at time t
                a_c[nin], a_y[nin], a_x[nin], a_n[nin] = ep[i], ey[i], ex[i], 1.0
                nin += 1
                i += 1
        else:
            break
        ic, iy, ix, inn, oc, oy, ox, on = a_c, a_y, a_x, a_n, b_c, b_y, b_x, b_n
        for L in range(first, nl):
            if nin == 0:
                break
            p, dec = P[L], (F[L, INV_TAU], F[L, INV_TAU_A], F[L, INV_TAU_S], F[L, CHARGE])
            if p[OP] == 0:
                ntouch, syn = _fan_out_conv(p, dec, W, ic, iy, ix, inn, nin, v, ath, tl, tn, flag, touch, rows, cols, t)
            else:
                ntouch, syn = _fan_out_dense(p, dec, W, ic, iy, ix, inn, nin, v, ath, tl, tn, flag, touch, t)
            tally[1] += syn
            nin = _fire(P[L], F[L], v, ath, flag, touch, ntouch, cnt, oc, oy, ox, on)
            if dec[3] > 0.0:
                nh = _repredict(P[L], F[L], v, ath, tn, pred, touch, ntouch, heap, hpos, nh)
            if L == rec_layer:
                ho, wo = P[L, HO], P[L, WO]
                for k in range(nin):
                    r = tally[0]
                    rec_t[r], rec_i[r], rec_c[r] = t, (oc[k] * ho + oy[k]) * wo + ox[k], np.int64(on[k])
                    tally[0] = r + 1
            ic, iy, ix, inn, oc, oy, ox, on = oc, oy, ox, on, ic, iy, ix, inn
    return end


@njit(cache=True, parallel=True)
def run_streams(P, F, W, ex, ey, ep, et, offsets, until, n_groups: int, V, CNT, SYN) -> None:
    """Whole streams in parallel: stream b is ``[offsets[b], offsets[b + 1])``, its
    crossings run up to ``until[b]``; its membranes and spike counts end in ``V[b]`` and
    ``CNT[b]``. The other state (second state, update and crossing times) is each
    stream's own scratch, made here: no ``[streams, neurons]`` arrays of it to allocate
    and zero (they were most of a short stream's cost). ``SYN[b]`` -1: the stream
    stopped as :func:`run_events` does with ``tally[2] = 2``."""
    n = V.shape[1]
    for b in prange(offsets.size - 1):
        tally = np.zeros(3, np.int64)
        scratch = make_scratch(P, n, n_groups)
        none_i, none_t = np.empty(0, np.int64), np.empty(0, np.float64)
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
            V[b],
            np.zeros(n),
            np.zeros(n_groups),
            np.zeros(n),
            np.full(n, np.inf),
            CNT[b],
            -1,
            none_t,
            none_i,
            none_i,
            tally,
            scratch,
        )
        SYN[b] = -1 if tally[2] == 2 else tally[1]
