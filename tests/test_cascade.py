"""Cascades over T (``cascade:RULE:THRESHOLD,T=T0+T1``): every sample runs at T0, those
whose final readout does not pass the rule run again from the start at T1, re-binned
(hand-built models: no torch, no exporter)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

import runtime
from runtime.data import load_dataset
from runtime.errors import InputError
from runtime.evaluate import run_dataset
from runtime.exit_calibration import RULES, horizon_readouts, replay_cascade
from runtime.policies import Cascade, Confidence, Entropy, PolicyError, parse_policy
from runtime.protocol import read_model
from runtime.session import FinalReadout
from runtime.stream import Stats, run_clock
from tests.runtime_fixtures import save, tiny_model


@pytest.fixture(scope="module")
def events_model(tmp_path_factory):
    return save(tiny_model("event-frames", classes=10, T=6), tmp_path_factory.mktemp("cascade") / "m.onnx")


@pytest.fixture(scope="module")
def val():
    return load_dataset("digits", "val", 48)


def _streams(ds):
    return [ds.events[i] for i in range(len(ds))]


def test_cascade_strings():
    c = parse_policy("cascade:entropy:0.25,T=1+3+6")
    assert c == Cascade(Entropy(0.25), (1, 3, 6)) and c.horizon(6) == 6
    assert str(c) == "cascade:entropy:0.25,T=1+3+6" and parse_policy(str(c)) == c


def test_bad_cascades_are_refused():
    refusals = {
        "cascade:confidence:0.5,T=6+1": "T must increase",
        "cascade:confidence:0.5,T=2+2": "T must increase",
        "cascade:confidence:0.5,T=4": "two or more positive integer T",
        "cascade:confidence:0.5,T=0+4": "two or more positive integer T",
        "cascade:confidence:0.5,T=1+x": "T must be an integer",
        "cascade:confidence:0.5": r"RULE:THRESHOLD,T=N\+N",
        "cascade:fixed:3,T=1+6": "rule is one of",
        "cascade:confidence:0.5,tmin=2,T=1+6": "takes no tmin/tmax",
        "cascade:margin:1.5,T=1+6": "margin threshold must be in",
    }
    for text, match in refusals.items():
        with pytest.raises(PolicyError, match=match):
            parse_policy(text)


def test_each_sample_stops_at_T0_or_runs_again_at_T1(events_model, val):
    s = runtime.load(events_model)
    streams = _streams(val)
    r1, r4 = s.run(streams, 1), s.run(streams, 4)
    final = FinalReadout(1)
    s.run(streams, final, counts=False)
    th = float(np.median(RULES["confidence"][0](final.logits)))
    c = Cascade(Confidence(th), (1, 4))
    r = s.run(streams, c)
    stop = c.passes(final.logits)
    assert 0 < stop.sum() < len(stop)  # the threshold splits the batch
    assert r.steps.tolist() == np.where(stop, 1, 5).tolist()
    assert np.array_equal(r.outputs, np.where(stop[:, None], r1.outputs, r4.outputs))
    assert np.array_equal(r.predictions, r.outputs.argmax(1))
    assert r.spike_counts is not None and r1.spike_counts is not None and r4.spike_counts is not None
    for k, v in r.spike_counts.items():
        assert np.array_equal(v, r1.spike_counts[k] + np.where(stop, 0, r4.spike_counts[k]))
    assert r.cost is not None and r1.cost is not None and r4.cost is not None
    np.testing.assert_allclose(r.cost.acs, r1.cost.acs + np.where(stop, 0, r4.cost.acs), rtol=1e-12)
    assert len(r.batch_per_step) == 1 + 4 and r.batch_per_step[1:] == [int((~stop).sum())] * 4


def test_replay_cascade_is_what_the_session_does(events_model, val):
    """calibrate-exit's replay on recorded readouts gives the runtime's own predictions and
    steps, over a data set in batches (ClockMode) and over a list of streams alike."""
    s = runtime.load(events_model)
    by_horizon = horizon_readouts(s, val, [2, 5], batch_size=16)
    for rule, (score, _) in RULES.items():
        th = float(np.median(score(by_horizon[2][-1])))
        pred, steps = replay_cascade(by_horizon, rule, th, 2, 5)
        policy = f"cascade:{rule}:{th},T=2+5"
        for r in (run_dataset(s, val, policy, batch_size=16), s.run(_streams(val), policy)):
            assert r.steps.tolist() == steps.tolist() and r.predictions.tolist() == pred.tolist()
        assert 2 < steps.mean() < 7


def test_a_cascade_needs_whole_samples(events_model, val, tmp_path):
    s = runtime.load(events_model)
    frames = s.frames(_streams(val)[:4], 6)
    with pytest.raises(InputError, match="frames .* hold one T only: give event streams"):
        s.run(frames, "cascade:confidence:0.5,T=1+6")
    with pytest.raises(InputError, match="runs whole recordings again at a larger T"):
        run_clock(s, iter(()), lambda w: None, Stats(), 1000.0, parse_policy("cascade:confidence:0.5,T=1+6"))
    # a model that stores a cascade as its default runs it on streams, and fixed T on frames
    m = onnx.load(events_model)
    meta = json.loads(m.metadata_props[0].value)
    meta["exit"] = {"policy": "cascade:confidence:0.5,T=1+6"}
    onnx.helper.set_model_props(m, {"flexsnn.protocol": json.dumps(meta)})
    path = save(m, tmp_path / "default.onnx")
    assert read_model(path)[1].exit_policy == "cascade:confidence:0.5,T=1+6"
    d = runtime.load(path)
    assert np.array_equal(d.run(_streams(val)).steps, s.run(_streams(val), "cascade:confidence:0.5,T=1+6").steps)
    assert np.array_equal(d.run(frames).outputs, s.run(frames, 6).outputs)


def test_frames_of_the_stored_policys_horizon_run_the_stored_policy(events_model, val, tmp_path):
    """A stored per-step policy was dropped for frames: the same samples ran 3.7 mean steps
    as streams and 6 as frames, without a word. Frames of its horizon (binned as streams
    would be) now run it; frames for another T run all of their frames, as before."""
    m = onnx.load(events_model)
    meta = json.loads(m.metadata_props[0].value)
    s = runtime.load(events_model)
    streams = _streams(val)
    th = float(np.median(RULES["confidence"][0](s.run(streams, 2).outputs.astype(np.float64))))
    stored = f"confidence:{th},tmin=1,tmax=6"
    meta["exit"] = {"policy": stored}
    onnx.helper.set_model_props(m, {"flexsnn.protocol": json.dumps(meta)})
    d = runtime.load(save(m, tmp_path / "default.onnx"))
    want = s.run(streams, stored)
    assert 1 < want.mean_steps < 6  # the case this is about: the policy stops early
    for got in (d.run(streams), d.run(d.frames(streams, 6))):
        assert np.array_equal(got.steps, want.steps) and np.array_equal(got.outputs, want.outputs)
    four = d.frames(streams, 4)
    assert np.array_equal(d.run(four).outputs, s.run(four, 4).outputs) and d.run(four).mean_steps == 4


def test_a_cascade_over_static_images_repeats_each_image(tmp_path):
    """Images: each run repeats the image T times; the cascade's outputs are those of fixed
    T0 for the samples that stop and of fixed T1 for the others, over a data set too."""
    s = runtime.load(save(tiny_model(classes=10, T=6), tmp_path / "static.onnx"))
    ds = load_dataset("digits:static", "val", 40)
    r2, r5 = s.run(ds.images, 2), s.run(ds.images, 5)
    th = float(np.median(RULES["margin"][0](r2.outputs.astype(np.float64))))
    for r in (s.run(ds.images, f"cascade:margin:{th},T=2+5"), run_dataset(s, ds, f"cascade:margin:{th},T=2+5", 16)):
        stop = r.steps == 2
        assert 0 < stop.sum() < len(stop) and set(r.steps.tolist()) == {2, 7}
        assert np.array_equal(r.outputs, np.where(stop[:, None], r2.outputs, r5.outputs))


def test_a_three_run_cascade_takes_each_run_in_turn(tmp_path):
    s = runtime.load(save(tiny_model(classes=10, T=6), tmp_path / "static.onnx"))
    x = load_dataset("digits:static", "val", 40).images
    r1, r3, r6 = (s.run(x, T) for T in (1, 3, 6))
    s1 = RULES["margin"][0](r1.outputs.astype(np.float64))
    th = float(np.quantile(s1, 0.7))  # about 30% stop after the first run
    r = s.run(x, f"cascade:margin:{th},T=1+3+6")
    assert set(r.steps.tolist()) <= {1, 4, 10} and len(set(r.steps.tolist())) >= 2
    by_steps = {1: r1.outputs, 4: r3.outputs, 10: r6.outputs}
    for i, n in enumerate(r.steps.tolist()):
        assert np.array_equal(r.outputs[i], by_steps[n][i])
    assert (r.steps == 1).sum() == (s1 > th).sum()
