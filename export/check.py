"""``--check``: the exported ONNX graph in onnxruntime, step by step, next to torch.

Both sides run T steps of the same input from zero states. Every neuron node's output
(spikes, or the membrane of an LI readout), its input current and its states are compared,
not only ``y``: they are exposed as extra outputs of a check-only copy of the model.

onnxruntime and torch sum a layer's products in different orders, so a neuron's input
current differs in its last bits, and where a membrane lies within that rounding of a
threshold (a multi-spike neuron has one at every multiple of ``v_th``) one spike count
differs by one; downstream, that spike changes the next layer's current by a whole weight.
So torch *follows* onnxruntime: at every neuron and step it computes the neuron twice from
onnxruntime's previous state, on onnxruntime's current (which must give onnxruntime's
spikes exactly, and its states within ``TOL``: the neuron's definition) and on its own
current (which must be within ``TOL`` of onnxruntime's: the synapses), and passes
onnxruntime's spikes and states on. A spike that differs only on torch's own current is a
*rounding tie*: counted and reported, not a failure. ``y`` is compared within ``TOL``. The
free-running comparison (torch on its own spikes throughout) is reported beside it: how
many spikes, and how many predictions, a rounding tie changed.

The torch side is the deployable network (BatchNorm folded), i.e. exactly what was
exported; folding changes float rounding, so the original network is not the reference.

A multi-rate file (``--config``): torch runs each stage at its T with
:func:`trainer.temporal.transform` between stages (as ``trainer eval --config``); the ONNX
side runs the stages the runtime cuts out of the file (:func:`runtime.stages.stage_models`)
in its streaming schedule (:class:`runtime.stages.Stream`). Each neuron's spikes and states
are compared over its own stage's steps.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from runtime.data import DataError, load_dataset
from runtime.data.transforms import from_dicts
from runtime.limits import check_memory
from runtime.neuron.functions import DOMAIN
from runtime.protocol import Protocol
from runtime.protocol import readout as readout_logits
from runtime.stages import Stream, stage_models
from trainer.config import Config
from trainer.layers import returned, step_chain
from trainer.models import SpikingNet
from trainer.temporal import transform

from .prepare import deployable, neuron_layers
from .protocol import read_protocol

TOL = 1e-5
ROUNDING = 4  # times torch's largest float32 rounding error in an array that onnxruntime's may reach


@dataclass
class Trace:
    """What one run produced, per step ``[T, B, ...]``: ``y``, each neuron layer's output
    (in the protocol's neuron order) and each state (in its state order); each neuron's
    input current where the run records it. A torch run that followed onnxruntime
    (:func:`run_torch` ``follow``) holds in ``outs``/``states`` the neuron on
    onnxruntime's current and in ``own`` its output on torch's own current."""

    y: np.ndarray
    outs: list[np.ndarray]
    states: list[np.ndarray]
    currents: list[np.ndarray] = field(default_factory=list)
    own: list[np.ndarray] = field(default_factory=list)
    state_of: list[list[int]] = field(default_factory=list)  # each neuron's indices into ``states``


@dataclass
class CheckResult:
    ok: bool
    rows: list[list[Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    headers: list[str] = field(default_factory=list)  # the rows' columns


def stacked(lists: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Each list of per-step arrays as one array ``[T, ...]``; none recorded: ``[]``."""
    return [np.stack(v) for v in lists] if any(lists) else []


def check_memory_for(onnx_path: str | Path, T: int, batch: int) -> None:
    """Refuse a check whose traces do not fit (it was killed by the OS at --T 1000
    --batch-size 1000): every step's input (binned as int64 counts, then float32) and every
    state, neuron output and input current of every step kept by the four runs
    (onnxruntime: states, outputs, currents; torch following it, in float32 and again in
    float64: states, outputs on onnxruntime's current and on its own, currents; torch free:
    states, outputs): at most 18 float32-sized arrays of a neuron's size per step, and the
    arrays numpy stacks at the end (measured 4.5 GB at --T 12 --batch-size 360 on the README
    default before the float64 run: the estimate covers it)."""
    meta = read_protocol(onnx_path)
    states = sum(math.prod(s.shape) for s in meta.states)
    states += sum(math.prod(n.shape) for n in meta.neurons if n.shape is not None)  # stateless: outputs only
    need = T * batch * (20 * math.prod(meta.input_shape) + 2 * 18 * 4 * states)
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


class Follower:
    """One torch run's record of its neuron calls, kept by a forward hook on each neuron:
    free (``follow`` None), each call's output; following onnxruntime's trace ``follow``
    (with currents), each call's own current and output, and the neuron called again on
    onnxruntime's current of that call (the module docstring's "follows"). Call ``k`` of
    neuron ``j`` is matched with onnxruntime's step ``k`` of that neuron: each neuron runs
    once per step."""

    def __init__(self, n_neurons: int, follow: Trace | None):
        self.follow = follow
        self.outs: list[list[np.ndarray]] = [[] for _ in range(n_neurons)]
        self.own: list[list[np.ndarray]] = [[] for _ in range(n_neurons)]
        self.cur: list[list[np.ndarray]] = [[] for _ in range(n_neurons)]
        self.inner = False  # inside the call again: that call is not recorded

    def record(
        self, j: int, m: nn.Module, args: tuple, kwargs: dict, res: tuple
    ) -> tuple[torch.Tensor, tuple, int] | None:
        """Record neuron ``j``'s call ``m(*args, **kwargs) -> res``; following, returns
        onnxruntime's output of that step (what goes on downstream), the states the neuron
        computed from onnxruntime's current and the step ``k``; else None (res stands)."""
        if self.inner:
            return None
        k = len(self.outs[j])
        if self.follow is None:
            self.outs[j].append(res[0].numpy().copy())
            return None
        self.cur[j].append(args[0].numpy().copy())
        self.own[j].append(res[0].numpy().copy())
        dtype = args[0].dtype  # float64 in the exact run (:func:`exact_run`)
        self.inner = True
        try:
            y, new = m(torch.from_numpy(self.follow.currents[j][k]).to(dtype), *args[1:], **kwargs)
        finally:
            self.inner = False
        self.outs[j].append(y.numpy().copy())
        return torch.from_numpy(self.follow.outs[j][k]).to(dtype), new, k

    def trace(self, y: np.ndarray, states: list[list[np.ndarray]]) -> Trace:
        """The run's :class:`Trace`: ``y`` ``[T, B, C]`` and ``states``, each a list of steps."""
        return Trace(y, stacked(self.outs), stacked(states), stacked(self.cur), stacked(self.own))


@torch.no_grad()
def run_torch(net: SpikingNet, x: np.ndarray, config: list[int] | None = None, follow: Trace | None = None) -> Trace:
    """Step ``net`` over ``x`` from zero states; with ``config``, stage by stage, each at its
    T with the temporal transformation module before it (``x`` has ``config[0]`` frames).
    ``follow``: onnxruntime's trace of the same input (with currents), which every neuron
    follows (see the module docstring); else torch runs free."""
    neurons = [layer.neuron for layer in neuron_layers(net)]
    rec = Follower(len(neurons), follow)
    followed: list[list[list[np.ndarray]]] = [[] for _ in neurons]  # per neuron, per state: its steps

    def hook(i: int, m: nn.Module, args: tuple, kwargs: dict, res: tuple) -> tuple | None:
        if (got := rec.record(i, m, args, kwargs, res)) is None or follow is None:
            return None
        y, new, k = got
        followed[i] = followed[i] or [[] for _ in new]
        for lst, v in zip(followed[i], new):
            lst.append(v.numpy().copy())
        # onnxruntime's spikes and states go on downstream and to the next step
        passed = tuple(torch.from_numpy(follow.states[s][k]).to(y.dtype) for s in follow.state_of[i])
        return y, (passed if len(new) else new)

    hooks = [
        m.register_forward_hook(lambda m, a, kw, res, i=i: hook(i, m, a, kw, res), with_kwargs=True)
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
                for i, s in enumerate(returned(states)):
                    st[first + i].append(s.numpy().copy())
            seq, first = torch.stack(ys), first + len(states)
    finally:
        for h in hooks:
            h.remove()
    if follow is not None:  # the states torch computed from onnxruntime's currents, in state order
        st = [lst for per_neuron in followed for lst in per_neuron]
    return rec.trace(seq.numpy().copy(), st)


def with_neuron_outputs(
    model: onnx.ModelProto, neurons: list[str], currents: bool = False
) -> tuple[onnx.ModelProto, list[str]]:
    """A copy whose graph also outputs the first output of each named ``snn`` node, in that
    order (``currents``: then the input current of each, in that order)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    by_name = {n.name: n for n in model.graph.node if n.domain == DOMAIN}
    names = [by_name[n].output[0] for n in neurons] + ([by_name[n].input[0] for n in neurons] if currents else [])
    # a stage's output may be a neuron's spikes; a graph input is fed, not fetched
    have = {o.name for o in model.graph.output} | {i.name for i in model.graph.input}
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None)
        for o in dict.fromkeys(names)
        if o not in have
    )
    return model, names


def run_onnx(path: str | Path, x: np.ndarray) -> Trace:
    model = onnx.load(path)
    meta = read_protocol(model)
    probe, names = with_neuron_outputs(model, [n.node for n in meta.neurons], currents=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # a check, not a benchmark: stay off the shared cores
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    state_names = [s.name for s in meta.states]
    states = [np.zeros((x.shape[1], *s.shape), np.float32) for s in meta.states]
    inputs = {i.name for i in model.graph.input}  # fed, not fetched
    fetch = ["y", *(f"{n}_out" for n in state_names), *dict.fromkeys(n for n in names if n not in inputs)]
    ys: list[np.ndarray] = []
    st: list[list[np.ndarray]] = [[] for _ in states]
    got: list[list[np.ndarray]] = [[] for _ in names]  # neuron outputs, then currents
    for t, x_t in enumerate(x):
        feed = {"x": x_t, **dict(zip(state_names, states))}
        if meta.uses_t:  # a T-RevSNN step reads its step index
            feed["t"] = np.array(t, np.int64)
        res = sess.run(fetch, feed)
        ys.append(res[0])
        states = res[1 : 1 + len(states)]
        for i, s in enumerate(states):
            st[i].append(s)
        fetched = {**feed, **dict(zip(fetch, res))}
        for i, name in enumerate(names):
            got[i].append(fetched[name])
    n = len(meta.neurons)
    return Trace(np.stack(ys), stacked(got[:n]), stacked(st), stacked(got[n:]), state_of=state_index(meta))


def state_index(meta: Protocol) -> list[list[int]]:
    """Each neuron's state indices into ``meta.states``, in the protocol's neuron order."""
    index = {s.name: i for i, s in enumerate(meta.states)}
    return [[index[s] for s in n.states] for n in meta.neurons]


def close_enough(ref: np.ndarray, got: np.ndarray) -> bool:
    """Element by element within ``TOL`` (absolute plus relative): values computed from the
    same inputs by the same arithmetic (a neuron on onnxruntime's current and state)."""
    return bool(np.allclose(got, ref, rtol=TOL, atol=TOL))


def within_rounding(got: np.ndarray, ref: np.ndarray, exact: np.ndarray) -> bool:
    """``got`` (onnxruntime) and ``ref`` (torch), two float32 computations of the same sums
    in other orders, against ``exact`` (torch in float64 on the same inputs): ``got`` within
    ``TOL`` (absolute plus relative) of it, or within ``ROUNDING`` times the largest error
    torch's own float32 rounding makes in this array. A sum is off by a few units of its
    partial sums whatever its result (a multi-spike IF layer with currents up to 8351 had an
    element of -1.19 off by 7.4e-4 in a correct file); a weight 1% off moves currents by
    more than rounding does, where a bound at the array's largest value let it through."""
    rounding = float(np.abs(ref - exact).max(initial=0.0))
    return bool(np.all(np.abs(got - exact) <= TOL * (1 + np.abs(exact)) + ROUNDING * rounding))


def exact_run(run: Callable[..., Trace], model: nn.Module, x: np.ndarray, *args: Any, **kwargs: Any) -> Trace:
    """``run(model, x, ...)`` in float64 on a copy: the sums torch and onnxruntime round."""
    return run(copy.deepcopy(model).double(), x.astype(np.float64), *args, **kwargs)


def predict(y: np.ndarray, readout: str) -> np.ndarray:
    """Class per sample from ``y [T, B, classes]`` by the protocol's readout rule."""
    return readout_logits(y, readout).argmax(-1)


def compare(
    ref: Trace, got: Trace, meta: Protocol, free: Trace | None = None, exact: Trace | None = None
) -> CheckResult:
    """Per neuron node: spikes and every state variable; then ``y`` (within TOL).
    ``ref.outs``/``got.outs`` are per neuron, ``states`` per state, in the protocol's
    orders. ``ref`` a run that followed ``got`` (:func:`run_torch` ``follow``): spikes
    exact on onnxruntime's current, its states within TOL, every current (and ``y``, and a
    state no neuron owns) within TOL or, with ``exact`` (the same run in float64), within
    float32 rounding (:func:`within_rounding`); rounding ties counted; ``free`` (torch on
    its own, optional) gives the spike counts and predictions a user sees. ``ref`` a free
    run: spikes exact."""

    def summed(g: np.ndarray, r: np.ndarray, e: np.ndarray | None) -> bool:  # a sum's float32 rounding
        return close_enough(r, g) if e is None else within_rounding(g, r, e)

    rows, ok, ties, free_diff = [], True, 0, 0
    followed, cols = bool(ref.own), headers(free is not None)
    shown = free if free is not None else ref  # torch as a user runs it, when given
    for j, (n, own) in enumerate(zip(meta.neurons, state_index(meta))):
        d_state = max((float(np.abs(ref.states[i] - got.states[i]).max()) for i in own), default=0.0)
        same = all(close_enough(ref.states[i], got.states[i]) for i in own)
        d_current: float | str = "-"
        if followed:
            d_current = float(np.abs(ref.currents[j] - got.currents[j]).max())
            same &= summed(got.currents[j], ref.currents[j], None if exact is None else exact.currents[j])
        spikes: list[Any] = ["-"] * (len(cols) - 5)  # the spike columns
        if not n.spec.spiking:  # its output is the membrane: compared like a state
            same &= close_enough(ref.outs[j], got.outs[j])
        else:
            mismatched = int((ref.outs[j] != got.outs[j]).sum())
            tied = int((ref.own[j] != got.outs[j]).sum()) if followed else 0
            spikes = [int(shown.outs[j].sum()), int(got.outs[j].sum())]
            if free is not None:
                spikes.append(int((free.outs[j] != got.outs[j]).sum()))
                free_diff += spikes[-1]
            spikes += [mismatched, tied]
            same &= mismatched == 0
            ties += tied
        rows.append([n.node, n.op, *spikes, d_current, d_state, "FAIL" if not same else "ok"])
        ok &= same
    owned = {i for own in state_index(meta) for i in own}
    state_rows = []  # states no neuron owns (a T-RevSNN's stage outputs): sums, as currents are
    for i, s in enumerate(meta.states):
        if i not in owned:
            same = summed(got.states[i], ref.states[i], None if exact is None else exact.states[i])
            d = float(np.abs(ref.states[i] - got.states[i]).max())
            state_rows.append([s.name, "state", *["-"] * (len(cols) - 5), "-", d, "ok" if same else "FAIL"])
            ok &= same
    d_y = float(np.abs(ref.y - got.y).max())
    y_ok = summed(got.y, ref.y, None if exact is None else exact.y)
    # y is held to the currents' rule (a sum of weighted inputs): its difference in that column
    rows += [*state_rows, ["y", *["-"] * (len(cols) - 4), d_y, "-", "ok" if y_ok else "FAIL"]]
    ok &= y_ok
    keys = ["node", "op", "spikes_torch", "spikes_onnx"]
    keys += ["spikes_differ_free_run"] if free is not None else []
    keys += ["mismatched_spikes", "rounding_ties", "max_abs_diff_current", "max_abs_diff_state", "status"]
    summary: dict[str, Any] = {
        "ok": bool(ok),
        "tolerance": TOL,
        # or, for sums, this many times torch's largest float32 rounding error in the array
        "rounding_factor": ROUNDING if exact is not None else None,
        "max_abs_diff_y": d_y,
        "rounding_ties": ties,
        # what a user sees: torch on its own (free run, when given) against onnxruntime
        "predictions_agree": float((predict(shown.y, meta.readout) == predict(got.y, meta.readout)).mean()),
        "neurons": [dict(zip(keys, r)) for r in rows[: len(meta.neurons)]],
    }
    if state_rows:
        summary["states"] = [{"state": r[0], "max_abs_diff": r[-2], "status": r[-1]} for r in state_rows]
    if free is not None:
        summary["spikes_differ_free_run"] = free_diff
    return CheckResult(bool(ok), rows, summary, cols)


def headers(free: bool) -> list[str]:
    """The table's columns (``free``: torch's spikes are its free run's, and how many differ)."""
    cols = ["node", "op", "spikes torch", "spikes onnx"] + (["differ (free run)"] if free else [])
    return cols + ["mismatched", "rounding ties", "max |Δ current|", "max |Δ state|", "status"]


def check_onnx(
    cfg: Config, model: SpikingNet, onnx_path: str | Path, T: int | None = None, batch: int = 4
) -> CheckResult:
    """Run ``onnx_path`` and the deployable ``model`` for ``T`` steps (default: the trained
    T) on a sample input and compare them."""
    T = T or cfg.train_T
    check_memory_for(onnx_path, T, batch)
    x, source = sample_input(cfg, T, batch)
    net, got = deployable(model), run_onnx(onnx_path, x)
    exact = exact_run(run_torch, net, x, follow=got)
    result = compare(run_torch(net, x, follow=got), got, read_protocol(onnx_path), run_torch(net, x), exact)
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
        probe, names = with_neuron_outputs(sub, [n.node for n in p.neurons], currents=True)
        sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        zeros = [np.zeros((x.shape[1], *s.shape), np.float32) for s in p.states]
        runs.append((sess, [s.name for s in p.states], zeros, names, {i.name for i in sub.graph.input}))
    index = {s.name: i for i, s in enumerate(meta.states)}
    st: list[list[np.ndarray]] = [[] for _ in meta.states]
    outs: list[list[np.ndarray]] = [[] for _ in meta.neurons]
    currents: list[list[np.ndarray]] = [[] for _ in meta.neurons]
    ys: list[np.ndarray] = []

    def step(i: int, j: int, x_t: np.ndarray) -> np.ndarray:
        sess, names, states, probes, inputs = runs[i]
        feed = {"x": x_t, **dict(zip(names, states))}
        fetch = ["y", *(f"{n}_out" for n in names), *dict.fromkeys(n for n in probes if n not in inputs)]
        res = sess.run(fetch, feed)
        states[:] = res[1 : 1 + len(names)]
        for n, s in zip(names, states):
            st[index[n]].append(s)
        fetched = {**feed, **dict(zip(fetch, res))}
        neurons = stage_neurons[i]
        for k, o, c in zip(neurons, probes[: len(neurons)], probes[len(neurons) :]):
            outs[k].append(fetched[o])
            currents[k].append(fetched[c])
        if i + 1 == len(runs):
            ys.append(res[0])
        return res[0]

    for _ in Stream(meta.config or (), lambda j: x[j], step):
        pass
    return Trace(np.stack(ys), stacked(outs), stacked(st), stacked(currents), state_of=state_index(meta))


def check_stages_onnx(
    cfg: Config, model: SpikingNet, onnx_path: str | Path, config: list[int], batch: int = 4
) -> CheckResult:
    """Run the multi-rate ``onnx_path`` as the runtime does and the deployable ``model`` at
    ``config`` on a sample input (``config[0]`` frames) and compare every stage."""
    check_memory_for(onnx_path, max(config), batch)
    x, source = sample_input(cfg, config[0], batch)
    net, got = deployable(model), run_onnx_stages(onnx_path, x)
    free = run_torch(net, x, config)
    exact = exact_run(run_torch, net, x, config, follow=got)
    result = compare(run_torch(net, x, config, follow=got), got, read_protocol(onnx_path), free, exact)
    result.summary.update({"config": list(config), "batch": int(x.shape[1]), "input": source})
    return result


def criterion(summary: dict[str, Any]) -> str:
    """What a check that passed held, in words."""
    return (
        f"spikes identical on onnxruntime's input currents; states within {summary['tolerance']} abs + rel; "
        f"currents and y within {summary['tolerance']} abs + rel of torch's float64 sums, or within "
        f"{summary['rounding_factor']}x torch's own float32 rounding"
    )


def tie_note(summary: dict[str, Any]) -> str | None:
    """The line that says what float32 rounding changed (None: nothing did)."""
    ties, differ = summary.get("rounding_ties", 0), summary.get("spikes_differ_free_run", 0)
    if not ties and not differ:
        return None
    return (
        f"{ties} rounding tie{'s' * (ties != 1)} (a membrane within float32 rounding of a threshold: torch and "
        f"onnxruntime sum a layer's input current in another order; one spike count differs by one); run free "
        f"(torch on its own spikes and membranes throughout) {differ} spikes differ, the same rounding carried "
        f"downstream and over steps, and {summary['predictions_agree']:.1%} of predictions agree"
    )
