"""What the registry does for a kind someone adds (docs/neurons.md, Adding a kind): a kind
that redefines its parent's dynamics inherits none of the forms derived from them, and
what it lacks is refused by name, never run as another kind."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from runtime.neuron import NeuronKind, NeuronSpec, SpecError, kernels, kind_of, make_spec, step, zero_state
from runtime.neuron import base as registry
from runtime.neuron.alif import ALIF, ALIFSpec
from runtime.neuron.base import ClockForm, EventFormError, NirNeuronError, rules_clock_form
from runtime.neuron.cuba_lif import CubaLIFSpec
from runtime.neuron.lif import LIF


class QIF(LIF):
    """LIF's class with a step of its own: v = decay * u + 0.5 * u * u + I."""

    name = "QIF"

    def step(self, spec, state, current):
        (u_prev,) = state
        v = spec.decay * u_prev + 0.5 * u_prev * u_prev + current
        s = (v >= spec.v_th).astype(v.dtype)
        return s, (v - spec.v_th * s,)


@pytest.fixture
def qif(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "QIF", QIF())  # for this test only
    return NeuronSpec("QIF", 0.9, 1.0, "subtract", "single")


def test_new_dynamics_inherit_no_derived_form(qif):
    """QIF(LIF) with its own step ran LIF's numba kernel (32% against ort's 31%), LIF's event
    form, wrote LIF NIR nodes and passed the Speck check as IF."""
    k = kind_of("QIF")
    assert k.clock_form(qif) is None  # onnxruntime runs its body; no LIF kernel
    with pytest.raises(EventFormError, match="QIF neurons have no event-driven form"):
        k.event_form(qif)
    with pytest.raises(NirNeuronError, match="QIF neurons have no NIR node"):
        k.to_nir(qif, (4,))
    assert k.nir_params == () and k.nir_peers(qif) == {}
    assert k.speck_issue(qif) == ("neuron kind", "QIF", "IF (Speck has integrate-and-fire neurons only)")
    assert k.trace_decay(qif) is None  # online methods' traces assume LIF's membrane
    # what it did not redefine is still LIF's: its ONNX body and variants
    assert type(k).onnx_body is LIF.onnx_body and type(k).overload is LIF.overload
    # a subclass that keeps the dynamics keeps the forms (IF is LIF with decay 1)
    if_kind = kind_of("IF")
    assert type(if_kind).clock_form is LIF.clock_form and type(if_kind).event_form is LIF.event_form


def test_dynamics_from_a_mixin_also_drop_the_parents_forms():
    """A step given by a mixin above LIF (class QIF2(QuadMixin, LIF)) kept LIF's kernel,
    event form, NIR node, trace decay and Speck pass."""

    class QuadMixin:
        def step(self, spec, state, current):
            return QIF.step(self, spec, state, current)

    class QIF2(QuadMixin, LIF):
        name = "QIF2"

    class Display(LIF):  # only its presets differ: the dynamics and their forms are LIF's
        name = "Display"
        presets = {"display": {}}

    spec = NeuronSpec("LIF", 0.9)
    k = QIF2()
    assert k.clock_form(spec) is None and k.trace_decay(spec) is None and k.nir_params == ()
    assert k.speck_issue(NeuronSpec("IF", 1.0))[0] == "neuron kind"
    with pytest.raises(EventFormError):
        k.event_form(spec)
    assert Display().clock_form(spec) == LIF().clock_form(spec) and Display().trace_decay(spec) == 0.9


def test_what_a_kind_lacks_is_refused_by_name(qif):
    from runtime.neuron.kernels import kernel
    from trainer.config import Config, ConfigError, MethodConfig, ModelConfig, NeuronConfig
    from trainer.neurons import Neuron

    with pytest.raises(ValueError, match=r"no numba kernel for kind 'QIF'"):
        kernel(qif)
    with pytest.raises(SpecError, match=r"neuron kind 'QIF' has no torch step .* the trainer runs \['ALIF'"):
        Neuron(qif)  # was a KeyError at the first step of fit, eval and export

    def online(spec: NeuronSpec) -> Config:
        return Config(ModelConfig(bn=False), NeuronConfig(spec), method=MethodConfig(name="sltt"))

    online(NeuronSpec("LIF", 0.9)).validate()  # the same config trains LIF
    with pytest.raises(ConfigError, match=r"QIF neurons are not one .*expected one of \['IF', 'LIF'\]"):
        online(qif).validate()


def test_a_kind_without_its_methods_names_them():
    class Bare(NeuronKind[NeuronSpec]):
        name = "Bare"

    for method in ("step", "overload", "onnx_body"):
        with pytest.raises(NotImplementedError, match=f"neuron kind 'Bare' does not define {method}"):
            call = getattr(Bare(), method)
            call(None, (np.zeros(1),), np.zeros(1)) if method == "step" else call(None)


def test_a_clock_form_no_kernel_runs_is_refused_when_built():
    """A clock form with a second state the kernels do not know crashed `runtime run` (backend
    auto) with a ValueError traceback when the kernel was built."""
    with pytest.raises(SpecError, match=r"second state 'refractory' has no numba step; the steps are"):
        ClockForm(0.5, 1.0, "single", "subtract", -np.inf, "refractory")


def test_a_clock_form_that_drops_a_state_is_refused(monkeypatch):
    """A two-state kind whose clock form names no second state ran as one-state LIF in the
    numba kernel (a tour measured 3.3% against onnxruntime's 13.3% on one file), and backend
    auto chose that kernel."""

    class OneStateForm(ALIF):
        name = "OneStateForm"

        def clock_form(self, spec):
            return rules_clock_form(spec)  # second "": the threshold increment a is dropped

    monkeypatch.setitem(registry._REGISTRY, "OneStateForm", OneStateForm())
    spec = dataclasses.replace(make_spec("ALIF", decay_adapt=0.8, beta=0.3), kind="OneStateForm")
    with pytest.raises(SpecError, match=r"updates 1 state variable\(s\), but a OneStateForm neuron has 2 \['u', 'a'\]"):
        kernels.supported(spec)
    with pytest.raises(SpecError, match="updates 1 state"):
        kernels.kernel(spec)
    assert kernels.supported(make_spec("ALIF", decay_adapt=0.8, beta=0.3))  # ALIF's own form holds


def test_a_spec_field_of_another_type_is_refused_when_registered():
    """An int field (a refractory count) trained, then no reader took the checkpoint back:
    spec fields are float or str, said where the kind is registered."""

    @dataclasses.dataclass(frozen=True)
    class CountSpec(NeuronSpec):
        refractory: int = 2

    class Counting(LIF):
        name = "Counting"
        spec_cls = CountSpec

    with pytest.raises(TypeError, match=r"spec field 'refractory' is typed 'int'; spec fields are \['float', 'str'\]"):
        registry.register(Counting())
    assert "Counting" not in registry.kinds()


def test_a_kinds_spec_class_is_its_type_parameter():
    """A kind named its spec class twice, as the type parameter its methods are checked
    against and as spec_cls, which make_spec builds: the two could disagree unseen. The
    parameter is the one place now; a spec_cls that says otherwise is refused."""
    assert kind_of("ALIF").spec_cls is ALIFSpec and type(make_spec("ALIF")) is ALIFSpec
    assert kind_of("CubaLIF").spec_cls is CubaLIFSpec and kind_of("LIF").spec_cls is NeuronSpec

    class Typed(NeuronKind[ALIFSpec]):
        name = "Typed"

    assert Typed.spec_cls is ALIFSpec
    with pytest.raises(TypeError, match=r"typed NeuronKind\[ALIFSpec\] but sets spec_cls = CubaLIFSpec"):

        class Mismatched(NeuronKind[ALIFSpec]):
            name = "Mismatched"
            spec_cls = CubaLIFSpec


@pytest.mark.parametrize("kind", ["LIF", "IF", "ALIF", "CubaLIF"])
def test_a_floor_above_rest_has_no_event_form(kind):
    """A stranger's tour: v_min 0.3 ran event-driven with spike differences of 4-7% to 1 µs
    clock bins (the clock clamps every step: the neuron sits at v_min from the first step and
    is lifted back after each leak, at times no input marks), with no word."""
    decay = 1.0 if kind == "IF" else 0.9
    with pytest.raises(EventFormError, match=r"v_min 0.3 > 0.*run this model clock-driven"):
        kind_of(kind).event_form(make_spec(kind, decay=decay, v_min=0.3))
    for floor in (0.0, -0.5):  # at or below rest: a leak never crosses it, the clamp at inputs is exact
        assert kind_of(kind).event_form(make_spec(kind, decay=decay, v_min=floor)).v_min == floor


@pytest.mark.parametrize(
    "kind, field", [("LIF", "v_th"), ("LIF", "v_min"), ("ALIF", "beta"), ("CubaLIF", "syn_gain"), ("LIF", "dt")]
)
def test_a_field_beyond_float32_is_refused(kind, field):
    """Every runtime computes in float32: v_min -1e39 was torch's overflow traceback in
    training (numpy, ONNX and numba silently ran it as -inf), v_th 1e39 "training diverged"."""
    value = -1e39 if field == "v_min" else 1e39
    with pytest.raises(SpecError, match=rf"{field} [-]?1e\+39 is beyond float32's range"):
        make_spec(kind, **{field: value})
    make_spec(kind, **{field: value / 1e2})  # within it: accepted


@pytest.mark.parametrize("kind", ["IF", "LIF", "ALIF", "CubaLIF"])
def test_a_threshold_float32_takes_to_zero_or_to_v_min_is_refused(kind):
    """v_th 1e-50 passed (> 0 in float64) and ran as 0 in float32: single spikes fired at rest,
    multi spikes were 0/0 (NaN; numba's ZeroDivisionError); v_min 0.99999999 is v_th 1 there."""
    decay = 1.0 if kind == "IF" else 0.5
    with pytest.raises(SpecError, match=r"v_th 1e-50 is 0 in float32, which runs it; expected v_th >= 1.4e-45"):
        make_spec(kind, decay=decay, v_th=1e-50)
    with pytest.raises(SpecError, match=r"v_min 0.99999999 is not below v_th 1.0 in float32"):
        make_spec(kind, decay=decay, v_min=0.99999999)
    make_spec(kind, decay=decay, v_th=1e-45)  # float32's smallest positive, and a v_min float32 holds apart
    make_spec(kind, decay=decay, v_min=0.9999999)


@pytest.mark.parametrize("value", ["1.0", True, "inf"])
def test_a_stored_field_that_is_not_a_number_is_refused(value):
    """from_dict ran float() on anything: v_th "1.0" or true in a checkpoint ran as 1.0 (the
    JSON-safe "-inf" of v_min is the one string a writer stores)."""
    d = make_spec("LIF").to_dict()
    with pytest.raises(SpecError, match=rf"neuron field 'v_th' must be a number, got {value!r}"):
        NeuronSpec.from_dict({**d, "v_th": value})
    assert NeuronSpec.from_dict({**d, "v_min": "-inf"}).v_min == -math.inf


@pytest.mark.parametrize("kind, field", [("LIF", "decay"), ("CubaLIF", "decay_syn"), ("ALIF", "decay_adapt")])
def test_the_event_form_leaks_by_the_float32_decay_the_clock_runs(kind, field):
    """1 - 1e-9 is 1 in the float32 the clock multiplies by (no leak) but leaked event-driven
    (tau from the float64 decay): two neurons under one name. The event form now takes the
    float32 value: no leak in both, and a decay below 1 leaks at the same rate in both."""
    form = "inv_tau" if field == "decay" else {"decay_syn": "inv_tau_syn", "decay_adapt": "inv_tau_adapt"}[field]
    others = {"decay_adapt": 1.0} if kind == "ALIF" and field == "decay" else {}  # ALIF's event rule: adapt >= decay
    spec = make_spec(kind, **{field: 1 - 1e-9, **others})  # a stored or imported value: accepted, as before
    assert getattr(kind_of(kind).event_form(spec), form) == 0.0
    near = 0.99999997  # float32: 0.99999994, whose tau is half the float64 value's
    spec = make_spec(kind, **{field: near, **others})
    expected = -math.log(float(np.float32(near))) / spec.dt
    assert getattr(kind_of(kind).event_form(spec), form) == expected != -math.log(near) / spec.dt
    assert kind_of("LIF").speck_issue(make_spec("LIF", decay=1 - 1e-9)) is None  # Speck runs it: no leak
    # a decay float32 takes to 0 (no memory clock-driven): a rate that leaves none, not log(0)'s ValueError
    assert kind_of("LIF").event_form(make_spec("LIF", decay=1e-50)).inv_tau == -math.log(1e-50)


@pytest.mark.parametrize("kind", ["LIF", "CubaLIF", "ALIF"])
def test_the_numpy_step_refuses_a_state_of_another_dtype(kind):
    """numpy promoted at the first multiply, torch after its float32 one: float32 state and
    float64 current gave ALIF spikes one ulp apart. One dtype, as an ONNX graph has."""
    spec = make_spec(kind)
    current = np.ones(3)  # float64
    state = zero_state(spec, current.astype(np.float32))
    with pytest.raises(TypeError, match=r"state 'u' has dtype float32 but the current float64"):
        step(spec, state, current)
    with pytest.raises(TypeError, match="floating array, got dtype int64"):
        step(spec, zero_state(spec, current), np.ones(3, np.int64))
    s, _ = step(spec, zero_state(spec, current), current)  # one dtype: runs, in it
    assert s.dtype == np.float64


def test_a_derived_kind_cannot_take_over_its_parents_presets(monkeypatch):
    """QLIF(LIF) registered without presets of its own inherited LIF's {"lif": {}}: `trainer
    fit --neuron lif` then wrote a QLIF checkpoint, unsaid (a stranger's tour)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # this test's kinds only

    class QLIF(LIF):
        name = "QLIF"

    with pytest.raises(ValueError, match=r"neuron kind 'QLIF': preset 'lif' is LIF's already; declare the kind's own"):
        registry.register(QLIF())
    assert registry.presets()["lif"] == ("LIF", {}) and "QLIF" not in registry.kinds()

    class OwnPresets(LIF):
        name = "OwnPresets"
        presets = {"own-lif": {"decay": 0.8}}

    registry.register(OwnPresets())
    assert registry.presets()["own-lif"] == ("OwnPresets", {"decay": 0.8}) and registry.presets()["lif"][0] == "LIF"


def test_a_node_written_below_its_time_label_must_say_its_own():
    """A kind deriving from LIF with its own to_nir (tau in steps, say) kept LIF's Euler label
    ("euler dt=0.0001s"): the label follows the class that writes the node."""

    class StepsLIF(LIF):
        name = "StepsLIF"
        presets = {}

        def to_nir(self, spec, shape):
            return "LIF", {"tau": np.full(shape, 3.0), "r": np.ones(shape), "v_leak": np.zeros(shape)}

    spec = NeuronSpec("LIF", 0.9, reset="zero")
    assert kind_of("LIF").nir_time(spec) == "euler dt=0.0001s"
    with pytest.raises(NotImplementedError, match="'StepsLIF' has to_nir\\(\\) but no nir_time\\(\\)"):
        StepsLIF().nir_time(spec)
    assert type(QIF()).nir_time is NeuronKind.nir_time  # redefined dynamics: no NIR node, no label
