"""One neuron definition, checked across numpy (runtime) and torch (trainer)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from runtime.neuron import NeuronSpec, SpecError, kinds, make_spec, step
from trainer.neurons import TORCH_STEPS, fire_from_rest, neuron_step, surrogate_rule, zero_state
from trainer.surrogate import SURROGATES, SpikeFn, get_surrogate

# every spiking kind x reset x spike rule x clamp, plus the LI readout
VARIANTS = [
    make_spec(kind, decay=1.0 if kind == "IF" else 0.6, v_th=0.8, reset=reset, spike=spike, v_min=v_min, **extra)
    for (kind, extra), reset, spike, v_min in itertools.product(
        (
            ("LIF", {}),
            ("IF", {}),
            ("CubaLIF", {"decay_syn": 0.7}),
            ("CubaLIF", {"decay_syn": 0.7, "syn_gain": 0.3}),
            ("ALIF", {"decay_adapt": 0.8, "beta": 0.3}),
        ),
        ("subtract", "zero"),
        ("single", "multi"),
        (-math.inf, -0.5),
    )
] + [NeuronSpec("LI", 0.7)]


def variant_id(s: NeuronSpec) -> str:
    return f"{s.kind}-{s.reset}-{s.spike}-{s.v_min}"


def run_numpy(spec: NeuronSpec, currents: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    state = tuple(np.zeros(currents.shape[1:], np.float32) for _ in range(spec.n_states))
    outs, states = [], []
    for current in currents:
        out, state = step(spec, state, current)
        outs.append(out)
        states.append(np.stack(state))
    return np.stack(outs), states


@pytest.mark.parametrize("spec", VARIANTS, ids=variant_id)
def test_torch_step_equals_numpy_reference_bit_for_bit(spec):
    rng = np.random.default_rng(0)
    currents = rng.normal(0.4, 1.2, size=(12, 64)).astype(np.float32)
    outs_np, states_np = run_numpy(spec, currents)
    state = tuple(torch.zeros(64) for _ in range(spec.n_states))
    for t, current in enumerate(currents):
        out, state = neuron_step(spec, state, torch.from_numpy(current))
        np.testing.assert_array_equal(out.numpy(), outs_np[t])
        np.testing.assert_array_equal(torch.stack(state).numpy(), states_np[t])
    if spec.spiking:  # the variants must actually spike for the comparison to mean anything
        assert 0 < outs_np.mean() < 1.5


@pytest.mark.parametrize("spec", VARIANTS, ids=variant_id)
def test_torch_step_equals_numpy_from_any_state(spec):
    """One step from random states, as an SDK user may pass: an ALIF increment below -v_th
    makes the threshold negative and multi-spike counts negative, where torch's zero reset
    left 2v (v * (1 - clamp(s, max=1))) and numpy and ONNX 0 (v * (s == 0))."""
    rng = np.random.default_rng(1)
    current = rng.normal(0.4, 1.2, size=256).astype(np.float32)
    state = tuple(rng.normal(0.0, 2.0, size=256).astype(np.float32) for _ in range(spec.n_states))
    out_np, state_np = step(spec, state, current)
    out, state_t = neuron_step(spec, tuple(map(torch.from_numpy, state)), torch.from_numpy(current))
    np.testing.assert_array_equal(out.numpy(), out_np)
    for got, want in zip(state_t, state_np):
        np.testing.assert_array_equal(got.numpy(), want)


def test_every_registered_kind_has_a_torch_step():
    assert sorted(TORCH_STEPS) == kinds()


def test_every_registered_kind_is_among_the_variants():
    """The parity tests above run VARIANTS: a kind added without entries here passed them
    all unchecked (docs/neurons.md, Adding a kind, step 4)."""
    assert sorted({s.kind for s in VARIANTS}) == kinds()


def test_reference_semantics_by_hand():
    lif = NeuronSpec("LIF", 0.5, 1.0, "subtract", "single")
    s, (u,) = step(lif, (np.float32([0.8, 0.8]),), np.float32([0.7, 0.5]))  # v = 1.1, 0.9
    np.testing.assert_allclose(s, [1, 0])
    np.testing.assert_allclose(u, [0.1, 0.9], rtol=1e-6)
    multi = NeuronSpec("IF", 1.0, 1.0, "subtract", "multi")
    s, (u,) = step(multi, (np.float32([0.5]),), np.float32([2.0]))  # v = 2.5 -> 2 spikes
    assert s[0] == 2 and abs(u[0] - 0.5) < 1e-6
    zero = NeuronSpec("IF", 1.0, 1.0, "zero", "multi", v_min=-1.0)
    s, (u,) = step(zero, (np.float32([0.5, 0.0]),), np.float32([2.0, -3.0]))
    np.testing.assert_allclose(s, [2, 0])
    np.testing.assert_allclose(u, [0.0, -1.0])  # reset to zero; clamp at v_min


def test_cuba_lif_by_hand():
    """i = 0.5 i' + I; v = 0.5 u' + i: one input pulse keeps charging the membrane."""
    spec = make_spec("CubaLIF", decay=0.5, decay_syn=0.5, v_th=1.0)
    state = (np.float32([0.0]), np.float32([0.0]))
    trace = []
    for current in ([0.8], [0.0], [0.0]):
        s, state = step(spec, state, np.float32(current))
        trace.append((float(s[0]), float(state[0][0]), float(state[1][0])))
    # t0: i = 0.8, v = 0.8; t1: i = 0.4, v = 0.4 + 0.4 = 0.8; t2: i = 0.2, v = 0.4 + 0.2 = 0.6
    np.testing.assert_allclose(trace, [(0, 0.8, 0.8), (0, 0.8, 0.4), (0, 0.6, 0.2)], rtol=1e-6)
    s, _ = step(spec, (np.float32([0.5]), np.float32([1.0])), np.float32([0.0]))  # v = 0.25 + 0.5 + 0
    assert s[0] == 0
    s, (u, i) = step(spec, (np.float32([0.9]), np.float32([1.2])), np.float32([0.0]))  # i = 0.6, v = 1.05
    assert s[0] == 1 and abs(u[0] - 0.05) < 1e-6 and abs(i[0] - 0.6) < 1e-6


def test_alif_threshold_rises_after_a_spike_and_decays_back():
    spec = make_spec("ALIF", decay=1.0, decay_adapt=0.5, beta=1.0, v_th=1.0)
    state = (np.float32([0.0]), np.float32([0.0]))
    spikes, thresholds = [], []
    for _ in range(6):  # a constant input of 1.0: theta = 1 + a
        s, state = step(spec, state, np.float32([1.0]))
        spikes.append(int(s[0]))
        thresholds.append(1.0 + float(state[1][0]))
    # t0: v = 1 >= 1 spikes, a = 1; t1: a' = .5, v = 1 < 1.5; t2: a' = .25, v = 2 >= 1.25 spikes
    assert spikes[:3] == [1, 0, 1]
    plain = NeuronSpec("IF", 1.0, 1.0)
    lif_spikes = [int(step(plain, (np.float32([0.0]),), np.float32([1.0]))[0][0])] * 6
    assert sum(spikes) < sum(lif_spikes)  # adaptation lowers the rate


@pytest.mark.parametrize(
    "bad, field",
    [
        (dict(kind="Izhikevich"), "kind"),
        (dict(reset="soft"), "reset"),
        (dict(spike="burst"), "spike"),
        (dict(decay=0.0), "decay"),
        (dict(kind="IF", decay=0.5), "IF"),
        (dict(v_th=0.0), "v_th"),
        (dict(v_min=2.0), "v_min"),
        (dict(dt=-1.0), "dt"),
    ],
)
def test_invalid_spec_names_the_field(bad, field):
    with pytest.raises(SpecError, match=field):
        NeuronSpec(**bad)


@pytest.mark.parametrize(
    "kind, bad, field",
    [
        ("CubaLIF", dict(decay_syn=0.0), "decay_syn"),
        ("ALIF", dict(decay_adapt=1.5), "decay_adapt"),
        ("ALIF", dict(beta=-1.0), "beta"),
        ("LIF", dict(beta=0.2), "beta"),
    ],
)
def test_invalid_new_kind_fields_are_named(kind, bad, field):
    with pytest.raises(SpecError, match=field):
        make_spec(kind, **bad)


def test_a_kind_needs_its_own_spec_class():
    with pytest.raises(SpecError, match="make_spec"):
        NeuronSpec("ALIF")


@pytest.mark.parametrize(
    "spec", [make_spec("CubaLIF", decay_syn=0.3), make_spec("ALIF", beta=0.5, dt=2.0)], ids=lambda s: s.kind
)
def test_new_kind_dict_round_trip(spec):
    d = spec.to_dict()
    assert NeuronSpec.from_dict(d) == spec and type(NeuronSpec.from_dict(d)) is type(spec)
    with pytest.raises(SpecError, match="exactly the fields"):
        NeuronSpec.from_dict({**d, "unexpected": 1})


def test_spec_dict_round_trip_is_explicit():
    spec = NeuronSpec("LIF", 0.25, 0.5, "zero", "multi", -math.inf, 30000.0)
    d = spec.to_dict()
    assert set(d) == {"kind", "decay", "v_th", "reset", "spike", "v_min", "dt"}
    assert d["v_min"] == "-inf"
    assert NeuronSpec.from_dict(d) == spec
    with pytest.raises(SpecError, match="missing"):
        NeuronSpec.from_dict({k: v for k, v in d.items() if k != "dt"})
    assert abs(spec.tau - (-30000.0 / math.log(0.25))) < 1e-9
    assert NeuronSpec("IF", 1.0).tau == math.inf


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_surrogate_gradient_matches_formula(name):
    v = torch.tensor([-1.0, 0.3, 0.9, 1.0, 1.4, 2.5], requires_grad=True)
    v_th = 1.0
    fn, param = get_surrogate(name)
    s = SpikeFn.apply(v, (v.detach() >= v_th).float(), v_th, fn, param)
    s.sum().backward()
    x = v.detach() - v_th
    expected = {
        "triangle": torch.clamp(1 - x.abs(), min=0),
        "rectangle": (x.abs() < 0.5).float(),
        "sigmoid": 4 * torch.sigmoid(4 * x) * (1 - torch.sigmoid(4 * x)),
        "exp": torch.exp(-x.abs()),
    }[name]
    torch.testing.assert_close(v.grad, expected)
    np.testing.assert_array_equal(s.detach().numpy(), [0, 0, 0, 1, 1, 1])


def test_unknown_surrogate_lists_valid_names():
    with pytest.raises(ValueError, match="triangle"):
        get_surrogate("arctan")


@pytest.mark.parametrize("spec", VARIANTS, ids=variant_id)
def test_fire_from_rest_is_the_step_from_zero_state_bit_for_bit(spec):
    """The stateless shortcut (T-RevSNN's turn-off neurons) = one step from the zero
    state: same output and same input gradient, for every kind, reset and spike rule."""
    rule = surrogate_rule(spec, "triangle")
    current = torch.from_numpy(np.random.default_rng(1).normal(0.4, 1.2, size=(256,)).astype(np.float32))
    outs, grads = [], []
    for f in (
        lambda x: neuron_step(spec, zero_state(spec, x), x, rule)[0],
        lambda x: fire_from_rest(spec, x, rule),
    ):
        x = current.clone().requires_grad_(True)
        out = f(x)
        (out * torch.linspace(-1, 1, 256)).sum().backward()
        outs.append(out.detach())
        grads.append(x.grad)
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])
    if spec.spiking:
        assert 0 < float(outs[0].mean()) < 1.5 and grads[0].abs().sum() > 0
