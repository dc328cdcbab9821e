"""``python -m trainer memory``: training memory and time per step of BPTT vs online methods.

Per method and T, on the same model and a random spike batch:

* **saved**: the peak bytes of tensors saved for backward that are alive at once during
  one training iteration, counted with ``torch.autograd.graph.saved_tensors_hooks``
  (exact and repeatable on CPU). A tensor saved by several nodes counts once (key: its
  data pointer and size; a view counts its own bytes, not its whole storage, so a slice
  ``x[t]`` of the input batch counts one step of input). BPTT keeps every step's graph
  until its one backward; online methods free each step's graph at its backward.
* **peak RSS**: the peak resident set size (``VmHWM``) of a fresh process that runs one
  iteration, and its increase over the RSS just before the iteration. (Not
  ``ru_maxrss``: Linux carries it over from the parent through fork and exec.)
* **ms/iter**: min and median wall time of an iteration over ``--repeats`` rounds, without
  hooks; every case runs once a round (interleaved, the order rotated, after one warm-up
  each), so a load that comes and goes hits all cases alike.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from runtime import cliargs
from runtime.bench import Loop, interleaved
from runtime.limits import available_cores, check_memory
from runtime.neuron import make_spec
from runtime.neuron import presets as neuron_presets
from runtime.report import emit_json, table, versions, versions_text

from .checkpoint import build_checked
from .config import (
    DEFAULT_BIAS,
    DEFAULT_NEURON,
    NORMS,
    ONLINE_METHODS,
    Config,
    ConfigError,
    MethodConfig,
    NeuronConfig,
    is_trev,
)
from .models import build_model, conv_width, is_fc, named_width, refuse_unread_options
from .online import online_iteration, online_method
from .train import stage_iteration, step_bytes

MiB = 2**20
DEFAULT_METHODS = ["sdt", "sltt", "sltt-k:1", "sltt-k:2", "ottt-a", "ottt-o", "ndot-a", "ndot-o"]


class SavedTensorMeter:
    """Context manager: live and peak bytes of tensors saved for backward."""

    def __init__(self) -> None:
        self.live: dict[tuple[int, int], list[int]] = {}  # key -> [refcount]
        self.bytes = 0
        self.peak = 0

    def _add(self, key: tuple[int, int]) -> None:
        entry = self.live.setdefault(key, [0])
        if entry[0] == 0:
            self.bytes += key[1]
            self.peak = max(self.peak, self.bytes)
        entry[0] += 1

    def _remove(self, key: tuple[int, int]) -> None:
        entry = self.live[key]
        entry[0] -= 1
        if entry[0] == 0:
            self.bytes -= key[1]
            del self.live[key]

    def __enter__(self) -> SavedTensorMeter:
        meter = self

        class Packed:
            """Holds one saved tensor; counted while the autograd graph keeps it."""

            def __init__(self, t: torch.Tensor):
                self.t, self.key = t, (t.data_ptr(), t.numel() * t.element_size())
                meter._add(self.key)

            def __del__(self) -> None:
                meter._remove(self.key)

        self._hooks = torch.autograd.graph.saved_tensors_hooks(Packed, lambda p: p.t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


@dataclass(frozen=True)
class Case:
    method: str
    K: int
    T: int

    @property
    def label(self) -> str:
        return f"{self.method} K={self.K}" if self.method == "sltt-k" else self.method


def parse_method(spec: str) -> tuple[str, int]:
    """``name`` or ``sltt-k:K``."""
    name, _, k = spec.partition(":")
    if name == "sltt-k":
        if not k.isdigit():
            raise ConfigError(f"give sltt-k with its K, as sltt-k:K (e.g. sltt-k:1), got {spec!r}")
        return name, int(k)
    if k:
        raise ConfigError(f"only sltt-k takes ':K', got {spec!r}")
    return name, 0


def case_config(base: Config, case: Case, batch_size: int) -> Config:
    # each online method's loss weight and target, as fit sets them (trainer.online)
    online = online_method(case.method) if case.method in ONLINE_METHODS else None
    w = online.mse_weight if online else MethodConfig.mse_weight
    target = online.target if online else MethodConfig.target
    method = MethodConfig(
        case.method, T=case.T, tmax=case.T, batch_size=batch_size, K=case.K, mse_weight=w, target=target
    )
    return Config(base.model, base.neuron, base.data, method).with_step_dt().validate()


SEED = 0  # of the random weights and spike batches every case is measured on


def check_case_memory(per_step: int, batch_size: int, steps: int, what: str) -> None:
    """Refuse a case that would not fit before building its batch: at least ``steps``
    steps of ``per_step`` bytes per sample (:func:`.train.step_bytes` of its network; BPTT
    holds every step's activity, an online method one step's; a stranger's --batch-size
    1000000 was the kernel's OOM kill)."""
    check_memory(batch_size * steps * per_step, f"{what}, --batch-size {batch_size}")


def check_held_inputs(Ts: Sequence[int], batch_size: int, in_shape: Sequence[int], largest: int) -> None:
    """Refuse timings that would not fit: interleaved, every case's input batch (``T`` steps,
    float32) is held at once, beside the ``largest`` case's activity (bytes)."""
    held = sum(4 * T * batch_size * math.prod(in_shape) for T in Ts)
    what = f"timing {len(Ts)} cases interleaved (their input batches held at once), --batch-size {batch_size}"
    check_memory(held + largest, what)


def provenance() -> dict[str, Any]:
    """What a memory or timing table was measured with: the seed, load and versions."""
    return {"seed": SEED, "load_average": os.getloadavg()[0], "versions": versions("torch", "numpy")}


def provenance_text(p: dict[str, Any]) -> str:
    return f"seed {p['seed']}, load average {p['load_average']:.2f}; {versions_text(p['versions'])}"


def make_iteration(cfg: Config, seed: int = SEED) -> Callable[[], float]:
    """A closure running one training iteration of ``cfg``'s method on a fixed random
    spike batch (fresh model and Adam, seeded)."""
    torch.manual_seed(seed)
    model = build_model(cfg).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    m = cfg.method
    x = (torch.rand(m.T, m.batch_size, *cfg.model.in_shape) < 0.3).float()
    y = torch.randint(0, cfg.model.num_classes, (m.batch_size,))
    rng = np.random.default_rng(seed)
    if m.name in ONLINE_METHODS:
        return lambda: online_iteration(model, opt, x, y, m, rng)
    return lambda: stage_iteration(model, len(model.stages), opt, lambda T: x[:T], y, m, rng)


def saved_bytes(cfg: Config) -> int:
    """Peak bytes saved for backward during one iteration (see the module doc)."""
    step = make_iteration(cfg)
    with SavedTensorMeter() as meter:
        step()
    return meter.peak


def timed_loops(loops: Mapping[str, Loop], reps: int, progress: bool) -> dict[str, dict[str, float]]:
    """Min and median wall ms per run of each iteration (``ms_per_iter_min``,
    ``ms_per_iter``), ``reps`` rounds interleaved (:func:`runtime.bench.interleaved`: each
    round runs every one once, the order rotated, after one untimed warm-up run each), so a
    change of load hits every case alike."""
    times = interleaved(dict(loops), 1, reps, progress, "timing")
    return {k: {"ms_per_iter": t["wall_ms_median"], "ms_per_iter_min": t["wall_ms_min"]} for k, t in times.items()}


def _status_bytes(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS: now; VmHWM: peak of this process)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {field}")


def _rss_child(cfg_dict: dict[str, Any], threads: int) -> tuple[int, int]:
    torch.set_num_threads(threads)
    step = make_iteration(Config.from_dict(cfg_dict))
    before = _status_bytes("VmRSS")
    step()
    return before, _status_bytes("VmHWM")


def peak_rss(cfg: Config, threads: int = 1) -> tuple[int, int]:
    """(RSS before the iteration, peak RSS) of one iteration in a fresh process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_rss_child, (cfg.to_dict(), threads))


def measure(
    base: Config,
    methods: list[str],
    Ts: list[int],
    batch_size: int,
    reps: int,
    rss: bool,
    threads: int = 1,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Every case timed with ``threads`` torch threads (set here, restored after);
    ``progress``: a bar of the cases on stderr."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cases: list[Case] = []
        for spec in methods:  # each refused before the first case runs
            name, K = parse_method(spec)
            if name != "sdt" and name not in ONLINE_METHODS:
                raise ConfigError(
                    f"memory compares sdt (BPTT) and the online methods {list(ONLINE_METHODS)}; got {name!r}"
                )
            if name == "sltt-k" and not all(1 <= K <= T for T in Ts):  # fit's message names its --K
                raise ConfigError(f"--methods {spec}: K must be in [1, T] for every --T {' '.join(map(str, Ts))}")
            cases += [Case(name, K, T) for T in Ts]
        # every case trains base's one network: its activity per step, counted once
        configs = [case_config(base, c, batch_size) for c in cases]
        per_step = step_bytes(build_model(configs[0]), tuple(base.model.in_shape))
        steps = [c.T if c.method == "sdt" else 1 for c in cases]  # BPTT holds every step, online one
        for case, n in zip(cases, steps):  # each checked before the first runs
            check_case_memory(per_step, batch_size, n, f"{case.label} at T={case.T}")
        check_held_inputs([c.T for c in cases], batch_size, base.model.in_shape, batch_size * per_step * max(steps))
        bar = tqdm(list(zip(cases, configs)), "memory", disable=not progress)
        rows = [_memory_row(case, cfg, rss, threads) for case, cfg in bar]
        iterations = {_key(c): Loop(lambda: None, make_iteration(cfg)) for c, cfg in zip(cases, configs)}
        times = timed_loops(iterations, reps, progress)
        return [{**row, **times[_key(c)]} for row, c in zip(rows, cases)]
    finally:
        torch.set_num_threads(old)


def _key(case: Case) -> str:
    return f"{case.label} T={case.T}"


def _memory_row(case: Case, cfg: Config, rss: bool, threads: int) -> dict[str, Any]:
    row: dict[str, Any] = {"method": case.label, "T": case.T, "saved_MiB": saved_bytes(cfg) / MiB}
    if rss:
        before, peak = peak_rss(cfg, threads)
        row["peak_rss_MiB"], row["rss_increase_MiB"] = peak / MiB, (peak - before) / MiB
    return row


def ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method: saved bytes at the largest T over the smallest (flatness), and BPTT's
    saved bytes over the method's at the largest T."""
    by: dict[str, dict[int, float]] = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["T"]] = r["saved_MiB"]
    out = {}
    for method, s in by.items():
        lo, hi = min(s), max(s)
        entry = {f"saved_T{hi}_over_T{lo}": s[hi] / s[lo]}
        if "sdt" in by and hi in by["sdt"]:
            entry[f"bptt_over_method_T{hi}"] = by["sdt"][hi] / s[hi]
        out[method] = entry
    return out


def add_measurement_options(
    p: argparse.ArgumentParser, model: str, width_help: str, T: list[int], batch_size: int, reps: int
) -> None:
    """The options of both training-memory measurements (``memory`` and ``trev-memory``)."""
    p.add_argument("--model", default=model, help="model name (trainer fit --model)")
    p.add_argument("--width", type=cliargs.width, default=0, help=width_help)
    cliargs.add_in_shape(p, [2, 34, 34])
    cliargs.add_steps(p, "time steps to measure", T, several=True)
    cliargs.add_batch_size(p, batch_size, "samples per training batch")
    cliargs.add_repeats(p, "timed iterations per case (median)", reps)
    cliargs.add_threads(
        p,
        1,
        "torch CPU threads for the timings (trainer memory: its peak-RSS processes too; 0: all cores; default 1: "
        "the time column then does not depend on how many cores other work leaves free)",
    )
    cliargs.add_json(p)


def add_memory_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("memory", help="training memory (saved tensors, peak RSS) and time: BPTT vs online")
    add_measurement_options(p, "2C1FC", "channel width (0: the model's default)", [2, 4, 8, 16], 32, 3)
    p.add_argument("--norm", default=None, help="bn-step, sws or none (default: bn-step; an fc model's: none)")
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, help="sdt, online methods; sltt-k as sltt-k:K")
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS processes")


def cmd_memory(a: argparse.Namespace) -> None:
    if is_trev(a.model):
        raise ConfigError(
            f"{a.model}: memory compares BPTT with the online methods on layer-sequence models; "
            "T-RevSNN's memory is measured by `python -m trainer trev-memory`"
        )
    norm = a.norm or ("none" if is_fc(a.model) else "bn-step")
    if norm not in NORMS or norm == "bn":
        raise ConfigError(
            f"--norm {norm!r}: expected one that online methods can use, one of {[n for n in NORMS if n != 'bn']}"
        )
    base = Config()  # the network fit trains by default: its neuron, no biases (Config's are old files')
    kind, fields = neuron_presets()[DEFAULT_NEURON]
    base.neuron, base.model.bias = NeuronConfig(make_spec(kind, **fields)), DEFAULT_BIAS
    bn, bn_stats, weight_std = NORMS[norm]
    m = base.model
    m.name, m.width = named_width(a.model, a.width)  # as fit names it: the net measured
    m.in_shape, m.bn, m.bn_stats, m.weight_std = (
        tuple(a.in_shape),
        bn,
        bn_stats,
        weight_std,
    )
    m.stages = 1
    refuse_unread_options(m)  # an fc model has no conv: --norm and --width would be ignored
    base.with_step_dt().validate()
    build_checked(base, "the model")  # unknown model names, or too wide, fail here
    cliargs.refuse_oversubscribed(a.threads, "training iterations", ConfigError)
    a.threads = a.threads or available_cores()  # the count used is the one reported
    # each case once: a repeated T or method gave two rows of one shared timing
    rows = measure(
        base,
        list(dict.fromkeys(a.methods)),
        sorted(set(a.T)),
        a.batch_size,
        a.repeats,
        not a.no_rss,
        a.threads,
        sys.stderr.isatty(),
    )
    summary = ratios(rows)
    if a.json:
        emit_json(
            {
                "model": m.name,
                "width": conv_width(m),  # the one built (0 meant "the model's default", 32)
                "norm": norm,
                "neuron": DEFAULT_NEURON,  # fit's default network: its neuron, no biases
                "bias": m.bias,
                "in_shape": a.in_shape,
                "batch_size": a.batch_size,
                "threads": a.threads,
                **provenance(),
                "rows": rows,
                "ratios": summary,
            }
        )
        return
    print(
        f"training memory per iteration: {m.name}{f' width {m.width}' if m.width else ''}, norm {norm}, "
        f"neuron {DEFAULT_NEURON}, {'' if m.bias else 'no '}biases (fit's defaults), input {a.in_shape}, "
        f"batch {a.batch_size}, {a.threads} torch thread(s)"
    )
    rss_cols = [] if a.no_rss else ["peak_rss_MiB", "rss_increase_MiB"]
    cols = ["method", "T", "saved_MiB", *rss_cols, "ms_per_iter_min", "ms_per_iter"]
    print(table(cols, [[r[c] for c in cols] for r in rows]))
    lo, hi = min(a.T), max(a.T)
    print()
    print(
        table(
            ["method", f"saved T={hi} / T={lo}", f"BPTT / method, saved at T={hi}"],
            [[k, v[f"saved_T{hi}_over_T{lo}"], v.get(f"bptt_over_method_T{hi}", "-")] for k, v in summary.items()],
        )
    )
    print(
        f"\n{provenance_text(provenance())}; ms/iter: min and median of --repeats rounds, every case once a round "
        "(interleaved)"
    )
