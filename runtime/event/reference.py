"""The plain-Python event loop: the same semantics as :mod:`.kernel`, written as directly
as possible (ONNX layouts, one membrane and one last-update time per neuron, dicts and
loops), as the exactness reference in tests and the slow baseline in the benchmark."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .graph import Layer


@dataclass
class ReferenceResult:
    outputs: np.ndarray  # as EventResult.outputs
    neuron_counts: dict[str, np.ndarray]  # spiking layers: per-neuron spikes (C, H, W)
    trains: dict[str, list[tuple[int, int, int]]]  # spiking layers: (t, neuron, count)
    synops: int


def _targets(L: Layer, c: int, yi: int, xi: int) -> list[tuple[int, float]]:
    """(output neuron in C, H, W order, weight) reached by a spike at input (c, yi, xi)."""
    co, ho, wo = L.out_shape
    if L.op == "dense":
        _, hi, wi = L.in_shape
        col = (c * hi + yi) * wi + xi
        return [(o, float(L.weight[o, col])) for o in range(co)]
    out = []
    kh, kw = L.weight.shape[2:]
    for o in range(co):
        for ky in range(kh):
            for kx in range(kw):
                yy, xx = yi + L.pads[0] - ky, xi + L.pads[1] - kx  # output Y * stride + ky - pad = yi
                if yy < 0 or xx < 0 or yy % L.stride[0] or xx % L.stride[1]:
                    continue
                Y, X = yy // L.stride[0], xx // L.stride[1]
                if Y < ho and X < wo:
                    out.append(((o * ho + Y) * wo + X, float(L.weight[o, c, ky, kx])))
    return out


def run_reference(layers: Sequence[Layer], stream: np.ndarray) -> ReferenceResult:
    """Run one whole (valid, sorted) stream through ``layers``."""
    v = [[0.0] * L.size for L in layers]
    a = [[0.0] * L.size for L in layers]  # adaptive-threshold increments (ALIF)
    t_last = [[0.0] * L.size for L in layers]
    counts = [[0] * L.size for L in layers]
    trains: list[list] = [[] for _ in layers]
    synops = 0
    events = [(int(e["t"]), int(e["p"]), int(e["y"]), int(e["x"])) for e in stream]
    _, H0, W0 = layers[0].src_shape
    i = 0
    while i < len(events):
        t = events[i][0]
        spikes: list[tuple[int, float]] = []  # (source neuron in C, H, W order, count)
        while i < len(events) and events[i][0] == t:
            _, p, y, x = events[i]
            spikes.append(((p * H0 + y) * W0 + x, 1.0))
            i += 1
        for li, L in enumerate(layers):
            _, hs, ws = L.src_shape
            inv_tau = 0.0 if L.form is None else L.form.inv_tau
            inv_tau_a = 0.0 if L.form is None else L.form.inv_tau_adapt
            touched: dict[int, None] = {}
            for src, n in spikes:
                c, rem = divmod(src, hs * ws)
                yi, xi = (rem // ws) // L.pool, (rem % ws) // L.pool
                if yi >= L.in_shape[1] or xi >= L.in_shape[2]:
                    continue
                for j, w in _targets(L, c, yi, xi):
                    if j not in touched:
                        touched[j] = None
                        if inv_tau > 0.0:  # v(t) = v(t_last) * exp(-(t - t_last) / tau)
                            v[li][j] *= math.exp(-(t - t_last[li][j]) * inv_tau)
                        if inv_tau_a > 0.0:  # a(t) = a(t_last) * exp(-(t - t_last) / tau_adapt)
                            a[li][j] *= math.exp(-(t - t_last[li][j]) * inv_tau_a)
                        t_last[li][j] = t
                    v[li][j] += n * w
                    synops += 1
            spikes = []
            if L.form is None or not L.form.spiking:
                continue
            spec = L.form
            for j in touched:
                u = v[li][j]
                th = spec.v_th + a[li][j] if spec.beta > 0.0 else spec.v_th
                if u >= th:
                    s = math.floor(u / th) if spec.spike == "multi" else 1
                    u = 0.0 if spec.reset == "zero" else u - th * s
                    spikes.append((j, float(s)))
                    counts[li][j] += s
                    trains[li].append((t, j, s))
                    a[li][j] += spec.beta * s
                v[li][j] = max(u, spec.v_min)
    last = layers[-1]
    spiking_out = last.form is not None and last.form.spiking
    out = np.array(counts[-1] if spiking_out else v[-1], np.float64)
    spiking = [i for i, L in enumerate(layers) if L.form is not None and L.form.spiking]
    return ReferenceResult(
        out,
        {layers[i].node: np.array(counts[i]).reshape(layers[i].out_shape) for i in spiking},
        {layers[i].node: trains[i] for i in spiking},
        synops,
    )
