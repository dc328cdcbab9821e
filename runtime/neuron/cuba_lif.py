"""CubaLIF: current-based LIF, two states (membrane ``u`` and synaptic current ``i``).

The input charges a synaptic current that decays on its own time constant and charges the
membrane (as NIR's ``CubaLIF``: ``tau_syn di/dt = -i + w x``, ``tau_mem dv/dt = -v + r i``,
discretised one step at a time). One clock step with input current ``I``::

    i = decay_syn * i_prev + I      synaptic current
    v = decay * u_prev + i          membrane
    s, u = spike, reset and clamp rules on (v, v_th)        (rules.py)

No event-driven form here: the current keeps charging the membrane between input events,
so the membrane can cross the threshold at times no input marks; an exact event engine
must solve for those crossing times, which this runtime's engine does not do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import NodeProto

from . import rules
from .base import EventForm, EventFormError, NeuronKind, NeuronSpec, check_decay, register, tau_of


@dataclass(frozen=True)
class CubaLIFSpec(NeuronSpec):
    """A :class:`NeuronSpec` plus ``decay_syn``, the synaptic current's factor per step
    (``exp(-dt / tau_syn)``)."""

    kind: str = "CubaLIF"
    decay_syn: float = field(default=0.5, metadata={"help": "CubaLIF: synaptic current decay per step"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_decay("decay_syn", self.decay_syn)

    @property
    def tau_syn(self) -> float:
        return tau_of(self.decay_syn, self.dt)


class CubaLIF(NeuronKind):
    name = "CubaLIF"
    spec_cls = CubaLIFSpec
    states = ("u", "i")
    doc = "current-based LIF: states u (membrane) and i (synaptic current, decay_syn)"
    presets = {"cuba-lif": {}}

    def step(
        self, spec: NeuronSpec, state: tuple[np.ndarray, ...], current: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        assert isinstance(spec, CubaLIFSpec)
        u_prev, i_prev = state
        i = rules.leak(spec.decay_syn, i_prev, current)
        v = rules.leak(spec.decay, u_prev, i)
        s, u = rules.spike_reset(spec, v, v.dtype.type(spec.v_th))
        return s, (u, i)

    def overload(self, spec: NeuronSpec) -> str:
        return rules.variant(spec)

    def onnx_body(self, spec: NeuronSpec) -> list[NodeProto]:
        return (
            rules.charge("decay_syn", "i_prev", "current", "i")
            + rules.charge("decay", "u_prev", "i", "v")
            + [rules.attr_const("v_th", "v_th")]
            + rules.spike_reset_nodes(spec, "v", "v_th", "u")
        )

    def event_form(self, spec: NeuronSpec) -> EventForm:
        raise EventFormError(
            "CubaLIF neurons keep charging from their synaptic current between input events, "
            "so they spike at times no input marks; the event engine has no crossing-time "
            "solver for them (run this model clock-driven)"
        )


CUBA_LIF_KIND = register(CubaLIF())
