"""Exactness of the event engine: numba kernel vs the plain-Python loop, chunked vs whole
streams, LIF decay against a closed form, convergence of finer clock-driven bins to the
event-driven result, and sinabs IAF parity for IF networks."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from runtime.data.events import bin_events, make_events
from runtime.event import EventEngine, EventInputError, spike_difference
from runtime.event.metrics import stack_counts
from runtime.event.network import GOFF, INV_TAU, VOFF
from runtime.event.reference import run_reference
from runtime.neuron import NeuronKind, kind_of, kinds
from runtime.protocol import parse_protocol
from runtime.session import Session

from .event_fixtures import chain_model, random_stream, run_matching_reference, spec


def engine_of(model) -> EventEngine:
    import json

    meta = json.loads({p.key: p.value for p in model.metadata_props}["flexsnn.protocol"])
    return EventEngine(model, parse_protocol(meta))


def session_of(model) -> Session:
    import json

    meta = json.loads({p.key: p.value for p in model.metadata_props}["flexsnn.protocol"])
    return Session(model, parse_protocol(meta), threads=1)


NEURONS = [
    spec("IF", "multi", "subtract"),
    spec("IF", "single", "zero"),
    spec("LIF", "single", "subtract", decay=0.7, v_min=-0.5),
    spec("LIF", "multi", "zero", decay=0.9),
]


@pytest.mark.parametrize("neuron", NEURONS, ids=lambda s: f"{s.kind}-{s.spike}-{s.reset}")
@pytest.mark.parametrize("readout", ["none", "spike", "li"])
def test_kernel_matches_plain_python(neuron, readout):
    eng = engine_of(chain_model(neuron, readout=readout, scale=0.8))
    stream = random_stream(300, seed=3)
    res, train, ref = run_matching_reference(eng, stream)
    ref_train = np.array(ref.trains[train.layer]).reshape(-1, 3)
    got = np.stack([train.t, train.neuron, train.count], 1)
    by_time = lambda a: a[np.lexsort((a[:, 1], a[:, 0]))]
    np.testing.assert_array_equal(by_time(got), by_time(ref_train))
    assert int(res.synops) == ref.synops


@pytest.mark.parametrize("neuron", NEURONS[:2], ids=lambda s: f"{s.kind}-{s.spike}-{s.reset}")
def test_layers_of_64_and_more_channels_match_plain_python(neuron):
    """The spike pass finds a group's channels at threshold as the bits of one 64-bit word
    up to 64 channels (bit 63 used by the first layer here) and by a count and a gather
    beyond (the second): both fire the same neurons, in the same order, as the reference."""
    eng = engine_of(chain_model(neuron, sensor=(2, 6, 6), channels=(64, 70), scale=0.8))
    run_matching_reference(eng, random_stream(200, (2, 6, 6), seed=5), active=200)


def test_strided_conv_and_batch_match():
    eng = engine_of(chain_model(spec("IF", "multi"), sensor=(2, 13, 11), stride=2, channels=(5,), scale=1.0))
    streams = [random_stream(150, (2, 13, 11), seed=s) for s in range(4)]
    batch = eng.run_batch(streams)
    for b, s in enumerate(streams):
        ref = run_reference(eng.layers, s)
        one, _ = eng.run(s)
        for node in ref.neuron_counts:
            np.testing.assert_array_equal(batch.neuron_counts[node][b], ref.neuron_counts[node])
            np.testing.assert_array_equal(one.neuron_counts[node], ref.neuron_counts[node])
        np.testing.assert_allclose(batch.outputs[b], ref.outputs, atol=1e-12)


def test_batches_reuse_no_state_and_share_no_arrays():
    """run_batch's workers run stream after stream in the same arrays: every stream starts
    from zero (5 streams on at most 2 workers), and no result is overwritten by a later
    call (its counts are views into arrays of that call's own)."""
    eng = engine_of(chain_model(spec("IF", "multi"), readout="spike", scale=1.0))
    batches = [
        [random_stream(150, seed=s) for s in range(5)],
        [random_stream(120, seed=7)],
        [random_stream(90, seed=8)],
    ]
    results = [eng.run_batch(b) for b in batches]
    for streams, got in zip(batches, results):
        for b, stream in enumerate(streams):
            one, _ = eng.run(stream)  # from the initial state, in arrays of its own
            np.testing.assert_array_equal(got.outputs[b], one.outputs)
            for node in one.neuron_counts:
                np.testing.assert_array_equal(got.neuron_counts[node][b], one.neuron_counts[node])
        assert got.outputs.any()


def test_engine_pickles_for_worker_processes():
    """An engine (with its per-thread kernel arrays) pickles, and the copy runs alike."""
    eng = engine_of(chain_model(spec("IF", "multi"), readout="spike", scale=1.0))
    streams = [random_stream(100, seed=s) for s in range(3)]
    want = eng.run_batch(streams)
    copy = pickle.loads(pickle.dumps(eng))
    np.testing.assert_array_equal(copy.run_batch(streams).outputs, want.outputs)
    np.testing.assert_array_equal(copy.run_batch(streams[:1]).outputs, want.outputs[:1])


@pytest.mark.parametrize("neuron", [NEURONS[0], NEURONS[2]], ids=["IF", "LIF"])
def test_chunks_split_anywhere_equal_whole_stream(neuron):
    eng = engine_of(chain_model(neuron, readout="spike", scale=0.8))
    stream = random_stream(400, seed=5)  # timestamps collide: cuts fall inside simultaneous groups
    whole, train = eng.run(stream)
    rng = np.random.default_rng(0)
    for _ in range(3):
        cuts = np.sort(rng.choice(np.arange(1, len(stream)), 12, replace=False))
        state = eng.initial_state()
        sizes, trains = set(), []
        for chunk in np.split(stream, cuts):
            state, tr = eng.feed(state, chunk)
            trains.append(tr)
            sizes.add((state.v.size, state.t_last.size, state.counts.size))
        state, tr = eng.flush(state)
        trains.append(tr)
        got = eng.result(state)
        assert sizes == {(eng.net.n_neurons, eng.net.n_groups, eng.net.n_neurons)}  # bounded by the net
        for node in whole.neuron_counts:
            np.testing.assert_array_equal(got.neuron_counts[node], whole.neuron_counts[node])
        np.testing.assert_array_equal(got.outputs, whole.outputs)
        np.testing.assert_array_equal(np.concatenate([t.t for t in trains]), train.t)
        np.testing.assert_array_equal(np.concatenate([t.neuron for t in trains]), train.neuron)
        assert int(got.events) == len(stream)


def test_a_copied_state_branches_the_stream_and_leaves_the_original_alone():
    """copy.copy of an EventState shared its arrays, so feeding the copy moved the original
    (a stranger's result was wrong with the same event total); sdk.md teaches copy.copy of a
    ClockState as an independent copy, and an EventState now is one too."""
    import copy

    eng = engine_of(chain_model(NEURONS[2], readout="spike", scale=0.8))
    stream = random_stream(400, seed=5)
    whole, _ = eng.run(stream)
    other = stream[150:].copy()
    other["p"] = 1 - other["p"]  # the same times, the other polarity: another continuation
    for copier in (copy.copy, copy.deepcopy, eng.copy_state):
        a, _ = eng.feed(eng.initial_state(), stream[:150])
        b = copier(a)
        eng.flush(eng.feed(b, other)[0])  # the branch runs first
        a, _ = eng.flush(eng.feed(a, stream[150:])[0])
        got = eng.result(a)
        np.testing.assert_array_equal(got.outputs, whole.outputs)
        for node, counts in whole.neuron_counts.items():
            np.testing.assert_array_equal(got.neuron_counts[node], counts)
        assert not np.array_equal(eng.result(b).outputs, whole.outputs)  # the branch did move


def test_one_stream_results_join_as_the_batch_run_of_the_same_streams():
    """The engine's one-stream result holds numpy scalars: EventResult.concat summed them
    (three predictions became one, n == 1) where it should join them as a batch."""
    from runtime.result import EventResult

    eng = engine_of(chain_model(NEURONS[2], readout="spike", scale=0.8))
    streams = [random_stream(300, seed=s) for s in range(3)]
    batch = eng.run_batch(streams)
    ones = EventResult.concat([eng.run(s)[0] for s in streams])
    assert ones.n == 3
    for field in ("predictions", "outputs", "events", "synops"):
        np.testing.assert_array_equal(getattr(ones, field), getattr(batch, field))
    mixed = EventResult.concat([eng.run_batch(streams[:2]), eng.run(streams[2])[0]])  # a batch, then one stream
    np.testing.assert_array_equal(mixed.outputs, batch.outputs)


def test_lif_decay_closed_form():
    """One LIF neuron fed by two inputs of weight 0.6 through a dense layer: the membrane at
    the second event is 0.6 exp(-dt / tau) + 0.6, with tau = -dt_step / ln(decay)."""
    decay, dt_step = 0.5, 1000.0
    tau = -dt_step / math.log(decay)
    model = chain_model(
        spec("LIF", "single", "subtract", decay=decay, dt=dt_step),
        sensor=(2, 1, 1),
        channels=(),
        classes=1,
        readout="spike",
        fc=np.array([[0.6, 0.0]]),
    )
    eng = engine_of(model)
    w = float(np.float32(0.6))  # the weight as stored (float32)
    gap_quiet = int(tau * math.log(0.6 / 0.4)) + 5  # 0.6 e^{-gap/tau} < 0.4: no spike
    gap_fire = int(tau * math.log(0.6 / 0.4)) - 5  # > 0.4: spike
    ev = make_events([0, 0, 0], [0, 0, 0], [0, 0, 0], [100, 100 + gap_quiet, 100 + gap_quiet + gap_fire])
    state = eng.initial_state()
    state, _ = eng.feed(state, ev[:2])
    state, _ = eng.flush(state)
    v2 = w * math.exp(-gap_quiet / tau) + w
    assert state.v[-1] == pytest.approx(v2, rel=1e-12) and v2 < 1.0
    assert eng.result(state).outputs[0] == 0
    state, _ = eng.feed(state, ev[2:])
    state, train = eng.flush(state)
    v3 = v2 * math.exp(-gap_fire / tau) + w
    assert v3 >= 1.0
    assert state.v[-1] == pytest.approx(v3 - 1.0, rel=1e-12)  # fired once, subtract reset
    assert list(train.t) == [int(ev["t"][2])] and eng.result(state).outputs[0] == 1


def clock_counts(model, stream, dt_us: float, duration: float) -> dict[str, np.ndarray]:
    T = math.ceil(duration / dt_us)
    sess = session_of(model)
    frames = bin_events([stream], T, sess.protocol.input_shape, "fixed", dt_us)
    r = sess.run(frames, T, neuron_counts=True)
    return {k: v[0] for k, v in r.neuron_counts.items()}


def test_finer_bins_converge_to_event_driven_if():
    """IF, multi-spike: with bins finer than the gap between events the clock-driven run
    IS the event-driven one (SD exactly 0); coarser bins merge events and differ."""
    model = chain_model(spec("IF", "multi"), sensor=(2, 8, 8), channels=(4, 4), scale=0.9, duration_us=2000, T=10)
    stream = random_stream(120, (2, 8, 8), 2000, seed=2, unique_t=True)
    eng = engine_of(model)
    res, _ = eng.run(stream)
    nodes = list(res.neuron_counts)
    sds = []
    for dt in (1000.0, 100.0, 10.0, 1.0):
        s0 = clock_counts(model, stream, dt, 2000)
        sds.append(float(spike_difference(stack_counts(s0, nodes, 0), stack_counts(res.neuron_counts, nodes, 0))))
    assert sds[0] > 0.05 and sds[-1] == 0.0
    assert sds == sorted(sds, reverse=True)


def test_finer_bins_converge_to_event_driven_lif():
    """LIF: at each bin width the model's decay per step is exp(-dt / tau) for one tau; SD
    falls towards 0 as the bins get finer."""
    tau = 400.0
    stream = random_stream(120, (2, 8, 8), 2000, seed=4, unique_t=True)
    sds, event_counts = [], None
    for dt in (500.0, 50.0, 5.0, 1.0):
        neuron = spec("LIF", "multi", "subtract", decay=math.exp(-dt / tau), dt=dt)
        model = chain_model(neuron, sensor=(2, 8, 8), channels=(4, 4), scale=0.9, duration_us=2000)
        if event_counts is None:
            event_counts = engine_of(model).run(stream)[0].neuron_counts
        nodes = list(event_counts)
        s0 = clock_counts(model, stream, dt, 2000)
        sds.append(float(spike_difference(stack_counts(s0, nodes, 0), stack_counts(event_counts, nodes, 0))))
    assert sds[0] > 0.05 and sds[-1] < 0.02 and sds[-1] < sds[1] < sds[0]


def test_finer_bins_converge_to_event_driven_li_readout():
    """An LI readout (decay exp(-dt / tau) per step at each bin width): the clock reads its
    membrane at the end of the last bin, decayed through every step since its last input;
    the event outputs, read at the recording's end, are what finer bins approach. The
    stream stops 500 µs (1.25 tau) before the end: read at the last event that reached
    them, the outputs were about 3.5 times the clock's. The IF layers fire alike at 1 µs
    (one event per bin): what is left is the readout's discretisation, about dt / tau."""
    tau, duration = 400.0, 2000
    stream = random_stream(120, (2, 8, 8), 1500, seed=4, unique_t=True)
    errors, event = [], None
    for dt in (100.0, 10.0, 1.0):
        neuron, li_decay = spec("IF", "multi", dt=dt), math.exp(-dt / tau)
        model = chain_model(neuron, (2, 8, 8), (4, 4), readout="li", scale=0.9, duration_us=duration, li_decay=li_decay)
        if event is None:
            event = engine_of(model).run(stream, until=duration)[0].outputs
            assert np.abs(event).max() > 0.5  # the readout was reached
        sess, T = session_of(model), math.ceil(duration / dt)
        clock = sess.run(bin_events([stream], T, sess.protocol.input_shape, "fixed", dt), T).outputs[0]
        errors.append(float(np.abs(clock - event).max() / np.abs(event).max()))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.005, errors


def test_an_li_readout_is_read_at_the_instant_the_stream_was_run_to(monkeypatch):
    """An LI readout's outputs are its membranes at the stream's end (``until``, fractions
    kept), each decayed from the last input that reached it (they were read at that input:
    another scale than the clock run's), bit for bit alike whole (run), streamed (feed in
    chunks, flush(until)) and batched (run_batch, on numba's threads and on the calling
    one); after feed alone, at the held-back timestamp the state was run to. A readout of
    decay 1 is read as it stands."""
    from runtime import forks

    eng = engine_of(chain_model(NEURONS[2], readout="li", scale=0.8))
    streams = [random_stream(300 + 50 * s, seed=s) for s in range(3)]
    until = 130_000.75  # 30 ms after the streams' ends (tau: 45 ms)
    whole = [eng.run(s, until=until)[0].outputs for s in streams]
    batch = eng.run_batch(streams, until=until).outputs
    monkeypatch.setattr(forks.FORKS, "after_layer", True)  # run_streams_serial, as in a forked child
    serial = eng.run_batch(streams, until=until).outputs
    L, lm = len(eng.layers) - 1, eng.net.F[-1, INV_TAU]
    voff, goff = eng.net.P[L, VOFF], eng.net.P[L, GOFF]  # a dense readout: one group, ONNX order
    for b, stream in enumerate(streams):
        state = eng.initial_state()
        for chunk in np.array_split(stream, 7):
            state, _ = eng.feed(state, chunk)
        fed = eng.result(state).outputs
        np.testing.assert_array_equal(fed, eng.run(stream[stream["t"] < state.t_now], until=state.t_now)[0].outputs)
        state, _ = eng.flush(state, until=until)
        assert state.t_read == until and state.t_now == math.ceil(until)
        streamed = eng.result(state).outputs
        for got in (whole[b], batch[b], serial[b]):
            np.testing.assert_array_equal(got, streamed)
        v, t_last = state.v[voff : voff + len(streamed)], state.t_last[goff]
        assert math.exp(-(until - t_last) * lm) < 0.6  # the decay matters
        np.testing.assert_allclose(streamed, v * math.exp(-(until - t_last) * lm), rtol=1e-13)
    # per stream (run_batch's list form), and an until before the last event: read at that event
    early = [float(s["t"][-1]) - 20_000 for s in streams]
    per = eng.run_batch(streams, until=[until, *early[1:]]).outputs
    np.testing.assert_array_equal(per[0], whole[0])
    for b in (1, 2):
        np.testing.assert_array_equal(per[b], eng.run(streams[b])[0].outputs)
        ref = run_reference(eng.layers, streams[b], until=early[b])  # the plain-Python reference reads there too
        np.testing.assert_allclose(ref.outputs, per[b], rtol=1e-12)
    with pytest.raises(EventInputError, match=r"one time in µs or one per stream \(3\)"):
        eng.run_batch(streams, until=[until, until])
    flat = engine_of(chain_model(NEURONS[2], readout="li", li_decay=1.0, scale=0.8))
    state, _ = flat.flush(flat.feed(flat.initial_state(), streams[0])[0], until=until)
    np.testing.assert_array_equal(flat.result(state).outputs, state.v[voff : voff + 3])
    np.testing.assert_array_equal(flat.run_batch(streams[:1], until=until).outputs[0], state.v[voff : voff + 3])


@pytest.mark.parametrize(
    "neuron", [spec("IF", "multi", "subtract"), spec("IF", "single", "zero")], ids=["multi-subtract", "single-zero"]
)
def test_sinabs_iaf_parity(neuron):
    """sinabs' IAF (an independent implementation) on input binned one event per bin gives
    the same spikes per neuron and the same readout as the event engine."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("sinabs")
    import sinabs.activation as act  # never sinabs.backend.dynapcnn: it imports samna
    import sinabs.layers as sl
    from onnx import numpy_helper

    model = chain_model(neuron, sensor=(2, 10, 10), channels=(4, 6), scale=0.9)
    eng = engine_of(model)
    stream = random_stream(150, (2, 10, 10), seed=7, unique_t=True)
    res, _ = eng.run(stream)
    w = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
    spike_fn = act.MultiSpike if neuron.spike == "multi" else act.SingleSpike
    reset_fn = act.MembraneSubtract() if neuron.reset == "subtract" else act.MembraneReset()
    iafs = [sl.IAF(spike_threshold=neuron.v_th, spike_fn=spike_fn, reset_fn=reset_fn) for _ in range(2)]
    frames = torch.zeros(len(stream), 2, 10, 10)  # bin k holds event k only
    frames[
        torch.arange(len(stream)),
        torch.from_numpy(stream["p"].astype(np.int64)),
        torch.from_numpy(stream["y"].astype(np.int64)),
        torch.from_numpy(stream["x"].astype(np.int64)),
    ] = 1
    counts = [0, 0]
    out = torch.zeros(3)
    with torch.no_grad():
        for f in frames:
            h = f[None]
            for i, iaf in enumerate(iafs):
                h = torch.nn.functional.conv2d(h, w[f"w{i}"], padding=1)
                s = iaf(h[:, None])[:, 0]
                counts[i] = counts[i] + s[0]
                h = torch.nn.functional.avg_pool2d(s, 2)
            out += torch.nn.functional.linear(h.flatten(1), w["wfc"])[0]
    assert sum(int(c.sum()) for c in counts) > 50
    for i, node in enumerate(res.neuron_counts):
        np.testing.assert_array_equal(res.neuron_counts[node], counts[i].numpy())
    np.testing.assert_allclose(res.outputs, out.numpy(), atol=1e-5)


def test_kept_kernel_arrays_start_afresh_every_run():
    """The kernel's working arrays are kept per thread between runs (make_scratch): every
    run, in any order, equals the plain-Python loop, including an input wave of 1,000
    simultaneous events, wider than every layer (576 neurons: the spike buffers grow for
    it). CubaLIF, whose crossing heap is rebuilt each run: tests/test_cuba_lif_event_driven.py."""
    eng = engine_of(chain_model(spec("IF", "multi", "subtract"), scale=0.8))
    rng = np.random.default_rng(5)
    wide = make_events(rng.integers(0, 12, 1000), rng.integers(0, 12, 1000), rng.integers(0, 2, 1000), np.zeros(1000))
    wide = np.concatenate([wide, random_stream(200, seed=6)])
    wide = wide[np.argsort(wide["t"], kind="stable")]
    plain = random_stream(300, seed=3)
    results = [run_matching_reference(eng, stream)[0] for stream in (plain, wide, plain, wide)]
    # run_batch: each worker makes its arrays for the widest wave of its streams, and
    # starts every stream from zero in them
    batch = eng.run_batch([plain, wide, plain, wide])
    for b, one in enumerate(results):
        np.testing.assert_array_equal(batch.outputs[b], one.outputs)
        for node in one.neuron_counts:
            np.testing.assert_array_equal(batch.neuron_counts[node][b], one.neuron_counts[node])


def test_state_holds_only_what_the_network_uses():
    """IF and LIF layers have no second state and never cross a threshold between inputs:
    their streams carry (and allocate, and zero) no arrays for those; the kinds that do
    carry them in full (tests/test_alif_event_driven.py, tests/test_cuba_lif_event_driven.py)."""
    for neuron in (NEURONS[0], NEURONS[2]):
        eng = engine_of(chain_model(neuron, scale=0.8))
        state = eng.initial_state()
        assert (state.v.size, state.counts.size) == (eng.net.n_neurons, eng.net.n_neurons)
        assert state.a.size == state.t_neuron.size == state.crossing.size == 0


def test_event_results_time_their_run():
    """docs/sdk.md: the event result has the clock result's ``seconds``; run() and a
    streamed state's result() reported 0.0 (only run_batch timed itself)."""
    e = engine_of(chain_model(spec("IF", "multi", "subtract")))
    ev = random_stream(2000, seed=1)
    r, _ = e.run(ev)
    assert r.seconds > 0
    state, _ = e.feed(e.initial_state(), ev[:1000])
    first = e.result(state).seconds
    state, _ = e.feed(state, ev[1000:])
    assert 0 < first < e.result(state).seconds  # the time of every call so far
    assert e.result(e.initial_state()).seconds == 0.0


def test_a_state_of_another_network_is_refused():
    """The kernel indexes a state's arrays by its own network's layout: another network's
    state was read out of bounds or mixed in silently."""
    e = engine_of(chain_model(spec("IF", "multi", "subtract")))
    wider = engine_of(chain_model(spec("IF", "multi", "subtract"), channels=(5, 6)))
    ev = random_stream(200, seed=1)
    for call in (lambda st: e.feed(st, ev), lambda st: e.flush(st)):
        with pytest.raises(EventInputError, match="made by the engine of another network"):
            call(wider.initial_state())
        with pytest.raises(EventInputError, match="state is of type NoneType; expected an EventState"):
            call(None)
    e.feed(e.initial_state(), ev)  # its own: runs
    # the same shapes, other weights: accepted once, and its outputs were those of neither model
    other = engine_of(chain_model(spec("IF", "multi", "subtract"), seed=1))
    with pytest.raises(EventInputError, match="made by the engine of another model"):
        e.feed(other.initial_state(), ev)
    again = engine_of(chain_model(spec("IF", "multi", "subtract")))  # the same model, loaded again
    np.testing.assert_array_equal(
        again.result(again.feed(e.initial_state(), ev)[0]).outputs, e.result(e.feed(e.initial_state(), ev)[0]).outputs
    )


@pytest.mark.parametrize("neuron", [NEURONS[0], NEURONS[2]], ids=["IF", "LIF"])
def test_an_empty_stream_runs_as_no_input(neuron):
    """A recording in which the sensor saw nothing (or a crop emptied) is run, not refused
    (one such recording stopped a whole data set in event mode while clock mode ran it):
    no spikes, the outputs at rest as clock mode gives them, and the streams beside it in a
    batch unchanged. The two-state kinds: tests/test_neuron_kinds_e2e.py."""
    model = chain_model(neuron, readout="li", scale=0.8)
    eng, ses = engine_of(model), session_of(model)
    empty, stream = random_stream(0, seed=1), random_stream(300, seed=2)
    alone, train = eng.run(empty, until=50_000)
    assert train.t.size == 0 and all(c.sum() == 0 for c in alone.neuron_counts.values())
    np.testing.assert_array_equal(alone.outputs, ses.run([empty]).outputs[0])
    batch = eng.run_batch([stream, empty, stream])
    np.testing.assert_array_equal(batch.outputs[1], alone.outputs)
    np.testing.assert_array_equal(batch.outputs[[0, 2]], eng.run_batch([stream, stream]).outputs)
    assert batch.events.tolist() == [300, 0, 300]


# where each kind's event-driven form is checked against finer and finer clock-driven bins
# (the event engine's exactness claim, docs/event_driven.md)
CONVERGENCE_TESTS = {
    "IF": ("test_event_engine.py", "test_finer_bins_converge_to_event_driven_if"),
    "LIF": ("test_event_engine.py", "test_finer_bins_converge_to_event_driven_lif"),
    "LI": ("test_event_engine.py", "test_finer_bins_converge_to_event_driven_li_readout"),
    "CubaLIF": ("test_cuba_lif_event_driven.py", "test_finer_bins_converge_to_event_driven"),
    "ALIF": ("test_alif_event_driven.py", "test_finer_bins_converge_to_event_driven"),
}


def test_every_kind_with_an_event_form_has_a_convergence_test():
    """A kind that declares an event form gets a finer-bins test: an event form that ran
    another neuron (a refractory LIF declaring LIF's leaky form) passed every generic test.
    Asked of the class, not of specs: a stranger's refractory LIF had an event form at
    t_ref = 0 only, which no preset or default spec reached."""
    for kind in kinds():
        if type(kind_of(kind)).event_form is not NeuronKind.event_form:  # declared, or kept from its parent
            assert kind in CONVERGENCE_TESTS, f"{kind} has an event form but no finer-bins convergence test"
    for file, name in CONVERGENCE_TESTS.values():  # read, not imported: this file runs without torch
        assert f"def {name}(" in (Path(__file__).parent / file).read_text(), (file, name)
