"""``python -m runtime stream model.onnx --source FILE|-``: predictions window by window
over an event-camera recording or a live stream on stdin (see :mod:`runtime.stream`)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from . import cliargs
from .data.eventfile import CHUNK_BYTES, FORMATS, open_events, parse_sensor
from .data.transforms import Pipeline, Transform, from_dicts, parse_transform
from .errors import InputError
from .event.cli import spike_rule_note  # numba-free
from .policies import STEP_POLICY_FORMS, Cascade, FixedT, PolicyError, parse_policy, t_range_warning
from .protocol import DENSE_KINDS, Protocol
from .report import json_text, table
from .session import load
from .stream import CASCADE_NOT_STREAMED, TICK_MS, Stats, Window, fit_check, run_clock, run_event, slices

# the flags that one way of running reads, with what reads them: given to a run that does
# not, they are refused (not ignored); flag -> (what reads it, its parse function, help)
CONDITIONAL_FLAGS: dict[str, tuple[str, Callable[[str], object], str]] = {
    "--dt-us": ("--mode clock", cliargs.positive_float, "bin duration, µs (default: the model's dt)"),
    "--window-us": ("--mode event", cliargs.positive_float, "window, µs (default: trained T x dt)"),
    # at most a million times slower: 1e-300 overflowed the clock's time_t (a traceback)
    "--speed": (
        "--realtime",
        cliargs.float_range(1e-6, 1e6, what="playback speed factor"),
        "playback speed factor (default 1)",
    ),
    "--tick-ms": (
        "--realtime",
        cliargs.positive_float,
        f"events are released every TICK ms of wall time (default {TICK_MS:g})",
    ),
}


def _us(t: float) -> str:
    """A window bound in µs: whole where it is, else to the ns (a bound truncated to whole µs
    named a span whose event count was not the printed one)."""
    return f"{t:.3f}".rstrip("0").rstrip(".")


WINDOW_HEADERS = ["window", "t start µs", "t end µs", "events", "steps", "class", "score", "latency ms"]


def add_stream(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stream", help="predictions per window over an event-camera file or stdin, as events arrive")
    p.add_argument("model", help="exported model (.onnx)")
    p.add_argument(
        "--source",
        required=True,
        help="event file (Prophesee .raw EVT 2.0/3.0, .dat, AEDAT4) or - "
        "for a RAW/DAT stream on stdin (with its header)",
    )
    p.add_argument(
        "--event-format",
        default=None,
        help=f"the --source file's: one of {', '.join(FORMATS)} (default: from the header)",
    )
    p.add_argument("--sensor", default=None, help="WIDTHxHEIGHT, when the header states none")
    p.add_argument(
        "--mode",
        choices=["clock", "event"],
        default="clock",
        help="clock: bins of dt and the exit policy; event: per event, a decision per window (or per bin of it "
        "under a policy)",
    )
    p.add_argument(
        "--policy",
        default=None,
        # a cascade runs whole recordings again: a stream has none (refused when given)
        help=f"{', '.join(STEP_POLICY_FORMS)}, asked after each bin (default: the model's stored policy, as runtime "
        "run uses it, else clock: fixed at the model's default T, event: one decision per window; a stored cascade "
        "is not run; multi-rate files are refused)",
    )
    for flag, (needs, parse, what) in CONDITIONAL_FLAGS.items():
        p.add_argument(flag, type=parse, default=None, help=f"{needs}: {what}")
    cliargs.add_transforms(p, "extra transform before the model's own")
    p.add_argument(
        "--fit-sensor", action="store_true", help="then sum-pool to the model's sensor size if it still differs"
    )
    p.add_argument(
        "--realtime",
        action="store_true",
        help="pace the recording by its timestamps; report whether the runtime keeps up",
    )
    p.add_argument("--chunk-bytes", type=int, default=CHUNK_BYTES, help=f"read size (default {CHUNK_BYTES})")
    cliargs.add_ort_threads(p, " (--mode clock)")
    p.add_argument("--quiet", action="store_true", help="only the summary")
    p.add_argument("--json", action="store_true", help="one JSON object per window (a line each), then the summary")


def _pipeline(a: argparse.Namespace, shape: tuple[int, int, int], proto: Protocol, model: list[Transform]) -> Pipeline:
    """The user's ``--transform``s, then the model's own (``model``, parsed from ``proto``);
    with ``--fit-sensor`` the stream is sum-pooled to the training recordings' sensor before
    the model's transforms (which act on that sensor's pixels), or to the model's input
    after them when that sensor is not known (files written before it was kept)."""
    user = [parse_transform(t) for t in a.transform]
    have = Pipeline(user, shape).shape  # what reaches the model's own transforms
    if a.fit_sensor and proto.sensor is not None and model:
        user += _fit_to(have, proto.sensor, "the training sensor's", user)
    elif proto.sensor is not None and model and tuple(have) != tuple(proto.sensor):
        # the model's transforms would act on another sensor's pixels: a crop:2,2,30,30 made for
        # 34x34 kept a 30x30 corner of a 1280x720 camera (55 of 219,596 events), without a word
        # wherever the shape they left happened to be the model's input
        _, H, W = proto.sensor
        raise InputError(
            f"the model's own transforms {[t.text for t in model]} were made for its {W}x{H} training sensor, but the "
            f"stream is {have[2]}x{have[1]}" + (" after your transforms" if user else "") + "; add --fit-sensor (sum "
            f"pooling to {W}x{H} first) or --transform crop/downsample to {W}x{H}"
        )
    pipe = Pipeline(user + model, shape)
    if a.fit_sensor and tuple(pipe.shape) != tuple(proto.input_shape):
        pipe = Pipeline(user + model + _fit_to(pipe.shape, proto.input_shape, "the model's", user + model), shape)
    return pipe


def _fit_to(have: tuple[int, ...], want: tuple[int, ...], what: str, transforms: list[Transform]) -> list[Transform]:
    """The sum pooling that maps a stream of shape ``have`` (C, H, W) to ``want``'s H x W (none
    where they agree); an error where the channels differ or it would upsample."""
    if have[0] != want[0]:
        hint = "; add --transform merge-polarity" if want[0] == 1 else ""
        raise InputError(f"the stream has {have[0]} polarity channels after the transforms, {what} {want[0]}{hint}")
    if tuple(have[1:]) == tuple(want[1:]):
        return []
    fit = Transform("downsample", (want[2], want[1]))
    if want[2] > have[2] or want[1] > have[1]:  # named a transform the user never wrote
        where = "after the transforms it is" if transforms else "the sensor is"
        fix = "drop or change the transform that shrinks it" if transforms else "this model needs a larger sensor"
        raise InputError(
            f"--fit-sensor pools the stream to {what} {want[2]}x{want[1]}, but {where} "
            f"{have[2]}x{have[1]}, smaller (pooling never upsamples): {fix}"
        )
    return [fit]


def _refuse_unread_flags(a: argparse.Namespace) -> None:
    """A flag that this run's mode (or the lack of --realtime) does not read is an error."""
    runs = {f"--mode {a.mode}"} | ({"--realtime"} if a.realtime else set())
    needs = {**{flag: needs for flag, (needs, _, _) in CONDITIONAL_FLAGS.items()}, "--threads": "--mode clock"}
    unread = [
        flag for flag, need in needs.items() if getattr(a, flag[2:].replace("-", "_")) is not None and need not in runs
    ]
    if unread:
        need = needs[unread[0]]
        if need == "--realtime":  # the mode is not what is missing
            raise InputError(f"only --realtime reads {unread[0]}; add --realtime or leave {unread[0]} out")
        # `run --mode event --threads` runs several recordings at once; a stream is one
        why = " (the event engine runs one stream on one thread)" if unread[0] == "--threads" else ""
        raise InputError(f"only {need} reads {unread[0]}{why}; this run is " + " with ".join(sorted(runs)))


def cmd_stream(a: argparse.Namespace) -> None:
    _refuse_unread_flags(a)
    speed = 1.0 if a.speed is None else a.speed
    tick_ms = TICK_MS if a.tick_ms is None else a.tick_ms
    policy = parse_policy(a.policy) if a.policy else None
    if isinstance(policy, Cascade):  # before any output (the table's header)
        raise PolicyError(f"--policy {a.policy}: {CASCADE_NOT_STREAMED}")
    if a.mode == "event":
        from .event.engine import load_event

        engine = load_event(a.model)
        proto = engine.protocol
    else:
        session = load(a.model, a.threads)
        proto = session.protocol
    if proto.input_kind in DENSE_KINDS:
        raise InputError(
            f"{a.model} takes {proto.input_kind!r} inputs (static images or recorded sequences); "
            "stream needs a model trained on events"
        )
    notes: list[str | None] = []
    policy_text = a.policy
    if policy is None:  # the stored default, as runtime run uses it; else fixed T, or a decision per window
        fallback = FixedT(proto.default_T) if a.mode == "clock" else None
        policy, policy_text, note = proto.run_default(a.mode, "a stream", fallback, "one decision per window runs")
        notes.append(note)
    notes.append(proto.unfinished_note(a.model))
    # a run stopping outside the trained T range warns, as runtime run does
    if policy is not None:
        notes.append(t_range_warning(proto, policy))
    if a.mode == "event":
        notes.append(spike_rule_note(proto))
    for n in filter(None, notes):
        print(f"warning: {n}", file=sys.stderr)
    _warm_up(engine if a.mode == "event" else session, a.mode)
    sensor = parse_sensor(a.sensor) if a.sensor else None
    reader = open_events(a.source, a.event_format, sensor, a.chunk_bytes)
    try:
        model_transforms = from_dicts(proto.transforms)
        pipe = _pipeline(a, reader.shape, proto, model_transforms)
        fit_check(reader, pipe, proto.input_shape)
        spatial = [t.text for t in model_transforms if t.kind in ("crop", "downsample")]
        user_spatial = any(t.kind in ("crop", "downsample") for t in pipe.transforms[: len(a.transform)])
        if a.fit_sensor and spatial and proto.sensor is None and not user_spatial:
            # without the training sensor --fit-sensor maps only what the model's own transforms
            # leave, which then act on the camera's pixels: a model's crop:2,2,30,30 kept a 30x30
            # corner of a 1280x720 camera (57 events); a user's --transform maps the sensor itself
            notes.append(
                f"the model's own transforms {spatial} act on this {reader.shape[2]}x{reader.shape[1]} sensor's "
                "pixels (--fit-sensor maps only what they leave): this file does not record the sensor they were "
                "made for (models trained before it was kept); if that is not this one, give --transform "
                "downsample:WxH of that sensor instead"
            )
            print(f"warning: {notes[-1]}", file=sys.stderr)
        stats = Stats()
        emit = _printer(a, proto.classes)
        start = time.perf_counter()
        src = slices(reader, pipe, stats, a.realtime, speed, tick_ms)
        if a.mode == "event":
            run_event(engine, src, emit, stats, a.window_us, policy)
        else:
            run_clock(session, src, emit, stats, a.dt_us, policy)
        stats.wall_s = time.perf_counter() - start
    finally:
        reader.close()
    s = stats.summary(a.realtime, speed)
    if stats.raw_events and not stats.events:  # every event cut by the transforms: no window at all
        notes.append(f"no event of {stats.raw_events} is left after the transforms {[t.text for t in pipe.transforms]}")
        print(f"warning: {notes[-1]}", file=sys.stderr)
    s.update(
        model=a.model,
        source=reader.name,
        format=reader.format,
        sensor=list(reader.sensor),
        mode=a.mode,
        realtime=a.realtime,
        speed=speed if a.realtime else None,
        transforms=[t.text for t in pipe.transforms],
        warnings=[n for n in notes if n],
        policy=policy_text,  # the policy that ran (None in event mode without one: a decision per window)
    )
    if a.json:
        print(json_text({"summary": s}))
        return
    print(
        f"{reader.name} ({reader.format}, {reader.sensor[0]}x{reader.sensor[1]}) -> {a.model}, {a.mode}-driven"
        + (", paced in real time" if a.realtime else "")
        + (f"; policy {policy_text}" if policy_text else "; one decision per window")
        + f"; transforms {s['transforms']}"
    )
    print(
        table(
            [
                "events",
                "windows",
                "recording s",
                "events/s arriving",
                "events/s processed",
                "keeps up",
                "latency p50 ms",
                "p99 ms",
                *(["max lag ms"] if a.realtime else []),  # paced: how far it fell behind the clock
            ],
            [
                [
                    "-" if v is None else v  # nothing to rate ("None" was printed)
                    for v in (
                        s["events_read"],
                        s["windows"],
                        s["recording_s"],
                        s["events_per_s_arriving"],
                        s["events_per_s_processed"],
                        {True: "yes", False: "no"}.get(s["keeps_up"]),
                        s["latency_ms_p50"],
                        s["latency_ms_p99"],
                        *([s["max_lag_ms"]] if a.realtime else []),
                    )
                ]
            ],
        )
    )


def _warm_up(runner, mode: str) -> None:
    """Compile the kernels (numba) and the onnxruntime session before the clock starts."""
    import numpy as np

    from .data.events import make_events

    if mode == "event":
        runner.run(make_events([0], [0], [0], [0]))
    else:
        runner.step(np.zeros((1, *runner.protocol.input_shape), np.float32))
        runner.reset()


def _printer(a: argparse.Namespace, classes: tuple[str, ...]):
    if a.quiet:
        return lambda w: None
    if a.json:

        def emit_json(w: Window) -> None:
            print(json_text({**w.as_dict(), "class": classes[w.prediction]}), flush=True)

        return emit_json
    widths = [8, 12, 12, 8, 6, 8, 10, 11]
    print("  ".join(h.rjust(n) for h, n in zip(WINDOW_HEADERS, widths)), flush=True)

    def emit_row(w: Window) -> None:
        lat = "" if w.latency_ms is None else f"{w.latency_ms:.3f}"
        steps = "-" if w.steps is None else w.steps
        cells = [w.index, _us(w.t_start), _us(w.t_end), w.events, steps, classes[w.prediction], f"{w.score:.4g}", lat]
        print(
            "  ".join(str(c).rjust(n) for c, n in zip(cells, widths)) + ("  (partial)" if w.partial else ""),
            file=sys.stdout,
            flush=True,
        )

    return emit_row
