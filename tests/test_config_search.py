"""Per-stage configurations (MTT appendix A.8/A.9): the accuracy model's fit, the exact
budgeted search against brute force, the stage cost counts, and the CLIs
(`trainer eval --config`, `trainer search`) with their bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import one_error
from tests.conftest import run_trainer as run
from trainer.cli import main
from trainer.config_search import (
    AccuracyModel,
    SearchError,
    all_configs,
    energy,
    features,
    fit_accuracy,
    random_configs,
    search,
    validation_stats,
)


def brute_force(model: AccuracyModel, R: np.ndarray, budget: float, tmin: int, tmax: int) -> tuple[float, float]:
    """Best predicted accuracy within budget by enumerating every configuration, and the
    least energy that reaches it."""
    c = all_configs(len(R), tmin, tmax)
    e, p = energy(c, R), model.predict(c)
    ok = e <= budget + 1e-9
    best = p[ok].max()
    return float(best), float(e[ok & (p >= best - 1e-12)].min())


@pytest.mark.parametrize("seed", range(25))
def test_search_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5))
    tmin, tmax = int(rng.integers(1, 3)), int(rng.integers(3, 7))
    model = AccuracyModel(rng.normal(0.02, 0.03, n), 0.5)  # some K negative: not monotone in t
    R = rng.uniform(0.1, 3.0, n)
    budget = float(energy(np.array([rng.uniform(tmin, tmax)] * n), R))
    got = search(model, R, budget, tmin, tmax)
    best, cheapest_best = brute_force(model, R, budget, tmin, tmax)
    assert got.energy <= budget + 1e-9
    assert got.predicted == pytest.approx(best, abs=1e-12)
    assert got.energy == pytest.approx(cheapest_best)  # of equally good ones, the cheapest
    assert (tmin <= got.config).all() and (got.config <= tmax).all()
    assert got.predicted == pytest.approx(float(model.predict(got.config[None])[0]))


def test_frontier_is_pareto_and_complete():
    rng = np.random.default_rng(3)
    model, R = AccuracyModel(np.array([0.05, 0.01, 0.03]), 0.0), np.array([1.0, 2.0, 0.5])
    res = search(model, R, 1e9, 1, 4)
    assert (np.diff(res.frontier_energy) > 0).all() and (np.diff(res.frontier_predicted) > 0).all()
    c = all_configs(3, 1, 4)
    e, p = energy(c, R), model.predict(c)
    for k in rng.choice(len(c), 20):  # every configuration is matched or beaten by a frontier point
        assert ((res.frontier_energy <= e[k] + 1e-12) & (res.frontier_predicted >= p[k] - 1e-12)).any()


def test_budget_below_cheapest_is_refused_and_uniform_budget_is_feasible():
    model, R = AccuracyModel(np.array([0.1, 0.1]), 0.0), np.array([1.0, 3.0])
    with pytest.raises(SearchError, match="below the cheapest"):
        search(model, R, 0.99 * 2 * R.sum(), 2, 6)
    res = search(model, R, float(energy(np.array([2, 2]), R)), 2, 6)  # exactly the cheapest
    assert res.config.tolist() == [2, 2]


def test_fit_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    K, c = np.array([0.04, -0.01, 0.02, 0.07]), 0.61
    configs = random_configs(4, 1, 6, 18, rng)
    clean = features(configs) @ K + c
    got = fit_accuracy(configs, clean)
    assert got.K == pytest.approx(K, abs=1e-10) and got.c == pytest.approx(c, abs=1e-10)
    noisy = fit_accuracy(configs, clean + rng.normal(0, 1e-3, len(clean)))
    assert noisy.K == pytest.approx(K, abs=0.01)


def test_features_follow_the_paper():
    assert features(np.array([[1, 2, 4, 8]])).tolist() == [[0.0, 1.0, np.sqrt(2), np.sqrt(3)]]
    with pytest.raises(SearchError):
        features(np.array([[0, 1]]))


def test_random_configs_are_distinct_in_range_and_exclude():
    rng = np.random.default_rng(1)
    first = random_configs(3, 1, 6, 18, rng)
    rest = random_configs(3, 1, 6, 100, rng, exclude=first)
    both = {tuple(c) for c in np.vstack([first, rest])}
    assert len(both) == 118 and first.min() >= 1 and rest.max() <= 6
    small = random_configs(2, 1, 3, 50, rng, exclude=first[:0])
    assert len(small) == 9 and len({tuple(c) for c in small}) == 9  # the whole space, once
    assert random_configs(3, 1, 6, 0, rng).shape == (0, 3) and random_configs(2, 1, 2, 5, rng, small).shape == (0, 2)


def test_validation_stats():
    s = validation_stats(np.array([0.1, 0.2, 0.3]), np.array([0.2, 0.2, 0.4]))
    assert s["mae"] == pytest.approx(0.2 / 3)
    assert s["pearson_r"] == pytest.approx(np.corrcoef([1, 2, 3], [2, 2, 4])[0, 1])


# ---- torch side: stage counts and the CLIs ----------------------------------------------

TINY = ["--epochs", "1", "--limit-train", "150", "--width", "4", "--quiet", "--tmax", "4"]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("search")
    plain, bn = d / "plain.pt", d / "bn.pt"
    main(["fit", "--data", "digits", "--model", "2C1FC", "--stages", "3", "--out", str(plain), *TINY])
    main(["fit", "--data", "digits", "--model", "2C1FC", "--stages", "2", "--norm", "bn", "--out", str(bn), *TINY])
    return plain, bn


def test_stage_counts_match_a_hand_count(ckpts):
    from runtime.data import load_dataset
    from trainer.checkpoint import load_checkpoint
    from trainer.stage_cost import counting

    cfg, model, _ = load_checkpoint(ckpts[0])
    ds = load_dataset("digits", "test", 8)
    x = torch.from_numpy(ds.frames(np.arange(8), 3))
    with counting(model, dense_input=False) as counts:
        model(x, [3, 2, 4])
    conv1 = model.stages[0].layers[0].layers[0].module
    # the first conv sees the event frames: ACs = dense MACs x mean input (3 steps, 8 samples)
    dense = 3 * 8 * conv1.out_channels * 20 * 20 * conv1.weight[0].numel()
    assert counts.stages[0].acs == pytest.approx(dense * float(x.double().mean()))
    assert counts.stages[0].macs == 0
    assert all(s.neuron_steps > 0 for s in counts.stages[:2])
    with counting(model, dense_input=True) as dense_counts:
        model(x, [3, 2, 4])
    assert dense_counts.stages[0].macs == pytest.approx(dense)  # a static image: dense MACs


def test_eval_config_table_json_and_uniform_equals_T(ckpts, capsys):
    plain = str(ckpts[0])
    code, out, err = run(capsys, "eval", plain, "--config", "2,2,2", "--config", "4,1,3", "--json", "--limit", "40")
    assert code == 0, err
    obj = json.loads(out)
    (run_,) = obj["runs"]  # one checkpoint: the same shape as several (eval --T's)
    res = run_["results"]
    assert obj["configs"] == [[2, 2, 2], [4, 1, 3]] and run_["checkpoint"] == plain and run_["n"] == 40
    assert obj["split"] == "test"  # as eval --T's JSON says it
    assert [r["config"] for r in res] == [[2, 2, 2], [4, 1, 3]]
    assert all(r["energy_uj"] > 0 and len(r["stage_energy_uj"]) == 3 for r in res)
    code, out, _ = run(capsys, "eval", plain, "--T", "2", "--json", "--limit", "40")
    assert json.loads(out)["runs"][0]["accuracy"][0] == res[0]["accuracy"]  # uniform config = uniform T
    code, out, _ = run(capsys, "eval", plain, "--config", "4,1,3", "--limit", "40")
    assert code == 0 and "energy µJ/sample*" in out and "4,1,3" in out


def test_eval_config_calibrates_bn_for_that_config_on_a_copy(ckpts, capsys):
    from runtime.data import load_dataset
    from trainer.checkpoint import load_checkpoint
    from trainer.train import calibrate_bn, evaluate_configs

    bn = str(ckpts[1])
    before = ckpts[1].read_bytes()
    code, out, err = run(capsys, "eval", bn, "--config", "1,4", "--json", "--limit", "40")
    assert code == 0, err
    got = json.loads(out)["runs"][0]["results"][0]["accuracy"]
    # what the statistics came from, as search's report says it (eval --config said nothing)
    assert json.loads(out)["runs"][0]["bn_calibration"] == {"batches": 10, "batch_size": 64, "runs": 1, "seed": 0}
    cfg, model, _ = load_checkpoint(bn)
    test = load_dataset("digits", "test", 40)
    uncalibrated = evaluate_configs(model, test, [[1, 4]])[0]
    calibrate_bn(model, load_dataset("digits", cfg.data.train_split), [1, 4], 10, 64)
    assert got == evaluate_configs(model, test, [[1, 4]])[0]
    code, out, _ = run(capsys, "eval", bn, "--config", "1,4", "--json", "--limit", "40", "--calib-batches", "0")
    assert json.loads(out)["runs"][0]["results"][0]["accuracy"] == uncalibrated
    assert json.loads(out)["runs"][0]["bn_calibration"] is None
    code, out, _ = run(capsys, "eval", bn, "--config", "1,4", "--limit", "40")
    assert "BatchNorm re-estimated for each configuration on 10 training batches of 64 (seed 0, 1 run averaged)" in out
    assert ckpts[1].read_bytes() == before


def test_eval_config_calib_runs_averages_three_calibrations(ckpts, capsys):
    """``--calib-runs 3`` (MTT A.6/A.9): the configuration is evaluated with the statistics
    averaged over three calibrations with different draws (seeds 0, 1, 2)."""
    from runtime.data import load_dataset
    from trainer.checkpoint import load_checkpoint
    from trainer.train import calibrate_bn_runs, evaluate_configs

    bn = str(ckpts[1])
    code, out, err = run(capsys, "eval", bn, "--config", "1,4", "--json", "--limit", "40", "--calib-runs", "3")
    assert code == 0, err
    got = json.loads(out)["runs"][0]["results"][0]["accuracy"]
    cfg, model, _ = load_checkpoint(bn)
    test = load_dataset("digits", "test", 40)
    calibrate_bn_runs(model, load_dataset("digits", cfg.data.train_split), [1, 4], 10, 64, runs=3)
    assert got == evaluate_configs(model, test, [[1, 4]])[0]
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    once = load_checkpoint(bn)[1]
    calibrate_bn_runs(once, load_dataset("digits", cfg.data.train_split), [1, 4], 10, 64, runs=1)
    once_bns = [m for m in once.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert not torch.equal(bns[0].running_mean, once_bns[0].running_mean)  # three draws differ from one


def test_eval_config_passes_calib_runs_to_the_calibration(ckpts, capsys, monkeypatch):
    """The accuracy comparison above can coincide on 40 samples; this one cannot: the CLI
    must hand ``--calib-runs`` to the calibration, for every configuration it evaluates."""
    import trainer.search_cli as search_cli

    seen: list[int] = []
    real = search_cli.calibrate_bn_runs

    def spy(model, ds, config, batches, batch_size, runs, seed=0, **binned):
        seen.append(runs)
        assert binned["binning"] == "equal" and binned["dt_us"] > 0  # the model's own binning
        return real(model, ds, config, batches, batch_size, runs, seed, **binned)

    monkeypatch.setattr(search_cli, "calibrate_bn_runs", spy)
    args = ["eval", str(ckpts[1]), "--config", "1,4", "--config", "4,1", "--json", "--limit", "8"]
    code, _, err = run(capsys, *args, "--calib-runs", "3")
    assert code == 0, err
    assert seen == [3, 3]
    seen.clear()
    code, _, err = run(capsys, *args)
    assert code == 0, err
    assert seen == [1, 1]


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--config", "2,2"], "gives 2 T values, but"),
        (["--config", "2,5,2"], "T=[5] outside [1, 4]"),
        (["--config", "2,0,2"], "comma-separated time steps"),
        (["--config", "2,x,2"], "comma-separated time steps"),
        (["--config", "2,2,2", "--T", "3"], "--T and --config"),
        # BatchNorm is recalibrated per configuration only: with --T these were ignored, unsaid
        (["--T", "3", "--calib-runs", "3"], "only --config reads --calib-runs"),
        (["--T", "3", "--calib-batches", "50"], "only --config reads --calib-batches"),
    ],
)
def test_eval_config_bad_input(ckpts, capsys, args, msg):
    code, out, err = run(capsys, "eval", str(ckpts[0]), *args)
    one_error(code, err, msg)
    assert out == ""


def test_calibration_runs_of_no_batches_are_refused(ckpts, capsys):
    """--calib-runs with --calib-batches 0 (calibration off) was accepted and ignored."""
    off = ["--calib-batches", "0", "--calib-runs", "3"]
    for argv in (["eval", str(ckpts[1]), "--config", "1,4"], ["search", str(ckpts[1]), "--budget-T", "2"]):
        code, out, err = run(capsys, *argv, *off)
        one_error(code, err, "--calib-runs 3 with --calib-batches 0: calibration is off")
        assert out == ""


def test_search_reports_and_plots(ckpts, capsys, tmp_path):
    png = tmp_path / "fit.png"
    argv = [
        "search",
        str(ckpts[0]),
        "--budget-T",
        "2",
        "--fit-configs",
        "8",
        "--validate-configs",
        "6",
        "--limit",
        "40",
    ]
    code, out, err = run(capsys, *argv, "--json", "--plot", str(png))
    assert code == 0, err
    r = json.loads(out)
    assert r["uniform"]["config"] == [2, 2, 2] and len(r["K"]) == 3 and len(r["R"]) == 3
    assert r["chosen"]["estimated_cost"] <= r["budget"] * (1 + 1e-9)
    assert r["chosen"]["predicted_val_accuracy"] >= r["uniform"]["predicted_val_accuracy"] - 1e-12
    assert r["validation"]["n"] == 6 and r["n_test"] == 40 and r["n_val"] == 180
    assert not {tuple(c) for c in r["fit"]["configs"]} & {tuple(c) for c in r["validation"]["configs"]}
    # checked: within the estimate and, measured on the validation split, within uniform's energy
    tries = r["checked_tries"]
    assert r["checked"]["estimated_cost"] <= r["budget"] * (1 + 1e-9) and tries
    assert tries[0]["config"] == r["chosen"]["config"]  # the search's choice is tried first
    last = tries[-1]
    assert all(t["val_energy_uj"] > t["uniform_val_energy_uj"] for t in tries[:-1])
    if last["val_energy_uj"] <= last["uniform_val_energy_uj"]:
        assert r["checked"]["config"] == last["config"]
    else:
        assert r["checked"]["config"] == r["uniform"]["config"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and r["plot"] == str(png)  # said, as tradeoff's
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "difference chosen - uniform" in out and "Pearson r" in out
    assert "R_i (µJ/sample per step, uniform T=4)" in out  # the cost per step with its unit
    code, out, err = run(capsys, *argv[:-4], "--validate-configs", "0", "--json")  # r undefined: null, still JSON
    assert code == 0, err
    r = json.loads(out)
    assert r["validation"]["n"] == 0 and r["validation"]["pearson_r"] is None


def test_search_measures_what_eval_and_export_deploy(ckpts, capsys, tmp_path):
    """search --seed N calibrated BatchNorm with draws from N, eval --config and export
    --config from 0: the configuration found was deployed with other statistics than its
    reported accuracy was measured with. --seed draws the configurations only now."""
    argv = [
        "search",
        str(ckpts[1]),
        "--budget-T",
        "2",
        "--fit-configs",
        "4",
        "--validate-configs",
        "0",
        "--limit",
        "60",
    ]
    code, out, err = run(capsys, *argv, "--seed", "3", "--calib-runs", "2", "--no-check-energy", "--json")
    assert code == 0, err
    report = json.loads(out)
    chosen = report["chosen"]  # and the report says what its statistics came from
    assert report["bn_calibration"] == {"batches": 10, "batch_size": 64, "runs": 2, "seed": 0}
    config = ",".join(map(str, chosen["config"]))
    code, out, err = run(
        capsys, "eval", str(ckpts[1]), "--config", config, "--calib-runs", "2", "--limit", "60", "--json"
    )
    assert code == 0, err
    want = json.loads(out)["runs"][0]["results"][0]
    # the spikes (the accuracy of so small a model does not tell draws apart)
    assert want["acs"] == chosen["acs"] and want["accuracy"] == chosen["test_accuracy"]


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--budget-T", "9"], "outside [1, 4]"),
        (["--budget-T", "0"], "--budget-T must be"),
        (["--budget-T", "2", "--cost", "watts"], "--cost 'watts' is unknown"),
        # fewer configurations than the accuracy model's parameters: fitted to nothing, unsaid
        (["--budget-T", "2", "--fit-configs", "1"], "--fit-configs 1: the accuracy model has"),
    ],
)
def test_search_bad_input(ckpts, capsys, args, msg):
    code, out, err = run(capsys, "search", str(ckpts[0]), *args)
    assert code == 2 and out == "" and err.startswith("error: ") and msg in err


def test_eval_config_outside_the_trained_range_warns(tmp_path, capsys):
    """eval --T warned of a T outside the trained range; eval --config did not (a model
    trained only at T=4 run at 2,2 without a word), and its --json had no warnings."""
    path = tmp_path / "sdt.pt"
    main(["fit", "--data", "digits", "--model", "2C1FC", "--method", "sdt", "--out", str(path), *TINY])
    capsys.readouterr()
    code, out, err = run(capsys, "eval", str(path), "--config", "2,4", "--limit", "20", "--json")
    assert code == 0, err
    want = f"{path} was trained for T in [4, 4]; T=2 lies outside that range"
    assert f"warning: {want}" in err and json.loads(out)["warnings"] == [want]


def test_search_refuses_budget_below_cheapest(tmp_path, capsys):
    path = tmp_path / "m.pt"
    main(["fit", "--data", "digits", "--model", "2C1FC", "--tmin", "2", "--out", str(path), *TINY])
    capsys.readouterr()
    code, out, err = run(capsys, "search", str(path), "--budget-T", "1")
    assert code == 2 and "below the cheapest configuration" in err and out == ""


@pytest.mark.slow  # exports and runs the model: about 15 s
def test_uniform_config_costs_what_the_runtime_counts(ckpts, capsys, tmp_path):
    """One cost definition: at a uniform configuration, the trainer's per-stage counts sum
    to the runtime's operation count and energy of the exported model (digits 20x20: the
    poolings drop no edge, where the runtime's pass-through rate and the rate a layer
    receives would differ)."""
    from export.cli import main as export_main
    from runtime.cli import main as runtime_main
    from tests.conftest import run_main

    onnx_path = tmp_path / "m.onnx"
    code, _, err = run_main(export_main, capsys, str(ckpts[0]), "-o", str(onnx_path))
    assert code == 0, err
    code, out, err = run_main(
        runtime_main, capsys, "run", str(onnx_path), "--policy", "fixed:3", "--limit", "40", "--json"
    )
    assert code == 0, err
    rt = json.loads(out)
    code, out, err = run(capsys, "eval", str(ckpts[0]), "--config", "3,3,3", "--limit", "40", "--json")
    assert code == 0, err
    tr = json.loads(out)["runs"][0]["results"][0]
    assert tr["accuracy"] == rt["accuracy"]
    assert tr["macs"] == rt["macs"] and tr["acs"] == pytest.approx(rt["acs"], rel=1e-9)
    assert tr["energy_uj"] == pytest.approx(rt["energy_uj"], rel=1e-9)  # one unit for one quantity


@pytest.mark.slow  # trains two tiny models: about 30 s on a busy 2-core machine
def test_models_search_cannot_use_are_refused(tmp_path, capsys):
    trev, full = tmp_path / "trev.pt", tmp_path / "full.pt"
    one_T = ["--method", "sdt", "--T", "2", "--tmax", "2"]  # after TINY: sdt's T and tmax agree
    main(["fit", "--data", "digits", "--model", "trev-tiny", "--out", str(trev), *TINY, *one_T])
    main(["fit", "--data", "digits", "--model", "2C1FC", "--train-split", "train", "--out", str(full), *TINY])
    capsys.readouterr()
    for argv, msg in [
        (["eval", str(trev), "--config", "1,1"], "per-stage T applies to the xCyFC and resnet families"),
        (["search", str(trev), "--budget-T", "1"], "per-stage T applies to the xCyFC and resnet families"),
        (["search", str(full), "--budget-T", "2"], "the validation split the search fits on was trained on"),
    ]:
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "" and msg in err, err
