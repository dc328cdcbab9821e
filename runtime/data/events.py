"""Event streams as structured numpy arrays, and their binning into frames.

An event stream is a structured array with fields ``x``, ``y``, ``p`` (polarity 0/1) and
``t`` (µs), sorted by ``t`` (the layout tonic uses). Two binnings exist (DESIGN.md §5):

* ``"equal"``: the whole recording is split into T equal bins, so T sets the temporal
  resolution (how the MTT paper evaluates DVS data at different T). Bin of an event:
  ``floor((t - t0) * T / (t_end - t0))`` with ``t0 = 0`` and ``t_end`` the recording's
  duration (last timestamp + 1 µs unless given).
* ``"fixed"``: bins of a fixed duration ``dt_us`` starting at t = 0, so T steps cover
  ``T * dt_us`` of the stream (what streaming and early exit need); later events are
  left for later steps.

A frame holds the number of events per (polarity, y, x) in its bin. :class:`TimeBase` is
the one rule for which span or bin width a recording gets: the data sets, the clock
runtime and the event-driven early exit each ask it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DataError

EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")])
BINNINGS = ("equal", "fixed")
# what "equal" binning splits: the data set's recording length, or each recording's own span
DURATIONS = ("dataset", "recording")
# the event engine's clock: each recording in real µs, or stretched as training's bins stretched it (retimed)
TIME_BASES = ("real", "trained")


def make_events(x, y, p, t) -> np.ndarray:
    """Build a stream in :data:`EVENT_DTYPE`, sorted by time (stable). Values that the
    fields cannot hold as they are (fractions, NaN, beyond int16 pixels) are a
    :class:`DataError`: the cast wrapped x = 65541 to 5 and truncated 3.9 to 3, silently."""
    ev = np.empty(len(t), dtype=EVENT_DTYPE)
    for f, v in zip("xypt", (x, y, p, t)):
        a = np.asarray(v)
        with np.errstate(invalid="ignore"):  # NaN has no int value: found by the comparison below
            ev[f] = a
        want = np.broadcast_to(a, ev[f].shape)  # a scalar field (p = 1) stands for every event
        if want.size and not np.array_equal(ev[f], want):  # compared as values: 3.9 != 3, 65541 != 5
            bad = want[ev[f] != want].flat[0]
            raise DataError(f"event field {f} value {bad} does not fit {EVENT_DTYPE[f]} as a whole number")
    return ev[np.argsort(ev["t"], kind="stable")]


def packed(items: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Samples of varying length (event streams, recorded sequences; one at least) as one
    array of them all in order, and the int64 offsets where each starts and the last ends
    (n + 1 of them): the layout of the digits cache and of data snapshots (:func:`cut`)."""
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in items])]).astype(np.int64)
    return np.concatenate(items), offsets


def cut(flat: np.ndarray, offsets: np.ndarray, n: int) -> list[np.ndarray] | None:
    """The ``n`` samples that ``offsets`` cut ``flat`` into (:func:`packed`'s layout); None
    when they do not: not 1-D integers, n + 1 of them, from 0 to ``len(flat)``, ascending."""
    ok = offsets.ndim == 1 and offsets.dtype.kind in "iu" and len(offsets) == n + 1
    if not (ok and offsets[0] == 0 and offsets[-1] == len(flat) and np.all(np.diff(offsets) >= 0)):
        return None
    return [flat[offsets[i] : offsets[i + 1]] for i in range(n)]


def bin_events(
    streams: Sequence[np.ndarray],
    T: int,
    shape: tuple[int, int, int],
    binning: str = "equal",
    dt_us: float | None = None,
    durations_us: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Bin a batch of streams into count frames of shape ``[T, B, C, H, W]`` (float32).

    ``shape`` is ``(C, H, W)`` with C the number of polarities. ``durations_us`` gives each
    recording's length for ``"equal"`` binning (default: last timestamp + 1).
    """
    if T <= 0:
        raise ValueError(f"T must be a positive number of time steps, got {T}")
    if binning not in BINNINGS:
        raise ValueError(f"binning {binning!r} is unknown; expected one of {list(BINNINGS)}")
    if binning == "fixed" and not (dt_us is not None and math.isfinite(dt_us) and dt_us > 0):
        raise ValueError(f"fixed binning needs a finite bin duration dt_us > 0, got {dt_us}")
    C, H, W = shape
    B = len(streams)
    counts = np.fromiter((len(s) for s in streams), dtype=np.int64, count=B)
    ev = np.concatenate(streams) if B else np.empty(0, EVENT_DTYPE)
    sample = np.repeat(np.arange(B, dtype=np.int64), counts)
    t = ev["t"].astype(np.int64)
    if binning == "equal":
        ends = np.asarray(stream_ends(streams) if durations_us is None else durations_us, dtype=np.float64)
        # integer arithmetic where possible so the bin of an event does not depend on rounding
        b = np.floor(t * T / ends[sample]).astype(np.int64)
    else:
        assert dt_us is not None  # checked above: fixed binning has dt_us > 0
        b = np.floor(t / float(dt_us)).astype(np.int64)
    _check_on_sensor(ev, shape)
    keep = (b >= 0) & (b < T)
    flat = (((b * B + sample) * C + ev["p"]) * H + ev["y"]) * W + ev["x"]
    frames = np.bincount(flat[keep], minlength=T * B * C * H * W)
    return frames.reshape(T, B, C, H, W).astype(np.float32)


@dataclass(frozen=True)
class TimeBase:
    """How recordings become bins: a model's (:meth:`runtime.protocol.Protocol.time_base`)
    or a data set's (:meth:`runtime.data.Dataset.frames` makes it).

    ``binning`` "equal": T equal bins of each recording's span, ``duration_us`` for
    ``durations`` "dataset", else the recording's own (its declared length, or its last
    event + 1 µs); "fixed": bins of ``dt_us`` from t = 0 (None: ``duration_us / T``, the
    span split as "equal" would split it at that T). The values are checked by the caller,
    whose error names its own input.
    """

    binning: str
    durations: str
    duration_us: float
    dt_us: float | None = None

    def spans(self, streams: Sequence[np.ndarray], recorded: np.ndarray | None = None) -> np.ndarray:
        """Each recording's span ``[0, end)`` (µs) that "equal" binning splits; ``recorded``:
        the recordings' declared lengths, where the data set has them."""
        if self.durations == "dataset":
            return np.full(len(streams), self.duration_us)
        return np.asarray(recorded, np.float64) if recorded is not None else stream_ends(streams)

    def widths(self, streams: Sequence[np.ndarray], T: int, spans: np.ndarray | None = None) -> np.ndarray:
        """Each recording's bin width (µs) in a run of ``T`` bins; ``spans`` (equal binning):
        the spans to split instead of :meth:`spans`' (e.g. recordings stretched onto another)."""
        if self.binning == "fixed":
            return np.full(len(streams), self.fixed_width(T))
        return (self.spans(streams) if spans is None else np.asarray(spans, np.float64)) / T

    def describe(self, T: int) -> str:
        """The bins of a run of ``T``, in words (a run's header)."""
        if self.binning == "fixed":
            return f"bins of {self.fixed_width(T):g} µs"
        if self.durations == "recording":
            return f"{T} equal bins of each recording"
        return f"{T} bins of {self.duration_us / T:g} µs"

    def fixed_width(self, T: int) -> float:
        """The width (µs) of "fixed" bins in a run of ``T`` bins."""
        return self.duration_us / T if self.dt_us is None else self.dt_us

    def frames(
        self, streams: Sequence[np.ndarray], T: int, shape: tuple[int, int, int], recorded: np.ndarray | None = None
    ) -> np.ndarray:
        """``streams`` binned into ``[T, B, C, H, W]`` count frames (:func:`bin_events`)."""
        if self.binning == "fixed":
            return bin_events(streams, T, shape, "fixed", self.fixed_width(T))
        return bin_events(streams, T, shape, "equal", durations_us=self.spans(streams, recorded))


def stream_ends(streams: Sequence[np.ndarray]) -> np.ndarray:
    """Each recording's span when nothing declares it: its last timestamp + 1 µs (1 if empty)."""
    return np.array([s["t"][-1] + 1 if len(s) else 1 for s in streams], dtype=np.float64)


def retimed(stream: np.ndarray, span_us: float, to_us: float) -> np.ndarray:
    """``stream`` with its span ``[0, span_us)`` mapped linearly onto ``[0, to_us)``:
    ``t' = floor(t * to_us / span_us)``; events at or after ``span_us``, which equal binning
    leaves out, are dropped. What "equal" binning over the recording's own span does to
    time: bin ``k`` of T covers ``[k, k + 1) * span / T``, which lands on ``[k, k + 1) * to /
    T``; fixed bins of ``to_us / T`` then bin the result as equal binning binned the original,
    event for event where ``to_us / T`` is a whole number of µs (``t * to_us`` is multiplied
    first: exact below 2^53, so an event on a bin edge stays on it)."""
    if not (math.isfinite(span_us) and span_us > 0 and math.isfinite(to_us) and to_us > 0):
        raise DataError(f"a recording's span and the span it is stretched to must be > 0 µs, got {span_us} and {to_us}")
    out = stream[stream["t"] < span_us]  # a copy: boolean indexing
    out["t"] = np.floor(out["t"] * float(to_us) / float(span_us)).astype(np.int64)
    return out


def _check_on_sensor(ev: np.ndarray, shape: tuple[int, int, int]) -> None:
    """Every event on a pixel and polarity of ``shape``: the flat index of one off the sensor
    is another pixel's (a reader that skipped its check, x = 25 on a 20-wide sensor, binned
    it onto the next row; a negative one failed inside bincount)."""
    if not len(ev):
        return
    for f, size, name in (("x", shape[2], "width"), ("y", shape[1], "height"), ("p", shape[0], "polarities")):
        lo, hi = int(ev[f].min()), int(ev[f].max())
        if lo < 0 or hi >= size:
            raise DataError(
                f"events have {f} from {lo} to {hi}, outside the sensor's {name} of {size} (0..{size - 1}); "
                "binning would put them on other pixels"
            )


def count_unseen(streams: Sequence[np.ndarray], end_us: float) -> tuple[int, int, int]:
    """Fixed bins up to ``end_us`` miss the events at or after it: ``(missed events, all events,
    streams missing some)``."""
    late = [int((s["t"] >= end_us).sum()) for s in streams]
    return sum(late), sum(len(s) for s in streams), sum(map(bool, late))


def unseen_note(missed: int, total: int, streams_missed: int, streams: int, steps: int, dt_us: float) -> str:
    """What a run with fixed bins did not see (the text of ``UnseenEventsWarning``)."""
    return (
        f"{missed} of {total} events ({missed / total:.0%}) in {streams_missed} of {streams} stream(s) lie at "
        f"t >= {steps * dt_us:g} µs, after {steps} fixed bins of {dt_us:g} µs (the trained T, or the run's if "
        "longer): no run of that many steps sees them (shift the streams to start at 0, larger bins, or "
        "equal binning to spread each recording over the steps)"
    )
