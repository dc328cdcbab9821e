"""Streaming inference over an event-camera file or a live stream, window by window.

Events come in chunks (:class:`runtime.data.eventfile.EventReader`), pass the model's
transforms (the ONNX metadata's ``input.transforms``, plus any the caller adds, e.g. a
downsample to the model's sensor), and drive one of two runtimes:

* clock-driven (:func:`run_clock`): bins of ``dt`` µs from the first event; after each
  bin the session steps once and the exit policy decides; a window ends when the policy
  exits (or at its horizon, the trained T by default), its prediction is emitted, the
  state is reset and the next window starts at the next bin.
* event-driven (:func:`run_event`): every event runs through the event engine as it
  arrives. Decision rule: windows of ``T · dt`` µs (the span the model was trained on)
  from the first event; at a window's end its prediction is the argmax of the readout
  accumulated over the window (output spike counts, or the readout membrane / summed
  current), ties to the lowest class; then the state is reset. Under an exit policy a
  window closes where the policy, asked after each of its bins of ``dt``, exits.

A bin (window) closes as soon as the stream shows it is over: an event at or after its
end arrived, or (with ``realtime``) the clock passed its end. Latency of a window: wall
time from the arrival of its last event to its prediction. Arrival is when the chunk
holding the event was read, or, paced by the recording's timestamps (``realtime``), the
event's own due time. Memory is bounded by the chunk size and one frame: nothing grows
with the stream's length except counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .data.eventfile import EventReader
from .data.transforms import Pipeline
from .errors import InputError
from .eventinput import span_us
from .policies import (
    RULES,
    Cascade,
    ExitPolicy,
    FixedT,
    PolicyError,
    exit_decisions,
    first_exit,
    horizon_of,
)
from .protocol import readout_so_far
from .session import Session

# a cascade's second run rebins whole recordings at a larger T: a stream has none
CASCADE_NOT_STREAMED = (
    f"a cascade runs whole recordings again at a larger T; a stream is binned as it arrives: use fixed or a "
    f"per-step rule ({', '.join(RULES)})"
)
TICK_MS = 1.0  # realtime: by default the recording is released in slices of 1 ms of wall time


@dataclass
class Slice:
    """Events that arrived together; ``now``: the stream time (µs) known to have passed."""

    events: np.ndarray
    now: int
    arrival: Callable[[int], float]  # wall time at which the event with timestamp t arrived
    raw: int = 0  # events read from the source for this slice (before transforms)


@dataclass
class Window:
    index: int
    t_start: float  # µs; fractional where the bin or window duration is (--dt-us 0.5)
    t_end: float
    events: int
    steps: int | None  # the bins run; event mode without a policy: None (a decision per window)
    prediction: int
    score: float
    latency_ms: float | None  # None: the window had no events
    partial: bool = False  # the stream ended inside it

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Stats:
    """Counters of a stream run (bounded: no per-window list)."""

    raw_events: int = 0
    events: int = 0
    windows: int = 0
    t_first: int | None = None
    t_last: int | None = None
    busy_s: float = 0.0  # wall time spent reading, transforming and running (no pacing sleeps)
    wall_s: float = 0.0
    max_lag_ms: float = 0.0  # realtime: how far processing fell behind the clock
    latencies: list = field(default_factory=list)  # a bounded reservoir of window latencies (ms)
    _seen: int = 0

    def latency(self, ms: float) -> None:
        """Keep a uniform sample of at most 4096 latencies (reservoir sampling, seeded)."""
        self._seen += 1
        if len(self.latencies) < 4096:
            self.latencies.append(ms)
        else:
            j = int(np.random.default_rng(self._seen).integers(self._seen))
            if j < 4096:
                self.latencies[j] = ms

    def summary(self, realtime: bool, speed: float = 1.0) -> dict:
        """``events_per_s_arriving``: the recording's rate, times ``speed`` when paced."""
        span_s = (
            ((self.t_last - self.t_first + 1) * 1e-6)  # both set by the first chunk
            if self.t_first is not None and self.t_last is not None
            else 0.0
        )
        lat = np.array(self.latencies) if self.latencies else np.array([np.nan])
        # None (JSON null) where there is nothing to rate: NaN is no JSON
        processed = self.raw_events / self.busy_s if self.busy_s > 0 and self.raw_events else None
        arriving = self.raw_events / span_s * (speed if realtime else 1.0) if span_s > 0 else None
        s = {
            "events_read": self.raw_events,
            "events_in": self.events,
            "windows": self.windows,
            "recording_s": span_s,
            "wall_s": self.wall_s,
            "busy_s": self.busy_s,
            "events_per_s_processed": processed,
            "events_per_s_arriving": arriving,
            "keeps_up": None if processed is None or arriving is None else bool(processed >= arriving),
            "latency_ms_p50": float(np.nanpercentile(lat, 50)) if self.latencies else None,
            "latency_ms_p99": float(np.nanpercentile(lat, 99)) if self.latencies else None,
            "latency_ms_max": float(np.nanmax(lat)) if self.latencies else None,
        }
        if realtime:
            s["max_lag_ms"] = self.max_lag_ms
        return s


def _clock(start_wall: float, t0: int, speed: float) -> Callable[[int], float]:
    """The wall time at which the event with timestamp ``t`` is due (paced playback)."""
    return lambda t: start_wall + (t - t0) * 1e-6 / speed


def _arrived(at: float) -> Callable[[int], float]:
    """Every event of a chunk read whole arrived at wall time ``at``."""
    return lambda t: at


def slices(
    reader: Iterable[np.ndarray],
    pipeline: Pipeline,
    stats: Stats,
    realtime: bool = False,
    speed: float = 1.0,
    tick_ms: float = TICK_MS,
) -> Iterator[Slice]:
    """Chunks of ``reader``, transformed; ``realtime``: released as the recording's clock
    (times ``speed``) reaches them, in slices of ``tick_ms`` of wall time (finer: lower
    latency, more overhead per slice)."""
    tick = max(1, round(tick_ms * 1e3 * speed))  # µs of the recording per slice
    due: Callable[[int], float] | None = None
    it = iter(reader)
    while True:
        t_read = time.perf_counter()
        waited = getattr(reader, "waiting_s", 0.0)
        chunk = next(it, None)
        # waiting for a live pipe's next bytes is not processing ("keeps up" compared the
        # rate with the arrival time included)
        t_read += getattr(reader, "waiting_s", 0.0) - waited
        if chunk is None:
            return
        stats.raw_events += len(chunk)
        if stats.t_first is None:
            stats.t_first = int(chunk["t"][0])
        stats.t_last = int(chunk["t"][-1])
        if not realtime:
            ev = pipeline(chunk)
            arrived = time.perf_counter()
            yield Slice(ev, int(chunk["t"][-1]), _arrived(arrived), len(chunk))
            stats.busy_s += time.perf_counter() - t_read  # reading, transforms and the model
            continue
        stats.busy_s += time.perf_counter() - t_read
        if due is None:
            due = _clock(time.perf_counter(), int(chunk["t"][0]), speed)
        # tick edges after the first event up to the first one past the last: every event is
        # in the slice of the edge above it; an empty slice still tells the clock moved on
        last_t = int(chunk["t"][-1])
        first, last = (int(chunk["t"][0]) // tick + 1) * tick, (last_t // tick + 1) * tick
        edges = np.arange(first, last + 1, tick)
        cuts = np.searchsorted(chunk["t"], edges[:-1], side="left")
        for part, end in zip(np.split(chunk, cuts), edges):
            wait = due(int(end)) - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            else:
                stats.max_lag_ms = max(stats.max_lag_ms, -wait * 1e3)
            b = time.perf_counter()
            # the last edge lies past the chunk's last event: the next chunk may still hold
            # events before it (and the recording may end at its last event), so only the
            # last event's time is known to have passed, as unpaced (windows closed early
            # were stepped without their events, and steps were run past the recording's end)
            yield Slice(pipeline(part), min(int(end), last_t), due, len(part))
            stats.busy_s += time.perf_counter() - b


class _Bins:
    """The clock-driven side: one frame per bin, a session step per closed bin."""

    def __init__(
        self, session: Session, dt_us: float, policy: ExitPolicy, emit: Callable[[Window], None], stats: Stats
    ):
        self.s, self.dt, self.policy, self.emit, self.stats = session, dt_us, policy, emit, stats
        self.T = horizon_of(policy, session.protocol.default_T)
        self.shape = session.protocol.input_shape
        self.frame = np.zeros((1, *self.shape), np.float32)
        self.win_start: float | None = None
        self.steps = 0
        self.win_events = 0
        self.last_arrival: float | None = None

    @property
    def bin_end(self) -> float:
        assert self.win_start is not None  # read once the first event opened the window
        return self.win_start + (self.steps + 1) * self.dt

    def feed(self, sl: Slice) -> None:
        ev = sl.events
        if self.win_start is None:
            if not len(ev):
                return
            self.win_start = float(ev["t"][0])
        i = 0
        while True:
            j = i + int(np.searchsorted(ev["t"][i:], self.bin_end, side="left"))
            if j > i:
                C, H, W = self.shape
                part = ev[i:j]
                flat = (part["p"].astype(np.int64) * H + part["y"]) * W + part["x"]
                self.frame.reshape(-1)[:] += np.bincount(flat, minlength=C * H * W)
                self.win_events += j - i
                self.last_arrival = sl.arrival(int(part["t"][-1]))
            i = j
            if i < len(ev) or sl.now >= self.bin_end:
                self.step(partial=False)
            else:
                return

    def step(self, partial: bool) -> None:
        logits = self.s.step(self.frame)[0]
        self.frame[:] = 0
        self.steps += 1
        done = bool(exit_decisions(self.policy, self.steps, logits[None])[0]) or self.steps >= self.T
        if done or partial:
            self._emit(logits, partial and not done)

    def _emit(self, logits: np.ndarray, partial: bool) -> None:
        assert self.win_start is not None  # a window closes only after its first event
        end = self.win_start + self.steps * self.dt
        lat = None if self.last_arrival is None else (time.perf_counter() - self.last_arrival) * 1e3
        w = Window(
            self.stats.windows,
            self.win_start,
            end,
            self.win_events,
            self.steps,
            int(np.argmax(logits)),
            float(np.max(logits)),
            lat,
            partial,
        )
        self.stats.windows += 1
        self.stats.events += self.win_events
        if lat is not None:
            self.stats.latency(lat)
        self.emit(w)
        self.s.reset()
        self.win_start, self.steps, self.win_events, self.last_arrival = end, 0, 0, None

    def close(self) -> None:
        if self.win_start is not None and (self.steps or self.win_events):
            self.step(partial=True)


def run_clock(
    session: Session,
    source: Iterable[Slice],
    emit: Callable[[Window], None],
    stats: Stats,
    dt_us: float | None = None,
    policy: ExitPolicy | Cascade | None = None,
) -> None:
    """Clock-driven streaming (see the module doc)."""
    if isinstance(policy, Cascade):
        raise PolicyError(f"policy {policy}: {CASCADE_NOT_STREAMED}")
    p = session.protocol
    dt = span_us(p.dt_us if dt_us is None else dt_us, "the bin duration")
    bins = _Bins(session, dt, policy or FixedT(p.default_T), emit, stats)
    for sl in source:
        bins.feed(sl)
    bins.close()


def run_event(
    engine,
    source: Iterable[Slice],
    emit: Callable[[Window], None],
    stats: Stats,
    window_us: float | None = None,
    policy: ExitPolicy | Cascade | None = None,
) -> None:
    """Event-driven streaming (see the module doc); ``engine``: an :class:`EventEngine`.
    ``policy``: asked at the end of each bin of ``window / T_trained`` µs (the trained ``dt``
    by default), as the clock stream asks it after each bin, up to its horizon; None: one
    decision per window, at its end."""
    if isinstance(policy, Cascade):
        raise PolicyError(f"policy {policy}: {CASCADE_NOT_STREAMED}")
    p = engine.protocol
    default = None if p.dt_us is None else p.T_trained * p.dt_us
    span = span_us(default if window_us is None else window_us, "the window")
    # a window's bins: the trained split of the window, asked from the policy's first exit
    width, horizon = (span, 1) if policy is None else (span / p.T_trained, horizon_of(policy, p.default_T))
    ask_from = horizon if policy is None else min(first_exit(policy), horizon)
    state = engine.initial_state()
    start: float | None = None
    k = n = 0  # the window's bins closed, its events
    last_arrival: float | None = None

    def close_bin(partial: bool) -> None:
        """The window's bin k + 1 is over (or the stream, ``partial``): ask the policy, and
        emit the window when it exits, at its horizon, or where the stream ends."""
        nonlocal state, start, k, n, last_arrival
        assert start is not None  # a bin closes only after the window's first event
        k += 1
        # a CubaLIF membrane keeps crossing its threshold after the last input: up to the
        # bin's end, as `run --mode event` runs a recording to its end (a bin the stream
        # cut: up to its last event, no time beyond the stream is invented)
        state, _ = engine.flush(state, None if partial else start + k * width, record=False)
        if not (partial or k >= ask_from):
            return
        r = engine.result(state)
        done = k >= horizon
        if policy is not None and not done:
            so_far = readout_so_far(r.outputs[None], r.outputs[None], k, p.readout)
            done = bool(exit_decisions(policy, k, so_far)[0])
        if not (done or partial):
            return
        lat = None if last_arrival is None else (time.perf_counter() - last_arrival) * 1e3
        # a cut window ends where the engine stopped, just after its last event (it said the
        # whole window's end, past the stream, where clock mode says its last bin's end)
        end = min(start + k * width, float(state.t_now) + 1) if partial else start + k * width
        steps = None if policy is None else k
        w = Window(stats.windows, start, end, n, steps, int(r.predictions), float(np.max(r.outputs)), lat, partial)
        stats.windows += 1
        stats.events += n
        if lat is not None:
            stats.latency(lat)
        emit(w)
        state, start, k, n, last_arrival = engine.initial_state(), start + k * width, 0, 0, None

    for sl in source:
        ev = sl.events
        if start is None:
            if not len(ev):
                continue
            start = float(ev["t"][0])
        i = 0
        while True:
            bin_end = start + (k + 1) * width
            j = i + int(np.searchsorted(ev["t"][i:], bin_end, side="left"))
            if j > i:
                state, _ = engine.feed(state, ev[i:j], record=False)
                n += j - i
                last_arrival = sl.arrival(int(ev["t"][j - 1]))
            i = j
            if i < len(ev) or sl.now >= bin_end:
                close_bin(False)
            else:
                break
    if start is not None and n:
        close_bin(True)


def fit_check(reader: EventReader, pipeline: Pipeline, model_shape: tuple[int, ...]) -> None:
    """The source's sensor after the transforms must be the model's input."""
    if tuple(pipeline.shape) != tuple(model_shape):
        C, H, W = pipeline.shape
        raise InputError(
            f"{reader.name}: a {reader.sensor[0]}x{reader.sensor[1]} sensor gives {C}x{H}x{W} inputs after the "
            f"transforms {[t.text for t in pipeline.transforms] or '(none)'}, but the model takes "
            f"{'x'.join(map(str, model_shape))}; add --fit-sensor (sum pooling to the model's sensor) or "
            "--transform crop/downsample"
        )
