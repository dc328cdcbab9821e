"""``python -m export``: the happy path with --check, bad input (one error line, exit 2),
atomic output, and refusal of checkpoints that would need code unpickled."""

from __future__ import annotations

import functools
import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from export import cli
from export.protocol import read_protocol
from runtime.fileio import OutputPathError, write_atomic
from tests.conftest import one_error, run_cli, run_main
from tests.export_helpers import static_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return static_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


_run = functools.partial(run_main, cli.main)


def test_a_plain_export_prints_no_warning(ckpt, tmp_path):
    """A fresh process: a class decorated with torch.no_grad() at import (by mistake) printed
    torch's "Decorating classes is deprecated" as a warning line on every export."""
    r = run_cli("export", str(ckpt), "-o", str(tmp_path / "m.onnx"), "--check")
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_export_with_check_json(ckpt, capsys):
    code, out, err = _run(capsys, str(ckpt), "--check", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["output"] == str(ckpt.with_suffix(".onnx")) and report["check"]["ok"] is True
    assert report["input"] == str(ckpt) and "model" not in report  # the runtime's "model" is a file path
    assert report["architecture"] == "1C1FCW4"  # the fixture's
    assert report["check"]["input"] == "digits:static test data"
    assert all(n["mismatched_spikes"] == 0 and n["spikes_torch"] > 0 for n in report["check"]["neurons"])
    assert read_protocol(ckpt.with_suffix(".onnx")).input_kind == "repeat"


def test_json_carries_the_peer_warnings_stderr_prints(ckpt, tmp_path, capsys):
    """A program reading --json saw no warning of what a NIR peer runs differently."""
    code, out, err = _run(capsys, str(ckpt), "--format", "nir", "-o", str(tmp_path / "m.nir"), "--json")
    assert code == 0, err
    printed = [ln.removeprefix("warning: ") for ln in err.splitlines() if ln.startswith("warning: ")]
    assert printed and json.loads(out)["warnings"] == printed


def test_check_table(ckpt, tmp_path, capsys):
    code, out, _ = _run(capsys, str(ckpt), "-o", str(tmp_path / "x.onnx"), "--check", "--T", "3", "--batch-size", "2")
    assert code == 0 and "check passed" in out and "LIF_0" in out and "T=3, batch 2" in out


def test_a_failed_check_writes_no_file(ckpt, tmp_path, capsys, monkeypatch):
    """A file that failed --check stayed where the runtime reads it, without a word at run
    time, and the last line read "check FAILED (spikes identical, ...)"."""
    import export.check

    monkeypatch.setattr(export.check, "close_enough", lambda ref, got: False)  # every state differs
    out = tmp_path / "x.onnx"
    code, text, _ = _run(capsys, str(ckpt), "-o", str(out), "--check")
    assert code == 1 and not out.exists() and os.listdir(tmp_path) == []  # nor its unchecked copy
    last = text.strip().splitlines()[-1]
    assert last.startswith("check FAILED at LIF_0") and f"{out} was not written" in last
    assert "wrote" not in text
    code, text, _ = _run(capsys, str(ckpt), "-o", str(out), "--check", "--json")
    report = json.loads(text)
    assert code == 1 and report["output"] is None and report["check"]["ok"] is False and not out.exists()
    out.write_bytes(b"an earlier export")  # a failed check leaves an existing file as it was
    code, _, _ = _run(capsys, str(ckpt), "-o", str(out), "--check")
    assert code == 1 and out.read_bytes() == b"an earlier export"


def test_a_check_that_does_not_fit_is_refused_and_writes_nothing(ckpt, tmp_path, capsys, monkeypatch):
    """--check --T 1000 --batch-size 1000 was killed by the OS (its traces: about 250 GiB),
    and an error after the file was written left the file."""
    monkeypatch.setenv("FLEXSNN_MAX_MEMORY", "1M")
    out = tmp_path / "x.onnx"
    code, _, err = _run(capsys, str(ckpt), "-o", str(out), "--check", "--T", "1000", "--batch-size", "1000")
    one_error(code, err, "--check at T=1000 with batch 1000 needs about")
    assert os.listdir(tmp_path) == []


def _bad(tmp_path, ckpt) -> dict[str, list[str]]:
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    (tmp_path / "random.pt").write_bytes(os.urandom(4096))
    torch.save({"format": "flexsnn-checkpoint/99", "config": {}, "state_dict": {}, "metrics": {}}, tmp_path / "v99.pt")
    return {
        "missing file": [str(tmp_path / "nope.pt")],
        "text file": [str(tmp_path / "text.pt")],
        "random bytes": [str(tmp_path / "random.pt")],
        "unknown format version": [str(tmp_path / "v99.pt")],
        "unwritable output": [str(ckpt), "-o", str(tmp_path / "no" / "dir" / "m.onnx")],
        "output is a folder": [str(ckpt), "-o", str(tmp_path)],
        "unknown format": [str(ckpt), "--format", "tflite"],
        "check of a non-onnx format": [str(ckpt), "--format", "pt2", "--check"],
    }


def test_bad_input_is_one_error_line_and_exit_2(ckpt, tmp_path, capsys):
    for case, argv in _bad(tmp_path, ckpt).items():
        code, out, err = _run(capsys, *argv)
        assert code == 2, case
        assert err.startswith("error: ") and err.count("\n") == 1, (case, err)
    assert "version" in _run(capsys, *_bad(tmp_path, ckpt)["unknown format version"])[2]
    assert "['onnx', 'torchscript', 'pt2', 'nir']" in _run(capsys, str(ckpt), "--format", "x")[2]
    onnx_file = tmp_path / "m.onnx"  # the exporter's own output given as its input
    onnx_file.write_bytes(b"an onnx file")
    code, _, err = _run(capsys, str(onnx_file))
    one_error(code, err, "m.onnx is an ONNX file, the exporter's output; export reads a checkpoint")
    assert onnx_file.read_bytes() == b"an onnx file"
    # flags only --check reads, given without it: refused (they were ignored)
    for flag, value in (("--T", "3"), ("--batch-size", "3")):
        code, _, err = _run(capsys, str(ckpt), "-o", str(tmp_path / "x.onnx"), flag, value)
        one_error(code, err, f"only --check reads {flag}; add --check")
    assert not (tmp_path / "x.onnx").exists()


def test_real_entry_point_exit_status(tmp_path):
    r = run_cli("export", str(tmp_path / "missing.pt"))
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and "missing.pt" in r.stderr


class _Exploit:
    """Unpickling this would run a shell command that writes a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["torch.save", "raw pickle"])
def test_malicious_pickle_is_refused_not_executed(tmp_path, capsys, writer):
    marker = tmp_path / "pwned"
    payload = {"format": "flexsnn-checkpoint/1", "config": _Exploit(marker), "state_dict": {}, "metrics": {}}
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    code, _, err = _run(capsys, str(path))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert not marker.exists()
    if writer == "torch.save":  # torch's own container: the refusal names the culprit
        assert "refused" in err and "system" in err
    pickle.loads(pickle.dumps(_Exploit(marker)))  # the file really was malicious:
    assert marker.exists()  # plain unpickling runs the command


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    def half_then_crash(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "m.onnx", half_then_crash)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OutputPathError, match="does not exist"):
        write_atomic(tmp_path / "missing" / "m.onnx", lambda tmp: None)


def test_every_file_written_steps_its_neurons_at_the_protocols_frame_dt(tmp_path, capsys):
    """µs per step is stored twice in an event model's file: the protocol's ``dt_us`` (what
    fixed bins and stream windows step by) and each neuron's ``dt`` (what the event engine
    leaks by); no reader checks them against each other, so every writer must agree: an
    export, a NIR round trip, and a foreign NIR import with ``--window-us``."""
    from tests.conftest import fit_checkpoint

    ckpt = tmp_path / "m.pt"
    fit_checkpoint(capsys, ckpt, "--data", "digits", "--model", "1C1FC", "--width", "4", "--epochs", "1",
                   "--limit-train", "60", "--limit", "20", "--quiet", "--threads", "1")  # fmt: skip
    outs = {
        "onnx": tmp_path / "m.onnx",
        "round trip": tmp_path / "back.onnx",
        "round trip at T=4": tmp_path / "back4.onnx",  # it kept the neurons' dt of T=6: 50 ms vs 75 ms bins
        "foreign": tmp_path / "f.onnx",
    }
    for argv in (
        [str(ckpt), "-o", str(outs["onnx"])],
        [str(ckpt), "--format", "nir", "-o", str(tmp_path / "m.nir")],
        [str(tmp_path / "m.nir"), "-o", str(outs["round trip"])],
        [str(tmp_path / "m.nir"), "--T", "4", "-o", str(outs["round trip at T=4"])],
        [
            str(tmp_path / "m.nir"),
            "--from",
            "nir",
            "--dt-us",
            "1000",
            "--window-us",
            "300000",
            "--T",
            "5",
            "-o",
            str(outs["foreign"]),
        ],
    ):
        code, _, err = _run(capsys, *argv)
        assert code == 0, err
    for what, path in outs.items():
        p = read_protocol(path)
        assert p.input_kind == "event-frames" and p.dt_us is not None, what
        assert {n.spec.dt for n in p.neurons} == {p.dt_us}, (what, p.dt_us, [n.spec.dt for n in p.neurons])
    assert read_protocol(outs["foreign"]).dt_us == 300000 / 5
    assert read_protocol(outs["round trip at T=4"]).dt_us == read_protocol(outs["onnx"]).duration_us / 4
