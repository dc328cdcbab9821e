"""Training methods end to end on the embedded default (tiny: seconds on 2 cores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from runtime.data import DataError, load_dataset
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.config import Config, ConfigError
from trainer.methods import sample_configs
from trainer.train import calibrate_bn, evaluate, fit


def small_config(method: str = "mtt", **method_kw) -> Config:
    cfg = Config()
    cfg.model.width, cfg.model.in_shape = 8, (2, 20, 20)
    cfg.data.shape = (2, 20, 20)
    m = cfg.method
    m.name, m.epochs, m.batch_size, m.lr, m.tmin, m.tmax, m.T = method, 3, 32, 3e-3, 1, 6, 6
    for k, v in method_kw.items():
        setattr(m, k, v)
    return cfg.validate()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train", limit=600), load_dataset("digits", "test", limit=200)


@pytest.fixture(scope="module")
def mtt_model(digits):
    cfg = small_config("mtt")
    model, metrics = fit(cfg, *digits, progress=False)
    return cfg, model, metrics


def test_mtt_beats_chance_at_every_T(mtt_model, digits):
    cfg, model, metrics = mtt_model
    acc = evaluate(model, digits[1], list(range(1, 7)))
    assert min(acc) > 0.2, acc  # chance is 0.1 on 10 balanced classes
    assert metrics["test_accuracy"] == pytest.approx(acc[-1])
    assert len(metrics["history"]) == 3 and metrics["bn_calibrated_layers"] == 2


def test_checkpoint_round_trip_rebuilds_the_same_model(mtt_model, digits, tmp_path):
    cfg, model, metrics = mtt_model
    path = tmp_path / "m.pt"
    save_checkpoint(path, cfg, model, metrics)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "flexsnn-checkpoint/2" and set(raw["config"]) == {"model", "neuron", "data", "method"}
    assert raw["config"]["neuron"]["spec"]["v_min"] == "-inf"  # every neuron field stored explicitly
    cfg2, model2, metrics2 = load_checkpoint(path)
    assert cfg2 == cfg and metrics2["test_accuracy"] == metrics["test_accuracy"]
    x = torch.from_numpy(digits[1].frames(np.arange(16), 4))
    with torch.no_grad():
        torch.testing.assert_close(model2(x), model.eval()(x), rtol=0, atol=0)


def test_method_sampling():
    rng = np.random.default_rng(0)
    cfg = small_config("mtt", samples=3, tmin=2, tmax=5)
    draws = [sample_configs(cfg.method, 3, rng) for _ in range(200)]
    flat = [t for d in draws for c in d for t in c]
    assert all(len(d) == 3 and all(len(c) == 3 for c in d) for d in draws)
    assert set(flat) == {2, 3, 4, 5}
    assert any(len(set(c)) > 1 for d in draws for c in d)  # stages draw independently
    nmt = small_config("nmt", samples=2, tmin=2, tmax=5)
    assert all(len(set(c)) == 1 for _ in range(50) for c in sample_configs(nmt.method, 3, rng))
    assert sample_configs(small_config("sdt", T=4).method, 2, rng) == [[4, 4]]


def test_bn_calibration_uses_cumulative_average_at_T(digits):
    cfg = small_config("sdt", epochs=1, T=2)
    model, _ = fit(cfg, *digits, progress=False)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    calibrate_bn(model, digits[0], T=4, batches=2, batch_size=50)
    # cumulative average over 2 batches of 50 samples x 4 steps == mean over those frames
    order = np.random.default_rng(0).permutation(len(digits[0]))[:100]
    x = torch.from_numpy(digits[0].frames(order, 4)).flatten(0, 1)
    conv = model.stages[0].layers[0].layers[0].module
    with torch.no_grad():
        mean = conv(x).mean(dim=(0, 2, 3))
    torch.testing.assert_close(bns[0].running_mean, mean, rtol=1e-4, atol=1e-5)
    assert bns[0].momentum == 0.1 and not model.training  # restored


def test_bn_calibration_over_runs_averages_the_statistics_of_each_draw(digits):
    """MTT A.6/A.9 (``calibrate --calib-runs 3``): three calibrations with the draws of
    seeds 0, 1, 2; the model keeps the mean of their statistics (the calibration over all
    their batches), and each run is seen before the next starts."""
    from trainer.train import calibrate_bn_runs

    cfg = small_config("sdt", epochs=1, T=2)
    model, _ = fit(cfg, *digits, progress=False)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    runs = []
    for seed in range(3):
        calibrate_bn(model, digits[0], T=3, batches=1, batch_size=40, seed=seed)
        runs.append([(bn.running_mean.clone(), bn.running_var.clone()) for bn in bns])
    seen: list[torch.Tensor] = []
    n = calibrate_bn_runs(
        model, digits[0], 3, 1, 40, runs=3, seed=0, after_run=lambda k: seen.append(bns[0].running_mean.clone())
    )
    assert n == len(bns) and len(seen) == 3
    for k in range(3):  # the hook saw run k's own statistics (different draws differ)
        torch.testing.assert_close(seen[k], runs[k][0][0], rtol=0, atol=0)
    assert not torch.equal(runs[0][0][0], runs[1][0][0])
    for i, bn in enumerate(bns):
        torch.testing.assert_close(bn.running_mean, sum(r[i][0] for r in runs) / 3, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(bn.running_var, sum(r[i][1] for r in runs) / 3, rtol=1e-6, atol=1e-7)
    # with equal batches per run the average is the calibration over all three draws' batches
    order = np.concatenate([np.random.default_rng(s).permutation(len(digits[0]))[:40] for s in range(3)])
    x = torch.from_numpy(digits[0].frames(order, 3)).flatten(0, 1)
    conv = model.stages[0].layers[0].layers[0].module
    with torch.no_grad():
        mean = conv(x).mean(dim=(0, 2, 3))
    torch.testing.assert_close(bns[0].running_mean, mean, rtol=1e-4, atol=1e-5)


def test_sdt_and_nmt_train(digits):
    for method in ("sdt", "nmt"):
        model, metrics = fit(small_config(method, epochs=1), *digits, progress=False)
        assert metrics["test_accuracy"] > 0.15, (method, metrics)


def test_first_stage_takes_the_first_T_of_Tmax_frames():
    """MTT appendix A.2 (``--first-stage first``): at T the batch is the first T of the
    Tmax frames, not the recording re-binned into T frames (the default)."""
    from trainer.train import batch_at

    ds = load_dataset("digits", "test", limit=4)
    idx = [0, 1, 2]
    m = small_config("mtt", tmax=6).method
    ten = torch.from_numpy(ds.frames(np.asarray(idx), 6))
    rebinned = torch.from_numpy(ds.frames(np.asarray(idx), 2))
    torch.testing.assert_close(batch_at(ds, idx, m)(2), rebinned)
    m.first_stage = "first"
    torch.testing.assert_close(batch_at(ds, idx, m)(2), ten[:2])
    assert not torch.equal(ten[:2], rebinned)


def test_prefix_loss_is_the_mean_cross_entropy_of_every_prefix_readout():
    """``--loss prefix``: ``1/T sum_t CE(readout(out[:t]), y)`` (the readouts an early exit
    stops on); at T = 1 the same as the plain readout loss. Written out for the mean
    readout, so a loss over the steps' own outputs (TET's) or over all T only fails it."""
    from trainer.models import build_model
    from trainer.train import sequence_loss

    model = build_model(small_config())
    g = torch.Generator().manual_seed(0)
    out = torch.randn(5, 4, 10, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 3, 9, 3])
    by_hand = sum(torch.nn.functional.cross_entropy(out[:t].mean(0), y) for t in range(1, 6)) / 5
    torch.testing.assert_close(sequence_loss(model, out, y, "prefix"), by_hand, rtol=1e-12, atol=0)
    torch.testing.assert_close(
        sequence_loss(model, out[:1], y, "prefix"), sequence_loss(model, out[:1], y), rtol=0, atol=0
    )
    assert not torch.allclose(sequence_loss(model, out, y, "prefix"), sequence_loss(model, out, y))


def test_prefix_loss_trains_and_is_stored(digits, tmp_path):
    cfg = small_config("mtt", epochs=1, loss="prefix")
    model, metrics = fit(cfg, *digits, progress=False)
    assert metrics["test_accuracy"] > 0.15, metrics
    save_checkpoint(tmp_path / "m.pt", cfg, model, metrics)
    assert load_checkpoint(tmp_path / "m.pt")[0].method.loss == "prefix"


@pytest.mark.parametrize(
    "method, model, loss, match",
    [
        ("mtt", "2C1FC", "tet", "--loss 'tet' is unknown; expected one of"),
        ("sltt", "2C1FC", "prefix", "applies to sdt, nmt and mtt on non-trev models"),
        ("sdt", "trev-tiny", "prefix", "trev models --trev loss="),
    ],
)
def test_prefix_loss_refuses_what_it_does_not_apply_to(method, model, loss, match):
    from trainer.config import ConfigError

    cfg = Config()
    cfg.model.name, cfg.method.name, cfg.method.loss = model, method, loss
    with pytest.raises(ConfigError, match=match):
        cfg.validate()


@pytest.mark.parametrize("field, flag", [("samples", "--configs-per-batch"), ("batch_size", "--batch-size")])
def test_validate_names_a_bad_count_by_fits_flag_and_the_field(field, flag):
    """An SDK config with samples = 0 was told "--samples must be ...", a flag fit no longer has."""
    from trainer.config import ConfigError

    cfg = Config()
    setattr(cfg.method, field, 0)
    with pytest.raises(ConfigError, match=rf"^{flag} \(MethodConfig.{field}\) must be a positive integer, got 0$"):
        cfg.validate()


def test_a_config_its_checkpoint_could_not_store_is_refused_before_training(digits, tmp_path):
    """An SDK config with an event recording's duration but the neuron's dt left at 1 µs
    trained, then every reader of its checkpoint refused it (Config.validate: one µs per
    step); fit now says so before the first epoch."""
    cfg = small_config("sdt", epochs=1)
    cfg.data.duration_us = 300_000.0  # 50 ms per step at T = 6; the neuron still steps by 1 µs
    with pytest.raises(ConfigError, match=r"the neuron's dt is 1 µs but one step of this event data is 50000 µs"):
        fit(cfg, *digits, progress=False)
    model, metrics = fit(cfg.with_step_dt(), *digits, progress=False)  # the one rule, then it trains
    save_checkpoint(tmp_path / "m.pt", cfg, model, metrics)
    assert load_checkpoint(tmp_path / "m.pt")[0].neuron.spec.dt == 50_000.0


@pytest.mark.parametrize(
    "change, data, match",
    [
        # Config()'s model input is N-MNIST's 2x34x34: a torch "mat1 and mat2" error, 13 frames deep
        (lambda c: setattr(c.model, "in_shape", (2, 34, 34)), "digits", r"gives inputs of shape \[2, 20, 20\], but"),
        (lambda c: None, "digits:static", "the config is for events data .* the training data holds static"),
        # an IndexError in the loss ("Target 5 is out of bounds")
        (lambda c: setattr(c.model, "num_classes", 5), "digits", "has 10 classes, but the config's .* reads out 5"),
    ],
)
def test_data_that_does_not_fit_the_config_is_refused_before_training(change, data, match):
    cfg = small_config("sdt", epochs=1)
    change(cfg)
    train, test = load_dataset(data, "train", limit=40), load_dataset(data, "test", limit=20)
    with pytest.raises((ConfigError, DataError), match=match):
        fit(cfg, train, test, progress=False)


def test_an_fc_model_refuses_conv_options_before_training(digits):
    """An fc net has no conv: ModelConfig's default bn=True (and a width) built the plain
    fc net and were stored as on; a run of before still resumes as it began."""
    cfg = small_config("sdt", epochs=1)
    cfg.model.name, cfg.model.bn, cfg.model.width = "fc-16", True, 0
    with pytest.raises(ConfigError, match=r"model fc-16 has no conv layers: --norm bn \(ModelConfig.bn"):
        fit(cfg, *digits, progress=False)
    cfg.model.bn, cfg.model.width = False, 4
    with pytest.raises(ConfigError, match=r"--width 4 \(ModelConfig.width\) would be ignored; leave it out"):
        fit(cfg, *digits, progress=False)
    cfg.model.width = 0
    fit(cfg, *digits, progress=False)
