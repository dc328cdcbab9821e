"""Synaptic operations and the energy estimate of an inference (pure functions).

Each synaptic layer (Conv, Gemm, MatMul) has a dense cost ``macs`` per sample and step
(output elements x fan-in). What it costs in a spiking net depends on what feeds it,
found by walking back through shape-only and pooling ops:

* the model input of a ``repeat`` model (a static image): dense multiply-accumulates
  (MACs) at every step;
* a spiking neuron layer (or the event frames of an ``event-frames`` model):
  accumulates (ACs) only for the spikes that arrive: ``macs x (spikes / elements)``
  of that source, i.e. dense cost weighted by the measured spike rate;
* anything else (an Add of two paths, a normalisation before the layer): counted as
  dense MACs, an upper bound, so the estimate never flatters the model.

Energy: ``E = 4.6 pJ x MACs + 0.9 pJ x ACs`` (45 nm figures used in the SNN literature).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

from .protocol import DENSE_KINDS, SNN_DOMAIN, Protocol

E_MAC_PJ = 4.6
E_AC_PJ = 0.9
SYNAPTIC_OPS = ("Conv", "Gemm", "MatMul")
# Ops that move or average values without mixing sources: a spike rate passes through.
PASS_THROUGH = (
    "AveragePool",
    "MaxPool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Identity",
    "Transpose",
    "Dropout",
    "Pad",
    "Cast",
    "ReduceMean",
)
INPUT = "x"


@dataclass(frozen=True)
class SynapseLayer:
    """One synaptic layer: dense MACs per sample and step, and what feeds it.

    ``source`` is "x" (the model input), the name of a spiking snn node, or None (dense).
    ``per_step`` False: the layer runs once per input (the stem of an ``encode-once``
    model, inside the graph's ``If`` on t == 0), not at every step.
    """

    node: str
    op: str
    macs: int
    source: str | None
    per_step: bool = True


def data_input(node: onnx.NodeProto, initializers: set[str]) -> str:
    """The activation input of a synaptic node (MatMul may have the weight on either side)."""
    if node.op_type == "MatMul" and node.input[0] in initializers:
        return node.input[1]
    return node.input[0]


def fan_in(node: onnx.NodeProto, weights: Mapping[str, np.ndarray], in_shape: Sequence[int]) -> int:
    """Multiply-accumulates per output element."""
    if node.op_type == "Conv":
        w = weights.get(node.input[1])
        # weight [C_out, C_in / groups, k...]: without a constant weight, C_in and a
        # 1x1 kernel are the safe reading (groups 1)
        return int(np.prod(w.shape[1:])) if w is not None else int(in_shape[1])
    if node.op_type == "Gemm":
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        return int(in_shape[0] if trans_a else in_shape[-1])
    return int(in_shape[-1])  # MatMul: contraction over the last axis of the activation


def gathered_weight(
    name: str, producers: Mapping[str, onnx.NodeProto], weights: Mapping[str, np.ndarray]
) -> np.ndarray | None:
    """A weight chosen by the step index (``Gather`` of one slice of a stacked initializer,
    as in T-RevSNN graphs), walked back through shape-only ops: one slice, for its shape."""
    while (node := producers.get(name)) is not None:
        if node.op_type == "Gather" and node.input[0] in weights:
            return weights[node.input[0]][0]
        if node.op_type not in ("Squeeze", "Reshape", "Identity"):
            return None
        name = node.input[0]
    return None


def once_layers(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]) -> list[SynapseLayer]:
    """Synaptic layers inside an ``If`` (the encode-once stem): dense, once per input;
    ``shapes`` must hold the If's output (the layer's output: the branch returns it)."""
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    layers = []
    for node in model.graph.node:
        if node.op_type != "If" or node.output[0] not in shapes:
            continue
        branch = next(a.g for a in node.attribute if a.name == "then_branch")
        local = {**weights, **{i.name: numpy_helper.to_array(i) for i in branch.initializer}}
        for sub in branch.node:
            if sub.op_type == "Conv" and sub.input[1] in local:
                macs = int(np.prod(shapes[node.output[0]])) * int(np.prod(local[sub.input[1]].shape[1:]))
                layers.append(SynapseLayer(sub.name or sub.output[0], "Conv", macs, None, per_step=False))
    return layers


def trace_source(name: str, producers: Mapping[str, onnx.NodeProto], spiking: set[str]) -> str | None:
    """Walk back from value ``name`` through pass-through ops to the input or a spiking node."""
    while True:
        if name == INPUT:
            return INPUT
        node = producers.get(name)
        if node is None:
            return None
        if node.domain == SNN_DOMAIN:
            return node.name if node.name in spiking and name == node.output[0] else None
        if node.op_type not in PASS_THROUGH:
            return None
        name = node.input[0]


def synapse_layers(model: onnx.ModelProto, proto: Protocol, shapes: Mapping[str, Sequence[int]]) -> list[SynapseLayer]:
    """The synaptic layers of ``model``; ``shapes`` maps value names to their batch-1 shapes
    (measured by running one step), for every synaptic node's input and output."""
    g = model.graph
    weights = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    spiking = {n.node for n in proto.neurons if n.spec.spiking}
    layers = []
    for node in g.node:
        if node.op_type not in SYNAPTIC_OPS or node.domain not in ("", "ai.onnx"):
            continue
        src = data_input(node, set(weights))
        w = gathered_weight(node.input[1], producers, weights) if node.op_type == "Conv" else None
        macs = int(np.prod(shapes[node.output[0]])) * fan_in(
            node, {**weights, node.input[1]: w} if w is not None else weights, shapes[src]
        )
        source = trace_source(src, producers, spiking)
        if source == INPUT and proto.input_kind in DENSE_KINDS:
            source = None  # a static image or a sequence is a dense, non-spiking input
        layers.append(SynapseLayer(node.name or node.output[0], node.op_type, macs, source))
    return layers + once_layers(model, shapes)


def count_ops(
    layers: Sequence[SynapseLayer], steps: np.ndarray, spikes: Mapping[str, np.ndarray], elements: Mapping[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ``(MACs, ACs)`` of a run.

    ``steps[N]`` steps each sample ran; ``spikes[source][N]`` total spikes (or input events,
    under "x") each sample sent from that source over its steps; ``elements[source]`` the
    source's elements per sample (so ``spikes / (elements x steps)`` is its rate).
    """
    steps = np.asarray(steps, np.float64)
    macs = np.zeros_like(steps)
    acs = np.zeros_like(steps)
    for layer in layers:
        if layer.source is None:
            macs += layer.macs * (steps if layer.per_step else np.minimum(steps, 1))
        else:
            # dense cost x rate summed over steps = macs / elements x total spikes
            acs += layer.macs / elements[layer.source] * np.asarray(spikes[layer.source], np.float64)
    return macs, acs


@dataclass
class Cost:
    """Per-sample synaptic operations and their energy estimate (pJ, :func:`energy_pj`)."""

    macs: np.ndarray
    acs: np.ndarray
    energy_pj: np.ndarray

    def mean(self) -> dict[str, float]:
        return {
            "macs": float(self.macs.mean()),
            "acs": float(self.acs.mean()),
            "energy_uj": float(self.energy_pj.mean()) * 1e-6,
        }


def energy_pj(macs: npt.ArrayLike, acs: npt.ArrayLike) -> np.ndarray:
    return E_MAC_PJ * np.asarray(macs, np.float64) + E_AC_PJ * np.asarray(acs, np.float64)
