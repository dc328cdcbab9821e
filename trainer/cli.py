"""``python -m trainer fit | eval | calibrate | search | memory | trev-memory``: train, evaluate
at any T or per-stage configuration, recalibrate BN, search the best T per stage under an energy
budget, measure training memory (BPTT vs online methods; T-RevSNN's activations)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import io
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from runtime import cliargs
from runtime.data import DataError, Dataset, load_dataset, spec_paths
from runtime.data.registry import source
from runtime.data.transforms import from_dicts, parse_transform
from runtime.evaluate import EVAL_BATCH_SIZE
from runtime.fileio import OutputPathError, check_output, write_atomic
from runtime.neuron import NeuronSpec, SpecError, field_names, make_spec
from runtime.neuron import all_fields as neuron_fields
from runtime.neuron import presets as neuron_presets
from runtime.neuron.base import field_type
from runtime.report import counted, emit_json, guarded, pct, shown, table

from . import distributed
from .checkpoint import (
    DIGEST_KEY,
    TRAIN_STATE_KEY,
    CheckpointError,
    build_checked,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    unfinished_note,
)
from .config import (
    ANCHORS,
    BN_NORMS,
    CALIB_BATCHES,
    DEFAULT_BIAS,
    DEFAULT_NEURON,
    FIRST_STAGES,
    FIXED_T_METHODS,
    K_SCALES,
    LOSSES,
    METHODS,
    MIXED_T_METHODS,
    NDOT_RATIOS,
    NORMS,
    ONLINE_METHODS,
    OPTIMIZERS,
    STAGE_METHODS,
    TARGETS,
    Config,
    ConfigError,
    DataConfig,
    MethodConfig,
    ModelConfig,
    NeuronConfig,
    is_trev,
)
from .default_model import DEFAULT_MODELS, DefaultModel, default_model
from .fold import fold_and_drop
from .memory import add_memory_parser, cmd_memory
from .models import Net, build_model, model_builder, model_names, named_width, refuse_unread_options
from .online import PAPER_K_SCALE, PAPER_NDOT_RATIO, online_method
from .repro import DEFAULT_THREADS, environment
from .repro import setup as setup_threads
from .search_cli import (
    CALIB_BATCH_SIZE,
    CALIB_RUNS_AVERAGED,
    DEFAULT_CALIB_RUNS,
    add_search_parser,
    cmd_search,
    eval_configs,
    model_data,
)
from .surrogate import DEFAULT_SURROGATE, SURROGATES
from .train import (
    Start,
    calibrate_bn_runs,
    calibration_text,
    check_eval_memory,
    evaluate,
    evaluate_configs,
    fit,
    has_bn,
)
from .trev import DEFAULT_LR as TREV_LR
from .trev import DEFAULT_NEURON as TREV_NEURON
from .trev import DEFAULT_T as TREV_T
from .trev import TRevNet
from .trev import add_options_flag as add_trev_options_flag
from .trev import parse_options as parse_trev_options
from .trev_memory import add_trev_memory_parser, cmd_trev_memory

USER_ERRORS = (ConfigError, DataError, CheckpointError, SpecError, OutputPathError)


def _add_threads(p: argparse.ArgumentParser) -> None:
    cliargs.add_threads(
        p,
        DEFAULT_THREADS,
        f"torch CPU threads (0: all cores; default {DEFAULT_THREADS}: the fastest per epoch measured on small "
        "shared machines, and figures repeat only at a fixed count)",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="only deterministic algorithms (torch.use_deterministic_algorithms)",
    )


TRAIN_SPLITS = ("train-minus-val", "train")  # what fit trains on; the first holds out the validation split
# fit's flags that say how the command runs or loads its data, not what it trains
COMMAND_ONLY = (
    "data",
    "transform",
    "train_split",
    "limit",
    "limit_train",
    "out",
    "resume",
    "init_from",
    "threads",
    "deterministic",
    "quiet",
    "json",
)


def _add_fit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="train a model and write a checkpoint")
    cliargs.add_data(p, "digits")
    cliargs.add_transforms(p, "event transform")
    p.add_argument(
        "--model",
        default=None,
        help="model name: " + ", ".join(model_names()) + " (default: 2C1FCW32 where Speck holds it for "
        "the data's input, as the embedded default's 2x20x20; else 2C1FCW16, as N-MNIST's 2x34x34; "
        "fc-seq on sequences)",
    )
    p.add_argument(
        "--method",
        default=None,
        help=f"one of {', '.join(METHODS)} (default: mtt; trev models: sdt, the only one they train by)",
    )
    cliargs.add_steps(p, f"training T for sdt and online methods (default: --tmax; trev models: {TREV_T})")
    p.add_argument("--K", type=cliargs.nonneg_int, help="sltt-k (required there): steps with backward per batch, 1..T")
    p.add_argument(
        "--mse-weight",
        type=cliargs.unit_float,
        default=None,
        help="online methods: weight w of MSE in the per-step loss (default: 0.05 sltt/ottt, 0.1 ndot)",
    )
    _add_paper_options(p)
    add_trev_options_flag(p)
    _add_start(p)
    cliargs.add_steps(p, "nmt/mtt: smallest T sampled in training", MethodConfig.tmin, flag="--tmin")
    cliargs.add_steps(p, "nmt/mtt: largest T sampled in training (the trained T)", MethodConfig.tmax, flag="--tmax")
    p.add_argument(
        "--stages", type=cliargs.positive_int, default=ModelConfig.stages, help="MTT stages (default %(default)s)"
    )
    p.add_argument(
        "--configs-per-batch",
        type=cliargs.positive_int,
        default=MethodConfig.samples,
        help="nmt/mtt: T configurations each batch trains at (MTT's s; default %(default)s)",
    )
    p.add_argument(
        "--mtt-order",
        default=MethodConfig.order,
        help="mtt: stage configurations in any order, or nonincreasing (T_1 >= T_2 >= ...: MTT as a time "
        "encoder on sequences, paper A.12; default %(default)s)",
    )
    p.add_argument(
        "--anchor",
        choices=ANCHORS,
        default=None,
        help="nmt/mtt: one of the --configs-per-batch configurations is uniform Tmin, which keeps small T "
        "accurate (default tmin for nmt/mtt with --configs-per-batch >= 2, else none; none: the MTT paper's rule)",
    )
    p.add_argument(
        "--loss",
        choices=LOSSES,
        default=MethodConfig.loss,
        help="sdt/nmt/mtt: cross-entropy of the readout of all T steps (readout), or its mean over the "
        "readouts of steps 1..t for every t (prefix: the readouts early exit stops on)",
    )
    p.add_argument(
        "--epochs", type=cliargs.positive_int, default=MethodConfig.epochs, help="passes over the training split"
    )
    cliargs.add_batch_size(p, MethodConfig.batch_size, "samples per training batch")
    p.add_argument(
        "--lr",
        type=cliargs.positive_float,
        default=None,
        help=f"learning rate, cosine schedule (trev models: {TREV_LR:g}) (default: {MethodConfig.lr:g})",
    )
    p.add_argument(
        "--weight-decay",
        type=cliargs.nonneg_float,
        default=MethodConfig.weight_decay,
        help="weight decay (L2, of the --optimizer)",
    )
    cliargs.add_seed(p, "weights, batches and sampled T")
    p.add_argument(
        "--width", type=cliargs.width, default=ModelConfig.width, help="conv width, over the model name's (0: its own)"
    )
    p.add_argument(
        "--neuron",
        default=None,
        help=f"one of {', '.join(neuron_presets())} (default multi-if: as event-driven hardware fires, and "
        f"flexible in T; README, 'Choosing the default'; trev models: {TREV_NEURON}, the paper's, whose sparse "
        "spikes keep the inference cost O(1), docs/trev.md)",
    )
    for name, f in neuron_fields().items():
        if name != "dt":  # dt is one time bin of the data, set from the data and T
            p.add_argument(
                f"--{name.replace('_', '-')}",
                type=field_type(f),
                default=None,
                help=f"{f.metadata['help']} (default: {f.default}, or the preset's)",
            )
    p.add_argument("--surrogate", default=DEFAULT_SURROGATE, help=f"one of {', '.join(SURROGATES)}")
    p.add_argument(
        "--readout",
        default=ModelConfig.readout,
        help="mean (of outputs over steps), li, or spikes (the classifier "
        "ends in spiking neurons, read as mean spike counts: what Speck outputs)",
    )
    p.add_argument(
        "--bias",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_BIAS,
        help="biases in conv/linear layers (default --no-bias: event-driven runtimes and Speck refuse them)",
    )
    p.add_argument(
        "--norm",
        default="none",
        help="conv normalisation: bn (statistics over all T steps), bn-step "
        "(per-step statistics), sws (scaled weight standardisation) or none (default none: BatchNorm folds into "
        "biases, which event-driven hardware refuses)",
    )
    cliargs.add_calib_batches(p, CALIB_BATCHES, "at Tmax after training", "--batch-size samples")
    p.add_argument(
        "--train-split",
        default=TRAIN_SPLITS[0],
        choices=TRAIN_SPLITS,
        help="train-minus-val (default): hold out the validation split (training recordings with "
        "index %% 10 == 1) for choosing exit thresholds; train: every training recording",
    )
    p.add_argument(
        "--limit-train",
        type=cliargs.positive_int,
        default=None,
        help="train on an evenly spread subset of this many training recordings (default: all)",
    )
    cliargs.add_limit(p)
    cliargs.add_out(p, "checkpoint to write", "model.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    cliargs.add_json(
        p,
        "one JSON object at the end (the checkpoint, its test accuracy and metrics); the lines a "
        "person reads go to stderr",
    )
    _add_threads(p)


def _add_paper_options(p: argparse.ArgumentParser) -> None:
    """Paper-exact choices (docs/online_training.md, "Paper details")."""
    p.add_argument(
        "--target",
        choices=TARGETS,
        default=None,
        help="online methods: MSE target, vth (V_th-scaled one-hot, SLTT eq. S13) or onehot (S14, OTTT, "
        "NDOT) (default: the method's paper: vth for sltt/sltt-k, onehot otherwise)",
    )
    p.add_argument(
        "--k-scale",
        choices=K_SCALES,
        default=PAPER_K_SCALE,
        help="sltt-k: divide the loss of the K steps by T (SLTT Alg. 1) or by K (default: %(default)s)",
    )
    p.add_argument(
        "--ndot-ratio",
        choices=NDOT_RATIOS,
        default=PAPER_NDOT_RATIO,
        help="ndot: paper (e_1 = u_1, lambda only where u_{t-1} = 0; its gradients do not point along BPTT's: "
        "docs/online_training.md) or clamped (e_1 = lambda, ratio in [-lambda, lambda]: what trains) "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--first-stage",
        choices=FIRST_STAGES,
        default=MethodConfig.first_stage,
        help="nmt/mtt on event data, the input at a sampled T: rebin (the recording in T frames) or first "
        "(the first T of Tmax frames, MTT appendix A.2) (default: %(default)s)",
    )
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=MethodConfig.optimizer,
        help="adam; sgd with momentum 0.9 as the SLTT/OTTT/NDOT papers; lamb as the T-RevSNN paper "
        "(the pytorch_optimizer package) (default: %(default)s)",
    )


def _add_start(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--init-from",
        default=None,
        help="fine-tune: start from this checkpoint's weights (the model flags must build the same "
        "network; without --model and --width, its model; without --neuron, its neuron, with the neuron flags "
        "given; --norm none folds a BatchNorm model's BatchNorm "
        "into its convs and --no-bias drops its biases first, MTT appendix A.3; --norm must otherwise be its own)",
    )
    g.add_argument(
        "--resume",
        default=None,
        help="continue this checkpoint's run (its config, optimizer, scheduler, epoch, --limit-train and "
        "--limit); the data comes from its config",
    )


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="accuracy of one or more checkpoints at each T")
    p.add_argument("checkpoints", nargs="+", help="one or more model.pt files")
    cliargs.add_data(p, fallback="the checkpoint's")
    cliargs.add_steps(p, "time steps (default 1..Tmax)", several=True)
    p.add_argument(
        "--config",
        type=cliargs.stage_steps,
        action="append",
        default=None,
        help="one T per stage, e.g. 4,2,2,3 (repeatable): accuracy, operations and energy of that "
        "configuration (BatchNorm models: statistics re-estimated for it first); instead of --T",
    )
    cliargs.add_calib_batches(p, CALIB_BATCHES, "for each --config", f"{CALIB_BATCH_SIZE} samples")
    cliargs.add_calib_runs(p, DEFAULT_CALIB_RUNS, CALIB_RUNS_AVERAGED)
    cliargs.add_binning(p)
    p.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="test, or val: the validation recordings held out of training (--train-split "
        "train-minus-val), where choices between models are made",
    )
    cliargs.add_limit(p, of="the split")
    cliargs.add_batch_size(p, EVAL_BATCH_SIZE, "samples per evaluation batch")
    cliargs.add_plot(p, "accuracy vs T")
    cliargs.add_json(p)
    _add_threads(p)


def _add_calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="re-estimate BatchNorm statistics at a given T")
    p.add_argument("checkpoint", help="the model.pt to calibrate (never overwritten)")
    cliargs.add_steps(p, "time steps to calibrate at (default: the trained Tmax)")
    # the name fit, eval, search and export give the same number (it was --batches here)
    cliargs.add_calib_batches(p, CALIB_BATCHES, "at --T", "--batch-size samples", off=False)
    cliargs.add_batch_size(p, 64)
    cliargs.add_calib_runs(
        p,
        DEFAULT_CALIB_RUNS,
        "calibrations with different sample draws (MTT A.6/A.9: 3): the accuracy of each and their mean are "
        "reported; the checkpoint gets the statistics averaged over the runs",
    )
    cliargs.add_data(p, fallback="the checkpoint's")
    cliargs.add_limit(p, of="the test split for the before/after accuracy")
    cliargs.add_out(p, "calibrated checkpoint to write", required=True)
    cliargs.add_json(p)
    _add_threads(p)


def neuron_spec_from_args(a: argparse.Namespace, start: NeuronSpec | None = None) -> NeuronSpec:
    """The preset's kind and fields (or ``start``'s: the neuron of the checkpoint fine-tuned
    without --neuron), then every neuron flag given; a flag the kind does not have is an
    error (never silently ignored). Its ``dt`` is the config's to set
    (:meth:`Config.with_step_dt`)."""
    if start is not None:
        nkind, named = start.kind, f"the neuron of --init-from {a.init_from} ({start.kind})"
        fields = {k: v for k, v in dataclasses.asdict(start).items() if k not in ("kind", "dt")}
    else:
        presets = neuron_presets()
        if a.neuron not in presets:
            raise ConfigError(f"neuron {a.neuron!r} is unknown; expected one of {list(presets)}")
        (nkind, fields), named = presets[a.neuron], f"--neuron {a.neuron}"
    own = set(field_names(nkind))
    for name in neuron_fields():
        value = getattr(a, name, None)
        if value is None or name == "dt":
            continue
        if name not in own:
            raise ConfigError(
                f"--{name.replace('_', '-')} does not apply to {named} ({nkind} neurons have {sorted(own - {'dt'})})"
            )
        fields[name] = value
    try:
        return make_spec(nkind, **fields)
    except SpecError as e:
        raise ConfigError(f"{named}: {e}") from None


def _model_defaults(a: argparse.Namespace) -> argparse.Namespace:
    """``a`` with the defaults that depend on the model filled in: a trev model trains by
    sdt (one sub-network per step) at its own T and learning rate; every other model by mtt."""
    trev = a.model is not None and is_trev(a.model)
    method = a.method if a.method is not None else "sdt" if trev else "mtt"
    T = a.T
    if T is None and trev:  # sdt trains at one T: --tmax names it when --T does not (as for any sdt run)
        T = a.tmax if cliargs.given(a, "tmax") else TREV_T
    lr = a.lr if a.lr is not None else TREV_LR if trev else MethodConfig.lr
    neuron = a.neuron if a.neuron is not None else TREV_NEURON if trev else DEFAULT_NEURON
    return argparse.Namespace(**{**vars(a), "method": method, "T": T, "lr": lr, "neuron": neuron})


# fit flags that only some methods read, with whom they apply to: given to another method
# they would be ignored without a word, so they are refused when the command line gives them
# (at the default value too: `--anchor none` with sdt reads as if it did something)
METHOD_ONLY_FLAGS: dict[str, tuple[tuple[str, ...], str]] = {
    "T": (FIXED_T_METHODS, "sdt and the online methods (nmt and mtt train over --tmin..--tmax)"),
    "tmin": (MIXED_T_METHODS, "nmt and mtt"),
    "configs_per_batch": (MIXED_T_METHODS, "nmt and mtt"),
    "anchor": (MIXED_T_METHODS, "nmt and mtt"),
    "first_stage": (MIXED_T_METHODS, "nmt and mtt"),
    "mtt_order": (("mtt",), "mtt"),
    "loss": (STAGE_METHODS, "sdt, nmt and mtt"),
    "target": (ONLINE_METHODS, "the online methods"),
    "mse_weight": (ONLINE_METHODS, "the online methods"),
    "K": (("sltt-k",), "sltt-k"),
    "k_scale": (("sltt-k",), "sltt-k"),
    "ndot_ratio": (("ndot-a", "ndot-o"), "ndot-a and ndot-o"),
}


def _refuse_flags_the_method_ignores(a: argparse.Namespace, method: str) -> None:
    for dest, (methods, who) in METHOD_ONLY_FLAGS.items():
        if method not in methods and cliargs.given(a, dest):
            flag = "--" + dest.replace("_", "-")
            raise ConfigError(f"{flag} applies to {who}, not to method {method!r}; leave it out")
    if method in FIXED_T_METHODS and a.T is not None and cliargs.given(a, "tmax") and a.tmax != a.T:
        raise ConfigError(
            f"method {method!r} trains at one T: --T {a.T} and --tmax {a.tmax} (the T when --T is not given) "
            "disagree; give one of them"
        )


def config_from_args(
    a: argparse.Namespace, train_shape: tuple[int, ...], kind: str, duration_us: float, ds: Dataset | None = None
) -> Config:
    if a.model is None:  # --width given: the last default, whose width it overrides
        a = _with_model(a, DEFAULT_MODELS[-1] if a.width else _default_model(train_shape, kind, duration_us, ds).name)
    start = getattr(a, "neuron_start", None) if a.neuron is None else None  # set by fit --init-from
    given, a = a, _model_defaults(a)
    spec = neuron_spec_from_args(a, start)
    if a.norm not in NORMS:
        raise ConfigError(f"norm {a.norm!r} is unknown; expected one of {list(NORMS)}")
    bn, bn_stats, weight_std = NORMS[a.norm]
    mse_weight = a.mse_weight
    if mse_weight is None:
        mse_weight = online_method(a.method).mse_weight if a.method in ONLINE_METHODS else MethodConfig.mse_weight
    if a.trev and not is_trev(a.model):
        raise ConfigError(f"--trev applies to trev models only, not to --model {a.model}")
    if is_trev(a.model) and cliargs.given(given, "stages"):
        raise ConfigError(
            f"--stages applies to the MTT models, not to --model {a.model}: a trev model has one sub-network "
            "per time step (--T; docs/trev.md)"
        )
    trev = parse_trev_options(a.trev).to_dict() if is_trev(a.model) else {}
    target = a.target or (online_method(a.method).target if a.method in ONLINE_METHODS else "onehot")
    T = a.T if a.T is not None else a.tmax
    name, width = named_width(a.model, a.width)
    if a.method == "sltt-k" and a.K is None:  # MethodConfig's 0 would read "got 0"
        raise ConfigError(f"sltt-k needs --K (time steps with a backward per batch) in [1, T={T}]; it has no default")
    # the data set's own (DataConfig's defaults otherwise); mixed value types: keyword arguments
    from_ds: dict[str, Any] = (
        {
            "classes": list(ds.classes),
            "durations": ds.durations,
            "transforms": [t.to_dict() for t in ds.transforms],
            "sensor": tuple(ds.sensor),
        }
        if ds is not None
        else {}
    )
    cfg = Config(
        ModelConfig(
            name,
            a.stages,
            width,
            a.bias,
            bn,
            a.readout,
            ds.num_classes if ds is not None else 10,
            train_shape,
            bn_stats=bn_stats,
            weight_std=weight_std,
            trev=trev,
        ),
        NeuronConfig(spec, a.surrogate),
        DataConfig(
            a.data,
            kind,
            train_shape,
            # A.2's first T of Tmax frames are fixed bins of the trained width: evaluated,
            # calibrated and exported so (it was equal binning, the recording re-binned into T)
            binning="fixed" if kind == "events" and a.first_stage == "first" else "equal",
            duration_us=duration_us,
            **from_ds,
            train_split=a.train_split,
        ),
        MethodConfig(
            a.method,
            T,
            a.tmin,
            a.tmax,
            a.configs_per_batch,
            a.epochs,
            a.batch_size,
            a.lr,
            a.weight_decay,
            a.seed,
            a.calib_batches,
            K=0 if a.K is None else a.K,  # 0: not given
            mse_weight=mse_weight,
            order=a.mtt_order,
            anchor=a.anchor or ("tmin" if a.method in MIXED_T_METHODS and a.configs_per_batch >= 2 else "none"),
            target=target,
            k_scale=a.k_scale,
            ndot_ratio=a.ndot_ratio,
            optimizer=a.optimizer,
            first_stage=a.first_stage,
            loss=a.loss,
        ),
    )
    # a flag the method does not read is the error to report before the values' (sdt with
    # --anchor tmin was told it needs "--configs-per-batch >= 2", which sdt does not read); an unknown
    # method is validate's to report, and a trev model's builder refuses any method but sdt
    if a.method in METHODS and not (is_trev(a.model) and a.method != "sdt"):
        _refuse_flags_the_method_ignores(given, a.method)
    refuse_unread_options(cfg.model)
    return cfg.with_step_dt().validate()


def run_lineage(a: argparse.Namespace, resumed: dict | None) -> dict[str, Any]:
    """What a checkpoint's weights came from besides its config, for its metrics:
    ``init_from`` (the checkpoint fine-tuned, by path and digest: the config alone looked
    like a run from scratch) and ``resumed_from`` (each earlier part of a resumed run: after
    which epoch it stopped and its environment, which a resume may change: threads)."""
    if resumed is not None:
        before = resumed["metrics"]
        parts = [
            *before.get("resumed_from", []),
            {"after_epoch": len(before.get("history", [])), "environment": before.get("environment")},
        ]
        return {k: v for k, v in (("init_from", before.get("init_from")), ("resumed_from", parts)) if v}
    if a.init_from:
        return {"init_from": {"checkpoint": a.init_from, "sha256": read_checkpoint(a.init_from).get(DIGEST_KEY)}}
    return {}


def fit_start(a: argparse.Namespace, cfg: Config, ckpt: dict | None) -> Start | None:
    """The weights (``--init-from``, folded when the new model drops BatchNorm/biases) or
    the run (``--resume``, its checkpoint ``ckpt`` already read) that ``fit`` starts from."""
    if ckpt is not None:  # cmd_fit checked that it holds a training state
        metrics = ckpt["metrics"]
        return Start(
            ckpt["state_dict"], ckpt[TRAIN_STATE_KEY], metrics.get("history", []), metrics.get("finished", True)
        )
    if not a.init_from:
        return None
    src_cfg, src, _ = load_checkpoint(a.init_from)
    was, wants = src_cfg.model.norm, cfg.model.norm
    if was != wants and not (src_cfg.model.bn and wants in ("none", *BN_NORMS)):
        # BatchNorm folds away, and its statistics mode is the training's choice; nothing
        # else turns into another normalisation
        raise CheckpointError(
            f"--init-from {a.init_from}: it was trained with --norm {was}, these flags ask for --norm {wants}; "
            f"expected --norm {' or '.join(BN_NORMS) if src_cfg.model.bn else was}"
            + (" (or none, to fold its BatchNorm)" if src_cfg.model.bn else "")
        )
    fold = src_cfg.model.bn and not cfg.model.bn
    if fold or (src_cfg.model.bias and not cfg.model.bias):
        src, folded, dropped = fold_and_drop(src, fold, drop_bias=not cfg.model.bias)
        if not a.quiet and int(os.environ.get("RANK", "0")) == 0:
            done = [f"folded {folded} BatchNorm layers into the layer before each"] if folded else []
            if dropped:
                done.append(f"dropped {dropped} biases (MTT A.3: fine-tuning recovers what they carried)")
            print(f"--init-from {a.init_from}: " + "; ".join(done or ["nothing to fold or drop"]))
    try:
        build_model(cfg).load_state_dict(src.state_dict())
    except RuntimeError as e:  # torch: a title line, then one tab-indented line per mismatch
        found = [line.strip() for line in str(e).splitlines()[1:] if line.strip()]
        shown = "; ".join(found[:2]) + (f"; and {len(found) - 2} more" if len(found) > 2 else "")
        raise CheckpointError(
            f"--init-from {a.init_from}: its weights do not fit the model of these flags ({shown or e})"
        ) from None
    return Start(src.state_dict())


def _with_model(a: argparse.Namespace, model: str) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(a), "model": model})


def _default_model(train_shape: tuple[int, ...], kind: str, duration_us: float, ds: Dataset | None) -> DefaultModel:
    """The model for no ``--model`` and no ``--width``: the wider default width that Speck
    holds for these events (trainer.default_model)."""

    def default_flags(model: str) -> Config:  # the question is the input's, not the other flags'
        return config_from_args(parser().parse_args(["fit", "--model", model]), train_shape, kind, duration_us, ds)

    return default_model(default_flags, train_shape, kind == "events")


LIMITS_KEY = "limits"  # in a checkpoint's train state: the run's --limit-train and --limit
LABELS_KEY = "labels_sha256"  # ... and the digest of its training labels in order (a resume checks it)


def unseen_classes(ds: Dataset) -> str | None:
    """A note when some class has no training sample (npz labels 1..K without ``classes``
    make K + 1 classes, class 0 never seen; a small --limit-train), else None."""
    counts = np.bincount(ds.labels, minlength=len(ds.classes))
    unseen = [c for c, n in zip(ds.classes, counts) if n == 0]
    if not unseen:
        return None
    return (
        f"the training data has no sample of class {unseen[0]!r}"
        if len(unseen) == 1
        else f"the training data has no sample of {len(unseen)} of its {len(ds.classes)} classes {unseen}"
    ) + f" ({ds.spec}): the model cannot learn to predict {'it' if len(unseen) == 1 else 'them'}"


def labels_digest(ds: Dataset) -> str:
    """SHA-256 of ``ds``'s labels in order: a moved data set gives the same, another with
    the same shape, classes and size (labels shifted, another subset) does not."""
    return hashlib.sha256(np.ascontiguousarray(ds.labels, np.int64).tobytes()).hexdigest()


def run_limits(a: argparse.Namespace, resumed: dict[str, Any] | None) -> dict[str, int | None]:
    """The run's data subsets: the flags; for a resumed run, as stored in its checkpoint (a
    flag given again must agree), or the flags for a checkpoint written before they were."""
    given = {"limit_train": a.limit_train, "limit": a.limit}
    stored = None if resumed is None else resumed.get(TRAIN_STATE_KEY, {}).get(LIMITS_KEY)
    if stored is None:
        return given
    for key, value in given.items():
        if value is not None and value != stored[key]:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(
                f"{flag} {value}: the run in {a.resume} used {flag} {stored[key]}; a resumed run sees the same "
                "data (leave the flag out)"
            )
    return dict(stored)


# what a resumed run reads besides the checkpoint: where it writes, how it runs, and its
# data subsets (checked against the stored ones by run_limits)
# a resume reads the command's flags (but for those that would change what it trains: its
# transforms and split are stored, and it is not a fine-tune) and no config flag
RESUME_READS = {"cmd", *COMMAND_ONLY} - {"transform", "train_split", "init_from"}


def moved_data(spec: str, stored: str, path: str) -> str:
    """``--data`` with ``--resume``: where the run's data set is now; the same source only
    (a run whose folder moved could not be resumed at all)."""
    name = source(stored).name
    if source(spec).name != name:
        raise ConfigError(
            f"--data with --resume names where {path}'s data is now: the same data set as its {stored!r} "
            f"({name}:PATH), got {spec!r} (other data: --init-from {path} starts a new run)"
        )
    return spec


def same_training_data(ds: Dataset, cfg: Config, metrics: dict[str, Any], state: dict[str, Any], path: str) -> None:
    """``ds`` (read from a moved ``--data``, or its stored place) is what the run trained
    on, as far as the checkpoint tells: kind, shape, classes, recording length, the samples
    per epoch (the batch order of the epochs left depends on the count) and the labels in
    order (``state``: the checkpoint's train state; a stranger resumed on a same-sized set
    with shifted labels, unsaid)."""
    d = cfg.data
    history = metrics.get("history") or [{}]
    stored_n = history[-1].get("samples")
    world = int((metrics.get("environment") or {}).get("processes", 1))
    got_n = len(ds) - len(ds) % world  # what an epoch trains on (rank_batches leaves the rest out)
    checks = [
        ("kind", d.kind, ds.kind),
        ("shape", tuple(d.shape), tuple(ds.shape)),
        ("classes", list(d.classes), list(ds.classes)),
        ("recording length µs", d.duration_us, ds.duration_us),
        ("training samples per epoch", stored_n, got_n if stored_n is not None else None),
    ]
    bad = [f"{name} {got!r} (the run's: {want!r})" for name, want, got in checks if want != got]
    stored_labels = state.get(LABELS_KEY)  # absent in checkpoints written before it was kept
    if stored_labels is not None and stored_labels != labels_digest(ds):
        bad.append("training labels in order (their SHA-256 differs from the run's)")
    if bad:
        raise DataError(f"--data {ds.spec!r} is not the data {path} trained on: {'; '.join(bad)}")


def _refuse_flags_a_resume_ignores(a: argparse.Namespace) -> None:
    """A resumed run is its checkpoint's config: a model, data or method flag given with
    --resume (an epoch count, a learning rate, a seed) was dropped without a word, also one
    whose value is the parser's default (``--seed 0`` on a run of seed 3)."""
    given = sorted(set(getattr(a, cliargs.GIVEN, ())) - RESUME_READS)
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ConfigError(
            f"--resume continues the run in {a.resume} as it was configured; it does not read {flags}: leave "
            f"{'it' if len(given) == 1 else 'them'} out (a run with other settings starts anew: --init-from "
            f"{a.resume} takes its weights)"
        )


def config_for_data(a: argparse.Namespace, train_ds: Dataset) -> tuple[Config, DefaultModel | None]:
    """The config ``fit``'s flags ``a`` train on ``train_ds``, and the default model chosen
    for its input when ``a`` names none (None otherwise)."""
    choice = None
    if a.model is None and not a.width:
        choice = _default_model(train_ds.shape, train_ds.kind, train_ds.duration_us, train_ds)
        a = _with_model(a, choice.name)
    cfg = config_from_args(a, train_ds.shape, train_ds.kind, train_ds.duration_us, train_ds)
    if cliargs.given(a, "calib_batches") and not cfg.model.bn:  # was accepted and ignored
        raise ConfigError("--calib-batches calibrates BatchNorm; this model has none (--norm none): leave it out")
    if cliargs.given(a, "first_stage") and train_ds.kind != "events":  # was accepted and ignored
        raise ConfigError(
            f"--first-stage chooses how an event recording is binned at a sampled T; {train_ds.spec!r} is "
            f"{train_ds.kind} data, which both choices feed alike: leave it out"
        )
    cfg.check_trainable()
    build_checked(cfg, "the model")  # e.g. more stages than the model has blocks, or too wide
    return cfg, choice


def fit_config(train_ds: Dataset, *flags: str) -> Config:
    """The config that ``python -m trainer fit --data SPEC FLAGS`` trains on ``train_ds``
    (loaded from SPEC), for :func:`trainer.train.fit` from Python: the command's defaults
    (the default model for the data's input, multi-spike IF, no bias, the Tmin anchor; the
    dataclasses' own defaults are what old checkpoints without a field meant) and its checks,
    raised as :class:`ConfigError`, e.g. ``fit_config(ds, "--epochs", "2", "--tmax", "4")``.
    The flags of how the command runs or loads its data (:data:`COMMAND_ONLY`) are refused:
    the data set is loaded already, and the split it was loaded as is the one the config
    records (calibrate-exit then knows whether the validation recordings were held out)."""
    if train_ds.split not in TRAIN_SPLITS:
        raise ConfigError(f"training data is the {train_ds.split!r} split; expected one of {list(TRAIN_SPLITS)}")
    typed = next((f for f in flags if not isinstance(f, str)), None)
    if typed is not None:  # argparse's own TypeError otherwise
        raise ConfigError(f"flags are strings, as typed on the command line; got {typed!r}: write {str(typed)!r}")
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):  # the command's one error: line, raised here
            a = cliargs.parse(parser, ["fit", *flags])  # which flags were given: the command's checks
    except SystemExit:
        raise ConfigError(said.getvalue().strip().removeprefix("error: ")) from None
    run_flags = [f"--{d.replace('_', '-')}" for d in COMMAND_ONLY if cliargs.given(a, d)]
    if run_flags:  # they would be taken and ignored: the data set is loaded already
        raise ConfigError(f"{', '.join(run_flags)}: the command's, not the config's (load the data with them)")
    return config_for_data(
        argparse.Namespace(**{**vars(a), "data": train_ds.spec, "train_split": train_ds.split}), train_ds
    )[0]


def as_json(command: Callable[[argparse.Namespace], dict[str, Any] | None]) -> Callable[[argparse.Namespace], None]:
    """``command`` whose ``--json`` prints the summary it returns as the one object on
    stdout; every line it prints for a person goes to stderr then."""

    def run(a: argparse.Namespace) -> None:
        if not a.json:
            command(a)
            return
        with contextlib.redirect_stdout(sys.stderr):
            summary = command(a)
        if summary is not None:  # under torchrun, rank 0's
            emit_json(summary)

    return run


@as_json
def cmd_fit(a: argparse.Namespace) -> dict[str, Any] | None:
    # the data: once the spec is known (a resume's is stored)
    out = check_output(a.out, a.resume, a.init_from, kind=(".pt", "a checkpoint"))
    distributed.check_environment()  # before the data: its warnings would precede the error line
    resumed = read_checkpoint(a.resume) if a.resume else None
    if resumed is None:
        if a.init_from:
            src = Config.from_dict(read_checkpoint(a.init_from)["config"])
            if a.model is None and not a.width:  # fine-tuning keeps the network it starts from
                a = argparse.Namespace(**{**vars(_with_model(a, src.model.name)), "width": src.model.width})
            if a.neuron is None:  # ... and its neuron (it became multi-IF, unsaid), with the neuron flags given
                a = argparse.Namespace(**{**vars(a), "neuron_start": src.neuron.spec})
        # check everything that needs no data before loading it (the default model is chosen
        # once the data's input is known: a stand-in here)
        if a.model is None and a.trev:
            raise ConfigError("--trev applies to trev models only; give --model trev-SIZE")
        config_from_args(_with_model(a, a.model or DEFAULT_MODELS[-1]), (1, 1, 1), "static", 0.0)
        model_builder(a.model or DEFAULT_MODELS[-1])
        transforms = [parse_transform(t) for t in a.transform]
        spec, split = a.data, a.train_split
    else:
        _refuse_flags_a_resume_ignores(a)
        if TRAIN_STATE_KEY not in resumed:  # before its data is read and checked against it
            raise CheckpointError(f"{a.resume} holds no training state (written before issue 18 or by calibrate)")
        rcfg = Config.from_dict(resumed["config"])
        transforms, spec, split = from_dicts(rcfg.data.transforms), rcfg.data.spec, rcfg.data.train_split
        if cliargs.given(a, "data"):  # the same data in another place (a moved folder, another machine)
            spec = moved_data(a.data, rcfg.data.spec, a.resume)
        print(f"resuming {a.resume}: its config and data {spec!r}")
    check_output(out, *spec_paths(spec))  # --data, or a resumed run's, named in its checkpoint
    limits = run_limits(a, resumed)
    try:
        train_ds = load_dataset(spec, split, limits["limit_train"], transforms)
    except DataError as e:
        if resumed is None or cliargs.given(a, "data"):  # a path the user typed: its own message
            raise
        # the spec is stored as it was typed: a relative folder is relative to where fit ran
        raise DataError(
            f"{e} (the data {spec!r} as stored in {a.resume}; a relative path is relative to the folder "
            "the run started in: resume from there, or name where the data is now with --data)"
        ) from None
    test_ds = load_dataset(spec, "test", limits["limit"], transforms)
    if test_ds.classes != train_ds.classes:
        raise DataError(
            f"data {spec!r}: the test split has classes {test_ds.classes}, the training split "
            f"{train_ds.classes}; expected the same"
        )
    if resumed is None:
        cfg, choice = config_for_data(a, train_ds)
        if choice is not None and not a.quiet and int(os.environ.get("RANK", "0")) == 0:  # once under torchrun
            print(f"model {choice.name} (the default for {'x'.join(map(str, train_ds.shape))} input: {choice.why})")
    else:
        cfg = Config.from_dict(resumed["config"])
        same_training_data(train_ds, cfg, resumed["metrics"], resumed[TRAIN_STATE_KEY], a.resume)
        if spec != cfg.data.spec:
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, spec=spec))  # where it is now
        build_checked(cfg, "the model")
    start = fit_start(a, cfg, resumed)
    lineage = run_lineage(a, resumed)
    labels = labels_digest(train_ds)
    data_warnings = [w for w in [unseen_classes(train_ds)] if w]
    if int(os.environ.get("RANK", "0")) == 0:
        for w in data_warnings:
            print(f"warning: {w}", file=sys.stderr)

    saved: list[dict[str, Any]] = []  # the progress last written to `out` (for the note on Ctrl-C)

    def write_epoch(model: Net, history: list[dict[str, float]], state: dict) -> None:
        # after every epoch: an interrupted run resumes from here (--resume)
        progress = {"history": history, "finished": False, "environment": environment(cfg.method.seed), **lineage}
        save_checkpoint(out, cfg, model, progress, {**state, LIMITS_KEY: limits, LABELS_KEY: labels})
        saved[:] = [progress]

    try:
        model, metrics = fit(
            cfg,
            train_ds,
            test_ds,
            progress=not a.quiet and sys.stderr.isatty(),
            verbose=not a.quiet,
            start=start,
            on_epoch=write_epoch,
        )
    except KeyboardInterrupt:  # "interrupted" alone did not say that the epochs done are kept
        if saved and int(os.environ.get("RANK", "0")) == 0:
            print(f"note: {unfinished_note(out, cfg, saved[0])}", file=sys.stderr)
        raise
    state = {**metrics.pop("train_state"), LIMITS_KEY: limits, LABELS_KEY: labels}
    metrics.update(lineage)
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    save_checkpoint(out, cfg, model, metrics, state)
    how = f", after BatchNorm calibration at T={cfg.train_T}" if metrics.get("bn_calibrated_layers") else ""
    print(
        f"wrote {out}: test accuracy {100 * metrics['test_accuracy']:.2f}% on {counted(len(test_ds), 'sample')} "
        f"at T={cfg.train_T}{how} "
        f"({metrics['seconds_per_epoch']:.1f} s/epoch, {counted(metrics['environment']['threads'], 'thread')})"
    )
    summary = {"checkpoint": str(out), "data": cfg.data.spec, "n": len(test_ds), "T": cfg.train_T, **metrics}
    return {**summary, "warnings": data_warnings}


class EvalRun(NamedTuple):
    """One checkpoint's ``trainer eval``: its data, sample count and accuracy per T."""

    data: str
    n: int
    accuracy: dict[int, float]


def eval_json(runs: dict[str, EvalRun], all_T: list[int]) -> dict[str, Any]:
    """The same shape for one checkpoint as for several: ``T`` (the union of their T) and
    one ``runs`` entry per checkpoint with its ``checkpoint`` path, ``data``, ``n`` and
    ``accuracy`` per T (null where it was not evaluated at that T: without ``--T`` each runs
    its own trained range)."""
    return {
        "T": all_T,
        "runs": [
            {"checkpoint": p, "data": r.data, "n": r.n, "accuracy": [r.accuracy.get(T) for T in all_T]}
            for p, r in runs.items()
        ],
    }


def cmd_eval(a: argparse.Namespace) -> None:
    # BatchNorm is recalibrated per configuration only; a uniform --T evaluates the stored
    # statistics (trainer calibrate recalibrates at a T): ignored before, unsaid
    given = {"--calib-batches": cliargs.given(a, "calib_batches"), "--calib-runs": cliargs.given(a, "calib_runs")}
    cliargs.refuse_unread("--config", bool(a.config), given, ConfigError)
    if a.config:
        if a.split != "test":
            raise ConfigError("--split val applies to --T; configurations are fitted on val by `trainer search`")
        return eval_configs(a)
    if a.plot:
        check_output(a.plot, *a.checkpoints, *spec_paths(a.data), what="plot")
    runs: dict[str, EvalRun] = {}
    warnings = []
    for path in a.checkpoints:
        cfg, model, metrics = load_checkpoint(path)
        if note := unfinished_note(path, cfg, metrics):  # printed by the load; --json's too
            warnings.append(note)
        if a.split == "val" and cfg.data.train_split != "train-minus-val":
            raise ConfigError(
                f"{path} was trained on every training recording (--train-split {cfg.data.train_split}), "
                "the validation split among them; expected a model trained with --train-split train-minus-val"
            )
        ds = model_data(path, cfg, a.data, a.split, a.limit)
        if a.binning is not None and ds.kind != "events":  # was accepted and ignored
            raise ConfigError(
                f"--binning {a.binning}: {ds.spec} is {ds.kind} data, which has no time to bin; leave it out"
            )
        Ts = a.T or list(range(1, cfg.train_T + 1))  # each checkpoint its own trained range
        if isinstance(model, TRevNet) and max(Ts) > model.T:
            has = f"{path} has {model.T} sub-networks (T in 1..{model.T})"
            if len(set(map(str, a.checkpoints))) == 1:  # refused before any warning is printed
                raise ConfigError(f"T={max(Ts)} is not available: {has}")
            # beside other models (a comparison at T = 1 4 6 was refused outright): its cells stay empty
            beyond = [T for T in Ts if T > model.T]
            which = f"T={beyond[0]} is" if len(beyond) == 1 else f"T={beyond} are"
            warnings.append(f"{which} not available: {has}; shown as - (null in --json)")
            print(f"warning: {warnings[-1]}", file=sys.stderr)
            Ts = [T for T in Ts if T <= model.T]
        check_eval_memory(model, ds, max(Ts, default=1), a.batch_size)  # before any warning is printed
        for warning in (cfg.t_range_warning(path, Ts), cfg.bn_T_warning(path, Ts)):
            if warning:
                warnings.append(warning)
                print(f"warning: {warning}", file=sys.stderr)
        uniform = [[T] * len(model.stages) for T in Ts]  # evaluate's configurations, its memory checked above
        acc = evaluate_configs(
            model,
            ds,
            uniform,
            a.batch_size,
            a.binning or cfg.data.binning,
            sys.stderr.isatty(),
            cfg.dt_us,
            memory_checked=True,
        )
        runs[path] = EvalRun(ds.spec, len(ds), dict(zip(Ts, acc)))
    if a.plot:
        plot_accuracy({p: r.accuracy for p, r in runs.items()}, a.plot)
    all_T = sorted({T for r in runs.values() for T in r.accuracy} | set(a.T or ()))  # asked: a row each
    if a.json:
        emit_json(
            {**eval_json(runs, all_T), "split": a.split, "warnings": warnings, **({"plot": a.plot} if a.plot else {})}
        )
        return
    data = {(r.data, r.n) for r in runs.values()}
    if len(data) == 1:
        spec, n = data.pop()
        print(f"{a.split} accuracy (%) on {spec} ({counted(n, 'sample')})")
    else:  # checkpoints trained on different data, each evaluated on its own
        print(f"{a.split} accuracy (%), each checkpoint on its own data:")
        for path, r in runs.items():
            print(f"  {Path(path).name}: {r.data} ({counted(r.n, 'sample')})")
    names = [Path(p).name for p in runs]
    cells = [[T, *(pct(r.accuracy[T]) if T in r.accuracy else "-" for r in runs.values())] for T in all_T]
    print(table(["T", *names], cells))
    if a.plot:
        print(f"wrote {a.plot}")


def plot_accuracy(results: dict[str, dict[int, float]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    drawn = {name: acc for name, acc in results.items() if acc}  # a T-RevSNN asked beyond its T: no point
    for name, acc in drawn.items():
        ax.plot(list(acc), [100 * x for x in acc.values()], marker="o", label=shown(Path(name).stem))
    ax.set_xlabel("inference time steps T")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend()
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)


@as_json
def cmd_calibrate(a: argparse.Namespace) -> dict[str, Any]:
    if a.calib_batches == 0:  # "0: off" elsewhere; here the command is the calibration
        raise ConfigError("--calib-batches 0 calibrates nothing; expected a positive number of training batches")
    check_output(a.out, a.checkpoint, kind=(".pt", "a checkpoint"))
    cfg, model, metrics = load_checkpoint(a.checkpoint)
    check_output(a.out, *spec_paths(a.data or cfg.data.spec))  # the data it runs: --data, else the checkpoint's
    T = a.T or cfg.method.tmax
    if not has_bn(model):
        raise ConfigError(f"{a.checkpoint} has no BatchNorm layers: there is nothing to calibrate")
    if warning := cfg.t_range_warning(a.checkpoint, [T]):  # as eval says it (calibrate was silent)
        print(f"warning: {warning}", file=sys.stderr)
    ds = model_data(a.checkpoint, cfg, a.data, "train", None)
    test = model_data(a.checkpoint, cfg, a.data, "test", a.limit)
    binning, dt_us = cfg.data.binning, cfg.dt_us  # as the model is run (A.2's models: the first T bins)

    def accuracy() -> float:
        return evaluate(model, test, [T], a.batch_size, binning, dt_us=dt_us)[0]

    before = accuracy()
    per_run: list[float] = []
    n = calibrate_bn_runs(
        model,
        ds,
        T,
        a.calib_batches,
        a.batch_size,
        a.calib_runs,
        after_run=lambda _k: per_run.append(accuracy()),
        binning=binning,
        dt_us=dt_us,
    )
    after = accuracy() if a.calib_runs > 1 else per_run[0]
    runs_metrics = {}
    if a.calib_runs > 1:
        runs_metrics = {
            "calib_runs": a.calib_runs,
            "test_accuracy_per_calibration_run": per_run,
            "test_accuracy_mean_over_calibration_runs": statistics.mean(per_run),
        }
    calibrated = {
        "bn_calibrated_layers": n,
        "bn_calibration_T": T,
        "test_accuracy_before_calibration": before,
        "test_accuracy": after,
        **runs_metrics,
    }
    cfg.method.bn_T = T  # the statistics now fit T: eval and the exported file run it by default
    save_checkpoint(a.out, cfg, model, {**metrics, **calibrated})
    runs = ""
    if a.calib_runs > 1:
        runs = (
            f"; over {a.calib_runs} calibration runs {', '.join(f'{100 * x:.2f}%' for x in per_run)}: mean "
            f"{100 * statistics.mean(per_run):.2f}% (sd {100 * statistics.pstdev(per_run):.2f} points); "
            "the written statistics are their average"
        )
    print(
        f"calibrated {n} BatchNorm layers at T={T} ({calibration_text(a.calib_batches, len(ds), a.batch_size)}"
        f"{' per run' if a.calib_runs > 1 else ''}): test accuracy at T={T} "
        f"{100 * before:.2f}% -> {100 * after:.2f}% ({len(test)} samples){runs}; wrote {a.out}"
    )
    return {"checkpoint": str(a.out), "data": test.spec, "n": len(test), **calibrated}


def parser() -> argparse.ArgumentParser:
    p = cliargs.Parser(prog="python -m trainer", description=__doc__).add_version()
    sub = p.add_subparsers(dest="cmd", required=True)
    _add_fit(sub)
    _add_eval(sub)
    _add_calibrate(sub)
    _add_threads(add_search_parser(sub))
    add_memory_parser(sub)
    add_trev_memory_parser(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    a = cliargs.parse(parser, argv)
    if hasattr(a, "deterministic"):  # fit, eval, calibrate, search (memory commands set their own threads)
        guarded(USER_ERRORS, lambda: setup_threads(a.threads, a.deterministic))
    commands = {
        "fit": cmd_fit,
        "eval": cmd_eval,
        "calibrate": cmd_calibrate,
        "search": cmd_search,
        "memory": cmd_memory,
        "trev-memory": cmd_trev_memory,
    }
    guarded(USER_ERRORS, lambda: commands[a.cmd](a))
