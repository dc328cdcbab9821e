"""Tiny untrained models for the exporter tests (seeded, CPU, milliseconds to build)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from runtime.neuron import NeuronSpec, make_spec
from trainer.config import Config, DataConfig, MethodConfig, ModelConfig, NeuronConfig
from trainer.layers import NeuronLayer, Sequence, Stateless
from trainer.models import SpikingNet, build_model

# Every spiking variant of the protocol (spike x reset x clamp), an IF neuron and LI.
VARIANTS = [
    NeuronSpec("LIF", 0.8, 1.0, reset, spike, v_min, 1.0)
    for spike in ("single", "multi")
    for reset in ("subtract", "zero")
    for v_min in (-math.inf, -0.5)
]
VARIANTS += [NeuronSpec("IF", 1.0, 0.75, "subtract", "multi", -math.inf, 1.0)]
# the two-state kinds, with different spike/reset/clamp rules
VARIANTS += [
    make_spec("CubaLIF", decay=0.8, decay_syn=0.6, v_th=1.0),
    make_spec("CubaLIF", decay=0.9, decay_syn=0.5, syn_gain=0.4, v_th=0.8, reset="zero", spike="multi", v_min=-0.5),
    make_spec("ALIF", decay=0.8, decay_adapt=0.7, beta=0.4, v_th=1.0),
    make_spec("ALIF", decay=1.0, decay_adapt=0.9, beta=0.2, v_th=0.7, spike="multi", v_min=-0.5),
]


def config(
    name: str = "2C1FC",
    width: int = 4,
    bn: bool = True,
    bias: bool = True,
    readout: str = "mean",
    in_shape: tuple[int, int, int] = (2, 8, 8),
    kind: str = "LIF",
    spike: str = "single",
    reset: str = "subtract",
    v_min: float = -math.inf,
    data: str = "digits",
    extra: dict | None = None,
) -> Config:
    cfg = Config(
        ModelConfig(
            name=name, stages=2, width=width, bias=bias, bn=bn, readout=readout, num_classes=10, in_shape=in_shape
        ),
        NeuronConfig(
            make_spec(
                kind,
                decay=1.0 if kind == "IF" else 0.7,
                v_th=1.0,
                reset=reset,
                spike=spike,
                v_min=v_min,
                dt=1.0,
                **(extra or {}),
            )
        ),
        DataConfig(spec=data, kind="events" if ":" not in data else "static", shape=in_shape, duration_us=1000.0),
        MethodConfig(),
    )
    return cfg.with_step_dt().validate()


def randomize(model: nn.Module, seed: int = 0, gain: float = 1.5) -> nn.Module:
    """Weights large enough to spike, and non-trivial BatchNorm statistics to fold."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * gain / math.sqrt(m.weight[0].numel()))
                if m.bias is not None:
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.3)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
    return model.eval()


def model(cfg: Config, seed: int = 0) -> SpikingNet:
    torch.manual_seed(seed)
    return randomize(build_model(cfg), seed)


def variants_net(seed: int = 0) -> tuple[Config, SpikingNet]:
    """One net with a layer of every variant in a chain, ending in an LI readout."""
    width, cfg = 24, config(readout="li")
    step = cfg.neuron.spec.dt  # every neuron steps by the one bin of the data
    layers: list[nn.Module] = [Stateless(nn.Flatten()), Stateless(nn.Linear(2 * 8 * 8, width))]
    for spec in VARIANTS:
        layers += [NeuronLayer(dataclasses.replace(spec, dt=step)), Stateless(nn.Linear(width, width))]
    layers[-1] = Stateless(nn.Linear(width, 10))
    layers.append(NeuronLayer(NeuronSpec("LI", 0.9, 1.0, "subtract", "single", -math.inf, step)))
    net = randomize(SpikingNet([Sequence(layers)], readout="li"), seed, gain=2.0)
    return cfg, net


def inputs(cfg: Config, T: int = 5, batch: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(1.0, (T, batch, *cfg.model.in_shape)).astype(np.float32)


def static_checkpoint(path: Path) -> Path:
    """A tiny static-input checkpoint (1C1FCW4 on 8x8 digits) written to ``path``."""
    from trainer.checkpoint import save_checkpoint

    cfg = config(name="1C1FCW4", in_shape=(1, 8, 8), data="digits:static")
    save_checkpoint(path, cfg, model(cfg), {"test_accuracy": 0.0})
    return path


@torch.no_grad()
def run_steps(model: SpikingNet, x: torch.Tensor) -> torch.Tensor:
    """``model.step`` over a whole sequence ``[T, B, ...]`` from the zero state: the output of
    every step ``[T, B, classes]`` (what export traces; equals ``forward`` at one T for every stage)."""
    states: list = [None] * model.n_states
    ys = []
    for t, x_t in enumerate(x):
        y, states = model.step(x_t, t, states)
        ys.append(y)
    return torch.stack(ys)
