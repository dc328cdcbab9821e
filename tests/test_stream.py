"""``python -m runtime stream``: both shared recordings in both modes, chunked = whole,
stdin = file, flat memory over a 10x longer stream, real-time pacing, and bad input."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import onnx
import pytest

from runtime.cli import main
from runtime.data.eventfile import open_events, read_events, read_header
from runtime.data.events import make_events
from runtime.data.transforms import Pipeline, Transform
from runtime.event.cli import spike_rule_note
from runtime.event.engine import load_event
from runtime.protocol import readout_so_far
from runtime.session import load
from runtime.stream import Stats, run_clock, run_event, slices

from .conftest import run_cli, run_main
from .event_fixtures import chain_model, spec
from .runtime_fixtures import save, tiny_model
from .test_eventfile import eventcam  # noqa: F401 - fixture

SENSOR = (2, 24, 32)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "m.onnx"
    neuron = spec("LIF", spike="single", decay=0.8, dt=5_000.0)
    # written as the exporter writes (with its weight digest): no "note:" line on stderr
    return save(chain_model(neuron, sensor=SENSOR, channels=(4,), classes=4, T=6, duration_us=30_000.0), path)


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    return run_main(main, capsys, *argv)


def _windows(
    model, path, mode: str, chunk_bytes: int, shape: tuple[int, int, int], span: float | None = None, **pace
) -> list[dict]:
    out: list[dict] = []
    stats = Stats()
    pipe = Pipeline([Transform("downsample", (SENSOR[2], SENSOR[1]))], shape)
    with open_events(path, chunk_bytes=chunk_bytes) as r:
        src = slices(r, pipe, stats, **pace)
        if mode == "clock":
            run_clock(load(model, 1), src, lambda w: out.append(w.as_dict()), stats, dt_us=span)
        else:
            run_event(load_event(model), src, lambda w: out.append(w.as_dict()), stats, window_us=span)
    for w in out:
        w.pop("latency_ms")
    return out


@pytest.mark.parametrize(
    "name, shape, events", [("evt3_sample.raw", (2, 720, 1280), 219_596), ("evt2_sample.raw", (2, 480, 640), 539_481)]
)
@pytest.mark.parametrize("mode", ["clock", "event"])
def test_stream_both_recordings_both_modes(eventcam, model, capsys, name, shape, events, mode):  # noqa: F811
    code, out, err = _cli(
        capsys, "stream", str(model), "--source", str(eventcam / name), "--mode", mode, "--fit-sensor", "--json"
    )
    assert code == 0, err
    lines = [json.loads(x) for x in out.strip().splitlines()]
    s = lines[-1]["summary"]
    windows = lines[:-1]
    assert s["events_read"] == events and s["windows"] == len(windows) >= 1
    assert sum(w["events"] for w in windows) == events  # downsampling drops nothing
    assert s["transforms"] == [f"downsample:{SENSOR[2]}x{SENSOR[1]}"]
    assert s["events_per_s_processed"] > 0 and s["events_per_s_arriving"] > 0
    assert all(w["class"] in "0123" and w["latency_ms"] >= 0 for w in windows)
    # clock windows count their steps; event windows have none (null, not a misleading 0)
    assert all((w["steps"] is None) == (mode == "event") for w in windows)
    # windows tile the stream: contiguous, from its first event
    ev = read_events(eventcam / name)
    assert windows[0]["t_start"] == ev["t"][0]
    assert all(a["t_end"] == b["t_start"] for a, b in zip(windows, windows[1:]))
    # the same windows, chunked or whole
    whole = _windows(model, eventcam / name, mode, 1 << 26, shape)
    chunked = _windows(model, eventcam / name, mode, 4_099, shape)
    assert chunked == whole and [w["prediction"] for w in whole] == [w["prediction"] for w in windows]


def test_clock_windows_equal_session_run_on_binned_frames(eventcam, model):  # noqa: F811
    """A full clock-driven window is Session.run on that window's events binned in dt."""
    ev = read_events(eventcam / "evt2_sample.raw")
    wins = _windows(model, eventcam / "evt2_sample.raw", "clock", 65_536, (2, 480, 640))
    session = load(model, 1)
    p = session.protocol
    small = Pipeline([Transform("downsample", (SENSOR[2], SENSOR[1]))], (2, 480, 640)).apply(ev)
    w = wins[0]
    assert not w["partial"] and w["steps"] == p.T_trained
    part = small[(small["t"] >= w["t_start"]) & (small["t"] < w["t_end"])].copy()
    part["t"] -= int(w["t_start"])  # whole µs here: the first event and dt are
    r = session.run([part], binning="fixed", dt_us=p.dt_us)
    assert int(r.predictions[0]) == w["prediction"]
    assert float(r.outputs[0].max()) == pytest.approx(w["score"], rel=1e-6)


class Schedule:
    """Stops window w after ``stops[w]`` bins (asked from bin 1 on) and records every call."""

    def __init__(self, stops: list[int]):
        self.stops, self.calls, self.window = stops, [], 0

    def horizon(self, default_T: int) -> int:
        return 6

    def should_exit(self, t: int, logits: np.ndarray) -> np.ndarray:
        self.calls.append((self.window, t, logits.copy()))
        done = t >= self.stops[self.window]
        self.window += done
        return np.array([done])


def test_event_windows_close_where_the_policy_exits(eventcam, model):  # noqa: F811
    """--mode event refused --policy: a decision per window of T x dt. Under a policy it is
    asked after each bin of dt with the readout so far (on the clock's scale), and a window
    closes where it exits: at each call the engine's run of the window's events up to that
    bin's end, the window's prediction that run's at its last bin."""
    f, engine = eventcam / "evt2_sample.raw", load_event(model)
    p = engine.protocol
    small = Pipeline([Transform("downsample", (SENSOR[2], SENSOR[1]))], (2, 480, 640)).apply(read_events(f))
    policy, wins, stats = Schedule([2, 3, 1, 2, 6]), [], Stats()
    with open_events(f, chunk_bytes=65_536) as r:
        src = slices(r, Pipeline([Transform("downsample", (SENSOR[2], SENSOR[1]))], (2, 480, 640)), stats)
        run_event(engine, src, lambda w: wins.append(w.as_dict()), stats, policy=policy)
    # the recording's 50 ms (and its last event, at 50000 µs): windows of 2, 3, 1 and 2 bins
    # of 5 ms, then one cut by the stream's end in its third bin, asked there too
    assert [(w["steps"], w["partial"]) for w in wins] == [(2, False), (3, False), (1, False), (2, False), (3, True)]
    calls = [(0, 1), (0, 2), (1, 1), (1, 2), (1, 3), (2, 1), (3, 1), (3, 2), (4, 1), (4, 2), (4, 3)]
    assert [(w, t) for w, t, _ in policy.calls] == calls
    for w in wins[:4]:
        assert w["t_end"] == w["t_start"] + w["steps"] * p.dt_us
        for _, t, logits in (c for c in policy.calls if c[0] == w["index"]):
            end = w["t_start"] + t * p.dt_us
            run, _ = engine.run(small[(small["t"] >= w["t_start"]) & (small["t"] < end)], until=end)
            np.testing.assert_array_equal(logits[0], readout_so_far(run.outputs, run.outputs, t, p.readout))
        assert w["prediction"] == int(run.predictions) and w["events"] == int(run.events)
    assert sum(w["events"] for w in wins) == len(small)


@pytest.mark.parametrize("mode, flag, span", [("clock", "--dt-us", 333.3), ("event", "--window-us", 1234.5)])
def test_fractional_windows_print_the_bounds_their_events_fall_in(eventcam, model, capsys, mode, flag, span):  # noqa: F811
    """Bounds truncated to whole µs named spans whose event counts were not the printed ones."""
    f = eventcam / "evt3_sample.raw"
    argv = ["stream", str(model), "--source", str(f), "--mode", mode, "--fit-sensor", flag, str(span)]
    code, out, err = _cli(capsys, *argv, "--json")
    assert code == 0, err
    windows = [json.loads(x) for x in out.strip().splitlines()[:-1]]
    t = read_events(f)["t"]
    assert any(w["t_start"] != int(w["t_start"]) for w in windows)  # the case this is about
    for w in windows:  # the last one too, cut by the stream's end
        assert w["events"] == np.count_nonzero((t >= w["t_start"]) & (t < w["t_end"]))
    last = windows[-1]
    # a cut window ends where its run stopped: event mode said the whole window's end, past
    # the stream (11730656 where clock mode said 11727656 on this recording)
    assert last["partial"]
    if mode == "event":  # span: the window
        assert last["t_end"] == t[-1] + 1 < last["t_start"] + span
    else:  # span: a bin; the window ends with the bin its last event fell in
        assert t[-1] < last["t_end"] <= t[-1] + span
    code, table, err = _cli(capsys, *argv)
    assert code == 0, err
    row = next(line.split() for line in table.splitlines() if line.split()[:1] == [str(windows[1]["index"])])
    assert [float(row[1]), float(row[2]), int(row[3])] == pytest.approx(
        [windows[1]["t_start"], windows[1]["t_end"], windows[1]["events"]], abs=1e-3
    )


@pytest.mark.parametrize("chunk_bytes", [1 << 26, 4_099])
@pytest.mark.parametrize("mode, span", [("clock", None), ("clock", 700.0), ("event", 4_200.0)])
def test_paced_windows_equal_unpaced(eventcam, model, mode, span, chunk_bytes):  # noqa: F811
    """Pacing changes when windows are decided, not what they hold: a paced slice once said
    stream time had passed to the tick edge after its chunk's last event, so windows closed
    before the next chunk's events came (a window of 0 events where 46 thousand belong) and
    steps ran past the recording's end (15 windows, not 12)."""
    f = eventcam / "evt2_sample.raw"
    unpaced = _windows(model, f, mode, chunk_bytes, (2, 480, 640), span)
    paced = _windows(model, f, mode, chunk_bytes, (2, 480, 640), span, realtime=True, speed=20.0)
    assert len(unpaced) > 1 and paced == unpaced


def test_stdin_equals_file(eventcam, model):  # noqa: F811
    f = eventcam / "evt3_sample.raw"
    args = ["runtime", "stream", str(model), "--fit-sensor", "--json", "--chunk-bytes", "65536"]
    import subprocess
    import sys

    from .conftest import ROOT

    a = run_cli(*args, "--source", str(f))
    with open(f, "rb") as stdin:
        b = subprocess.run(
            [sys.executable, "-m", *args, "--source", "-"],
            stdin=stdin,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    pick = lambda out: [
        (w["t_start"], w["events"], w["prediction"]) for w in map(json.loads, out.strip().splitlines()[:-1])
    ]
    assert pick(a.stdout) == pick(b.stdout)


def _repeat_evt2(src, dst, times: int) -> int:
    """``src`` (EVT 2.0) played ``times`` times back to back: each copy's TIME_HIGH words shifted."""
    with open_events(src) as r:
        head = r.header.size
    data = src.read_bytes()
    w = np.frombuffer(data, "<u4", offset=head)
    ev = read_events(src)
    shift = (int(ev["t"][-1]) - int(ev["t"][0])) // 64 + 2  # in units of 64 µs
    is_th = (w >> 28) == 0x8
    with open(dst, "wb") as f:
        f.write(data[:head])
        for k in range(times):
            c = w.copy()
            c[is_th] += np.uint32(k * shift)
            f.write(c.tobytes())
    return len(ev) * times


def _peak_bytes(model, path, mode: str) -> tuple[int, int]:
    stats = Stats()
    pipe = Pipeline([Transform("downsample", (SENSOR[2], SENSOR[1]))], (2, 480, 640))
    runner = load(model, 1) if mode == "clock" else load_event(model)
    if mode == "clock":  # warm up outside the trace: onnxruntime buffers, numba compilation
        runner.step(np.zeros((1, *SENSOR), np.float32))
        runner.reset()
    else:
        runner.run(make_events([0], [0], [0], [0]))
    tracemalloc.start()
    with open_events(path, chunk_bytes=1 << 18) as r:
        src = slices(r, pipe, stats)
        if mode == "clock":
            run_clock(runner, src, lambda w: None, stats)
        else:
            run_event(runner, src, lambda w: None, stats)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, stats.raw_events


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["clock", "event"])
def test_memory_is_flat_over_a_10x_longer_stream(eventcam, model, tmp_path, mode):  # noqa: F811
    one, ten = tmp_path / "x1.raw", tmp_path / "x10.raw"
    n1, n10 = _repeat_evt2(eventcam / "evt2_sample.raw", one, 1), _repeat_evt2(eventcam / "evt2_sample.raw", ten, 10)
    ev10 = read_events(ten)
    assert len(ev10) == n10 and np.all(np.diff(ev10["t"]) >= 0)  # a valid, 10x longer recording
    del ev10
    p1, e1 = _peak_bytes(model, one, mode)
    p10, e10 = _peak_bytes(model, ten, mode)
    assert (e1, e10) == (n1, n10)
    whole_10x = n10 * np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")]).itemsize
    assert p10 < 1.25 * p1 + (1 << 20), (p1, p10)  # flat: not 10x
    assert p10 < whole_10x / 2  # below holding the decoded stream alone


def test_realtime_pacing_reports_keeping_up(eventcam, model, capsys):  # noqa: F811
    code, out, err = _cli(
        capsys,
        "stream",
        str(model),
        "--source",
        str(eventcam / "evt2_sample.raw"),
        "--fit-sensor",
        "--realtime",
        "--speed",
        "0.5",
        "--json",
        "--quiet",
    )
    assert code == 0, err
    s = json.loads(out)["summary"]
    assert s["realtime"] and s["wall_s"] >= 2 * 0.05 * 0.9  # 50 ms of recording at half speed
    assert s["keeps_up"] == (s["events_per_s_processed"] >= s["events_per_s_arriving"])
    assert "max_lag_ms" in s
    # the text summary too (docs: "paced runs also report the largest lag"; only --json had it)
    code, out, err = _cli(capsys, "stream", str(model), "--source", str(eventcam / "evt2_sample.raw"),
                          "--fit-sensor", "--realtime", "--speed", "2", "--quiet")  # fmt: skip
    assert code == 0 and "max lag ms" in out, out


def test_a_header_only_recording_prints_dashes_not_none(eventcam, model, tmp_path, capsys):  # noqa: F811
    """A recording with a header and no event printed "None" in the rate columns."""
    empty = tmp_path / "empty.raw"
    empty.write_bytes(b"% evt 2.0\n% geometry 640x480\n")
    code, out, err = _cli(capsys, "stream", str(model), "--source", str(empty), "--fit-sensor", "--quiet")
    assert code == 0, err
    assert "None" not in out, out


def test_bad_input_is_one_error_and_exit_2(eventcam, model, tmp_path, capsys):  # noqa: F811
    raw = eventcam / "evt2_sample.raw"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 not an event file")
    cut = tmp_path / "cut.raw"
    cut.write_bytes(raw.read_bytes()[:100_003])
    with open(raw, "rb") as f:  # the sample names only its plugin: a copy that states its size
        body = raw.read_bytes()[read_header(f, raw.name).size :]
    stated = tmp_path / "stated.raw"
    stated.write_bytes(b"% evt 2.0\n% geometry 640x480\n% end\n" + body)
    static = tmp_path / "static.onnx"
    onnx.save(tiny_model(), static)
    cases = [
        (["--source", str(junk)], "unknown event file format"),
        (["--source", str(cut), "--fit-sensor"], "truncated"),
        (["--source", str(raw)], "takes 2x24x32; add --fit-sensor"),
        (["--source", str(stated), "--sensor", "1280x720"], "declares a 640x480 sensor"),
        (["--source", str(tmp_path / "none.raw")], "does not exist"),
        (["--source", str(raw), "--transform", "crop:0,0,9999,10"], "reaches outside"),
        (  # event mode takes a per-step policy; a cascade reruns whole recordings
            ["--source", str(raw), "--fit-sensor", "--mode", "event", "--policy", "cascade:margin:0.3,T=2+6"],
            "--policy cascade:margin:0.3,T=2+6: a cascade runs whole recordings again at a larger T; a stream is "
            "binned as it arrives",
        ),
        # NaN / inf / 0 durations and paces: refused while parsing (NaN failed after the whole stream)
        (["--source", str(raw), "--fit-sensor", "--dt-us", "nan"], "--dt-us must be a finite number"),
        (["--source", str(raw), "--fit-sensor", "--dt-us", "0"], "--dt-us must be a number in (0.0"),
        (["--source", str(raw), "--fit-sensor", "--mode", "event", "--window-us", "inf"], "finite"),
        (["--source", str(raw), "--fit-sensor", "--realtime", "--speed", "nan"], "--speed must be a finite"),
        (["--source", str(raw), "--fit-sensor", "--realtime", "--tick-ms", "inf"], "--tick-ms must be a finite"),
        # a flag the run does not read is refused, not ignored
        (["--source", str(raw), "--fit-sensor", "--window-us", "5000"], "only --mode event reads --window-us"),
        (
            ["--source", str(raw), "--fit-sensor", "--mode", "event", "--dt-us", "100"],
            "only --mode clock reads --dt-us",
        ),
        (
            ["--source", str(raw), "--fit-sensor", "--speed", "2"],
            "only --realtime reads --speed; add --realtime or leave --speed out",
        ),
        (  # `run --mode event --threads` runs recordings side by side; a stream is one
            ["--source", str(raw), "--fit-sensor", "--mode", "event", "--threads", "2"],
            "only --mode clock reads --threads (the event engine runs one stream on one thread)",
        ),
    ]
    for extra, match in cases:
        code, out, err = _cli(capsys, "stream", str(model), *extra)
        assert code == 2 and err.startswith("error: ") and match in err and err.count("\n") == 1, (extra, err)
    # a cascade is refused before any output, in either mode (it printed the table's header first)
    for mode in ("clock", "event"):
        argv = ["--source", str(raw), "--fit-sensor", "--mode", mode, "--policy", "cascade:margin:0.3,T=2+6"]
        code, out, err = _cli(capsys, "stream", str(model), *argv)
        assert code == 2 and out == "" and "a stream is binned as it arrives" in err, (mode, out, err)
    code, out, err = _cli(capsys, "stream", str(static), "--source", str(raw), "--fit-sensor")
    assert code == 2 and "static images" in err
    # a stranger's camera tour: --fit-sensor's own pooling was named as "transform
    # 'downsample:32x24' would upsample", a transform never typed; a recording given as the
    # model was "not a readable ONNX file ... corrupted or truncated"
    code, out, err = _cli(capsys, "stream", str(model), "--source", str(raw), "--transform", "downsample:16x12",
                          "--fit-sensor")  # fmt: skip
    one = "--fit-sensor pools the stream to the model's 32x24, but after the transforms it is 16x12, smaller"
    assert code == 2 and err.startswith(f"error: {one}") and err.count("\n") == 1, err
    code, out, err = _cli(capsys, "stream", str(raw), "--source", str(raw))
    assert code == 2 and "is an event-camera recording (its header starts with '% '), not a model" in err, err
    aedat = tmp_path / "x.aedat4"
    aedat.write_bytes(b"#!AER-DAT4.0\r\n" + bytes(64))
    code, out, err = _cli(capsys, "stream", str(aedat), "--source", str(raw))
    assert code == 2 and "is an event-camera recording (its header starts with '#!AER'), not a model" in err, err
    small = tmp_path / "small.raw"  # a camera smaller than the model's 32x24, no transform given
    small.write_bytes(b"% evt 2.0\n% geometry 16x12\n" + body[:4000])
    code, out, err = _cli(capsys, "stream", str(model), "--source", str(small), "--fit-sensor")
    assert code == 2 and "but the sensor is 16x12, smaller" in err and "this model needs a larger sensor" in err, err


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), 1e-12, 0.5])
def test_library_refuses_a_bad_bin_or_window(model, bad):
    """The SDK and the streaming functions: a zero duration is refused (was silently the
    model's default), as are negative, NaN and infinite ones (InputError, as docs/sdk.md says),
    and one under the 1 µs that events are stamped in (1e-12 never moved the window on: the
    stream printed empty windows forever)."""
    from runtime.errors import InputError

    want = "at least 1 µs" if bad > 0 and bad < 1 else "finite number of µs > 0"
    s = load(str(model))
    ev = make_events([1, 2], [1, 2], [0, 1], [10, 20])
    with pytest.raises(InputError, match=f"dt_us .*{want}"):
        s.run([ev], binning="fixed", dt_us=bad)
    with pytest.raises(InputError, match=f"bin duration must be .*{want}"):
        run_clock(s, [], lambda w: None, Stats(), dt_us=bad)
    with pytest.raises(InputError, match=f"window must be .*{want}"):
        run_event(load_event(str(model)), [], lambda w: None, Stats(), window_us=bad)


def test_stream_warns_as_run_does(eventcam, model, capsys):  # noqa: F811
    """A policy past the trained T range warns (runtime run did, stream did not), and a
    stream whose every event the transforms cut says so (it showed 0 windows, no word)."""
    src = ["--source", str(eventcam / "evt2_sample.raw")]
    code, out, err = _cli(capsys, "stream", str(model), *src, "--fit-sensor", "--policy", "fixed:99", "--json")
    assert code == 0, err
    assert "warning: this run uses T=99, outside the trained range" in err
    assert json.loads(out.splitlines()[-1])["summary"]["warnings"] == [err.splitlines()[0].removeprefix("warning: ")]
    code, out, err = _cli(capsys, "stream", str(model), *src, "--transform", "crop:0,0,32,24", "--json")
    assert code == 0, err
    s = json.loads(out.splitlines()[-1])["summary"]
    assert s["events_in"] == 0 and s["windows"] == 0 and "no event of 539481 is left after the transforms" in err


def test_fit_sensor_warns_that_a_models_crop_acts_on_the_camera(eventcam, tmp_path, capsys):  # noqa: F811
    """A model trained with crop:2,2,30,30 on N-MNIST, streamed from a 1280x720 camera with
    --fit-sensor, ran on the camera's top-left 30x30 pixels (57 of 219,596 events), unsaid."""
    import onnx as onnx_lib

    from tests.runtime_fixtures import with_input

    neuron = spec("LIF", spike="single", decay=0.8, dt=5_000.0)
    base = chain_model(neuron, sensor=SENSOR, channels=(4,), classes=4, T=6, duration_us=30_000.0)
    cropped = with_input(onnx_lib.load_from_string(base.SerializeToString()), transforms=[
        {"kind": "crop", "args": [2, 2, 32, 24]}])  # fmt: skip
    path = save(cropped, tmp_path / "crop.onnx")
    src = ["--source", str(eventcam / "evt2_sample.raw")]
    code, out, err = _cli(capsys, "stream", path, *src, "--fit-sensor", "--json")
    assert code == 0, err
    want = "the model's own transforms ['crop:2,2,32,24'] act on this 640x480 sensor's pixels"
    assert want in err and any(want in w for w in json.loads(out.splitlines()[-1])["summary"]["warnings"]), err
    code, out, err = _cli(capsys, "stream", save(base, tmp_path / "plain.onnx"), *src, "--fit-sensor", "--json")
    assert code == 0 and "act on this" not in err, err  # no transforms of its own: nothing to say
    code, out, err = _cli(capsys, "stream", path, *src, "--transform", "downsample:64x48", "--fit-sensor", "--json")
    assert code == 0 and "act on this" not in err, err  # the user's own downsample maps the sensor: said nothing


def test_fit_sensor_pools_to_the_training_sensor_before_the_models_crop(eventcam, tmp_path, capsys):  # noqa: F811
    """A file that records its training sensor (2x26x34, cropped by the model to 32x24): a
    640x480 camera with --fit-sensor is pooled to 34x26 first, then cropped, as if the
    user had typed the pooling (it ran the crop on the camera's corner, with a warning)."""
    import onnx as onnx_lib

    from tests.runtime_fixtures import with_input

    neuron = spec("LIF", spike="single", decay=0.8, dt=5_000.0)
    base = chain_model(neuron, sensor=SENSOR, channels=(4,), classes=4, T=6, duration_us=30_000.0)
    crop = [{"kind": "crop", "args": [1, 1, 32, 24]}]
    path = save(with_input(base, transforms=crop, sensor=[2, 26, 34]), tmp_path / "crop.onnx")
    src = ["--source", str(eventcam / "evt2_sample.raw"), "--json"]
    code, out, err = _cli(capsys, "stream", path, *src, "--fit-sensor")
    assert code == 0 and "act on this" not in err, err
    fitted = [json.loads(line) for line in out.splitlines()]
    code, out, err = _cli(capsys, "stream", path, *src, "--transform", "downsample:34x26")
    assert code == 0, err
    typed = [json.loads(line) for line in out.splitlines()]
    assert fitted[-1]["summary"]["transforms"] == ["downsample:34x26", "crop:1,1,32,24"]
    drop = ("latency_ms", "wall_s", "events_per_s")
    assert [{k: v for k, v in w.items() if k not in drop} for w in fitted[:-1]] == [
        {k: v for k, v in w.items() if k not in drop} for w in typed[:-1]
    ]
    assert fitted[-1]["summary"]["events_in"] > 100_000  # the whole camera reaches the model, not a corner
    # without --fit-sensor the crop ran on the camera's top-left corner, unsaid: its shape is the model's input
    code, out, err = _cli(capsys, "stream", path, *src)
    want = "the model's own transforms ['crop:1,1,32,24'] were made for its 34x26 training sensor, but the stream is"
    assert code == 2 and err.startswith(f"error: {want} 640x480; add --fit-sensor") and err.count("\n") == 1, err
    bad = with_input(onnx_lib.load_from_string(base.SerializeToString()), transforms=crop, sensor=[2, 26])
    code, out, err = _cli(capsys, "stream", save(bad, tmp_path / "bad.onnx"), *src)
    assert code == 2 and "input sensor must be [C, H, W]" in err and err.count("\n") == 1, err


def test_stream_runs_the_models_stored_policy(eventcam, model, tmp_path, capsys):  # noqa: F811
    """runtime run uses the policy calibrate-exit stored; stream ran fixed T (warning of the
    stored policy's range all the same), and a stored cascade silently became fixed T."""
    src = ["--source", str(eventcam / "evt2_sample.raw"), "--fit-sensor", "--json"]

    def with_stored(policy: str):
        m = onnx.load(str(model))
        meta = json.loads(m.metadata_props[0].value)
        meta["exit"] = {"policy": policy}
        m.metadata_props[0].value = json.dumps(meta)
        return save(m, tmp_path / "stored.onnx")

    def stream(*argv: str) -> tuple[list[dict], dict, str]:
        code, out, err = _cli(capsys, "stream", *argv, *src)
        assert code == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        windows = [{k: v for k, v in w.items() if k != "latency_ms"} for w in lines[:-1]]
        return windows, lines[-1]["summary"], err

    rule = "margin:0.05,tmin=1,tmax=6"
    asked, _, _ = stream(str(model), "--policy", rule)
    stored, summary, err = stream(with_stored(rule))
    assert stored == asked and summary["policy"] == rule and "was chosen on" not in err
    assert stream(str(model))[0] != asked  # fixed T (what ran before) gives other windows
    _, summary, err = stream(with_stored("cascade:confidence:0.9,T=1+6"))
    assert "is a cascade, which a stream cannot run (it reruns whole recordings): fixed:6 runs" in err
    assert summary["policy"] == "fixed:6"
    # event mode too (it took no policy): the stored one, asked after each bin of dt
    event = ("--mode", "event")
    asked, _, _ = stream(str(model), *event, "--policy", rule)
    stored, summary, err = stream(with_stored(rule), *event)
    assert stored == asked and summary["policy"] == rule and all(w["steps"] for w in stored)
    # a record without "mode" was chosen on clock runs: an event-driven stream that takes it says so
    assert "was chosen on clock-driven runs" in err and "calibrate-exit --mode event" in err
    # single-spike layers event-driven: said (docs/event_driven.md, Spike rule), as runtime run says it
    note = spike_rule_note(load_event(str(model)).protocol)
    assert note is not None and note in err and note not in stream(str(model))[2]  # event, not clock
    assert stream(str(model), *event)[0] != asked  # one decision per window of T x dt
    windows, summary, err = stream(with_stored("cascade:confidence:0.9,T=1+6"), *event)
    assert "fixed:6" not in err and "(it reruns whole recordings): one decision per window runs" in err
    assert summary["policy"] is None and all(w["steps"] is None for w in windows)


def test_waiting_for_a_pipe_is_not_processing_time(eventcam):  # noqa: F811
    """A live pipe that paused 4 s read `keeps up: no` at 1.3e5 events/s: the wait for its
    next bytes was counted as processing."""
    import io
    import time

    raw = (eventcam / "evt2_sample.raw").read_bytes()

    class SlowPipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data, self.pos, self.paused = raw, 0, False

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            if self.pos > len(self.data) // 2 and not self.paused:
                self.paused = True
                time.sleep(0.5)  # the camera had nothing to send
            n = min(len(b), 65536, len(self.data) - self.pos)
            b[:n] = self.data[self.pos : self.pos + n]
            self.pos += n
            return n

    stats = Stats()
    with open_events(io.BufferedReader(SlowPipe(), 65536)) as reader:
        start = time.perf_counter()
        for _ in slices(reader, Pipeline([], reader.shape), stats):
            pass
        wall = time.perf_counter() - start
    assert stats.raw_events == 539_481 and reader.waiting_s >= 0.5 and stats.busy_s <= wall - 0.45
