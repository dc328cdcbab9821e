"""Spike difference (MTT paper, Eq. 16): how far the event-driven spike counts ``s`` are
from a clock-driven run's ``s0``, per neuron:

    SD(s0, s) = sum_i |s0_i - s_i| / sum_i s0_i

The sums run over the last axis (the neurons); leading axes (samples) are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def spike_difference(s0: np.ndarray, s: np.ndarray) -> np.ndarray:
    """SD over the last axis; 0 where both are silent, inf where the reference ``s0`` is
    silent and ``s`` is not (``--json`` writes it as null: JSON has no inf)."""
    s0, s = np.asarray(s0, np.float64), np.asarray(s, np.float64)
    if s0.shape != s.shape:
        raise ValueError(f"spike counts have shapes {list(s0.shape)} and {list(s.shape)}; expected equal")
    num = np.abs(s0 - s).sum(-1)
    den = s0.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(num == 0, 0.0, num / den)


def stack_counts(counts: Mapping[str, np.ndarray], nodes: Sequence[str], batch_dims: int = 1) -> np.ndarray:
    """Per-neuron counts of the layers ``nodes``, flattened and joined: ``[..., neurons]``."""
    parts = [np.asarray(counts[n]) for n in nodes]
    return np.concatenate([c.reshape(*c.shape[:batch_dims], -1) for c in parts], axis=-1)
