"""Lowering an exported model (docs/onnx_protocol.md) to the layer list the event engine runs.

The one-step graph must be a feed-forward chain from ``x`` to ``y`` of:

* synaptic ops: ``Conv`` (group 1, dilation 1), ``Gemm`` (``transA = 0``) and ``MatMul``
  with the weight as an initializer;
* routing ops: ``AveragePool`` with kernel == stride and no padding, which becomes a SUM
  pool whose ``1/k²`` is folded into the next synaptic weights (``avg = sum / k²`` and the
  next op is linear); ``Flatten``/``Reshape`` to ``[B, N]`` (fixes the C, H, W order of a
  dense layer's inputs); ``Identity``;
* one ``snn`` neuron node after a synaptic op, or none (a readout that accumulates the
  current, what the ``mean`` and ``count`` readouts of the clock-driven runtime sum). The
  neuron's kind gives its event-driven form (``NeuronKind.event_form``); a kind without
  one is refused with the kind's own reason.

Biases have no event-driven meaning (a constant current per step needs a clock): a bias
that is not all zeros is refused. Anything else is refused with the list of what works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ..neuron import EventForm, EventFormError, NeuronSpec, kind_of, kinds
from ..protocol import SNN_DOMAIN, ModelError, Protocol

SUPPORTED_OPS = (
    "Conv",
    "Gemm",
    "MatMul",
    "Add (zero bias)",
    "AveragePool",
    "Flatten",
    "Reshape",
    "Identity",
    "snn neuron nodes with an event-driven form",
)


class BiasError(ModelError):
    """A layer with a non-zero bias: no event-driven meaning without a clock."""


class NeuronFormError(ModelError):
    """A neuron node whose kind or variant has no event-driven form."""


@dataclass(frozen=True)
class Layer:
    """One synaptic layer and the neurons it feeds (shapes are (C, H, W); vectors (N, 1, 1)).

    ``src_shape`` is what arrives (the previous layer's neurons, or the sensor);
    ``pool`` sums ``pool x pool`` blocks of it into ``in_shape`` (1: no pooling; rows or
    columns beyond ``in_shape * pool`` are dropped, as AveragePool without ceil_mode does);
    ``weight`` is ``[Cout, Cin, kh, kw]`` (conv) or ``[Nout, Nin]`` (dense, inputs in the
    C, H, W order of ``in_shape``), with the pooling's ``1/pool²`` already folded in.
    ``neuron`` None: the layer accumulates its input current (a readout without neuron);
    ``form`` is the neuron's event-driven form (what the kernels run).
    """

    op: str
    name: str
    src_shape: tuple[int, int, int]
    pool: int
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int] = (0, 0)  # top, left (bottom and right only set out_shape)
    neuron: NeuronSpec | None = None
    node: str = ""  # the snn node's name ("" for none)
    form: EventForm | None = None

    @property
    def size(self) -> int:
        return math.prod(self.out_shape)  # not np.prod: read per result, 0.2 µs against 5


def _attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _refuse(node: onnx.NodeProto, why: str) -> ModelError:
    return ModelError(
        f"node {node.name or node.op_type!r} ({node.op_type}): {why}; the event engine runs "
        f"feed-forward chains of {', '.join(SUPPORTED_OPS)}"
    )


def _check_bias(node: onnx.NodeProto, bias: np.ndarray) -> None:
    if np.any(bias != 0):
        raise BiasError(
            f"node {node.name or node.op_type!r} ({node.op_type}) has a non-zero bias (max |b| = "
            f"{float(np.abs(bias).max()):.4g}); an event-driven network has no clock to inject a constant "
            "current per step, so the event engine refuses it. Train without biases (trainer: --no-bias "
            "--norm none) for event-driven deployment"
        )


def _fold(w: np.ndarray, pool: int) -> np.ndarray:
    """avg pool then linear == sum pool then linear with weights / k² (in float64, stored float32)."""
    return (w / pool**2).astype(np.float32)


def _conv(node: onnx.NodeProto, w: np.ndarray, shape: tuple[int, int, int]) -> tuple:
    a = _attrs(node)
    if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise _refuse(node, "grouped or dilated convolution is not supported")
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise _refuse(node, f"auto_pad {a['auto_pad']!r} is not supported (explicit pads only)")
    if w.ndim != 4 or w.shape[1] != shape[0]:
        raise _refuse(node, f"weight shape {list(w.shape)} does not fit input channels {shape[0]}")
    kh, kw = w.shape[2:]
    sh, sw = a.get("strides", [1, 1])
    pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
    if sh < 1 or sw < 1 or min(pt, pl, pb, pr) < 0:
        raise _refuse(node, f"strides {[sh, sw]} and pads {[pt, pl, pb, pr]}: expected strides >= 1, pads >= 0")
    ho = (shape[1] + pt + pb - kh) // sh + 1
    wo = (shape[2] + pl + pr - kw) // sw + 1
    if ho <= 0 or wo <= 0:
        raise _refuse(node, f"output would be empty for input {list(shape)}")
    return (w.shape[0], ho, wo), (sh, sw), (pt, pl)


def lower(model: onnx.ModelProto, proto: Protocol) -> list[Layer]:
    """The layer list of ``model``, or :class:`ModelError` saying why it cannot run per event."""
    if proto.input_kind != "event-frames":
        raise ModelError(
            f"this model takes {proto.input_kind!r} inputs (static images or recorded sequences); the event engine "
            "runs models trained on event streams (input kind 'event-frames')"
        )
    if proto.uses_t:
        raise ModelError(
            "this model's step depends on the step index t; an event-driven network has no "
            "step index, so the event engine cannot run it"
        )
    if len(proto.input_shape) != 3:
        raise ModelError(f"input shape {list(proto.input_shape)}: expected (polarities, height, width)")
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in g.initializer}
    specs = {n.node: n.spec for n in proto.neurons}
    layers: list[Layer] = []
    cur, shape = "x", tuple(proto.input_shape)  # current tensor and its (C, H, W)
    pool, flat = 1, False  # pending sum pool and flatten on `cur`
    pending: dict | None = None  # a synaptic op waiting for its neuron

    def close(neuron: NeuronSpec | None, node: str) -> None:
        nonlocal pending
        form = None
        if neuron is not None:
            try:
                form = kind_of(neuron.kind).event_form(neuron)
            except EventFormError as e:
                raise NeuronFormError(f"neuron node {node!r}: {e}") from None
        assert pending is not None  # every caller checks first
        layers.append(Layer(**pending, neuron=neuron, node=node, form=form))
        pending = None

    for node in g.node:
        if node.op_type == "Constant":
            continue
        data = [i for i in node.input if i and i not in inits]
        if node.domain == SNN_DOMAIN:
            data = data[:1]  # (current, *state): the states are the neuron's own
        if data != [cur]:
            raise _refuse(node, f"reads {data}, expected only the previous tensor {cur!r} (not a chain)")
        op = node.op_type
        if node.domain == SNN_DOMAIN:
            if pending is None or op not in kinds():
                raise _refuse(node, "a neuron must follow a synaptic op (Conv, Gemm, MatMul)")
            close(specs[node.name], node.name)
        elif op in ("Conv", "Gemm", "MatMul"):
            if pending is not None:
                close(None, "")  # two synaptic ops in a row: the first one feeds no neuron
            w = inits.get(node.input[1] if op != "MatMul" or node.input[0] == cur else node.input[0])
            if w is None:
                raise _refuse(node, "the weight must be an initializer")
            if not np.isfinite(w).all():
                raise _refuse(node, "the weights hold NaN or infinite values (a damaged file?)")
            in_shape = (shape[0], shape[1] // pool, shape[2] // pool)
            if op == "Conv":
                if flat:
                    raise _refuse(node, "a convolution after a flatten is not supported")
                if len(node.input) > 2 and node.input[2]:
                    _check_bias(node, inits[node.input[2]])
                out_shape, stride, pads = _conv(node, w, in_shape)
                kind, geometry = "conv", dict(stride=stride, pads=pads)
            else:
                a = _attrs(node)
                if op == "Gemm":
                    if a.get("transA", 0):
                        raise _refuse(node, "transA = 1 is not supported")
                    if len(node.input) > 2 and node.input[2]:
                        _check_bias(node, a.get("beta", 1.0) * inits[node.input[2]])
                    w = a.get("alpha", 1.0) * (w if a.get("transB", 0) else w.T)
                else:
                    w = w.T  # MatMul: x [B, Nin] @ W [Nin, Nout]
                n_in = int(np.prod(in_shape))
                if w.ndim != 2 or w.shape[1] != n_in:
                    raise _refuse(node, f"weight shape {list(w.shape)} does not fit {n_in} inputs")
                kind, out_shape, geometry = "dense", (w.shape[0], 1, 1), {}
            pending = dict(
                op=kind,
                name=node.name,
                src_shape=shape,
                pool=pool,
                in_shape=in_shape,
                out_shape=out_shape,
                weight=_fold(w, pool),
                **geometry,
            )
            shape, pool, flat = out_shape, 1, False
        elif op == "Add":
            b = [inits[i] for i in node.input if i in inits]
            if pending is None or len(b) != 1:
                raise _refuse(node, "an Add is supported only as the bias of a synaptic op")
            _check_bias(node, b[0])
        elif op == "AveragePool":
            a = _attrs(node)
            k = a.get("kernel_shape", [])
            if (
                len(k) != 2
                or k[0] != k[1]
                or list(a.get("strides", k)) != list(k)
                or any(a.get("pads", [0, 0, 0, 0]))
                or a.get("ceil_mode", 0)
                or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID")
            ):
                raise _refuse(node, f"only square pooling with stride == kernel and no padding is supported, got {a}")
            if pending is not None:
                close(None, "")
            if flat:
                raise _refuse(node, "pooling after a flatten is not supported")
            pool *= k[0]  # floor(floor(y / a) / b) == floor(y / ab): consecutive pools compose
            if shape[1] // pool == 0 or shape[2] // pool == 0:
                raise _refuse(node, f"pooling by {pool} empties the {list(shape)} input")
        elif op in ("Flatten", "Reshape"):
            if op == "Flatten" and _attrs(node).get("axis", 1) != 1:
                raise _refuse(node, "only Flatten with axis 1 is supported")
            if op == "Reshape" and inits[node.input[1]].size != 2:
                raise _refuse(node, "only a Reshape to [batch, features] is supported")
            if pending is not None:
                close(None, "")
            flat = True
        elif op != "Identity":
            raise _refuse(node, "op not supported")
        cur = node.output[0]  # a neuron's first output: spikes (or the LI membrane)
    if pending is not None:
        close(None, "")
    if cur != "y":
        raise ModelError(f"the chain of ops ends at {cur!r}, not at the graph output 'y'")
    if pool != 1 or not layers:
        raise ModelError("the model must end with a synaptic layer (the readout)")
    if layers[-1].size != proto.num_classes:
        raise ModelError(
            f"the readout has {layers[-1].size} outputs but the metadata names {proto.num_classes} classes"
        )
    for L in layers[:-1]:
        if L.form is None or not L.form.spiking:
            raise ModelError(
                f"layer {L.name!r} feeds the next layer without spiking neurons; in an event-driven "
                "network only spikes travel between layers"
            )
    return layers
