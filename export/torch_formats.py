"""TorchScript and torch.export (pt2) artifacts of the one-step module.

Both carry the same contract as the ONNX graph: ``(x, states) -> (y, *new_states)`` with
explicit states (zeros at t = 0), on the deployable network (BatchNorm folded), and the
same protocol JSON as the ONNX file's metadata (state shapes, readout rule, binning, T)
as an extra file named ``flexsnn.protocol``: ``torch.jit.load(path, _extra_files=d)`` /
``torch.export.load(path, extra_files=d)`` with ``d = {"flexsnn.protocol": ""}`` fill it in.

A per-stage configuration (``--config 4,2,2,3``, MTT) cannot be one step of the whole
network: its stages step at different rates. Its file holds the whole sequence instead,
``frames [T_0, B, ...] -> y [T_last, B, classes]`` (:class:`SequenceModule`), and the
protocol of the multi-rate ONNX file (its ``stages``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.export import Dim

from runtime.fileio import write_serialized
from runtime.protocol import StageInfo
from trainer.config import Config
from trainer.layers import States
from trainer.models import SpikingNet
from trainer.temporal import transform
from trainer.trev import TRevNet

from .prepare import deployable, neuron_layers
from .protocol import KEY, layer_infos, protocol
from .step import StepModule, state_shapes, zero_states
from .tracing import TRACING

EXAMPLE_BATCH = 2
# A traced module's positional inputs (a tensor, or the tuple of states) and their batch dims.
Example = tuple[torch.Tensor | tuple[torch.Tensor, ...], ...]
BatchDims = tuple[dict[int, Dim] | tuple[dict[int, Dim], ...], ...]


class SequenceModule(nn.Module):
    """A per-stage configuration run whole: ``frames [T_0, B, ...] -> y [T_last, B, classes]``,
    stage i stepped ``config[i]`` times from zero states, the temporal transformation module
    before it (MTT, :func:`trainer.temporal.transform`), as the multi-rate ONNX file runs."""

    def __init__(self, net: SpikingNet, config: list[int], in_shape: tuple[int, ...]):
        super().__init__()
        self.net, self.config, self.in_shape = net, list(config), in_shape

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # [T_0, B, *in_shape] to the dimension, checked by cat (every dimension but the
        # batch must match): a trace unrolls T_0 steps, so other frame counts would be cut
        # unsaid, and a reshape took any layout of as many numbers (channels-last: 5%)
        x = torch.cat([frames, frames.new_zeros(self.config[0], 0, *self.in_shape)], dim=1)
        for stage, T in zip(self.net.stages, self.config):
            # step by step (the ONNX step graph's arithmetic), not the stage's sequence
            # form: torch.export refuses a batch-flattened sequence after up-sampling
            states: States = [None] * stage.n_states
            x, ys = transform(x, T), []
            for x_t in x:
                y, states = stage.step(x_t, states)
                ys.append(y)
            x = torch.stack(ys)
        return x


def protocol_file(cfg: Config, model: SpikingNet, config: list[int] | None = None, **fields: object) -> dict[str, str]:
    """The extra file both formats carry: the protocol a user needs to build the states
    and read the outputs (the ONNX file holds it as metadata; these formats had none);
    with ``config``, the multi-rate ONNX file's, its ``stages`` included."""
    net = deployable(model)
    in_shape = tuple(cfg.model.in_shape)
    specs = [layer.spec for layer in neuron_layers(net)]
    states, neurons = layer_infos(specs, state_shapes(net, in_shape))
    stages: tuple[StageInfo, ...] = ()
    if config is not None:  # the tensors the multi-rate ONNX file is cut at, named as there
        from .onnx_export import stage_infos

        stages = tuple(stage_infos(net, in_shape, config))
    return {KEY: json.dumps(protocol(cfg, net.readout_rule, states, neurons, stages=stages, **fields).to_dict())}


def _traced(net: SpikingNet, cfg: Config, config: list[int] | None) -> tuple[nn.Module, Example, BatchDims]:
    """The module a format holds, an example input and the input dimensions that are the
    batch: one step ``(x, states)``, or with ``config`` the whole sequence ``(frames,)``."""
    in_shape = tuple(cfg.model.in_shape)
    batch = Dim("batch", min=1)
    if config is not None:
        frames = torch.zeros(config[0], EXAMPLE_BATCH, *in_shape)
        return SequenceModule(net, config, in_shape), (frames,), ({1: batch},)
    states = zero_states(state_shapes(net, in_shape), EXAMPLE_BATCH)
    x = torch.zeros(EXAMPLE_BATCH, *in_shape)
    return StepModule(net), (x, states), ({0: batch}, tuple({0: batch} for _ in states))


@torch.no_grad()
def build_torchscript(cfg: Config, model: SpikingNet, config: list[int] | None = None) -> torch.jit.ScriptModule:
    module, example, _ = _traced(deployable(model), cfg, config)
    with TRACING, warnings.catch_warnings():  # python-scalar trace warnings and jit deprecation notices
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.trace(module, example, check_trace=False)


def export_torchscript(
    cfg: Config, model: SpikingNet, path: str | Path, config: list[int] | None = None, **fields: object
) -> Path:
    """A traced module, loadable with ``torch.jit.load`` (no flexsnn needed): one step, or
    with ``config`` the whole sequence of that per-stage configuration."""
    traced = build_torchscript(cfg, model, config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        extra = protocol_file(cfg, model, config, **fields)
        return write_serialized(path, lambda f: torch.jit.save(traced, f, _extra_files=extra))


@torch.no_grad()
def build_pt2(cfg: Config, model: SpikingNet, config: list[int] | None = None) -> torch.export.ExportedProgram:
    module, example, batch_dims = _traced(deployable(model), cfg, config)
    with TRACING:
        return torch.export.export(module, example, dynamic_shapes=batch_dims)


def export_pt2(
    cfg: Config, model: SpikingNet, path: str | Path, config: list[int] | None = None, **fields: object
) -> Path:
    """A ``torch.export`` program with a dynamic batch, loadable with ``torch.export.load``:
    one step, or with ``config`` the whole sequence of that per-stage configuration."""
    program = build_pt2(cfg, model, config)
    extra = protocol_file(cfg, model, config, **fields)
    return write_serialized(path, lambda f: torch.export.save(program, f, extra_files=extra))


def export_trev_pt2(cfg: Config, model: TRevNet, path: str | Path, **fields: object) -> Path:
    """A T-RevSNN's step ``(x, t, states) -> (y, *new_states)`` as a ``torch.export``
    program with a dynamic batch: the module its ONNX file is traced from (the weights of
    step ``t`` chosen by the tensor ``t``), with that file's protocol (``uses_t``,
    ``max_steps``). TorchScript's tracer cannot follow that choice (torch.cond and
    functional_call): a T-RevSNN has no TorchScript form."""
    from .trev_onnx import TRevStep, build_trev_onnx
    from .trev_onnx import state_shapes as trev_state_shapes

    meta = build_trev_onnx(cfg, model, **fields).metadata_props  # the ONNX file's protocol, as for the others
    extra = {KEY: next(p.value for p in meta if p.key == KEY)}
    shapes, batch = trev_state_shapes(model), Dim("batch", min=1)
    x = torch.zeros(EXAMPLE_BATCH, *cfg.model.in_shape)
    states = tuple(torch.zeros(EXAMPLE_BATCH, *s) for s in shapes)
    with TRACING, torch.no_grad():
        program = torch.export.export(
            TRevStep(model),
            (x, torch.tensor(0), states),
            dynamic_shapes=({0: batch}, None, tuple({0: batch} for _ in shapes)),
        )
    return write_serialized(path, lambda f: torch.export.save(program, f, extra_files=extra))
