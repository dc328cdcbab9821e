"""Bad input to the event engine: a clear error before any numba kernel runs; models the
engine cannot run per event are refused with the reason; the CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from runtime.data.events import EVENT_DTYPE, make_events
from runtime.event import BiasError, EventInputError, parallel
from runtime.event import engine as engine_module
from runtime.eventinput import check_events
from runtime.protocol import ModelError

from .conftest import run_cli
from .event_fixtures import chain_model, random_stream, spec
from .runtime_fixtures import save, tiny_model
from .test_event_engine import engine_of


@pytest.fixture
def eng(monkeypatch):
    """An engine whose kernels fail the test if they are ever reached."""

    def never(*args):
        raise AssertionError("a numba kernel ran on bad input")

    monkeypatch.setattr(engine_module, "run_events", never)
    monkeypatch.setattr(parallel, "run_streams", never)  # run_batch's kernels, either of them
    monkeypatch.setattr(parallel, "run_streams_serial", never)
    return engine_of(chain_model())


def _bad(field: str, value) -> np.ndarray:
    ev = random_stream(20)
    ev[field][5] = value
    return ev


CASES = {
    "x outside sensor": (lambda: _bad("x", 12), "x outside the sensor"),
    "y negative": (lambda: _bad("y", -1), "y outside the sensor"),
    "unsorted": (lambda: random_stream(20)[::-1].copy(), "not sorted"),
    "negative t": (lambda: make_events([0, 1], [0, 1], [0, 1], [-5, 3]), "negative timestamps"),
    "polarity -1/+1": (lambda: make_events([0, 1], [0, 1], [-1, 1], [1, 2]), "polarity"),
    "polarity 2": (lambda: _bad("p", 2), "polarity"),
    "plain array": (lambda: np.zeros((10, 4)), "structured numpy array"),
    "list": (lambda: [(0, 0, 0, 1)], "structured numpy array"),
    "missing field": (lambda: np.zeros(3, [("x", "i2"), ("y", "i2"), ("t", "i8")]), "fields x, y, p, t"),
    "float x": (lambda: np.zeros(3, [("x", "f4"), ("y", "i2"), ("p", "i1"), ("t", "i8")]), "'x' has dtype"),
    "2-D": (lambda: np.zeros((2, 3), EVENT_DTYPE), "1-D"),
}


def _nan_t() -> np.ndarray:
    ev = np.zeros(3, [("x", "i2"), ("y", "i2"), ("p", "i1"), ("t", "f8")])
    ev["t"] = [1.0, np.nan, 3.0]
    return ev


CASES["NaN t"] = (_nan_t, "NaN")


def _typed(dtype: str, field: str, value) -> np.ndarray:
    """Three events with ``field`` of ``dtype`` (the others int64); event 1's set to ``value``."""
    ev = np.zeros(3, [(f, dtype if f == field else "i8") for f in ("x", "y", "p", "t")])
    ev["t"] = [1, 2, 3]
    ev[field][1] = value
    return ev


# the check converts to int64 before its range tests: values with no int64 form are refused
CASES["uint64 t beyond int64"] = (lambda: _typed("u8", "t", 2**63 + 5), "beyond")
CASES["uint64 x beyond int64"] = (lambda: _typed("u8", "x", 2**64 - 1), "x outside the sensor")
CASES["float t beyond int64"] = (lambda: _typed("f8", "t", 1e30), "beyond")
CASES["fractional t"] = (lambda: _typed("f8", "t", 1.5), "whole µs")
# numpy counts timedelta64 as an integer: t in ms was read as µs, silently
CASES["timedelta64 t"] = (lambda: _typed("m8[ms]", "t", 2), r"timedelta64\[ms\]; expected integer µs \(convert")
CASES["timedelta64 x"] = (lambda: _typed("m8[s]", "x", 2), "'x' has dtype timedelta64")


def test_a_float16_time_is_checked_without_a_numpy_warning():
    """The range check compared float16 times with 2^43 in float16 (overflow: a
    RuntimeWarning printed before the stream was accepted)."""
    ev = _typed("f2", "t", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(check_events(ev, (1, 12, 12))[3], [1, 2, 3])


@pytest.mark.parametrize("case", list(CASES))
def test_bad_stream_is_refused_before_the_kernel(eng, case):
    make, message = CASES[case]
    with pytest.raises(EventInputError, match=message):
        eng.run(make())
    with pytest.raises(EventInputError, match=message):
        eng.feed(eng.initial_state(), make())
    with pytest.raises(EventInputError, match=message) as batch_error:
        eng.run_batch([random_stream(5), make()])
    assert "event stream 1" in str(batch_error.value)  # the message names the stream


def test_batch_streams_restart_in_time_but_each_is_sorted(eng):
    """run_batch validates its streams as one concatenation: time may go back where a
    stream begins, nowhere else (here between a stream's first two events)."""
    late, early = random_stream(8), random_stream(8)
    late["t"] += 1000
    early["t"][0] = early["t"][1] + 1
    with pytest.raises(EventInputError, match=r"event stream 1: timestamps are not sorted \(t\[0\]"):
        eng.run_batch([late, early])
    with pytest.raises(EventInputError, match=r"event stream 1: timestamps are not sorted \(t\[0\]"):
        eng.run_batch([late, early.astype([("x", "i8"), ("y", "i8"), ("p", "i8"), ("t", "i8")])])  # other dtype


def test_unsorted_message_says_where_and_how(eng):
    ev = random_stream(20)
    ev["t"][7], ev["t"][8] = ev["t"][8] + 1, ev["t"][8]
    with pytest.raises(EventInputError, match=r"t\[7\] = .* > t\[8\].*argsort"):
        eng.run(ev)


def test_chunk_going_back_in_time_is_refused():
    real = engine_of(chain_model())
    state = real.initial_state()
    stream = random_stream(40)
    state, _ = real.feed(state, stream[20:])
    with pytest.raises(EventInputError, match="before the end of the previous chunk"):
        real.feed(state, stream[:20])
    state, _ = real.feed(state, np.zeros(0, EVENT_DTYPE))  # an empty chunk is no error when streaming


def test_models_without_event_meaning_are_refused():
    with pytest.raises(BiasError, match="non-zero bias.*--no-bias"):
        engine_of(chain_model(conv_bias=0.25))
    with pytest.raises(ModelError, match="static images"):
        engine_of(tiny_model("repeat"))
    with pytest.raises(ModelError, match="step index"):
        engine_of(tiny_model("event-frames", uses_t=True))


def test_cli_event_mode_json_has_sd(tmp_path):
    model = save(
        chain_model(spec("IF", "single"), sensor=(2, 20, 20), classes=10, scale=0.5, duration_us=300_000, T=6),
        tmp_path / "m.onnx",
    )
    r = run_cli("runtime", "run", model, "--mode", "event", "--data", "digits", "--limit", "6", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["mode"] == "event" and out["n"] == 6 and 0.0 <= out["sd"] and out["clock_T"] == 6
    assert set(out["sd_per_layer"]) == {"IF_0", "IF_1"}
    # --threads sets the event engine's threads too (one stream each): the same figures
    r = run_cli(
        "runtime", "run", model, "--mode", "event", "--data", "digits", "--limit", "6", "--json", "--threads", "1"
    )
    one = json.loads(r.stdout)
    assert r.returncode == 0 and one["threads"] == 1 and out["threads"] >= 1, r.stderr
    assert {k: one[k] for k in ("accuracy", "synops_per_sample", "sd")} == {
        k: out[k] for k in ("accuracy", "synops_per_sample", "sd")
    }
    r = run_cli("runtime", "run", model, "--mode", "event", "--data", "digits:static", "--limit", "2")
    assert r.returncode == 2 and "static images" in r.stderr
    # the threads of its all-streams row are set as run --mode event's (it ran on numba's default)
    bench_argv = ["event-bench", model, "--data", "digits", "--limit", "2", "--repeats", "3", "--json"]
    r = run_cli("runtime", *bench_argv, "--threads", "1")
    assert r.returncode == 0, r.stderr
    bench = json.loads(r.stdout)
    assert bench["numba_threads"] == 1
    rows, fixed = bench["rows"], bench["fixed_cost"]
    assert len(rows) == 5 and all(row["events_per_s"] > 0 for row in rows)
    # interleaved rounds: min and median per engine, the load and thread count stated
    assert bench["repeats"] == 3 and len(bench["load_average"]) == 2
    # and the versions and CPU a rerun must match (the page's table had none on record)
    assert bench["versions"]["numba"] and bench["versions"]["numpy"] and "cpu" in bench["versions"]
    assert all(row["cpu_ms_per_stream"] <= row["cpu_ms_per_stream_median"] for row in rows)
    assert all(row["wall_ms_per_stream_min"] <= row["ms_per_stream"] for row in rows)  # min and median, both
    # --threads 1 is both all-streams rows' count: the clock batch ran on every core, CPU above wall
    assert rows[3]["runtime"] == "clock T=6, batch 2 (1 thread)", rows[3]["runtime"]
    assert all(row["msynops_per_cpu_s"] >= row["msynops_per_cpu_s_median"] for row in rows[:2])
    assert 0 < fixed["run_us_min"] <= fixed["run_us_median"] and 0 < fixed["batch_us_min"] <= fixed["batch_us_median"]


def test_tonic_bool_polarity_runs_as_off_0_on_1():
    """tonic's own event dtype (tonic.io.events_struct; DVSGesture, CIFAR10-DVS) has a bool
    polarity: the SDK refused it ("expected integers") while the tonic: reader took it. One
    check (runtime.eventinput) serves the event engine and the clock-driven Session.run."""
    eng = engine_of(chain_model())
    ints = random_stream(300, seed=3)
    tonic_like = np.zeros(len(ints), [("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "?")])
    for f in ("x", "y", "t"):
        tonic_like[f] = ints[f]
    tonic_like["p"] = ints["p"] == 1
    a, b = eng.run(ints)[0], eng.run(tonic_like)[0]
    np.testing.assert_array_equal(a.outputs, b.outputs)
    assert a.synops == b.synops
    float_p = np.zeros(3, [("x", "i2"), ("y", "i2"), ("p", "f4"), ("t", "i8")])
    with pytest.raises(EventInputError, match="'p' has dtype float32; expected integers or bool"):
        eng.run(float_p)
