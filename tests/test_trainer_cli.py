"""The trainer CLI: main job, and bad input as one clear line with exit status 2."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from runtime.limits import available_cores
from runtime.neuron import presets as neuron_presets
from tests.conftest import one_error
from tests.conftest import run_trainer as run
from trainer.checkpoint import load_checkpoint
from trainer.cli import main

TINY = ["--epochs", "1", "--limit-train", "120", "--limit", "60", "--width", "4", "--quiet"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "m.pt"
    main(["fit", "--data", "digits:static", "--model", "2C1FC", "--tmax", "3", "--out", str(path), *TINY])
    return path


def test_fit_then_eval_json(checkpoint, capsys):
    code, out, err = run(capsys, "eval", str(checkpoint), "--T", "1", "2", "5", "--json", "--limit", "60")
    assert code == 0, err
    obj = json.loads(out)
    (r,) = obj["runs"]  # one checkpoint: the same shape as several
    assert obj["T"] == [1, 2, 5] and len(r["accuracy"]) == 3 and r["n"] == 60
    assert r["checkpoint"] == str(checkpoint) and r["data"] == "digits:static"
    assert all(0.0 <= a <= 1.0 for a in r["accuracy"])


def test_eval_table_and_plot(checkpoint, capsys, tmp_path):
    png = tmp_path / "acc.png"
    code, out, _ = run(capsys, "eval", str(checkpoint), str(checkpoint), "--limit", "30", "--plot", str(png))
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[1].split()[0] == "T" and len(lines) == 3 + 3 + 1  # title, header, rule, T = 1..3, the plot
    assert lines[-1] == f"wrote {png}"  # as tradeoff says it (eval wrote it unsaid)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = run(capsys, "eval", str(checkpoint), "--limit", "30", "--plot", str(png), "--json")
    assert code == 0 and json.loads(out)["plot"] == str(png)


def test_eval_of_checkpoints_trained_at_different_T(checkpoint, capsys, tmp_path):
    """Without --T each checkpoint runs its own trained range: the table has the union of
    the T, '-' where one was not run (was an IndexError, or rows dropped silently)."""
    from trainer.checkpoint import save_checkpoint

    cfg, model, metrics = load_checkpoint(checkpoint)
    cfg.method.tmax = 5
    save_checkpoint(tmp_path / "t5.pt", cfg, model, metrics)
    for order in ([checkpoint, tmp_path / "t5.pt"], [tmp_path / "t5.pt", checkpoint]):
        code, out, err = run(capsys, "eval", *map(str, order), "--limit", "30")
        assert code == 0, err
        rows = [line.split() for line in out.strip().splitlines()[3:]]
        assert [r[0] for r in rows] == ["1", "2", "3", "4", "5"]
        short = 1 + order.index(checkpoint)  # its column: trained for T = 1..3
        assert [r[short] for r in rows[3:]] == ["-", "-"] and "-" not in rows[2]
        code, out, err = run(capsys, "eval", *map(str, order), "--limit", "30", "--json")
        obj = json.loads(out)
        runs = {r["checkpoint"]: r for r in obj["runs"]}
        assert obj["T"] == [1, 2, 3, 4, 5] and runs[str(checkpoint)]["accuracy"][3:] == [None, None]
        assert [r["checkpoint"] for r in obj["runs"]] == [str(p) for p in order]
        assert all(r["n"] == 30 for r in obj["runs"])
    png = tmp_path / "acc.png"
    code, _, err = run(capsys, "eval", str(checkpoint), str(tmp_path / "t5.pt"), "--limit", "30", "--plot", str(png))
    assert code == 0 and png.stat().st_size > 0, err


def test_eval_refuses_binning_for_static_data(checkpoint, capsys):
    """--binning on images was accepted and ignored (the runtime's too): refused, named."""
    code, _, err = run(capsys, "eval", str(checkpoint), "--T", "2", "--binning", "fixed", "--limit", "10")
    one_error(code, err, "--binning fixed: digits:static is static data, which has no time to bin")


def test_calibrate_warns_outside_the_trained_range(capsys, tmp_path):
    """eval and runtime run warn at a T outside the trained range; calibrate wrote silently."""
    bn = tmp_path / "bn.pt"
    main(["fit", "--data", "digits:static", "--model", "2C1FC", "--tmax", "3", "--norm", "bn", "--out", str(bn), *TINY])
    capsys.readouterr()
    argv = ["calibrate", str(bn), "--T", "20", "--limit", "10", "--calib-batches", "1", "--out", str(tmp_path / "c.pt")]
    code, _, err = run(capsys, *argv)
    assert code == 0 and f"warning: {bn} was trained for T in [1, 3]; T=20 lies outside" in err, err


def test_eval_on_the_validation_split(checkpoint, capsys, tmp_path):
    """--split val: the held-out training recordings (digits: index % 10 == 1, 180 of them),
    where choices between models are made; refused for a model that trained on them."""
    code, out, err = run(capsys, "eval", str(checkpoint), "--split", "val", "--T", "2", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["split"] == "val" and obj["runs"][0]["n"] == 180
    code, out, _ = run(capsys, "eval", str(checkpoint), "--split", "val", "--T", "2")
    assert out.startswith("val accuracy (%) on digits:static (180 samples)")
    cfg, model, metrics = load_checkpoint(checkpoint)
    cfg.data.train_split = "train"
    from trainer.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "all.pt", cfg, model, metrics)
    code, _, err = run(capsys, "eval", str(tmp_path / "all.pt"), "--split", "val", "--T", "2")
    assert code == 2 and err.count("\n") == 1 and "--train-split train-minus-val" in err


def _bad_checkpoints(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 50)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    future = tmp_path / "future.pt"
    torch.save({"format": "flexsnn-checkpoint/9", "config": {}, "state_dict": {}, "metrics": {}}, future)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(future.read_bytes()[:300])  # an interrupted copy: the zip's end is missing
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    return {
        "truncated": (truncated, "is truncated or corrupted: it starts as a torch checkpoint"),
        "empty": (empty, "is empty (0 bytes)"),
        "corrupt": (corrupt, "not a torch checkpoint"),
        "foreign": (foreign, "not a flexsnn checkpoint"),
        "future": (future, "format version"),
        "missing": (tmp_path / "none.pt", "does not exist"),
    }


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/flexsnn_pwned",))


def test_code_pickle_is_refused_not_run(tmp_path, capsys):
    import os

    marker = "/tmp/flexsnn_pwned"
    if os.path.exists(marker):
        os.remove(marker)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "flexsnn-checkpoint/1", "config": _Evil()}, evil, pickle_protocol=2)
    code, _, err = run(capsys, "eval", str(evil))
    assert code == 2 and "refused" in err and not os.path.exists(marker)
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump(_Evil(), f)
    code, _, err = run(capsys, "eval", str(tmp_path / "plain.pkl"))
    assert code == 2 and not os.path.exists(marker)


@pytest.mark.parametrize("kind", ["truncated", "empty", "corrupt", "foreign", "future", "missing"])
def test_bad_checkpoints(kind, tmp_path, capsys):
    path, message = _bad_checkpoints(tmp_path)[kind]
    code, _, err = run(capsys, "eval", str(path))
    one_error(code, err, message)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "vgg99"], "expected one of"),
        (["--method", "bptt"], "expected one of ['sdt', 'nmt', 'mtt']"),
        (["--data", "cifar10"], "unknown data spec"),
        (["--data", "nmnist:/no/such/folder"], "not a directory"),
        (["--data", "mnist"], "needs a folder"),
        (["--method", "sdt", "--T", "0"], "--T must be a positive integer"),
        (["--tmin", "0"], "--tmin must be a positive integer"),
        (["--tmin", "5", "--tmax", "3"], "must not exceed"),
        (
            ["--neuron", "izhikevich"],
            f"neuron 'izhikevich' is unknown; expected one of {list(neuron_presets())}",
        ),
        (["--surrogate", "atan"], "expected one of"),
        (["--out", "/no/such/folder/m.pt"], "folder /no/such/folder does not exist (create it first: mkdir -p /no"),
        (["--data", "digits:static", "--stages", "9"], "stages"),
        (["--data", "digits:static", "--first-stage", "first"], "'digits:static' is static data, which both"),
        (["--threads", "-1"], "--threads must be a non-negative integer (at most 1024; 0: all cores)"),
        # a flag the method does not read is refused, not ignored
        (["--method", "mtt", "--T", "3"], "--T applies to sdt and the online methods"),
        (
            ["--method", "sdt", "--configs-per-batch", "3"],
            "--configs-per-batch applies to nmt and mtt, not to method 'sdt'",
        ),
        (["--method", "sdt", "--first-stage", "first"], "--first-stage applies to nmt and mtt"),
        (["--method", "sltt", "--T", "3", "--tmax", "8"], "--T 3 and --tmax 8"),
        (["--method", "nmt", "--mse-weight", "0.2"], "--mse-weight applies to the online methods"),
        (["--method", "sltt", "--k-scale", "K"], "--k-scale applies to sltt-k"),
        (["--method", "ottt-a", "--ndot-ratio", "clamped"], "--ndot-ratio applies to ndot-a and ndot-o"),
        # ... at its default value too: the command line reads as if it chose something
        (["--method", "sdt", "--anchor", "none"], "--anchor applies to nmt and mtt, not to method 'sdt'"),
        (["--method", "sdt", "--anchor", "tmin"], "--anchor applies to nmt and mtt, not to method 'sdt'"),
        (["--method", "sdt", "--tmin", "1"], "--tmin applies to nmt and mtt"),
        (["--method", "nmt", "--mtt-order", "any"], "--mtt-order applies to mtt, not to method 'nmt'"),
        (["--method", "sltt", "--T", "2", "--loss", "readout"], "--loss applies to sdt, nmt and mtt"),
        (["--method", "mtt", "--K", "0"], "--K applies to sltt-k, not to method 'mtt'"),
        (["--method", "sltt", "--T", "2", "--tmax", "6"], "--T 2 and --tmax 6"),
        (["--model", "trev-tiny", "--stages", "2"], "--stages applies to the MTT models"),
        # an fc net has no conv: these trained the plain fc net and were recorded as on
        (["--model", "fc-32", "--norm", "bn"], "model fc-32 has no conv layers: --norm bn (ModelConfig.bn"),
        (["--model", "fc-32-16", "--width", "8"], "--width 8 (ModelConfig.width) would be ignored"),
    ],
)
def test_bad_fit_arguments(argv, message, capsys):
    code, _, err = run(capsys, "fit", *TINY, *argv)
    one_error(code, err, message)


def test_empty_data_folder(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    code, _, err = run(capsys, "fit", *TINY, "--data", f"nmnist:{tmp_path}")
    assert code == 2 and "no N-MNIST" in err


def test_eval_rejects_nonpositive_T(checkpoint, capsys):
    code, _, err = run(capsys, "eval", str(checkpoint), "--T", "0", "3")
    assert code == 2 and "positive" in err


def test_threads_0_is_every_core_as_in_the_runtime(checkpoint, capsys):
    """``--threads 0`` means every core the process may use in every CLI (the trainer
    refused it while the runtime took it as all cores)."""
    try:
        code, _, err = run(capsys, "eval", str(checkpoint), "--T", "2", "--limit", "20", "--threads", "0")
        assert code == 0, err
        assert torch.get_num_threads() == available_cores()
    finally:
        torch.set_num_threads(1)


def test_checkpoint_records_what_a_rerun_must_match(checkpoint):
    cfg, _, metrics = load_checkpoint(checkpoint)
    env = metrics["environment"]
    assert env["threads"] == 1 and env["seed"] == 0 and env["deterministic"] is False and env["processes"] == 1
    assert env["torch"] == str(torch.__version__) and {"numpy", "python"} <= set(env)
    # the instruction set torch's kernels use moves losses from epoch 1 (AVX512 vs AVX2)
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and "cpu" in env
    assert cfg.data.train_split == "train-minus-val"  # the validation split was held out


def test_fit_is_repeatable_at_a_fixed_thread_count(tmp_path, capsys):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    for out in (a, b):
        main(["fit", "--data", "digits:static", "--tmax", "3", "--deterministic", "--out", str(out), *TINY])
    sa, sb = (torch.load(p, weights_only=True) for p in (a, b))
    assert all(torch.equal(sa["state_dict"][k], sb["state_dict"][k]) for k in sa["state_dict"])
    assert sa["metrics"]["environment"]["deterministic"] is True
    torch.use_deterministic_algorithms(False)


def test_epoch_and_calibration_lines_say_what_they_measure(tmp_path, capsys):
    out = tmp_path / "bn.pt"
    argv = [a for a in TINY if a != "--quiet"]
    code, stdout, err = run(
        capsys,
        "fit",
        "--data",
        "digits:static",
        "--tmax",
        "3",
        "--neuron",
        "lif",
        "--norm",
        "bn",
        "--calib-batches",
        "5",  # more than the 120 training samples fill: the line says the 2 batches that ran
        "--out",
        str(out),
        *argv,
    )
    assert code == 0, err
    assert "epoch 1/1: train loss" in stdout
    assert "(BatchNorm running statistics of training, before calibration)" in stdout
    ran = "2 training batches of 64, all 120 samples"
    assert f"BatchNorm calibration at T=3 (2 layers, {ran}): test accuracy at T=3 " in stdout
    assert "after BatchNorm calibration at T=3" in stdout
    code, stdout, err = run(
        capsys,
        "calibrate",
        str(out),
        "--T",
        "1",
        "--calib-batches",
        "1",
        "--limit",
        "30",
        "--out",
        str(tmp_path / "c1.pt"),
    )
    assert code == 0, err
    assert "calibrated 2 BatchNorm layers at T=1 (1 training batch of 64): test accuracy at T=1 " in stdout
    assert "->" in stdout and "(30 samples)" in stdout
    three = tmp_path / "c3.pt"
    code, stdout, err = run(
        capsys, "calibrate", str(out), "--calib-batches", "1", "--limit", "30", "--calib-runs", "3", "--out", str(three)
    )
    assert code == 0, err
    assert "over 3 calibration runs" in stdout and "the written statistics are their average" in stdout
    m = torch.load(three, weights_only=True)["metrics"]
    per_run = m["test_accuracy_per_calibration_run"]
    assert m["calib_runs"] == 3 and len(per_run) == 3
    assert m["test_accuracy_mean_over_calibration_runs"] == pytest.approx(sum(per_run) / 3)
    code, _, err = run(capsys, "calibrate", str(out), "--calib-runs", "0", "--out", str(tmp_path / "c0.pt"))
    assert code == 2 and "--calib-runs" in err
    code, _, err = run(capsys, "calibrate", str(out), "--out", str(out))
    assert code == 2 and "writing it would destroy the input" in err


def test_calibrate_refuses_a_model_without_batchnorm(checkpoint, tmp_path, capsys):
    code, _, err = run(capsys, "calibrate", str(checkpoint), "--out", str(tmp_path / "c.pt"))
    assert code == 2 and "has no BatchNorm layers" in err


def test_eval_warns_outside_the_trained_range(checkpoint, capsys):
    code, out, err = run(capsys, "eval", str(checkpoint), "--T", "2", "5", "--limit", "20", "--json")
    assert code == 0
    assert json.loads(out)["warnings"] == [f"{checkpoint} was trained for T in [1, 3]; T=5 lies outside that range"]
    assert err.startswith("warning: ")


def test_an_input_too_small_for_the_models_poolings_is_one_error(capsys, tmp_path):
    """A 3x3 sensor (or --transform downsample:3x3) pooled to nothing: the meta-device check
    passed, the default-model search and training's first step ended in a traceback."""
    out = tmp_path / "m.pt"
    args = ["fit", "--data", "digits", "--transform", "downsample:3x3", "--epochs", "1", "--limit-train", "20"]
    code, _, err = run(capsys, *args, "--limit", "10", "--threads", "1", "--out", str(out))
    one_error(code, err, "cannot take inputs of shape [2, 3, 3]", "too small for its poolings", "--model fc-64")
    assert not out.exists()


def test_a_first_stage_first_model_is_evaluated_and_exported_on_the_frames_it_trained_on(capsys, tmp_path):
    """MTT A.2 (``--first-stage first``) trains at T on the first T of Tmax frames, but the
    checkpoint said equal binning: eval, calibration and the exported file re-binned the
    recording into T frames (a stranger's digits model: 36.4% at T=1 evaluated so, 92.2% on
    the frames it trained on). Now it records fixed bins of the trained width, which are
    those frames, and a checkpoint written before reads so."""
    import numpy as np

    from export.cli import main as export_main
    from runtime.data import load_dataset
    from runtime.protocol import read_model
    from tests.conftest import run_main
    from trainer.checkpoint import save_checkpoint
    from trainer.train import evaluate

    path = tmp_path / "first.pt"
    flags = ["--data", "digits", "--method", "mtt", "--tmax", "4", "--first-stage", "first", *TINY]
    code, _, err = run(capsys, "fit", *flags, "--out", str(path))
    assert code == 0, err
    cfg, model, metrics = load_checkpoint(path)
    assert (cfg.data.binning, cfg.dt_us) == ("fixed", cfg.data.duration_us / 4)
    test = load_dataset("digits", "test", limit=60)
    train_frames = load_dataset("digits", "train", limit=4)  # the frames A.2 trains on, of its training split
    for T in (1, 2, 3):
        np.testing.assert_array_equal(
            train_frames.frames(np.arange(4), T, cfg.data.binning, cfg.dt_us), train_frames.frames(np.arange(4), 4)[:T]
        )
    code, out, err = run(capsys, "eval", str(path), "--T", "1", "2", "--json", "--limit", "60")
    assert code == 0, err
    expected = evaluate(model, test, [1, 2], binning="fixed", dt_us=cfg.dt_us)
    assert json.loads(out)["runs"][0]["accuracy"] == expected
    assert expected != evaluate(model, test, [1, 2], binning="equal")  # what eval ran before
    code, _, err = run_main(export_main, capsys, str(path), "-o", str(tmp_path / "first.onnx"))
    assert code == 0, err
    _, meta = read_model(tmp_path / "first.onnx")
    assert (meta.binning, meta.dt_us) == ("fixed", cfg.dt_us)
    cfg.data.binning = "equal"  # as written before the binning was recorded
    save_checkpoint(tmp_path / "old.pt", cfg, model, metrics)
    assert load_checkpoint(tmp_path / "old.pt")[0].data.binning == "fixed"


def test_fit_and_calibrate_json_is_one_object_with_the_checkpoints_figures(capsys, tmp_path):
    """fit and calibrate said their result in a prose line only (`--json` was refused); a
    script read it with a regex. Now one JSON object on stdout, the lines for a person on
    stderr, and its figures are the checkpoint's."""
    path, calibrated = tmp_path / "m.pt", tmp_path / "c.pt"
    code, out, err = run(capsys, "fit", "--data", "digits", "--norm", "bn", "--json", "-o", str(path), *TINY)
    assert code == 0, err
    summary = json.loads(out)  # nothing else on stdout
    _, _, metrics = load_checkpoint(path)
    assert summary["checkpoint"] == str(path) and summary["test_accuracy"] == metrics["test_accuracy"]
    assert (summary["T"], summary["n"], summary["history"]) == (6, 60, metrics["history"])
    code, out, err = run(capsys, "calibrate", str(path), "-o", str(calibrated), "--json", "--limit", "30")
    assert code == 0, err
    summary = json.loads(out)
    _, _, metrics = load_checkpoint(calibrated)
    assert summary["checkpoint"] == str(calibrated) and summary["n"] == 30
    for key in ("test_accuracy", "test_accuracy_before_calibration", "bn_calibrated_layers", "bn_calibration_T"):
        assert summary[key] == metrics[key], key
    assert "calibrated 2 BatchNorm layers" in err  # the person's line, on stderr


def test_a_model_calibrated_at_one_T_runs_there_by_default_and_says_so_at_another(capsys, tmp_path):
    """`trainer calibrate --T 3` on a model trained at T=6: its exported file still ran
    fixed:6 by default (a stranger's: 7.8% there, 64.7% at T=3) and `eval --T 3 6` said
    nothing. The T of the statistics is now the config's, the file's default T, and a
    warning at any other horizon (eval, the SDK, runtime run); older files get it from their
    metrics."""
    import warnings

    import runtime
    from export.cli import main as export_main
    from runtime.errors import TrainedRangeWarning
    from runtime.protocol import read_model
    from tests.conftest import run_main
    from trainer.checkpoint import save_checkpoint

    path, calibrated, onnx_path = tmp_path / "m.pt", tmp_path / "c.pt", tmp_path / "c.onnx"
    assert run(capsys, "fit", "--data", "digits:static", "--norm", "bn", "-o", str(path), *TINY)[0] == 0
    assert load_checkpoint(path)[0].method.bn_T == 6  # fit calibrates at its trained T
    code, _, err = run(capsys, "calibrate", str(path), "--T", "3", "--calib-batches", "1", "-o", str(calibrated))
    assert code == 0, err
    cfg, model, metrics = load_checkpoint(calibrated)
    assert cfg.method.bn_T == metrics["bn_calibration_T"] == 3
    code, out, err = run(capsys, "eval", str(calibrated), "--T", "3", "6", "--limit", "30", "--json")
    assert code == 0, err
    (note,) = json.loads(out)["warnings"]
    assert note == (
        f"{calibrated}'s BatchNorm statistics were calibrated at T=3 (one set fits one T); T=6 runs with them: "
        "recalibrate at the T you deploy (trainer calibrate --T N)"
    )
    assert run_main(export_main, capsys, str(calibrated), "-o", str(onnx_path))[0] == 0
    _, protocol = read_model(onnx_path)
    assert (protocol.bn_calibration_T, protocol.T_trained, protocol.default_T) == (3, 6, 3)
    # ... and through a NIR round trip (its import built a config without it: fixed:6 again)
    nir_path, back = tmp_path / "c.nir", tmp_path / "back.onnx"
    assert run_main(export_main, capsys, str(calibrated), "--format", "nir", "-o", str(nir_path))[0] == 0
    assert run_main(export_main, capsys, str(nir_path), "-o", str(back))[0] == 0
    assert read_model(back)[1].default_T == 3
    session, x = runtime.load(onnx_path), np.zeros((2, 1, 8, 8), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainedRangeWarning)
        assert session.run(x).steps.tolist() == [3, 3]  # the default: the statistics' T, unwarned
    with pytest.warns(TrainedRangeWarning, match=r"calibrated at T=3 .* this run's horizon is T=6"):
        session.run(x, "fixed:6")
    from runtime.policies import t_range_note

    assert "this sweep runs to T=[1, 2, 4]" in t_range_note(protocol, 1, 4, range(1, 5))  # tradeoff --fixed-curve
    assert t_range_note(protocol, 1, 3) is None  # an early exit with horizon 3: nothing to say
    cfg.method.bn_T = None  # as written before the config kept it
    save_checkpoint(tmp_path / "old.pt", cfg, model, metrics)
    assert load_checkpoint(tmp_path / "old.pt")[0].method.bn_T == 3


def test_fit_says_a_class_without_training_samples(capsys, tmp_path):
    """npz labels 1..3 without `classes` make 4 classes, class 0 never seen: it trained and
    wrote a 4-output model without a word."""
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, images=rng.random((50, 1, 6, 6)).astype(np.float32), labels=1 + np.arange(50) % 3)
    argv = ["fit", "--data", f"npz:{data}", "--epochs", "1", "--quiet", "--json", "-o", str(tmp_path / "m.pt")]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    note = f"the training data has no sample of class '0' (npz:{data}): the model cannot learn to predict it"
    assert json.loads(out)["warnings"] == [note] and f"warning: {note}" in err
    np.savez(data, images=rng.random((50, 1, 6, 6)).astype(np.float32), labels=np.arange(50) % 3)
    code, out, err = run(capsys, *argv)
    assert code == 0 and json.loads(out)["warnings"] == [] and "warning" not in err, err


def test_a_first_stage_first_model_is_calibrated_on_the_frames_it_trained_on(capsys, tmp_path):
    """`trainer calibrate` re-estimated an A.2 model's BatchNorm statistics on the recording
    re-binned into T (a review's mutant, calibration on equal bins, passed every test)."""
    import numpy as np
    import torch

    from trainer.search_cli import model_data
    from trainer.train import calibrate_bn

    path, out = tmp_path / "first.pt", tmp_path / "calibrated.pt"
    flags = ["--data", "digits", "--tmax", "4", "--first-stage", "first", "--norm", "bn", "--calib-batches", "0"]
    assert run(capsys, "fit", *flags, *TINY, "-o", str(path))[0] == 0
    code, _, err = run(
        capsys, "calibrate", str(path), "--T", "2", "--calib-batches", "2", "--batch-size", "16", "-o", str(out)
    )
    assert code == 0, err
    cfg, model, _ = load_checkpoint(path)
    train = model_data(str(path), cfg, None, "train", None)

    def stats(binning: str) -> list[np.ndarray]:
        m = load_checkpoint(path)[1]
        calibrate_bn(m, train, 2, 2, 16, 0, binning, cfg.dt_us)
        return [b.running_mean.numpy() for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)]

    got = [b.running_mean.numpy() for b in load_checkpoint(out)[1].modules() if isinstance(b, torch.nn.BatchNorm2d)]
    for a, b in zip(got, stats("fixed"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(got, stats("equal")))  # what it ran before


def test_a_plot_takes_a_file_name_that_is_not_utf8(tmp_path):
    """`eval lat\\xe8.pt --plot p.png` (a Latin-1 byte in the name) was a matplotlib TypeError
    traceback: the legend drew the name's lone surrogate."""
    import os

    from runtime.evaluate import plot_tradeoff
    from trainer.cli import plot_accuracy

    name = os.fsdecode(b"lat\xe8.pt")
    plot_accuracy({name: {1: 0.5, 2: 0.6}}, str(tmp_path / "p.png"))
    row = {"policy": "fixed:2", "mean_steps": 2.0, "energy_uj": 1.0, "accuracy": 0.5}
    plot_tradeoff([row], str(tmp_path / "t.png"), title=name)
    assert (tmp_path / "p.png").stat().st_size > 1000 and (tmp_path / "t.png").stat().st_size > 1000
