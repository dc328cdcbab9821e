"""The runtime on files written by the exporter: same answers as torch and as `trainer eval`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from runtime.limits import available_cores

torch = pytest.importorskip("torch")
pytest.importorskip("export.onnx_export")

import runtime  # noqa: E402
from export.onnx_export import export_onnx  # noqa: E402
from runtime.reference import Reference  # noqa: E402
from tests.export_helpers import config, inputs, model, variants_net  # noqa: E402


@pytest.mark.parametrize("case", ["vgg-bn", "vgg-li", "variants", "resnet"])
def test_runtime_matches_torch_on_exported_models(tmp_path, case):
    if case == "variants":
        cfg, net = variants_net()
    elif case == "resnet":
        cfg = config("resnet10", width=4, in_shape=(1, 8, 8), data="digits:static")
        net = model(cfg)
    else:
        cfg = config(readout="li" if case == "vgg-li" else "mean")
        net = model(cfg)
    path = export_onnx(cfg, net, tmp_path / "m.onnx")
    x = inputs(cfg, T=4, batch=5)
    with torch.no_grad():
        want = net.readout(net(torch.from_numpy(x), [4] * len(net.stages))).numpy()
    s = runtime.load(path)
    r = s.run(x)
    np.testing.assert_allclose(r.outputs, want, rtol=1e-4, atol=1e-4)
    assert (r.predictions == want.argmax(1)).all()
    ys, spikes = Reference(s.model, s.protocol).run(x)  # numpy reference agrees on spikes too
    for node, total in spikes.items():
        np.testing.assert_array_equal(r.spike_counts[node], total)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    from export.cli import main as export_main
    from trainer.cli import main as trainer_main

    d = tmp_path_factory.mktemp("e2e")
    ckpt, onnx_path = d / "m.pt", d / "m.onnx"
    trainer_main(
        [
            "fit",
            "--data",
            "digits",
            "--limit-train",
            "200",
            "--limit",
            "20",
            "--epochs",
            "1",
            "--tmax",
            "3",
            "--width",
            "8",
            "--calib-batches",
            "2",
            "--quiet",
            "--out",
            str(ckpt),
            # LIF with BatchNorm, calibrated: the path with the most to go wrong in export
            "--neuron",
            "lif",
            "--bias",
            "--norm",
            "bn",
        ]
    )
    with pytest.raises(SystemExit) as e:
        export_main([str(ckpt), "-o", str(onnx_path)])
    assert e.value.code == 0
    return ckpt, onnx_path


def test_fixed_T_accuracy_equals_trainer_eval(trained, capsys):
    from runtime.cli import main as runtime_main
    from trainer.cli import main as trainer_main

    ckpt, onnx_path = trained
    capsys.readouterr()
    trainer_main(["eval", str(ckpt), "--T", "1", "2", "5", "--limit", "120", "--json"])
    want = json.loads(capsys.readouterr().out)
    (run,) = want["runs"]
    for T, acc in zip(want["T"], run["accuracy"]):
        runtime_main(
            [
                "run",
                str(onnx_path),
                "--data",
                "digits",
                "--limit",
                "120",
                "--policy",
                f"fixed:{T}",
                "--batch-size",
                "50",
                "--json",
            ]
        )
        got = json.loads(capsys.readouterr().out)
        assert (got["n"], got["accuracy"], got["mean_steps"]) == (run["n"], acc, T)
        assert got["threads"] == available_cores()  # batch 50, no --threads: all cores, said


def test_fixed_binning_is_the_same_in_trainer_eval_and_the_runtime(trained, capsys):
    """`--binning fixed`: bins of the trained width (the recording in the trained T bins) at
    any T, in both CLIs. trainer eval split the recording into T fixed bins, which is equal
    binning again: the flag did nothing there, and the two printed other accuracies."""
    from runtime.cli import main as runtime_main
    from trainer.cli import main as trainer_main

    ckpt, onnx_path = trained
    argv = ["--limit", "120", "--json"]
    capsys.readouterr()
    accuracy = {}
    for binning in ("fixed", "equal"):
        trainer_main(["eval", str(ckpt), "--T", "1", "2", "5", "--binning", binning, *argv])
        accuracy[binning] = json.loads(capsys.readouterr().out)["runs"][0]["accuracy"]
    assert accuracy["fixed"] != accuracy["equal"]  # T != the trained 3: other bins, other inputs
    for T, acc in zip((1, 2, 5), accuracy["fixed"]):
        runtime_main(["run", str(onnx_path), "--data", "digits", "--binning", "fixed", "--policy", f"fixed:{T}", *argv])
        assert json.loads(capsys.readouterr().out)["accuracy"] == acc, T


def test_bench_interleaves_the_runtime_and_torch(trained, capsys):
    from runtime.cli import main as runtime_main

    ckpt, onnx_path = trained
    runtime_main(
        [
            "bench",
            str(onnx_path),
            "--checkpoint",
            str(ckpt),
            "--batch-size",
            "1",
            "--T",
            "3",
            "--repeats",
            "2",
            "--threads",
            "1",
            "--no-compile",
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert result["seed"] == 0 and result["versions"]["torch"]  # the input timed on, for a rerun
    row = result["rows"][0]
    names = [s["system"] for s in row["systems"]]
    assert names == [
        "runtime stepper",
        "runtime SDK",
        "runtime stepper, ort bodies",
        "torch model.step",
        "torch plain step",
    ]
    assert row["threads"] == 1 and row["unavailable"] == {"torch.compile": "not asked (--no-compile)"}
    assert all(s["cpu_ms_min"] <= s["cpu_ms_median"] for s in row["systems"])


def test_bench_notes_say_why_a_system_beats_the_gemm_limit(trained, capsys, monkeypatch):
    """A limit slower than the runtime: with more threads than free cores the wall limit
    waited ("% of limit" of 8288 without a word); at one thread on a quiet machine that is
    not the cause (the note said it was, and to rerun with --threads 1, given already):
    numpy's matmul at the model's shapes is beaten, and the machine's peak is stated."""
    import runtime.bench
    from runtime.cli import main as runtime_main

    monkeypatch.setattr(runtime.bench, "gemm_limit_ms", lambda shapes, threads, repeats=7: (1e3, 1e3))  # starved
    monkeypatch.setattr(runtime.bench, "available_cores", lambda: 2)  # 1 thread + load 0.2 fits, + 3.0 does not
    argv = ["bench", str(trained[1]), "--batch-size", "1", "--T", "2", "--repeats", "1", "--threads", "1"]
    for load, waited in ((0.2, False), (3.0, True)):
        monkeypatch.setattr(runtime.bench.os, "getloadavg", lambda load=load: (load, load, load))
        runtime_main([*argv, "--json"])
        (row,) = json.loads(capsys.readouterr().out)["rows"]
        notes = row["notes"]
        assert any(n.startswith("a system ran faster than the wall GEMM limit") for n in notes) == waited, notes
        (cpu,) = [n for n in notes if n.startswith("a system used less CPU than the GEMM limit")]
        assert f"the machine's peak ({row['peak_gflops_cpu']:.1f} GFLOP/s at 1024x1024)" in cpu
    runtime_main(argv)
    out = capsys.readouterr().out
    assert "note: a system used less CPU than the GEMM limit" in out and "the machine's peak" in out
    # percents of the limit with one decimal, as every percent a person reads (were four)
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("runtime stepper "))
    assert all(re.fullmatch(r"\d+\.\d", cell) for cell in row[-2:]), row


def test_timing_commands_refuse_more_threads_than_cores(trained, capsys, monkeypatch):
    """`runtime bench --threads 1000` on 2 cores ran 550 s at a load of 540 and printed a
    "% of limit" of 14019; trainer memory and trev-memory timed the same way."""
    import runtime.limits
    from runtime.cli import main as runtime_main
    from tests.conftest import run_main
    from trainer.cli import main as trainer_main

    monkeypatch.setattr(runtime.limits, "available_cores", lambda: 2)
    for main, argv in (
        (runtime_main, ["bench", str(trained[1]), "--threads", "3"]),
        (trainer_main, ["memory", "--threads", "3"]),
        (trainer_main, ["trev-memory", "--threads", "3"]),
    ):
        code, out, err = run_main(main, capsys, *argv)
        assert code == 2 and out == "" and "--threads 3: this process may run on 2 cores" in err, err


def test_plain_torch_step_computes_what_model_step_does(trained):
    """The bench's plain torch baseline is the same network (BatchNorm folded), not a cheaper one."""
    import torch

    from trainer.checkpoint import load_checkpoint
    from trainer.eager import plain_ops, plain_step

    cfg, model, _ = load_checkpoint(str(trained[0]))
    with torch.no_grad():
        step = plain_step(model)
        assert not any(isinstance(op, torch.nn.BatchNorm2d) for op in plain_ops(model))
    x = torch.rand(5, 4, *cfg.model.in_shape)
    with torch.inference_mode():
        sa: list = [None] * model.n_states
        sb: list = [None] * model.n_states
        for x_t in x:
            ya, sa = model.step(x_t, 0, sa)
            yb, sb = step(x_t, sb)
            assert torch.allclose(ya, yb, atol=1e-4)
