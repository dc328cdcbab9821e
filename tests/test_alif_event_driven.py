"""ALIF in the event engine (runtime/neuron/alif.py, event-driven form): the numba kernel
equals the plain-Python reference, the adaptive threshold changes the spikes, finer
clock-driven bins converge to the event-driven run, and a threshold that decays faster
than the membrane is refused with the reason."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from export.onnx_export import export_onnx
from runtime.event import load_event
from runtime.protocol import ModelError
from tests.event_fixtures import finer_bin_sds, random_stream, run_matching_reference
from tests.export_helpers import config, model
from trainer.config import NeuronConfig

SENSOR, DURATION = (2, 8, 8), 2000


def alif_onnx(path, dt: float, tau: float = 400.0, tau_adapt: float = 800.0, beta: float = 0.5, **rules):
    """A bias-free 2C1FC ALIF net whose weights do not depend on dt (seeded), the neuron
    discretised at step ``dt`` µs: decay = exp(-dt/tau), decay_adapt = exp(-dt/tau_adapt)."""
    cfg = config(width=4, bn=False, bias=False, kind="ALIF", extra={"beta": beta}, **rules)
    spec = dataclasses.replace(cfg.neuron.spec, decay=math.exp(-dt / tau), decay_adapt=math.exp(-dt / tau_adapt), dt=dt)
    cfg.neuron = NeuronConfig(spec)
    cfg.data.duration_us = dt * cfg.train_T  # one step is one bin of dt µs
    return export_onnx(cfg, model(cfg, seed=1), path)


@pytest.mark.parametrize("rules", [{"spike": "multi", "reset": "subtract"}, {"spike": "single", "reset": "zero"}])
def test_kernel_matches_plain_python_and_adaptation_matters(tmp_path, rules):
    stream = random_stream(300, SENSOR, DURATION, seed=3)
    eng = load_event(alif_onnx(tmp_path / "a.onnx", 10.0, **rules))
    res, train, ref = run_matching_reference(eng, stream)
    got = np.stack([train.t, train.neuron, train.count], 1)
    want = np.array(ref.trains[train.layer]).reshape(-1, 3)
    by_time = lambda a: a[np.lexsort((a[:, 1], a[:, 0]))]
    np.testing.assert_array_equal(by_time(got), by_time(want))
    # without the threshold's rise the same net spikes more: the increment is really applied
    plain, _ = load_event(alif_onnx(tmp_path / "b.onnx", 10.0, beta=0.0, **rules)).run(stream)
    assert sum(int(c.sum()) for c in plain.neuron_counts.values()) > sum(
        int(c.sum()) for c in res.neuron_counts.values()
    )
    # chunked equals whole: the increments travel in the state (one per neuron; no crossings)
    state = eng.initial_state()
    assert (state.a.size, state.t_neuron.size, state.crossing.size) == (eng.net.n_neurons, 0, 0)
    for part in np.array_split(stream, 7):
        state, _ = eng.feed(state, part)
    state, _ = eng.flush(state)
    np.testing.assert_array_equal(eng.result(state).outputs, res.outputs)


def test_finer_bins_converge_to_event_driven(tmp_path):
    """At each bin width dt the net's decays are exp(-dt/tau) and exp(-dt/tau_adapt) for
    fixed taus; the spike difference to the event-driven run falls towards 0."""
    stream = random_stream(150, SENSOR, DURATION, seed=4, unique_t=True)
    sds = finer_bin_sds(lambda dt: alif_onnx(tmp_path / f"m{dt}.onnx", dt), stream, DURATION, (500.0, 50.0, 5.0, 1.0))
    assert sds[0] > 0.05 and sds[-1] < 0.02 and sds[-1] < sds[1] < sds[0], sds


def test_threshold_decaying_faster_than_the_membrane_is_refused(tmp_path):
    path = alif_onnx(tmp_path / "m.onnx", 10.0, tau=800.0, tau_adapt=400.0)
    with pytest.raises(ModelError, match=r"decay_adapt .* < decay .*between input events"):
        load_event(path)
