"""Recorded sequences ``[L, features]`` as T input steps, by the TTM grouping rule.

A sequence of L samples becomes T steps with the groups of :func:`runtime.grouping.group_bounds`
(the rule MTT's temporal transformation module uses between stages): for T <= L step i is
the mean of the samples of group i, so the input's scale does not depend on T (a model is
run at many T); for T > L sample i is repeated over every step of group i (TTM up-sampling).
Each recording is grouped over its own length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..grouping import group_bounds


def group_sequence(seq: np.ndarray, T: int) -> np.ndarray:
    """One sequence ``[L, F]`` as ``[T, F]`` float32 (see the module docstring)."""
    L = len(seq)
    if T <= L:
        b = np.asarray(group_bounds(L, T))
        sums = np.add.reduceat(seq.astype(np.float64), b[:-1], axis=0)
        return (sums / np.diff(b)[:, None]).astype(np.float32)
    return np.repeat(seq.astype(np.float32), np.diff(group_bounds(T, L)), axis=0)


def sequence_frames(seqs: Sequence[np.ndarray], T: int) -> np.ndarray:
    """Sequences ``[L_i, F]`` as input steps ``[T, B, F]`` float32."""
    if T <= 0:
        raise ValueError(f"T must be a positive number of time steps, got {T}")
    return np.stack([group_sequence(s, T) for s in seqs], axis=1)
