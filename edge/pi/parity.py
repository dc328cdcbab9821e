"""Bit-identical parity of the runtime across machines (used by ``edge/aarch64_check.sh``).

The host writes the inputs once; each machine runs the same model on them with the
runtime (the code ``python -m runtime run`` calls: ``run_dataset`` and, per event,
``run_event_dataset``) and writes what it got per sample; ``compare`` fails unless every
array is bit-identical::

    python -m edge.pi.parity inputs INPUTS.npz [--data SPEC] [--limit N]  # host: a test split
    python -m edge.pi.parity run MODEL INPUTS.npz -o RESULT.npz           # on each machine
    python -m edge.pi.parity compare HOST.npz OTHER.npz                   # exit 1 naming each difference
    python -m edge.pi.parity compare HOST.json OTHER.json                 # `runtime run --json` outputs

The inputs are the test split of any data set (default: the digits' event streams), stored
with its description (:mod:`runtime.data.snapshot`) and run with the model's own input
transforms, as ``runtime run --data`` runs it. Runs: fixed T at the model's default T, a
confidence exit (steps differ per sample), both on the clock-driven backend ``--backend``
(default ``exact``: the fixed-order one, the only one that is bit-identical across
instruction sets; docs/edge.md), and the numba event engine (event data only); per sample
the predictions, steps, readout values and spike counts of every spiking layer (per neuron
for the event engine). ``compare --informational`` prints the differences and exits 0 (for
the other backends, whose onnxruntime convolutions sum in an order of their own per
instruction set).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from runtime import cliargs
from runtime.data import DataError, Dataset, with_transforms
from runtime.data.datasets import check_fits, digits_event_set, load_dataset, spec_paths
from runtime.data.digits import unpacked
from runtime.data.snapshot import is_snapshot, read_snapshot, write_snapshot
from runtime.data.transforms import from_dicts
from runtime.errors import InputError, ModelError, TrainedRangeWarning, UnseenEventsWarning
from runtime.evaluate import run_dataset
from runtime.fileio import check_output, json_loads, not_a_file, write_serialized
from runtime.limits import check_memory
from runtime.policies import FixedT, parse_policy
from runtime.protocol import data_kind
from runtime.report import guarded, noting, print_warnings
from runtime.session import BACKENDS, load

CONFIDENCE = "confidence:0.5"
CLI_TIMES = {"seconds", "ms_per_sample", "model", "data"}  # wall time, and the paths given
OLD_INPUT_KEYS = {"events", "offsets", "labels"}  # what `inputs` wrote before snapshots: digits streams
BATCH = 64


def write_inputs(path: str, spec: str, limit: int | None) -> None:
    """The test split of ``spec`` (``limit``: as every --limit, evenly spread), untransformed."""
    # `inputs m.onnx` replaced the model; `inputs x.npz --data npz:x.npz`, the data
    check_output(path, *spec_paths(spec), kind=(".npz", "parity inputs (.npz)"))
    ds = load_dataset(spec, "test", limit)
    write_serialized(path, lambda f: write_snapshot(f, ds))
    print(f"wrote {path}: {len(ds)} test samples of {spec} ({ds.holds}, {'x'.join(map(str, ds.shape))})")


def _npz(path: str, keys: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of the .npz file ``path`` (``what`` it should be, for the message)."""
    import zipfile

    if not Path(path).is_file():
        raise InputError(f"{what} {path} {not_a_file(path)}")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path} is not {what}: not an .npz (zip) file")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise InputError(f"{path} is not {what} (it lacks {', '.join(missing)})")
            return {k: z[k] for k in (keys or z.files)}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"{path} is not {what} (an .npz file): {str(e).splitlines()[0][:120]}") from None


def read_inputs(path: str) -> Dataset:
    what = "a parity inputs file (python -m edge.pi.parity inputs)"
    arrays = _npz(path, (), what)  # its errors name the path and `what` already
    if is_snapshot(arrays):
        try:
            return read_snapshot(arrays, path)
        except DataError as e:
            raise InputError(f"{path} is not {what}: {e}") from None
    missing = sorted(OLD_INPUT_KEYS - arrays.keys())
    if missing:
        raise InputError(f"{path} is not {what} (it lacks {', '.join(missing)})")
    try:  # an inputs file of before the snapshots: the digits test streams
        streams, labels = unpacked(arrays)
    except ValueError as e:
        raise InputError(f"{path} is not {what}: {e}") from None
    return digits_event_set(path, "test", streams, labels)


def run_all(model: str, ds: Dataset, backend: str = "exact", notes: list[str] | None = None) -> dict[str, np.ndarray]:
    """Every per-sample array of the three runs, keyed ``run/field``; the event engine's only
    where it can run the model (a bias, BatchNorm: the clock-driven runs alone, said in
    ``notes``), so that a clock-driven deployment is checked too. ``ds`` is read as
    ``runtime run --data`` reads it: with the model's transforms, checked to fit it."""
    session = load(model, threads=1, backend=backend)
    proto = session.protocol
    try:
        ds = with_transforms(ds, from_dicts(proto.transforms))
        ds = check_fits(ds, proto.input_shape, proto.classes, model, kind=data_kind(proto.input_kind))
    except DataError as unfit:
        hint = "write inputs of its data: python -m edge.pi.parity inputs FILE --data SPEC"
        raise InputError(f"{unfit} ({hint})") from None
    out: dict[str, np.ndarray] = {}
    for name, policy in (("fixed", FixedT(session.protocol.default_T)), ("confidence", parse_policy(CONFIDENCE))):
        r = run_dataset(session, ds, policy, BATCH)
        out.update({f"{name}/predictions": r.predictions, f"{name}/steps": r.steps, f"{name}/outputs": r.outputs})
        out.update({f"{name}/spikes/{k}": v for k, v in (r.spike_counts or {}).items()})
    if ds.kind != "events":
        if notes is not None:
            notes.append(f"the event engine reads event streams; {ds.spec!r} holds {ds.holds}: clock-driven runs only")
        return out
    from runtime.event import load_event  # numba: only here
    from runtime.event.evaluate import WHOLE_STREAMS, run_event_dataset

    try:
        engine = load_event(model)
    except ModelError as refused:  # the same on every machine: both results lack the event arrays
        if notes is not None:
            notes.append(f"the event engine cannot run {model} ({str(refused).split(';')[0]}): clock-driven runs only")
        return out
    e = run_event_dataset(engine, ds, BATCH, policy=WHOLE_STREAMS)
    out.update({"event/predictions": e.predictions, "event/outputs": e.outputs, "event/synops": e.synops})
    out.update({f"event/spikes/{k}": v for k, v in e.neuron_counts.items()})
    return out


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
    """One line per difference: a key only one side has, or an array whose dtype, shape or
    bytes differ (bytes, so -0.0 vs 0.0 and NaN payloads count too)."""
    diffs = [f"{k}: only in the first" for k in sorted(a.keys() - b.keys())]
    diffs += [f"{k}: only in the second" for k in sorted(b.keys() - a.keys())]
    for k in sorted(a.keys() & b.keys()):
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if x.dtype != y.dtype or x.shape != y.shape:
            diffs.append(f"{k}: {x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}")
        elif x.ndim == 0 or x.size == 0:  # a scalar, or an empty list (the CLI's "warnings")
            if x.tobytes() != y.tobytes():
                diffs.append(f"{k}: {x} vs {y}")
        else:
            bad = np.flatnonzero((x.view(np.uint8).reshape(len(x), -1) != y.view(np.uint8).reshape(len(y), -1)).any(1))
            if len(bad):
                diffs.append(f"{k}: {len(bad)} of {len(x)} samples differ (first: sample {bad[0]})")
    return diffs


def _flatten(prefix: str, value: object) -> dict[str, np.ndarray]:
    """A JSON value as arrays keyed by path: an object becomes one key per field (an object
    as one numpy array would hold pointers, and its bytes would never compare equal)."""
    if isinstance(value, dict):
        return {k: v for name, field in value.items() for k, v in _flatten(f"{prefix}/{name}", field).items()}
    if value is None:  # JSON null ("config": null, an infinite sd): a value of its own
        return {prefix: np.array("null")}
    if isinstance(value, list) and not _uniform(value):  # a list of objects or of ragged lists: item by item
        return {k: v for i, item in enumerate(value) for k, v in _flatten(f"{prefix}/{i}", item).items()}
    return {prefix: np.asarray(value)}


def _uniform(items: list) -> bool:
    """Whether numpy can hold the list as one array of numbers or strings (no objects)."""
    try:
        return np.asarray(items).dtype != object
    except ValueError:  # ragged nesting
        return False


def _load(path: str) -> dict[str, np.ndarray]:
    """A result of ``run``, or the ``--json`` object of ``python -m runtime run`` (its wall
    times left out: they are not results); one with no results at all is refused (two
    empty files "agreed")."""
    what = "a parity result (python -m edge.pi.parity run, or runtime run --json)"
    if path.endswith(".json"):
        if not Path(path).is_file():  # a FIFO blocked, /dev/zero was read until memory ran out
            raise InputError(f"{what} {path} {not_a_file(path)}")
        check_memory(16 * Path(path).stat().st_size, f"reading {path}")
        try:
            s = json_loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read {path} as runtime run --json output: {e}") from None
        if not isinstance(s, dict):
            raise InputError(f"{path} is not {what}: expected a JSON object, got a {type(s).__name__}")
        arrays = _flatten("cli", {k: v for k, v in s.items() if k not in CLI_TIMES})
    else:
        arrays = _npz(path, (), what)
        if is_snapshot(arrays) or set(arrays) == OLD_INPUT_KEYS:
            raise InputError(f"{path} is a parity inputs file, not {what}")
    if not arrays:
        raise InputError(f"{path} holds no results; expected {what}")
    return arrays


def _parser() -> cliargs.Parser:
    p = cliargs.Parser(prog="python -m edge.pi.parity", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("inputs", help="write a data set's test split (host)")
    q.add_argument("output", help="the .npz file of the samples, their labels and the data set's description")
    cliargs.add_data(q, default="digits", what="the data set whose test split to write")
    cliargs.add_limit(q)
    q = sub.add_parser("run", help="run the three runs, write per-sample results")
    q.add_argument("model")
    q.add_argument("inputs", help="a file of `inputs`")
    cliargs.add_out(q, "the per-sample results (.npz)", required=True)
    q.add_argument("--backend", choices=BACKENDS, default="exact", help="clock-driven backend (default: exact)")
    q = sub.add_parser("compare", help="exit 1 unless the two results are bit-identical")
    q.add_argument("first")
    q.add_argument("second")
    q.add_argument("--informational", action="store_true", help="print the differences, exit 0")
    return p


def main(argv: list[str] | None = None) -> None:
    a = cliargs.parse(_parser, argv)
    sys.exit(guarded((InputError, ModelError, DataError), lambda: _run(a)))


def _run(a: argparse.Namespace) -> int:
    if a.cmd == "inputs":
        write_inputs(a.output, a.data, a.limit)
    elif a.cmd == "run":
        # before the runs: never over an input, nor over a file of another kind (-o m.pt replaced a checkpoint)
        check_output(a.out, a.model, a.inputs, kind=(".npz", "parity results (.npz)"))
        notes: list[str] = []  # a fixed-bin model's missed events: a warning line, as runtime run says it
        with noting(notes, UnseenEventsWarning, TrainedRangeWarning):
            res = run_all(a.model, read_inputs(a.inputs), a.backend, notes)
        print_warnings(notes)
        write_serialized(a.out, lambda f: np.savez(f, **res))  # type: ignore[arg-type]
        runs = sorted({k.split("/")[0] for k in res})
        print(f"wrote {a.out}: {len(res)} per-sample arrays of the runs {', '.join(runs)}")
    else:
        first, second = _load(a.first), _load(a.second)
        diffs = compare(first, second)
        for d in diffs:
            print(f"differs: {d}")
        n = len(first.keys() | second.keys())
        verdict = "ok" if not diffs else "differs (informational)" if a.informational else "FAILED"
        print(f"parity {verdict}: {len(diffs)} of {n} arrays differ")
        return 1 if diffs and not a.informational else 0
    return 0


if __name__ == "__main__":
    main()
