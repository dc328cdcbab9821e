"""NIR export (nir == 1.0.4): the deployable network as a NIR graph, plus every neuron
field NIR cannot express stored in metadata. Mapping: docs/nir_mapping.md.

NIR is continuous-time and has no field for reset mode, spike mode, lower clamp or dt.
Time is measured in steps here (``tau`` in steps, so ``exp(-1 / tau) = decay``, the way
sinabs imports it); ``r = 1`` and ``v_leak = 0`` so that an input adds to the membrane
as in DESIGN.md §1. Each neuron node's ``metadata`` holds its full spec and the graph's
``metadata["flexsnn.protocol"]`` holds the same JSON protocol as the ONNX file.

Average pooling is written as ``SumPool2d`` with ``1 / k`` folded into the next
Conv2d/Affine weights (exact for power-of-two windows such as 2x2): that is what
sum-pooling hardware (Speck) and sinabs run. An average pool that reaches a neuron, a
branch or the output before any weight layer is written as ``AvgPool2d``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from runtime.fileio import write_atomic
from runtime.neuron import NeuronSpec
from runtime.protocol import NeuronInfo, StateInfo
from trainer.config import Config
from trainer.layers import NeuronLayer, Residual, Sequence, Stateless
from trainer.models import SpikingNet

from .errors import ExportError
from .prepare import deployable, neuron_layers
from .protocol import KEY, protocol
from .step import state_shapes

NIR_VERSION = "1.0.4"


def neuron_params(spec: NeuronSpec, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """NIR parameters of one neuron layer (per neuron, time in steps)."""
    full = lambda v: np.full(shape, v, np.float32)  # noqa: E731
    params = {"r": full(1.0)}
    if spec.kind != "IF":
        params.update(tau=full(-1.0 / math.log(spec.decay)), v_leak=full(0.0))
    if spec.spiking:
        params["v_threshold"] = full(spec.v_th)
    return params


def pool_window(module: nn.Module, shape: tuple[int, ...]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """``(kernel, stride, padding)`` of an average pool on an input of ``shape [C, H, W]``."""
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731
    if isinstance(module, nn.AdaptiveAvgPool2d):
        out = pair(module.output_size)
        out = tuple(s if o is None else o for o, s in zip(out, shape[1:]))
        if any(s % o for s, o in zip(shape[1:], out)):
            raise ExportError(f"AdaptiveAvgPool2d from {list(shape[1:])} to {list(out)} is not a fixed window")
        kernel = tuple(s // o for s, o in zip(shape[1:], out))
        return kernel, kernel, (0, 0)
    if module.ceil_mode or not module.count_include_pad and module.padding not in (0, (0, 0)):
        raise ExportError("AvgPool2d with ceil_mode or count_include_pad=False has no NIR form")
    return pair(module.kernel_size), pair(module.stride or module.kernel_size), pair(module.padding)


@dataclass
class Builder:
    """Emits NIR nodes while a sample tensor flows through the network (for shapes).

    A signal is ``(sources, x, pools)``: the nodes whose outputs sum into it, a sample
    value, and the sum pools whose ``1 / k`` it still owes (folded into the next weight
    layer; where none comes first, those pools are rewritten as ``AvgPool2d``).
    """

    nodes: dict[str, Any] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    neuron_names: list[str] = field(default_factory=list)

    def add(self, kind: str, node: Any, sources: list[str]) -> str:
        name = f"{kind}_{len(self.nodes)}"
        self.nodes[name] = node
        self.edges += [(s, name) for s in sources]
        return name

    def settle(self, pools: list[str]) -> list[str]:
        """No weight layer to fold into: the pending sum pools become average pools."""
        import nir

        for name in pools:
            n = self.nodes[name]
            self.nodes[name] = nir.AvgPool2d(n.kernel_size, n.stride, n.padding)
        return []

    def scale(self, pools: list[str]) -> float:
        return float(np.prod([1.0 / np.prod(self.nodes[p].kernel_size) for p in pools]))

    def emit(self, layer: nn.Module, sources: list[str], x: torch.Tensor, pools: list[str]):
        import nir

        if isinstance(layer, Sequence):
            for sub in layer.layers:
                sources, x, pools = self.emit(sub, sources, x, pools)
            return sources, x, pools
        if isinstance(layer, Residual):
            pools = self.settle(pools)
            body, short = self.emit(layer.body, sources, x, pools), self.emit(layer.shortcut, sources, x, pools)
            self.settle(body[2] + short[2])
            return self.emit(layer.neuron, body[0] + short[0], body[1] + short[1], [])
        if isinstance(layer, NeuronLayer):
            self.settle(pools)
            spec, shape = layer.spec, tuple(x.shape[1:])
            cls = {"LIF": nir.LIF, "IF": nir.IF, "LI": nir.LI}.get(spec.kind)
            if cls is None:
                raise ExportError(f"{spec.kind} neurons have no NIR form in this exporter (LIF, IF, LI only)")
            node = cls(**neuron_params(spec, shape), metadata={f"flexsnn.{k}": v for k, v in spec.to_dict().items()})
            name = self.add(spec.kind.lower(), node, sources)
            self.neuron_names.append(name)
            return [name], layer.neuron(x, None)[0], []
        if not isinstance(layer, Stateless):
            raise ExportError(f"{type(layer).__name__} has no NIR form")
        m, y = layer.module, layer.module(x)
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = (m.weight * self.scale(pools)).detach().numpy()
            b = (torch.zeros(w.shape[0]) if m.bias is None else m.bias).detach().numpy()
            if isinstance(m, nn.Conv2d):
                node = nir.Conv2d(input_shape=tuple(x.shape[2:]), weight=w, stride=m.stride, padding=m.padding,
                                  dilation=m.dilation, groups=m.groups, bias=b)
                return [self.add("conv", node, sources)], y, []
            return [self.add("affine", nir.Affine(weight=w, bias=b), sources)], y, []
        if isinstance(m, nn.Flatten):
            node = nir.Flatten(input_type={"input": np.array(x.shape[1:])}, start_dim=m.start_dim - 1,
                               end_dim=m.end_dim - 1 if m.end_dim > 0 else m.end_dim)
            return [self.add("flatten", node, sources)], y, pools
        if isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            kernel, stride, padding = pool_window(m, tuple(x.shape[1:]))
            node = nir.SumPool2d(np.array(kernel), np.array(stride), np.array(padding))
            return [self.add("pool", node, sources)], y, pools + [next(reversed(self.nodes))]
        raise ExportError(f"{type(m).__name__} has no NIR form")


@torch.no_grad()
def build_nir(cfg: Config, model: SpikingNet):
    """The NIR graph of the deployable ``model`` (one sample's shapes, no batch dim)."""
    import nir

    if nir.__version__ != NIR_VERSION:
        raise ExportError(f"NIR export targets nir=={NIR_VERSION}, found {nir.__version__}")
    net = deployable(model)
    in_shape = tuple(cfg.model.in_shape)
    b = Builder()
    b.nodes["input"] = nir.Input(input_type={"input": np.array(in_shape)})
    sources, x, pools = ["input"], torch.zeros(1, *in_shape), []
    for stage in net.stages:
        sources, x, pools = b.emit(stage, sources, x, pools)
    b.settle(pools)
    b.nodes["output"] = nir.Output(output_type={"output": np.array(x.shape[1:])})
    b.edges += [(s, "output") for s in sources]
    specs = [layer.spec for layer in neuron_layers(net)]
    # the NIR nodes stand for the neuron layers; states are named as in the ONNX file
    states, neurons = [], []
    shapes = iter(state_shapes(net, in_shape))
    for name, spec in zip(b.neuron_names, specs):
        own = [f"state_{len(states) + k}" for k in range(spec.n_states)]
        states += [StateInfo(s, next(shapes), name) for s in own]
        neurons.append(NeuronInfo(name, spec, tuple(own)))
    meta = protocol(cfg, net.readout_rule, states, neurons).to_dict()
    meta["nir"] = {"version": NIR_VERSION, "time_unit": "step", "mapping": "docs/nir_mapping.md"}
    return nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata={KEY: json.dumps(meta)})


def export_nir(cfg: Config, model: SpikingNet, path: str | Path) -> Path:
    """Write the NIR graph of ``model`` to ``path`` (HDF5, atomically); returns it."""
    import nir

    graph = build_nir(cfg, model)
    return write_atomic(path, lambda tmp: nir.write(tmp, graph))
