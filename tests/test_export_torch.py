"""TorchScript and torch.export artifacts give exactly the torch model's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from export.prepare import deployable
from export.step import StepModule, state_shapes, zero_states
from export.torch_formats import export_pt2, export_torchscript
from tests.export_helpers import config, inputs, model

LOADERS = {
    "torchscript": (export_torchscript, lambda p: torch.jit.load(str(p))),
    "pt2": (export_pt2, lambda p: torch.export.load(str(p)).module()),
}


@pytest.mark.parametrize(
    ("fmt", "family"),
    [
        ("torchscript", dict(name="2C1FC", readout="li")),
        ("pt2", dict(name="2C1FC", readout="li")),
        ("pt2", dict(name="resnet10", in_shape=(1, 8, 8))),
    ],
    ids=["torchscript-vgg-li", "pt2-vgg-li", "pt2-resnet10"],
)
def test_torch_formats_equal_torch(tmp_path, fmt, family):
    cfg = config(**family)
    net = model(cfg)
    write, load = LOADERS[fmt]
    loaded = load(write(cfg, net, tmp_path / f"m.{fmt}"))
    ref = StepModule(deployable(net))
    x = torch.from_numpy(inputs(cfg, T=4, batch=3))  # batch 3: not the traced example batch
    s_ref = s_got = zero_states(state_shapes(ref.net, tuple(cfg.model.in_shape)), 3)
    spikes = 0.0
    for x_t in x:
        y_ref, *s_ref = ref(x_t, tuple(s_ref))
        y_got, *s_got = loaded(x_t, tuple(s_got))
        assert torch.equal(y_ref, y_got)
        assert all(torch.equal(a, b) for a, b in zip(s_ref, s_got))
        spikes += float(y_ref.abs().sum())
    assert spikes > 0
    with torch.no_grad():  # and the deployable module is the trained network
        assert torch.allclose(
            net.readout(net(x, [4] * len(net.stages))),
            ref.net.readout(ref.net(x, [4] * len(ref.net.stages))),
            atol=1e-4,
        )


@pytest.mark.parametrize(
    ("fmt", "family", "stage_T"),
    [
        ("torchscript", dict(name="2C1FC"), [2, 5]),  # up-sampling between the stages
        ("pt2", dict(name="2C1FC"), [2, 5]),  # (torch.export refused a batch-flattened one)
        ("pt2", dict(name="2C1FC", readout="li"), [4, 1]),  # down-sampling
        ("pt2", dict(name="resnet10", in_shape=(1, 8, 8)), [1, 3]),
    ],
    ids=["torchscript-up", "pt2-up", "pt2-down-li", "pt2-resnet10"],
)
def test_torch_formats_run_a_per_stage_configuration(tmp_path, fmt, family, stage_T):
    """Both formats ran every stage at one T: an MTT configuration (``--config``) was ONNX
    only. With one, the file is the whole sequence, each stage stepped at its T."""
    from export.check import run_torch

    cfg = config(**family)
    net = model(cfg)
    write, load = LOADERS[fmt]
    loaded = load(write(cfg, net, tmp_path / f"m.{fmt}", stage_T))
    x = inputs(cfg, T=stage_T[0], batch=3)  # batch 3: not the traced example batch
    got = loaded(torch.from_numpy(x))
    want = run_torch(deployable(net), x, stage_T).y  # what export --check compares ONNX with
    assert got.shape == (stage_T[-1], 3, 10) and np.array_equal(got.numpy(), want)
    assert np.abs(want).sum() > 0
    uniform = run_torch(deployable(net), inputs(cfg, T=stage_T[-1], batch=3)).y
    assert not np.allclose(uniform, want)  # the configuration is not one T for all
    for frames in (stage_T[0] + 1, stage_T[0] - 1 or 2):  # a trace unrolls T_0 steps
        with pytest.raises(Exception):  # noqa: B017 (torch raises its own kinds per format)
            loaded(torch.from_numpy(inputs(cfg, T=frames, batch=3)))
    with pytest.raises(Exception):  # noqa: B017 channels-last, as many numbers: TorchScript ran it
        loaded(torch.from_numpy(x).permute(0, 1, 3, 4, 2).contiguous())


@pytest.mark.parametrize("fmt", ["torchscript", "pt2"])
@pytest.mark.parametrize("stage_T", [None, [3, 1]])
def test_torch_formats_carry_the_onnx_files_protocol(tmp_path, fmt, stage_T):
    """A user of the TorchScript or pt2 file had no state shapes, readout rule, binning or T
    (only the ONNX file said them): both carry the ONNX file's protocol as an extra file,
    with a configuration the multi-rate file's (its stages' T)."""
    import json

    from export.onnx_export import export_onnx
    from export.protocol import KEY, read_protocol

    cfg = config(name="2C1FC", readout="li")
    net = model(cfg)
    path = LOADERS[fmt][0](cfg, net, tmp_path / f"m.{fmt}", stage_T)
    extra = {KEY: ""}
    if fmt == "torchscript":
        torch.jit.load(str(path), _extra_files=extra)
    else:
        torch.export.load(str(path), extra_files=extra)
    got = json.loads(extra[KEY])
    want = read_protocol(export_onnx(cfg, net, tmp_path / "m.onnx", stage_T)).to_dict()
    assert got == json.loads(json.dumps(want))
    assert [s["T"] for s in got.get("stages", [])] == (stage_T or [])
    assert [s["shape"] for s in got["states"]] == [list(s) for s in state_shapes(deployable(net), cfg.model.in_shape)]


@pytest.mark.parametrize(
    "fmt, kind, loader",
    [("torchscript", "a TorchScript file", "torch.jit.load"), ("pt2", "a torch.export file", "torch.export.load")],
)
def test_a_torch_program_given_where_a_model_is_read_names_what_it_is(tmp_path, capsys, fmt, kind, loader):
    """The runtime called it "a zip archive (a torch checkpoint?)" and suggested `python -m
    export` of it, which then said "not a torch checkpoint (RuntimeError)"."""
    from export.cli import main as export_main
    from runtime.cli import main as runtime_main
    from tests.conftest import one_error, run_main

    cfg = config(name="2C1FC")
    path = LOADERS[fmt][0](cfg, model(cfg), tmp_path / f"m.{fmt}")
    code, _, err = run_main(runtime_main, capsys, "run", str(path))
    one_error(code, err, f"is {kind}", f"which {loader} reads", "python -m export MODEL.pt")
    code, _, err = run_main(export_main, capsys, str(path), "-o", str(tmp_path / "x.onnx"))
    one_error(code, err, f"is {kind}", "expected a checkpoint written by trainer fit")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"m.{fmt}"]
