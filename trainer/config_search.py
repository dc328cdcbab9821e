"""Per-stage time-step configurations: the accuracy model, the energy model and the
budgeted search of the MTT paper (appendix A.8/A.9), as pure numpy functions.

A configuration ``t = (t_1 .. t_n)`` gives stage i of a temporally flexible model its own
number of steps.

* Accuracy model (A.8): ``ACC(t) = sum_i K_i sqrt(log2 t_i) + c``, fitted by least
  squares on measured accuracies of a few random configurations.
* Energy model (A.9): ``EC(t) = sum_i t_i R_i`` with ``R_i`` stage i's cost of one step,
  measured in a uniform run; the budget of a uniform ``Tg`` is ``sum_i Tg R_i``.
* Search: maximise ``ACC(t)`` subject to ``EC(t) <= B`` and ``tmin <= t_i <= tmax``.
  The objective and the constraint are both sums of one term per stage, so this is a
  multiple-choice knapsack. It is solved exactly by dynamic programming over Pareto
  frontiers: after stage i, keep only the partial configurations that no other one beats
  in both cost and accuracy (any completion of a dominated one is beaten by the same
  completion of its dominator). This is exact with real-valued costs (no discretisation
  of the budget, which a table DP would need) and its frontier stays small (the paper's
  DFS enumerates up to ``(tmax - tmin + 1)^n`` leaves, 1.7 M for 8 stages over 1..6);
  the whole accuracy-energy frontier falls out of it for free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class SearchError(ValueError):
    """A configuration or budget the search cannot use."""


def features(configs: np.ndarray) -> np.ndarray:
    """``sqrt(log2 t_i)`` of every stage of every configuration ``[N, n]`` (0 at t = 1)."""
    t = np.asarray(configs, np.float64)
    if (t < 1).any():
        raise SearchError(f"time steps must be >= 1, got {t.min():g}")
    return np.sqrt(np.log2(t))


@dataclass(frozen=True)
class AccuracyModel:
    """``ACC(t) = K . sqrt(log2 t) + c``."""

    K: np.ndarray
    c: float

    def predict(self, configs: np.ndarray) -> np.ndarray:
        return features(configs) @ self.K + self.c

    def stage_gain(self, ts: np.ndarray) -> np.ndarray:
        """``[n, len(ts)]``: stage i's term ``K_i sqrt(log2 t)`` for each t in ``ts``."""
        return self.K[:, None] * features(ts)[None, :]


def fit_accuracy(configs: np.ndarray, accuracy: np.ndarray) -> AccuracyModel:
    """Least-squares fit of K and c (numpy ``lstsq``: the minimum-norm solution when the
    sampled configurations leave the system under-determined)."""
    X = features(configs)
    y = np.asarray(accuracy, np.float64)
    if X.ndim != 2 or len(X) != len(y):
        raise SearchError(f"need one accuracy per configuration, got {len(y)} for {len(X)}")
    A = np.hstack([X, np.ones((len(X), 1))])
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    return AccuracyModel(coef[:-1], float(coef[-1]))


def energy(configs: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``EC(t) = sum_i t_i R_i`` of each configuration."""
    return np.asarray(configs, np.float64) @ np.asarray(R, np.float64)


def all_configs(n_stages: int, tmin: int, tmax: int) -> np.ndarray:
    """Every configuration ``[(tmax - tmin + 1)^n, n]`` (for small cases and tests)."""
    grids = np.meshgrid(*[np.arange(tmin, tmax + 1)] * n_stages, indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


def random_configs(
    n_stages: int, tmin: int, tmax: int, count: int, rng: np.random.Generator, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Up to ``count`` distinct configurations drawn uniformly, none of them in ``exclude``;
    fewer when the space has fewer left (then all of them, in random order)."""
    taken = {tuple(c) for c in (exclude if exclude is not None else np.zeros((0, n_stages), int))}
    size = (tmax - tmin + 1) ** n_stages
    if size - len(taken) <= 4 * count:  # small space: draw from what is left
        left = [c for c in all_configs(n_stages, tmin, tmax) if tuple(c) not in taken]
        order = rng.permutation(len(left))[:count]
        return np.array([left[i] for i in order], dtype=np.int64).reshape(-1, n_stages)
    out: list[tuple[int, ...]] = []
    while len(out) < count:
        c = tuple(int(v) for v in rng.integers(tmin, tmax + 1, size=n_stages))
        if c not in taken:
            taken.add(c)
            out.append(c)
    return np.array(out, dtype=np.int64).reshape(-1, n_stages)


def frontier(gain: np.ndarray, R: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Pareto frontier of (energy, accuracy) over all configurations.

    ``gain[i, j]``: stage i's accuracy term at ``ts[j]``; ``R[i]``: its cost per step.
    Returns ``(configs [M, n], energy [M], gain [M])`` sorted by energy, each strictly more
    accurate than the one before (ties in accuracy keep the cheaper).
    """
    n = len(R)
    configs = np.zeros((1, 0), np.int64)
    cost = np.zeros(1)
    value = np.zeros(1)
    for i in range(n):
        configs = np.hstack([np.repeat(configs, len(ts), 0), np.tile(ts, len(configs))[:, None]])
        cost = (cost[:, None] + ts[None, :] * R[i]).ravel()
        value = (value[:, None] + gain[i][None, :]).ravel()
        keep = _pareto(cost, value)
        configs, cost, value = configs[keep], cost[keep], value[keep]
    return configs, cost, value


def _pareto(cost: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points, by increasing cost."""
    order = np.lexsort((-value, cost))  # cost ascending, then value descending
    best = -np.inf
    keep = []
    for k in order:
        if value[k] > best:
            keep.append(k)
            best = value[k]
    return np.array(keep, dtype=np.int64)


@dataclass(frozen=True)
class SearchResult:
    config: np.ndarray
    energy: float
    predicted: float
    frontier_configs: np.ndarray
    frontier_energy: np.ndarray
    frontier_predicted: np.ndarray


def search(model: AccuracyModel, R: np.ndarray, budget: float, tmin: int, tmax: int) -> SearchResult:
    """The configuration of highest predicted accuracy with ``EC(t) <= budget``."""
    R = np.asarray(R, np.float64)
    if len(R) != len(model.K):
        raise SearchError(f"need one cost per stage ({len(model.K)}), got {len(R)}")
    if (R < 0).any() or not np.isfinite(R).all():
        raise SearchError(f"stage costs must be finite and >= 0, got {R.tolist()}")
    if not 1 <= tmin <= tmax:
        raise SearchError(f"need 1 <= tmin <= tmax, got tmin={tmin}, tmax={tmax}")
    cheapest = tmin * R.sum()
    # a relative tolerance: the uniform-Tg budget is itself a float sum of the same terms
    slack = 1e-9 * max(abs(budget), 1.0)
    if budget < cheapest - slack:
        raise SearchError(
            f"the budget {budget:.6g} is below the cheapest configuration "
            f"(every stage at T={tmin} costs {cheapest:.6g})"
        )
    ts = np.arange(tmin, tmax + 1)
    configs, cost, value = frontier(model.stage_gain(ts), R, ts)
    k = int(np.flatnonzero(cost <= budget + slack)[-1])  # the frontier rises in accuracy with cost
    return SearchResult(configs[k], float(cost[k]), float(value[k] + model.c), configs, cost, value + model.c)


def validation_stats(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Pearson r and mean absolute error of predicted vs measured accuracy."""
    p, m = np.asarray(predicted, np.float64), np.asarray(measured, np.float64)
    if len(p) != len(m):
        raise SearchError(f"need as many predictions as measurements, got {len(p)} and {len(m)}")
    r = float(np.corrcoef(p, m)[0, 1]) if len(p) > 1 and p.std() > 0 and m.std() > 0 else float("nan")
    return {"n": len(p), "pearson_r": r, "mae": float(np.abs(p - m).mean()) if len(p) else float("nan")}
