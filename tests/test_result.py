"""One result shape for the clock- and the event-driven runtime: joining batches, the
fields the event result derives, and one summary for both (runtime/result.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from runtime.cost import E_AC_PJ, Cost
from runtime.evaluate import run_batches, summarize
from runtime.result import EventResult, RunResult

from .conftest import ROOT

COMMON = {"n", "accuracy", "seconds", "ms_per_sample", "macs", "acs", "energy_uj", "spikes_per_sample"}


def clock(pred: list[int], steps: list[int], profile: list[int], seconds: float) -> RunResult:
    n = len(pred)
    macs = np.arange(n, dtype=np.float64)
    return RunResult(
        np.array(pred),
        np.eye(3)[pred],
        np.array(steps),
        seconds,
        profile,
        {"lif1": np.full(n, 2.0)},
        Cost(macs, 2 * macs, 3 * macs),
    )


def event(pred: list[int], synops: list[int], seconds: float) -> EventResult:
    n = len(pred)
    counts = {"lif1": np.ones((n, 2, 3), np.int64)}
    return EventResult(np.array(pred), np.eye(5)[pred], counts, np.full(n, 7), np.array(synops), seconds)


def test_clock_batches_join_field_by_field():
    r = RunResult.concat([clock([0, 1], [3, 1], [2, 1, 1], 0.5), clock([2], [2], [1, 1], 0.25)])
    assert r.predictions.tolist() == [0, 1, 2] and r.outputs.shape == (3, 3)
    assert r.steps.tolist() == [3, 1, 2] and r.seconds == 0.75
    assert r.batch_per_step == [3, 2, 1]  # samples running at each step, summed over the batches
    assert r.cost is not None and r.cost.macs.tolist() == [0, 1, 0] and r.cost.energy_pj.tolist() == [0, 3, 0]
    assert r.spike_counts is not None and r.spike_counts["lif1"].tolist() == [2, 2, 2]
    assert r.neuron_counts is None


def test_event_result_has_the_clock_fields():
    r = EventResult.concat([event([0, 1], [10, 20], 1.0), event([2], [5], 0.5)])
    assert r.n == 3 and r.seconds == 1.5 and r.synops.tolist() == [10, 20, 5]
    assert r.spike_counts["lif1"].tolist() == [6, 6, 6]  # per sample: summed over the layer's neurons
    # every synaptic op of the event engine is one accumulate
    assert r.cost.acs.tolist() == [10, 20, 5] and not r.cost.macs.any()
    assert np.allclose(r.cost.energy_pj, E_AC_PJ * np.array([10, 20, 5]))
    one = EventResult(np.array(1), np.eye(3)[1], {"lif1": np.ones((2, 3))}, np.array(4), np.array(9))
    assert one.spike_counts["lif1"].shape == () and float(one.spike_counts["lif1"]) == 6  # one stream: no sample axis
    assert one.n == 1 and summarize(one, np.array(1))["accuracy"] == 1.0


def test_one_stream_results_join_as_batches_of_one_and_labels_must_match():
    """EventResult.concat of one-stream results (no sample axis) was numpy's "zero-dimensional
    arrays cannot be concatenated"; summarize broadcast one label over 40 results (accuracy
    0.15, unsaid) and a label array of another length was numpy's broadcast error."""
    from runtime.errors import InputError

    counts = [{"lif1": np.full((2, 3), k)} for k in (2, 0)]
    # numpy scalars, as the engine returns them (0-d arrays alone once passed while real results were summed)
    ones = [EventResult(np.int64(k), np.eye(3)[k], c, np.int64(4), np.int64(9 + k)) for k, c in zip((2, 0), counts)]
    both = EventResult.concat(ones)
    assert both.predictions.tolist() == [2, 0] and both.outputs.shape == (2, 3) and both.synops.tolist() == [11, 9]
    assert both.neuron_counts["lif1"].shape == (2, 2, 3) and both.spike_counts["lif1"].tolist() == [12, 0]
    batch = event([0, 1, 2], [10, 20, 5], 1.0)
    for labels in (np.array([0]), np.array([0, 1]), np.zeros((3, 1), int)):
        with pytest.raises(InputError, match=r"expected one label per sample of the result, \[3\]"):
            summarize(batch, labels)
    assert summarize(batch, [0, 1, 1])["accuracy"] == pytest.approx(2 / 3)  # a list is fine


def test_one_summary_for_both_modes():
    labels = np.array([0, 1, 1])
    c = summarize(RunResult.concat([clock([0, 1], [3, 1], [2, 1, 1], 0.5), clock([2], [2], [1, 1], 0.25)]), labels)
    e = summarize(EventResult.concat([event([0, 1], [10, 20], 1.0), event([2], [5], 0.5)]), labels)
    assert COMMON <= c.keys() and COMMON <= e.keys()
    assert c["accuracy"] == e["accuracy"] == pytest.approx(2 / 3)
    assert c["mean_steps"] == 2 and c["max_steps"] == 3 and c["spikes_per_sample"] == {"lif1": 2.0}
    assert e["synops_per_sample"] == pytest.approx(35 / 3) and e["spikes_per_sample"] == {"lif1": 6.0}
    assert e["ms_per_sample"] == pytest.approx(500) and "mean_steps" not in e


class Halves:
    """A mode that records the batches it was asked for."""

    def __init__(self) -> None:
        self.asked: list[list[int]] = []
        self.checked: list[int] = []

    def check(self, ds: object, batch: int) -> None:
        self.checked.append(batch)

    def run(self, ds: object, idx: np.ndarray) -> EventResult:
        self.asked.append(idx.tolist())
        return event(idx.tolist(), list(idx), 0.0)


class FiveSamples:
    def __len__(self) -> int:
        return 5


def test_one_loop_batches_in_input_order():
    mode = Halves()
    r = run_batches(mode, FiveSamples(), batch_size=2)  # type: ignore[arg-type]
    assert mode.checked == [2] and mode.asked == [[0, 1], [2, 3], [4]]
    assert r.predictions.tolist() == [0, 1, 2, 3, 4]


def test_event_dataset_runs_load_no_onnxruntime():
    """The event engine and its data-set runner are numba and numpy: a Pi running only
    event-driven models does not pay for onnxruntime."""
    code = (
        "import sys\n"
        "from runtime.evaluate import summarize\n"
        "from runtime.event.evaluate import run_event_dataset\n"
        "from runtime.event.engine import load_event\n"
        "assert 'onnxruntime' not in sys.modules, 'onnxruntime loaded'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_results_of_runs_made_otherwise_are_refused_by_name():
    """A policy run's result (steps per stream) joined with a whole-stream one (no steps)
    ended in an AssertionError, or numpy's "zero-dimensional arrays" error the other way round."""
    whole, stopped = event([0, 1], [10, 20], 1.0), event([2], [5], 0.5)
    stopped.steps = np.array([3])
    for parts in ([whole, stopped], [stopped, whole]):
        with pytest.raises(ValueError, match="hold 'steps' in some parts and None in others"):
            EventResult.concat(parts)
    whole.steps = np.array([6, 6])
    assert EventResult.concat([whole, stopped]).steps.tolist() == [6, 6, 3]
