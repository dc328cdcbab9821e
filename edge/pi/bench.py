"""``pi-bench``: what a Raspberry Pi class board cares about, measured with the runtime only.

* per-step latency at batch 1 for 1..N onnxruntime threads (a Pi 4/5 has 4 cores; at
  batch 1 one thread is usually best because hand-off costs more than it saves, but the
  answer depends on the model and the board, so it is measured, not assumed);
* peak resident memory of this process (``ru_maxrss``): the interpreter, numpy,
  onnxruntime and the model, which is what the board must hold (torch is never loaded);
* the early-exit saving: batch 1 over a data set, fixed T at the model's default T versus a
  confidence policy, in steps and in wall time per sample.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from runtime.bench import Loop, bench_input, interleaved
from runtime.data import Dataset
from runtime.evaluate import ClockMode
from runtime.policies import Cascade, ExitPolicy, FixedT
from runtime.result import RunResult
from runtime.session import Session, load


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far. Linux: ``VmHWM`` of /proc/self/status
    (``ru_maxrss`` can carry a parent's peak over fork and exec); elsewhere ``ru_maxrss``
    (macOS reports bytes, others KiB)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def thread_rows(path: str, max_threads: int, steps: int, repeats: int, backend: str = "auto") -> list[dict]:
    """Batch-1 per-step latency per thread count: one ``Session.run`` of ``steps`` steps
    timed whole, the thread counts interleaved over ``repeats`` rounds (timed one after
    the other, a load that came and went made 2 threads read 29% faster in one run and
    5-15% slower in four reruns); wall and CPU ms per step, min and median."""
    most = 1 if backend == "exact" else max_threads  # exact runs one thread by design: more rows time it again
    sessions = {str(n): load(path, threads=n, backend=backend) for n in range(1, most + 1)}
    x = bench_input(sessions["1"], 1, steps)

    def loop(s: Session) -> Loop:
        return Loop(lambda: None, lambda: s.run(x, FixedT(steps), counts=False))

    timed = interleaved({n: loop(s) for n, s in sessions.items()}, steps, repeats)
    return [
        {"threads": int(n), "backend": sessions[n].backend, "ms_per_step": v["wall_ms_median"], **v}
        for n, v in timed.items()
    ]


def _run_of(session: Session, ds: Dataset, i: int, policy: ExitPolicy | Cascade) -> Callable[[], RunResult]:
    """Sample ``i`` under ``policy`` as a call, its inputs made beforehand as ``runtime run``
    makes them (:meth:`runtime.evaluate.ClockMode.inputs`): binned into the policy's horizon
    (the binning a run to that horizon has), or into each T of a cascade."""
    mode, idx = ClockMode(session, policy), np.array([i])
    if isinstance(policy, Cascade):
        xs = {T: mode.inputs(ds, idx, T) for T in policy.T}
        return lambda: session.run_cascade(policy, 1, lambda T, rows: xs[T], counts=False)
    x = mode.inputs(ds, idx, mode.T)
    return lambda: session.run(x, policy, counts=False)


def early_exit(path: str, ds: Dataset, policy: ExitPolicy | Cascade, repeats: int = 3, backend: str = "auto") -> dict:
    """Fixed T (trained) vs ``policy`` at batch 1, one thread, one sample at a time (as a
    sensor delivers them): accuracy, mean steps, mean ms per sample. Each sample runs
    under both policies alternately ``repeats`` times and keeps its fastest time, so load
    from other processes does not land on one policy only."""
    session = load(path, threads=1, backend=backend)
    p = session.protocol
    policies = (FixedT(p.default_T), policy)
    correct, steps, seconds = np.zeros(2), np.zeros(2), np.zeros(2)
    for i in range(len(ds)):
        runs = [_run_of(session, ds, i, q) for q in policies]
        for k, run in enumerate(runs):
            best = np.inf
            for _ in range(repeats):
                start = time.perf_counter()
                r = run()
                best = min(best, time.perf_counter() - start)
            correct[k] += r.predictions[0] == ds.labels[i]
            steps[k] += r.steps[0]
            seconds[k] += best
    n = len(ds)
    acc, st, ms = correct / n, steps / n, 1e3 * seconds / n
    return {
        "n": n,
        "fixed_accuracy": acc[0],
        "fixed_steps": st[0],
        "fixed_ms_per_sample": ms[0],
        "exit_accuracy": acc[1],
        "exit_steps": st[1],
        "exit_ms_per_sample": ms[1],
        "step_saving": 1 - st[1] / st[0],
        "time_saving": 1 - ms[1] / ms[0],
    }
