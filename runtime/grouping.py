"""The grouping rule of MTT's temporal transformation module (TTM), one home for trainer and runtime.

Group boundaries follow the MTT paper's rule ``b_i = round((i - 1) * n / m - eps) + 1`` for
``i = 1 .. m + 1`` (1-based, so group i holds items ``b_i .. b_{i+1} - 1`` of n), with
``eps`` breaking ties downward. :mod:`trainer.temporal` regroups frames between stages with
it; :mod:`runtime.data.sequences` regroups a recorded sequence into T input steps with it.
"""

from __future__ import annotations

import functools

EPS = 1e-6


@functools.lru_cache(maxsize=1024)
def group_bounds(n: int, m: int) -> tuple[int, ...]:
    """0-based start indices of the m groups over n items, plus n at the end."""
    if not 1 <= m <= n:
        raise ValueError(f"cannot split {n} items into {m} non-empty groups")
    return tuple(int(round(i * n / m - EPS)) for i in range(m)) + (n,)


def group_sizes(n: int, m: int) -> tuple[int, ...]:
    """How many of the n items each of the m groups holds."""
    b = group_bounds(n, m)
    return tuple(b[i + 1] - b[i] for i in range(m))
