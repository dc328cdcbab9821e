"""Our own description of the mapped, quantised network (``flexsnn-speck/1``): plain
JSON, readable with no vendor SDK, enough to rebuild the chip configuration by hand.

Per layer, in order: the core it maps to, the convolution (input, kernel, stride,
padding, output), the sum pooling of its output, its destination layers, its memories,
and the chip-unit parameters: scale, integer threshold and lower clamp, and the int8
weights ``[c_out][c_in][ky][kx]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime.fileio import write_atomic

from .backend import Plan
from .constraints import LayerShape
from .convert import chip_neuron
from .quantize import QuantNet

FORMAT = "flexsnn-speck/1"


def shape_fields(s: LayerShape) -> dict[str, Any]:
    """A chip layer's geometry, as the JSON description and the check table give it."""
    return {
        "input": [s.c_in, *s.in_size],
        "kernel": list(s.kernel),
        "stride": list(s.stride),
        "padding": list(s.padding),
        "output": [s.c_out, *s.out_size],
        "sum_pool": s.pool[0],
    }


def describe(qnet: QuantNet, plan: Plan, source: str = "") -> dict[str, Any]:
    net = qnet.net
    layers = []
    for i, (L, q, p) in enumerate(zip(net.layers, qnet.layers, plan.layers)):
        s = L.shape
        layers.append(
            {
                "index": i,
                "name": L.name,
                "neuron_node": L.node,
                "source_op": L.source,
                "core": p.core,
                **shape_fields(s),
                "destinations": [] if i == len(net.layers) - 1 else [i + 1],
                "kernel_memory": p.kernel_memory,
                "neuron_memory": p.neuron_memory,
                "neuron": _neuron_fields(q.threshold, q.v_min),
                "scale": q.scale,
                "scale_bound": q.bound,
                "weights_zeroed": q.zeroed,
                "weights": q.weight.tolist(),
            }
        )
    return {
        "format": FORMAT,
        "chip": plan.chip.name,
        "source": source,
        "fits": plan.fits,
        "violations": [str(v) for v in plan.violations],
        "input": {
            "shape": list(net.input_shape),
            "sum_pool": net.input_pool,
            "destinations": [0],
            # the model's event transforms (runtime.data.transforms), in order: the host applies them
            "transforms": [dict(t) for t in net.protocol.transforms],
        },
        "readout": (
            f"spike counts of the last layer: channel c counts class c's +W neuron, channel "
            f"{net.readout_pairs} + c its -W neuron; prediction = argmax of count(+) - count(-)"
            if net.readout_pairs
            else "spike counts of the last layer; prediction = the class with most spikes"
        ),
        "readout_pairs": net.readout_pairs,
        "classes": list(net.protocol.classes),
        "notes": net.notes,
        "layers": layers,
    }


def write_description(path: str | Path, desc: dict[str, Any]) -> Path:
    """Write atomically (a reader never sees half a file)."""
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(desc)))


def _neuron_fields(threshold: float, v_min: int) -> dict[str, Any]:
    """A layer's neuron as the description names it: the chip's, with its quantised
    (integer) threshold and lower clamp."""
    n = chip_neuron(threshold, v_min, 1.0)
    return {"kind": n.kind, "reset": n.reset, "spike": n.spike, "threshold": threshold, "v_min": v_min}
