"""The spike, reset and clamp rules shared by the spiking kinds, in numpy and as ONNX nodes.

DESIGN.md §1, with ``theta`` the threshold (``v_th``, or the adaptive threshold of ALIF)::

    s = 1[v >= theta]                           spike "single"
      | floor(v / theta) if v >= theta else 0   spike "multi"
    u = v - theta * s                           reset "subtract"
      | v * (s == 0)                            reset "zero"
    u = max(u, v_min)                           lower clamp (v_min = -inf: none)

The numpy and ONNX forms apply the same operations in the same order with the same
float32 constants, so spikes and states agree bit for bit with torch (trainer.neurons).
"""

from __future__ import annotations

import math

import numpy as np
from onnx import AttributeProto, NodeProto, TensorProto, helper

from .base import NeuronSpec


def leak(factor: float, prev: np.ndarray, current: np.ndarray | float = 0.0) -> np.ndarray:
    """``factor * prev + current`` in the dtype of ``prev`` (the charge step of every kind:
    the float32 constant, then one multiply and one add, as torch and the ONNX bodies do)."""
    dtype = np.result_type(prev, current)
    return (dtype.type(factor) * prev + current).astype(dtype, copy=False)


def spike_reset(spec: NeuronSpec, v: np.ndarray, theta: np.ndarray | np.floating) -> tuple[np.ndarray, np.ndarray]:
    """``(s, u)`` from the charged membrane ``v`` and threshold ``theta``."""
    dtype = v.dtype
    if spec.spike == "single":
        s = (v >= theta).astype(dtype)
    else:
        s = np.where(v >= theta, np.floor(v / theta), dtype.type(0)).astype(dtype)
    if spec.reset == "subtract":
        u = (v - theta * s).astype(dtype, copy=False)
    else:
        u = v * (s == 0).astype(dtype)
    if spec.v_min != -math.inf:
        u = np.maximum(u, dtype.type(spec.v_min))
    return s, u


def variant(spec: NeuronSpec) -> str:
    """``{spike}_{reset}[_clamp]``: the part of an overload name the spike rules set."""
    return f"{spec.spike}_{spec.reset}" + ("_clamp" if spec.v_min != -math.inf else "")


def attr_const(out: str, attr: str) -> NodeProto:
    """A float scalar constant taken from the calling node's attribute ``attr``."""
    node = helper.make_node("Constant", [], [out])
    ref = AttributeProto()
    ref.name, ref.ref_attr_name, ref.type = "value_float", attr, AttributeProto.FLOAT
    node.attribute.append(ref)
    return node


def charge(decay_attr: str, prev: str, current: str, out: str) -> list[NodeProto]:
    """``out = decay * prev + current`` (the charge step of every kind)."""
    n = helper.make_node
    return [
        attr_const(f"{out}_decay", decay_attr),
        n("Mul", [f"{out}_decay", prev], [f"{out}_d"]),
        n("Add", [f"{out}_d", current], [out]),
    ]


def spike_reset_nodes(spec: NeuronSpec, v: str, theta: str, u: str) -> list[NodeProto]:
    """ONNX nodes for :func:`spike_reset`: ``v``, ``theta`` -> ``out`` (spikes), ``u``."""
    n = helper.make_node
    nodes = [n("GreaterOrEqual", [v, theta], ["fire"])]
    if spec.spike == "single":
        nodes.append(n("Cast", ["fire"], ["out"], to=TensorProto.FLOAT))
    else:  # floor(v / theta) where v >= theta, else 0
        nodes += [
            n("Div", [v, theta], ["q"]),
            n("Floor", ["q"], ["fq"]),
            n("Constant", [], ["zero"], value_float=0.0),
            n("Where", ["fire", "fq", "zero"], ["out"]),
        ]
    clamp = spec.v_min != -math.inf
    reset = "u_reset" if clamp else u
    if spec.reset == "subtract":
        nodes += [n("Mul", [theta, "out"], ["vs"]), n("Sub", [v, "vs"], [reset])]
    else:  # v * (s == 0); s == 0 exactly where v < theta
        nodes += [
            n("Not", ["fire"], ["quiet"]),
            n("Cast", ["quiet"], ["keep"], to=TensorProto.FLOAT),
            n("Mul", [v, "keep"], [reset]),
        ]
    if clamp:
        nodes += [attr_const("v_min", "v_min"), n("Max", ["u_reset", "v_min"], [u])]
    return nodes
