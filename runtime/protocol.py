"""The protocol of an exported model (docs/onnx_protocol.md): one object, written and read.

Every writer (the exporter, the T-RevSNN exporter, the Speck emulator) builds a
:class:`Protocol` and stores :meth:`Protocol.to_dict` as the ``flexsnn.protocol``
metadata; every reader gets it back from :func:`parse_protocol`. The constants of the
protocol are defined here only.

:func:`read_model` turns a path into ``(ModelProto, Protocol)`` or raises
:class:`ModelError` saying what was expected: a missing or corrupted file, an ONNX file
that is not this product's (no ``flexsnn.protocol`` metadata), another protocol version,
or metadata that disagrees with the graph. Nothing is assumed that the file does not say.

Versions: ``flexsnn-onnx/3`` may carry ``stages``: a per-stage configuration (MTT), each
stage's T and the graph tensors at its boundaries, run at their own rates by the
clock-driven runtime (:mod:`runtime.stages`); ``flexsnn-onnx/2`` lists each neuron's state
names (a kind may have several state variables); ``flexsnn-onnx/1`` files (one state per
neuron, linked by the state's ``node``) are still read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from .archives import torch_program
from .errors import ModelError
from .fileio import json_loads
from .integrity import IntegrityError, external_data, verify_onnx
from .neuron import NeuronSpec, SpecError, kinds
from .neuron.base import field_type, same_step
from .neuron.functions import DOMAIN as SNN_DOMAIN
from .neuron.functions import overload, spec_from_attributes
from .policies import Cascade, ExitPolicy, PolicyError, parse_policy

if TYPE_CHECKING:
    from .data.events import TimeBase

FORMAT = "flexsnn-onnx/3"
READ_FORMATS = ("flexsnn-onnx/1", "flexsnn-onnx/2", FORMAT)
METADATA_KEY = "flexsnn.protocol"
INPUT_KINDS = ("repeat", "event-frames", "encode-once", "sequence-frames")
STATIC_KINDS = ("repeat", "encode-once")  # a static image: fed at every step, no time base
# real-valued inputs with no event time base (no binning, dt): static images, and recorded
# sequences grouped into T steps (runtime.data.sequences)
DENSE_KINDS = (*STATIC_KINDS, "sequence-frames")
# a data set's kind (runtime.data, the trainer's DataConfig.kind) -> the input kind a model
# trained on it takes (a T-RevSNN's static input is encode-once: export.trev_onnx)
DATA_INPUT_KINDS = {"static": "repeat", "events": "event-frames", "sequence": "sequence-frames"}


def data_kind(input_kind: str) -> str:
    """The kind of data set a model of ``input_kind`` reads: :data:`DATA_INPUT_KINDS`
    inverted (both static kinds read static images)."""
    if input_kind in STATIC_KINDS:
        return "static"
    return next(k for k, v in DATA_INPUT_KINDS.items() if v == input_kind)


READOUTS = ("mean", "last", "count")


def readout(ys: Any, rule: str) -> Any:
    """Logits from the outputs of every step ``ys`` ``[T, B, classes]`` (a numpy array or
    a torch tensor): their mean, the last step's (leaky-integrator readout), or their sum
    (spike counts)."""
    if rule == "mean":
        return ys.mean(0)
    if rule == "last":
        return ys[-1]
    if rule == "count":
        return ys.sum(0)
    raise ModelError(f"readout {rule!r} is unknown; expected one of {list(READOUTS)}")


def rewritten(old: dict[str, Any], p: Protocol) -> dict[str, Any]:
    """``p.to_dict()`` for a file whose protocol object was ``old``, keeping what this version
    does not know (a key a newer writer or another tool added, at the top or inside an
    object this version writes too): rewriting a file must not drop it without a word."""

    def keep(o: dict[str, Any], n: dict[str, Any]) -> dict[str, Any]:
        out = dict(n)
        for k, v in o.items():
            if k not in n:
                out[k] = v
            elif isinstance(v, dict) and isinstance(n[k], dict):
                out[k] = keep(v, n[k])
            elif isinstance(v, list) and isinstance(n[k], list) and len(v) == len(n[k]):
                # neurons, states, stages: written in the order they were read
                out[k] = [keep(a, b) if isinstance(a, dict) and isinstance(b, dict) else b for a, b in zip(v, n[k])]
        return out

    new = p.to_dict()
    # the exit object describes one calibration: a new one replaces it whole (and none drops it)
    return keep({k: v for k, v in old.items() if k != "exit"}, new)


def readout_so_far(total: Any, last: Any, t: int, rule: str) -> Any:
    """:func:`readout` of the first ``t`` steps from what a run keeps instead of every step:
    the running sum ``total`` and the last step's outputs ``last`` (float64 numpy arrays)."""
    if rule == "mean":
        return total / t
    if rule == "last":
        return last.astype(np.float64)
    if rule == "count":
        return total
    raise ModelError(f"readout {rule!r} is unknown; expected one of {list(READOUTS)}")


@dataclass(frozen=True)
class StateInfo:
    name: str
    shape: tuple[int, ...]
    node: str


@dataclass(frozen=True)
class NeuronInfo:
    node: str
    spec: NeuronSpec
    states: tuple[str, ...] = ()  # its state inputs, in the kind's order (none: stateless)
    shape: tuple[int, ...] | None = None  # stateless neurons only (no state gives the shape)

    @property
    def op(self) -> str:
        return self.spec.kind

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"node": self.node, "op": self.op, "spec": self.spec.to_dict(), "states": list(self.states)}
        if self.shape is not None:
            d["shape"] = list(self.shape)
        return d


@dataclass(frozen=True)
class StageInfo:
    """One stage of a multi-rate file: its steps per input, the graph tensor it reads
    (``x`` for the first) with its per-sample shape, and the states it owns."""

    T: int
    input: str
    shape: tuple[int, ...]
    states: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"T": self.T, "input": self.input, "shape": list(self.shape), "states": list(self.states)}


@dataclass(frozen=True)
class Protocol:
    """The metadata of one exported model (everything a runtime needs)."""

    model: str
    method: str
    input_kind: str
    input_shape: tuple[int, ...]
    binning: str | None  # None (with the two below) for static images: no time base
    duration_us: float | None
    dt_us: float | None
    uses_t: bool
    readout: str
    T_trained: int
    T_range: tuple[int, int]
    classes: tuple[str, ...]
    states: tuple[StateInfo, ...]
    neurons: tuple[NeuronInfo, ...]
    max_steps: int | None = None  # a model with no step t >= max_steps (T-RevSNN); None: unbounded
    durations: str = "dataset"  # equal binning: over duration_us, or each recording's own span
    transforms: tuple[dict, ...] = ()  # runtime.data.transforms the model was trained with
    # the training recordings' (C, H, W) before those transforms, which act on its pixels (a
    # stream from another camera is pooled to it first: runtime stream --fit-sensor); None:
    # not known (files written before it was kept, whose transforms changed the shape)
    sensor: tuple[int, ...] | None = None
    data: str | None = None  # the data spec it was trained on (the runtime's default --data)
    exit_policy: str | None = None  # default exit policy chosen on validation data (runtime calibrate-exit)
    # how calibrate-exit chose it (chosen_on, budget_points, criterion, validation and test
    # figures): kept with the policy in the file's `exit` object, read by no runtime
    exit_record: dict[str, Any] | None = None
    train_split: str | None = None  # "train-minus-val": a validation split was held out of training
    stages: tuple[StageInfo, ...] = ()  # a per-stage configuration (multi-rate); empty: one T for all
    # the T whose BatchNorm statistics the weights hold (one set fits one T: MTT's BN
    # calibration); None: no BatchNorm statistics calibrated, or a file written before it was kept
    bn_calibration_T: int | None = None
    # (epochs done, epochs planned) of a file exported from a run that stopped before its
    # last epoch (its per-epoch checkpoint: BatchNorm perhaps not calibrated yet); None: a
    # finished run's, or a file written before it was kept
    unfinished: tuple[int, int] | None = None
    # in memory only, never written: a stage of a multi-rate file, cut out as a step model of
    # its own (runtime.stages), outputs its boundary tensor of this shape, not the classes
    output_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        u = self.unfinished  # a writer's too: the exporter wrote files its reader refused
        if u is not None and not (
            isinstance(u, tuple) and len(u) == 2 and all(_is_int(n) for n in u) and 0 <= u[0] <= u[1] and u[1] > 0
        ):
            raise ModelError(f"{UNFINISHED_FORM}, got {u!r} (epochs done, epochs)")
        if self.sensor is not None and not (len(self.sensor) == 3 and all(_is_int(d) and d > 0 for d in self.sensor)):
            raise ModelError(f"input sensor must be [C, H, W], positive integers; got {list(self.sensor)}")
        # µs per step is stored twice in an event model's file: the input's dt_us (what fixed
        # bins and stream windows step by) and each neuron's dt (the unit of its time
        # constants, what the event engine leaks by); a file where they differ would be one
        # model for the clock runtime and another for the event engine, unsaid
        dt_us = self.dt_us
        if dt_us is None or self.input_kind in DENSE_KINDS:  # no time base (files of flexsnn-onnx/1 wrote one
            return  # for static images too): a neuron's dt is one step
        for n in self.neurons:
            if not same_step(n.spec.dt, dt_us):
                raise ModelError(
                    f"neuron {n.node!r} has dt = {n.spec.dt:g} µs but the input steps by dt_us = {dt_us:g} "
                    "µs; they must be one value (the event engine leaks by the neuron's, the clock runtime bins "
                    "by the input's)"
                )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def y_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the graph's ``y``."""
        return self.output_shape or (self.num_classes,)

    @property
    def config(self) -> tuple[int, ...] | None:
        """The T of each stage of a multi-rate file, None for one T for all stages."""
        return tuple(s.T for s in self.stages) or None

    @property
    def default_T(self) -> int:
        """The steps a run takes by default: the T its BatchNorm statistics were calibrated
        at, else the trained T, or the last stage's T of a multi-rate file (its readout and
        any early exit act on the last stage's steps)."""
        return self.stages[-1].T if self.stages else self.bn_calibration_T or self.T_trained

    def input_steps(self, T: int) -> int:
        """Input frames a run of ``T`` (readout) steps reads: ``T``, or the first stage's T
        of a multi-rate file (its stages run at their own T; the readout follows the last)."""
        return self.stages[0].T if self.stages else T

    def time_base(self, binning: str | None = None, dt_us: float | None = None) -> TimeBase:
        """How this event model bins a recording: as trained, or by ``binning`` (fixed bins of
        ``dt_us``, default the trained width) as a run asks."""
        from .data.events import TimeBase  # the data layer's, loaded only for event models

        if self.binning is None or self.duration_us is None:
            raise ModelError(f"a {self.input_kind} model has no event time base (binning, duration_us)")
        dt = self.dt_us if dt_us is None else dt_us
        return TimeBase(binning or self.binning, self.durations, self.duration_us, dt)

    def to_dict(self) -> dict[str, Any]:
        """The ``flexsnn.protocol`` metadata object (current :data:`FORMAT`)."""
        d: dict[str, Any] = {
            "format": FORMAT,
            "model": self.model,
            "method": self.method,
            "input": {
                "kind": self.input_kind,
                "shape": list(self.input_shape),
                "binning": self.binning,
                "duration_us": self.duration_us,
                "dt_us": self.dt_us,
                "durations": self.durations if self.binning is not None else None,
                "transforms": list(self.transforms),
                **({"sensor": list(self.sensor)} if self.sensor is not None else {}),
            },
            "uses_t": self.uses_t,
            "readout": self.readout,
            "T_trained": self.T_trained,
            "T_range": list(self.T_range),
            "classes": list(self.classes),
            "states": [{"name": s.name, "shape": list(s.shape), "node": s.node} for s in self.states],
            "neurons": [n.to_dict() for n in self.neurons],
        }
        if self.max_steps is not None:
            d["max_steps"] = self.max_steps
        if self.data is not None:
            d["data"] = self.data
        if self.exit_policy is not None:
            d["exit"] = {"policy": self.exit_policy, **(self.exit_record or {})}
        if self.train_split is not None:
            d["train_split"] = self.train_split
        if self.stages:
            d["stages"] = [st.to_dict() for st in self.stages]
        if self.bn_calibration_T is not None:
            d["bn_calibration_T"] = self.bn_calibration_T
        if self.unfinished is not None:
            d["unfinished"] = {"epochs_done": self.unfinished[0], "epochs": self.unfinished[1]}
        return d

    def unfinished_note(self, path: str | Path) -> str | None:
        """What to say of a file exported from an unfinished run (None: a finished run's)."""
        return unfinished_note(str(path), self.unfinished)

    @property
    def exit_chosen_for(self) -> str:
        """The runs the stored policy was chosen on (calibrate-exit ``--mode``): "clock" (also
        every file written before the mode was kept), or "event"."""
        return "event" if (self.exit_record or {}).get("mode") == "event" else "clock"

    def stored_policy_note(self, mode: str) -> str | None:
        """What to say when a run in ``mode`` ("clock" or "event") takes the stored policy
        chosen on the other kind of runs (None: chosen on these, or none stored): its
        thresholds bounded the disagreement on those runs' readouts, not on these."""
        chosen = self.exit_chosen_for
        if self.exit_policy is None or chosen == mode:
            return None
        return (
            f"the stored policy {self.exit_policy} was chosen on {chosen}-driven runs (calibrate-exit): its "
            f"accuracy budget was kept there, not measured on these {mode}-driven ones, whose readouts differ for a "
            f"leaky model (docs/event_driven.md); choose one for them with calibrate-exit --mode {mode}, or name a "
            "policy (--policy; the SDK's policy=)"
        )

    def run_default(
        self, mode: str, runner: str, fallback: ExitPolicy | None, none_runs: str = ""
    ) -> tuple[ExitPolicy | None, str | None, str | None]:
        """What a ``mode`` run (by ``runner``, in words) that names no policy takes, as
        ``(policy, its text, the note to print)``: the stored one (calibrate-exit's, with
        :meth:`stored_policy_note`), else ``fallback`` (None: what ``none_runs`` says runs);
        a stored cascade, which reruns whole recordings, gives ``fallback`` with a note."""
        stored = parse_policy(self.exit_policy) if self.exit_policy else None
        if stored is not None and not isinstance(stored, Cascade):
            return stored, self.exit_policy, self.stored_policy_note(mode)
        text = None if fallback is None else str(fallback)
        note = None
        if stored is not None:
            note = (
                f"the model's stored policy {self.exit_policy} is a cascade, which {runner} cannot run (it reruns "
                f"whole recordings): {none_runs if text is None else text + ' runs'}; name a policy to choose "
                "(--policy; the SDK's policy=)"
            )
        return fallback, text, note


def unfinished_note(subject: str, unfinished: tuple[int, int] | None) -> str | None:
    """What to say of ``subject`` (a file, a graph) exported from a run that stopped after
    ``unfinished = (epochs done, epochs)``; None for a finished run's."""
    if unfinished is None:
        return None
    done, epochs = unfinished
    return (
        f"{subject} was exported from an unfinished training run (after epoch {done} of {epochs}): its "
        "accuracy is not the finished model's; finish the run (trainer fit --resume) and export again"
    )


def _field(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ModelError(f"{where} has no {key!r} entry (protocol {FORMAT})")
    return d[key]


def _choice(value: Any, valid: tuple[str, ...], what: str) -> str:
    if value not in valid:
        raise ModelError(f"{what} {value!r} is unknown; expected one of {list(valid)}")
    return value


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # JSON true is not a size


MAX_ELEMENTS = 2**31  # per sample, in one input or state: beyond it a corrupted field, not a model


def _shape(value: Any, what: str) -> tuple[int, ...]:
    if not (isinstance(value, list) and all(_is_int(v) and v > 0 for v in value)):
        raise ModelError(f"{what} must be a list of positive integers, got {value!r}")
    if math.prod(value) > MAX_ELEMENTS:
        raise ModelError(f"{what} {value!r} has more than {MAX_ELEMENTS} elements per sample")
    return tuple(value)


def parse_protocol(meta: dict[str, Any]) -> Protocol:
    """Validate the metadata JSON object; raise :class:`ModelError` naming the bad field."""
    try:
        return _parse_protocol(meta)
    except ModelError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        # a field of the wrong JSON type that no check above names (found by the property tests)
        raise ModelError(
            f"metadata {METADATA_KEY!r} has a field of the wrong type or form ({type(e).__name__}: {e})"
        ) from None


def _parse_protocol(meta: dict[str, Any]) -> Protocol:
    where = f"metadata {METADATA_KEY!r}"
    fmt = _field(meta, "format", where)
    if fmt not in READ_FORMATS:
        raise ModelError(f"model protocol is {fmt!r}; this runtime reads {list(READ_FORMATS)}")
    inp = _field(meta, "input", where)
    if not isinstance(inp, dict):
        raise ModelError(f"{where}: 'input' must be an object, got {inp!r}")
    T_range = _field(meta, "T_range", where)
    if not (
        isinstance(T_range, list)
        and len(T_range) == 2
        and all(_is_int(t) for t in T_range)
        and 1 <= T_range[0] <= T_range[1]
    ):
        raise ModelError(f"{where}: 'T_range' must be [tmin, tmax] with 1 <= tmin <= tmax, got {T_range!r}")
    try:
        states = tuple(
            StateInfo(str(s["name"]), _shape(s["shape"], f"shape of state {s['name']!r}"), str(s.get("node", "")))
            for s in _field(meta, "states", where)
        )
        neurons = tuple(_neuron(n, states, fmt) for n in _field(meta, "neurons", where))
    except (KeyError, TypeError) as e:
        raise ModelError(f"{where}: a 'neurons' or 'states' entry lacks field {e}") from None
    except (SpecError, ValueError) as e:  # e.g. "v_th": "abc"
        raise ModelError(f"{where}: {e}") from None
    T_trained = _field(meta, "T_trained", where)
    if not (_is_int(T_trained) and T_trained > 0):
        raise ModelError(f"{where}: 'T_trained' must be a positive integer, got {T_trained!r}")
    kind = _choice(_field(inp, "kind", f"{where} 'input'"), INPUT_KINDS, "input kind")
    timing = [_field(inp, k, f"{where} 'input'") for k in ("binning", "duration_us", "dt_us")]
    if kind in DENSE_KINDS and timing == [None, None, None]:
        binning, duration_us, dt_us = None, None, None  # a static image or a sequence has no time base
    else:
        from .data.events import BINNINGS  # the data layer's, loaded only for event models

        binning = _choice(timing[0], BINNINGS, "binning")
        try:
            duration_us, dt_us = float(timing[1]), float(timing[2])
        except (TypeError, ValueError):
            duration_us = dt_us = math.nan
        if not (math.isfinite(dt_us) and dt_us > 0 and math.isfinite(duration_us) and duration_us > 0):
            raise ModelError(
                f"{where}: input dt_us and duration_us must be numbers > 0, got {timing[2]!r}, {timing[1]!r}"
            )
    try:
        return Protocol(
            model=str(meta.get("model", "")),
            method=str(meta.get("method", "")),
            input_kind=kind,
            input_shape=_shape(_field(inp, "shape", f"{where} 'input'"), "input shape"),
            binning=binning,
            duration_us=duration_us,
            dt_us=dt_us,
            uses_t=bool(_field(meta, "uses_t", where)),
            readout=_choice(_field(meta, "readout", where), READOUTS, "readout"),
            T_trained=T_trained,
            T_range=(T_range[0], T_range[1]),
            classes=tuple(str(c) for c in _field(meta, "classes", where)),
            states=states,
            neurons=neurons,
            max_steps=_max_steps(meta.get("max_steps")),  # in the try: its errors get `where` below
            bn_calibration_T=_optional_T(meta.get("bn_calibration_T")),
            unfinished=_unfinished(meta.get("unfinished")),
            **_data_fields(inp, where),
            data=_optional_text(meta, "data", where),
            exit_policy=_exit_policy(meta.get("exit"), where),
            exit_record=_exit_record(meta.get("exit")),
            train_split=_optional_text(meta, "train_split", where),
            stages=_stages(meta.get("stages"), states, where),
        )
    except ModelError as e:  # its own checks (Protocol.__post_init__)
        raise ModelError(f"{where}: {e}") from None


def _optional_text(meta: dict[str, Any], key: str, where: str) -> str | None:
    """An optional non-empty string field (absent in files from older versions)."""
    value = meta.get(key)
    if value is not None and not (isinstance(value, str) and value):
        raise ModelError(f"{where}: {key!r} must be a non-empty string or absent, got {value!r}")
    return value


def _neuron(n: dict[str, Any], states: tuple[StateInfo, ...], fmt: str) -> NeuronInfo:
    node = str(n["node"])
    op = _choice(n["op"], tuple(kinds()), "neuron op")
    spec = NeuronSpec.from_dict(n["spec"])
    if spec.kind != op:
        raise ModelError(f"neuron {node!r}: op {op!r} but its spec is a {spec.kind!r} neuron")
    if fmt == FORMAT:
        own = tuple(str(s) for s in n["states"])
    else:  # flexsnn-onnx/1: one state per neuron, named by the state's node
        own = tuple(s.name for s in states if s.node == node)
    if own and len(own) != spec.n_states:
        raise ModelError(
            f"neuron {node!r} ({op}) lists states {list(own)}; a {op} neuron has {spec.n_states} state variables"
        )
    known = {s.name for s in states}
    if not set(own) <= known:
        raise ModelError(f"neuron {node!r} names states {sorted(set(own) - known)} that 'states' does not list")
    shape = _shape(n["shape"], f"shape of neuron {node!r}") if "shape" in n else None
    return NeuronInfo(node, spec, own, shape)


def _data_fields(inp: dict[str, Any], where: str) -> dict[str, Any]:
    """The optional ``durations``, ``transforms`` and ``sensor`` of ``input`` (absent in older files)."""
    from .data.events import DURATIONS
    from .data.transforms import TransformError, from_dicts

    durations = inp.get("durations") or "dataset"
    _choice(durations, DURATIONS, "input durations")
    transforms = inp.get("transforms") or []
    try:
        from_dicts(transforms)
    except TransformError as e:
        raise ModelError(f"{where}: input transforms: {e}") from None
    sensor = inp.get("sensor")
    if sensor is not None:
        sensor = _shape(sensor, "input sensor")
    return {"durations": durations, "transforms": tuple(transforms), "sensor": sensor}


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


def _exit_record(value: Any) -> dict[str, Any] | None:
    """What the ``exit`` object says beside its policy (:func:`_exit_policy` checked it)."""
    record = {k: v for k, v in value.items() if k != "policy"} if isinstance(value, dict) else {}
    return record or None


def _stages(value: Any, states: tuple[StateInfo, ...], where: str) -> tuple[StageInfo, ...]:
    """The optional ``stages`` list (flexsnn-onnx/3): at least two stages, the first reading
    ``x``, each T >= 1, their states together the protocol's, in order."""
    if value is None:
        return ()
    if not (isinstance(value, list) and len(value) >= 2 and all(isinstance(v, dict) for v in value)):
        raise ModelError(f"{where}: 'stages' must be a list of at least 2 stage objects or absent, got {value!r}")
    out = []
    for i, v in enumerate(value):
        T = v.get("T")
        if not (_is_int(T) and T >= 1):
            raise ModelError(f"{where}: stage {i} 'T' must be a positive integer, got {T!r}")
        name = v.get("input")
        if not (isinstance(name, str) and name) or (i == 0) != (name == "x"):
            raise ModelError(f"{where}: stage {i} 'input' must be {'x' if i == 0 else 'a tensor other than x'}")
        own = v.get("states")
        if not (isinstance(own, list) and all(isinstance(n, str) for n in own)):
            raise ModelError(f"{where}: stage {i} 'states' must be a list of state names, got {own!r}")
        out.append(StageInfo(T, name, _shape(v.get("shape"), f"stage {i} input shape"), tuple(own)))
    listed = [n for st in out for n in st.states]
    if listed != [s.name for s in states]:
        raise ModelError(f"{where}: the stages' states {listed} are not the model's states in order")
    return tuple(out)


UNFINISHED_FORM = (
    '\'unfinished\' must be absent or an object {"epochs_done": k, "epochs": n} of whole numbers with '
    "0 <= k <= n and n >= 1"
)


def _unfinished(value: Any) -> tuple[int, int] | None:
    """The optional ``unfinished`` object: ``{"epochs_done": k, "epochs": n}``, 0 <= k <= n
    (k = n: every epoch ran, the final BatchNorm calibration did not)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ModelError(f"{UNFINISHED_FORM}, got {value!r}")
    done: Any = value.get("epochs_done")
    epochs: Any = value.get("epochs")
    return done, epochs  # checked by Protocol


def _optional_T(value: Any) -> int | None:
    if value is not None and not (_is_int(value) and value > 0):
        raise ModelError(f"'bn_calibration_T' must be a positive integer or absent, got {value!r}")
    return value


def _max_steps(value: Any) -> int | None:
    if value is not None and not (_is_int(value) and value > 0):
        raise ModelError(f"'max_steps' must be a positive integer or absent, got {value!r}")
    return value


# ONNX ops whose work or allocation a file's constants or inputs set with no bound (control
# flow, shapes made from values, random draws): no product export writes them, and a file
# that does hung the runtime (Loop on a true condition) or asked for 4 PB (ConstantOfShape).
# Ops torch.onnx writes for a T-RevSNN (If for its encode-once step, Expand for zeros_like,
# Resize for its upsampling) are not among them: each runs once per node, sized by the model
UNBOUNDED_OPS = frozenset(
    "Loop Scan ConstantOfShape Range OneHot "
    "RandomNormal RandomUniform RandomNormalLike RandomUniformLike Multinomial Bernoulli "
    "SequenceConstruct SequenceInsert SequenceEmpty SplitToSequence ConcatFromSequence".split()
)


def check_graph(model: onnx.ModelProto, proto: Protocol) -> None:
    """The graph's inputs and outputs must be the ones the metadata describes, and it holds
    no op of :data:`UNBOUNDED_OPS`."""
    g = model.graph
    for node in [*g.node, *(n for f in model.functions for n in f.node)]:
        if node.domain in ("", "ai.onnx") and node.op_type in UNBOUNDED_OPS:
            raise ModelError(
                f"node {node.name or node.op_type!r} is a {node.op_type}: an op whose work or memory the file sets "
                "without bound, which no flexsnn export writes (a damaged or crafted file)"
            )
    init = {i.name for i in g.initializer}
    inputs = [i.name for i in g.input if i.name not in init]
    want_in = ["x"] + (["t"] if proto.uses_t else []) + [s.name for s in proto.states]
    if inputs != want_in:
        raise ModelError(f"graph inputs are {inputs}; the protocol metadata expects {want_in}")
    outputs = [o.name for o in g.output]
    want_out = ["y"] + [f"{s.name}_out" for s in proto.states]
    if outputs != want_out:
        raise ModelError(f"graph outputs are {outputs}; the protocol metadata expects {want_out}")
    # a shape the metadata states but the graph contradicts would fail inside onnxruntime,
    # mid-run, as a shape traceback: compare every per-sample dimension the graph fixes
    declared = {i.name: i for i in g.input}
    for name, what, shape in [("x", "the input", proto.input_shape)] + [
        (s.name, f"state {s.name!r}", s.shape) for s in proto.states
    ]:
        dims = declared[name].type.tensor_type.shape.dim[1:]
        fixed = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if dims and (len(fixed) != len(shape) or any(f is not None and f != n for f, n in zip(fixed, shape))):
            graph = "x".join("?" if f is None else str(f) for f in fixed)
            raise ModelError(
                f"metadata gives {what} the per-sample shape {'x'.join(map(str, shape))}, "
                f"but the graph's input {name!r} is {graph}"
            )
    y = g.output[0].type.tensor_type.shape.dim
    if y and y[-1].HasField("dim_value") and y[-1].dim_value != proto.num_classes:
        raise ModelError(
            f"the readout y has {y[-1].dim_value} outputs per sample but the metadata names {proto.num_classes} classes"
        )
    nodes = {n.name: n for n in g.node if n.domain == SNN_DOMAIN}
    unlisted = sorted(set(nodes) - {n.node for n in proto.neurons})
    if unlisted:
        raise ModelError(f"the graph has snn neuron nodes {unlisted} that metadata 'neurons' does not describe")
    for n in proto.neurons:
        if n.node not in nodes or nodes[n.node].op_type != n.op:
            raise ModelError(
                f"metadata names neuron node {n.node!r} ({n.op}) but the graph has "
                f"snn nodes {sorted((k, v.op_type) for k, v in nodes.items())}"
            )
        wired = list(nodes[n.node].input[1:])
        if n.states and wired != list(n.states):
            raise ModelError(f"neuron node {n.node!r} reads states {wired}; the metadata says {list(n.states)}")
        _check_attributes(nodes[n.node], n)
    made = {o for node in g.node for o in node.output} & {i for node in g.node for i in node.input}
    cut = [st.input for st in proto.stages[1:] if st.input not in made]
    if cut:
        raise ModelError(f"metadata 'stages' names boundary tensors {cut} that no two nodes of the graph pass on")
    bodies = {(f.domain, f.name, f.overload) for f in model.functions}
    for node in nodes.values():
        if (node.domain, node.op_type, node.overload) not in bodies:
            raise ModelError(
                f"node {node.name!r} ({SNN_DOMAIN}::{node.op_type}, overload "
                f"{node.overload!r}) has no function body in the file; stock "
                "onnxruntime cannot run it"
            )


def _check_attributes(node: onnx.NodeProto, n: NeuronInfo) -> None:
    """The node runs the neuron its metadata describes: onnxruntime runs the node's
    attributes and function body, the other backends and the event engine the metadata
    (an attribute edited alone gave other spikes per backend, unsaid). Compared in float32,
    the precision both run at (an ONNX float attribute is float32)."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    try:
        spec = spec_from_attributes(n.op, attrs)
    except SpecError as e:
        raise ModelError(f"neuron node {n.node!r}: its attributes: {e}") from None
    for f in fields(spec):
        got, want = getattr(spec, f.name), getattr(n.spec, f.name)
        same = np.float32(got) == np.float32(want) if field_type(f) is float else got == want
        if not same:
            raise ModelError(
                f"neuron node {n.node!r} has {f.name} {got!r} in the graph but {want!r} in the metadata; expected "
                "them to agree (onnxruntime runs the node, the other backends the metadata): re-export the file"
            )
    if node.overload != overload(n.spec):
        raise ModelError(
            f"neuron node {n.node!r} calls the function body {node.overload!r}, but its neuron runs "
            f"{overload(n.spec)!r}; re-export the file"
        )


def one_rate(proto: Protocol, what: str) -> Protocol:
    """``proto``, refused with :class:`ModelError` when it is a multi-rate file: ``what``
    runs every stage at one T, which would silently ignore the configuration."""
    if proto.stages:
        config = ",".join(str(st.T) for st in proto.stages)
        raise ModelError(
            f"this is a multi-rate model (configuration {config}, one T per stage); {what} runs one T "
            "for all stages: expected the clock-driven runtime (python -m runtime run), or a file "
            "exported without --config"
        )
    return proto


# files users hand the runtime by mistake, told apart by their first bytes (protobuf has no
# magic number): torch.save writes a zip archive, NIR is HDF5
FOREIGN_HEADS = {
    b"PK\x03\x04": "a zip archive (a torch checkpoint, trainer fit's output?)",
    b"\x89HDF\r\n\x1a\n": "an HDF5 file (a NIR graph?)",
}


def store_protocol(model: onnx.ModelProto, meta: Protocol | dict[str, Any]) -> None:
    """Write ``meta`` (a protocol, or its object as :func:`rewritten` keeps it) as the
    model's :data:`METADATA_KEY` metadata; the model's other metadata keys are kept."""
    props = {p.key: p.value for p in model.metadata_props}
    obj = meta.to_dict() if isinstance(meta, Protocol) else meta
    onnx.helper.set_model_props(model, {**props, METADATA_KEY: json.dumps(obj)})


def read_model(path: str | Path) -> tuple[onnx.ModelProto, Protocol]:
    """Load and validate ``path``; :class:`ModelError` if it is not a flexsnn model."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model {path} does not exist or is not a file (expected a .onnx file)")
    with open(path, "rb") as f:
        head = f.read(8)
    program = torch_program(path) if head.startswith(b"PK\x03\x04") else None
    if program is not None:  # its hint was "python -m export" of it, a second error
        raise ModelError(
            f"{path} is {program[0]}, which {program[1]} reads; the runtime and edge tools read the "
            "exporter's ONNX file: python -m export MODEL.pt (the checkpoint it came from)"
        )
    # a Prophesee RAW/DAT header line ("% evt 3.0") or AEDAT4's "#!AER-DAT4.0": read as protobuf, "corrupted"
    recording = next((m for m in (b"% ", b"#!AER") if head.startswith(m)), None)
    if recording is not None:
        raise ModelError(
            f"{path} is an event-camera recording (its header starts with {recording.decode()!r}), not a model; it "
            "is an input: python -m runtime stream MODEL.onnx --source FILE"
        )
    for magic, what in FOREIGN_HEADS.items():
        if head.startswith(magic):
            raise ModelError(
                f"{path} is {what}, not an ONNX file; the runtime and edge tools read the exporter's "
                f"output: python -m export {path}"
            )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises DecodeError, and others, on damaged bytes
        raise ModelError(
            f"{path} is not a readable ONNX file ({type(e).__name__}); it may be corrupted or truncated"
        ) from None
    if external_data(model):
        raise ModelError(
            f"{path} keeps weights in external data files ({external_data(model)[:3]}); "
            "flexsnn models are self-contained: re-export it with python -m export"
        )
    if not model.graph.node:
        raise ModelError(f"{path} is not a readable ONNX model (empty graph); it may be corrupted")
    meta = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in meta:
        raise ModelError(
            f"{path} is an ONNX file without {METADATA_KEY!r} metadata; expected a "
            f"model exported by `python -m export` (protocol {FORMAT})"
        )
    try:
        verify_onnx(model, path)
    except IntegrityError as e:
        raise ModelError(str(e)) from None
    try:
        obj = json_loads(meta[METADATA_KEY])
    except ValueError as e:
        raise ModelError(f"{path}: metadata {METADATA_KEY!r} is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ModelError(f"{path}: metadata {METADATA_KEY!r} must be a JSON object")
    try:
        proto = parse_protocol(obj)
        check_graph(model, proto)
    except ModelError as e:
        raise ModelError(f"{path}: {e}") from None
    return model, proto
