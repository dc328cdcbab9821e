"""Scaled weight standardisation (sWS): a normalisation that needs no batch statistics.

Brock et al. (NF-Nets, ICLR 2021), used by OTTT and NDOT for online training, where
BatchNorm over all T steps is not available. Per output channel ``o`` (dim 0 of the
weight), with ``N`` the fan-in (the product of the other dims)::

    W_hat[o] = gain[o] * gamma * (W[o] - mean(W[o])) / sqrt(var(W[o]) * N + eps)

``var`` is the population variance; ``gamma = 2.74`` keeps the variance of spiking
activations (the constant of the OTTT code); ``gain`` is learnable (ones at init).

Deployment: the standardised weight is a plain weight. :meth:`WeightStandardized.folded`
returns the wrapped ``nn.Conv2d`` / ``nn.Linear`` with ``W_hat`` as its weight (same
bias), which is all an exporter needs; the forward of the folded layer equals this one.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

GAMMA = 2.74
EPS = 1e-4


def standardize(
    weight: torch.Tensor, gain: torch.Tensor, gamma: float | torch.Tensor = GAMMA, eps: float = EPS
) -> torch.Tensor:
    """``gain * gamma * (W - mean) / sqrt(var * fan_in + eps)`` per output channel.

    ``gain`` has one entry per output channel (any shape that broadcasts as
    ``[out, 1, ...]`` after reshaping)."""
    dims = tuple(range(1, weight.dim()))
    fan_in = weight[0].numel()
    mean = weight.mean(dim=dims, keepdim=True)
    var = weight.var(dim=dims, unbiased=False, keepdim=True)
    scale = gain.reshape(-1, *([1] * (weight.dim() - 1))) * gamma
    return scale * (weight - mean) / torch.sqrt(var * fan_in + eps)


class WeightStandardized(nn.Module):
    """A conv or linear layer whose forward uses the standardised weight.

    State: ``module.weight``, ``module.bias`` (the raw parameters), ``gain`` (learnable)
    and ``gamma`` (a buffer, so the checkpoint states the constant explicitly).
    Not a subclass of the wrapped layer on purpose: code that reads ``.weight`` of an
    ``nn.Conv2d`` must not take the raw weight for the effective one; it calls
    :meth:`effective_weight` or :meth:`folded`.
    """

    gamma: torch.Tensor  # a buffer (register_buffer below)

    def __init__(self, module: nn.Conv2d | nn.Linear, eps: float = EPS):
        super().__init__()
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            raise TypeError(f"weight standardisation wraps nn.Conv2d or nn.Linear, not {type(module).__name__}")
        self.module, self.eps = module, eps
        self.gain = nn.Parameter(torch.ones(module.weight.shape[0]))
        self.register_buffer("gamma", torch.tensor(GAMMA))

    def effective_weight(self) -> torch.Tensor:
        return standardize(self.module.weight, self.gain, self.gamma, self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the wrapped layer's own forward with the standardised weight (functional_call
        # did the same with ~0.5 ms of parameter swapping per call: T-RevSNN's sub-networks
        # make hundreds of these calls per iteration)
        m, w = self.module, self.effective_weight()
        if isinstance(m, nn.Conv2d):
            return m._conv_forward(x, w, m.bias)
        return F.linear(x, w, m.bias)

    @torch.no_grad()
    def folded(self) -> nn.Conv2d | nn.Linear:
        """The plain layer with the standardised weight (for export)."""
        out = copy.deepcopy(self.module)
        out.weight = nn.Parameter(self.effective_weight().detach().clone())
        return out

    def extra_repr(self) -> str:
        return f"gamma={float(self.gamma):g}, eps={self.eps:g}"
