"""The embedded default: scikit-learn's 8x8 digits, as images or as simulated event streams.

Event streams are simulated for the images of the asked split only (in batches, so the
peak memory stays small) and cached on disk after the first run, as one ``.npz`` per
split under :func:`cache_dir`. A cache file is keyed by the simulation's parameters
(:data:`VERSION`); a damaged one is simulated again.
"""

from __future__ import annotations

import os
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import numpy as np

from ..fileio import OutputPathError, write_serialized
from .eventcam import saccade_events
from .events import EVENT_DTYPE, cut, packed
from .splits import split_index

N_DIGITS = 1797  # scikit-learn's bundled digits (its load_digits() is fixed)
DURATION_US = 300_000
SENSOR = (2, 20, 20)  # polarity x the 16x16 up-sampled digit with eventcam's 2-pixel margin
CLASSES = [str(i) for i in range(10)]
VERSION = "v3-margin2-steps60-thr0.25-seed0-log16fx20"  # bump when the simulation changes
BATCH = 128
CACHE_ENV = "FLEXSNN_CACHE"


class DigitsError(ValueError):
    """scikit-learn missing (the message says how to install it)."""


def cache_dir() -> Path:
    """``$FLEXSNN_CACHE``, else ``$XDG_CACHE_HOME/flexsnn``, else ``~/.cache/flexsnn``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "flexsnn"


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the install
        raise DigitsError("the 'digits' data needs scikit-learn: pip install scikit-learn") from e
    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def digits_static(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 1, 8, 8]`` in [0, 1] and labels of ``split``."""
    images, labels = _load_digits()
    idx = split_index(len(labels), split)
    return images[idx, None], labels[idx]


def _simulate(images: np.ndarray, idx: np.ndarray, split: str = "") -> list[np.ndarray]:
    from tqdm import tqdm

    out = []
    # the first run of a fresh install spends most of its first seconds here, silent before
    what = " ".join(["digits events", *([split] if split else []), "(built once, then cached)"])
    bar = tqdm(range(0, len(idx), BATCH), desc=what, disable=not sys.stderr.isatty())
    for s in bar:
        part = idx[s : s + BATCH]
        big = np.kron(images[part], np.ones((1, 2, 2), np.float32))  # 16x16: room for sub-pixel motion
        out += saccade_events(big, duration_us=DURATION_US, ids=part)
    return out


def save_packed(f: IO[bytes], streams: list[np.ndarray], labels: np.ndarray) -> None:
    """Event streams as one .npz file (the cache's and edge.pi.parity's layout): every
    event in order, where each stream starts, and the labels (read by :func:`unpacked`)."""
    events, offsets = packed(streams)
    np.savez(f, events=events, offsets=offsets, labels=labels)


def unpacked(z: Mapping[str, np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """The streams and labels of :func:`save_packed`'s arrays; a ValueError naming what is
    not that layout (event dtype, integer offsets cutting the events into one stream per
    label, labels of the ten digits)."""
    ev, offsets, labels = z["events"], z["offsets"], z["labels"]
    if ev.dtype != EVENT_DTYPE:
        raise ValueError(f"its events are {ev.dtype}, expected the event records {EVENT_DTYPE}")
    if offsets.dtype.kind not in "iu" or labels.dtype.kind not in "iu":
        raise ValueError(f"its offsets and labels are {offsets.dtype} and {labels.dtype}, expected integers")
    streams = cut(ev, offsets, len(labels))
    if streams is None:
        raise ValueError("its offsets do not cut its events into one stream per label")
    if len(labels) and not (labels.min() >= 0 and labels.max() < len(CLASSES)):
        raise ValueError(f"its labels are not digits 0..{len(CLASSES) - 1}")
    return streams, labels


def _read_cache(path: Path) -> tuple[list[np.ndarray], np.ndarray] | None:
    try:
        with np.load(path) as z:
            return unpacked(z)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # rebuilt
        return None


def _write_cache(path: Path, streams: list[np.ndarray], labels: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_serialized(path, lambda f: save_packed(f, streams, labels))
    except (OSError, OutputPathError) as e:  # a read-only home: run on, uncached
        print(f"note: digits event cache not written ({e})", file=sys.stderr)


def digits_events(split: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Event streams (sensor 2x20x20) and labels of ``split``, from the cache when it is there
    (then without importing scikit-learn)."""
    path = cache_dir() / f"digits-events-{VERSION}-{split}.npz"
    cached = _read_cache(path) if path.is_file() else None
    if cached is not None:
        return cached
    images, labels = _load_digits()
    idx = split_index(len(labels), split)
    streams = _simulate(images, idx, split)
    _write_cache(path, streams, labels[idx])
    return streams, labels[idx]
