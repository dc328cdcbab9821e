"""``python -m runtime run | bench | tradeoff | calibrate-exit | event-bench | stream``: evaluate an
exported model under an exit policy, time it against torch eager, sweep exit thresholds, choose
an exit policy on the validation split and store it in the model, time the event-driven engine,
predict over an event-camera stream."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import TYPE_CHECKING, Any

from . import cliargs
from .bench import PEAK_SIDE, bench, timed_steps, torch_available
from .data import DataError, spec_paths
from .data.events import TIME_BASES
from .engine import threads_for
from .errors import (
    InputError,
    NonFiniteReadoutWarning,
    StoredPolicyWarning,
    TrainedRangeWarning,
    UnfinishedModelWarning,
    UnseenEventsWarning,
)
from .evaluate import EVAL_BATCH_SIZE, plot_tradeoff, run_dataset, summarize, tradeoff
from .event.cli import clock_only_flags, spike_rule_note  # numba-free
from .fileio import OutputPathError, check_output
from .limits import available_cores, check_memory, run_bytes
from .neuron import SpecError
from .policies import (
    CASCADE_NOT_EVENT_DRIVEN,
    POLICY_FORMS,
    RULES,
    PolicyError,
    parse_policy,
    t_range_note,
    t_range_warning,
)
from .protocol import STATIC_KINDS, ModelError, data_kind, one_rate
from .report import emit_json, energy_note, guarded, noting, pct, print_run, print_warnings, sci, table, versions_text
from .session import Session, load

if TYPE_CHECKING:
    from .event.engine import EventEngine  # numba: loaded by --mode event only

EVENT_THREADS = "--mode event: numba threads, one stream each (default: all cores)"
USER_ERRORS = (ModelError, InputError, PolicyError, DataError, SpecError, OutputPathError)


def _common(p: argparse.ArgumentParser, threads_when: str = "", threads_help: str | None = None) -> None:
    p.add_argument("model", help="exported model (.onnx)")
    cliargs.add_ort_threads(p, threads_when, threads_help)
    cliargs.add_backend(p)
    cliargs.add_json(p)


def _data(p: argparse.ArgumentParser, limit_of: str = "the test split") -> None:
    cliargs.add_data(p)
    cliargs.add_limit(p, of=limit_of)
    cliargs.add_batch_size(p, EVAL_BATCH_SIZE, "samples per run batch")
    cliargs.add_binning(p)


def _horizon(p: argparse.ArgumentParser, tmax_help: str) -> None:
    """--tmin and --tmax of the commands that compare exit policies (tradeoff, calibrate-exit)."""
    cliargs.add_steps(p, "no exit before this step", 1, flag="--tmin")
    cliargs.add_steps(p, f"{tmax_help} (default: the model's default T)", flag="--tmax")


def _open(a: argparse.Namespace) -> Session:
    cliargs.refuse_threads_for_exact(a.backend, "--threads", a.threads)  # was accepted and ignored
    session = load(a.model, a.threads, a.backend)
    if getattr(a, "binning", None) is not None and session.protocol.input_kind != "event-frames":  # was ignored
        from .data.datasets import HOLDS  # Braille's recorded sequences were called "static input"

        takes = HOLDS[data_kind(session.protocol.input_kind)]
        raise InputError(f"--binning {a.binning}: {a.model} takes {takes}, which are not binned; leave it out")
    return session


def cmd_run(a: argparse.Namespace) -> None:
    if a.mode == "event":  # the event-driven runtime (runtime.event): no policy, no steps
        from .event.cli import cmd_run_event

        return cmd_run_event(a)
    if a.time_base is not None:
        raise InputError(f"--time-base {a.time_base}: only --mode event reads it (the clock run bins as trained)")
    policy = parse_policy(a.policy) if a.policy is not None else None  # bad policy: fail before loading data
    session = _open(a)
    ds = cliargs.model_data(a, session.protocol)
    # refuses a T it cannot run, first
    notes: list[str] = []
    stored: list[str] = []  # the stored policy's note (run_dataset's, phrased once there)
    with noting(stored, StoredPolicyWarning), noting(notes, UnseenEventsWarning, NonFiniteReadoutWarning):
        result = run_dataset(session, ds, policy, a.batch_size, a.binning, progress=sys.stderr.isatty())
    p = session.protocol
    warnings = print_warnings([p.unfinished_note(a.model), *stored, t_range_warning(p, policy), *notes])
    s: dict[str, Any] = summarize(result, ds.labels)
    s.update(
        policy=a.policy or session.protocol.exit_policy or f"fixed:{session.protocol.default_T}",
        data=ds.spec,
        model=a.model,
        config=list(session.protocol.config) if session.protocol.config else None,
        backend=session.backend,
        # what a figure is rerun with (the event mode's JSON said it; this did not)
        threads=1
        if session.backend == "exact"
        else threads_for(min(a.batch_size, len(ds)), a.threads) or available_cores(),
        warnings=warnings,
    )
    if a.json:
        emit_json(s)
        return
    title = f"{a.model} on {ds.spec} ({s['n']} samples), policy {s['policy']}, backend {s['backend']}"
    if s["config"]:
        title += (
            f"\nconfiguration {','.join(map(str, s['config']))} (T per stage; policy on the last stage's steps), "
            f"backends {session.backend_note}"
        )
    figures = {
        "accuracy %": pct(s["accuracy"]),
        "mean steps": f"{s['mean_steps']:.2f}",
        **{f"p{q} steps": f"{s[f'p{q}_steps']:.1f}" for q in (50, 90, 99)},
        "MACs/sample": sci(s["macs"]),
        "ACs/sample": sci(s["acs"]),
        "energy µJ/sample*": f"{s['energy_uj']:.3g}",
        "ms/sample": f"{s['ms_per_sample']:.2f}",
    }
    # one cold run: the first steps at each batch size also compile and allocate (the first
    # run of fixed:6 on the digits default takes about 6 ms per sample, later ones about 0.6)
    print_run(
        title,
        figures,
        ["ms/sample: this run's step loops, first-call costs included; warm timings: runtime bench, edge pi-bench"],
    )


def cmd_bench(a: argparse.Namespace) -> None:
    cliargs.refuse_unread("--checkpoint", a.checkpoint is not None, {"--no-compile": a.no_compile})  # torch's
    cliargs.refuse_oversubscribed(a.threads, "steps", InputError)
    if a.checkpoint and not torch_available():
        raise InputError("--checkpoint needs torch to time torch eager; it is not installed")
    if a.checkpoint:  # a bad checkpoint: one line before any timing (torch only here)
        from trainer.checkpoint import CheckpointError, load_checkpoint

        try:
            load_checkpoint(a.checkpoint)
        except CheckpointError as e:
            raise InputError(str(e)) from None
    session = _open(a)
    one_rate(session.protocol, "bench (it times steps of the whole graph at one T)")
    a.T = timed_steps(session.protocol, a.T)
    frames = 1 if session.protocol.input_kind in STATIC_KINDS else a.T
    for b in a.batch_size:
        check_memory(run_bytes(session.protocol, b, frames), f"--batch-size {b} for {a.T} steps")
    result = bench(
        session, a.batch_size, a.T, a.repeats, a.checkpoint, a.threads, not a.no_compile, sys.stderr.isatty()
    )
    if a.json:
        emit_json({"model": a.model, **result})
        return
    before, after = result["load_average"]
    print(f"backend {result['backend']}: {result['backend_note']}")
    print(
        f"{a.model}: {a.T} steps per round, {a.repeats} interleaved rounds, input seed {result['seed']}; load average "
        f"{before[0]:.2f} before, {after[0]:.2f} after (1 min)"
    )
    print(f"versions: {versions_text(result['versions'])}")
    for r in result["rows"]:
        limit = r["gemm_limit_ms_wall"]
        print(
            f"\nbatch {r['batch']}, {r['threads']} thread(s); GEMM limit {limit:.3f} ms/step wall, "
            f"{r['gemm_limit_ms_cpu']:.3f} CPU (numpy fp32 matmul at the model's shapes, "
            f"{r['gemm_gflops_wall']:.1f} GFLOP/s; the machine's peak {r['peak_gflops_cpu']:.1f} GFLOP/s CPU at "
            f"{PEAK_SIDE}x{PEAK_SIDE})"
            if r["gemm_gflops_wall"]
            else f"\nbatch {r['batch']}, {r['threads']} thread(s); GEMM limit not measured (no weight shapes)"
        )
        ms = ["wall_ms_min", "wall_ms_median", "cpu_ms_min", "cpu_ms_median"]
        pcts = ["pct_of_gemm_limit_wall", "pct_of_gemm_limit_cpu"]
        print(
            table(
                ["system", "wall ms/step min", "median", "CPU ms/step min", "median", "% of limit wall", "CPU"],
                [
                    [s["system"], *("-" if s[c] is None else s[c] for c in ms)]
                    + ["-" if s[c] is None else f"{s[c]:.1f}" for c in pcts]
                    for s in r["systems"]
                ],
            )
        )
        for name, why in r["unavailable"].items():
            print(f"({name}: {why})")
        for note in r["notes"]:
            print(f"note: {note}")
    if not a.checkpoint:
        print("(torch not timed: pass --checkpoint model.pt to compare)")


def cmd_tradeoff(a: argparse.Namespace) -> None:
    if a.plot:
        check_output(a.plot, a.model, *spec_paths(a.data), what="plot")
    session = _open(a)
    tmax = a.tmax or session.protocol.default_T
    if not 1 <= a.tmin <= tmax:  # as calibrate-exit says it (the rule's own message named --tmax, not given)
        raise PolicyError(f"--tmin must be in [1, tmax={tmax}], got {a.tmin}")
    ds = cliargs.model_data(a, session.protocol)
    notes: list[str] = []
    with noting(notes, UnseenEventsWarning, NonFiniteReadoutWarning):
        rows = tradeoff(session, ds, a.thresholds, a.tmin, a.tmax, a.batch_size, a.binning, a.fixed_curve, a.rules)
    fixed = next(r for r in rows if r["policy"] == f"fixed:{tmax}")
    K = session.protocol.num_classes
    for rule in a.rules if a.tmin < tmax else ():  # tmin = tmax: no rule may end a run early
        if all(r["mean_steps"] == fixed["mean_steps"] for r in rows if r["policy"].startswith(f"{rule}:")):
            uniform = f" (over {K} classes a uniform top probability is {1 / K:.2f})" if rule == "confidence" else ""
            notes.append(
                f"no {rule} threshold of {sorted(a.thresholds)} ended a run before step {tmax}: the model's "
                f"readouts do not pass them on this data{uniform}; pass other --thresholds, or let "
                "calibrate-exit choose one"
            )
    # the sweep's runs: the rules from --tmin (the fixed curve from 1) to tmax
    horizons = range(1, tmax + 1) if a.fixed_curve else [tmax]
    note = t_range_note(session.protocol, 1 if a.fixed_curve else a.tmin, tmax, horizons)
    warnings = print_warnings([session.protocol.unfinished_note(a.model), note, *notes])
    if a.plot:
        plot_tradeoff(rows, a.plot, f"{session.protocol.model} on {ds.spec}")
    if a.json:
        emit_json({"model": a.model, "data": ds.spec, "n": len(ds), "rows": rows, "plot": a.plot, "warnings": warnings})
        return
    print(f"{a.model} on {ds.spec} ({len(ds)} samples); saved and points are against {fixed['policy']}")
    print(
        table(
            [
                "policy",
                "accuracy %",
                "vs fixed Tmax (points)",
                "mean steps",
                "steps saved %",
                "p90 steps",
                "energy µJ/sample*",
                "ms/sample",
            ],
            [
                [
                    r["policy"],
                    pct(r["accuracy"]),
                    f"{100 * (r['accuracy'] - fixed['accuracy']):+.1f}",
                    f"{r['mean_steps']:.2f}",
                    f"{100 * (1 - r['mean_steps'] / fixed['mean_steps']):.0f}",
                    f"{r['p90_steps']:.1f}",
                    f"{r['energy_uj']:.3g}",
                    f"{r['ms_per_sample']:.2f}",
                ]
                for r in rows
            ],
        )
    )
    print(
        f"* {energy_note()}; thresholds here are swept on the test split: a report, not a choice "
        "(choose one on validation data with calibrate-exit)"
    )
    if a.plot:
        print(f"wrote {a.plot}")


def cmd_calibrate_exit(a: argparse.Namespace) -> None:
    import dataclasses
    import json

    import onnx

    from .exit_calibration import CASCADE, CHOICES, choose, horizon_readouts, no_saving_note
    from .fileio import write_atomic
    from .integrity import stamp_onnx
    from .protocol import METADATA_KEY, rewritten, store_protocol

    check_output(a.out, a.model, kind=(".onnx", "an ONNX file"))
    bad = [r for r in a.rules or () if r not in CHOICES]
    if bad:
        raise PolicyError(f"exit rule(s) {bad} unknown; expected some of {list(CHOICES)}")
    event = a.mode == "event"
    if event and CASCADE in (a.rules or ()):
        raise PolicyError(f"--rules cascade with --mode event: {CASCADE_NOT_EVENT_DRIVEN}")
    unread = clock_only_flags(a)
    if event and unread:
        raise InputError(
            f"{unread[0]}: --mode event runs the event engine per event, which does not read it; leave it out"
        )
    runner: Session | EventEngine
    if event:  # the policy chosen on event-driven runs, where it will be asked (runtime.event.exit)
        from .event.engine import load_event, use_threads

        use_threads(a.threads if a.threads is not None else 0)
        runner = load_event(a.model)
    else:
        runner = _open(a)
    p = runner.protocol
    check_output(a.out, *spec_paths(a.data or p.data))  # the data it runs: --data, else the model's
    if a.binning not in (None, p.binning):
        # the file's default runs bin as trained: a policy chosen on other bins would not give
        # the figures stored beside it (runtime run of such a file gave 93.6% for a stored 71.4%)
        raise PolicyError(
            f"--binning {a.binning}: the policy is stored as the file's default, and its runs bin as it was "
            f"trained ({p.binning or 'none: static input'}); choose it with those bins (leave --binning out)"
        )
    if p.stages and CASCADE in (a.rules or ()):
        raise PolicyError("--rules cascade: a multi-rate file runs its configuration only, not at other T")
    rules = a.rules or [r for r in CHOICES if r != CASCADE or not (p.stages or event)]
    tmax = a.tmax or p.default_T
    if not 1 <= a.tmin <= tmax:
        raise PolicyError(f"--tmin must be in [1, tmax={tmax}], got {a.tmin}")
    needs = "the event engine" if event else None
    val, test = cliargs.model_data(a, p, "val", needs), cliargs.model_data(a, p, "test", needs)
    # horizons (fixed T, and the tmax of the rules): the trained range up to the reference tmax
    lo = max(a.tmin, min(p.T_range[0], tmax))
    if event and p.binning == "equal":
        # event-driven, every horizon's bins split the whole recording: a shorter one asks the
        # rules less often over the same span and stops no sooner (fixed:1 runs what fixed:tmax
        # runs), so its steps are not a cost; one horizon, tmax
        lo = tmax
    # a model trained on fixed bins that miss events: said once per split, for its longest run
    # (each horizon above the trained T sees more; the last note is the longest that missed any)
    val_unseen: list[str] = []
    with noting(val_unseen, UnseenEventsWarning):
        by_horizon = horizon_readouts(runner, val, range(lo, tmax + 1), a.batch_size, a.binning)
    c = choose(by_horizon, val.labels, a.budget, a.tmin, rules, a.criterion)
    policy = c["best"]["policy"]

    def test_run(asked: str) -> dict:
        if isinstance(runner, Session):
            return summarize(run_dataset(runner, test, asked, a.batch_size, a.binning), test.labels)
        from .event.evaluate import run_event_dataset

        return summarize(run_event_dataset(runner, test, a.batch_size, policy=asked), test.labels)

    test_unseen: list[str] = []
    with noting(test_unseen, UnseenEventsWarning):
        fixed = test_run(f"fixed:{tmax}")
    with noting([], UnseenEventsWarning):  # a run no longer than fixed tmax: said by it
        chosen = test_run(policy)
    unseen = [f"{name} split: {n}" for name, ns in (("validation", val_unseen), ("test", test_unseen)) for n in ns[-1:]]
    trained_on_val = p.train_split != "train-minus-val"
    warnings = print_warnings(
        [
            p.unfinished_note(a.model),
            spike_rule_note(p) if event else None,
            t_range_warning(p, parse_policy(policy)),
            "the model was trained on the validation recordings too (or does not say): its "
            "confidence there is optimistic; train with `fit --train-split train-minus-val`"
            if trained_on_val
            else None,
            None if c["saving"] else no_saving_note(len(val), a.budget, tmax, a.criterion),
            *unseen,
        ]
    )
    result = {
        "policy": policy,
        # event: on event-driven runs (its thresholds on their readouts, where a leaky model's differ)
        "chosen_on": f"{val.spec} split val ({len(val)} samples)" + (", event-driven" if event else ""),
        "budget_points": a.budget,
        "criterion": a.criterion,
        "rules": rules,
        "horizons": [lo, tmax],
        "saving": c["saving"],
        "validation": {
            "fixed_accuracy": c["fixed_accuracy"],
            "accuracy": c["best"]["accuracy"],
            "mean_steps": c["best"]["mean_steps"],
            "losses": c["best"]["losses"],
            "disagreement": c["best"]["disagreement"],
            "per_rule": c["per_rule"],
        },
        "test": {
            "n": len(test),
            "fixed_accuracy": fixed["accuracy"],
            "accuracy": chosen["accuracy"],
            "mean_steps": chosen["mean_steps"],
            "fixed_T": tmax,
            # what steps do not show: a cascade saves steps, not synaptic operations
            "acs": chosen["acs"],
            "fixed_acs": fixed["acs"],
        },
    }
    # mode: the runs it was chosen on (Protocol.stored_policy_note: a run of the other kind says so)
    record = {
        "mode": a.mode,
        **{k: result[k] for k in ("chosen_on", "budget_points", "criterion", "validation", "test")},
    }
    chosen_p = dataclasses.replace(p, exit_policy=policy, exit_record=record)
    model = onnx.load(a.model)
    old = json.loads(next(q.value for q in model.metadata_props if q.key == METADATA_KEY))
    store_protocol(model, rewritten(old, chosen_p))  # the protocol's unknown keys and the user's own kept
    write_atomic(a.out, lambda tmp: onnx.save(stamp_onnx(model), str(tmp)))
    if a.json:
        emit_json({"model": a.model, "out": a.out, **result, "warnings": warnings})
        return
    v, t = result["validation"], result["test"]
    counted = "lost against" if a.criterion == "losses" else "differing from"
    print(
        f"{a.model}: exit policy chosen on {result['chosen_on']} among {', '.join(rules)} "
        + (f"with T in [{lo}, {tmax}]" if lo < tmax else f"at horizon T={tmax} (the rules asked from their tmin)")
        + f", budget: at most {a.budget}% of them {counted} fixed:{tmax} ({a.criterion})"
    )
    print(
        table(
            ["rule", "best policy", "val accuracy %", "val mean steps", "lost vs fixed %", "differs from fixed %"],
            [
                [
                    r,
                    *(
                        ["-"] * 5
                        if b is None
                        else [
                            b["policy"],
                            pct(b["accuracy"]),
                            f"{b['mean_steps']:.2f}",
                            pct(b["losses"]),
                            pct(b["disagreement"]),
                        ]
                    ),
                ]
                for r, b in c["per_rule"].items()
            ],
        )
    )
    print(
        f"chosen: {policy} (val: {100 * v['accuracy']:.2f}% vs fixed {100 * v['fixed_accuracy']:.2f}%, "
        f"{v['mean_steps']:.2f} mean steps, lost {100 * v['losses']:.1f}% / differs on {100 * v['disagreement']:.1f}% "
        "against fixed)"
    )
    print(
        f"test ({t['n']} samples, reported only): {100 * t['accuracy']:.2f}% at {t['mean_steps']:.2f} mean steps "
        f"vs fixed:{tmax} {100 * t['fixed_accuracy']:.2f}% ({100 * (t['accuracy'] - t['fixed_accuracy']):+.2f} points, "
        f"{100 * t['mean_steps'] / tmax:.1f}% of the steps; synaptic operations {t['acs']:.3g} vs {t['fixed_acs']:.3g} "
        "per sample)"
    )
    print(f"wrote {a.out} (its default policy is now {policy})")


def parser() -> argparse.ArgumentParser:
    parser = cliargs.Parser(prog="python -m runtime", description=__doc__).add_version()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="accuracy, steps, operations, energy and latency on a data set")
    _common(p, threads_help=EVENT_THREADS)
    _data(p)
    p.add_argument(
        "--policy",
        default=None,
        help=f"exit policy, one of {', '.join(POLICY_FORMS)} (default: the policy calibrate-exit stored in the "
        "model, else fixed at its default T: the trained T, the T its BatchNorm statistics were calibrated at, or a "
        "multi-rate file's last stage's); --mode event: asked at the end of each of the policy's horizon's bins, no "
        "cascade (default there: the stored policy, else whole streams)",
    )
    p.add_argument(
        "--mode",
        choices=["clock", "event"],
        default="clock",
        help="clock-driven steps (default) or event-driven per input event (--json adds sd)",
    )
    p.add_argument(
        "--time-base",
        choices=TIME_BASES,
        default=None,
        help="--mode event: each recording in real µs (default: as an event-driven chip gets it) or stretched "
        "onto the span it had in training (a model trained on each recording's own span; docs/event_driven.md)",
    )
    p = sub.add_parser(
        "bench", help="per-step time, interleaved with torch (eager, plain, compiled) given --checkpoint"
    )
    _common(p, ", and as many torch and BLAS (GEMM limit) threads")
    cliargs.add_batch_size(p, [1, 64], "batch sizes to time")
    cliargs.add_timed_steps(p)
    cliargs.add_repeats(p, "interleaved rounds per batch size (min and median)")
    p.add_argument("--checkpoint", default=None, help="the model.pt the ONNX file was exported from")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (it takes a minute to compile)")
    p = sub.add_parser(
        "tradeoff",
        help="sweep exit-rule thresholds on the test split: accuracy vs steps and "
        "energy (a report; choose a threshold with calibrate-exit)",
    )
    _common(p)
    _data(p)
    p.add_argument(
        "--thresholds",
        type=cliargs.unit_float,
        nargs="+",
        default=[0.5, 0.7, 0.8, 0.9, 0.95, 0.99],
        help="thresholds to sweep, for each rule (entropy exits below its threshold, the others above)",
    )
    p.add_argument(
        "--rules",
        nargs="+",
        choices=list(RULES),
        default=["confidence"],
        help="the per-step exit rules to sweep (default: confidence)",
    )
    _horizon(p, "the longest run")
    p.add_argument("--fixed-curve", action="store_true", help="also run fixed T = 1 .. tmax")
    cliargs.add_plot(p, "the curves")
    p = sub.add_parser(
        "calibrate-exit",
        help="choose an exit policy on the validation split for an accuracy "
        "budget, store it in a copy of the model as its default, report it on the test split",
    )
    _common(p, threads_help=EVENT_THREADS)
    _data(p, "the validation split (where the policy is chosen) and of the test split, each")
    cliargs.add_out(p, "the model with the chosen policy in its metadata (.onnx)", required=True)
    p.add_argument(
        "--budget",
        type=cliargs.float_range(0.0, 100.0, what="a percentage of the validation samples"),
        default=0.5,
        help="percent of validation samples that may count against fixed tmax (see --criterion; so at "
        "most that many accuracy points lost there; default 0.5)",
    )
    p.add_argument(
        "--criterion",
        choices=["disagreement", "losses"],
        default="disagreement",
        help="what counts against the budget: any prediction other than fixed tmax's (disagreement, "
        "default) or only those where fixed tmax is right (losses: less strict, and with a small "
        "validation split it overfits, see docs/runtime.md)",
    )
    p.add_argument(
        "--rules",
        nargs="+",
        default=None,
        help="candidates to consider: fixed T, the per-step exit rules, and cascades (cascade: runs again "
        "at a larger T, re-binned; saves steps, not latency on a live stream) (default: fixed confidence "
        "margin entropy cascade; no cascade on a multi-rate file)",
    )
    _horizon(p, "the reference fixed T and the longest horizon considered")
    p.add_argument(
        "--mode",
        choices=["clock", "event"],
        default="clock",
        help="the runs the policy is chosen on: clock-driven steps (default) or event-driven (runtime run --mode "
        "event asks it at the end of each bin; no cascade; --threads: numba threads, one stream each)",
    )
    from .event.cli import add_event_bench
    from .stream_cli import add_stream

    add_event_bench(sub)
    add_stream(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    from .event.cli import cmd_event_bench
    from .stream_cli import cmd_stream

    a = cliargs.parse(parser, argv)
    commands = {
        "run": cmd_run,
        "bench": cmd_bench,
        "tradeoff": cmd_tradeoff,
        "event-bench": cmd_event_bench,
        "stream": cmd_stream,
        "calibrate-exit": cmd_calibrate_exit,
    }
    # the commands report a run outside the trained T range, and an unfinished run's file, themselves
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainedRangeWarning)
        warnings.simplefilter("ignore", UnfinishedModelWarning)
        guarded(USER_ERRORS, lambda: commands[a.cmd](a))
