"""Data readers and binning, checked against tonic and against their definitions."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from runtime.data import DataError, bin_events, load_dataset, make_events
from runtime.data.mnist import read_idx
from runtime.data.nmnist import list_nmnist, read_nmnist_bin

TONIC_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])


def test_nmnist_decoder_matches_tonic(nmnist_path):
    tonic_io = pytest.importorskip("tonic.io")
    for f, _ in list_nmnist(nmnist_path, "test")[::40]:
        ours = read_nmnist_bin(f)
        ref = tonic_io.read_mnist_file(str(f), dtype=TONIC_DTYPE)
        ref = ref[np.argsort(ref["t"], kind="stable")]
        for k in "xytp":
            np.testing.assert_array_equal(ours[k], ref[k])


def test_nmnist_split_is_by_index_and_disjoint(nmnist_path):
    train = {f.name for f, _ in list_nmnist(nmnist_path, "train")}
    test = {f.name for f, _ in list_nmnist(nmnist_path, "test")}
    assert len(train) == 640 and len(test) == 160 and not train & test
    assert all(int(name.split(".")[0]) % 5 == 0 for name in test)


def test_fixed_binning_matches_tonic(nmnist_path):
    F = pytest.importorskip("tonic.functional")
    ds = load_dataset(f"nmnist:{nmnist_path}", "test", limit=3)
    for ev in ds.events:
        tev = np.zeros(len(ev), TONIC_DTYPE)
        for k in "xytp":
            tev[k] = ev[k]
        ref = F.to_frame_numpy(tev, sensor_size=(34, 34, 2), time_window=20_000, start_time=0, end_time=300_000)
        ours = bin_events([ev], len(ref), (2, 34, 34), "fixed", dt_us=20_000)[:, 0]
        np.testing.assert_array_equal(ours, ref)


def test_equal_binning_is_fixed_binning_with_duration_over_T():
    rng = np.random.default_rng(1)
    ev = make_events(
        rng.integers(0, 5, 500), rng.integers(0, 4, 500), rng.integers(0, 2, 500), rng.integers(0, 60_000, 500)
    )
    for T in (1, 2, 3, 4, 5, 6, 10):
        eq = bin_events([ev], T, (2, 4, 5), "equal", durations_us=[60_000])
        fx = bin_events([ev], T, (2, 4, 5), "fixed", dt_us=60_000 / T)
        np.testing.assert_array_equal(eq, fx)
        assert eq.sum() == 500  # nothing lost, nothing counted twice


def test_batch_binning_keeps_samples_apart():
    a = make_events([1], [2], [1], [10])
    b = make_events([0, 0], [0, 0], [0, 0], [5, 99])
    f = bin_events([a, b], 2, (2, 3, 3), "equal", durations_us=[100, 100])
    assert f[0, 0, 1, 2, 1] == 1 and f[0, 1, 0, 0, 0] == 1 and f[1, 1, 0, 0, 0] == 1 and f.sum() == 3


def test_digits_events_are_deterministic_and_two_sided():
    a = load_dataset("digits", "test", limit=20)
    b = load_dataset("digits", "test", limit=20)
    assert a.kind == "events" and a.shape == (2, 20, 20) and len(a) == 20
    for ea, eb in zip(a.events, b.events):
        np.testing.assert_array_equal(ea, eb)
        assert set(np.unique(ea["p"])) == {0, 1}  # ON and OFF events
        assert np.all(np.diff(ea["t"]) >= 0) and ea["t"].max() < 300_000


def test_digits_static_repeat_encoding():
    ds = load_dataset("digits:static", "train", limit=8)
    f = ds.frames(np.arange(4), 3)
    assert f.shape == (3, 4, 1, 8, 8) and f.dtype == np.float32
    assert np.array_equal(f[0], f[2]) and f.max() <= 1.0


def test_digits_split_is_disjoint_and_complete():
    assert len(load_dataset("digits:static", "train")) + len(load_dataset("digits:static", "test")) == 1797


def test_mnist_reader(mnist_path):
    ds = load_dataset(f"mnist:{mnist_path}", "train", limit=50)
    assert ds.images.shape == (50, 1, 28, 28) and 0 <= ds.images.min() and ds.images.max() <= 1
    assert len(load_dataset(f"mnist:{mnist_path}", "test")) == 8000


def test_idx_rejects_foreign_file(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"not an idx file at all")
    with pytest.raises(ValueError, match="IDX"):
        read_idx(bad)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("cifar10", "unknown data spec"),
        ("nmnist", "needs a folder"),
        ("nmnist:/no/such/dir", "not a directory"),
        ("mnist:/no/such/dir", "not a directory"),
    ],
)
def test_bad_specs(spec, match):
    with pytest.raises(DataError, match=match):
        load_dataset(spec, "train")


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no N-MNIST"):
        load_dataset(f"nmnist:{tmp_path}", "train")
    with pytest.raises(DataError, match="no MNIST"):
        load_dataset(f"mnist:{tmp_path}", "train")


@pytest.mark.parametrize(
    "idx, said",
    [
        (np.array([100]), r"1 out of range, e\.g\. \[100\]"),
        (np.array([-1]), r"1 out of range, e\.g\. \[-1\]"),
        (np.array([1.5]), r"float64 values \[1\.5\]"),
        (np.array([[1]]), r"an array of shape \[1, 1\]"),
        # the first five of all were shown: [0, 1, 2, 3, 4], all of them valid
        (np.arange(25), r"5 out of range, e\.g\. \[20, 21, 22, 23, 24\]"),
    ],
)
def test_frames_of_a_sample_that_is_not_there_is_a_data_error(idx, said):
    """ds.frames(np.array([100]), 3) on 20 samples was a bare IndexError (and -1 silently
    the last sample); the message names the indices that are wrong."""
    ds = load_dataset("digits", "test", 20)
    with pytest.raises(DataError, match=r"sample indices must be a 1-D array of whole numbers in 0..19.*; got " + said):
        ds.frames(idx, 3)
    assert ds.frames(np.array([], np.int64), 3).shape == (3, 0, 2, 20, 20)
