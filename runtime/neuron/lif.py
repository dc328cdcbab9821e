"""LIF and IF: one membrane state (DESIGN.md §1).

One clock step with input current ``I``::

    v = decay * u_prev + I          charge (IF: decay = 1)
    s, u = spike, reset and clamp rules on (v, v_th)        (rules.py)

Event-driven form: between inputs ``v`` decays by ``exp(-(t - t_prev) / tau)`` with
``tau = -dt / ln(decay)``; it only falls between inputs, so checking the threshold at
input times is exact.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import NodeProto

from . import nir, rules
from .base import (
    ClockForm,
    EventForm,
    NeuronKind,
    NeuronSpec,
    SpecError,
    leak_issue,
    leaky_event_form,
    register,
    rules_clock_form,
)


class LIF(NeuronKind[NeuronSpec]):
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

    def clock_form(self, spec: NeuronSpec) -> ClockForm:
        return rules_clock_form(spec)

    def event_form(self, spec: NeuronSpec) -> EventForm:
        return leaky_event_form(spec, spiking=True)

    def trace_decay(self, spec: NeuronSpec) -> float | None:
        return spec.decay

    def speck_issue(self, spec: NeuronSpec) -> tuple[str, object, str] | None:
        return leak_issue(spec, "neuron leak (decay per step)", "1.0 (IF: Speck neurons do not leak)")

    nir_params: tuple[str, ...] = ("tau", "r", "v_leak", "v_threshold")

    def to_nir(self, spec: NeuronSpec, shape: tuple[int, ...]) -> tuple[str, nir.Params]:
        return "LIF", {**nir.leak_params(spec, shape), "v_threshold": nir.full(shape, spec.v_th)}

    def nir_time(self, spec: NeuronSpec) -> str:
        return nir.time_label(nir.leak_euler(spec))

    def nir_peers(self, spec: NeuronSpec) -> dict[str, str | None]:
        sinabs = nir.rules_phrase(spec, "multi", "subtract", "no clamp", -math.inf)
        rules = nir.rules_phrase(spec, "single", "zero", "no clamp", -math.inf)
        if nir.euler(spec):
            snntorch = rules and f"runs LIF with {rules}"
        else:  # tau in steps, read as seconds: silent, with other rules or with ours (decay 1)
            snntorch = f"runs LIF with {rules or 'our spike and reset rules'}" + nir.snntorch_silent(spec)
        return {
            "sinabs": sinabs and f"runs LIF with {sinabs}" + (nir.sinabs_steps(spec) if nir.euler(spec) else ""),
            "snntorch": snntorch,
            "norse": "integrates LIF with forward Euler and ignores r (input scaled by dt/tau), one spike, zero reset, "
            + nir.norse_dt(nir.euler(spec), ", none at all in a trained LIF digits model")
            + nir.norse_no_leak(spec.decay),
        }

    def from_nir(self, params: nir.Params, source: str, dt_s: float) -> tuple[NeuronSpec, float]:
        decay, gain, th_scale, spec_dt = nir.leak_from_nir(params, source, dt_s)
        v_th = nir.one(params, "v_threshold") * th_scale
        if source == "sinabs":
            return nir.make("LIF", decay=decay, v_th=v_th, reset="subtract", spike="multi", dt=spec_dt), gain
        return nir.make("LIF", decay=decay, v_th=v_th, reset="zero", spike="single", dt=spec_dt), gain


class IF(LIF):
    name = "IF"
    doc = "integrate-and-fire (LIF with decay 1), one membrane state u"
    presets = {"if": {"decay": 1.0}, "multi-if": {"decay": 1.0, "spike": "multi"}}

    def validate(self, spec: NeuronSpec) -> None:
        if spec.decay != 1.0:
            # the kind and its preset, which fit's --neuron takes (a stranger looked for a kind flag)
            multi = ", spike 'multi'" if spec.spike == "multi" else ""
            raise SpecError(f"an IF neuron has decay 1.0, got {spec.decay}; use kind 'LIF' (preset 'lif'{multi})")

    nir_params = ("r", "v_threshold")

    def to_nir(self, spec: NeuronSpec, shape: tuple[int, ...]) -> tuple[str, nir.Params]:
        return "IF", {"r": nir.full(shape, 1.0), "v_threshold": nir.full(shape, spec.v_th)}

    def nir_time(self, spec: NeuronSpec) -> str:
        return "none"  # no time constant to read

    def nir_peers(self, spec: NeuronSpec) -> dict[str, str | None]:
        sinabs = nir.rules_phrase(spec, "multi", "subtract", "a membrane clamp at -v_th", -spec.v_th)
        norse = nir.rules_phrase(spec, "single", "zero", "no clamp", -math.inf)
        return {
            "sinabs": sinabs and f"runs IF with {sinabs}",
            "snntorch": "builds IF as Leaky(beta=0.9) returning a tuple: the graph does not run",
            "norse": norse and f"runs IF with {norse}",
        }

    def from_nir(self, params: nir.Params, source: str, dt_s: float) -> tuple[NeuronSpec, float]:
        v_th = nir.one(params, "v_threshold")
        r = nir.positive(params, "r", nir.GAIN) if source == "nir" else nir.one(params, "r")
        if source == "sinabs":
            return nir.make("IF", decay=1.0, v_th=v_th, reset="subtract", spike="multi", v_min=-v_th, dt=1.0), 1.0
        if source == "snntorch":
            raise nir.NirNeuronError(
                "snnTorch 1.0.0 neither writes IF nodes nor runs them (its import builds "
                "Leaky(beta=0.9)); import this graph with --from nir or norse"
            )
        one_spike = {"decay": 1.0, "v_th": v_th, "reset": "zero", "spike": "single", "dt": dt_s * 1e6}
        return nir.make("IF", **one_spike), 1.0 if source == "norse" else r * dt_s  # nir: r * dt


LIF_KIND = register(LIF())
IF_KIND = register(IF())
