"""Bias-free chain models for the event engine, built by hand as the exporter writes them
(docs/onnx_protocol.md), and event streams with controlled timestamps."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

import runtime
from runtime.data.events import bin_events, make_events
from runtime.event import EventEngine, load_event, spike_difference
from runtime.event.metrics import stack_counts
from runtime.event.reference import run_reference
from runtime.neuron import NeuronSpec

from .runtime_fixtures import neuron_function, neuron_node, protocol_model


def spec(
    kind: str = "IF",
    spike: str = "multi",
    reset: str = "subtract",
    decay: float = 1.0,
    v_th: float = 1.0,
    v_min: float = -math.inf,
    dt: float = 10_000.0,
) -> NeuronSpec:
    return NeuronSpec(kind, decay if kind != "IF" else 1.0, v_th, reset, spike, v_min, dt)


def weights(rng: np.random.Generator, shape: tuple[int, ...], scale: float, dyadic: bool) -> np.ndarray:
    """Normal weights; ``dyadic``: rounded to multiples of 1/16, so float sums are exact in
    any order (the clock-driven, event-driven and reference runs then agree bit for bit)."""
    w = rng.normal(0.0, scale, shape)
    return (np.round(w * 16) / 16 if dyadic else w).astype(np.float32)


def chain_model(
    neuron: NeuronSpec | None = None,
    sensor: tuple[int, int, int] = (2, 12, 12),
    channels: tuple[int, ...] = (4, 6),
    classes: int = 3,
    readout: str = "none",
    seed: int = 0,
    scale: float = 0.6,
    dyadic: bool = True,
    T: int | None = None,
    duration_us: float = 100_000.0,
    conv_bias: float = 0.0,
    stride: int = 1,
    fc: np.ndarray | None = None,
    li_decay: float = 0.8,
) -> onnx.ModelProto:
    """sensor -> [Conv3x3 (pad 1, ``stride``) -> neuron -> AvgPool2] per entry of ``channels``
    -> Flatten -> Gemm (weights ``fc`` if given) -> readout: "none" (y = the Gemm), "li"
    (an LI neuron of decay ``li_decay`` per step) or "spike" (the hidden neuron type). One
    step is one bin of the recording, as the protocol requires: ``T`` None steps by the
    neuron's ``dt`` (T = duration / dt); a given ``T`` sets the neuron's ``dt`` to duration / T."""
    neuron = neuron or spec()
    if T is None:
        T = round(duration_us / neuron.dt)
        assert T >= 1 and math.isclose(T * neuron.dt, duration_us), (duration_us, neuron.dt)
    neuron = dataclasses.replace(neuron, dt=duration_us / T)
    rng = np.random.default_rng(seed)
    c, h, w = sensor
    nodes, inits, states, neurons, functions = [], [], [], [], {}
    cur = "x"

    def add_neuron(sp: NeuronSpec, shape: list[int], out: str) -> str:
        i = len(states)
        name = f"{sp.kind}_{i}"
        nodes.append(neuron_node(name, sp, cur, f"state_{i}", out, f"state_{i}_out"))
        states.append({"name": f"state_{i}", "shape": shape, "node": name})
        neurons.append({"node": name, "op": sp.kind, "spec": sp.to_dict()})
        functions[(sp.kind, sp.spike, sp.reset, sp.v_min)] = neuron_function(sp)
        return out

    for i, co in enumerate(channels):
        inits.append(numpy_helper.from_array(weights(rng, (co, c, 3, 3), scale, dyadic), f"w{i}"))
        ins = ["x" if i == 0 else cur, f"w{i}"]
        if conv_bias:
            inits.append(numpy_helper.from_array(np.full(co, conv_bias, np.float32), f"b{i}"))
            ins.append(f"b{i}")
        nodes.append(
            helper.make_node("Conv", ins, [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1], strides=[stride, stride])
        )
        cur = f"c{i}"
        h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
        cur = add_neuron(neuron, [co, h, w], f"s{i}")
        nodes.append(
            helper.make_node("AveragePool", [cur], [f"p{i}"], name=f"pool{i}", kernel_shape=[2, 2], strides=[2, 2])
        )
        cur, c, h, w = f"p{i}", co, h // 2, w // 2
    nodes.append(helper.make_node("Flatten", [cur], ["f"], name="flat", axis=1))
    wfc = weights(rng, (classes, c * h * w), scale, dyadic) if fc is None else fc.astype(np.float32)
    inits.append(numpy_helper.from_array(wfc, "wfc"))
    last = "y" if readout == "none" else "g"
    nodes.append(helper.make_node("Gemm", ["f", "wfc"], [last], name="fc", transB=1))
    cur = last
    if readout == "li":
        add_neuron(spec("LI", decay=li_decay, dt=neuron.dt), [classes], "y")
    elif readout == "spike":
        add_neuron(neuron, [classes], "y")
    return protocol_model(
        "chain",
        nodes,
        inits,
        list(functions.values()),
        states,
        neurons,
        in_shape=list(sensor),
        classes=classes,
        T=T,
        duration_us=duration_us,
        method="sdt",
        readout={"none": "mean", "li": "last", "spike": "count"}[readout],
    )


def run_matching_reference(eng: EventEngine, stream: np.ndarray, active: int = 50) -> tuple:
    """``eng.run(stream)`` checked against the plain-Python loop: the same spike counts in
    every layer and the same outputs; the net must fire more than ``active`` spikes (else
    the check says little). Returns ``(result, train, reference)``."""
    res, train = eng.run(stream)
    ref = run_reference(eng.layers, stream)
    assert sum(int(c.sum()) for c in res.neuron_counts.values()) > active
    for node in ref.neuron_counts:
        np.testing.assert_array_equal(res.neuron_counts[node], ref.neuron_counts[node])
    np.testing.assert_allclose(res.outputs, ref.outputs, rtol=0, atol=1e-12)
    return res, train, ref


def random_stream(
    n: int,
    sensor: tuple[int, int, int] = (2, 12, 12),
    duration_us: int = 100_000,
    seed: int = 0,
    unique_t: bool = False,
) -> np.ndarray:
    """``n`` uniform events; ``unique_t``: all timestamps distinct (no two events share a bin
    of 1 µs), else some collide (simultaneous events)."""
    rng = np.random.default_rng(seed)
    c, h, w = sensor
    t = rng.choice(duration_us, n, replace=False) if unique_t else rng.integers(0, duration_us // 8, n) * 8
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, c, n), t)


def finer_bin_sds(
    model_at: Callable[[float], Path],
    stream: np.ndarray,
    duration: int,
    dts: Sequence[float],
    until: float | None = None,
) -> list[float]:
    """Spike difference, per bin width in ``dts``, of the clock-driven run of ``model_at(dt)``
    (the same neuron stepped at ``dt`` µs; fixed bins over ``[0, duration)``) to the
    event-driven run (of the first model: the event form does not depend on the bin width;
    ``until`` as in ``EventEngine.run``)."""
    sds, event_counts = [], None
    for dt in dts:
        path = model_at(dt)
        if event_counts is None:
            event_counts = load_event(path).run(stream, until=until)[0].neuron_counts
            assert sum(int(c.sum()) for c in event_counts.values()) > 10, "too few spikes for a real check"
        sess = runtime.load(path, threads=1)
        T = math.ceil(duration / dt)
        frames = bin_events([stream], T, sess.protocol.input_shape, "fixed", dt)
        clock = {k: v[0] for k, v in sess.run(frames, T, neuron_counts=True).neuron_counts.items()}
        nodes = list(event_counts)
        sds.append(float(spike_difference(stack_counts(clock, nodes, 0), stack_counts(event_counts, nodes, 0))))
    return sds
