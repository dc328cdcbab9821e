"""Running the event engine over a data set, and comparing it with the clock-driven run."""

from __future__ import annotations

import numpy as np

from ..data import DataError, Dataset
from ..session import Session
from .engine import EventEngine, EventResult
from .metrics import spike_difference, stack_counts


def check_dataset(engine: EventEngine, ds: Dataset) -> None:
    if ds.kind != "events":
        raise DataError(
            f"data {ds.spec!r} holds static images; the event engine needs event streams (e.g. digits or nmnist:PATH)"
        )
    if tuple(ds.shape) != engine.sensor:
        raise DataError(
            f"data {ds.spec!r} comes from a {list(ds.shape)} sensor, but the model expects {list(engine.sensor)}"
        )


def run_event_dataset(engine: EventEngine, ds: Dataset, batch_size: int = 256) -> EventResult:
    """Every stream of ``ds``, ``batch_size`` streams at a time in parallel, each up to the
    data set's recording length (where CubaLIF membranes still cross their threshold)."""
    check_dataset(engine, ds)
    if batch_size <= 0:
        raise DataError(f"batch size must be a positive integer, got {batch_size}")
    assert ds.events is not None  # check_dataset: an event data set, which holds streams
    # indexed one by one: transformed and tonic recordings are read lazily and take no slices
    parts = [
        engine.run_batch([ds.events[j] for j in range(i, min(i + batch_size, len(ds)))], until=ds.duration_us)
        for i in range(0, len(ds), batch_size)
    ]
    cat = np.concatenate
    return EventResult(
        cat([p.outputs for p in parts]),
        cat([p.predictions for p in parts]),
        {k: cat([p.neuron_counts[k] for p in parts]) for k in parts[0].neuron_counts},
        cat([p.events for p in parts]),
        cat([p.synops for p in parts]),
        sum(p.seconds for p in parts),
    )


def summarize_event(result: EventResult, labels: np.ndarray) -> dict:
    n = len(labels)
    return {
        "n": n,
        "accuracy": float((result.predictions == labels).mean()),
        "events_per_sample": float(result.events.mean()),
        "synops_per_sample": float(result.synops.mean()),
        "seconds": result.seconds,
        "ms_per_sample": 1e3 * result.seconds / n,
        "spikes_per_sample": {k: float(v.reshape(n, -1).sum(1).mean()) for k, v in result.neuron_counts.items()},
    }


def compare_clock(
    engine: EventEngine,
    session: Session,
    ds: Dataset,
    result: EventResult,
    batch_size: int = 256,
    binning: str | None = None,
) -> dict:
    """Spike difference of ``result`` against the clock-driven run at the model's T (binned
    as trained, or per ``binning``): SD per sample over the neurons of all spiking layers
    (MTT Eq. 16), its mean over samples, the same per layer, and the clock-driven accuracy."""
    p = session.protocol
    binning = binning or p.binning
    nodes = list(result.neuron_counts)
    clock: dict[str, list[np.ndarray]] = {k: [] for k in nodes}
    preds = []
    for start in range(0, len(ds), batch_size):
        idx = np.arange(start, min(start + batch_size, len(ds)))
        frames = ds.frames(idx, p.T_trained, binning, p.dt_us if binning == "fixed" else None)
        r = session.run(frames, p.T_trained, neuron_counts=True)
        preds.append(r.predictions)
        assert r.neuron_counts is not None  # run(neuron_counts=True) fills them
        for k in nodes:
            clock[k].append(r.neuron_counts[k])
    s0 = {k: np.concatenate(v) for k, v in clock.items()}
    sd = spike_difference(stack_counts(s0, nodes), stack_counts(result.neuron_counts, nodes))
    clock_pred = np.concatenate(preds)
    return {
        "sd": float(sd.mean()),
        "sd_per_layer": {
            k: float(spike_difference(s0[k].reshape(len(ds), -1), result.neuron_counts[k].reshape(len(ds), -1)).mean())
            for k in nodes
        },
        "clock_T": p.T_trained,
        "clock_binning": binning,
        "clock_accuracy": float((clock_pred == ds.labels).mean()),
        "agreement": float((clock_pred == result.predictions).mean()),
    }
