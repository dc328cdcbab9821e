"""The runtime's choices against the alternatives not kept (docs/runtime.md, "Alternatives
measured and not kept"), rerunnable: one step of the N-MNIST 2C1FC IF model at batch 64,
one thread.

1. onnxruntime settings for the whole graph (the ``ort`` backend's bodies): optimisation
   level ALL as the runtime sets it (runtime/engine.py; its NCHWc transformer puts the convs
   in a blocked layout and reorders at the neuron bodies, which have no NCHWc kernels),
   ALL with that transformer disabled, and EXTENDED (no layout transformers); beside them
   the ``numba`` split executor, the runtime's default.
2. The one-pass neuron kernel (runtime/neuron/kernels.py) on the first neuron layer's
   state, against the least a pass can cost: one numpy add over the same arrays
   (``u += I``: reads two arrays, writes one; the kernel reads two and writes two), as
   time and as memory traffic (GB/s: the bytes each pass must move over its time).

Systems are interleaved round by round (runtime.bench.interleaved), min and median CPU ms
per step. The weights are the untrained model's (seed 0): dense convolutions cost the
same for any weights, and no N-MNIST data is read (the input is bench's Poisson(0.05)
events). Timings move with the machine's load, which is printed before and after::

    OMP_NUM_THREADS=1 python experiments/runtime_alternatives.py [--repeats 9] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import runtime
from export.onnx_export import export_onnx
from runtime.bench import Loop, bench_input, interleaved, stepper_loop
from runtime.data.nmnist import SENSOR
from runtime.engine import Stepper, make_session
from runtime.neuron import make_spec
from runtime.neuron.kernels import kernel
from runtime.report import table, versions
from trainer.config import Config, DataConfig, MethodConfig, ModelConfig, NeuronConfig
from trainer.models import build_model

BATCH, T = 64, 10


def nmnist_model(folder: Path) -> Path:
    """The 2C1FC IF model on N-MNIST's 2 x 34 x 34 frames (BatchNorm folded on export), untrained."""
    import torch

    torch.manual_seed(0)
    cfg = (
        Config(
            model=ModelConfig(name="2C1FC", in_shape=SENSOR),
            neuron=NeuronConfig(make_spec("IF", decay=1.0)),
            data=DataConfig(spec="nmnist", shape=SENSOR, classes=[str(i) for i in range(10)], duration_us=316_000.0),
            method=MethodConfig(name="sdt", T=T),
        )
        .with_step_dt()
        .validate()
    )
    return export_onnx(cfg, build_model(cfg).eval(), folder / "nmnist_2c1fc.onnx")


def ort_loop(session: runtime.Session, opts: ort.SessionOptions, x: np.ndarray, **kw: object) -> Loop:
    """The bare stepper of ``session``'s whole graph on an onnxruntime session built with ``opts``."""
    sess = ort.InferenceSession(session.model.SerializeToString(), opts, providers=["CPUExecutionProvider"], **kw)
    stepper = Stepper(sess, session.protocol, BATCH)

    def prepare() -> None:
        for s in stepper.states:
            s.fill(0.0)

    def run() -> None:
        for t in range(T):
            stepper.step(x[t], t)

    return Loop(prepare, run)


def options(level: ort.GraphOptimizationLevel) -> ort.SessionOptions:
    """runtime.engine.make_session's options at one thread, with another optimisation level."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


def graph_settings(path: Path, repeats: int) -> dict[str, dict[str, float]]:
    bodies = runtime.load(path, threads=1, backend="ort")
    x = bench_input(bodies, BATCH, T)
    assert make_session(bodies.model, 1).get_session_options().graph_optimization_level == (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )  # what "ALL (the runtime's)" stands for
    loops = {
        "ort, level ALL (the runtime's)": stepper_loop(bodies, x, T),
        "ort, ALL without NchwcTransformer": ort_loop(
            bodies, options(ort.GraphOptimizationLevel.ORT_ENABLE_ALL), x, disabled_optimizers=["NchwcTransformer"]
        ),
        "ort, level EXTENDED": ort_loop(bodies, options(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED), x),
        "numba split (the default backend)": stepper_loop(runtime.load(path, threads=1, backend="numba"), x, T),
    }
    return interleaved(loops, T, repeats)


def kernel_against_add(path: Path, repeats: int) -> dict[str, dict[str, float]]:
    """The first neuron layer's kernel step against ``u += I`` on the same arrays."""
    proto = runtime.load(path, threads=1, backend="ort").protocol
    first = proto.neurons[0]
    shape = (BATCH, *next(s.shape for s in proto.states if s.node == first.node))
    rng = np.random.default_rng(0)
    cur, u = rng.random(shape, dtype=np.float32), np.zeros(shape, np.float32)
    s = np.zeros(shape, np.float32)
    step = kernel(first.spec)
    loops = {
        f"neuron kernel, {u.size / 1e6:.2f} M neurons": Loop(lambda: u.fill(0.0), lambda: step(cur, [u], s)),
        "numpy u += I, same arrays": Loop(lambda: u.fill(0.0), lambda: np.add(u, cur, out=u)),
    }
    # arrays each pass moves: the kernel reads I and u and writes s and u; the add reads two, writes one
    moved = dict(zip(loops, (4 * u.nbytes, 3 * u.nbytes)))
    return {n: {**r, "GB_per_s": moved[n] / r["cpu_ms_min"] / 1e6} for n, r in interleaved(loops, 1, repeats).items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=9, help="interleaved rounds (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    a = p.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        path = nmnist_model(Path(d))
        t0 = time.perf_counter()
        graph = graph_settings(path, a.repeats)
        neuron = kernel_against_add(path, 4 * a.repeats)
    found = versions("numpy", "onnxruntime", "numba", "torch")
    meta = {"load_before": load_before, "load_after": os.getloadavg()[0], "threads": 1, "versions": found}
    if a.json:
        print(json.dumps({"graph_settings": graph, "neuron_pass": neuron, **meta}, indent=1))
        return
    base = graph["ort, level ALL (the runtime's)"]["cpu_ms_min"]
    print(f"N-MNIST 2C1FC IF, batch {BATCH}, T = {T}, one thread, {a.repeats} interleaved rounds")
    rows = [
        [n, *(f"{r[k]:.2f}" for k in ("cpu_ms_min", "cpu_ms_median")), f"{r['cpu_ms_min'] / base:.2f}"]
        for n, r in graph.items()
    ]
    print(table(["whole step", "CPU ms min", "CPU ms median", "x ALL (min)"], rows))
    rows = [
        [n, *(f"{r[k]:.3f}" for k in ("cpu_ms_min", "cpu_ms_median")), f"{r['GB_per_s']:.1f}"]
        for n, r in neuron.items()
    ]
    print(table(["one pass over the first layer's state", "CPU ms min", "CPU ms median", "GB/s (min)"], rows))
    took = time.perf_counter() - t0
    print(f"load average {meta['load_before']:.2f} before, {meta['load_after']:.2f} after ({took:.0f} s)")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in found.items()))


if __name__ == "__main__":
    main()
