"""Backend exact (runtime/exact.py): fixed-order float64 sums, one rounding per output,
no FMA in the generated code; equal to onnxruntime wherever float sums are exact; the
same results whatever the batch."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime
from runtime.engine import make_session
from runtime.errors import InputError
from runtime.exact import _kernels, compile_segment
from tests.event_fixtures import chain_model, spec
from tests.runtime_fixtures import save, tiny_model


def _dyadic(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Multiples of 1/16 in [-4, 4]: every float32 sum of their products with small integers
    is exact, so any summation order gives the same bits."""
    return (rng.integers(-64, 65, shape) / 16).astype(np.float32)


def _one_op(op: str, x_shape: list[int], inits: dict[str, np.ndarray], ins: list[str], **attrs) -> onnx.ModelProto:
    node = helper.make_node(op, ["x", *ins], ["y"], name="op", **attrs)
    graph = helper.make_graph(
        [node],
        "one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


CASES = [
    ("Conv", (2, 3, 9, 7), {"w": (4, 3, 3, 3), "b": (4,)}, {"pads": [1, 1, 1, 1]}),
    ("Conv", (2, 3, 9, 7), {"w": (4, 3, 3, 2)}, {"pads": [2, 0, 1, 1], "strides": [2, 3]}),
    ("Conv", (1, 2, 11, 10), {"w": (3, 2, 3, 3)}, {"dilations": [2, 1], "pads": [0, 2, 2, 0]}),
    ("Gemm", (5, 7), {"w": (3, 7), "b": (3,)}, {"transB": 1, "alpha": 0.5, "beta": 2.0}),
    ("Gemm", (5, 7), {"w": (7, 3)}, {}),
    ("MatMul", (5, 7), {"w": (7, 4)}, {}),
    ("AveragePool", (2, 3, 9, 8), {}, {"kernel_shape": [2, 2], "strides": [2, 2]}),
    (
        "AveragePool",
        (2, 3, 9, 8),
        {},
        {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 1], "count_include_pad": 0},
    ),
    ("AveragePool", (1, 2, 6, 6), {}, {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
]


@pytest.mark.parametrize(
    ("op", "x_shape", "init_shapes", "attrs"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_each_op_equals_onnxruntime_where_sums_are_exact(op, x_shape, init_shapes, attrs):
    rng = np.random.default_rng(1)
    inits = {k: _dyadic(rng, s) for k, s in init_shapes.items()}
    model = _one_op(op, list(x_shape), inits, list(inits), **attrs)
    x = rng.integers(0, 4, x_shape).astype(np.float32)  # spike counts
    want = make_session(model, 1).run(None, {"x": x})[0]
    got = compile_segment(model, "x", "y")(x)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got, want) and np.abs(want).max() > 0


def test_sums_in_float64_and_rounds_once():
    """1 + 2^-24 + 2^-24: summed in float32 each addition rounds back to 1.0 (a tie, to
    even); in float64 the sum is 1 + 2^-23, a float32 value. A float32 accumulator (or any
    order that adds the large term last in float32) gives 1.0."""
    tiny = np.float32(2.0**-24)
    model = _one_op("MatMul", [1, 3], {"w": np.ones((3, 1), np.float32)}, ["w"])
    y = compile_segment(model, "x", "y")(np.array([[1.0, tiny, tiny]], np.float32))
    assert y[0, 0] == np.float32(1 + 2.0**-23)
    conv = _one_op("Conv", [1, 3, 1, 1], {"w": np.ones((1, 3, 1, 1), np.float32)}, ["w"])
    y = compile_segment(conv, "x", "y")(np.array([1.0, tiny, tiny], np.float32).reshape(1, 3, 1, 1))
    assert y.item() == np.float32(1 + 2.0**-23)


def test_no_fma_in_the_generated_code():
    """A fused multiply-add rounds once where the source rounds twice: the code must keep
    every fmul and fadd apart on this machine's target (edge/aarch64_check.sh runs this test
    on aarch64 too). Compiled afresh: numba gives no assembly for cached code."""
    from numba import njit

    from runtime.neuron import kernels

    f32 = np.float32
    x, out = np.zeros((1, 2, 6, 6), f32), np.zeros((1, 3, 6, 6), f32)
    calls = {
        "conv2d": (x, np.zeros((2, 3, 3, 3)), np.zeros(3), 1, 1, 1, 1, 1, 1, out),
        "gemm": (np.zeros((2, 4), f32), np.zeros((4, 3)), np.zeros(3), np.float64(0.5), np.zeros((2, 3), f32)),
        "avgpool2d": (x, 2, 2, 2, 2, 0, 0, True, np.zeros((1, 2, 3, 3), f32)),
    }
    fns = {k: (_kernels()[k].py_func, a) for k, a in calls.items()}
    u, rules = np.zeros(8, f32), (f32(0.5), f32(1), True, False, True, f32(-1))
    steps = kernels.compiled()
    fns["lif_step"] = (steps[""].py_func, (u, u.copy(), u.copy(), *rules))
    for second in ("syn", "adapt"):  # CubaLIF's current, ALIF's threshold: two products each
        fns[f"{second}_step"] = (steps[second].py_func, (u, u.copy(), u.copy(), u.copy(), *rules, f32(0.8), f32(0.3)))
    from runtime.policies import compiled_scores

    scores_args = (np.zeros((2, 10)), 1, np.zeros(2))  # 1: the entropy, whose sum has p * log(p) terms
    fns["exit_scores"] = (compiled_scores().py_func, scores_args)
    fma = re.compile(r"\b(v?fn?m(add|sub)\w*|fml[as]\w*)\b", re.I)  # x86 vfmadd*/vfnmadd*, arm fmadd/fmla
    mul = re.compile(r"\b(v?mul[sp][sd]|fmul)\b")
    for name, (py, args) in fns.items():
        f = njit(py)
        f(*args)
        asm = "\n".join(f.inspect_asm().values())
        assert not fma.findall(asm), f"{name}: {sorted(set(fma.findall(asm)))}"
        assert name == "avgpool2d" or mul.search(asm), name  # the pattern sees this target's multiplies


def test_model_runs_like_onnxruntime_and_is_batch_invariant(tmp_path):
    """Dyadic weights, integer inputs: every sum is exact, so the exact backend equals the
    function bodies bit for bit (spikes, states, readouts); and each sample's results do
    not depend on the batch it ran in (early exit compacts the batch)."""
    path = save(chain_model(spec("IF", "multi"), conv_bias=0.25, scale=0.9), tmp_path / "m.onnx")
    bodies, exact = runtime.load(path, backend="ort"), runtime.load(path, backend="exact")
    assert exact.backend == "exact" and "fixed-order" in exact.backend_note
    x = np.random.default_rng(0).poisson(0.6, (10, 6, 2, 12, 12)).astype(np.float32)
    a, b = bodies.run(x, neuron_counts=True), exact.run(x, neuron_counts=True)
    assert np.array_equal(a.outputs, b.outputs) and np.array_equal(a.predictions, b.predictions)
    for k in a.neuron_counts:
        assert np.array_equal(a.neuron_counts[k], b.neuron_counts[k])
    assert sum(v.sum() for v in a.spike_counts.values()) > 0
    policy = "confidence:0.999999,tmin=1,tmax=10"
    one = [exact.run(x[:, i : i + 1], policy) for i in range(6)]
    batch = exact.run(x, policy)
    assert len(set(batch.steps)) > 2  # samples left the batch at different steps
    assert np.array_equal(batch.outputs, np.concatenate([r.outputs for r in one]))
    assert np.array_equal(batch.steps, np.concatenate([r.steps for r in one]))


def test_lif_with_bias_and_static_input_matches_the_numba_backend_in_predictions(tmp_path):
    """Real-valued weights: sums round differently from onnxruntime's, readouts may differ
    in the last bits, the predictions of this small model do not."""
    path = save(tiny_model(channels=6), tmp_path / "m.onnx")
    x = np.random.default_rng(2).random((40, 1, 8, 8), dtype=np.float32)
    a, b = runtime.load(path, backend="numba").run(x), runtime.load(path, backend="exact").run(x)
    assert np.array_equal(a.predictions, b.predictions)
    assert np.allclose(a.outputs, b.outputs, rtol=1e-5, atol=1e-5)


def test_a_model_with_an_uncovered_op_is_refused_naming_it(tmp_path):
    model = tiny_model()
    fc = next(n for n in model.graph.node if n.op_type == "Flatten")
    relu = helper.make_node("Relu", ["p1"], ["r1"], name="relu")
    fc.input[0] = "r1"
    nodes = list(model.graph.node)
    model.graph.ClearField("node")
    model.graph.node.extend([*nodes[: nodes.index(fc)], relu, *nodes[nodes.index(fc) :]])
    path = save(model, tmp_path / "m.onnx")
    assert runtime.load(path).backend == "numba"  # the split executor covers it
    with pytest.raises(InputError, match=r"backend 'exact' cannot run this model: Relu node 'relu' is not covered "):
        runtime.load(path, backend="exact")
    with pytest.raises(InputError, match=r"backend 'exact' cannot run this model: .*depends on t"):
        runtime.load(save(tiny_model(uses_t=True), tmp_path / "t.onnx"), backend="exact")


def test_cli_run_says_which_backend_runs(tmp_path, capsys):
    import json

    from runtime.cli import main

    path = save(tiny_model(), tmp_path / "m.onnx")
    args = ["run", path, "--data", "digits:static", "--limit", "12", "--threads", "1"]
    main([*args, "--backend", "exact", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "exact" and out["n"] == 12
    main(args)  # auto: numba for this model
    assert "backend numba" in capsys.readouterr().out.splitlines()[0]
