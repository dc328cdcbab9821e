"""Model families, built from a config by a registry keyed by name.

* VGG-style ``xCyFC`` or ``xCyFCWz`` (event input, e.g. 2C1FC / 3C1FC for N-MNIST):
  x blocks of conv3x3 [-> BatchNorm] -> neuron -> 2x2 average pooling, then y linear
  layers (y - 1 hidden, 256 wide, each followed by a neuron; the last is the classifier).
  ``Wz`` sets the conv width (default 32). ``bias`` and ``bn`` can be switched off
  (event-driven hardware wants neither).
* ``fc-H1-H2-...`` (``fc-seq`` = ``fc-128-128``): fully connected nets for sequences
  ``[T, B, features]`` (or any input, flattened): one block per hidden layer, linear ->
  neuron, then the classifier; the FC LIF nets of MTT's sequence experiments (appendix A.12).
* ``resnet10`` / ``resnet18`` / ``resnet19``: spiking ResNets (BatchNorm by default) for
  static images (basic blocks conv-BN-neuron-conv-BN + shortcut -> neuron; ResNet-19 is the
  three-stage variant of the tdBN paper). Width is the first stage's channels.

Normalisation of every conv, in both families (``ModelConfig``): BatchNorm with
statistics over all T·B frames (``bn``, the default), BatchNorm with per-step statistics
(``bn`` with ``bn_stats="step"``: what online methods need), scaled weight
standardisation (``weight_std``, :mod:`trainer.weight_std`), or none (``bn`` off: the
conv then has a bias unless ``bias`` is off).

Every model is a :class:`SpikingNet`: its blocks are split into ``stages`` contiguous
stages for MTT, each run on its own number of time steps.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
from torch import nn

from runtime.protocol import readout as protocol_readout

from . import temporal
from .config import PROTOCOL_READOUT, Config, ConfigError, ModelConfig
from .layers import Layer, NeuronLayer, Residual, Sequence, Stateless, States, step_chain
from .module_list import ModuleListOf
from .trev import NAME_FORM as TREV_NAME_FORM
from .trev import TRevNet, parse_trev
from .weight_std import WeightStandardized


class SpikingNet(nn.Module):
    """Stages of layers; the classifier output per step is read out over time."""

    def __init__(self, stages: list[Sequence], readout: str):
        super().__init__()
        self.stages: ModuleListOf[Sequence] = ModuleListOf(stages)
        self.readout_rule = PROTOCOL_READOUT[readout]

    @property
    def n_states(self) -> int:
        return sum(s.n_states for s in self.stages)

    def forward(self, x: torch.Tensor, stage_T: list[int] | None = None) -> torch.Tensor:
        """Run ``x`` ``[T, B, ...]`` through all stages; return the output sequence
        ``[T_last, B, classes]``. ``stage_T[i]`` is stage i's number of steps (MTT); the
        temporal transformation module regroups frames between stages of different T.
        """
        if stage_T is not None and len(stage_T) != len(self.stages):
            raise ValueError(f"need one T per stage ({len(self.stages)}), got {stage_T}")
        for i, stage in enumerate(self.stages):
            if stage_T is not None:
                x = temporal.transform(x, stage_T[i])
            x = stage.seq(x)
        return x

    def readout(self, y: torch.Tensor) -> torch.Tensor:
        """Logits from the output sequence: mean over steps, or the last step (LI)."""
        return protocol_readout(y, self.readout_rule)

    def step(self, x: torch.Tensor, t: int, states: States) -> tuple[torch.Tensor, States]:
        """Step ``t`` of the whole network (all stages at the same T): the interface every
        model family shares (``TRevNet.step`` too); this family's step does not depend on t."""
        return step_chain(self.stages, x, states)


def _split(blocks: list[Layer], n: int) -> list[Sequence]:
    if n > len(blocks):
        raise ConfigError(f"--stages {n} is more than this model's {len(blocks)} blocks")
    bounds = temporal.group_bounds(len(blocks), n)
    return [Sequence(blocks[bounds[i] : bounds[i + 1]]) for i in range(n)]


def _classifier(cfg: Config, in_features: int) -> list[Layer]:
    layers: list[Layer] = [Stateless(nn.Linear(in_features, cfg.model.num_classes, bias=cfg.model.bias))]
    if cfg.model.readout == "li":
        layers.append(NeuronLayer(cfg.neuron.readout_spec(), cfg.neuron.surrogate))
    elif cfg.model.readout == "spikes":  # read as mean spike counts: what a chip that only outputs spikes gives
        layers.append(NeuronLayer(cfg.neuron.spec, cfg.neuron.surrogate))
    return layers


def _conv_norm(cfg: Config, c_in: int, c_out: int, k: int, stride: int = 1, bias: bool = True) -> list[Layer]:
    """A k x k conv and its normalisation (see the module docstring); the conv has a bias
    only when ``bias`` is asked for and no BatchNorm follows."""
    m = cfg.model
    conv = nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=bias and not m.bn)
    layers: list[Layer] = [Stateless(WeightStandardized(conv) if m.weight_std else conv)]
    if m.bn:
        layers.append(Stateless(nn.BatchNorm2d(c_out), per_step=m.bn_stats == "step"))
    return layers


def build_vgg(cfg: Config, convs: int, fcs: int, width: int) -> SpikingNet:
    m, spec = cfg.model, cfg.neuron.spec
    c, h, w = m.image_shape()
    blocks: list[Layer] = []
    for _ in range(convs):
        layers = _conv_norm(cfg, c, width, 3, bias=m.bias)
        layers += [NeuronLayer(spec, cfg.neuron.surrogate), Stateless(nn.AvgPool2d(2))]
        blocks.append(Sequence(layers))
        c, h, w = width, h // 2, w // 2
    features = c * h * w
    head: list[Layer] = [Stateless(nn.Flatten())]
    for _ in range(fcs - 1):
        head += [Stateless(nn.Linear(features, 256, bias=m.bias)), NeuronLayer(spec, cfg.neuron.surrogate)]
        blocks.append(Sequence(head))
        head, features = [], 256
    blocks.append(Sequence(head + _classifier(cfg, features)))
    return SpikingNet(_split(blocks, m.stages), m.readout)


def build_resnet(cfg: Config, blocks_per_stage: tuple[int, ...], width: int) -> SpikingNet:
    m, spec, sg = cfg.model, cfg.neuron.spec, cfg.neuron.surrogate
    c = m.image_shape()[0]
    blocks: list[Layer] = [Sequence(_conv_norm(cfg, c, width, 3, 1, bias=m.bias) + [NeuronLayer(spec, sg)])]
    c = width
    for i, n in enumerate(blocks_per_stage):
        c_out = width * 2**i
        for j in range(n):
            stride = 2 if i > 0 and j == 0 else 1
            body = Sequence(
                _conv_norm(cfg, c, c_out, 3, stride, bias=m.bias)
                + [NeuronLayer(spec, sg)]
                + _conv_norm(cfg, c_out, c_out, 3, 1, bias=m.bias)
            )
            shortcut = Sequence(_conv_norm(cfg, c, c_out, 1, stride, bias=m.bias) if stride != 1 or c != c_out else [])
            blocks.append(Residual(body, shortcut, NeuronLayer(spec, sg)))
            c = c_out
    blocks.append(Sequence([Stateless(nn.AdaptiveAvgPool2d(1)), Stateless(nn.Flatten())] + _classifier(cfg, c)))
    return SpikingNet(_split(blocks, m.stages), m.readout)


def build_fc(cfg: Config, hidden: tuple[int, ...]) -> SpikingNet:
    m, spec = cfg.model, cfg.neuron.spec
    features = math.prod(m.in_shape)
    blocks: list[Layer] = []
    head: list[Layer] = [Stateless(nn.Flatten())]
    for h in hidden:
        head += [Stateless(nn.Linear(features, h, bias=m.bias)), NeuronLayer(spec, cfg.neuron.surrogate)]
        blocks.append(Sequence(head))
        head, features = [], h
    blocks.append(Sequence(head + _classifier(cfg, features)))
    return SpikingNet(_split(blocks, m.stages), m.readout)


VGG_WIDTH = 32  # an xCyFC net's channel width when its name gives none
_VGG = re.compile(r"^([1-9]\d*)C([1-9]\d*)FC(?:W([1-9]\d*))?$")
_FC = re.compile(r"^fc((?:-[1-9]\d*)+)$")
FC_ALIASES = {"fc-seq": "fc-128-128"}
_RESNETS = {"resnet10": ((1, 1, 1, 1), 16), "resnet18": ((2, 2, 2, 2), 16), "resnet19": ((3, 3, 2), 32)}
# A network build_model builds: both families have stages, n_states, step(x, t, states),
# forward(x, stage_T) and readout.
Net = SpikingNet | TRevNet
Builder = Callable[[Config], Net]


def _parse_vgg(name: str) -> Builder | None:
    m = _VGG.match(name)
    if not m:
        return None
    convs, fcs, width = int(m[1]), int(m[2]), int(m[3] or VGG_WIDTH)
    return lambda cfg: build_vgg(cfg, convs, fcs, cfg.model.width or width)


def named_width(name: str, width: int) -> tuple[str, int]:
    """``(name, width)`` as a model config stores them: an xCyFC net's width in its name
    (``2C1FC`` or ``2C1FCW16`` with width 8: ``2C1FCW8``, width 0), so that the name every
    file and report shows is the network built. Other families keep their width beside
    the name."""
    m = _VGG.match(name)
    if m is None or not width:
        return name, width
    return f"{m[1]}C{m[2]}FCW{width}", 0


def conv_width(m: ModelConfig) -> int:
    """The channel width the network of ``m`` is built with: ``m.width``, else an xCyFC
    name's (``W16``, or :data:`VGG_WIDTH`); 0 for a family without one."""
    g = _VGG.match(m.name)
    return m.width or (int(g[3] or VGG_WIDTH) if g else 0)


def architecture(m: ModelConfig) -> str:
    """The name of the network ``m`` builds, as files and reports show it: an xCyFC net's
    width in the name (:func:`named_width`; a config stored as 2C1FCW16 with width 8 by an
    earlier fit, or built in Python so, is 2C1FCW8)."""
    return named_width(m.name, m.width)[0]


def _parse_fc(name: str) -> Builder | None:
    m = _FC.match(FC_ALIASES.get(name, name))
    if not m:
        return None
    hidden = tuple(int(h) for h in m[1][1:].split("-"))
    return lambda cfg: build_fc(cfg, hidden)


def is_fc(name: str) -> bool:
    """Whether ``name`` is a fully connected net (``fc-H1-H2...``): no conv layers."""
    return _FC.match(FC_ALIASES.get(name, name)) is not None


def refuse_unread_options(m: ModelConfig) -> None:
    """Refuse model options ``m``'s family would ignore, before training: an fc net has no
    conv, so no conv normalisation and no conv width (its widths are in its name). It was
    built as if they were off, and the checkpoint recorded them as on. (A file written so
    still loads: its network is the plain fc net it trained.)"""
    if not is_fc(m.name):
        return
    unread = [
        flag
        for flag, on in (
            (f"--norm {m.norm} (ModelConfig.bn, weight_std)", m.norm != "none"),
            (f"--width {m.width} (ModelConfig.width)", m.width != 0),
        )
        if on
    ]
    if unread:
        raise ConfigError(
            f"model {m.name} has no conv layers: {' and '.join(unread)} would be ignored; leave "
            f"{'them' if len(unread) > 1 else 'it'} out (an fc net has no normalisation, and its layer widths "
            "are in its name: fc-H1-H2...)"
        )


def _parse_resnet(name: str) -> Builder | None:
    if name not in _RESNETS:
        return None
    blocks, width = _RESNETS[name]
    return lambda cfg: build_resnet(cfg, blocks, cfg.model.width or width)


# Registry: the name form shown to users -> parser returning a builder (None: not this family).
MODEL_FAMILIES: dict[str, Callable[[str], Builder | None]] = {
    "xCyFC[Wz] (e.g. 2C1FC, 3C1FC, 2C2FCW16)": _parse_vgg,
    "fc-H1[-H2...] (fc-seq = fc-128-128; sequences)": _parse_fc,
    **{name: _parse_resnet for name in _RESNETS},
    TREV_NAME_FORM: parse_trev,
}


def model_names() -> list[str]:
    return list(MODEL_FAMILIES)


def model_builder(name: str) -> Builder:
    """The builder for a model name; unknown names list the valid ones."""
    for parse in MODEL_FAMILIES.values():
        builder = parse(name)
        if builder is not None:
            return builder
    raise ConfigError(f"model {name!r} is unknown; expected one of {model_names()}")


def build_model(cfg: Config) -> Net:
    """Build the network a config describes."""
    return model_builder(cfg.model.name)(cfg)
