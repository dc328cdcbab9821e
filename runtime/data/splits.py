"""How recordings are split, for every reader (one home): "test" where a data set brings no
test split of its own is every fifth recording by its index; "val" is a fixed part of the
training recordings (index % 10 == 1; the index of a digit, of an N-MNIST file, of an MNIST
training image, of a tonic sample, a Braille repetition), held out so that a hyper-parameter
such as an exit threshold is chosen on data that is neither the test split nor trained on;
"train-minus-val" is the rest of the training recordings (what `trainer fit` trains on by
default)."""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "test", "val", "train-minus-val")
TEST_EVERY = 5  # index % 5 == 0 -> test, where a data set has no test split of its own
VAL_EVERY, VAL_REMAINDER = 10, 1


def in_test(index: int) -> bool:
    """Whether the recording at ``index`` belongs to the index-based test split."""
    return index % TEST_EVERY == 0


def split_index(n: int, split: str) -> np.ndarray:
    """The indices of ``split`` ("test", or "train": the rest) among ``n`` recordings."""
    return np.flatnonzero((np.arange(n) % TEST_EVERY == 0) == (split == "test"))


def spread(n: int, limit: int) -> np.ndarray:
    """``limit`` indices evenly spread over ``n`` recordings (what ``--limit`` keeps: a subset
    of every part of a data set, not of its first classes or sessions)."""
    return np.linspace(0, n - 1, limit).round().astype(np.int64)


def held_for_val(index: np.ndarray) -> np.ndarray:
    """Which training recordings (by index) form "val"."""
    return index % VAL_EVERY == VAL_REMAINDER
