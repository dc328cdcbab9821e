"""Exit policies: after each step, which samples of the batch may stop.

A policy is a small object with two methods (see :class:`ExitPolicy`); a user can write
one. The session asks ``horizon(default_T)`` once for the most steps it may run, then,
after step ``t`` (1-based), ``should_exit(t, logits)`` with the readout of every sample
still running (``[B, classes]``). Samples that exit leave the batch.

Strings parse through :data:`POLICIES`: ``fixed:6``, ``confidence:0.9[,tmin=1,tmax=10]``,
``entropy:0.3[,tmin=..,tmax=..]``, ``margin:0.5[,tmin=..,tmax=..]``,
``cascade:confidence:0.6,T=1+6``; an unknown form raises :class:`PolicyError` listing
the valid ones.

A :class:`Cascade` is not a per-step policy: it runs whole samples again at a larger T
(the session re-bins each recording), so it needs whole recordings or images, not frames
or a live stream.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from .errors import InputError
from .limits import check_steps

if TYPE_CHECKING:
    from .protocol import Protocol as ModelProtocol


class PolicyError(InputError):
    """A policy that cannot be used (a malformed one, or one this kind of run cannot take:
    a cascade in an event-driven run or a stream); the message names the valid forms. An
    :class:`InputError`: a policy is one of a run's inputs."""


class ExitPolicy(Protocol):
    def horizon(self, default_T: int) -> int:
        """The most steps any sample may run (``default_T``: the model's default T)."""

    def should_exit(self, t: int, logits: np.ndarray) -> np.ndarray:
        """Bool ``[B]``: which samples stop after step ``t`` (1-based) given their readout."""


# an event-driven run (runtime.event.exit) asks a policy at each bin of one pass per stream
CASCADE_NOT_EVENT_DRIVEN = (
    "a cascade reruns whole recordings at several T; an event-driven run reads each stream once: "
    "use a rule (confidence, margin, entropy) or fixed:T"
)


def horizon_of(policy: ExitPolicy | Cascade, default_T: int) -> int:
    """``policy.horizon(default_T)``, checked: a user's policy that gives no positive whole
    number of steps is a :class:`PolicyError`, not a numpy error further on; one beyond
    ``limits.MAX_T`` a :class:`ResourceError`, in every mode (an event run of 1e9 steps
    never ended)."""
    T = policy.horizon(default_T)
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise PolicyError(f"{type(policy).__name__}.horizon returned {T!r}; expected a whole number of steps >= 1")
    check_steps(int(T))
    return int(T)


def exit_decisions(policy: ExitPolicy, t: int, logits: np.ndarray) -> np.ndarray:
    """``policy.should_exit(t, logits)``, checked: one bool per row of ``logits``. A user's
    policy that returns scores (floats) or counts is a :class:`PolicyError`: read as truth
    values, every nonzero score would stop its sample."""
    got = np.asarray(policy.should_exit(t, logits))
    name = type(policy).__name__
    if got.dtype != np.bool_:
        raise PolicyError(
            f"{name}.should_exit returned dtype {got.dtype}; expected bool (e.g. scores > threshold), one per sample"
        )
    if got.shape != (len(logits),):
        raise PolicyError(
            f"{name}.should_exit returned shape {list(got.shape)}; expected one bool per sample still running, "
            f"[{len(logits)}]"
        )
    return got


def first_exit(policy: ExitPolicy | Cascade) -> int:
    """The first step (1-based) after which ``policy`` may stop a sample: the session asks
    it nothing before (no readout, no call: per-step Python work that a fixed T or a
    ``tmin`` makes useless). A policy without ``first_exit`` is asked from step 1."""
    first = getattr(policy, "first_exit", None)
    return int(first()) if callable(first) else 1


# The exit scores, one compiled loop per row of the readout. Every decision (the session's
# after each step, calibrate-exit's replay of thousands of thresholds) goes through these,
# so both agree bit for bit; compiled because at batch 1 the five or six numpy calls of the
# array form took 7-30 µs per step (more when the model's own step has emptied the caches),
# up to a fifth of a 0.13 ms N-MNIST step (issue 19 item 5). Each row: the logits shifted by
# their maximum (no overflow), e_i = exp(z_i) in float64 with the scalar libm exp, and the
# sum S of the e_i left to right: the definition tests/test_sdk_step_work.py checks.
SCORES = ("confidence", "entropy", "margin")


def _scores(z: np.ndarray, which: int, out: np.ndarray) -> None:
    """``out[b]``: score ``which`` (an index of :data:`SCORES`) of row ``b`` of the float64
    logits ``z``. Plain Python that numba compiles as it stands (:func:`compiled_scores`);
    scalar ``math.exp``/``math.log`` are libm's in both, so both give the same bits."""
    B, C = z.shape
    e = np.empty(C)  # the row's exps, each computed once (entropy and margin read them again)
    for b in range(B):
        m = z[b, 0]
        for c in range(1, C):
            m = max(m, z[b, c])
        total = 0.0
        for c in range(C):
            e[c] = math.exp(z[b, c] - m)
            total += e[c]
        if which == 0:  # max softmax: the top shifted logit is 0, exp(0) = 1, so 1 / S
            out[b] = 1.0 / total
        elif which == 1:  # entropy of p_i = e_i / S over log(C): 0 certain, 1 uniform
            h = 0.0
            for c in range(C):
                p = e[c] / total
                h -= p * math.log(max(p, 1e-300))
            out[b] = h / math.log(C) if C > 1 else 0.0
        elif which == 2:  # top-1 minus top-2 probability
            first, second = -1.0, -1.0
            for c in range(C):
                p = e[c] / total
                if p > first:
                    first, second = p, first
                elif p > second:
                    second = p
            out[b] = first - second if C > 1 else 1.0
        else:  # a name added to SCORES without its branch here ran another score's, silently
            raise ValueError("exit score index has no branch in runtime.policies._scores")


@cache
def compiled_scores() -> Callable[[np.ndarray, int, np.ndarray], None]:
    """:func:`_scores` compiled on first use (or loaded from numba's cache), so importing
    the policies imports no numba. Without numba (a Pi install may leave it out:
    docs/edge.md) the same loop runs as Python: the same bits, slower (about 10 µs a row of
    10 classes against well under one)."""
    try:
        from .jit import cached_njit
    except ImportError:
        return _scores
    return cached_njit(nogil=True)(_scores)


def score_loop() -> Callable[[np.ndarray, int, np.ndarray], None]:
    """:func:`compiled_scores` where numba is loaded already (the numba backend loads it),
    else the Python loop (the same bits): importing numba for the scores alone took about
    120 MiB more, the memory ``--backend ort`` is chosen to save (docs/edge.md)."""
    return compiled_scores() if "numba" in sys.modules else _scores


def _score(logits: np.ndarray, which: str) -> np.ndarray:
    z = np.ascontiguousarray(logits, np.float64)
    if z.ndim != 2 or z.shape[1] == 0:
        raise ValueError(f"exit scores take logits [batch, classes >= 1], got shape {z.shape}")
    out = np.empty(len(z))  # filled in place: returning a new array from numba costs a µs more
    score_loop()(z, SCORES.index(which), out)
    return out


def max_softmax(logits: np.ndarray) -> np.ndarray:
    """Largest softmax probability of each row of ``logits [B, C]``, float64 ``[B]``."""
    return _score(logits, "confidence")


def normalized_entropy(logits: np.ndarray) -> np.ndarray:
    """Entropy of each row's softmax divided by log(classes): 0 = certain, 1 = uniform."""
    return _score(logits, "entropy")


def top2_margin(logits: np.ndarray) -> np.ndarray:
    """Softmax probability of the top class minus that of the runner-up, in [0, 1]."""
    return _score(logits, "margin")


def _is_int(v: object) -> bool:
    """A whole number of steps: int or numpy integer; not a bool, not a float (even 4.0)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _shown(v: object) -> str:
    """A bad value as given, with its type where its text hides it (``'0.9'`` is a str)."""
    return repr(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else f"{v!r} ({type(v).__name__})"


@dataclass(frozen=True)
class FixedT:
    """Every sample runs exactly ``T`` steps (any T, not only the trained one)."""

    T: int

    def __post_init__(self) -> None:
        if not (_is_int(self.T) and self.T > 0):
            raise PolicyError(f"fixed T must be a positive integer, got {_shown(self.T)}")
        object.__setattr__(self, "T", int(self.T))  # np.int64 from an argmax: a plain int, as parsed

    def __str__(self) -> str:  # the text parse_policy reads back (as every policy's)
        return f"fixed:{self.T}"

    def horizon(self, default_T: int) -> int:
        return self.T

    def first_exit(self) -> int:
        return self.T

    def should_exit(self, t: int, logits: np.ndarray) -> np.ndarray:
        return np.full(len(logits), t >= self.T)


@dataclass(frozen=True)
class _Bounded:
    """Shared [tmin, tmax] window; ``tmax=None`` means the model's default T. The
    threshold bounds score ``name`` (one of :data:`SCORES`) of the readout, in [0, 1]:
    a sample stops where it is above (``higher``) or below the threshold."""

    name: ClassVar[str]
    measure: ClassVar[str]
    higher: ClassVar[bool]
    threshold: float
    tmin: int = 1
    tmax: int | None = None

    def __post_init__(self) -> None:
        if not (_is_int(self.tmin) and self.tmin >= 1):
            raise PolicyError(f"tmin must be a positive integer, got {_shown(self.tmin)}")
        if self.tmax is not None and not (_is_int(self.tmax) and self.tmax >= self.tmin):
            raise PolicyError(f"tmax must be an integer >= tmin ({self.tmin}), got {_shown(self.tmax)}")
        # a str ("0.9" from a config file) compared as a TypeError; a bool passed as 0 or 1
        real = isinstance(self.threshold, numbers.Real) and not isinstance(self.threshold, bool)
        if not (real and 0.0 <= self.threshold <= 1.0):
            raise PolicyError(f"{self.measure} threshold must be in [0, 1], got {_shown(self.threshold)}")
        object.__setattr__(self, "tmin", int(self.tmin))
        object.__setattr__(self, "tmax", None if self.tmax is None else int(self.tmax))
        object.__setattr__(self, "threshold", float(self.threshold))

    @classmethod
    def score(cls, logits: np.ndarray) -> np.ndarray:
        return _score(logits, cls.name)

    def horizon(self, default_T: int) -> int:
        return max(self.tmin, default_T) if self.tmax is None else self.tmax

    def first_exit(self) -> int:
        return self.tmin

    def confident(self, logits: np.ndarray) -> np.ndarray:
        return passes(self.score(logits), self.threshold, self.higher)

    def __str__(self) -> str:
        return f"{self.name}:{self.threshold},tmin={self.tmin}" + ("" if self.tmax is None else f",tmax={self.tmax}")

    def should_exit(self, t: int, logits: np.ndarray) -> np.ndarray:
        if t < self.tmin:
            return np.zeros(len(logits), bool)
        # the horizon is enforced by the session; here only the confidence test
        return self.confident(logits)


def passes(scores: np.ndarray, threshold: float | np.ndarray, higher: bool) -> np.ndarray:
    """Where a rule's scores clear its threshold (broadcast): strictly above it, or strictly
    below it for a rule whose lower score means more certain; equal never exits. The one
    test a run exits by and ``runtime calibrate-exit`` replays thresholds with."""
    return scores > threshold if higher else scores < threshold


@dataclass(frozen=True)
class Confidence(_Bounded):
    """SEENN-I: stop at the first step where max softmax of the readout > threshold."""

    name, measure, higher = "confidence", "confidence", True


@dataclass(frozen=True)
class Entropy(_Bounded):
    """Stop at the first step where the normalized entropy of the softmax < threshold."""

    name, measure, higher = "entropy", "normalized entropy", False


@dataclass(frozen=True)
class Margin(_Bounded):
    """Stop at the first step where the top-1 minus top-2 softmax probability > threshold."""

    name, measure, higher = "margin", "margin", True


# the rules that test a readout against a threshold, by name (this order breaks ties in
# runtime.exit_calibration)
RULES: dict[str, type[_Bounded]] = {cls.name: cls for cls in (Confidence, Margin, Entropy)}
# what --policy takes, for help and messages: read from the rules (a rule is listed once)
STEP_POLICY_FORMS = ("fixed:T", *(f"{name}:THRESHOLD[,tmin=N,tmax=N]" for name in RULES))  # decided per step
POLICY_FORMS = (*STEP_POLICY_FORMS, "cascade:RULE:THRESHOLD,T=N+N[+N...]")


@dataclass(frozen=True)
class Cascade:
    """Coarse to fine in time, for models that work at any T (MTT): every sample runs at
    ``T[0]`` steps; one whose readout passes ``rule`` (a :class:`Confidence`, :class:`Entropy`
    or :class:`Margin` test on that run's final readout) stops there, the others run again
    from the zero state at ``T[1]``, the recording re-binned into that many frames, and so
    on; the last T stops every sample. A sample's steps are the sum of the T it ran.

    Why beside the per-step rules: a step policy stops a run to Tmax early, when it has
    seen only the first part of the recording; a run at a small T has seen all of it (in
    fewer, coarser frames), and MTT models are nearly as accurate there (measured on
    N-MNIST: README, "Early exit chosen on validation"). The price: the whole recording
    is needed before the first step, so it saves computation, not latency on a live stream."""

    rule: _Bounded
    T: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.rule, _Bounded):
            raise PolicyError(
                f"a cascade's rule is one of {list(RULES)} (e.g. Confidence(0.9)), got {_shown(self.rule)}"
            )
        if self.rule.tmin != 1 or self.rule.tmax is not None:
            raise PolicyError("a cascade's rule takes no tmin/tmax: it tests the final readout of each run")
        if isinstance(self.T, (str, bytes)) or not isinstance(self.T, Iterable):  # "2+4" was 2, +, +, +, 4
            raise PolicyError(f"a cascade's T is a tuple of two or more positive integers, got {_shown(self.T)}")
        Ts = tuple(self.T)  # a list, an array or a range: read once
        if len(Ts) < 2 or any(not (_is_int(t) and t >= 1) for t in Ts):
            raise PolicyError(f"a cascade needs two or more positive integer T, got {'+'.join(map(str, Ts))}")
        object.__setattr__(self, "T", tuple(int(t) for t in Ts))  # plain ints, hashable: as parsed
        if any(b <= a for a, b in zip(self.T, self.T[1:])):
            raise PolicyError(f"a cascade's T must increase, got {'+'.join(map(str, self.T))}")

    def horizon(self, default_T: int) -> int:
        return self.T[-1]

    def first_exit(self) -> int:
        return self.T[0]

    def passes(self, logits: np.ndarray) -> np.ndarray:
        """Bool ``[B]``: which samples stop with this readout (a run's last)."""
        return self.rule.confident(logits)

    def __str__(self) -> str:
        return f"cascade:{self.rule.name}:{self.rule.threshold},T={'+'.join(map(str, self.T))}"


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise PolicyError(f"{what} must be an integer, got {value!r}") from None


def _parse_fixed(arg: str) -> ExitPolicy:
    return FixedT(_int(arg, "fixed T"))


def _bounded(cls: type[_Bounded]) -> Callable[[str], ExitPolicy]:
    def parse(arg: str) -> ExitPolicy:
        head, *opts = arg.split(",")
        try:
            threshold = float(head)
        except ValueError:
            raise PolicyError(f"threshold must be a number, got {head!r}") from None
        kw: dict[str, int] = {}
        for opt in opts:
            key, eq, value = opt.partition("=")
            if key.strip() not in ("tmin", "tmax") or not eq:
                raise PolicyError(f"option {opt!r} is unknown; expected tmin=N or tmax=N")
            if key.strip() in kw:
                raise PolicyError(f"{key.strip()} is given twice in {arg!r}; give it once")
            kw[key.strip()] = _int(value.strip(), key.strip())
        return cls(threshold, **kw)

    return parse


def _parse_cascade(arg: str) -> Cascade:
    head, _, opt = arg.rpartition(",")
    key, eq, value = opt.partition("=")
    if not head or key.strip() != "T" or not eq:
        raise PolicyError(f"a cascade is RULE:THRESHOLD,T=N+N[+N...], got {arg!r}")
    name, colon, threshold = head.partition(":")
    if not colon or name.strip() not in RULES:
        raise PolicyError(f"a cascade's rule is one of {list(RULES)} with a threshold, got {head!r}")
    rule = _bounded(RULES[name.strip()])(threshold)
    assert isinstance(rule, _Bounded)
    return Cascade(rule, tuple(_int(t.strip(), "a cascade's T") for t in value.split("+")))


# Registry: policy name -> parser of the text after "name:".
POLICIES: dict[str, Callable[[str], ExitPolicy | Cascade]] = {
    "fixed": _parse_fixed,
    **{name: _bounded(cls) for name, cls in RULES.items()},
    "cascade": _parse_cascade,
}


def parse_policy(text: str) -> ExitPolicy | Cascade:
    """``fixed:6`` -> :class:`FixedT`, etc.; :class:`PolicyError` lists the valid forms."""
    name, colon, arg = text.strip().partition(":")
    if name not in POLICIES or not colon or not arg:
        raise PolicyError(f"policy {text!r} is unknown; expected one of {list(POLICY_FORMS)}")
    try:
        return POLICIES[name](arg)
    except PolicyError as e:
        raise PolicyError(f"policy {text!r}: {e} (forms: {list(POLICY_FORMS)})") from None


def model_default(exit_policy: str | None, default_T: int) -> ExitPolicy | Cascade:
    """The policy a model runs when the caller names none: the one stored in its metadata
    by ``runtime calibrate-exit``, else every sample at ``default_T``
    (:attr:`runtime.protocol.Protocol.default_T`: a multi-rate file's last stage's T)."""
    return parse_policy(exit_policy) if exit_policy else FixedT(default_T)


def as_policy(policy: ExitPolicy | Cascade | str | int | None) -> ExitPolicy | Cascade | None:
    """Accept a policy object, a policy string, an int T (fixed), or None (the default)."""
    if policy is None or isinstance(policy, str):
        return None if policy is None else parse_policy(policy)
    if isinstance(policy, Cascade):
        return policy
    if isinstance(policy, (int, np.integer)) and not isinstance(policy, bool):
        return FixedT(int(policy))
    if isinstance(policy, bool) or not (
        callable(getattr(policy, "horizon", None)) and callable(getattr(policy, "should_exit", None))
    ):
        raise PolicyError(
            f"{policy!r} is not a policy: expected a string of the forms "
            f"{list(POLICY_FORMS)}, an int T, or an object with horizon() and should_exit()"
        )
    return policy


def t_range_warning(protocol: ModelProtocol, policy: ExitPolicy | Cascade | str | int | None) -> str | None:
    """A note when ``policy`` may stop at a T outside the range the model was trained on
    (its accuracy there was never part of training); None when it stays inside."""
    policy = as_policy(policy) or model_default(protocol.exit_policy, protocol.default_T)
    # the fewest steps a sample may run, and the most
    return t_range_note(protocol, first_exit(policy), horizon_of(policy, protocol.default_T))


def t_range_note(protocol: ModelProtocol, lo: int, hi: int, horizons: Sequence[int] = ()) -> str | None:
    """A note when runs of ``lo`` to ``hi`` steps leave the trained range, or run to a
    horizon (``hi``; or each of ``horizons``: a sweep of fixed T) other than the T the
    BatchNorm statistics were calibrated at; None otherwise."""
    t_lo, t_hi = protocol.T_range
    steps = f"T={hi}" if lo == hi else f"T in [{lo}, {hi}]"
    notes = (
        [] if t_lo <= lo and hi <= t_hi else [f"this run uses {steps}, outside the trained range T in [{t_lo}, {t_hi}]"]
    )
    calibrated = protocol.bn_calibration_T
    other = sorted({H for H in (horizons or [hi]) if H != calibrated}) if calibrated is not None else []
    if other:  # the horizon bins the input and sets the statistics' fit
        which = f"this run's horizon is T={other[0]}" if len(other) == 1 else f"this sweep runs to T={other}"
        to = other[0] if len(other) == 1 else "N"
        notes.append(
            f"its BatchNorm statistics were calibrated at T={calibrated} (one set fits one T) and {which}: "
            f"run at T={calibrated}, or recalibrate at T={to} (trainer calibrate --T {to}) and export again"
        )
    return "; ".join(notes) or None
