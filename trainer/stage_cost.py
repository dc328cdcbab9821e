"""Synaptic operations, spikes and energy of each stage in a run at a per-stage
configuration, counted with forward hooks on the torch model.

Counting follows the runtime's cost model (:mod:`runtime.cost`), so a configuration is
reported like a uniform T: every Conv/Linear has a dense cost of ``output elements x
fan-in`` multiply-accumulates per step; fed by spikes (or event frames, or the summed
spike groups of the temporal transformation module) it costs accumulates ``dense x mean
input value`` (the spike rate, counts included); fed by a static image (the first layer of
a repeat-encoded model) it costs dense MACs. Energy: ``runtime.cost.energy_pj``, reported in µJ.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from runtime.cost import energy_pj

from .models import SpikingNet
from .neurons import Neuron
from .weight_std import WeightStandardized

# a WeightStandardized layer runs its inner conv/linear without calling it (no hooks
# there): it is counted as the synaptic layer itself
SYNAPTIC = (nn.Conv2d, nn.Linear, WeightStandardized)


@dataclass
class StageCounts:
    """Totals of one stage over every sample and step counted."""

    macs: float = 0.0
    acs: float = 0.0
    spikes: float = 0.0
    neuron_steps: float = 0.0  # neurons x steps x samples: the denominator of the firing rate

    @property
    def rate(self) -> float:
        return self.spikes / self.neuron_steps if self.neuron_steps else 0.0


@dataclass
class RunCounts:
    stages: list[StageCounts]
    samples: int = 0
    stage_T: list[int] = field(default_factory=list)

    def per_sample(self) -> dict[str, float]:
        """MACs, ACs and energy (µJ, as ``runtime run`` reports it) per sample."""
        macs = sum(s.macs for s in self.stages) / max(self.samples, 1)
        acs = sum(s.acs for s in self.stages) / max(self.samples, 1)
        return {"macs": macs, "acs": acs, "energy_uj": float(energy_pj(np.float64(macs), np.float64(acs))) * 1e-6}

    def stage_energy_uj(self) -> np.ndarray:
        """Energy of each stage per sample, µJ."""
        n = max(self.samples, 1)
        return np.array([float(energy_pj(np.float64(s.macs / n), np.float64(s.acs / n))) for s in self.stages]) * 1e-6

    def stage_rates(self) -> np.ndarray:
        return np.array([s.rate for s in self.stages])


@contextmanager
def counting(model: SpikingNet, dense_input: bool) -> Iterator[RunCounts]:
    """Count every forward of ``model`` inside the block (per stage); ``dense_input``: the
    first layer's inputs are real values (MACs), else spikes (runtime.protocol.DENSE_KINDS)."""
    counts = RunCounts([StageCounts() for _ in model.stages])
    handles = []
    first = True
    for stage, c in zip(model.stages, counts.stages):
        wrapped = {id(m.module) for m in stage.modules() if isinstance(m, WeightStandardized)}
        for mod in stage.modules():
            if id(mod) in wrapped:
                continue
            if isinstance(mod, SYNAPTIC):
                handles.append(mod.register_forward_hook(_synapse_hook(c, dense=dense_input and first)))
                first = False
            elif isinstance(mod, Neuron) and mod.spec.spiking:
                handles.append(mod.register_forward_hook(_neuron_hook(c)))
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()


def _synapse_hook(c: StageCounts, dense: bool):
    def hook(
        mod: nn.Conv2d | nn.Linear | WeightStandardized, inputs: tuple[torch.Tensor, ...], out: torch.Tensor
    ) -> None:
        w = mod.module.weight if isinstance(mod, WeightStandardized) else mod.weight
        macs = float(out.numel()) * float(w[0].numel())  # output elements x fan-in
        if dense:
            c.macs += macs
        else:
            c.acs += macs * float(inputs[0].detach().double().mean())

    return hook


def _neuron_hook(c: StageCounts):
    def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], out: tuple[torch.Tensor, object]) -> None:
        y = out[0]
        c.spikes += float(y.detach().double().sum())
        c.neuron_steps += float(y.numel())

    return hook
