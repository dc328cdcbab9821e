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

import copy
import math
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ..errors import InputError, UnfinishedModelWarning
from ..limits import check_memory
from ..protocol import ModelError, Protocol, one_rate, read_model
from ..result import EventResult
from .graph import Layer, lower
from .kernel import make_scratch, max_wave, readout_at, run_events
from .network import KIND, KIND_SPIKING, VOFF, EventState, fingerprint, initial_state, pack
from .parallel import run_whole_streams
from .validate import MAX_T_US, EventInputError, check_batch, check_events

MAX_PENDING = 2**22  # events held back at one timestamp (4 int64 each: 128 MiB)
# a first spike-train buffer this large is checked against the memory limit before it is made;
# a smaller one is not (reading the limit costs about 18 µs, more than a short chunk's run)
CHECKED_BUFFER = 2**24
SPIKE_BYTES = 24  # a recorded spike: time (float64), neuron and count (int64)


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
        self._readout = np.array([len(self.layers) - 1], np.int64)  # the layer readout_at reads
        self._scratch = threading.local()  # the kernel's working arrays, per calling thread
        # the array shapes of this network's states (_check_state: once, not an allocation per chunk)
        self._network = fingerprint(self.net)  # a state's owner: same shapes are not the same model
        fresh = initial_state(self.net, self._network)
        self._state_shapes = {f: getattr(fresh, f).shape for f in ("v", "a", "t_last", "t_neuron", "counts")}

    def __getstate__(self) -> dict:
        """Picklable (e.g. for worker processes): without the per-thread buffers."""
        return {k: v for k, v in self.__dict__.items() if k != "_scratch"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._scratch = threading.local()

    @property
    def sensor(self) -> tuple[int, int, int]:
        C, H, W = self.protocol.input_shape  # three dimensions: checked when the graph was built
        return C, H, W

    def layer_name(self, i: int) -> str:
        return self.layers[i].node or self.layers[i].name

    # ---- one stream, in chunks --------------------------------------------------------
    def initial_state(self) -> EventState:
        """A new stream's state (nothing seen yet), for :meth:`feed`."""
        return initial_state(self.net, self._network)

    def copy_state(self, state: EventState) -> EventState:
        """An independent copy of ``state`` (or ``copy.copy(state)``): feed it other chunks
        than ``state`` to branch a stream."""
        return copy.copy(self._check_state(state))

    def _check_state(self, state: object) -> EventState:
        """``state`` if it is one of this network's (the kernel indexes its arrays by this
        network's layout: another's would be read out of bounds, or silently mixed)."""
        if not isinstance(state, EventState):
            raise EventInputError(
                f"state is of type {type(state).__name__}; expected an EventState from this engine's initial_state()"
            )
        if any(getattr(state, f).shape != shape for f, shape in self._state_shapes.items()):
            raise EventInputError(
                "this state was made by the engine of another network; feed a state to the engine whose "
                "initial_state() made it"
            )
        if state.network != self._network:
            raise EventInputError(
                "this state was made by the engine of another model (the same layer shapes, other weights or "
                "neuron parameters); feed a state to the engine whose initial_state() made it"
            )
        if state.broken is not None:
            raise EventInputError(
                f"this state was left part-way through a chunk by an error ({state.broken}); start again from "
                "initial_state(), or from a copy_state() taken before that chunk"
            )
        return state

    def feed(self, state: EventState, chunk: np.ndarray, record: bool = True) -> tuple[EventState, SpikeTrain]:
        """Run the events of ``chunk`` (sorted; continuing the stream in time).

        Events at the chunk's last timestamp are held back in ``state.pending`` (the next
        chunk may hold more of that instant); :meth:`flush` runs them at the end.
        ``record=False``: no spike train (an empty one is returned; the state advances alike)."""
        state = self._check_state(state)
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
        return state, self._run(state, ev[:, :cut], float(state.t_now), record)

    def flush(
        self, state: EventState, until: float | None = None, record: bool = True
    ) -> tuple[EventState, SpikeTrain]:
        """Run the held-back events; call at the end of a stream (more chunks may follow,
        from ``ceil(until)`` µs on). CubaLIF membranes keep crossing their threshold after
        the last input: those crossings are run up to ``until`` µs (e.g. the end of the
        recording; None or earlier than the last event: up to the last event); :meth:`result`
        then reads an LI readout at that instant. ``record``: as in :meth:`feed`."""
        state = self._check_state(state)
        end = _end(until, state.t_now)
        ev, state.pending = state.pending, None
        state.t_now = max(state.t_now, math.ceil(end))
        return state, self._run(state, np.empty((4, 0), np.int64) if ev is None else ev, end, record)

    def _run(self, state: EventState, ev: np.ndarray, until: float, record: bool) -> SpikeTrain:
        """Run ``ev`` and the crossings up to ``until`` into ``state`` (in place); anything
        raised part-way (a model error, the memory limit, numpy's MemoryError, Ctrl-C) marks
        the state broken: a later feed, flush or result refuses it."""
        try:
            return self._run_kernel(state, ev, until, record)
        except BaseException as e:
            state.broken = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            raise

    def _run_kernel(self, state: EventState, ev: np.ndarray, until: float, record: bool) -> SpikeTrain:
        n = ev.shape[1]
        layer = self.record_layer if record else -1  # -1: the kernel records nothing
        # the kernel stops before a wave that might not fit (a whole layer may fire at once):
        # room for that from the start, or every call would begin by growing the buffer
        cap = self.record_size + max(1024, 4 * n) if record else 0
        if cap * SPIKE_BYTES > CHECKED_BUFFER:
            check_memory(cap * SPIKE_BYTES, f"a spike-train buffer for a chunk of {n:,} events")
        rec_t, rec = np.empty(cap), [np.empty(cap, np.int64) for _ in range(2)]
        tally = np.zeros(3, np.int64)
        scratch = self._kernel_scratch()
        start = time.perf_counter()
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
                layer,
                rec_t,
                rec[0],
                rec[1],
                tally,
                scratch,
            )
            if tally[2] == 0:
                break
            if tally[2] == 2:
                raise _unresolvable()
            if tally[2] == 3:  # an input wave wider than every layer: buffers for this call only
                scratch = make_scratch(self.net.P, self.net.n_neurons, self.net.n_groups, max_wave(ev[3], i, n))
                continue
            # the record buffer might overflow in the next wave: grow and go on, if it fits (a
            # model can fire without bound: a CubaLIF layer with time constants of about 1 µs and
            # weights x50 recorded 249 M spikes in 72 µs of stream; refused here, where numpy's
            # allocation would succeed and the system kill the process when the pages are written)
            k = int(tally[0])
            check_memory(
                2 * cap * SPIKE_BYTES,
                f"recording layer {self.layer_name(self.record_layer)}'s spikes ({k:,} by t = {rec_t[k - 1]:.0f} µs "
                "of the stream: check the model's weights and time constants, or run it clock-driven)",
            )
            rec_t, rec = np.concatenate([rec_t, rec_t]), [np.concatenate([r, r]) for r in rec]
            cap *= 2
        state.t_read = until  # where result() reads an LI readout: the instant the stream was run to
        state.events += n
        state.synops += int(tally[1])
        state.seconds += time.perf_counter() - start
        k = tally[0]
        return SpikeTrain(self.layer_name(self.record_layer), rec_t[:k], rec[0][:k], rec[1][:k])

    def _kernel_scratch(self) -> tuple:
        """The kernel's working arrays for the calling thread, made once (a few MB on a large
        network: allocated per run they cost a one-event stream about 0.12 ms on the
        46,250-neuron N-MNIST model, docs/runtime.md)."""
        scratch = getattr(self._scratch, "kernel", None)
        if scratch is None:
            scratch = self._scratch.kernel = make_scratch(self.net.P, self.net.n_neurons, self.net.n_groups)
        return scratch

    def _empty(self) -> SpikeTrain:
        return SpikeTrain(self.layer_name(self.record_layer), np.empty(0), *(np.empty(0, np.int64),) * 2)

    def result(self, state: EventState) -> EventResult:
        """Outputs after what has been run (held-back events not included: flush first). An
        LI readout's membranes are read at ``state.t_read``, decayed from the last input that
        reached them: after :meth:`flush` its end (``until``, exactly), after :meth:`feed`
        the held-back timestamp (the instant its crossings were run to)."""
        state = self._check_state(state)
        return self._result(state, state.counts.copy())  # the stream may go on: a copy

    def _result(self, state: EventState, counts: np.ndarray) -> EventResult:
        """The result of ``state`` with its spike counts ``counts`` (the kernel's layout)."""
        layer_counts = self._layer_counts(counts)
        if self._out_spiking:
            out = self._spike_readout(layer_counts)
        else:
            out = np.empty(self.layers[-1].size)
            readout_at(self.net.P, self.net.F, self._readout, state.v, state.t_last, state.t_read, out)
        return EventResult(
            out.argmax(-1), out, layer_counts, np.array(state.events), np.array(state.synops), state.seconds
        )

    def _spike_readout(self, layer_counts: dict[str, np.ndarray]) -> np.ndarray:
        """A spiking readout's outputs: its spike counts, float64 ``[..., classes]``."""
        c = layer_counts[self.layer_name(len(self.layers) - 1)]
        return c.reshape(*c.shape[:-3], -1).astype(np.float64)

    def _layer_counts(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """The spiking layers' counts in ``counts`` (``[..., n_neurons]``, the kernel's
        layout: each layer in ONNX order from its offset) as views ``[..., C, H, W]``."""
        lead, P = counts.shape[:-1], self.net.P
        return {
            name: counts[..., P[i, VOFF] : P[i, VOFF] + self.layers[i].size].reshape(*lead, *self.layers[i].out_shape)
            for i, name in self._names.items()
        }

    def run(self, stream: np.ndarray, until: float | None = None) -> tuple[EventResult, SpikeTrain]:
        """One whole stream: result and the recorded spike train (``until``: see :meth:`flush`;
        an LI readout is read there, or at the last event if that is later)."""
        ev = check_events(stream, self.sensor)
        state = self.initial_state()
        # feed + flush of the whole stream in one kernel call: nothing is held back at the end
        end = _end(until, int(ev[3, -1]) if ev.shape[1] else 0)
        train = self._run(state, ev, end, record=True)
        state.t_now = math.ceil(end)
        return self._result(state, state.counts), train  # the state ends here: no copy

    # ---- many whole streams in parallel ---------------------------------------------
    def run_batch(
        self, streams: Sequence[np.ndarray], until: float | Sequence[float] | np.ndarray | None = None
    ) -> EventResult:
        """Whole streams, one numba thread per stream (no spike trains); CubaLIF crossings
        run up to ``until`` µs (one for all, or one per stream: e.g. each recording's own
        span) or each stream's last event, whichever is later, and an LI readout is read
        there (as :meth:`run` reads it, bit for bit). Safe from any thread (one call runs at
        a time) and in forked workers (on one thread there: :mod:`.parallel`)."""
        ev, offsets = check_batch(streams, self.sensor)
        x, y, p, t = ev
        B = len(offsets) - 1
        untils: list[float | None] = [None] * B
        if until is not None:
            try:
                times = np.asarray(until, np.float64)
            except (TypeError, ValueError):
                times = np.full((0, 0), np.nan)  # not numbers: refused below
            if times.shape not in ((), (B,)):
                raise EventInputError(f"until must be one time in µs or one per stream ({B}), got {until!r}"[:300])
            untils = np.broadcast_to(times, (B,)).tolist()
        # each stream's last event; an empty one (the sensor saw nothing) ends at 0 µs
        bounds = zip(offsets[:-1].tolist(), offsets[1:].tolist(), untils)
        ends = np.array([_end(u, int(t[stop - 1]) if stop > start else 0) for start, stop, u in bounds])
        net = self.net
        # counts zeroed by calloc: only the pages a stream's spikes touch are ever written
        V, CNT, SYN = np.empty((B, self.layers[-1].size)), np.zeros((B, net.n_neurons), np.int64), np.empty(B, np.int64)
        start = time.perf_counter()
        run_whole_streams(net, x, y, p, t, offsets, ends, self._readout, V, CNT, SYN)
        seconds = time.perf_counter() - start
        if np.any(SYN < 0):
            raise _unresolvable()
        counts = self._layer_counts(CNT)
        out = self._spike_readout(counts) if self._out_spiking else V
        return EventResult(out.argmax(-1), out, counts, np.diff(offsets), SYN, seconds)


def use_threads(n: int) -> int:
    """Run :meth:`EventEngine.run_batch` on ``n`` numba threads, one stream per thread
    (0: every thread numba started, ``NUMBA_NUM_THREADS``: the cores by default); returns
    the count set."""
    from numba import config, set_num_threads

    most = int(config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]  # set at import from the environment
    if n > most:
        raise InputError(
            f"--threads {n}: the event engine runs at most {most} threads here (numba's NUMBA_NUM_THREADS, "
            "the cores it found at start); give at most that, or 0 for all"
        )
    set_num_threads(n or most)
    return n or most


def _end(until: object, last: float) -> float:
    """Where a stream's crossings stop: ``until`` µs, or its last event if that is later."""
    if until is None:
        return float(last)
    if isinstance(until, bool) or not isinstance(until, (int, float, np.integer, np.floating)):
        raise EventInputError(f"until must be a time in µs (one number), got {until!r}"[:200])
    if not math.isfinite(until):
        raise EventInputError(f"until must be a finite time in µs, got {until}")
    if until > MAX_T_US:
        raise EventInputError(
            f"until {until} µs is beyond {MAX_T_US} µs (about 101 days), the latest time a stream reaches"
        )
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
    if (note := proto.unfinished_note(path)) is not None:
        warnings.warn(note, UnfinishedModelWarning, stacklevel=2)
    return EventEngine(model, one_rate(proto, "the event-driven engine"), str(path))
