"""The exact continuous-time maths of a neuron with a synaptic current (CubaLIF's
event-driven form, runtime/neuron/cuba_lif.py), as plain functions of floats.

Between input events the current and the membrane follow (time in µs)::

    di/dt = -ls * i                       ls = 1 / tau_syn (0: no decay)
    dv/dt = -lm * v + c * i               lm = 1 / tau_mem (0: no leak), c the charge rate

so, ``tau`` after a state ``(v0, i0)``::

    i(tau) = i0 e^{-ls tau}
    v(tau) = v0 e^{-lm tau} + c i0 phi(tau),   phi = (e^{-ls tau} - e^{-lm tau}) / (lm - ls)

and ``phi = tau e^{-lm tau}`` when ``lm == ls``. ``phi`` is computed as
``e^{-min(lm, ls) tau} (1 - e^{-|lm - ls| tau}) / |lm - ls|`` with ``expm1``: no
cancellation when the two time constants are close, no overflow for long gaps.

The membrane can cross the threshold between inputs (the current keeps charging it):
:func:`next_crossing` finds the first time it does. ``v`` is a sum of two exponentials,
so it has at most one extremum, and with ``i0 > 0`` that extremum is a maximum
(``v'' = -ls c i < 0`` where ``v' = 0``). Hence: no crossing if ``i0 <= 0`` or
``v'(0) <= 0``; else ``v`` rises up to its peak (closed form below, or ``inf``) and the
crossing, if the peak reaches the threshold, is the unique root on ``[0, peak]``, found
by bisection down to adjacent float64 times.

Compiled with numba (no fastmath: no reassociation, no fused multiply-adds): the event
kernel (:mod:`.kernel`) inlines them and the plain-Python reference (:mod:`.reference`)
calls the same compiled functions, so both round alike.
"""

from __future__ import annotations

import math

from numba import njit


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
