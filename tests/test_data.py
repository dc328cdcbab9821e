"""Data readers and binning, checked against tonic and against their definitions."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from runtime.data import DataError, TimeBase, bin_events, load_dataset, make_events
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


def test_time_base_gives_each_recording_its_span_or_width():
    """The one rule the data sets, the clock session and the event exit bin by: "equal"
    splits the data set's length or each recording's own (declared, else last event + 1
    µs); "fixed" steps by dt_us, or by the length over T where none is given."""
    short, long_ = make_events([0, 1], [0, 0], [1, 0], [10, 59]), make_events([2], [1], [0], [199])
    streams, declared = [short, long_], np.array([80.0, 400.0])
    own = TimeBase("equal", "recording", 300.0)
    assert own.spans(streams).tolist() == [60.0, 200.0]
    assert own.spans(streams, declared).tolist() == [80.0, 400.0]
    assert own.widths(streams, 4).tolist() == [15.0, 50.0]
    assert TimeBase("equal", "dataset", 300.0).spans(streams, declared).tolist() == [300.0, 300.0]
    assert TimeBase("fixed", "recording", 300.0, 25.0).widths(streams, 4).tolist() == [25.0, 25.0]
    assert TimeBase("fixed", "dataset", 300.0).widths(streams, 4).tolist() == [75.0, 75.0]
    # given spans (recordings stretched onto another) replace the rule's, for equal bins only
    assert own.widths(streams, 2, np.array([100.0, 100.0])).tolist() == [50.0, 50.0]
    frames = own.frames(streams, 2, (2, 2, 3), declared)  # short: events at 10, 59 of 80 µs: bins 0, 1
    assert frames[0, 0, 1, 0, 0] == 1 and frames[1, 0, 0, 0, 1] == 1 and frames[0, 1, 0, 1, 2] == 1
    np.testing.assert_array_equal(frames, bin_events(streams, 2, (2, 2, 3), "equal", durations_us=declared))
    # in a run's header: what a run of T bins makes of each rule
    assert TimeBase("fixed", "dataset", 300.0, 25.0).describe(4) == "bins of 25 µs"
    assert TimeBase("fixed", "dataset", 300.0).describe(4) == "bins of 75 µs"
    assert own.describe(4) == "4 equal bins of each recording"
    assert TimeBase("equal", "dataset", 300.0, 50.0).describe(4) == "4 bins of 75 µs"


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
        ("npz", "needs a file: npz:FILE"),
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


def test_a_data_set_built_by_hand_is_checked_when_built():
    """docs/training_sdk.md: "fit checks the data against the config", but a Dataset built by
    hand was not checked at all: labels out of range or float met torch's "Target 11 is out
    of bounds" or a dtype error, uint8 or float64 images a dtype error, images of another
    size than declared trained, a NaN pixel read as "training diverged, try a smaller --lr"."""
    from runtime.data import Dataset

    def static(labels=None, images=None, shape=(1, 2, 2), classes=3) -> Dataset:
        labels = np.zeros(4, np.int64) if labels is None else labels
        images = np.zeros((4, 1, 2, 2), np.float32) if images is None else images
        return Dataset("mine", "train", "static", shape, labels, [f"c{k}" for k in range(classes)], images=images)

    assert len(static()) == 4
    bad_images = np.zeros((4, 1, 2, 2), np.float32)
    bad_images[1, 0, 1, 1] = np.nan
    with pytest.raises(DataError, match=r"^data 'mine' \(train\): labels range 0\.\.3; expected 0\.\.2 \(one per name"):
        static(labels=np.arange(4))
    with pytest.raises(DataError, match=r"labels are a float64 array of shape \[4\]; expected a 1-D integer array"):
        static(labels=np.zeros(4))
    with pytest.raises(DataError, match=r"images are a uint8 array .*expected float32 \(uint8 pixels: np\.float32"):
        static(images=np.zeros((4, 1, 2, 2), np.uint8))
    with pytest.raises(DataError, match=r"images of shape \[1, 3, 3\], but the declared shape is \[1, 2, 2\]"):
        static(images=np.zeros((4, 1, 3, 3), np.float32))
    with pytest.raises(DataError, match="1 pixel values are NaN or infinite; expected finite values"):
        static(images=bad_images)
    with pytest.raises(DataError, match="4 labels but 3 images; expected one of each per sample"):
        static(images=np.zeros((3, 1, 2, 2), np.float32))
    with pytest.raises(DataError, match=r"classes \['c0'\]; expected 2 or more class names"):
        static(classes=1)
    with pytest.raises(DataError, match=r"kind 'video' is unknown; expected one of \['static', 'events', 'sequence'\]"):
        Dataset("mine", "train", "video", (1, 2, 2), np.zeros(2, np.int64), ["a", "b"])


def test_events_are_never_cast_or_binned_onto_another_pixel():
    """make_events cast x = 65541 to 5 and 3.9 to 3; bin_events put x = 25 of a 20-wide
    sensor on the next row (a reader that skipped its check ran "normally" on wrong frames)."""
    with pytest.raises(DataError, match="event field x value 65541 does not fit int16 as a whole number"):
        make_events([65541, 3], [0, 0], [0, 0], [0, 1])
    with pytest.raises(DataError, match="event field y value 3.9 does not fit int16"):
        make_events([1, 3], [3.9, 0], [0, 0], [0, 1])
    with pytest.raises(DataError, match="event field t value nan does not fit int64"):
        make_events([1, 3], [0, 0], [0, 0], [np.nan, 1])
    ok = make_events(np.array([1.0, 2.0]), [0, 1], [True, False], [5, 3])  # whole values in any dtype
    assert ok["x"].tolist() == [2, 1] and ok["p"].tolist() == [0, 1]
    off = make_events([25, 3], [0, 0], [0, 1], [0, 1])
    with pytest.raises(DataError, match=r"events have x from 3 to 25, outside the sensor's width of 20 \(0\.\.19\)"):
        bin_events([off], 2, (2, 4, 20))
    with pytest.raises(DataError, match=r"events have p from 1 to 1, outside the sensor's polarities of 1 \(0\.\.0\)"):
        bin_events([make_events([1], [0], [1], [0])], 2, (1, 4, 20))
    assert bin_events([off], 2, (2, 4, 26)).sum() == 2


def _bars_npz(path, n=330, classes=11, **extra):
    """Class k: a bright row k of an 11x6 image (1 channel), float32."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % classes
    images = rng.uniform(0, 0.2, (n, 1, classes, 6)).astype(np.float32)
    images[np.arange(n), 0, labels, :] = 1.0
    np.savez(path, images=images, labels=labels, **extra)
    return images, labels


def test_npz_file_of_your_own_images_trains_exports_and_runs(tmp_path, capsys):
    """Static data of one's own had no CLI route (tonic sets are events, MNIST files 0-9)."""
    pytest.importorskip("torch")
    from tests.conftest import run_trainer

    path = tmp_path / "bars.npz"
    images, labels = _bars_npz(path, unused=np.zeros(1))  # an array it does not read: ignored
    train, test, val = (load_dataset(f"npz:{path}", s) for s in ("train", "test", "val"))
    assert train.shape == (1, 11, 6) and train.classes == [str(k) for k in range(11)]
    assert len(train) + len(test) == 330 and np.array_equal(test.labels, labels[::5])
    assert set(val.meta["index"]) < set(train.meta["index"])
    out = tmp_path / "m.pt"
    code, _, err = run_trainer(
        capsys, "fit", "--data", f"npz:{path}", "--epochs", "10", "--tmax", "2", "--batch-size", "16", "--lr", "5e-3",
        "--quiet", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    code, text, err = run_trainer(capsys, "eval", str(out), "--T", "2", "--json")
    assert code == 0, err
    (run,) = json.loads(text)["runs"]
    assert run["n"] == 66 and run["accuracy"][0] > 0.5  # chance is 1/11 (90.9% when written)


def test_npz_files_that_are_not_images_and_labels_are_refused(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((2, 1, 2, 2), np.float32))
    with pytest.raises(DataError, match=r"has arrays \['images'\], lacking \['labels'\]; expected images"):
        load_dataset(f"npz:{path}", "train")
    np.savez(path, images=np.zeros((2, 1, 2, 2), np.float32), labels=np.array([{"x": 1}, {}], dtype=object))
    with pytest.raises(DataError, match="allow_pickle=False"):  # no code runs from the file
        load_dataset(f"npz:{path}", "train")
    path.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match="is not a readable .npz file"):
        load_dataset(f"npz:{path}", "train")
    with pytest.raises(DataError, match="not a file; expected a .npz file"):
        load_dataset(f"npz:{tmp_path}", "train")
    # neither a zip nor a .npy: numpy read it as a pickle and advised allow_pickle (unsafe, and wrong)
    for text in (b"hello\n", b"", b"\x80\x04K\x01."):
        path.write_bytes(text)
        with pytest.raises(DataError, match=r"is not a \.npz file \(not a zip archive\)") as refused:
            load_dataset(f"npz:{path}", "train")
        assert "pickle" not in str(refused.value)
    _bars_npz(path, n=10, split=np.array(["train"] * 9 + ["dev"]))
    with pytest.raises(DataError, match="split must hold 'train' or 'test' for each of the 10 samples"):
        load_dataset(f"npz:{path}", "train")
    np.savez(path, images=np.zeros((4, 1, 2, 2), np.uint8), labels=np.arange(4) % 2)
    with pytest.raises(DataError, match=r"images are a uint8 array .*expected float32"):  # Dataset's own check
        load_dataset(f"npz:{path}", "train")
    # a stranger's hostile tour: one label of 10**9 built a billion class names (17 GB, a hang);
    # negative labels read "classes []"
    np.savez(path, images=np.zeros((4, 1, 2, 2), np.float32), labels=np.array([0, 1, 0, 10**9]))
    with pytest.raises(DataError, match=r"labels reach 1000000000, so 1000000001 classes .*at most 100000"):
        load_dataset(f"npz:{path}", "train")
    np.savez(path, images=np.zeros((4, 1, 2, 2), np.float32), labels=np.array([0, 1, -3, 1]))
    with pytest.raises(DataError, match=r"labels range -3..1; expected class indices >= 0"):
        load_dataset(f"npz:{path}", "train")
    np.savez_compressed(
        path, images=np.random.default_rng(0).random((64, 1, 8, 8), np.float32), labels=np.arange(64) % 2
    )
    raw = bytearray(path.read_bytes())
    raw[200:240] = bytes(40)  # inside the first entry's deflate stream: zlib's error was a traceback
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"is not a readable .npz file \(Error -3 while decompressing"):
        load_dataset(f"npz:{path}", "train")
    # a 200-byte entry whose .npy header declares 4 TB: numpy allocates the declared shape
    # before reading, so it was the out-of-memory line, not a damaged file
    import io
    import zipfile

    header, labels = io.BytesIO(), io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 1, 10**3, 10**3)}
    )
    np.save(labels, np.arange(4) % 2)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("images.npy", header.getvalue() + bytes(64))
        z.writestr("labels.npy", labels.getvalue())
    declared = r"^npz:\S+: images.npy declares shape \[1000000, 1, 1000, 1000\] of float32 \(4000000000000 bytes\)"
    with pytest.raises(DataError, match=declared + " but holds 64 bytes"):
        load_dataset(f"npz:{path}", "train")


def test_npz_labels_of_any_integer_type_and_files_that_are_no_npz(tmp_path):
    """uint16 labels crashed the reader (labels.max(initial=-1)); int32 ones passed it and
    failed in torch ("expected target dtype to be Long"); a .npy, an extra member and an
    empty file were tracebacks."""
    path = tmp_path / "d.npz"
    for dtype in (np.uint8, np.uint16, np.int32):
        _bars_npz(path, n=20)
        z = dict(np.load(path))
        np.savez(path, images=z["images"], labels=z["labels"].astype(dtype))
        ds = load_dataset(f"npz:{path}", "train")
        assert ds.labels.dtype == np.int64 and ds.classes == [str(k) for k in range(11)]
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(DataError, match=r"holds one array \(a \.npy\); expected a \.npz of images and labels"):
        load_dataset(f"npz:{tmp_path / 'one.npy'}", "train")
    import io
    import zipfile

    with zipfile.ZipFile(path, "a") as z:
        z.writestr("README.txt", "my data")
    assert len(load_dataset(f"npz:{path}", "test")) == 4  # a member it does not read: left alone
    np.savez(path, images=np.zeros((0, 1, 2, 2), np.float32), labels=np.zeros(0, np.int64))
    with pytest.raises(DataError, match="holds no samples; expected images and labels of one or more"):
        load_dataset(f"npz:{path}", "train")
    assert make_events(np.arange(3), np.zeros(3), 1, np.arange(3))["p"].tolist() == [1, 1, 1]  # a scalar field
    images, labels = np.zeros((4, 1, 2, 2), np.float32), np.arange(4) % 2
    np.savez(path, images=images, labels=labels, classes=np.array("cat"))  # a 0-d array: a traceback
    with pytest.raises(DataError, match=r"classes of dtype <U3, shape \[\]; expected a 1-D array of str"):
        load_dataset(f"npz:{path}", "train")
    np.savez(path, images=images, labels=labels, classes=np.array([b"cat", b"dog"]))  # names "b'cat'" were stored
    with pytest.raises(DataError, match=r"classes of dtype \|S3, shape \[2\]; expected a 1-D array of str"):
        load_dataset(f"npz:{path}", "train")
    with zipfile.ZipFile(path, "w") as z:  # a member without the .npy header: numpy hands back bytes
        z.writestr("images.npy", b"not an npy at all")
        buf = io.BytesIO()
        np.save(buf, labels)
        z.writestr("labels.npy", buf.getvalue())
    with pytest.raises(DataError, match=r"images is not a NumPy array \(no \.npy header\)"):
        load_dataset(f"npz:{path}", "train")
