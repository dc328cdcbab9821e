"""Data sets by spec string, as numpy arrays (no torch), shared by trainer and runtime.

Every data set has one home: an entry of :mod:`.registry` whose loader returns a
:class:`Dataset` declaring its kind, input shape, classes and durations; every part
(trainer, export check, runtime, edge) asks :func:`load_dataset`, and the number of
classes is ``len(ds.classes)``. Specs: ``digits`` (scikit-learn's 8x8 digits as event
streams from the simulated event camera), ``digits:static`` (the same digits as
images), ``nmnist:PATH``, ``mnist:PATH``, ``npz:FILE`` (your own images: :mod:`.arrays`),
``tonic:NAME:ROOT`` (any tonic data set; see :mod:`.tonic_sets`), ``braille[:PATH]``
(tactile sequences, :mod:`.braille`). Static images are repeat-encoded: the same frame at
every step. Event streams are binned into T frames
at run time; recorded sequences are grouped into T steps (:mod:`.sequences`).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
from numpy.typing import ArrayLike

from ..fileio import reading
from .arrays import read_npz
from .braille import read_braille
from .events import BINNINGS, DURATIONS, TimeBase
from .mnist import NUM_CLASSES as MNIST_CLASSES
from .mnist import read_mnist
from .nmnist import SENSOR as NMNIST_SENSOR
from .nmnist import list_nmnist, read_nmnist_bin
from .registry import DataError, Source, register, source, spec_forms
from .sequences import sequence_frames
from .splits import SPLITS, held_for_val, spread
from .transforms import Pipeline, Transform, TransformError, output_shape

KINDS = ("static", "events", "sequence")
SAMPLES = {"static": "images", "events": "events", "sequence": "sequences"}  # the field each kind's samples are in
NMNIST_DURATION_US = 316_000  # covers every recording (3 saccades, longest 315.1 ms)


class LazyEvents(Sequence):
    """Recordings read on demand by ``get(i)`` (a tonic data set, say), optionally transformed."""

    def __init__(
        self,
        get: Callable[[int], np.ndarray],
        n: int,
        pipeline: Pipeline | None = None,
        index: np.ndarray | None = None,
    ):
        self._get, self._n, self.pipeline = get, n, pipeline
        self._index = np.arange(n) if index is None else np.asarray(index)

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]  # one recording per index, no slices
        ev = self._get(int(self._index[i]))
        return ev if self.pipeline is None else self.pipeline.apply(ev)

    def subset(self, idx: np.ndarray) -> LazyEvents:
        return LazyEvents(self._get, self._n, self.pipeline, self._index[np.asarray(idx)])


HOLDS = {"static": "static images", "events": "event streams", "sequence": "recorded sequences"}  # kind -> words


@dataclass
class Dataset:
    """One split of a data set. ``kind`` is "static" (images), "events" (streams) or
    "sequence" (recorded sequences ``[L, features]`` in ``sequences``; ``shape`` is
    ``(features,)``).

    ``duration_us`` is the data set's nominal recording length (one step lasts
    ``duration_us / T``). ``durations`` says how "equal" binning finds a recording's
    span: ``"dataset"``, every recording spans ``[0, duration_us)`` (all of equal length,
    as N-MNIST's saccades); ``"recording"``, each its own ``[0, end)``, ``end`` from
    ``recording_us[i]`` when the reader declares it, else the last timestamp + 1.
    """

    spec: str
    split: str
    kind: str
    shape: tuple[int, ...]
    labels: np.ndarray
    classes: list[str]
    images: np.ndarray | None = None
    events: Sequence[np.ndarray] | None = None
    duration_us: float = 0.0
    binning: str = "equal"
    meta: dict = field(default_factory=dict)
    durations: str = "dataset"
    recording_us: np.ndarray | None = None
    transforms: list[Transform] = field(default_factory=list)
    sequences: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem is not None:  # the trainer and the runtime read these arrays as they are
            raise DataError(f"data {self.spec!r} ({self.split}): {problem}")
        self.labels = self.labels.astype(np.int64, copy=False)  # torch's loss takes int64 (int32: a dtype error)

    def _problem(self) -> str | None:
        """What is wrong with the declared kind, shape, labels and samples (None: nothing);
        a data set built by hand met torch's dtype errors, or trained on NaN as "diverged"."""
        if self.kind not in KINDS:
            return f"kind {self.kind!r} is unknown; expected one of {list(KINDS)}"
        if not (self.shape and all(isinstance(d, (int, np.integer)) and d > 0 for d in self.shape)):
            return f"shape {self.shape!r}; expected positive whole sizes"
        y, K = self.labels, len(self.classes)
        if not (isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "iu"):
            return f"labels are {_described(y)}; expected a 1-D integer array of class indices"
        if K < 2:
            return f"classes {self.classes!r}; expected 2 or more class names"
        if len(y) and (y.min() < 0 or y.max() >= K):
            return f"labels range {y.min()}..{y.max()}; expected 0..{K - 1} (one per name in classes)"
        if self.durations not in DURATIONS:
            return f"durations {self.durations!r} is unknown; expected one of {list(DURATIONS)}"
        field_name = SAMPLES[self.kind]
        samples = getattr(self, field_name)
        if samples is None or len(samples) != len(y):
            n = "none" if samples is None else len(samples)
            return f"{len(y)} labels but {n} {field_name}; expected one of each per sample ({self.kind} data)"
        if self.kind == "static":
            img = self.images
            if not (isinstance(img, np.ndarray) and img.dtype == np.float32):
                return f"images are {_described(img)}; expected float32 (uint8 pixels: np.float32(images) / 255)"
            if img.shape[1:] != tuple(self.shape):
                return f"images of shape {list(img.shape[1:])}, but the declared shape is {list(self.shape)}"
            if not np.isfinite(img).all():
                return f"{int((~np.isfinite(img)).sum())} pixel values are NaN or infinite; expected finite values"
        return None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def sensor(self) -> tuple[int, ...]:
        """The recordings' own shape (C, H, W) before the transforms: what a camera must give
        for the transforms to see the pixels they were written for (:attr:`shape` after them)."""
        ev = self.events
        if isinstance(ev, LazyEvents) and ev.pipeline is not None:
            return ev.pipeline.in_shape
        return self.shape

    @property
    def holds(self) -> str:
        """What its samples are, in words (for messages)."""
        return HOLDS[self.kind]

    def subset(self, idx: np.ndarray) -> Dataset:
        idx = np.asarray(idx)
        ev = self.events
        if ev is not None:
            ev = ev.subset(idx) if isinstance(ev, LazyEvents) else [ev[i] for i in idx]
        return Dataset(
            self.spec,
            self.split,
            self.kind,
            self.shape,
            self.labels[idx],
            self.classes,
            None if self.images is None else self.images[idx],
            ev,
            self.duration_us,
            self.binning,
            {**self.meta, **({"index": self.meta["index"][idx]} if "index" in self.meta else {})},
            self.durations,
            None if self.recording_us is None else self.recording_us[idx],
            self.transforms,
            None if self.sequences is None else [self.sequences[i] for i in idx],
        )

    def frames(
        self,
        idx: ArrayLike,
        T: int,
        binning: str | None = None,
        dt_us: float | None = None,
        durations: str | None = None,
    ) -> np.ndarray:
        """Inputs for samples ``idx`` as ``[T, B, *shape]`` float32.

        Static images are repeated T times. Sequences are grouped into T steps
        (:func:`.sequences.sequence_frames`; no other binning applies). Event streams are binned: ``"equal"`` splits
        each recording's span (see ``durations``; default the data set's) into T bins;
        ``"fixed"`` uses bins of ``dt_us`` (default ``duration_us / T``) from t = 0.
        """
        if T <= 0:
            raise DataError(f"T must be a positive number of time steps, got {T}")
        idx = np.asarray(idx)
        if idx.size == 0:  # e.g. np.array([]), float64
            idx = np.zeros(0, np.int64)
        if (
            idx.ndim != 1
            or idx.dtype.kind not in "iu"
            or not (idx.min(initial=0) >= 0 and idx.max(initial=0) < len(self))
        ):
            raise DataError(
                f"sample indices must be a 1-D array of whole numbers in 0..{len(self) - 1} (this split of "
                f"{self.spec!r} has {len(self)} samples); got {_offending(idx, len(self))}"
            )
        if self.kind == "static":
            assert self.images is not None  # a static data set holds images
            img = self.images[idx]
            return np.broadcast_to(img[None], (T, *img.shape)).copy()
        if self.kind == "sequence":
            assert self.sequences is not None  # a sequence data set holds sequences
            if binning not in (None, "equal"):
                raise DataError(
                    f"binning {binning!r} is for event data; {self.spec!r} sequences are grouped into T steps"
                )
            return sequence_frames([self.sequences[i] for i in idx], T)
        shape = cast("tuple[int, int, int]", self.shape)  # an event data set's (C, H, W)
        binning = binning or self.binning
        if binning not in BINNINGS:
            raise DataError(f"binning {binning!r} is unknown; expected one of {list(BINNINGS)}")
        durations = durations or self.durations
        if durations not in DURATIONS:
            raise DataError(f"durations {durations!r} is unknown; expected one of {list(DURATIONS)}")
        assert self.events is not None  # an event data set holds streams
        streams = [self.events[i] for i in idx]
        return TimeBase(binning, durations, self.duration_us, dt_us).frames(streams, T, shape, self.recorded(idx))

    def spans(self, idx: np.ndarray, streams: Sequence[np.ndarray], durations: str) -> np.ndarray:
        """The span ``[0, end)`` that "equal" binning splits, for the recordings ``idx``
        (``streams``: theirs, read once by the caller), by the rule ``durations``."""
        return TimeBase("equal", durations, self.duration_us).spans(streams, self.recorded(idx))

    def recorded(self, idx: np.ndarray) -> np.ndarray | None:
        """The declared lengths (µs) of the recordings ``idx``; None where the data set has none."""
        return None if self.recording_us is None else np.asarray(self.recording_us[idx], np.float64)


def _described(a: object) -> str:
    """An array's type, dtype and shape in words (for messages)."""
    if isinstance(a, np.ndarray):
        return f"a {a.dtype} array of shape {list(a.shape)}"
    return f"a {type(a).__name__}"


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``name[:arg]``; raise :class:`DataError` naming the valid forms."""
    name, _, arg = spec.partition(":")
    return name, source(spec).parse(arg, spec)


# ---- the built-in data sets ---------------------------------------------------------
def _offending(idx: np.ndarray, n: int) -> str:
    """What is wrong with sample indices ``idx`` of a split of ``n``: their shape or type,
    else the first few out of range (the first five of all hid the bad ones)."""
    if idx.ndim != 1:
        return f"an array of shape {list(idx.shape)}" if idx.ndim else repr(idx.item())
    if idx.dtype.kind not in "iu":
        return f"{idx.dtype} values {idx.tolist()[:5]}"
    bad = idx[(idx < 0) | (idx >= n)]
    return f"{bad.size} out of range, e.g. {bad.tolist()[:5]}"


def _digits(arg: str, split: str, spec: str) -> Dataset:
    from .digits import CLASSES, N_DIGITS, DigitsError, digits_events, digits_static, split_index

    index = split_index(N_DIGITS, split)  # each sample's index among all the digits
    try:
        if arg == "static":
            images, labels = digits_static(split)
            return Dataset(
                spec, split, "static", (1, 8, 8), labels, list(CLASSES), images=images, meta={"index": index}
            )
        events, labels = digits_events(split)
    except DigitsError as e:
        raise DataError(str(e)) from None
    return digits_event_set(spec, split, events, labels, meta={"index": index})


def digits_event_set(
    spec: str, split: str, events: Sequence[np.ndarray], labels: np.ndarray, meta: dict | None = None
) -> Dataset:
    """The digits' event streams (these or a subset, as edge.pi.parity stores them) as the
    data set ``digits`` is: its sensor, classes, recording length and binning."""
    from .digits import CLASSES, DURATION_US, SENSOR

    return Dataset(
        spec, split, "events", SENSOR, labels, list(CLASSES), events=events, duration_us=DURATION_US, meta=meta or {}
    )


def _nmnist(arg: str, split: str, spec: str) -> Dataset:
    items = list_nmnist(Path(arg).resolve(), split)
    events = [read_nmnist_bin(f) for f, _ in items]
    # binning spans the format's 316 ms: later events were dropped without a word (58% of a
    # folder of 0.5-1 s recordings); the real N-MNIST ends by 315.1 ms
    late = next(((f, e) for (f, _), e in zip(items, events) if len(e) and e["t"][-1] >= NMNIST_DURATION_US), None)
    if late is not None:
        f, e = late
        raise DataError(
            f"{f}: events up to t = {int(e['t'][-1])} µs, past N-MNIST's {NMNIST_DURATION_US / 1000:g} ms recordings; "
            "expected N-MNIST recordings (longer ones: a tonic data set, tonic:MODULE.CLASS:ROOT)"
        )
    labels = np.array([lab for _, lab in items], np.int64)
    return Dataset(
        spec,
        split,
        "events",
        NMNIST_SENSOR,
        labels,
        [str(i) for i in range(10)],
        events=events,
        duration_us=NMNIST_DURATION_US,
        meta={"index": np.array([int(f.stem) for f, _ in items])},
    )


def _mnist(arg: str, split: str, spec: str) -> Dataset:
    images, labels = read_mnist(arg, split)
    return Dataset(
        spec,
        split,
        "static",
        tuple(images.shape[1:]),  # the IDX header's size (it was 1x28x28 whatever the files held)
        labels,
        [str(i) for i in range(MNIST_CLASSES)],
        images=images,
        meta={"index": np.arange(len(labels))},
    )


def _npz(arg: str, split: str, spec: str) -> Dataset:
    images, labels, classes, index = read_npz(arg, split)
    shape = tuple(images.shape[1:])
    return Dataset(spec, split, "static", shape, labels, classes, images=images, meta={"index": index})


def _braille(arg: str, split: str, spec: str) -> Dataset:
    from .braille import CLASSES, TAXELS

    seqs, labels, reps = read_braille(arg, split)
    return Dataset(spec, split, "sequence", (TAXELS,), labels, list(CLASSES), meta={"index": reps}, sequences=seqs)


def _braille_arg(arg: str, spec: str) -> str:
    """PATH, or without one the shared data folder (``$FLEXSNN_SHARED_DATA/braille``, else
    ``../shared/data/braille`` from the working directory: where the project keeps real data)."""
    if arg:
        return arg
    shared = os.environ.get("FLEXSNN_SHARED_DATA") or os.path.join("..", "shared", "data")
    return os.path.join(shared, "braille")


def _tonic(arg: str, split: str, spec: str) -> Dataset:
    from .tonic_sets import load_tonic

    return load_tonic(arg, split, spec)


def _digits_arg(arg: str, spec: str) -> str:
    if arg not in ("", "static", "events"):
        raise DataError(f"unknown data spec {spec!r}; digits takes no argument or ':static'")
    return arg or "events"


def _needs(form: str, what: str = "a folder") -> Callable[[str, str], str]:
    def parse(arg: str, spec: str) -> str:
        if not arg:
            raise DataError(f"data spec {spec!r} needs {what}: {form}")
        return arg

    return parse


register(
    Source(
        "digits",
        ("digits", "digits:static"),
        "scikit-learn's 8x8 digits (events; :static images)",
        _digits,
        _digits_arg,
    )
)
register(
    Source(
        "nmnist", ("nmnist:PATH",), "N-MNIST binary files (PATH/train/<label>/<i>.bin)", _nmnist, _needs("nmnist:PATH")
    )
)
register(Source("mnist", ("mnist:PATH",), "MNIST IDX files", _mnist, _needs("mnist:PATH")))
register(Source("npz", ("npz:FILE",), "your own static images (.npz)", _npz, _needs("npz:FILE", "a file")))
register(
    Source(
        "tonic",
        ("tonic:NAME:ROOT",),
        "a tonic data set (NAME in tonic.datasets, or module.Class)",
        _tonic,
        _needs("tonic:NAME:ROOT", "a data set and a folder"),
    )
)
register(
    Source(
        "braille",
        ("braille", "braille:PATH"),
        "tactile Braille letters, 27 classes, 12-taxel sequences (default PATH: ../shared/data/braille)",
        _braille,
        _braille_arg,
    )
)
SPEC_FORMS = tuple(spec_forms())


def with_transforms(ds: Dataset, transforms: Sequence[Transform]) -> Dataset:
    """``ds`` with ``transforms`` applied to every recording (lazily), its shape updated."""
    if not transforms:
        return ds
    if ds.kind != "events":
        raise DataError(f"transforms apply to event data; {ds.spec!r} holds {ds.holds}")
    sensor = cast("tuple[int, int, int]", ds.shape)  # an event data set's (C, H, W)
    try:
        shape = output_shape(transforms, sensor)
    except TransformError as e:
        raise DataError(f"data {ds.spec!r}: {e}") from None
    ev = ds.events
    assert ev is not None  # an event data set holds streams
    base = ev if isinstance(ev, LazyEvents) else LazyEvents(ev.__getitem__, len(ev))
    if base.pipeline is not None:
        raise DataError(f"data {ds.spec!r} is already transformed")
    lazy = LazyEvents(base._get, base._n, Pipeline(transforms, sensor), base._index)
    return Dataset(
        ds.spec,
        ds.split,
        ds.kind,
        shape,
        ds.labels,
        ds.classes,
        None,
        lazy,
        ds.duration_us,
        ds.binning,
        ds.meta,
        ds.durations,
        ds.recording_us,
        list(transforms),
    )


def spec_paths(spec: str | None) -> list[Path]:
    """The files and folders a data spec reads (``nmnist:DIR``, ``mnist:DIR``, a tonic
    set's root): outputs must never land on them (:func:`runtime.fileio.check_output`)."""
    return [Path(p) for p in (spec or "").split(":")[1:] if p and Path(p).exists()]


def whole_split(split: str) -> str:
    """The split a reader loads for ``split``: "val" and "train-minus-val" are parts of "train"."""
    if split not in SPLITS:
        raise DataError(f"split {split!r} is unknown; expected one of {list(SPLITS)}")
    return "train" if split in ("val", "train-minus-val") else split


def select_split(ds: Dataset, split: str) -> Dataset:
    """``ds``, loaded as :func:`whole_split` of ``split``, cut down to ``split`` (the validation
    recordings, or the training recordings without them: :func:`.splits.held_for_val`)."""
    if whole_split(split) == split:
        return ds
    held = held_for_val(ds.meta.get("index", np.arange(len(ds))))
    ds = ds.subset(np.flatnonzero(held if split == "val" else ~held))
    ds.split = split
    return ds


def load_dataset(spec: str, split: str, limit: int | None = None, transforms: Sequence[Transform] = ()) -> Dataset:
    """Load ``split`` of the data named by ``spec``; ``limit`` keeps an evenly spread subset;
    ``transforms`` (:mod:`.transforms`) apply to every event recording."""
    whole = whole_split(split)  # an unknown split: refused before any reading
    src = source(spec)
    arg = src.parse(spec.partition(":")[2], spec)
    reading(*spec_paths(spec))
    try:
        ds = select_split(src.load(arg, whole, spec), split)
    except (FileNotFoundError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(str(e)) from e
    if len(ds) == 0:
        raise DataError(f"data {spec!r} has no samples in split {split!r}")
    if limit is not None and limit < len(ds):
        if limit <= 0:
            raise DataError(f"limit must be a positive number of samples, got {limit}")
        ds = ds.subset(spread(len(ds), limit))
    return with_transforms(ds, transforms)


def check_fits(
    ds: Dataset,
    shape: Sequence[int],
    classes: Sequence[str] | int,
    model: str,
    needs: str | None = None,
    kind: str | None = None,
) -> Dataset:
    """``ds`` if the model named ``model`` can run it: inputs of its ``shape``, and its
    ``classes`` (the names the model was trained on, in its label order) as the data's
    labels mean them: label i of the data is the model's class i (data of its first k
    classes is fine). A label the model can never predict, or one that names another class
    (the same recordings with the classes listed in another order scored 33% for 100%),
    makes the accuracy meaningless. ``needs``: who reads only event streams (the event
    engine, Speck). Every command that runs a model on a data set asks this, so all refuse
    alike. ``classes`` a count: a file that names none (checked by count only). ``kind``:
    the kind of data the model was trained on (static, events, sequence): images of the
    right shape ran an event model as frames of repeated pixels, and event frames a static
    model, without a word (the SDK's ``Session.run`` refuses both)."""
    if needs is not None and ds.kind != "events":
        raise DataError(f"data {ds.spec!r} holds {ds.holds}; {needs} needs event streams (e.g. digits or nmnist:PATH)")
    if kind is not None and ds.kind != kind:
        raise DataError(f"data {ds.spec!r} holds {ds.holds}, but {model} was trained on {HOLDS[kind]}; expected those")
    if tuple(ds.shape) != tuple(shape):
        raise DataError(f"data {ds.spec!r} gives inputs of shape {list(ds.shape)}, but {model} expects {list(shape)}")
    count = classes if isinstance(classes, int) else len(classes)
    if ds.num_classes > count:
        raise DataError(
            f"data {ds.spec!r} has {ds.num_classes} classes, but {model} reads out {count}: "
            f"labels {count}..{ds.num_classes - 1} could never be predicted; expected data of its classes"
        )
    if isinstance(classes, int):
        return ds
    differ = [i for i, (mine, theirs) in enumerate(zip(ds.classes, classes)) if str(mine) != str(theirs)]
    if differ and not {str(c) for c in ds.classes} & {str(c) for c in classes}:
        # no name in common: two namings of the same classes (tonic's NMNIST '0 - zero' for
        # nmnist:PATH's '0'), not a reordering: the labels are taken as the model's, said
        _two_namings(ds.spec, str(ds.classes[0]), str(classes[0]))
    elif differ:
        i = differ[0]
        raise DataError(
            f"data {ds.spec!r} labels {len(differ)} of its {ds.num_classes} classes otherwise than {model}: label "
            f"{i} is {ds.classes[i]!r} in the data and {classes[i]!r} in the model; expected data whose classes are "
            f"the model's, in its order ({list(classes)[:12]}{' ...' if len(classes) > 12 else ''})"
        )
    return ds


@functools.cache  # once: a command checks its data where it loads it and again where it runs it
def _two_namings(spec: str, data_first: str, model_first: str) -> None:
    print(
        f"warning: data {spec!r} names its classes otherwise than the model ({data_first!r}, ... against "
        f"{model_first!r}, ...): label i is taken as the model's class i",
        file=sys.stderr,
    )


def stored_data_error(e: DataError, spec: str, model: str) -> DataError:
    """``e``, said of the data spec a model file stores (a relative path is relative to
    where it was trained): the user did not type it, so name where it came from and the
    flag that chooses other data."""
    return DataError(f"{e} (data {spec!r} as stored in {model} when it was trained; pass --data to give the data)")
