"""Early exit for event-driven runs: the clock runtime's exit policies, asked where a clock
run asks them, at the end of each of its bins.

A clock-driven run under a policy of horizon ``H`` bins each recording into ``H`` frames
(equal bins of the recording's span, or the model's fixed bins of ``dt_us``) and asks the
policy after step ``k``, once the readout has seen the first ``k`` bins. The event engine
has no steps; here it runs each stream up to the end of that ``k``-th bin (every event
before, CubaLIF crossings up to the instant), reads its outputs on the clock's scale
(:func:`runtime.protocol.readout_so_far` with ``t = k``: a ``mean`` readout's summed
current over ``k``) and asks the same policy, with the same checks, about the streams
still running, in sample order. A stream that stops runs no later event: its synaptic
operations, the event-driven cost, end there.

The streams of a batch advance bin by bin together (one engine state each; a bin's
streams side by side on numba's thread count of Python threads, the kernel without the
GIL; the policy asked on the calling thread), as the rows of a clock batch do: a policy
that keeps a history per sample sees the same calls in both. An LI readout is read at
the bin's end (``flush(until=end)`` then ``result``: its membranes decayed from the last
event that reached them to that instant), where the clock reads it after step ``k``:
thresholds calibrated on clock readouts (confidence, entropy, margin) apply on the same
scale.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import InputError
from ..forks import FORKS
from ..policies import (
    CASCADE_NOT_EVENT_DRIVEN,
    Cascade,
    ExitPolicy,
    PolicyError,
    as_policy,
    exit_decisions,
    first_exit,
    horizon_of,
)
from ..protocol import readout_so_far
from ..result import EventResult
from .engine import EventEngine
from .kernel import kernel_threads
from .validate import EventInputError, check_events


def event_policy(policy: ExitPolicy | str | int) -> ExitPolicy:
    """``policy`` as an event-driven run can ask it: an object or string as
    :meth:`runtime.session.Session.run` takes it, no cascade."""
    asked = as_policy(policy)
    if asked is None:
        raise PolicyError("an exit policy is needed: a rule, fixed:T, or a policy object")
    if isinstance(asked, Cascade):
        raise PolicyError(CASCADE_NOT_EVENT_DRIVEN)
    return asked


def bin_widths(
    engine: EventEngine, streams: Sequence[np.ndarray], horizon: int, spans: np.ndarray | None
) -> np.ndarray:
    """Each stream's bin width (µs) in a clock run of ``horizon`` steps: the model's fixed
    ``dt_us``, or its equal bins of the span (``spans``; default: the model's recording
    length, or each stream's own for a model trained on each recording's span)."""
    if spans is not None:
        spans = np.asarray(spans, np.float64)
        if spans.shape != (len(streams),) or not (np.isfinite(spans).all() and (spans > 0).all()):
            raise InputError(
                f"spans must be one finite span > 0 µs per stream ({len(streams)}), got {spans.tolist()[:8]}"
            )
    return engine.protocol.time_base().widths(streams, horizon, spans)


def run_with_exit(
    engine: EventEngine,
    streams: Sequence[np.ndarray],
    policy: ExitPolicy | str | int,
    spans: np.ndarray | None = None,
) -> EventResult:
    """``streams`` under ``policy`` (:func:`event_policy`), decided at the end of each
    clock bin (:func:`bin_widths`, ``spans`` per stream) up to the policy's horizon; the
    result's ``steps`` say after how many bins each stream stopped, ``seconds`` the wall
    time. Events after a stream's horizon are not run."""
    p, asked = engine.protocol, event_policy(policy)
    if not isinstance(streams, (list, tuple)) or not streams:
        raise EventInputError(f"expected a non-empty list of event streams, got {type(streams).__name__}")
    horizon = horizon_of(asked, p.default_T)
    ask_from = min(first_exit(asked), horizon)  # the clock run asks at its horizon in any case
    widths = bin_widths(engine, streams, horizon, spans)
    times = [check_events(s, engine.sensor, what=f"event stream {i}")[3] for i, s in enumerate(streams)]
    states = [engine.initial_state() for _ in streams]
    done_at = np.zeros(len(streams), np.int64)  # the bin each stream stopped after; 0: running
    read = [0] * len(streams)  # each stream's events run so far
    results: list[EventResult | None] = [None] * len(streams)

    def advance(i: int, k: int) -> None:
        """Stream ``i`` up to the end of its bin ``k`` (its own state: safe beside the others)."""
        end = k * float(widths[i])
        # integer timestamps: t < end is t < ceil(end), which the next chunk starts from
        stop = int(np.searchsorted(times[i], math.ceil(end), side="left"))
        states[i], _ = engine.feed(states[i], streams[i][read[i] : stop], record=False)
        # CubaLIF crossings up to the instant, and an LI readout read there
        states[i], _ = engine.flush(states[i], until=end, record=False)
        read[i] = stop

    # one stream per thread, as run_batch (use_threads): the kernel runs without the GIL; a
    # worker forked after its parent started numba's threads runs on its own one, as there
    # (numba not asked: its threading layer may not start in such a child, runtime.forks)
    threads = 1 if FORKS.after_layer else min(kernel_threads(), len(streams))
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    start = time.perf_counter()
    try:
        for k in range(1, horizon + 1):
            live = np.flatnonzero(done_at == 0).tolist()
            if not live:
                break
            if pool is None:
                for i in live:
                    advance(i, k)
            else:
                list(pool.map(advance, live, [k] * len(live)))  # re-raises a stream's error here
            if k < ask_from:  # no stream may stop yet: no readout, no call (as the clock run)
                continue
            now = [engine.result(states[i]) for i in live]
            outputs = np.stack([r.outputs for r in now])
            stop_now = exit_decisions(asked, k, readout_so_far(outputs, outputs, k, p.readout))
            if k == horizon:
                stop_now[:] = True
            for j in np.flatnonzero(stop_now):
                results[live[j]], done_at[live[j]] = now[j], k
    finally:
        if pool is not None:  # an interrupt: the queued streams are not run
            pool.shutdown(cancel_futures=True)
    finished = [r for r in results if r is not None]
    assert len(finished) == len(streams)  # the horizon stops every stream
    result = EventResult.concat(finished)
    result.steps, result.seconds = done_at, time.perf_counter() - start
    return result
