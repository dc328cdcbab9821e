"""Issue 12, the torch half: the export/trainer CLIs never write over their input, refuse
bad numbers at parse time, verify checkpoint integrity (SHA-256 digest, zip CRCs), bound
model sizes and never write NaN weights. Each case: one ``error:`` line, exit 2."""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path

import pytest
import torch

from export import cli as export_cli
from runtime.limits import ResourceError
from tests.conftest import one_error, run_main, run_trainer
from tests.export_helpers import config, model, static_checkpoint
from trainer.checkpoint import DIGEST_KEY, CheckpointError, digest, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return static_checkpoint(tmp_path_factory.mktemp("hard") / "m.pt")


_export = functools.partial(run_main, export_cli.main)


# ---- 1. never destroy an input -----------------------------------------------------------
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_over_the_checkpoint_is_refused(ckpt, capsys, fmt):
    before = ckpt.read_bytes()
    code, _, err = _export(capsys, str(ckpt), "--format", fmt, "-o", str(ckpt))
    one_error(code, err, "is the input")
    assert ckpt.read_bytes() == before


def test_export_over_a_symlink_to_the_checkpoint_is_refused(ckpt, tmp_path, capsys):
    link = tmp_path / "link.onnx"
    link.symlink_to(ckpt)
    before = ckpt.read_bytes()
    code, _, err = _export(capsys, str(ckpt), "-o", str(link))
    one_error(code, err, "is the input")
    assert ckpt.read_bytes() == before


def test_export_empty_output_is_refused(ckpt, capsys):
    default = ckpt.with_suffix(".onnx")
    default.unlink(missing_ok=True)
    code, _, err = _export(capsys, str(ckpt), "-o", "")
    one_error(code, err, "empty path")
    assert not default.exists()


def test_calibrate_over_its_input_is_refused(ckpt, capsys):
    before = ckpt.read_bytes()
    code, _, err = run_trainer(capsys, "calibrate", str(ckpt), "--out", str(ckpt))
    one_error(code, err, "is the input")
    assert ckpt.read_bytes() == before


# ---- 2/5/6. numbers at parse time, model sizes -------------------------------------------
@pytest.mark.parametrize(
    "argv, needle",
    [
        (["fit", "--lr", "inf"], "--lr must be a finite number"),
        (["fit", "--lr", "nan"], "--lr must be a finite number"),
        (["fit", "--weight-decay", "-1"], "--weight-decay must be a number in [0.0, inf), got -1"),
        (["fit", "--width", "-1"], "--width must be a non-negative integer"),
        (["fit", "--tmax", "1e8"], "--tmax must be a positive integer"),
        (["fit", "--batch-size", "0"], "--batch-size must be a positive integer"),
        (["fit", "--out", ""], "empty path"),
        (["eval", "{c}", "--batch-size", "-4"], "--batch-size must be a positive integer"),
        (["eval", "{c}", "--T", "1e8"], "--T must be a positive integer"),
        (["eval", "{c}", "--plot", "/no/such/dir/p.png"], "does not exist"),
        (["calibrate", "{c}", "--T", "0", "--out", "x.pt"], "--T must be a positive integer"),
        (["calibrate", "{c}", "--T", "1e8", "--out", "x.pt"], "--T must be a positive integer"),
        (["memory", "--in-shape", "0", "0", "0"], "--in-shape must be a positive integer"),
    ],
)
def test_trainer_numbers_are_one_error_line(ckpt, capsys, argv, needle):
    code, _, err = run_trainer(capsys, *[a.format(c=ckpt) for a in argv])
    one_error(code, err, needle)


def test_export_check_T_is_bounded(ckpt, capsys):
    code, _, err = _export(capsys, str(ckpt), "--check", "--T", "1e8")
    one_error(code, err, "--T must be a positive integer")


def test_model_too_deep_for_its_input_isone_error(capsys, tmp_path):
    code, _, err = run_trainer(capsys, "fit", "--model", "9C1FC", "--out", str(tmp_path / "m.pt"))
    one_error(code, err, "cannot take inputs of shape")
    assert not (tmp_path / "m.pt").exists()


def _rewrite(path: Path, out: Path, change) -> Path:
    ck = torch.load(path, weights_only=True)
    change(ck)
    ck[DIGEST_KEY] = digest(ck)
    torch.save(ck, out)
    return out


def test_checkpoint_asking_for_a_huge_model_is_refused(tmp_path, capsys):
    cfg = config(name="2C1FC", width=4)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, cfg, model(cfg), {})
    wide = _rewrite(ckpt, tmp_path / "wide.pt", lambda ck: ck["config"]["model"].__setitem__("width", 60000))
    with pytest.raises(ResourceError, match="needs about"):
        load_checkpoint(wide)
    code, _, err = _export(capsys, str(wide), "-o", str(tmp_path / "w.onnx"))
    one_error(code, err, "needs about")
    big = _rewrite(ckpt, tmp_path / "big.pt", lambda ck: ck["config"]["model"].__setitem__("in_shape", [1, 10**6, 8]))
    with pytest.raises(CheckpointError, match="input shape"):
        load_checkpoint(big)
    # a hostile tour's: classes null was a TypeError traceback in eval and export
    for classes in (None, ["one"], [0, 1]):
        bad = _rewrite(ckpt, tmp_path / "c.pt", lambda ck, c=classes: ck["config"]["data"].__setitem__("classes", c))
        code, _, err = _export(capsys, str(bad), "-o", str(tmp_path / "c.onnx"))
        one_error(code, err, f"data classes {classes!r}; expected a list of 2 or more class names")


def test_runtime_bench_with_a_bad_checkpoint_isone_error(tmp_path, capsys):
    from runtime import cli as runtime_cli

    from .runtime_fixtures import save, tiny_model

    onnx_path = save(tiny_model(), tmp_path / "m.onnx")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as e:
        runtime_cli.main(["bench", onnx_path, "--checkpoint", str(bad), "--batch-size", "1", "--T", "2"])
    one_error(e.value.code, capsys.readouterr().err, "bad.pt")


def test_runtime_bench_with_another_models_checkpoint_isone_error(ckpt, tmp_path, capsys):
    """A checkpoint of other shapes than the ONNX model: one error naming both (was a torch
    matmul traceback from inside the timed loop)."""
    from runtime import cli as runtime_cli

    from .runtime_fixtures import save, tiny_model

    onnx_path = save(tiny_model(classes=3), tmp_path / "m.onnx")
    with pytest.raises(SystemExit) as e:
        runtime_cli.main(["bench", onnx_path, "--checkpoint", str(ckpt), "--batch-size", "1", "--T", "2"])
    one_error(e.value.code, capsys.readouterr().err, "is a model of input", "give the checkpoint it was exported from")


def test_runtime_bench_with_a_checkpoint_of_other_neurons_isone_error(ckpt, tmp_path, capsys):
    """Same input and classes, other neurons (an IF checkpoint beside a LIF file): it timed
    both without a word."""
    from runtime import cli as runtime_cli
    from runtime.neuron import NeuronSpec

    from .runtime_fixtures import save, tiny_model

    other = NeuronSpec("IF", 1.0, 0.5, "subtract", "multi")  # the checkpoint is 1C1FCW4 on 8x8 digits, 10 classes
    onnx_path = save(tiny_model(spec=other), tmp_path / "m.onnx")
    with pytest.raises(SystemExit) as e:
        runtime_cli.main(["bench", onnx_path, "--checkpoint", str(ckpt), "--batch-size", "1", "--T", "2"])
    one_error(e.value.code, capsys.readouterr().err, "has other neurons than the ONNX model", "(LIF against IF")


# ---- 3. checkpoint integrity -------------------------------------------------------------
def _payload_offsets(path: Path) -> list[int]:
    """One byte inside each stored member's data (tensors and the pickle)."""
    with zipfile.ZipFile(path) as z:
        raw = path.read_bytes()
        spots = []
        for info in z.infolist():
            if info.file_size == 0:
                continue
            name_len = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
            extra_len = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
            start = info.header_offset + 30 + name_len + extra_len
            spots.append(start + info.file_size // 2)
        return spots


def test_every_bit_flip_in_the_checkpoint_data_is_caught(ckpt, tmp_path):
    data = ckpt.read_bytes()
    spots = _payload_offsets(ckpt)
    assert len(spots) >= 8
    for i, at in enumerate(spots):
        bad = bytearray(data)
        bad[at] ^= 1 << (i % 8)
        path = tmp_path / f"flip{i}.pt"
        path.write_bytes(bytes(bad))
        with pytest.raises(CheckpointError, match="corrupted|not a torch checkpoint"):
            load_checkpoint(path)


def test_digest_catches_a_changed_weight_with_valid_crcs(ckpt, tmp_path):
    ck = torch.load(ckpt, weights_only=True)
    name = next(k for k, v in ck["state_dict"].items() if v.is_floating_point())
    ck["state_dict"][name] = ck["state_dict"][name] + 1e-3  # torch.save writes fresh CRCs
    torch.save(ck, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(tmp_path / "edited.pt")


def test_checkpoint_without_digest_loads_with_a_note(ckpt, tmp_path, capsys):
    ck = torch.load(ckpt, weights_only=True)
    del ck[DIGEST_KEY]
    torch.save(ck, tmp_path / "old.pt")
    load_checkpoint(tmp_path / "old.pt")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "carries no weight digest" in err


@pytest.mark.parametrize(
    "record, offset, change",
    [
        (b"PK\x01\x02", 10, lambda b: b | 8),  # a central directory entry: stored -> deflate
        (b"PK\x01\x02", 8, lambda b: b | 1),  # ... its flags: encrypted
        (b"PK\x06\x07", 16, lambda b: 2),  # torch's zip64 end locator: "total number of disks"
    ],
    ids=["deflated", "encrypted", "zip64-disks"],
)
def test_a_damaged_zip_record_is_one_clear_error(ckpt, tmp_path, record, offset, change):
    """Found by experiments/fuzz_cli.py (seeds 7 and 1, and the zip64 locator): a bit flip in a
    central directory entry's compression method or flags made the CRC check raise zlib.error
    or RuntimeError, and a locator claiming several disks made zipfile.is_zipfile itself raise
    BadZipFile; each escaped as a traceback."""
    data = bytearray(Path(ckpt).read_bytes())
    i = bytes(data).find(record)
    assert i > 0 and change(data[i + offset]) != data[i + offset]  # the record exists; the edit changes it
    data[i + offset] = change(data[i + offset])
    bad = tmp_path / "damaged.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="zip container is damaged"):
        load_checkpoint(bad)


# ---- 6. NaN/inf weights are never written ------------------------------------------------
def test_diverged_training_writes_no_checkpoint(tmp_path, capsys):
    out = tmp_path / "m.pt"
    fit = "fit --data digits --epochs 1 --limit-train 64 --limit 32 --width 4 --batch-size 32 --tmax 2"
    args = f"{fit} --lr 1e30 --quiet".split()
    code, _, err = run_trainer(capsys, *args, "--out", str(out))
    one_error(code, err, "diverged")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_fit_over_a_file_of_its_data_is_refused_before_any_work(tmp_path, capsys):
    data = tmp_path / "nm"
    (data / "Test").mkdir(parents=True)
    victim = data / "Test" / "notes.bin"
    victim.write_bytes(b"a recording")
    code, _, err = run_trainer(capsys, "fit", "--data", f"nmnist:{data}", "--out", str(victim))
    one_error(code, err, "is a file of the input folder")
    assert victim.read_bytes() == b"a recording"


def test_a_product_file_handed_to_a_checkpoint_reader_is_named(ckpt, tmp_path, capsys):
    """It said "is not a torch checkpoint (unreadable pickle data)"; judged by content, as a
    name can lie both ways (a checkpoint named .onnx is still read)."""
    from export.onnx_export import export_onnx
    from trainer.checkpoint import load_checkpoint

    cfg, model, _ = load_checkpoint(ckpt)
    onnx_as_pt = export_onnx(cfg, model, tmp_path / "m.onnx").rename(tmp_path / "real.pt")
    nir_file = tmp_path / "g.pt"
    nir_file.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    for path, needle in ((onnx_as_pt, "is an ONNX file"), (nir_file, "is a NIR graph")):
        for argv in (["eval", str(path)], ["fit", "--init-from", str(path), "--epochs", "1"]):
            code, _, err = run_trainer(capsys, *argv)
            one_error(code, err, needle, "expected a checkpoint (model.pt from trainer fit)")
    ckpt_as_onnx = tmp_path / "ck.onnx"
    ckpt_as_onnx.write_bytes(ckpt.read_bytes())
    load_checkpoint(ckpt_as_onnx)


def test_no_write_lands_on_a_data_set_this_process_read(mnist_path, tmp_path):
    """A data set named inside a model file (fit --resume's, calibrate-exit's, calibrate's)
    was no input to the output check: its label files were replaced by a checkpoint."""
    import shutil

    from runtime.data import load_dataset
    from runtime.fileio import OutputPathError, write_atomic

    data = tmp_path / "mnist"
    shutil.copytree(mnist_path, data)
    victim = next(p for p in sorted(data.iterdir()) if "labels" in p.name)
    before = victim.read_bytes()
    load_dataset(f"mnist:{data}", "test", limit=4)
    with pytest.raises(OutputPathError, match="is a file of the input folder"):
        write_atomic(victim, lambda tmp: tmp.write_bytes(b"a checkpoint"))
    assert victim.read_bytes() == before
    write_atomic(data / "new.pt", lambda tmp: tmp.write_bytes(b"ok"))  # a new file beside it is no loss
    write_atomic(data / "new.pt", lambda tmp: tmp.write_bytes(b"ok"))  # and this process may write it again


def test_an_output_whose_suffix_names_another_kind_is_refused(ckpt, tmp_path, capsys):
    """calibrate-exit --out m.pt replaced a checkpoint with an ONNX file; export
    --format torchscript -o x.onnx wrote TorchScript that every ONNX reader then refused."""
    from export.cli import main as export_main

    for argv, needle in [
        (["--format", "torchscript", "-o", str(tmp_path / "x.onnx")], "cannot write the torchscript file to"),
        (["-o", str(tmp_path / "x.pt")], "cannot write the onnx file to"),
        (["-o", str(tmp_path / "x.json")], ".json names a JSON file"),  # an ONNX file named .json was written
        (["--format", "nir", "-o", str(tmp_path / "x.npz")], ".npz names a NumPy archive"),
    ]:
        code, _, err = run_main(export_main, capsys, str(ckpt), *argv)
        one_error(code, err, needle, "expected a")
    code, _, err = run_trainer(capsys, "calibrate", str(ckpt), "--out", str(tmp_path / "c.onnx"))
    one_error(code, err, "cannot write a checkpoint to", ".onnx names an ONNX file; expected a .pt path")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    code, _, err = run_main(export_main, capsys, str(ckpt), "-o", str(tmp_path / "m.model"))  # any other: the user's
    assert code == 0, err


def test_edge_outputs_never_replace_a_model_a_checkpoint_or_a_recording(tmp_path):
    """A stranger's camera tour: `edge speck --describe other.onnx` (or m.pt, cam.raw) and
    `edge.pi.parity run ... -o m.pt` replaced the file with JSON or an npz, exit 0; and
    `parity inputs cam.raw` replaced a camera recording: no kind was asked of those paths,
    and recordings were no product kind."""
    from tests.conftest import run_cli
    from tests.runtime_fixtures import save, tiny_model

    model = save(tiny_model(kind="event-frames"), tmp_path / "m.onnx")
    victims = {name: tmp_path / name for name in ("other.onnx", "m.pt", "cam.raw", "cam.dat", "rec.aedat4")}
    for path in victims.values():
        path.write_bytes(b"precious " + path.name.encode())
    inputs = tmp_path / "in.npz"
    assert run_cli("edge.pi.parity", "inputs", str(inputs), "--limit", "2").returncode == 0
    for name, path in victims.items():
        suffix = path.suffix
        for argv in (
            ["edge", "speck", model, "--check", "--describe", str(path)],
            ["edge.pi.parity", "run", model, str(inputs), "-o", str(path)],
            ["edge.pi.parity", "inputs", str(path), "--limit", "2"],
        ):
            r = run_cli(*argv)
            assert r.returncode == 2 and r.stderr.startswith("error: cannot write"), (argv, r.stderr)
            assert f"{suffix} names " in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert path.read_bytes() == b"precious " + name.encode()
