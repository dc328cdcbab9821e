"""The quantised network run on the event-driven engine with the chip's semantics.

The quantised network is written as an in-memory model in the ONNX protocol (every layer a
``Conv`` with the integer chip weights, ``snn::IF`` nodes with the integer threshold and
lower clamp, multi-spike, subtract reset; sum pooling as ``AveragePool`` with the ``k²``
multiplied into the next weights, which the engine's lowering divides out exactly), so the
engine runs it through its public entry point, as it runs any exported file.

Chip semantics: the chip handles one input event at a time, while the engine treats
events with one timestamp as simultaneous (one wave). IF neurons do not leak, so time
itself does not matter, only order: :func:`serial` gives every event its own timestamp
(stream order), which makes each one its own wave. The membrane's lower limit is the
quantised clamp (``-2^15`` when none is set); the upper 16-bit limit is not modelled (a
multi-spike subtract neuron stays below its threshold after every event).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.event import EventEngine, EventResult, load_event
from runtime.event.metrics import spike_difference, stack_counts
from runtime.neuron import functions as fn
from runtime.protocol import NeuronInfo, Protocol, StateInfo, store_protocol

from .convert import chip_neuron, pair_classes, predict
from .quantize import QuantNet, float_twin

OPSET = 18


def quantized_model(qnet: QuantNet) -> tuple[onnx.ModelProto, Protocol]:
    """The quantised network as a one-step protocol graph (no function bodies: it is for
    the event engine, which reads the ``snn`` node attributes, not for onnxruntime)."""
    net = qnet.net
    nodes, inits, states, neurons = [], [], [], []
    cur, pool = "x", net.input_pool
    for i, (L, q) in enumerate(zip(net.layers, qnet.layers)):
        if pool > 1:
            nodes.append(
                helper.make_node(
                    "AveragePool", [cur], [f"pool{i}"], kernel_shape=[pool, pool], strides=[pool, pool], name=f"pool{i}"
                )
            )
            cur = f"pool{i}"
        s = L.shape
        # the engine folds AveragePool's 1/k² into these weights: multiply it out (exact, k² = 4 or 16)
        w = q.weight.astype(np.float32) * pool * pool
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(
            helper.make_node(
                "Conv",
                [cur, f"w{i}"],
                [f"cur{i}"],
                name=L.name,
                kernel_shape=list(s.kernel),
                strides=list(s.stride),
                pads=[*s.padding, *s.padding],
            )
        )
        node = q.node or f"{L.name}_IF"
        spec = chip_neuron(float(q.threshold), float(q.v_min), L.neuron.dt)
        n = helper.make_node(
            spec.kind,  # the chip's neuron (chip_neuron): its op type is its kind's name
            [f"cur{i}", f"state_{i}"],
            [f"spk{i}", f"state_{i}_out"],
            name=node,
            domain=fn.DOMAIN,
            # mypy checks the spread against make_node's doc_string/overload too; the spec's
            # fields are none of those (they go to **kwargs, the node's attributes)
            **fn.attributes(spec),  # type: ignore[arg-type]
        )
        n.overload = fn.overload(spec)
        nodes.append(n)
        states.append(StateInfo(f"state_{i}", (s.c_out, *s.out_size), node))
        neurons.append(NeuronInfo(node, spec, (f"state_{i}",)))
        cur, pool = f"spk{i}", s.pool[0]
    nodes.append(helper.make_node("Flatten", [cur], ["y"], axis=1, name="readout_flatten"))
    p = net.protocol
    # a signed-pair readout has two output channels per class (convert.predict reads them)
    classes = pair_classes(p.classes) if net.readout_pairs else list(p.classes)
    proto = replace(
        p,
        model=f"{p.model} (Speck, quantised)",
        uses_t=False,
        readout="count",
        classes=tuple(classes),
        states=tuple(states),
        neurons=tuple(neurons),
        max_steps=None,
        exit_policy=None,
        exit_record=None,
    )
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "speck_quantized",
        [helper.make_tensor_value_info("x", f32, ["batch", *p.input_shape])]
        + [helper.make_tensor_value_info(st.name, f32, ["batch", *st.shape]) for st in states],
        [helper.make_tensor_value_info("y", f32, ["batch", len(classes)])]
        + [helper.make_tensor_value_info(f"{st.name}_out", f32, ["batch", *st.shape]) for st in states],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("snn", 1)])
    store_protocol(model, proto)
    return model, proto


def chip_engine(qnet: QuantNet) -> EventEngine:
    model, proto = quantized_model(qnet)
    return EventEngine(model, proto, "(quantised, in memory)")


def serial(streams: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each event its own timestamp (its index), in stream order: one event per wave."""
    out = []
    for s in streams:
        s = s.copy()
        s["t"] = np.arange(len(s), dtype=s["t"].dtype)
        out.append(s)
    return out


def _sd(ref: EventResult, other: EventResult, layers: list[str]) -> dict[str, float]:
    """Mean spike difference (``ref`` counts as reference) per layer and over all of them."""
    out = {
        n: float(
            np.mean(spike_difference(stack_counts(ref.neuron_counts, [n]), stack_counts(other.neuron_counts, [n])))
        )
        for n in layers
    }
    out["all"] = float(
        np.mean(spike_difference(stack_counts(ref.neuron_counts, layers), stack_counts(other.neuron_counts, layers)))
    )
    return out


@dataclass
class Emulation:
    """Per-sample results on the same events of the chip emulation, of the float model, and
    of the chip's form in float (``twin``: same layers, readout IF neurons and thresholds,
    weights not rounded), which separates what quantisation costs from what the spiking
    readout costs."""

    chip: EventResult
    float_: EventResult
    twin: EventResult
    in_both: list[str]  # spiking layers both nets have (a readout of IF pairs differs in kind)
    layers: list[str]  # every spiking layer of the chip's form, the readout included

    def sd(self) -> dict[str, float]:
        """Spike difference chip vs float model, per layer that spikes in both (the hidden
        layers, and a readout of spiking neurons) and over all of them."""
        return _sd(self.float_, self.chip, self.in_both)

    def sd_quantisation(self) -> dict[str, float]:
        """Spike difference chip vs its float twin, per layer including the readout: what
        8-bit weights move, including the spikes the prediction is read from."""
        return _sd(self.twin, self.chip, self.layers)


def emulate(qnet: QuantNet, model_path: str, streams: Sequence[np.ndarray], chip_order: bool = True) -> Emulation:
    """Run the quantised net and the float model (both event-driven) on ``streams``;
    ``chip_order``: one event at a time, as the chip (else events of one timestamp together)."""
    streams = serial(streams) if chip_order else list(streams)
    float_engine = load_event(model_path)
    pairs = qnet.net.readout_pairs
    chip, twin = (chip_engine(q).run_batch(streams) for q in (qnet, float_twin(qnet)))
    chip.predictions, twin.predictions = predict(chip.outputs, pairs), predict(twin.outputs, pairs)
    ref = float_engine.run_batch(streams)
    in_both = [n for n in ref.neuron_counts if n in chip.neuron_counts]
    return Emulation(chip, ref, twin, in_both, list(chip.neuron_counts))
