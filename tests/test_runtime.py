"""Clock-driven runtime and SDK on hand-built protocol models (no torch, no exporter)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

import runtime
from runtime import cost
from runtime.data import bin_events, load_dataset, make_events
from runtime.errors import InputError, UnseenEventsWarning
from runtime.neuron import NeuronSpec
from runtime.policies import Cascade, Confidence, Entropy, FixedT, PolicyError, parse_policy
from runtime.protocol import ModelError
from runtime.reference import Reference
from tests.runtime_fixtures import save, tiny_model

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [
    {},
    {"li": True},
    {"readout": "count"},
    {"kind": "event-frames"},
    {"uses_t": True},
    {"spec": NeuronSpec("IF", 1.0, 1.0, "zero", "multi", -1.0, 1.0)},
    {"spec": NeuronSpec("LIF", 0.7, 0.5, "subtract", "multi", -math.inf, 1.0)},
]


@pytest.fixture
def model_path(tmp_path):
    return save(tiny_model(), tmp_path / "m.onnx")


def images(n: int, seed: int = 1, shape=(1, 8, 8)) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32) * 2


def frames_for(session, T: int, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (T, n, *session.protocol.input_shape)
    if session.protocol.input_kind == "repeat":
        return rng.random(shape, dtype=np.float32) * 2
    return rng.poisson(0.3, shape).astype(np.float32)


# ---- numerics ----------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) or "lif")
def test_onnxruntime_matches_numpy_reference(tmp_path, variant):
    s = runtime.load(save(tiny_model(**variant), tmp_path / "m.onnx"))
    x = frames_for(s, 5, 6)
    ys, spikes = Reference(s.model, s.protocol).run(x)
    r = s.run(x)
    rule = s.protocol.readout
    want = ys.mean(0) if rule == "mean" else ys[-1] if rule == "last" else ys.sum(0)
    np.testing.assert_allclose(r.outputs, want, rtol=1e-5, atol=1e-5)
    assert r.steps.tolist() == [5] * 6
    for node, total in spikes.items():
        np.testing.assert_array_equal(r.spike_counts[node], total)
    s.reset()  # the streaming path gives the same readout at every step
    for t in range(5):
        y = s.step(x[t])
    np.testing.assert_allclose(y, r.outputs, rtol=1e-6, atol=1e-6)


def test_static_input_is_repeated_and_any_T_runs(model_path):
    s = runtime.load(model_path)
    x = images(4)
    for T in (1, 3, 9):  # 9 > the trained T of 4
        a = s.run(x, f"fixed:{T}")
        b = s.run(np.broadcast_to(x, (T, *x.shape)).copy(), T)
        np.testing.assert_array_equal(a.outputs, b.outputs)
        assert a.steps.tolist() == [T] * 4 and a.batch_per_step == [4] * T


def test_event_streams_are_binned_as_trained(tmp_path):
    s = runtime.load(save(tiny_model(kind="event-frames"), tmp_path / "e.onnx"))
    rng = np.random.default_rng(0)
    streams = [
        make_events(
            rng.integers(0, 20, 300), rng.integers(0, 20, 300), rng.integers(0, 2, 300), rng.integers(0, 300_000, 300)
        )
        for _ in range(3)
    ]
    r = s.run(streams, "fixed:4")
    frames = bin_events(streams, 4, (2, 20, 20), "equal", durations_us=[300_000.0] * 3)
    np.testing.assert_array_equal(r.outputs, s.run(frames).outputs)
    r = s.run(streams, "fixed:2", binning="fixed")  # bins of the metadata's dt_us = 75 ms
    frames = bin_events(streams, 2, (2, 20, 20), "fixed", dt_us=75_000.0)
    np.testing.assert_array_equal(r.outputs, s.run(frames).outputs)


# ---- early exit ----------------------------------------------------------------------------
def test_exited_samples_leave_the_batch_and_keep_their_answer(tmp_path):
    s = runtime.load(save(tiny_model(li=True), tmp_path / "m.onnx"))
    x = images(16, seed=3) * 0.15  # weak inputs: the fixture is unsure, exits spread out
    r = s.run(x, "confidence:0.9,tmin=2,tmax=8")
    assert r.steps.min() >= 2 and r.steps.max() <= 8
    assert len(set(r.steps.tolist())) > 1, "fixture should make some samples exit early"
    # the batch really shrinks: at each step only the samples still running are stepped
    assert r.batch_per_step == [int((r.steps > t).sum()) for t in range(r.steps.max())]
    assert r.batch_per_step[-1] < r.batch_per_step[0]
    # a sample's output is exactly what a fixed run of its own length gives
    for k in set(r.steps.tolist()):
        sel = r.steps == k
        np.testing.assert_allclose(r.outputs[sel], s.run(x[sel], k).outputs, rtol=1e-6, atol=1e-6)
    # cost follows the steps: fewer steps -> fewer MACs for the dense first layer
    conv = s.synapse_layers()[0]
    np.testing.assert_allclose(r.cost.macs, conv.macs * r.steps)


def test_entropy_policy_and_user_policy(model_path):
    s = runtime.load(model_path)
    x = images(8)
    r = s.run(x, Entropy(0.99, tmin=1, tmax=5))
    assert set(r.steps.tolist()) <= set(range(1, 6))

    class EveryOtherSample:  # a user policy: only horizon() and should_exit(); it sees
        # the samples still running, so after step 1 "every other" is 1, 5 of 1, 3, 5, 7
        def horizon(self, default_T):
            return 3

        def should_exit(self, t, logits):
            return np.arange(len(logits)) % 2 == 0

    r = s.run(x, EveryOtherSample())
    assert r.steps.tolist() == [1, 2, 1, 3] * 2
    assert r.batch_per_step == [8, 4, 2]


def test_policy_strings():
    assert parse_policy("fixed:6") == FixedT(6)
    assert parse_policy("confidence:0.9") == Confidence(0.9, 1, None)
    assert parse_policy("confidence:0.9,tmin=2,tmax=10") == Confidence(0.9, 2, 10)
    assert parse_policy("entropy:0.3,tmax=5") == Entropy(0.3, 1, 5)
    for bad in (
        "nope",
        "fixed",
        "fixed:0",
        "fixed:x",
        "confidence:1.5",
        "confidence:0.9,tmin=5,tmax=2",
        "confidence:0.9,foo=1",
        "confidence:0.9,tmin=2,tmin=3",  # the last one won
        "entropy:high",
    ):
        with pytest.raises(PolicyError, match="fixed:T"):
            parse_policy(bad)


@pytest.mark.parametrize(
    "make, match",
    [
        # a threshold read from a config file as text: was TypeError "'<=' not supported"
        (lambda: Confidence("0.9"), r"confidence threshold must be in \[0, 1\], got '0.9' \(str\)"),
        (lambda: Entropy(True), r"got True \(bool\)"),
        (lambda: FixedT(True), r"fixed T must be a positive integer, got True \(bool\)"),  # was accepted: T=True
        (lambda: FixedT(4.0), "fixed T must be a positive integer, got 4.0"),
        (lambda: Confidence(0.9, tmin=2.0), "tmin must be a positive integer, got 2.0"),
        (lambda: Cascade("confidence:0.9", (2, 4)), r"a cascade's rule is one of .* got 'confidence:0.9' \(str\)"),
        (lambda: Cascade(Confidence(0.9), 4), r"a cascade's T is a tuple .* got 4$"),  # was a TypeError
        (lambda: Cascade(Confidence(0.9), "2+4"), r"got '2\+4' \(str\)"),  # was "got 2+++4"
    ],
)
def test_policy_objects_refuse_values_of_the_wrong_type(make, match):
    with pytest.raises(PolicyError, match=match):
        make()


def test_policy_objects_take_numpy_numbers_as_plain_ones():
    """An argmax's np.int64 was "not a positive integer" (FixedT(np.int64(3)) refused)."""
    assert FixedT(np.int64(3)) == FixedT(3) and type(FixedT(np.int64(3)).T) is int
    c = Confidence(np.float64(0.5), np.int64(2), np.int32(6))
    assert c == Confidence(0.5, 2, 6) and str(c) == "confidence:0.5,tmin=2,tmax=6"
    assert Cascade(Confidence(0.9), [2, 4]).T == (2, 4)  # a list: hashable as parsed
    assert Cascade(Confidence(0.9), np.array([2, 4])).T == Cascade(Confidence(0.9), range(2, 5, 2)).T == (2, 4)
    assert hash(Cascade(Confidence(0.9), [2, 4])) == hash(parse_policy("cascade:confidence:0.9,T=2+4"))


# ---- cost -------------------------------------------------------------------------------
def test_cost_accounting(tmp_path):
    s = runtime.load(save(tiny_model(classes=3), tmp_path / "m.onnx"))
    conv, fc = s.synapse_layers()
    assert (conv.source, conv.macs) == (None, 4 * 8 * 8 * 9)  # dense: image input
    assert (fc.source, fc.macs) == ("LIF_0", 3 * 4 * 4 * 4)  # accumulates, by spike rate
    r = s.run(images(5), 3)
    np.testing.assert_allclose(r.cost.macs, conv.macs * 3)
    np.testing.assert_allclose(r.cost.acs, fc.macs / (4 * 8 * 8) * r.spike_counts["LIF_0"])
    np.testing.assert_allclose(r.cost.energy_pj, 4.6 * r.cost.macs + 0.9 * r.cost.acs)
    e = runtime.load(save(tiny_model(kind="event-frames", classes=3), tmp_path / "e.onnx"))
    assert e.synapse_layers()[0].source == cost.INPUT  # event input: accumulates per event
    x = frames_for(e, 2, 3)
    r = e.run(x)
    want = e.synapse_layers()[0].macs / (2 * 20 * 20) * x.sum((0, 2, 3, 4))
    want += e.synapse_layers()[1].macs / (4 * 20 * 20) * r.spike_counts["LIF_0"]
    np.testing.assert_allclose(r.cost.acs, want)
    assert (r.cost.macs == 0).all()


# ---- bad input ---------------------------------------------------------------------------
def test_bad_inputs_name_what_was_expected(model_path):
    for threads in (-1, 1.5, "2"):  # was accepted, and handed to onnxruntime
        with pytest.raises(InputError, match="threads must be None"):
            runtime.load(model_path, threads=threads)
    s = runtime.load(model_path)
    with pytest.raises(InputError, match=r"expected static images \[B, 1, 8, 8\]"):
        s.run(np.zeros((2, 1, 9, 9), np.float32))
    with pytest.raises(InputError, match="expected float32"):
        s.run(np.zeros((2, 1, 8, 8), np.float64))
    for v in (np.nan, np.inf):
        x = images(2)
        x[1, 0, 3, 3] = v
        with pytest.raises(InputError, match="NaN or infinite"):
            s.run(x)
    with pytest.raises(InputError, match="only 2 frames"):
        s.run(np.zeros((2, 1, 1, 8, 8), np.float32), "fixed:3")
    with pytest.raises(InputError, match="expected a numpy array"):
        s.run([[1.0]])
    with pytest.raises(PolicyError, match="expected one of"):
        s.run(images(2), "fast")
    with pytest.raises(InputError, match=r"step input has shape \[2, 1, 9, 9\]; expected one step \[B, 1, 8, 8\]$"):
        s.step(np.zeros((2, 1, 9, 9), np.float32))  # one step's form, not a whole run's
    s.step(images(2))
    with pytest.raises(InputError, match="batch 3"):
        s.step(images(3))


def test_sdk_inputs_a_stranger_gave_get_the_right_diagnosis(tmp_path, model_path, monkeypatch):
    """From an SDK tour: a torch tensor to feed/step was blamed on its (right) shape; a numpy
    integer batch was refused; one stream to run() read "input has shape [n]"; frames(T=0)
    was numpy's ValueError; a batch of 10**8 streams or of 100000 images allocated unchecked
    (numpy's MemoryError, or gigabytes past FLEXSNN_MAX_MEMORY)."""
    from runtime.data import load_dataset
    from runtime.limits import ResourceError

    s = runtime.load(model_path)  # static images, 1x8x8
    state = s.initial_state(np.int64(2))
    assert state.batch == 2
    tensor = r"step input is a Tensor; expected a numpy array, one step \[B, 1, 8, 8\]$"

    class Tensor:  # a torch tensor's look (the runtime-only venv has no torch): the right shape
        shape = (2, 1, 8, 8)
        ndim = 4

    for call in (lambda x: s.feed(state, x), s.step):
        with pytest.raises(InputError, match=tensor):
            call(Tensor())
    for bad in (True, 0, 2.0):
        with pytest.raises(InputError, match="batch must be a positive integer"):
            s.initial_state(bad)
    monkeypatch.setenv("FLEXSNN_MAX_MEMORY", "1M")
    with pytest.raises(ResourceError, match="a stream of batch 100000000 needs about"):
        s.initial_state(10**8)
    with pytest.raises(ResourceError, match="a batch of 20000 images needs about"):
        s.run(np.zeros((20000, 1, 8, 8), np.float32))
    monkeypatch.delenv("FLEXSNN_MAX_MEMORY")
    e = runtime.load(save(tiny_model(kind="event-frames"), tmp_path / "e.onnx"))
    stream = load_dataset("digits", "test", 1).events[0]
    one = r"one event stream of \d+ events; expected a list of streams: run\(\[stream\]\)"
    with pytest.raises(InputError, match=one):
        e.run(stream)
    for T in (0, -1, 2.5):
        with pytest.raises(InputError, match="T must be a positive integer number of frames"):
            e.frames([stream], T)


def test_event_model_refuses_static_images(tmp_path):
    s = runtime.load(save(tiny_model(kind="event-frames"), tmp_path / "e.onnx"))
    with pytest.raises(InputError, match=r"event frames \[T, B, 2, 20, 20\]"):
        s.run(np.zeros((2, 2, 20, 20), np.float32))


def _strip_metadata(m: onnx.ModelProto) -> onnx.ModelProto:
    del m.metadata_props[:]
    return m


def _set_meta(m: onnx.ModelProto, **changes) -> onnx.ModelProto:
    meta = json.loads(m.metadata_props[0].value)
    meta.update(changes)
    m.metadata_props[0].value = json.dumps(meta)
    return m


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"\x08\x07garbage" * 50), "not a readable ONNX file"),
        (lambda p: p.write_bytes(Path(p.parent / "good.onnx").read_bytes()[:300]), "corrupted"),
        (lambda p: save(_strip_metadata(tiny_model()), p), "without 'flexsnn.protocol' metadata"),
        (
            lambda p: save(_set_meta(tiny_model(), format="flexsnn-onnx/9"), p),
            "model protocol is 'flexsnn-onnx/9'; this runtime reads",
        ),
        (lambda p: save(_set_meta(tiny_model(), readout="median"), p), "expected one of \\['mean', 'last', 'count'\\]"),
        (lambda p: save(_set_meta(tiny_model(), uses_t=True), p), "graph inputs are"),
        (
            lambda p: save(_set_meta(tiny_model(), bn_calibration_T=0), p),
            "'bn_calibration_T' must be a positive integer or absent, got 0",
        ),
        # more epochs done than planned, a count of 0 epochs, a bare number
        (lambda p: save(_set_meta(tiny_model(), unfinished={"epochs_done": 3, "epochs": 2}), p), "with 0 <= k <= n"),
        (lambda p: save(_set_meta(tiny_model(), unfinished={"epochs_done": 0, "epochs": 0}), p), "with 0 <= k <= n"),
        (lambda p: save(_set_meta(tiny_model(), unfinished=3), p), "'unfinished' must be absent or an object"),
        (lambda p: None, "does not exist"),
    ],
)
def test_bad_model_files(tmp_path, make, message):
    save(tiny_model(), tmp_path / "good.onnx")
    p = tmp_path / "bad.onnx"
    make(p)
    with pytest.raises(ModelError, match=message):
        runtime.load(p)


def test_missing_function_body_is_refused(tmp_path):
    m = tiny_model()
    del m.functions[:]
    with pytest.raises(ModelError, match="no function body"):
        runtime.load(save(m, tmp_path / "m.onnx"))


def _with_attribute(m: onnx.ModelProto, name: str, value: object) -> onnx.ModelProto:
    (node,) = [n for n in m.graph.node if n.domain == "snn"]
    (attr,) = [a for a in node.attribute if a.name == name]
    node.attribute.remove(attr)
    node.attribute.append(onnx.helper.make_attribute(name, value))
    return m


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("v_th", 0.25, r"has v_th 0.25 in the graph but 1.0 in the metadata"),
        ("decay", 0.9, r"has decay 0.8999999761581421 in the graph but 0.5 in the metadata"),
        ("v_th", float("nan"), r"its attributes: v_th must be a finite number > 0, got nan"),
        ("spike", "multi", r"has spike 'multi' in the graph but 'single' in the metadata"),
    ],
)
def test_a_node_whose_attributes_are_not_its_metadata_is_refused(tmp_path, name, value, message):
    """A stranger set a node's v_th (digest re-stamped, as any writer of the format does):
    onnxruntime ran the node and numba, exact and the event engine the metadata, so the
    backends gave other spikes (accuracy 0.375 vs 0.25), exit 0."""
    with pytest.raises(ModelError, match=message):
        runtime.load(save(_with_attribute(tiny_model(), name, value), tmp_path / "m.onnx"))
    m = tiny_model()
    (node,) = [n for n in m.graph.node if n.domain == "snn"]
    node.overload = "multi_subtract"  # the attributes agree, the body called is another variant's
    with pytest.raises(ModelError, match=r"calls the function body 'multi_subtract', but its neuron runs"):
        runtime.load(save(m, tmp_path / "m.onnx"))


# ---- CLI ---------------------------------------------------------------------------------
def _cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime", *args], cwd=ROOT, capture_output=True, text=True, env=env)


def test_cli_run_json_matches_sdk(model_path):
    p = _cli(
        "run",
        model_path,
        "--data",
        "digits:static",
        "--limit",
        "30",
        "--policy",
        "confidence:0.7,tmax=5",
        "--batch-size",
        "8",
        "--json",
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    ds = load_dataset("digits:static", "test", 30)
    r = runtime.load(model_path).run(ds.images, "confidence:0.7,tmax=5")
    assert out["n"] == 30
    assert out["accuracy"] == pytest.approx(float((r.predictions == ds.labels).mean()))
    assert out["mean_steps"] == pytest.approx(r.mean_steps)
    assert {"energy_uj", "macs", "acs", "p90_steps", "ms_per_sample"} <= set(out)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--policy", "sometimes"], "policy 'sometimes' is unknown; expected one of"),
        (["--data", "cifar"], "unknown data spec 'cifar'"),
        # another kind of data (and shape): the kind is named, the deeper mismatch
        (["--data", "digits"], "data 'digits' holds event streams, but {m} was trained on static images"),
    ],
)
def test_cli_errors_are_one_line(model_path, args, message):
    base = ["run", model_path, "--data", "digits:static", "--limit", "5"]
    p = _cli(*base, *args)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith("error: ") and message.format(m=model_path) in p.stderr and p.stderr.count("\n") == 1


def test_cli_refuses_foreign_and_corrupted_files(tmp_path):
    foreign = save(_strip_metadata(tiny_model()), tmp_path / "f.onnx")
    junk = tmp_path / "j.onnx"
    junk.write_bytes(b"\xff" * 64)
    for path, message in ((foreign, "without 'flexsnn.protocol' metadata"), (junk, "not a readable ONNX")):
        p = _cli("bench", str(path), "--batch-size", "1")
        assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr


def test_tradeoff_and_bench_commands(model_path, tmp_path):
    png = tmp_path / "t.png"
    p = _cli(
        "tradeoff",
        model_path,
        "--data",
        "digits:static",
        "--limit",
        "20",
        "--thresholds",
        "0.5",
        "0.9",
        "--tmax",
        "4",
        "--plot",
        str(png),
        "--json",
    )
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)["rows"]
    assert [r["policy"] for r in rows] == ["confidence:0.5,tmin=1,tmax=4", "confidence:0.9,tmin=1,tmax=4", "fixed:4"]
    assert rows[0]["mean_steps"] <= rows[1]["mean_steps"] <= rows[2]["mean_steps"] == 4
    assert png.stat().st_size > 1000
    p = _cli("bench", model_path, "--batch-size", "1", "4", "--T", "3", "--repeats", "1", "--json")
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    rows = got["rows"]
    assert [(r["batch"], r["threads"]) for r in rows] == [(1, 1), (4, 2)]  # 2: this test's cores, see conftest
    assert got["versions"]["onnxruntime"] and "cpu" in got["versions"]  # what a rerun must match
    for r in rows:  # both runtime systems, min <= median, each as a percentage of the measured limit
        assert [s["system"] for s in r["systems"]] == ["runtime stepper", "runtime SDK", "runtime stepper, ort bodies"]
        assert r["gemm_limit_ms_cpu"] > 0 and r["gemm_limit_ms_wall"] > 0
        for s in r["systems"]:
            assert 0 < s["wall_ms_min"] <= s["wall_ms_median"] and 0 < s["cpu_ms_min"] <= s["cpu_ms_median"]
            # of the fastest run; no bound on it: a system can beat numpy's matmul (it did,
            # 100.0%, under qemu in the aarch64 check), which is a finding, not a fault
            assert s["pct_of_gemm_limit_cpu"] == pytest.approx(100 * r["gemm_limit_ms_cpu"] / s["cpu_ms_min"])
            assert s["pct_of_gemm_limit_wall"] == pytest.approx(100 * r["gemm_limit_ms_wall"] / s["wall_ms_min"])
    p = _cli("bench", model_path, "--no-compile")  # compiles nothing without --checkpoint: was accepted
    assert p.returncode == 2 and "only --checkpoint reads --no-compile" in p.stderr


# ---- torch-free ----------------------------------------------------------------------------
BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, Block())
"""


def test_runtime_runs_without_torch(model_path, tmp_path):
    code = (
        BLOCK_TORCH
        + f"""
import numpy as np, runtime, runtime.cli, runtime.bench, runtime.evaluate, runtime.reference
s = runtime.load({model_path!r})
r = s.run(np.ones((2, 1, 8, 8), np.float32), "confidence:0.8,tmax=4")
print(r.steps.tolist(), r.cost.mean()["energy_uj"] > 0)
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
"""
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    # the CLI too, bench included (it times torch only when asked and available)
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCK_TORCH + "import runtime.cli as c; c.main()",
            "bench",
            model_path,
            "--batch-size",
            "1",
            "--T",
            "2",
            "--repeats",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert "runtime stepper" in p.stdout and "runtime SDK" in p.stdout and "torch model.step" not in p.stdout


def test_streaming_past_the_trained_range_warns_once(model_path):
    """run() warned of a T outside the trained range; a stream fed step by step did not."""
    import warnings

    from runtime.errors import TrainedRangeWarning

    s = runtime.load(model_path)
    hi = s.protocol.T_range[1]
    state, x = s.initial_state(1), images(1)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(hi + 3):
            state, _ = s.feed(state, x)
    ranged = [w for w in seen if issubclass(w.category, TrainedRangeWarning)]
    assert [str(w.message) for w in ranged] == [f"this run uses T={hi + 1}, outside the trained range T in [1, {hi}]"]


def test_feed_with_explicit_states_equals_step_and_run(model_path):
    """Two streams fed alternately through explicit states give what run() gives for
    each, and step() (the session's own stream) gives the same readout."""
    s = runtime.load(model_path)
    x = images(2)
    frames = np.stack([x * (t + 1) / 4 for t in range(4)]).astype(np.float32)
    a, b = s.initial_state(2), s.initial_state(2)
    own = []  # each step's own output, collected as docs/sdk.md shows (a.y was one buffer)
    for t in range(4):
        a, logits_a = s.feed(a, frames[t])
        b, logits_b = s.feed(b, frames[3 - t])
        own.append(a.y)
        assert a.t == b.t == t + 1 and a.y.shape == (2, s.protocol.num_classes)
        np.testing.assert_array_equal(s.step(frames[t]), logits_a)
    assert s.protocol.readout == "mean"
    np.testing.assert_allclose(np.mean(own, axis=0), logits_a, rtol=1e-6)
    np.testing.assert_allclose(logits_a, s.run(frames, 4).outputs, rtol=1e-6)
    np.testing.assert_allclose(logits_b, s.run(frames[::-1].copy(), 4).outputs, rtol=1e-6)
    with pytest.raises(InputError, match="batch"):
        s.feed(a, frames[0][:1])
    # a state is its session's: another session's ran that session's model (or failed in numpy)
    other = runtime.load(model_path)
    with pytest.raises(InputError, match="made by another session"):
        other.feed(a, frames[0])
    with pytest.raises(InputError, match="state is of type NoneType; expected a ClockState"):
        s.feed(None, frames[0])


@pytest.mark.parametrize("backend", ["ort", "numba"])
@pytest.mark.parametrize("how", ["copy_state", "copy", "deepcopy"])
def test_a_copied_stream_runs_apart_from_its_original(model_path, backend, how):
    """A branch of a stream (what-if inputs, a snapshot): copy.copy shared the stepper's
    buffers, so feeding the copy moved the original (silently wrong), and deepcopy failed
    on the onnxruntime session."""
    import copy

    s = runtime.load(model_path, threads=1, backend=backend)
    x = frames_for(s, 6, 4)
    st = s.initial_state(2)
    for t in range(3):
        st, _ = s.feed(st, x[t, :2])
    branch = {"copy_state": s.copy_state, "copy": copy.copy, "deepcopy": copy.deepcopy}[how](st)
    assert branch.t == 3 and branch.session is s
    np.testing.assert_array_equal(branch.y, st.y)
    for t in range(3, 6):  # the original goes on with its own inputs, the branch with others
        st, mine = s.feed(st, x[t, :2])
        branch, theirs = s.feed(branch, x[t, 2:])
    np.testing.assert_allclose(mine, s.run(x[:, :2].copy(), 6).outputs, rtol=1e-6)
    other = np.concatenate([x[:3, :2], x[3:, 2:]])
    np.testing.assert_allclose(theirs, s.run(other, 6).outputs, rtol=1e-6)
    assert not np.allclose(mine, theirs)  # the two inputs differ enough to tell them apart
    with pytest.raises(InputError, match="made by another session"):
        runtime.load(model_path).copy_state(st)


def test_a_session_pickles_for_worker_processes_and_a_stream_says_why_it_does_not(model_path):
    """A Session sent to a spawn pool failed with "Can't pickle local object
    'kernel.<locals>.<lambda>'"; a stream's buffers belong to its process."""
    import pickle

    s = runtime.load(model_path, threads=1, backend="numba")
    x = frames_for(s, 4, 3)
    twin = pickle.loads(pickle.dumps(s))
    assert (twin.backend, twin.path, twin.threads) == ("numba", s.path, 1)
    np.testing.assert_array_equal(twin.run(x).outputs, s.run(x).outputs)
    with pytest.raises(TypeError, match="a ClockState does not pickle"):
        pickle.dumps(s.initial_state(1))


def test_a_list_that_is_not_of_event_streams_names_the_item(tmp_path):
    """s.run([np.arange(10)]) said "input is a list; expected a numpy array (... or a list of
    event streams)": it was a list."""
    s = runtime.load(save(tiny_model(kind="event-frames"), tmp_path / "e.onnx"))
    good = make_events([1], [1], [0], [5])
    with pytest.raises(InputError, match=r"input item 1 of the list is not an event stream \(got int64\)"):
        s.run([good, np.arange(10)])


def test_streams_past_the_models_span_and_dt_without_fixed_bins_are_refused(tmp_path):
    """Equal binning spans the model's [0, duration): a stream after it fell in no bin and
    the run answered from zeros (the event engine ran it); dt_us was ignored unless
    binning='fixed'. Both are InputErrors now; a stream inside the span still runs."""
    s = runtime.load(save(tiny_model(kind="event-frames"), tmp_path / "e.onnx"))
    inside = make_events([1, 2, 3], [1, 2, 3], [0, 1, 0], [10, 150_000, 299_999])
    s.run([inside])
    late = make_events([1, 2], [1, 2], [0, 1], [10, 300_000])
    with pytest.raises(InputError, match=r"event stream 1 has 1 of 2 events at t >= 300000 µs"):
        s.run([inside, late])
    with pytest.raises(InputError, match="dt_us sets fixed bins; pass binning='fixed'"):
        s.run([inside], dt_us=1000.0)
    with pytest.warns(UnseenEventsWarning, match="1 of 2 events"):  # fixed bins from 0: what it asks for,
        s.run([late], binning="fixed", dt_us=1000.0)  # its event at 300 ms after the last of 4 bins said


def test_a_users_exit_policy_that_answers_wrongly_is_a_policy_error(model_path):
    """docs/sdk.md: bad input raises a named error; a policy's answers were used unchecked
    (an IndexError or a TypeError from numpy)."""

    class Policy:
        def __init__(self, horizon, answer):
            self.horizon_value, self.answer = horizon, answer

        def horizon(self, default_T):
            return self.horizon_value

        def should_exit(self, t, logits):
            return self.answer(logits)

    s = runtime.load(model_path)
    x = images(3)
    with pytest.raises(PolicyError, match=r"should_exit returned shape \[1\]; expected one bool per sample"):
        s.run(x, Policy(3, lambda z: np.ones(1, bool)))
    with pytest.raises(PolicyError, match=r"should_exit returned shape \[\]"):
        s.run(x, Policy(3, lambda z: True))
    for bad in (3.5, 0, True):
        with pytest.raises(PolicyError, match="horizon returned"):
            s.run(x, Policy(bad, lambda z: np.ones(len(z), bool)))
    # scores, not decisions: read as truth values every nonzero score stopped its sample at t=1
    for scores in (lambda z: z.max(1), lambda z: (z.max(1) > 0).astype(int)):
        with pytest.raises(PolicyError, match=r"should_exit returned dtype (float64|int64); expected bool"):
            s.run(x, Policy(3, scores))
    r = s.run(x, Policy(2, lambda z: np.zeros(len(z), bool)))  # a good one runs to its horizon
    assert list(r.steps) == [2, 2, 2]
    r = s.run(x, Policy(2, lambda z: [False] * len(z)))  # a list of bools is one bool per sample
    assert list(r.steps) == [2, 2, 2]


def test_frames_past_the_policys_horizon_warn_that_they_are_never_seen(model_path):
    """Frames [F, B, ...] under a policy of at most T < F steps ran the first T frames, unsaid
    (a recording binned into F frames lost its end)."""
    import warnings

    from runtime.errors import UnusedFramesWarning

    s = runtime.load(model_path)
    frames = np.stack([images(2)] * 4)  # the model's trained T is 4
    with pytest.warns(UnusedFramesWarning, match=r"4 frames but the policy runs at most 3 steps: frames 4\.\.4"):
        r = s.run(frames, "fixed:3")
    assert list(r.steps) == [3, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.run(frames)  # every frame: no warning
        s.run(frames, "confidence:0.5,tmax=4")  # may exit early, but may see every frame


def test_events_after_the_last_fixed_bin_warn_that_they_are_never_seen(tmp_path):
    """binning='fixed' sees the first T x dt µs: a stream starting 200 ms late ran on a third
    of its events, and the equal-binning error suggested exactly that, unwarned."""
    import warnings

    from runtime.data import load_dataset

    s = runtime.load(save(tiny_model(kind="event-frames"), tmp_path / "e.onnx"))
    ev = load_dataset("digits", "test", limit=2).events[0]
    end = s.protocol.duration_us
    dt = end / s.protocol.T_trained  # bins that cover the recording length
    late = ev.copy()
    late["t"] += int(end // 2)
    n = int((late["t"] >= end).sum())
    assert 0 < n < len(ev)
    with pytest.warns(UnseenEventsWarning, match=rf"^{n} of {len(ev)} events .* lie at t >= {end:g} µs"):
        s.run([late], binning="fixed", dt_us=dt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.run([ev], binning="fixed", dt_us=dt)  # every event inside the bins: no warning
    with pytest.raises(InputError, match="sees the first T x dt"):  # equal binning refuses, never cuts
        s.run([late])


def test_a_data_set_run_with_fixed_bins_says_what_it_did_not_see(tmp_path):
    """`runtime run --binning fixed` dropped the events after the last bin without a word
    (a stranger's recordings: 12 events in 3), where Session.run warns: the data-set runs
    warn by the same rule, the CLI as a `warning:` line and in --json."""
    from runtime.data.datasets import load_dataset as load
    from runtime.evaluate import run_dataset

    model = save(tiny_model(kind="event-frames"), tmp_path / "e.onnx")  # 4 bins of 75 ms
    spec = f"tonic:tests.tonic_fixtures.LongRecordings:{tmp_path}"  # 200 to 600 ms long
    ds = load(spec, "test")
    end = 300_000
    n, total = sum(int((e["t"] >= end).sum()) for e in ds.events), sum(len(e) for e in ds.events)
    assert 0 < n < total
    with pytest.warns(UnseenEventsWarning, match=rf"^{n} of {total} events .* lie at t >= {end} µs, after 4 fixed"):
        run_dataset(runtime.load(model), ds, binning="fixed")
    p = _cli("run", model, "--data", spec, "--binning", "fixed", "--json")
    assert p.returncode == 0, p.stderr
    assert p.stderr.startswith(f"warning: {n} of {total} events") and "Warning:" not in p.stderr
    assert json.loads(p.stdout)["warnings"][0].startswith(f"{n} of {total} events")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_dataset(runtime.load(model), ds)  # equal bins see every event: no warning
    # batches smaller than the split, a warm-up batch, several policies and horizons: one line,
    # for the whole split (a tradeoff printed the warm-up batch's figures beside the split's,
    # calibrate-exit one raw warning per batch)
    p = _cli(
        "tradeoff", model, "--data", spec, "--binning", "fixed", "--batch-size", "4", "--thresholds", "0.9", "--json"
    )
    assert p.returncode == 0, p.stderr
    assert [w for w in json.loads(p.stdout)["warnings"] if "fixed bins" in w] == [
        f"{n} of {total} events ({n / total:.0%}) in 17 of 20 stream(s) lie at t >= {end} µs, after 4 fixed bins of "
        "75000 µs (the trained T, or the run's if longer): no run of that many steps sees them (shift the streams to "
        "start at 0, larger bins, or equal binning to spread each recording over the steps)"
    ]
    from runtime.exit_calibration import step_readouts

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step_readouts(runtime.load(model), ds, 4, batch_size=4, binning="fixed")
    assert len(caught) == 1 and str(caught[0].message).startswith(f"{n} of {total} events (22%) in 17 of 20")


def test_calibrate_exit_says_missed_events_once_per_split(tmp_path):
    """Each horizon above the trained T missed fewer events, and each said so: with --tmax 8
    four lines for the validation split alone (about 60 with --tmax 64). Bins to 450 ms here:
    both splits have recordings beyond."""
    from runtime.protocol import METADATA_KEY

    model = tiny_model(kind="event-frames")  # trained T 4, bins of 75 ms
    props = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(props[METADATA_KEY])
    meta["input"]["binning"] = "fixed"  # as a model trained with --binning fixed stores it
    onnx.helper.set_model_props(model, {**props, METADATA_KEY: json.dumps(meta)})
    path = save(model, tmp_path / "f.onnx")
    spec = f"tonic:tests.tonic_fixtures.LongRecordings:{tmp_path}"  # 200 to 600 ms long
    p = _cli("calibrate-exit", path, "--data", spec, "--out", str(tmp_path / "x.onnx"), "--tmax", "6", "--json")
    assert p.returncode == 0, p.stderr
    said = [w for w in json.loads(p.stdout)["warnings"] if "fixed bins" in w]
    assert [w.split(":")[0] for w in said] == ["validation split", "test split"], said
    assert all("after 6 fixed bins" in w for w in said), said  # the longest run's


def test_tradeoff_sweeps_each_rule_and_says_when_none_ended_a_run(model_path):
    """tradeoff swept confidence only (the plot too); and with 11 classes a model's top
    probability stayed about 0.1, below every default threshold: every row was fixed T,
    unexplained."""
    p = _cli(
        "tradeoff", model_path, "--data", "digits:static", "--limit", "8", "--thresholds", "1.0", "0.0",
        "--rules", "margin", "entropy", "--json",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    policies = [r["policy"] for r in out["rows"]]
    assert policies == [
        "margin:1.0,tmin=1,tmax=4", "margin:0.0,tmin=1,tmax=4", "entropy:1.0,tmin=1,tmax=4",
        "entropy:0.0,tmin=1,tmax=4", "fixed:4",
    ]  # fmt: skip
    steps = {r["policy"].split(",")[0]: r["mean_steps"] for r in out["rows"]}
    # margin 1.0 and entropy 0.0 are never passed (margin <= 1, entropy >= 0 with finite
    # logits); margin 0.0 and entropy 1.0 pass at the first step
    assert steps["margin:1.0"] == steps["entropy:0.0"] == steps["fixed:4"] == 4
    assert steps["margin:0.0"] == steps["entropy:1.0"] == 1
    assert out["warnings"] == []  # each rule ended runs at some threshold
    p = _cli("tradeoff", model_path, "--data", "digits:static", "--limit", "8", "--thresholds", "1.0", "--json")
    assert json.loads(p.stdout)["warnings"] == [
        "no confidence threshold of [1.0] ended a run before step 4: the model's readouts do not pass them on "
        "this data (over 10 classes a uniform top probability is 0.10); pass other --thresholds, or let "
        "calibrate-exit choose one"
    ]
    p = _cli("tradeoff", model_path, "--data", "digits:static", "--limit", "8", "--thresholds", "1.0", "--tmin", "4")
    assert p.returncode == 0 and "warning: no confidence" not in p.stderr  # tmin = tmax: no rule ends a run early


def test_the_event_mode_says_where_its_time_base_differs_from_training(tmp_path):
    """A leaky model trained on each recording's own span runs every recording in real µs in
    the event engine: a stranger's LIF model differed most on its shortest recordings
    (spike difference 0.53 under 30 ms, 0.16 at 80-200 ms), and nothing said why."""
    import dataclasses

    from runtime.event.evaluate import time_base_note

    lif = runtime.load(save(tiny_model(kind="event-frames"), tmp_path / "lif.onnx")).protocol
    if_ = runtime.load(
        save(tiny_model(kind="event-frames", spec=NeuronSpec("IF", 1.0, spike="multi")), tmp_path / "if.onnx")
    ).protocol
    per_recording = dataclasses.replace(lif, durations="recording")
    assert time_base_note(per_recording) == (
        "this model's LIF neurons leak, and it was trained on each recording's own span (T equal bins each), but "
        "the event engine runs recordings in real µs, with the nominal step of 75000 µs: a recording much shorter "
        "or longer than 300000 µs decays otherwise than in the clock run (--time-base trained stretches each to it; "
        "docs/event_driven.md, Time base)"
    )
    assert time_base_note(lif) is None  # every recording spans the data set's length, as trained
    assert time_base_note(dataclasses.replace(if_, durations="recording")) is None  # IF sees no time


def test_sdk_warns_when_a_run_leaves_the_trained_range(model_path):
    """docs/runtime.md: a run that may stop outside T_range goes ahead with a warning; in
    the SDK a TrainedRangeWarning (the CLIs print their own line instead)."""
    import warnings

    from runtime.errors import TrainedRangeWarning

    s = runtime.load(model_path)
    with pytest.warns(TrainedRangeWarning, match="T=20, outside the trained range"):
        s.run(images(2), "fixed:20")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.run(images(2))  # the model's own T: no warning


def test_json_output_is_strict_json():
    """`runtime run --mode event --json` printed `"sd_per_layer": {"IF_1": Infinity}` (a
    layer silent in the clock run: x / 0), which JSON.parse and other strict readers refuse."""
    import json

    from runtime.report import json_text

    text = json_text({"sd": {"IF_0": 0.1, "IF_1": np.float64(np.inf)}, "runs": [float("nan"), -np.inf, 2], "n": 3})

    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    want = {"sd": {"IF_0": 0.1, "IF_1": None}, "runs": [None, None, 2], "n": 3}
    assert json.loads(text, parse_constant=refuse) == want


def test_frames_with_the_batch_axis_first_warn(model_path):
    """[B, T, ...] (torch's and tonic's batched layout) ran as B steps of T samples, with no
    word; the warning names the axis when the second one has the trained T."""
    from runtime.errors import AxisOrderWarning

    s = runtime.load(model_path)
    T = s.protocol.T_trained
    x = frames_for(s, T, 2)  # [T, B]
    with warnings.catch_warnings():
        warnings.simplefilter("error", AxisOrderWarning)
        s.run(x)  # the right layout: silent
        s.run(x[:, :1].copy())
        s.run(x.swapaxes(0, 1).copy(), FixedT(2))  # a policy given: the caller chose the run length
    with pytest.warns(AxisOrderWarning, match=rf"read as frames \[T, B, ...\]: 2 steps of {T} samples"):
        s.run(x.swapaxes(0, 1).copy())


def test_interleaved_timing_rotates_the_order_and_shows_progress_only_when_asked(capsys):
    """bench, event-bench: every system runs once per round, the order rotated; the bar
    (14-16 s of silence before) counts warm-up and timed runs on stderr, never stdout."""
    from runtime.bench import Loop, interleaved

    order: list[str] = []
    loops = {n: Loop(lambda: None, lambda n=n: order.append(n)) for n in ("a", "b", "c")}
    timed = interleaved(loops, steps=1, repeats=3)
    assert order == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]  # warm-up, then rotated
    assert all(t["wall_ms_min"] <= t["wall_ms_median"] for t in timed.values())
    assert capsys.readouterr() == ("", "")
    interleaved(loops, steps=1, repeats=3, progress=True, desc="batch 64")
    out, err = capsys.readouterr()
    assert out == "" and "batch 64:" in err and "/12 [" in err  # warm-up and timed runs of 3 systems
    order.clear()  # a caller that warmed them up itself (experiments/trev_speed.py: a short fit each)
    interleaved(loops, steps=1, repeats=2, warm_up=False)
    assert order == ["a", "b", "c", "b", "c", "a"]


def test_readouts_overflowed_inside_the_network_warn_in_the_sdk_and_the_cli(tmp_path):
    """Finite inputs large enough to overflow float32 in a multi-spike layer (its spike count
    grows with its input: floor(v / v_th)) gave NaN readouts and arbitrary predictions, unsaid
    (NaN and infinite inputs are refused; these were finite)."""
    from runtime.errors import NonFiniteReadoutWarning

    spec = NeuronSpec("IF", 1.0, 1.0, "subtract", "multi", -math.inf, 1.0)
    path = save(tiny_model(spec=spec), tmp_path / "multi.onnx")
    s = runtime.load(path)
    huge = np.full((2, 1, 8, 8), 3e38, np.float32)
    with pytest.warns(NonFiniteReadoutWarning, match="NaN or infinite: a value overflowed float32"):
        r = s.run(huge, 4)
    assert not np.isfinite(r.outputs).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteReadoutWarning)
        s.run(images(2), 4)  # ordinary inputs: finite readouts, no warning
    data = tmp_path / "huge.npz"
    # the test split is every fifth sample from the first: one overflowing, one ordinary
    np.savez(data, images=np.concatenate([huge[:1], images(9)]), labels=np.arange(10))
    done = _cli("run", path, "--data", f"npz:{data}", "--policy", "fixed:4", "--json")
    assert done.returncode == 0, done.stderr
    assert any("overflowed float32" in w for w in json.loads(done.stdout)["warnings"])
    assert done.stderr.count("warning: some samples' readouts or spike counts are NaN or infinite") == 1, done.stderr
    # an overflow a later layer absorbs (readouts of 0, infinite spike counts) warns too
    from runtime.result import RunResult

    absorbed = RunResult(np.zeros(1, int), np.zeros((1, 10), np.float32), np.ones(1, int), 0.0, [1])
    absorbed.spike_counts = {"LIF_0": np.array([np.inf])}
    with pytest.warns(NonFiniteReadoutWarning):
        s._checked_finite(absorbed)
    with pytest.warns(NonFiniteReadoutWarning):  # a stream's step too (`runtime stream` said nothing)
        s.feed(s.initial_state(2), huge)
