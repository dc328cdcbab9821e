"""ONNX export: one time step, one ``snn`` node per neuron layer (docs/onnx_protocol.md).

1. :func:`export.prepare.deployable` folds BatchNorm, removes dropout, swaps neurons.
2. Its neurons (:class:`export.neuron.DeployNeuron`), only while ``torch.onnx.export``
   runs, emit one ``snn::<kind>`` node each with every field of the spec as attributes
   (``torch.onnx.ops.symbolic_multi_out``); the trainer's neuron and its training path
   stay untouched.
3. The default (dynamo) exporter writes the graph; :func:`annotate` names the neuron nodes,
   sets their ``overload``, attaches one function body per variant, the ``snn`` opset
   import and IR version 10 (onnxruntime rejects newer); then the protocol metadata.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import onnx
import torch

from runtime.fileio import write_atomic
from runtime.integrity import stamp_onnx
from runtime.neuron import NeuronSpec
from runtime.neuron import functions as fn
from runtime.protocol import NeuronInfo, StageInfo, StateInfo, store_protocol
from runtime.report import versions
from trainer.config import Config
from trainer.models import Net, SpikingNet

from .errors import ExportError
from .prepare import deployable, neuron_layers
from .protocol import protocol
from .step import StepModule, state_shapes, zero_states
from .tracing import TRACING

IR_VERSION = 10
OPSET = 20


def model_proto(program: torch.onnx.ONNXProgram | None) -> onnx.ModelProto:
    """The model of a dynamo export (torch types the result optional: its legacy exporter
    returned None)."""
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    return program.model_proto


def stage_input(i: int) -> str:
    """The graph tensor stage ``i`` reads: ``x``, or what stage ``i - 1`` outputs."""
    return "x" if i == 0 else f"stage_{i}_in"


def trace(net: SpikingNet, in_shape: tuple[int, ...], boundaries: bool = False) -> onnx.ModelProto:
    """The raw dynamo export of one step of the deployable ``net``, batch dynamic;
    ``boundaries``: the tensor each stage after the first reads is named ``stage_{i}_in``
    (exported as an extra output, which names it, then no longer an output)."""
    shapes = state_shapes(net, in_shape)
    n = len(shapes)
    cuts = [stage_input(i) for i in range(1, len(net.stages))] if boundaries else []
    batch = torch.export.Dim("batch", min=1)
    args = (torch.zeros(2, *in_shape), zero_states(shapes, 2))
    # the exporter's own chatter (deprecations, axis renames, optional torchvision ops)
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with TRACING, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            StepModule(net, boundaries),
            args,
            dynamo=True,
            opset_version=OPSET,
            verbose=False,
            input_names=["x", *(f"state_{i}" for i in range(n))],
            output_names=["y", *(f"state_{i}_out" for i in range(n)), *cuts],
            dynamic_shapes=({0: batch}, tuple({0: batch} for _ in range(n))),
        )
    proto = model_proto(program)
    del proto.graph.output[1 + n :]  # the stage boundaries stay named tensors inside one step graph
    return proto


def attach_functions(model: onnx.ModelProto, specs: list[NeuronSpec]) -> None:
    """Attach one function body per (kind, overload) of ``specs``, the ``snn`` opset import
    and IR version 10 (onnxruntime rejects newer)."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    wanted = {(s.kind, fn.overload(s)): s for s in specs}
    del model.functions[:]
    model.functions.extend(fn.function(s, opset) for s in wanted.values())
    if not any(o.domain == fn.DOMAIN for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(fn.DOMAIN, fn.DOMAIN_VERSION))
    model.ir_version = IR_VERSION
    model.producer_name = "flexsnn"
    model.producer_version = versions("flexsnn")["flexsnn"] or ""  # was torch's version


def annotate(model: onnx.ModelProto, specs: list[NeuronSpec]) -> list[NeuronInfo]:
    """Name the ``snn`` nodes by their layer's ordinal (``CubaLIF_1``, the second neuron
    layer, may read ``state_2`` and ``state_3``), set their overload and attach the function
    bodies; returns the neurons in state order.
    ``specs`` are the neuron layers' specs in state order; layer j owns the next
    ``specs[j].n_states`` states."""
    owner: dict[str, int] = {}
    first = 0
    for layer, spec in enumerate(specs):
        owner.update({f"state_{first + k}": layer for k in range(spec.n_states)})
        first += spec.n_states
    found: list[NeuronInfo | None] = [None] * len(specs)
    for node in model.graph.node:
        if node.domain != fn.DOMAIN:
            continue
        js = {owner.get(name) for name in node.input[1:]}
        j = js.pop() if len(js) == 1 else None
        if j is None or found[j] is not None or len(node.input) - 1 != specs[j].n_states:
            raise ExportError(f"neuron node {node.name} does not read exactly its own layer's states")
        node.name = f"{node.op_type}_{j}"  # the layer's ordinal (two-state kinds skipped one by state index)
        node.overload = fn.overload(specs[j])
        found[j] = NeuronInfo(node.name, specs[j], tuple(node.input[1:]))
    missing = [j for j, f in enumerate(found) if f is None]
    if missing:
        raise ExportError(f"expected one snn node per neuron layer ({len(specs)}), {len(missing)} missing")
    attach_functions(model, specs)
    return [f for f in found if f is not None]


def stage_infos(net: SpikingNet, in_shape: tuple[int, ...], config: list[int]) -> list[StageInfo]:
    """Each stage's T, input tensor and shape (found by one step) and states, in order."""
    if len(config) != len(net.stages):
        raise ExportError(f"need one T per stage ({len(net.stages)}), got {config}")
    x, first, out = torch.zeros(1, *in_shape), 0, []
    with torch.no_grad():
        for i, (stage, T) in enumerate(zip(net.stages, config)):
            states = tuple(f"state_{k}" for k in range(first, first + stage.n_states))
            out.append(StageInfo(int(T), stage_input(i), tuple(x.shape[1:]), states))
            x, _ = stage.step(x, [None] * stage.n_states)
            first += stage.n_states
    return out


def build_onnx(cfg: Config, model: Net, config: list[int] | None = None, **fields: object) -> onnx.ModelProto:
    """The finished ONNX model for a trained network (not yet written); ``config``: one T
    per stage, a multi-rate file (its stages cut at named tensors, runtime.stages);
    ``fields``: protocol fields to record, e.g. ``unfinished=(3, 10)`` (epochs done, epochs)
    of a run that stopped early."""
    net = deployable(model)
    in_shape = tuple(cfg.model.in_shape)
    shapes = state_shapes(net, in_shape)
    specs = [layer.spec for layer in neuron_layers(net)]
    proto = trace(net, in_shape, boundaries=config is not None)
    neurons = annotate(proto, specs)
    node_of = {s: n.node for n in neurons for s in n.states}
    states = [StateInfo(f"state_{i}", s, node_of[f"state_{i}"]) for i, s in enumerate(shapes)]
    stages = tuple(stage_infos(net, in_shape, config)) if config is not None else ()
    store_protocol(proto, protocol(cfg, net.readout_rule, states, neurons, stages=stages, **fields))
    return proto


def export_onnx(cfg: Config, model: Net, path: str | Path, config: list[int] | None = None, **fields: object) -> Path:
    """Write ``model`` as a ``flexsnn-onnx/3`` file at ``path`` (atomically); returns it."""
    proto = build_onnx(cfg, model, config, **fields)
    onnx.checker.check_model(proto, full_check=True)
    return write_atomic(path, lambda tmp: onnx.save(stamp_onnx(proto), tmp))
