"""What every kind's NIR mapping shares (torch-free, numpy only; the nir package is not
imported here): the peers, the source conventions an import assumes, and the parameter
helpers. Each kind's own mapping (``to_nir``, ``from_nir``, ``nir_peers``) lives in its
module (DESIGN.md §1); docs/nir_mapping.md is the table.

Export: NIR has no field for the reset, the spike rule, a lower clamp or dt, so the full
spec goes into the node's metadata; the parameters are chosen so that the peer that can
express the variant reads it correctly:

* one spike per step and reset to zero (what snnTorch's ``Leaky`` and ``Synaptic`` run):
  forward Euler of NIR's ODE at one step = ``SNNTORCH_DT`` seconds,
  ``tau = dt / (1 - decay)``, ``r = 1 / (1 - decay)``, so that
  ``v + dt / tau * (-v + r * I) = decay * v + I``: snnTorch's own export convention;
* every other leaky node: ``tau`` in steps, ``decay = exp(-1 / tau)``, ``r = 1`` (an input
  adds to the membrane): how sinabs reads NIR (and sinabs requires ``r = 1`` on ``LI``).

Parameters are written per channel, shape ``[C, 1, 1]`` for a ``[C, H, W]`` layer (the
value is the same for every neuron of a layer): sinabs 3.1.3 fails on full 3-D arrays
(``any(node.v_leak)`` on a 3-D array) and every peer broadcasts ``[C, 1, 1]``.

Import: a NIR node alone does not fix a discrete-time neuron; each source framework
discretises it its own way (``CONVENTIONS``), and a kind's ``from_nir`` returns
``(spec, gain)``, ``gain`` being the factor the input is scaled by before the membrane
(folded into the weight layer before the neuron by the importer).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import NeuronSpec, NirNeuronError, decay_of, kind_of, make_spec, tau_of

SNNTORCH_DT = 1e-4  # seconds per step, hard-coded in snnTorch 1.0.0's NIR import and export
NORSE_DT = 1e-3  # norse 1.1.0's default dt of from_nir / to_nir


def norse_dt(euler_form: bool, at_default: str = "") -> str:
    """The dt norse's from_nir needs to take one of this file's steps: its Euler step is
    dt/tau, and tau is written in seconds at snnTorch's step (the Euler form) or in steps.
    Its default dt (NORSE_DT) is neither: a stranger's from_nir(graph) of trained LIF models
    in steps left every layer silent (``at_default``: what a kind's line adds of that), and
    of Euler-form files fired about 2.5x our spikes."""
    if euler_form:
        return (
            f"with from_nir(graph, dt={SNNTORCH_DT:g}) as one step (this file's tau is in seconds at snnTorch's "
            f"step; norse's default dt = {NORSE_DT:g} s takes ten steps at once and gives other spikes)"
        )
    return (
        f"with from_nir(graph, dt=1.0) as one step (this file's tau is in steps; norse's default dt = "
        f"{NORSE_DT:g} s gives other spikes{at_default})"
    )


def norse_no_leak(*decays: float) -> str:
    """norse's forward Euler scales a leaky node's input by dt/tau: by 0 where tau is
    infinite (decay 1, no leak), so such a layer never fires there, at any dt (a stranger's
    LIF and CubaLIF files with a decay of 1: every layer silent); a phrase for its line."""
    if not any(d == 1.0 for d in decays):
        return ""
    return "; this file's tau is infinite (decay 1), so norse scales every input by dt/tau = 0: no spike"


Params = dict[str, np.ndarray]

PEERS = {"sinabs": "sinabs 3.1.3", "snntorch": "snnTorch 1.0.0", "norse": "norse 1.1.0"}

# source -> what it assumes when it runs a NIR neuron node (stated by the importer)
CONVENTIONS: dict[str, str] = {
    "flexsnn": "every neuron field from the node's flexsnn metadata",
    "sinabs": (
        "sinabs 3.1.3: tau in steps, decay = exp(-1/tau), input added (r ignored); IF and LIF fire "
        "floor(v/v_th) spikes per step and subtract; IF clamps the membrane at -v_th"
    ),
    "snntorch": (
        f"snnTorch 1.0.0: dt = {SNNTORCH_DT} s fixed, LIF beta = 1 - dt/tau, threshold / (r*dt/tau), "
        "CubaLIF alpha = 1 - dt/tau_syn, threshold / (w_in*dt/tau_syn), input added, one spike, reset to zero"
    ),
    "norse": (
        "norse 1.1.0: its to_nir writes tau = dt/tau_mem_inv, i.e. tau*dt: read back as tau = tau_file/dt; "
        "forward Euler v += dt/tau*(v_leak - v + I) (r ignored), one spike, reset to zero; IF adds the input"
    ),
    "nir": (
        "NIR ODE integrated exactly over dt with the input held: decay = exp(-dt/tau), input * r*(1-decay) "
        "(IF: r*dt); one spike, reset to zero"
    ),
}
SOURCES = tuple(CONVENTIONS)
# NIR stores no reset, spike rule or clamp: a peer's graph is read as that peer's own NIR
# import builds it, which a network made with the peer's defaults need not be (seen: 17 of
# 240 outputs differed for each of the two examples named)
PEER_DEFAULTS_DIFFER = {
    "sinabs": "a sinabs IAF without min_v_mem (its default) does not clamp",
    "snntorch": (
        "a snnTorch Leaky with its default subtract reset does not reset to zero, and a Synaptic with its "
        "default reset_delay=True zeroes its membrane one step late (snnTorch's own import builds "
        "reset_delay=False, as run here)"
    ),
}


def import_warning(source: str) -> str | None:
    """The line an import from ``source`` warns with (None: flexsnn's own files)."""
    if source == "flexsnn":
        return None
    example = PEER_DEFAULTS_DIFFER.get(source)
    return (
        f"NIR holds no reset, spike rule or clamp: this graph runs as {source}'s NIR convention says (above), "
        "not necessarily as the network that wrote it"
        + (f"; e.g. {example}, and gives other spikes here" if example else "")
    )


# where the source's convention takes a step duration (seconds), its default (None: required)
DT_DEFAULTS: dict[str, float | None] = {"norse": NORSE_DT, "nir": None}
FIRES_ABOVE = ("snntorch", "norse")  # these fire on v > v_th; flexsnn fires on v >= v_th
FIRES_ABOVE_NOTE = (
    "fires on v > v_th, flexsnn on v >= v_th: spikes differ where a membrane equals the threshold exactly "
    "(weights on a grid, e.g. quantised, make that common)"
)


def param_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[0],) + (1,) * (len(shape) - 1) if len(shape) > 1 else shape


def full(shape: tuple[int, ...], value: float) -> np.ndarray:
    """One value per channel (``[C, 1, 1]``) for a layer of ``shape``."""
    return np.full(param_shape(shape), value, np.float32)


def euler(spec: NeuronSpec) -> bool:
    """The variant exported in snnTorch's Euler convention: one spike, reset to zero, leaky."""
    return spec.spike == "single" and spec.reset == "zero" and spec.decay < 1.0


def leak_euler(spec: NeuronSpec) -> bool:
    """Whether :func:`leak_params` writes ``spec`` in the Euler convention (spiking nodes
    only; an LI readout is written in steps): what its node's time label says."""
    return spec.spiking and euler(spec)


def steps_tau(decay: float) -> float:
    """``tau`` in steps with ``decay = exp(-1 / tau)``; inf for no leak."""
    return tau_of(decay, 1.0)


def euler_tau(decay: float) -> float:
    """``tau`` in seconds whose forward Euler step at ``SNNTORCH_DT`` is ``decay``."""
    return SNNTORCH_DT / (1.0 - decay)


def leak_params(spec: NeuronSpec, shape: tuple[int, ...]) -> Params:
    """``tau``, ``r``, ``v_leak`` of a one-state leaky node (LIF, LI): snnTorch's Euler
    convention for the variant it runs, ``tau`` in steps with ``r = 1`` otherwise."""
    zero = full(shape, 0.0)
    if leak_euler(spec):
        tau = euler_tau(spec.decay)
        return {"tau": full(shape, tau), "r": full(shape, tau / SNNTORCH_DT), "v_leak": zero}
    return {"tau": full(shape, steps_tau(spec.decay)), "r": full(shape, 1.0), "v_leak": zero}


def snntorch_decay(tau: np.float32) -> np.float32:
    """The decay snnTorch builds from a NIR time constant: ``1 - dt / tau`` in float32, as it
    computes it (the inverse of :func:`euler_tau`)."""
    return np.float32(1.0) - np.float32(SNNTORCH_DT) / tau


def snntorch_silent(spec: NeuronSpec) -> str:
    """What snnTorch makes of a leaky node written in steps (the non-Euler variants, for
    sinabs): it reads ``tau`` as seconds at :data:`SNNTORCH_DT` and divides the threshold by
    ``r * dt / tau``; a phrase with the numbers, for the peer note."""
    tau = steps_tau(spec.decay)
    return (
        f", and reads tau = {tau:.3g} (steps, written for sinabs) as seconds at dt = {SNNTORCH_DT} s: its "
        f"threshold {tau / SNNTORCH_DT:.3g} times ours, decay {float(snntorch_decay(np.float32(tau))):.5f}, "
        "so no spike in practice"
    )


def sinabs_steps(spec: NeuronSpec) -> str:
    """What sinabs makes of a leaky node written in snnTorch's Euler convention: it reads
    ``tau`` (seconds) as steps, ``exp(-1/tau)``; a phrase with the numbers, for the peer note."""
    tau = euler_tau(spec.decay)
    return (
        f", and reads tau = {tau:.3g} (seconds, written for snnTorch's Euler step) as steps: decay "
        f"{decay_of(tau, 1.0):.3g} where ours is {spec.decay:g}"
    )


def time_label(euler_form: bool) -> str:
    """How a leaky node's ``tau`` / ``r`` are to be read (``flexsnn.nir_time``, written by
    each kind's ``nir_time``): snnTorch's Euler convention, or steps."""
    return f"euler dt={SNNTORCH_DT}s" if euler_form else "exp steps"


def rules_phrase(spec: NeuronSpec, spike: str, reset: str, clamp: str, v_min: float) -> str | None:
    """None when ``spec`` has these rules; else the peer's rules as a phrase, and which of
    them this model does not have (a reader saw the peer's rules, not what differed)."""
    if (spec.spike, spec.reset, spec.v_min) == (spike, reset, v_min):
        return None
    own = [_FIRES[spec.spike]] if spec.spike != spike else []
    own += [f"{spec.reset} reset"] if spec.reset != reset else []
    if spec.v_min != v_min:
        own.append("no clamp" if spec.v_min == -math.inf else f"a membrane clamp at {spec.v_min:g}")
    return f"{_FIRES[spike]}, {reset} reset, {clamp}, where this model has {' and '.join(own)}"


_FIRES = {"multi": "floor(v/v_th) spikes per step", "single": "one spike per step"}


def one(params: Params, name: str) -> float:
    """The single value of a per-neuron parameter (flexsnn has one value per layer)."""
    v = np.asarray(params[name], dtype=np.float32)
    if v.size == 0 or not np.all(v == v.flat[0]):
        raise NirNeuronError(f"parameter {name!r} differs between neurons; flexsnn has one value per layer")
    return float(v.flat[0])


def positive(params: Params, name: str, what: str, inf: bool = False) -> float:
    """:func:`one`, a number > 0, finite unless ``inf`` (tau 0 was a ZeroDivisionError
    traceback, a negative tau refused as a derived decay, r 0 imported a network that never
    fires; tau inf is no leak, which flexsnn's own NIR writes for decay 1)."""
    v = one(params, name)
    if not (v > 0.0 and (inf or math.isfinite(v))):
        raise NirNeuronError(f"parameter {name!r} must be a {'' if inf else 'finite '}number > 0 ({what}), got {v:g}")
    return v


TAU = "a time constant"
GAIN = "the input's gain, which this source's convention uses"


def no_leak_potential(params: Params) -> None:
    if "v_leak" in params and one(params, "v_leak") != 0.0:
        raise NirNeuronError("v_leak is not 0; flexsnn neurons leak towards 0")


def make(kind: str, **fields: Any) -> NeuronSpec:
    """A spec built from a NIR node; an invalid one is a :class:`NirNeuronError`."""
    try:
        return make_spec(kind, **fields)
    except ValueError as e:
        raise NirNeuronError(str(e)) from None


def leak_from_nir(params: Params, source: str, dt_s: float) -> tuple[float, float, float, float]:
    """``(decay, input gain, threshold scale, spec dt in µs)`` of a leaky node."""
    no_leak_potential(params)
    # inf: no leak, but in snnTorch's convention, which divides by it (its input gain r*dt/tau: 0)
    tau = np.float32(positive(params, "tau", TAU, inf=source != "snntorch"))
    r = positive(params, "r", GAIN) if source in ("snntorch", "nir") else one(params, "r")
    if source == "sinabs":
        return float(np.exp(np.float32(-1.0) / tau)), 1.0, 1.0, 1.0
    if source == "snntorch":  # in float32 as snnTorch computes it; the threshold absorbs r*dt/tau
        beta = snntorch_decay(tau)
        w_scale = r * SNNTORCH_DT / float(tau)
        return float(beta), 1.0, 1.0 if np.isclose(w_scale, 1.0) else 1.0 / w_scale, SNNTORCH_DT * 1e6
    if source == "norse":  # norse's module computes dt * tau_mem_inv with tau_mem_inv = dt / tau_file
        a = float(np.float32(dt_s) * (np.float32(dt_s) / tau))
        return 1.0 - a, a, 1.0, dt_s * 1e6
    decay = decay_of(float(tau), dt_s)  # nir
    return decay, r * (1.0 - decay), 1.0, dt_s * 1e6


def spec_from_metadata(meta: dict[str, Any]) -> NeuronSpec | None:
    """The full spec a flexsnn export stored in a node's metadata (None: not there)."""
    fields = {k.removeprefix("flexsnn."): v for k, v in meta.items() if k.startswith("flexsnn.")}
    fields.pop("nir_time", None)
    if not fields:
        return None
    try:
        return NeuronSpec.from_dict({k: (v.item() if hasattr(v, "item") else v) for k, v in fields.items()})
    except ValueError as e:
        raise NirNeuronError(f"flexsnn metadata: {e}") from None


def node_kinds() -> tuple[str, ...]:
    """The kinds that have a NIR node; each kind's node carries the kind's own name
    (NIR's ``IF``, ``LIF``, ``LI``, ``CubaLIF``), which is how an import finds the kind."""
    from .base import kinds

    return tuple(k for k in kinds() if kind_of(k).nir_params)


def peer_notes(specs: list[NeuronSpec]) -> dict[str, str | None]:
    """Per peer: what it runs differently for these layers, as one phrase (None: nothing)."""
    notes: dict[str, list[str]] = {peer: [] for peer in PEERS}
    for spec in specs:
        for peer, note in kind_of(spec.kind).nir_peers(spec).items():
            if note and note not in notes[peer]:
                notes[peer].append(note)
    # a peer that runs every layer's rules as we do still compares the other way at the
    # threshold (6% of predictions moved in norse on a model with weights on a 1/16 grid)
    if any(spec.spiking for spec in specs):
        for peer in FIRES_ABOVE:
            notes[peer] = notes[peer] or [FIRES_ABOVE_NOTE]
    return {peer: "; ".join(n) or None for peer, n in notes.items()}
