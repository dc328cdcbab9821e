"""Running the event engine over a data set, and comparing it with the clock-driven run."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..data import Dataset, check_fits
from ..data.events import TIME_BASES, retimed
from ..errors import InputError, StoredPolicyWarning, TrainedRangeWarning
from ..evaluate import EVAL_BATCH_SIZE, ClockMode, run_batches
from ..neuron import kind_of
from ..policies import ExitPolicy, FixedT, t_range_warning
from ..result import EventResult
from .engine import EventEngine
from .exit import event_policy, run_with_exit
from .metrics import spike_difference, stack_counts

if TYPE_CHECKING:
    from ..protocol import Protocol
    from ..session import Session


def check_dataset(engine: EventEngine, ds: Dataset) -> None:
    p = engine.protocol
    check_fits(ds, engine.sensor, p.classes, "the model", needs="the event engine")


def stretched_span(p: Protocol) -> float | None:
    """The span training stretched every recording onto, where its time base is not real
    time: T equal bins over each recording's own span (``durations = "recording"``), each
    lasting one nominal step ``dt_us`` (else None)."""
    if p.binning != "equal" or p.durations != "recording" or p.dt_us is None:
        return None
    return p.input_steps(p.T_trained) * p.dt_us


def exit_bins_text(p: Protocol, ds: Dataset, horizon: int, time_base: str = "real") -> str:
    """The bins an event-driven run under a policy of ``horizon`` asks it at, in words: the
    clock run's at that horizon over :meth:`EventMode.run`'s spans (the data set's, or the
    span training stretched each recording onto)."""
    span = stretched_span(p) if time_base == "trained" else None
    if span is not None:  # every recording stretched onto one span
        return replace(p.time_base(), durations="dataset", duration_us=span).describe(horizon)
    return replace(p.time_base(), duration_us=ds.duration_us).describe(horizon)


def time_base_note(p: Protocol, time_base: str = "real") -> str | None:
    """Where the event engine's real µs and the clock run's bins differ in kind, not by
    bin width: a model trained on each recording's own span (``durations = "recording"``,
    T equal bins each) runs every recording in real µs here, with the nominal step. With a
    neuron that leaks, a recording far shorter or longer than T steps then decays otherwise
    than in the clock run (a stranger's LIF model: spike difference 0.16 on recordings of
    80-200 ms, 0.53 under 30 ms, for a nominal 146 ms); IF neurons see no time (None), nor
    does a run on the trained time base (``time_base = "trained"``)."""
    span = stretched_span(p)
    if time_base == "trained" or span is None:
        return None
    leaky = sorted({n.spec.kind for n in p.neurons if kind_of(n.spec.kind).event_form(n.spec).leaks})
    if not leaky:
        return None
    return (
        f"this model's {'/'.join(leaky)} neurons leak, and it was trained on each recording's own span "
        f"(T equal bins each), but the event engine runs recordings in real µs, with the nominal step of "
        f"{p.dt_us:g} µs: a recording much shorter or longer than {span:g} µs decays otherwise than in the "
        "clock run (--time-base trained stretches each to it; docs/event_driven.md, Time base)"
    )


class EventMode:
    """The event engine over a data set: whole streams, a batch of them in parallel, in real
    µs or (``time_base = "trained"``) each stretched onto the span training gave it; with
    ``policy``, each stream up to where the exit policy stops it (:mod:`.exit`: the batch's
    streams bin by bin, one per thread)."""

    def __init__(self, engine: EventEngine, time_base: str = "real", policy: ExitPolicy | None = None):
        if time_base not in TIME_BASES:
            raise InputError(f"time base {time_base!r} is unknown; expected one of {list(TIME_BASES)}")
        self.engine, self.policy = engine, policy
        self.span = stretched_span(engine.protocol) if time_base == "trained" else None

    def check(self, ds: Dataset, batch: int) -> None:
        check_dataset(self.engine, ds)

    def run(self, ds: Dataset, idx: np.ndarray) -> EventResult:
        assert ds.events is not None  # check_dataset: an event data set, which holds streams
        # indexed one by one: transformed and tonic recordings are read lazily and take no slices
        streams = [ds.events[j] for j in idx]
        # each up to the recording's length, where CubaLIF membranes still cross their threshold
        ends = ds.spans(idx, streams, self.engine.protocol.durations)  # what equal binning splits
        if self.span is not None:
            streams = [retimed(s, e, self.span) for s, e in zip(streams, ends)]
            ends = np.full(len(streams), self.span)
        if self.policy is not None:  # decided where the clock run's bins of these spans end
            return run_with_exit(self.engine, streams, self.policy, ends)
        # each to its span (a recording trained on its own: its own), where the clock run's
        # last bin ends and a policy run reads it (an LI readout decays up to there)
        return self.engine.run_batch(streams, until=ends)


# run_event_dataset's policy for every event of every stream and one readout at its end,
# whatever policy the model stores (fixed:T at the trained T gives the same numbers, bin by bin)
WHOLE_STREAMS = "whole"


def run_event_dataset(
    engine: EventEngine,
    ds: Dataset,
    batch_size: int = EVAL_BATCH_SIZE,
    progress: bool = False,
    time_base: str = "real",
    policy: ExitPolicy | str | int | None = None,
) -> EventResult:
    """Every stream of ``ds``, ``batch_size`` streams at a time in parallel; ``time_base``:
    "real" (each recording as it comes, what an event-driven chip does) or "trained" (each
    stretched onto the span its T training bins had; the same as "real" unless the model was
    trained on each recording's own span: docs/event_driven.md, Time base); ``policy``: an
    exit policy (as :meth:`runtime.session.Session.run` takes it), asked at the end of each
    bin (:mod:`.exit`); None: the model's stored policy, as :func:`runtime.evaluate.run_dataset`
    takes it (a :class:`StoredPolicyWarning` where it was chosen on clock-driven runs or is a
    cascade), else whole streams; :data:`WHOLE_STREAMS`: whole streams whatever is stored. A
    policy that may stop outside the trained range of T: a :class:`TrainedRangeWarning`, as
    :meth:`runtime.session.Session.run` warns."""
    p = engine.protocol
    if policy is None:
        stored, _, note = p.run_default("event", "an event-driven run", None, "whole streams run")
        if note is not None:
            warnings.warn(note, StoredPolicyWarning, stacklevel=2)
        asked = stored
    else:  # a bad one: refused before any work
        asked = None if isinstance(policy, str) and policy == WHOLE_STREAMS else event_policy(policy)
    ranged = t_range_warning(p, asked) if asked is not None else None
    if ranged is not None:
        warnings.warn(ranged, TrainedRangeWarning, stacklevel=2)
    return run_batches(EventMode(engine, time_base, asked), ds, batch_size, progress)


def compare_clock(
    session: Session,
    ds: Dataset,
    result: EventResult,
    batch_size: int = EVAL_BATCH_SIZE,
    binning: str | None = None,
    policy: ExitPolicy | None = None,
) -> dict:
    """Spike difference of ``result`` against the clock-driven run at the model's T (binned
    as trained, or per ``binning``; under ``policy`` if given, each sample's counts up to its
    own exit): SD per sample over the neurons of all spiking layers (MTT Eq. 16), its mean
    over samples, the same per layer, and the clock-driven accuracy."""
    mode = ClockMode(session, policy or FixedT(session.protocol.default_T), binning, neuron_counts=True)
    clock = run_batches(mode, ds, batch_size)
    assert clock.neuron_counts is not None  # neuron_counts=True fills them
    nodes = list(result.neuron_counts)
    s0 = clock.neuron_counts
    sd = spike_difference(stack_counts(s0, nodes), stack_counts(result.neuron_counts, nodes))
    return {
        "sd": float(sd.mean()),
        "sd_per_layer": {
            k: float(spike_difference(s0[k].reshape(len(ds), -1), result.neuron_counts[k].reshape(len(ds), -1)).mean())
            for k in nodes
        },
        "clock_T": mode.T,
        "clock_binning": mode.binning,
        "clock_accuracy": float((clock.predictions == ds.labels).mean()),
        "agreement": float((clock.predictions == result.predictions).mean()),
    }
