"""The model ``fit`` trains when ``--model`` is not given: the wider of the two default
widths (:data:`DEFAULT_MODELS`, 32 and 16 channels) that SynSense Speck (the product's edge
target) holds for the data's input, asked of the Speck checker itself (``edge speck
--check``), so that the chip's limits have one home. Wider nets may fit too (64 channels
on the digits' input do): they were not among the widths compared on validation.

Why widest first: on the embedded default (digits, 2x20x20 input) width 32 was flatter over
T = 1..12 and more accurate than width 16 on the validation split (README, "Choosing the
default"); on N-MNIST's 2x34x34 input the first convolution's 32 maps need 128 Ki neurons
and Speck's largest core holds 64 Ki, so N-MNIST keeps width 16.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from .config import Config

DEFAULT_MODELS = ("2C1FCW32", "2C1FCW16")  # widest first; the last one when none fits
SEQUENCE_MODEL = "fc-seq"  # input with one feature axis (Braille): the conv nets need images


def speck_holds(cfg: Config) -> bool:
    """Whether ``edge speck --check`` passes on an untrained copy of ``cfg``'s model (its
    plan: input, neurons, layer memories and cores; the weights do not enter it)."""
    from edge.speck.backend import plan
    from edge.speck.chip import DEFAULT_CHIP, chip
    from edge.speck.convert import convert
    from export.onnx_export import export_onnx
    from runtime.protocol import read_model

    from .checkpoint import build_checked
    from .config import ConfigError

    try:
        net = build_checked(cfg, "the candidate")
    except ConfigError:  # this input is too small for it: it cannot be the one that fits
        return False
    with tempfile.TemporaryDirectory() as d:
        model, proto = read_model(export_onnx(cfg, net, Path(d) / "candidate.onnx"))
    return plan(convert(model, proto), chip(DEFAULT_CHIP)).fits


class DefaultModel(NamedTuple):
    name: str
    why: str  # for the line fit prints


def default_model(config_for: Callable[[str], Config], in_shape: tuple[int, ...], event_input: bool) -> DefaultModel:
    """The first of :data:`DEFAULT_MODELS` that Speck holds (``config_for(name)``: the
    default flags' config with that model and the run's input, so that the choice does
    not change with the neuron or normalisation flags); the last when none does or the
    input is not an event camera's (Speck runs event streams only); :data:`SEQUENCE_MODEL`
    when the input is not an image."""
    widest, last = DEFAULT_MODELS[0], DEFAULT_MODELS[-1]
    if len(in_shape) != 3:
        return DefaultModel(SEQUENCE_MODEL, "the conv nets need image input")
    if not event_input:
        return DefaultModel(last, "Speck runs event streams only")
    for name in DEFAULT_MODELS[:-1]:
        if speck_holds(config_for(name)):
            # chosen with the default flags, whatever this run's: it read as if the run had them
            return DefaultModel(
                name,
                "the wider of widths 32 and 16 that fits Speck with the default flags (neuron, no bias or "
                "BatchNorm), chosen by input and classes alone",
            )
    if speck_holds(config_for(last)):
        return DefaultModel(last, f"{widest} would not fit Speck")
    return DefaultModel(
        last, "no default width fits Speck with this input size and class count; edge speck --check lists the limits"
    )
