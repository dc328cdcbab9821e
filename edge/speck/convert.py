"""An exported model in Speck's form: IF neurons (subtract reset, multi-spike), no bias,
sum pooling, every synaptic layer a convolution.

The model is lowered by the event engine's :func:`runtime.event.graph.lower` (which
already refuses biases, folds BatchNorm-free average pooling into the next weights as
``1/k²`` and reads a flatten + dense layer in C, H, W order). Here each lowered layer
becomes one Speck layer:

* a dense layer becomes a convolution whose kernel covers its whole input
  (``[N, C*H*W] -> [N, C, H, W]``, kernel H x W, no padding, stride 1);
* the sum pooling in front of layer i+1 belongs to layer i on the chip (a core pools
  its own output before sending it on); pooling in front of layer 0 is the sensor's;
* the readout (no neuron, or a non-leaky integrator) becomes a pair of IF neurons per
  class, one fed ``+W`` and one ``-W``, both with threshold ``readout_threshold`` and a
  lower clamp at 0; the prediction is the class with the largest ``count(+) - count(-)``.
  The chip's only output is spikes, and one IF neuron per class counts
  ``floor(max over time of the running sum / threshold)``, not the sum itself: evidence
  that rises and later falls is kept (measured on the digits default model: 0.69 against
  0.83 float, 75% agreement, although 8-bit weights moved only 0.3% of hidden spikes).
  With the clamp, ``count(+)`` counts every rise and ``count(-)`` every fall, so their
  difference is the sum up to about one threshold per change of direction;
* single-spike IF becomes multi-spike (the chip's neuron emits as many spikes as
  thresholds crossed); a leak or a reset to zero cannot be expressed and is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import onnx

from runtime.data.transforms import from_dicts
from runtime.event.graph import Layer, NeuronFormError, lower
from runtime.neuron import NeuronSpec, kind_of
from runtime.protocol import ModelError, Protocol

from .constraints import LayerShape, Violation


@dataclass(frozen=True)
class SpeckLayer:
    """One chip layer: conv (weight ``[c_out, c_in, kh, kw]``, float, 1/k² folded in) ->
    IF neurons -> sum pooling of ``shape.pool`` -> the next layer."""

    shape: LayerShape
    weight: np.ndarray
    neuron: NeuronSpec
    source: str  # "conv" or "linear" (converted)
    node: str  # the ONNX neuron node ("" for a readout without neuron)

    @property
    def name(self) -> str:
        return self.shape.name


@dataclass
class SpeckNet:
    """The converted network; ``violations`` are those of the neurons (shapes are checked by
    :mod:`.backend`), ``notes`` say what the conversion changed."""

    input_shape: tuple[int, int, int]
    input_pool: int
    layers: list[SpeckLayer]
    protocol: Protocol
    readout_pairs: int = 0  # classes C of a signed-pair readout (2C output channels); 0: counts read directly
    notes: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)


# the readout pairs' threshold (model units) where the caller names none (edge speck's
# default too): finer tracks the float readout more closely but sends more output spikes
READOUT_THRESHOLD = 0.01


def chip_neuron(v_th: float, v_min: float, dt: float) -> NeuronSpec:
    """The one neuron Speck's cores run: integrate and fire without leak, the threshold
    subtracted once per spike, as many spikes per step as the membrane holds thresholds."""
    return NeuronSpec("IF", 1.0, v_th, "subtract", "multi", v_min, dt)


def pair_classes(classes: Sequence[str]) -> list[str]:
    """The output channels of a signed-pair readout: every class's +W neuron, then every
    class's -W neuron (the order :func:`convert` stacks the weights in, :func:`predict` reads)."""
    return [f"{c}+" for c in classes] + [f"{c}-" for c in classes]


def _neuron(L: Layer, readout: bool, readout_threshold: float, net: SpeckNet) -> NeuronSpec:
    n = L.neuron
    issue = None if n is None else kind_of(n.kind).speck_issue(n)
    if issue is not None:
        net.violations.append(Violation(L.name, *issue))
    if n is None or (readout and not n.spiking):
        net.notes.append(
            f"readout {L.name!r}: two IF neurons per class (+W and -W, threshold "
            f"{readout_threshold:g}, lower clamp 0), prediction = most spikes(+) - spikes(-)"
        )
        # a readout with no neuron steps as the model does (one bin: the protocol's dt_us)
        return chip_neuron(readout_threshold, 0.0, n.dt if n else net.protocol.dt_us or 1.0)
    if n.reset != "subtract":
        net.violations.append(Violation(L.name, "reset", n.reset, "'subtract' (the chip subtracts the threshold)"))
    if n.spike == "single" and issue is None:  # a kind the chip refuses gets its violation, not this note
        net.notes.append(f"{L.node or L.name!r}: single-spike {n.kind} run as multi-spike (as the chip fires)")
    return n if issue is not None else chip_neuron(n.v_th, n.v_min, n.dt)


def convert(model: onnx.ModelProto, protocol: Protocol, readout_threshold: float = READOUT_THRESHOLD) -> SpeckNet:
    """Speck's form of ``model`` (:class:`runtime.protocol.ModelError` if it cannot run per
    event at all: the message names the node)."""
    try:
        lowered = lower(model, protocol)
    except ModelError as e:  # keep the type (BiasError stays a BiasError), say who asks
        # a neuron the chip cannot run is named as the chip's limit, not as the event
        # runtime's (which said "run this model clock-driven" of a chip check)
        if isinstance(e, NeuronFormError):
            issues = [(n.node, kind_of(n.op).speck_issue(n.spec)) for n in protocol.neurons]
            chip = [str(Violation(node, *issue)) for node, issue in issues if issue is not None]
            if chip:
                raise type(e)(f"Speck cannot run this model: {'; '.join(chip)}") from None
        raise type(e)(f"Speck runs event-driven networks only: {e}") from None
    net = SpeckNet(tuple(protocol.input_shape), lowered[0].pool, [], protocol)  # type: ignore[arg-type]
    if protocol.transforms:  # the chip is configured without its DVS input (deploy.py): the host feeds it
        texts = ", ".join(t.text for t in from_dicts(protocol.transforms))
        net.notes.append(f"input transforms {texts}: applied on the host; the chip gets the transformed events")
    for i, L in enumerate(lowered):
        last = i == len(lowered) - 1
        pool = 1 if last else lowered[i + 1].pool
        c_in, h, w = L.in_shape
        if L.op == "conv":
            weight, kernel = L.weight, tuple(L.weight.shape[2:])
            # lower() keeps top/left pads and the output size of all four; Speck pads symmetrically
            padding = L.pads
            source = "conv"
        else:
            weight, kernel, padding, source = L.weight.reshape(L.weight.shape[0], c_in, h, w), (h, w), (0, 0), "linear"
            net.notes.append(
                f"{L.name!r}: linear {c_in * h * w} -> {L.weight.shape[0]} as a {h}x{w} "
                f"convolution over {c_in} channels"
            )
        shape = LayerShape(
            L.name,
            c_in,
            (h, w),
            weight.shape[0],
            kernel,
            L.stride if source == "conv" else (1, 1),
            padding,
            (pool, pool),
            0 if last else 1,
        )
        if shape.out_size != L.out_shape[1:]:
            net.violations.append(
                Violation(
                    L.name,
                    "padding",
                    "asymmetric (bottom/right differ from top/left)",
                    "the same padding on both sides",
                )
            )
        if pool > 1:
            net.notes.append(
                f"average pooling {pool}x{pool} after {L.name!r} as sum pooling; "
                f"1/{pool * pool} folded into the weights of {lowered[i + 1].name!r}"
            )
        neuron = _neuron(L, last, readout_threshold, net)
        if last and (L.neuron is None or not L.neuron.spiking):  # the readout _neuron gave IF neurons
            net.readout_pairs = weight.shape[0]
            weight = np.concatenate([weight, -weight])  # pair_classes' order
            shape = replace(shape, c_out=2 * shape.c_out)
        net.layers.append(SpeckLayer(shape, weight, neuron, source, L.node))
    return net


def predict(output: np.ndarray, readout_pairs: int) -> np.ndarray:
    """Class per sample from the chip's output spike counts ``[N, channels]``."""
    if readout_pairs:
        return (output[:, :readout_pairs] - output[:, readout_pairs:]).argmax(axis=1)
    return output.argmax(axis=1)
