"""The NIR mapping of each neuron kind, both ways (torch-free: numpy only).

One table per direction, keyed by the kind (``IF``, ``LIF``, ``LI``), so that the
neuron registry (DESIGN.md §1: each kind has one home) can take these functions over
as they are; nothing else in ``export/`` branches on the kind.

Export (``TO_NIR[kind](spec, shape) -> (NIR node class name, parameters)``): NIR has no
field for the reset, the spike rule, a lower clamp or dt, so the full spec goes into the
node's metadata; the parameters are chosen so that the peer that can express the
variant reads it correctly (docs/nir_mapping.md):

* ``LIF`` with one spike per step and reset to zero (what snnTorch's ``Leaky`` runs):
  forward Euler of NIR's ODE at one step = ``SNNTORCH_DT`` seconds,
  ``tau = dt / (1 - decay)``, ``r = 1 / (1 - decay)``, so that
  ``v + dt / tau * (-v + r * I) = decay * v + I``: snnTorch's own export convention.
* every other ``LIF`` and ``LI``: ``tau`` in steps, ``decay = exp(-1 / tau)``, ``r = 1``
  (an input adds to the membrane): how sinabs reads NIR (and sinabs requires ``r = 1``
  on ``LI``).
* ``IF``: ``r = 1``, ``v_threshold = v_th``.

Parameters are written per channel, shape ``[C, 1, 1]`` for a ``[C, H, W]`` layer (the
value is the same for every neuron of a layer): sinabs 3.1.3 fails on full 3-D arrays
(``any(node.v_leak)`` on a 3-D array) and every peer broadcasts ``[C, 1, 1]``.

What each peer runs for an exported node (``PEER_DIFFERENCES[kind](spec)``: per peer a
phrase, or None for the same spikes) is what the export warns and
tests/test_nir_peers.py proves cell by cell.

Import (``FROM_NIR[kind](params, source, dt) -> (spec, gain)``): a NIR node alone does
not fix a discrete-time neuron; each source framework discretises it its own way
(``CONVENTIONS``), and ``gain`` is the factor the input is scaled by before the
membrane (folded into the weight layer before the neuron by the importer).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from runtime.neuron import NeuronSpec

SNNTORCH_DT = 1e-4  # seconds per step, hard-coded in snnTorch 1.0.0's NIR import and export
NORSE_DT = 1e-3  # norse 1.1.0's default dt of from_nir / to_nir

Params = dict[str, np.ndarray]


class NirNeuronError(ValueError):
    """A NIR neuron node that cannot be mapped; the message names the node's problem."""


def _param_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[0],) + (1,) * (len(shape) - 1) if len(shape) > 1 else shape


def _full(shape: tuple[int, ...], value: float) -> np.ndarray:
    return np.full(_param_shape(shape), value, np.float32)


def _euler_lif(spec: NeuronSpec) -> bool:
    return spec.spike == "single" and spec.reset == "zero"


def _if_to_nir(spec: NeuronSpec, shape: tuple[int, ...]) -> tuple[str, Params]:
    return "IF", {"r": _full(shape, 1.0), "v_threshold": _full(shape, spec.v_th)}


def _leak_params(spec: NeuronSpec, shape: tuple[int, ...]) -> Params:
    if spec.spiking and _euler_lif(spec) and spec.decay < 1.0:
        tau = SNNTORCH_DT / (1.0 - spec.decay)
        return {"tau": _full(shape, tau), "r": _full(shape, tau / SNNTORCH_DT), "v_leak": _full(shape, 0.0)}
    tau = math.inf if spec.decay == 1.0 else -1.0 / math.log(spec.decay)  # no leak: exp(-1/inf) = 1
    return {"tau": _full(shape, tau), "r": _full(shape, 1.0), "v_leak": _full(shape, 0.0)}


def _lif_to_nir(spec: NeuronSpec, shape: tuple[int, ...]) -> tuple[str, Params]:
    return "LIF", {**_leak_params(spec, shape), "v_threshold": _full(shape, spec.v_th)}


def _li_to_nir(spec: NeuronSpec, shape: tuple[int, ...]) -> tuple[str, Params]:
    return "LI", _leak_params(spec, shape)


TO_NIR: dict[str, Callable[[NeuronSpec, tuple[int, ...]], tuple[str, Params]]] = {
    "IF": _if_to_nir,
    "LIF": _lif_to_nir,
    "LI": _li_to_nir,
}


def nir_time_convention(spec: NeuronSpec) -> str:
    """How the node's ``tau`` / ``r`` are to be read (written to the node's metadata)."""
    if spec.kind == "IF":
        return "none"
    if spec.spiking and _euler_lif(spec) and spec.decay < 1.0:
        return f"euler dt={SNNTORCH_DT}s"
    return "exp steps"


# -- what each peer runs for an exported node (None: the same spikes) -----------------

PEERS = {"sinabs": "sinabs 3.1.3", "snntorch": "snnTorch 1.0.0", "norse": "norse 1.1.0"}


def _rules(spec: NeuronSpec, spike: str, reset: str, clamp: str, v_min: float) -> str | None:
    """None when ``spec`` has these rules; else the peer's rules as a phrase."""
    if (spec.spike, spec.reset, spec.v_min) == (spike, reset, v_min):
        return None
    fires = "floor(v/v_th) spikes per step" if spike == "multi" else "one spike per step"
    return f"{fires}, {'subtract' if reset == 'subtract' else 'zero'} reset, {clamp}"


def _if_peers(spec: NeuronSpec) -> dict[str, str | None]:
    sinabs = _rules(spec, "multi", "subtract", "a membrane clamp at -v_th", -spec.v_th)
    norse = _rules(spec, "single", "zero", "no clamp", -math.inf)
    return {
        "sinabs": sinabs and f"runs IF with {sinabs}",
        "snntorch": "builds IF as Leaky(beta=0.9) returning a tuple: the graph does not run",
        "norse": norse and f"runs IF with {norse}",
    }


def _lif_peers(spec: NeuronSpec) -> dict[str, str | None]:
    sinabs = _rules(spec, "multi", "subtract", "no clamp", -math.inf)
    snntorch = _rules(spec, "single", "zero", "no clamp", -math.inf)
    return {
        "sinabs": sinabs and f"runs LIF with {sinabs}" + (", and reads tau in steps" if _euler_lif(spec) else ""),
        "snntorch": snntorch
        and f"runs LIF with {snntorch}" + ("" if _euler_lif(spec) else ", and reads tau with dt = 1e-4 s"),
        "norse": "integrates LIF with forward Euler and ignores r (input scaled by dt/tau), one spike, zero reset",
    }


def _li_peers(spec: NeuronSpec) -> dict[str, str | None]:
    return {
        "sinabs": None,
        "snntorch": "has no LI import: the graph does not load",
        "norse": "has no LI import: it drops the LI node and outputs the LI's input",
    }


PEER_DIFFERENCES: dict[str, Callable[[NeuronSpec], dict[str, str | None]]] = {
    "IF": _if_peers,
    "LIF": _lif_peers,
    "LI": _li_peers,
}


def peer_notes(specs: list[NeuronSpec]) -> dict[str, str | None]:
    """Per peer: what it runs differently for these layers, as one phrase (None: nothing)."""
    notes: dict[str, list[str]] = {peer: [] for peer in PEERS}
    for spec in specs:
        for peer, note in PEER_DIFFERENCES[spec.kind](spec).items():
            if note and note not in notes[peer]:
                notes[peer].append(note)
    return {peer: "; ".join(n) or None for peer, n in notes.items()}


# -- import ------------------------------------------------------------------------

# source -> what it assumes when it runs a NIR neuron node (stated by the importer)
CONVENTIONS: dict[str, str] = {
    "flexsnn": "every neuron field from the node's flexsnn metadata",
    "sinabs": (
        "sinabs 3.1.3: tau in steps, decay = exp(-1/tau), input added (r ignored); IF and LIF fire "
        "floor(v/v_th) spikes per step and subtract; IF clamps the membrane at -v_th"
    ),
    "snntorch": (
        f"snnTorch 1.0.0: dt = {SNNTORCH_DT} s fixed, LIF beta = 1 - dt/tau, threshold / (r*dt/tau), "
        "input added, one spike, reset to zero"
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
# where the source's convention takes a step duration (seconds), its default (None: required)
DT_DEFAULTS: dict[str, float | None] = {"norse": NORSE_DT, "nir": None}
FIRES_ABOVE = ("snntorch", "norse")  # these fire on v > v_th; flexsnn fires on v >= v_th


def _one(params: Params, name: str) -> float:
    """The single value of a per-neuron parameter (flexsnn has one value per layer)."""
    v = np.asarray(params[name], dtype=np.float32)
    if v.size == 0 or not np.all(v == v.flat[0]):
        raise NirNeuronError(f"parameter {name!r} differs between neurons; flexsnn has one value per layer")
    return float(v.flat[0])


def _no_leak_potential(params: Params) -> None:
    if "v_leak" in params and _one(params, "v_leak") != 0.0:
        raise NirNeuronError("v_leak is not 0; flexsnn neurons leak towards 0")


def _spec(kind: str, decay: float, v_th: float, reset: str, spike: str, v_min: float, dt: float) -> NeuronSpec:
    try:
        return NeuronSpec(kind, decay, v_th, reset, spike, v_min, dt)
    except ValueError as e:
        raise NirNeuronError(str(e)) from None


def _if_from_nir(params: Params, source: str, dt: float) -> tuple[NeuronSpec, float]:
    v_th, r = _one(params, "v_threshold"), _one(params, "r")
    if source == "sinabs":
        return _spec("IF", 1.0, v_th, "subtract", "multi", -v_th, 1.0), 1.0
    if source == "snntorch":
        raise NirNeuronError(
            "snnTorch 1.0.0 neither writes IF nodes nor runs them (its import builds "
            "Leaky(beta=0.9)); import this graph with --source nir or norse"
        )
    if source == "norse":
        return _spec("IF", 1.0, v_th, "zero", "single", -math.inf, dt * 1e6), 1.0
    return _spec("IF", 1.0, v_th, "zero", "single", -math.inf, dt * 1e6), r * dt  # nir


def _leak_from_nir(params: Params, source: str, dt: float) -> tuple[float, float, float, float]:
    """``(decay, input gain, threshold scale, spec dt)`` of a leaky node."""
    _no_leak_potential(params)
    tau, r = np.float32(_one(params, "tau")), _one(params, "r")
    if source == "sinabs":
        return float(np.exp(np.float32(-1.0) / tau)), 1.0, 1.0, 1.0
    if source == "snntorch":  # in float32 as snnTorch computes it; the threshold absorbs r*dt/tau
        beta = np.float32(1.0) - np.float32(SNNTORCH_DT) / tau
        w_scale = r * SNNTORCH_DT / float(tau)
        return float(beta), 1.0, 1.0 if np.isclose(w_scale, 1.0) else 1.0 / w_scale, SNNTORCH_DT * 1e6
    if source == "norse":  # norse's module computes dt * tau_mem_inv with tau_mem_inv = dt / tau_file
        a = float(np.float32(dt) * (np.float32(dt) / tau))
        return 1.0 - a, a, 1.0, dt * 1e6
    decay = math.exp(-dt / float(tau))  # nir
    return decay, r * (1.0 - decay), 1.0, dt * 1e6


def _lif_from_nir(params: Params, source: str, dt: float) -> tuple[NeuronSpec, float]:
    decay, gain, th_scale, spec_dt = _leak_from_nir(params, source, dt)
    v_th = _one(params, "v_threshold") * th_scale
    if source == "sinabs":
        return _spec("LIF", decay, v_th, "subtract", "multi", -math.inf, spec_dt), gain
    return _spec("LIF", decay, v_th, "zero", "single", -math.inf, spec_dt), gain


def _li_from_nir(params: Params, source: str, dt: float) -> tuple[NeuronSpec, float]:
    decay, gain, _, spec_dt = _leak_from_nir(params, source, dt)
    return _spec("LI", decay, 1.0, "subtract", "single", -math.inf, spec_dt), gain


FROM_NIR: dict[str, Callable[[Params, str, float], tuple[NeuronSpec, float]]] = {
    "IF": _if_from_nir,
    "LIF": _lif_from_nir,
    "LI": _li_from_nir,
}
PARAMS: dict[str, tuple[str, ...]] = {
    "IF": ("r", "v_threshold"),
    "LIF": ("tau", "r", "v_leak", "v_threshold"),
    "LI": ("tau", "r", "v_leak"),
}


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
