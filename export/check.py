"""``--check``: the exported ONNX graph in onnxruntime, step by step, next to torch.

Both sides run T steps of the same input from zero states. Every neuron node's output
(spikes, or the membrane of an LI readout) is compared, not only ``y``: the graph's hidden
spikes are exposed as extra outputs of a check-only copy of the model. Spikes must be
identical; states and ``y`` equal within ``TOL`` (absolute, plus ``TOL`` relative to the
value: float32 membranes of magnitude 100 are only resolved to ~1e-5, and onnxruntime
and torch may sum a layer's products in a different order).

The torch side is the deployable network (BatchNorm folded), i.e. exactly what was
exported; folding changes float rounding, so the original network is not the reference.

A multi-rate file (``--config``): torch runs each stage at its T with
:func:`trainer.temporal.transform` between stages (as ``trainer eval --config``); the ONNX
side runs the stages the runtime cuts out of the file (:func:`runtime.stages.stage_models`)
in its streaming schedule (:class:`runtime.stages.Stream`). Each neuron's spikes and states
are compared over its own stage's steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from runtime.data import DataError, load_dataset
from runtime.data.transforms import from_dicts
from runtime.limits import check_memory
from runtime.neuron.functions import DOMAIN
from runtime.protocol import Protocol
from runtime.protocol import readout as readout_logits
from runtime.stages import Stream, stage_models
from trainer.config import Config
from trainer.layers import step_chain
from trainer.models import SpikingNet
from trainer.temporal import transform

from .prepare import deployable, neuron_layers
from .protocol import read_protocol

TOL = 1e-5


@dataclass
class Trace:
    """What one run produced, per step ``[T, B, ...]``: ``y``, each neuron layer's output
    (in the protocol's neuron order) and each state (in its state order)."""

    y: np.ndarray
    outs: list[np.ndarray]
    states: list[np.ndarray]


@dataclass
class CheckResult:
    ok: bool
    rows: list[list[Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def check_memory_for(onnx_path: str | Path, T: int, batch: int) -> None:
    """Refuse a check whose traces do not fit (it was killed by the OS at --T 1000
    --batch-size 1000): every step's input (binned as int64 counts, then float32) and, for
    torch and for onnxruntime each, every state and neuron output of every step."""
    meta = read_protocol(onnx_path)
    states = sum(math.prod(s.shape) for s in meta.states)
    states += sum(math.prod(n.shape) for n in meta.neurons if n.shape is not None)  # stateless: outputs only
    need = T * batch * (12 * math.prod(meta.input_shape) + 2 * 2 * 4 * states)
    check_memory(need, f"--check at T={T} with batch {batch}")


def sample_input(cfg: Config, T: int, batch: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """``[T, B, *in_shape]`` frames from the model's test data, or, when that data is not
    available on this machine, seeded random event counts (still a valid comparison)."""
    try:
        ds = load_dataset(cfg.data.spec, "test", batch, from_dicts(cfg.data.transforms))
        if tuple(ds.shape) == tuple(cfg.model.in_shape):
            return ds.frames(np.arange(len(ds)), T), f"{cfg.data.spec} test data"
    except DataError:
        pass
    rng = np.random.default_rng(seed)
    return rng.poisson(0.5, (T, batch, *cfg.model.in_shape)).astype(np.float32), "random (data not available)"


@torch.no_grad()
def run_torch(net: SpikingNet, x: np.ndarray, config: list[int] | None = None) -> Trace:
    """Step ``net`` over ``x`` from zero states; with ``config``, stage by stage, each at its
    T with the temporal transformation module before it (``x`` has ``config[0]`` frames)."""
    neurons = [layer.neuron for layer in neuron_layers(net)]
    outs: list[list[np.ndarray]] = [[] for _ in neurons]
    hooks = [
        m.register_forward_hook(lambda _m, _a, res, i=i: outs[i].append(res[0].numpy().copy()))
        for i, m in enumerate(neurons)
    ]
    st: list[list[np.ndarray]] = [[] for _ in range(net.n_states)]
    # one T for all: the whole net in one chain; else each stage its own chain at its T
    chains = [list(net.stages)] if config is None else [[s] for s in net.stages]
    seq, first = torch.from_numpy(x), 0
    try:
        for k, chain in enumerate(chains):
            if config is not None:
                seq = transform(seq, config[k])
            states: list[torch.Tensor | None] = [None] * sum(s.n_states for s in chain)
            ys = []
            for x_t in seq:
                y, states = step_chain(chain, x_t, states)
                ys.append(y)
                for i, s in enumerate(states):
                    st[first + i].append(s.numpy().copy())
            seq, first = torch.stack(ys), first + len(states)
    finally:
        for h in hooks:
            h.remove()
    return Trace(seq.numpy().copy(), [np.stack(o) for o in outs], [np.stack(s) for s in st])


def with_neuron_outputs(model: onnx.ModelProto, neurons: list[str]) -> tuple[onnx.ModelProto, list[str]]:
    """A copy whose graph also outputs the first output of each named ``snn`` node, in that order."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    by_name = {n.name: n for n in model.graph.node if n.domain == DOMAIN}
    names = [by_name[n].output[0] for n in neurons]
    have = {o.name for o in model.graph.output}  # a stage's output may be a neuron's spikes
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in names if o not in have
    )
    return model, names


def run_onnx(path: str | Path, x: np.ndarray) -> Trace:
    model = onnx.load(path)
    meta = read_protocol(model)
    probe, out_names = with_neuron_outputs(model, [n.node for n in meta.neurons])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # a check, not a benchmark: stay off the shared cores
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    state_names = [s.name for s in meta.states]
    states = [np.zeros((x.shape[1], *s.shape), np.float32) for s in meta.states]
    fetch = ["y", *(f"{n}_out" for n in state_names), *out_names]
    ys: list[np.ndarray] = []
    st: list[list[np.ndarray]] = [[] for _ in states]
    outs: list[list[np.ndarray]] = [[] for _ in out_names]
    for x_t in x:
        res = sess.run(fetch, {"x": x_t, **dict(zip(state_names, states))})
        ys.append(res[0])
        states = res[1 : 1 + len(states)]
        for i, s in enumerate(states):
            st[i].append(s)
        for i, o in enumerate(res[1 + len(states) :]):
            outs[i].append(o)
    return Trace(np.stack(ys), [np.stack(o) for o in outs], [np.stack(s) for s in st])


def close_enough(ref: np.ndarray, got: np.ndarray) -> bool:
    return bool(np.allclose(got, ref, rtol=TOL, atol=TOL))


def predict(y: np.ndarray, readout: str) -> np.ndarray:
    """Class per sample from ``y [T, B, classes]`` by the protocol's readout rule."""
    return readout_logits(y, readout).argmax(-1)


def compare(ref: Trace, got: Trace, meta: Protocol) -> CheckResult:
    """Per neuron node: spikes (exact) and every state variable (within TOL); then ``y``
    (within TOL). ``ref.outs``/``got.outs`` are per neuron, ``states`` per state, in the
    protocol's orders."""
    rows, ok = [], True
    index = {s.name: i for i, s in enumerate(meta.states)}
    for j, n in enumerate(meta.neurons):
        own = [index[s] for s in n.states]
        d_state = max(float(np.abs(ref.states[i] - got.states[i]).max()) for i in own)
        close = all(close_enough(ref.states[i], got.states[i]) for i in own)
        if not n.spec.spiking:  # its output is the membrane: compared like a state
            same = close
            rows.append([n.node, n.op, "-", "-", "-", d_state, "ok" if same else "FAIL"])
        else:
            mismatched = int((ref.outs[j] != got.outs[j]).sum())
            same = mismatched == 0 and close
            rows.append(
                [
                    n.node,
                    n.op,
                    int(ref.outs[j].sum()),
                    int(got.outs[j].sum()),
                    mismatched,
                    d_state,
                    "ok" if same else "FAIL",
                ]
            )
        ok &= same
    d_y = float(np.abs(ref.y - got.y).max())
    rows.append(["y", "-", "-", "-", "-", d_y, "ok" if close_enough(ref.y, got.y) else "FAIL"])
    ok &= close_enough(ref.y, got.y)
    pred_ref, pred_got = predict(ref.y, meta.readout), predict(got.y, meta.readout)
    summary = {
        "ok": bool(ok),
        "tolerance": TOL,
        "max_abs_diff_y": d_y,
        "predictions_agree": float((pred_ref == pred_got).mean()),
        "neurons": [
            dict(
                zip(
                    ("node", "op", "spikes_torch", "spikes_onnx", "mismatched_spikes", "max_abs_diff_state", "status"),
                    r,
                )
            )
            for r in rows[:-1]
        ],
    }
    return CheckResult(bool(ok), rows, summary)


HEADERS = ["node", "op", "spikes torch", "spikes onnx", "mismatched", "max |Δ state|", "status"]


def check_onnx(
    cfg: Config, model: SpikingNet, onnx_path: str | Path, T: int | None = None, batch: int = 4
) -> CheckResult:
    """Run ``onnx_path`` and the deployable ``model`` for ``T`` steps (default: the trained
    T) on a sample input and compare them."""
    T = T or cfg.train_T
    check_memory_for(onnx_path, T, batch)
    x, source = sample_input(cfg, T, batch)
    result = compare(run_torch(deployable(model), x), run_onnx(onnx_path, x), read_protocol(onnx_path))
    result.summary.update({"T": T, "batch": int(x.shape[1]), "input": source})
    return result


def run_onnx_stages(path: str | Path, x: np.ndarray) -> Trace:
    """The multi-rate file at ``path`` as the runtime runs it: cut into its stages, stepped
    in the streaming schedule with the TTM between stages; ``x`` has the first stage's T frames."""
    model = onnx.load(path)
    meta = read_protocol(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    runs, stage_neurons = [], []
    order = {n.node: i for i, n in enumerate(meta.neurons)}
    for sub, p in stage_models(model, meta):
        stage_neurons.append([order[n.node] for n in p.neurons])
        probe, names = with_neuron_outputs(sub, [n.node for n in p.neurons])
        sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        zeros = [np.zeros((x.shape[1], *s.shape), np.float32) for s in p.states]
        runs.append((sess, [s.name for s in p.states], zeros, names))
    index = {s.name: i for i, s in enumerate(meta.states)}
    st: list[list[np.ndarray]] = [[] for _ in meta.states]
    outs: list[list[np.ndarray]] = [[] for _ in meta.neurons]
    ys: list[np.ndarray] = []

    def step(i: int, j: int, x_t: np.ndarray) -> np.ndarray:
        sess, names, states, neuron_outs = runs[i]
        res = sess.run(["y", *(f"{n}_out" for n in names), *neuron_outs], {"x": x_t, **dict(zip(names, states))})
        states[:] = res[1 : 1 + len(names)]
        for n, s in zip(names, states):
            st[index[n]].append(s)
        for k, o in zip(stage_neurons[i], res[1 + len(names) :]):
            outs[k].append(o)
        if i + 1 == len(runs):
            ys.append(res[0])
        return res[0]

    for _ in Stream(meta.config or (), lambda j: x[j], step):
        pass
    return Trace(np.stack(ys), [np.stack(o) for o in outs], [np.stack(s) for s in st])


def check_stages_onnx(
    cfg: Config, model: SpikingNet, onnx_path: str | Path, config: list[int], batch: int = 4
) -> CheckResult:
    """Run the multi-rate ``onnx_path`` as the runtime does and the deployable ``model`` at
    ``config`` on a sample input (``config[0]`` frames) and compare every stage."""
    check_memory_for(onnx_path, max(config), batch)
    x, source = sample_input(cfg, config[0], batch)
    meta = read_protocol(onnx_path)
    result = compare(run_torch(deployable(model), x, config), run_onnx_stages(onnx_path, x), meta)
    result.summary.update({"config": list(config), "batch": int(x.shape[1]), "input": source})
    return result
