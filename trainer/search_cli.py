"""``trainer eval --config`` and ``trainer search``: evaluate a per-stage time-step
configuration, and find the best one under an energy budget (MTT appendix A.8/A.9;
the maths in :mod:`trainer.config_search`)."""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from runtime import cliargs
from runtime.data import DataError, Dataset, check_fits, load_dataset, spec_paths
from runtime.data.datasets import stored_data_error
from runtime.data.transforms import from_dicts
from runtime.evaluate import EVAL_BATCH_SIZE
from runtime.fileio import check_output, write_atomic
from runtime.protocol import DATA_INPUT_KINDS, DENSE_KINDS
from runtime.report import counted, emit_json, energy_note, pct, sci, table

from .checkpoint import load_checkpoint
from .config import CALIB_BATCHES, Config, ConfigError
from .config_search import (
    AccuracyModel,
    SearchError,
    SearchResult,
    energy,
    fit_accuracy,
    random_configs,
    search,
    validation_stats,
)
from .models import Net, SpikingNet
from .stage_cost import RunCounts, counting
from .train import calibrate_bn_runs, calibration_batches, check_eval_memory, evaluate_configs, has_bn

DEFAULT_CALIB_RUNS = 1  # --calib-runs of eval, search, export and calibrate (MTT A.6/A.9 use 3)
CALIB_RUNS_AVERAGED = (
    "calibrations of each configuration with different sample draws, their statistics averaged (MTT A.6/A.9: 3)"
)
# the first draw of every calibration for a configuration (run k draws CALIB_SEED + k): one
# for eval, search and export, so that export deploys the statistics the others measured
CALIB_SEED = 0
# samples per BatchNorm calibration batch: fixed, not the evaluation's batch size, so that
# `export --config` deploys exactly the statistics `eval --config` measured
CALIB_BATCH_SIZE = 64


def check_stages(path: str, model: object) -> SpikingNet:
    """A model whose stages can run at their own T (not T-RevSNN: its steps are sub-networks)."""
    if not isinstance(model, SpikingNet):
        raise ConfigError(f"{path} is a {type(model).__name__}: per-stage T applies to the xCyFC and resnet families")
    return model


def check_config(path: str, cfg: Config, n_stages: int, config: list[int]) -> None:
    """One T per stage, each in [1, Tmax] of the model."""
    tmax = cfg.T_range[1]
    if len(config) != n_stages:
        raise ConfigError(
            f"--config {','.join(map(str, config))} gives {len(config)} T values, but {path} has "
            f"{n_stages} stages; expected one T per stage"
        )
    bad = [t for t in config if not 1 <= t <= tmax]
    if bad:
        raise ConfigError(
            f"--config {','.join(map(str, config))}: T={bad} outside [1, {tmax}] (the Tmax {path} was trained for)"
        )


@dataclass
class Evaluator:
    """Accuracy and operation counts of configurations of one model on one split; with
    BatchNorm, the statistics are re-estimated for each configuration on the training
    split first (on a copy: the loaded weights stay as they are)."""

    model: SpikingNet
    ds: Dataset
    calib_ds: Dataset | None
    calib_batches: int
    batch_size: int
    binning: str | None = None
    dt_us: float | None = None  # fixed binning's bin width: the model's trained one (Config.dt_us)
    calib_runs: int = 1  # calibrations, their statistics averaged (MTT A.6/A.9)

    def run(self, config: list[int], ds: Dataset | None = None) -> tuple[float, RunCounts]:
        ds = ds or self.ds
        model = for_config(
            self.model, self.calib_ds, config, self.calib_batches, self.calib_runs, self.binning, self.dt_us
        )
        # the runtime's cost model: the first layer's inputs are dense (MACs) for static
        # images and recorded sequences (real values, maybe negative), spikes (ACs) for events
        check_eval_memory(model, ds, config[0], self.batch_size)  # its probe step, before the counting hooks
        with counting(model, DATA_INPUT_KINDS[ds.kind] in DENSE_KINDS) as counts:
            acc = evaluate_configs(
                model, ds, [list(config)], self.batch_size, self.binning, dt_us=self.dt_us, memory_checked=True
            )[0]
        counts.samples, counts.stage_T = len(ds), list(config)
        return acc, counts

    def measure(self, configs: np.ndarray, desc: str) -> tuple[np.ndarray, np.ndarray]:
        """Accuracy and energy (µJ/sample) of each configuration."""
        show = sys.stderr.isatty()
        runs = [self.run([int(t) for t in c]) for c in tqdm(configs, desc=desc, disable=not show)]
        return np.array([a for a, _ in runs]), np.array([c.per_sample()["energy_uj"] for _, c in runs])


def for_config(
    model: SpikingNet,
    calib_ds: Dataset | None,
    config: list[int],
    batches: int,
    runs: int = 1,
    binning: str | None = None,
    dt_us: float | None = None,
) -> SpikingNet:
    """The model a configuration runs as (evaluated by ``eval --config`` and ``search``,
    deployed by ``export --config``): with BatchNorm (``calib_ds`` given), a copy whose
    statistics are re-estimated for ``config`` on ``batches`` training batches drawn from
    :data:`CALIB_SEED` (averaged over ``runs`` draws, MTT A.6/A.9); else ``model``."""
    if calib_ds is None or batches <= 0:
        return model
    model = copy.deepcopy(model)
    calibrate_bn_runs(
        model, calib_ds, list(config), batches, CALIB_BATCH_SIZE, runs, CALIB_SEED, binning=binning, dt_us=dt_us
    )
    return model


def model_data(path: str, cfg: Config, data: str | None, split: str, limit: int | None) -> Dataset:
    """``split`` of ``--data``, or of the data the checkpoint at ``path`` was trained on,
    with its transforms, checked to fit the model: every trainer command that runs a
    checkpoint on a data set reads it so (runtime.cliargs.model_data is the ONNX side)."""
    try:
        ds = load_dataset(data or cfg.data.spec, split, limit, from_dicts(cfg.data.transforms))
    except DataError as e:
        raise (e if data else stored_data_error(e, cfg.data.spec, path)) from None
    n = cfg.model.num_classes  # a config whose class names do not match its count (older files): by count
    classes = cfg.data.classes if len(cfg.data.classes) == n else n
    return check_fits(ds, cfg.model.in_shape, classes, path, kind=cfg.data.kind)


def load(path: str, data: str | None, split: str, limit: int | None) -> tuple[Config, Net, Dataset]:
    cfg, model, _ = load_checkpoint(path)
    return cfg, model, model_data(path, cfg, data, split, limit)


def refuse_calibration_flags_without_bn(a: argparse.Namespace, path: str, model: SpikingNet) -> None:
    """--calib-batches/--calib-runs on a model without BatchNorm: nothing reads them (they
    were accepted and ignored; export refused them)."""
    flags = [f"--{d.replace('_', '-')}" for d in ("calib_batches", "calib_runs") if cliargs.given(a, d)]
    if flags and not has_bn(model):
        raise ConfigError(f"{' and '.join(flags)} calibrate BatchNorm; {path} has no BatchNorm layers: leave them out")
    refuse_runs_without_batches(a, ConfigError)


def calibration_record(batches: int, n_samples: int, runs: int) -> dict[str, int]:
    """How :func:`for_config` calibrates, for a report: the batches that run (a split of
    ``n_samples`` may hold fewer than ``batches``), their size, the runs and the first seed."""
    ran = calibration_batches(batches, n_samples, CALIB_BATCH_SIZE)
    return {"batches": ran, "batch_size": CALIB_BATCH_SIZE, "runs": runs, "seed": CALIB_SEED}


def refuse_runs_without_batches(a: argparse.Namespace, error: type[Exception]) -> None:
    """--calib-runs with --calib-batches 0: calibration is off, nothing would run (eval,
    search and export accepted it and ignored it)."""
    if cliargs.given(a, "calib_runs") and a.calib_batches == 0:
        raise error(f"--calib-runs {a.calib_runs} with --calib-batches 0: calibration is off; leave one of them out")


def calibration_data(path: str, cfg: Config, model: SpikingNet, data: str | None) -> Dataset | None:
    """The split the model at ``path`` was trained on (of ``data`` if given), checked to fit
    it, for BN calibration (None: no BatchNorm)."""
    if not has_bn(model):
        return None
    return model_data(path, cfg, data, cfg.data.train_split, None)


def eval_configs(a: argparse.Namespace) -> None:
    """``trainer eval --config ...``: accuracy, operations and energy of each configuration."""
    if a.T:
        raise ConfigError("--T and --config both given; use --T for uniform steps or --config for one T per stage")
    if a.plot:
        raise ConfigError("--plot draws accuracy vs uniform T; it does not apply to --config")
    out: dict[str, list[dict[str, Any]]] = {}
    loaded = []
    for path in a.checkpoints:  # check every configuration against every model before evaluating
        cfg, model, _ = load_checkpoint(path)
        model = check_stages(path, model)
        for c in a.config:
            check_config(path, cfg, len(model.stages), c)
        loaded.append((path, cfg, model))
    # as eval --T warns: a stage at a T the model was not trained at
    warnings = [w for path, cfg, _ in loaded if (w := cfg.t_range_warning(path, [t for c in a.config for t in c]))]
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    for path, _, model in loaded:
        refuse_calibration_flags_without_bn(a, path, model)
    data: dict[str, tuple[str, int]] = {}
    calibrated: dict[str, dict[str, int] | None] = {}  # per checkpoint: how each configuration's BN was re-estimated
    for path, cfg, model in loaded:
        _, _, ds = load(path, a.data, "test", a.limit)
        data[path] = (ds.spec, len(ds))
        calib = calibration_data(path, cfg, model, a.data)
        calibrated[path] = (
            calibration_record(a.calib_batches, len(calib), a.calib_runs)
            if calib is not None and a.calib_batches
            else None
        )
        ev = Evaluator(
            model,
            ds,
            calib,
            a.calib_batches,
            a.batch_size,
            binning=a.binning or cfg.data.binning,
            dt_us=cfg.dt_us,
            calib_runs=a.calib_runs,
        )
        out[path] = [config_row(c, *ev.run(c)) for c in a.config]
    if a.json:  # eval --T's shape: one entry per checkpoint, for one or several (it was a list or a dict)
        runs = [
            {"checkpoint": p, "data": data[p][0], "n": data[p][1], "bn_calibration": calibrated[p], "results": rs}
            for p, rs in out.items()
        ]
        emit_json(
            {"configs": [list(map(int, c)) for c in a.config], "split": a.split, "runs": runs, "warnings": warnings}
        )
        return
    print(f"test split of {ds.spec} ({len(ds)} samples)")
    rows = [
        [path, ",".join(map(str, r["config"])), pct(r["accuracy"]), sci(r["macs"]), sci(r["acs"]), sci(r["energy_uj"])]
        for path, rs in out.items()
        for r in rs
    ]
    headers = ["model", "config (T per stage)", "accuracy (%)", "MACs/sample", "ACs/sample", "energy µJ/sample*"]
    print(table(headers, rows))
    for path, how in calibrated.items():
        if how is not None:
            print(
                f"{path}: BatchNorm re-estimated for each configuration on {how['batches']} training batches of "
                f"{how['batch_size']} (seed {how['seed']}, {counted(how['runs'], 'run')} averaged)"
            )
    print(energy_note())


def config_row(config: list[int], acc: float, counts: RunCounts) -> dict[str, Any]:
    """One configuration's figures; energy in µJ per sample, as runtime run gives it."""
    return {
        "config": [int(t) for t in config],
        "accuracy": acc,
        **counts.per_sample(),
        "stage_energy_uj": counts.stage_energy_uj().tolist(),
        "stage_firing_rate": counts.stage_rates().tolist(),
    }


# What R_i, stage i's cost of one step, is measured as (EC(t) = sum_i t_i R_i).
COST_MODELS = {
    # the synaptic-operation energy of the stage per step and sample: stages of different
    # size and fan-out cost what they cost (the default)
    "energy": lambda counts: counts.stage_energy_uj() / np.array(counts.stage_T, np.float64),
    # the paper's (A.9): the stage's mean firing rate, blind to how many neurons and synapses it has
    "rate": lambda counts: counts.stage_rates(),
}


def add_search_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "search",
        help="best T per stage under an energy budget (MTT appendix A.8/A.9)",
        description=__doc__,
    )
    p.add_argument("checkpoint", help="a model.pt with more than one stage (trained with mtt)")
    cliargs.add_data(p, fallback="the checkpoint's")
    cliargs.add_steps(
        p, "the budget is the estimated energy of every stage at this uniform T (Tg)", flag="--budget-T", required=True
    )
    p.add_argument(
        "--fit-configs",
        type=cliargs.positive_int,
        default=18,
        help="random configurations the accuracy model is fitted on",
    )
    p.add_argument(
        "--validate-configs",
        type=cliargs.nonneg_int,
        default=100,
        help="further random configurations to validate the accuracy model on (fewer if the space has fewer left)",
    )
    p.add_argument(
        "--cost",
        default="energy",
        help="R_i, stage i's cost per step: energy (µJ of its synaptic operations, default) or rate "
        "(its firing rate, as the paper)",
    )
    p.add_argument(
        "--check-energy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also report 'checked': the best configuration within the estimated budget whose energy measured on "
        "the validation split is at most uniform Tg's there",
    )
    # not the calibration's draws: those are eval's and export's (CALIB_SEED), so that the
    # configuration found is deployed with the statistics it was measured with
    cliargs.add_seed(p, "the sampled configurations")
    cliargs.add_calib_batches(p, CALIB_BATCHES, "at each configuration", f"{CALIB_BATCH_SIZE} samples")
    cliargs.add_calib_runs(p, DEFAULT_CALIB_RUNS, CALIB_RUNS_AVERAGED)
    cliargs.add_batch_size(p, EVAL_BATCH_SIZE, "samples per evaluation batch")
    cliargs.add_limit(p)
    cliargs.add_plot(p, "predicted vs measured accuracy")
    cliargs.add_json(p)
    return p


def cmd_search(a: argparse.Namespace) -> None:
    if a.plot:
        check_output(a.plot, a.checkpoint, *spec_paths(a.data), what="plot")
    if a.cost not in COST_MODELS:
        raise ConfigError(f"--cost {a.cost!r} is unknown; expected one of {list(COST_MODELS)}")
    cfg, model, _ = load_checkpoint(a.checkpoint)
    model = check_stages(a.checkpoint, model)
    n = len(model.stages)
    tmin, tmax = cfg.T_range
    if n < 2 or tmin == tmax:
        raise ConfigError(
            f"{a.checkpoint} has {n} stage(s) trained for T in [{tmin}, {tmax}]; a search needs a model with "
            "several stages trained over a range of T (--method mtt --stages N)"
        )
    if a.fit_configs < n + 1:  # fewer: lstsq's minimum-norm answer, an accuracy model fitted to nothing
        raise ConfigError(
            f"--fit-configs {a.fit_configs}: the accuracy model has {n + 1} parameters (K per stage and c, MTT A.8); "
            f"expected at least {n + 1} configurations (the paper: 18)"
        )
    if a.budget_T < tmin:
        raise ConfigError(
            f"--budget-T {a.budget_T} is below the cheapest configuration (every stage at T={tmin}, the "
            f"smallest T {a.checkpoint} was trained for); expected {tmin}..{tmax}"
        )
    if a.budget_T > tmax:
        raise ConfigError(f"--budget-T {a.budget_T} is outside [{tmin}, {tmax}], the T {a.checkpoint} was trained for")
    if cfg.data.train_split != "train-minus-val":
        raise ConfigError(
            f"{a.checkpoint} was trained on every training recording (--train-split {cfg.data.train_split}): the "
            "validation split the search fits on was trained on; retrain with --train-split train-minus-val"
        )
    _, _, val = load(a.checkpoint, a.data, "val", None)
    _, _, test = load(a.checkpoint, a.data, "test", a.limit)
    refuse_calibration_flags_without_bn(a, a.checkpoint, model)
    calib = calibration_data(a.checkpoint, cfg, model, a.data)
    ev = Evaluator(
        model, val, calib, a.calib_batches, a.batch_size, cfg.data.binning, cfg.dt_us, calib_runs=a.calib_runs
    )
    bn_calibration = None  # what every configuration's statistics came from (export --config's too)
    if calib is not None and a.calib_batches > 0:
        bn_calibration = calibration_record(a.calib_batches, len(calib), a.calib_runs)
    rng = np.random.default_rng(a.seed)

    # 1. the accuracy model, fitted on random configurations measured on the validation split
    fit_cfgs = random_configs(n, tmin, tmax, a.fit_configs, rng)
    fit_acc, fit_energy = ev.measure(fit_cfgs, "fit configurations")
    acc_model = fit_accuracy(fit_cfgs, fit_acc)
    # 2. the energy model: each stage's cost per step in a uniform run at Tmax (the paper: T=6)
    _, uniform_counts = ev.run([tmax] * n)
    R = COST_MODELS[a.cost](uniform_counts)
    budget = float(energy(np.array([a.budget_T] * n), R))
    # 3. the search (exact; see trainer.config_search)
    try:
        found = search(acc_model, R, budget, tmin, tmax)
    except SearchError as e:
        raise ConfigError(str(e)) from None
    # 4. held-back configurations: how well the accuracy model predicts
    val_cfgs = random_configs(n, tmin, tmax, a.validate_configs, rng, exclude=fit_cfgs)
    val_acc, val_energy = ev.measure(val_cfgs, "validation configurations")
    stats = validation_stats(acc_model.predict(val_cfgs), val_acc)
    # how well EC(t) = sum_i t_i R_i orders the measured energy of every configuration run
    all_cfgs, all_energy = np.vstack([fit_cfgs, val_cfgs]), np.concatenate([fit_energy, val_energy])
    energy_r = validation_stats(energy(all_cfgs, R), all_energy)["pearson_r"]
    # 5. the chosen configuration and uniform Tg on the test split
    chosen = [int(t) for t in found.config]
    uniform = [a.budget_T] * n
    checked, tries = check_energy(ev, found, budget, uniform) if a.check_energy else (chosen, [])
    report = {
        "checkpoint": a.checkpoint,
        "data": test.spec,
        "n_val": len(val),
        "n_test": len(test),
        "seed": a.seed,  # of the sampled configurations; calibration draws start at CALIB_SEED
        "bn_calibration": bn_calibration,
        "stages": n,
        "T_range": [tmin, tmax],
        "cost_model": a.cost,
        "K": acc_model.K.tolist(),
        "c": acc_model.c,
        "R": R.tolist(),
        "budget": budget,
        "energy_model_pearson_r": energy_r,
        "fit": {"configs": fit_cfgs.tolist(), "val_accuracy": fit_acc.tolist(), "val_energy_uj": fit_energy.tolist()},
        "validation": {
            **stats,
            "configs": val_cfgs.tolist(),
            "val_accuracy": val_acc.tolist(),
            "val_energy_uj": val_energy.tolist(),
        },
        "chosen": _measured(ev, chosen, test, acc_model, R),
        "uniform": _measured(ev, uniform, test, acc_model, R),
    }
    report["test_accuracy_difference"] = report["chosen"]["test_accuracy"] - report["uniform"]["test_accuracy"]
    if a.check_energy:
        report["checked"] = _measured(ev, checked, test, acc_model, R)
        report["checked_tries"] = tries
        report["checked_test_accuracy_difference"] = (
            report["checked"]["test_accuracy"] - report["uniform"]["test_accuracy"]
        )
    if a.plot:
        plot_search(report, found.frontier_energy, found.frontier_predicted, a.plot)
        report["plot"] = a.plot
    if a.json:
        emit_json(_no_nan(report))  # JSON has no NaN: an undefined r (too few configurations) is null
        return
    print_search(report)
    if a.plot:
        print(f"wrote {a.plot}")


def _no_nan(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    return [_no_nan(v) for v in obj] if isinstance(obj, list) else obj


def check_energy(
    ev: Evaluator, found: SearchResult, budget: float, uniform: list[int]
) -> tuple[list[int], list[dict[str, Any]]]:
    """The most accurate (predicted) frontier configuration within the estimated budget
    whose energy, measured on the validation split, is at most uniform Tg's there; uniform
    Tg itself if none is. EC(t) = sum_i t_i R_i assumes a stage's cost per step does not
    depend on the configuration, which fails when it does (event frames binned into fewer
    steps carry more events each; up-sampling replicates spikes): this keeps the comparison
    with uniform Tg at equal or lower energy as measured, still without the test split."""
    limit = ev.run(uniform)[1].per_sample()["energy_uj"]
    tries = []
    for k in np.flatnonzero(found.frontier_energy <= budget * (1 + 1e-9))[::-1]:
        config = [int(t) for t in found.frontier_configs[k]]
        e = ev.run(config)[1].per_sample()["energy_uj"]
        tries.append({"config": config, "val_energy_uj": e, "uniform_val_energy_uj": limit})
        if e <= limit * (1 + 1e-9):
            return config, tries
    return list(uniform), tries


def _measured(ev: Evaluator, config: list[int], test: Dataset, acc_model: AccuracyModel, R: np.ndarray) -> dict:
    acc, counts = ev.run(config, test)
    c = np.array([config])
    return {
        **config_row(config, acc, counts),
        "test_accuracy": acc,
        "predicted_val_accuracy": float(acc_model.predict(c)[0]),
        "estimated_cost": float(energy(c, R)[0]),
    }


def print_search(r: dict[str, Any]) -> None:
    unit = "µJ/sample" if r["cost_model"] == "energy" else "spike rate x steps"
    print(
        f"accuracy model on {r['n_val']} validation samples, {len(r['fit']['configs'])} random configurations: "
        f"ACC(t) = sum_i K_i sqrt(log2 t_i) + c, K = [{', '.join(f'{k:.4f}' for k in r['K'])}], c = {r['c']:.4f}"
    )
    v = r["validation"]
    if not v["n"]:
        print("no held-back configurations (--validate-configs 0, or none left): the accuracy model is not validated")
    else:
        print(
            f"validated on {v['n']} further configurations (validation split): Pearson r {v['pearson_r']:.3f}, "
            f"mean absolute error {100 * v['mae']:.2f} points"
        )
    per_step = "µJ/sample per step" if r["cost_model"] == "energy" else "spike rate per step"
    print(f"R_i ({per_step}, uniform T={r['T_range'][1]}): {[round(x, 4) for x in r['R']]}")
    print(
        f"EC(t) = sum_i t_i R_i vs measured energy over the {len(r['fit']['configs']) + v['n']} configurations "
        f"run (validation split): Pearson r {r['energy_model_pearson_r']:.3f}"
    )
    print(f"budget: {r['budget']:.4g} {unit} (uniform T={r['uniform']['config'][0]})")
    rows = []
    for name in ("chosen", "checked", "uniform"):
        if name not in r:
            continue
        m = r[name]
        rows.append(
            [
                name,
                ",".join(map(str, m["config"])),
                pct(m["predicted_val_accuracy"]),
                pct(m["test_accuracy"]),
                sci(m["estimated_cost"]),
                sci(m["energy_uj"]),
                sci(m["acs"]),
            ]
        )
    print(f"on the test split ({r['n_test']} samples):")
    print(
        table(
            [
                "",
                "config (T per stage)",
                "predicted (%, val)",
                "test accuracy (%)",
                f"estimated cost ({unit})",
                "measured energy (µJ/sample)",
                "ACs/sample",
            ],
            rows,
        )
    )
    print(f"difference chosen - uniform: {100 * r['test_accuracy_difference']:+.2f} points on the test split")
    if "checked" in r:
        print(
            f"checked: the best frontier configuration whose energy measured on the validation split is at most "
            f"uniform's ({len(r['checked_tries'])} tried); difference checked - uniform: "
            f"{100 * r['checked_test_accuracy_difference']:+.2f} points on the test split"
        )
    print(energy_note())


def plot_search(r: dict[str, Any], front_e: np.ndarray, front_acc: np.ndarray, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    K, c = np.array(r["K"]), r["c"]
    model = AccuracyModel(K, c)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label, marker in (("fit", "fit", "o"), ("validation", "held back", "x")):
        cfgs = np.array(r[key]["configs"]).reshape(-1, r["stages"])
        if len(cfgs):
            ax1.scatter(100 * model.predict(cfgs), 100 * np.array(r[key]["val_accuracy"]), marker=marker, label=label)
    lo, hi = ax1.get_xlim()
    ax1.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
    v = r["validation"]
    ax1.set_title(f"accuracy model: r = {v['pearson_r']:.2f}, MAE = {100 * v['mae']:.2f} pts (n={v['n']})")
    ax1.set_xlabel("predicted accuracy (%)")
    ax1.set_ylabel("measured accuracy, validation split (%)")
    ax1.legend()
    ax2.step(front_e, 100 * front_acc, where="post", label="predicted frontier")
    for name, m in (("chosen", "*"), ("uniform", "s")):
        x = r[name]
        ax2.scatter([x["estimated_cost"]], [100 * x["predicted_val_accuracy"]], marker=m, s=80, label=name)
    ax2.axvline(r["budget"], color="grey", ls="--", lw=0.8, label="budget")
    ax2.set_xlabel("estimated cost " + ("(µJ/sample)" if r["cost_model"] == "energy" else "(rate x steps)"))
    ax2.set_ylabel("predicted accuracy (%)")
    ax2.legend()
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)
