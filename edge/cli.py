"""``python -m edge speck model.onnx [--check] [--emulate --data DATA] [--deploy]`` and
``python -m edge pi-bench model.onnx``.

Exit status 2, with one line naming the layer and the limit, for a model that cannot go
to Speck (unsupported op, bias, a broken chip limit, weights that quantise to zero) and
for everything a user can get wrong; the table (or JSON) is printed first when there is one.
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from runtime import cliargs
from runtime.data import DataError, spec_paths
from runtime.errors import (
    InputError,
    NonFiniteReadoutWarning,
    TrainedRangeWarning,
    UnfinishedModelWarning,
    UnseenEventsWarning,
    missing_package,
)
from runtime.fileio import OutputPathError, check_output
from runtime.limits import available_cores
from runtime.neuron import SpecError
from runtime.policies import POLICY_FORMS, PolicyError, parse_policy, t_range_warning
from runtime.protocol import ModelError, one_rate, read_model
from runtime.report import emit_json, fail, guarded, noting, print_warnings, table, versions, versions_text

from .speck.chip import CHIPS, DEFAULT_CHIP, ChipError
from .speck.convert import READOUT_THRESHOLD

if TYPE_CHECKING:
    from .speck.backend import Plan
    from .speck.quantize import QuantNet

EXIT_POLICY, EXIT_LIMIT = "confidence:0.9", 200  # pi-bench's early-exit saving on --data
USER_ERRORS = (ModelError, InputError, DataError, SpecError, PolicyError, ChipError, OutputPathError)


# ---- speck --------------------------------------------------------------------------
def _layer_rows(p: Plan, q: QuantNet | None) -> list[dict]:
    from .speck.describe import shape_fields

    rows = []
    for i, lp in enumerate(p.layers):
        s = lp.shape
        row = {
            "index": i,
            "name": s.name,
            **shape_fields(s),
            "kernel_memory": lp.kernel_memory,
            "neuron_memory": lp.neuron_memory,
            "core": lp.core,
            "violations": [str(v) for v in lp.violations],
        }
        if q is not None:
            ql = q.layers[i]
            row.update(
                scale=ql.scale, scale_bound=ql.bound, threshold=ql.threshold, v_min=ql.v_min, weights_zeroed=ql.zeroed
            )
        rows.append(row)
    return rows


def _print_check(path: str, p: Plan, rows: list[dict], notes: list[str]) -> None:
    from .speck.constraints import ki

    dims = lambda v: "x".join(map(str, v))
    print(
        f"{path} on {p.chip.name}: "
        + (
            "fits, cores " + ", ".join(map(str, p.cores))
            if p.fits
            else f"does NOT fit ({len(p.violations)} limits broken)"
        )
    )
    headers = [
        "layer",
        "name",
        "input",
        "kernel",
        "stride",
        "pad",
        "output",
        "pool",
        "kernel mem",
        "neuron mem",
        "core",
    ]
    quant = "scale" in rows[0] if rows else False
    headers += ["scale", "threshold", "zeroed w"] if quant else []
    body = []
    for r in rows:
        line = [
            r["index"],
            r["name"],
            dims(r["input"]),
            dims(r["kernel"]),
            dims(r["stride"]),
            dims(r["padding"]),
            dims(r["output"]),
            r["sum_pool"],
            ki(r["kernel_memory"]),
            ki(r["neuron_memory"]),
            "-" if r["core"] is None else r["core"],
        ]
        if quant:
            line += [f"{r['scale']:.4g} ({r['scale_bound']})", r["threshold"], f"{100 * r['weights_zeroed']:.1f}%"]
        body.append(line)
    print(table(headers, body))
    for n in notes:
        print(f"note: {n}")
    for v in p.violations:
        print(f"limit: {v}")


def _emulate(a: argparse.Namespace, q: QuantNet, out: dict) -> None:
    from runtime.evaluate import run_dataset, summarize  # onnxruntime session: only when emulating
    from runtime.session import load

    from .speck.emulate import emulate

    ds = cliargs.model_data(a, q.net.protocol, needs="Speck emulation")  # with the model's transforms
    session = load(a.model)
    notes: list[str] = []  # a model trained on fixed bins that miss events: a warning line, not Python's
    with noting(notes, UnseenEventsWarning, NonFiniteReadoutWarning):
        clock = summarize(run_dataset(session, ds, counts=False), ds.labels)
    assert ds.events is not None  # model_data(needs=...): an event data set, which holds streams
    e = emulate(q, a.model, ds.events)
    acc = lambda r: float((r.predictions == ds.labels).mean())
    out["emulation"] = {
        "data": ds.spec,
        "n": len(ds),
        "float_clock_accuracy": clock["accuracy"],
        "float_clock_T": session.protocol.default_T,
        "float_event_accuracy": acc(e.float_),
        "speck_accuracy": acc(e.chip),
        "agreement": float((e.chip.predictions == e.float_.predictions).mean()),
        "spike_difference": e.sd(),
        "speck_form_float_accuracy": acc(e.twin),
        "agreement_vs_speck_form_float": float((e.chip.predictions == e.twin.predictions).mean()),
        "spike_difference_vs_speck_form_float": e.sd_quantisation(),
        "output_spikes_per_sample": float(e.chip.outputs.sum(-1).mean()),
        "readout_pairs": q.net.readout_pairs,
        "warnings": print_warnings(notes),
    }


def cmd_speck(a: argparse.Namespace) -> None:
    # imported here, not at the top: the Speck path needs the event engine (numba), which a
    # Raspberry Pi install may leave out; pi-bench must work without it
    try:
        import numba  # noqa: F401  (imported by runtime.event anyway; here it can fail with a clear line)
    except ImportError as e:
        fail(str(missing_package("numba", "python -m edge speck (it converts and emulates through runtime.event)", e)))
    from .speck.deploy import DeployError
    from .speck.quantize import QuantError

    guarded(USER_ERRORS + (QuantError, DeployError), lambda: _speck(a))


def _speck(a: argparse.Namespace) -> None:
    from .speck.backend import plan
    from .speck.chip import chip
    from .speck.convert import convert
    from .speck.deploy import DeployError
    from .speck.describe import describe, write_description
    from .speck.quantize import quantize

    spec = chip(a.chip)
    cliargs.refuse_unread("--emulate", a.emulate, {"--data": a.data is not None, "--limit": a.limit is not None})
    if a.describe or a.deploy:  # refused before any work: never write over the model
        description = a.describe or Path(a.model).with_suffix(".speck.json")
        # a .json path: --describe m.onnx replaced another model (or a checkpoint, a recording)
        kind = (".json", "a Speck description")
        check_output(description, a.model, *spec_paths(a.data), what="--describe", kind=kind)
    model, proto = read_model(a.model)
    try:
        one_rate(proto, "a Speck chip (one clock for all layers)")
        if a.emulate:  # the data the model was trained on, unless --data says otherwise: known before any work
            cliargs.data_spec(a, proto)
        net = convert(model, proto, a.readout_threshold)
    except ModelError as e:  # a model Speck cannot run at all: --json still says so, as for one that does not fit
        if a.json:
            emit_json({"model": a.model, "chip": spec.name, "fits": False, "notes": [], "violations": [str(e)]})
        raise
    if cliargs.given(a, "readout_threshold") and not net.readout_pairs:  # it was accepted and ignored
        raise InputError(
            f"--readout-threshold sets the IF neuron pairs given to a readout without neurons; {a.model}'s "
            "readout is spiking neurons with their own threshold (read as spike counts): leave it out"
        )
    p = plan(net, spec)
    out: dict = {
        "model": a.model,
        "chip": spec.name,
        "fits": p.fits,
        "notes": net.notes,
        "violations": [str(v) for v in p.violations],
        # a file from an unfinished training run: said for --check, --describe and --deploy too
        "warnings": print_warnings([proto.unfinished_note(a.model)]),
    }
    if not p.fits:
        out["layers"] = _layer_rows(p, None)
        if a.json:
            emit_json(out)
        else:
            _print_check(a.model, p, out["layers"], net.notes)
        fail(f"{a.model} does not fit {spec.name}: " + "; ".join(map(str, p.violations)))
    q = quantize(net, spec.weight_bits, spec.state_bits)
    out["layers"] = _layer_rows(p, q)
    if a.describe or a.deploy:
        path = Path(a.describe or Path(a.model).with_suffix(".speck.json"))
        out["description"] = str(write_description(path, describe(q, p, a.model)))
    if a.emulate:
        _emulate(a, q, out)
    if a.deploy:
        from .speck.deploy import deploy

        try:
            out["device"] = deploy(q, p)
        except DeployError as e:
            if a.json:
                emit_json(out)
            raise DeployError(f"--deploy: {e} (the chip description was written to {out['description']})") from None
    if a.json:
        emit_json(out)
        return
    _print_check(a.model, p, out["layers"], net.notes)
    if "description" in out:
        print(
            f"wrote {out['description']} (mapped, quantised network; {Path(out['description']).stat().st_size} bytes)"
        )
    if "emulation" in out:
        emu = out["emulation"]
        print(f"\nemulation on {emu['data']} ({emu['n']} samples), event-driven, one input event at a time:")
        print(
            table(
                ["run", "accuracy (%)"],
                [
                    [name, f"{100 * emu[key]:.2f}"]
                    for name, key in (
                        (f"float, clock-driven (T={emu['float_clock_T']})", "float_clock_accuracy"),
                        ("float, event-driven", "float_event_accuracy"),
                        (
                            "Speck's form in float ("
                            + ("IF readout pairs, " if emu["readout_pairs"] else "")
                            + "weights not rounded)",
                            "speck_form_float_accuracy",
                        ),
                        ("Speck (quantised, chip semantics)", "speck_accuracy"),
                    )
                ],
            )
        )
        print(
            f"prediction agreement Speck vs float event-driven: {100 * emu['agreement']:.2f}%; spike difference "
            "(the layers spiking in both): " + ", ".join(f"{k} {v:.4f}" for k, v in emu["spike_difference"].items())
        )
        print(
            f"prediction agreement Speck vs its form in float: {100 * emu['agreement_vs_speck_form_float']:.2f}%; "
            "spike difference (every layer, readout included): "
            + ", ".join(f"{k} {v:.4f}" for k, v in emu["spike_difference_vs_speck_form_float"].items())
        )
    if "device" in out:
        print(f"deployed to {out['device']}")


# ---- pi-bench -----------------------------------------------------------------------
def cmd_pi_bench(a: argparse.Namespace) -> None:
    from runtime.bench import timed_steps

    from .pi.bench import early_exit, peak_rss_mib, thread_rows

    policy = parse_policy(a.policy) if a.policy is not None else None
    # only the early-exit saving on --data reads these
    cliargs.refuse_unread(
        "--data", a.data is not None, {"--policy": a.policy is not None, "--limit": cliargs.given(a, "limit")}
    )
    asked = a.max_threads if cliargs.given(a, "max_threads") else None  # the default 4: one row for exact
    cliargs.refuse_threads_for_exact(a.backend, "--max-threads", asked)  # it timed one thread, unsaid
    _, proto = read_model(a.model)  # fail early and clearly on a bad file
    one_rate(proto, "pi-bench")  # its timed steps run one T for all stages
    a.T = timed_steps(proto, a.T)
    # --policy, else the one calibrate-exit stored (as runtime run), else confidence:0.9: runtime
    # run's own fallback, fixed at the trained T, would measure no saving
    policy_text = a.policy or proto.exit_policy or EXIT_POLICY
    policy = policy or parse_policy(policy_text)
    base = peak_rss_mib()
    load_before = os.getloadavg()
    out: dict = {
        "model": a.model,
        "backend": a.backend,
        "T": a.T,
        "repeats": a.repeats,
        "cpus": available_cores(),
        "versions": versions("numpy", "onnx", "onnxruntime", "numba"),  # what a Pi's figures are compared by
        "rss_before_model_mib": base,
        "threads": thread_rows(a.model, a.max_threads, a.T, a.repeats, a.backend),
    }
    out["peak_rss_mib"] = peak_rss_mib()  # before any data set is loaded: what the board needs to run
    notes: list[str | None] = [proto.unfinished_note(a.model)]
    if a.max_threads > out["cpus"] and a.backend != "exact":  # rows past the cores time oversubscription
        notes.append(f"rows above {out['cpus']} threads run more threads than this machine's {out['cpus']} cores")
    if a.data:
        run_notes: list[str] = []  # a warning line and --json's, not Python's form
        with noting(run_notes, NonFiniteReadoutWarning):
            ee = early_exit(a.model, cliargs.model_data(a, proto), policy, backend=a.backend)
        notes.extend(run_notes)
        out["early_exit"] = dict(ee, policy=policy_text)
        out["peak_rss_with_data_mib"] = peak_rss_mib()
        notes.append(t_range_warning(proto, policy))  # an accuracy outside training: as runtime run says it
    out["load_average"] = [load_before, os.getloadavg()]
    out["warnings"] = print_warnings(notes)
    if a.json:
        emit_json(out)
        return
    used = out["threads"][0]["backend"]
    print(f"{a.model}: batch 1, backend {used} (--backend {a.backend}), {a.T} steps x {a.repeats} repeats")
    v = out["versions"]
    print(
        f"load average {load_before[0]:.2f} before, {out['load_average'][1][0]:.2f} after (1 min); " + versions_text(v)
    )
    cols = ["wall_ms_min", "wall_ms_median", "cpu_ms_min", "cpu_ms_median"]
    print(
        table(
            ["threads", "wall ms/step min", "median", "CPU ms/step min", "median"],
            [[r["threads"], *(r[c] for c in cols)] for r in out["threads"]],
        )
    )
    print(f"batch 1, each thread count's Session.run timed whole, interleaved over {out['repeats']} rounds")
    print(
        f"peak RSS {out['peak_rss_mib']:.1f} MiB: runtime, model and the timed random input of batch 1 x --T, no "
        f"data set ({base:.1f} MiB after imports, before the model)"
    )
    if "early_exit" in out:
        e = out["early_exit"]
        print(f"early exit, {e['n']} samples one at a time:")
        print(
            table(
                ["policy", "accuracy (%)", "mean steps", "ms/sample"],
                [
                    [name, f"{100 * e[f'{k}_accuracy']:.2f}", e[f"{k}_steps"], e[f"{k}_ms_per_sample"]]
                    for name, k in (("fixed (default T)", "fixed"), (e["policy"], "exit"))
                ],
            )
        )
        print(
            f"saving: {100 * e['step_saving']:.1f}% of steps, {100 * e['time_saving']:.1f}% of time "
            f"(peak RSS with the data set loaded: {out['peak_rss_with_data_mib']:.1f} MiB)"
        )
    else:
        print("(early-exit saving: pass --data DATA)")


def parser() -> argparse.ArgumentParser:
    parser = cliargs.Parser(prog="python -m edge", description=__doc__).add_version()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("speck", help="check, map, quantise, emulate and deploy to SynSense Speck")
    p.add_argument("model", help="exported model (.onnx)")
    p.add_argument("--chip", default=DEFAULT_CHIP, help=f"one of {sorted(CHIPS)} (default {DEFAULT_CHIP})")
    p.add_argument("--check", action="store_true", help="constraints, mapping, quantisation (the default)")
    p.add_argument("--emulate", action="store_true", help="run the quantised net event-driven on --data")
    cliargs.add_data(p, what="--emulate data")
    cliargs.add_limit(p)
    p.add_argument(
        "--describe", type=cliargs.output_path, default=None, help="write the mapped, quantised network as JSON here"
    )
    p.add_argument(
        "--deploy",
        action="store_true",
        help="configure a connected devkit (real samna needed); also writes the JSON (default MODEL.speck.json)",
    )
    p.add_argument(
        "--readout-threshold",
        type=cliargs.positive_float,
        default=READOUT_THRESHOLD,
        help="threshold of the IF neuron pairs given to a readout without neurons (model units; default "
        f"{READOUT_THRESHOLD:g}: finer tracks the float readout more closely but sends more output spikes; "
        "refused for a readout of spiking neurons, which keep their own)",
    )
    cliargs.add_json(p)
    p = sub.add_parser("pi-bench", help="batch-1 latency per thread count, peak memory, early-exit saving")
    p.add_argument("model", help="exported model (.onnx)")
    p.add_argument(
        "--max-threads",
        type=cliargs.positive_threads,
        default=4,
        help="measure 1..N threads (default 4, as a Pi 4/5; backend exact: 1)",
    )
    cliargs.add_timed_steps(p)
    cliargs.add_backend(p)
    cliargs.add_repeats(p, "interleaved rounds over the thread counts (wall and CPU min and median reported)")
    cliargs.add_data(p, fallback="none: no early-exit saving", what="data for the early-exit saving")
    cliargs.add_limit(p, EXIT_LIMIT, "the test split for the early-exit saving")
    p.add_argument(
        "--policy",
        default=None,
        help=f"--data's early exit: one of {', '.join(POLICY_FORMS)} (default: the model's stored policy, "
        f"as runtime run uses it, else {EXIT_POLICY}: runtime run's own fallback, fixed at the model's default T, "
        "would measure no saving)",
    )
    cliargs.add_json(p)
    return parser


def main(argv: list[str] | None = None) -> None:
    a = cliargs.parse(parser, argv)
    commands = {"speck": cmd_speck, "pi-bench": cmd_pi_bench}
    # pi-bench times --T steps whatever the trained range (a speed figure, not accuracy):
    # the SDK's range warning printed twice there as a raw Python warning with its source line
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainedRangeWarning)
        warnings.simplefilter("ignore", UnfinishedModelWarning)  # said by each command as a warning line
        guarded(USER_ERRORS, lambda: commands[a.cmd](a))
