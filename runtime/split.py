"""The split executor (backend ``numba``): onnxruntime runs the synaptic segments of the
graph between neuron layers, a one-pass numba kernel runs each neuron layer.

Why: in onnxruntime's batch-64 profile of N-MNIST 2C1FC the inlined neuron function
bodies took about 56% of the step (one full pass over the state per op) and the convs
21%; the kernel (runtime/neuron/kernels.py) does the neuron in one pass with the same
float32 arithmetic, so spikes, states and outputs are bit-identical to the function-body
path (tests/test_split.py). onnxruntime keeps its blocked (NCHWc) layout inside each
segment as before; the reorders at the segment ends are the ones it made around the
bodies anyway.

Covered: a chain x -> segment -> neuron -> segment -> ... -> y, every neuron a kind with
a kernel and with state, no ``t`` input. :func:`plan` says why another model is not
covered; the session then runs the function bodies (backend ``ort``). Backend ``exact``
runs the same plan with the segments in fixed-order numba ops (runtime/exact.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import onnx
import onnxruntime as ort
from onnx.utils import Extractor

from .engine import RowBuffers
from .neuron import kernels
from .neuron.functions import DOMAIN
from .protocol import Protocol

if TYPE_CHECKING:
    from .exact import ExactSegment

# what runs a segment: an onnxruntime session (backend numba) or fixed-order ops (backend exact)
Segment: TypeAlias = "ort.InferenceSession | ExactSegment"


class NotSplittable(ValueError):
    """A model the split executor does not cover (the message says why)."""


@dataclass(frozen=True)
class Neuron:
    current: str  # the tensor the layer reads
    out: str  # its spikes
    states: tuple[str, ...]  # its states' names, the kind's order (inputs; outputs f"{state}_out")
    kernel: kernels.Kernel


@dataclass(frozen=True)
class Plan:
    segments: tuple[onnx.ModelProto, ...]  # len(neurons) + 1: x -> current 0, out 0 -> current 1, ..., -> y
    neurons: tuple[Neuron, ...]

    @property
    def ends(self) -> list[tuple[str, str]]:
        """(input, output) tensor of each segment: x -> current 0, out 0 -> current 1, ..., -> y."""
        return _ends(self.neurons)


def _ends(neurons: Sequence[Neuron]) -> list[tuple[str, str]]:
    return list(zip(["x", *(n.out for n in neurons)], [*(n.current for n in neurons), "y"]))


def plan(model: onnx.ModelProto, proto: Protocol) -> Plan:
    """Cut ``model`` at its neuron nodes; :class:`NotSplittable` says why it cannot be."""
    if proto.uses_t:
        raise NotSplittable("the step depends on t")
    try:
        import numba  # noqa: F401
    except ImportError:
        raise NotSplittable("numba is not installed") from None
    info = {n.node: n for n in proto.neurons}
    neurons = []
    for node in model.graph.node:
        if node.domain != DOMAIN:
            continue
        n = info.get(node.name)
        if n is None or not kernels.supported(n.spec):
            kind = n.spec.kind if n else node.op_type
            raise NotSplittable(
                f"neuron {node.name!r} ({kind}) has no kernel (kinds with one: {kernels.with_kernels()})"
            )
        if list(node.input[1:]) != list(n.states) or list(node.output[1:]) != [f"{s}_out" for s in n.states]:
            raise NotSplittable(f"neuron {node.name!r} does not read and write its states directly")
        neurons.append(Neuron(node.input[0], node.output[0], tuple(n.states), kernels.kernel(n.spec)))
    if not neurons:
        raise NotSplittable("the model has no neuron layer")
    if neurons[-1].out == "y":  # no readout segment after it to fill the output buffer
        raise NotSplittable("the output is the last neuron layer's spikes (a spiking readout)")
    ex = Extractor(with_value_info(model, [n.current for n in neurons] + [n.out for n in neurons]))
    segments = []
    for src, dst in _ends(neurons):
        seg = ex.extract_model([src], [dst])
        made = {o for node in seg.graph.node for o in node.output} | {i.name for i in seg.graph.initializer} | {src}
        needs = {i for node in seg.graph.node for i in node.input if i}
        if any(node.domain == DOMAIN for node in seg.graph.node) or not needs <= made:
            raise NotSplittable(f"the graph from {src!r} to {dst!r} is not a plain segment (a skip or a loop)")
        segments.append(seg)
    return Plan(tuple(segments), tuple(neurons))


def with_value_info(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy that declares ``names`` (float32; the shape left open) where the file does
    not: the extractor makes them segment inputs and outputs and needs their types."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {v.name for v in [*m.graph.value_info, *m.graph.input, *m.graph.output]}
    for name in names:
        if name not in have:
            m.graph.value_info.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return m


class SplitStepper(RowBuffers):
    """The :class:`runtime.engine.Stepper` interface over a :class:`Plan`: ``x``, ``y``,
    ``states`` (in the protocol's order), ``extra`` (spikes of the named neuron outputs),
    ``step``, ``reset``, ``keep``. The membranes are updated in place (one set)."""

    def __init__(
        self,
        p: Plan,
        proto: Protocol,
        batch: int,
        sessions: Sequence[Segment],
        extra: Sequence[str] = (),
    ):
        self.plan, self.proto, self.names = p, proto, list(extra)
        shapes = {s.name: s.shape for s in proto.states}
        # per neuron layer, its states (the kind's order); the current and spikes have their shape
        self._full_u = [[np.zeros((batch, *shapes[s]), np.float32) for s in n.states] for n in p.neurons]
        self._full_cur = [np.zeros_like(u[0]) for u in self._full_u]
        self._full_spikes = [np.zeros_like(u[0]) for u in self._full_u]
        self._full_x = np.zeros((batch, *proto.input_shape), np.float32)
        self._full_y = np.zeros((batch, *proto.y_shape), np.float32)
        self._bind(sessions, batch)

    @property
    def states(self) -> list[np.ndarray]:
        by_name = {s: a for n, u in zip(self.plan.neurons, self._u) for s, a in zip(n.states, u)}
        return [by_name[s.name] for s in self.proto.states]

    def _state_rows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(full, a) for fulls, u in zip(self._full_u, self._u) for full, a in zip(fulls, u)]

    def _bind(self, runner: object, batch: int) -> None:
        p, sessions = self.plan, runner
        assert isinstance(sessions, Sequence)
        self._u = [[a[:batch] for a in full] for full in self._full_u]
        self.x, self.y = self._full_x[:batch], self._full_y[:batch]
        self._cur = [a[:batch] for a in self._full_cur]
        self._spikes = [a[:batch] for a in self._full_spikes]
        by_out = {n.out: s for n, s in zip(p.neurons, self._spikes)}
        self.extra = [by_out[name] for name in self.names]
        ins, outs = [self.x, *self._spikes], [*self._cur, self.y]
        self._runs = [_bound(seg, a, b, *ends) for seg, a, b, ends in zip(sessions, ins, outs, p.ends)]

    def step(self, x: np.ndarray, t: int) -> None:
        np.copyto(self.x, x)
        for run, n, cur, u, s in zip(self._runs, self.plan.neurons, self._cur, self._u, self._spikes):
            run()
            n.kernel(cur, u, s)
        self._runs[-1]()

    def reset(self) -> None:
        for u in self._u:
            for a in u:
                a.fill(0.0)


def _bound(seg: Segment, a: np.ndarray, b: np.ndarray, src: str, dst: str) -> Callable[[], None]:
    """A call that computes ``b`` (tensor ``dst``) from ``a`` (``src``) with ``seg``."""
    if not isinstance(seg, ort.InferenceSession):
        return seg.bind(a, b)
    io = seg.io_binding()
    io.bind_ortvalue_input(src, ort.OrtValue.ortvalue_from_numpy(a))
    io.bind_ortvalue_output(dst, ort.OrtValue.ortvalue_from_numpy(b))
    return partial(seg.run_with_iobinding, io)
