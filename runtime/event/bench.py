"""Speed of the event engine against the clock-driven runtime and the plain-Python loop,
on the same streams (a command, not a test: timings depend on the machine and its load).

Both wall and process CPU time are measured; on a shared machine the CPU time of the
single-threaded runs is the steadier figure. The crossover: the clock-driven cost of a
stream is dense (``T`` steps whatever the activity); the event-driven cost grows with the
synaptic operations. With the measured time per synaptic op (event, one core) and per
stream (clock, batch 1, one thread), the event engine is faster while
``synops < clock time per stream / event time per synop``, reported as a fraction of the
dense MACs over T steps (``activity``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..data import Dataset
from ..data.events import make_events
from ..session import Session, load
from .engine import EventEngine
from .evaluate import check_dataset
from .reference import run_reference


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def _row(name: str, wall: float, cpu: float, n: int, events: int, synops: int | None) -> dict:
    row = {
        "runtime": name,
        "events_per_s": events / wall,
        "ms_per_stream": 1e3 * wall / n,
        "cpu_ms_per_stream": 1e3 * cpu / n,
    }
    if synops is not None:
        row.update(msynops_per_s=synops / wall / 1e6, msynops_per_cpu_s=synops / cpu / 1e6)
    return row


def fixed_cost(engine: EventEngine, reps: int = 200, batch: int = 64) -> dict[str, float]:
    """What a stream costs besides its synaptic operations: µs of wall time for a stream of
    one event, min and median over ``reps`` calls, one at a time (``run``: validation,
    state, kernel call, outputs) and per stream in ``run_batch`` of ``batch`` such streams."""
    one = make_events([0], [0], [0], [1])

    def stats(fn: Callable[[], object], per: int, n: int) -> tuple[float, float]:
        ts = [timed(fn)[0] * 1e6 / per for _ in range(n)]
        return float(np.min(ts)), float(np.median(ts))

    engine.run(one)
    engine.run_batch([one] * batch)
    run_min, run_median = stats(lambda: engine.run(one), 1, reps)
    batch_min, batch_median = stats(lambda: engine.run_batch([one] * batch), batch, max(1, reps // 10))
    return {
        "run_us_min": run_min,
        "run_us_median": run_median,
        "batch_us_min": batch_min,
        "batch_us_median": batch_median,
    }


def event_bench(
    engine: EventEngine, session: Session, ds: Dataset, T: int | None = None, reference_limit: int = 1
) -> dict:
    """One row per runtime; ``session`` should be single-threaded (batch-1 comparison)."""
    check_dataset(engine, ds)
    streams = ds.events
    assert streams is not None  # check_dataset: an event data set, which holds streams
    n, T = len(streams), T or session.protocol.T_trained
    events = int(sum(len(s) for s in streams))
    engine.run(streams[0])  # compile (or load the cache) before timing
    engine.run_batch(streams[:2])
    synops = int(engine.run_batch(streams).synops.sum())
    rows = [
        _row("event, 1 stream at a time (1 core)", *timed(lambda: [engine.run(s) for s in streams]), n, events, synops)
    ]
    rows.append(_row("event, all streams in parallel", *timed(lambda: engine.run_batch(streams)), n, events, synops))
    clock = lambda sess: [sess.run(sess.frames([s], T), T, counts=False) for s in streams]
    clock(session)
    rows.append(_row(f"clock T={T}, batch 1 (1 thread)", *timed(lambda: clock(session)), n, events, None))
    full = load(session.path)
    frames = lambda: full.run(full.frames(streams, T), T, counts=False)
    frames()
    rows.append(_row(f"clock T={T}, batch {n} (all threads)", *timed(frames), n, events, None))
    k = min(reference_limit, n)
    ref_ops = 0

    def reference() -> None:
        nonlocal ref_ops
        ref_ops = sum(run_reference(engine.layers, s).synops for s in streams[:k])

    wall, cpu = timed(reference)
    rows.append(_row("plain-Python event loop", wall, cpu, k, sum(len(s) for s in streams[:k]), ref_ops))
    dense = sum(layer.macs for layer in session.synapse_layers()) * T
    per_synop = rows[0]["cpu_ms_per_stream"] / (synops / n)
    cross = rows[2]["cpu_ms_per_stream"] / per_synop
    return {
        "n": n,
        "T": T,
        "events_per_sample": events / n,
        "synops_per_sample": synops / n,
        "dense_macs_per_sample": dense,
        "rows": rows,
        "fixed_cost": fixed_cost(engine),
        "crossover": {
            "activity": synops / n / dense,
            "activity_at_crossover": cross / dense,
            "synops_at_crossover": cross,
        },
    }
