"""Surrogate gradients for the spike non-linearity, by name.

Forward is always the exact spike rule of the neuron spec; only the backward differs.
With ``x = v - v_th``:

* ``triangle``  (default, h = 1): ``max(0, h - |x|) / h**2``
* ``rectangle`` (width a = 1):    ``1[|x| < a/2] / a``
* ``sigmoid``   (slope k = 4):    ``k * sig(k x) * (1 - sig(k x))``
* ``exp``       (single exponential, a = 1, used for Speck-style IF nets; sinabs'
  SingleExponential has this shape with its own width, 0.5 v_th by default, so a peak of
  2 / v_th where this one's is 1): ``exp(-|x| / a) / a``
"""

from __future__ import annotations

from collections.abc import Callable

import torch

SurrogateFn = Callable[[torch.Tensor, float], torch.Tensor]


def _triangle(x: torch.Tensor, h: float) -> torch.Tensor:
    return torch.clamp(h - x.abs(), min=0.0) / (h * h)


def _rectangle(x: torch.Tensor, a: float) -> torch.Tensor:
    return (x.abs() < a / 2).to(x.dtype) / a


def _sigmoid(x: torch.Tensor, k: float) -> torch.Tensor:
    s = torch.sigmoid(k * x)
    return k * s * (1 - s)


def _exp(x: torch.Tensor, a: float) -> torch.Tensor:
    return torch.exp(-x.abs() / a) / a


DEFAULT_SURROGATE = "triangle"  # --surrogate's default
# what a format-1 checkpoint (no surrogate field) was trained with: not DEFAULT_SURROGATE,
# whose change must not reinterpret old files
LEGACY_SURROGATE = "triangle"
SURROGATES: dict[str, tuple[SurrogateFn, float]] = {
    "triangle": (_triangle, 1.0),
    "rectangle": (_rectangle, 1.0),
    "sigmoid": (_sigmoid, 4.0),
    "exp": (_exp, 1.0),
}


def get_surrogate(name: str) -> tuple[SurrogateFn, float]:
    """The derivative function and its default width/slope parameter."""
    try:
        return SURROGATES[name]
    except KeyError:
        raise ValueError(f"surrogate {name!r} is unknown; expected one of {sorted(SURROGATES)}") from None


class SpikeFn(torch.autograd.Function):
    """Heaviside-like spike with a surrogate derivative.

    ``count`` is the exact forward (0/1 for single spikes, floor(v/v_th) for multi); the
    backward passes ``grad * surrogate(v - v_th)`` to ``v``.
    """

    @staticmethod
    def forward(ctx, v, count, v_th: float, fn: SurrogateFn, param: float):
        ctx.save_for_backward(v)
        ctx.v_th, ctx.fn, ctx.param = v_th, fn, param
        return count

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        return grad * ctx.fn(v - ctx.v_th, ctx.param), None, None, None, None
