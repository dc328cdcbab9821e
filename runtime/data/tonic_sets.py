"""tonic data sets as :class:`Dataset` (tonic is an optional extra: imported here only).

:func:`from_tonic` wraps any object in tonic's data-set interface: ``len``, ``[i] ->
(events, target)`` with events a structured array (fields among x, y, t, p), a
``sensor_size`` (W, H, P) and ``classes``. The spec ``tonic:NAME:ROOT`` builds
``NAME(save_to=ROOT, train=...)``, where NAME is a class of ``tonic.datasets``
(``DVSGesture``, ``NMNIST``, ``SHD``, ...) or a dotted ``module.Class`` in the same
interface. Classes, sensor size and per-recording durations come from the data set:
recordings differ in length, so "equal" binning splits each one's own span (the last
timestamp + 1). A class without a ``train`` argument is split by index, as N-MNIST
without a test folder: index % 5 == 0 is the test split.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import Dataset, LazyEvents, select_split, whole_split
from .events import make_events
from .registry import DataError
from .splits import split_index

DURATION_PROBES = 64  # recordings read for the nominal duration (the longest of them)


def tonic_class(name: str) -> type:
    """``NAME`` in ``tonic.datasets``, or a dotted ``module.Class``."""
    if "." in name:
        module, _, cls = name.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as e:
            raise DataError(f"tonic data set class {name!r} cannot be imported ({e})") from None
        return obj
    try:
        import tonic.datasets
    except ImportError:
        raise DataError("tonic data sets need the tonic package: pip install 'flexsnn[tonic]'") from None
    if not hasattr(tonic.datasets, name):
        known = sorted(n for n in dir(tonic.datasets) if n[:1].isupper())
        raise DataError(f"tonic has no data set {name!r}; expected one of {known} or a dotted module.Class")
    return getattr(tonic.datasets, name)


def to_events(ev: Any, what: str, shape: tuple[int, int, int]) -> np.ndarray:
    """A tonic recording (structured array) in :data:`EVENT_DTYPE`; missing y or p are 0.
    ``shape``: the data set's (P, H, W); an event outside it is a :class:`DataError` (a flat
    index ``y * W + x`` would put it silently on another pixel). Values pass
    :func:`.events.make_events`'s one rule (whole numbers its fields hold), after float
    times are rounded to the µs: tonic's SHD stores float µs; times in ms or s must be scaled
    first (docs/event_data.md), nothing here can tell the unit."""
    names = getattr(getattr(ev, "dtype", None), "names", None) or ()
    if "t" not in names or "x" not in names:
        raise DataError(f"{what} has fields {list(names)}; expected a structured array with x, t (and y, p)")
    P, H, W = shape
    for f, size in (("x", W), ("y", H)):
        if f in names and len(ev) and not (0 <= np.min(ev[f]) and np.max(ev[f]) < size):
            raise DataError(
                f"{what}: {f} ranges {np.min(ev[f])}..{np.max(ev[f])}, outside the data set's sensor_size "
                f"({W}, {H}, {P}): expected 0..{size - 1}"
            )
    y = ev["y"] if "y" in names else 0
    # tonic uses 0/1 or -1/+1 or bool: ON = 1; P == 1: one channel whatever p says (tonic's SHD
    # marks every event p = 1, "artificial polarity")
    p = np.asarray(ev["p"]) > 0 if "p" in names and P > 1 else 0
    t = np.round(ev["t"]) if ev["t"].dtype.kind == "f" else ev["t"]
    try:
        out = make_events(ev["x"], y, p, t)
    except DataError as e:  # the value, with the recording that holds it
        raise DataError(f"{what}: {e}") from None
    if len(out) and out["t"][0] < 0:  # binning dropped them, the event engine refused them: one rule
        raise DataError(
            f"{what}: negative timestamps (min {out['t'][0]} µs); expected t >= 0 from the recording's start"
        )
    return out


def _split_rows(obj: Any, split: str, by_index: bool) -> np.ndarray:
    n = len(obj)
    if not by_index:
        return np.arange(n)
    return split_index(n, split)


def from_tonic(obj: Any, spec: str | None = None, split: str = "train", by_index: bool = False) -> Dataset:
    """A tonic data set object as a :class:`Dataset` (recordings read lazily).

    ``split``: what is wanted of ``obj``. "train" or "test": ``obj`` is that split (or, with
    ``by_index``, holds both: every fifth recording is "test"); "val" and "train-minus-val":
    ``obj`` is the training set, and the validation recordings are held out of it as
    :func:`load_dataset` holds them out (by position: index % 10 == 1).
    """
    name = type(obj).__name__
    spec = spec or f"tonic-object:{name}"
    whole = whole_split(split)
    sensor = getattr(obj, "sensor_size", None)
    if not (isinstance(sensor, (tuple, list)) and len(sensor) in (2, 3)):
        raise DataError(f"tonic data set {name} has sensor_size {sensor!r}; expected (W, H, P)")
    W, H, P = (*sensor, 1) if len(sensor) == 2 else sensor
    classes = getattr(obj, "classes", None)
    if classes is None or len(classes) < 2:
        raise DataError(f"tonic data set {name} declares classes {classes!r}; expected a list of 2 or more")
    if isinstance(classes, dict):  # {name: index}: the names in index order (the key order was taken)
        if sorted(classes.values()) != list(range(len(classes))):
            raise DataError(
                f"tonic data set {name} declares classes {classes!r}; expected a list, or a dict of names to "
                f"the indices 0..{len(classes) - 1}"
            )
        classes = sorted(classes, key=classes.__getitem__)
    classes = [str(c) for c in classes]
    rows = _split_rows(obj, whole, by_index)
    if not len(rows):
        raise DataError(f"tonic data set {name} has no recordings in split {whole!r}")
    labels = _labels(obj, rows, name, classes)
    shape = (int(P), int(H), int(W))
    if P > 2:
        raise DataError(f"tonic data set {name} has {P} polarities (sensor_size {tuple(sensor)}); expected 1 or 2")

    def recording(i: int) -> np.ndarray:
        r = int(rows[i])
        return to_events(_item(obj, r, name)[0], f"{name}[{r}]", shape)

    def probed(i: int) -> np.ndarray:
        """Recording i, its target checked against the label taken for it (labels come from
        ``.targets`` without reading every recording: a ``__getitem__`` that yields other
        targets trained on wrong labels, unsaid)."""
        r = int(rows[i])
        ev, target = _item(obj, r, name)[:2]
        got = np.asarray(target)
        if not (got.size == 1 and got.dtype.kind in "iuf" and got.reshape(()) == labels[i]):
            raise DataError(
                f"tonic data set {name}[{r}] yields target {target!r}, but its labels (.targets"
                f"{', through its target_transform' if _target_transform(obj) else ''}) give {labels[i]}; expected "
                "the two to agree: a class whose __getitem__ changes targets should change .targets alike"
            )
        return to_events(ev, f"{name}[{r}]", shape)

    events = LazyEvents(recording, len(rows))
    probe = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), DURATION_PROBES)).round().astype(int))
    ends = [int(e["t"][-1]) + 1 for e in (probed(i) for i in probe) if len(e)]
    if not ends:  # the nominal step (the neurons' dt) comes from these lengths: none to take it from
        raise DataError(
            f"tonic data set {name}: the {len(probe)} recordings read (spread over all {len(rows)}) have no "
            "events; expected recordings with events (their lengths set the model's time step)"
        )
    ds = Dataset(
        spec,
        whole,
        "events",
        shape,
        labels,
        classes,
        events=events,
        duration_us=float(max(ends)),
        durations="recording",
        meta={"tonic": name},
    )
    ds = select_split(ds, split)
    if not len(ds):
        raise DataError(f"tonic data set {name} has no recordings in split {split!r}")
    return ds


def _item(obj: Any, i: int, name: str) -> Any:
    """``obj[i]``, its failure a :class:`DataError` naming the recording (the class is the
    user's code: a corrupt file, a missing index)."""
    try:
        return obj[i]
    except Exception as e:
        raise DataError(f"{name}[{i}] could not be read ({type(e).__name__}: {e})") from e


def _labels(obj: Any, rows: np.ndarray, name: str, classes: list[str]) -> np.ndarray:
    """The class index of each recording in ``rows``: whole numbers 0..K-1 (a fractional
    target is refused, not truncated to the class below)."""
    targets = getattr(obj, "targets", None)
    transform = _target_transform(obj)
    if targets is not None and len(targets) == len(obj):
        picked = np.asarray(targets)[rows]
        # tonic's __getitem__ yields target_transform(target): the labels are what it yields
        raw = np.asarray([transform(t) for t in picked]) if transform else picked
    else:
        raw = np.asarray([_item(obj, int(i), name)[1] for i in rows])
    expected = (
        f"expected integer targets 0..{len(classes) - 1}, target i meaning class {classes[0]!r}, "
        f"{classes[1]!r}, ... in that order"
    )
    fractional = ~(np.isfinite(raw) & (raw == np.round(raw))) if raw.dtype.kind == "f" else None
    if fractional is not None and fractional.any():
        bad = raw[fractional][0]
        raise DataError(f"tonic data set {name} has a target that is not a whole class index ({bad}); {expected}")
    try:
        labels = raw.astype(np.int64)
    except (TypeError, ValueError) as e:  # e.g. class names as targets: int() said only "invalid literal"
        raise DataError(f"tonic data set {name} has a target that is not a class index ({e}); {expected}") from None
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DataError(
            f"tonic data set {name} has targets {labels.min()}..{labels.max()} but "
            f"{len(classes)} classes; expected targets 0..{len(classes) - 1}"
        )
    return labels


def _target_transform(obj: Any) -> Callable[[Any], Any] | None:
    """tonic's ``target_transform`` of ``obj``, if it has one set."""
    transform = getattr(obj, "target_transform", None)
    return transform if callable(transform) else None


def _folders(root: str) -> set[Path]:
    r = Path(root)
    return {r, *(p for p in r.rglob("*") if p.is_dir())} if r.is_dir() else set()


def _remove_empty(made: set[Path]) -> None:
    """Remove the folders in ``made`` that are empty, deepest first (a failed tonic
    download leaves ROOT/NAME/ behind in the user's data folder)."""
    for d in sorted(made, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: leave it
            d.rmdir()


def load_tonic(arg: str, split: str, spec: str) -> Dataset:
    """``NAME:ROOT`` of the spec ``tonic:NAME:ROOT``."""
    name, _, root = arg.partition(":")
    if not name or not root:
        raise DataError(f"data spec {spec!r} needs a data set and a folder: tonic:NAME:ROOT")
    cls = tonic_class(name)
    takes_train = "train" in inspect.signature(cls).parameters
    before = _folders(root)
    try:
        obj = cls(save_to=root, train=split == "train") if takes_train else cls(save_to=root)
    except Exception as e:  # tonic downloads a missing data set: offline that fails in many ways
        _remove_empty(_folders(root) - before)  # tonic made them for its download: nothing half-way
        if "." in name:  # the user's own class: its error is the cause, not a download
            raise DataError(f"tonic data set class {name}(save_to={root!r}) failed: {type(e).__name__}: {e}") from e
        raise DataError(
            f"tonic data set {name} is not under {root} as tonic expects it, and could not be downloaded "
            f"({type(e).__name__}: {e}); tonic wants the files its own download leaves "
            f"({root}/{getattr(cls, '__name__', name)}/...): some classes (NMNIST) also check for the downloaded "
            "archives and a file count, so a folder laid out by hand can fail that check"
        ) from None
    return from_tonic(obj, spec, split, by_index=not takes_train)
