"""Presynaptic traces for online training (OTTT, NDOT): the recurrences and one traced step.

OTTT (Xiao et al., NeurIPS 2022) and NDOT (ICML 2024) keep the forward on spikes but
compute each weight's gradient with the presynaptic *trace* in place of the spikes:
for a layer ``I_t = W x_t``, ``dL_t/dW = (dL_t/dI_t) â_t^T``, while the gradient to the
previous layer's spikes is unchanged (``W^T dL_t/dI_t``, then its surrogate). The traces
are per spiking-neuron layer (shape of its spikes), carried from step to step without
gradient, and pass through the pooling / flatten layers between a neuron and the next
weight layer (those are linear, so this equals the trace of the pooled spikes for OTTT).
The first layer's input (the data) has no trace: its gradient uses the input of the step.

Recurrences (pure functions below), in this code's notation: ``u_t`` is the membrane
after reset (the neuron state, DESIGN.md §1), which is NDOT's ``u_t - v_th s_t``:

    OTTT:  â_t = λ â_{t-1} + s_t                       λ: the neuron's decay
    NDOT:  â_t = e_{t-1} ⊙ â_{t-1} + s_t,   e_t = u_t / u_{t-1}

with ``â_0 = 0``. Two rules for the ratio (``--ndot-ratio``):

* ``ndot`` (the paper's, default): ``e_1 = u_1`` (the paper's footnote: e_1 = u_1 - V_th s_1,
  this code's u_1), and ``e_t = λ`` only where ``u_{t-1} = 0`` or the ratio is not
  finite; elsewhere the ratio as it is (it may exceed λ: the trace may decay slower
  than OTTT's).
* ``ndot-clamped`` (the rule before issue 18): ``e_1 = λ``, and the ratio clamped to
  ``[-λ, λ]`` at every step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import nn

from runtime.neuron import kind_of

from .layers import NeuronLayer, Residual, Sequence, Stateless, States
from .models import SpikingNet
from .weight_std import WeightStandardized

TRACE_RULES = ("ottt", "ndot", "ndot-clamped")
WEIGHT_LAYERS = (nn.Conv2d, nn.Linear, WeightStandardized)
# stateless linear maps that commute with the trace (applied to spikes and trace alike)
TRACE_TRANSPARENT = (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten)


def ottt_trace(a_prev: torch.Tensor, s: torch.Tensor, decay: float) -> torch.Tensor:
    """OTTT: ``â_t = λ â_{t-1} + s_t``."""
    return decay * a_prev + s


def ndot_ratio(u: torch.Tensor, u_prev: torch.Tensor | None, decay: float, clamp: bool) -> torch.Tensor:
    """NDOT's membrane ratio ``e_t = u_t / u_{t-1}``; ``u_prev`` None at the first step
    (see module doc: ``e_1 = u_1``, or λ with ``clamp``). Where ``u_{t-1} = 0`` (or the
    ratio is not finite) ``e_t = λ``; ``clamp`` also bounds it to ``[-λ, λ]``."""
    if u_prev is None:
        return torch.full_like(u, decay) if clamp else u.clone()
    ratio = u / u_prev
    safe = (u_prev != 0) & torch.isfinite(ratio)
    return torch.where(safe, ratio.clamp(-decay, decay) if clamp else ratio, torch.full_like(ratio, decay))


def ndot_trace(a_prev: torch.Tensor, e_prev: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """NDOT: ``â_t = e_{t-1} ⊙ â_{t-1} + s_t``."""
    return e_prev * a_prev + s


class Trace(NamedTuple):
    """One neuron layer's trace state: ``a`` = â_t; ``e`` = e_t (NDOT only, else None)."""

    a: torch.Tensor
    e: torch.Tensor | None


def update_trace(
    rule: str, prev: Trace | None, s: torch.Tensor, u: torch.Tensor, u_prev: torch.Tensor | None, decay: float
) -> Trace:
    """The trace after step t from the one after step t-1 (``None``: zero state).
    Computed without gradient: traces carry no gradient path (they are eligibilities)."""
    s, u = s.detach(), u.detach()
    zeros = torch.zeros_like(s)
    if rule == "ottt":
        return Trace(ottt_trace(zeros if prev is None else prev.a, s, decay), None)
    if rule in ("ndot", "ndot-clamped"):
        if prev is None:
            a = s
        elif prev.e is None:  # a trace of another rule: not one this rule made
            raise ValueError(f"trace rule {rule!r} needs the step before's e; the trace given has none")
        else:
            a = ndot_trace(prev.a, prev.e, s)
        # prev is None at the first step (u_prev None, or a state given without a trace)
        first = None if prev is None or u_prev is None else u_prev.detach()
        return Trace(a, ndot_ratio(u, first, decay, clamp=rule == "ndot-clamped"))
    raise ValueError(f"trace rule {rule!r} is unknown; expected one of {list(TRACE_RULES)}")


class _Replace(torch.autograd.Function):
    """Forward: ``value``; backward: the whole gradient to ``grad_path`` (the swap of the
    public OTTT code)."""

    @staticmethod
    def forward(ctx, grad_path: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return value.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def presynaptic(op: nn.Module, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``op(s)`` in the forward; in the backward, the weight gradient of ``op`` is taken at
    the trace ``a`` (``g a^T``) and the input gradient ``W^T g`` goes to ``s``.
    ``op`` must be linear in its input (conv, linear)."""
    with torch.no_grad():
        value = op(s)
    return _Replace.apply(op(_Replace.apply(s, a)), value)


def traced_step(
    model: SpikingNet, x: torch.Tensor, states: States, traces: list[Trace | None], rule: str
) -> tuple[torch.Tensor, States, list[Trace | None]]:
    """One time step of ``model`` (same forward as ``model.step``) whose weight gradients
    use presynaptic traces. ``traces`` has one entry per neuron layer, in state order
    (``None``: zero state; LI readouts keep ``None``). Returns ``(y, states, traces)``."""
    new_states: States = []
    new_traces: list[Trace | None] = []
    walk = _Walk(rule, iter(states), iter(traces), new_states, new_traces)
    y = x
    a: torch.Tensor | None = None
    for stage in model.stages:
        y, a = walk(stage, y, a)
    return y, new_states, new_traces


class _Walk:
    """Runs the layer tree in ``SpikingNet.step`` order, carrying (spikes, trace) pairs."""

    def __init__(
        self, rule: str, states: Iterator, traces: Iterator, new_states: States, new_traces: list[Trace | None]
    ):
        if rule not in TRACE_RULES:
            raise ValueError(f"trace rule {rule!r} is unknown; expected one of {list(TRACE_RULES)}")
        self.rule, self.states, self.traces = rule, states, traces
        self.new_states, self.new_traces = new_states, new_traces

    def __call__(
        self, layer: nn.Module, x: torch.Tensor, a: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(layer, Sequence):
            for sub in layer.layers:
                x, a = self(sub, x, a)
            return x, a
        if isinstance(layer, Residual):
            y, _ = self(layer.body, x, a)
            r, _ = self(layer.shortcut, x, a)
            return self(layer.neuron, y + r, None)  # a sum is a current, not a weight input
        if isinstance(layer, NeuronLayer):
            return self._neuron(layer, x)
        if isinstance(layer, Stateless):
            mod = layer.module
            if a is None:
                return mod(x), None
            if isinstance(mod, WEIGHT_LAYERS):
                return presynaptic(mod, x, a), None
            if isinstance(mod, TRACE_TRANSPARENT):
                return mod(x), mod(a)
            raise ValueError(
                f"{type(mod).__name__} between a neuron and a weight layer: the presynaptic "
                f"trace passes only {[c.__name__ for c in TRACE_TRANSPARENT]}"
            )
        raise TypeError(f"cannot step {type(layer).__name__} with traces")

    def _neuron(self, layer: NeuronLayer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        u_prev, prev = next(self.states), next(self.traces)
        # single-state kinds only (Config refuses online methods for the others)
        y, (u,) = layer.neuron(x, None if u_prev is None else (u_prev,))
        self.new_states.append(u)
        if not layer.spec.spiking:
            self.new_traces.append(None)
            return y, None
        decay = kind_of(layer.spec.kind).trace_decay(layer.spec)
        assert decay is not None  # Config refuses online methods for the other kinds
        trace = update_trace(self.rule, prev, y, u, u_prev, decay)
        self.new_traces.append(trace)
        return y, trace.a
