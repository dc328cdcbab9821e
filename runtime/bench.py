"""Per-step time of this runtime beside torch, measured honestly on one machine.

Every system runs the same input for the same number of steps from the zero state, and
the systems are **interleaved round by round** (the order rotates each round), so a
change in load hits them all alike; each is reported as min and median over the rounds,
wall and CPU time (``time.process_time``: every thread of the process) per step. The
**GEMM limit** is the time numpy's BLAS takes for the matrix products of the model's
synaptic layers at the same batch and thread count (``M x K @ K x N`` with the layer's
weights and MACs): the step cannot be faster than its dense arithmetic, so each system's
"% of limit" says how close it is. torch is optional: it is imported only inside
:mod:`trainer.eager`, when a checkpoint is given and torch is installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from tqdm import tqdm

from .cliargs import BENCH_STEPS
from .errors import InputError
from .limits import available_cores
from .policies import FixedT
from .protocol import STATIC_KINDS, Protocol
from .report import versions
from .session import Session


@dataclass
class Loop:
    """One system's timed unit: ``prepare()`` (untimed: zero the states) then ``run()``,
    which runs all the steps of one round."""

    prepare: Callable[[], object]
    run: Callable[[], object]  # what it returns is not used


def timed_steps(protocol: Protocol, T: int | None) -> int:
    """The steps a timed run takes: ``T``, or :data:`BENCH_STEPS` capped by a model with
    fewer (a T-RevSNN has one sub-network per step); more than it has is one clear error."""
    n = protocol.max_steps
    if T is None:
        return min(BENCH_STEPS, n or BENCH_STEPS)
    if n is not None and T > n:  # was onnxruntime's Gather error, colour codes and all
        raise InputError(
            f"--T {T}: this model has steps t = 0..{n - 1} only (one sub-network per step); expected --T <= {n}"
        )
    return T


INPUT_SEED = 0  # of the random input every system is timed on (reported with the figures)


def bench_input(session: Session, batch: int, steps: int, seed: int = INPUT_SEED) -> np.ndarray:
    """What a run of ``steps`` steps takes: an image in [0, 1) ``[B, *shape]`` (repeated by
    the runtime), or sparse event-count frames ``[steps, B, *shape]``."""
    rng = np.random.default_rng(seed)
    shape = (batch, *session.protocol.input_shape)
    if session.protocol.input_kind in STATIC_KINDS:
        return rng.random(shape, dtype=np.float32)
    return rng.poisson(0.05, (steps, *shape)).astype(np.float32)


def stepper_loop(session: Session, x: np.ndarray, steps: int) -> Loop:
    """The bare onnxruntime stepper (IOBinding, no SDK bookkeeping): the runtime's floor."""
    static = session.protocol.input_kind in STATIC_KINDS
    state = session.initial_state(x.shape[0] if static else x.shape[1])
    stepper = state.stepper

    def prepare() -> None:
        for s in stepper.states:
            s.fill(0.0)

    def run() -> None:
        for t in range(steps):
            stepper.step(x if static else x[t], t)

    return Loop(prepare, run)


def sdk_loop(session: Session, x: np.ndarray, steps: int) -> Loop:
    """``Session.run`` at fixed T without counts: what an application calls."""
    policy = FixedT(steps)

    def run() -> None:
        session.run(x, policy, counts=False)

    return Loop(lambda: None, run)


def interleaved(
    loops: dict[str, Loop],
    steps: int,
    repeats: int,
    progress: bool = False,
    desc: str = "timing",
    warm_up: bool = True,
) -> dict[str, dict[str, float]]:
    """Per system: min and median wall and CPU ms per step over ``repeats`` rounds, each
    round running every system once (the order rotated by one each round), after one
    untimed run of each (``warm_up``; False: the caller warmed them up more cheaply).
    ``progress``: a bar of the runs on stderr, moved between timed runs only."""
    names = list(loops)
    bar = tqdm(total=len(names) * (repeats + warm_up), desc=desc, unit="run", disable=not progress, leave=False)
    for loop in loops.values() if warm_up else ():  # sessions, allocations, compilation
        loop.prepare()
        loop.run()
        bar.update()
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            loops[name].prepare()
            w0, c0 = time.perf_counter(), time.process_time()
            loops[name].run()
            wall[name].append((time.perf_counter() - w0) / steps)
            cpu[name].append((time.process_time() - c0) / steps)
            bar.update()
    bar.close()
    return {
        n: {
            "wall_ms_min": 1e3 * min(wall[n]),
            "wall_ms_median": 1e3 * float(np.median(wall[n])),
            "cpu_ms_min": 1e3 * min(cpu[n]),
            "cpu_ms_median": 1e3 * float(np.median(cpu[n])),
        }
        for n in names
    }


def gemm_shapes(model: onnx.ModelProto, session: Session, batch: int) -> list[tuple[int, int, int]]:
    """``(M, K, N)`` per synaptic layer run at every step: N output channels (or
    features), K inputs per output, and M = batch x MACs / (K x N) output positions."""
    weights = {i.name: tuple(i.dims) for i in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    shapes = []
    for layer in session.synapse_layers():
        node = nodes.get(layer.node)
        if not layer.per_step or node is None or len(node.input) < 2 or node.input[1] not in weights:
            continue
        w = weights[node.input[1]]
        size = int(np.prod(w))
        n = int(w[0]) if node.op_type == "Conv" else int(w[-1] if node.op_type == "MatMul" else w[0])
        shapes.append((max(1, round(batch * layer.macs / size)), size // n, n))
    return shapes


def _blas_threads(threads: int) -> contextlib.AbstractContextManager:
    """Limit numpy's BLAS to ``threads`` when threadpoolctl is installed (else the
    environment's OMP_NUM_THREADS decides)."""
    if importlib.util.find_spec("threadpoolctl") is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(threads, user_api="blas")


PEAK_SIDE = 1024  # the square fp32 matmul whose speed is the machine's measured peak here


def peak_gflops(threads: int) -> float:
    """numpy's fp32 matmul at :data:`PEAK_SIDE` squared, the fastest CPU time of 5: the
    machine's arithmetic peak as its BLAS reaches it (a model's small shapes reach less)."""
    _, cpu_ms = gemm_limit_ms([(PEAK_SIDE, PEAK_SIDE, PEAK_SIDE)], threads, repeats=5)
    return 2e-6 * PEAK_SIDE**3 / cpu_ms


def gemm_limit_ms(shapes: Sequence[tuple[int, int, int]], threads: int, repeats: int = 7) -> tuple[float, float]:
    """The fastest wall and CPU times (ms) of numpy's fp32 matmuls at ``shapes``, each
    summed over the shapes: one step's dense arithmetic at the BLAS's speed on this
    machine now. On a loaded machine the CPU time is the steadier of the two."""
    rng = np.random.default_rng(0)
    wall = cpu = 0.0
    with _blas_threads(threads):
        for m, k, n in shapes:
            a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
            out = np.empty((m, n), np.float32)
            best_wall = best_cpu = np.inf
            for _ in range(repeats):
                w0, c0 = time.perf_counter(), time.process_time()
                np.matmul(a, b, out=out)
                best_wall = min(best_wall, time.perf_counter() - w0)
                best_cpu = min(best_cpu, time.process_time() - c0)
            wall, cpu = wall + best_wall, cpu + best_cpu
    return 1e3 * wall, 1e3 * cpu


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def bench(
    session: Session,
    batches: Sequence[int],
    steps: int = 20,
    repeats: int = 5,
    checkpoint: str | None = None,
    threads: int | None = None,
    compile_torch: bool = True,
    progress: bool = False,
) -> dict:
    """One row per batch size: every system interleaved (see the module doc), at one
    thread count for all of them (``threads``, else the runtime's choice: 1 at batch 1,
    all cores above); ``progress``: a bar per batch size on stderr."""
    rows = []
    load_before = os.getloadavg()
    for b in batches:
        n = threads or (1 if b <= 1 and threads is None else available_cores())
        s = Session(session.model, session.protocol, session.path, n, session.backend)
        x = bench_input(s, b, steps)
        loops = {"runtime stepper": stepper_loop(s, x, steps), "runtime SDK": sdk_loop(s, x, steps)}
        if s.backend != "ort":  # the stock-onnxruntime path beside it
            bodies = Session(session.model, session.protocol, session.path, n, "ort")
            loops["runtime stepper, ort bodies"] = stepper_loop(bodies, x, steps)
        unavailable: dict[str, str] = {}
        with contextlib.ExitStack() as stack:
            if checkpoint and torch_available():
                from trainer.eager import kept_threads, torch_loops  # torch only here

                stack.enter_context(kept_threads())
                frames = s.protocol.input_kind not in STATIC_KINDS
                got, unavailable = torch_loops(
                    checkpoint,
                    x,
                    frames,
                    steps,
                    n,
                    compile_torch,
                    num_classes=s.protocol.num_classes,
                    neurons=[nr.spec for nr in s.protocol.neurons],
                )
                loops.update(got)
            elif checkpoint:
                unavailable["torch"] = "torch is not installed"
            shapes = gemm_shapes(s.model, s, b)
            limit = gemm_limit_ms(shapes, n)
            timed = interleaved(loops, steps, repeats, progress, f"batch {b}")
        systems = [
            {
                "system": k,
                **v,
                "pct_of_gemm_limit_wall": 100.0 * limit[0] / v["wall_ms_min"] if shapes else None,
                "pct_of_gemm_limit_cpu": 100.0 * limit[1] / v["cpu_ms_min"] if shapes else None,
            }
            for k, v in timed.items()
        ]
        macs = sum(m * k * n_ for m, k, n_ in shapes)
        peak = peak_gflops(n) if shapes else None
        load = os.getloadavg()[0]
        notes = []
        if shapes and any(limit[0] > v["wall_ms_min"] for v in timed.values()) and load + n > available_cores():
            # a wall limit slower than what it bounds, with more work than cores: its BLAS threads waited
            notes.append(
                f"a system ran faster than the wall GEMM limit, whose {n} BLAS thread(s) shared the cores (load "
                f"average {load:.2f}): the wall limit is no bound here; read the CPU column"
            )
        if peak is not None and any(limit[1] > v["cpu_ms_min"] for v in timed.values()):
            # numpy's matmul at these shapes is the measured limit, not the machine's: a runtime
            # with a better kernel for a shape (a conv as its own op, not im2col) can pass it
            notes.append(
                "a system used less CPU than the GEMM limit: the limit is numpy's fp32 matmul at the model's "
                f"shapes ({2e-6 * macs / limit[1]:.1f} GFLOP/s), which a runtime's own kernels can beat; against "
                f"the machine's peak ({peak:.1f} GFLOP/s at {PEAK_SIDE}x{PEAK_SIDE}) the fastest reaches "
                f"{max(100.0 * 2e-6 * macs / v['cpu_ms_min'] / peak for v in timed.values()):.0f}%"
            )
        rows.append(
            {
                "batch": b,
                "threads": n,
                "gemm_limit_ms_wall": limit[0],
                "gemm_limit_ms_cpu": limit[1],
                "gemm_gflops_wall": 2e-6 * macs / limit[0] if shapes else None,
                "peak_gflops_cpu": peak,  # the machine's: numpy fp32 matmul at PEAK_SIDE squared
                "systems": systems,
                "unavailable": unavailable,
                "notes": notes,
            }
        )
    return {
        "backend": session.backend,
        "backend_note": session.backend_note,
        "T": steps,
        "repeats": repeats,
        "seed": INPUT_SEED,
        "load_average": [load_before, os.getloadavg()],
        "versions": versions("numpy", "onnxruntime", "numba", *(["torch"] if checkpoint else [])),
        "rows": rows,
    }
