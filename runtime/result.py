"""What a run returns, clock-driven or event-driven: one shape for both SDKs.

Both results hold ``predictions`` and ``outputs`` (the readout each prediction came from),
``seconds``, ``spike_counts[node]`` (per-sample totals of each spiking layer),
``neuron_counts[node]`` (per neuron) and ``cost`` (synaptic operations and the energy
estimate), per sample in input order. The clock-driven run adds ``steps`` and
``batch_per_step``; the event-driven run adds ``events`` and ``synops`` (and ``steps``
under an exit policy: :mod:`runtime.event.exit`). Results of
consecutive batches join with ``concat``, field by field.

Free of onnxruntime: the event engine uses it without loading the clock-driven runtime.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np

from .cost import Cost, energy_pj

_R = TypeVar("_R", bound="Result")


def _join(values: list[Any]) -> Any:
    """One field of consecutive batches joined: arrays concatenated along samples, dicts
    and dataclasses field by field, times summed, a per-step profile summed by step."""
    first = values[0]
    if first is None:
        assert all(v is None for v in values)  # the parts of one result come from runs with the same flags
        return None
    if isinstance(first, np.ndarray):
        return np.concatenate(values)
    if isinstance(first, dict):
        return {k: _join([v[k] for v in values]) for k in first}
    if dataclasses.is_dataclass(first) and not isinstance(first, type):  # a Cost, a result
        fields = (f.name for f in dataclasses.fields(first) if f.init)  # the others follow from them
        return type(first)(**{k: _join([getattr(v, k) for v in values]) for k in fields})
    if isinstance(first, list):  # samples still running at each step: summed over the batches
        prof = np.zeros(max(len(v) for v in values), np.int64)
        for v in values:
            prof[: len(v)] += v
        return prof.tolist()
    return sum(values)


def _with_sample_axis(value: Any) -> Any:
    """One stream's result (no sample axis) as a batch of one: every array gains axis 0
    (a numpy scalar too: the engine's one-stream prediction is an ``np.int64``)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)[None]
    if isinstance(value, dict):
        return {k: _with_sample_axis(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (f.name for f in dataclasses.fields(value) if f.init)
        return type(value)(**{k: _with_sample_axis(getattr(value, k)) for k in fields})
    return value


class Result:
    """The fields every run has (see the module docstring); each kind of result is a
    dataclass that declares them as its fields, in its own order."""

    predictions: np.ndarray
    outputs: np.ndarray
    seconds: float
    spike_counts: dict[str, np.ndarray] | None
    neuron_counts: dict[str, np.ndarray] | None
    cost: Cost | None

    @property
    def n(self) -> int:
        """Samples: the batch, or 1 for one stream's result (no sample axis)."""
        return int(np.size(self.predictions))

    @classmethod
    def concat(cls: type[_R], parts: Sequence[_R]) -> _R:
        """Join the results of consecutive batches; one stream's result (no sample axis)
        joins as a batch of one."""
        if not parts:
            raise ValueError("no results to join; expected one or more")
        for f in dataclasses.fields(cast(Any, parts[0])):  # each kind of result is a dataclass
            if f.init and len({getattr(p, f.name) is None for p in parts}) > 1:
                raise ValueError(
                    f"results to join hold {f.name!r} in some parts and None in others; join the results of runs "
                    "made alike (the same model and options: e.g. all under an exit policy, or none)"
                )
        return cast(_R, _join([p if np.ndim(p.predictions) else _with_sample_axis(p) for p in parts]))

    def stats(self) -> dict[str, float | int | list[int]]:
        """The numbers only this kind of run has, per sample (for a summary)."""
        raise NotImplementedError


@dataclass
class RunResult(Result):
    """What :meth:`runtime.session.Session.run` returns.

    ``steps`` how many steps each sample ran, ``batch_per_step`` how many samples were
    still running at each step, ``seconds`` the wall time of the step loop.
    """

    predictions: np.ndarray
    outputs: np.ndarray
    steps: np.ndarray
    seconds: float
    batch_per_step: list[int]
    spike_counts: dict[str, np.ndarray] | None = None
    cost: Cost | None = None
    neuron_counts: dict[str, np.ndarray] | None = None  # per neuron [B, *shape] (run(neuron_counts=True))

    @property
    def mean_steps(self) -> float:
        return float(self.steps.mean())

    def stats(self) -> dict[str, float | int | list[int]]:
        return {**step_stats(self.steps), "batch_per_step": self.batch_per_step}


def step_stats(steps: np.ndarray) -> dict[str, float | int]:
    """What a summary says of the steps (clock) or bins (event-driven) each sample ran."""
    return {
        "mean_steps": float(steps.mean()),
        **{f"p{q}_steps": float(np.percentile(steps, q)) for q in (50, 90, 99)},
        "max_steps": int(steps.max()),
    }


@dataclass
class EventResult(Result):
    """What the event engine returns. ``outputs`` per class: spike counts (spiking
    readout), the final membrane (LI readout, decayed to the instant the stream was run to:
    :meth:`runtime.event.EventEngine.result`) or the
    summed readout current (a readout without neuron: what the clock-driven
    ``mean``/``count`` readouts accumulate). ``events`` input events and ``synops``
    synaptic operations per sample. Batched results have a leading sample axis everywhere."""

    predictions: np.ndarray
    outputs: np.ndarray
    neuron_counts: dict[str, np.ndarray]
    events: np.ndarray
    synops: np.ndarray
    seconds: float = 0.0
    # the bins (the clock run's at the policy's horizon) each stream ran before an exit
    # policy stopped it (runtime.event.exit); None for whole streams
    steps: np.ndarray | None = None

    # spike totals and cost follow from the fields above; computed when first read, so a
    # short stream's run does not pay for them unread (about 11 µs of a one-event stream's
    # 50-60, issue 19); read-only where Result declares plain attributes, hence the ignores
    @functools.cached_property
    def spike_counts(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        lead = self.synops.shape  # (B,) batched, () one stream
        # integer counts: summed as integers (exact, and twice as fast as a float64 sum)
        return {k: v.reshape(*lead, -1).sum(-1).astype(np.float64) for k, v in self.neuron_counts.items()}

    @functools.cached_property
    def cost(self) -> Cost:  # type: ignore[override]
        # every synaptic operation of the event engine adds one weight for one arriving
        # event or spike: an accumulate (no multiplications; the models are bias-free)
        acs = self.synops.astype(np.float64)
        macs = np.zeros_like(acs)
        return Cost(macs, acs, energy_pj(macs, acs))

    def stats(self) -> dict[str, float | int | list[int]]:
        s: dict[str, float | int | list[int]] = {
            "events_per_sample": float(self.events.mean()),
            "synops_per_sample": float(self.synops.mean()),
        }
        if self.steps is not None:  # the clock result's step figures, per bin
            steps = self.steps
            s.update(step_stats(steps), batch_per_step=[int((steps >= k).sum()) for k in range(1, steps.max() + 1)])
        return s

    @property
    def mean_steps(self) -> float | None:
        """The mean of :attr:`steps`; None for whole streams (no policy asked)."""
        return None if self.steps is None else float(self.steps.mean())
