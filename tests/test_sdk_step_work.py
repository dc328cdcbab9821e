"""The SDK's per-step Python work is trimmed (the stepper reused across runs, no readout or
policy call before a policy may stop anything) without changing any result."""

from __future__ import annotations

import math

import numpy as np
import pytest

import runtime
from runtime.policies import Confidence, FixedT, first_exit
from tests.runtime_fixtures import save, tiny_model


class Recording:
    """A user policy without ``first_exit``: asked at every step, like before."""

    def __init__(self, inner):
        self.inner, self.asked = inner, []

    def horizon(self, default_T: int) -> int:
        return self.inner.horizon(default_T)

    def should_exit(self, t: int, logits: np.ndarray) -> np.ndarray:
        self.asked.append(t)
        return self.inner.should_exit(t, logits)


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 8, 8), dtype=np.float32) * 2


def _same(a, b) -> None:
    assert np.array_equal(a.outputs, b.outputs) and np.array_equal(a.steps, b.steps)
    assert np.array_equal(a.predictions, b.predictions) and a.batch_per_step == b.batch_per_step
    for k in a.spike_counts or {}:
        assert np.array_equal(a.spike_counts[k], b.spike_counts[k])


def test_first_exit_of_the_built_in_policies():
    assert first_exit(FixedT(7)) == 7
    assert first_exit(Confidence(0.9, tmin=3, tmax=9)) == 3
    assert first_exit(Recording(FixedT(7))) == 1  # unknown: asked from step 1


def test_reused_stepper_starts_from_zero_and_results_are_unchanged(tmp_path):
    """A session reuses its last stepper; every run must equal a fresh session's run, after
    runs of other batches, early exits (compacted stepper) and counts on or off."""
    path = save(tiny_model(), tmp_path / "m.onnx")
    warm = runtime.load(path)
    x, other = _images(6, 1), _images(3, 2)
    for policy in ("fixed:5", "confidence:0.6,tmin=2,tmax=6", "fixed:3"):
        for counts in (False, True):
            fresh = runtime.load(path).run(x, policy, counts=counts)
            warm.run(other, policy, counts=counts)  # another batch: another stepper
            first = warm.run(x, policy, counts=counts)
            again = warm.run(x, policy, counts=counts)  # the reused one
            _same(fresh, first)
            _same(fresh, again)


def test_a_policy_is_asked_only_from_its_first_exit(tmp_path):
    path = save(tiny_model(), tmp_path / "m.onnx")
    s = runtime.load(path)
    x = _images(4, 3)
    plain = Recording(Confidence(0.6, tmin=3, tmax=6))
    r_plain = s.run(x, plain)
    assert plain.asked[0] == 1  # no first_exit: asked at every step, as before

    class Tmin(Recording):
        def first_exit(self) -> int:
            return 3

    tmin = Tmin(Confidence(0.6, tmin=3, tmax=6))
    r_tmin = s.run(x, tmin)
    assert tmin.asked[0] == 3
    _same(r_plain, r_tmin)  # skipping the calls before tmin changes nothing


def test_finished_rows_left_in_the_batch_change_no_result(tmp_path, monkeypatch):
    """At batch 64 a finished sample's row stays until 1/8 of the rows are finished: every
    sample's outputs, steps and spike counts still equal its own batch-1 run, and the
    policy sees only the samples still running."""
    from runtime.split import SplitStepper

    path = save(tiny_model(classes=3), tmp_path / "m.onnx")
    s = runtime.load(path)
    x = np.random.default_rng(4).random((64, 1, 8, 8), dtype=np.float32) * 2
    compactions: list[int] = []
    keep = SplitStepper.keep
    monkeypatch.setattr(SplitStepper, "keep", lambda self, mask, ss: (compactions.append(1), keep(self, mask, ss))[1])
    seen: list[int] = []
    inner = Confidence(0.985, tmin=1, tmax=8)
    policy = Recording(inner)
    policy.should_exit = lambda t, logits: (seen.append(len(logits)), inner.should_exit(t, logits))[1]  # type: ignore[method-assign]
    r = s.run(x, policy, neuron_counts=True)
    assert s.backend == "numba" and seen == r.batch_per_step  # only the running samples are shown
    exit_steps = set(r.steps.tolist()) - {8}
    assert 0 < len(compactions) < len(exit_steps)  # some finished rows stayed in the batch
    for i in range(64):
        one = s.run(x[i : i + 1], inner, neuron_counts=True)
        assert np.array_equal(one.outputs[0], r.outputs[i]) and one.steps[0] == r.steps[i]
        for k in one.neuron_counts:
            assert np.array_equal(one.neuron_counts[k][0], r.neuron_counts[k][i])


def _scores_by_definition(row: list[float]) -> dict[str, float]:
    """The exit scores as runtime/policies.py defines them, in plain Python, by name: shift
    by the maximum, libm exp, the sum left to right."""
    m = max(row)
    e = [math.exp(v - m) for v in row]
    total = 0.0
    for v in e:
        total += v
    p = [v / total for v in e]
    h = 0.0
    for q in p:
        h -= q * math.log(max(q, 1e-300))
    top = sorted(p)
    return {
        "confidence": 1.0 / total,
        "entropy": h / math.log(len(row)) if len(row) > 1 else 0.0,
        "margin": top[-1] - top[-2] if len(row) > 1 else 1.0,
    }


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "python (no numba installed)"])
def test_exit_scores_follow_their_definition_bit_for_bit(compiled, monkeypatch):
    """The session's exits and calibrate-exit's replay share these compiled scores; they
    must be the definition's, bit for bit, for float32 and float64 readouts, and the
    confidence score is the largest probability. Without numba the same loop runs as
    Python (a Pi install may leave numba out; the policies needed it). Every name in
    SCORES needs its definition here: a score added without one fails, and one added
    without its branch in the loop raises (it ran the margin's, silently)."""
    from runtime import policies
    from runtime.policies import SCORES, max_softmax, normalized_entropy, top2_margin

    if compiled:
        import numba  # noqa: F401  (loaded, as the numba backend loads it: the scores run compiled)
    else:
        monkeypatch.setattr(policies, "compiled_scores", lambda: policies._scores)

    assert list(_scores_by_definition([0.0, 1.0])) == list(SCORES)
    rng = np.random.default_rng(0)
    cases = [rng.normal(0, s, (200, c)).astype(np.float32) for s in (0.01, 1.0, 30.0, 300.0) for c in (1, 2, 3, 10, 35)]
    cases.append(np.array([[1.0, 1.0, 1.0], [0.0, -np.inf, 0.0], [1e30, -1e30, 1e30]], np.float32))
    for z in cases:
        rows = [_scores_by_definition([float(v) for v in row]) for row in z]
        for logits in (z, z.astype(np.float64), z.astype(np.float64)[:, ::-1][:, ::-1]):
            for name in SCORES:
                assert np.array_equal(policies._score(logits, name), [r[name] for r in rows]), name
        e = np.exp(z.astype(np.float64) - z.max(axis=1, keepdims=True))
        assert np.allclose(max_softmax(z), (e / e.sum(axis=1, keepdims=True)).max(axis=1), rtol=1e-12, atol=0)
    # the named functions are those scores
    z = cases[3].astype(np.float64)
    for name, f in (("confidence", max_softmax), ("entropy", normalized_entropy), ("margin", top2_margin)):
        assert np.array_equal(f(z), policies._score(z, name))
    with pytest.raises(ValueError, match="exit score index has no branch"):
        policies.score_loop()(z, len(SCORES), np.empty(len(z)))
    assert max_softmax(np.zeros((0, 10))).shape == (0,)
    for bad in (np.zeros((2, 0)), np.zeros(10)):  # no class, no batch axis: refused, not read past
        with pytest.raises(ValueError, match="logits"):
            max_softmax(bad)


class ByHistory:
    """A user policy that keeps a list of the samples still running: it is shown them in
    sample order, so it stops sample i after (i * 7) % 5 + 1 steps by position alone."""

    def __init__(self, B: int):
        self.running = list(range(B))

    def horizon(self, default_T: int) -> int:
        return 6

    def should_exit(self, t: int, logits: np.ndarray) -> np.ndarray:
        assert len(logits) == len(self.running)
        done = np.array([(i * 7) % 5 + 1 <= t for i in self.running])
        self.running = [i for i, d in zip(self.running, done) if not d]
        return done


@pytest.mark.parametrize("backend", ["numba", "ort"])
def test_compaction_moves_few_rows_and_policies_see_samples_in_order(tmp_path, monkeypatch, backend):
    """Compacting at every exit moves the last running rows into finished rows' places (only
    those rows' states are copied); a policy still sees the running samples in sample
    order, and every sample's outputs and steps equal its own batch-1 run."""
    import runtime.engine as engine_module
    import runtime.session as session_module

    monkeypatch.setattr(session_module, "COMPACT_AT", 10**9)
    moved: list[int] = []
    keep = engine_module.RowBuffers.keep

    def counting_keep(self, order, runner):
        moved.append(int(np.count_nonzero(order != np.arange(len(order)))))
        keep(self, order, runner)

    monkeypatch.setattr(engine_module.RowBuffers, "keep", counting_keep)
    s = runtime.load(save(tiny_model(), tmp_path / "m.onnx"), backend=backend)
    x = _images(20, 9)
    r = s.run(x, ByHistory(20), neuron_counts=True)
    assert r.steps.tolist() == [(i * 7) % 5 + 1 for i in range(20)]
    assert len(moved) >= 3 and 0 < sum(moved) < sum(r.batch_per_step[1:])  # some rows moved, not all
    for i in range(20):
        one = s.run(x[i : i + 1], FixedT(int(r.steps[i])), neuron_counts=True)
        assert np.array_equal(one.outputs[0], r.outputs[i])
        for k in one.neuron_counts:
            assert np.array_equal(one.neuron_counts[k][0], r.neuron_counts[k][i])
