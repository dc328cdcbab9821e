"""Training methods: how many time steps each stage runs in one forward pass.

A method turns (number of stages, random generator) into the list of stage-T
configurations of one training iteration; each configuration is one forward/backward,
their gradients are summed, and the optimizer steps once.

* ``sdt``: standard direct training, one forward at the fixed T.
* ``nmt``: naive mixture training, s forwards, each at one random T in [tmin, tmax].
* ``mtt``: mixed time-step training (MTT), s forwards, each stage at its own random T in
  [tmin, tmax], joined by the temporal transformation module. With ``order
  "nonincreasing"`` each configuration is sorted so that ``T_1 >= T_2 >= ...``: MTT as a
  time encoder on sequence data (MTT paper, appendix A.12), where later stages only ever
  merge steps (TTM down-sampling) and never repeat them. Sorting the s independent draws
  keeps every T in [tmin, tmax] and every non-increasing configuration reachable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .config import ConfigError, MethodConfig

StageTs = list[int]


def _sdt(m: MethodConfig, n_stages: int, rng: np.random.Generator) -> list[StageTs]:
    return [[m.T] * n_stages]


def _nmt(m: MethodConfig, n_stages: int, rng: np.random.Generator) -> list[StageTs]:
    return [[int(rng.integers(m.tmin, m.tmax + 1))] * n_stages for _ in range(m.samples)]


def _mtt(m: MethodConfig, n_stages: int, rng: np.random.Generator) -> list[StageTs]:
    configs = [[int(t) for t in rng.integers(m.tmin, m.tmax + 1, size=n_stages)] for _ in range(m.samples)]
    return [sorted(c, reverse=True) for c in configs] if m.order == "nonincreasing" else configs


METHODS: dict[str, Callable[[MethodConfig, int, np.random.Generator], list[StageTs]]] = {
    "sdt": _sdt,
    "nmt": _nmt,
    "mtt": _mtt,
}


def sample_configs(m: MethodConfig, n_stages: int, rng: np.random.Generator) -> list[StageTs]:
    try:
        return METHODS[m.name](m, n_stages, rng)
    except KeyError:
        raise ConfigError(f"method {m.name!r} is unknown; expected one of {sorted(METHODS)}") from None


def expected_cost_ratio(m: MethodConfig) -> float:
    """The MTT paper's estimate of time per iteration relative to SDT at T:
    s (Tmin + Tmax) / (2 T)."""
    if m.name == "sdt":
        return 1.0
    return m.samples * (m.tmin + m.tmax) / (2 * m.T)
