"""Turn a trained network into the deployable one that every format exports.

* BatchNorm is folded into the conv / linear layer before it (with its calibrated
  running statistics), so no target has to implement BatchNorm.
* Dropout is removed (it is the identity at inference).
* A reparametrised layer with a ``folded()`` method (weight standardisation) is replaced
  by the plain layer it returns.
* Neurons become :class:`export.neuron.DeployNeuron` (exact forward, no surrogate; one
  ``snn`` node in ONNX export).
* Every layer is checked against the supported set, so an unsupported layer fails here,
  at export time, naming the layer and the set, not deep inside an exporter.

The input network is never modified: preparation works on a deep copy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import nn

from runtime.neuron import kinds
from trainer.fold import BATCHNORMS, WEIGHT_LAYERS, fold_bn, weight_layer_before
from trainer.layers import Layer, NeuronLayer, Residual, Sequence, Stateless, rewrite
from trainer.models import Net, SpikingNet
from trainer.neurons import Neuron

from .errors import ExportError
from .neuron import DeployNeuron

DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d)
# Stateless torch modules every format can express (after folding / removal).
STATELESS_SUPPORTED = (*WEIGHT_LAYERS, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten)
SUPPORTED = sorted(
    {c.__name__ for c in (*STATELESS_SUPPORTED, *BATCHNORMS, *DROPOUTS)}
    | {f"NeuronLayer ({'/'.join(kinds())})", "Sequence", "Residual"}
)


def unsupported(where: str, module: nn.Module) -> ExportError:
    return ExportError(
        f"layer {where} ({type(module).__name__}) cannot be exported; supported layers: {', '.join(SUPPORTED)}"
    )


def _with_bn(layer: nn.Conv2d | nn.Linear, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> nn.Conv2d | nn.Linear:
    if bn.running_mean is None or bn.running_var is None:
        raise ExportError(f"{type(bn).__name__} without running statistics cannot be folded")
    with torch.no_grad():
        w, b = fold_bn(layer.weight, layer.bias, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)
    out = copy.deepcopy(layer)
    out.weight = nn.Parameter(w)
    out.bias = nn.Parameter(b)
    return out


def _keep(kept: list[Layer], layer: Layer, name: str) -> Layer | None:
    """A layer of a Sequence, after the layers ``kept`` before it: dropout dropped,
    BatchNorm folded into the layer before it, the rest checked (see :func:`rewrite`)."""
    if not isinstance(layer, Stateless):
        _neuron(layer, name)
        return layer
    mod = layer.module
    if isinstance(mod, DROPOUTS):
        return None
    folded = getattr(mod, "folded", None)
    if callable(folded):
        # a reparametrised layer (weight standardisation) knows its plain form
        mod = folded()
        layer = Stateless(mod)
    if isinstance(mod, BATCHNORMS):
        prev = weight_layer_before(kept)
        if prev is None:
            raise ExportError(
                f"BatchNorm {name} does not follow a Conv2d/Linear layer and "
                "cannot be folded; supported: BatchNorm right after Conv2d or Linear"
            )
        kept[-1] = Stateless(_with_bn(prev, mod))
        return None
    if type(mod) not in STATELESS_SUPPORTED:  # exact: a subclass may change forward
        raise unsupported(name, mod)
    return layer


def _neuron(layer: Layer, where: str) -> None:
    if not isinstance(layer, NeuronLayer):
        raise unsupported(where, layer)
    if type(layer.neuron) is not Neuron:
        raise unsupported(f"{where}.neuron", layer.neuron)
    layer.neuron = DeployNeuron(layer.spec)


def deployable(model: Net) -> SpikingNet:
    """A copy of ``model`` in eval mode: BatchNorm folded, dropout removed, deploy neurons."""
    from trainer.trev import TRevNet

    if isinstance(model, TRevNet):  # its ONNX writer is its own; "cannot be exported" misled
        raise ExportError(
            "a T-RevSNN model (trev-...) exports to ONNX and pt2 (--format onnx or pt2: its step reads t, "
            "which chooses the sub-network's weights); TorchScript's tracer cannot follow that choice, and a "
            "NIR graph has one set of weights for every step"
        )
    if not isinstance(model, SpikingNet):
        raise unsupported("model", model)
    net = copy.deepcopy(model).eval()
    for i, stage in enumerate(net.stages):
        rewrite(stage, f"stages.{i}", _keep, _neuron)
    return net.requires_grad_(False)


def layers(net: SpikingNet) -> Iterator[Layer]:
    """Every leaf layer (Stateless or NeuronLayer) in execution order, which is also the
    order of the states in ``SpikingNet.step`` (depth first: body, shortcut, neuron)."""

    def walk(layer: Layer) -> Iterator[Layer]:
        if isinstance(layer, Sequence):
            for sub in layer.layers:
                yield from walk(sub)
        elif isinstance(layer, Residual):
            yield from walk(layer.body)
            yield from walk(layer.shortcut)
            yield layer.neuron
        else:
            yield layer

    for stage in net.stages:
        yield from walk(stage)


def neuron_layers(net: SpikingNet) -> list[NeuronLayer]:
    """The neuron layers, in state order (state i belongs to ``neuron_layers(net)[i]``)."""
    return [layer for layer in layers(net) if isinstance(layer, NeuronLayer)]
