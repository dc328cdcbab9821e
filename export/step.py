"""The one-time-step module every format exports: ``(x, states) -> (y, *new_states)``.

The caller owns the time loop (DESIGN.md §4): states go in and come out explicitly, with
zeros at t = 0, so a runtime can choose T, exit early or stream.
"""

from __future__ import annotations

import torch
from torch import nn

from trainer.layers import returned
from trainer.models import SpikingNet


class StepModule(nn.Module):
    """One step of a :class:`SpikingNet` with every state an explicit tensor."""

    def __init__(self, net: SpikingNet, boundaries: bool = False):
        super().__init__()
        self.net = net
        self.boundaries = boundaries  # also return what each stage but the last outputs

    def forward(self, x: torch.Tensor, states: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        if not self.boundaries:
            y, out = self.net.step(x, 0, list(states))  # a SpikingNet's step does not depend on t
            return (y, *returned(out))
        new: list[torch.Tensor] = []
        cuts = []
        for stage in self.net.stages:  # step_chain over the stages, keeping each stage's output
            x, s = stage.step(x, list(states[len(new) : len(new) + stage.n_states]))
            new += returned(s)
            cuts.append(x)
        return (x, *new, *cuts[:-1])


@torch.no_grad()
def state_shapes(net: SpikingNet, in_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Per-sample shape of every state, found by one step on a zero input."""
    _, states = net.step(torch.zeros(1, *in_shape), 0, [None] * net.n_states)
    return [tuple(s.shape[1:]) for s in returned(states)]


def zero_states(shapes: list[tuple[int, ...]], batch: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.zeros(batch, *s) for s in shapes)
