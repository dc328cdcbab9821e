"""NIR export (nir == 1.0.4): the deployable network as a NIR graph, plus every neuron
field NIR cannot express stored in metadata. Mapping and peer matrix: docs/nir_mapping.md.

The encoding is chosen so that sinabs 3.1.3, snnTorch 1.0.0 and norse 1.1.0 all load the
graph and run every neuron variant they can express with our spikes:

* neuron parameters per kind: each kind's module in the neuron registry
  (``runtime.neuron``; shared conventions in :mod:`runtime.neuron.nir`), also what each
  peer runs differently (the export warns one line per such peer and records it);
* average pooling as a Conv2d with an identity-across-channels kernel of ``1 / k``;
* ``Flatten`` with negative dims (peers disagree on whether NIR dims count the batch);
* node names that sort in execution order (``n000_input``, ``n001_conv``, ...).

Each neuron node's ``metadata`` holds its full spec and the graph's
``metadata["flexsnn.protocol"]`` holds the same JSON protocol as the ONNX file.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from runtime.fileio import write_atomic
from runtime.neuron import kind_of
from runtime.neuron.nir import PEERS, NirNeuronError, peer_notes
from trainer.config import Config
from trainer.layers import NeuronLayer, Residual, Sequence, Stateless
from trainer.models import SpikingNet

from .errors import ExportError
from .prepare import deployable, neuron_layers
from .protocol import KEY, layer_infos, protocol
from .step import state_shapes

NIR_VERSION = "1.0.4"


class NirPeerWarning(UserWarning):
    """A peer simulator (sinabs, snnTorch, norse) will run the exported graph differently."""


# what sinabs 3.1.3 and norse 1.1.0 (nirtorch's executor) make of a node that feeds two (a
# residual block's body and shortcut), seen on resnet10: no error, and an output of the
# shape of a block's feature map (tests/test_nir_peers.py::test_residual_graph_in_the_peers)
BRANCH_PEERS = ("sinabs", "norse")
BRANCH_NOTE = "does not follow the residual branches (a node feeding two): its output is an inner feature map"


def pool_window(module: nn.Module, shape: tuple[int, ...]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """``(kernel, stride, padding)`` of an average pool on an input of ``shape [C, H, W]``."""
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)
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


def pool_as_conv(channels: int, kernel: tuple[int, int]) -> np.ndarray:
    """Weights of a Conv2d that averages each channel over ``kernel`` (identity across
    channels): the one pooling form sinabs 3.1.3, snnTorch 1.0.0 and norse 1.1.0 all
    import (snnTorch has no SumPool2d, sinabs and norse no AvgPool2d, and all three build
    a grouped conv with the wrong number of input channels)."""
    w = np.zeros((channels, channels, *kernel), np.float32)
    w[np.arange(channels), np.arange(channels)] = 1.0 / float(np.prod(kernel))
    return w


@dataclass
class Builder:
    """Emits NIR nodes while a sample tensor flows through the network (for shapes).
    A signal is ``(sources, x)``: the nodes whose outputs sum into it and a sample value."""

    nodes: dict[str, Any] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    neuron_names: list[str] = field(default_factory=list)

    def add(self, kind: str, node: Any, sources: list[str]) -> str:
        # names sort in execution order: nir.read returns the nodes sorted by name, and
        # nirtorch 2.0.2's nir_to_torch (snnTorch's import) gives up on a graph whose
        # node order is too far from topological order
        name = f"n{len(self.nodes):03d}_{kind}"
        self.nodes[name] = node
        self.edges += [(s, name) for s in sources]
        return name

    def conv(self, x: torch.Tensor, w: np.ndarray, b: np.ndarray, stride, padding, dilation, groups, sources):
        import nir

        node = nir.Conv2d(
            input_shape=tuple(x.shape[2:]),
            weight=w,
            stride=tuple(stride),
            padding=tuple(padding),
            dilation=tuple(dilation),
            groups=groups,
            bias=b,
        )
        return [self.add("conv", node, sources)]

    def emit(self, layer: nn.Module, sources: list[str], x: torch.Tensor):
        import nir

        if isinstance(layer, Sequence):
            for sub in layer.layers:
                sources, x = self.emit(sub, sources, x)
            return sources, x
        if isinstance(layer, Residual):
            body, short = self.emit(layer.body, sources, x), self.emit(layer.shortcut, sources, x)
            return self.emit(layer.neuron, body[0] + short[0], body[1] + short[1])
        if isinstance(layer, NeuronLayer):
            spec, shape = layer.spec, tuple(x.shape[1:])
            try:
                cls, params = kind_of(spec.kind).to_nir(spec, shape)
            except NirNeuronError as e:
                raise ExportError(f"NIR export: {e}") from None
            meta = {f"flexsnn.{k}": v for k, v in spec.to_dict().items()}
            meta["flexsnn.nir_time"] = kind_of(spec.kind).nir_time(spec)
            name = self.add(spec.kind.lower(), getattr(nir, cls)(**params, metadata=meta), sources)
            self.neuron_names.append(name)
            return [name], layer.neuron(x, None)[0]
        if not isinstance(layer, Stateless):
            raise ExportError(f"{type(layer).__name__} has no NIR form")
        m, y = layer.module, layer.module(x)
        if isinstance(m, nn.Conv2d):
            w = m.weight.detach().numpy()
            b = (torch.zeros(w.shape[0]) if m.bias is None else m.bias).detach().numpy()
            return self.conv(x, w, b, m.stride, m.padding, m.dilation, m.groups, sources), y
        if isinstance(m, nn.Linear):
            w = m.weight.detach().numpy()
            b = (torch.zeros(w.shape[0]) if m.bias is None else m.bias).detach().numpy()
            return [self.add("affine", nir.Affine(weight=w, bias=b), sources)], y
        if isinstance(m, nn.Flatten):
            # negative dims: sinabs shifts non-negative ones past its batch dim, snnTorch
            # and norse pass them to torch.nn.Flatten as they are (flattening the batch)
            ndim = x.dim() - 1
            start = m.start_dim - 1 - ndim if m.start_dim > 0 else m.start_dim
            end = m.end_dim - 1 - ndim if m.end_dim > 0 else m.end_dim
            node = nir.Flatten(input_type={"input": np.array(x.shape[1:])}, start_dim=start, end_dim=end)
            return [self.add("flatten", node, sources)], y
        if isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            kernel, stride, padding = pool_window(m, tuple(x.shape[1:]))
            c = x.shape[1]
            return self.conv(
                x, pool_as_conv(c, kernel), np.zeros(c, np.float32), stride, padding, (1, 1), 1, sources
            ), y
        raise ExportError(f"{type(m).__name__} has no NIR form")


@torch.no_grad()
def build_nir(cfg: Config, model: SpikingNet, **fields: object):
    """The NIR graph of the deployable ``model`` (one sample's shapes, no batch dim)."""
    import nir

    if nir.__version__ != NIR_VERSION:
        raise ExportError(f"NIR export targets nir=={NIR_VERSION}, found {nir.__version__}")
    net = deployable(model)
    in_shape = tuple(cfg.model.in_shape)
    b = Builder()
    sources, x = [b.add("input", nir.Input(input_type={"input": np.array(in_shape)}), [])], torch.zeros(1, *in_shape)
    for stage in net.stages:
        sources, x = b.emit(stage, sources, x)
    b.add("output", nir.Output(output_type={"output": np.array(x.shape[1:])}), sources)
    specs = [layer.spec for layer in neuron_layers(net)]
    # the NIR nodes stand for the neuron layers; states are named as in the ONNX file
    states, neurons = layer_infos(specs, state_shapes(net, in_shape), b.neuron_names)
    meta = protocol(cfg, net.readout_rule, states, neurons, **fields).to_dict()
    notes = peer_notes(specs)
    if any(n > 1 for n in Counter(src for src, _ in b.edges).values()):
        for peer in BRANCH_PEERS:
            notes[peer] = "; ".join(filter(None, [notes[peer], BRANCH_NOTE]))
    meta["nir"] = {
        "version": NIR_VERSION,
        "mapping": "docs/nir_mapping.md",
        "peers": {PEERS[p]: note or "identical spikes" for p, note in notes.items()},
    }
    for peer, note in notes.items():
        if note:
            warnings.warn(f"NIR: {PEERS[peer]} {note}", NirPeerWarning, stacklevel=2)
    return nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata={KEY: json.dumps(meta)})


def export_nir(cfg: Config, model: SpikingNet, path: str | Path, **fields: object) -> Path:
    """Write the NIR graph of ``model`` to ``path`` (HDF5, atomically); returns it."""
    import nir

    graph = build_nir(cfg, model, **fields)
    return write_atomic(path, lambda tmp: nir.write(tmp, graph))
