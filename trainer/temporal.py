"""The temporal transformation module of MTT: regroup a sequence of l frames into k.

Group boundaries follow the paper's rule (:func:`runtime.grouping.group_bounds`, shared
with the runtime's sequence input). Down-sampling (l > k: n = l, m = k) sums the frames of
each group; up-sampling (l < k: n = k, m = l) replicates input frame i into every output
frame of group i. Down-sampling preserves the total input; l == k is the identity.
"""

from __future__ import annotations

import functools

import torch

from runtime.grouping import group_bounds, group_sizes

__all__ = ["group_bounds", "group_index", "transform"]


@functools.lru_cache(maxsize=1024)
def group_index(n: int, m: int) -> tuple[int, ...]:
    """For each of the n items, the group (0 .. m-1) it belongs to. Plain ints, not a
    cached tensor: one made while torch.export traces is a fake tensor, and a cache would
    hand it to every later call."""
    return tuple(g for g, size in enumerate(group_sizes(n, m)) for _ in range(size))


def transform(x: torch.Tensor, k: int) -> torch.Tensor:
    """Regroup ``x`` of shape ``[l, B, ...]`` into ``[k, B, ...]``."""
    l = len(x)  # an int under torch.jit.trace too (shape[0] is a tensor there): a traced file fixes l
    if k == l:
        return x
    if k < l:
        out = x.new_zeros((k, *x.shape[1:]))
        return out.index_add(0, torch.tensor(group_index(l, k), device=x.device), x)
    return x.index_select(0, torch.tensor(group_index(k, l), device=x.device))
