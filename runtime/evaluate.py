"""Running a data set in batches (one loop for the clock-driven and the event-driven
runtime), summarising a run, and the threshold trade-off."""

from __future__ import annotations

import dataclasses
import typing
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from tqdm import tqdm

from .data import DataError, Dataset, check_fits
from .data.events import count_unseen, unseen_note
from .errors import InputError, StoredPolicyWarning, UnseenEventsWarning
from .fileio import write_atomic
from .limits import check_memory, run_bytes
from .policies import RULES, Cascade, ExitPolicy, FixedT, PolicyError, as_policy, horizon_of, model_default
from .protocol import STATIC_KINDS, data_kind
from .result import Result, RunResult

if TYPE_CHECKING:  # the event engine's data-set runs load no onnxruntime
    from .session import Session

# samples per batch when a whole data set is run: bounds memory (checked before each run),
# never a result (every sample runs on its own state)
EVAL_BATCH_SIZE = 256

_R = TypeVar("_R", bound=Result)
_Rc = TypeVar("_Rc", bound=Result, covariant=True)


class Mode(typing.Protocol[_Rc]):
    """How one runtime runs the samples of a data set: :class:`ClockMode` (a session
    under an exit policy) or :class:`runtime.event.evaluate.EventMode` (the event engine)."""

    def check(self, ds: Dataset, batch: int) -> None:
        """Refuse, before any work, a data set this runtime cannot take or a batch that
        would not fit."""

    def run(self, ds: Dataset, idx: np.ndarray) -> _Rc:
        """Samples ``idx`` of ``ds`` as one batch."""
        ...


def run_batches(mode: Mode[_R], ds: Dataset, batch_size: int = EVAL_BATCH_SIZE, progress: bool = False) -> _R:
    """Every sample of ``ds``, ``batch_size`` at a time, joined into one result in input
    order (``progress``: a bar on stderr)."""
    if batch_size <= 0:
        raise DataError(f"batch size must be a positive integer, got {batch_size}")
    mode.check(ds, min(batch_size, len(ds)))
    starts = range(0, len(ds), batch_size)
    parts = [
        mode.run(ds, np.arange(i, min(i + batch_size, len(ds))))
        for i in tqdm(starts, desc="batches", unit="batch", disable=not progress, leave=False)
    ]
    return type(parts[0]).concat(parts)


class ClockMode:
    """A session over a data set under ``policy``: events binned as the model was trained
    (or per ``binning``), into as many frames as the policy may use."""

    def __init__(
        self,
        session: Session,
        policy: ExitPolicy | Cascade | str | int | None = None,
        binning: str | None = None,
        counts: bool = True,
        neuron_counts: bool = False,
    ):
        p = session.protocol
        self.session, self.counts, self.neuron_counts = session, counts, neuron_counts
        self.policy = as_policy(policy) or model_default(p.exit_policy, p.default_T)
        self.T = horizon_of(self.policy, p.default_T)
        self.frames = p.input_steps(self.T)
        self.binning = binning or p.binning
        # fixed bins: (missed events, all events, streams missing some) so far; the steps are
        # the run's or the trained T's, whichever is longer (Session warns by the same rule)
        self.unseen = np.zeros(3, np.int64)
        self.steps_seen = max(self.frames, p.input_steps(p.T_trained))

    def check(self, ds: Dataset, batch: int) -> None:
        p = self.session.protocol
        check_fits(ds, p.input_shape, p.classes, "the model", kind=data_kind(p.input_kind))
        check_memory(
            run_bytes(p, batch, 1 if ds.kind == "static" else self.frames),
            f"a batch of {batch} samples for {self.frames} steps",
        )

    def inputs(self, ds: Dataset, idx: np.ndarray, T: int) -> np.ndarray:
        """The inputs of samples ``idx`` for a run of ``T`` steps."""
        p = self.session.protocol
        if ds.kind == "static" and p.input_kind in STATIC_KINDS:
            assert ds.images is not None  # a static data set holds images
            return ds.images[idx]  # repeated by the session: no T copies of the image
        dt_us = p.dt_us if self.binning == "fixed" else None
        return ds.frames(idx, p.input_steps(T), self.binning, dt_us, p.durations)

    def run(self, ds: Dataset, idx: np.ndarray) -> RunResult:
        dt = self.session.protocol.dt_us
        if self.binning == "fixed" and ds.kind == "events" and dt is not None:
            # the batch's streams read once (a tonic recording or a transformed one is read
            # anew at each access): counted here, binned from the same arrays below
            assert ds.events is not None  # an event data set holds streams
            streams = [ds.events[i] for i in idx]
            self.unseen += count_unseen(streams, self.steps_seen * dt)
            ds, idx = dataclasses.replace(ds.subset(idx), events=streams), np.arange(len(idx))
        if isinstance(self.policy, Cascade):  # each run of the cascade bins the recordings anew
            return self.session.run_cascade(
                self.policy,
                len(idx),
                lambda T, rows: self.inputs(ds, idx[rows], T),
                counts=self.counts,
                neuron_counts=self.neuron_counts,
            )
        x = self.inputs(ds, idx, self.T)
        return self.session.run(x, self.policy, counts=self.counts, neuron_counts=self.neuron_counts)


def run_dataset(
    session: Session,
    ds: Dataset,
    policy: ExitPolicy | Cascade | str | int | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    binning: str | None = None,
    counts: bool = True,
    progress: bool = False,
) -> RunResult:
    """Run every sample of ``ds`` through ``session`` in batches (see :class:`ClockMode`); an
    :class:`UnseenEventsWarning` where fixed bins missed events, as :meth:`Session.run` warns;
    ``policy`` None: the model's stored one (a :class:`StoredPolicyWarning` where it was
    chosen on event-driven runs), else fixed at its default T."""
    note = session.protocol.stored_policy_note("clock") if policy is None else None
    if note is not None:
        warnings.warn(note, StoredPolicyWarning, stacklevel=2)
    mode = ClockMode(session, policy, binning, counts)
    result = run_batches(mode, ds, batch_size, progress)
    warn_unseen(mode, len(ds))
    return result


def warn_unseen(mode: ClockMode, streams: int) -> None:
    """One :class:`UnseenEventsWarning` for what ``mode``'s fixed bins missed over a run of
    ``streams`` recordings (a whole split, not each batch)."""
    missed, total, streams_missed = (int(v) for v in mode.unseen)
    if missed:
        dt = mode.session.protocol.dt_us
        assert dt is not None  # counted only with a dt
        note = unseen_note(missed, total, streams_missed, streams, mode.steps_seen, dt)
        warnings.warn(note, UnseenEventsWarning, stacklevel=3)


def summarize(result: Result, labels: np.ndarray) -> dict[str, Any]:
    """The numbers a person or a program reads about a run, clock- or event-driven;
    ``labels`` has one label per sample of ``result`` (one for one stream's result)."""
    n = result.n
    labels = np.asarray(labels)
    if labels.size != n or labels.ndim > 1:  # numpy broadcast 1 label over 40 results
        raise InputError(f"labels has shape {list(labels.shape)}; expected one label per sample of the result, [{n}]")
    s: dict[str, Any] = {
        "n": n,
        "accuracy": float((np.ravel(result.predictions) == labels.ravel()).mean()),
        **result.stats(),
        "seconds": result.seconds,
        "ms_per_sample": 1e3 * result.seconds / n,
    }
    if result.cost is not None:
        s.update(result.cost.mean())
    if result.spike_counts is not None:
        s["spikes_per_sample"] = {k: float(v.mean()) for k, v in result.spike_counts.items()}
    return s


def tradeoff(
    session: Session,
    ds: Dataset,
    thresholds: Sequence[float],
    tmin: int = 1,
    tmax: int | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    binning: str | None = None,
    fixed_curve: bool = False,
    rules: Sequence[str] = ("confidence",),
) -> list[dict]:
    """Each exit rule of ``rules`` (names of :data:`.policies.RULES`) at each threshold,
    plus fixed T = tmax (and every fixed T from 1 to tmax if ``fixed_curve``): one summary
    row each, with its ``policy``.

    One untimed batch runs first, so that the first row's ``ms_per_sample`` is as warm as
    the others' (the first run at a batch size also compiles and allocates: on the digits
    default three equal rows read 2.56, 0.14 and 0.13 ms per sample; now 0.13 each)."""
    tmax = tmax or session.protocol.default_T
    fixed = range(1, tmax + 1) if fixed_curve else [tmax]
    unknown = [r for r in rules if r not in RULES]
    if unknown or not rules:
        raise PolicyError(f"exit rules {list(rules)}: expected one or more of {list(RULES)}")
    policies: list[ExitPolicy] = [RULES[r](float(th), tmin, tmax) for r in rules for th in thresholds]
    policies += [FixedT(T) for T in fixed]
    reference = FixedT(tmax)
    with warnings.catch_warnings():  # the warm-up batch's missed events: said by the run of all
        warnings.simplefilter("ignore", UnseenEventsWarning)
        run_dataset(session, ds.subset(np.arange(min(batch_size, len(ds)))), policies[0], batch_size, binning)
    rows = []
    for policy in policies:
        with warnings.catch_warnings():  # missed events: said once, by the reference run (fixed tmax)
            if policy != reference:
                warnings.simplefilter("ignore", UnseenEventsWarning)
            r = run_dataset(session, ds, policy, batch_size, binning)
        s = summarize(r, ds.labels)
        del s["batch_per_step"]
        rows.append({"policy": str(policy), **s})
    return rows


def plot_tradeoff(rows: Sequence[dict], path: str, title: str = "") -> None:
    """Accuracy vs mean steps and vs energy; each exit rule and fixed T a series."""
    import matplotlib  # lazily: only a plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import shown

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for prefix, style in (*((r, m + "-") for r, m in zip(RULES, "o^v")), ("fixed", "s--")):
        sel = sorted((r for r in rows if r["policy"].startswith(prefix)), key=lambda r: r["mean_steps"])
        if not sel:
            continue
        acc = [100 * r["accuracy"] for r in sel]
        axes[0].plot([r["mean_steps"] for r in sel], acc, style, label=prefix)
        axes[1].plot([r["energy_uj"] for r in sel], acc, style, label=prefix)
    axes[0].set_xlabel("mean time steps per sample")
    axes[1].set_xlabel("mean energy estimate per sample (µJ)")
    for ax in axes:
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(shown(title))
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)
