"""The event engine's time base (docs/event_driven.md, "Time base"): each recording in real
µs, or (``--time-base trained``) stretched onto the span its T training bins had, for a
model trained on each recording's own span."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from runtime.data import DataError, bin_events, load_dataset, make_events
from runtime.data.events import retimed
from runtime.errors import InputError
from runtime.event import load_event
from runtime.event.cli import spike_rule_note
from runtime.event.evaluate import run_event_dataset, time_base_note
from runtime.neuron import NeuronSpec
from tests.edge_fixtures import Conv, chain_model
from tests.event_fixtures import random_stream
from tests.runtime_fixtures import save, with_input
from tests.test_runtime import _cli

SHAPE = (2, 20, 20)
STEP = 75_000.0  # µs: 4 steps span 300 ms, the recordings 200 to 600 ms
LIF = NeuronSpec("LIF", 0.5, 1.0, "subtract", "single", -math.inf, STEP)
IF = NeuronSpec("IF", 1.0, 1.0, "subtract", "multi", -math.inf, STEP)
W_STD = 1.0


@pytest.mark.parametrize("seed", range(6))
def test_a_retimed_stream_bins_as_equal_bins_over_its_own_span(seed):
    """Fixed bins of T x dt over the stretched stream are training's T equal bins over the
    recording's own span, event for event (dt a whole number of µs)."""
    rng = np.random.default_rng(seed)
    T, dt = int(rng.integers(2, 12)), int(rng.integers(50, 5000))
    span = float(rng.integers(T, 40 * T * dt))  # much shorter to much longer than T x dt
    ev = random_stream(int(rng.integers(1, 400)), SHAPE, int(span), seed, unique_t=True)
    # and events on the bin edges t = k span / T where whole (a ratio computed first moved
    # t = 99 of 396 µs at T = 4, dt = 1000 to t' = 999: the bin before)
    edges = [k * int(span) // T for k in range(T) if k * int(span) % T == 0]
    ev = np.sort(
        np.concatenate([ev, make_events([0] * len(edges), [0] * len(edges), [0] * len(edges), edges)]), order="t"
    )
    want = bin_events([ev], T, SHAPE, "equal", durations_us=[span])
    got = bin_events([retimed(ev, span, T * dt)], T, SHAPE, "fixed", dt_us=float(dt))
    np.testing.assert_array_equal(got, want)
    assert want.sum() == len(ev)  # every event inside the span: none lost on either side


def test_a_retimed_edge_event_stays_on_its_edge_and_late_events_are_dropped():
    ev = make_events([0, 1, 2, 3], [0] * 4, [0] * 4, [99, 198, 395, 396])
    out = retimed(ev, 396.0, 4000.0)  # T = 4 bins of 1000 µs over a 396 µs recording
    assert out["t"].tolist() == [1000, 2000, 3989]  # bins 1, 2 and 3, as equal binning; 396 >= end: dropped
    assert out["x"].tolist() == [0, 1, 2] and ev["t"].tolist() == [99, 198, 395, 396]  # a copy
    with pytest.raises(DataError, match="must be > 0 µs, got 0.0 and 4000.0"):
        retimed(ev, 0.0, 4000.0)


@pytest.fixture(scope="module")
def per_recording(tmp_path_factory):
    """A LIF model (decay 0.5 per 75 ms step, 4 steps) and the same net with IF neurons,
    as if trained on each recording's own span, and recordings of 200 to 600 ms."""
    d = tmp_path_factory.mktemp("tb")
    paths = []
    for spec in (LIF, IF):
        net = chain_model([Conv(4, pool=2)], classes=10, spec=spec, w_std=W_STD)  # bias-free: event-driven
        paths.append(save(with_input(net, durations="recording"), d / f"{spec.kind}.onnx"))
    return (*paths, load_dataset(f"tonic:tests.tonic_fixtures.LongRecordings:{d}", "test"))


def test_the_trained_time_base_runs_each_recording_as_training_stretched_it(per_recording):
    lif, _, ds = per_recording
    engine = load_event(lif)
    stretched = run_event_dataset(engine, ds, time_base="trained")
    assert stretched.neuron_counts and all(c.sum() > 0 for c in stretched.neuron_counts.values())  # it spikes
    # the same streams stretched by hand onto the 300 ms of 4 steps, then run in real µs
    assert ds.events is not None
    by_hand = [retimed(e, e["t"][-1] + 1, 300_000) for e in ds.events]
    real = run_event_dataset(engine, dataclasses.replace(ds, events=by_hand, recording_us=None))
    np.testing.assert_array_equal(stretched.outputs, real.outputs)
    np.testing.assert_array_equal(stretched.predictions, real.predictions)
    # and not the real-time run: the recordings are 200 to 600 ms, not 300, and LIF leaks
    assert not np.array_equal(stretched.outputs, run_event_dataset(engine, ds).outputs)


def test_neurons_that_do_not_leak_see_no_time_base(per_recording):
    """IF neurons keep no time between inputs: stretching only moves the events, in order."""
    _, if_path, ds = per_recording
    engine = load_event(if_path)
    a, b = run_event_dataset(engine, ds), run_event_dataset(engine, ds, time_base="trained")
    np.testing.assert_array_equal(a.outputs, b.outputs)
    for k in a.neuron_counts:
        np.testing.assert_array_equal(a.neuron_counts[k], b.neuron_counts[k])


def test_a_model_binned_over_the_data_set_span_is_not_stretched(tmp_path):
    """digits were trained on the data set's 300 ms span (as N-MNIST): already real time."""
    path = save(chain_model([Conv(4, pool=2)], classes=10, spec=LIF, w_std=W_STD), tmp_path / "m.onnx")
    ds = load_dataset("digits", "test", 6)
    engine = load_event(path)
    a, b = run_event_dataset(engine, ds), run_event_dataset(engine, ds, time_base="trained")
    np.testing.assert_array_equal(a.outputs, b.outputs)
    assert time_base_note(engine.protocol) is None
    with pytest.raises(InputError, match=r"time base 'training' is unknown; expected one of \['real', 'trained'\]"):
        run_event_dataset(engine, ds, time_base="training")


def test_the_cli_runs_either_time_base_and_says_which(per_recording, tmp_path):
    lif, _, _ = per_recording
    spec = f"tonic:tests.tonic_fixtures.LongRecordings:{tmp_path}"
    real = _cli("run", lif, "--data", spec, "--mode", "event", "--json")
    assert real.returncode == 0, real.stderr
    assert real.stderr.startswith("warning: this model's LIF neurons leak") and "--time-base trained" in real.stderr
    trained = _cli("run", lif, "--data", spec, "--mode", "event", "--time-base", "trained", "--json")
    # the time base's note gone; a single-spike model's own note stays (docs/event_driven.md, Spike rule)
    rule = [n for n in [spike_rule_note(load_event(lif).protocol)] if n]
    assert trained.returncode == 0 and trained.stderr.splitlines() == [f"warning: {n}" for n in rule], trained.stderr
    r, t = json.loads(real.stdout), json.loads(trained.stdout)
    assert (r["time_base"], t["time_base"]) == ("real", "trained") and t["warnings"] == rule
    clock = _cli("run", lif, "--data", spec, "--time-base", "trained")
    assert clock.returncode == 2 and clock.stderr == (
        "error: --time-base trained: only --mode event reads it (the clock run bins as trained)\n"
    )
