"""Running a session over a data set, summarising a run, and the threshold trade-off."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .data import DataError, Dataset
from .fileio import write_atomic
from .limits import check_memory, check_steps, run_bytes
from .policies import Confidence, ExitPolicy, FixedT, as_policy, model_default
from .protocol import STATIC_KINDS, Protocol
from .session import RunResult, Session

PERCENTILES = (50, 90, 99)


def run_dataset(
    session: Session,
    ds: Dataset,
    policy: ExitPolicy | str | int | None = None,
    batch_size: int = 256,
    binning: str | None = None,
    counts: bool = True,
) -> RunResult:
    """Run every sample of ``ds`` in batches; events are binned as the model was trained
    (or per ``binning``), into as many frames as the policy may use."""
    p = session.protocol
    if tuple(ds.shape) != p.input_shape:
        raise DataError(
            f"data {ds.spec!r} gives inputs of shape {list(ds.shape)}, but the model expects {list(p.input_shape)}"
        )
    if batch_size <= 0:
        raise DataError(f"batch size must be a positive integer, got {batch_size}")
    policy = as_policy(policy) or model_default(p.exit_policy, p.default_T)
    T = policy.horizon(p.default_T)
    check_steps(T)
    frames = p.stages[0].T if p.stages else T  # a multi-rate file: its first stage's T input steps
    check_memory(
        run_bytes(p, min(batch_size, len(ds)), 1 if ds.kind == "static" else frames),
        f"a batch of {min(batch_size, len(ds))} samples for {frames} steps",
    )
    binning = binning or p.binning
    parts = []
    for start in range(0, len(ds), batch_size):
        idx = np.arange(start, min(start + batch_size, len(ds)))
        if ds.kind == "static" and p.input_kind in STATIC_KINDS:
            assert ds.images is not None  # a static data set holds images
            x = ds.images[idx]  # repeated by the session: no T copies of the image
        else:
            x = ds.frames(idx, frames, binning, p.dt_us if binning == "fixed" else None, p.durations)
        parts.append(session.run(x, policy, counts=counts))
    return RunResult.concat(parts)


def t_range_warning(protocol: Protocol, policy: ExitPolicy | str | int | None) -> str | None:
    """A note when ``policy`` may stop at a T outside the range the model was trained on
    (its accuracy there was never part of training); None when it stays inside."""
    policy = as_policy(policy) or model_default(protocol.exit_policy, protocol.default_T)
    hi = policy.horizon(protocol.default_T)
    lo = policy.T if isinstance(policy, FixedT) else getattr(policy, "tmin", 1)
    t_lo, t_hi = protocol.T_range
    if t_lo <= lo and hi <= t_hi:
        return None
    steps = f"T={hi}" if lo == hi else f"T in [{lo}, {hi}]"
    return f"this run uses {steps}, outside the trained range T in [{t_lo}, {t_hi}]"


def summarize(result: RunResult, labels: np.ndarray) -> dict[str, float | int | list[int]]:
    """The numbers a person or a program reads about a run."""
    s: dict[str, float | int | list[int]] = {
        "n": result.n,
        "accuracy": float((result.predictions == labels).mean()),
        "mean_steps": result.mean_steps,
        **{f"p{q}_steps": float(np.percentile(result.steps, q)) for q in PERCENTILES},
        "max_steps": int(result.steps.max()),
        "seconds": result.seconds,
        "ms_per_sample": 1e3 * result.seconds / result.n,
        "batch_per_step": result.batch_per_step,
    }
    if result.cost is not None:
        s.update(result.cost.mean())
    return s


def tradeoff(
    session: Session,
    ds: Dataset,
    thresholds: Sequence[float],
    tmin: int = 1,
    tmax: int | None = None,
    batch_size: int = 256,
    binning: str | None = None,
    fixed_curve: bool = False,
) -> list[dict]:
    """Confidence exit at each threshold, plus fixed T = tmax (and every fixed T from 1 to
    tmax if ``fixed_curve``): one summary row each, with its ``policy``."""
    tmax = tmax or session.protocol.default_T
    policies: list[tuple[str, ExitPolicy]] = [
        (f"confidence:{th},tmin={tmin},tmax={tmax}", Confidence(float(th), tmin, tmax)) for th in thresholds
    ]
    fixed = range(1, tmax + 1) if fixed_curve else [tmax]
    policies += [(f"fixed:{T}", FixedT(T)) for T in fixed]
    rows = []
    for name, policy in policies:
        r = run_dataset(session, ds, policy, batch_size, binning)
        s = summarize(r, ds.labels)
        del s["batch_per_step"]
        rows.append({"policy": name, **s})
    return rows


def plot_tradeoff(rows: Sequence[dict], path: str, title: str = "") -> None:
    """Accuracy vs mean steps and vs energy; confidence exit and fixed T as two series."""
    import matplotlib  # lazily: only a plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for prefix, style in (("confidence", "o-"), ("fixed", "s--")):
        sel = sorted((r for r in rows if r["policy"].startswith(prefix)), key=lambda r: r["mean_steps"])
        if not sel:
            continue
        acc = [100 * r["accuracy"] for r in sel]
        axes[0].plot([r["mean_steps"] for r in sel], acc, style, label=prefix)
        axes[1].plot([r["energy_uj"] for r in sel], acc, style, label=prefix)
    axes[0].set_xlabel("mean time steps per sample")
    axes[1].set_xlabel("mean energy estimate per sample (µJ)")
    for ax in axes:
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)
