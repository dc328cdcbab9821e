"""The plain-Python event loop: the same semantics as :mod:`.kernel`, written as directly
as possible (ONNX layouts, one membrane and one last-update time per neuron, dicts and
loops, a ``heapq`` of CubaLIF threshold crossings), as the exactness reference in tests
and the slow baseline in the benchmark. The continuous-time maths of CubaLIF is the
kernel's own (:func:`.kernel.flow`, :func:`.kernel.next_crossing`, shared so that both
round alike); the event order, the layouts and the state are written independently."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .graph import Layer
from .kernel import flow, next_crossing


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


def run_reference(layers: Sequence[Layer], stream: np.ndarray, until: float | None = None) -> ReferenceResult:
    """Run one whole (valid, sorted) stream through ``layers``; CubaLIF threshold crossings
    up to ``until`` µs (default, or if earlier: the last event's time), where an LI readout is read."""
    v = [[0.0] * L.size for L in layers]
    a = [[0.0] * L.size for L in layers]  # second state: ALIF's threshold increment, CubaLIF's current
    t_last = [[0.0] * L.size for L in layers]
    counts = [[0] * L.size for L in layers]
    trains: list[list] = [[] for _ in layers]
    crossing = [[math.inf] * L.size for L in layers]  # CubaLIF: next threshold crossing
    heap: list[tuple[float, int, int]] = []  # (time, layer, neuron); stale when crossing[][] moved
    synops = 0
    events = [(int(e["t"]), int(e["p"]), int(e["y"]), int(e["x"])) for e in stream]
    final = float(events[-1][0]) if events else 0.0
    end = final if until is None else max(final, float(until))  # as the engine: never before the last event
    _, H0, W0 = layers[0].src_shape

    def wave(first: int, t: float, spikes: list[tuple[int, float]]) -> None:
        """Spikes (source neuron in C, H, W order, count) into layer ``first`` at time t, on
        through the layers after it."""
        nonlocal synops
        for li in range(first, len(layers)):
            L = layers[li]
            _, hs, ws = L.src_shape
            form = L.form
            inv_tau = 0.0 if form is None else form.inv_tau
            inv_tau_a = 0.0 if form is None else form.inv_tau_adapt
            ls, charge = (0.0, 0.0) if form is None else (form.inv_tau_syn, form.charge)
            cuba = charge > 0.0
            touched: dict[int, None] = {}
            for src, n in spikes:
                c, rem = divmod(src, hs * ws)
                yi, xi = (rem // ws) // L.pool, (rem % ws) // L.pool
                if yi >= L.in_shape[1] or xi >= L.in_shape[2]:
                    continue
                for j, w in _targets(L, c, yi, xi):
                    if j not in touched:
                        touched[j] = None
                        if cuba and t_last[li][j] != t:  # both ODEs solved exactly (kernel.flow)
                            em, es, k = flow(t - t_last[li][j], inv_tau, ls, charge)
                            v[li][j] = em * v[li][j] + k * a[li][j]
                            a[li][j] = es * a[li][j]
                        if not cuba and inv_tau > 0.0:  # v(t) = v(t_last) * exp(-(t - t_last) / tau)
                            v[li][j] *= math.exp(-(t - t_last[li][j]) * inv_tau)
                        if inv_tau_a > 0.0:  # a(t) = a(t_last) * exp(-(t - t_last) / tau_adapt)
                            a[li][j] *= math.exp(-(t - t_last[li][j]) * inv_tau_a)
                        t_last[li][j] = t
                    if cuba:
                        a[li][j] += n * w  # a spike adds to the synaptic current
                    else:
                        v[li][j] += n * w
                    synops += 1
            spikes = []
            if form is None or not form.spiking:
                continue
            for j in touched:
                u = v[li][j]
                th = form.v_th + a[li][j] if form.beta > 0.0 else form.v_th
                if u >= th:
                    s = math.floor(u / th) if form.spike == "multi" else 1
                    u = 0.0 if form.reset == "zero" else u - th * s
                    spikes.append((j, float(s)))
                    counts[li][j] += s
                    trains[li].append((t, j, s))
                    a[li][j] += form.beta * s
                v[li][j] = max(u, form.v_min)
                if cuba:
                    schedule(li, j)

    def schedule(li: int, j: int) -> None:
        f = layers[li].form
        assert f is not None
        crossing[li][j] = next_crossing(t_last[li][j], v[li][j], a[li][j], f.v_th, f.inv_tau, f.inv_tau_syn, f.charge)
        if crossing[li][j] < math.inf:
            heapq.heappush(heap, (crossing[li][j], li, j))

    def cross(limit: float) -> None:
        """The crossings up to ``limit``, in time order: those of one layer at one time
        are one wave; each neuron is at v_th there, fires once and resets."""
        while heap and heap[0][0] <= limit:
            t, li, _ = heap[0]
            f = layers[li].form
            assert f is not None
            spikes = []
            while heap and heap[0][:2] == (t, li):
                j = heapq.heappop(heap)[2]
                if crossing[li][j] != t:
                    continue  # stale: the neuron was updated since
                if t_last[li][j] != t:
                    a[li][j] *= flow(t - t_last[li][j], f.inv_tau, f.inv_tau_syn, f.charge)[1]
                    t_last[li][j] = t
                v[li][j] = max(0.0, f.v_min)
                counts[li][j] += 1
                trains[li].append((t, j, 1))
                spikes.append((j, 1.0))
                schedule(li, j)
                if crossing[li][j] <= t:
                    raise ValueError("a CubaLIF neuron crosses its threshold again at the same time")
            if spikes:
                wave(li + 1, t, spikes)

    i = 0
    while i < len(events):
        t = events[i][0]
        cross(float(t))
        spikes: list[tuple[int, float]] = []  # (source neuron in C, H, W order, count)
        while i < len(events) and events[i][0] == t:
            _, p, y, x = events[i]
            spikes.append(((p * H0 + y) * W0 + x, 1.0))
            i += 1
        wave(0, float(t), spikes)
    cross(end)
    last = layers[-1]
    spiking_out = last.form is not None and last.form.spiking
    out = np.array(counts[-1] if spiking_out else v[-1], np.float64)
    if last.form is not None and not last.form.spiking and last.form.inv_tau > 0.0:
        # an LI readout is read at the end, each membrane decayed from its last input
        out *= np.exp(-(end - np.array(t_last[-1])) * last.form.inv_tau)
    spiking = [i for i, L in enumerate(layers) if L.form is not None and L.form.spiking]
    return ReferenceResult(
        out,
        {layers[i].node: np.array(counts[i]).reshape(layers[i].out_shape) for i in spiking},
        {layers[i].node: trains[i] for i in spiking},
        synops,
    )
