"""Online training: the gradient is computed step by step, so memory does not grow with T.

Every online method runs the network one time step at a time (``SpikingNet.step``),
carries the membrane to the next step *detached* (no temporal gradient path), takes a
per-step loss on that step's output ``o_t`` and runs backward right after the step, so
only one step's graph is ever alive. Registry (``ONLINE``), keyed by method name (the
same names as ``trainer.config.ONLINE_METHODS``):

* ``sltt``   SLTT (Meng et al., CVPR 2023): backward at every step, gradients summed
  over T, one optimizer step per batch.
* ``sltt-k`` SLTT-K: backward only at K steps drawn without replacement per batch; the
  other steps run without gradient (they only advance the state).
* ``ottt-a`` / ``ottt-o`` OTTT (Xiao et al., NeurIPS 2022): weight gradients use the
  presynaptic trace ``â_t = λ â_{t-1} + s_t`` (:mod:`trainer.traces`); ``-a`` sums the
  gradients over T (one optimizer step per batch), ``-o`` steps the optimizer at every
  time step.
* ``ndot-a`` / ``ndot-o`` NDOT (ICML 2024): the same with the trace decaying by the
  neuron's own dynamics, ``â_t = e_{t-1} ⊙ â_{t-1} + s_t``.

Per-step loss (SLTT, OTTT; NDOT calls w α): ``(1 - w) CE(o_t, y) + w MSE(o_t, c·onehot(y))``
with ``w = MethodConfig.mse_weight`` (defaults: 0.05 SLTT/OTTT, 0.1 NDOT) and the target
scale ``c`` = V_th for ``MethodConfig.target == "vth"`` (SLTT's default, supplementary
eq. S13) or 1 for ``"onehot"`` (S14; OTTT, NDOT). The sum over the steps that run
backward is divided by T (SLTT Alg. 1, also for SLTT-K: ``k_scale == "T"``) or, for
SLTT-K with ``k_scale == "K"``, by K (the rule before issue 18: a K-step gradient then has
the norm of a T-step one). NDOT's ratio rule: :mod:`trainer.traces`.

BatchNorm in these models must be time-step-wise (statistics of each step's batch,
``ModelConfig.bn_stats = "step"``) or replaced by weight standardisation;
``Config.validate`` rejects BatchNorm over all T steps.

Under ``torchrun`` (several processes) the gradients are averaged over the ranks before
every optimizer step (:func:`trainer.distributed.average_gradients`): per batch for SLTT
and the ``-a`` variants, per time step for ``-o``. With equal shares of a batch and no
BatchNorm this equals one process on the whole batch (``tests/test_distributed.py``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import distributed
from .config import ConfigError, MethodConfig
from .layers import States
from .models import Net, SpikingNet
from .traces import Trace, traced_step


@dataclass(frozen=True)
class OnlineMethod:
    trace: str | None  # presynaptic trace rule ("ottt", "ndot") or None: spikes (SLTT)
    update: str  # "batch": gradients summed over T, one optimizer step; "step": one per step
    sample_k: bool  # SLTT-K: backward at K random steps only
    mse_weight: float  # the paper's default weight of the MSE term
    target: str  # the paper's default MSE target ("vth": V_th-scaled one-hot; "onehot")


ONLINE: dict[str, OnlineMethod] = {
    "sltt": OnlineMethod(None, "batch", False, 0.05, "vth"),
    "sltt-k": OnlineMethod(None, "batch", True, 0.05, "vth"),
    "ottt-a": OnlineMethod("ottt", "batch", False, 0.05, "onehot"),
    "ottt-o": OnlineMethod("ottt", "step", False, 0.05, "onehot"),
    "ndot-a": OnlineMethod("ndot", "batch", False, 0.1, "onehot"),
    "ndot-o": OnlineMethod("ndot", "step", False, 0.1, "onehot"),
}
# the papers' rules, the CLI's defaults (MethodConfig keeps the older ones for old checkpoints)
PAPER_K_SCALE = "T"  # SLTT Alg. 1: the loss of the K sampled steps divided by T
PAPER_NDOT_RATIO = "paper"


def online_method(name: str) -> OnlineMethod:
    try:
        return ONLINE[name]
    except KeyError:
        raise ConfigError(f"online method {name!r} is unknown; expected one of {list(ONLINE)}") from None


def step_loss(out: torch.Tensor, y: torch.Tensor, mse_weight: float, scale: float = 1.0) -> torch.Tensor:
    """``(1 - w) CE(o_t, y) + w MSE(o_t, scale·onehot(y))``, both means over the batch (MSE
    also over classes), as in the SLTT / OTTT code; ``scale`` = V_th for SLTT's S13."""
    target = scale * F.one_hot(y, out.shape[1]).to(out.dtype)
    return (1 - mse_weight) * F.cross_entropy(out, y) + mse_weight * F.mse_loss(out, target)


def trace_rule(method: OnlineMethod, m: MethodConfig) -> str | None:
    """The trace rule of :mod:`trainer.traces` for the method and its NDOT ratio choice."""
    if method.trace == "ndot" and m.ndot_ratio == "clamped":
        return "ndot-clamped"
    return method.trace


def backward_steps(T: int, K: int, rng: np.random.Generator) -> list[int]:
    """SLTT-K: the K of T steps that run backward this batch, drawn without replacement."""
    return sorted(int(t) for t in rng.choice(T, size=K, replace=False))


def forward_step(
    model: SpikingNet, x: torch.Tensor, t: int, states: States, traces: list[Trace | None], rule: str | None
) -> tuple[torch.Tensor, States, list[Trace | None]]:
    """Step ``t``; weight gradients at the spikes (``rule`` None) or at the traces."""
    if rule is None:
        y, states = model.step(x, t, states)
        return y, states, traces
    return traced_step(model, x, states, traces, rule)


def detach(states: States) -> States:
    return [None if s is None else s.detach() for s in states]


def online_iteration(
    model: Net,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    m: MethodConfig,
    rng: np.random.Generator,
    v_th: float = 1.0,
) -> float:
    """Train on one batch ``x`` ``[T, B, ...]`` with the online method ``m.name``; returns
    the mean per-step loss over the T steps. ``v_th``: the hidden neurons' threshold (the
    scale of the ``vth`` MSE target)."""
    if not isinstance(model, SpikingNet):  # build_trev refuses every method but sdt
        raise ConfigError(f"online method {m.name!r} trains layer-sequence models, not {type(model).__name__}")
    method = online_method(m.name)
    T = x.shape[0]
    learn: Collection[int] = backward_steps(T, m.K, rng) if method.sample_k else range(T)
    divide = len(learn) if method.sample_k and m.k_scale == "K" else T
    scale = v_th if m.target == "vth" else 1.0
    rule = trace_rule(method, m)
    states: States = [None] * model.n_states
    traces: list[Trace | None] = [None] * model.n_states
    opt.zero_grad(set_to_none=True)
    total = 0.0
    for t in range(T):
        with torch.set_grad_enabled(t in learn):
            out, states, traces = forward_step(model, x[t], t, states, traces, rule)
            loss = step_loss(out, y, m.mse_weight, scale)
        if t in learn:
            (loss / divide).backward()
            if method.update == "step":
                distributed.average_gradients(model)
                opt.step()
                opt.zero_grad(set_to_none=True)
        states = detach(states)  # SLTT: no gradient through time
        total += loss.item()
    if method.update == "batch":
        distributed.average_gradients(model)
        opt.step()
    return total / T
