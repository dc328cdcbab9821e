"""T-RevSNN through export and the clock-driven runtime: parity at every t, early exit,
encode-once stem cost, and the step-index bound."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import runtime
from export.formats import get_format
from runtime.policies import Confidence
from runtime.session import InputError
from trainer.models import build_model
from trainer.trev_memory import trev_config

SHAPES = {"events": (2, 12, 12), "static": (1, 12, 12)}


def config_of(kind: str):
    cfg = trev_config("trev-tiny-h0.5", kind, SHAPES[kind], 4, 8)
    cfg.data.duration_us = 300_000.0 if kind == "events" else 0.0
    return cfg.with_step_dt()  # a step is one bin of the new duration


@pytest.fixture(scope="module", params=["events", "static"])
def exported(request, tmp_path_factory):
    kind = request.param
    cfg = config_of(kind)
    torch.manual_seed(0)
    net = build_model(cfg).eval()
    path = tmp_path_factory.mktemp("trev") / f"{kind}.onnx"
    get_format("onnx")[1](cfg, net, path, None)
    return kind, net, runtime.load(path, threads=1)


def frames(kind: str, T: int = 4, B: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.poisson(0.6, (T, B, *SHAPES[kind])).astype(np.float32)
    return np.broadcast_to(x[:1], x.shape).copy() if kind == "static" else x


def test_protocol_says_t_and_encode_once(exported):
    kind, net, s = exported
    p = s.protocol
    assert p.uses_t and p.T_range == (1, 4) and p.T_trained == 4
    assert p.input_kind == ("encode-once" if kind == "static" else "event-frames")
    assert len(p.states) == net.n_states and all(n.shape is not None for n in p.neurons)


def test_onnx_equals_torch_at_every_step(exported):
    """The one graph, fed t, runs sub-network t: y after each step equals torch's."""
    kind, net, s = exported
    x = frames(kind)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    s.reset()
    for t in range(4):
        logits = s.step(x[t])
        want = ref[: t + 1].mean(0)  # readout "mean" of y over the steps run
        np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-5)


def test_runtime_early_exit(exported):
    kind, net, s = exported
    x = frames(kind)
    run_in = x[0] if kind == "static" else x
    full = s.run(run_in, 4)
    assert (full.steps == 4).all()
    early = s.run(run_in, Confidence(0.0, tmax=4))  # any confidence suffices: exit after step 1
    assert (early.steps == 1).all() and early.cost.macs.mean() < full.cost.macs.mean()
    with torch.no_grad():
        y1 = net(torch.from_numpy(x[:1]), [1])[0].numpy()
    np.testing.assert_allclose(early.outputs, y1, rtol=1e-5, atol=1e-5)


def test_static_stem_counted_once(exported):
    kind, _, s = exported
    once = [layer for layer in s.synapse_layers() if not layer.per_step]
    if kind == "static":
        assert len(once) == 1 and once[0].source is None and once[0].macs == 8 * 6 * 6 * 9
        # convs whose weights are gathered by t have their real fan-in (depthwise: k*k)
        assert all(layer.macs > 0 for layer in s.synapse_layers())
    else:
        assert once == []


def test_no_step_beyond_the_sub_networks(exported):
    kind, _, s = exported
    x = frames(kind, 5)
    with pytest.raises(InputError, match="T <= 4"):
        s.run(x[0] if kind == "static" else x, 5)
    s.reset()
    for t in range(4):
        s.step(x[t])
    with pytest.raises(InputError, match="T <= 4"):
        s.step(x[4])


def test_export_cli_check_passes(tmp_path):
    """``python -m export model.pt --check`` on a trev checkpoint: y and states at every t."""
    from export.cli import main as export_main
    from trainer.checkpoint import save_checkpoint

    cfg = trev_config("trev-tiny", "static", SHAPES["static"], 2, 8)
    cfg.data.spec = "digits:static"
    torch.manual_seed(0)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, cfg, build_model(cfg), {})
    with pytest.raises(SystemExit) as e:
        export_main([str(ckpt), "--check", "--json"])
    assert e.value.code == 0


def _trev_followed(exported, path=None):
    from export.check import run_onnx
    from export.trev_onnx import TRevStep, run_trev_torch

    kind, net, s = exported
    x = frames(kind, B=6)
    got = run_onnx(path or s.path, x)
    return run_trev_torch(TRevStep(net), x, s.protocol, follow=got), got, s.protocol


def test_trev_check_follows_onnxruntime_and_counts_rounding_ties(exported):
    """--check on a T-RevSNN compared the free runs' states within 1e-5: one rounding tie
    (a spike flipped by float32 summation order; 1 at --T 4 --batch-size 360 on a 2-epoch
    trev-tiny) made the stage state it feeds differ by 1.8e-4 and the check FAIL. Now every
    neuron's spikes must be onnxruntime's on onnxruntime's current, its own current within
    1e-5, the stage states (from onnxruntime's previous ones) and y within 1e-5; a spike
    that differs only on torch's own current is a tie, counted."""
    from export.check import compare

    ref, got, meta = _trev_followed(exported)
    result = compare(ref, got, meta)
    assert result.ok and result.summary["rounding_ties"] == 0, result.rows
    assert [r["state"] for r in result.summary["states"]] == [s.name for s in meta.states]
    assert sum(int(o.sum()) for o in got.outs) > 0  # neurons spiked: their spikes were compared
    j = next(i for i, o in enumerate(got.outs) if o.sum() > 0)
    ref.own[j] = ref.own[j].copy()
    ref.own[j].flat[3] = 1.0 - ref.own[j].flat[3]  # one spike flipped on torch's own current
    result = compare(ref, got, meta)
    assert result.ok and result.summary["rounding_ties"] == 1
    ref.outs[j] = ref.outs[j].copy()
    ref.outs[j].flat[3] = 1.0 - ref.outs[j].flat[3]  # the neuron itself differs on the same current
    assert not compare(ref, got, meta).ok
    ref, got, meta = _trev_followed(exported)
    ref.states[-1] = ref.states[-1] + 1e-3 * (1 + np.abs(ref.states[-1]).max())  # a stage state off
    result = compare(ref, got, meta)
    assert not result.ok and result.summary["states"][-1]["status"] == "FAIL"


def test_trev_check_detects_a_wrong_threshold_and_a_wrong_weight(exported, tmp_path):
    import onnx

    from export.check import compare

    _, _, s = exported
    for edit in ("v_th", "weight"):
        proto = onnx.load(s.path)
        if edit == "v_th":
            node = next(n for n in proto.graph.node if n.domain == "snn")
            next(a for a in node.attribute if a.name == "v_th").f *= 1.5
        else:  # one median weight of the largest conv stack off by 1%
            w = max((t for t in proto.graph.initializer if len(t.dims) >= 4), key=lambda t: np.prod(t.dims))
            a = onnx.numpy_helper.to_array(w).copy()
            k = np.argsort(np.abs(a), axis=None)[a.size // 2]
            a.flat[k] *= np.float32(1.01)
            w.CopyFrom(onnx.numpy_helper.from_array(a, w.name))
        onnx.save(proto, tmp_path / f"{edit}.onnx")
        assert not compare(*_trev_followed(exported, tmp_path / f"{edit}.onnx")).ok, edit


def test_trev_check_passes_a_multi_spike_model_whose_currents_are_large(tmp_path, capsys):
    """A trained multi-spike IF trev-tiny has currents up to thousands: an element of -1.19
    off by 7.4e-4 (float32 summation order) failed the element-wise bound, and a correct
    file was refused. Sums are now judged against torch's float64 sums and its own float32
    rounding (a wrong threshold or weight still fails: the tests above)."""
    from export.cli import main as export_main
    from tests.conftest import fit_checkpoint, run_main

    ckpt = tmp_path / "tvm.pt"
    fit_checkpoint(
        capsys,
        ckpt,
        "--model",
        "trev-tiny",
        "--neuron",
        "multi-if",
        "--epochs",
        "1",
        "--limit-train",
        "200",
        "--limit",
        "50",
        "--threads",
        "1",
    )
    code, out, err = run_main(export_main, capsys, str(ckpt), "--check", "--json")
    assert code == 0, err
    check = json.loads(out)["check"]
    assert check["ok"] and max(n["spikes_onnx"] for n in check["neurons"]) > 0


def test_bench_refuses_steps_past_the_sub_networks(exported, capsys):
    """Its default --T 20 (then --steps) was onnxruntime's Gather error, colour codes and all."""
    from runtime.cli import main as runtime_main
    from tests.conftest import one_error, run_main

    _, _, s = exported
    argv = ["bench", str(s.path), "--batch-size", "1", "--repeats", "1"]
    code, _, err = run_main(runtime_main, capsys, *argv, "--T", "20")
    one_error(code, err, "--T 20: this model has steps t = 0..3 only", "expected --T <= 4")
    code, out, err = run_main(runtime_main, capsys, *argv)  # the default: all of its sub-networks
    assert code == 0 and "4 steps per round" in out, err
    # edge pi-bench's --T is the same flag: its default 20 was refused on a T-RevSNN
    from edge.cli import main as edge_main

    argv = ["pi-bench", str(s.path), "--max-threads", "1", "--repeats", "1"]
    code, _, err = run_main(edge_main, capsys, *argv, "--T", "20")
    one_error(code, err, "--T 20: this model has steps t = 0..3 only", "expected --T <= 4")
    code, out, err = run_main(edge_main, capsys, *argv, "--json")
    assert code == 0 and json.loads(out)["T"] == 4, err


def test_bench_times_model_step_at_each_step_index(exported, tmp_path, monkeypatch):
    """bench's `torch model.step` ran every step as t = 0 (a T-RevSNN's sub-network 0, and
    the static stem re-encoded each step): other work than the runtime's."""
    from trainer.checkpoint import save_checkpoint
    from trainer.eager import torch_loops
    from trainer.trev import TRevNet

    kind, net, s = exported
    cfg = config_of(kind)
    ckpt = tmp_path / "trev.pt"
    save_checkpoint(ckpt, cfg, net, {"test_accuracy": 0.0})
    seen: list[int] = []
    step = TRevNet.step
    monkeypatch.setattr(TRevNet, "step", lambda self, x, t, states: (seen.append(t), step(self, x, t, states))[1])
    x = frames(kind, 4, 1)
    neurons = [n.spec for n in s.protocol.neurons]  # the file's: its own checkpoint was refused as "other neurons"
    inputs = x[0] if kind == "static" else x
    loops, _ = torch_loops(str(ckpt), inputs, kind != "static", 4, 1, compile_step=False, neurons=neurons)
    seen.clear()  # loading probes one step (trainer.checkpoint)
    loops["torch model.step"].run()
    assert seen == [0, 1, 2, 3]


@pytest.mark.parametrize("fmt", ["torchscript", "nir"])
def test_other_formats_say_a_trev_model_exports_to_onnx_and_pt2(tmp_path, capsys, fmt):
    """It said "layer model (TRevNet) cannot be exported", of a model whose ONNX export works."""
    from export.cli import main as export_main
    from tests.conftest import one_error, run_main
    from trainer.checkpoint import save_checkpoint

    cfg = trev_config("trev-tiny-h0.5", "static", SHAPES["static"], 4, 8)
    ckpt = tmp_path / "trev.pt"
    save_checkpoint(ckpt, cfg, build_model(cfg), {"test_accuracy": 0.0})
    code, _, err = run_main(export_main, capsys, str(ckpt), "--format", fmt)
    one_error(code, err, "a T-RevSNN model (trev-...) exports to ONNX and pt2", "its step reads t")


@pytest.mark.parametrize("kind", ["events", "static"])
def test_pt2_runs_the_trained_steps_and_carries_the_onnx_files_protocol(kind, tmp_path):
    """A T-RevSNN exported to ONNX only ("TorchScript, torch.export and NIR are not
    implemented for it"): its pt2 program is the step its ONNX file is traced from, t an
    input; TorchScript and NIR are refused with the reason."""
    from export.errors import ExportError

    cfg = config_of(kind)
    torch.manual_seed(0)
    net = build_model(cfg).eval()
    path = get_format("pt2")[1](cfg, net, tmp_path / "m.pt2", None)
    extra = {"flexsnn.protocol": ""}
    program = torch.export.load(str(path), extra_files=extra).module()
    onnx_path = get_format("onnx")[1](cfg, net, tmp_path / "m.onnx", None)
    assert json.loads(extra["flexsnn.protocol"]) == runtime.load(onnx_path).protocol.to_dict()
    x = torch.from_numpy(frames(kind, B=5))  # another batch than the trace's
    states: list[torch.Tensor | None] = [None] * net.n_states
    held = tuple(torch.zeros(5, *s["shape"]) for s in json.loads(extra["flexsnn.protocol"])["states"])
    assert len(held) == net.n_states
    with torch.no_grad():
        for t in range(cfg.method.T):
            want, states = net.step(x[0] if kind == "static" else x[t], t, states)
            got, *held = program(x[0] if kind == "static" else x[t], torch.tensor(t), tuple(held))
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for fmt in ("torchscript", "nir"):
        with pytest.raises(ExportError, match="exports to ONNX and pt2"):
            get_format(fmt)[1](cfg, net, tmp_path / f"m.{fmt}", None)
