"""Tiny protocol-compliant ONNX models built by hand (docs/onnx_protocol.md), so the
runtime tests do not depend on the exporter or torch."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.integrity import stamp_onnx
from runtime.neuron import NeuronSpec, kind_of
from runtime.neuron.functions import attributes
from runtime.neuron.functions import function as product_function

OPSETS = [helper.make_opsetid("", 18), helper.make_opsetid("snn", 1)]
ATTRS = ["decay", "v_th", "reset", "spike", "v_min", "dt"]


def _const(out: str, attr: str) -> onnx.NodeProto:
    node = helper.make_node("Constant", [], [out])
    a = onnx.AttributeProto()
    a.name, a.ref_attr_name, a.type = "value_float", attr, onnx.AttributeProto.FLOAT
    node.attribute.append(a)
    return node


def overload(spec: NeuronSpec) -> str:
    if not spec.spiking:
        return "li"
    return f"{spec.spike}_{spec.reset}" + ("_clamp" if spec.v_min != -math.inf else "")


DURATION_US = 300000.0  # the recording span of the event-frame fixtures (digits)
SECOND_WRITER_KINDS = ("LIF", "IF", "LI")  # the kinds neuron_function writes


def neuron_function(spec: NeuronSpec) -> onnx.FunctionProto:
    """Body of ``snn::{kind}`` for the variant of ``spec``, in standard ONNX ops."""
    n = [
        _const("decay", "decay"),
        helper.make_node("Mul", ["decay", "u_prev"], ["du"]),
        helper.make_node("Add", ["du", "current"], ["v"]),
    ]
    if not spec.spiking:
        n += [helper.make_node("Identity", ["v"], ["out"]), helper.make_node("Identity", ["v"], ["u"])]
    else:
        n += [_const("v_th", "v_th"), helper.make_node("GreaterOrEqual", ["v", "v_th"], ["ge"])]
        if spec.spike == "single":
            n.append(helper.make_node("Cast", ["ge"], ["out"], to=TensorProto.FLOAT))
        else:
            n += [
                helper.make_node("Div", ["v", "v_th"], ["q"]),
                helper.make_node("Floor", ["q"], ["fq"]),
                helper.make_node("Constant", [], ["zero"], value_float=0.0),
                helper.make_node("Where", ["ge", "fq", "zero"], ["out"]),
            ]
        last = "u" if spec.v_min == -math.inf else "ur"
        if spec.reset == "subtract":
            n += [helper.make_node("Mul", ["v_th", "out"], ["vs"]), helper.make_node("Sub", ["v", "vs"], [last])]
        else:
            n += [
                helper.make_node("Constant", [], ["z0"], value_float=0.0),
                helper.make_node("Equal", ["out", "z0"], ["quiet"]),
                helper.make_node("Cast", ["quiet"], ["keep"], to=TensorProto.FLOAT),
                helper.make_node("Mul", ["v", "keep"], [last]),
            ]
        if spec.v_min != -math.inf:
            n += [_const("v_min", "v_min"), helper.make_node("Max", ["ur", "v_min"], ["u"])]
    return helper.make_function(
        "snn",
        spec.kind,
        ["current", "u_prev"],
        ["out", "u"],
        n,
        [helper.make_opsetid("", 18)],
        attributes=ATTRS,
        overload=overload(spec),
    )


def neuron_node(name: str, spec: NeuronSpec, current: str, u_prev: str, out: str, u: str) -> onnx.NodeProto:
    node = helper.make_node(
        spec.kind,
        [current, u_prev],
        [out, u],
        name=name,
        domain="snn",
        decay=spec.decay,
        v_th=spec.v_th,
        reset=spec.reset,
        spike=spec.spike,
        v_min=spec.v_min,
        dt=spec.dt,
    )
    node.overload = overload(spec)
    return node


def protocol_model(
    name: str,
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    functions: list[onnx.FunctionProto],
    states: list[dict],
    neurons: list[dict],
    *,
    in_shape: list[int],
    classes: int,
    T: int,
    duration_us: float,
    kind: str = "event-frames",
    method: str = "mtt",
    readout: str = "mean",
    uses_t: bool = False,
) -> onnx.ModelProto:
    """The model of a graph ``x [, t], states -> y, states_out`` (batch dimension "batch"),
    with the flexsnn metadata of docs/onnx_protocol.md (equal binning, dt = duration / T)."""
    B, f32 = "batch", TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("x", f32, [B, *in_shape])]
    if uses_t:
        inputs.append(helper.make_tensor_value_info("t", TensorProto.INT64, []))
    inputs += [helper.make_tensor_value_info(s["name"], f32, [B, *s["shape"]]) for s in states]
    outputs = [helper.make_tensor_value_info("y", f32, [B, classes])]
    outputs += [helper.make_tensor_value_info(s["name"] + "_out", f32, [B, *s["shape"]]) for s in states]
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=OPSETS, functions=functions, ir_version=10)
    meta = {
        "format": "flexsnn-onnx/1",
        "model": name,
        "method": method,
        "input": {
            "kind": kind,
            "shape": list(in_shape),
            "binning": "equal",
            "duration_us": duration_us,
            "dt_us": duration_us / T,
        },
        "uses_t": uses_t,
        "readout": readout,
        "T_trained": T,
        "T_range": [1, T],
        "classes": [str(i) for i in range(classes)],
        "states": states,
        "neurons": neurons,
    }
    helper.set_model_props(model, {"flexsnn.protocol": json.dumps(meta)})
    return model


def tiny_model(
    kind: str = "repeat",
    spec: NeuronSpec | None = None,
    readout: str = "mean",
    li: bool = False,
    classes: int = 10,  # as digits and digits:static
    channels: int = 4,
    size: int | None = None,
    seed: int = 0,
    uses_t: bool = False,
    T: int = 4,
) -> onnx.ModelProto:
    """x [B, C, size, size] (default: 1x8x8 images, or 2x20x20 events) -> Conv3x3 -> LIF ->
    AvgPool2 -> Flatten -> Gemm [-> LI] -> y."""
    spec = spec or NeuronSpec("LIF", 0.5, 1.0, "subtract", "single", -math.inf, 1.0)
    if kind != "repeat":  # one step is one bin of the recording: the neuron's dt is the protocol's dt_us
        spec = dataclasses.replace(spec, dt=DURATION_US / T)
    rng = np.random.default_rng(seed)
    c_in = 1 if kind == "repeat" else 2
    size = size or (8 if kind == "repeat" else 20)  # the shapes of digits:static and digits
    feat = channels * (size // 2) ** 2
    w1 = rng.normal(0, 1.2, (channels, c_in, 3, 3)).astype(np.float32)
    b1 = rng.normal(0.2, 0.2, channels).astype(np.float32)
    w2 = rng.normal(0, 0.6, (classes, feat)).astype(np.float32)
    b2 = np.zeros(classes, np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1])]
    if uses_t:  # a model whose step depends on t: the input is scaled by 1 / (t + 1)
        nodes += [
            helper.make_node("Cast", ["t"], ["tf"], to=TensorProto.FLOAT),
            helper.make_node("Constant", [], ["one"], value_float=1.0),
            helper.make_node("Add", ["tf", "one"], ["t1"]),
            helper.make_node("Div", ["c1", "t1"], ["c1t"]),
        ]
    current = "c1t" if uses_t else "c1"
    # this file's own LIF-family body and node: a second writer of those kinds; any other
    # kind (a one-state kind added later too) runs the product's body, never this LIF one
    if spec.kind in SECOND_WRITER_KINDS:
        layer = neuron_node("LIF_0", spec, current, "state_0", "s1", "state_0_out")
        names, function = ["state_0"], neuron_function(spec)
    else:  # a kind with more states: the product's body and attributes (runtime.neuron.functions)
        names = [f"state_0_{s}" for s in kind_of(spec.kind).states]
        outs = ["s1", *(f"{n}_out" for n in names)]
        layer = helper.make_node(spec.kind, [current, *names], outs, name="LIF_0", domain="snn", **attributes(spec))
        layer.overload = overload(spec)
        function = product_function(spec, 18)
    nodes += [
        layer,
        helper.make_node("AveragePool", ["s1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p1"], ["f1"], name="flat", axis=1),
        helper.make_node("Gemm", ["f1", "w2", "b2"], ["g" if li else "y"], name="fc", transB=1),
    ]
    states = [{"name": n, "shape": [channels, size, size], "node": "LIF_0"} for n in names]
    li_spec = NeuronSpec("LI", 0.8, 1.0, "subtract", "single", -math.inf, spec.dt)
    neurons = [{"node": "LIF_0", "op": spec.kind, "spec": spec.to_dict()}]
    functions = [function]
    if li:
        nodes.append(neuron_node("LI_1", li_spec, "g", "state_1", "y", "state_1_out"))
        states.append({"name": "state_1", "shape": [classes], "node": "LI_1"})
        neurons.append({"node": "LI_1", "op": "LI", "spec": li_spec.to_dict()})
        functions.append(neuron_function(li_spec))
    return protocol_model(
        "tiny",
        nodes,
        inits,
        functions,
        states,
        neurons,
        in_shape=[c_in, size, size],
        classes=classes,
        T=T,
        duration_us=DURATION_US,
        kind=kind,
        readout="last" if li else readout,
        uses_t=uses_t,
    )


def save(model: onnx.ModelProto, path: Path) -> str:
    """Written as the exporter writes: with the weight digest (runtime.integrity)."""
    onnx.save(stamp_onnx(model), str(path))
    return str(path)


def with_input(model: onnx.ModelProto, **fields: object) -> onnx.ModelProto:
    """``model`` with fields of its metadata's ``input`` changed, as if trained so: e.g.
    ``binning="fixed"`` (it sees the first T x dt µs of a recording) or
    ``durations="recording"`` (trained on each recording's own span)."""
    props = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(props["flexsnn.protocol"])
    meta["input"].update(fields)
    helper.set_model_props(model, {**props, "flexsnn.protocol": json.dumps(meta)})
    return model
