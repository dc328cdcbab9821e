"""The layer list packed into flat arrays for the numba kernels, and the stream state.

Internal layouts are channel-last so that the innermost loop of a fan-out runs over
output channels, contiguous in both the weights and the membranes (SIMD-friendly):

* neuron ``(o, Y, X)`` of a layer is at ``(Y * Wout + X) * Cout + o``; a dense layer
  is ``(N, 1, 1)``;
* conv weights ``[Cin, kh, kw, Cout]``; dense weights ``[Nin, Nout]`` with the input row
  of ``(c, y, x)`` at ``(y * Win + x) * Cin + c`` (the ONNX flatten order is c, y, x);
* a "group" is one spatial position ``(Y, X)``: all its channels are reached by the
  same input spikes at the same times, so they share one last-update time.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from .graph import Layer

# columns of the integer parameter table, one row per layer
(OP, CS, HS, WS, POOL, CI, HI, WI, CO, HO, WO, KH, KW, SH, SW, PT, PL, WOFF, VOFF, GOFF, KIND, RESET, SPIKE) = range(23)
N_INT = 23
# columns of the float table (A: adaptive threshold; S: synaptic current, CHARGE its rate)
INV_TAU, VTH, VMIN, INV_TAU_A, BETA, INV_TAU_S, CHARGE = range(7)
N_FLOAT = 7
KIND_ACCUMULATE, KIND_SPIKING, KIND_LI = 0, 1, 2


@dataclass(frozen=True)
class Net:
    """Everything the kernels read about the network (immutable once built)."""

    P: np.ndarray  # [layers, N_INT] int64
    F: np.ndarray  # [layers, N_FLOAT] float64
    W: np.ndarray  # all weights, internal layouts, float32
    n_neurons: int  # membranes in all layers
    n_groups: int  # positions in all layers

    @functools.cached_property
    def second_states(self) -> int:
        """Entries of the per-neuron second state (an adaptive threshold or a synaptic
        current): one per neuron if some layer has one, else none (the kernel reads it only
        in such layers, and a stream need not allocate and zero it)."""
        return self.n_neurons if bool(np.any(self.F[:, [INV_TAU_A, BETA, CHARGE]] > 0.0)) else 0

    @functools.cached_property
    def crossing_states(self) -> int:
        """Entries of the per-neuron update and crossing times: one per neuron if some
        layer is CubaLIF (its neurons cross their threshold between inputs), else none."""
        return self.n_neurons if bool(np.any(self.F[:, CHARGE] > 0.0)) else 0


def internal_weight(layer: Layer) -> np.ndarray:
    if layer.op == "conv":
        return np.ascontiguousarray(layer.weight.transpose(1, 2, 3, 0))  # [Cin, kh, kw, Cout]
    c, h, w = layer.in_shape
    n_out = layer.weight.shape[0]
    return np.ascontiguousarray(layer.weight.reshape(n_out, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, n_out))


def pack(layers: Sequence[Layer]) -> Net:
    P = np.zeros((len(layers), N_INT), np.int64)
    F = np.zeros((len(layers), N_FLOAT), np.float64)
    weights, w_off, v_off, g_off = [], 0, 0, 0
    for i, L in enumerate(layers):
        r = P[i]
        r[OP] = 0 if L.op == "conv" else 1
        r[CS : WS + 1] = L.src_shape
        r[POOL] = L.pool
        r[CI : WI + 1] = L.in_shape
        r[CO : WO + 1] = L.out_shape
        if L.op == "conv":
            r[KH], r[KW] = L.weight.shape[2:]
            r[SH], r[SW] = L.stride
            r[PT], r[PL] = L.pads
        w = internal_weight(L).ravel()
        r[WOFF], r[VOFF], r[GOFF] = w_off, v_off, g_off
        weights.append(w)
        w_off += w.size
        v_off += L.size
        g_off += L.out_shape[1] * L.out_shape[2]
        n = L.form
        r[KIND] = KIND_ACCUMULATE if n is None else KIND_SPIKING if n.spiking else KIND_LI
        if n is not None:
            r[RESET] = 0 if n.reset == "subtract" else 1
            r[SPIKE] = 0 if n.spike == "single" else 1
            F[i] = (n.inv_tau, n.v_th, n.v_min, n.inv_tau_adapt, n.beta, n.inv_tau_syn, n.charge)
        else:
            F[i] = (0.0, np.inf, -np.inf, 0.0, 0.0, 0.0, 0.0)
    return Net(P, F, np.concatenate(weights).astype(np.float32), v_off, g_off)


@dataclass
class EventState:
    """What a stream carries between chunks (size fixed by the network, not the stream).

    The caller holds it; :meth:`EventEngine.feed` advances it in place and returns it.
    ``v`` membranes (float64, internal order), ``a`` the second state of two-state kinds
    (ALIF: threshold increments; CubaLIF: synaptic currents; 0 elsewhere; empty in a
    network without such layers), ``t_last`` last update time of each group (µs),
    ``t_neuron`` of each neuron of a CubaLIF layer (a neuron that crosses its threshold
    between inputs is updated alone), ``crossing`` the time each CubaLIF neuron will next
    cross its threshold if no input reaches it first (inf: never; both empty in a network
    without CubaLIF layers), ``counts`` spikes per neuron so far (each layer in ONNX order
    (C, H, W) from its offset: unlike the other states, not channel-last), ``t_now`` time of the last
    processed input event (-1 before any; or the end of the last :meth:`flush`, rounded up to
    a whole µs, where the next chunk may start), ``t_read`` the exact instant (µs, float64)
    the stream has been run to (0 before any): the last :meth:`feed`'s held-back timestamp,
    which its crossings were run up to, or the end of the last :meth:`flush` (its ``until``,
    fractions kept); :meth:`result` reads an LI readout there, ``pending``
    the input events at the latest timestamp,
    held back because the next chunk may hold more events at that same time (events
    with one timestamp are simultaneous: one wave), ``events`` and ``synops`` totals, and
    ``seconds`` of wall time spent running them (the result's ``seconds``, as a clock run's),
    ``broken`` why the state cannot go on (None while it can): an error stopped a chunk
    part-way, leaving some neurons run and others not, ``network`` the fingerprint of the
    network whose engine made it (:func:`fingerprint`).
    """

    v: np.ndarray
    a: np.ndarray
    t_last: np.ndarray
    t_neuron: np.ndarray
    crossing: np.ndarray
    counts: np.ndarray
    t_now: int = -1
    t_read: float = 0.0
    pending: np.ndarray | None = None
    events: int = 0
    synops: int = 0
    seconds: float = 0.0
    broken: str | None = None
    network: str = ""

    def __copy__(self) -> EventState:
        """An independent copy, as ``copy.copy`` of a ``ClockState`` is: feed advances a
        state in place, so a copy that shared these arrays would move with the original."""
        copies: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                copies[f.name] = value.copy()
        return replace(self, **copies)


def initial_state(net: Net, network: str) -> EventState:
    """A new stream's state for ``net``, whose :func:`fingerprint` is ``network``."""
    n, n2, nc = net.n_neurons, net.second_states, net.crossing_states
    return EventState(
        np.zeros(n),
        np.zeros(n2),
        np.zeros(net.n_groups),
        np.zeros(nc),
        np.full(nc, np.inf),
        np.zeros(n, np.int64),
        network=network,
    )


def fingerprint(net: Net) -> str:
    """A digest of everything the kernel reads of ``net`` (layout, neuron parameters,
    weights): the engines of one model agree on it, in any process; another model's differs."""
    h = hashlib.sha256()
    for a in (net.P, net.F, net.W):
        h.update(str((a.dtype, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]
