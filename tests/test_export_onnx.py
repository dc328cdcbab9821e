"""ONNX export: parity with torch for every neuron variant and model family, the graph's
structure (one snn node per neuron layer, function bodies, IR 10, dynamic batch), BN
folding and the protocol metadata."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from export.check import compare, run_onnx, run_torch
from export.errors import ExportError
from export.onnx_export import export_onnx
from export.prepare import deployable, fold_bn, neuron_layers
from export.protocol import read_protocol
from runtime.neuron import NeuronSpec, kinds, step
from runtime.neuron.functions import function, overload
from tests.export_helpers import VARIANTS, config, inputs, model, variants_net
from trainer.layers import Stateless
from trainer.neurons import neuron_step


@pytest.mark.parametrize("spec", [*VARIANTS, NeuronSpec("LI", 0.9)], ids=lambda s: f"{s.kind}-{overload(s)}")
def test_deploy_step_is_the_numpy_reference_bit_for_bit(spec: NeuronSpec):
    rng = np.random.default_rng(1)
    state = tuple(rng.normal(0, 1.5, (64, 32)).astype(np.float32) for _ in range(spec.n_states))
    i = rng.normal(0.5, 1.5, (64, 32)).astype(np.float32)
    out_ref, state_ref = step(spec, state, i)
    out, new = neuron_step(spec, tuple(torch.from_numpy(s) for s in state), torch.from_numpy(i))
    assert np.array_equal(out.numpy(), out_ref)
    assert all(np.array_equal(a.numpy(), b) for a, b in zip(new, state_ref, strict=True))
    if spec.spike == "multi" and spec.spiking:
        assert out_ref.max() >= 2  # the input really exercises multi-spikes


@pytest.mark.parametrize("spec", [*VARIANTS, NeuronSpec("LI", 0.9)], ids=lambda s: f"{s.kind}-{overload(s)}")
def test_function_body_in_onnxruntime_is_the_numpy_reference_bit_for_bit(spec: NeuronSpec):
    """One neuron node run by stock onnxruntime through its function body, 10 steps."""
    import onnxruntime as ort

    from runtime.neuron import kind_of
    from runtime.neuron.functions import attributes

    names = kind_of(spec.kind).states
    f32 = onnx.TensorProto.FLOAT
    node = onnx.helper.make_node(
        spec.kind, ["x", *names], ["out", *(f"{n}_out" for n in names)], domain="snn", **attributes(spec)
    )
    node.overload = overload(spec)
    vi = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [node],
        "one",
        [vi(n, f32, [None, 32]) for n in ["x", *names]],
        [vi(n, f32, [None, 32]) for n in ["out", *(f"{n}_out" for n in names)]],
    )
    m = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", 20), onnx.helper.make_opsetid("snn", 1)],
        functions=[function(spec, 20)],
    )
    m.ir_version = 10
    onnx.checker.check_model(m, full_check=True)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(2)
    state = tuple(np.zeros((64, 32), np.float32) for _ in names)
    spikes = 0.0
    for _ in range(10):
        i = rng.normal(0.4, 1.3, (64, 32)).astype(np.float32)
        out_ref, ref = step(spec, state, i)
        out, *got = sess.run(None, {"x": i, **dict(zip(names, state))})
        assert np.array_equal(out, out_ref)
        assert all(np.array_equal(a, b) for a, b in zip(got, ref, strict=True))
        state, spikes = ref, spikes + float(out_ref.sum())
    assert not spec.spiking or spikes > 0


def test_fold_bn_equals_conv_then_batchnorm():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3, padding=1, bias=True), nn.BatchNorm2d(5).eval()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.normal_()
    w, b = fold_bn(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)
    x = torch.randn(2, 3, 6, 6)
    assert torch.allclose(torch.nn.functional.conv2d(x, w, b, padding=1), bn(conv(x)), atol=1e-5)
    w0, b0 = fold_bn(conv.weight, None, bn.running_mean, bn.running_var, None, None, bn.eps)  # no bias / affine
    expected = (torch.nn.functional.conv2d(x, conv.weight, padding=1) - bn.running_mean[:, None, None]) / torch.sqrt(
        bn.running_var[:, None, None] + bn.eps
    )
    assert torch.allclose(torch.nn.functional.conv2d(x, w0, b0, padding=1), expected, atol=1e-5)


def _export_and_compare(tmp_path, cfg, net, T=5, batch=3):
    """Export ``net`` and check it as ``--check`` does; ``ref``: torch run free."""
    path = export_onnx(cfg, net, tmp_path / "m.onnx")
    x = inputs(cfg, T, batch)
    got, ref = run_onnx(path, x), run_torch(deployable(net), x)
    result = compare(run_torch(deployable(net), x, follow=got), got, read_protocol(path), ref)
    return path, ref, result


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """The every-variant net, exported once for the tests below."""
    cfg, net = variants_net()
    return (cfg, net, *_export_and_compare(tmp_path_factory.mktemp("variants"), cfg, net))


def test_every_neuron_variant_round_trips(variants):
    cfg, net, path, ref, result = variants
    assert result.ok, result.rows
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    specs = [layer.spec for layer in neuron_layers(net)]
    snn = [n for n in proto.graph.node if n.domain == "snn"]
    assert [(n.op_type, n.overload) for n in snn] == [(s.kind, overload(s)) for s in specs]
    # each entry of VARIANTS is a variant of its own (plus the LI readout), and every
    # registered kind is among them: a kind added without its entries fails here
    assert len({(s.kind, overload(s)) for s in specs}) == len(VARIANTS) + 1
    assert {s.kind for s in specs} == set(kinds()), "add the new kind's variants to tests/export_helpers.py"
    assert sorted((f.name, f.overload) for f in proto.functions) == sorted({(s.kind, overload(s)) for s in specs})
    for n, s in zip(snn, specs):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["reset"].decode() == s.reset and attrs["spike"].decode() == s.spike
        assert attrs["v_min"] == s.v_min and math.isclose(attrs["decay"], s.decay, rel_tol=1e-7)
    meta = read_protocol(path)
    assert [n.spec for n in meta.neurons] == specs
    assert [len(n.states) for n in meta.neurons] == [s.n_states for s in specs]
    assert all(list(n.input[1:]) == list(m.states) for n, m in zip(snn, meta.neurons))
    for i, s in enumerate(specs[:-1]):  # every spiking layer really spikes, multi-spike ones > 1 at times
        assert ref.outs[i].sum() > 0, f"layer {i} never spikes: the test would prove nothing"
        if s.spike == "multi":
            assert ref.outs[i].max() >= 2
    assert ref.outs[-1].min() < 0 < ref.outs[-1].max()  # LI output is a membrane, not spikes


def _followed(cfg, net, path):
    x = inputs(cfg)
    got = run_onnx(path, x)
    return run_torch(deployable(net), x, follow=got), got, read_protocol(path)


def test_check_detects_a_wrong_graph(tmp_path, variants):
    cfg, net, path, _, _ = variants
    proto = onnx.load(path)
    node = next(n for n in proto.graph.node if n.domain == "snn")
    next(a for a in node.attribute if a.name == "v_th").f *= 1.5  # a wrong threshold in the file
    onnx.save(proto, tmp_path / "bad.onnx")
    x = inputs(cfg)
    result = compare(run_torch(deployable(net), x), run_onnx(tmp_path / "bad.onnx", x), read_protocol(path))
    assert not result.ok and result.rows[0][4] > 0
    # followed (what --check runs): torch's neuron on onnxruntime's current disagrees
    result = compare(*_followed(cfg, net, tmp_path / "bad.onnx"))
    assert not result.ok and result.rows[0][-1] == "FAIL" and result.rows[0][4] > 0


def test_check_detects_a_wrong_weight_in_a_followed_run(tmp_path, variants):
    """One synapse of median size off by 1% changes no neuron's definition: the currents
    catch it, element by element (a bound relative to the layer's largest current, about
    1e-4 on the README default, let such a weight pass)."""
    cfg, net, path, _, _ = variants
    proto = onnx.load(path)
    w = next(t for t in proto.graph.initializer if len(t.dims) == 2)  # the first Gemm's weights
    a = onnx.numpy_helper.to_array(w).copy()
    k = np.argsort(np.abs(a), axis=None)[a.size // 2]  # one weight of median magnitude
    a.flat[k] *= np.float32(1.01)
    w.CopyFrom(onnx.numpy_helper.from_array(a, w.name))
    onnx.save(proto, tmp_path / "bad.onnx")
    result = compare(*_followed(cfg, net, tmp_path / "bad.onnx"))
    d_current = result.rows[0][result.headers.index("max |Δ current|")]
    assert not result.ok and result.rows[0][-1] == "FAIL" and d_current > 1e-3
    # the output row: y's difference stands in the column of the rule it is held to (currents')
    y_row = dict(zip(result.headers, result.rows[-1]))
    assert y_row["node"] == "y" and y_row["max |Δ state|"] == "-"
    assert y_row["max |Δ current|"] == result.summary["max_abs_diff_y"]


def test_a_rounding_tie_is_counted_not_failed(variants):
    """Torch's own current (another summation order) flips one spike that onnxruntime's
    current does not: a rounding tie, reported; the neuron on onnxruntime's current must
    still give onnxruntime's spikes exactly, and the currents agree within the tolerance."""
    cfg, net, path, _, _ = variants
    ref, got, meta = _followed(cfg, net, path)
    assert compare(ref, got, meta).ok and compare(ref, got, meta).summary["rounding_ties"] == 0
    ref.own[0] = ref.own[0].copy()
    ref.own[0].flat[7] += 1.0  # one spike count off by one on torch's own current
    result = compare(ref, got, meta)
    assert result.ok and result.summary["rounding_ties"] == 1 and result.rows[0][5] == 1
    ref.currents[0] = ref.currents[0] + 1e-3 * (1 + np.abs(ref.currents[0]).max())  # not a rounding
    assert not compare(ref, got, meta).ok
    ref.currents[0], ref.outs[0] = got.currents[0], ref.outs[0].copy()
    ref.outs[0].flat[7] += 1.0  # the neuron itself differs on the same current
    assert not compare(ref, got, meta).ok


def test_sums_are_judged_against_float64_and_torchs_own_rounding():
    """A sum rounded in another order: onnxruntime's within 1e-5 abs + rel of torch's
    float64 sum, or within 4x torch's own largest float32 error in the array; a bound at
    the array's largest value let a 1%-off weight through in layers whose values reach
    thousands."""
    from export.check import ROUNDING, within_rounding

    rng = np.random.default_rng(0)
    exact = np.concatenate([rng.normal(0, 1, 1000), [8351.0]])  # small values beside a huge one
    noise = 7.4e-4  # a float32 rounding error where the sum is large
    ref = exact.copy()
    ref[-1] += noise  # torch: rounded where the sum is large
    got = exact.copy()
    got[5] += ROUNDING * noise * 0.9  # onnxruntime: as rounded, elsewhere
    assert within_rounding(got, ref, exact)
    got[5] = exact[5] + ROUNDING * noise * 1.5 + 1e-5 * (1 + abs(exact[5]))  # beyond what rounding did
    assert not within_rounding(got, ref, exact)
    assert within_rounding(exact * (1 + 9e-6), exact, exact)  # the plain 1e-5 bound, no rounding at all


FAMILIES = {
    "vgg-bn-bias": dict(name="2C1FC"),
    "vgg-plain": dict(name="2C2FCW4", bn=False, bias=False, kind="IF", spike="multi", reset="zero", v_min=-1.0),
    "resnet10": dict(name="resnet10", in_shape=(1, 8, 8), data="digits:static"),
    "vgg-cuba-lif": dict(name="2C1FC", bn=False, kind="CubaLIF", extra={"decay_syn": 0.6}),
    "resnet10-alif": dict(
        name="resnet10", in_shape=(1, 8, 8), data="digits:static", kind="ALIF", extra={"beta": 0.3, "decay_adapt": 0.8}
    ),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_model_family_round_trips(tmp_path, family):
    cfg = config(**FAMILIES[family])
    net = model(cfg)
    path, ref, result = _export_and_compare(tmp_path, cfg, net)
    assert result.ok, result.rows
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.ir_version == 10
    n_states = sum(layer.spec.n_states for layer in neuron_layers(net))
    assert Counter(n.domain for n in proto.graph.node)["snn"] == len(neuron_layers(net))
    assert n_states == net.n_states
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)
    assert all(s.sum() > 0 for s in ref.outs)
    assert all(i.type.tensor_type.shape.dim[0].dim_param == "batch" for i in proto.graph.input)
    meta = read_protocol(path)
    assert [s.name for s in meta.states] == [i.name for i in proto.graph.input[1:]]
    assert [o.name for o in proto.graph.output] == ["y", *(f"state_{i}_out" for i in range(net.n_states))]
    assert meta.input_shape == tuple(cfg.model.in_shape) and meta.T_trained == cfg.train_T
    assert json.loads(proto.metadata_props[0].value)["format"] == "flexsnn-onnx/3"


def test_folding_keeps_the_trained_function():
    """The deployable net (what is exported) computes what the trained net computes."""
    cfg = config(name="2C1FC")
    net = model(cfg)
    x = torch.from_numpy(inputs(cfg, T=4))
    ref = net(x, [4, 4])
    got = deployable(net)(x, [4, 4])
    assert torch.allclose(ref, got, atol=1e-4)
    plain = model(config(name="2C1FC", bn=False))
    assert torch.equal(plain(x, [4, 4]), deployable(plain)(x, [4, 4]))  # no BN: bit for bit


def test_unsupported_layer_is_named_at_export_time(tmp_path):
    cfg = config()
    net = model(cfg)
    net.stages[0].layers[0].layers.insert(1, Stateless(nn.MaxPool2d(1)))
    with pytest.raises(ExportError, match=r"MaxPool2d.*supported layers: .*Conv2d"):
        export_onnx(cfg, net, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_read_protocol_refuses_foreign_onnx(tmp_path):
    g = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["a"], ["b"])],
        "g",
        [onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(g), tmp_path / "f.onnx")
    with pytest.raises(ExportError, match="flexsnn.protocol"):
        read_protocol(tmp_path / "f.onnx")


def test_weight_standardized_layers_export_as_plain_layers(tmp_path):
    ws = pytest.importorskip("trainer.weight_std")
    cfg = config(name="2C1FC", bn=False)
    net = model(cfg)
    block = net.stages[0].layers[0].layers
    block[0] = Stateless(ws.WeightStandardized(block[0].module))
    with torch.no_grad():
        block[0].module.gain.uniform_(0.2, 0.6)
    path, ref, result = _export_and_compare(tmp_path, cfg, net)
    assert result.ok and ref.outs[0].sum() > 0
    x = torch.from_numpy(inputs(cfg, T=3))
    assert torch.equal(net(x, [3, 3]), deployable(net)(x, [3, 3]))


def test_two_threads_export_at_once(tmp_path):
    """torch.export keeps its dispatch-mode stack per process: two threads exporting at once
    (an app's worker pool; the SDK's fit_config choosing the default model) failed with
    "Trying to pop empty mode stack" in 2 of 2 trials. Each trace now holds a lock."""
    from concurrent.futures import ThreadPoolExecutor

    from export.torch_formats import export_pt2, export_torchscript

    cfg = config(name="1C1FC", width=4)
    net = model(cfg)
    writers = [export_onnx, export_onnx, export_pt2, export_torchscript]
    with ThreadPoolExecutor(len(writers)) as pool:
        done = list(pool.map(lambda iw: iw[1](cfg, net, tmp_path / f"m{iw[0]}.x"), enumerate(writers)))
    assert [p.name for p in done] == ["m0.x", "m1.x", "m2.x", "m3.x"]
    assert (tmp_path / "m0.x").read_bytes() == (tmp_path / "m1.x").read_bytes()  # the same file, byte for byte


def test_the_writer_refuses_an_unfinished_mark_its_reader_would(tmp_path):
    """export_onnx(..., unfinished=(11, 10)) wrote a file every reader then refused."""
    cfg = config(name="1C1FC", width=4)
    with pytest.raises(ExportError, match=r"with 0 <= k <= n and n >= 1, got \(11, 10\)"):
        export_onnx(cfg, model(cfg), tmp_path / "m.onnx", unfinished=(11, 10))
    for bad in ("2/10", 5, (0, 0), (1.0, 2)):  # raw ValueError / TypeError before
        with pytest.raises(ExportError, match="'unfinished' must be absent or an object"):
            export_onnx(cfg, model(cfg), tmp_path / "m.onnx", unfinished=bad)
    assert not (tmp_path / "m.onnx").exists()
