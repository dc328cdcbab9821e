"""docs/training_sdk.md runs as written, and ``fit_config`` is the fit command's config."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from runtime.data import load_dataset
from trainer.cli import fit_config, parser
from trainer.config import ConfigError

DOC = Path(__file__).resolve().parents[1] / "docs" / "training_sdk.md"


def test_the_training_page_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (block,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    ns: dict = {}
    exec(compile(block, DOC.name, "exec"), ns)
    assert (tmp_path / "sdk.pt").is_file() and (tmp_path / "sdk.onnx").is_file()
    # the exported file gives the trainer's predictions: one model from the page's two halves
    assert np.isclose(
        (ns["r"].predictions == ns["test"].labels).mean(), ns["evaluate"](ns["model"], ns["test"], [4])[0]
    )


@pytest.fixture(scope="module")
def train():
    return load_dataset("digits", "train-minus-val", limit=60)


def test_fit_config_is_the_commands_config(train):
    """The dataclasses' defaults (LIF, biases, BatchNorm, no anchor) are what old checkpoints
    meant; from Python the command's are one call away."""
    cfg = fit_config(train, "--epochs", "3")
    spec = cfg.neuron.spec
    assert (spec.kind, spec.spike, cfg.model.bias, cfg.model.bn, cfg.method.anchor) == (
        "IF",
        "multi",
        False,
        False,
        "tmin",
    )
    assert cfg.model.name == "2C1FCW32" and cfg.model.in_shape == train.shape  # the default for 2x20x20
    assert cfg.method.epochs == 3 and cfg.data.train_split == "train-minus-val"
    assert spec.dt == train.duration_us / cfg.train_T  # one step is one bin
    a = parser().parse_args(["fit", "--epochs", "3"])
    assert cfg.method.tmax == a.tmax and cfg.method.samples == a.configs_per_batch


@pytest.mark.parametrize(
    "flags, split, match",
    [
        (["--bogus"], "train-minus-val", "unrecognized arguments: --bogus"),
        (["--epochs", "0"], "train-minus-val", "--epochs must be a positive integer"),
        # the command's own flags were parsed and ignored: the data set is loaded already
        (["--train-split", "train"], "train-minus-val", "--train-split: the command's, not the config's"),
        (["--transform", "downsample:2x2", "--limit", "5"], "train-minus-val", "--transform, --limit: the command's"),
        (["--quiet", "--deterministic"], "train-minus-val", "--deterministic, --quiet: the command's"),
        ([], "test", "training data is the 'test' split; expected one of"),
        # the command's checks of what was given (they saw no flag as given before)
        (["--calib-batches", "5"], "train-minus-val", "--calib-batches calibrates BatchNorm; this model has none"),
        (["--model", "trev-tiny", "--stages", "2"], "train-minus-val", "--stages applies to the MTT models"),
    ],
)
def test_fit_config_raises_the_commands_errors(flags, split, match, capsys):
    ds = load_dataset("digits", split, limit=20)
    with pytest.raises(ConfigError, match=match):
        fit_config(ds, *flags)
    assert capsys.readouterr().err == ""  # raised, not printed


def test_evaluate_and_fit_config_refuse_what_a_stranger_passed(train, monkeypatch):
    """A bare 4 or 2.5 for Ts were TypeErrors from inside, 10**6 steps numpy's MemoryError
    (119 GiB); fit_config(ds, "--epochs", 2) was argparse's TypeError."""
    from runtime.limits import ResourceError
    from trainer.models import build_model
    from trainer.train import evaluate

    model = build_model(fit_config(train, "--epochs", "1"))
    for bare in (4, "4", np.array(4)):
        with pytest.raises(ConfigError, match=r"Ts is .*4.*; expected a list of time steps, e.g. \[4\]"):
            evaluate(model, train, bare)  # type: ignore[arg-type]
    assert len(evaluate(model, train, np.array([1, 2]))) == 2  # an array of T, as a list (it was accepted)
    for Ts in ([2.5], [0], [True]):
        with pytest.raises(ConfigError, match="time steps must be positive integers"):
            evaluate(model, train, Ts)  # type: ignore[arg-type]
    with pytest.raises(ResourceError, match="at most 100000"):
        evaluate(model, train, [10**6])
    monkeypatch.setenv("FLEXSNN_MAX_MEMORY", "1M")
    with pytest.raises(ResourceError, match="evaluating batches of 60 at T=1000 needs about"):
        evaluate(model, train, [1000])
    # the layers' activity over all T counts too: frames alone (60 x 10 x 800 x 16 B, 7.3 MiB)
    # fit under 50 MiB, the conv layers' 16,000 state elements per sample do not (a stranger's
    # T=10000 eval took 1.9 GB under FLEXSNN_MAX_MEMORY=1G, estimated at 122 MiB)
    monkeypatch.setenv("FLEXSNN_MAX_MEMORY", "50M")
    with pytest.raises(ResourceError, match="evaluating batches of 60 at T=10 needs about 117"):
        evaluate(model, train, [10])
    with pytest.raises(ConfigError, match="flags are strings, as typed on the command line; got 2: write '2'"):
        fit_config(train, "--epochs", 2)  # type: ignore[arg-type]


def test_evaluate_refuses_data_the_model_cannot_take(train):
    """A digits-event model on the static digits (1 channel, not 2) was torch's conv error
    from inside; data with more classes than the model's outputs counted every extra label
    wrong, unsaid."""
    import dataclasses

    from trainer.models import build_model
    from trainer.train import evaluate

    model = build_model(fit_config(train, "--epochs", "1"))
    static = load_dataset("digits:static", "test", limit=20)
    with pytest.raises(ConfigError, match=r"samples of shape \[1, 8, 8\] do not fit this model \(.*channels"):
        evaluate(model, static, [2])
    wider = dataclasses.replace(train, classes=[*train.classes, "extra"])  # 11 names, labels unchanged
    with pytest.raises(ConfigError, match="the data has 11 classes; this model outputs 10"):
        evaluate(model, wider, [2])


def test_first_stage_first_is_refused_where_no_runtime_binning_gives_its_frames(train):
    """A.2's first T of each recording's own Tmax bins (data binned per recording, as the
    tonic sets) has no fixed width: evaluated and exported it would be other frames."""
    import dataclasses

    per_recording = dataclasses.replace(train, durations="recording")
    with pytest.raises(ConfigError, match="--first-stage first takes the first T of each recording's Tmax bins"):
        fit_config(per_recording, "--first-stage", "first")
    assert fit_config(per_recording).data.binning == "equal"  # the default re-binning: as before


def test_an_a2_config_made_by_hand_is_refused_naming_its_binning(train):
    """A config set to MTT A.2 by hand kept equal binning: it trained on the first T of
    Tmax bins and was evaluated, exported and run on the recording re-binned into T (a
    read-back mismatch after a silent rewrite, in this change's first form)."""
    from trainer.train import fit

    cfg = fit_config(train, "--method", "mtt", "--tmax", "2", "--epochs", "1")
    cfg.method.first_stage = "first"
    with pytest.raises(ConfigError, match="the data's binning \\(DataConfig.binning\\) must be 'fixed' \\(fit_config"):
        fit(cfg, train, train, progress=False)
    assert fit_config(train, "--method", "mtt", "--tmax", "2", "--first-stage", "first").data.binning == "fixed"
