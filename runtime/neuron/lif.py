"""LIF and IF: one membrane state (DESIGN.md §1).

One clock step with input current ``I``::

    v = decay * u_prev + I          charge (IF: decay = 1)
    s, u = spike, reset and clamp rules on (v, v_th)        (rules.py)

Event-driven form: between inputs ``v`` decays by ``exp(-(t - t_prev) / tau)`` with
``tau = -dt / ln(decay)``; it only falls between inputs, so checking the threshold at
input times is exact.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto

from . import rules
from .base import EventForm, NeuronKind, NeuronSpec, SpecError, leak_issue, leaky_event_form, register


class LIF(NeuronKind):
    name = "LIF"
    doc = "leaky integrate-and-fire, one membrane state u"
    presets = {"lif": {}}

    def step(
        self, spec: NeuronSpec, state: tuple[np.ndarray, ...], current: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        (u_prev,) = state
        v = rules.leak(spec.decay, u_prev, current)
        s, u = rules.spike_reset(spec, v, v.dtype.type(spec.v_th))
        return s, (u,)

    def overload(self, spec: NeuronSpec) -> str:
        return rules.variant(spec)

    def onnx_body(self, spec: NeuronSpec) -> list[NodeProto]:
        return (
            rules.charge("decay", "u_prev", "current", "v")
            + [rules.attr_const("v_th", "v_th")]
            + rules.spike_reset_nodes(spec, "v", "v_th", "u")
        )

    def event_form(self, spec: NeuronSpec) -> EventForm:
        return leaky_event_form(spec, spiking=True)

    def speck_issue(self, spec: NeuronSpec) -> tuple[str, object, str] | None:
        return leak_issue(spec, "neuron leak (decay per step)", "1.0 (IF: Speck neurons do not leak)")


class IF(LIF):
    name = "IF"
    doc = "integrate-and-fire (LIF with decay 1), one membrane state u"
    presets = {"if": {"decay": 1.0}, "multi-if": {"decay": 1.0, "spike": "multi"}}

    def validate(self, spec: NeuronSpec) -> None:
        if spec.decay != 1.0:
            raise SpecError(f"an IF neuron has decay 1.0, got {spec.decay}; use kind 'LIF'")


LIF_KIND = register(LIF())
IF_KIND = register(IF())
