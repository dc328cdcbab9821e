"""Quantisation as the chip needs it: per layer one scale ``s`` so that the weights fit
8 bits and the threshold and the membrane fit 16 bits (signed).

Scaling a layer's weights, threshold and lower clamp by the same ``s`` leaves its spikes
unchanged (up to rounding), and a layer sends only spikes on, so every layer picks its
own scale: the largest with ``max|W|·s <= 127``, ``v_th·s <= 32767`` and, when a lower
clamp is set, ``|v_min|·s <= 32768``.

The pitfall this guards against: a model without a lower clamp (``v_min = -inf``) has a
membrane floor only because the chip's register is 16 bits wide. That floor is
``-2^15`` in CHIP units, after scaling; treating it as ``-2^15`` in MODEL units (what a
converter does when it fills in an unset clamp before choosing the scale) forces
``s <= 1`` and rounds weights of magnitude below 0.5, i.e. nearly all of them, to zero.
Here the unset clamp does not enter the scale, and a layer whose weights still all
round to zero (an explicit huge clamp, say) is refused, naming the limit that set the scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .convert import SpeckLayer, SpeckNet


class QuantError(ValueError):
    """A layer that cannot be quantised usefully; the message names the layer and the limit."""


@dataclass(frozen=True)
class QuantLayer:
    """Chip-unit parameters of one layer: ``weight`` int8-valued ``[c_out, c_in, kh, kw]``."""

    name: str
    node: str
    weight: np.ndarray
    threshold: float  # chip units: an integer, except in float_twin's layers
    v_min: int
    scale: float
    bound: str  # which limit set the scale: "weights", "threshold" or "v_min"
    zeroed: float  # fraction of the non-zero float weights that rounded to zero


@dataclass(frozen=True)
class QuantNet:
    net: SpeckNet
    layers: tuple[QuantLayer, ...]


def scale_for(w_max: float, v_th: float, v_min: float, weight_bits: int = 8, state_bits: int = 16) -> tuple[float, str]:
    """The largest scale that fits, and the limit that bounds it."""
    w_hi, s_hi, s_lo = 2 ** (weight_bits - 1) - 1, 2 ** (state_bits - 1) - 1, 2 ** (state_bits - 1)
    limits = {"threshold": s_hi / v_th}
    if w_max > 0:
        limits["weights"] = w_hi / w_max
    if v_min != -math.inf and v_min < 0:  # an unset clamp is the register floor in chip units: no limit
        limits["v_min"] = s_lo / -v_min
    bound = min(limits, key=limits.__getitem__)
    return limits[bound], bound


def quantize_layer(L: SpeckLayer, weight_bits: int = 8, state_bits: int = 16) -> QuantLayer:
    w, n = np.asarray(L.weight, np.float64), L.neuron
    s, bound = scale_for(float(np.abs(w).max()), n.v_th, n.v_min, weight_bits, state_bits)
    w_hi, s_hi, s_lo = 2 ** (weight_bits - 1) - 1, 2 ** (state_bits - 1) - 1, -(2 ** (state_bits - 1))
    wq = np.clip(np.round(w * s), -w_hi - 1, w_hi)
    nonzero = w != 0
    zeroed = float((wq[nonzero] == 0).mean()) if nonzero.any() else 0.0
    if nonzero.any() and not wq.any():
        why = {
            "v_min": f"|v_min| = {-n.v_min:g} must fit the {state_bits}-bit membrane",
            "threshold": f"v_th = {n.v_th:g} must fit the {state_bits}-bit threshold",
            "weights": f"weights must fit {weight_bits} bits",
        }[bound]
        raise QuantError(
            f"layer {L.name!r}: every weight rounds to zero at scale {s:.4g}, set by the {bound} "
            f"limit ({why}); max |w| = {np.abs(w).max():.4g} needs a scale of at least "
            f"{0.5 / np.abs(w).max():.4g}"
        )
    threshold = int(min(max(round(n.v_th * s), 1), s_hi))
    v_min = s_lo if n.v_min == -math.inf else int(max(round(n.v_min * s), s_lo))
    return QuantLayer(L.name, L.node, wq.astype(np.int8), threshold, v_min, s, bound, zeroed)


def quantize(net: SpeckNet, weight_bits: int = 8, state_bits: int = 16) -> QuantNet:
    return QuantNet(net, tuple(quantize_layer(L, weight_bits, state_bits) for L in net.layers))


def float_twin(q: QuantNet) -> QuantNet:
    """``q`` without rounding: weights ``w·s`` and thresholds ``v_th·s`` as floats. The chip
    form (IF readout, multi-spike, the chip's clamp) is kept, so comparing it with ``q``
    measures what quantisation alone changes."""
    return QuantNet(
        q.net,
        tuple(
            replace(
                ql,
                weight=(np.asarray(L.weight, np.float64) * ql.scale).astype(np.float32),
                threshold=L.neuron.v_th * ql.scale,
            )
            for ql, L in zip(q.layers, q.net.layers)
        ),
    )
