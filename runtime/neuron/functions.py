"""Neuron layers as ONNX: the ``snn`` node's attributes and its model-local function body.

Each neuron layer is one node ``snn::<kind>`` (docs/onnx_protocol.md) with inputs
``(current, *state_prev)`` and outputs ``(out, *state)``, state variables in the kind's
order. So that stock onnxruntime runs the file with no plugin, the model carries, per
(kind, overload) it uses, a FunctionProto whose body is standard ONNX ops from
:meth:`NeuronKind.onnx_body`. Attributes are read with ``ref_attr_name``, so one body
serves every layer of the same variant; one body per variant is much faster than
choosing the variant at run time with ``Where``.
"""

from __future__ import annotations

import math
from dataclasses import fields

from onnx import FunctionProto, helper

from .base import NeuronSpec, kind_of

DOMAIN = "snn"
DOMAIN_VERSION = 1


def attributes(spec: NeuronSpec) -> dict[str, float | str]:
    """Every field of the spec except ``kind`` (the op type) as a node attribute."""
    return {
        f.name: (float(v) if isinstance(v, float) else v)
        for f in fields(spec)
        if f.name != "kind"
        for v in [getattr(spec, f.name)]
    }


def spec_from_attributes(kind: str, attrs: dict[str, object]) -> NeuronSpec:
    """The spec an ``snn::<kind>`` node's attributes describe (strings may come as bytes)."""
    d: dict[str, object] = {"kind": kind}
    for k, v in attrs.items():
        d[k] = v.decode() if isinstance(v, bytes) else v
    if d.get("v_min") == -math.inf:
        d["v_min"] = "-inf"
    return NeuronSpec.from_dict(d)


def overload(spec: NeuronSpec) -> str:
    return kind_of(spec.kind).overload(spec)


def io_names(spec: NeuronSpec) -> tuple[list[str], list[str]]:
    """The function's input and output names: ``current, <s>_prev...`` and ``out, <s>...``."""
    states = kind_of(spec.kind).states
    return ["current", *(f"{s}_prev" for s in states)], ["out", *states]


def function(spec: NeuronSpec, onnx_opset: int) -> FunctionProto:
    """The FunctionProto for ``spec``'s op type and overload (ONNX opset ``onnx_opset``)."""
    kind = kind_of(spec.kind)
    inputs, outputs = io_names(spec)
    f = helper.make_function(
        DOMAIN,
        spec.kind,
        inputs,
        outputs,
        kind.onnx_body(spec),
        [helper.make_opsetid("", onnx_opset)],
        attributes=list(attributes(spec)),
    )
    f.overload = kind.overload(spec)
    # a reader of the file has the repository's docs, not the design notes beside it
    f.doc_string = f"flexsnn {spec.kind} neuron ({kind.doc}), variant {f.overload} (semantics: flexsnn docs/neurons.md)"
    return f
