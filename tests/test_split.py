"""The split executor (backend numba: onnxruntime segments + one-pass numba neuron kernels)
gives spikes, states and outputs bit-identical to the function bodies on stock
onnxruntime, for every variant of every kind that has a kernel; other models fall back."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import runtime
from runtime.errors import InputError
from runtime.neuron import kernels, make_spec, presets
from tests.runtime_fixtures import save, tiny_model


def _variants() -> list:
    """Every preset of a kind with a kernel, under every spike, reset and clamp rule."""
    out = []
    for name, (kind, fixed) in sorted(presets().items()):
        if kind not in kernels.with_kernels():
            continue
        for spike, reset, v_min in itertools.product(("single", "multi"), ("subtract", "zero"), (-math.inf, -0.5)):
            fields = {**fixed, "spike": spike, "reset": reset, "v_min": v_min, "v_th": 0.7}
            out.append(pytest.param(make_spec(kind, **fields), id=f"{name}-{spike}-{reset}-{v_min}"))
    # the second states' own constants away from the presets' (a syn_gain of 1 multiplies exactly)
    retimed = {"decay_syn": 0.6, "syn_gain": 0.7, "spike": "multi", "v_th": 0.7}
    out.append(pytest.param(make_spec("CubaLIF", **retimed), id="cuba-lif-syn_gain-0.7"))
    out.append(pytest.param(make_spec("ALIF", decay_adapt=0.8, beta=0.45, v_th=0.7), id="alif-beta-0.45"))
    return out


@pytest.mark.parametrize("spec", _variants())
@pytest.mark.parametrize("kind", ["repeat", "event-frames"])
def test_numba_backend_is_bit_identical_to_the_function_bodies(tmp_path, spec, kind):
    path = save(tiny_model(kind=kind, spec=spec), tmp_path / "m.onnx")
    bodies, split = runtime.load(path, backend="ort"), runtime.load(path, backend="numba")
    assert (bodies.backend, split.backend) == ("ort", "numba")
    rng = np.random.default_rng(3)
    x = (rng.random((6, 5, *bodies.protocol.input_shape), dtype=np.float32) * 3).round(1)
    a, b = bodies.run(x, neuron_counts=True), split.run(x, neuron_counts=True)
    assert np.array_equal(a.outputs, b.outputs)
    for k in a.neuron_counts:
        assert np.array_equal(a.neuron_counts[k], b.neuron_counts[k])
    assert sum(v.sum() for v in a.spike_counts.values()) > 0  # the rules were exercised
    sa, sb = bodies.initial_state(5), split.initial_state(5)  # the states, step by step
    for x_t in x:
        bodies.feed(sa, x_t)
        split.feed(sb, x_t)
        for u, v in zip(sa.stepper.states, sb.stepper.states):
            assert np.array_equal(u, v)
    # early exit compacts the split stepper's states like the bodies'
    policy = "confidence:0.5,tmin=1,tmax=6"
    a, b = bodies.run(x, policy), split.run(x, policy)
    assert a.batch_per_step == b.batch_per_step and np.array_equal(a.outputs, b.outputs)


@pytest.mark.parametrize("variant", [{"li": True}, {"uses_t": True}], ids=["li-readout", "uses-t"])
def test_models_the_split_executor_does_not_cover_run_on_the_bodies(tmp_path, variant):
    path = save(tiny_model(**variant), tmp_path / "m.onnx")
    s = runtime.load(path)
    assert s.backend == "ort" and ("kernel" in s.backend_note or "depends on t" in s.backend_note)
    with pytest.raises(InputError, match="backend 'numba' cannot run this model"):
        runtime.load(path, backend="numba")


def test_unknown_backend_is_refused(tmp_path):
    with pytest.raises(
        InputError, match=r"backend 'gpu' is unknown; expected one of \['auto', 'numba', 'ort', 'exact'\]"
    ):
        runtime.load(save(tiny_model(), tmp_path / "m.onnx"), backend="gpu")


def test_a_spiking_readout_runs_on_the_function_bodies(tmp_path):
    """The network's output is the last neuron layer's spikes (as in an imported snnTorch
    net): no segment follows it, so the split executor leaves it to the function bodies
    (it once returned zeros for it)."""
    from tests.event_fixtures import chain_model
    from tests.event_fixtures import spec as neuron

    path = save(chain_model(neuron("IF", "multi"), readout="spike", scale=0.9), tmp_path / "m.onnx")
    s = runtime.load(path)
    assert s.backend == "ort" and "spiking readout" in s.backend_note
    x = np.random.default_rng(0).poisson(1.0, (2, 2, 12, 12)).astype(np.float32)
    assert s.step(x).sum() > 0  # the readout really spikes: zeros would show
    with pytest.raises(InputError, match="backend 'numba' cannot run this model"):
        runtime.load(path, backend="numba")
