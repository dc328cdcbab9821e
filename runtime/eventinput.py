"""The one validation of event input, used by the event-driven engine, the clock-driven
SDK (``Session.run(streams)``) and the data readers, before any kernel or binning sees
the events (a kernel would index out of range or silently misorder; binning would put an
out-of-sensor event into another pixel). Numpy only, so the clock-driven runtime can use
it without numba.

Streams are refused, never repaired: an unsorted stream is an error that says how to
sort it (or :func:`sort_stream`, the explicit opt-in), because sorting silently could
hide a broken recording.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .errors import InputError

FIELDS = ("x", "y", "p", "t")
MAX_T_US = 2**43  # about 101 days: binning multiplies t by T (<= 100000) and stays within int64


class EventInputError(InputError):
    """An event stream the engine cannot take; the message says what was expected."""


def span_us(value: float | None, what: str) -> float:
    """A duration in µs that events are binned or windowed by: a finite number > 0 (NaN
    would fail only after the whole stream was read, infinity put every event in one bin);
    None: neither the caller nor the model gave one."""
    if value is None:
        raise InputError(f"{what} is not given and the model states none; give it in µs")
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{what} must be a finite number of µs > 0, got {value}")
    if value < 1:  # events are stamped in whole µs: 1e-12 never moved the window on (it hung)
        raise InputError(f"{what} must be at least 1 µs (events are stamped in whole µs), got {value:g}")
    return float(value)


def _describe(ev: object) -> str:
    dtype = getattr(ev, "dtype", None)
    return f"{type(ev).__name__} with dtype {dtype}" if dtype is not None else type(ev).__name__


def check_stream(
    ev: object, shape: tuple[int, int, int], t_after: int = -1, what: str = "event stream"
) -> tuple[np.ndarray, ...]:
    """Validate ``ev`` for a sensor ``shape`` (C, H, W); return contiguous int64 x, y, p, t.

    ``t_after``: the stream continues one whose last timestamp was this (its first
    timestamp may not be earlier).
    """
    return tuple(check_events(ev, shape, t_after, what))


@functools.lru_cache(maxsize=64)
def _dtype_problem(dtype: np.dtype) -> str | None:
    """What is wrong with a structured dtype's x, y, p, t fields (None: nothing); per dtype,
    once: the event engine validates every stream it runs, and a stream can be one event."""
    for f in ("x", "y", "p"):
        # a bool polarity is tonic's own (tonic.io.events_struct, DVSGesture, CIFAR10-DVS):
        # True (ON) reads as 1, False (OFF) as 0, the runtime's convention
        if dtype[f].kind == "m" or not (np.issubdtype(dtype[f], np.integer) or (f == "p" and dtype[f] == np.bool_)):
            return f"field {f!r} has dtype {dtype[f]}; expected integers" + (" or bool" if f == "p" else "")
    if dtype["t"].kind == "m":  # numpy counts timedelta64 as an integer: its unit would be read as µs
        return (
            f"field 't' has dtype {dtype['t']}; expected integer µs (convert with "
            "t.astype('timedelta64[us]').astype(np.int64))"
        )
    if not (np.issubdtype(dtype["t"], np.integer) or np.issubdtype(dtype["t"], np.floating)):
        return f"field 't' has dtype {dtype['t']}; expected integer µs"
    return None


def check_events(
    ev: object,
    shape: tuple[int, int, int],
    t_after: int = -1,
    what: str = "event stream",
    starts: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`check_stream` as one C-contiguous int64 array ``[4, n]`` (rows x, y, p, t):
    the form the event kernels take. The ranges are tested on the converted rows with one
    min and one max over all four; the messages are built only when a test fails.
    ``starts``: ``ev`` is several streams one after the other, beginning at these indices
    (time starts again at each; :func:`check_batch`)."""
    names = getattr(getattr(ev, "dtype", None), "names", None)
    if not isinstance(ev, np.ndarray) or names is None or not set(FIELDS) <= set(names):
        raise EventInputError(
            f"{what} is a {_describe(ev)}; expected a structured numpy array with fields "
            "x, y, p, t (runtime.data.EVENT_DTYPE, as tonic uses)"
        )
    if ev.ndim != 1:
        raise EventInputError(f"{what} has shape {list(ev.shape)}; expected a 1-D array of events")
    problem = _dtype_problem(ev.dtype)
    if problem is not None:
        raise EventInputError(f"{what}: {problem}")
    t = ev["t"]
    if t.dtype.kind == "f":
        if not np.isfinite(t).all():
            raise EventInputError(f"{what}: {int((~np.isfinite(t)).sum())} timestamps are NaN or infinite")
        if np.any(t != np.floor(t)):
            raise EventInputError(f"{what}: timestamps must be whole µs; got fractions (e.g. {t[t != np.floor(t)][0]})")
        _check_t_range(t, what)  # before the cast: a float beyond int64 has no int64 value
    out = np.empty((4, len(ev)), np.int64)
    for row, f in zip(out, FIELDS):
        row[...] = ev[f]  # an unsigned value beyond int64 wraps negative: refused below
    if len(ev) == 0:
        return out
    lo, hi = out.min(axis=1), out.max(axis=1)
    if lo[3] < 0 or hi[3] > MAX_T_US:
        _check_t_range(t, what)
    C, H, W = shape
    for k, size, name in ((0, W, "width"), (1, H, "height")):
        if lo[k] < 0 or hi[k] >= size:
            a, f = ev[FIELDS[k]], FIELDS[k]
            bad = int(((a < 0) | (a >= size)).sum())
            raise EventInputError(
                f"{what}: {bad} events have {f} outside the sensor (range {a.min()}..{a.max()}; "
                f"the model's sensor {name} is {size}: 0..{size - 1})"
            )
    if lo[2] < 0 or hi[2] >= C:
        raise EventInputError(
            f"{what}: polarity values {sorted(set(np.unique(ev['p']).tolist()))[:5]} found; this "
            f"model expects p in 0..{C - 1} (ON = 1, OFF = 0; map a -1/+1 encoding with "
            "p = (p > 0))"
        )
    t64 = out[3]
    if len(t64) > 1:
        back = np.diff(t64) < 0
        if starts is not None:
            back[starts[starts > 0] - 1] = False  # a new stream may begin earlier
        down = np.flatnonzero(back)
        if down.size:
            i = int(down[0]) + 1
            raise EventInputError(
                f"{what}: timestamps are not sorted (t[{i - 1}] = {t64[i - 1]} > t[{i}] = "
                f"{t64[i]}); the engine refuses unsorted streams rather than guess. Sort "
                "with ev = ev[np.argsort(ev['t'], kind='stable')]"
            )
    if t64[0] < t_after:
        raise EventInputError(
            f"{what} starts at t = {t64[0]} µs, before the end of the previous chunk "
            f"(t = {t_after} µs); chunks must continue in time"
        )
    return out


def check_batch(streams: object, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Whole streams for a batched run: ``([4, N] int64 of them all, offsets [B + 1])``.
    Streams of one dtype are validated once, concatenated (a stream of one event costs a
    full :func:`check_events`, about 8 µs: most of what a batch of short streams paid per
    stream); if anything is wrong, each stream is checked alone, so the message names
    the stream and says what :func:`check_events` says of it."""
    if not isinstance(streams, (list, tuple)) or len(streams) == 0:
        raise EventInputError(
            f"expected a non-empty list of event streams, got {type(streams).__name__}"
            + (" of length 0" if isinstance(streams, (list, tuple)) else "")
        )
    offsets = lambda lengths: np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    one_form = all(isinstance(s, np.ndarray) and s.ndim == 1 and s.dtype == streams[0].dtype for s in streams)
    if one_form and all(len(s) for s in streams):
        starts = offsets([len(s) for s in streams])
        try:
            return check_events(np.concatenate(streams), shape, starts=starts[:-1]), starts
        except EventInputError:
            pass  # named below, stream by stream
    parts = [check_events(s, shape, what=f"event stream {b}") for b, s in enumerate(streams)]
    return np.concatenate(parts, axis=1), offsets([q.shape[1] for q in parts])


def _check_t_range(t: np.ndarray, what: str) -> None:
    if len(t) and t.min() < 0:
        raise EventInputError(f"{what}: negative timestamps (min {t.min()}); expected µs >= 0")
    if len(t) and float(t.max()) > MAX_T_US:  # in float64: MAX_T_US overflows a float16
        raise EventInputError(
            f"{what}: timestamp {t.max()} µs is beyond {MAX_T_US} µs (about 101 days); "
            "expected µs since the start of the recording"
        )


def sort_stream(ev: np.ndarray) -> np.ndarray:
    """The explicit opt-in for a stream known to be merely out of order: a stable sort by t."""
    return ev[np.argsort(ev["t"], kind="stable")]


def checked_streams(streams: list | tuple, shape: tuple[int, int, int]) -> list[np.ndarray]:
    """Validate a batch of whole streams (none may be empty) for a sensor ``shape``; returns
    them in ``runtime.data.EVENT_DTYPE`` (the layout binning reads), converted if needed.
    Validated as the event engine's batches are (:func:`check_batch`): the same messages."""
    from .data.events import EVENT_DTYPE  # runtime.data's readers import this module

    checked, offsets = check_batch(streams, shape)
    out = []
    for ev, a, b in zip(streams, offsets[:-1], offsets[1:]):
        if ev.dtype != EVENT_DTYPE:
            ev = np.empty(b - a, EVENT_DTYPE)
            ev["x"], ev["y"], ev["p"], ev["t"] = checked[:, a:b]
        out.append(ev)
    return out
