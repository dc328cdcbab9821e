"""Layers with explicit state, runnable one step at a time or over a whole sequence.

Every layer has ``n_states`` (how many state tensors it owns) and two forms:

* ``step(x, states) -> (y, states)``: one time step; ``states`` is a list of tensors
  (``None`` entries mean the zero state of t = 0). This is what export traces.
* ``seq(x) -> y`` on ``[T, B, ...]``, from the zero state: stateless layers run on all
  T·B frames at once (fast, and BatchNorm sees the whole T·B batch, as in tdBN), neurons
  loop over time. A ``Stateless(..., per_step=True)`` layer runs each step's frames on
  their own instead: time-step-wise BatchNorm (statistics of one step's batch), the same
  computation as ``step`` and so what online training (``trainer.online``) sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch
from torch import nn

from runtime.neuron import NeuronSpec

from .module_list import ModuleListOf
from .neurons import Neuron
from .surrogate import DEFAULT_SURROGATE

if TYPE_CHECKING:
    from export.neuron import DeployNeuron

States = list[torch.Tensor | None]


class Stateless(nn.Module):
    """A torch module without state (conv, linear, BatchNorm, pooling, flatten)."""

    n_states = 0

    def __init__(self, module: nn.Module, per_step: bool = False):
        super().__init__()
        self.module = module
        self.per_step = per_step

    def step(self, x: torch.Tensor, states: States) -> tuple[torch.Tensor, States]:
        return self.module(x), []

    def seq(self, x: torch.Tensor) -> torch.Tensor:
        if self.per_step:
            return torch.stack([self.module(x_t) for x_t in x])
        y = self.module(x.flatten(0, 1))
        return y.unflatten(0, x.shape[:2])


class NeuronLayer(nn.Module):
    """A spiking (or leaky-integrator) layer: one state tensor per state variable of its
    kind (``spec.n_states``: the membrane first)."""

    def __init__(self, spec: NeuronSpec, surrogate: str = DEFAULT_SURROGATE):
        super().__init__()
        # export swaps in its DeployNeuron (same call and spec, no surrogate): export.prepare
        self.neuron: Neuron | DeployNeuron = Neuron(spec, surrogate)

    @property
    def spec(self) -> NeuronSpec:
        return self.neuron.spec

    @property
    def n_states(self) -> int:
        return self.spec.n_states

    def step(self, x: torch.Tensor, states: States) -> tuple[torch.Tensor, States]:
        y, new = self.neuron(x, None if states[0] is None else tuple(states))
        return y, list(new)

    def seq(self, x: torch.Tensor) -> torch.Tensor:
        state, out = None, []
        for x_t in x:
            y, state = self.neuron(x_t, state)
            out.append(y)
        return torch.stack(out)


def returned(states: States) -> list[torch.Tensor]:
    """The states a step returned, typed as what they are: tensors (None, the zero state,
    is only ever an input)."""
    if any(s is None for s in states):
        raise ValueError("a step returned a None state")
    return [s for s in states if s is not None]


def step_chain(modules: Iterable[Layer], x: torch.Tensor, states: States) -> tuple[torch.Tensor, States]:
    """One step through ``modules`` in order; each takes the next ``n_states`` states."""
    new: States = []
    for m in modules:
        x, s = m.step(x, states[len(new) : len(new) + m.n_states])
        new += s
    return x, new


class Sequence(nn.Module):
    """Layers applied in order; their states are concatenated in the same order."""

    def __init__(self, layers: list[Layer]):
        super().__init__()
        self.layers: ModuleListOf[Layer] = ModuleListOf(layers)

    @property
    def n_states(self) -> int:
        return sum(layer.n_states for layer in self.layers)

    def step(self, x: torch.Tensor, states: States) -> tuple[torch.Tensor, States]:
        return step_chain(self.layers, x, states)

    def seq(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer.seq(x)
        return x


class Residual(nn.Module):
    """``neuron(body(x) + shortcut(x))``: the spiking ResNet basic block's skeleton."""

    def __init__(self, body: Sequence, shortcut: Sequence, neuron: NeuronLayer):
        super().__init__()
        self.body, self.shortcut, self.neuron = body, shortcut, neuron

    @property
    def n_states(self) -> int:
        return self.body.n_states + self.shortcut.n_states + self.neuron.n_states

    def step(self, x: torch.Tensor, states: States) -> tuple[torch.Tensor, States]:
        nb, ns = self.body.n_states, self.shortcut.n_states
        y, sb = self.body.step(x, states[:nb])
        r, ss = self.shortcut.step(x, states[nb : nb + ns])
        out, sn = self.neuron.step(y + r, states[nb + ns :])
        return out, sb + ss + sn

    def seq(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron.seq(self.body.seq(x) + self.shortcut.seq(x))


# Every layer kind: what a Sequence holds (each has n_states, step and seq).
Layer = Stateless | NeuronLayer | Sequence | Residual

Keep = Callable[[list[Layer], Layer, str], "Layer | None"]


def rewrite(layer: Layer, where: str, keep: Keep, leaf: Callable[[Layer, str], None]) -> None:
    """Rewrite a layer tree in place, depth first in execution order (BatchNorm folding,
    export preparation). In each :class:`Sequence`, every layer that is not itself a
    Sequence or :class:`Residual` goes to ``keep(kept, layer, path)`` with the layers kept
    before it: it returns the layer to keep (itself or a replacement) or None (dropped, or
    merged into ``kept``). A Residual's neuron, and a ``layer`` that is no container, go
    to ``leaf(layer, path)``. Paths are as in ``named_modules`` below ``where``."""
    if isinstance(layer, Sequence):
        kept: list[Layer] = []
        for i, sub in enumerate(layer.layers):
            path = f"{where}.layers.{i}"
            if isinstance(sub, (Sequence, Residual)):
                rewrite(sub, path, keep, leaf)
                kept.append(sub)
            elif (new := keep(kept, sub, path)) is not None:
                kept.append(new)
        layer.layers = ModuleListOf(kept)
    elif isinstance(layer, Residual):
        rewrite(layer.body, f"{where}.body", keep, leaf)
        rewrite(layer.shortcut, f"{where}.shortcut", keep, leaf)
        leaf(layer.neuron, f"{where}.neuron")
    else:
        leaf(layer, where)
