"""LI: the leaky integrator of a readout ("membrane voting"), one state, no spikes.

``u = decay * u_prev + I``; the output is ``u``. Event-driven: decays between inputs
like LIF and only accumulates.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, helper

from . import nir, rules
from .base import EventForm, NeuronKind, NeuronSpec, leak_issue, leaky_event_form, register


class LI(NeuronKind[NeuronSpec]):
    name = "LI"
    spiking = False
    doc = "leaky integrator (readout), one state u, outputs u"

    def step(
        self, spec: NeuronSpec, state: tuple[np.ndarray, ...], current: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        (u_prev,) = state
        v = rules.leak(spec.decay, u_prev, current)
        return v, (v,)

    def overload(self, spec: NeuronSpec) -> str:
        return "li"

    def onnx_body(self, spec: NeuronSpec) -> list[NodeProto]:
        n = helper.make_node
        return rules.charge("decay", "u_prev", "current", "v") + [
            n("Identity", ["v"], ["out"]),
            n("Identity", ["v"], ["u"]),
        ]

    def event_form(self, spec: NeuronSpec) -> EventForm:
        return leaky_event_form(spec, spiking=False)

    def speck_issue(self, spec: NeuronSpec) -> tuple[str, object, str] | None:
        # the chip's readout layer is IF neurons read as spike counts: only a leak is a problem
        return leak_issue(spec, "readout leak (decay per step)", "1.0 (Speck neurons do not leak)")

    nir_params = ("tau", "r", "v_leak")

    def to_nir(self, spec: NeuronSpec, shape: tuple[int, ...]) -> tuple[str, nir.Params]:
        return "LI", nir.leak_params(spec, shape)

    def nir_time(self, spec: NeuronSpec) -> str:
        return nir.time_label(nir.leak_euler(spec))

    def nir_peers(self, spec: NeuronSpec) -> dict[str, str | None]:
        return {
            "sinabs": None,
            "snntorch": "has no LI import: the graph does not load",
            "norse": "has no LI import: it drops the LI node and outputs the LI's input",
        }

    def from_nir(self, params: nir.Params, source: str, dt_s: float) -> tuple[NeuronSpec, float]:
        decay, gain, _, spec_dt = nir.leak_from_nir(params, source, dt_s)
        return nir.make("LI", decay=decay, v_th=1.0, reset="subtract", spike="single", dt=spec_dt), gain


LI_KIND = register(LI())
