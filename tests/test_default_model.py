"""``fit`` without ``--model`` trains the wider default width that Speck holds for the data's
input (trainer/default_model.py): 2C1FCW32 on the embedded default's 2x20x20, 2C1FCW16 on
N-MNIST's 2x34x34, where 32 first-layer maps need 128 Ki neurons and a core holds 64 Ki."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.conftest import run_main, run_trainer
from trainer.checkpoint import load_checkpoint


def _config(argv: list[str], shape: tuple[int, ...], kind: str = "events"):
    from trainer.cli import config_from_args, parser

    return config_from_args(parser().parse_args(["fit", *argv]), shape, kind, 1e5)


@pytest.mark.parametrize("shape, model", [((2, 20, 20), "2C1FCW32"), ((2, 34, 34), "2C1FCW16")])
def test_default_model_is_the_wider_width_speck_holds(shape, model):
    assert _config([], shape).model.name == model


@pytest.mark.parametrize(
    "shape, kind, model, why",
    [
        ((2, 20, 20), "events", "2C1FCW32", "the wider of widths 32 and 16 that fits Speck with the default flags"),
        ((2, 34, 34), "events", "2C1FCW16", "2C1FCW32 would not fit Speck"),
        ((2, 128, 128), "events", "2C1FCW16", "no default width fits Speck"),  # 16 x 128 x 128: 256 Ki neurons
        ((1, 28, 28), "static", "2C1FCW16", "Speck runs event streams only"),
    ],
)
def test_default_model_says_why(shape, kind, model, why):
    """The reason fit prints is the checker's verdict: the last default is not claimed to
    fit where it does not (a DVS128-sized input), nor static images to be a Speck question."""
    from trainer.cli import _default_model

    choice = _default_model(shape, kind, 1e5, None)
    assert choice.name == model and choice.why.startswith(why), choice


def test_default_model_agrees_with_the_speck_checker():
    """The choice asks the checker: the 2x34x34 W32 model it turns down is one that
    `edge speck --check` reports as not fitting, and the W32 it keeps is one that fits."""
    from edge.speck.backend import plan
    from edge.speck.chip import DEFAULT_CHIP, chip
    from edge.speck.convert import convert
    from export.onnx_export import export_onnx
    from runtime.protocol import read_model
    from trainer.cli import config_from_args, parser
    from trainer.default_model import speck_holds
    from trainer.models import build_model

    a = parser().parse_args(["fit", "--model", "2C1FCW32"])
    for shape, fits in (((2, 20, 20), True), ((2, 34, 34), False)):
        cfg = config_from_args(a, shape, "events", 1e5)
        assert speck_holds(cfg) is fits

    cfg = config_from_args(a, (2, 34, 34), "events", 1e5)
    with tempfile.TemporaryDirectory() as d:
        model, proto = read_model(export_onnx(cfg, build_model(cfg), Path(d) / "m.onnx"))
    assert not plan(convert(model, proto), chip(DEFAULT_CHIP)).fits


def test_default_model_not_asked_without_an_image_or_with_a_width(monkeypatch):
    """Static images (Speck runs event streams only) and an explicit --width keep the last
    default, sequences get the fc net (a conv net cannot take them), all without the Speck
    query."""
    import trainer.default_model as dm

    def refuse(cfg):
        raise AssertionError("the Speck checker was asked")

    monkeypatch.setattr(dm, "speck_holds", refuse)
    cfg = _config(["--width", "8"], (2, 20, 20))
    assert (cfg.model.name, cfg.model.width) == ("2C1FCW8", 0)  # the name says the net built (it said W16)
    # over a typed name's width too (the README's `--model 2C1FCW16 --width 32`): said as built
    assert (_config(["--model", "2C1FCW16", "--width", "32"], (2, 34, 34)).model.name) == "2C1FCW32"
    assert _config([], (12,), "sequence").model.name == "fc-seq"
    assert _config([], (1, 28, 28), "static").model.name == "2C1FCW16"
    assert _config(["--model", "2C1FCW32"], (2, 34, 34)).model.name == "2C1FCW32"  # asked for: kept


def test_a_file_of_a_name_and_another_width_reads_as_the_net_it_holds(tmp_path, capsys):
    """Files fit wrote before the width went into the name store 2C1FCW16 with width 8: they
    load as they are (a round trip keeps the config), and export names the net they hold,
    2C1FCW8, as the architecture and in the ONNX protocol (both said W16)."""
    import json

    from export.cli import main as export_main
    from export.protocol import read_protocol
    from tests.export_helpers import config
    from trainer.checkpoint import save_checkpoint
    from trainer.models import build_model

    cfg = config(name="2C1FCW16", width=8, bn=False, bias=False, in_shape=(1, 8, 8), data="digits:static")
    model = build_model(cfg)
    save_checkpoint(tmp_path / "old.pt", cfg, model, {"test_accuracy": 0.0})
    assert load_checkpoint(tmp_path / "old.pt")[0] == cfg
    code, out, err = run_main(export_main, capsys, str(tmp_path / "old.pt"), "--json")
    assert code == 0 and json.loads(out)["architecture"] == "2C1FCW8", err
    assert read_protocol(tmp_path / "old.onnx").model == "2C1FCW8"


def test_fit_defaults_write_a_model_that_fits_speck(capsys, tmp_path):
    """The quick start's chain: `fit` with the default model says which it chose, and
    `edge speck --check` passes on the exported file."""
    from edge.cli import main as edge_main
    from export.cli import main as export_main

    code, out, err = run_trainer(
        capsys, "fit", "--epochs", "1", "--limit-train", "150", "--threads", "1", "--out", str(tmp_path / "m.pt")
    )
    assert code == 0, err
    want = "model 2C1FCW32 (the default for 2x20x20 input: the wider of widths 32 and 16 that fits Speck with the"
    assert want in out
    assert load_checkpoint(tmp_path / "m.pt")[0].model.name == "2C1FCW32"
    code, out, err = run_main(export_main, capsys, str(tmp_path / "m.pt"))
    assert code == 0, err
    code, out, err = run_main(edge_main, capsys, "speck", str(tmp_path / "m.onnx"), "--check")
    assert code == 0 and "fits" in out and "NOT" not in out, out + err


@pytest.mark.parametrize("model", ["2C1FC", "resnet10", "trev-tiny"])
def test_conv_model_on_sequence_input_is_a_config_error(model):
    """Braille's 12 taxels given to a conv family: one clear error naming the fc models
    (was a ValueError from unpacking the shape, a traceback)."""
    from trainer.config import ConfigError
    from trainer.models import build_model

    cfg = _config(["--model", model], (12,), "sequence")
    with pytest.raises(ConfigError, match=r"image-shaped input.*shape \(12,\).*fc-seq"):
        build_model(cfg)
