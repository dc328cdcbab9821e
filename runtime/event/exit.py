"""Early exit for event-driven runs: the clock runtime's exit policies, asked at the end of
each trained bin of the recording.

A clock-driven run asks its policy after step ``k``, once the readout has seen the first
``k`` bins of ``dt_us`` µs. The event engine has no steps; here it runs each stream up to
``k * dt_us`` µs (every event before, CubaLIF crossings up to it), reads its outputs out on
the clock's scale (:func:`runtime.protocol.readout_so_far` with ``t = k``: a ``mean``
readout's summed current over ``k``) and asks the same policy, with the same checks, about
the streams still running, in sample order. A stream that stops runs no later event: its
synaptic operations, the event-driven cost, end there.

The streams of a batch advance bin by bin together (one engine state each), as the rows of
a clock batch do: a policy that keeps a history per sample sees the same calls in both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ..policies import CASCADE_NOT_EVENT_DRIVEN, Cascade, ExitPolicy, exit_decisions, first_exit, horizon_of
from ..protocol import readout_so_far
from ..result import EventResult
from .engine import EventEngine
from .validate import check_events


def run_with_exit(
    engine: EventEngine, streams: Sequence[np.ndarray], policy: ExitPolicy, dt_us: float | None = None
) -> EventResult:
    """``streams`` under ``policy``, decided at ``k * dt_us`` µs (default: the model's bin
    width, ``protocol.dt_us``) for ``k`` = 1 .. the policy's horizon; the result's ``steps``
    say after how many bins each stream stopped. Events after a stream's horizon are not run."""
    p = engine.protocol
    if isinstance(policy, Cascade):
        raise InputError(CASCADE_NOT_EVENT_DRIVEN)
    dt = p.dt_us if dt_us is None else dt_us
    if dt is None or not (math.isfinite(dt) and dt > 0):
        raise InputError(f"an exit policy needs the bin width in µs; got dt_us = {dt!r}")
    horizon, first = horizon_of(policy, p.default_T), first_exit(policy)
    times = [check_events(s, engine.sensor)[3] for s in streams]
    states = [engine.initial_state() for _ in streams]
    done_at = np.zeros(len(streams), np.int64)  # the bin each stream stopped after; 0: running
    read = [0] * len(streams)  # each stream's events run so far
    results: list[EventResult | None] = [None] * len(streams)
    for k in range(1, horizon + 1):
        # whole µs: timestamps are integers, so t < ceil(k dt) is t < k dt, as the clock bins
        end = math.ceil(k * dt)
        live = np.flatnonzero(done_at == 0).tolist()
        if not live:
            break
        for i in live:
            stop = int(np.searchsorted(times[i], end, side="left"))
            states[i], _ = engine.feed(states[i], streams[i][read[i] : stop])
            states[i], _ = engine.flush(states[i], until=end)
            read[i] = stop
        if k < first:  # no stream may stop yet: no readout, no call (as the clock run)
            continue
        now = [engine.result(states[i]) for i in live]
        outputs = np.stack([r.outputs for r in now])
        stop_now = exit_decisions(policy, k, readout_so_far(outputs, outputs, k, p.readout))
        if k == horizon:
            stop_now[:] = True
        for j in np.flatnonzero(stop_now):
            results[live[j]], done_at[live[j]] = now[j], k
    finished = [r for r in results if r is not None]
    assert len(finished) == len(streams)  # the horizon stops every stream
    result = EventResult.concat(finished)
    result.steps = done_at
    return result
