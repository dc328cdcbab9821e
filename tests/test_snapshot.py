"""runtime.data.snapshot: a test split frozen into one .npz reads back as the same data set
(every field that binning reads, so the frames are the same to the bit)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from runtime.data import DataError, Dataset, load_dataset
from runtime.data.events import EVENT_DTYPE
from runtime.data.snapshot import read_snapshot, write_snapshot


def _round_trip(ds: Dataset) -> Dataset:
    f = io.BytesIO()
    write_snapshot(f, ds)
    f.seek(0)
    with np.load(f, allow_pickle=False) as z:
        return read_snapshot(dict(z), "snap.npz")


def _streams(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    out = []
    for k in range(n):
        e = np.zeros(5 + 3 * k, EVENT_DTYPE)
        e["x"], e["y"], e["p"] = rng.integers(0, 6, len(e)), rng.integers(0, 4, len(e)), rng.integers(0, 2, len(e))
        e["t"] = np.sort(rng.integers(0, 900, len(e)))
        out.append(e)
    return out


def test_event_recordings_of_their_own_lengths_bin_the_same_after_the_round_trip():
    rng = np.random.default_rng(0)
    ds = Dataset(
        "mine", "test", "events", (2, 4, 6), np.array([0, 2, 1]), ["a", "b", "c"], events=_streams(rng, 3),
        duration_us=1000.0, durations="recording", recording_us=np.array([950, 990, 1000]),
    )  # fmt: skip
    got = _round_trip(ds)
    for field in ("spec", "split", "kind", "shape", "classes", "duration_us", "binning", "durations"):
        assert getattr(got, field) == getattr(ds, field), field
    assert np.array_equal(got.labels, ds.labels) and np.array_equal(got.recording_us, ds.recording_us)
    idx = np.arange(3)
    assert np.array_equal(got.frames(idx, 7), ds.frames(idx, 7))  # spans from recording_us


def test_images_and_sequences_round_trip():
    static = load_dataset("digits:static", "test", 6)
    got = _round_trip(static)
    assert got.kind == "static" and np.array_equal(got.images, static.images) and got.classes == static.classes
    rng = np.random.default_rng(1)
    seqs = [rng.random((L, 3)).astype(np.float32) for L in (4, 1, 6)]
    seq = Dataset("braille-like", "test", "sequence", (3,), np.array([1, 0, 1]), ["x", "y"], sequences=seqs)
    back = _round_trip(seq)
    assert back.kind == "sequence" and all(np.array_equal(a, b) for a, b in zip(back.sequences, seqs))


def test_a_newer_or_foreign_description_is_refused():
    f = io.BytesIO()
    write_snapshot(f, load_dataset("digits", "test", 2))
    f.seek(0)
    with np.load(f) as z:
        arrays = dict(z)
    import json

    good = json.loads(str(arrays["dataset"]))
    for desc, message in [
        ('{"format": "flexsnn-data-snapshot", "version": 2}', "version 2; this runtime reads 1"),
        ('{"format": "flexsnn-data-snapshot", "version": 1, "spec": "x"}', "lacks split, kind"),
        ("[1, 2]", "names no format"),
        ("not json", "is not a JSON description"),
        # a reviewer's malformed files: TypeErrors from inside, or a typo that ran
        (json.dumps({**good, "shape": 400}), "its description has shape 400"),
        (json.dumps({**good, "classes": 10}), "its description has classes 10"),
        (json.dumps({**good, "kind": "video"}), r"kind 'video', expected one of \['static', 'events', 'sequence'\]"),
        (json.dumps({**good, "kind": ["events"]}), r"kind \['events'\]"),
        (json.dumps({**good, "binning": "fixd"}), r"binning 'fixd', expected one of \['equal', 'fixed'\]"),
        (json.dumps({**good, "shape": [2, 0, 20]}), "expected positive whole sizes"),
        # a hostile tour's: a recording of 0, -5 or 1e-300 µs gave all-zero outputs, exit 0
        *[(json.dumps({**good, "duration_us": d}), "expected a finite number of µs >= 1") for d in (0, -5, 1e-300)],
        ("{" + json.dumps(good)[1:-1] + ', "duration_us": Infinity}', "expected a finite number of µs >= 1"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ]:
        with pytest.raises(DataError, match=message):
            read_snapshot({**arrays, "dataset": np.array(desc)}, "snap.npz")
    for key, bad, message in [
        ("dataset", np.array([json.dumps(good)]), "names no format"),  # a 1-D entry
        ("labels", np.array(3), "needs 1-D labels and events"),
        ("offsets", arrays["offsets"][None], "do not cut its events"),
    ]:
        with pytest.raises(DataError, match=message):
            read_snapshot({**arrays, key: bad}, "snap.npz")


def test_a_data_set_read_with_transforms_is_refused():
    """The file holds recordings as read, and a model applies its own transforms: written
    transformed (and its transforms dropped) they would apply twice."""
    from runtime.data.transforms import parse_transform

    ds = load_dataset("digits", "test", 2, [parse_transform("downsample:10x10")])
    with pytest.raises(DataError, match=r"read with transforms \['downsample:10x10'\]"):
        write_snapshot(io.BytesIO(), ds)
