"""BatchNorm folding and bias removal on a trainer model (MTT appendix A.3: train with
BatchNorm, fold it into the convs, drop the biases, fine-tune the bias-free network for
event-driven hardware). :func:`fold_bn` is the one formula; ``export.prepare`` uses it too.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import nn

from .config import ConfigError
from .layers import Layer, NeuronLayer, Stateless, rewrite
from .models import SpikingNet

WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def fold_bn(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mean: torch.Tensor,
    var: torch.Tensor,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of ``bn(layer(x))`` as one layer: ``w * s``, ``(b - mean) * s + beta`` with
    ``s = gamma / sqrt(var + eps)`` per output channel (dim 0 of ``weight``)."""
    scale = torch.rsqrt(var + eps)
    if gamma is not None:
        scale = scale * gamma
    b = torch.zeros_like(mean) if bias is None else bias
    shift = (b - mean) * scale + (0.0 if beta is None else beta)
    return weight * scale.reshape(-1, *([1] * (weight.dim() - 1))), shift


def weight_layer_before(kept: list[Layer]) -> nn.Conv2d | nn.Linear | None:
    """The conv/linear layer a BatchNorm after the layers ``kept`` folds into; None when
    it follows anything else."""
    prev = kept[-1] if kept else None
    return prev.module if isinstance(prev, Stateless) and isinstance(prev.module, WEIGHT_LAYERS) else None


class Folded(NamedTuple):
    """A model :func:`fold_and_drop` rewrote, and what it did, for the user to be told."""

    model: SpikingNet
    folded: int  # BatchNorm layers folded into the conv/linear before them
    dropped: int  # biases removed: what fine-tuning has to recover (MTT A.3)


@torch.no_grad()
def fold_and_drop(model: nn.Module, fold: bool, drop_bias: bool) -> Folded:
    """A copy of ``model`` with, when ``fold``, every BatchNorm folded into the conv/linear
    before it (running statistics), and with ``drop_bias`` every conv/linear bias removed
    (a kept BatchNorm's layer has none to drop: the models give a conv no bias before one)."""
    if not isinstance(model, SpikingNet):
        raise ConfigError(f"BatchNorm folding applies to layer-sequence models, not {type(model).__name__}")
    folded = 0

    def keep(kept: list[Layer], layer: Layer, where: str) -> Layer | None:
        nonlocal folded
        bn = layer.module if isinstance(layer, Stateless) else None
        if not (fold and isinstance(bn, BATCHNORMS)):
            check(layer, where)
            return layer
        prev = weight_layer_before(kept)
        if prev is None:
            raise ConfigError("a BatchNorm that does not follow a conv/linear layer cannot be folded")
        if bn.running_mean is None or bn.running_var is None:  # track_running_stats off: nothing to fold
            raise ConfigError(f"BatchNorm {where} has no running statistics and cannot be folded")
        w, b = fold_bn(prev.weight, prev.bias, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)
        prev.weight = nn.Parameter(w.detach().clone())
        # the folded bias (b - mean) s + beta: dropped below with the others when asked (A.3)
        prev.bias = nn.Parameter(b.detach().clone())
        folded += 1
        return None

    def check(layer: Layer, where: str) -> None:
        if not isinstance(layer, (Stateless, NeuronLayer)):
            raise ConfigError(f"cannot fold BatchNorm in a {type(layer).__name__}")

    out = copy.deepcopy(model)
    for i, stage in enumerate(out.stages):
        rewrite(stage, f"stages.{i}", keep, check)
    dropped = 0
    for layer in out.modules():
        if drop_bias and isinstance(layer, WEIGHT_LAYERS) and layer.bias is not None:
            layer.bias = None
            dropped += 1
    return Folded(out, folded, dropped)
