"""Small bias-free IF chains in the ONNX protocol, built by hand (no torch, no exporter),
with any layer shapes, so the Speck tests can hit every chip limit on purpose."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from runtime.neuron import NeuronSpec
from tests.runtime_fixtures import neuron_function, neuron_node, protocol_model

IF = NeuronSpec("IF", 1.0, 1.0, "subtract", "single", -math.inf, 10000.0)


@dataclass(frozen=True)
class Conv:
    c_out: int
    kernel: tuple[int, int] = (3, 3)
    stride: int = 1
    pad: int = 1
    pool: int = 1  # average pooling after the neurons (kernel == stride)


def chain_model(
    convs: Sequence[Conv],
    in_shape: tuple[int, int, int] = (2, 20, 20),
    classes: int = 4,
    bias: bool = False,
    extra: str | None = None,
    spec: NeuronSpec = IF,
    seed: int = 0,
    w_std: float = 0.5,
    spiking_readout: bool = False,
) -> onnx.ModelProto:
    """x -> [Conv -> IF -> AvgPool]* -> Flatten -> Gemm -> y (readout without neuron, mean;
    ``spiking_readout``: Gemm -> IF -> y, read as spike counts).
    ``extra``: an op type inserted after the first neuron (an unsupported layer)."""
    rng = np.random.default_rng(seed)
    nodes, inits, states, neurons = [], [], [], []
    cur, (c, h, w) = "x", in_shape
    for i, L in enumerate(convs):
        wt = rng.normal(0, w_std, (L.c_out, c, *L.kernel)).astype(np.float32)
        inits.append(numpy_helper.from_array(wt, f"w{i}"))
        ins = [cur, f"w{i}"]
        if bias:
            inits.append(numpy_helper.from_array(np.full(L.c_out, 0.1, np.float32), f"b{i}"))
            ins.append(f"b{i}")
        nodes.append(
            helper.make_node(
                "Conv",
                ins,
                [f"c{i}"],
                name=f"conv{i}",
                kernel_shape=list(L.kernel),
                strides=[L.stride] * 2,
                pads=[L.pad] * 4,
            )
        )
        h, w = (h + 2 * L.pad - L.kernel[0]) // L.stride + 1, (w + 2 * L.pad - L.kernel[1]) // L.stride + 1
        c = L.c_out
        nodes.append(neuron_node(f"IF_{i}", spec, f"c{i}", f"state_{i}", f"s{i}", f"state_{i}_out"))
        states.append({"name": f"state_{i}", "shape": [c, h, w], "node": f"IF_{i}"})
        neurons.append({"node": f"IF_{i}", "op": spec.kind, "spec": spec.to_dict()})
        cur = f"s{i}"
        if i == 0 and extra:
            nodes.append(helper.make_node(extra, [cur], [f"e{i}"], name=f"{extra.lower()}0"))
            cur = f"e{i}"
        if L.pool > 1:
            nodes.append(
                helper.make_node(
                    "AveragePool", [cur], [f"p{i}"], name=f"pool{i}", kernel_shape=[L.pool] * 2, strides=[L.pool] * 2
                )
            )
            cur, h, w = f"p{i}", h // L.pool, w // L.pool
    feat = c * h * w
    inits.append(numpy_helper.from_array(rng.normal(0, w_std, (classes, feat)).astype(np.float32), "wfc"))
    nodes += [
        helper.make_node("Flatten", [cur], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "wfc"], ["g" if spiking_readout else "y"], name="fc", transB=1),
    ]
    if spiking_readout:
        nodes.append(neuron_node("IF_fc", spec, "g", "state_fc", "y", "state_fc_out"))
        states.append({"name": "state_fc", "shape": [classes], "node": "IF_fc"})
        neurons.append({"node": "IF_fc", "op": spec.kind, "spec": spec.to_dict()})
    return protocol_model(
        "chain",
        nodes,
        inits,
        [neuron_function(spec)],
        states,
        neurons,
        in_shape=list(in_shape),
        classes=classes,
        T=4,
        duration_us=4 * spec.dt,  # one step is one bin: the neuron's dt
    )


def random_streams(
    n: int, shape: tuple[int, int, int], events: int = 300, duration_us: int = 40000, seed: int = 0
) -> list[np.ndarray]:
    from runtime.data import make_events

    rng = np.random.default_rng(seed)
    C, H, W = shape
    return [
        make_events(
            rng.integers(0, W, events),
            rng.integers(0, H, events),
            rng.integers(0, C, events),
            rng.integers(0, duration_us, events),
        )
        for _ in range(n)
    ]
