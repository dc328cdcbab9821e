"""Training, evaluation at any T, and BatchNorm calibration: one readable loop each."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from runtime.data import Dataset, check_fits
from runtime.evaluate import EVAL_BATCH_SIZE
from runtime.limits import check_memory, check_steps, positive_int

from . import distributed, repro
from .config import ONLINE_METHODS, OPTIMIZERS, Config, ConfigError, MethodConfig
from .methods import expected_cost_ratio, sample_configs
from .models import Net, SpikingNet, build_model, refuse_unread_options
from .online import online_iteration
from .trev import TRevNet


def frames(ds: Dataset, idx, T: int, binning: str | None = None, dt_us: float | None = None) -> torch.Tensor:
    """``[T, B, ...]`` inputs of samples ``idx``; ``dt_us``: the bin width of fixed binning
    (the model's trained one, :attr:`Config.dt_us`; without it fixed bins split the
    recording into T, which is equal binning again)."""
    return torch.from_numpy(ds.frames(np.asarray(idx), T, binning, dt_us))


def first_frames(ds: Dataset, idx, tmax: int, T: int) -> torch.Tensor:
    """MTT appendix A.2 for DVS data: the first ``T`` of the recording's ``tmax`` frames
    (``MethodConfig.first_stage == "first"``), binned as the model is then evaluated and
    run: fixed bins of the trained width (``Config.dt_us``; equal binning into ``tmax``
    and fixed bins agree but where float rounding puts an event on a bin edge); static
    data: the same as :func:`frames`."""
    return frames(ds, idx, T, "fixed", ds.duration_us / tmax) if ds.kind == "events" else frames(ds, idx, T)


def batch_at(ds: Dataset, idx, m: MethodConfig) -> Callable[[int], torch.Tensor]:
    """``T -> the batch at T`` for a stage-T method: the recording re-binned into T frames
    (``rebin``, the default) or the first T of Tmax frames (``first``, A.2)."""
    if m.first_stage == "first":
        return partial(first_frames, ds, idx, m.tmax)
    return partial(frames, ds, idx)


@torch.no_grad()
def evaluate(
    model: Net,
    ds: Dataset,
    Ts: list[int],
    batch_size: int = EVAL_BATCH_SIZE,
    binning: str | None = None,
    progress: bool = False,
    dt_us: float | None = None,
) -> list[float]:
    """Accuracy at each T in ``Ts`` (every stage at T; events binned into T frames, fixed
    binning in bins of ``dt_us``)."""
    if isinstance(Ts, (str, bytes)) or np.ndim(Ts) != 1:  # a bare 4 was a TypeError from inside
        raise ConfigError(f"Ts is {Ts!r}; expected a list of time steps, e.g. [4] or range(1, 7)")
    return evaluate_configs(model, ds, [[T] * len(model.stages) for T in Ts], batch_size, binning, progress, dt_us)


@torch.no_grad()
def evaluate_configs(
    model: Net,
    ds: Dataset,
    configs: list[list[int]],
    batch_size: int = EVAL_BATCH_SIZE,
    binning: str | None = None,
    progress: bool = False,
    dt_us: float | None = None,
    memory_checked: bool = False,
) -> list[float]:
    """Accuracy at each per-stage configuration (stage i at ``config[i]`` steps; events
    binned into ``config[0]`` frames, the temporal transformation module between stages).
    ``memory_checked``: the caller ran :func:`check_eval_memory` for the largest of them
    (before its own warnings, or before hooks that would count the probe step as work)."""
    for config in configs:
        for T in config:
            if not positive_int(T):
                raise ConfigError(f"time steps must be positive integers, got {T!r} (in {list(config)})")
            check_steps(T)
    if configs and not memory_checked:  # once, at the largest: the need grows with T (one probe step)
        check_eval_memory(model, ds, max(config[0] for config in configs), batch_size)
    starts = range(0, len(ds), batch_size)
    with eval_mode(model):
        bar = tqdm(configs, desc="eval", disable=not progress, leave=False)
        return [count_correct(model, ds, T_s, starts, batch_size, binning, dt_us) / len(ds) for T_s in bar]


def check_eval_memory(model: Net, ds: Dataset, T: int, batch_size: int) -> None:
    """Refuse an evaluation that would not fit, before any allocation (:func:`step_bytes`
    per sample and step, all T at once); data the model cannot take is a ConfigError here."""
    batch = min(batch_size, len(ds))
    check_memory(batch * T * step_bytes(model, ds.shape, len(ds.classes)), f"evaluating batches of {batch} at T={T}")


def step_bytes(model: Net, shape: tuple[int, ...], classes: int = 0) -> int:
    """The bytes a run of ``model`` holds at least per sample and step: the frame as binning
    builds it (int64 counts, then float32: 16 bytes per element) and each neuron state
    element's current, spike and membrane (12 bytes; the frames alone undercounted a conv
    net 13-fold). Counted by one step from rest at batch 1 on zeros of ``shape``: a shape
    the layers do not take, or more than ``classes`` outputs, is a ConfigError here, not a
    torch error from inside the run (or a silently wrong accuracy)."""
    with torch.no_grad(), eval_mode(model):
        try:
            y, states = model.step(torch.zeros(1, *shape), 0, [None] * model.n_states)
        except RuntimeError as e:  # on zeros of the data's shape: a shape the layers do not take
            raise ConfigError(
                f"the data's samples of shape {list(shape)} do not fit this model ({str(e).splitlines()[0]})"
            ) from None
    if y.shape[-1] < classes:
        raise ConfigError(f"the data has {classes} classes; this model outputs {y.shape[-1]}")
    return 16 * math.prod(shape) + 12 * sum(s.numel() for s in states if s is not None)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def count_correct(
    model: Net,
    ds: Dataset,
    stage_T: list[int],
    starts: Iterable[int],
    batch_size: int,
    binning: str | None,
    dt_us: float | None,
) -> int:
    """Correctly classified samples at one per-stage configuration, over the batches of
    ``batch_size`` consecutive samples that begin at ``starts``."""
    correct = 0
    for start in starts:
        idx = np.arange(start, min(start + batch_size, len(ds)))
        logits = model.readout(model(frames(ds, idx, stage_T[0], binning, dt_us), list(stage_T)))
        correct += int((logits.argmax(1) == torch.from_numpy(ds.labels[idx])).sum())
    return correct


@torch.no_grad()
def evaluate_on_ranks(model: Net, ds: Dataset, T: int, batch_size: int = EVAL_BATCH_SIZE) -> float:
    """:func:`evaluate` at ``T`` by every rank together (every rank calls it), of rank 0's
    model: the checkpoint's. Rank r takes batch k when ``k % world == r``: whole batches as
    one process forms them (CPU kernels may round by batch shape), so the accuracy is one
    process's to the sample, and no rank waits in a collective while one evaluates alone
    (gloo's timeout is 30 minutes)."""
    distributed.broadcast_buffers(model)  # BatchNorm statistics: each rank's own last batch moved them
    rank, world = distributed.rank_and_world()
    with eval_mode(model):
        starts = range(rank * batch_size, len(ds), world * batch_size)
        correct = count_correct(model, ds, [T] * len(model.stages), starts, batch_size, None, None)
    return distributed.sum_over_ranks(correct) / len(ds)


def has_bn(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def calibration_batches(batches: int, samples: int, batch_size: int) -> int:
    """The batches a calibration of ``batches`` runs on ``samples`` training samples: no
    more than the data holds (each sample is drawn once)."""
    return min(batches, -(-samples // batch_size))


def calibration_text(batches: int, samples: int, batch_size: int) -> str:
    """What a calibration ran, for people: the batches run, not the number asked for."""
    n = calibration_batches(batches, samples, batch_size)
    return f"{n} training batch{'' if n == 1 else 'es'} of {batch_size}" + (
        f", all {samples} samples" if n < batches else ""
    )


@torch.no_grad()
def calibrate_bn(
    model: Net,
    ds: Dataset,
    T: int | list[int],
    batches: int,
    batch_size: int,
    seed: int = 0,
    binning: str | None = None,
    dt_us: float | None = None,
) -> int:
    """Re-estimate BatchNorm statistics at ``T`` (MTT §BN calibration; a list: one T per
    stage, the per-configuration calibration of MTT appendix A.8): reset the running
    statistics and take their cumulative average (momentum None) over ``batches``
    training batches, binned as the model is evaluated (``binning``, ``dt_us``: the
    model's, :attr:`DataConfig.binning` and :attr:`Config.dt_us`). Returns the number of
    BatchNorm layers calibrated."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or batches <= 0:
        return 0
    momenta = [bn.momentum for bn in bns]
    was_training = model.training
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    stage_T = list(T) if isinstance(T, list) else [T] * len(model.stages)
    order = np.random.default_rng(seed).permutation(len(ds))
    for b in range(calibration_batches(batches, len(ds), batch_size)):
        idx = order[b * batch_size : (b + 1) * batch_size]
        model(frames(ds, idx, stage_T[0], binning, dt_us), stage_T)
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    model.train(was_training)
    return len(bns)


@torch.no_grad()
def calibrate_bn_runs(
    model: Net,
    ds: Dataset,
    T: int | list[int],
    batches: int,
    batch_size: int,
    runs: int,
    seed: int = 0,
    after_run: Callable[[int], None] | None = None,
    binning: str | None = None,
    dt_us: float | None = None,
) -> int:
    """``runs`` calibrations (:func:`calibrate_bn`) with different sample draws (seeds
    ``seed .. seed + runs - 1``), MTT appendix A.6/A.9's calibration over three runs;
    ``after_run(k)`` sees the model after run k (the CLI evaluates each). The model keeps
    the BatchNorm statistics averaged over the runs: each run's running mean and variance
    are cumulative averages over its batches (momentum None), so their average is the
    calibration over all the runs' batches. Returns the number of layers calibrated."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    sums: list[tuple[torch.Tensor, torch.Tensor]] = []
    n = 0
    for k in range(runs):
        n = calibrate_bn(model, ds, T, batches, batch_size, seed + k, binning, dt_us)
        if after_run is not None:
            after_run(k)
        stats = [(mean.clone(), var.clone()) for mean, var in running_stats(bns)]
        sums = stats if not sums else [(a + m, b + v) for (a, b), (m, v) in zip(sums, stats)]
    for (mean, var), (m, v) in zip(running_stats(bns), sums):
        mean.copy_(m / runs)
        var.copy_(v / runs)
    return n


def running_stats(bns: list[nn.modules.batchnorm._BatchNorm]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The running mean and variance of each BatchNorm that keeps them (in place: the
    tensors themselves)."""
    return [
        (bn.running_mean, bn.running_var) for bn in bns if bn.running_mean is not None and bn.running_var is not None
    ]


def sequence_loss(model: Net, out: torch.Tensor, y: torch.Tensor, loss: str = "readout") -> torch.Tensor:
    """The training loss of the output sequence ``out`` ``[T, B, classes]``: the model's own
    when it defines one (T-RevSNN: heads on earlier steps, :meth:`trainer.trev.TRevNet.loss`);
    else ``loss`` (:data:`trainer.config.LOSSES`) "readout", the cross-entropy of the
    readout of all T steps, or "prefix", ``1/T sum_t CE(readout(out[:t]), y)``: every
    readout an early exit may stop on is trained (per-step losses as TET, Deng et al. 2022;
    SEENN's exits decide on the same prefixes)."""
    own = getattr(model, "loss", None)
    if own is not None:
        return own(out, y)
    if loss == "readout":
        return F.cross_entropy(model.readout(out), y)
    T = out.shape[0]
    return sum((F.cross_entropy(model.readout(out[:t]), y) for t in range(1, T + 1)), out.new_zeros(())) / T


def stage_iteration(
    net: nn.Module,
    n_stages: int,
    opt: torch.optim.Optimizer,
    x_at: Callable[[int], torch.Tensor],
    y: torch.Tensor,
    m: MethodConfig,
    rng: np.random.Generator,
) -> float:
    """One iteration of a stage-T method (sdt, nmt, mtt): the method samples stage-T
    configurations; each is one forward over the sequence (``x_at(T)``: the batch at T)
    and one backward (gradients summed); then one optimizer step. Returns the mean loss."""
    model = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
    if not isinstance(model, (SpikingNet, TRevNet)):
        raise TypeError(f"stage-T training runs a model of trainer.models, not {type(model).__name__}")
    configs = sample_configs(m, n_stages, rng)
    opt.zero_grad(set_to_none=True)
    loss_sum = 0.0
    for i, stage_T in enumerate(configs):
        with distributed.no_sync(net, sync=i == len(configs) - 1):
            loss = sequence_loss(model, net(x_at(stage_T[0]), stage_T), y, m.loss)
            loss.backward()
        loss_sum += loss.item() / len(configs)
    opt.step()
    return loss_sum


def make_optimizer(params, m: MethodConfig) -> torch.optim.Optimizer:
    """``m.optimizer``: Adam, SGD with momentum 0.9 (the SLTT, OTTT and NDOT papers), or
    LAMB (the T-RevSNN paper; You et al. 2020: Adam's update scaled per tensor by the trust
    ratio ``min(||w||, 10) / ||update||``, so each tensor moves by about lr times its own
    norm), from the pytorch_optimizer package with its defaults (decoupled weight decay,
    the first moment's bias correction in the step size).

    ``foreach``: one kernel per operation over all parameters instead of a Python loop over
    them (the same update, bit for bit; a T-RevSNN has ~270 parameter tensors, which made
    the per-tensor loop a tenth of its iteration; CPU's default is the loop)."""
    if m.optimizer == "sgd":
        return torch.optim.SGD(params, lr=m.lr, momentum=0.9, weight_decay=m.weight_decay, foreach=True)
    if m.optimizer == "adam":
        return torch.optim.Adam(params, lr=m.lr, weight_decay=m.weight_decay, foreach=True)
    if m.optimizer == "lamb":
        try:
            from pytorch_optimizer import Lamb
        except ImportError:
            raise ConfigError(
                "--optimizer lamb needs the pytorch_optimizer package: pip install pytorch_optimizer "
                "(or pip install -e '.[train]')"
            ) from None
        return Lamb(params, lr=m.lr, weight_decay=m.weight_decay, foreach=True)
    raise ConfigError(f"optimizer {m.optimizer!r} is unknown; expected one of {list(OPTIMIZERS)}")


@dataclass
class Start:
    """Where :func:`fit` starts instead of fresh weights: ``state_dict`` (fine-tune,
    ``--init-from``), or also ``train_state`` and ``history`` of an earlier run of the same
    config (``--resume``: optimizer, scheduler, epoch and random states, see
    :func:`train_state`)."""

    state_dict: dict[str, torch.Tensor] | None = None
    train_state: dict[str, Any] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    finished: bool = True  # False: a run stopped after its last epoch, before calibration and the final write


def train_state(epoch: int, opt: torch.optim.Optimizer, sched: Any, rngs: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything besides the weights that the next epoch depends on (plain types and
    tensors: loadable with ``weights_only=True``). Batch order depends on the epoch only;
    ``rngs``: every rank's generator state (:func:`distributed.gather`): one stream, the
    same on every rank, kept per rank so files of runs whose ranks drew apart still resume."""
    return {
        "epoch": epoch,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": rngs[0],
        "rng_ranks": rngs,
        "torch_rng": torch.get_rng_state(),
    }


def fit(
    cfg: Config,
    train_ds: Dataset,
    test_ds: Dataset,
    progress: bool = True,
    verbose: bool = False,
    start: Start | None = None,
    on_epoch: Callable[[Net, list[dict[str, float]], dict[str, Any]], None] | None = None,
) -> tuple[Net, dict[str, Any]]:
    """Train ``cfg``'s model with its method; returns the (rank-0) model and metrics.

    One iteration per batch: :func:`stage_iteration` for the stage-T methods (sdt, nmt,
    mtt), or :func:`trainer.online.online_iteration`, step by step, for online methods.
    ``start``: weights (and training state) to start from; ``on_epoch(model, history,
    train_state)`` runs on rank 0 after every epoch (the CLI writes a resumable checkpoint).
    The final ``metrics["train_state"]`` is the state after the last epoch.
    """
    # the checkpoint stores cfg.to_dict(), which every reader validates (Config.from_dict): a
    # config it refuses trained for nothing, one that reads back otherwise rebuilds another model
    stored = cfg.to_dict()
    if Config.from_dict(stored).to_dict() != stored:
        raise ConfigError("this config does not read back as itself from its stored form (Config.to_dict)")
    cfg.check_trainable()
    if start is None or start.train_state is None:  # a run of before resumes as it began
        refuse_unread_options(cfg.model)
    for split, ds in (("training", train_ds), ("test", test_ds)):  # not a torch shape error 13 frames deep
        if ds.kind != cfg.data.kind:
            raise ConfigError(
                f"the config is for {cfg.data.kind} data (DataConfig.kind), the {split} data holds {ds.kind}"
            )
        check_fits(
            ds, cfg.model.in_shape, cfg.model.num_classes, "the config's model (ModelConfig.in_shape, num_classes)"
        )
    rank, world = distributed.setup()
    m = cfg.method
    if m.batch_size % world:
        raise ConfigError(
            f"--batch-size {m.batch_size} does not split evenly over {world} processes: expected a multiple "
            f"of {world} (--batch-size is the whole batch; each process trains on 1/{world} of it)"
        )
    online = m.name in ONLINE_METHODS
    torch.manual_seed(m.seed)
    model = build_model(cfg)
    net = model if online else distributed.wrap(model, world)  # online: gradients averaged by hand
    opt = make_optimizer(model.parameters(), m)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=m.epochs)
    # every rank draws the same stage-T configurations (and SLTT-K steps): each runs them on
    # its share of every batch, so the averaged gradient is one process's on the whole
    # batch, and N processes train one process's model (up to float summation order and
    # per-rank BatchNorm statistics); per-rank draws made another training rule, unsaid
    rng = np.random.default_rng(m.seed * 1000)
    if len(train_ds) < world:  # rank_batches would give every rank an empty epoch: nothing trained
        raise ConfigError(
            f"{world} processes need at least {world} training samples (one per process); the training "
            f"data has {len(train_ds)}"
        )
    left_out = len(train_ds) % world
    if left_out and rank == 0 and verbose:
        print(
            f"note: {world} processes: each epoch trains on {len(train_ds) - left_out} of the {len(train_ds)} "
            f"training samples (a multiple of {world}, so every batch splits evenly; other ones each epoch)"
        )
    history: list[dict[str, float]] = []
    first_epoch = 0
    if start is not None:
        if start.state_dict is not None:
            model.load_state_dict(start.state_dict)
        if start.train_state is not None:
            ts = start.train_state
            opt.load_state_dict(ts["optimizer"])
            sched.load_state_dict(ts["scheduler"])
            # every rank's stream (files of runs whose ranks drew apart resume exactly at their
            # process count); at another count every rank continues rank 0's, the one stream
            ranks = ts.get("rng_ranks")
            rng.bit_generator.state = ranks[rank] if ranks is not None and len(ranks) == world else ts["rng"]
            torch.set_rng_state(ts["torch_rng"])
            first_epoch, history = int(ts["epoch"]), list(start.history)
            if first_epoch >= m.epochs and start.finished:
                raise ConfigError(f"nothing to train: the run already finished its {m.epochs} epochs")
            # first_epoch == epochs, unfinished: no epoch left, calibration and the final write follow
    # with BatchNorm the epoch figure uses the running statistics of training, which mix
    # every stage-T configuration drawn and fit no single T: say so, it can be near chance
    bn_note = ""
    if has_bn(model):
        bn_note = " (BatchNorm running statistics of training" + (
            ", before calibration)" if m.calib_batches > 0 else "; calibration off)"
        )
    for epoch in range(first_epoch, m.epochs):
        model.train()
        order = np.random.default_rng(m.seed + epoch).permutation(len(train_ds))
        batches = distributed.rank_batches(order, rank, world, m.batch_size)
        t0, loss_sum = time.perf_counter(), 0.0
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{m.epochs}", disable=not progress or rank != 0)
        for n_done, idx in enumerate(bar, 1):
            y = torch.from_numpy(train_ds.labels[idx])
            if online:
                loss_sum += online_iteration(model, opt, frames(train_ds, idx, m.T), y, m, rng, cfg.neuron.spec.v_th)
            else:
                loss_sum += stage_iteration(net, len(model.stages), opt, batch_at(train_ds, idx, m), y, m, rng)
            if not math.isfinite(loss_sum):  # the weights are NaN from here on: stop, write nothing
                raise ConfigError(
                    f"training diverged: the loss became {loss_sum} in epoch {epoch + 1}, batch "
                    f"{n_done} (--lr {m.lr}); no checkpoint of this epoch written; try a smaller --lr"
                )
            bar.set_postfix(loss=f"{loss_sum / n_done:.3f}")
        sched.step()
        bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:  # e.g. a BatchNorm variance overflowing while the loss still looks finite
            raise ConfigError(
                f"training diverged: {bad[0]} is not finite after epoch {epoch + 1} (--lr {m.lr}); "
                "no checkpoint of this epoch written; try a smaller --lr"
            )
        seconds = time.perf_counter() - t0
        entry = {
            "epoch": epoch + 1,
            "loss": distributed.mean_over_ranks(loss_sum / max(len(batches), 1)),  # every rank's share
            "seconds": seconds,
            "samples_this_rank": sum(map(len, batches)),
            "samples": sum(map(len, batches)) * world,  # of len(train_ds): at most world - 1 left out
        }
        entry["test_accuracy"] = evaluate_on_ranks(model, test_ds, cfg.train_T)
        if rank == 0:
            if progress or verbose:
                tqdm.write(
                    f"epoch {epoch + 1}/{m.epochs}: train loss {entry['loss']:.4f}, test accuracy at "
                    f"T={cfg.train_T} {100 * entry['test_accuracy']:.2f}%{bn_note} ({seconds:.1f} s)"
                )
        history.append(entry)
        rngs = distributed.gather(rng.bit_generator.state)  # every rank calls it
        if rank == 0 and on_epoch is not None:
            on_epoch(model, history, train_state(epoch + 1, opt, sched, rngs))
    metrics: dict[str, Any] = {
        "history": history,
        "world_size": world,
        "environment": repro.environment(m.seed),
        "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])),
        "train_state": train_state(m.epochs, opt, sched, distributed.gather(rng.bit_generator.state)),
    }
    if not online:
        metrics["expected_cost_ratio_vs_sdt"] = expected_cost_ratio(m)
    # the last epoch evaluated this very model at train_T; evaluate again only if calibration
    # changed it (every rank calibrates, the same draws: rank 0's result is the one kept)
    last = history[-1]["test_accuracy"]
    calibrated = calibrate_bn(
        model, train_ds, cfg.train_T, m.calib_batches, m.batch_size, m.seed, cfg.data.binning, cfg.dt_us
    )
    metrics["test_accuracy_uncalibrated"] = last
    metrics["bn_calibrated_layers"] = calibrated
    cfg.method.bn_T = cfg.train_T if calibrated else None  # the config describes the model fit returns
    metrics["test_accuracy"] = evaluate_on_ranks(model, test_ds, cfg.train_T) if calibrated else last
    if rank == 0:
        if calibrated:
            metrics["bn_calibration_T"] = cfg.train_T
            if progress or verbose:
                tqdm.write(
                    f"BatchNorm calibration at T={cfg.train_T} ({calibrated} layers, "
                    f"{calibration_text(m.calib_batches, len(train_ds), m.batch_size)}): "
                    f"test accuracy at T={cfg.train_T} {100 * last:.2f}% -> "
                    f"{100 * metrics['test_accuracy']:.2f}%"
                )
    del net  # the DDP wrapper (its reducer holds the process group) goes before the group
    distributed.teardown()
    return model.eval(), metrics
