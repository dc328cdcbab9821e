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
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from .datasets import Dataset
from .events import EVENT_DTYPE
from .registry import DataError

FORMAT = "flexsnn-data-snapshot"
VERSION = 1
DESCRIPTION = "dataset"  # the key of the JSON description
# the fields of Dataset that the description carries (the arrays carry the rest)
FIELDS = ("spec", "split", "kind", "shape", "classes", "duration_us", "binning", "durations")


def write_snapshot(f: IO[bytes], ds: Dataset) -> None:
    """Write ``ds`` to the open binary file ``f`` (its samples read once, in order)."""
    desc: dict[str, Any] = {"format": FORMAT, "version": VERSION, **{k: getattr(ds, k) for k in FIELDS}}
    desc["shape"] = [int(d) for d in ds.shape]
    arrays: dict[str, np.ndarray] = {DESCRIPTION: np.array(json.dumps(desc)), "labels": ds.labels}
    if ds.kind == "static":
        assert ds.images is not None  # Dataset checks that a static set holds images
        arrays["images"] = ds.images
    else:
        samples = ds.events if ds.kind == "events" else ds.sequences
        assert samples is not None  # ... and that the others hold their samples
        items = [samples[i] for i in range(len(ds))]  # a data set has one sample at least (load_dataset)
        arrays["events" if ds.kind == "events" else "sequences"] = np.concatenate(items)
        arrays["offsets"] = np.concatenate([[0], np.cumsum([len(s) for s in items])]).astype(np.int64)
    if ds.recording_us is not None:
        arrays["recording_us"] = np.asarray(ds.recording_us)
    np.savez(f, **arrays)  # type: ignore[arg-type]


def is_snapshot(arrays: Mapping[str, np.ndarray]) -> bool:
    return DESCRIPTION in arrays


def read_snapshot(arrays: Mapping[str, np.ndarray], source: str) -> Dataset:
    """The data set of :func:`write_snapshot`'s arrays (``source``, the file, names it in
    errors); a :class:`DataError` naming what is not that layout."""
    try:
        desc = json.loads(str(arrays[DESCRIPTION][()]))
    except (KeyError, ValueError, TypeError) as e:
        raise DataError(f"{source}: its {DESCRIPTION!r} entry is not a JSON description ({e})") from None
    if not isinstance(desc, dict) or desc.get("format") != FORMAT:
        raise DataError(f"{source}: not a data snapshot (its {DESCRIPTION!r} entry names no format {FORMAT!r})")
    if desc.get("version") != VERSION:
        raise DataError(f"{source}: data snapshot version {desc.get('version')!r}; this runtime reads {VERSION}")
    missing = [k for k in FIELDS if k not in desc]
    if missing:
        raise DataError(f"{source}: its description lacks {', '.join(missing)}")
    kind = desc["kind"]
    key = {"static": "images", "events": "events", "sequence": "sequences"}.get(kind)
    if key is None or key not in arrays or "labels" not in arrays:
        raise DataError(f"{source}: a {kind!r} snapshot needs arrays labels and {key}; it has {sorted(arrays)}")
    samples: Any = arrays[key]
    if kind != "static":
        if key == "events" and samples.dtype != EVENT_DTYPE:
            raise DataError(f"{source}: its events are {samples.dtype}, expected the event records {EVENT_DTYPE}")
        offsets = arrays.get("offsets", np.empty(0, np.float64))
        n = len(arrays["labels"])
        cuts = offsets.dtype.kind in "iu" and len(offsets) == n + 1
        if not (cuts and offsets[0] == 0 and offsets[-1] == len(samples) and np.all(np.diff(offsets) >= 0)):
            raise DataError(f"{source}: its offsets do not cut its {key} into one sample per label")
        samples = [samples[offsets[i] : offsets[i + 1]] for i in range(n)]
    fields = {k: desc[k] for k in FIELDS}
    fields["shape"] = tuple(fields["shape"]) if isinstance(fields["shape"], list) else fields["shape"]
    return Dataset(
        **fields,
        labels=arrays["labels"],
        **{key: samples},
        recording_us=arrays.get("recording_us"),
    )
