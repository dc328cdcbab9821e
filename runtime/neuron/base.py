"""What every neuron kind is made of: the spec dataclass, the kind interface, the registry.

A *spec* (:class:`NeuronSpec` or a kind's subclass of it) is the pure, explicit description
of one neuron layer (DESIGN.md §1): no field is implied by a framework default. A *kind*
(:class:`NeuronKind`, one module per kind in this package) is everything that kind is:
its spec class and validation, its state variables, its numpy step (the reference the
torch, ONNX and numba forms are checked against), its ONNX function body, its
event-driven form, and what Speck can do with it. Every other part of the product asks
the registry (:func:`kind_of`); none branches on the kind by itself.
"""

from __future__ import annotations

import math
from dataclasses import Field, asdict, dataclass, field, fields
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

import numpy as np
from onnx import NodeProto

RESETS = ("subtract", "zero")
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).smallest_subnormal)
SPIKES = ("single", "multi")


class SpecError(ValueError):
    """A neuron description that is not valid; the message names the field."""


@dataclass(frozen=True)
class NeuronSpec:
    """Pure description of one neuron layer; kinds with more fields subclass it.

    kind:   a registered kind (``kinds()``), whose spec class this is.
    decay:  membrane factor per step, ``decay = exp(-dt / tau)``.
    v_th:   firing threshold (> 0).
    reset:  "subtract" (soft) or "zero" (hard).
    spike:  "single" (at most one spike per step) or "multi" (floor(v / v_th) spikes).
    v_min:  lower clamp of the membrane after reset; ``-inf`` means none.
    dt:     duration of one step (µs for event data; 1.0 for static inputs), which ties
            every per-step decay to its event-driven time constant.
    """

    kind: str = "LIF"
    decay: float = field(default=0.5, metadata={"help": "membrane decay per step, exp(-dt/tau) (IF: 1)"})
    v_th: float = field(default=1.0, metadata={"help": "firing threshold"})
    reset: str = field(default="subtract", metadata={"help": "reset after a spike: subtract or zero"})
    spike: str = field(default="single", metadata={"help": "single (one spike per step) or multi (floor(v/v_th))"})
    v_min: float = field(default=-math.inf, metadata={"help": "lower membrane clamp after reset (-inf: none)"})
    dt: float = field(default=1.0, metadata={"help": "duration of one step (µs for event data)"})

    def __post_init__(self) -> None:
        k = kind_of(self.kind)
        if type(self) is not k.spec_cls:
            raise SpecError(
                f"a {self.kind} neuron is described by {k.spec_cls.__name__}, not "
                f"{type(self).__name__}; build it with make_spec({self.kind!r}, ...)"
            )
        if self.reset not in RESETS:
            raise SpecError(f"reset {self.reset!r} is unknown; expected one of {list(RESETS)}")
        if self.spike not in SPIKES:
            raise SpecError(f"spike {self.spike!r} is unknown; expected one of {list(SPIKES)}")
        check_decay("decay", self.decay)
        if not (self.v_th > 0.0 and math.isfinite(self.v_th)):
            raise SpecError(f"v_th must be a finite number > 0, got {self.v_th}")
        if math.isnan(self.v_min) or self.v_min >= self.v_th:
            raise SpecError(f"v_min must be below v_th (or -inf for none), got {self.v_min}")
        if not (self.dt > 0.0 and math.isfinite(self.dt)):
            raise SpecError(f"dt must be a finite number > 0, got {self.dt}")
        for f in fields(self):  # every runtime computes in float32: 1e39 was inf there, torch's overflow error
            v = getattr(self, f.name)
            if field_type(f) is float and math.isfinite(v) and abs(v) > FLOAT32_MAX:
                raise SpecError(f"{f.name} {v:g} is beyond float32's range (|x| <= {FLOAT32_MAX:.4g}), which runs it")
        # ... and below it: a v_th float32 rounds to 0 fired at rest (multi spikes: 0/0), and
        # a v_min it rounds to v_th made the clamp the threshold
        v_th32 = np.float32(self.v_th)
        if v_th32 == 0.0:
            raise SpecError(
                f"v_th {self.v_th:g} is 0 in float32, which runs it; expected v_th >= {FLOAT32_TINY:.2g} "
                "(float32's smallest positive)"
            )
        if np.float32(self.v_min) >= v_th32:
            raise SpecError(f"v_min {self.v_min!r} is not below v_th {self.v_th!r} in float32, which runs them")
        k.validate(self)

    @property
    def spiking(self) -> bool:
        return kind_of(self.kind).spiking

    @property
    def n_states(self) -> int:
        return len(kind_of(self.kind).states)

    @property
    def rest_gain(self) -> float:
        """The membrane one step after rest per unit input (``v = rest_gain * current`` from
        the zero state): 1, but for kinds whose input reaches the membrane scaled (CubaLIF)."""
        return 1.0

    @property
    def tau(self) -> float:
        """Membrane time constant in the units of ``dt`` (inf for IF / decay 1)."""
        return tau_of(self.decay, self.dt)

    def to_dict(self) -> dict[str, Any]:
        """All fields, explicitly (JSON-safe: -inf is written as the string "-inf")."""
        d = asdict(self)
        d["v_min"] = "-inf" if self.v_min == -math.inf else float(self.v_min)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NeuronSpec:
        """The spec of ``d["kind"]``, which must give exactly that kind's fields."""
        if not isinstance(d, dict):
            raise SpecError(f"neuron description must be an object, got {type(d).__name__}")
        spec_cls = kind_of(d.get("kind")).spec_cls
        names = {f.name for f in fields(spec_cls)}
        # a field added after files were written: absent means the value those files meant
        absent = {f.name: f.metadata["absent"] for f in fields(spec_cls) if "absent" in f.metadata}
        d = {**{k: v for k, v in absent.items() if k not in d}, **d}
        missing, extra = names - set(d), set(d) - names
        if missing or extra:
            raise SpecError(
                f"a {d.get('kind')} neuron description must have exactly the fields {sorted(names)}; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        kw: dict[str, Any] = {}
        for f in fields(spec_cls):
            v = d[f.name]
            if field_type(f) is float:
                if isinstance(v, bool) or (isinstance(v, str) and v != "-inf"):  # float("1.0"), float(True) read
                    raise SpecError(f"neuron field {f.name!r} must be a number, got {v!r}")
                try:
                    v = float(v)  # float("-inf") parses the JSON-safe form
                except (TypeError, ValueError):
                    raise SpecError(f"neuron field {f.name!r} must be a number, got {v!r}") from None
            elif not isinstance(v, str):
                raise SpecError(f"neuron field {f.name!r} must be a string, got {v!r}")
            kw[f.name] = v
        return spec_cls(**kw)


def same_step(dt_a: float, dt_b: float) -> bool:
    """Whether two step durations (µs) are one: a neuron's ``dt`` and the data's step, each
    computed as a recording's duration over T, agree to float rounding."""
    return math.isclose(dt_a, dt_b, rel_tol=1e-9)


def check_decay(name: str, decay: float) -> None:
    if not 0.0 < decay <= 1.0:
        raise SpecError(f"{name} must be in (0, 1], got {decay}")


def event_inv_tau(decay: float, dt: float) -> float:
    """``1 / tau`` (1/µs) of the decay the clock runtimes multiply by, ``float32(decay)``
    (``decay = exp(-dt / tau)``): the event engine leaks as the graph does. 0 where that
    is 1: a decay of 1 - 1e-9 ran as IF clock-driven and leaked event-driven. Below
    float32's smallest (1.4e-45) it is 0 there, no memory: the float64 value's rate,
    which leaves none either (log(0) has no rate)."""
    d = float(np.float32(decay)) or decay
    return 0.0 if d == 1.0 else -math.log(d) / dt


def bin_mean_decay(decay: float) -> float:
    """The mean of ``exp(-s / tau)`` over one bin, ``s`` in ``[0, dt)``: ``(1 - decay) /
    ln(1 / decay)`` (``decay = exp(-dt / tau)``), 1 for no decay; ``decay`` read in float32
    as the clock runtimes and :func:`event_inv_tau` read it. A clock step sums a decaying
    quantity once per bin (``sum decay^k = 1 / (1 - decay)`` bins), the continuous form
    integrates it (``tau / dt = 1 / ln(1 / decay)`` bins): the sum is the integral divided
    by this. 0.72 at decay 0.5, towards 1 as the bin shrinks against ``tau``."""
    x = event_inv_tau(decay, 1.0)  # ln(1 / decay) of the float32 decay
    return 1.0 if x == 0.0 else -math.expm1(-x) / x


def tau_of(decay: float, dt: float) -> float:
    """``tau = -dt / ln(decay)`` (DESIGN.md §1: ``decay = exp(-dt / tau)``); inf for decay 1."""
    return math.inf if decay == 1.0 else -dt / math.log(decay)


def decay_of(tau: float, dt: float) -> float:
    """The inverse of :func:`tau_of`: ``exp(-dt / tau)``; 1 for tau = inf."""
    return 1.0 if math.isinf(tau) else math.exp(-dt / tau)


@dataclass(frozen=True)
class EventForm:
    """What the event-driven kernels need of a neuron (DESIGN.md §1, event-driven form):
    between inputs the membrane decays by ``exp(-dt_event * inv_tau)`` (and an adaptive
    threshold's increment by ``exp(-dt_event * inv_tau_adapt)``); an input adds its
    weight; the spike, reset and clamp rules apply at once. ``spiking`` False: a leaky
    integrator (readout) that only accumulates."""

    spiking: bool
    inv_tau: float  # 1 / tau in 1/µs (0: no decay)
    v_th: float
    v_min: float
    reset: str
    spike: str
    # an adaptive threshold (ALIF): v_th + a, where a decays with inv_tau_adapt (1/µs)
    # between inputs and rises by beta per spike; beta 0: a fixed threshold
    inv_tau_adapt: float = 0.0
    beta: float = 0.0
    # a synaptic current (CubaLIF): an input adds its weight to i, which decays with
    # inv_tau_syn (1/µs) and charges the membrane, dv/dt = -v * inv_tau + charge * i
    # (charge in 1/µs); the membrane then crosses the threshold between inputs, at times
    # the engine solves for. charge 0: inputs add to the membrane
    inv_tau_syn: float = 0.0
    charge: float = 0.0

    @property
    def leaks(self) -> bool:
        """Whether a state decays with time: then how long a step lasts in µs changes what
        the neuron does (an IF neuron sees only the order and sum of its inputs)."""
        return self.inv_tau > 0 or self.inv_tau_adapt > 0 or self.inv_tau_syn > 0


@dataclass(frozen=True)
class ClockForm:
    """What the one-pass numba clock step (:mod:`runtime.neuron.kernels`) needs of a
    neuron: the constants of its ONNX body, used in the body's order. ``second`` names
    how a second state enters the step (one of :data:`CLOCK_SECONDS`): "" none; "syn" a
    synaptic current ``i = decay2 * i_prev + I`` that charges the membrane with
    ``gain2 * i`` (CubaLIF); "adapt" a threshold increment ``a' = decay2 * a_prev``, the
    threshold ``v_th + a'``, then ``a = a' + gain2 * s`` (ALIF)."""

    decay: float
    v_th: float
    spike: str
    reset: str
    v_min: float
    second: str = ""
    decay2: float = 1.0
    gain2: float = 0.0

    def __post_init__(self) -> None:
        if self.second not in CLOCK_SECONDS:  # a new kind's form: no kernel runs it
            raise SpecError(
                f"a clock form with second state {self.second!r} has no numba step; the steps are "
                f"{list(CLOCK_SECONDS)} (runtime/neuron/kernels.py): return None from clock_form to run "
                "this kind on onnxruntime, or add a step there"
            )


# the values of ClockForm.second that a numba step exists for -> the state variables it updates
CLOCK_STATES = {"": 1, "syn": 2, "adapt": 2}
CLOCK_SECONDS = tuple(CLOCK_STATES)


def rules_clock_form(spec: NeuronSpec, second: str = "", decay2: float = 1.0, gain2: float = 0.0) -> ClockForm:
    """The clock form of a kind whose step is charge, then the shared rules (rules.py)."""
    return ClockForm(spec.decay, spec.v_th, spec.spike, spec.reset, spec.v_min, second, decay2, gain2)


def leaky_event_form(spec: NeuronSpec, spiking: bool) -> EventForm:
    """The event form of a one-state leaky membrane (LIF, IF, LI): it only decays between
    inputs, so checking the threshold at input times is exact. A floor above rest
    (``v_min > 0``) is not: the clock clamps every step, so a neuron sits at ``v_min`` from
    the first step and is lifted back to it after each leak, at times no input marks."""
    if spiking and spec.v_min > 0.0:
        raise EventFormError(
            f"a membrane floor above rest (v_min {spec.v_min:g} > 0) lifts the membrane at steps with no input "
            "(from the first step, and after each leak), at times no input event marks; the event engine runs "
            "v_min <= 0 only (run this model clock-driven)"
        )
    return EventForm(spiking, event_inv_tau(spec.decay, spec.dt), spec.v_th, spec.v_min, spec.reset, spec.spike)


def leak_issue(spec: NeuronSpec, limit: str, allowed: str) -> tuple[str, object, str] | None:
    """Speck's neurons do not leak: a decay below 1 (in float32, as the graph runs it) is
    the one thing it cannot run."""
    return None if np.float32(spec.decay) == 1.0 else (limit, spec.decay, allowed)


class EventFormError(SpecError):
    """A kind (or variant) that has no exact event-driven form; the message says why."""


class NirNeuronError(SpecError):
    """A neuron that has no NIR form, or a NIR node that cannot be mapped; the message
    names the problem."""


SpecT = TypeVar("SpecT", bound=NeuronSpec)


class NeuronKind(Generic[SpecT]):
    """The interface of one neuron kind; one subclass per module, registered by name.

    ``states`` names the state variables in the order they are stored, passed to the
    ONNX node after the input current and returned after the output (DESIGN.md §4).
    A kind with its own spec class names it once, as the type parameter
    (``NeuronKind[ALIFSpec]``: its methods see that class, which
    ``NeuronSpec.__post_init__`` guarantees at run time); ``spec_cls`` (what ``make_spec``
    builds) is read from it.
    """

    # what the rest of the product derives from a kind's dynamics (the numba kernel, the
    # event kernels, NIR, Speck); a subclass that redefines the dynamics (DYNAMICS) but not
    # one of these gets the base's "not available" for it, not its parent's (a QIF(LIF)
    # with its own step ran LIF's kernel, event form and NIR node, and passed the Speck check)
    DYNAMICS: ClassVar[tuple[str, ...]] = ("step", "overload", "onnx_body")
    DERIVED: ClassVar[tuple[str, ...]] = (
        "clock_form",
        "event_form",
        "nir_params",
        "to_nir",
        "nir_time",
        "nir_peers",
        "from_nir",
        "speck_issue",
        "trace_decay",
    )

    name: ClassVar[str]
    spec_cls: ClassVar[type[NeuronSpec]] = NeuronSpec
    states: ClassVar[tuple[str, ...]] = ("u",)
    spiking: ClassVar[bool] = True
    doc: ClassVar[str] = ""
    # names users pick this kind by (trainer --neuron), each with the fields it sets
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # the spec class is the type parameter (written twice, the two could disagree unseen:
        # mypy checks the methods against one, make_spec built the other)
        typed = [get_args(b)[0] for b in cls.__dict__.get("__orig_bases__", ()) if get_origin(b) is NeuronKind]
        if typed and isinstance(typed[0], type):
            if "spec_cls" in cls.__dict__ and cls.__dict__["spec_cls"] is not typed[0]:
                raise TypeError(
                    f"neuron kind {cls.__name__} is typed NeuronKind[{typed[0].__name__}] but sets spec_cls = "
                    f"{cls.__dict__['spec_cls'].__name__}: the type parameter is its spec class (leave spec_cls out)"
                )
            cls.spec_cls = typed[0]
        # a derived form holds only if it was written at or below every class that gives the
        # dynamics (in the MRO: a mixin's step above LIF's forms kept LIF's kernel too)
        dynamics = [_owner(cls, d) for d in cls.DYNAMICS]
        for m in cls.DERIVED:
            owner = _owner(cls, m)
            if owner is not NeuronKind and not all(issubclass(owner, d) for d in dynamics):
                setattr(cls, m, NeuronKind.__dict__[m])
        # how a node's tau is read belongs to the to_nir that writes it: one written below
        # the label's class (tau in steps under LIF's Euler label) must say its own
        if not issubclass(_owner(cls, "nir_time"), _owner(cls, "to_nir")):
            cls.nir_time = NeuronKind.nir_time  # type: ignore[method-assign]

    def _missing(self, method: str) -> NotImplementedError:
        return NotImplementedError(
            f"neuron kind {self.name!r} does not define {method}(); every kind defines step, overload and "
            "onnx_body (docs/neurons.md, Adding a kind)"
        )

    def validate(self, spec: SpecT) -> None:
        """Kind-specific checks beyond the common fields (raise :class:`SpecError`)."""

    def step(
        self, spec: SpecT, state: tuple[np.ndarray, ...], current: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """The numpy reference step: ``(output, new state)``; output is spikes (or u)."""
        raise self._missing("step")

    def overload(self, spec: SpecT) -> str:
        """The ONNX function variant this spec runs (one body per variant)."""
        raise self._missing("overload")

    def onnx_body(self, spec: SpecT) -> list[NodeProto]:
        """Standard ONNX nodes from ``current`` and ``<state>_prev`` inputs to ``out`` and
        the new ``<state>`` outputs, reading the spec's fields as node attributes."""
        raise self._missing("onnx_body")

    def clock_form(self, spec: SpecT) -> ClockForm | None:
        """The form the one-pass numba clock step runs, bit-identical to :meth:`onnx_body`
        (tests/test_split.py); None: the function body runs on onnxruntime."""
        return None

    def event_form(self, spec: SpecT) -> EventForm:
        """The form the event kernels run; :class:`EventFormError` if there is none."""
        raise EventFormError(f"{self.name} neurons have no event-driven form in this runtime")

    # the parameters of the NIR node this kind maps to, read by from_nir (empty: no node)
    nir_params: tuple[str, ...] = ()

    def to_nir(self, spec: SpecT, shape: tuple[int, ...]) -> tuple[str, dict[str, np.ndarray]]:
        """``(NIR node class name, parameters)`` for a layer of ``shape`` (conventions:
        :mod:`runtime.neuron.nir`); the full spec goes into the node's metadata beside it."""
        able = [k for k in kinds() if type(kind_of(k)).to_nir is not NeuronKind.to_nir]
        raise NirNeuronError(f"{self.name} neurons have no NIR node; the kinds with one are {able}")

    def nir_time(self, spec: SpecT) -> str:
        """How the NIR node's time constants are to be read (its ``flexsnn.nir_time``
        metadata, :func:`runtime.neuron.nir.time_label`); asked only of a kind with a node."""
        raise NotImplementedError(f"neuron kind {self.name!r} has to_nir() but no nir_time(): say how its tau is read")

    def nir_peers(self, spec: SpecT) -> dict[str, str | None]:
        """Per NIR peer (``runtime.neuron.nir.PEERS``): what it runs differently for the
        exported node, as a phrase, or None for the same spikes."""
        return {}

    def from_nir(self, params: dict[str, np.ndarray], source: str, dt_s: float) -> tuple[NeuronSpec, float]:
        """``(spec, input gain)`` of a NIR node written by ``source`` (a key of
        ``runtime.neuron.nir.CONVENTIONS`` other than flexsnn) with step ``dt_s`` seconds
        (NIR's unit; a spec's ``dt`` is in µs)."""
        raise NirNeuronError(f"{self.name} nodes cannot be imported from {source}")

    def trace_decay(self, spec: SpecT) -> float | None:
        """The decay ``lambda`` of a one-state membrane ``u = lambda * u_prev + I``, which the
        online methods' eligibility traces assume (OTTT, SLTT, NDOT); None: they cannot train
        this kind."""
        return None

    def speck_issue(self, spec: SpecT) -> tuple[str, object, str] | None:
        """What keeps Speck from running this neuron, as (limit, value found, what the chip
        allows); None: the chip runs it (as IF with subtract reset and multi-spike)."""
        return "neuron kind", self.name, "IF (Speck has integrate-and-fire neurons only)"


def _owner(cls: type, name: str) -> type:
    """The class of ``cls``'s MRO that defines ``name``."""
    return next(c for c in cls.__mro__ if name in c.__dict__)


_REGISTRY: dict[str, NeuronKind[Any]] = {}
KindT = TypeVar("KindT", bound=NeuronKind[Any])


# the types a spec field may have: what checkpoints (JSON), ONNX attributes (float, string:
# the function bodies read float constants), NIR metadata and the generated CLI flags carry
FIELD_TYPES = {"float": float, "str": str}


def field_type(f: Field[Any]) -> type | None:
    """The type of spec field ``f`` (its annotation may be a string): float or str, None
    for any other (refused by :func:`register`)."""
    return FIELD_TYPES.get(f.type) if isinstance(f.type, str) else f.type if f.type in (float, str) else None


def register(kind: KindT) -> KindT:
    if kind.name in _REGISTRY:
        raise ValueError(f"neuron kind {kind.name!r} is registered twice")
    for f in fields(kind.spec_cls):
        if field_type(f) is None:
            # an int field trained, then no reader took the checkpoint back (and its ONNX
            # attribute failed shape inference): refused where the kind is written
            raise TypeError(
                f"neuron kind {kind.name!r}: spec field {f.name!r} is typed {f.type!r}; spec fields are "
                f"{list(FIELD_TYPES)} (a count of steps is a float, checked whole in validate)"
            )
    # a preset names one kind: a kind derived from another inherits its presets unless it
    # declares its own, and `--neuron lif` then built the derived kind, unsaid
    for name, other in presets().items():
        if name in kind.presets:
            raise ValueError(
                f"neuron kind {kind.name!r}: preset {name!r} is {other[0]}'s already; declare the kind's own "
                "presets (presets = {} for none): a class attribute is inherited"
            )
    _REGISTRY[kind.name] = kind
    return kind


def kinds() -> list[str]:
    """Every registered kind, sorted by name."""
    return sorted(_REGISTRY)


def kind_of(name: object) -> NeuronKind[Any]:
    """The registered kind called ``name``; unknown names list the valid ones."""
    try:
        return _REGISTRY[name]  # type: ignore[index]
    except (KeyError, TypeError):
        raise SpecError(f"neuron kind {name!r} is unknown; expected one of {kinds()}") from None


def make_spec(kind: str, **fields_: Any) -> NeuronSpec:
    """A spec of ``kind`` (its own spec class) from keyword fields; unknown fields are an error."""
    cls = kind_of(kind).spec_cls
    names = {f.name for f in fields(cls)} - {"kind"}
    extra = set(fields_) - names
    if extra:
        raise SpecError(f"a {kind} neuron has no field(s) {sorted(extra)}; its fields are {sorted(names)}")
    return cls(kind=kind, **fields_)


def field_names(kind: str) -> list[str]:
    return [f.name for f in fields(kind_of(kind).spec_cls) if f.name != "kind"]


def presets() -> dict[str, tuple[str, dict[str, Any]]]:
    """Every preset name -> (kind, the fields it sets), over all registered kinds, by name."""
    found = {name: (k.name, dict(fixed)) for k in _REGISTRY.values() for name, fixed in k.presets.items()}
    return dict(sorted(found.items()))


def all_fields() -> dict[str, Any]:
    """Every spec field of every kind (except ``kind``) -> its dataclass field (for CLIs)."""
    out: dict[str, Any] = {}
    for k in _REGISTRY.values():
        for f in fields(k.spec_cls):
            if f.name != "kind":
                out.setdefault(f.name, f)
    return out
