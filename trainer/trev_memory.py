"""``python -m trainer trev-memory``: activation memory of T-RevSNN, reversible vs plain BPTT.

Per T, the same T-RevSNN (same seed, same weights) trains one iteration on the same
random batch twice: with the reversible backward (:mod:`trainer.reversible`) and with
plain backpropagation through time (every step's graph kept until the one backward).
``saved`` is the peak bytes of tensors saved for backward, counted by
:class:`trainer.memory.SavedTensorMeter` (``saved_tensors_hooks``: exact and repeatable
on CPU). ``ms/iter`` is the min and median wall time of an iteration over ``--repeats``
rounds, every (T, backward) once a round (interleaved, after one warm-up each), on
``--threads`` torch threads (default 1: repeatable on a shared machine).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import Any

import torch

from runtime.bench import Loop
from runtime.cliargs import refuse_oversubscribed
from runtime.report import emit_json, table

from .config import DEFAULT_BIAS, Config, ConfigError, MethodConfig
from .memory import (
    SEED,
    MiB,
    SavedTensorMeter,
    add_measurement_options,
    check_case_memory,
    check_held_inputs,
    provenance,
    provenance_text,
    timed_loops,
)
from .models import build_model
from .repro import setup as setup_threads
from .train import step_bytes
from .trev import PRODUCT, TRevNet, TRevOptions, add_options_flag, parse_options

DATA_KINDS = ("events", "static")  # the inputs whose stems differ: one per step, or encoded once


def trev_config(
    model: str, kind: str, in_shape: tuple[int, int, int], T: int, width: int = 0, options: TRevOptions | None = None
) -> Config:
    """A T-RevSNN config; ``options`` None: a checkpoint's without any (the options before
    issue 18, with biases), else fit's network: those options (:data:`trainer.trev.PRODUCT`
    with its ``--trev`` items) and fit's default bias."""
    cfg = Config()
    cfg.model.name, cfg.model.in_shape, cfg.model.width = model, in_shape, width
    if options is not None:
        cfg.model.trev, cfg.model.bias = options.to_dict(), DEFAULT_BIAS
    cfg.data.kind, cfg.data.shape = kind, in_shape
    cfg.method = MethodConfig("sdt", T=T, tmax=T)
    return cfg.with_step_dt().validate()


def build(cfg: Config) -> TRevNet:
    net = build_model(cfg)
    if not isinstance(net, TRevNet):
        raise ConfigError(f"trev-memory measures T-RevSNN models (trev-...), not {cfg.model.name!r}")
    return net


def one_iteration(net: TRevNet, x: torch.Tensor, y: torch.Tensor) -> None:
    net.zero_grad(set_to_none=True)
    net.loss(net(x), y).backward()


def measure_T(cfg: Config, batch_size: int, seed: int = SEED) -> tuple[dict[str, Any], dict[str, Loop]]:
    """Saved bytes, reversible and BPTT, at ``cfg``'s T, and the two iterations to time
    (one network: each sets its backward before it runs)."""
    torch.manual_seed(seed)
    net = build(cfg).train()
    T = cfg.train_T
    x = (torch.rand(T, batch_size, *cfg.model.in_shape) < 0.3).float()
    y = torch.randint(0, cfg.model.num_classes, (batch_size,))
    row: dict[str, Any] = {"T": T}
    loops = {}
    for mode, reversible in (("reversible", True), ("bptt", False)):
        net.reversible = reversible
        with SavedTensorMeter() as meter:
            one_iteration(net, x, y)
        row[f"{mode}_saved_MiB"] = meter.peak / MiB
        backward = partial(setattr, net, "reversible", reversible)  # one network: each sets its own
        loops[f"{mode} T={T}"] = Loop(backward, partial(one_iteration, net, x, y))
    row["bptt_over_reversible"] = row["bptt_saved_MiB"] / row["reversible_saved_MiB"]
    return row, loops


def measure(cfgs: list[Config], batch_size: int, reps: int, progress: bool = False) -> list[dict[str, Any]]:
    """One row per config: saved bytes and min and median ms per iteration of both
    backwards, every (T, backward) once a round (:func:`.memory.timed_loops`)."""
    rows, loops = [], {}
    for cfg in cfgs:
        row, more = measure_T(cfg, batch_size)
        rows.append(row)
        loops.update(more)
    times = timed_loops(loops, reps, progress)
    for row in rows:
        for mode in ("reversible", "bptt"):
            for key, ms in times[f"{mode} T={row['T']}"].items():  # ms_per_iter, ms_per_iter_min
                row[f"{mode}_{key}"] = ms
    return rows


def add_trev_memory_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trev-memory", help="T-RevSNN activation memory: reversible backward vs plain BPTT")
    add_measurement_options(p, "trev-tiny", "base width (0: the size's default)", [2, 4, 8], 16, 2)
    add_options_flag(p)  # the network fit trains (it measured the options of before issue 18)
    p.add_argument(
        "--data-kind",
        choices=DATA_KINDS,
        default="events",
        help="the input: events (one stem per step) or static (encoded once)",
    )


def cmd_trev_memory(a: argparse.Namespace) -> None:
    refuse_oversubscribed(a.threads, "training iterations", ConfigError)
    setup_threads(a.threads)
    options = parse_options(a.trev)
    if options.backward != PRODUCT.backward:  # both backwards are measured, row by row
        raise ConfigError("--trev backward: trev-memory measures both backwards; leave it out")
    cfgs = [trev_config(a.model, a.data_kind, tuple(a.in_shape), T, a.width, options) for T in sorted(set(a.T))]
    largest = 0
    for cfg in cfgs:  # every bad T or name, and a batch that cannot fit, fails before any measurement
        per_step = step_bytes(build(cfg), tuple(cfg.model.in_shape))  # one sub-network per step: per T
        check_case_memory(per_step, a.batch_size, cfg.train_T, f"T={cfg.train_T}")  # BPTT's row holds every step
        largest = max(largest, a.batch_size * cfg.train_T * per_step)
    check_held_inputs([cfg.train_T for cfg in cfgs], a.batch_size, a.in_shape, largest)
    rows = measure(cfgs, a.batch_size, a.repeats, sys.stderr.isatty())
    lo, hi = rows[0], rows[-1]
    growth = {m: hi[f"{m}_saved_MiB"] / lo[f"{m}_saved_MiB"] for m in ("reversible", "bptt")}
    if a.json:
        emit_json(
            {
                "model": a.model,
                "kind": a.data_kind,
                "in_shape": a.in_shape,
                "batch_size": a.batch_size,
                # the network measured (fit's by default); both backwards are rows
                "trev": {k: v for k, v in options.to_dict().items() if k != "backward"},
                "bias": DEFAULT_BIAS,
                "threads": torch.get_num_threads(),
                **provenance(),
                "rows": rows,
                f"saved_T{hi['T']}_over_T{lo['T']}": growth,
            }
        )
        return
    print(
        f"activation memory per training iteration: {a.model}, {a.data_kind} input {a.in_shape}, batch {a.batch_size}"
    )
    print(f"network: --trev {' '.join(options.items(leave_out=('backward',)))}, {'' if DEFAULT_BIAS else 'no '}biases")
    cols = [
        "T",
        "reversible_saved_MiB",
        "bptt_saved_MiB",
        "bptt_over_reversible",
        "reversible_ms_per_iter_min",
        "reversible_ms_per_iter",
        "bptt_ms_per_iter_min",
        "bptt_ms_per_iter",
    ]
    print(table(cols, [[r[c] for c in cols] for r in rows]))
    print(f"saved at T={hi['T']} / T={lo['T']}: reversible {growth['reversible']:.2f}, bptt {growth['bptt']:.2f}")
    print(
        f"{torch.get_num_threads()} torch thread(s), {provenance_text(provenance())}; ms/iter: min and median of "
        "--repeats rounds, every T and backward once a round (interleaved)"
    )
