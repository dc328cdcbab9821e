"""Reversible training of a T-RevSNN: recompute instead of storing activations.

The stage states of step t are (paper eq. 9, :mod:`trainer.trev`)::

    c_i^t = F_i^t(c_{i-1}^t, c_{i+1}^{t-1}) + alpha_i * c_i^{t-1},   c_{-1}^t = x^t (stem group)

so the previous states can be recovered from the current ones (paper eq. 10)::

    c_3^{t-1} = (c_3^t - F_3^t(c_2^t)) / alpha_3
    c_i^{t-1} = (c_i^t - F_i^t(c_{i-1}^t, c_{i+1}^{t-1})) / alpha_i     for i = 2, 1, 0

:class:`ReversibleSteps` runs all steps forward without recording a graph and saves only
the stem groups and the LAST step's four stage outputs. Its backward walks t = n-1 .. 0;
at each step it evaluates each ``F_i^t`` once (stage 3 first) with autograd, which gives
both the reconstruction of ``c_i^{t-1}`` and, by a vector-Jacobian product with the
gradient ``G_i`` reaching ``c_i^t``, the gradients of ``F_i^t``'s inputs and weights::

    dL/dc_{i-1}^t   += G_i dF_i/dc_{i-1}^t        (same step, stage below: handled next)
    dL/dc_{i+1}^{t-1} = G_i dF_i/dc_{i+1}^{t-1}   (previous step, deeper stage)
    dL/dc_i^{t-1}    += alpha_i G_i               (the reversible shortcut)
    dL/dalpha_i      += sum(G_i * c_i^{t-1})

This is the backward of the public code's ``ReverseFunction`` (BICLab/T-RevSNN), across
all steps in one function, so memory does not grow with T beyond the stem groups
(``[n, B, W/T, h, w]``: one encoding, whatever T) and the per-step head inputs.
Gradients equal those of the plain computation up to float rounding (tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .trev import SubNet


def _leaf(x: torch.Tensor) -> torch.Tensor:
    return x.detach().requires_grad_(True)


class ReversibleSteps(torch.autograd.Function):
    """``(subnets, xs, *params) -> c_3 of every step [n, B, ...]`` with the reversible backward."""

    @staticmethod
    def forward(ctx: Any, subnets: list[SubNet], xs: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        c: Sequence[torch.Tensor | None] = [None] * 4
        out = []
        with torch.no_grad():
            for t, sub in enumerate(subnets):
                new: list[torch.Tensor] = sub(xs[t], c)
                out.append(new[3])
                c = new
        ctx.subnets = subnets
        ctx.save_for_backward(xs, *c)
        return torch.stack(out)

    @staticmethod
    def backward(ctx: Any, grad_c3: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        xs, *c = ctx.saved_tensors
        subnets: list[SubNet] = ctx.subnets
        c = [ci.detach() for ci in c]
        g: list[torch.Tensor] = [torch.zeros_like(ci) for ci in c]  # dL/dc_i^t from later steps
        g_xs = torch.zeros_like(xs)
        g_params: dict[int, torch.Tensor] = {}
        for t in range(len(subnets) - 1, -1, -1):
            sub = subnets[t]
            G = list(g)
            G[3] = G[3] + grad_c3[t]
            prev: dict[int, torch.Tensor] = {}  # c_i^{t-1} by i, reconstructed (i = 3 first)
            g_prev = [torch.zeros_like(ci) for ci in c]
            for i in range(3, -1, -1):
                a = _leaf(xs[t] if i == 0 else c[i - 1])
                b = _leaf(prev[i + 1]) if t > 0 and i < 3 else None
                with torch.enable_grad():
                    f = sub.stages[i](a, b)
                    if t > 0:
                        prev[i] = (c[i] - f.detach()) / sub.alpha[i].detach().view(1, -1, 1, 1)
                        cp = _leaf(prev[i])
                        y = f + sub.alpha[i].view(1, -1, 1, 1) * cp
                    else:
                        cp, y = None, f
                    params = sub.stage_params(i)
                    inputs = [a, *(x for x in (b, cp) if x is not None), *params]
                    grads = torch.autograd.grad(y, inputs, G[i], allow_unused=True)
                ga, rest = grads[0], list(grads[1:])
                if i == 0:
                    g_xs[t] = ga
                else:
                    G[i - 1] = G[i - 1] + ga
                if b is not None:
                    g_prev[i + 1] = g_prev[i + 1] + rest.pop(0)
                if cp is not None:
                    g_prev[i] = g_prev[i] + rest.pop(0)
                for p, gp in zip(params, rest):
                    if gp is not None:
                        g_params[id(p)] = g_params[id(p)] + gp if id(p) in g_params else gp
            if t > 0:
                c, g = [prev[i].detach() for i in range(4)], g_prev
        # a shared sub-network appears at several steps: its summed gradient goes to its
        # first appearance only (autograd would add the copies again)
        seen: set[int] = set()
        out: list[torch.Tensor | None] = []
        for p in (p for sub in subnets for p in sub.parameters()):
            out.append(None if id(p) in seen else g_params.get(id(p)))
            seen.add(id(p))
        return (None, g_xs, *out)


def reversible_c3(subnets: list[SubNet], xs: torch.Tensor) -> torch.Tensor:
    """``c_3^t`` of every step, trained with the reversible backward (see the module doc)."""
    params = [p for sub in subnets for p in sub.parameters()]
    return ReversibleSteps.apply(subnets, xs, *params)
