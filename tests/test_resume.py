"""Resume (``fit --resume``) and fine-tune (``fit --init-from``, with BatchNorm folded and
biases dropped: MTT appendix A.3), issue 18."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from runtime.data import load_dataset
from runtime.protocol import read_model
from tests.conftest import fit_checkpoint, one_error
from tests.conftest import run_trainer as run
from trainer.checkpoint import TRAIN_STATE_KEY, read_checkpoint, save_checkpoint
from trainer.config import Config
from trainer.fold import fold_and_drop
from trainer.models import build_model
from trainer.train import Start, fit


def config(method: str) -> Config:
    cfg = Config()
    cfg.model.name, cfg.model.width, cfg.model.in_shape = "2C1FC", 4, (2, 20, 20)
    cfg.model.bn, cfg.model.bn_stats = True, "step"
    cfg.data.shape = (2, 20, 20)
    m = cfg.method
    m.name, m.epochs, m.batch_size, m.lr, m.T, m.tmax, m.calib_batches = method, 2, 16, 3e-3, 4, 4, 2
    if method == "sltt-k":
        m.K = 2
    return cfg.validate()


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("method", ["mtt", "sltt-k"])
def test_resume_after_epoch_1_of_2_is_bit_identical(method, tmp_path):
    """One thread, deterministic: a run interrupted after epoch 1 and resumed from the
    checkpoint written then ends with the weights of the uninterrupted 2-epoch run
    (mtt and sltt-k draw from the random generator whose state is resumed too)."""
    torch.set_num_threads(1)
    train, test = load_dataset("digits", "train", limit=48), load_dataset("digits", "test", limit=10)
    cfg = config(method)
    whole, _ = fit(cfg, train, test, progress=False)
    path = tmp_path / "epoch1.pt"

    def stop(model, history, state):
        save_checkpoint(path, cfg, model, {"history": history}, state)
        raise Interrupted

    with pytest.raises(Interrupted):
        fit(cfg, train, test, progress=False, on_epoch=stop)
    ckpt = torch.load(path, weights_only=True)  # the training state loads without pickled code
    assert ckpt[TRAIN_STATE_KEY]["epoch"] == 1 and read_checkpoint(path)[TRAIN_STATE_KEY]["epoch"] == 1
    resumed, metrics = fit(
        cfg,
        train,
        test,
        progress=False,
        start=Start(ckpt["state_dict"], ckpt[TRAIN_STATE_KEY], ckpt["metrics"]["history"]),
    )
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    for k, v in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k
    # the optimizer and scheduler state matter: weights alone do not give the same run
    weights_only, _ = fit(cfg, train, test, progress=False, start=Start(ckpt["state_dict"]))
    assert any(not torch.equal(weights_only.state_dict()[k], v) for k, v in whole.state_dict().items())


def test_fold_and_drop_keeps_the_output_without_biases():
    """BatchNorm folded into the conv before it gives the same outputs; dropping biases
    leaves a model with no bias and no BatchNorm whose weights load into the bias-free
    config's model."""
    cfg = config("sdt")
    cfg.model.bias = True
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    x = (torch.rand(4, 3, 2, 20, 20) < 0.3).float()
    folded = fold_and_drop(model, fold=True, drop_bias=False).model.eval()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(folded(x, [4, 4]), model(x, [4, 4]), rtol=1e-5, atol=1e-5)
    bare, n_folded, n_dropped = fold_and_drop(model, fold=True, drop_bias=True)
    assert n_folded == 2 and n_dropped == 3  # two convs' BatchNorms; the folded biases and the head's
    target = copy.deepcopy(cfg)
    target.model.bn, target.model.bias = False, False
    net = build_model(target)
    net.load_state_dict(bare.state_dict())  # strict: the same layers, no biases
    assert all(getattr(m, "bias", None) is None for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_dropping_biases_keeps_a_batchnorm_the_new_model_keeps():
    """``--bias`` off with BatchNorm kept: only the biases go (the head's; a conv before a
    BatchNorm has none), the BatchNorm layers stay as they were, and the weights load into
    the BatchNorm-keeping, bias-free config's model (it was folded, then refused)."""
    cfg = config("sdt")
    cfg.model.bias = True
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    bare, n_folded, n_dropped = fold_and_drop(model, fold=False, drop_bias=True)
    assert (n_folded, n_dropped) == (0, 1)
    headless = copy.deepcopy(model)
    [m for m in headless.modules() if isinstance(m, nn.Linear)][-1].bias.data.zero_()
    x = (torch.rand(4, 3, 2, 20, 20) < 0.3).float()
    torch.testing.assert_close(bare.eval()(x, [4, 4]), headless(x, [4, 4]), rtol=0, atol=0)
    target = copy.deepcopy(cfg)
    target.model.bias = False
    build_model(target).load_state_dict(bare.state_dict())  # strict: BatchNorm kept, no biases


TINY = ["--data", "digits", "--limit-train", "48", "--limit", "10", "--width", "4", "--T", "3", "--tmax", "3"]
TINY += ["--batch-size", "16", "--threads", "1", "--quiet"]
RESUMING = ["--limit-train", "48", "--limit", "10", "--threads", "1", "--quiet"]  # what a resume reads


def test_cli_init_from_folds_bn_and_resume_continues(capsys, tmp_path):
    bn = tmp_path / "bn.pt"
    code, _, err = run(
        capsys, "fit", *TINY, "--method", "sdt", "--epochs", "1", "--norm", "bn", "--bias", "--out", str(bn)
    )
    assert code == 0, err
    fine = tmp_path / "fine.pt"
    cfg, model, metrics = fit_checkpoint(
        capsys, fine, *TINY, "--method", "sdt", "--epochs", "2", "--init-from", str(bn)
    )
    assert not cfg.model.bn and not cfg.model.bias and len(metrics["history"]) == 2
    # said, not silent: the fold and the dropped biases move the accuracy until fine-tuned
    loud = [a for a in TINY if a != "--quiet"]
    code, out, err = run(
        capsys, "fit", *loud, "--method", "sdt", "--init-from", str(bn), "--out", str(tmp_path / "loud.pt")
    )
    assert code == 0, err
    assert f"--init-from {bn}: folded 2 BatchNorm layers into the layer before each; dropped 3 biases" in out
    # BatchNorm kept, biases dropped (the fold used to run anyway: torch's missing keys)
    kept = tmp_path / "kept.pt"
    cfg_kept, _, _ = fit_checkpoint(capsys, kept, *TINY, "--method", "sdt", "--norm", "bn", "--init-from", str(bn))
    assert cfg_kept.model.bn and not cfg_kept.model.bias
    # a normalisation the weights cannot start is named, not torch's key lists
    code, _, err = run(
        capsys, "fit", *TINY, "--method", "sdt", "--norm", "sws", "--init-from", str(bn), "--out", str(kept)
    )
    one_error(
        code,
        err,
        "it was trained with --norm bn, these flags ask for --norm sws; expected --norm bn or bn-step (or none",
    )
    code, _, err = run(
        capsys, "fit", *TINY, "--method", "sdt", "--norm", "bn", "--init-from", str(fine), "--out", str(kept)
    )
    one_error(code, err, "it was trained with --norm none, these flags ask for --norm bn; expected --norm none")
    assert read_checkpoint(fine)[TRAIN_STATE_KEY]["epoch"] == 2
    # resuming a finished run has nothing to do: a clear error, nothing written
    again = tmp_path / "again.pt"
    code, _, err = run(capsys, "fit", *RESUMING, "--resume", str(fine), "--out", str(again))
    assert code == 2 and "already finished its 2 epochs" in err and not again.exists()
    # bad input: a model the weights do not fit; resume onto its own input
    code, _, err = run(
        capsys, "fit", *TINY, "--method", "sdt", "--width", "8", "--init-from", str(bn), "--out", str(again)
    )
    assert code == 2 and "do not fit the model" in err and "size mismatch for stages." in err and not again.exists()
    code, _, err = run(capsys, "fit", *RESUMING, "--resume", str(fine), "--out", str(fine))
    assert code == 2 and "destroy the input" in err
    # a checkpoint without training state (older files, calibrate's) cannot be resumed, said
    # before its data is checked (a calibrated --limit-train run's was "not the data it trained on")
    plain = tmp_path / "plain.pt"
    save_checkpoint(plain, cfg, model, {**metrics, "history": [{"samples": 1}]})
    code, _, err = run(capsys, "fit", *RESUMING, "--resume", str(plain), "--out", str(again))
    assert code == 2 and "holds no training state" in err and not again.exists()
    # a flag the resumed run would not read (its config decides) is refused, not dropped
    code, _, err = run(
        capsys, "fit", *RESUMING, "--resume", str(fine), "--lr", "0.5", "--seed", "7", "--out", str(again)
    )
    one_error(code, err, f"continues the run in {fine} as it was configured; it does not read --lr, --seed")
    assert not again.exists()


def test_cli_init_from_without_model_flags_keeps_the_source_network(capsys, tmp_path):
    """`fit --init-from X.pt` without --model/--width fine-tunes X's network, not the default
    model for the data (2C1FCW32 on the digits), which X's weights would not fit."""
    small = ["--data", "digits", "--limit-train", "48", "--limit", "10", "--epochs", "1", "--threads", "1", "--quiet"]
    src = tmp_path / "w16.pt"
    cfg, _, _ = fit_checkpoint(capsys, src, *small, "--model", "2C1FCW16")
    fine, _, _ = fit_checkpoint(capsys, tmp_path / "fine.pt", *small, "--init-from", str(src))
    assert (fine.model.name, fine.model.width) == (cfg.model.name, cfg.model.width) == ("2C1FCW16", 0)


def test_cli_init_from_without_neuron_keeps_the_source_neuron(capsys, tmp_path):
    """`fit --init-from alif.pt` fine-tuned a multi-IF network without a word (the preset
    default), and `--beta 0.5` was refused as not applying to "--neuron multi-if", a flag not
    given. Now the source's neuron, with the neuron flags given; --neuron still chooses."""
    small = ["--data", "digits", "--limit-train", "48", "--limit", "10", "--epochs", "1", "--threads", "1", "--quiet"]
    src = tmp_path / "alif.pt"
    cfg, _, _ = fit_checkpoint(capsys, src, *small, "--model", "2C1FCW16", "--neuron", "alif", "--beta", "0.3")
    fine, _, _ = fit_checkpoint(capsys, tmp_path / "fine.pt", *small, "--init-from", str(src))
    assert fine.neuron.spec == cfg.neuron.spec and fine.neuron.spec.kind == "ALIF"
    tuned, _, _ = fit_checkpoint(capsys, tmp_path / "tuned.pt", *small, "--init-from", str(src), "--beta", "0.5")
    assert tuned.neuron.spec == dataclasses.replace(cfg.neuron.spec, beta=0.5)
    lif, _, _ = fit_checkpoint(capsys, tmp_path / "lif.pt", *small, "--init-from", str(src), "--neuron", "lif")
    assert lif.neuron.spec.kind == "LIF"
    out = tmp_path / "bad.pt"
    code, _, err = run(capsys, "fit", *small, "--init-from", str(src), "--decay-syn", "0.5", "--out", str(out))
    one_error(code, err, f"--decay-syn does not apply to the neuron of --init-from {src} (ALIF)")
    assert not out.exists()


def test_resume_sees_the_first_runs_data_subsets(capsys, tmp_path, monkeypatch):
    """--limit-train / --limit are stored with the run's state: a resume without them uses
    the same subsets (it trained on all the data before), one that gives others is refused."""
    import trainer.cli

    first = tmp_path / "first.pt"
    cfg, model, metrics = fit_checkpoint(capsys, first, *TINY, "--method", "sdt", "--epochs", "2")
    ckpt = read_checkpoint(first)
    assert ckpt[TRAIN_STATE_KEY]["limits"] == {"limit_train": 48, "limit": 10}
    halfway = tmp_path / "halfway.pt"  # as if interrupted after epoch 1 of 2
    save_checkpoint(halfway, cfg, model, {"history": metrics["history"][:1]}, {**ckpt[TRAIN_STATE_KEY], "epoch": 1})
    seen = []
    real = trainer.cli.load_dataset
    monkeypatch.setattr(
        trainer.cli, "load_dataset", lambda spec, split, limit, *r: seen.append(limit) or real(spec, split, limit, *r)
    )
    code, _, err = run(
        capsys, "fit", "--resume", str(halfway), "--threads", "1", "--quiet", "--out", str(tmp_path / "r.pt")
    )
    assert code == 0, err
    assert seen == [48, 10]
    code, _, err = run(capsys, "fit", "--resume", str(halfway), "--limit", "20", "--out", str(tmp_path / "r2.pt"))
    assert code == 2 and "--limit 20: the run in" in err and "used --limit 10" in err
    assert not (tmp_path / "r2.pt").exists()


def test_resume_refuses_flags_given_at_their_default_values(capsys, tmp_path):
    """`--seed 0 --epochs 10` on a run of seed 3 and 3 epochs was accepted and dropped: the
    refusal compared the flags with the parser's defaults, not with what was given."""
    run3 = tmp_path / "s3.pt"
    fit_checkpoint(capsys, run3, *TINY, "--method", "sdt", "--epochs", "1", "--seed", "3")
    again = tmp_path / "again.pt"
    for flags, named in (
        (["--seed", "0"], "--seed"),
        (["--epochs", "10"], "--epochs"),
        (["--width", "4"], "--width"),  # the run's own value (--data: where its data is now, read)
    ):
        code, _, err = run(capsys, "fit", *RESUMING, "--resume", str(run3), *flags, "--out", str(again))
        one_error(code, err, f"it does not read {named}: leave")
        assert not again.exists()


def test_a_run_stopped_after_its_last_epoch_resumes_to_its_end(capsys, tmp_path, monkeypatch):
    """Interrupted after the last epoch's checkpoint, before BatchNorm calibration and the
    final write: --resume said "nothing to train", eval and export used the uncalibrated
    file without a word. It now finishes: the weights and calibration of the whole run."""
    import trainer.train

    whole = tmp_path / "whole.pt"
    flags = [*TINY, "--method", "sdt", "--epochs", "1", "--norm", "bn", "--bias", "--calib-batches", "2"]
    fit_checkpoint(capsys, whole, *flags)
    stopped = tmp_path / "stopped.pt"
    real = trainer.train.calibrate_bn

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.train, "calibrate_bn", interrupt)
    code, _, err = run(capsys, "fit", *flags, "--out", str(stopped))
    assert code == 130 and read_checkpoint(stopped)["metrics"]["finished"] is False
    # Ctrl-C printed "interrupted" alone: it now says what the file holds and how to finish it
    assert err.splitlines() == [
        f"note: {stopped} is an unfinished run (after epoch 1 of 1, BatchNorm not calibrated yet): finish it "
        f"with python -m trainer fit --resume {stopped} --out FINAL.pt",
        "interrupted",
    ], err
    monkeypatch.setattr(trainer.train, "calibrate_bn", real)
    code, _, err = run(capsys, "eval", str(stopped), "--T", "2", "--limit", "10")
    assert code == 0 and f"warning: {stopped} is an unfinished run (after epoch 1 of 1" in err
    code, out, _ = run(capsys, "eval", str(stopped), "--T", "2", "--limit", "10", "--json")
    assert json.loads(out)["warnings"][0].startswith(f"{stopped} is an unfinished run")  # a program sees it too
    from export.cli import main as export_main
    from tests.conftest import run_main

    code, out, _ = run_main(export_main, capsys, str(stopped), "-o", str(tmp_path / "s.onnx"), "--json")
    assert json.loads(out)["warnings"][0].startswith(f"{stopped} is an unfinished run")
    _the_exported_file_says_it_is_unfinished(capsys, stopped, tmp_path / "s.onnx")
    done = tmp_path / "done.pt"
    code, out, err = run(
        capsys, "fit", "--resume", str(stopped), "--threads", "1", "--quiet", "--json", "-o", str(done)
    )
    assert code == 0, err  # --json was refused with --resume ("it does not read --json")
    assert json.loads(out)["checkpoint"] == str(done)
    a, b = read_checkpoint(whole), read_checkpoint(done)
    for k, v in a["state_dict"].items():
        assert torch.equal(b["state_dict"][k], v), k
    assert b["metrics"]["bn_calibrated_layers"] == a["metrics"]["bn_calibrated_layers"] > 0
    # the part before the stop is on record, and a finished file loads without the warning
    assert [p["after_epoch"] for p in b["metrics"]["resumed_from"]] == [1]
    code, _, err = run(capsys, "eval", str(done), "--T", "2", "--limit", "10")
    assert code == 0 and "unfinished" not in err
    assert run_main(export_main, capsys, str(done), "-o", str(tmp_path / "done.onnx"))[0] == 0
    assert read_model(tmp_path / "done.onnx")[1].unfinished is None


def _the_exported_file_says_it_is_unfinished(capsys, checkpoint: Path, exported: Path) -> None:
    """The ONNX file of an unfinished run ran under runtime run, the SDK and a NIR round
    trip as if finished (export warned once; the file kept no mark of it)."""
    import runtime
    from export.cli import main as export_main
    from runtime.cli import main as runtime_main
    from runtime.errors import UnfinishedModelWarning
    from tests.conftest import run_main

    said = f"{exported} was exported from an unfinished training run (after epoch 1 of 1)"
    assert read_model(exported)[1].unfinished == (1, 1)
    with pytest.warns(UnfinishedModelWarning, match=re.escape(said)):
        runtime.load(exported)
    code, out, err = run_main(runtime_main, capsys, "run", str(exported), "--limit", "10", "--json")
    assert code == 0 and json.loads(out)["warnings"][0].startswith(said), err
    assert err.count("unfinished training run") == 1, err  # a warning line, not also Python's
    nir_file, back = exported.with_suffix(".nir"), exported.with_name("back.onnx")
    assert run_main(export_main, capsys, str(checkpoint), "--format", "nir", "-o", str(nir_file))[0] == 0
    code, _, err = run_main(export_main, capsys, str(nir_file), "-o", str(back))
    assert code == 0 and "warning: the graph was exported from an unfinished training run (after epoch 1 of 1)" in err
    assert read_model(back)[1].unfinished == (1, 1)  # kept through NIR, as the file's other facts


def test_a_fine_tuned_checkpoint_names_its_source(capsys, tmp_path):
    src = tmp_path / "src.pt"
    fit_checkpoint(capsys, src, *TINY, "--method", "sdt", "--epochs", "1")
    _, _, metrics = fit_checkpoint(
        capsys, tmp_path / "fine.pt", *TINY, "--method", "sdt", "--epochs", "1", "--init-from", str(src)
    )
    assert metrics["init_from"] == {"checkpoint": str(src), "sha256": read_checkpoint(src)["sha256"]}
    assert metrics["environment"]["flexsnn"]  # the code's version: a change to it moves figures


def test_a_resumed_runs_relative_data_path_says_where_it_is_relative_to(capsys, tmp_path):
    """The data spec is stored as typed: a run started with a relative folder could not be
    resumed from another folder, and --resume refuses --data: the error now says why and
    where to resume from."""
    first = tmp_path / "first.pt"
    cfg, model, metrics = fit_checkpoint(capsys, first, *TINY, "--method", "sdt", "--epochs", "2")
    ckpt = read_checkpoint(first)
    cfg.data.spec = "nmnist:data/nmnist"  # as `fit --data nmnist:data/nmnist` stores it
    moved = tmp_path / "moved.pt"
    save_checkpoint(moved, cfg, model, {"history": metrics["history"][:1]}, {**ckpt[TRAIN_STATE_KEY], "epoch": 1})
    code, _, err = run(capsys, "fit", *RESUMING, "--resume", str(moved), "--out", str(tmp_path / "r.pt"))
    one_error(code, err, f"as stored in {moved}; a relative path is relative to the folder the run started in")


def test_a_multi_process_runs_resume_hint_names_torchrun(monkeypatch):
    """The hint named a one-process command for a run of 2 processes, and no record said how
    many processes a run (or an earlier part of a resumed one) had: the environment does."""
    from trainer.checkpoint import unfinished_note
    from trainer.repro import environment

    monkeypatch.setenv("WORLD_SIZE", "2")
    env = environment(0)
    assert env["processes"] == 2
    note = unfinished_note("p.pt", config("mtt"), {"finished": False, "history": [{}], "environment": env})
    assert note is not None and "finish it with torchrun --nproc_per_node=2 -m trainer fit --resume p.pt" in note
    monkeypatch.delenv("WORLD_SIZE")
    one = unfinished_note("p.pt", config("mtt"), {"finished": False, "history": [{}], "environment": environment(0)})
    assert one is not None and "finish it with python -m trainer fit --resume p.pt --out FINAL.pt" in one
    old = unfinished_note("p.pt", config("mtt"), {"finished": False, "history": [{}]})  # files before it
    assert old is not None and "python -m trainer fit --resume" in old


def test_a_run_resumes_from_its_data_in_a_new_place(tmp_path, monkeypatch, capsys):
    """A run whose data folder moved could not be resumed at all (--data was refused with
    --resume, and the stored path no longer existed). --data now names where the same data
    set is: the same source, checked against what the checkpoint knows of it; the finished
    run is the uninterrupted one, and its file names the new place."""
    import numpy as np

    import trainer.train

    rng = np.random.default_rng(0)
    images = rng.random((40, 1, 6, 6)).astype(np.float32)
    labels = np.arange(40) % 3
    old, new, other = tmp_path / "old.npz", tmp_path / "new.npz", tmp_path / "other.npz"
    np.savez(old, images=images, labels=labels)
    flags = ["--method", "sdt", "--T", "2", "--epochs", "1", "--norm", "bn", "--bias", "--calib-batches", "2",
             "--width", "4", "--batch-size", "8", "--threads", "1", "--quiet"]  # fmt: skip
    whole = tmp_path / "whole.pt"
    code, _, err = run(capsys, "fit", "--data", f"npz:{old}", *flags, "--out", str(whole))
    assert code == 0, err
    real = trainer.train.calibrate_bn

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.train, "calibrate_bn", interrupt)
    stopped = tmp_path / "stopped.pt"
    assert run(capsys, "fit", "--data", f"npz:{old}", *flags, "--out", str(stopped))[0] == 130
    monkeypatch.setattr(trainer.train, "calibrate_bn", real)
    old.rename(new)
    np.savez(other, images=images[:35], labels=labels[:35])
    done = tmp_path / "done.pt"
    resume = ["fit", "--resume", str(stopped), "--threads", "1", "--quiet", "--out", str(done)]
    code, _, err = run(capsys, *resume)
    one_error(code, err, "name where the data is now with --data")
    code, _, err = run(capsys, *resume, "--data", "digits:static")
    one_error(code, err, "the same data set as its")
    code, _, err = run(capsys, *resume, "--data", f"npz:{tmp_path / 'nowhere.npz'}")
    one_error(code, err, "nowhere.npz")
    assert "as stored in" not in err  # the path was typed here, not stored in the checkpoint
    code, _, err = run(capsys, *resume, "--data", f"npz:{other}")
    one_error(code, err, "training samples per epoch 24 (the run's: 28)")
    # the same shape, classes and size, its labels shifted (a stranger's resume trained on: 11%)
    shifted = tmp_path / "shifted.npz"
    np.savez(shifted, images=images, labels=(labels + 1) % 3)
    code, _, err = run(capsys, *resume, "--data", f"npz:{shifted}")
    one_error(code, err, "training labels in order (their SHA-256 differs from the run's)")
    code, _, err = run(capsys, *resume, "--data", f"npz:{new}")
    assert code == 0, err
    a, b = read_checkpoint(whole), read_checkpoint(done)
    for k, v in a["state_dict"].items():
        assert torch.equal(b["state_dict"][k], v), k
    assert Config.from_dict(b["config"]).data.spec == f"npz:{new}"


def test_sigterm_during_fit_keeps_the_epochs_done_and_says_how_to_resume(tmp_path):
    """SIGTERM (a scheduler's stop) ended fit with exit 143 and nothing on stderr, where
    Ctrl-C says that the epochs done are kept and how to finish the run."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "m.pt"
    argv = [sys.executable, "-m", "trainer", "fit", *TINY, "--method", "sdt", "--epochs", "500", "--out", str(out)]
    p = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 240
    while not out.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # the first epoch's checkpoint
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    lines = err.splitlines()
    assert lines[-1] == "interrupted (SIGTERM)" and f"note: {out} is an unfinished run (after epoch" in err, err
    assert read_checkpoint(out)["metrics"]["finished"] is False
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".")]  # no temporary left
