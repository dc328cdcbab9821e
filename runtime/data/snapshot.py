"""One split of a data set frozen into one .npz file, and read back as the same
:class:`.Dataset` (``python -m edge.pi.parity inputs``: every machine then runs the very
same samples, with no data folder or reader on the device).

The file holds the samples as they were read, before any transform (a model's own
transforms are applied by whoever runs it, as ``runtime run`` applies them), and a JSON
description of the data set under ``dataset``: its spec, split, kind, shape, classes,
recording length and binning rules, everything :meth:`.Dataset.frames` bins by. Arrays:
``labels`` int64 [N]; event streams as ``events`` (:data:`.events.EVENT_DTYPE`, every
stream's events in order) cut by ``offsets`` int64 [N + 1]; images as ``images`` float32
[N, C, H, W]; sequences as ``sequences`` float32 cut by ``offsets`` likewise; the
recordings' own lengths as ``recording_us`` where the reader declared them. Read with
``allow_pickle=False``: the file is data only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from ..fileio import json_loads
from .datasets import SAMPLES, Dataset
from .events import BINNINGS, EVENT_DTYPE, cut, packed
from .registry import DataError

FORMAT = "flexsnn-data-snapshot"
VERSION = 1
DESCRIPTION = "dataset"  # the key of the JSON description
# the fields of Dataset that the description carries (the arrays carry the rest)
FIELDS = ("spec", "split", "kind", "shape", "classes", "duration_us", "binning", "durations")


def write_snapshot(f: IO[bytes], ds: Dataset) -> None:
    """Write ``ds`` to the open binary file ``f`` (its samples read once, in order); a data
    set read with transforms is refused (a model applies its own: they would apply twice)."""
    if ds.transforms:
        raise DataError(
            f"data {ds.spec!r} was read with transforms {[t.text for t in ds.transforms]}; a snapshot holds the "
            "recordings as read (load the data set without them: a model applies its own)"
        )
    desc: dict[str, Any] = {"format": FORMAT, "version": VERSION, **{k: getattr(ds, k) for k in FIELDS}}
    desc["shape"] = [int(d) for d in ds.shape]
    arrays: dict[str, np.ndarray] = {DESCRIPTION: np.array(json.dumps(desc)), "labels": ds.labels}
    key = SAMPLES[ds.kind]
    samples = getattr(ds, key)
    if ds.kind == "static":
        arrays[key] = samples
    else:
        # a data set has one sample at least (load_dataset)
        arrays[key], arrays["offsets"] = packed([samples[i] for i in range(len(ds))])
    if ds.recording_us is not None:
        arrays["recording_us"] = np.asarray(ds.recording_us)
    np.savez(f, **arrays)  # type: ignore[arg-type]


def is_snapshot(arrays: Mapping[str, np.ndarray]) -> bool:
    return DESCRIPTION in arrays


# what each field of the description must be (the Dataset checks labels and samples)
_TYPES: dict[str, tuple[type, ...]] = {
    "spec": (str,), "split": (str,), "kind": (str,), "shape": (list,), "classes": (list,),
    "duration_us": (int, float), "binning": (str,), "durations": (str,),
}  # fmt: skip


def read_snapshot(arrays: Mapping[str, np.ndarray], source: str) -> Dataset:
    """The data set of :func:`write_snapshot`'s arrays (``source``, the file, names it in
    errors); a :class:`DataError` naming what is not that layout."""
    entry = arrays[DESCRIPTION]
    try:
        desc = json_loads(str(entry[()])) if entry.ndim == 0 else None
    except (ValueError, TypeError) as e:
        raise DataError(f"{source}: its {DESCRIPTION!r} entry is not a JSON description ({e})") from None
    if not isinstance(desc, dict) or desc.get("format") != FORMAT:
        raise DataError(f"{source}: not a data snapshot (its {DESCRIPTION!r} entry names no format {FORMAT!r})")
    if desc.get("version") != VERSION:
        raise DataError(f"{source}: data snapshot version {desc.get('version')!r}; this runtime reads {VERSION}")
    missing = [k for k in FIELDS if k not in desc]
    if missing:
        raise DataError(f"{source}: its description lacks {', '.join(missing)}")
    wrong = [f"{k} {desc[k]!r}" for k, types in _TYPES.items() if not isinstance(desc[k], types)]
    for name, known in (("kind", list(SAMPLES)), ("binning", list(BINNINGS))):
        if not wrong and desc[name] not in known:
            wrong.append(f"{name} {desc[name]!r}, expected one of {known}")
    span = desc["duration_us"]
    if not wrong and desc["kind"] == "events" and not (math.isfinite(span) and span >= 1):
        # 0, -5 or 1e-300 binned every event outside the recording: all-zero outputs, exit 0
        wrong.append(f"duration_us {span!r}, expected a finite number of µs >= 1 for event recordings")
    if wrong:
        raise DataError(f"{source}: its description has {'; '.join(wrong)}")
    key = SAMPLES[desc["kind"]]
    labels = arrays.get("labels")
    if key not in arrays or labels is None or labels.ndim != 1:
        raise DataError(f"{source}: a {desc['kind']} snapshot needs 1-D labels and {key}; it has {sorted(arrays)}")
    samples: Any = arrays[key]
    if key != "images":
        if key == "events" and samples.dtype != EVENT_DTYPE:
            raise DataError(f"{source}: its events are {samples.dtype}, expected the event records {EVENT_DTYPE}")
        samples = cut(samples, arrays.get("offsets", np.empty(0, np.float64)), len(labels))
        if samples is None:
            raise DataError(f"{source}: its offsets do not cut its {key} into one sample per label")
    fields = {k: desc[k] for k in FIELDS}
    fields["shape"] = tuple(fields["shape"])
    try:
        return Dataset(**fields, labels=labels, **{key: samples}, recording_us=arrays.get("recording_us"))
    except (TypeError, ValueError) as e:  # a DataError (the Dataset's own checks) is a ValueError
        raise DataError(f"{source}: {e}") from None
