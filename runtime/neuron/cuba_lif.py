"""CubaLIF: current-based LIF, two states (membrane ``u`` and synaptic current ``i``).

The input charges a synaptic current that decays on its own time constant and charges the
membrane (as NIR's ``CubaLIF``: ``tau_syn di/dt = -i + w x``, ``tau_mem dv/dt = -v + r i``,
discretised one step at a time). One clock step with input current ``I``::

    i = decay_syn * i_prev + I      synaptic current
    v = decay * u_prev + syn_gain * i   membrane
    s, u = spike, reset and clamp rules on (v, v_th)   (rules.py)

``syn_gain`` is 1 as trained (snnTorch's ``Synaptic``: the membrane adds the current every
step; multiplying by exactly 1.0 changes no bit). The step is read as the discretisation, at
bin width ``dt``, of one continuous-time neuron (the event-driven form below)::

    tau_syn di/dt = -i  (+ w per input spike)        tau_syn = -dt / ln(decay_syn)
    dv/dt = -v / tau_mem + c * i                       tau_mem = -dt / ln(decay)
    c = syn_gain / (dt * m(decay) * m(decay_syn))      m(d) = (1 - d) / ln(1 / d)

(``m``: :func:`base.bin_mean_decay`). ``c`` gives the neuron the step's gain to a steady
input: inputs of ``I`` per bin hold the step's membrane at ``syn_gain * I / ((1 - decay_syn)
(1 - decay))`` and the neuron's mean membrane at ``c * I * tau_syn * tau_mem / dt``, the same
value. The forward-Euler reading ``c = syn_gain / dt`` gives ``m(decay) * m(decay_syn)`` of
it, 0.52 at the default decays 0.5: event-driven, a model got about half the drive it was
trained with (multi-spike models lost about 9 points on the digits, single-spike 40). The
same neuron at another bin width ``dt'`` (:meth:`CubaLIFSpec.retimed`) has the decays for
the same time constants and the ``syn_gain`` that keeps ``c``: its clock runs keep the
trained steady-state gain and converge to the event-driven run as ``dt' -> 0``.

NIR: ``CubaLIF``; the one-spike, reset-to-zero variant in snnTorch's Euler convention
(``tau_syn = dt / (1 - decay_syn)``, ``w_in = tau_syn / dt``, ``tau_mem = dt / (1 - decay)``,
``r = syn_gain * tau_mem / dt`` at ``dt = 1e-4 s``: forward Euler of the ODEs is then
exactly the step above, and snnTorch builds ``Synaptic(alpha=decay_syn, beta=decay)``),
every other variant with the time constants in steps, ``w_in = tau_syn`` and ``r = c dt tau_mem``:
NIR's ODE is then the event-driven form below, in steps (``r = syn_gain`` and ``w_in = 1``
where a decay of 1 leaves no finite form).

Event-driven form: the ODEs above solved exactly between input events (``flow`` and
``next_crossing`` in ``runtime/event/kernel.py``). An input spike adds its weight to
``i``; between inputs the current keeps charging the membrane, so it can cross the
threshold at a time no input marks: the engine solves for that time (closed-form peak, then bisection to float64
resolution), fires there, resets, and sends the spike on at that time.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from onnx import NodeProto, helper

from . import nir, rules
from .base import (
    ClockForm,
    EventForm,
    NeuronKind,
    NeuronSpec,
    SpecError,
    bin_mean_decay,
    check_decay,
    decay_of,
    event_inv_tau,
    leaky_event_form,
    register,
    rules_clock_form,
    tau_of,
)


@dataclass(frozen=True)
class CubaLIFSpec(NeuronSpec):
    """A :class:`NeuronSpec` plus ``decay_syn``, the synaptic current's factor per step
    (``exp(-dt / tau_syn)``)."""

    kind: str = "CubaLIF"
    decay_syn: float = field(default=0.5, metadata={"help": "CubaLIF: synaptic current decay per step"})
    # files written before this field existed mean 1.0 (``absent``: base.NeuronSpec.from_dict)
    syn_gain: float = field(
        default=1.0,
        metadata={
            "help": "CubaLIF: membrane charge per unit synaptic current per step (dt/dt0 re-timed from bin dt0)",
            "absent": 1.0,
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_decay("decay_syn", self.decay_syn)
        if not (self.syn_gain > 0.0 and math.isfinite(self.syn_gain)):
            raise SpecError(f"syn_gain must be a finite number > 0, got {self.syn_gain}")

    @property
    def tau_syn(self) -> float:
        return tau_of(self.decay_syn, self.dt)

    @property
    def rest_gain(self) -> float:
        return self.syn_gain  # from rest i = current, v = syn_gain * i

    @property
    def charge_rate(self) -> float:
        """``c`` (1/µs) of the continuous-time neuron, ``dv/dt = -v / tau_mem + c * i``: the
        step's steady-state gain (module doc)."""
        return self.syn_gain / (self.dt * _bin_means(self))

    def retimed(self, dt: float) -> CubaLIFSpec:
        """The same continuous-time neuron stepped at bin width ``dt`` (µs): the decays
        for the same time constants and the ``syn_gain`` that keeps :attr:`charge_rate`;
        ``self`` at its own width (recomputed, a decay can move by an ulp)."""
        if dt == self.dt:
            return self
        other = dataclasses.replace(self, decay=decay_of(self.tau, dt), decay_syn=decay_of(self.tau_syn, dt), dt=dt)
        return dataclasses.replace(other, syn_gain=self.charge_rate * dt * _bin_means(other))  # charge_rate inverted


def _bin_means(spec: CubaLIFSpec) -> float:
    return bin_mean_decay(spec.decay) * bin_mean_decay(spec.decay_syn)


class CubaLIF(NeuronKind[CubaLIFSpec]):
    name = "CubaLIF"
    states = ("u", "i")
    doc = "current-based LIF: states u (membrane) and i (synaptic current, decay_syn)"
    presets = {"cuba-lif": {}}

    def step(
        self, spec: CubaLIFSpec, state: tuple[np.ndarray, ...], current: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        u_prev, i_prev = state
        i = rules.leak(spec.decay_syn, i_prev, current)
        v = rules.leak(spec.decay, u_prev, (i.dtype.type(spec.syn_gain) * i).astype(i.dtype, copy=False))
        s, u = rules.spike_reset(spec, v, v.dtype.type(spec.v_th))
        return s, (u, i)

    def overload(self, spec: CubaLIFSpec) -> str:
        return rules.variant(spec)

    def onnx_body(self, spec: CubaLIFSpec) -> list[NodeProto]:
        return (
            rules.charge("decay_syn", "i_prev", "current", "i")
            + [rules.attr_const("syn_gain", "syn_gain"), helper.make_node("Mul", ["syn_gain", "i"], ["i_in"])]
            + rules.charge("decay", "u_prev", "i_in", "v")
            + [rules.attr_const("v_th", "v_th")]
            + rules.spike_reset_nodes(spec, "v", "v_th", "u")
        )

    def clock_form(self, spec: CubaLIFSpec) -> ClockForm:
        return rules_clock_form(spec, "syn", spec.decay_syn, spec.syn_gain)

    nir_params = ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "w_in")

    def to_nir(self, spec: CubaLIFSpec, shape: tuple[int, ...]) -> tuple[str, nir.Params]:
        f = nir.full
        if _euler(spec):
            tau_syn, tau_mem = nir.euler_tau(spec.decay_syn), nir.euler_tau(spec.decay)
            r, w_in = spec.syn_gain * tau_mem / nir.SNNTORCH_DT, tau_syn / nir.SNNTORCH_DT
        else:  # in steps, NIR's ODE is the event engine's neuron: i += w per input, dv/dt = -v/tau_mem + c i
            tau_syn, tau_mem = nir.steps_tau(spec.decay_syn), nir.steps_tau(spec.decay)
            finite = math.isfinite(tau_syn) and math.isfinite(tau_mem)
            r = spec.charge_rate * spec.dt * tau_mem if finite else spec.syn_gain  # no finite form: as before
            w_in = tau_syn if finite else 1.0
        return "CubaLIF", {
            "tau_syn": f(shape, tau_syn),
            "tau_mem": f(shape, tau_mem),
            "r": f(shape, r),
            "v_leak": f(shape, 0.0),
            "v_threshold": f(shape, spec.v_th),
            "w_in": f(shape, w_in),
        }

    def nir_time(self, spec: CubaLIFSpec) -> str:
        return nir.time_label(_euler(spec))

    def nir_peers(self, spec: CubaLIFSpec) -> dict[str, str | None]:
        if not _euler(spec):  # time constants in steps: snnTorch's import asserts r == tau_mem / dt
            snntorch: str | None = (
                "does not load the graph: its CubaLIF import asserts r = tau_mem / dt, which only the "
                "single-spike, zero-reset form (written in its convention) meets"
            )
        elif spec.syn_gain != 1.0:  # written as r = syn_gain * tau_mem / dt: the same assert fails
            snntorch = (
                f"does not load the graph: its CubaLIF import asserts r = tau_mem / dt, which syn_gain "
                f"{spec.syn_gain:g} breaks (train with --syn-gain 1 for snnTorch)"
            )
        else:
            rules = nir.rules_phrase(spec, "single", "zero", "no clamp", -math.inf)
            snntorch = rules and f"runs CubaLIF as Synaptic with {rules}"
        # norse's CubaLIF (an LI synapse, then its LIF) runs the unclamped Euler form with our
        # spikes at snnTorch's step (measured, tests/test_nir_peers.py); the others by its rules
        norse_runs_ours = _euler(spec) and spec.v_min == -math.inf  # _euler: both decays below 1
        return {
            # nirtorch leaves the node out: depending on the graph it then fails in a shape
            # check, or returns a tensor that is not the readout
            "sinabs": "has no CubaLIF import: it drops the CubaLIF nodes, then fails or returns another tensor",
            "snntorch": snntorch,
            "norse": (
                f"runs CubaLIF with our spikes only {nir.norse_dt(True)}; it {nir.FIRES_ABOVE_NOTE}"
                if norse_runs_ours
                else "integrates CubaLIF with forward Euler (r and w_in as rates), one spike, zero reset, "
                + nir.norse_dt(_euler(spec))
                + nir.norse_no_leak(spec.decay, spec.decay_syn)
            ),
        }

    def from_nir(self, params: nir.Params, source: str, dt_s: float) -> tuple[NeuronSpec, float]:
        if source != "snntorch":
            raise nir.NirNeuronError(
                f"CubaLIF nodes import from flexsnn or snntorch only, not {source} "
                "(the two-state discretisation of other sources is not mapped)"
            )
        nir.no_leak_potential(params)
        # in float32 as snnTorch computes it; the threshold absorbs w_in * dt / tau_syn
        f32 = np.float32
        tau_syn, tau_mem = (f32(nir.positive(params, name, nir.TAU)) for name in ("tau_syn", "tau_mem"))
        alpha, beta = nir.snntorch_decay(tau_syn), nir.snntorch_decay(tau_mem)
        w_scale = nir.positive(params, "w_in", nir.GAIN) * nir.SNNTORCH_DT / float(tau_syn)
        v_th = nir.one(params, "v_threshold") / (1.0 if np.isclose(w_scale, 1.0) else w_scale)
        fields = {"v_th": v_th, "reset": "zero", "spike": "single", "dt": nir.SNNTORCH_DT * 1e6}
        return nir.make("CubaLIF", decay=float(beta), decay_syn=float(alpha), **fields), 1.0

    def event_form(self, spec: CubaLIFSpec) -> EventForm:
        form = leaky_event_form(spec, spiking=True)
        inv_tau_syn = event_inv_tau(spec.decay_syn, spec.dt)
        return dataclasses.replace(form, inv_tau_syn=inv_tau_syn, charge=spec.charge_rate)


def _euler(spec: CubaLIFSpec) -> bool:
    """The variant snnTorch's Synaptic runs, exported in its Euler convention."""
    return nir.euler(spec) and spec.decay_syn < 1.0


CUBA_LIF_KIND = register(CubaLIF())
