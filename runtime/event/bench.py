"""Speed of the event engine against the clock-driven runtime and the plain-Python loop,
on the same streams (a command, not a test: timings depend on the machine and its load).

The four engines are interleaved round by round (:func:`runtime.bench.interleaved`, the
order rotating each round), so a change in load hits them alike, and each is reported as
min and median over the rounds, wall and process CPU time; on a shared machine the CPU
time of the single-threaded runs is the steadier figure. The plain-Python loop runs once
(it is about a thousand times slower). The crossover (from the minima): the clock-driven cost of a
stream is dense (``T`` steps whatever the activity); the event-driven cost grows with the
synaptic operations. With the measured time per synaptic op (event, one core) and per
stream (clock, batch 1, one thread), the event engine is faster while
``synops < clock time per stream / event time per synop``, reported as a fraction of the
dense MACs over T steps (``activity``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np

from ..bench import Loop, interleaved
from ..data import Dataset
from ..data.events import make_events
from ..report import counted, versions
from ..session import Session, load
from .engine import EventEngine
from .evaluate import check_dataset
from .kernel import kernel_threads
from .reference import run_reference

SETTLE_S = 0.25  # idle time before each timed run (see event_bench)


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def _row(name: str, t: dict[str, float], n: int, events: int, synops: int | None) -> dict:
    """One engine's figures from its per-stream ms (:func:`runtime.bench.interleaved`)."""
    row = {
        "runtime": name,
        "events_per_s": events / n / (t["wall_ms_min"] / 1e3),  # at the wall minimum
        "wall_ms_per_stream_min": t["wall_ms_min"],
        "ms_per_stream": t["wall_ms_median"],  # wall, median
        "cpu_ms_per_stream": t["cpu_ms_min"],
        "cpu_ms_per_stream_median": t["cpu_ms_median"],
    }
    if synops is not None:
        per_stream = synops / n
        row.update(
            msynops_per_s=per_stream / t["wall_ms_min"] / 1e3,
            msynops_per_cpu_s=per_stream / t["cpu_ms_min"] / 1e3,
            msynops_per_cpu_s_median=per_stream / t["cpu_ms_median"] / 1e3,
        )
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
    engine: EventEngine,
    session: Session,
    ds: Dataset,
    T: int | None = None,
    reference_limit: int = 1,
    repeats: int = 5,
    progress: bool = False,
) -> dict:
    """One row per engine, ``repeats`` interleaved rounds; ``session`` should be
    single-threaded (batch-1 comparison); ``progress``: a bar of the runs on stderr."""
    check_dataset(engine, ds)
    assert ds.events is not None  # check_dataset: an event data set, which holds streams
    streams = list(ds.events)  # read now: a tonic set, or transforms, give lazily read recordings
    n, T = len(streams), T or session.protocol.default_T
    events = int(sum(len(s) for s in streams))
    load_before = os.getloadavg()
    synops = int(engine.run_batch(streams).synops.sum())
    threads = kernel_threads()  # the all-streams rows, event and clock: --threads (use_threads)
    full = load(session.path, threads)
    # before each timed run: the parallel engines' idle threads spin after their work
    # (measured after the all-threads clock run: 50-100 ms), and their CPU time counts in
    # the process's. A one-core run started 50 ms after it read about 12% slower than one
    # started 100 ms or more after (2 vCPUs; CPU time above wall time shows the spinning)
    settle = lambda: time.sleep(SETTLE_S)
    loops = {
        "event, 1 stream at a time (1 core)": Loop(settle, lambda: [engine.run(s) for s in streams]),
        "event, all streams in parallel": Loop(settle, lambda: engine.run_batch(streams)),
        f"clock T={T}, batch 1 (1 thread)": Loop(
            settle, lambda: [session.run(session.frames([s], T), T, counts=False) for s in streams]
        ),
        f"clock T={T}, batch {n} ({counted(threads, 'thread')})": Loop(
            settle, lambda: full.run(full.frames(streams, T), T, counts=False)
        ),
    }
    times = interleaved(loops, n, repeats, progress)  # per stream
    rows = [_row(name, t, n, events, synops if name.startswith("event") else None) for name, t in times.items()]
    k = min(reference_limit, n)
    ref_ops = 0

    def reference() -> None:
        nonlocal ref_ops
        ref_ops = sum(run_reference(engine.layers, s).synops for s in streams[:k])

    wall, cpu = timed(reference)  # once: min and median are that run
    once = {f"{c}_ms_{m}": 1e3 * v / k for c, v in (("wall", wall), ("cpu", cpu)) for m in ("min", "median")}
    rows.append(_row("plain-Python event loop", once, k, sum(len(s) for s in streams[:k]), ref_ops))
    dense = sum(layer.macs for layer in session.synapse_layers()) * T
    per_synop = rows[0]["cpu_ms_per_stream"] / (synops / n)
    cross = rows[2]["cpu_ms_per_stream"] / per_synop
    notes = []
    if synops / n > dense:  # the engine's count, not a slower engine: say why it can pass the dense one
        notes.append(
            "synaptic ops above the dense MACs: the event engine folds an average pool into the next layer's "
            "weights, so an input event there reaches k x k times the outputs (docs/event_driven.md); the "
            "crossover is in the engine's own units"
        )
    return {
        "n": n,
        "T": T,
        "repeats": repeats,
        "numba_threads": kernel_threads(),
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
        "notes": notes,
        "load_average": [load_before, os.getloadavg()],
        "versions": versions("numpy", "onnxruntime", "numba"),
    }
