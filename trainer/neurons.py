"""Torch neurons with explicit state: one step function per neuron kind, thin modules.

The maths of each kind is its module in :mod:`runtime.neuron` (DESIGN.md §1), written
here once in torch, in the same operation order as the numpy reference so float32
results agree bit for bit. The same step serves training (spikes through a surrogate
gradient) and deployment (the exact spike rule, no autograd Function, which TorchScript
and torch.export can serialise): only the ``spike`` rule passed in differs.

State is passed in and out: ``forward(x, state) -> (out, state)`` with ``state`` a tuple
of one tensor per state variable of the kind; ``state=None`` means zeros (t = 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from runtime.neuron import ALIFSpec, CubaLIFSpec, NeuronSpec, SpecError, kind_of

from .surrogate import DEFAULT_SURROGATE, SpikeFn, get_surrogate

State = tuple[torch.Tensor, ...]
Threshold = torch.Tensor | float
SpikeRule = Callable[[torch.Tensor, Threshold], torch.Tensor]  # (v, theta) -> spikes
TorchStep = Callable[[NeuronSpec, State, torch.Tensor, SpikeRule], tuple[torch.Tensor, State]]


def spike_count(spec: NeuronSpec, v: torch.Tensor, theta: Threshold) -> torch.Tensor:
    """Exact forward spike rule (no gradient path): 1[v >= theta] or floor(v / theta)."""
    if spec.spike == "single":
        return (v >= theta).to(v.dtype)
    return torch.where(v >= theta, torch.floor(v / theta), torch.zeros_like(v))


def exact_rule(spec: NeuronSpec) -> SpikeRule:
    return lambda v, theta: spike_count(spec, v, theta)


def surrogate_rule(spec: NeuronSpec, surrogate: str, param: float | None = None) -> SpikeRule:
    """The exact forward with the surrogate derivative of ``v - theta`` in the backward
    (so gradients reach an adaptive threshold too)."""
    fn, default = get_surrogate(surrogate)
    width = default if param is None else param

    def rule(v: torch.Tensor, theta: Threshold) -> torch.Tensor:
        return SpikeFn.apply(v - theta, spike_count(spec, v.detach(), theta), 0.0, fn, width)

    return rule


def reset_clamp(spec: NeuronSpec, v: torch.Tensor, s: torch.Tensor, theta: Threshold) -> torch.Tensor:
    if spec.reset == "subtract":
        u = v - theta * s
    else:  # v * (s == 0), written so the reset keeps its surrogate gradient; a negative count
        # (a threshold an explicit ALIF state made negative) resets too, as numpy's and ONNX's
        u = v * (1 - torch.where(s < 0, torch.ones_like(s), torch.clamp(s, max=1.0)))
    if spec.v_min != -math.inf:
        u = torch.clamp(u, min=spec.v_min)
    return u


def lif_step(spec: NeuronSpec, state: State, current: torch.Tensor, spike: SpikeRule) -> tuple[torch.Tensor, State]:
    (u_prev,) = state
    v = spec.decay * u_prev + current
    s = spike(v, spec.v_th)
    return s, (reset_clamp(spec, v, s, spec.v_th),)


def li_step(spec: NeuronSpec, state: State, current: torch.Tensor, spike: SpikeRule) -> tuple[torch.Tensor, State]:
    (u_prev,) = state
    v = spec.decay * u_prev + current
    return v, (v,)


def cuba_lif_step(
    spec: NeuronSpec, state: State, current: torch.Tensor, spike: SpikeRule
) -> tuple[torch.Tensor, State]:
    assert isinstance(spec, CubaLIFSpec)
    u_prev, i_prev = state
    i = spec.decay_syn * i_prev + current
    v = spec.decay * u_prev + spec.syn_gain * i
    s = spike(v, spec.v_th)
    return s, (reset_clamp(spec, v, s, spec.v_th), i)


def alif_step(spec: NeuronSpec, state: State, current: torch.Tensor, spike: SpikeRule) -> tuple[torch.Tensor, State]:
    assert isinstance(spec, ALIFSpec)
    u_prev, a_prev = state
    a = spec.decay_adapt * a_prev
    v = spec.decay * u_prev + current
    theta = spec.v_th + a
    s = spike(v, theta)
    return s, (reset_clamp(spec, v, s, theta), a + spec.beta * s)


# One torch step per registered kind (a test checks that every kind has one).
TORCH_STEPS: dict[str, TorchStep] = {
    "LIF": lif_step,
    "IF": lif_step,
    "LI": li_step,
    "CubaLIF": cuba_lif_step,
    "ALIF": alif_step,
}


def neuron_step(
    spec: NeuronSpec, state: State, current: torch.Tensor, spike: SpikeRule | None = None
) -> tuple[torch.Tensor, State]:
    """One step of ``spec``; ``spike`` None: the exact rule (deployment)."""
    return TORCH_STEPS[spec.kind](spec, state, current, spike or exact_rule(spec))


def fire_from_rest(spec: NeuronSpec, current: torch.Tensor, spike: SpikeRule) -> torch.Tensor:
    """The output of one step from the zero state, the new state not computed: a
    stateless ("turn-off") neuron, whose membrane is zero at every step (T-RevSNN).

    From the zero state every kind's membrane is its input times ``spec.rest_gain``
    (``v = decay * 0 + current``; CubaLIF's ``i = decay_syn * 0 + current``,
    ``v = decay * 0 + syn_gain * i``) and ALIF's threshold is ``v_th`` (``a = 0``), so this
    equals ``neuron_step(spec, zero_state, current, spike)[0]`` (tests/test_neuron.py, bit
    for bit with gradients) without the zeros, the decay products and the reset that the
    caller would throw away."""
    v = current if spec.rest_gain == 1.0 else spec.rest_gain * current
    return spike(v, spec.v_th) if spec.spiking else v  # a non-spiking kind (LI) outputs its membrane


def zero_state(spec: NeuronSpec, like: torch.Tensor) -> State:
    return tuple(torch.zeros_like(like) for _ in kind_of(spec.kind).states)


class Neuron(nn.Module):
    """A neuron layer for training: ``forward(x, state) -> (out, state)``."""

    def __init__(self, spec: NeuronSpec, surrogate: str = DEFAULT_SURROGATE, param: float | None = None):
        super().__init__()
        if spec.kind not in TORCH_STEPS:  # a registered kind the trainer has no step for (was a KeyError mid-run)
            raise SpecError(
                f"neuron kind {spec.kind!r} has no torch step (trainer/neurons.py TORCH_STEPS); the trainer "
                f"runs {sorted(TORCH_STEPS)}"
            )
        self.rule = surrogate_rule(spec, surrogate, param)  # fails at build time on a bad name
        self.spec, self.surrogate, self.param = spec, surrogate, param

    def forward(self, x: torch.Tensor, state: State | None, stateless: bool = False) -> tuple[torch.Tensor, State]:
        """``stateless``: the output of one step from the zero state and no state (``()``,
        :func:`fire_from_rest`); through ``__call__`` so forward hooks see it too."""
        if stateless:
            return fire_from_rest(self.spec, x, self.rule), ()
        return neuron_step(self.spec, zero_state(self.spec, x) if state is None else state, x, self.rule)

    def fire(self, x: torch.Tensor) -> torch.Tensor:
        """``forward(x, None)[0]`` for a stateless neuron, without the state update."""
        return self(x, None, stateless=True)[0]

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.spec.to_dict().items()) + f", surrogate={self.surrogate}"
