"""CubaLIF in the event engine (runtime/neuron/cuba_lif.py, event-driven form; the maths in
runtime/event/kernel.py, flow and next_crossing): the crossing-time solver against closed forms, the numba
kernel equals the plain-Python reference, chunks equal the whole stream, and clock runs
at finer bins (the same continuous-time neuron re-timed) converge to the event run."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from export.onnx_export import export_onnx
from runtime.event import engine as engine_module
from runtime.event import load_event
from runtime.event.exit import run_with_exit
from runtime.event.kernel import _regroup, flow, lazy_crossing, next_crossing, peak_gain
from runtime.event.reference import run_reference
from runtime.eventinput import EventInputError
from runtime.limits import ResourceError
from runtime.neuron import CubaLIFSpec, NeuronSpec, kind_of, make_spec
from tests.event_fixtures import finer_bin_sds, random_stream
from tests.export_helpers import config, model
from trainer.config import NeuronConfig

SENSOR, DURATION = (2, 8, 8), 2000
DT0 = 100.0  # the "trained" bin width (µs): syn_gain 1 there


def cuba_onnx(path: Path, dt: float, tau: float = 400.0, tau_syn: float = 200.0, v_th: float = 1.0, **rules) -> Path:
    """A bias-free 2C1FC CubaLIF net whose weights do not depend on dt (seeded): the neuron
    with time constants ``tau``, ``tau_syn`` and bin width DT0, re-timed to bins of ``dt`` µs."""
    cfg = config(width=4, bn=False, bias=False, kind="CubaLIF", **rules)
    spec = dataclasses.replace(
        cfg.neuron.spec, decay=math.exp(-DT0 / tau), decay_syn=math.exp(-DT0 / tau_syn), dt=DT0, v_th=v_th
    )
    assert isinstance(spec, CubaLIFSpec)
    cfg.neuron = NeuronConfig(spec.retimed(dt))
    cfg.data.duration_us = dt * cfg.train_T  # one step is one bin of dt µs
    return export_onnx(cfg, model(cfg, seed=1), path)


def v_at(tau: float, v0: float, i0: float, lm: float, ls: float, c: float) -> float:
    em, _, k = flow(tau, lm, ls, c)
    return em * v0 + k * i0


@pytest.mark.parametrize(
    "lm, ls, exact",
    [
        (0.0, 0.0, lambda v0, ci, lm, ls, th: (th - v0) / ci),  # a line
        (0.0, 0.01, lambda v0, ci, lm, ls, th: -math.log(1 - (th - v0) * ls / ci) / ls),
        (0.01, 0.0, lambda v0, ci, lm, ls, th: -math.log((ci / lm - th) / (ci / lm - v0)) / lm),
    ],
    ids=["no-decays", "no-leak", "constant-current"],
)
def test_crossing_time_equals_the_closed_form(lm, ls, exact):
    v0, i0, c, th, t0 = 0.2, 0.5, 0.1, 1.0, 1000.0
    t = next_crossing(t0, v0, i0, th, lm, ls, c)
    assert t - t0 == pytest.approx(exact(v0, c * i0, lm, ls, th), rel=1e-12)


@pytest.mark.parametrize("lm, ls", [(0.01, 0.02), (0.02, 0.01), (0.01, 0.01), (0.01, 0.01 * (1 + 1e-9))])
def test_crossing_is_the_first_float_time_at_threshold(lm, ls):
    """Two decays (equal, nearly equal: the expm1 form): the solver returns a time where
    v >= th whose float predecessor is below th, and the flow matches the ODE (a fine RK4)."""
    v0, i0, c, th, t0 = 0.2, 0.5, 0.1, 1.0, 1000.0
    t = next_crossing(t0, v0, i0, th, lm, ls, c)
    assert t < math.inf
    assert v_at(t - t0, v0, i0, lm, ls, c) >= th - 1e-15
    assert v_at(np.nextafter(t, 0) - t0, v0, i0, lm, ls, c) < th
    y, h = np.array([v0, i0]), 1e-3  # RK4 of dv/dt = -lm v + c i, di/dt = -ls i
    rhs = lambda y: np.array([-lm * y[0] + c * y[1], -ls * y[1]])
    for _ in range(round((t - t0) / h)):
        k1 = rhs(y)
        k2 = rhs(y + h / 2 * k1)
        k3 = rhs(y + h / 2 * k2)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + rhs(y + h * k3))
    assert y[0] == pytest.approx(th, abs=1e-4)  # t - t0 is not a multiple of h


def test_every_crossing_found_is_at_threshold_with_its_predecessor_below():
    """The solver's contract over random states, decays (equal, none, either), stream times
    (0 to 1e9 µs) and grazing peaks: a time t with v(t) >= th and v(t's float predecessor) <
    th, whatever way it narrows its bracket (Newton with a probe past the root since
    bisection took 50 to 60 evaluations per crossing: CubaLIF ran at 1/20 of ALIF's speed)."""
    rng = np.random.default_rng(0)
    found = 0
    for _ in range(4000):
        lm, ls = rng.choice([0.0, 1.3862943611198906e-05, 1e-3]), rng.choice([0.0, 1.3862943611198906e-05, 5e-4])
        c, t0 = rng.choice([2e-5, 0.1]), rng.choice([0.0, rng.uniform(0, 3e5), rng.uniform(0, 1e9)])
        v0, i0 = rng.uniform(-1, 0.999999), rng.exponential(3) * (lm + ls + 1e-6) / c
        t = next_crossing(t0, v0, i0, 1.0, lm, ls, c)
        if t == math.inf:
            continue
        found += 1
        assert t > t0 and v_at(t - t0, v0, i0, lm, ls, c) >= 1.0, (t0, v0, i0, lm, ls, c)
        assert v_at(np.nextafter(t, -math.inf) - t0, v0, i0, lm, ls, c) < 1.0, (t0, v0, i0, lm, ls, c)
    assert found > 1000


def test_no_crossing_when_the_peak_stays_below_threshold():
    lm, ls, c = 0.01, 0.02, 0.1
    assert next_crossing(0.0, 0.2, -0.5, 1.0, lm, ls, c) == math.inf  # a negative current
    assert next_crossing(0.0, 0.9, 0.05, 1.0, lm, ls, c) == math.inf  # falling from the start
    # rising, but peaking just below th: with i0 = 0.35889, v from 0.2 peaks at 1.0
    assert next_crossing(0.0, 0.2, 0.35889 * 0.99, 1.0, lm, ls, c) == math.inf
    assert next_crossing(0.0, 0.2, 0.35889 * 1.01, 1.0, lm, ls, c) < math.inf
    assert next_crossing(0.0, 0.2, 1.0, 1.0, lm, 0.0, c / 100) == math.inf  # steady state 0.1 * 1 / 0.01 < 1


def test_retimed_keeps_the_time_constants_and_the_continuous_neuron():
    spec = make_spec("CubaLIF", decay=0.8, decay_syn=0.6, dt=50.0)
    assert isinstance(spec, CubaLIFSpec)
    fine = spec.retimed(5.0)
    assert (fine.tau, fine.tau_syn, fine.dt) == pytest.approx((spec.tau, spec.tau_syn, 5.0))
    assert fine.charge_rate == pytest.approx(spec.charge_rate, rel=1e-12)
    # by hand: c = 1 / (50 * m(0.8) * m(0.6)), m(d) = (1 - d) / ln(1/d); at 5 µs the decays
    # are 0.8 ** 0.1 and 0.6 ** 0.1 (float32, as the graph reads them)
    m = lambda d: (1 - d) / -math.log(d)
    assert spec.charge_rate == pytest.approx(1 / (50 * m(0.8) * m(0.6)), rel=1e-6)
    d32 = lambda d: float(np.float32(d))
    want_gain = 5 * m(d32(0.8**0.1)) * m(d32(0.6**0.1)) * spec.charge_rate
    assert fine.syn_gain == pytest.approx(want_gain, rel=1e-9) and 0.12 < fine.syn_gain < 0.15
    assert spec.retimed(50.0) == spec  # the trained width: the trained neuron, syn_gain 1
    # files written before syn_gain existed read as syn_gain 1
    d = spec.to_dict()
    del d["syn_gain"]
    assert NeuronSpec.from_dict(d) == spec


def _clock_steady_membrane(spec: CubaLIFSpec, per_bin: float, bins: int) -> float:
    """The membrane after ``bins`` clock steps of the kind's own step under a constant input."""
    state = (np.zeros(1), np.zeros(1))
    for _ in range(bins):
        _, state = kind_of("CubaLIF").step(spec, state, np.full(1, per_bin))
    return float(state[0][0])


def _event_mean_membrane(spec: CubaLIFSpec, per_bin: float, periods: int, samples: int = 400) -> float:
    """The event-driven form's membrane, one input of ``per_bin`` every ``spec.dt`` µs, run
    ``periods`` periods (the engine's closed-form flow) and averaged over the last one."""
    form = kind_of("CubaLIF").event_form(spec)
    lm, ls, c = form.inv_tau, form.inv_tau_syn, form.charge
    v = i = 0.0
    for _ in range(periods):
        i += per_bin
        em, es, k = flow(spec.dt, lm, ls, c)
        v, i = em * v + k * i, es * i
    i += per_bin
    taus = (np.arange(samples) + 0.5) * spec.dt / samples  # midpoints over the last period
    return float(np.mean([v_at(t, v, i, lm, ls, c) for t in taus]))


@pytest.mark.parametrize("decay, decay_syn", [(0.5, 0.5), (0.9, 0.6), (1.0, 0.7), (0.6, 0.95)])
def test_event_form_and_retimed_steps_keep_the_trained_steady_state_gain(decay, decay_syn):
    """A steady input drives the trained step's membrane to ``I / ((1 - decay_syn)(1 -
    decay))`` (here with no threshold in reach); the event-driven form driven at the same
    rate must hold the same mean, and so must the clock step at a finer bin. With the
    forward-Euler charge ``syn_gain / dt`` the event form got ``m(decay) * m(decay_syn)`` of
    it (0.52 at the default decays 0.5): trained CubaLIF models lost 9 to 40 points
    event-driven on the digits."""
    spec = make_spec("CubaLIF", decay=decay, decay_syn=decay_syn, dt=DT0, v_th=1e30)
    assert isinstance(spec, CubaLIFSpec)
    I = 0.01
    if decay == 1.0:  # no membrane leak: no steady state; compare the charge per bin instead
        trained = _clock_steady_membrane(spec, I, 401) - _clock_steady_membrane(spec, I, 400)
        event = _event_mean_membrane(spec, I, 401) - _event_mean_membrane(spec, I, 400)
        assert event == pytest.approx(trained, rel=1e-4) and trained == pytest.approx(I / (1 - decay_syn), rel=1e-4)
        return
    trained = _clock_steady_membrane(spec, I, 600)
    assert trained == pytest.approx(I / ((1 - decay_syn) * (1 - decay)), rel=1e-4)
    assert _event_mean_membrane(spec, I, 600) == pytest.approx(trained, rel=1e-4)
    fine = spec.retimed(DT0 / 10)  # the same input rate: I / 10 per bin of a tenth
    assert _clock_steady_membrane(fine, I / 10, 6000) == pytest.approx(trained, rel=1e-4)


def test_a_lazy_crossing_is_the_solvers_time_or_a_time_before_it():
    """The kernel enters a bound after a touch and solves when its clock gets there
    (kernel.lazy_crossing): a bound past the solver's root would run an input before the
    crossing it follows, and an "exact" answer must be the solver's to the bit. Random
    states as above, with gaps down to 1e-15 of th (where the solver's root is moved most by
    rounding) and peaks grazing th (the never-crossing test's edge)."""
    rng = np.random.default_rng(1)
    kinds = {"bound": 0, "never": 0, "solved": 0}
    for _ in range(6000):
        lm, ls = rng.choice([0.0, 1.3862943611198906e-05, 1e-3]), rng.choice([0.0, 1.3862943611198906e-05, 5e-4])
        c, t0 = rng.choice([2e-5, 0.1]), rng.choice([0.0, rng.uniform(0, 3e5), rng.uniform(0, 1e9)])
        v0 = rng.choice([rng.uniform(-1, 0.999999), 1.0 - 10.0 ** rng.uniform(-15, -3)])
        i0 = rng.exponential(3) * (lm + ls + 1e-6) / c
        gain = peak_gain(lm, ls, c)
        if rng.random() < 0.3 and 0 < gain < math.inf:  # the peak within 1e-9 of th, either side
            i0 = (1.0 - max(v0, 0.0)) / gain * (1.0 + rng.uniform(-1e-9, 1e-9))
        want = next_crossing(t0, v0, i0, 1.0, lm, ls, c)
        t, exact = lazy_crossing(t0, v0, i0, 1.0, lm, ls, c, gain)
        if exact:
            assert t == want, (t0, v0, i0, lm, ls, c)
            kinds["never" if t == math.inf and c * i0 - lm * v0 > 0 < i0 else "solved"] += 1
        else:
            assert t0 <= t <= want, (t0, v0, i0, lm, ls, c)
            kinds["bound"] += 1
    assert min(kinds.values()) > 300, kinds  # each way taken: the test reaches every branch


def test_the_heap_of_groups_gives_the_earliest_neuron_of_all_lowest_index_on_ties():
    """One heap entry per group (kernel._regroup) stands for one entry per neuron: after any
    change to a group's times its first entry is the earliest neuron of all, the lowest
    index among equal times (the order in which one wave's crossings fire and reach the next
    layer, as the plain-Python loop orders them). Times from a small set, so ties are common."""
    rng = np.random.default_rng(2)
    groups, co = 40, 5
    times = np.array([0.5, 1.0, 1.0, 2.0, math.inf, math.inf])
    pred = rng.choice(times, groups * co)
    heap, hpos, rep = np.empty(groups * co, np.int64), np.full(groups * co, -1), np.full(groups, -1)
    n = 0
    for g in range(groups):
        n = _regroup(heap, hpos, n, pred, rep, g, g * co, co)
    for _ in range(3000):
        g = int(rng.integers(groups))
        pred[g * co + rng.integers(co, size=2)] = rng.choice(times, 2)
        n = _regroup(heap, hpos, n, pred, rep, g, g * co, co)
        finite = np.flatnonzero(pred < math.inf)
        assert n == len({int(j) // co for j in finite})  # one entry per group with a time
        if n:
            first = finite[np.lexsort((finite, pred[finite]))[0]]  # by time, then index
            assert heap[0] == first, (heap[0], first)


@pytest.mark.parametrize(
    "rules",
    [{"spike": "multi", "reset": "subtract"}, {"spike": "single", "reset": "zero", "v_min": -0.5}],
    ids=["multi-subtract", "single-zero-clamp"],
)
def test_kernel_matches_plain_python_and_spikes_fall_between_inputs(tmp_path, rules):
    stream = random_stream(300, SENSOR, DURATION, seed=3)
    eng = load_event(cuba_onnx(tmp_path / "a.onnx", DT0, **rules))
    res, train = eng.run(stream, until=DURATION)
    ref = run_reference(eng.layers, stream, until=DURATION)
    assert sum(int(c.sum()) for c in res.neuron_counts.values()) > 100  # active: a real check
    for node in res.neuron_counts:
        np.testing.assert_array_equal(res.neuron_counts[node], ref.neuron_counts[node])
    np.testing.assert_array_equal(res.outputs, ref.outputs)
    got = np.stack([train.t, train.neuron, train.count], 1)
    want = np.array(ref.trains[train.layer], np.float64).reshape(-1, 3)
    by_time = lambda a: a[np.lexsort((a[:, 1], a[:, 0]))]
    np.testing.assert_array_equal(by_time(got), by_time(want))  # crossing times to the last bit
    # inputs move the current, not the membrane: every spike comes at a time no input marks,
    # found by the crossing solver (without it neurons fire late, at the next input)
    assert len(train) > 20 and not np.isin(train.t, stream["t"]).any()
    assert np.any(train.t > stream["t"].max())  # crossings after the last input, up to `until`
    assert train.t.max() <= DURATION
    # chunked equals whole: currents, per-neuron times and pending crossings travel in the state
    state = eng.initial_state()
    assert state.a.size == state.t_neuron.size == state.crossing.size == eng.net.n_neurons
    for part in np.array_split(stream, 7):
        state, _ = eng.feed(state, part)
    state, _ = eng.flush(state, until=DURATION)
    np.testing.assert_array_equal(eng.result(state).outputs, res.outputs)
    for node in res.neuron_counts:
        np.testing.assert_array_equal(eng.result(state).neuron_counts[node], res.neuron_counts[node])
    batch = eng.run_batch([stream, stream[:100]], until=DURATION)
    np.testing.assert_array_equal(batch.outputs[0], res.outputs)
    # the kernel's arrays are kept between runs (make_scratch): a run after those others,
    # in the same thread, rebuilds the crossing heap from its own state alone
    again, again_train = eng.run(stream, until=DURATION)
    np.testing.assert_array_equal(again.outputs, res.outputs)
    np.testing.assert_array_equal(again_train.t, train.t)
    with pytest.raises(EventInputError, match="until must be a finite time"):
        eng.run(stream, until=math.inf)
    # not a number: TypeError from float() (a str, a one-element array); True ran as 1 µs,
    # 1e300 set t_now to a 301-digit integer
    for bad, message in [("100", "one number"), (True, "one number"), (np.array([300.0]), "one number")] + [
        (2.0**44, "beyond 8796093022208 µs")
    ]:
        with pytest.raises(EventInputError, match=message):
            eng.run(stream, until=bad)
        with pytest.raises(EventInputError, match=message):
            eng.flush(eng.initial_state(), until=bad)


def test_bounds_tied_with_a_crossing_wave_fire_at_their_own_crossing(tmp_path):
    """Near the engine's latest time (8.8e12 µs) float64 times are 2e-3 µs apart, so a
    neuron's bound (kernel.lazy_crossing) often equals another neuron's crossing; the wave at
    that time must solve the bound, not fire it (it fired it: both streams differed from the
    plain-Python loop, which solves every crossing at once, and one chunked from whole). A
    low threshold for many crossings; the reference stays under a second."""
    eng = load_event(cuba_onnx(tmp_path / "a.onnx", DT0, v_th=0.1))
    for seed in (0, 2):
        stream = random_stream(50, SENSOR, DURATION, seed=seed)
        stream["t"] += 8 * 10**12
        until = float(stream["t"][-1]) + 500.0
        res, train = eng.run(stream, until=until)
        ref = run_reference(eng.layers, stream, until=until)
        assert sum(int(c.sum()) for c in res.neuron_counts.values()) > 20000
        np.testing.assert_array_equal(res.outputs, ref.outputs)
        for node in res.neuron_counts:
            np.testing.assert_array_equal(res.neuron_counts[node], ref.neuron_counts[node])
        state = eng.initial_state()
        for part in np.array_split(stream, 7):
            state, _ = eng.feed(state, part)
        state, _ = eng.flush(state, until=until)
        np.testing.assert_array_equal(eng.result(state).outputs, res.outputs)


def test_a_spike_train_outgrowing_the_memory_limit_is_refused_and_so_is_its_state(tmp_path, monkeypatch):
    """A model can fire without bound (CubaLIF time constants of about 1 µs and weights x50
    recorded 249 M spikes in 72 µs of stream, and the system killed the process at 22 GB):
    the recorded spike train grows only within the memory limit (``runtime.limits``), and
    a state an error left part-way through a chunk is refused, while a copy taken before
    that chunk goes on to the whole stream's result."""
    eng = load_event(cuba_onnx(tmp_path / "a.onnx", DT0, v_th=0.1))
    stream = random_stream(50, SENSOR, DURATION, seed=0)
    whole, train = eng.run(stream, until=DURATION)
    first = eng.record_size + 1024  # the buffer's first length for 50 events
    assert len(train) > 2 * first  # it grew twice or more
    monkeypatch.setenv("FLEXSNN_MAX_MEMORY", str(2 * first * 24))  # t, neuron, count: 24 bytes a spike
    with pytest.raises(ResourceError, match=r"recording layer \S+'s spikes \([\d,]+ by t = \d+ µs"):
        eng.run(stream, until=DURATION)
    state = eng.initial_state()
    parts = np.array_split(stream, 7)
    q = 0  # the chunk that fails
    with pytest.raises(ResourceError):
        for q in range(len(parts)):  # q is read after the loop
            before = eng.copy_state(state)
            state, _ = eng.feed(state, parts[q])
    assert 0 < q < len(parts) - 1  # it failed part-way through the stream
    for call in (lambda: eng.feed(state, parts[-1]), lambda: eng.flush(state), lambda: eng.result(state)):
        with pytest.raises(EventInputError, match="left part-way through a chunk by an error"):
            call()
    monkeypatch.delenv("FLEXSNN_MAX_MEMORY")
    for part in parts[q:]:
        before, _ = eng.feed(before, part)
    before, _ = eng.flush(before, until=DURATION)
    np.testing.assert_array_equal(eng.result(before).outputs, whole.outputs)


@pytest.mark.parametrize("error", [MemoryError, KeyboardInterrupt])
def test_any_error_part_way_through_a_chunk_breaks_the_state(tmp_path, monkeypatch, error):
    """numpy's MemoryError as the train grew, or Ctrl-C between two kernel calls, left the
    state part-run and accepted: flush and result then counted 104 M spikes for 9 events."""
    eng = load_event(cuba_onnx(tmp_path / "a.onnx", DT0, v_th=0.1))

    def fail(*args):
        raise error("while growing the spike train")

    monkeypatch.setattr(engine_module, "check_memory", fail)  # called at the train's first growth
    state = eng.initial_state()
    with pytest.raises(error):
        eng.feed(state, random_stream(50, SENSOR, DURATION, seed=0))
    assert state.broken == f"{error.__name__}: while growing the spike train"
    for call in (lambda: eng.flush(state), lambda: eng.result(state), lambda: eng.copy_state(state)):
        with pytest.raises(EventInputError, match=f"left part-way through a chunk by an error \\({error.__name__}"):
            call()


def test_feeding_without_a_spike_train_advances_the_state_alike_under_any_memory_limit(tmp_path, monkeypatch):
    """``record=False`` (the event exit policy's feeds: their trains were made and thrown
    away, and the memory limit stopped a run that run_batch ran): no train, the same state;
    a first buffer over CHECKED_BUFFER is checked before it is made."""
    eng = load_event(cuba_onnx(tmp_path / "a.onnx", DT0, v_th=0.1))
    stream = random_stream(50, SENSOR, DURATION, seed=0)
    whole, train = eng.run(stream, until=DURATION)
    assert len(train) > 2 * (eng.record_size + 1024)  # the recording run grew its buffer
    monkeypatch.setenv("FLEXSNN_MAX_MEMORY", "1K")
    with pytest.raises(ResourceError, match="recording layer"):
        eng.run(stream, until=DURATION)
    state = eng.initial_state()
    for part in np.array_split(stream, 7):
        state, spikes = eng.feed(state, part, record=False)
        assert len(spikes) == 0
    state, spikes = eng.flush(state, until=DURATION, record=False)
    got = eng.result(state)
    np.testing.assert_array_equal(got.outputs, whole.outputs)
    for node in whole.neuron_counts:
        np.testing.assert_array_equal(got.neuron_counts[node], whole.neuron_counts[node])
    assert (int(got.synops), int(got.events)) == (int(whole.synops), int(whole.events))
    fixed = run_with_exit(eng, [stream], "fixed:2")  # refused under this limit before
    assert fixed.steps.tolist() == [2]
    monkeypatch.setattr(engine_module, "CHECKED_BUFFER", 0)
    with pytest.raises(ResourceError, match="a spike-train buffer for a chunk of 50 events needs about"):
        eng.run(stream, until=DURATION)
    eng.feed(eng.initial_state(), stream, record=False)  # no buffer at all


@pytest.mark.slow  # four exports and 2,455 clock steps: about 10 to 20 s
def test_finer_bins_converge_to_event_driven(tmp_path):
    """At each bin width dt the neuron is the same continuous-time one (``retimed``: decays
    exp(-dt/tau), exp(-dt/tau_syn), the syn_gain that keeps its ``charge_rate``); the spike difference of the
    clock-driven run over [0, DURATION) to the event-driven run falls towards 0. With the
    crossing solver taken out (neurons fire late, when an input next reaches them) the
    series stalls: 0.72, 0.52, 0.29, 0.26."""
    stream = random_stream(150, SENSOR, DURATION, seed=4, unique_t=True)
    model_at = lambda dt: cuba_onnx(tmp_path / f"m{dt}.onnx", dt)
    sds = finer_bin_sds(model_at, stream, DURATION, (500.0, 50.0, 5.0, 1.0), until=DURATION)
    assert sds[0] > 0.3 and sds[-1] < 0.02 and sds[-1] < sds[2] < sds[1] < sds[0], sds
