"""tonic data sets through the registry: tonic's own N-MNIST class gives the built-in
reader's recordings and frames; an 11-class data set in tonic's interface trains, exports
and runs with its classes, durations and transforms carried through."""

from __future__ import annotations

import json

import numpy as np
import pytest

from runtime.data import DataError, load_dataset
from runtime.data.nmnist import list_nmnist

from .conftest import fit_checkpoint, run_trainer

SYNTH = "tonic:tests.tonic_fixtures.Synthetic11"


def _tonic_layout(nmnist_path, root):
    """The shared N-MNIST files laid out as tonic expects (ROOT/NMNIST/{Train,Test}/<label>/),
    split as the built-in reader splits them (index % 5 == 0: test)."""
    for split, folder in (("train", "Train"), ("test", "Test")):
        for f, label in list_nmnist(nmnist_path, split):
            d = root / "NMNIST" / folder / str(label)
            d.mkdir(parents=True, exist_ok=True)
            (d / f.name).symlink_to(f)


def test_tonic_nmnist_equals_builtin_reader(nmnist_path, tmp_path, monkeypatch):
    tonic_datasets = pytest.importorskip("tonic.datasets")
    _tonic_layout(nmnist_path, tmp_path)
    # tonic checks for the downloaded zip and >= 10000 files; the shared subset has 800
    monkeypatch.setattr(tonic_datasets.NMNIST, "_check_exists", lambda self: True)
    ours = load_dataset(f"nmnist:{nmnist_path}", "test")
    via = load_dataset(f"tonic:NMNIST:{tmp_path}", "test")
    assert via.shape == ours.shape == (2, 34, 34) and len(via.classes) == 10 and via.durations == "recording"
    np.testing.assert_array_equal(via.labels, ours.labels)
    idx = np.arange(0, len(ours), 7)
    for i in idx:
        np.testing.assert_array_equal(via.events[i], ours.events[i])
    for binning, durations in (("equal", "recording"), ("equal", "dataset"), ("fixed", None)):
        kw = dict(dt_us=20_000) if binning == "fixed" else dict(durations=durations)
        if durations == "dataset":
            via.duration_us = ours.duration_us
        np.testing.assert_array_equal(via.frames(idx, 5, binning, **kw), ours.frames(idx, 5, binning, **kw))


def test_per_recording_equal_binning_uses_each_length(tmp_path):
    ds = load_dataset(f"{SYNTH}:{tmp_path}", "train", limit=6)
    f = ds.frames(np.arange(6), 4)  # each recording's own span: its last event lands in the last bin
    for b in range(6):
        ev = ds.events[b]
        last = ev[-1]
        assert f[3, b, last["p"], last["y"], last["x"]] >= 1
        assert f[:, b].sum() == len(ev)
    # nominal duration: the longest of up to 64 recordings of the split (Synthetic11: < 60 ms)
    assert max(int(ds.events[i]["t"][-1]) + 1 for i in range(6)) <= ds.duration_us < 60_000


def test_one_polarity_sets_bin_every_event_into_their_one_channel(tmp_path):
    """tonic's SHD declares one polarity and marks every event p = 1: binned as channel 1 of
    a 1-channel frame, each event fell into the next sample's slot (a reshape traceback)."""
    ds = load_dataset(f"tonic:tests.tonic_fixtures.OnePolarity:{tmp_path}", "train", limit=4)
    assert ds.shape == (1, 16, 20)
    f = ds.frames(np.arange(4), 3)
    assert f.shape == (3, 4, 1, 16, 20)
    assert [int(f[:, b].sum()) for b in range(4)] == [len(ds.events[b]) for b in range(4)]


def test_events_outside_the_declared_sensor_are_refused(tmp_path):
    """An event at x = 25 on a 20-wide sensor landed silently on pixel (5, y + 1)."""
    ds = load_dataset(f"tonic:tests.tonic_fixtures.OffSensor:{tmp_path}", "train")
    ds.events[2]  # the others read
    with pytest.raises(DataError, match=r"OffSensor\[3\]: x ranges \d+..25, outside the data set's sensor_size"):
        ds.events[3]


def test_negative_timestamps_are_refused_by_every_path(tmp_path):
    """Binning dropped them silently (12.6% of a set's events), the event engine refused
    them, Speck's emulation ran on: one rule now, at the reader."""
    with pytest.raises(DataError, match=r"NegativeTime\[2\]: negative timestamps \(min -\d+ µs\); expected t >= 0"):
        load_dataset(f"tonic:tests.tonic_fixtures.NegativeTime:{tmp_path}", "train")  # read to probe its length


def test_dict_classes_are_named_by_their_index_and_name_targets_are_refused(tmp_path):
    """{name: index} took the key order (class 0 shown as the name of index 10); targets that
    are class names said only "invalid literal for int()"."""
    ds = load_dataset(f"tonic:tests.tonic_fixtures.DictClasses:{tmp_path}", "train")
    assert ds.classes == [f"bar {k}" for k in range(11)]
    with pytest.raises(
        DataError, match=r"NameTargets has a target that is not a class index .*expected integer targets"
    ):
        load_dataset(f"tonic:tests.tonic_fixtures.NameTargets:{tmp_path}", "train")


def test_a_model_is_refused_on_data_whose_labels_name_other_classes():
    """Only the count was compared: the same recordings with the classes listed in another
    order scored 33% for 100%, a 13-class model on two of its classes (labelled 0, 1) 0%."""
    from runtime.data import Dataset, check_fits

    def data(classes):
        return Dataset(
            "mine",
            "test",
            "static",
            (1, 2, 2),
            np.zeros(3, np.int64),
            classes,
            images=np.zeros((3, 1, 2, 2), np.float32),
        )

    model = ["a", "b", "c"]
    assert check_fits(data(["a", "b", "c"]), (1, 2, 2), model, "m.onnx").classes == model
    assert check_fits(data(["a", "b"]), (1, 2, 2), model, "m.onnx").classes == ["a", "b"]  # its first classes
    with pytest.raises(DataError, match=r"labels 2 of its 3 classes otherwise than m.onnx: label 0 is 'c' in the data"):
        check_fits(data(["c", "b", "a"]), (1, 2, 2), model, "m.onnx")
    with pytest.raises(DataError, match=r"label 0 is 'b' in the data and 'a' in the model"):
        check_fits(data(["b", "c"]), (1, 2, 2), model, "m.onnx")
    assert check_fits(data(["x", "y"]), (1, 2, 2), 3, "old.onnx")  # a file naming no classes: by count


def test_two_namings_of_the_same_classes_run_with_a_warning(capsys):
    """tonic's NMNIST names its classes '0 - zero', ...; nmnist:PATH '0', ...: the same
    recordings and labels, refused as "labelled otherwise" (no name in common: not a
    reordering)."""
    from runtime.data import Dataset, check_fits

    names = ["0 - zero", "1 - one"]
    ds = Dataset(
        "tonic", "test", "static", (1, 2, 2), np.zeros(2, np.int64), names, images=np.zeros((2, 1, 2, 2), np.float32)
    )
    assert check_fits(ds, (1, 2, 2), ["0", "1"], "m.onnx") is ds
    err = capsys.readouterr().err
    assert err.startswith(
        "warning: data 'tonic' names its classes otherwise than the model ('0 - zero', ... against '0'"
    )
    check_fits(ds, (1, 2, 2), ["0", "1"], "m.onnx")  # checked again where it runs: said once
    assert capsys.readouterr().err == ""


def test_bad_tonic_specs(tmp_path):
    for spec, match in (
        (f"tonic:NoSuchSet:{tmp_path}", "no data set"),
        ("tonic:NMNIST", "tonic:NAME:ROOT"),
        (f"tonic:no.such.Module:{tmp_path}", "cannot be imported"),
        (f"tonic:NMNIST:{tmp_path}", "could not be downloaded"),
    ):
        if "NMNIST" in spec or "NoSuch" in spec:
            pytest.importorskip("tonic")
        with pytest.raises(DataError, match=match):
            load_dataset(spec, "test")
    # the failed download left nothing in the data folder (tonic had made ROOT/NMNIST/)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_eleven_classes_train_eval_export_run(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from export import cli as export_cli
    from runtime.cli import main as runtime_main

    torch.set_num_threads(1)
    spec = f"{SYNTH}:{tmp_path}"
    ckpt = tmp_path / "m.pt"
    cfg, _, metrics = fit_checkpoint(
        capsys,
        ckpt,
        "--data",
        spec,
        "--transform",
        "crop:2,0,16,16",
        "--model",
        "2C1FC",
        "--width",
        "4",
        "--tmax",
        "3",
        "--epochs",
        "4",
        "--batch-size",
        "16",
        "--lr",
        "0.01",
        "--quiet",
    )
    assert cfg.model.num_classes == 11 and cfg.data.classes[10] == "bar 10"
    assert cfg.data.durations == "recording" and cfg.data.transforms == [{"kind": "crop", "args": [2, 0, 16, 16]}]
    assert tuple(cfg.model.in_shape) == (2, 16, 16)
    assert cfg.data.sensor == (2, 16, 20)  # the recordings' before the crop: what a camera is pooled to
    assert metrics["test_accuracy"] > 0.5  # chance: 1/11
    code, out, err = run_trainer(capsys, "eval", str(ckpt), "--T", "3", "--json")
    assert code == 0, err
    acc = json.loads(out)["runs"][0]["accuracy"][0]
    onnx_path = tmp_path / "m.onnx"
    with pytest.raises(SystemExit) as e:
        export_cli.main([str(ckpt), "-o", str(onnx_path)])
    assert e.value.code in (0, None), capsys.readouterr().err
    capsys.readouterr()
    from runtime import load

    p = load(onnx_path).protocol
    assert p.num_classes == 11 and p.durations == "recording" and p.transforms[0]["kind"] == "crop"
    assert p.sensor == (2, 16, 20) and p.input_shape == (2, 16, 16)
    runtime_main(["run", str(onnx_path), "--data", spec, "--json"])
    out = capsys.readouterr().out
    assert json.loads(out)["accuracy"] == pytest.approx(acc, abs=1e-6)


def test_from_tonic_takes_the_split_it_is_given():
    """``from_tonic(obj, split="val")`` returned every recording of ``obj`` and recorded the
    split as "val": a model then "trained without" its validation recordings trained on them,
    and exit thresholds were chosen on data it had seen, unsaid."""
    from runtime.data.tonic_sets import from_tonic
    from tests.tonic_fixtures import Synthetic11

    obj = Synthetic11("unused")
    for split in ("val", "train-minus-val"):
        ds, loaded = from_tonic(obj, split=split), load_dataset(f"{SYNTH}:unused", split)
        assert ds.split == split and 0 < len(ds) < len(obj)
        assert np.array_equal(ds.labels, loaded.labels)
        assert np.array_equal(ds.events[0], loaded.events[0])
    assert len(from_tonic(obj, split="val")) + len(from_tonic(obj, split="train-minus-val")) == len(obj)
    held = np.arange(len(obj)) % 10 == 1  # the rule, written out: docs/event_data.md
    assert np.array_equal(from_tonic(obj, split="val").labels, np.asarray(obj.targets)[held])
    assert len(from_tonic(obj, split="test")) == len(obj)  # obj is that split
    with pytest.raises(DataError, match=r"split 'dev' is unknown; expected one of \['train', 'test', 'val'"):
        from_tonic(obj, split="dev")
    obj.targets = []  # no recordings: the CLI refused it, the SDK gave a 10-class config
    with pytest.raises(DataError, match="^tonic data set Synthetic11 has no recordings in split 'train'$"):
        from_tonic(obj)  # the split named: the test split of a set can be the empty one


def test_fractions_and_nan_are_refused_not_truncated(tmp_path):
    """A target 3.9 trained as class 3, an x of 4.5 landed on pixel 4: the event engine
    refuses such streams, the reader truncated them. Whole values in float arrays read."""
    with pytest.raises(DataError, match=r"FractionalTargets has a target that is not a whole class index \(3.9\)"):
        load_dataset(f"tonic:tests.tonic_fixtures.FractionalTargets:{tmp_path}", "train")
    floats = load_dataset(f"tonic:tests.tonic_fixtures.FloatFields:{tmp_path}", "train")
    assert np.array_equal(floats.events[4], load_dataset(f"{SYNTH}:{tmp_path}", "train").events[4])
    with pytest.raises(DataError, match=r"FloatFields\[5\]: event field x value 4\.5 does not fit int16 as a whole"):
        floats.events[5]
    with pytest.raises(DataError, match=r"FloatFields\[1\]: event field t value nan does not fit int64"):
        floats.events[1]


def test_labels_are_the_targets_each_recording_yields(tmp_path):
    """from_tonic read ``.targets`` and never what ``[i]`` yields: tonic's
    ``target_transform`` (class k labelled 10 - k here) trained on the raw targets, unsaid."""
    from tests.tonic_fixtures import TargetTransformed

    obj = TargetTransformed(str(tmp_path))
    ds = load_dataset(f"tonic:tests.tonic_fixtures.TargetTransformed:{tmp_path}", "train")
    assert ds.labels.tolist() == [obj[i][1] for i in range(len(obj))] != obj.targets
    # a class whose [i] yields other targets than .targets, with no transform to say how: refused
    with pytest.raises(DataError, match=r"ShiftedItems\[0\] yields target 1, but its labels \(.targets\) give 0"):
        load_dataset(f"tonic:tests.tonic_fixtures.ShiftedItems:{tmp_path}", "train")


def test_a_set_without_events_is_refused(tmp_path):
    """Every recording empty: it trained to chance, unwarned, with a time step of 0.17 µs
    (the nominal length fell back to 1 µs)."""
    with pytest.raises(DataError, match=r"AllEmpty: the 64 recordings read \(spread over all 132\) have no events"):
        load_dataset(f"tonic:tests.tonic_fixtures.AllEmpty:{tmp_path}", "train")


def test_the_users_own_class_failing_is_reported_as_its_error(tmp_path, capsys):
    """A class of the user's whose constructor failed was reported as a failed tonic download;
    one whose ``__getitem__`` failed ended `trainer fit` in a traceback, exit 1."""
    with pytest.raises(DataError) as e:
        load_dataset(f"tonic:tests.tonic_fixtures.BrokenInit:{tmp_path}", "train")
    assert str(e.value) == (
        f"tonic data set class tests.tonic_fixtures.BrokenInit(save_to='{tmp_path}') failed: "
        f"FileNotFoundError: {tmp_path}/index.csv"
    )
    code, _, err = run_trainer(
        capsys, "fit", "--data", f"tonic:tests.tonic_fixtures.BrokenItem:{tmp_path}", "--epochs", "1", "--quiet",
        "--out", str(tmp_path / "m.pt"),
    )  # fmt: skip
    assert (code, err) == (2, "error: BrokenItem[7] could not be read (OSError: corrupt file rec7.bin)\n")
    assert not (tmp_path / "m.pt").exists()


def test_a_split_without_recordings_says_so(tmp_path):
    """A set split by index whose training part is empty was refused as "the 0 recordings
    read have no events"; from_tonic returned an empty "val"."""
    from runtime.data.tonic_sets import from_tonic
    from tests.tonic_fixtures import Synthetic11

    with pytest.raises(DataError, match=r"^tonic data set OneRecording has no recordings in split 'train'$"):
        load_dataset(f"tonic:tests.tonic_fixtures.OneRecording:{tmp_path}", "train")
    assert len(load_dataset(f"tonic:tests.tonic_fixtures.OneRecording:{tmp_path}", "test")) == 1
    one = Synthetic11(str(tmp_path))
    one.targets = [0]  # recording 0 is training data, and not among the validation ones (index % 10 == 1)
    with pytest.raises(DataError, match=r"^tonic data set Synthetic11 has no recordings in split 'val'$"):
        from_tonic(one, split="val")


def test_fixed_bins_read_each_recording_once(tmp_path):
    """Counting the events fixed bins miss read every lazy recording (a tonic file, a
    transformed stream) a second time: about 1.7x the time of a run."""
    import runtime
    from runtime.evaluate import run_dataset
    from tests.runtime_fixtures import save, tiny_model

    ds = load_dataset(f"tonic:tests.tonic_fixtures.LongRecordings:{tmp_path}", "test")
    reads = []
    get = ds.events._get
    ds.events._get = lambda i: (reads.append(i), get(i))[1]
    session = runtime.load(save(tiny_model(kind="event-frames"), tmp_path / "e.onnx"))
    with pytest.warns(runtime.errors.UnseenEventsWarning):
        run_dataset(session, ds, binning="fixed", batch_size=8)
    assert sorted(reads) == sorted(ds.events._index.tolist())  # each once
