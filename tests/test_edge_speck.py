"""Speck backend: memory formulas, limits, core mapping, quantisation, CLI and bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from edge.speck.backend import plan_shapes
from edge.speck.chip import CHIPS, KI, ChipError, Core, chip
from edge.speck.constraints import LayerShape, check_layer, kernel_memory, memory, neuron_memory
from edge.speck.convert import SpeckLayer, convert
from edge.speck.mapping import candidates, map_layers, match
from edge.speck.quantize import QuantError, QuantNet, float_twin, quantize_layer, scale_for
from runtime.neuron import NeuronSpec
from runtime.protocol import read_model
from tests.conftest import ROOT, run_cli
from tests.edge_fixtures import Conv, chain_model
from tests.runtime_fixtures import save

SPECK = chip("speck2fdevkit")


# ---- memory formulas (by hand: c_in * 2^(ceil log2(kx ky) + ceil log2 c_out), c_out * 2^(...)) ----
@pytest.mark.parametrize(
    "shape, kernel_mem, neuron_mem, broken",
    [
        # N-MNIST first conv, 16 channels: 2 * 2^(4 + 4); 16 * 2^(6 + 6) = exactly the 64 Ki of cores 0-2
        (LayerShape("a", 2, (34, 34), 16, (3, 3), padding=(1, 1)), 512, 65536, []),
        # the same with 32 channels: 32 * 2^12 = 128 Ki neurons > 64 Ki -> fails on neuron memory
        (LayerShape("b", 2, (34, 34), 32, (3, 3), padding=(1, 1)), 1024, 131072, ["neuron memory"]),
        # second conv after 2x2 pooling: 17x17 -> 2^(5+5)
        (LayerShape("c", 16, (17, 17), 16, (3, 3), padding=(1, 1)), 4096, 16384, []),
        # a linear layer 16x8x8 -> 10 as an 8x8 convolution: 16 * 2^(6 + 4); 10 * 2^0
        (LayerShape("d", 16, (8, 8), 10, (8, 8)), 16384, 10, []),
        # 64 -> 64 channels, 5x5: 64 * 2^(5 + 6) = 128 Ki kernel > 64 Ki -> fails on kernel memory
        (LayerShape("e", 64, (32, 32), 64, (5, 5), padding=(2, 2)), 131072, 65536, ["kernel memory"]),
        # stride 2, floored output (64 + 2 - 3) // 2 + 1 = 32; 20 channels -> 2^5
        (LayerShape("f", 8, (64, 64), 20, (3, 3), (2, 2), (1, 1)), 8 * 2**9, 20 * 2**10, []),
        # exact powers of two need no extra bit: 1x1 kernel, 1 output channel, 128x128
        (LayerShape("g", 4, (128, 128), 1, (1, 1)), 4, 16384, []),
    ],
)
def test_memory_formulas(shape, kernel_mem, neuron_mem, broken):
    assert memory(shape) == (kernel_mem, neuron_mem)
    assert [v.limit for v in check_layer(shape, SPECK)] == broken
    for v in check_layer(shape, SPECK):
        assert v.layer == shape.name and "64 Ki" in str(v)


def test_memory_formula_pieces():
    assert kernel_memory(3, (3, 3), 5) == 3 * 2 ** (4 + 3)
    assert neuron_memory(7, (9, 33)) == 7 * 2 ** (4 + 6)
    assert [c.kernel_memory // KI for c in SPECK.cores] == [16, 16, 16, 32, 32, 64, 64, 16, 16]
    assert [c.neuron_memory // KI for c in SPECK.cores] == [64, 64, 64, 32, 32, 16, 16, 16, 16]


@pytest.mark.parametrize(
    "shape, limit",
    [
        (LayerShape("k", 2, (20, 20), 4, (3, 5), padding=(1, 2)), "kernel shape"),
        (LayerShape("k", 2, (40, 40), 4, (17, 17)), "kernel size"),
        (LayerShape("s", 2, (20, 20), 4, (3, 3), stride=(3, 3)), "stride"),
        (LayerShape("p", 2, (20, 20), 4, (15, 15), padding=(8, 8)), "padding"),
        (LayerShape("q", 2, (20, 20), 4, (3, 3), pool=(3, 3)), "sum pooling"),
        (LayerShape("i", 2, (129, 129), 1, (1, 1), stride=(8, 8)), "input size"),
        (LayerShape("c", 1025, (2, 2), 4, (1, 1)), "input channels"),
        (LayerShape("d", 2, (8, 8), 4, (3, 3), destinations=3), "destination layers"),
    ],
)
def test_each_limit_is_named(shape, limit):
    v = check_layer(shape, SPECK)
    assert [x.limit for x in v] == [limit]
    assert f"layer {shape.name!r}: {limit}" in str(v[0])


def test_chip_registry_fails_loudly():
    with pytest.raises(ChipError, match="speck2fdevkit"):
        chip("speck3")
    assert {"speck2e", "speck2fdevkit"} <= set(CHIPS)


# ---- mapping -------------------------------------------------------------------------
def test_matching_reassigns_where_greedy_fails():
    # layer 0 could take core 0 or 1, layer 1 only core 0: an augmenting path moves layer 0
    assert match([[0, 1], [0]]) == [1, 0]
    assert match([[0], [0]]) in ([0, None], [None, 0])


def test_candidates_smallest_first():
    cores = [Core(0, 64 * KI, 16 * KI), Core(1, 16 * KI, 16 * KI), Core(2, 32 * KI, 32 * KI)]
    assert candidates((8 * KI, 8 * KI), cores) == [1, 2, 0]
    assert candidates((40 * KI, 8 * KI), cores) == [0]
    assert candidates((8 * KI, 40 * KI), cores) == []


def test_mapping_on_speck():
    # three layers needing 40 Ki neurons fit only cores 0-2; a fourth finds none free
    big = (1 * KI, 40 * KI)
    assert sorted(map_layers([big] * 3, SPECK.cores)) == [0, 1, 2]
    shapes = [LayerShape(f"L{i}", 10, (64, 64), 10, (1, 1)) for i in range(4)]  # 10 * 2^12 = 40 Ki
    p = plan_shapes(shapes, SPECK)
    assert not p.fits and sum(c is None for c in p.cores) == 1
    assert [v.limit for v in p.violations] == ["core"]
    # a layer that takes a 64 Ki kernel core must leave it to the only layer that needs it
    need64 = (60 * KI, 1 * KI)  # cores 5, 6
    need32 = (20 * KI, 20 * KI)  # cores 3, 4
    cores = map_layers([need32, need32, need64, need64], SPECK.cores)
    assert sorted(cores[:2]) == [3, 4] and sorted(cores[2:]) == [5, 6]


def test_too_many_layers():
    shapes = [LayerShape(f"L{i}", 2, (8, 8), 2, (3, 3), padding=(1, 1)) for i in range(10)]
    p = plan_shapes(shapes, SPECK)
    assert "number of layers" in [v.limit for v in p.violations]


# ---- quantisation ----------------------------------------------------------------------
def _layer(w: np.ndarray, v_th: float = 1.0, v_min: float = -math.inf) -> SpeckLayer:
    s = LayerShape("q", w.shape[1], (8, 8), w.shape[0], w.shape[2:])
    return SpeckLayer(s, w, NeuronSpec("IF", 1.0, v_th, "subtract", "multi", v_min, 1.0), "conv", "IF_q")


def test_quantisation_fits_bits():
    w = np.random.default_rng(0).normal(0, 0.05, (4, 2, 3, 3))
    q = quantize_layer(_layer(w, v_th=1.0))
    assert q.weight.dtype == np.int8 and np.abs(q.weight).max() == 127
    assert q.bound == "weights" and q.threshold == round(q.scale) and q.v_min == -(2**15)
    assert np.allclose(q.weight / q.scale, w, atol=0.5 / q.scale)
    # a threshold so large that 16 bits bound the scale
    q = quantize_layer(_layer(w, v_th=1e3))
    assert q.bound == "threshold" and q.threshold == 2**15 - 1


def test_float_twin_is_the_chip_net_before_rounding():
    w = np.random.default_rng(0).normal(0, 0.05, (4, 2, 3, 3))
    L = _layer(w, v_th=0.7)
    q = quantize_layer(L)
    net = SimpleNamespace(layers=[L])  # float_twin reads only the float layers of the net
    t = float_twin(QuantNet(net, (q,))).layers[0]  # type: ignore[arg-type]
    assert t.weight.dtype == np.float32 and np.allclose(t.weight, w * q.scale, rtol=1e-6)
    assert np.array_equal(np.round(t.weight), q.weight) and t.threshold == pytest.approx(0.7 * q.scale)
    assert q.threshold == round(0.7 * q.scale)


def test_unset_clamp_does_not_collapse_the_scale():
    """The pitfall: filling the unset clamp with -2^15 in MODEL units before choosing the
    scale forces the scale to 1 and rounds these weights (|w| < 0.5) to zero."""
    w = np.random.default_rng(1).normal(0, 0.05, (4, 2, 3, 3))
    naive, bound = scale_for(float(np.abs(w).max()), 1.0, -32768.0)
    assert naive == 1.0 and bound == "v_min" and not np.round(w * naive).any()
    q = quantize_layer(_layer(w))  # v_min unset: the floor is -2^15 in CHIP units
    assert q.scale > 100 and q.zeroed < 0.05 and q.v_min == -32768
    # a real clamp scales with the layer
    q = quantize_layer(_layer(w, v_min=-1.0))
    assert q.v_min == -q.threshold
    # an explicit clamp that large does collapse it: refused, naming the layer and the limit
    with pytest.raises(QuantError, match=r"layer 'q'.*v_min limit"):
        quantize_layer(_layer(w, v_min=-32768.0))


# ---- conversion and CLI ---------------------------------------------------------------------
def test_conversion_folds_pooling_and_converts_linear(tmp_path):
    path = save(chain_model([Conv(4, pool=2)]), tmp_path / "m.onnx")
    net = convert(*read_model(path))
    conv, fc = net.layers
    assert conv.shape.pool == (2, 2) and fc.source == "linear" and fc.shape.kernel == (10, 10)
    # the readout as signed pairs: channels 0..3 get +W, 4..7 get -W, clamped at 0
    assert fc.weight.shape == (8, 4, 10, 10) and fc.shape.c_out == 8 and net.readout_pairs == 4
    onnx_w = read_model(path)[0].graph.initializer[1]
    from onnx import numpy_helper

    assert np.allclose(fc.weight[:4].reshape(4, -1), numpy_helper.to_array(onnx_w) / 4)  # 1/k² folded
    assert np.array_equal(fc.weight[4:], -fc.weight[:4]) and fc.neuron.v_min == 0.0
    assert all(L.neuron.spike == "multi" and L.neuron.reset == "subtract" for L in net.layers)


def test_signed_pair_readout_is_the_sum_not_the_peak():
    """One IF neuron per class keeps the peak of a rising-then-falling sum; the pair reads the sum."""
    from edge.speck.convert import predict

    out = np.array([[5.0, 3.0, 0.0, 4.0]])  # class 0: 5 up, 0 down; class 1: 3 up, 4 down
    assert predict(out, 2).tolist() == [0] and predict(np.array([[1.0, 3.0, 0.0, 0.0]]), 2).tolist() == [1]
    assert predict(np.array([[1.0, 3.0]]), 0).tolist() == [1]


def test_check_cli_fits_and_json(tmp_path):
    path = save(chain_model([Conv(8, pool=2), Conv(8, pool=2)]), tmp_path / "m.onnx")
    r = run_cli("edge", "speck", path, "--check")
    assert r.returncode == 0, r.stderr
    assert "fits, cores" in r.stdout and "kernel mem" in r.stdout
    r = run_cli("edge", "speck", path, "--check", "--json")
    out = json.loads(r.stdout)
    assert out["fits"] is True and len(out["layers"]) == 3
    assert out["layers"][0]["kernel_memory"] == 2 * 2 ** (4 + 3) and out["layers"][0]["neuron_memory"] == 8 * 2**10
    assert len({L["core"] for L in out["layers"]}) == 3


def test_describe_json(tmp_path):
    path = save(chain_model([Conv(8, pool=2)]), tmp_path / "m.onnx")
    desc = tmp_path / "m.speck.json"
    r = run_cli("edge", "speck", path, "--describe", str(desc))
    assert r.returncode == 0, r.stderr
    d = json.loads(desc.read_text())
    assert d["format"] == "flexsnn-speck/1" and d["fits"] and len(d["layers"]) == 2
    w = np.array(d["layers"][0]["weights"])
    assert w.shape == (8, 2, 3, 3) and w.min() >= -128 and w.max() <= 127 and np.abs(w).max() == 127
    assert d["layers"][0]["destinations"] == [1] and d["layers"][0]["sum_pool"] == 2
    neuron = d["layers"][0]["neuron"]  # the chip's one neuron, in the quantised integer units
    assert {k: neuron[k] for k in ("kind", "reset", "spike")} == {"kind": "IF", "reset": "subtract", "spike": "multi"}
    assert isinstance(neuron["threshold"], int) and neuron["threshold"] > 0
    assert d["input"]["transforms"] == []


def test_the_models_input_transforms_are_said_to_run_on_the_host(tmp_path):
    """The chip is configured without its DVS input: a model trained on transformed events
    (downsampled, polarity merged) needs the host to transform them, and neither --check nor
    the description said so."""
    from tests.runtime_fixtures import with_input

    steps = [{"kind": "crop", "args": [0, 0, 20, 20]}, {"kind": "refractory", "args": [100]}]
    path = save(with_input(chain_model([Conv(8, pool=2)]), transforms=steps), tmp_path / "m.onnx")
    desc = tmp_path / "m.speck.json"
    r = run_cli("edge", "speck", path, "--describe", str(desc), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(desc.read_text())["input"]["transforms"] == steps
    assert "input transforms crop:0,0,20,20, refractory:100: applied on the host" in json.loads(r.stdout)["notes"][0]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (
            {"convs": [Conv(32, pad=1)], "in_shape": (2, 34, 34)},
            ["conv0", "neuron memory", "128 Ki", "64 Ki", "at most 16 channels"],
        ),
        (
            {"convs": [Conv(64, (5, 5), pad=2)] * 2, "in_shape": (2, 16, 16)},
            ["conv1", "kernel memory", "128 Ki", "at most 32 input channels"],
        ),
        ({"convs": [Conv(4, (3, 5), pad=1)]}, ["conv0", "kernel shape", "3x5", "square"]),
        ({"convs": [Conv(4)], "bias": True}, ["conv0", "bias", "--no-bias"]),
        ({"convs": [Conv(4)], "extra": "Relu"}, ["relu0", "Relu", "not supported"]),
        (
            {"convs": [Conv(4, pool=2), Conv(4, pool=2), Conv(4, pool=2)], "in_shape": (2, 200, 200)},
            ["input size", "200x200", "128x128"],
        ),
    ],
)
def test_bad_models_exit_2_naming_layer_and_limit(tmp_path, kwargs, words):
    path = save(chain_model(**kwargs), tmp_path / "bad.onnx")
    r = run_cli("edge", "speck", path, "--check")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def test_json_says_fits_false_for_every_refused_model(tmp_path):
    """A model Speck cannot run at all (a bias, an op it lacks) printed nothing on stdout
    with --json, where one over a limit printed {"fits": false, ...}: a script looping over
    models had to handle both."""
    for kwargs, word in (({"convs": [Conv(4)], "bias": True}, "bias"), ({"convs": [Conv(4)], "extra": "Relu"}, "Relu")):
        path = save(chain_model(**kwargs), tmp_path / "bad.onnx")
        r = run_cli("edge", "speck", path, "--json")
        assert r.returncode == 2 and r.stderr.startswith("error: "), r.stderr
        out = json.loads(r.stdout)
        assert out["fits"] is False and len(out["violations"]) == 1 and word in out["violations"][0]
        assert out["violations"][0] in r.stderr and out["model"] == path


def test_leaky_neuron_is_a_named_violation(tmp_path):
    lif = NeuronSpec("LIF", 0.5, 1.0, "subtract", "single", -math.inf, 1.0)
    path = save(chain_model([Conv(4)], spec=lif), tmp_path / "lif.onnx")
    r = run_cli("edge", "speck", path, "--json")
    assert r.returncode == 2
    out = json.loads(r.stdout)
    assert out["fits"] is False and any("neuron leak" in v and "conv0" in v for v in out["violations"])
    # the chip's multi-spike note is about IF neurons it runs; it called a refused LIF "IF"
    assert not any("single-spike" in n for n in out["notes"]), out["notes"]


def test_bad_cli_input(tmp_path):
    r = run_cli("edge", "speck", str(tmp_path / "missing.onnx"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    path = save(chain_model([Conv(4)]), tmp_path / "m.onnx")
    r = run_cli("edge", "speck", path, "--chip", "speck9")
    assert r.returncode == 2 and "speck2fdevkit" in r.stderr
    r = run_cli("edge", "speck", path, "--emulate")
    assert r.returncode == 2 and "--data" in r.stderr
    r = run_cli("edge", "speck", path, "--data", "digits", "--limit", "5")  # no --emulate: nothing reads them
    assert r.returncode == 2 and "only --emulate reads --data and --limit" in r.stderr
    # the data the model stores, not found: said as stored (it read as typed by the user)
    stored = chain_model([Conv(4, pool=2)])
    meta = json.loads(stored.metadata_props[0].value)
    meta["data"] = "nmnist:../shared/data/nmnist-moved"
    stored.metadata_props[0].value = json.dumps(meta)
    stored_path = save(stored, tmp_path / "stored.onnx")
    r = run_cli("edge", "speck", stored_path, "--emulate")
    assert r.returncode == 2 and f"as stored in {stored_path} when it was trained; pass --data" in r.stderr
    # a readout that is spiking neurons keeps its own threshold: the flag was ignored
    spiking = save(chain_model([Conv(4, pool=2)], spiking_readout=True), tmp_path / "spiking.onnx")
    assert run_cli("edge", "speck", spiking, "--check").returncode == 0
    r = run_cli("edge", "speck", spiking, "--check", "--readout-threshold", "0.5")
    assert r.returncode == 2 and "readout is spiking neurons with their own threshold" in r.stderr
    fits = save(chain_model([Conv(4, pool=2)]), tmp_path / "fits.onnx")
    assert run_cli("edge", "speck", fits, "--check", "--readout-threshold", "0.5").returncode == 0


# ---- samna is never imported by accident ---------------------------------------------------
PROBE = """
import json, sys
from edge.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
else:
    code = 0
mods = [m for m in sys.modules if m.split('.')[0] in ('samna', 'samnagui', 'torch') or 'dynapcnn' in m]
print(json.dumps({'code': code, 'modules': mods}), file=sys.stderr)
"""


def _probe(*argv: str) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    return json.loads(r.stderr.strip().splitlines()[-1]) | {"stderr": r.stderr, "stdout": r.stdout}


def test_import_edge_imports_no_vendor_sdk():
    code = (
        "import sys, edge, edge.cli, edge.speck.deploy, edge.speck.sinabs_model;"
        "print([m for m in sys.modules if m.split('.')[0] in ('samna', 'sinabs', 'torch')])"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_check_imports_no_samna(tmp_path):
    path = save(chain_model([Conv(4, pool=2)]), tmp_path / "m.onnx")
    out = _probe("speck", path, "--check")
    assert out["code"] == 0 and out["modules"] == [], out


def test_deploy_without_real_samna_exits_2(tmp_path):
    path = save(chain_model([Conv(4, pool=2)]), tmp_path / "m.onnx")
    out = _probe("speck", path, "--deploy")
    assert out["code"] == 2, out
    assert "samna" in out["stderr"] and "--deploy" in out["stderr"]
    assert not [m for m in out["modules"] if m.startswith("samna") or "dynapcnn" in m], out
    assert (tmp_path / "m.speck.json").is_file()  # our own description is written anyway


def test_missing_reports_each_case(tmp_path):
    from importlib.machinery import ModuleSpec

    from edge.speck.deploy import is_stub, missing

    stub = tmp_path / "samna" / "__init__.py"
    stub.parent.mkdir()
    stub.write_text("PYPI_SAMNA = True\ndef install_real_samna(): ...\n")
    real = tmp_path / "real" / "__init__.py"
    real.parent.mkdir()
    real.write_text("from .samna import *\n")
    assert is_stub(str(stub)) and not is_stub(str(real))
    present = lambda origin: lambda name: ModuleSpec(name, None, origin=origin)
    assert "torch and sinabs not installed" in missing(lambda name: None)
    assert "samna is not installed" in missing(lambda n: None if n == "samna" else ModuleSpec(n, None))
    assert "stub" in missing(present(str(stub)))
    assert missing(present(str(real))) is None


def test_a_neuron_without_event_form_is_refused_as_the_chips_limit(tmp_path):
    """A kind (or variant) with no event-driven form stopped the check at the event runtime's
    refusal ("run this model clock-driven", of a chip check); the chip's limit is its kind."""
    from onnx import numpy_helper

    from runtime.neuron import make_spec
    from tests.runtime_fixtures import tiny_model

    spec = make_spec("ALIF", decay=0.9, decay_adapt=0.5, beta=0.3, dt=1000.0)
    model = tiny_model("event-frames", spec)
    b1 = next(t for t in model.graph.initializer if t.name == "b1")
    b1.CopyFrom(numpy_helper.from_array(np.zeros(numpy_helper.to_array(b1).shape, np.float32), "b1"))
    r = run_cli("edge", "speck", save(model, tmp_path / "alif.onnx"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1] == (
        "error: Speck cannot run this model: layer 'LIF_0': neuron kind is ALIF, Speck allows IF "
        "(Speck has integrate-and-fire neurons only)"
    )


def test_check_and_describe_say_a_file_is_from_an_unfinished_run(tmp_path):
    """edge speck --check, --describe and --deploy said nothing of a file exported from an
    unfinished training run (only --emulate did)."""
    m = chain_model([Conv(8, pool=2)])
    meta = json.loads(m.metadata_props[0].value)
    meta["unfinished"] = {"epochs_done": 2, "epochs": 5}
    m.metadata_props[0].value = json.dumps(meta)
    path = save(m, tmp_path / "m.onnx")
    said = f"{path} was exported from an unfinished training run (after epoch 2 of 5)"
    r = run_cli("edge", "speck", path, "--check")
    assert r.returncode == 0 and r.stderr.count("unfinished training run") == 1 and said in r.stderr, r.stderr
    r = run_cli("edge", "speck", path, "--describe", str(tmp_path / "d.json"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["warnings"][0].startswith(said), r.stderr
