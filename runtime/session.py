"""The SDK: ``load("model.onnx") -> Session``; ``Session.run`` and ``step`` / ``reset``.

``run(x, policy)`` takes a batch of static images ``[B, *shape]`` (repeated at every
step), event frames ``[T, B, *shape]`` or a list of event streams (binned here, as the
metadata says unless the caller overrides), runs the clock-driven loop, and asks the
policy after every step which samples may stop. Samples that stop leave the batch: the
states are compacted and the following steps run on fewer samples. A
:class:`runtime.policies.Cascade` runs the samples that do not stop again at a larger T
(:meth:`Session.run_cascade`).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, TypeGuard, cast

import numpy as np
import onnx
import onnxruntime as ort

from . import cost
from .data.events import BINNINGS, count_unseen, unseen_note
from .engine import Stepper, make_session, threads_for, with_outputs
from .errors import (
    AxisOrderWarning,
    InputError,
    NonFiniteReadoutWarning,
    TrainedRangeWarning,
    UnfinishedModelWarning,
    UnseenEventsWarning,
    UnusedFramesWarning,
)
from .eventinput import checked_streams, span_us
from .limits import check_memory, check_steps, positive_int, run_bytes
from .policies import (
    Cascade,
    ExitPolicy,
    FixedT,
    as_policy,
    exit_decisions,
    first_exit,
    horizon_of,
    model_default,
    t_range_note,
)
from .protocol import STATIC_KINDS, ModelError, Protocol, read_model, readout_so_far
from .result import Cost, RunResult
from .split import NotSplittable, Plan, Segment, SplitStepper, plan
from .stages import Stream, stage_models

# "numba": onnxruntime for the synaptic segments, one-pass numba kernels for the neurons
# (runtime/split.py; bit-identical, faster); "ort": the whole graph with the function
# bodies on stock onnxruntime; "auto": numba where the model allows it, else ort;
# "exact": the numba split with the segments in fixed-order numba ops too (runtime/exact.py:
# bit-identical across machines and instruction sets; never picked by auto).
BACKENDS = ("auto", "numba", "ort", "exact")

# Early exit: finished samples' rows leave the batch when at least 1/COMPACT_AT of the rows
# are finished. A compaction moves the last rows that go on into the finished rows' places
# (RowBuffers.keep: a copy of the moved rows' states only, not of the whole batch's), and
# until then a finished row computes on, its results already taken. When compaction copied
# every row that went on, it cost about 2 ms a time at batch 64 (N-MNIST 2C1FC, about a
# quarter of a step) and compacting at every exit cost more than it saved.
COMPACT_AT = 8


class _Rows:
    """The rows of a running batch and what the exit policy has decided for their samples,
    shared by the uniform and the multi-rate run loop.

    ``active[r]`` is the sample in row ``r`` (rows are in sample order until a compaction
    moves some: ``in_order``); ``live[r]`` whether it still runs (``n_live`` of them: a
    count, so the per-step test at batch 1 is an int compare, not a numpy call); ``acc``
    the rows' readout sums; ``out`` and ``steps`` are per sample (logits and steps at exit)."""

    def __init__(self, B: int, classes: int) -> None:
        self.out = np.zeros((B, classes), np.float32)
        self.steps = np.zeros(B, np.int64)
        self.active = np.arange(B)
        self.acc = np.zeros((B, classes), np.float64)
        self.live = np.ones(B, bool)
        self.n_live = B
        self.in_order = True

    def exit(self, policy: ExitPolicy, t: int, logits: np.ndarray, T: int) -> np.ndarray:
        """Ask ``policy`` about the live rows after ``t`` steps (every row stops at ``T``);
        records the stopping samples' logits and steps; returns the rows that stopped.

        The policy sees the samples still running in sample order, whatever rows they are
        in (a policy may keep a history per sample: it knows which of them it stopped)."""
        live = self.live
        asked_rows = None  # None: every row, in order
        if self.n_live < len(live) or not self.in_order:
            asked_rows = np.flatnonzero(live)
            if not self.in_order:
                asked_rows = asked_rows[np.argsort(self.active[asked_rows])]
        asked = exit_decisions(policy, t, logits if asked_rows is None else logits[asked_rows])
        if t >= T:  # the horizon: every row stops (the policy was still asked: it may record)
            asked = np.ones(len(asked), bool)
        if asked_rows is None:
            done = asked
        else:
            done = np.zeros(len(live), bool)
            done[asked_rows] = asked  # the policy sees only the samples still running
        stopped = int(np.count_nonzero(done))
        if stopped:
            idx = self.active[done]
            self.out[idx], self.steps[idx] = logits[done], t
            self.live, self.n_live = live & ~done, self.n_live - stopped
        return done

    def compact(self) -> np.ndarray | None:
        """When at least 1/COMPACT_AT of the rows are finished: the rows that go on, in
        their new order (the caller takes them from its own per-row arrays): every row that
        goes on stays where it is, except those beyond the new batch, which move into the
        finished rows' places. Else None."""
        live, n = self.live, self.n_live
        if (len(live) - n) * COMPACT_AT < len(live):
            return None
        order = np.arange(n)
        holes = np.flatnonzero(~live[:n])
        if holes.size:
            order[holes] = np.flatnonzero(live[n:]) + n
            self.in_order = False
        self.active, self.acc, self.live = self.active[order], self.acc[order], np.ones(n, bool)
        return order


NON_FINITE = (
    "some samples' readouts or spike counts are NaN or infinite: a value overflowed float32 inside the network "
    "(inputs far larger than the training data's?); their predictions are arbitrary"
)


@dataclass
class FinalReadout:
    """Fixed T that keeps the final readout (float64, as every policy sees it): what a
    cascade tests and what ``runtime calibrate-exit`` replays, so both decide alike."""

    T: int
    logits: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))

    def horizon(self, default_T: int) -> int:
        return self.T

    def first_exit(self) -> int:
        return self.T

    def should_exit(self, t: int, logits: np.ndarray) -> np.ndarray:
        self.logits = np.array(logits, np.float64)
        return np.ones(len(logits), bool)


def is_event_streams(x: object) -> TypeGuard[list | tuple]:
    return isinstance(x, (list, tuple)) and all(
        isinstance(s, np.ndarray) and s.dtype.names is not None and {"x", "y", "p", "t"} <= set(s.dtype.names)
        for s in x
    )


@dataclass
class ClockState:
    """One clock-driven stream, held by the caller (as :class:`runtime.event.EventState`
    is for the event engine): the model's states (in the stepper's buffers), the sum of
    the outputs so far, and how many steps were fed. ``y`` is the last step's own output;
    :meth:`Session.feed` returns the running readout. One state is fed by one thread at a
    time (it owns onnxruntime buffers); make one per stream. ``copy.copy`` and
    ``copy.deepcopy`` give an independent copy (:meth:`Session.copy_state`): a branch of the
    stream; it does not pickle (its buffers are bound to this process's onnxruntime session)."""

    stepper: Stepper | SplitStepper
    acc: np.ndarray
    session: Session = field(repr=False)  # the one that made it: its buffers are that model's
    t: int = 0

    @property
    def batch(self) -> int:
        return self.stepper.batch

    @property
    def y(self) -> np.ndarray:
        """A copy: the stepper's output buffer is rewritten by the next step, and a caller
        collecting ``state.y`` per step must not get one array holding the last step."""
        return self.stepper.y.copy()

    # a field-by-field copy shared the stepper's buffers: feeding one copy moved the other
    # (silently wrong), and deepcopy failed on the onnxruntime session
    def __copy__(self) -> ClockState:
        return self.session.copy_state(self)

    def __deepcopy__(self, memo: dict[int, object]) -> ClockState:
        return self.session.copy_state(self)

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a ClockState does not pickle: its states live in buffers bound to this process's "
            "onnxruntime session; send the inputs to the process that holds it, or copy.copy() it here"
        )


class Session:
    """A loaded model: run batches with an exit policy, or stream one step at a time."""

    def __init__(
        self,
        model: onnx.ModelProto,
        protocol: Protocol,
        path: str = "",
        threads: int | None = None,
        backend: str = "auto",
    ):
        self.model, self.protocol, self.path = model, protocol, path
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0
        ):
            raise InputError(f"threads must be None (the default), 0 (all cores) or a count >= 1, got {threads!r}")
        self.threads = None if threads is None else int(threads)
        self._backend_asked = backend  # what a pickled copy asks for (self.backend: what runs, per stage)
        self.backend, self.backend_note, self._plan, self._exact = _backend(model, protocol, backend)
        # what a run follows when it names no policy (parsed once: runs ask for it every call)
        self._default = model_default(protocol.exit_policy, protocol.default_T)
        self._segments: dict[int, list[ort.InferenceSession]] = {}
        # neuron outputs, for spike counts: spiking nodes only (an LI outputs a membrane)
        nodes = {n.name: n for n in model.graph.node}
        state_of = {s.node: s for s in protocol.states}
        self.spiking = [n.node for n in protocol.neurons if n.spec.spiking]
        # a neuron's output has its state's shape; a stateless neuron states its own shape
        own = {n.node: n.shape for n in protocol.neurons if n.shape is not None}
        missing = [n for n in self.spiking if n not in state_of and n not in own]
        if missing:
            raise ModelError(f"metadata 'states' names no state for neuron nodes {missing}")
        self._spike_outputs = [nodes[n].output[0] for n in self.spiking]
        self._spike_shapes = [own[n] if n in own else state_of[n].shape for n in self.spiking]
        self._sessions: dict[tuple[int, bool], ort.InferenceSession] = {}
        self._layers: list[cost.SynapseLayer] | None = None
        # the last run's stepper, reused by the next run of the same batch and outputs: binding
        # costs about 0.4 ms (15% of a 20-step run at batch 1), allocating batch-64 buffers
        # about 10 ms (more than early exit saves). One at most (memory)
        self._spare: tuple[tuple[int, bool], Stepper | SplitStepper] | None = None
        self._stream: ClockState | None = None  # the stream of step(); feed() takes the caller's
        self._owner = 0  # the thread that started it (threading.get_ident)
        self._stream_lock = threading.Lock()
        self._ort(threads_for(1, threads), False)  # fail at load time if onnxruntime cannot run it
        # a multi-rate file: one session per stage, each on the backend it allows (runtime.stages)
        self._stages: list[Session] = []
        if protocol.stages:
            self._stages = [
                Session(m, p, path, threads, "auto" if backend == "numba" else backend)
                for m, p in stage_models(model, protocol)
            ]
            used = [s.backend for s in self._stages]
            if backend == "numba" and "numba" not in used:
                raise InputError(
                    f"backend 'numba' cannot run any stage of this multi-rate model "
                    f"({self._stages[0].backend_note}); expected backend 'ort' or 'auto'"
                )
            self.backend = "+".join(dict.fromkeys(used))
            self.backend_note = "; ".join(f"stage {i}: {s.backend}" for i, s in enumerate(self._stages))

    # ---- onnxruntime sessions -------------------------------------------------------
    def __reduce__(self) -> tuple[type[Session], tuple[onnx.ModelProto, Protocol, str, int | None, str]]:
        """Pickles as the model and how it was loaded (for worker processes: spawn pools,
        a Pool's arguments): the copy builds its own onnxruntime sessions and kernels, and
        holds no stream of :meth:`step` (a stream's buffers do not cross processes)."""
        return (Session, (self.model, self.protocol, self.path, self.threads, self._backend_asked))

    def _ort(self, threads: int, counts: bool) -> ort.InferenceSession:
        key = (threads, counts)
        if key not in self._sessions:
            m = with_outputs(self.model, self._spike_outputs) if counts else self.model
            self._sessions[key] = make_session(m, threads)
        return self._sessions[key]

    def _runner(self, threads: int, counts: bool) -> ort.InferenceSession | list[Segment]:
        """What a stepper runs on: the whole graph, or the split executor's segments."""
        if self._plan is None:
            return self._ort(threads, counts)
        if self._exact is not None:
            return list(self._exact)
        if threads not in self._segments:
            self._segments[threads] = [make_session(m, threads) for m in self._plan.segments]
        return self._segments[threads]

    def _stepper(self, batch: int, counts: bool) -> Stepper | SplitStepper:
        threads = threads_for(batch, self.threads)
        if self._plan is not None:
            runner = cast("list[Segment]", self._runner(threads, counts))
            return SplitStepper(self._plan, self.protocol, batch, runner, self._spike_outputs if counts else ())
        sess = self._ort(threads, counts)
        if counts:
            return Stepper(sess, self.protocol, batch, self._spike_outputs, self._spike_shapes)
        return Stepper(sess, self.protocol, batch)

    def _warn_range(self, lo: int, hi: int) -> None:
        """A Python warning when a run of ``lo`` to ``hi`` steps leaves the trained range."""
        note = t_range_note(self.protocol, lo, hi)
        if note is not None:
            warnings.warn(note, TrainedRangeWarning, stacklevel=3)

    @staticmethod
    def _checked_finite(result: RunResult) -> RunResult:
        """``result``, with a Python warning when some readouts or spike counts are NaN or
        infinite: the inputs were checked finite, so a value overflowed float32 inside the
        network (a later layer may absorb it: readouts of 0 beside infinite spike counts)."""
        values = [result.outputs, *(result.spike_counts or {}).values()]
        if not all(np.isfinite(v).all() for v in values):
            warnings.warn(NON_FINITE, NonFiniteReadoutWarning, stacklevel=3)
        return result

    # ---- inputs ---------------------------------------------------------------------
    def _check_array(self, x: np.ndarray, what: str, forms: str | None = None) -> None:
        """dtype, shape (``forms``: what to name as expected; default every form a run takes)
        and finite values of an input array."""
        shape = self.protocol.input_shape
        if x.dtype != np.float32:
            raise InputError(f"{what} has dtype {x.dtype}; expected float32 (x.astype(np.float32))")
        if tuple(x.shape[-len(shape) :]) != shape or x.shape[-len(shape) - 1] == 0:
            raise InputError(f"{what} has shape {list(x.shape)}; expected {forms or self._forms()}")
        if not np.isfinite(x).all():
            raise InputError(f"{what} contains NaN or infinite values; expected finite numbers")

    def _forms(self) -> str:
        s = ", ".join(map(str, self.protocol.input_shape))
        if self.protocol.input_kind in STATIC_KINDS:
            return f"static images [B, {s}] or frames [T, B, {s}]"
        if self.protocol.input_kind == "sequence-frames":
            return f"sequence steps [T, B, {s}]"
        return f"event frames [T, B, {s}] or a list of event streams"

    def frames(
        self, streams: Sequence[np.ndarray], T: int, binning: str | None = None, dt_us: float | None = None
    ) -> np.ndarray:
        """Bin event streams into ``[T, B, *shape]`` as the model was trained (or as asked)."""
        p = self.protocol
        if not positive_int(T):
            raise InputError(f"T must be a positive integer number of frames, got {T!r}")
        binning = binning or p.binning
        if binning not in BINNINGS:
            raise InputError(f"binning {binning!r} is unknown; expected one of {list(BINNINGS)}")
        if dt_us is not None and binning != "fixed":
            raise InputError(f"dt_us sets fixed bins; pass binning='fixed' with it (this run bins {binning!r})")
        if dt_us is not None:
            dt_us = span_us(dt_us, "dt_us (the bin duration)")  # 0 is refused, not ignored
        # with the model's duration, an event after it falls in no bin, as when the model was
        # trained (the data readers bin so); run() refuses such streams
        shape = cast("tuple[int, int, int]", p.input_shape)  # an event model's input is (C, H, W)
        return p.time_base(binning, dt_us).frames(streams, T, shape)

    def _check_span(self, streams: Sequence[np.ndarray], binning: str | None) -> None:
        """Streams a run bins into the model's [0, duration): none may have events after it
        (they would be dropped without a word: a stream that starts late runs on zeros)."""
        p = self.protocol
        if (binning or p.binning) == "fixed" or p.durations == "recording" or p.duration_us is None:
            return
        duration = p.duration_us
        late = [
            (i, int((s["t"] >= duration).sum())) for i, s in enumerate(streams) if len(s) and s["t"][-1] >= duration
        ]
        if late:
            i, n = late[0]
            raise InputError(
                f"event stream {i} has {n} of {len(streams[i])} events at t >= {duration:g} µs, the recording length "
                f"this model bins into T steps (equal binning, as trained); {len(late)} stream(s) in all. Cut the "
                "streams to it, shift them to start at 0, or pass binning='fixed' (bins of the model's dt: the run "
                "then sees the first T x dt µs)"
            )

    def _warn_unseen(
        self, streams: Sequence[np.ndarray], frames: int, binning: str | None, dt_us: float | None
    ) -> None:
        """Fixed bins see the first ``steps x dt`` µs of each stream; say how much lies after
        the bins of the trained T (or the run's, if longer): a stream starting late, or a small
        ``dt_us``, ran on a fraction of its events unwarned. A run of fewer steps than trained
        sees less of the recording by choice (flexible T): not warned."""
        p = self.protocol
        dt = p.dt_us if dt_us is None else dt_us
        if (binning or p.binning) != "fixed" or dt is None:
            return
        steps = max(frames, p.input_steps(p.T_trained))
        missed, total, streams_missed = count_unseen(streams, steps * dt)
        if missed:
            warnings.warn(
                unseen_note(missed, total, streams_missed, len(streams), steps, dt),
                UnseenEventsWarning,
                stacklevel=4,
            )

    def _prepare(
        self, x: object, policy: ExitPolicy | None, binning: str | None, dt_us: float | None
    ) -> tuple[np.ndarray, bool, ExitPolicy, int]:
        """Returns (inputs, static?, policy, horizon)."""
        p = self.protocol
        if is_event_streams(x):
            if p.input_kind != "event-frames" or len(x) == 0:
                raise InputError(f"got {len(x)} event streams; this model takes {self._forms()}")
            policy = policy or self._step_default()
            T = horizon_of(policy, p.default_T)  # checked against limits.MAX_T there
            self._check_steps(T)
            frames = p.input_steps(T)
            check_memory(run_bytes(p, len(x), frames), f"{len(x)} event streams binned into {frames} steps")
            streams = checked_streams(x, cast("tuple[int, int, int]", p.input_shape))
            self._check_span(streams, binning)
            inputs = self.frames(streams, frames, binning, dt_us)  # checks binning and dt_us first
            self._warn_unseen(streams, frames, binning, dt_us)
            return inputs, False, policy, T
        if isinstance(x, (list, tuple)) and p.input_kind == "event-frames":
            # a list, but not of event streams: say which item is not one (was "input is a list;
            # expected a numpy array (... or a list of event streams)")
            bad = next(i for i, s in enumerate(x) if not is_event_streams([s]))
            got = getattr(x[bad], "dtype", type(x[bad]).__name__)
            raise InputError(
                f"input item {bad} of the list is not an event stream (got {got}); expected structured arrays "
                "with fields x, y, p, t (runtime.data.EVENT_DTYPE)"
            )
        if not isinstance(x, np.ndarray):
            raise InputError(f"input is a {type(x).__name__}; expected a numpy array ({self._forms()})")
        if x.dtype.names is not None and p.input_kind == "event-frames":  # "input has shape [4546]" said
            raise InputError(f"input is one event stream of {x.size} events; expected a list of streams: run([stream])")
        nd = len(p.input_shape)
        if x.ndim == nd + 1:
            if p.input_kind not in STATIC_KINDS:
                raise InputError(
                    f"input has shape {list(x.shape)} (static images) but this model takes {self._forms()}"
                )
            self._check_array(x, "input")
            # the states of a batch this large: checked as a stream's are (numpy's MemoryError, or swap)
            check_memory(run_bytes(p, len(x)), f"a batch of {len(x)} images")
            policy = policy or self._step_default()
            return x, True, policy, horizon_of(policy, p.default_T)
        if x.ndim == nd + 2:
            self._check_array(x, "input")
            check_memory(run_bytes(p, x.shape[1]), f"a batch of {x.shape[1]} samples")
            if x.shape[0] == 0:
                raise InputError("input has 0 frames; expected frames [T >= 1, B, ...]")
            if p.stages:  # the first stage's T frames feed the schedule; the policy acts on the last's steps
                if x.shape[0] != p.stages[0].T:
                    raise InputError(
                        f"input has {x.shape[0]} frames; this multi-rate model's first stage runs "
                        f"T={p.stages[0].T} (configuration {_config(p)}): expected [{p.stages[0].T}, B, ...]"
                    )
                policy = policy or self._step_default()
                return x, False, policy, horizon_of(policy, p.default_T)
            if policy is None and x.shape[1] == p.T_trained != x.shape[0]:
                # [B, T, ...] (torch's and tonic's batched layout) ran as T=B steps, silently
                warnings.warn(
                    f"the input {list(x.shape[:2])} is read as frames [T, B, ...]: {x.shape[0]} steps of "
                    f"{x.shape[1]} samples, but its second axis has the trained T={p.T_trained}; if the first "
                    "is the batch, pass x.swapaxes(0, 1)",
                    AxisOrderWarning,
                    stacklevel=3,
                )
            policy = policy or self._frames_default(x.shape[0])
            T = horizon_of(policy, x.shape[0])
            if T > x.shape[0]:
                raise InputError(
                    f"the policy runs up to {T} steps but the input has only "
                    f"{x.shape[0]} frames; expected [T >= {T}, B, ...]"
                )
            if T < x.shape[0]:  # was silent: frames binned for another T lose their end
                warnings.warn(
                    f"the input has {x.shape[0]} frames but the policy runs at most {T} steps: frames "
                    f"{T + 1}..{x.shape[0]} are never seen (bin the input into {T} frames to see all of it)",
                    UnusedFramesWarning,
                    stacklevel=3,
                )
            return x, False, policy, T
        raise InputError(f"input has shape {list(x.shape)}; expected {self._forms()}")

    def _check_steps(self, T: int) -> None:
        """A model with ``max_steps`` (one sub-network per step) has no step beyond it; the
        readout of a multi-rate file has the last stage's steps."""
        p = self.protocol
        if p.stages and T > p.default_T:
            raise InputError(
                f"this multi-rate model runs its last stage at T={p.default_T} (configuration {_config(p)}), "
                f"its readout and exit policy act on those steps; {T} steps asked: expected a policy "
                f"within 1..{p.default_T} (fixed:{p.default_T}, or confidence with tmax <= {p.default_T})"
            )
        n = self.protocol.max_steps
        if n is not None and T > n:
            raise InputError(
                f"this model has steps t = 0..{n - 1} only (one sub-network per step); "
                f"{T} steps asked: expected T <= {n}"
            )

    # ---- batch run ------------------------------------------------------------------
    def run(
        self,
        x: object,
        policy: ExitPolicy | Cascade | str | int | None = None,
        *,
        counts: bool = True,
        binning: str | None = None,
        dt_us: float | None = None,
        neuron_counts: bool = False,
    ) -> RunResult:
        """Run a batch to completion under ``policy`` (default: the model's stored policy, else
        fixed T of the model or of the frames); a :class:`runtime.policies.Cascade` goes to
        :meth:`run_cascade` (event streams and images only).

        ``x``: static images ``[B, *shape]`` (the same input at every step), frames
        ``[T, B, *shape]`` (float32), or a list of event streams (structured arrays of
        :data:`runtime.data.EVENT_DTYPE`), binned as the model was trained unless
        ``binning`` (``"equal"``, ``"fixed"``) and ``dt_us`` (fixed bins' length, µs) say
        otherwise.

        ``counts=False`` skips spike counts and cost (the fastest path, for benchmarks);
        ``neuron_counts=True`` also keeps every neuron's spike count (for the spike
        difference against the event-driven runtime).
        """
        counts = counts or neuron_counts
        asked = as_policy(policy)
        cascade = self._cascade(x, asked)
        if cascade is not None:
            self._warn_range(first_exit(cascade), horizon_of(cascade, self.protocol.default_T))
            n, inputs_at = self._cascade_inputs(x, cascade, binning, dt_us)
            return self.run_cascade(cascade, n, inputs_at, counts=counts, neuron_counts=neuron_counts)
        assert not isinstance(asked, Cascade)
        xs, static, policy, T = self._prepare(x, asked, binning, dt_us)
        self._warn_range(first_exit(policy), T)
        self._check_steps(T)  # T came from horizon_of, which refuses more than limits.MAX_T
        if self._stages:
            return self._run_stages(xs, static, policy, T, counts, neuron_counts)
        B, rule = (xs.shape[0] if static else xs.shape[1]), self.protocol.readout
        rows = _Rows(B, self.protocol.num_classes)
        spikes = {k: np.zeros(B) for k in [*self.spiking, cost.INPUT]} if counts else {}
        run_spikes = {k: np.zeros(B) for k in spikes}
        if neuron_counts:  # per neuron, under keys "<node>/neurons", compacted like the totals
            shapes = dict(zip(self.spiking, self._spike_shapes))
            run_spikes.update({f"{k}/neurons": np.zeros((B, *shapes[k])) for k in self.spiking})
            spikes.update({f"{k}/neurons": np.zeros((B, *shapes[k])) for k in self.spiking})
        cur = xs  # static: the images of the samples still running
        spare, self._spare = self._spare, None  # taken: a run in another thread makes its own
        if spare is not None and spare[0] == (B, counts):
            stepper = spare[1]
            if stepper.batch != B:  # compacted by the last run's early exits
                stepper.regrow(self._runner(threads_for(B, self.threads), counts))
            stepper.reset()
        else:
            stepper = self._stepper(B, counts)
        profile = []
        ask_from = min(first_exit(policy), T)
        start = time.perf_counter()
        for t in range(T):
            n = len(rows.active)
            stepper.step(cur if static else xs[t] if n == B else xs[t, rows.active], t)
            profile.append(rows.n_live)
            rows.acc += stepper.y
            if counts:
                for name, buf in zip(self.spiking, stepper.extra):
                    run_spikes[name] += buf.reshape(n, -1).sum(1, dtype=np.float64)
                    if neuron_counts:
                        run_spikes[f"{name}/neurons"] += buf
                run_spikes[cost.INPUT] += stepper.x.reshape(n, -1).sum(1, dtype=np.float64)
            if t + 1 < ask_from:  # no sample may stop yet: neither readout nor policy call
                continue
            done = rows.exit(policy, t + 1, readout_so_far(rows.acc, stepper.y, t + 1, rule), T)
            if spikes and done.any():
                for k in spikes:
                    spikes[k][rows.active[done]] = run_spikes[k][done]
            if rows.n_live == 0:
                break
            if (go := rows.compact()) is not None:
                run_spikes = {k: v[go] for k, v in run_spikes.items()}
                if static:
                    cur = cur[go]
                stepper.keep(go, self._runner(threads_for(len(rows.active), self.threads), counts))
        seconds = time.perf_counter() - start
        self._spare = ((B, counts), stepper)  # the next run of this batch reuses it
        result = RunResult(rows.out.argmax(1), rows.out, rows.steps, seconds, profile)
        if counts:
            result.spike_counts = {k: spikes[k] for k in self.spiking}
            result.cost = self._cost(rows.steps, {k: v for k, v in spikes.items() if "/" not in k})
            if neuron_counts:
                result.neuron_counts = {k: spikes[f"{k}/neurons"] for k in self.spiking}
        return self._checked_finite(result)

    def _frames_default(self, n_frames: int) -> ExitPolicy:
        """What frames ``[T, B, ...]`` run when the call names no policy: the model's stored
        per-step policy where the frames are its horizon (what event streams would run,
        binned alike; frames for another T dropped it silently), else all of the frames."""
        d = self._default
        if not isinstance(d, Cascade) and horizon_of(d, self.protocol.default_T) == n_frames:
            return d
        return FixedT(n_frames)

    def _step_default(self) -> ExitPolicy:
        """The model's stored per-step policy (:meth:`run` hands a stored cascade to
        :meth:`run_cascade` first, where the input allows one)."""
        d = self._default
        if isinstance(d, Cascade):
            raise InputError(
                f"this model's default policy {d} runs samples again at a larger T, which needs whole "
                "samples (event streams or images): pass a per-step policy for this input"
            )
        return d

    # ---- cascade ------------------------------------------------------------------------
    def _cascade(self, x: object, asked: ExitPolicy | Cascade | None) -> Cascade | None:
        """The cascade this run follows: the one asked, or the model's stored default when
        none is asked and ``x`` is whole samples (frames ``[T, B, ...]`` run fixed T)."""
        if isinstance(asked, Cascade):
            return asked
        if asked is not None or (isinstance(x, np.ndarray) and x.ndim == len(self.protocol.input_shape) + 2):
            return None
        return self._default if isinstance(self._default, Cascade) else None

    def _cascade_inputs(
        self, x: object, c: Cascade, binning: str | None, dt_us: float | None
    ) -> tuple[int, Callable[[int, np.ndarray], np.ndarray]]:
        """(samples, inputs at T of the given rows) for :meth:`run_cascade`: event streams
        are binned into T frames for each run; static images are repeated as always."""
        p = self.protocol
        if is_event_streams(x) and p.input_kind == "event-frames" and len(x):
            check_memory(run_bytes(p, len(x), c.T[-1]), f"{len(x)} event streams binned into {c.T[-1]} steps")
            streams = checked_streams(x, cast("tuple[int, int, int]", p.input_shape))
            self._check_span(streams, binning)
            return len(streams), lambda T, rows: self.frames([streams[i] for i in rows], T, binning, dt_us)
        if isinstance(x, np.ndarray) and x.ndim == len(p.input_shape) + 1 and p.input_kind in STATIC_KINDS:
            self._check_array(x, "input")
            return len(x), lambda T, rows: x[rows]
        if isinstance(x, np.ndarray) and x.ndim == len(p.input_shape) + 2:
            raise InputError(
                f"policy {c} runs samples again at T={'+'.join(map(str, c.T[1:]))} from their whole "
                "recording; frames [T, B, ...] hold one T only: give event streams (or static images)"
            )
        self._prepare(x, FixedT(c.T[0]), binning, dt_us)  # says what is wrong with x
        raise InputError(f"input is not what this model takes: expected {self._forms()}")

    def run_cascade(
        self,
        c: Cascade,
        n: int,
        inputs_at: Callable[[int, np.ndarray], np.ndarray],
        *,
        counts: bool = True,
        neuron_counts: bool = False,
    ) -> RunResult:
        """Run ``n`` samples under cascade ``c``: all at ``c.T[0]``, then those whose final
        readout does not pass ``c``'s rule again from the zero state at the next T, and so
        on. ``inputs_at(T, rows)``: the inputs of samples ``rows`` for a run of T steps.
        A sample's steps, spikes and operations are the sums over the runs it took part in;
        ``batch_per_step`` follows the runs one after the other."""
        if self._stages:
            raise InputError(
                f"policy {c} runs samples at other T; this multi-rate model runs its configuration "
                f"{_config(self.protocol)} only: use fixed or a per-step rule"
            )
        for T in c.T:
            check_steps(T)
            self._check_steps(T)
        out = np.zeros((n, self.protocol.num_classes), np.float32)
        steps, live = np.zeros(n, np.int64), np.arange(n)
        seconds, parts = 0.0, []
        profile: list[int] = []
        for k, T in enumerate(c.T):
            final = FinalReadout(T)
            r = self.run(inputs_at(T, live), final, counts=counts, neuron_counts=neuron_counts)
            stop = np.ones(len(live), bool) if k == len(c.T) - 1 else np.asarray(c.passes(final.logits), bool)
            out[live[stop]] = r.outputs[stop]
            steps[live] += T
            seconds, profile = seconds + r.seconds, profile + r.batch_per_step
            parts.append((live, r))
            live = live[~stop]
            if not live.size:
                break
        result = RunResult(out.argmax(1), out, steps, seconds, profile)
        if counts:
            result.spike_counts = _summed(n, [(rows, r.spike_counts) for rows, r in parts])
            result.cost = Cost(**_summed(n, [(rows, vars(r.cost)) for rows, r in parts if r.cost is not None]))
            if neuron_counts:
                result.neuron_counts = _summed(n, [(rows, r.neuron_counts) for rows, r in parts])
        return result

    def _run_stages(
        self, xs: np.ndarray, static: bool, policy: ExitPolicy, T: int, counts: bool, neuron_counts: bool
    ) -> RunResult:
        """The streaming schedule of a multi-rate file (:class:`runtime.stages.Stream`): the
        readout and ``policy`` follow the last stage's steps (at most ``T``). A sample that
        stops counts no further step, spike or operation (each stage's steps and spikes are
        those it had run when the sample stopped), and its row leaves every stage's batch
        and the outputs waiting between stages as in :meth:`run` (``COMPACT_AT``)."""
        stages, rule = self._stages, self.protocol.readout
        B = xs.shape[0] if static else xs.shape[1]
        steppers = [s._stepper(B, counts) for s in stages]
        for st in steppers:
            st.reset()
        rows = _Rows(B, self.protocol.num_classes)
        stage_steps = np.zeros((len(stages), B), np.int64)
        keys = [[*s.spiking, cost.INPUT] for s in stages]
        spikes = [{k: np.zeros(B) for k in ks} for ks in keys] if counts else []
        if neuron_counts:
            for s, sp in zip(stages, spikes):
                sp.update({f"{k}/neurons": np.zeros((B, *sh)) for k, sh in zip(s.spiking, s._spike_shapes)})
        profile: list[int] = []
        ask_from = min(first_exit(policy), T)
        last = len(stages) - 1

        def step(i: int, j: int, x: np.ndarray) -> np.ndarray:
            steppers[i].step(x, j)
            return steppers[i].y

        def first(j: int) -> np.ndarray:
            x = xs if static else xs[j]
            return x if len(rows.active) == B else x[rows.active]

        start = time.perf_counter()
        schedule = Stream(self.protocol.config or (), first, step)
        for i, j, x in schedule:
            live = rows.live
            n, running = len(live), rows.active[live]
            stage_steps[i, running] += 1
            if counts:
                sp = spikes[i]
                for name, buf in zip(stages[i].spiking, steppers[i].extra):
                    sp[name][running] += buf.reshape(n, -1).sum(1, dtype=np.float64)[live]
                    if neuron_counts:
                        sp[f"{name}/neurons"][running] += buf[live]
                sp[cost.INPUT][running] += x.reshape(n, -1).sum(1, dtype=np.float64)[live]
            if i != last:
                continue
            profile.append(len(running))
            rows.acc += steppers[i].y
            if j + 1 < ask_from:
                continue
            rows.exit(policy, j + 1, readout_so_far(rows.acc, steppers[i].y, j + 1, rule), T)
            if rows.n_live == 0:
                break
            if (go := rows.compact()) is not None:
                for s, st in zip(stages, steppers):
                    st.keep(go, s._runner(threads_for(len(rows.active), s.threads), counts))
                schedule.keep(go)
        result = RunResult(rows.out.argmax(1), rows.out, rows.steps, time.perf_counter() - start, profile)
        if counts:
            result.spike_counts = {k: sp[k] for s, sp in zip(stages, spikes) for k in s.spiking}
            parts = [
                s._cost(n, {k: v for k, v in sp.items() if "/" not in k})
                for s, n, sp in zip(stages, stage_steps, spikes)
            ]
            macs, acs = np.sum([c.macs for c in parts], 0), np.sum([c.acs for c in parts], 0)
            result.cost = Cost(macs, acs, cost.energy_pj(macs, acs))
            if neuron_counts:
                result.neuron_counts = {k: sp[f"{k}/neurons"] for s, sp in zip(stages, spikes) for k in s.spiking}
        return self._checked_finite(result)

    # ---- cost -----------------------------------------------------------------------
    def synapse_layers(self) -> list[cost.SynapseLayer]:
        """The synaptic layers with their dense MACs, measured once by a batch-1 probe step."""
        if self._layers is None:
            g = self.model.graph
            inits = {i.name for i in g.initializer}
            nodes = [n for n in g.node if n.op_type in cost.SYNAPTIC_OPS]
            names = sorted(
                (
                    {n.output[0] for n in nodes}
                    | {cost.data_input(n, inits) for n in nodes}
                    | {n.output[0] for n in g.node if n.op_type == "If"}
                )
                - {"x"}
            )
            sess = make_session(with_outputs(self.model, names), 1)
            feed = {"x": np.zeros((1, *self.protocol.input_shape), np.float32)}
            if self.protocol.uses_t:
                feed["t"] = np.zeros((), np.int64)
            feed.update({s.name: np.zeros((1, *s.shape), np.float32) for s in self.protocol.states})
            shapes = dict(zip(names, (v.shape for v in sess.run(names, feed))))
            shapes["x"] = (1, *self.protocol.input_shape)
            self._layers = cost.synapse_layers(self.model, self.protocol, shapes)
        return self._layers

    def _cost(self, steps: np.ndarray, spikes: dict[str, np.ndarray]) -> Cost:
        elements = {cost.INPUT: int(np.prod(self.protocol.input_shape))}
        elements.update({n: int(np.prod(s)) for n, s in zip(self.spiking, self._spike_shapes)})
        macs, acs = cost.count_ops(self.synapse_layers(), steps, spikes, elements)
        return Cost(macs, acs, cost.energy_pj(macs, acs))

    # ---- streaming ------------------------------------------------------------------
    def initial_state(self, batch: int = 1) -> ClockState:
        """A new stream of ``batch`` samples at t = 0 (states zero), for :meth:`feed`."""
        if not positive_int(batch):
            raise InputError(f"batch must be a positive integer, got {batch!r}")
        batch = int(batch)
        check_memory(run_bytes(self.protocol, batch), f"a stream of batch {batch}")  # numpy's MemoryError otherwise
        if self.protocol.stages:
            raise InputError(
                f"this model runs each stage at its own T (configuration {_config(self.protocol)}); "
                "streaming one step at a time runs one T for all stages: expected Session.run on whole inputs"
            )
        return ClockState(self._stepper(batch, False), np.zeros((batch, self.protocol.num_classes)), self)

    def copy_state(self, state: ClockState) -> ClockState:
        """An independent copy of the stream ``state`` (its states, readout so far and t):
        feed each its own inputs and they run apart (a branch: what-if inputs, a snapshot to
        return to). ``copy.copy(state)`` and ``copy.deepcopy(state)`` call this."""
        self._own(state)
        new = ClockState(self._stepper(state.batch, False), state.acc.copy(), self, state.t)
        for dst, src in zip(new.stepper.states, state.stepper.states):
            np.copyto(dst, src)
        np.copyto(new.stepper.y, state.stepper.y)
        return new

    def feed(self, state: ClockState, x_t: np.ndarray) -> tuple[ClockState, np.ndarray]:
        """Feed one step ``[B, *shape]`` to the stream ``state`` (advanced in place and
        returned); also returns the readout (logits) after this step, by the model's
        readout rule (``mean``: mean of the outputs so far; ``last``: this step's output;
        ``count``: their sum; :func:`runtime.protocol.readout_so_far`).
        This step's own output is ``state.y``."""
        self._own(state)
        self._check_step_input(x_t)
        return self._advance(state, x_t)

    def _own(self, state: object) -> None:
        """``state`` is a stream of this session's (its buffers hold this model's states)."""
        if not isinstance(state, ClockState):
            raise InputError(
                f"state is of type {type(state).__name__}; expected a ClockState from this session's initial_state()"
            )
        if state.session is not self:
            # its buffers hold another model's states: it would run that model, or fail in numpy
            raise InputError(
                f"this state was made by another session ({state.session.path or state.session.protocol.model}); "
                "feed a state to the session whose initial_state() made it"
            )

    def _check_step_input(self, x_t: object) -> None:
        one_step = f"one step [B, {', '.join(map(str, self.protocol.input_shape))}]"
        if not isinstance(x_t, np.ndarray):  # a torch tensor's shape was named as the fault
            raise InputError(f"step input is a {type(x_t).__name__}; expected a numpy array, {one_step}")
        if x_t.ndim != len(self.protocol.input_shape) + 1:
            raise InputError(f"step input has shape {list(x_t.shape)}; expected {one_step}")
        self._check_array(x_t, "step input", one_step)

    def _advance(self, state: ClockState, x_t: np.ndarray) -> tuple[ClockState, np.ndarray]:
        self._check_steps(state.t + 1)
        if x_t.shape[0] != state.batch:
            raise InputError(
                f"step input has batch {x_t.shape[0]}; this stream has batch {state.batch} "
                "(feed: start a new state with initial_state(batch); step: reset() first)"
            )
        state.stepper.step(x_t, state.t)
        state.t += 1
        if state.t == self.protocol.T_range[1] + 1:  # once per stream, at the first step past the range
            self._warn_range(state.t, state.t)
        y = state.stepper.y
        state.acc += y
        logits = readout_so_far(state.acc, y, state.t, self.protocol.readout).astype(np.float32)
        if not np.isfinite(logits).all():  # as run() says it (a stream's score was null, unsaid)
            warnings.warn(NON_FINITE, NonFiniteReadoutWarning, stacklevel=3)
        return state, logits

    def reset(self) -> None:
        """Forget the stream of :meth:`step`: the next step starts from t = 0."""
        self._stream = None

    def step(self, x_t: np.ndarray) -> np.ndarray:
        """:meth:`feed` on the session's own stream (started by the first step after
        :meth:`reset`, with that step's batch); returns the running readout (logits), not
        this step's output. A session holds ONE such stream, owned by the thread that
        started it: a step from another thread is refused (use :meth:`feed` with a state
        per stream, one session per thread, or :meth:`reset` from the thread that starts
        the next stream). :attr:`steps_done` says how many steps were fed.
        """
        with self._stream_lock:  # two threads never interleave their steps in one state
            if self._stream is not None and self._owner != threading.get_ident():
                raise InputError(
                    "this session's stream was started by another thread; a session holds one "
                    "stream: use one session per thread (runtime.load again), feed() with a "
                    "state per stream, or reset() first"
                )
            self._check_step_input(x_t)
            if self._stream is None:
                self._stream, self._owner = self.initial_state(x_t.shape[0]), threading.get_ident()
            return self._advance(self._stream, x_t)[1]

    @property
    def steps_done(self) -> int:
        return 0 if self._stream is None else self._stream.t


def _summed(n: int, parts: Sequence[tuple[np.ndarray, dict[str, np.ndarray] | None]]) -> dict[str, np.ndarray]:
    """Per-sample arrays of several runs, each over rows ``rows`` of the ``n`` samples, summed."""
    total: dict[str, np.ndarray] = {}
    for rows, values in parts:
        assert values is not None  # every run of a cascade has the same flags
        for k, v in values.items():
            if k not in total:
                total[k] = np.zeros((n, *v.shape[1:]), v.dtype)
            total[k][rows] += v
    return total


def _config(p: Protocol) -> str:
    return ",".join(map(str, p.config or ()))


def _backend(model: onnx.ModelProto, proto: Protocol, asked: str) -> tuple[str, str, Plan | None, list[Segment] | None]:
    """(backend used, why, split plan or None, the exact backend's segments or None) for the
    backend ``asked`` (BACKENDS)."""
    if asked not in BACKENDS:
        raise InputError(f"backend {asked!r} is unknown; expected one of {list(BACKENDS)}")
    if asked == "ort":
        return "ort", "asked for", None, None
    try:
        p = plan(model, proto)
        if asked == "exact":
            note = "fixed-order float64 sums in numba (bit-identical across machines), neurons in numba kernels"
            return "exact", note, p, _exact_segments(p)
        return "numba", "neuron layers in one-pass numba kernels, the rest on onnxruntime", p, None
    except NotSplittable as e:
        if asked in ("numba", "exact"):
            raise InputError(
                f"backend {asked!r} cannot run this model: {e}; expected backend 'ort' or 'auto'"
            ) from None
        return "ort", f"function bodies on onnxruntime ({e})", None, None


def _exact_segments(p: Plan) -> list[Segment]:
    from .exact import compile_segment  # numba: only for backend exact

    return [compile_segment(m, src, dst) for m, (src, dst) in zip(p.segments, p.ends)]


def load(path: str | Path, threads: int | None = None, backend: str = "auto") -> Session:
    """Open an exported model; :class:`ModelError` says what was expected if it is not one.

    ``threads``: onnxruntime intra-op threads (default: 1 at batch 1, all cores above).
    ``backend``: one of :data:`BACKENDS` (``Session.backend`` says which one runs).
    """
    model, proto = read_model(path)
    if (note := proto.unfinished_note(path)) is not None:
        warnings.warn(note, UnfinishedModelWarning, stacklevel=2)
    return Session(model, proto, str(path), threads, backend)
