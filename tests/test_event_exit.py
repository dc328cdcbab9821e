"""Exit policies in event-driven runs (runtime.event.exit): asked at the end of each of the
clock run's bins at the policy's horizon, on the clock's readout scale, about the streams
still running; chosen on event-driven runs (calibrate-exit --mode event)."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import warnings

import numpy as np
import onnx
import pytest

from runtime import forks
from runtime.data import load_dataset
from runtime.errors import InputError
from runtime.event import load_event
from runtime.event.cli import spike_rule_note
from runtime.event.evaluate import run_event_dataset
from runtime.event.exit import run_with_exit
from runtime.event.network import INV_TAU
from runtime.limits import ResourceError
from runtime.policies import PolicyError, parse_policy
from runtime.protocol import METADATA_KEY, store_protocol
from runtime.stream import Stats, run_event

from .conftest import run_cli, run_main
from .event_fixtures import chain_model, random_stream, spec
from .runtime_fixtures import save, with_input

SENSOR, T, DURATION = (2, 20, 20), 6, 300_000  # the digits recordings' shape and length
DT = DURATION / T


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    net = chain_model(spec("LIF", "single"), sensor=SENSOR, classes=10, scale=0.5, duration_us=DURATION, T=T)
    return save(net, tmp_path_factory.mktemp("exit") / "m.onnx")


def streams(n: int = 5) -> list[np.ndarray]:
    return [random_stream(300 + 40 * s, SENSOR, DURATION, s) for s in range(n)]


def cut(engine, stream: np.ndarray, k: int):
    """The engine's own run of the stream's first k bins (crossings up to k dt)."""
    return engine.run(stream[stream["t"] < k * DT], until=k * DT)[0]


class Recording:
    """A policy that stops stream ``i`` after ``stops[i]`` bins and records every call."""

    def __init__(self, stops: list[int], tmin: int = 1):
        self.stops, self.tmin, self.calls = stops, tmin, []
        self.live = list(range(len(stops)))

    def horizon(self, default_T: int) -> int:
        return max(self.stops)

    def first_exit(self) -> int:
        return self.tmin

    def should_exit(self, t: int, logits: np.ndarray) -> np.ndarray:
        self.calls.append((t, list(self.live), logits.copy()))
        done = np.array([self.stops[i] <= t for i in self.live])
        self.live = [i for i, d in zip(self.live, done) if not d]
        return done


class StopAfter:
    """Every stream stops after bin ``k`` of a run of ``horizon`` bins."""

    def __init__(self, k: int, horizon: int):
        self.k, self.T = k, horizon

    def horizon(self, default_T: int) -> int:
        return self.T

    def should_exit(self, t: int, logits: np.ndarray) -> np.ndarray:
        return np.full(len(logits), t >= self.k)


@pytest.mark.parametrize("k", [1, 3, T])
def test_a_stop_after_bin_k_is_the_engines_run_of_the_first_k_bins(model, k):
    """Stopped after bin k of the trained T: the whole-stream run of the events before k dt
    (outputs, counts, cost). fixed:k bins the whole recording into k, as the clock run at
    T=k does: the whole-stream run (it was the first k dt, another run than the clock's)."""
    engine = load_event(model)
    s = streams()
    whole = engine.run_batch(s, until=DURATION)
    fixed = run_with_exit(engine, s, parse_policy(f"fixed:{k}"))
    assert fixed.steps is not None and fixed.steps.tolist() == [k] * len(s)
    np.testing.assert_array_equal(fixed.outputs, whole.outputs)
    np.testing.assert_array_equal(fixed.synops, whole.synops)
    r = run_with_exit(engine, s, StopAfter(k, T))
    assert r.steps is not None and r.steps.tolist() == [k] * len(s)
    for i, stream in enumerate(s):
        want = cut(engine, stream, k)
        np.testing.assert_array_equal(r.outputs[i], want.outputs)
        assert (r.synops[i], r.events[i]) == (want.synops, want.events)
        for layer, counts in want.neuron_counts.items():
            np.testing.assert_array_equal(r.neuron_counts[layer][i], counts)
    if k == T:  # the whole recording: the plain batch run
        np.testing.assert_array_equal(r.outputs, whole.outputs)
        assert whole.steps is None and "mean_steps" not in whole.stats()


def test_the_policy_sees_the_live_streams_in_order_on_the_clocks_readout_scale(model):
    """Asked from its tmin on, about the streams still running, with the readout so far as
    the clock run gives it (a mean readout: the summed current over k); each stream stops
    where it said, with the engine's outputs, spikes and cost of that point."""
    engine = load_event(model)
    s = streams()
    policy = Recording([2, 5, 2, 6, 3], tmin=2)
    r = run_with_exit(engine, s, policy)
    assert [t for t, _, _ in policy.calls] == [2, 3, 4, 5, 6]
    assert [rows for _, rows, _ in policy.calls] == [[0, 1, 2, 3, 4], [1, 3, 4], [1, 3], [1, 3], [3]]
    for t, rows, logits in policy.calls:
        for row, i in zip(logits, rows):
            np.testing.assert_allclose(row, cut(engine, s[i], t).outputs / t, rtol=1e-12)
    assert r.steps is not None and r.steps.tolist() == policy.stops
    for i, k in enumerate(policy.stops):
        want = cut(engine, s[i], k)
        np.testing.assert_array_equal(r.outputs[i], want.outputs)
        assert r.predictions[i] == want.predictions and r.synops[i] == want.synops
    assert r.synops[0] < engine.run(s[0], until=DURATION)[0].synops  # stopping early saved work
    assert r.stats()["mean_steps"] == pytest.approx(np.mean(policy.stops))


def test_streams_advance_side_by_side_on_threads_to_the_same_numbers(model):
    """A policy run advances each bin's streams on numba's thread count (it ran on one
    thread whatever --threads said): the same calls, stops, outputs and spikes as on one."""
    from runtime.event.engine import use_threads

    pytest.importorskip("numba")
    from numba import config

    if int(config.NUMBA_NUM_THREADS) < 2:
        pytest.skip("numba runs one thread here")
    engine, s = load_event(model), streams(7)
    feed, fed_on = engine.feed, []

    def recorded_feed(*args, **kwargs):
        fed_on.append(threading.get_ident())
        return feed(*args, **kwargs)

    engine.feed = recorded_feed  # type: ignore[method-assign]
    runs, was_forked = [], forks.FORKS.after_layer
    try:
        for n, forked in ((1, False), (2, False), (2, True)):
            use_threads(n)
            fed_on.clear()
            policy = Recording([2, 5, 2, 6, 3, 4, 2], tmin=2)
            # a worker forked after its parent started numba's threads: one thread, as run_batch there
            forks.FORKS.after_layer = forked
            runs.append((run_with_exit(engine, s, policy), policy.calls))
            on_caller = set(fed_on) == {threading.get_ident()}
            assert on_caller == (n == 1 or forked)  # two threads: every stream advanced on the pool's
    finally:
        use_threads(0)
        forks.FORKS.after_layer = was_forked
    (one, calls_one), (two, calls_two), _ = runs
    assert [(t, rows) for t, rows, _ in calls_one] == [(t, rows) for t, rows, _ in calls_two]
    for (_, _, a), (_, _, b) in zip(calls_one, calls_two):
        np.testing.assert_array_equal(a, b)
    assert one.steps.tolist() == two.steps.tolist() and one.synops.tolist() == two.synops.tolist()
    np.testing.assert_array_equal(one.outputs, two.outputs)
    for name in one.neuron_counts:
        np.testing.assert_array_equal(one.neuron_counts[name], two.neuron_counts[name])


def test_whole_streams_of_a_model_trained_on_each_recordings_span_end_there(tmp_path):
    """A model trained on each recording's own span (durations "recording") ran whole
    streams up to the data set's nominal length, and a leaky LI readout decayed to it: its
    outputs then differed from fixed:T's (read where the clock run's last bin ends, the
    recording's end) by a factor of up to 2.6. Both now end each stream at its own span."""
    neuron = spec("IF", "multi")
    net = chain_model(
        neuron, sensor=SENSOR, classes=10, scale=0.5, duration_us=DURATION, T=T, readout="li", li_decay=0.7
    )
    engine = load_event(save(with_input(net, durations="recording"), tmp_path / "rec.onnx"))
    full = load_dataset("digits", "test", 12)
    cut = [s[s["t"] < DURATION * f] for s, f in zip(full.events, np.linspace(0.4, 1.0, 12))]
    ds = dataclasses.replace(full, events=cut, durations="recording")
    whole, fixed = run_event_dataset(engine, ds), run_event_dataset(engine, ds, policy=f"fixed:{T}")
    np.testing.assert_array_equal(whole.outputs, fixed.outputs)
    np.testing.assert_array_equal(whole.synops, fixed.synops)


def test_a_cascade_is_refused_in_event_mode(model, tmp_path):
    """A PolicyError, as the docs promise for a policy that cannot be used (it was a bare
    InputError, which a caller catching PolicyError missed); still an InputError."""
    engine = load_event(model)
    cascade = parse_policy("cascade:confidence:0.5,T=3+6")
    with pytest.raises(PolicyError, match="an event-driven run reads each stream once"):
        run_with_exit(engine, streams(1), cascade)
    with pytest.raises(PolicyError, match="an event-driven run reads each stream once"):
        run_event_dataset(engine, load_dataset("digits", "test"), policy=cascade)
    with pytest.raises(PolicyError, match="a stream is"):
        run_event(engine, [], lambda w: None, Stats(), policy=cascade)
    assert issubclass(PolicyError, InputError)
    r = run_cli("runtime", "run", model, "--mode", "event", "--data", "digits", "--policy", "cascade:margin:0.3,T=2+6")
    assert r.returncode == 2 and r.stderr.count("error:") == 1 and "reads each stream once" in r.stderr


def test_a_horizon_beyond_the_step_limit_is_refused_in_event_mode_too(model):
    """The clock run refused 100001 steps (runtime.limits.MAX_T); the event run took them:
    6 s a sample, and fixed:1000000000 ran until it was killed."""
    engine = load_event(model)
    for policy in ("fixed:100001", "confidence:0.5,tmax=100001"):
        with pytest.raises(ResourceError, match="100001 time steps asked; at most 100000"):
            run_with_exit(engine, streams(1), policy)
        with pytest.raises(ResourceError, match="at most 100000"):
            run_event(engine, [], lambda w: None, Stats(), policy=parse_policy(policy))
    r = run_cli("runtime", "run", model, "--mode", "event", "--data", "digits", "--policy", "fixed:1000000000")
    assert r.returncode == 2 and r.stderr.count("error:") == 1 and "at most 100000" in r.stderr, r.stderr


def test_cli_event_mode_runs_an_exit_policy(model):
    """--mode event refused --policy ("--mode event runs whole streams"): the issue's one SDK
    shape asks for the exit policies where they make sense."""
    base = ["runtime", "run", model, "--mode", "event", "--data", "digits", "--limit", "8", "--threads", "1"]
    r = run_cli(*base, "--policy", "fixed:3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["policy"], out["mean_steps"], out["max_steps"], out["clock_T"]) == ("fixed:3", 3.0, 3, 3)
    whole = json.loads(run_cli(*base, "--json").stdout)
    assert whole["policy"] is None and "mean_steps" not in whole
    assert out["synops_per_sample"] == whole["synops_per_sample"]  # the whole recording, in 3 bins
    ds = load_dataset("digits", "test", 8)  # what --limit 8 reads
    sdk = run_event_dataset(load_event(model), ds, policy="fixed:3")
    assert out["accuracy"] == float((sdk.predictions == ds.labels).mean())
    text = run_cli(*base, "--policy", "fixed:3")
    # asked at the end of the clock run's 3 bins of the 300 ms recording (it said "bins of
    # 50000 µs", the trained T's, whatever the policy's horizon)
    assert text.returncode == 0 and "up to the exit of fixed:3 (asked at the end of 3 bins of 100000 µs)" in text.stdout
    assert "mean steps" in text.stdout


@pytest.mark.parametrize(
    "stored, runs, note",
    [
        ("confidence:0.5,tmin=2,tmax=6", "confidence:0.5,tmin=2,tmax=6", None),
        ("cascade:confidence:0.5,T=3+6", None, "stored policy cascade:confidence:0.5,T=3+6 is a cascade"),
    ],
)
def test_event_mode_runs_the_models_stored_policy(model, tmp_path, stored, runs, note):
    """Without --policy the clock-driven run takes the policy calibrate-exit stored in the
    file; event mode ran whole streams, unsaid. It takes it too, and says why not when the
    stored one is a cascade (which reruns whole recordings)."""
    m = onnx.load(model)
    meta = json.loads({p.key: p.value for p in m.metadata_props}[METADATA_KEY])
    store_protocol(m, {**meta, "exit": {"policy": stored}})
    path = save(m, tmp_path / "stored.onnx")
    base = ["runtime", "run", path, "--mode", "event", "--data", "digits", "--limit", "8", "--threads", "1"]
    r = run_cli(*base, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["policy"] == runs and ("mean_steps" in out) == (runs is not None)
    if runs is not None:
        ds = load_dataset("digits", "test", 8)
        sdk = run_event_dataset(load_event(model), ds, policy=runs)
        assert out["accuracy"] == float((sdk.predictions == ds.labels).mean())
        assert out["mean_steps"] == float(sdk.steps.mean())
        # chosen on clock runs (a record without "mode": every file before it was kept): said
        assert [w for w in out["warnings"] if "was chosen on clock-driven runs" in w]
    else:
        assert [w for w in out["warnings"] if note in w]
        assert "whole streams run; name a policy to choose (--policy" in r.stderr
    given = json.loads(run_cli(*base, "--policy", "fixed:2", "--json").stdout)  # --policy wins
    assert (given["policy"], given["max_steps"]) == ("fixed:2", 2)


def test_a_stored_policy_says_when_it_was_chosen_on_the_other_kind_of_runs(model, tmp_path):
    """A policy chosen on clock runs ran event-driven unsaid (a LIF model: 70.8% against
    81.4% for whole streams), and one chosen event-driven ran clock-driven unsaid: each run
    that takes the stored policy says so when it was chosen on the other kind, and names
    calibrate-exit --mode for its own; a given --policy is not the stored one."""
    m = onnx.load(model)
    meta = json.loads({p.key: p.value for p in m.metadata_props}[METADATA_KEY])
    rule = "confidence:0.5,tmin=2,tmax=6"
    for mode in ("clock", "event"):
        store_protocol(m, {**meta, "exit": {"policy": rule, "mode": mode}})
        path = save(m, tmp_path / f"{mode}.onnx")
        for run_mode in ("clock", "event"):
            base = ["runtime", "run", path, "--mode", run_mode, "--data", "digits", "--limit", "8", "--threads", "1"]
            for given in ([], ["--policy", rule]):
                r = run_cli(*base, *given, "--json")
                assert r.returncode == 0, r.stderr
                said = [w for w in json.loads(r.stdout)["warnings"] if f"was chosen on {mode}-driven runs" in w]
                assert bool(said) == (mode != run_mode and not given), (mode, run_mode, given, said)
                if said:
                    assert f"calibrate-exit --mode {run_mode}" in said[0] and said[0] in r.stderr


def test_the_sdks_data_set_runners_take_the_stored_policy_alike(model, tmp_path):
    """run_dataset (clock) took the stored policy when given none; run_event_dataset ran
    whole streams, so the same call meant two things. Both take it now, each says in a
    StoredPolicyWarning when it was chosen on the other kind of runs (or, event-driven, is a
    cascade: whole streams), and WHOLE_STREAMS runs whole streams whatever is stored."""
    from runtime import load
    from runtime.errors import StoredPolicyWarning, TrainedRangeWarning
    from runtime.evaluate import run_dataset
    from runtime.event.evaluate import WHOLE_STREAMS

    m = onnx.load(model)
    meta = json.loads({p.key: p.value for p in m.metadata_props}[METADATA_KEY])
    rule = "confidence:0.5,tmin=2,tmax=6"
    ds = load_dataset("digits", "test", 8)
    engine = load_event(model)  # stores no policy
    whole, given = run_event_dataset(engine, ds), run_event_dataset(engine, ds, policy=rule)
    assert whole.steps is None
    for mode in ("clock", "event"):
        store_protocol(m, {**meta, "exit": {"policy": rule, "mode": mode}})
        path = save(m, tmp_path / f"{mode}.onnx")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stored = run_event_dataset(load_event(path), ds)
        assert stored.steps is not None and np.array_equal(stored.steps, given.steps)
        assert np.array_equal(stored.outputs, given.outputs) and stored.mean_steps == float(given.steps.mean())
        said = [str(w.message) for w in caught if issubclass(w.category, StoredPolicyWarning)]
        assert bool(said) == (mode == "clock") and all("calibrate-exit --mode event" in w for w in said)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            forced = run_event_dataset(load_event(path), ds, policy=WHOLE_STREAMS)
            clock = run_dataset(load(path, threads=1), ds)
        assert forced.steps is None and np.array_equal(forced.outputs, whole.outputs)
        assert np.array_equal(clock.steps, run_dataset(load(path, threads=1), ds, rule).steps)
        # the same step figures, per bin: batch_per_step the streams still running at each
        assert set(stored.stats()) - set(clock.stats()) == {"events_per_sample", "synops_per_sample"}
        assert set(clock.stats()) <= set(stored.stats()) and forced.mean_steps is None
        running = [int((clock.steps >= k).sum()) for k in range(1, clock.steps.max() + 1)]
        assert clock.batch_per_step == running and len(running) > 1
        said = [str(w.message) for w in caught if issubclass(w.category, StoredPolicyWarning)]
        assert bool(said) == (mode == "event") and all("calibrate-exit --mode clock" in w for w in said)
    store_protocol(m, {**meta, "exit": {"policy": "cascade:confidence:0.5,T=3+6"}})
    with pytest.warns(StoredPolicyWarning, match="is a cascade"):
        cascade = run_event_dataset(load_event(save(m, tmp_path / "cascade.onnx")), ds)
    assert cascade.steps is None and np.array_equal(cascade.outputs, whole.outputs)
    # a policy that may stop outside the trained range: said, as Session.run says it
    hi = engine.protocol.T_range[1]
    with pytest.warns(TrainedRangeWarning, match=f"this run uses T={hi + 1}, outside the trained range"):
        run_event_dataset(engine, ds, policy=hi + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainedRangeWarning)
        run_event_dataset(engine, ds, policy=hi)


def test_event_runs_of_single_spike_layers_say_what_differs(model, tmp_path):
    """A single-spike model fires at most once per clock step and at every crossing
    event-driven: on the digits default such models lost 13-40 points event-driven with
    nothing said (docs/event_driven.md, Spike rule). Each event-driven command says it, for
    single-spike layers only."""
    multi = chain_model(spec("LIF", "multi"), sensor=SENSOR, classes=10, scale=0.5, duration_us=DURATION, T=T)
    for path, single in ((model, True), (save(multi, tmp_path / "multi.onnx"), False)):
        assert (spike_rule_note(load_event(path).protocol) is not None) == single
        data = ["--data", "digits", "--limit", "8", "--threads", "1"]
        runs = [
            ["runtime", "run", path, "--mode", "event", *data, "--json"],
            ["runtime", "calibrate-exit", path, "-o", str(tmp_path / "c.onnx"), "--mode", "event", *data, "--json"],
        ]
        for argv in runs:
            r = run_cli(*argv)
            assert r.returncode == 0, r.stderr
            said = [w for w in json.loads(r.stdout)["warnings"] if "fire at most one spike per step" in w]
            assert bool(said) == single, (argv, said)
            if said:
                assert "LIF neurons" in said[0] and "--spike multi" in said[0] and said[0] in r.stderr


def test_calibrate_exit_chooses_on_event_driven_runs(model, tmp_path):
    """calibrate-exit chose thresholds on clock-driven readouts only, and a leaky model's
    event-driven readouts differ (a LIF digits model: its clock-chosen thresholds lost about
    10 points in event mode). --mode event replays the rules on the event-driven readout at
    each bin: each rule's validation figures are what run_event_dataset gives with its
    policy, the test figures what it gives there, and the policy is stored."""
    out = tmp_path / "event.onnx"
    argv = ["runtime", "calibrate-exit", model, "-o", str(out), "--mode", "event", "--data", "digits", "--limit", "40"]
    r = run_cli(*argv, "--threads", "1", "--budget", "5", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    # equal bins split the whole recording at any horizon: only tmax's asks stop sooner
    assert d["chosen_on"].endswith(", event-driven") and "cascade" not in d["rules"] and d["horizons"] == [6, 6]
    engine, val, test = load_event(model), load_dataset("digits", "val", 40), load_dataset("digits", "test", 40)
    rules = [b for b in d["validation"]["per_rule"].values() if b is not None and b["rule"] != "fixed"]
    assert rules and any(b["mean_steps"] < 6 for b in rules)  # some rule stops sooner: the case this is about
    for best in rules:
        got = run_event_dataset(engine, val, policy=best["policy"])
        assert float((got.predictions == val.labels).mean()) == pytest.approx(best["accuracy"])
        assert float(got.steps.mean()) == pytest.approx(best["mean_steps"])
    chosen = run_event_dataset(engine, test, policy=d["policy"])
    assert d["test"]["accuracy"] == pytest.approx(float((chosen.predictions == test.labels).mean()))
    stored = load_event(str(out)).protocol
    assert stored.exit_policy == d["policy"] and stored.exit_chosen_for == "event"
    for extra, needle in (
        (["--rules", "cascade"], "an event-driven run reads each stream once"),
        (["--binning", "fixed"], "--binning: --mode event runs the event engine per event"),
    ):
        bad = run_cli(*argv[:-2], *extra)
        assert bad.returncode == 2 and bad.stderr.count("error:") == 1 and needle in bad.stderr, bad.stderr


def test_a_cubalif_stops_at_the_bins_instant_when_a_bin_is_not_a_whole_us(tmp_path):
    """CubaLIF membranes cross their threshold between inputs: the first k bins of 250.5 µs
    ran their crossings up to ceil(k dt), and a stranger found streams with one spike more
    than the whole-stream run of those bins (3 of 70 seeds; N-MNIST's bin is 52666.67 µs)."""
    pytest.importorskip("torch", reason="the CubaLIF model is exported from torch (not on a runtime-only install)")
    from tests.test_cuba_lif_event_driven import SENSOR as CUBA_SENSOR
    from tests.test_cuba_lif_event_driven import cuba_onnx

    engine = load_event(cuba_onnx(tmp_path / "c.onnx", 250.5))
    p = engine.protocol
    dt = p.duration_us / p.default_T
    assert dt != int(dt) and p.binning == "equal"
    s = [random_stream(60, CUBA_SENSOR, int(p.duration_us), seed) for seed in range(40)]
    for k in (1, 2, p.default_T - 1):
        r = run_with_exit(engine, s, StopAfter(k, p.default_T))
        for i, stream in enumerate(s):
            want = engine.run(stream[stream["t"] < k * dt], until=k * dt)[0]
            for layer, counts in want.neuron_counts.items():
                np.testing.assert_array_equal(r.neuron_counts[layer][i], counts, err_msg=f"stream {i}, k={k}")


def test_an_li_readout_is_read_at_the_end_of_each_bin(tmp_path):
    """An LI readout (the "last" rule) is read where the clock run reads it, at the end of
    bin k: a stop after bin k is the whole-stream run of the first k bins read at k x width
    (bins of 50,000.17 µs here), and a stream with no input after its first bin shows the
    policy a membrane that decays bin by bin. Read at the last input that reached it, it
    stood still, on another scale than the clock readouts that confidence, entropy and
    margin thresholds are calibrated on."""
    net = chain_model(
        spec("LIF", "single"), sensor=SENSOR, classes=10, readout="li", li_decay=0.7, duration_us=DURATION, T=T
    )
    engine = load_event(save(net, tmp_path / "li.onnx"))
    span = DURATION + 1.0
    width = span / T
    s = streams()
    s[0] = s[0][s[0]["t"] < width]  # input in the first bin only
    spans = np.full(len(s), span)
    for k in (1, 3):
        r = run_with_exit(engine, s, StopAfter(k, T), spans)
        for i, stream in enumerate(s):
            want = engine.run(stream[stream["t"] < k * width], until=k * width)[0]
            np.testing.assert_array_equal(r.outputs[i], want.outputs)
    policy = Recording([T] * len(s))
    run_with_exit(engine, s, policy, spans)
    first, lm = policy.calls[0][2][0], engine.net.F[-1, INV_TAU]
    assert np.abs(first).max() > 0.1 and math.exp(-(T - 1) * width * lm) < 0.2
    for t, _, logits in policy.calls:
        np.testing.assert_allclose(logits[0], first * math.exp(-(t - 1) * width * lm), rtol=1e-12)


def test_sdk_edges_a_string_a_late_first_exit_and_no_streams(model):
    """The SDK took no policy string (AttributeError), a policy whose first_exit is past its
    horizon ended in a bare AssertionError (the clock run stops every sample at the
    horizon), and no streams said another thing than run_batch."""
    from runtime.eventinput import EventInputError

    engine = load_event(model)
    s = streams(3)
    assert run_with_exit(engine, s, "fixed:2").steps.tolist() == [2, 2, 2]  # type: ignore[union-attr]

    class Late(StopAfter):
        def first_exit(self) -> int:
            return 10

    late = Late(1, 3)
    assert run_with_exit(engine, s, late).steps.tolist() == [3, 3, 3]  # type: ignore[union-attr]
    for call in (lambda: run_with_exit(engine, [], "fixed:2"), lambda: engine.run_batch([])):
        with pytest.raises(EventInputError, match="expected a non-empty list of event streams"):
            call()


def test_event_json_lists_the_compared_clock_runs_warnings_and_spans_are_checked(model, capsys, monkeypatch):
    """The clock run `--mode event --json` compares with overflowed float32 (a stranger's
    weights of 3e37): its warning came out on stderr only, the JSON `warnings` empty. (The
    overflow itself is the platform's summation order's: x86 reached inf, aarch64 did not;
    the compared run's warning is raised here.) And run_with_exit's spans of 0, NaN or the
    wrong count ran silently or as a raw ValueError / IndexError."""
    import warnings

    import runtime.event.evaluate as evaluate
    from runtime.cli import main as runtime_main
    from runtime.errors import NonFiniteReadoutWarning

    compare = evaluate.compare_clock

    def overflowing(*args, **kwargs):
        warnings.warn("readouts overflowed", NonFiniteReadoutWarning, stacklevel=2)
        return compare(*args, **kwargs)

    monkeypatch.setattr(evaluate, "compare_clock", overflowing)
    argv = ["run", model, "--mode", "event", "--data", "digits", "--limit", "4", "--threads", "1", "--json"]
    code, out, err = run_main(runtime_main, capsys, *argv)
    said = "the clock-driven run --json compares with: readouts overflowed"
    assert code == 0 and said in json.loads(out)["warnings"], out
    assert err.count(said) == 1, err
    engine = load_event(model)
    s = streams(2)
    for bad in ([0.0, 1.0], [float("nan"), 1.0], [1.0]):
        with pytest.raises(InputError, match="spans must be one finite span > 0 µs per stream"):
            run_with_exit(engine, s, "fixed:2", np.array(bad))
