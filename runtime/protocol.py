"""Reading and validating an exported model (docs/onnx_protocol.md, ``flexsnn-onnx/1``).

:func:`read_model` turns a path into ``(ModelProto, Protocol)`` or raises
:class:`ModelError` saying what was expected: a missing or corrupted file, an ONNX file
that is not this product's (no ``flexsnn.protocol`` metadata), another protocol version,
or metadata that disagrees with the graph. Nothing is assumed that the file does not say.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from .neuron import NeuronSpec, SpecError
from .policies import PolicyError, parse_policy

FORMAT = "flexsnn-onnx/1"
METADATA_KEY = "flexsnn.protocol"
INPUT_KINDS = ("repeat", "event-frames", "encode-once")
STATIC_KINDS = ("repeat", "encode-once")  # a static image: fed at every step, no time base
READOUTS = ("mean", "last", "count")
BINNINGS = ("equal", "fixed")
SNN_DOMAIN = "snn"


class ModelError(ValueError):
    """A file that is not a usable flexsnn model; the message says what was expected."""


@dataclass(frozen=True)
class StateInfo:
    name: str
    shape: tuple[int, ...]
    node: str


@dataclass(frozen=True)
class NeuronInfo:
    node: str
    op: str
    spec: NeuronSpec
    shape: tuple[int, ...] | None = None   # stateless neurons only (no state gives the shape)


@dataclass(frozen=True)
class Protocol:
    """The metadata of one exported model (everything a runtime needs)."""

    model: str
    method: str
    input_kind: str
    input_shape: tuple[int, ...]
    binning: str | None        # None (with the two below) for static images: no time base
    duration_us: float | None
    dt_us: float | None
    uses_t: bool
    readout: str
    T_trained: int
    T_range: tuple[int, int]
    classes: tuple[str, ...]
    states: tuple[StateInfo, ...]
    neurons: tuple[NeuronInfo, ...]
    max_steps: int | None = None   # a model with no step t >= max_steps (T-RevSNN); None: unbounded
    exit_policy: str | None = None  # default exit policy chosen on validation data (runtime calibrate-exit)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _field(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ModelError(f"{where} has no {key!r} entry (protocol {FORMAT})")
    return d[key]


def _choice(value: Any, valid: tuple[str, ...], what: str) -> str:
    if value not in valid:
        raise ModelError(f"{what} {value!r} is unknown; expected one of {list(valid)}")
    return value


def _shape(value: Any, what: str) -> tuple[int, ...]:
    if not (isinstance(value, list) and all(isinstance(v, int) and v > 0 for v in value)):
        raise ModelError(f"{what} must be a list of positive integers, got {value!r}")
    return tuple(value)


def parse_protocol(meta: dict[str, Any]) -> Protocol:
    """Validate the metadata JSON object; raise :class:`ModelError` naming the bad field."""
    where = f"metadata {METADATA_KEY!r}"
    fmt = _field(meta, "format", where)
    if fmt != FORMAT:
        raise ModelError(f"model protocol is {fmt!r}; this runtime reads {FORMAT!r}")
    inp = _field(meta, "input", where)
    if not isinstance(inp, dict):
        raise ModelError(f"{where}: 'input' must be an object, got {inp!r}")
    T_range = _field(meta, "T_range", where)
    if not (isinstance(T_range, list) and len(T_range) == 2 and all(isinstance(t, int) for t in T_range)):
        raise ModelError(f"{where}: 'T_range' must be [tmin, tmax], got {T_range!r}")
    try:
        neurons = tuple(
            NeuronInfo(str(n["node"]), _choice(n["op"], ("LIF", "IF", "LI"), "neuron op"),
                       NeuronSpec.from_dict(n["spec"]),
                       _shape(n["shape"], f"shape of neuron {n['node']!r}") if "shape" in n else None)
            for n in _field(meta, "neurons", where))
        states = tuple(StateInfo(str(s["name"]), _shape(s["shape"], f"shape of state {s['name']!r}"),
                                 str(s.get("node", "")))
                       for s in _field(meta, "states", where))
    except (KeyError, TypeError) as e:
        raise ModelError(f"{where}: a 'neurons' or 'states' entry lacks field {e}") from None
    except SpecError as e:
        raise ModelError(f"{where}: {e}") from None
    T_trained = _field(meta, "T_trained", where)
    if not (isinstance(T_trained, int) and T_trained > 0):
        raise ModelError(f"{where}: 'T_trained' must be a positive integer, got {T_trained!r}")
    kind = _choice(_field(inp, "kind", f"{where} 'input'"), INPUT_KINDS, "input kind")
    timing = [_field(inp, k, f"{where} 'input'") for k in ("binning", "duration_us", "dt_us")]
    if kind in STATIC_KINDS and timing == [None, None, None]:
        binning, duration_us, dt_us = None, None, None  # a static image has no time base
    else:
        binning = _choice(timing[0], BINNINGS, "binning")
        try:
            duration_us, dt_us = float(timing[1]), float(timing[2])
        except (TypeError, ValueError):
            duration_us = dt_us = math.nan
        if not (math.isfinite(dt_us) and dt_us > 0 and math.isfinite(duration_us) and duration_us > 0):
            raise ModelError(f"{where}: input dt_us and duration_us must be numbers > 0, got {timing[2]!r}, "
                             f"{timing[1]!r}")
    return Protocol(
        model=str(meta.get("model", "")), method=str(meta.get("method", "")),
        input_kind=kind, input_shape=_shape(_field(inp, "shape", f"{where} 'input'"), "input shape"),
        binning=binning, duration_us=duration_us, dt_us=dt_us,
        uses_t=bool(_field(meta, "uses_t", where)),
        readout=_choice(_field(meta, "readout", where), READOUTS, "readout"),
        T_trained=T_trained, T_range=(T_range[0], T_range[1]),
        classes=tuple(str(c) for c in _field(meta, "classes", where)),
        states=states, neurons=neurons, max_steps=_max_steps(meta.get("max_steps"), where),
        exit_policy=_exit_policy(meta.get("exit"), where),
    )


def _exit_policy(value: Any, where: str) -> str | None:
    """The optional ``exit`` object's policy string (absent in files from older versions)."""
    if value is None:
        return None
    policy = value.get("policy") if isinstance(value, dict) else None
    try:
        parse_policy(policy if isinstance(policy, str) else "")
    except PolicyError as e:
        raise ModelError(f"{where}: 'exit' must be an object with a valid 'policy' ({e})") from None
    return policy


def _max_steps(value: Any, where: str) -> int | None:
    if value is not None and not (isinstance(value, int) and value > 0):
        raise ModelError(f"{where}: 'max_steps' must be a positive integer or absent, got {value!r}")
    return value


def check_graph(model: onnx.ModelProto, proto: Protocol) -> None:
    """The graph's inputs and outputs must be the ones the metadata describes."""
    g = model.graph
    init = {i.name for i in g.initializer}
    inputs = [i.name for i in g.input if i.name not in init]
    want_in = ["x"] + (["t"] if proto.uses_t else []) + [s.name for s in proto.states]
    if inputs != want_in:
        raise ModelError(f"graph inputs are {inputs}; the protocol metadata expects {want_in}")
    outputs = [o.name for o in g.output]
    want_out = ["y"] + [f"{s.name}_out" for s in proto.states]
    if outputs != want_out:
        raise ModelError(f"graph outputs are {outputs}; the protocol metadata expects {want_out}")
    nodes = {n.name: n for n in g.node if n.domain == SNN_DOMAIN}
    for n in proto.neurons:
        if n.node not in nodes or nodes[n.node].op_type != n.op:
            raise ModelError(f"metadata names neuron node {n.node!r} ({n.op}) but the graph has "
                             f"snn nodes {sorted((k, v.op_type) for k, v in nodes.items())}")
    bodies = {(f.domain, f.name, f.overload) for f in model.functions}
    for node in nodes.values():
        if (node.domain, node.op_type, node.overload) not in bodies:
            raise ModelError(f"node {node.name!r} ({SNN_DOMAIN}::{node.op_type}, overload "
                             f"{node.overload!r}) has no function body in the file; stock "
                             "onnxruntime cannot run it")


def read_model(path: str | Path) -> tuple[onnx.ModelProto, Protocol]:
    """Load and validate ``path``; :class:`ModelError` if it is not a flexsnn model."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model {path} does not exist or is not a file (expected a .onnx file)")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf raises DecodeError, and others, on damaged bytes
        raise ModelError(f"{path} is not a readable ONNX file ({type(e).__name__}); "
                         "it may be corrupted or truncated") from None
    if not model.graph.node:
        raise ModelError(f"{path} is not a readable ONNX model (empty graph); it may be corrupted")
    meta = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in meta:
        raise ModelError(f"{path} is an ONNX file without {METADATA_KEY!r} metadata; expected a "
                         f"model exported by `python -m export` (protocol {FORMAT})")
    try:
        obj = json.loads(meta[METADATA_KEY])
    except json.JSONDecodeError as e:
        raise ModelError(f"{path}: metadata {METADATA_KEY!r} is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ModelError(f"{path}: metadata {METADATA_KEY!r} must be a JSON object")
    try:
        proto = parse_protocol(obj)
        check_graph(model, proto)
    except ModelError as e:
        raise ModelError(f"{path}: {e}") from None
    return model, proto
