"""ALIF: LIF with an adaptive threshold, two states (membrane ``u``, threshold increment ``a``).

After each spike the threshold rises by ``beta`` and decays back to ``v_th`` with factor
``decay_adapt`` per step (the adaptive threshold of Bellec et al. 2018, LSNN). One clock
step with input current ``I``::

    a' = decay_adapt * a_prev       the increment decays
    v  = decay * u_prev + I         charge
    theta = v_th + a'               threshold of this step
    s, u = spike, reset and clamp rules on (v, theta)       (rules.py; subtract removes theta)
    a  = a' + beta * s              each spike raises the threshold

Event-driven form (when ``decay_adapt >= decay``, i.e. ``tau_adapt >= tau``): between
inputs ``u`` and ``a`` decay by ``exp(-dt/tau)`` and ``exp(-dt/tau_adapt)``; the threshold
is checked at input times only, which is exact: with ``u0 < v_th + a0`` after an input,
``u0 e^{-t/tau} - a0 e^{-t/tau_adapt} <= (u0 - a0) e^{-t/tau_adapt} < v_th`` for every
``t > 0``, so no crossing happens between inputs. A threshold that falls faster than the
membrane (``decay_adapt < decay``) can be crossed with no input: refused, clock-driven only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from onnx import NodeProto, helper

from . import rules
from .base import (
    ClockForm,
    EventForm,
    EventFormError,
    NeuronKind,
    NeuronSpec,
    SpecError,
    check_decay,
    event_inv_tau,
    leaky_event_form,
    register,
    rules_clock_form,
)


@dataclass(frozen=True)
class ALIFSpec(NeuronSpec):
    """A :class:`NeuronSpec` plus ``decay_adapt`` (the threshold increment's factor per
    step) and ``beta`` (threshold increment per spike, >= 0)."""

    kind: str = "ALIF"
    decay_adapt: float = field(default=0.9, metadata={"help": "ALIF: threshold increment decay per step"})
    beta: float = field(default=0.2, metadata={"help": "ALIF: threshold increment per spike"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_decay("decay_adapt", self.decay_adapt)
        if not (self.beta >= 0.0 and math.isfinite(self.beta)):
            raise SpecError(f"beta must be a finite number >= 0, got {self.beta}")


class ALIF(NeuronKind[ALIFSpec]):
    name = "ALIF"
    states = ("u", "a")
    doc = "adaptive-threshold LIF: states u (membrane) and a (threshold increment: +beta per spike, decay_adapt)"
    presets = {"alif": {}}

    def step(
        self, spec: ALIFSpec, state: tuple[np.ndarray, ...], current: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        u_prev, a_prev = state
        dtype = np.result_type(u_prev, current)
        a = (dtype.type(spec.decay_adapt) * a_prev).astype(dtype, copy=False)  # no add: as torch and ONNX
        v = rules.leak(spec.decay, u_prev, current)
        theta = (dtype.type(spec.v_th) + a).astype(dtype, copy=False)
        s, u = rules.spike_reset(spec, v, theta)
        a = (a + dtype.type(spec.beta) * s).astype(dtype, copy=False)
        return s, (u, a)

    def overload(self, spec: ALIFSpec) -> str:
        return rules.variant(spec)

    def onnx_body(self, spec: ALIFSpec) -> list[NodeProto]:
        n = helper.make_node
        return (
            [rules.attr_const("decay_adapt", "decay_adapt"), n("Mul", ["decay_adapt", "a_prev"], ["a_d"])]
            + rules.charge("decay", "u_prev", "current", "v")
            + [rules.attr_const("v_th", "v_th"), n("Add", ["v_th", "a_d"], ["theta"])]
            + rules.spike_reset_nodes(spec, "v", "theta", "u")
            + [
                rules.attr_const("beta", "beta"),
                n("Mul", ["beta", "out"], ["a_inc"]),
                n("Add", ["a_d", "a_inc"], ["a"]),
            ]
        )

    def clock_form(self, spec: ALIFSpec) -> ClockForm:
        return rules_clock_form(spec, "adapt", spec.decay_adapt, spec.beta)

    def event_form(self, spec: ALIFSpec) -> EventForm:
        if spec.decay_adapt < spec.decay and spec.beta > 0.0:
            raise EventFormError(
                f"ALIF thresholds that decay faster than the membrane (decay_adapt {spec.decay_adapt} < "
                f"decay {spec.decay}) can be crossed between input events, at times no input marks; "
                "the event engine runs ALIF with decay_adapt >= decay only (run this model clock-driven)"
            )
        form = leaky_event_form(spec, spiking=True)
        inv_tau_adapt = event_inv_tau(spec.decay_adapt, spec.dt)
        return dataclasses.replace(form, inv_tau_adapt=inv_tau_adapt, beta=spec.beta)


ALIF_KIND = register(ALIF())
