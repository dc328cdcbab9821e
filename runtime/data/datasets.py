"""Data sets by spec string, as numpy arrays (no torch), shared by trainer and runtime.

Specs: ``digits`` (scikit-learn's bundled 8x8 digits as event streams from the simulated
event camera), ``digits:static`` (the same digits as images), ``nmnist:PATH`` (N-MNIST
binary files), ``mnist:PATH`` (MNIST IDX files). Static images are repeat-encoded: the
same frame at every step. Event streams are binned into T frames at run time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .events import BINNINGS, bin_events
from .eventcam import saccade_events
from .mnist import read_mnist
from .nmnist import SENSOR as NMNIST_SENSOR
from .nmnist import list_nmnist, read_nmnist_bin

# "val" is a fixed part of the training recordings (index % 10 == 1; the index of a digit,
# of an N-MNIST file, of an MNIST training image), held out so that a hyper-parameter such
# as an exit threshold is chosen on data that is neither the test split nor trained on;
# "train-minus-val" is the rest of the training recordings (what `trainer fit` trains on).
SPLITS = ("train", "test", "val", "train-minus-val")
VAL_EVERY, VAL_REMAINDER = 10, 1
SPEC_FORMS = ("digits", "digits:static", "nmnist:PATH", "mnist:PATH")
DIGITS_TEST_EVERY = 5  # digits split: index % 5 == 0 -> test
DIGITS_DURATION_US = 300_000
NMNIST_DURATION_US = 316_000  # covers every recording (3 saccades, longest 315.1 ms)


class DataError(ValueError):
    """A data spec or data folder that cannot be used; the message says what was expected."""


@dataclass
class Dataset:
    """One split of a data set. ``kind`` is "static" (images) or "events" (streams)."""

    spec: str
    split: str
    kind: str
    shape: tuple[int, int, int]
    labels: np.ndarray
    classes: list[str]
    images: np.ndarray | None = None
    events: list[np.ndarray] | None = None
    duration_us: float = 0.0
    binning: str = "equal"
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> Dataset:
        idx = np.asarray(idx)
        return Dataset(
            self.spec, self.split, self.kind, self.shape, self.labels[idx], self.classes,
            None if self.images is None else self.images[idx],
            None if self.events is None else [self.events[i] for i in idx],
            self.duration_us, self.binning,
            {**self.meta, **({"index": self.meta["index"][idx]} if "index" in self.meta else {})},
        )

    def frames(self, idx: np.ndarray, T: int, binning: str | None = None,
               dt_us: float | None = None) -> np.ndarray:
        """Inputs for samples ``idx`` as ``[T, B, C, H, W]`` float32.

        Static images are repeated T times. Event streams are binned: ``"equal"`` splits
        each recording into T bins; ``"fixed"`` uses bins of ``dt_us`` (default
        ``duration_us / T``) from t = 0.
        """
        if T <= 0:
            raise DataError(f"T must be a positive number of time steps, got {T}")
        if self.kind == "static":
            img = self.images[np.asarray(idx)]
            return np.broadcast_to(img[None], (T, *img.shape)).copy()
        binning = binning or self.binning
        if binning not in BINNINGS:
            raise DataError(f"binning {binning!r} is unknown; expected one of {list(BINNINGS)}")
        streams = [self.events[i] for i in np.asarray(idx)]
        if binning == "fixed":
            return bin_events(streams, T, self.shape, "fixed", dt_us or self.duration_us / T)
        return bin_events(streams, T, self.shape, "equal",
                          durations_us=[self.duration_us] * len(streams))


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``name[:arg]``; raise :class:`DataError` naming the valid forms."""
    name, _, arg = spec.partition(":")
    if name == "digits" and arg in ("", "static", "events"):
        return name, arg or "events"
    if name in ("nmnist", "mnist"):
        if not arg:
            raise DataError(f"data spec {spec!r} needs a folder: {name}:PATH")
        return name, arg
    raise DataError(f"unknown data spec {spec!r}; expected one of {list(SPEC_FORMS)}")


@functools.lru_cache(maxsize=4)
def _digits(kind: str) -> tuple[np.ndarray, np.ndarray, list | None]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the install
        raise DataError("the 'digits' data needs scikit-learn: pip install scikit-learn") from e
    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)
    if kind == "static":
        return images[:, None], d.target.astype(np.int64), None
    big = np.kron(images, np.ones((1, 2, 2), np.float32))  # 16x16: room for sub-pixel motion
    return big, d.target.astype(np.int64), saccade_events(big, duration_us=DIGITS_DURATION_US)


@functools.lru_cache(maxsize=4)
def _nmnist(root: str, split: str) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    items = list_nmnist(root, split)
    return ([read_nmnist_bin(f) for f, _ in items], np.array([lab for _, lab in items], np.int64),
            np.array([int(f.stem) if f.stem.isdigit() else i for i, (f, _) in enumerate(items)], np.int64))


def load_dataset(spec: str, split: str, limit: int | None = None) -> Dataset:
    """Load ``split`` of the data named by ``spec``; ``limit`` keeps an evenly spread subset."""
    if split not in SPLITS:
        raise DataError(f"split {split!r} is unknown; expected one of {list(SPLITS)}")
    if split in ("val", "train-minus-val"):
        train = _load(spec, "train")
        held = train.meta["index"] % VAL_EVERY == VAL_REMAINDER
        ds = train.subset(np.flatnonzero(held if split == "val" else ~held))
        ds.split = split
        return _limit(ds, spec, split, limit)
    return _limit(_load(spec, split), spec, split, limit)


def _limit(ds: Dataset, spec: str, split: str, limit: int | None) -> Dataset:
    if len(ds) == 0:
        raise DataError(f"data {spec!r} has no samples in split {split!r}")
    if limit is not None and limit < len(ds):
        if limit <= 0:
            raise DataError(f"limit must be a positive number of samples, got {limit}")
        ds = ds.subset(np.linspace(0, len(ds) - 1, limit).round().astype(np.int64))
    return ds


def _load(spec: str, split: str) -> Dataset:
    """The whole ``split`` ("train" or "test"); ``meta["index"]``: each sample's index."""
    name, arg = parse_spec(spec)
    classes = [str(i) for i in range(10)]
    try:
        if name == "digits":
            images, labels, events = _digits(arg)
            sel = (np.arange(len(labels)) % DIGITS_TEST_EVERY == 0) == (split == "test")
            index = np.flatnonzero(sel)
            if arg == "static":
                ds = Dataset(spec, split, "static", (1, 8, 8), labels[sel], classes, images=images[sel])
            else:
                ds = Dataset(spec, split, "events", (2, 20, 20), labels[sel], classes,
                             events=[e for e, s in zip(events, sel) if s],
                             duration_us=DIGITS_DURATION_US)
        elif name == "nmnist":
            events, labels, index = _nmnist(str(Path(arg).resolve()), split)
            ds = Dataset(spec, split, "events", NMNIST_SENSOR, labels, classes, events=events,
                         duration_us=NMNIST_DURATION_US)
        else:
            images, labels = read_mnist(arg, split)
            index = np.arange(len(labels))
            ds = Dataset(spec, split, "static", (1, 28, 28), labels, classes, images=images)
    except (FileNotFoundError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(str(e)) from e
    ds.meta = {**ds.meta, "index": index}
    return ds
