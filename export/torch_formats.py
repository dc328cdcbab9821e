"""TorchScript and torch.export (pt2) artifacts of the one-step module.

Both carry the same contract as the ONNX graph: ``(x, states) -> (y, *new_states)`` with
explicit states (zeros at t = 0), on the deployable network (BatchNorm folded), and the
same protocol JSON as the ONNX file's metadata (state shapes, readout rule, binning, T)
as an extra file named ``flexsnn.protocol``: ``torch.jit.load(path, _extra_files=d)`` /
``torch.export.load(path, extra_files=d)`` with ``d = {"flexsnn.protocol": ""}`` fill it in.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from runtime.fileio import write_serialized
from trainer.config import Config
from trainer.models import SpikingNet

from .prepare import deployable, neuron_layers
from .protocol import KEY, layer_infos, protocol
from .step import StepModule, state_shapes, zero_states

EXAMPLE_BATCH = 2


def protocol_file(cfg: Config, model: SpikingNet) -> dict[str, str]:
    """The extra file both formats carry: the protocol a user needs to build the states
    and read the outputs (the ONNX file holds it as metadata; these formats had none)."""
    net = deployable(model)
    specs = [layer.spec for layer in neuron_layers(net)]
    states, neurons = layer_infos(specs, state_shapes(net, tuple(cfg.model.in_shape)))
    return {KEY: json.dumps(protocol(cfg, net.readout_rule, states, neurons).to_dict())}


def _example(net: SpikingNet, cfg: Config) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    in_shape = tuple(cfg.model.in_shape)
    return torch.zeros(EXAMPLE_BATCH, *in_shape), zero_states(state_shapes(net, in_shape), EXAMPLE_BATCH)


@torch.no_grad()
def build_torchscript(cfg: Config, model: SpikingNet) -> torch.jit.ScriptModule:
    net = deployable(model)
    with warnings.catch_warnings():  # python-scalar trace warnings and jit deprecation notices
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.trace(StepModule(net), _example(net, cfg), check_trace=False)


def export_torchscript(cfg: Config, model: SpikingNet, path: str | Path) -> Path:
    """A traced one-step module, loadable with ``torch.jit.load`` (no flexsnn needed)."""
    traced = build_torchscript(cfg, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        extra = protocol_file(cfg, model)
        return write_serialized(path, lambda f: torch.jit.save(traced, f, _extra_files=extra))


@torch.no_grad()
def build_pt2(cfg: Config, model: SpikingNet) -> torch.export.ExportedProgram:
    net = deployable(model)
    x, states = _example(net, cfg)
    batch = torch.export.Dim("batch", min=1)
    return torch.export.export(
        StepModule(net), (x, states), dynamic_shapes=({0: batch}, tuple({0: batch} for _ in states))
    )


def export_pt2(cfg: Config, model: SpikingNet, path: str | Path) -> Path:
    """A ``torch.export`` program with a dynamic batch, loadable with ``torch.export.load``."""
    program = build_pt2(cfg, model)
    extra = protocol_file(cfg, model)
    return write_serialized(path, lambda f: torch.export.save(program, f, extra_files=extra))
