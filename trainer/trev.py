"""Grouped T-RevSNN models (``trev-SIZE[-hW]``): one sub-network per time step.

Hu et al., "High-performance temporal reversible spiking neural networks with O(L)
training memory and O(1) inference cost", ICML 2024 (T-RevSNN; public code
BICLab/T-RevSNN). The parts, with T the number of time steps (= sub-networks):

* **Stem (grouped input).** Static images are encoded ONCE by a conv (scaled weight
  standardisation, stride 2) into ``W`` channels, split into T groups of ``W / T``
  channels: step t reads group t. Event frames: step t reads frame group t (``F`` frames
  in T groups of ``F / T`` frames, summed: the counts of that time window) through its
  own stem conv to ``W / T`` channels.
* **T sub-networks**, each with its own weights, widths ``W_i / T`` per stage so that the
  T together have the channels of one network of widths ``W_i = W * (1, 2, 3, 4)``.
  Four stages; stage i holds the only temporal state ("turn-on" neurons)::

      c_i^t = Blocks_i(D_i(c_{i-1}^t) + U_i(c_{i+1}^{t-1})) + alpha_i * c_i^{t-1}    (paper eq. 9)

  with ``c_{-1}^t`` the stem group of step t, ``D_i`` = spike -> strided conv
  (down-sampling; stride 1 for stages 0 and 3, as in the public code), ``U_i`` = spike ->
  1x1 conv (no bias: U(0) = 0) -> nearest upsampling to stage i's size (the multi-level
  fusion from the deeper stage of the previous step; none for stage 3), ``alpha_i`` per
  channel (init 0.5, kept at ``|alpha| >= 1e-3`` so the state can be inverted). Every
  other neuron is stateless ("turn-off": zero membrane at every step).
* **Blocks** are ConvNeXt-style spiking blocks without BatchNorm::

      y = x + gamma * DW(PW(SN(PW(DW(SN(x))))))

  DW depthwise k x k, PW pointwise (4x expansion) with scaled weight standardisation,
  gamma a per-channel layer scale.
* **Heads**: step t reads out ``y_t = Linear_t(mean_hw(c_3^t))``. The readout over steps is
  the config's: ``mean`` (of y over the steps run) or ``li`` -> ``last`` (y of the last
  step). Loss (:meth:`TRevNet.loss`): cross-entropy of the readout after T steps plus,
  with ``-hW``, ``W x`` the cross-entropy of the readout after each earlier step (heads
  on earlier steps, which make early exit meaningful).

Because ``c_i^{t-1} = (c_i^t - F_i(.)) / alpha_i``, training need not keep activations:
with ``--trev backward=reversible`` :mod:`trainer.reversible` recomputes them in the
backward (O(L) memory); the product's default is plain BPTT (faster at these sizes).

Spiking neurons are :class:`trainer.neurons.Neuron` on the config's
:class:`runtime.neuron.NeuronSpec` (one definition of the neuron).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from runtime.protocol import readout as protocol_readout

from .config import PROTOCOL_READOUT, Config, ConfigError, is_trev
from .module_list import ModuleListOf
from .neurons import Neuron
from .reversible import reversible_c3
from .weight_std import WeightStandardized

ALPHA_INIT = 0.5
ALPHA_MIN = 1e-3
EXPANSION = 4
DEFAULT_LR = 1e-3  # the CLI's --lr default for trev models: 3e-3 (the others') diverges on digits
# fit's --T default for trev models (sub-networks, one per step): --tmax's 6 divides no
# size's stem width (32, 64), and 4 is the T of the paper's CIFAR models
DEFAULT_T = 4
# the CLI's --neuron for trev models: the paper's LIF (one spike per step). With the product's
# multi-spike IF the later sub-networks fire about 2M spikes a sample on the digits and the
# cost grows with the exit step (3.1 / 13.9 / 47.3 / 170 µJ at t = 1..4, measured
# 2026-12-05), so the O(1) inference cost of docs/trev.md does not hold; LIF: 1.0 / 2.0 / 2.9 / 3.9
DEFAULT_NEURON = "lif"
TREV_LOSSES = ("mean", "last", "steps")
DOWNS = ("plain", "sws")
HEAD_INITS = ("default", "zero")
BACKWARDS = ("reversible", "bptt")


@dataclass(frozen=True)
class TRevOptions:
    """Choices of a T-RevSNN, each the paper's or the product's (docs/trev.md, "Paper
    details"). The field defaults are the rules of configs written before issue 18
    (``ModelConfig.trev`` empty); :data:`PRODUCT` holds what ``fit`` uses now.

    * ``widths``: stage widths relative to W; the paper's (1, 2, 4, 6) (§5 / Table 8).
    * ``layer_scale``: init of each block's gamma; the paper's 0 (ConvNeXt layer scale),
      so each block starts as the identity.
    * ``loss``: ``mean`` CE of the readout after n steps; ``last`` CE of the last step's
      output (the paper's text); ``steps`` sum_t (t+1)/n CE(y_t) (the public code's
      intermediate supervision).
    * ``shared``: all sub-networks share one set of weights (the paper's Fig. 1).
    * ``down``: the D_i (and U_i) convs plain, or with scaled weight standardisation
      (``sws``, the product's choice: with plain init the spikes die out after stage 0
      and the loss stays at ln 10).
    * ``head_init``: ``zero``: heads start at zero (logits 0, loss ln C, no early
      blow-up of the unnormalised stage-3 state).
    * ``dw_scale``: a depthwise conv on a 1x1 map computed as the per-channel scale it is
      (:class:`DepthwiseConv`: faster, the same value up to one rounding); false: always the
      conv (what configs written before the option trained with, bit for bit).
    * ``backward``: ``reversible``, the paper's O(L)-memory backward (:mod:`trainer.reversible`:
      activations recomputed from the stage outputs), or ``bptt``, plain autograd through the
      same forward (the same gradients up to float32 rounding; it stores the activations and
      skips the recomputation: trev-tiny trains about 1.4x faster per epoch on digits, and
      the memory is a few MiB at these sizes: docs/trev.md).
    """

    widths: tuple[int, ...] = (1, 2, 3, 4)
    layer_scale: float = 1.0
    loss: str = "mean"
    shared: bool = False
    down: str = "plain"
    head_init: str = "default"
    dw_scale: bool = False
    backward: str = "reversible"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    def items(self, leave_out: tuple[str, ...] = ()) -> list[str]:
        """The options as the ``--trev KEY=VALUE`` items that give them back."""
        d = {k: v for k, v in self.to_dict().items() if k not in leave_out}
        text = {list: lambda v: ",".join(map(str, v)), bool: lambda v: str(v).lower()}
        return [f"{k}={text.get(type(v), str)(v)}" for k, v in d.items()]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TRevOptions:
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"T-RevSNN option(s) {unknown} unknown; expected some of {known}")
        d = dict(d)
        if "widths" in d:
            d["widths"] = tuple(int(w) for w in d["widths"])
        return cls(**d).validate()

    def validate(self) -> TRevOptions:
        if len(self.widths) != 4 or any(w <= 0 for w in self.widths):
            raise ConfigError(f"T-RevSNN widths must be 4 positive integers, got {list(self.widths)}")
        for name, value, valid in (
            ("loss", self.loss, TREV_LOSSES),
            ("down", self.down, DOWNS),
            ("head_init", self.head_init, HEAD_INITS),
            ("backward", self.backward, BACKWARDS),
        ):
            if value not in valid:
                raise ConfigError(f"T-RevSNN {name} {value!r} is unknown; expected one of {list(valid)}")
        return self


PRODUCT = TRevOptions(
    widths=(1, 2, 4, 6), layer_scale=0.0, down="sws", head_init="zero", dw_scale=True, backward="bptt"
)


def add_options_flag(p: argparse.ArgumentParser) -> None:
    """``--trev KEY=VALUE`` (repeatable), over :data:`PRODUCT`: fit's and trev-memory's."""
    p.add_argument(
        "--trev",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="trev models, repeatable: widths=1,2,4,6 layer_scale=0 loss=mean|last|steps shared=false|true "
        "down=sws|plain head_init=zero|default dw_scale=true|false backward=bptt|reversible (the paper's "
        "O(L)-memory backward) (defaults shown; docs/trev.md, 'Paper details')",
    )


def parse_options(items: list[str]) -> TRevOptions:
    """``KEY=VALUE`` items (CLI ``--trev``) over :data:`PRODUCT`."""
    d: dict[str, Any] = PRODUCT.to_dict()
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--trev {item!r}: expected KEY=VALUE, keys {list(d)}")
        key = key.replace("-", "_")
        if key not in d:
            raise ConfigError(f"--trev {item!r}: unknown key {key!r}; expected one of {list(d)}")
        try:
            if key == "widths":
                d[key] = [int(w) for w in value.split(",")]
            elif key == "layer_scale":
                d[key] = float(value)
            elif key in ("shared", "dw_scale"):
                d[key] = {"true": True, "false": False}[value.lower()]
            else:
                d[key] = value
        except (ValueError, KeyError):
            typed = ",".join(map(str, d[key])) if key == "widths" else str(d[key]).lower()  # as it is typed
            raise ConfigError(f"--trev {item!r}: bad value for {key} (e.g. {key}={typed})") from None
    return TRevOptions.from_dict(d)


@dataclass(frozen=True)
class TRevSize:
    width: int  # base width W (stem channels; stage i has W * widths[i] (TRevOptions) in all)
    depths: tuple[int, int, int, int]  # blocks per stage
    kernel: int  # depthwise kernel (5 in the paper)


SIZES = {
    "tiny": TRevSize(32, (1, 1, 1, 1), 3),
    "small": TRevSize(64, (1, 1, 2, 1), 5),
}
_NAME = re.compile(r"^trev-([a-z0-9]+)(?:-h(\d+(?:\.\d+)?))?$")
NAME_FORM = f"trev-SIZE[-hW] (SIZE one of {', '.join(SIZES)}; W: weight of heads on earlier steps)"


def clamp_abs_(a: torch.Tensor, low: float) -> None:
    """In place: ``|a| >= low`` keeping the sign (0 becomes +low)."""
    with torch.no_grad():
        sign = torch.where(a < 0, -1.0, 1.0).to(a.dtype)
        a.copy_(sign * a.abs().clamp(min=low))


def _conv_out(n: int, k: int, stride: int) -> int:
    return (n + 2 * (k // 2) - k) // stride + 1


def _sws(c_in: int, c_out: int, k: int = 1, stride: int = 1) -> WeightStandardized:
    return WeightStandardized(nn.Conv2d(c_in, c_out, k, stride, padding=k // 2))


class SpikeConv(nn.Module):
    """``conv(SN(x))``: a stateless spike, then a conv (D_i; U_i's conv without upsampling)."""

    def __init__(
        self, neuron: Neuron, c_in: int, c_out: int, k: int, stride: int, bias: bool = True, sws: bool = False
    ):
        super().__init__()
        self.sn = neuron
        conv = nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=bias)
        self.conv: nn.Module = WeightStandardized(conv) if sws else conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.sn.fire(x))


class DepthwiseConv(nn.Conv2d):
    """A depthwise conv (one filter per channel, odd kernel, "same" padding). On a 1x1 map
    only the centre tap meets data (every other tap reads padding), so the conv is a
    per-channel scale: computed as one multiply and the bias add, the conv's value up to one
    rounding (oneDNN may fuse the two) and its gradients up to the order of the weight
    gradient's batch sum. The exported graph then holds that Mul and Add, so the deployed
    model computes what torch computes. Why: oneDNN's depthwise weight gradient on 1x1 maps
    cost about 1-1.7 ms a call, about 17% of a trev-tiny training iteration."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (1, 1):
            return super().forward(x)
        c = self.kernel_size[0] // 2
        y = x * self.weight[:, 0, c, c].view(1, -1, 1, 1)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


def depthwise(c: int, k: int, scale_1x1: bool = True) -> nn.Conv2d:
    """A depthwise conv; ``scale_1x1``: computed as a scale on 1x1 maps (:class:`DepthwiseConv`),
    else always as the conv (configs written before ``TRevOptions.dw_scale``)."""
    if k % 2 == 0:
        raise ValueError(f"depthwise kernel {k}: expected an odd size (same padding)")
    return (DepthwiseConv if scale_1x1 else nn.Conv2d)(c, c, k, padding=k // 2, groups=c)


class Block(nn.Module):
    """``y = x + gamma * DW2(PW2(SN(PW1(DW1(SN(x))))))`` (ConvNeXt-style, no BatchNorm)."""

    def __init__(self, neuron: Neuron, c: int, k: int, layer_scale: float = 1.0, dw_scale: bool = True):
        super().__init__()
        self.sn1, self.sn2 = neuron, Neuron(neuron.spec, neuron.surrogate)
        self.dw1 = depthwise(c, k, dw_scale)
        self.pw1 = _sws(c, EXPANSION * c)
        self.pw2 = _sws(EXPANSION * c, c)
        self.dw2 = depthwise(c, k, dw_scale)
        self.gamma = nn.Parameter(torch.full((c,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pw1(self.dw1(self.sn1.fire(x)))
        h = self.dw2(self.pw2(self.sn2.fire(h)))
        return x + self.gamma.view(1, -1, 1, 1) * h


class Stage(nn.Module):
    """``F_i(a, b) = Blocks_i(D_i(a) + U_i(b))``; ``b`` None (t = 0, or stage 3) adds nothing."""

    def __init__(
        self,
        make: Callable[[], Neuron],
        c_in: int,
        c: int,
        c_up: int | None,
        size: tuple[int, int],
        stride: int,
        k_down: int,
        depth: int,
        k: int,
        opts: TRevOptions,
    ):
        super().__init__()
        self.size = size
        sws = opts.down == "sws"
        self.down = SpikeConv(make(), c_in, c, k_down, stride, sws=sws)
        self.up = SpikeConv(make(), c_up, c, 1, 1, bias=False, sws=sws) if c_up is not None else None
        self.blocks = nn.Sequential(*(Block(make(), c, k, opts.layer_scale, opts.dw_scale) for _ in range(depth)))

    def forward(self, a: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        z = self.down(a)
        if b is not None and self.up is not None:
            u = self.up(b)
            if tuple(u.shape[-2:]) != self.size:
                u = F.interpolate(u, size=self.size, mode="nearest")
            z = z + u
        return self.blocks(z)


States = list[torch.Tensor | None]


class SubNet(nn.Module):
    """The sub-network of one time step: four stages and their ``alpha`` (paper eq. 9)."""

    def __init__(
        self,
        make: Callable[[], Neuron],
        c_in: int,
        widths: list[int],
        sizes: list[tuple[int, int]],
        depths: tuple[int, ...],
        k: int,
        opts: TRevOptions,
    ):
        super().__init__()
        strides, k_downs = (1, 2, 2, 1), (3, 3, 3, 1)
        ins = [c_in, *widths[:3]]
        ups = [*widths[1:], None]
        self.stages: ModuleListOf[Stage] = ModuleListOf(
            Stage(make, ins[i], widths[i], ups[i], sizes[i], strides[i], k_downs[i], depths[i], k, opts)
            for i in range(4)
        )
        self.alpha = nn.ParameterList(nn.Parameter(torch.full((w,), ALPHA_INIT)) for w in widths)

    def stage_params(self, i: int) -> list[nn.Parameter]:
        return [*self.stages[i].parameters(), self.alpha[i]]

    def forward(self, x: torch.Tensor, c_prev: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
        """One step: ``c^t`` from the stem group ``x`` and ``c^{t-1}`` (None entries: zero)."""
        c: list[torch.Tensor] = []
        for i, stage in enumerate(self.stages):
            a = x if i == 0 else c[i - 1]
            f = stage(a, c_prev[i + 1] if i < 3 else None)
            c.append(f if c_prev[i] is None else f + self.alpha[i].view(1, -1, 1, 1) * c_prev[i])
        return c


class Head(nn.Module):
    """``y_t = Linear(mean over H, W of c_3^t)``."""

    def __init__(self, c: int, classes: int, bias: bool, zero: bool = False):
        super().__init__()
        self.fc = nn.Linear(c, classes, bias=bias)
        if zero:
            nn.init.zeros_(self.fc.weight)

    def forward(self, c3: torch.Tensor) -> torch.Tensor:
        return self.fc(c3.mean(dim=(-2, -1)))


class TRevNet(nn.Module):
    """A T-RevSNN: ``forward(x) -> y [steps, B, classes]``, ``step(x_t, t, states)``.

    ``x`` is ``[F, B, C, H, W]`` as the trainer's data gives it: static images repeated (the
    stem reads ``x[0]`` once), or F event frames. ``reversible`` (a training choice, not a
    model property: both give the same gradients; ``TRevOptions.backward``) selects the
    memory-saving backward.
    """

    def __init__(self, cfg: Config, size: TRevSize, head_weight: float, T: int):
        super().__init__()
        m = cfg.model
        c_in, h, w = m.image_shape()
        W = m.width or size.width
        _check_grouping(W, T, m.name)
        self.T, self.static, self.head_weight = T, cfg.data.kind == "static", head_weight
        self.opts = opts = TRevOptions.from_dict(m.trev)
        self.readout_rule = PROTOCOL_READOUT[m.readout]
        self.reversible = opts.backward == "reversible"
        spec, sg = cfg.neuron.spec, cfg.neuron.surrogate

        def make() -> Neuron:
            return Neuron(spec, sg)

        widths = [W * k // T for k in opts.widths]
        s0 = (_conv_out(h, 3, 2), _conv_out(w, 3, 2))
        s1 = (_conv_out(s0[0], 3, 2), _conv_out(s0[1], 3, 2))
        s2 = (_conv_out(s1[0], 3, 2), _conv_out(s1[1], 3, 2))
        sizes = [s0, s1, s2, s2]
        self.widths, self.sizes, self.group = widths, sizes, W // T
        # static: one stem for all steps (encode once); events: one stem per step
        self.stems: ModuleListOf[WeightStandardized] = ModuleListOf(
            [_sws(c_in, W, 3, 2)] if self.static else [_sws(c_in, self.group, 3, 2) for _ in range(T)]
        )
        subnets = [SubNet(make, self.group, widths, sizes, size.depths, size.kernel, opts) for _ in range(T)]
        # shared: the same module at every step (one set of weights, Fig. 1 of the paper)
        self.subnets: ModuleListOf[SubNet] = ModuleListOf([subnets[0]] * T if opts.shared else subnets)
        self.heads: ModuleListOf[Head] = ModuleListOf(
            Head(widths[3], m.num_classes, m.bias, opts.head_init == "zero") for _ in range(T)
        )

    @property
    def stages(self) -> tuple[nn.Module]:
        """One stage: the trainer asks for one T per stage; all sub-networks run at one T."""
        return (self,)

    # ---- input grouping -------------------------------------------------------------
    def steps_for(self, x: torch.Tensor, stage_T: list[int] | None) -> int:
        n = x.shape[0] if stage_T is None else stage_T[0]
        if stage_T is not None and len(stage_T) != 1:
            raise ValueError(f"need one T per stage (1), got {stage_T}")
        if not 1 <= n <= self.T:
            raise ConfigError(f"T={n} is not available: this T-RevSNN has {self.T} sub-networks (T in 1..{self.T})")
        if not self.static and n > x.shape[0]:
            raise ConfigError(f"T={n} is larger than the frame count {x.shape[0]}: each step needs a frame group")
        if not self.static and x.shape[0] % n:
            raise ConfigError(f"{x.shape[0]} frames cannot be split into T={n} equal frame groups")
        return n

    def encode(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """Stem groups ``[n, B, W/T, h, w]``: the static image encoded once and split by
        channel, or each step's frame group (summed) through its own stem."""
        if self.static:
            enc = self.stems[0](x[0])
            return enc.unflatten(1, (self.T, self.group)).transpose(0, 1)[:n]
        groups = x.unflatten(0, (n, x.shape[0] // n)).sum(1)
        return torch.stack([self.stems[t](groups[t]) for t in range(n)])

    # ---- sequence form (training, evaluation) ----------------------------------------
    def forward(self, x: torch.Tensor, stage_T: list[int] | None = None) -> torch.Tensor:
        """Per-step head outputs ``[n, B, classes]`` for ``n = stage_T[0]`` (default: the
        frame count) steps; the first n sub-networks run."""
        n = self.steps_for(x, stage_T)
        for sub in self.subnets:
            for a in sub.alpha:
                clamp_abs_(a, ALPHA_MIN)
        xs = self.encode(x, n)
        if self.reversible and torch.is_grad_enabled():
            c3 = reversible_c3(list(self.subnets[:n]), xs)
        else:
            c3 = torch.stack(self._c3_bptt(xs))
        return torch.stack([self.heads[t](c3[t]) for t in range(n)])

    def _c3_bptt(self, xs: torch.Tensor) -> list[torch.Tensor]:
        c: Sequence[torch.Tensor | None] = [None] * 4
        out = []
        for t in range(len(xs)):
            new: list[torch.Tensor] = self.subnets[t](xs[t], c)
            out.append(new[3])
            c = new
        return out

    def readout(self, y: torch.Tensor) -> torch.Tensor:
        """Logits after ``len(y)`` steps: mean of y, or the last step's y."""
        return protocol_readout(y, self.readout_rule)

    def loss(self, y: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The options' base term (``mean``: CE(readout after n steps); ``last``: CE(y_n);
        ``steps``: sum_t (t+1)/n CE(y_t)) ``+ head_weight * sum_{t<n} CE(readout after t steps)``."""
        loss = trev_loss(self.opts.loss, self.readout, y, labels)
        if self.head_weight > 0:
            for t in range(1, len(y)):
                loss = loss + self.head_weight * F.cross_entropy(self.readout(y[:t]), labels)
        return loss

    # ---- step form (what export and the runtime run) ---------------------------------
    @property
    def n_states(self) -> int:
        return 4 + self.static

    def step(self, x_t: torch.Tensor, t: int, states: States) -> tuple[torch.Tensor, States]:
        """Step ``t`` (0-based): ``states`` = [stem encoding (static only), c_0 .. c_3] of
        step t - 1 (None at t = 0); returns (y_t, new states)."""
        if not 0 <= t < self.T:
            raise ConfigError(f"step t={t} is not available: this T-RevSNN has {self.T} sub-networks")
        if self.static:
            enc = self.stems[0](x_t) if t == 0 else states[0]
            if enc is None:
                raise ValueError(f"step t={t} needs states[0], the stem encoding step 0 returned")
            group = enc.unflatten(1, (self.T, self.group))[:, t]
            c = self.subnets[t](group, states[1:])
            return self.heads[t](c[3]), [enc, *c]
        c = self.subnets[t](self.stems[t](x_t), states)
        return self.heads[t](c[3]), c


def trev_loss(
    rule: str, readout: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """The base loss over the per-step outputs ``y [n, B, C]`` (see :class:`TRevOptions`)."""
    if rule == "mean":
        return F.cross_entropy(readout(y), labels)
    if rule == "last":
        return F.cross_entropy(y[-1], labels)
    if rule == "steps":
        n = len(y)
        return sum((t + 1) / n * F.cross_entropy(y[t], labels) for t in range(n))  # type: ignore[return-value]
    raise ConfigError(f"T-RevSNN loss {rule!r} is unknown; expected one of {list(TREV_LOSSES)}")


def _check_grouping(W: int, T: int, name: str) -> None:
    if T < 1:
        raise ConfigError(f"{name}: T must be a positive integer, got {T}")
    if W % T:
        raise ConfigError(
            f"{name}: the {W} stem channels cannot be split into T={T} equal groups "
            f"(--width must be a multiple of T; valid T for width {W}: "
            f"{[d for d in range(1, W + 1) if W % d == 0]})"
        )


def build_trev(cfg: Config, size: TRevSize, head_weight: float) -> TRevNet:
    if cfg.method.name != "sdt":
        raise ConfigError(
            f"{cfg.model.name} has one sub-network per time step and trains at one T: "
            f"use --method sdt --T N (got method {cfg.method.name!r})"
        )
    return TRevNet(cfg, size, head_weight, cfg.train_T)


def parse_trev(name: str) -> Callable[[Config], TRevNet] | None:
    """Registry parser: ``trev-SIZE[-hW]``; a ``trev-`` name with an unknown size fails
    here, listing the valid sizes."""
    if not is_trev(name):
        return None
    m = _NAME.match(name)
    if not m or m[1] not in SIZES:
        raise ConfigError(f"model {name!r}: expected {NAME_FORM}, e.g. trev-tiny or trev-small-h0.5")
    size, weight = SIZES[m[1]], float(m[2] or 0.0)
    return lambda cfg: build_trev(cfg, size, weight)
