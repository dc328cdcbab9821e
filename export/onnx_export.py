"""ONNX export: one time step, one ``snn`` node per neuron layer (docs/onnx_protocol.md).

1. :func:`export.prepare.deployable` folds BatchNorm, removes dropout, swaps neurons.
2. Its neurons (:class:`export.neuron.DeployNeuron`), only while ``torch.onnx.export``
   runs, emit one ``snn::LIF|IF|LI`` node each with every field of the spec as attributes
   (``torch.onnx.ops.symbolic_multi_out``); the trainer's neuron and its training path
   stay untouched.
3. The default (dynamo) exporter writes the graph; :func:`annotate` names the neuron nodes,
   sets their ``overload``, attaches one function body per variant, the ``snn`` opset
   import and IR version 10 (onnxruntime rejects newer); then the protocol metadata.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import onnx
import torch

from runtime.neuron import NeuronSpec
from trainer.config import Config
from trainer.models import SpikingNet

from . import onnx_functions as fn
from runtime.fileio import write_atomic
from runtime.integrity import stamp_onnx
from .errors import ExportError
from .prepare import deployable, neuron_layers
from .protocol import KEY, protocol
from .step import StepModule, state_shapes, zero_states

IR_VERSION = 10
OPSET = 20


def trace(net: SpikingNet, in_shape: tuple[int, ...]) -> onnx.ModelProto:
    """The raw dynamo export of one step of the deployable ``net``, batch dynamic."""
    shapes = state_shapes(net, in_shape)
    n = len(shapes)
    batch = torch.export.Dim("batch", min=1)
    args = (torch.zeros(2, *in_shape), zero_states(shapes, 2))
    # the exporter's own chatter (deprecations, axis renames, optional torchvision ops)
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            StepModule(net), args, dynamo=True, opset_version=OPSET, verbose=False,
            input_names=["x", *(f"state_{i}" for i in range(n))],
            output_names=["y", *(f"state_{i}_out" for i in range(n))],
            dynamic_shapes=({0: batch}, tuple({0: batch} for _ in range(n))),
        )
    return program.model_proto


def annotate(model: onnx.ModelProto, specs: list[NeuronSpec]) -> list[str]:
    """Name the ``snn`` nodes after their state (``LIF_3`` reads ``state_3``), set their
    overload, attach the function bodies, the ``snn`` opset and IR version; returns the
    node names in state order. ``specs[i]`` is the neuron that owns ``state_i``."""
    state_index = {f"state_{i}": i for i in range(len(specs))}
    names: list[str | None] = [None] * len(specs)
    for node in model.graph.node:
        if node.domain != fn.DOMAIN:
            continue
        i = state_index.get(node.input[1])
        if i is None or names[i] is not None:
            raise ExportError(f"neuron node {node.name} does not read exactly one state input")
        node.name = names[i] = f"{node.op_type}_{i}"
        node.overload = fn.overload(specs[i])
    if None in names:
        raise ExportError(f"expected one snn node per neuron layer ({len(specs)}), found {len(specs) - names.count(None)}")
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    wanted = {(s.kind, fn.overload(s)): s for s in specs}
    del model.functions[:]
    model.functions.extend(fn.function(s, opset) for s in wanted.values())
    if not any(o.domain == fn.DOMAIN for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(fn.DOMAIN, fn.DOMAIN_VERSION))
    model.ir_version = IR_VERSION
    model.producer_name = "flexsnn"
    return names


def build_onnx(cfg: Config, model: SpikingNet) -> onnx.ModelProto:
    """The finished ONNX model for a trained network (not yet written)."""
    net = deployable(model)
    in_shape = tuple(cfg.model.in_shape)
    shapes = state_shapes(net, in_shape)
    specs = [layer.spec for layer in neuron_layers(net)]
    proto = trace(net, in_shape)
    nodes = annotate(proto, specs)
    onnx.helper.set_model_props(proto, {KEY: json.dumps(protocol(cfg, net.readout_rule, shapes, nodes, specs))})
    return proto


def export_onnx(cfg: Config, model: SpikingNet, path: str | Path) -> Path:
    """Write ``model`` as a ``flexsnn-onnx/1`` file at ``path`` (atomically); returns it."""
    proto = build_onnx(cfg, model)
    onnx.checker.check_model(proto, full_check=True)
    return write_atomic(path, lambda tmp: onnx.save(stamp_onnx(proto), tmp))
