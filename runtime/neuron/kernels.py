"""One-pass numba clock steps for the split executor (runtime/split.py).

The ONNX function body of a LIF layer (rules.py) makes five to nine full passes over the
state (Mul, Add, GreaterOrEqual, Cast, Mul, Sub, ...); these kernels read the current and
the states once and write spikes and states once, doing the SAME float32 operations in
the same order as the bodies (``decay * u + I``; ``v >= theta``; ``floor(v / theta)``;
``v - theta * s`` or ``v * keep``; ``max(u, v_min)``; CubaLIF's current and ALIF's
threshold increment as in their modules), so spikes and states are bit-identical to the
bodies (tests/test_split.py checks every variant of every kind that has a kernel).
Without fast-math LLVM contracts nothing into FMAs, which would change the rounding.

A kind has a kernel when its :meth:`~runtime.neuron.base.NeuronKind.clock_form` is not
None; the form's ``second`` picks the step (one per ``base.CLOCK_SECONDS``). numba is imported only by
:func:`kernel` (the Raspberry Pi profile runs without it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

from .base import CLOCK_SECONDS, CLOCK_STATES, ClockForm, NeuronKind, NeuronSpec, SpecError, kind_of, kinds

# k(current, states, spikes): one step, the states updated in place
Kernel = Callable[[np.ndarray, Sequence[np.ndarray], np.ndarray], None]


@cache
def compiled() -> dict[str, Callable]:
    """The numba steps by ``ClockForm.second``, compiled (or loaded from numba's cache)."""
    from ..jit import cached_njit

    @cached_njit(inline="always")
    def rules(v, theta, multi, zero_reset, clamp, v_min):
        """(spikes, membrane) from the charged ``v``: rules.py's spike, reset and clamp."""
        fire = v >= theta
        if multi:
            out = np.float32(np.floor(v / theta)) if fire else np.float32(0.0)
        else:
            out = np.float32(1.0) if fire else np.float32(0.0)
        if zero_reset:
            r = v * (np.float32(0.0) if fire else np.float32(1.0))
        else:
            r = v - theta * out
        if clamp:
            r = max(r, v_min)
        return out, r

    @cached_njit(nogil=True, boundscheck=False)
    def lif_step(cur, u, s, decay, theta, multi, zero_reset, clamp, v_min):
        c, uu, ss = cur.ravel(), u.ravel(), s.reshape(-1)
        for i in range(c.size):
            ss[i], uu[i] = rules(decay * uu[i] + c[i], theta, multi, zero_reset, clamp, v_min)

    @cached_njit(nogil=True, boundscheck=False)
    def syn_step(cur, u, w, s, decay, theta, multi, zero_reset, clamp, v_min, decay_syn, syn_gain):
        """CubaLIF: ``i = decay_syn * i_prev + I``, ``v = decay * u_prev + syn_gain * i``."""
        c, uu, ii, ss = cur.ravel(), u.ravel(), w.ravel(), s.reshape(-1)
        for k in range(c.size):
            i = decay_syn * ii[k] + c[k]
            ii[k] = i
            ss[k], uu[k] = rules(decay * uu[k] + syn_gain * i, theta, multi, zero_reset, clamp, v_min)

    @cached_njit(nogil=True, boundscheck=False)
    def adapt_step(cur, u, w, s, decay, v_th, multi, zero_reset, clamp, v_min, decay_adapt, beta):
        """ALIF: ``a' = decay_adapt * a_prev``, threshold ``v_th + a'``, ``a = a' + beta * s``."""
        c, uu, aa, ss = cur.ravel(), u.ravel(), w.ravel(), s.reshape(-1)
        for k in range(c.size):
            a = decay_adapt * aa[k]
            out, uu[k] = rules(decay * uu[k] + c[k], v_th + a, multi, zero_reset, clamp, v_min)
            ss[k] = out
            aa[k] = a + beta * out

    steps: dict[str, Callable] = {"": lif_step, "syn": syn_step, "adapt": adapt_step}
    assert tuple(steps) == CLOCK_SECONDS  # the forms a ClockForm accepts are the ones run here
    return steps


def clock_form(spec: NeuronSpec) -> ClockForm | None:
    """The kind's clock form of ``spec``, held to its states: a form that updates fewer
    state variables than the kind has would run another neuron (a two-state kind declaring
    a one-state form ran plain LIF, and backend auto chose it)."""
    kind = kind_of(spec.kind)
    form = kind.clock_form(spec)
    if form is not None and CLOCK_STATES[form.second] != len(kind.states):
        raise SpecError(
            f"{spec.kind}'s clock form (second state {form.second!r}) updates {CLOCK_STATES[form.second]} state "
            f"variable(s), but a {spec.kind} neuron has {len(kind.states)} {list(kind.states)}: fix its clock_form, "
            "or return None to run it on onnxruntime"
        )
    return form


def supported(spec: NeuronSpec) -> bool:
    return clock_form(spec) is not None


def with_kernels() -> list[str]:
    """The registered kinds that declare a clock form (so have a kernel)."""
    return [k for k in kinds() if type(kind_of(k)).clock_form is not NeuronKind.clock_form]


def kernel(spec: NeuronSpec) -> Kernel:
    """``k(current, states, spikes)``: one step, the states (the kind's, in order;
    C-contiguous float32 arrays of one shape) updated in place."""
    form = clock_form(spec)
    if form is None:
        raise ValueError(f"no numba kernel for kind {spec.kind!r}; kernels exist for {with_kernels()}")
    step, args = compiled()[form.second], _args(form)
    if form.second == "":
        return lambda cur, states, s: step(cur, states[0], s, *args)
    f32 = np.float32
    extra = (f32(form.decay2), f32(form.gain2))
    return lambda cur, states, s: step(cur, states[0], states[1], s, *args, *extra)


def _args(form: ClockForm) -> tuple:
    """The rules' constants as the bodies hold them (float32 attributes)."""
    f32 = np.float32
    clamp = form.v_min != -math.inf
    return (
        f32(form.decay),
        f32(form.v_th),
        form.spike == "multi",
        form.reset == "zero",
        clamp,
        f32(form.v_min if clamp else 0.0),
    )
