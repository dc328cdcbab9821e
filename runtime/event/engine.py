"""The event-driven SDK: ``load_event("model.onnx") -> EventEngine``.

One stream, in chunks (the caller holds the state)::

    engine = load_event("model.onnx")
    state = engine.initial_state()
    for chunk in chunks:                       # split anywhere: same result as whole
        state, spikes = engine.feed(state, chunk)
    state, spikes = engine.flush(state)        # the events held back at the last timestamp
    result = engine.result(state)              # outputs, predictions, spikes per neuron

Many whole streams in parallel (numba threads): ``engine.run_batch(streams)``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ..protocol import Protocol, one_rate, read_model
from ..result import EventResult
from .graph import Layer, lower
from .kernel import run_events, run_streams
from .network import KIND, KIND_SPIKING, EventState, initial_state, layer_view, pack
from .validate import EventInputError, check_stream

MAX_PENDING = 2**22  # events held back at one timestamp (4 int64 each: 128 MiB)


@dataclass
class SpikeTrain:
    """Spikes of one layer: at time ``t`` (µs, the input event's), neuron ``neuron`` (flat
    index in the layer's (C, H, W) order) fired ``count`` spikes."""

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
        x, y, p, t = check_stream(chunk, self.sensor, state.t_now, "chunk")
        if len(t) == 0:
            return state, self._train(*(np.empty(0, np.int64),) * 3)
        ev = np.stack([x, y, p, t])
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
        return state, self._run(state, ev[:, :cut])

    def flush(self, state: EventState) -> tuple[EventState, SpikeTrain]:
        """Run the held-back events; call at the end of a stream (more chunks may follow)."""
        ev, state.pending = state.pending, None
        if ev is None:
            return state, self._train(*(np.empty(0, np.int64),) * 3)
        return state, self._run(state, ev)

    def _run(self, state: EventState, ev: np.ndarray) -> SpikeTrain:
        n = ev.shape[1]
        # the kernel stops before a wave that might not fit (a whole layer may fire at once):
        # room for that from the start, or every call would begin by growing the buffer
        cap = self.record_size + max(1024, 4 * n)
        rec = [np.empty(cap, np.int64) for _ in range(3)]
        tally = np.zeros(2, np.int64)
        i = 0
        while i < n:
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
                state.v,
                state.a,
                state.t_last,
                state.counts,
                self.record_layer,
                rec[0],
                rec[1],
                rec[2],
                tally,
            )
            if i < n:  # the record buffer might overflow in the next wave: grow and go on
                rec = [np.concatenate([r, np.empty(len(r), np.int64)]) for r in rec]
        state.events += n
        state.synops += int(tally[1])
        return self._train(*(r[: tally[0]] for r in rec))

    def _train(self, t: np.ndarray, neuron: np.ndarray, count: np.ndarray) -> SpikeTrain:
        return SpikeTrain(self.layer_name(self.record_layer), t, neuron, count)

    def result(self, state: EventState) -> EventResult:
        """Outputs after what has been run (held-back events not included: flush first)."""
        out, counts = self._outputs(state.v, state.counts)
        return EventResult(out.argmax(-1), out, counts, np.array(state.events), np.array(state.synops))

    def _outputs(self, v: np.ndarray, cnt: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        last = len(self.layers) - 1
        src = cnt if self.net.P[last, KIND] == KIND_SPIKING else v
        out = layer_view(self.net, self.layers, src, last).reshape(*v.shape[:-1], -1).astype(np.float64)
        counts = {
            self.layer_name(i): np.ascontiguousarray(layer_view(self.net, self.layers, cnt, i)) for i in self.spiking
        }
        return out, counts

    def run(self, stream: np.ndarray) -> tuple[EventResult, SpikeTrain]:
        """One whole stream: result and the recorded spike train."""
        x, y, p, t = check_stream(stream, self.sensor)
        if len(t) == 0:
            raise EventInputError("the event stream is empty: no events, nothing to run")
        state = self.initial_state()
        # feed + flush of the whole stream in one kernel call: nothing is held back at the end
        train = self._run(state, np.stack([x, y, p, t]))
        state.t_now = int(t[-1])
        return self.result(state), train

    # ---- many whole streams in parallel ---------------------------------------------
    def run_batch(self, streams: Sequence[np.ndarray]) -> EventResult:
        """Whole streams, one numba thread per stream (no spike trains)."""
        if not isinstance(streams, (list, tuple)) or len(streams) == 0:
            raise EventInputError(
                f"expected a non-empty list of event streams, got {type(streams).__name__}"
                + (" of length 0" if isinstance(streams, (list, tuple)) else "")
            )
        parts = []
        for b, s in enumerate(streams):
            parts.append(check_stream(s, self.sensor, what=f"event stream {b}"))
            if len(parts[-1][3]) == 0:
                raise EventInputError(f"event stream {b} is empty: no events, nothing to run")
        x, y, p, t = (np.concatenate([q[k] for q in parts]) for k in range(4))
        offsets = np.concatenate([[0], np.cumsum([len(q[3]) for q in parts])]).astype(np.int64)
        B = len(parts)
        V, A, TL = (
            np.zeros((B, self.net.n_neurons)),
            np.zeros((B, self.net.n_adaptive())),
            np.zeros((B, self.net.n_groups)),
        )
        CNT, SYN = np.zeros((B, self.net.n_neurons), np.int64), np.zeros(B, np.int64)
        start = time.perf_counter()
        run_streams(self.net.P, self.net.F, self.net.W, x, y, p, t, offsets, V, A, TL, CNT, SYN)
        seconds = time.perf_counter() - start
        out, counts = self._outputs(V, CNT)
        return EventResult(out.argmax(-1), out, counts, np.diff(offsets), SYN, seconds)


def load_event(path: str | Path) -> EventEngine:
    """Open an exported model for event-driven execution (:class:`ModelError` if it
    cannot run per event, saying why)."""
    model, proto = read_model(path)
    return EventEngine(model, one_rate(proto, "the event-driven engine"), str(path))
