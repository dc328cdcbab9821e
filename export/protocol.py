"""The ``flexsnn.protocol`` metadata of an exported file (docs/onnx_protocol.md).

Built from the checkpoint's config, so the file alone tells a runtime how to feed it
(input kind, shape, binning, dt), how to read it out and which T it was trained for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx

from runtime.neuron import NeuronSpec
from trainer.config import Config

from .errors import ExportError

FORMAT = "flexsnn-onnx/1"
KEY = "flexsnn.protocol"
INPUT_KINDS = {"static": "repeat", "events": "event-frames"}


READOUTS = ("mean", "last", "count")


def readout_name(readout_rule: str) -> str:
    """The protocol's readout for a :class:`SpikingNet` readout rule (the same names)."""
    if readout_rule not in READOUTS:
        raise ExportError(f"readout {readout_rule!r} has no protocol form; expected one of {list(READOUTS)}")
    return readout_rule


def protocol(cfg: Config, readout_rule: str, shapes: list[tuple[int, ...]],
             nodes: list[str], specs: list[NeuronSpec]) -> dict[str, Any]:
    """The metadata object; ``shapes``, ``nodes`` and ``specs`` are per state, in order."""
    m, d = cfg.method, cfg.data
    events = d.kind == "events"
    return {
        "format": FORMAT,
        "model": cfg.model.name,
        "method": m.name,
        "input": {
            "kind": INPUT_KINDS[d.kind],
            "shape": list(cfg.model.in_shape),
            # event data only: a static image has no recording to bin
            "binning": d.binning if events else None,
            "duration_us": float(d.duration_us) if events else None,
            "dt_us": float(d.duration_us / cfg.train_T) if events else None,
        },
        "uses_t": False,
        "readout": readout_name(readout_rule),
        "T_trained": cfg.train_T,
        "T_range": [m.T, m.T] if m.name == "sdt" else [m.tmin, m.tmax],
        "classes": list(d.classes),
        "train_split": d.train_split,   # "train-minus-val": the validation split is unseen
        "states": [{"name": f"state_{i}", "shape": list(s), "node": n}
                   for i, (s, n) in enumerate(zip(shapes, nodes))],
        "neurons": [{"node": n, "op": s.kind, "spec": s.to_dict()} for n, s in zip(nodes, specs)],
    }


def read_protocol(model: str | Path | onnx.ModelProto) -> dict[str, Any]:
    """The protocol object of an exported ONNX file (or loaded model)."""
    if not isinstance(model, onnx.ModelProto):
        path = Path(model)
        if not path.is_file():
            raise ExportError(f"ONNX file {path} does not exist")
        model = onnx.load(path, load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    if KEY not in props:
        raise ExportError(f"the ONNX model has no {KEY!r} metadata; it was not written by flexsnn export")
    meta = json.loads(props[KEY])
    if meta.get("format") != FORMAT:
        raise ExportError(f"ONNX protocol {meta.get('format')!r} is not supported; this version reads {FORMAT!r}")
    return meta


def neuron_specs(meta: dict[str, Any]) -> list[NeuronSpec]:
    """The neuron specs of every state, in state order."""
    return [NeuronSpec.from_dict(n["spec"]) for n in meta["neurons"]]
