"""The protocol object of an exported file, built from a checkpoint's config.

The object and its JSON form are :class:`runtime.protocol.Protocol` (one definition,
written here and read by every runtime); this module only knows how a trainer config
maps onto it: input kind, shape, binning and dt, readout, trained T range.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from runtime.fileio import json_loads
from runtime.protocol import (
    DATA_INPUT_KINDS,
    METADATA_KEY,
    READOUTS,
    ModelError,
    NeuronInfo,
    Protocol,
    StateInfo,
    parse_protocol,
)
from trainer.config import Config, DataConfig
from trainer.models import architecture

from .errors import ExportError

KEY = METADATA_KEY


def layer_infos(
    specs: list, shapes: list[tuple[int, ...]], names: list[str] | None = None
) -> tuple[list[StateInfo], list[NeuronInfo]]:
    """The states (``state_0`` ... in the step's order, of ``shapes``) and neurons of the
    neuron layers ``specs``, layer j named ``names[j]`` (default ``{kind}_{j}``, the ONNX
    node's name): what a file with no graph of its own to name them (NIR, TorchScript,
    pt2) states."""
    states: list[StateInfo] = []
    neurons: list[NeuronInfo] = []
    for j, spec in enumerate(specs):
        name = names[j] if names is not None else f"{spec.kind}_{j}"
        own = [f"state_{len(states) + k}" for k in range(spec.n_states)]
        states += [StateInfo(s, shapes[len(states) + k], name) for k, s in enumerate(own)]
        neurons.append(NeuronInfo(name, spec, tuple(own)))
    return states, neurons


def readout_name(readout_rule: str) -> str:
    """The protocol's readout for a :class:`SpikingNet` readout rule (the same names)."""
    if readout_rule not in READOUTS:
        raise ExportError(f"readout {readout_rule!r} has no protocol form; expected one of {list(READOUTS)}")
    return readout_rule


def data_sensor(d: DataConfig) -> tuple[int, ...] | None:
    """The training recordings' (C, H, W) before their transforms: stored since checkpoints
    keep it, else the data's shape where no transform ran; None where not known or where the
    recordings are no camera's (a foreign graph's flat input)."""
    sensor = tuple(d.sensor) if d.sensor is not None else None if d.transforms else tuple(d.shape)
    return sensor if sensor is not None and len(sensor) == 3 else None


def protocol(
    cfg: Config, readout_rule: str, states: list[StateInfo], neurons: list[NeuronInfo], **fields: object
) -> Protocol:
    """The protocol of a model trained with ``cfg``; ``fields`` override (e.g. ``uses_t``)."""
    m, d = cfg.method, cfg.data
    events = d.kind == "events"
    base: dict[str, object] = dict(
        model=architecture(cfg.model),
        method=m.name,
        input_kind=DATA_INPUT_KINDS[d.kind],
        input_shape=tuple(cfg.model.in_shape),
        # event data only: a static image has no recording to bin
        binning=d.binning if events else None,
        duration_us=float(d.duration_us) if events else None,
        dt_us=cfg.dt_us,
        durations=d.durations if events else "dataset",
        transforms=tuple(d.transforms),
        sensor=data_sensor(d) if events else None,
        uses_t=False,
        readout=readout_name(readout_rule),
        T_trained=cfg.train_T,
        T_range=cfg.T_range,
        classes=tuple(d.classes),
        states=tuple(states),
        neurons=tuple(neurons),
        data=d.spec,
        train_split=d.train_split,
        # a multi-rate file's statistics are its configuration's (export --config calibrates them)
        bn_calibration_T=None if fields.get("stages") else m.bn_T,
    )
    base.update(fields)
    try:
        # ``fields`` override any Protocol field by keyword: not typed per field (object)
        return Protocol(**base)  # type: ignore[arg-type]
    except ModelError as e:  # e.g. a neuron's dt that is not the data's step
        raise ExportError(f"{cfg.model.name}: {e}") from None


def read_protocol(model: str | Path | onnx.ModelProto) -> Protocol:
    """The protocol of an exported ONNX file (or loaded model)."""
    if not isinstance(model, onnx.ModelProto):
        path = Path(model)
        if not path.is_file():
            raise ExportError(f"ONNX file {path} does not exist")
        model = onnx.load(path, load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    if KEY not in props:
        raise ExportError(f"the ONNX model has no {KEY!r} metadata; it was not written by flexsnn export")
    try:
        return parse_protocol(json_loads(props[KEY]))
    except (ModelError, ValueError) as e:
        raise ExportError(f"the ONNX model's protocol metadata is not valid: {e}") from None
