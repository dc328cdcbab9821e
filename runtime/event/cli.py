"""``python -m runtime run --mode event`` and ``python -m runtime event-bench``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .. import cliargs
from ..errors import InputError, NonFiniteReadoutWarning, UnseenEventsWarning
from ..policies import CASCADE_NOT_EVENT_DRIVEN, Cascade, PolicyError, horizon_of, parse_policy, t_range_warning
from ..report import counted, emit_json, noting, pct, print_run, print_warnings, sci, table, versions_text
from ..session import load

if TYPE_CHECKING:
    from ..protocol import Protocol

# .bench, .engine and .evaluate import numba: only inside the commands that run it (the
# parser of every `python -m runtime` command imports this module)


def clock_only_flags(a: argparse.Namespace) -> list[str]:
    """The given flags that set up a clock-driven run, which the event engine does not read
    (--threads is the event engine's too: one stream per thread)."""
    flags = ["--backend"] if cliargs.given(a, "backend") else []
    return flags + (["--binning"] if a.binning is not None else [])


def spike_rule_note(p: Protocol) -> str | None:
    """Where single-spike neurons run event-driven: the clock run fires at most one spike
    per step (``spike = "single"``), which caps a neuron's rate at one per bin, while the
    engine fires at every threshold crossing (docs/event_driven.md, Spike rule: single-spike
    models agreed less with their clock runs on both data sets measured, and lost 12-26
    points event-driven on the digits default, up to 17.5 on N-MNIST); None when every
    spiking layer fires multi-spike."""
    single = sorted({n.spec.kind for n in p.neurons if n.spec.spiking and n.spec.spike == "single"})
    if not single:
        return None
    return (
        f"this model's {'/'.join(single)} neurons fire at most one spike per step (single-spike): event-driven "
        "they fire at each threshold crossing, a rate the clock-trained model never saw, and accuracy can fall well "
        "below the clock-driven run's (by 12-26 points on the digits default, up to 17.5 on N-MNIST); train with "
        "--spike multi for event-driven use (docs/event_driven.md, Spike rule)"
    )


def cmd_run_event(a: argparse.Namespace) -> None:
    """Accuracy of the event-driven run (whole streams, or up to where ``--policy``, else
    the model's stored policy unless a cascade, stops each: runtime.event.exit); ``--json``
    adds the spike difference ``sd`` against the clock-driven run at the model's T (under
    the same policy)."""
    policy = parse_policy(a.policy) if a.policy is not None else None  # bad policy: fail before loading
    if isinstance(policy, Cascade):
        raise PolicyError(f"--policy {a.policy}: {CASCADE_NOT_EVENT_DRIVEN}")
    # here only the clock run --json compares against reads them
    clock_flags = clock_only_flags(a)
    if clock_flags and not a.json:
        raise InputError(
            "--mode event makes a clock-driven run only for --json (its spike difference sd), and only that "
            f"run reads {' and '.join(clock_flags)}; add --json or leave them out"
        )
    from ..evaluate import summarize
    from .engine import load_event, use_threads
    from .evaluate import (
        WHOLE_STREAMS,
        compare_clock,
        exit_bins_text,
        run_event_dataset,
        time_base_note,
    )

    threads = use_threads(a.threads if a.threads is not None else 0)
    engine = load_event(a.model)
    p = engine.protocol
    policy_text, stored_note = a.policy, None
    if policy is None:  # the file's default, as the clock-driven run takes it; else whole streams
        policy, policy_text, stored_note = p.run_default("event", "an event-driven run", None, "whole streams run")
    ds = cliargs.model_data(a, p, needs="the event engine")
    time_base = a.time_base or "real"
    r = run_event_dataset(engine, ds, a.batch_size, sys.stderr.isatty(), time_base, policy or WHOLE_STREAMS)
    s = summarize(r, ds.labels)
    ranged = t_range_warning(p, policy) if policy is not None else None
    notes = [p.unfinished_note(a.model), stored_note, ranged, time_base_note(p, time_base), spike_rule_note(p)]
    warnings = print_warnings(notes)
    s.update(mode="event", time_base=time_base, data=ds.spec, model=a.model, threads=threads, warnings=warnings)
    s.update(policy=policy_text)  # None: whole streams
    if a.json:
        clock_notes: list[str] = []  # the compare run's, e.g. readouts that overflowed
        with noting(clock_notes, NonFiniteReadoutWarning, UnseenEventsWarning):
            s.update(compare_clock(load(a.model, a.threads, a.backend), ds, r, a.batch_size, a.binning, policy))
        s["warnings"] = [
            *warnings,
            *print_warnings([f"the clock-driven run --json compares with: {n}" for n in clock_notes]),
        ]
        emit_json(s)
        return
    steps = {"mean steps": f"{s['mean_steps']:.2f}"} if policy is not None else {}
    figures = {
        "accuracy %": pct(s["accuracy"]),
        **steps,
        "events/sample": f"{s['events_per_sample']:.0f}",
        "synops (ACs)/sample": sci(s["synops_per_sample"]),
        "energy µJ/sample*": f"{s['energy_uj']:.3g}",
        "ms/sample": f"{s['ms_per_sample']:.2f}",
    }
    how = "whole streams"
    if policy is not None:
        bins = exit_bins_text(p, ds, horizon_of(policy, p.default_T), time_base)
        how = f"up to the exit of {policy_text} (asked at the end of {bins})"
    print_run(
        f"{a.model} on {ds.spec} ({s['n']} samples), event-driven, {how}, {threads} thread(s)",
        figures,
        [
            "ms/sample: this run's, first-call costs included (a first run on a fresh install also compiles the "
            "numba kernels, tens of seconds); warm timings: runtime event-bench",
            "(--json adds the spike difference sd against the clock-driven run)",
        ],
    )


def add_event_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("event-bench", help="event-driven speed vs clock-driven and a plain-Python loop")
    p.add_argument("model", help="exported model (.onnx)")
    cliargs.add_data(p)
    cliargs.add_limit(p, 32, "the test split: the streams timed")
    p.add_argument(
        "--reference-limit", type=cliargs.positive_int, default=1, help="streams run by the plain-Python loop"
    )
    cliargs.add_steps(p, "clock-driven steps (default: the trained T)")
    cliargs.add_repeats(p, "interleaved rounds (min and median)")
    cliargs.add_threads(
        p,
        0,
        "threads of the two all-streams rows: the event engine's (numba, one stream each, as runtime run --mode "
        "event) and the clock batch's (onnxruntime); 0: all cores, the default; the other rows run on one",
    )
    cliargs.add_json(p)


def cmd_event_bench(a: argparse.Namespace) -> None:
    from .bench import event_bench
    from .engine import load_event, use_threads

    engine = load_event(a.model)
    use_threads(a.threads)
    ds = cliargs.model_data(a, engine.protocol, needs="the event engine")
    r = event_bench(engine, load(a.model, 1), ds, a.T, a.reference_limit, a.repeats, sys.stderr.isatty())
    r.update(model=a.model, data=ds.spec)
    if a.json:
        emit_json(r)
        return
    print(
        f"{a.model} on {ds.spec}: {r['n']} streams, {r['events_per_sample']:.0f} events and "
        f"{r['synops_per_sample']:.4g} synaptic ops per stream; clock-driven T = {r['T']} "
        f"({r['dense_macs_per_sample']:.4g} dense MACs per stream)"
    )
    print(
        table(
            [
                "runtime",
                "events/s",
                "M synops/CPU s",
                "(median)",
                "CPU ms/stream",
                "(median)",
                "wall ms/stream",
                "(median)",
            ],
            [
                [
                    row["runtime"],
                    row["events_per_s"],
                    row.get("msynops_per_cpu_s", ""),
                    row.get("msynops_per_cpu_s_median", ""),
                    row["cpu_ms_per_stream"],
                    row["cpu_ms_per_stream_median"],
                    row["wall_ms_per_stream_min"],
                    row["ms_per_stream"],
                ]
                for row in r["rows"]
            ],
        )
    )
    (l1, l2) = (f"{x[0]:.2f}" for x in r["load_average"])
    print(
        f"min and median of {r['repeats']} interleaved rounds (the plain-Python loop: one run); events/s at "
        f"the wall minimum; all-streams rows on {counted(r['numba_threads'], 'thread')}; load average {l1} before, "
        f"{l2} after"
    )
    print(f"versions: {versions_text(r['versions'])}")
    f = r["fixed_cost"]
    print(
        f"fixed cost of a one-event stream: run {f['run_us_min']:.0f} µs min / {f['run_us_median']:.0f} "
        f"median; run_batch {f['batch_us_min']:.0f} / {f['batch_us_median']:.0f} µs per stream (64 streams)"
    )
    c = r["crossover"]
    print(
        f"activity of this data: synaptic ops = {100 * c['activity']:.2f}% of the dense MACs over T steps; "
        f"event-driven (1 core) is faster than clock-driven (batch 1, 1 thread) below "
        f"{100 * c['activity_at_crossover']:.2f}%"
    )
    for note in r["notes"]:
        print(f"note: {note}")
