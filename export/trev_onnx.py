"""ONNX export of a T-RevSNN (:mod:`trainer.trev`): one step graph for every step t.

The protocol is the usual one (docs/onnx_protocol.md, "T-RevSNN models"): one graph = one
time step, and since each step runs its own sub-network the graph takes ``t``
(``uses_t``). How the one graph serves every t:

* the T sub-networks (and heads, and the per-step stems of event models) have the same
  structure, so their weights are stacked along a new first axis and step t gathers
  slice t (``Gather(W, t)``): the graph does exactly one sub-network's work per step;
* static models encode once (input kind ``encode-once``): the stem encoding is a state,
  computed from ``x`` only at t = 0 (an ``If`` on ``t == 0``) and carried after that;
  step t reads its channel group t of it;
* states are the stage outputs ``c_0 .. c_3`` (and the encoding); they are not neuron
  membranes, so their metadata entries name no node;
* every neuron is stateless (zero membrane at each step): one ``snn`` node each, with a
  zero ``u_prev``, named ``{op}_z{j}`` in graph order, its output shape in the metadata.

Scaled weight standardisation is folded, neurons are the exact deploy neurons.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx
import torch
from torch import nn
from torch.func import functional_call

from runtime.fileio import write_atomic
from runtime.integrity import stamp_onnx
from runtime.neuron import NeuronSpec
from runtime.neuron import functions as fn
from runtime.protocol import NeuronInfo, Protocol, StateInfo, store_protocol
from trainer.config import Config
from trainer.neurons import Neuron
from trainer.trev import TRevNet

from .check import CheckResult, Follower, Trace, check_memory_for, compare, exact_run, run_onnx, sample_input
from .errors import ExportError
from .neuron import DeployNeuron
from .onnx_export import OPSET, attach_functions, model_proto
from .protocol import protocol, read_protocol, readout_name
from .tracing import TRACING

M = TypeVar("M", bound=nn.Module)


def _deploy_(module: M) -> M:
    """In place: folded weight standardisation, exact deploy neurons."""
    for name, child in list(module.named_children()):
        folded = getattr(child, "folded", None)
        if callable(folded):
            setattr(module, name, folded())
        elif isinstance(child, Neuron):
            setattr(module, name, DeployNeuron(child.spec))
        else:
            _deploy_(child)
    return module


def _stack(modules: list[nn.Module]) -> dict[str, torch.Tensor]:
    """Per parameter name, the T copies stacked on a new first axis."""
    states = [m.state_dict() for m in modules]
    return {k: torch.stack([s[k] for s in states]) for k in states[0]}


def _at(stacked: nn.ParameterDict | dict[str, torch.Tensor], t: torch.Tensor) -> dict[str, torch.Tensor]:
    idx = t.reshape(1)
    return {k.replace("__", "."): torch.index_select(v, 0, idx).squeeze(0) for k, v in stacked.items()}


class TRevStep(nn.Module):
    """``(x, t, states) -> (y, *new_states)`` of a deployable T-RevSNN."""

    def __init__(self, net: TRevNet):
        super().__init__()
        net = _deploy_(copy.deepcopy(net).eval())
        self.T, self.group, self.static = net.T, net.group, net.static
        self.sub, self.head = net.subnets[0], net.heads[0]  # templates; weights come by t
        self.sub_w = _buffers(_stack(list(net.subnets)))
        self.head_w = _buffers(_stack(list(net.heads)))
        if self.static:
            self.stem = net.stems[0]
        else:
            self.stem_t, self.stem_w = net.stems[0], _buffers(_stack(list(net.stems)))

    def forward(self, x: torch.Tensor, t: torch.Tensor, states: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        if self.static:
            enc = torch.cond(t == 0, lambda x, e: self.stem(x), lambda x, e: e.clone(), (x, states[0]))
            group = torch.index_select(enc.unflatten(1, (self.T, self.group)), 1, t.reshape(1)).squeeze(1)
            c_prev, head = list(states[1:]), [enc]
        else:
            group = functional_call(self.stem_t, _at(self.stem_w, t), (x,))
            c_prev, head = list(states), []
        c = functional_call(self.sub, _at(self.sub_w, t), (group, c_prev))
        y = functional_call(self.head, _at(self.head_w, t), (c[3],))
        return (y, *head, *c)


def _buffers(stacked: dict[str, torch.Tensor]) -> nn.ParameterDict:
    # ParameterDict keys cannot contain "."
    return nn.ParameterDict({k.replace(".", "__"): nn.Parameter(v, requires_grad=False) for k, v in stacked.items()})


def state_shapes(net: TRevNet) -> list[tuple[int, ...]]:
    """Per-sample shapes of [encoding (static), c_0 .. c_3]."""
    c: list[tuple[int, ...]] = [(w, *s) for w, s in zip(net.widths, net.sizes)]
    return ([(net.group * net.T, *net.sizes[0])] if net.static else []) + c


def trace(step: TRevStep, in_shape: tuple[int, ...], shapes: list[tuple[int, ...]]) -> onnx.ModelProto:
    n = len(shapes)
    batch = torch.export.Dim("batch", min=1)
    args = (torch.zeros(2, *in_shape), torch.tensor(0, dtype=torch.int64), tuple(torch.zeros(2, *s) for s in shapes))
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with TRACING, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            step,
            args,
            dynamo=True,
            opset_version=OPSET,
            verbose=False,
            input_names=["x", "t", *(f"state_{i}" for i in range(n))],
            output_names=["y", *(f"state_{i}_out" for i in range(n))],
            dynamic_shapes=({0: batch}, None, tuple({0: batch} for _ in range(n))),
        )
    return model_proto(program)


def annotate_stateless(model: onnx.ModelProto, spec: NeuronSpec) -> list[str]:
    """Name the ``snn`` nodes ``{op}_z{j}`` (graph order), set their overload, attach the
    function body, the ``snn`` opset and IR version; returns the names."""
    names: list[str] = []
    for node in model.graph.node:
        if node.domain == fn.DOMAIN:
            node.name = f"{node.op_type}_z{len(names)}"
            node.overload = fn.overload(spec)
            names.append(node.name)
    if not names:
        raise ExportError("the T-RevSNN step graph has no snn neuron nodes")
    attach_functions(model, [spec])
    return names


def value_shapes(model: onnx.ModelProto, names: list[str]) -> list[tuple[int, ...]]:
    """Per-sample shapes of graph values (the exporter's value_info: ``[batch, ...]``)."""
    info = {v.name: v.type.tensor_type.shape.dim for v in model.graph.value_info}
    shapes = []
    for name in names:
        dims = info.get(name)
        if dims is None or not all(d.dim_value > 0 for d in dims[1:]):
            raise ExportError(f"the exporter recorded no static shape for neuron output {name!r}")
        shapes.append(tuple(d.dim_value for d in dims[1:]))
    return shapes


def build_trev_onnx(cfg: Config, model: TRevNet, **fields: object) -> onnx.ModelProto:
    in_shape = tuple(cfg.model.in_shape)
    step = TRevStep(model)
    shapes = state_shapes(model)
    proto = trace(step, in_shape, shapes)
    spec = cfg.neuron.spec
    nodes = annotate_stateless(proto, spec)
    outputs = {n.name: n.output[0] for n in proto.graph.node if n.domain == fn.DOMAIN}
    n_shapes = value_shapes(proto, [outputs[n] for n in nodes])
    # states are stage outputs, owned by no neuron; every neuron is stateless (zero membrane)
    states = [StateInfo(f"state_{i}", tuple(s), "") for i, s in enumerate(shapes)]
    neurons = [NeuronInfo(n, spec, (), tuple(s)) for n, s in zip(nodes, n_shapes)]
    extra: dict[str, object] = {"input_kind": "encode-once"} if model.static else {}
    store_protocol(
        proto,
        protocol(
            cfg,
            readout_name(model.readout_rule),
            states,
            neurons,
            uses_t=True,
            T_range=(1, model.T),
            max_steps=model.T,
            **extra,
            **fields,
        ),
    )
    return proto


def export_trev_onnx(cfg: Config, model: TRevNet, path: str | Path, **fields: object) -> Path:
    """Write ``model`` as a ``flexsnn-onnx/3`` file at ``path`` (atomically); returns it."""
    proto = build_trev_onnx(cfg, model, **fields)
    onnx.checker.check_model(proto, full_check=True)
    return write_atomic(path, lambda tmp: onnx.save(stamp_onnx(proto), tmp))


@torch.no_grad()
def run_trev_torch(step: TRevStep, x: np.ndarray, meta: Protocol, follow: Trace | None = None) -> Trace:
    """``step`` over ``x`` (``[T, B, ...]``) from zero states, each neuron call of a step
    recorded as the ``snn`` node of that place in the graph (``{op}_z{j}``: the graph keeps
    the step's call order; a wrong pairing fails the currents, it cannot pass). ``follow``:
    onnxruntime's trace (with currents): every neuron is computed on onnxruntime's current
    too and passes onnxruntime's spikes on, and each step starts from onnxruntime's states
    (:mod:`export.check`); else torch runs free."""
    n_neurons = len(meta.neurons)
    rec = Follower(n_neurons, follow)
    call = [0]

    def hook(m: nn.Module, args: tuple, kwargs: dict, res: tuple) -> tuple | None:
        if rec.inner:  # the follower calling the neuron again: not one of the step's calls
            return None
        j = call[0]
        call[0] += 1
        if j >= n_neurons:
            raise ExportError(f"the torch step calls more neurons than the graph's {n_neurons} snn nodes")
        got = rec.record(j, m, args, kwargs, res)
        return None if got is None else (got[0], res[1])  # the step carries its states itself

    neurons = [m for m in step.modules() if isinstance(m, DeployNeuron)]  # _deploy_ put them in
    hooks = [m.register_forward_hook(hook, with_kwargs=True) for m in neurons]
    dtype = torch.from_numpy(x[:0]).dtype  # float64 in the exact run
    states = tuple(torch.zeros(x.shape[1], *s.shape, dtype=dtype) for s in meta.states)
    ys: list[np.ndarray] = []
    st: list[list[np.ndarray]] = [[] for _ in meta.states]  # per state: its steps
    try:
        for t, x_t in enumerate(x):
            call[0] = 0
            y, *new = step(torch.from_numpy(x_t), torch.tensor(t), states)
            if call[0] != n_neurons:
                raise ExportError(f"the torch step called {call[0]} neurons, the graph has {n_neurons} snn nodes")
            ys.append(y.numpy().copy())
            for lst, s in zip(st, new):
                lst.append(s.numpy().copy())
            # following: the next step starts from onnxruntime's states, as its spikes go on
            states = tuple(new) if follow is None else tuple(torch.from_numpy(s[t]).to(dtype) for s in follow.states)
    finally:
        for h in hooks:
            h.remove()
    return rec.trace(np.stack(ys), st)


def check_trev_onnx(
    cfg: Config, model: TRevNet, onnx_path: str | Path, T: int | None = None, batch: int = 4
) -> CheckResult:
    """``--check`` for a T-RevSNN, as :func:`export.check.check_onnx` checks other models:
    onnxruntime step by step (fed ``t``) next to the deployable torch step, which follows it
    (every neuron's spikes exact on onnxruntime's current, rounding ties counted; its own
    current, each stage-output state and ``y`` judged as sums against the same run in
    float64, :func:`export.check.within_rounding`), and the free torch run beside it."""
    T = T or model.T
    if T > model.T:
        raise ExportError(f"--T {T}: this T-RevSNN has {model.T} sub-networks (T <= {model.T})")
    check_memory_for(onnx_path, T, batch)
    x, source = sample_input(cfg, T, batch)
    step, meta = TRevStep(model), read_protocol(onnx_path)
    got = run_onnx(onnx_path, x)
    exact = exact_run(run_trev_torch, step, x, meta, follow=got)
    result = compare(run_trev_torch(step, x, meta, follow=got), got, meta, run_trev_torch(step, x, meta), exact)
    result.summary.update({"T": T, "batch": int(x.shape[1]), "input": source})
    return result
