"""TorchScript and torch.export (pt2) artifacts of the one-step module.

Both carry the same contract as the ONNX graph: ``(x, states) -> (y, *new_states)`` with
explicit states (zeros at t = 0), on the deployable network (BatchNorm folded).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from runtime.fileio import write_atomic
from trainer.config import Config
from trainer.models import SpikingNet

from .prepare import deployable
from .step import StepModule, state_shapes, zero_states

EXAMPLE_BATCH = 2


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
        return write_atomic(path, lambda tmp: torch.jit.save(traced, str(tmp)))


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
    return write_atomic(path, lambda tmp: torch.export.save(program, tmp))
