"""The event-driven SDK: ``load_event("model.onnx") -> EventEngine``.

One stream, in chunks (the caller holds the state)::

    engine = load_event("model.onnx")
    state = engine.initial_state()
    for chunk in chunks:                       # split anywhere: same result as whole
        state, spikes = engine.feed(state, chunk)
    state, spikes = engine.flush(state)        # the events held back at the last timestamp
                                               # (until=: run CubaLIF crossings up to then)
    result = engine.result(state)              # outputs, predictions, spikes per neuron

Many whole streams in parallel (numba threads): ``engine.run_batch(streams)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ..protocol import ModelError, Protocol, one_rate, read_model
from ..result import EventResult
from .graph import Layer, lower
from .kernel import run_events, run_streams
from .network import KIND, KIND_SPIKING, EventState, initial_state, layer_view, pack
from .validate import EventInputError, check_events

MAX_PENDING = 2**22  # events held back at one timestamp (4 int64 each: 128 MiB)


@dataclass
class SpikeTrain:
    """Spikes of one layer: at time ``t`` (µs, float64: the input event's, or the time a
    CubaLIF membrane crossed its threshold between inputs), neuron ``neuron`` (flat index
    in the layer's (C, H, W) order) fired ``count`` spikes."""

    layer: str
    t: np.ndarray
    neuron: np.ndarray
    count: np.ndarray

    def __len__(self) -> int:
        return len(self.t)


class EventEngine:
    """An exported model lowered for event-driven execution (see :mod:`.graph`)."""

    def __init__(self, model: onnx.ModelProto, protocol: Protocol, path: str = ""):
        self.protocol, self.path = protocol, path
        self.layers: list[Layer] = lower(model, protocol)
        self.net = pack(self.layers)
        spiking = [i for i, L in enumerate(self.layers) if self.net.P[i, KIND] == KIND_SPIKING]
        self.spiking = spiking
        # the recorded train: the readout's spikes if it spikes, else those that feed the readout
        self.record_layer = spiking[-1]
        self.record_size = self.layers[self.record_layer].size
        self._names = {i: self.layer_name(i) for i in spiking}
        self._out_spiking = bool(self.net.P[len(self.layers) - 1, KIND] == KIND_SPIKING)

    @property
    def sensor(self) -> tuple[int, int, int]:
        C, H, W = self.protocol.input_shape  # three dimensions: checked when the graph was built
        return C, H, W

    def layer_name(self, i: int) -> str:
        return self.layers[i].node or self.layers[i].name

    # ---- one stream, in chunks --------------------------------------------------------
    def initial_state(self) -> EventState:
        return initial_state(self.net)

    def feed(self, state: EventState, chunk: np.ndarray) -> tuple[EventState, SpikeTrain]:
        """Run the events of ``chunk`` (sorted; continuing the stream in time).

        Events at the chunk's last timestamp are held back in ``state.pending`` (the next
        chunk may hold more of that instant); :meth:`flush` runs them at the end."""
        ev = check_events(chunk, self.sensor, state.t_now, "chunk")
        if ev.shape[1] == 0:
            return state, self._empty()
        if state.pending is not None:
            ev = np.concatenate([state.pending, ev], axis=1)
        cut = int(np.searchsorted(ev[3], ev[3, -1], side="left"))
        if ev.shape[1] - cut > MAX_PENDING:  # checked before the state changes: it stays usable
            raise EventInputError(
                f"{ev.shape[1] - cut} events at one timestamp (t = {int(ev[3, -1])} µs) are held "
                f"back, more than {MAX_PENDING}: the stream's timestamps do not advance; "
                "call flush() to run them, or check the recording's timestamps"
            )
        state.pending, state.t_now = ev[:, cut:], int(ev[3, -1])
        # crossings up to the held-back instant: no later chunk can hold an earlier input
        return state, self._run(state, ev[:, :cut], float(state.t_now))

    def flush(self, state: EventState, until: float | None = None) -> tuple[EventState, SpikeTrain]:
        """Run the held-back events; call at the end of a stream (more chunks may follow,
        from ``ceil(until)`` µs on). CubaLIF membranes keep crossing their threshold after
        the last input: those crossings are run up to ``until`` µs (e.g. the end of the
        recording; None or earlier than the last event: up to the last event)."""
        end = _end(until, state.t_now)
        ev, state.pending = state.pending, None
        state.t_now = max(state.t_now, math.ceil(end))
        return state, self._run(state, np.empty((4, 0), np.int64) if ev is None else ev, end)

    def _run(self, state: EventState, ev: np.ndarray, until: float) -> SpikeTrain:
        n = ev.shape[1]
        # the kernel stops before a wave that might not fit (a whole layer may fire at once):
        # room for that from the start, or every call would begin by growing the buffer
        cap = self.record_size + max(1024, 4 * n)
        rec_t, rec = np.empty(cap), [np.empty(cap, np.int64) for _ in range(2)]
        tally = np.zeros(3, np.int64)
        i = 0
        while True:
            tally[2] = 0
            i = run_events(
                self.net.P,
                self.net.F,
                self.net.W,
                ev[0],
                ev[1],
                ev[2],
                ev[3],
                i,
                n,
                until,
                state.v,
                state.a,
                state.t_last,
                state.t_neuron,
                state.crossing,
                state.counts,
                self.record_layer,
                rec_t,
                rec[0],
                rec[1],
                tally,
            )
            if tally[2] == 0:
                break
            if tally[2] == 2:
                raise _unresolvable()
            # the record buffer might overflow in the next wave: grow and go on
            rec_t, rec = np.concatenate([rec_t, rec_t]), [np.concatenate([r, r]) for r in rec]
        state.events += n
        state.synops += int(tally[1])
        k = tally[0]
        return SpikeTrain(self.layer_name(self.record_layer), rec_t[:k], rec[0][:k], rec[1][:k])

    def _empty(self) -> SpikeTrain:
        return SpikeTrain(self.layer_name(self.record_layer), np.empty(0), *(np.empty(0, np.int64),) * 2)

    def result(self, state: EventState) -> EventResult:
        """Outputs after what has been run (held-back events not included: flush first)."""
        out, counts = self._outputs(state.v, state.counts)
        return EventResult(out.argmax(-1), out, counts, np.array(state.events), np.array(state.synops))

    def _outputs(self, v: np.ndarray, cnt: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The readout (float64) and each spiking layer's counts, in ONNX order (C, H, W):
        strided copies of the layers' (H, W, C) views (faster than gathers by index)."""
        net, layers, last = self.net, self.layers, len(self.layers) - 1
        out = layer_view(net, layers, cnt if self._out_spiking else v, last).reshape(*v.shape[:-1], -1)
        counts = {name: np.ascontiguousarray(layer_view(net, layers, cnt, i)) for i, name in self._names.items()}
        return out.astype(np.float64), counts

    def run(self, stream: np.ndarray, until: float | None = None) -> tuple[EventResult, SpikeTrain]:
        """One whole stream: result and the recorded spike train (``until``: see :meth:`flush`)."""
        ev = check_events(stream, self.sensor)
        if ev.shape[1] == 0:
            raise EventInputError("the event stream is empty: no events, nothing to run")
        state = self.initial_state()
        # feed + flush of the whole stream in one kernel call: nothing is held back at the end
        end = _end(until, int(ev[3, -1]))
        train = self._run(state, ev, end)
        state.t_now = math.ceil(end)
        return self.result(state), train

    # ---- many whole streams in parallel ---------------------------------------------
    def run_batch(self, streams: Sequence[np.ndarray], until: float | None = None) -> EventResult:
        """Whole streams, one numba thread per stream (no spike trains); CubaLIF crossings
        run up to ``until`` µs or each stream's last event, whichever is later."""
        if not isinstance(streams, (list, tuple)) or len(streams) == 0:
            raise EventInputError(
                f"expected a non-empty list of event streams, got {type(streams).__name__}"
                + (" of length 0" if isinstance(streams, (list, tuple)) else "")
            )
        parts = []
        for b, s in enumerate(streams):
            parts.append(check_events(s, self.sensor, what=f"event stream {b}"))
            if parts[-1].shape[1] == 0:
                raise EventInputError(f"event stream {b} is empty: no events, nothing to run")
        x, y, p, t = np.concatenate(parts, axis=1)
        offsets = np.concatenate([[0], np.cumsum([q.shape[1] for q in parts])]).astype(np.int64)
        ends = np.array([_end(until, q[3, -1]) for q in parts])
        B, n = len(parts), self.net.n_neurons
        V, CNT, SYN = np.zeros((B, n)), np.zeros((B, n), np.int64), np.zeros(B, np.int64)
        start = time.perf_counter()
        run_streams(self.net.P, self.net.F, self.net.W, x, y, p, t, offsets, ends, self.net.n_groups, V, CNT, SYN)
        seconds = time.perf_counter() - start
        if np.any(SYN < 0):
            raise _unresolvable()
        out, counts = self._outputs(V, CNT)
        return EventResult(out.argmax(-1), out, counts, np.diff(offsets), SYN, seconds)


def _end(until: float | None, last: float) -> float:
    """Where a stream's crossings stop: ``until`` µs, or its last event if that is later."""
    if until is None:
        return float(last)
    if not math.isfinite(until):
        raise EventInputError(f"until must be a finite time in µs, got {until}")
    return max(float(last), float(until))


def _unresolvable() -> ModelError:
    return ModelError(
        "a CubaLIF neuron's synaptic current is so large that its membrane crosses the threshold "
        "again within one float64 time step (µs); the event engine cannot resolve its spikes in "
        "time: check the model's weights, or run it clock-driven"
    )


def load_event(path: str | Path) -> EventEngine:
    """Open an exported model for event-driven execution (:class:`ModelError` if it
    cannot run per event, saying why)."""
    model, proto = read_model(path)
    return EventEngine(model, one_rate(proto, "the event-driven engine"), str(path))
