"""Issue 12, torch-free half: atomic writes, output paths, the ONNX digest, event-input
validation on the clock-driven path and the SDK, memory/step bounds, data readers,
streaming ownership and the event engine's pending bound. Every case: the clear error
(or the correct result), never a traceback, a silent answer or a destroyed input."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import runtime
from runtime import cliargs
from runtime.data import DataError, load_dataset
from runtime.data.events import make_events
from runtime.event import EventInputError
from runtime.event import engine as engine_module
from runtime.event.engine import load_event
from runtime.fileio import STALE_S, OutputPathError, check_output, write_atomic
from runtime.integrity import KEY as DIGEST_KEY
from runtime.protocol import ModelError, read_model
from runtime.session import InputError

from .conftest import ROOT, one_error, run_main
from .event_fixtures import chain_model
from .runtime_fixtures import save, tiny_model


def _cli(capsys, module: str, *argv: str) -> tuple[int, str, str]:
    """``python -m MODULE ARGV`` in-process: (exit code, stdout, stderr)."""
    main = {"runtime": "runtime.cli", "edge": "edge.cli", "edge.pi.parity": "edge.pi.parity"}[module]
    return run_main(__import__(main, fromlist=["main"]).main, capsys, *argv)


@pytest.fixture
def event_onnx(tmp_path) -> Path:
    return Path(save(tiny_model(kind="event-frames"), tmp_path / "e.onnx"))


@pytest.fixture
def static_onnx(tmp_path) -> Path:
    return Path(save(tiny_model(), tmp_path / "s.onnx"))


def test_data_of_another_kind_than_the_models_is_refused(tmp_path, capsys, event_onnx, static_onnx):
    """Static images of an event model's input shape ran as frames of repeated pixels (20%
    accuracy, the pixels costed as input events), and event frames a static model, without
    a word, in runtime run, calibrate-exit and run_dataset (Session.run refused both)."""
    from runtime import load
    from runtime.data import DataError, load_dataset
    from runtime.evaluate import run_dataset

    rng = np.random.default_rng(0)
    images = tmp_path / "images.npz"
    np.savez(images, images=rng.random((20, 2, 20, 20), dtype=np.float32), labels=np.arange(20) % 10)
    code, _, err = _cli(capsys, "runtime", "run", str(event_onnx), "--data", f"npz:{images}")
    one_error(code, err, f"data 'npz:{images}' holds static images, but {event_onnx} was trained on event streams")
    out = tmp_path / "cal.onnx"
    code, _, err = _cli(capsys, "runtime", "calibrate-exit", str(event_onnx), "--data", f"npz:{images}", "-o", str(out))
    one_error(code, err, "holds static images, but")
    assert not out.exists()
    with pytest.raises(DataError, match="holds static images, but the model was trained on event streams"):
        run_dataset(load(str(event_onnx)), load_dataset(f"npz:{images}", "test"), "fixed:2")
    code, _, err = _cli(capsys, "runtime", "run", str(static_onnx), "--data", "digits", "--limit", "5")
    assert code == 2 and "holds event streams, but" in err and "was trained on static images" in err, err


# ---- 1. never destroy an input; atomic writes ------------------------------------------
@pytest.mark.parametrize("link", ["same", "hard link", "symlink"])
def test_output_that_is_an_input_is_refused(tmp_path, link):
    src = tmp_path / "m.onnx"
    src.write_bytes(b"model")
    out = {"same": src, "hard link": tmp_path / "h.onnx", "symlink": tmp_path / "s.onnx"}[link]
    if link == "hard link":
        os.link(src, out)
    elif link == "symlink":
        out.symlink_to(src)
    with pytest.raises(OutputPathError, match="is the input"):
        check_output(out, src)
    assert src.read_bytes() == b"model"


def test_empty_output_path_is_refused():
    with pytest.raises(OutputPathError, match="empty"):
        check_output("", "in.pt")


def test_outputs_that_would_replace_something_else_are_refused(tmp_path):
    """A trailing separator wrote a file named like the missing folder; a FIFO or device
    was replaced by a regular file (as root, `-o /dev/null` replaced /dev/null); a file of
    a data set's folder given as the output was overwritten (a model over the MNIST images)."""
    with pytest.raises(OutputPathError, match="names a folder"):
        check_output(f"{tmp_path}/newdir/")
    # ... said at parse time, as every other path problem (`argument -o/--out: ...`), not later
    with pytest.raises(argparse.ArgumentTypeError, match="names a folder"):
        cliargs.output_path(f"{tmp_path}/m.onnx/")
    os.mkfifo(tmp_path / "fifo.onnx")
    with pytest.raises(OutputPathError, match="not a regular file"):
        check_output(tmp_path / "fifo.onnx")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train-images.gz").write_bytes(b"images")
    with pytest.raises(OutputPathError, match="is a file of the input folder"):
        check_output(data / "train-images.gz", "m.pt", data)
    assert check_output(data / "new.pt", "m.pt", data) == data / "new.pt"  # a new file there is no loss


@pytest.mark.parametrize("writer", ["torch.save", "torch.jit.save", "np.savez"])
def test_a_size_limit_in_the_native_writers_is_one_error(tmp_path, writer):
    """torch's C++ writers aborted the process (torchscript, pt2: exit 134, a C++ stack) or
    raised an unnamed RuntimeError (a checkpoint) on a full disk or `ulimit -f`, leaving the
    temporary file; np.savez appended .npz to the temporary name. Serialised in memory
    first, Python's own write reports it."""
    dump = {
        "torch.save": "torch.save({'w': torch.zeros(10000)}, f)",
        "torch.jit.save": "torch.jit.save(torch.jit.script(torch.nn.Linear(100, 100)), f)",
        "np.savez": "np.savez(f, a=np.zeros(10000))",
    }[writer]
    code = (
        "import resource, sys, torch, numpy as np\n"
        "from runtime.fileio import write_serialized, OutputPathError\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))\n"
        f"try:\n write_serialized(sys.argv[1], lambda f: {dump})\n"
        "except OutputPathError as e:\n print('refused:', e)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and "refused: cannot write" in r.stdout and "File too large" in r.stdout, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_speck_describe_over_the_model_is_refused(static_onnx, capsys):
    before = static_onnx.read_bytes()
    code, _, err = _cli(capsys, "edge", "speck", str(static_onnx), "--describe", str(static_onnx))
    one_error(code, err, "is the input")
    assert static_onnx.read_bytes() == before


def test_sigterm_mid_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit):
        write_atomic(target, write)
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == before  # the caller's handler is back


def test_a_callers_own_sigterm_handler_runs_during_a_write(tmp_path):
    """write_atomic replaced any SIGTERM handler with its own: an app embedding the SDK saw
    its handler bypassed and SystemExit(143) come out of export_onnx / save_checkpoint. Its
    handler now runs; one that raises still leaves no temporary file."""
    seen: list[int] = []

    def app_handler(signum: int, frame: object) -> None:
        seen.append(signum)

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGTERM)
        tmp.write_bytes(b"whole")

    before = signal.signal(signal.SIGTERM, app_handler)
    try:
        write_atomic(tmp_path / "out.bin", write)  # the app decides: it goes on here
        assert seen == [signal.SIGTERM] and (tmp_path / "out.bin").read_bytes() == b"whole"

        def app_stops(signum: int, frame: object) -> None:
            raise RuntimeError("app shutting down")

        signal.signal(signal.SIGTERM, app_stops)
        with pytest.raises(RuntimeError, match="app shutting down"):
            write_atomic(tmp_path / "other.bin", write)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no temporary left
        assert signal.getsignal(signal.SIGTERM) is app_stops
    finally:
        signal.signal(signal.SIGTERM, before)


def test_ctrl_c_before_the_write_begins_leaves_nothing(tmp_path, monkeypatch):
    """The temporary file is created, closed and given its mode before the write: a Ctrl-C
    there (a stranger hit it during fit's checkpoint save) left an empty hidden file."""
    import runtime.fileio as fileio

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, "chmod", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "out.onnx", lambda tmp: tmp.write_bytes(b"x"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_an_interrupt_as_the_temporary_file_is_created_leaves_nothing(tmp_path, sig):
    """A SIGTERM between the temporary's creation and the try that removes it left it
    behind (fit's every-epoch checkpoint, stopped by a scheduler, now and then): the signal
    waits until its removal is armed."""
    code = (
        "import os, signal, sys, tempfile\n"
        "from pathlib import Path\n"
        "from runtime import fileio\n"
        "real = tempfile.mkstemp\n"
        "def mkstemp(*a, **k):\n"
        "    made = real(*a, **k)\n"
        f"    os.kill(os.getpid(), signal.{sig})  # the temporary exists; write_atomic has no name for it yet\n"
        "    return made\n"
        "tempfile.mkstemp = mkstemp\n"
        "with fileio.interrupts_remembered():\n"
        "    try:\n"
        "        fileio.write_atomic(Path(sys.argv[1]) / 'a.onnx', lambda tmp: tmp.write_bytes(b'x'))\n"
        "    except KeyboardInterrupt as e:\n"
        "        print(type(e).__name__)\n"
        "print(sorted(p.name for p in Path(sys.argv[1]).iterdir()))\n"
    )
    argv = [sys.executable, "-c", code, str(tmp_path)]
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    raised = "Terminated" if sig == "SIGTERM" else "KeyboardInterrupt"
    assert p.stdout.splitlines() == [raised, "[]"], p.stdout + p.stderr


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    """SIGKILL (the OOM killer's) runs no cleanup: a writer killed mid-write left a hidden
    copy as large as the artifact. The next write of that name removes it; one whose writer
    still runs stays."""
    target = tmp_path / "model.pt"
    code = (
        "import os, signal, sys\n"
        "from runtime.fileio import write_atomic\n"
        "def write(tmp):\n"
        "    tmp.write_bytes(b'x' * 100_000)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "write_atomic(sys.argv[1], write)\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(target)], cwd=ROOT, capture_output=True, timeout=120)
    assert p.returncode == -signal.SIGKILL
    (left,) = tmp_path.iterdir()  # the case this is about: a hidden 100 kB file
    assert left.name.startswith(".model.pt.tmp.") and left.stat().st_size == 100_000
    write_atomic(target, lambda tmp: tmp.write_bytes(b"new"))
    assert left.exists()  # just written: its writer may run where this process cannot see it
    old = time.time() - STALE_S - 1
    os.utime(left, (old, old))
    dead_pid = int(left.name.split(".")[4])
    kept = [
        tmp_path / f".model.pt.tmp.{os.getppid()}.abcdefgh.pt",  # a writer that still runs
        tmp_path / f".model.pt.tmp.{dead_pid}.mybackup",  # a user's file: not of the form
        tmp_path / ".model.pt.tmp.abcdefgh.pt",  # no pid in its name
    ]
    for f in kept:
        f.write_bytes(b"?")
        os.utime(f, (old, old))
    write_atomic(target, lambda tmp: tmp.write_bytes(b"newer"))
    assert sorted(tmp_path.iterdir()) == sorted([target, *kept]) and target.read_bytes() == b"newer"


def test_disk_full_is_one_error_and_leaves_nothing(tmp_path):
    def write(tmp: Path) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputPathError, match="No space left on device"):
        write_atomic(tmp_path / "out.bin", write)
    assert list(tmp_path.iterdir()) == []


def test_file_size_limit_is_an_error_not_a_kill(tmp_path):
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000)); "
        "from runtime.fileio import write_atomic, OutputPathError\n"
        "try:\n write_atomic(sys.argv[1], lambda t: t.write_bytes(b'x' * 100000))\n"
        "except OutputPathError as e:\n print('refused:', e)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "big.bin")], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "refused: cannot write" in r.stdout, r.stderr
    assert list(tmp_path.iterdir()) == []


# ---- 2. bounded resources ----------------------------------------------------------------
def test_bench_batch_beyond_memory_is_refused_before_allocating(static_onnx, capsys, monkeypatch):
    monkeypatch.setenv("FLEXSNN_MAX_MEMORY", "1M")
    code, _, err = _cli(capsys, "runtime", "bench", str(static_onnx), "--batch-size", "100000", "--T", "2")
    one_error(code, err, "needs about", "1.0 MiB is available")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["bench", "{m}", "--batch-size", "3000000"], "--batch-size must be a positive integer"),
        (["run", "{m}", "--data", "digits:static", "--policy", "fixed:100000000"], "at most 100000"),
        (["tradeoff", "{m}", "--data", "digits:static", "--tmax", "1e8"], "--tmax must be a positive integer"),
        (["tradeoff", "{m}", "--data", "digits:static", "--tmax", "0"], "--tmax must be a positive integer"),
        (["event-bench", "{m}", "--data", "digits", "--T", "1e8"], "--T must be a positive integer"),
        (["event-bench", "{m}", "--data", "digits", "--T", "0"], "--T must be a positive integer"),
        (["event-bench", "{m}", "--data", "digits", "--T", "-5"], "--T must be a positive integer"),
        (["event-bench", "{m}", "--data", "digits", "--repeats", "0"], "--repeats must be a positive integer"),
        (["run", "{m}", "--data", "digits:static", "--batch-size", "0"], "--batch-size must be a positive integer"),
        (["tradeoff", "{m}", "--data", "digits:static", "--plot", "{d}/no/such/dir/p.png"], "does not exist"),
        (["tradeoff", "{m}", "--data", "digits:static", "--plot", "{d}/curves"], "ending in .png"),
        (["tradeoff", "{m}", "--data", "digits:static", "--plot", "{d}"], "it is a folder"),
        (["tradeoff", "{m}", "--data", "digits:static", "--thresholds", "nan"], "finite"),
        (["tradeoff", "{m}", "--data", "digits:static", "--tmin", "7"], "--tmin must be in [1, tmax=4], got 7"),
        (["calibrate-exit", "{m}", "--binning", "fixed", "--out", "{d}/c.onnx"], "takes static images, which are not"),
        # a percentage of samples (200 was taken); an ONNX file was written under a plot's name
        (["calibrate-exit", "{m}", "--budget", "200", "--out", "{d}/c.onnx"], "must be a number in [0.0, 100.0]"),
        (["calibrate-exit", "{m}", "--out", "{d}/c.png"], ".png names a PNG plot (--plot); expected a .onnx path"),
        # flags a run does not read are refused, not ignored
        (["run", "{m}", "--mode", "event", "--backend", "exact"], "only that run reads --backend; add --json"),
        (["run", "{m}", "--mode", "event", "--threads", "2", "--binning", "fixed"], "only that run reads --binning"),
        (["run", "{m}", "--mode", "event", "--threads", "4096"], "--threads must be a non-negative integer"),
        (["run", "{m}", "--backend", "exact", "--threads", "2"], "backend exact runs one thread"),  # was ignored
        (["run", "{m}", "--data", "digits:static", "--binning", "fixed"], "takes static images, which are not binned"),
        (["tradeoff", "{m}", "--data", "digits:static", "--backend", "exact", "--threads", "0"], "runs one thread"),
    ],
)
def test_runtime_cli_numbers_are_one_error_line(static_onnx, capsys, argv, needle):
    argv = [a.format(m=static_onnx, d=static_onnx.parent) for a in argv]
    code, _, err = _cli(capsys, "runtime", *argv)
    one_error(code, err, needle)


def test_calibrate_exit_chooses_on_the_trained_bins(tmp_path, capsys):
    """The stored default bins as trained: a policy chosen on other bins misstated its
    figures (runtime run of such a file gave 93.6% for a stored 71.4%)."""
    events = save(tiny_model("event-frames", classes=10, T=6), tmp_path / "e.onnx")
    argv = ["calibrate-exit", str(events), "--data", "digits", "--binning", "fixed", "--out", str(tmp_path / "c.onnx")]
    code, _, err = _cli(capsys, "runtime", *argv)
    one_error(code, err, "its runs bin as it was trained (equal)")


def test_class_names_that_do_not_match_the_readout_are_refused_on_load(tmp_path, capsys):
    """Metadata naming fewer classes than the graph's readout gives: refused when the file
    is read, for every backend (was an onnxruntime shape traceback in the numba backend)."""
    m = tiny_model()
    meta = json.loads(m.metadata_props[0].value)
    meta["classes"] = meta["classes"][:2]  # the readout gives 10
    m.metadata_props[0].value = json.dumps(meta)
    path = save(m, tmp_path / "c.onnx")
    for backend in ("numba", "ort"):
        code, _, err = _cli(capsys, "runtime", "run", path, "--data", "digits:static", "--backend", backend)
        one_error(code, err, "the readout y has 10 outputs per sample but the metadata names 2 classes")


@pytest.mark.parametrize(
    "field, value, needle",
    [
        (
            ("states", 0, "shape"),
            [4, 8, 1],
            "state 'state_0' the per-sample shape 4x8x1, but the graph's input 'state_0' is 4x8x8",
        ),
        (("states", 0, "shape"), [4, 8], "state 'state_0' the per-sample shape 4x8"),
        (("input", "shape"), [1, 8, 9], "the input the per-sample shape 1x8x9, but the graph's input 'x' is 1x8x8"),
    ],
)
def test_metadata_shapes_the_graph_contradicts_are_refused_on_load(tmp_path, field, value, needle):
    """Found by experiments/fuzz_cli.py (seed 7): a state shape edited in the metadata was an
    onnxruntime shape traceback mid-run (clock), and ran on regardless in the event engine."""
    m = tiny_model()
    meta = json.loads(m.metadata_props[0].value)
    *where, key = field
    target = meta
    for k in where:
        target = target[k]
    target[key] = value
    m.metadata_props[0].value = json.dumps(meta)
    path = save(m, tmp_path / "s.onnx")
    for load in (runtime.load, load_event):
        with pytest.raises(ModelError, match=re.escape(needle)):
            load(path)


@pytest.mark.parametrize(
    "head, what",
    [(b"PK\x03\x04", "is a zip archive (a torch checkpoint"), (b"\x89HDF\r\n\x1a\n", "is an HDF5 file (a NIR graph?)")],
)
@pytest.mark.parametrize("argv", [("edge", "speck", "--check"), ("runtime", "run"), ("runtime", "bench")])
def test_a_checkpoint_or_nir_file_given_for_a_model_names_the_export_step(tmp_path, capsys, head, what, argv):
    """Found by a stranger's tour: `edge speck model.pt` said "not a readable ONNX file
    (DecodeError); it may be corrupted", of a valid checkpoint."""
    path = tmp_path / "m.pt"
    path.write_bytes(head + b"\0" * 64)
    module, command, *rest = argv
    code, _, err = _cli(capsys, module, command, str(path), *rest)
    one_error(code, err, what, f"python -m export {path}")
    assert path.read_bytes() == head + b"\0" * 64


@pytest.mark.parametrize(
    "argv",
    [
        ("runtime", "run"),
        ("runtime", "run", "--mode", "event"),
        ("runtime", "tradeoff"),
        ("edge", "speck", "--emulate"),
    ],
)
def test_data_with_more_classes_than_the_readout_is_refused(tmp_path, capsys, argv):
    """Found by a stranger's tour: a model run on a data set of its input shape with more
    classes (10 on 11) printed an accuracy, though a label past its readout is never predicted."""
    path = save(chain_model(sensor=(2, 20, 20), classes=3), tmp_path / "m3.onnx")
    module, command, *rest = argv
    code, _, err = _cli(capsys, module, command, path, "--data", "digits", "--limit", "8", *rest)
    one_error(code, err, f"has 10 classes, but {path} reads out 3")


def test_event_bench_runs_lazily_read_recordings(tmp_path, capsys):
    """Found by a stranger's tour: event-bench on a tonic data set (or any model trained with
    --transform) said "expected a non-empty list of event streams, got LazyEvents"."""
    m = chain_model(sensor=(2, 16, 20), classes=11)
    meta = json.loads(m.metadata_props[0].value)
    meta["classes"] = [f"bar {k}" for k in range(11)]  # the data's classes (a model of other ones is refused)
    m.metadata_props[0].value = json.dumps(meta)
    path = save(m, tmp_path / "m.onnx")
    data = f"tonic:tests.tonic_fixtures.Synthetic11:{tmp_path}"
    code, out, err = _cli(capsys, "runtime", "event-bench", path, "--data", data, "--limit", "3", "--repeats", "1")
    assert code == 0, err
    assert "events/s" in out


def test_a_stored_data_spec_that_does_not_load_says_where_it_came_from(tmp_path, capsys):
    """A relative path stored at training broke from any other folder, and the message read
    as if the user had typed it (no word of the model, nor of --data)."""
    m = tiny_model()
    meta = json.loads(m.metadata_props[0].value)
    meta["data"] = "nmnist:../shared/data/nmnist-moved"
    m.metadata_props[0].value = json.dumps(meta)
    path = save(m, tmp_path / "m.onnx")
    code, _, err = _cli(capsys, "runtime", "run", path)
    one_error(code, err, "is not a directory", f"as stored in {path} when it was trained; pass --data")
    code, _, err = _cli(capsys, "runtime", "run", path, "--data", "nmnist:../shared/data/nmnist-moved")
    one_error(code, err, "is not a directory")  # typed by the user: said as is
    assert "as stored in" not in err


def test_trained_T_of_a_billion_is_refused(tmp_path, capsys):
    m = tiny_model()
    meta = json.loads(m.metadata_props[0].value)
    meta["T_trained"] = 10**9
    m.metadata_props[0].value = json.dumps(meta)
    path = save(m, tmp_path / "t.onnx")
    code, _, err = _cli(capsys, "runtime", "run", path, "--data", "digits:static", "--limit", "4")
    one_error(code, err, "1000000000 time steps", "at most 100000")


def test_pi_bench_threads_are_bounded(static_onnx, capsys):
    code, _, err = _cli(capsys, "edge", "pi-bench", str(static_onnx), "--max-threads", "100000")
    one_error(code, err, "--max-threads must be a positive integer")


# ---- 3. ONNX integrity -------------------------------------------------------------------
def test_onnx_bit_flips_in_weights_are_caught(static_onnx):
    data = static_onnx.read_bytes()
    m = onnx.load(str(static_onnx))
    flips = 0
    for init in m.graph.initializer:
        raw = numpy_helper.to_array(init).tobytes()
        at = data.find(raw)
        assert at >= 0
        for k in range(0, len(raw), max(1, len(raw) // 4)):
            bad = bytearray(data)
            bad[at + k] ^= 0x10
            static_onnx.write_bytes(bytes(bad))
            with pytest.raises(ModelError, match="has changed since export: its graph, weights"):
                read_model(static_onnx)
            flips += 1
    assert flips >= 8


def test_a_users_own_metadata_key_is_no_corruption_the_protocols_is(static_onnx):
    """An `owner` key added to an exported file made it "corrupted: its graph or weights do
    not match": the digest covers the graph, weights and the product's own keys only."""
    m = onnx.load(str(static_onnx))
    m.metadata_props.add(key="owner", value="team-a")
    onnx.save(m, str(static_onnx))
    read_model(static_onnx)
    protocol = next(p for p in m.metadata_props if p.key == "flexsnn.protocol")
    protocol.value = protocol.value.replace('"readout"', '"readout" ', 1)  # same JSON, other bytes
    onnx.save(m, str(static_onnx))
    with pytest.raises(ModelError, match="graph, weights or protocol metadata"):
        read_model(static_onnx)


def test_onnx_without_digest_loads_with_a_note(tmp_path, capsys):
    m = tiny_model()
    path = tmp_path / "old.onnx"
    onnx.save(m, str(path))  # as written before digests existed
    assert DIGEST_KEY not in {p.key for p in onnx.load(str(path)).metadata_props}
    runtime.load(path)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "carries no weight digest" in err


def test_onnx_external_data_is_refused_clearly(tmp_path):
    m = tiny_model()
    path = tmp_path / "ext.onnx"
    onnx.save(
        m, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin", size_threshold=0
    )
    (tmp_path / "w.bin").unlink()
    with pytest.raises(ModelError, match="external data") as e:
        read_model(path)
    assert "corrupted" not in str(e.value)


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda meta: meta["neurons"][0]["spec"].__setitem__("v_th", "abc"), "abc"),
        (lambda meta: meta.__setitem__("neurons", []), "does not describe"),
        (lambda meta: meta.__setitem__("T_range", [5, 1]), "T_range"),
        (lambda meta: meta["input"].__setitem__("shape", [10**6, 10**6, 3]), "elements per sample"),
    ],
)
def test_bad_protocol_metadata_is_a_model_error(tmp_path, change, needle):
    m = tiny_model()
    meta = json.loads(m.metadata_props[0].value)
    change(meta)
    m.metadata_props[0].value = json.dumps(meta)
    with pytest.raises(ModelError, match=needle):
        read_model(save(m, tmp_path / "m.onnx"))


def test_a_neuron_whose_dt_is_not_the_inputs_step_is_refused_on_load(tmp_path):
    """µs per step is stored twice in an event model's file: the input's dt_us (what bins and
    stream windows step by) and each neuron's dt (what the event engine leaks by); a file where
    they differ was one model for the clock runtime and another for the event engine, unsaid."""
    m = tiny_model("event-frames")
    meta = json.loads(m.metadata_props[0].value)
    assert meta["neurons"][0]["spec"]["dt"] == meta["input"]["dt_us"] == 75_000.0
    meta["neurons"][0]["spec"]["dt"] = 1.0
    m.metadata_props[0].value = json.dumps(meta)
    with pytest.raises(ModelError, match=r"neuron 'LIF_0' has dt = 1 µs but the input steps by dt_us = 75000 µs"):
        read_model(save(m, tmp_path / "m.onnx"))
    # static images have no time base (flexsnn-onnx/1 files wrote a dt_us for them too): they load
    static = json.loads(tiny_model().metadata_props[0].value)
    assert static["input"]["dt_us"] == 75_000.0 and static["neurons"][0]["spec"]["dt"] == 1.0
    read_model(save(tiny_model(), tmp_path / "s.onnx"))


def test_conv_stride_zero_is_refused_in_event_mode(tmp_path):
    m = chain_model()
    for n in m.graph.node:
        if n.op_type == "Conv":
            for a in n.attribute:
                if a.name == "strides":
                    a.ints[:] = [0, 0]
    with pytest.raises(ModelError, match="strides"):
        load_event(save(m, tmp_path / "s0.onnx"))


# ---- 4. one event validation on every path ----------------------------------------------
def _stream(n: int = 50, seed: int = 0, sensor=(2, 20, 20)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(
        rng.integers(0, sensor[2], n),
        rng.integers(0, sensor[1], n),
        rng.integers(0, 2, n),
        np.sort(rng.integers(0, 1000, n)),
    )


def _with(field: str, value, dtype=None) -> np.ndarray:
    ev = _stream()
    if dtype is not None:
        ev = ev.astype([(f, dtype if f == field else ev.dtype[f]) for f in ev.dtype.names])
    ev[field][3] = value
    return ev


@pytest.mark.parametrize(
    "streams, needle",
    [
        ([_stream()[::-1].copy()], "not sorted"),
        ([_with("t", np.nan, "f8")], "NaN"),
        ([_with("x", 20)], "outside the sensor"),
        ([_with("y", -1)], "outside the sensor"),
        ([_with("x", 2**63 + 5, "u8")], "outside the sensor"),
        ([_with("t", 1e30, "f8")], "beyond"),
        ([_with("p", 2)], "polarity"),
    ],
)
def test_session_refuses_bad_streams(event_onnx, streams, needle):
    s = runtime.load(event_onnx)
    with pytest.raises(InputError, match=needle):
        s.run(streams)


def test_session_takes_uint64_fields_like_int16(event_onnx):
    s = runtime.load(event_onnx)
    ev = _stream()
    wide = ev.astype([("x", "u8"), ("y", "u8"), ("p", "u8"), ("t", "u8")])
    a, b = s.run([ev, ev]), s.run([wide, wide])
    assert np.array_equal(a.outputs, b.outputs) and np.array_equal(a.predictions, b.predictions)


def _nmnist_folder(root: Path, xs: list[int]) -> Path:
    """One recording per label in N-MNIST's binary format with x coordinates ``xs``."""
    for label in range(10):
        d = root / "train" / str(label)
        d.mkdir(parents=True)
        for i in (5 * label + 1, 5 * label + 5):  # one train, one test sample per label
            rec = bytearray()
            for k, x in enumerate(xs):
                t = 100 * k
                rec += bytes([x, 3, (1 << 7) | (t >> 16), (t >> 8) & 255, t & 255])
            (d / f"{i}.bin").write_bytes(bytes(rec))
    return root


def test_nmnist_events_outside_the_sensor_are_refused(tmp_path, capsys):
    root = _nmnist_folder(tmp_path, [1, 5, 34, 40])
    with pytest.raises(DataError, match="x outside the sensor"):
        load_dataset(f"nmnist:{root}", "test")


def test_nmnist_reader_stays_inside_the_folder(tmp_path):
    root = _nmnist_folder(tmp_path / "d", [1, 2, 3])
    outside = tmp_path / "secret.bin"
    outside.write_bytes(bytes(5))
    (root / "train" / "0" / "10.bin").symlink_to(outside)
    with pytest.raises(DataError, match="outside the data folder"):
        load_dataset(f"nmnist:{root}", "test")


@pytest.mark.parametrize("extra", ["10", "zero"])
def test_nmnist_folders_other_than_the_ten_digits_are_refused(tmp_path, extra):
    """Found by a stranger's tour: a train/10 folder of 20 recordings was left out without a
    word (10 classes, 20 samples fewer); 'zero' said only 'no N-MNIST .bin files'."""
    root = _nmnist_folder(tmp_path, [1, 2, 3])
    (root / "train" / extra).mkdir()
    (root / "train" / extra / "7.bin").write_bytes((root / "train" / "0" / "1.bin").read_bytes())
    with pytest.raises(DataError, match=rf"holds folders \['{extra}'\] besides the label folders.*named 0 to 9"):
        load_dataset(f"nmnist:{root}", "test")


def test_nmnist_recordings_past_the_formats_length_are_refused(tmp_path):
    """Binning spans N-MNIST's 316 ms: a folder of 0.5-1 s recordings lost 58% of its events
    without a word (the SDK refused the same streams)."""
    root = _nmnist_folder(tmp_path, [1, 2, 3])
    t = 400_000  # 0.4 s
    (root / "train" / "3" / "16.bin").write_bytes(bytes([1, 3, (1 << 7) | (t >> 16), (t >> 8) & 255, t & 255]))
    with pytest.raises(DataError, match=r"16.bin: events up to t = 400000 µs, past N-MNIST's 316 ms recordings"):
        load_dataset(f"nmnist:{root}", "train")


def test_mnist_images_of_another_size_keep_it(tmp_path):
    """IDX images of 17x23 were read as 1x28x28 data (a traceback in training's first step)."""
    root = tmp_path / "m"
    _mnist(root, images=_idx([4, 17, 23], bytes(4 * 17 * 23)))
    ds = load_dataset(f"mnist:{root}", "test")
    assert ds.shape == (1, 17, 23) and ds.images.shape == (4, 1, 17, 23)


def test_nmnist_fifo_is_refused_not_opened(tmp_path):
    root = _nmnist_folder(tmp_path, [1, 2, 3])
    os.mkfifo(root / "train" / "0" / "10.bin")
    with pytest.raises(DataError, match="not a regular file"):
        load_dataset(f"nmnist:{root}", "test")


# ---- 5/6. data readers: MNIST IDX --------------------------------------------------------
def _idx(dims: list[int], body: bytes) -> bytes:
    return bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + body


def _mnist(root: Path, images: bytes | None = None, labels: bytes | None = None, gz: bool = True) -> Path:
    root.mkdir(exist_ok=True)
    n = 4
    images = images if images is not None else _idx([n, 28, 28], bytes(n * 784))
    labels = labels if labels is not None else _idx([n], bytes([1, 2, 3, 4]))
    wrap = gzip.compress if gz else (lambda b: b)
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(wrap(images))
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(wrap(labels))
    return root


@pytest.mark.parametrize(
    "make, needle",
    [
        (
            lambda r: (r / "t10k-images-idx3-ubyte.gz").write_bytes(
                (r / "t10k-images-idx3-ubyte.gz").read_bytes()[:40]
            ),
            "truncated or damaged",
        ),
        (
            lambda r: (r / "t10k-labels-idx1-ubyte.gz").write_bytes(
                (r / "t10k-labels-idx1-ubyte.gz").read_bytes()[:-8] + bytes(8)
            ),
            "truncated or damaged",
        ),
        (lambda r: _mnist(r, gz=False), "truncated or damaged"),  # raw IDX named .gz
        (lambda r: _mnist(r, labels=_idx([], b"")), "0 dimensions; expected 1"),
        (lambda r: _mnist(r, images=_idx([4, 784], bytes(4 * 784))), "2 dimensions; expected 3"),
        (lambda r: _mnist(r, labels=_idx([4], bytes([1, 2, 200, 4]))), "label 200"),
        (lambda r: _mnist(r, labels=_idx([4], bytes(4) + bytes(10**6))), "more bytes than its IDX header"),
        (lambda r: _mnist(r, images=_idx([2**20, 2**10, 2**10], b"")), "not a data set"),
    ],
)
def test_bad_mnist_files_are_one_data_error(tmp_path, make, needle):
    root = _mnist(tmp_path / "m")
    make(root)
    with pytest.raises(DataError, match=needle):
        load_dataset(f"mnist:{root}", "test")


def test_gzip_bomb_stops_at_the_header_size(tmp_path):
    root = _mnist(tmp_path / "m", labels=_idx([4], bytes(4) + bytes(50 * 2**20)))  # 50 MiB of zeros, tiny .gz
    assert (root / "t10k-labels-idx1-ubyte.gz").stat().st_size < 200_000
    with pytest.raises(DataError, match="more bytes"):
        load_dataset(f"mnist:{root}", "test")


# ---- 7. streaming ------------------------------------------------------------------------
def test_step_from_a_second_thread_is_refused(static_onnx):
    s = runtime.load(static_onnx)
    x = np.zeros((1, 1, 8, 8), np.float32)
    s.step(x)
    errors: list[Exception] = []
    th = threading.Thread(target=lambda: errors.extend(_catch(lambda: s.step(x))))
    th.start()
    th.join()
    assert len(errors) == 1 and "another thread" in str(errors[0])
    assert s.steps_done == 1  # the other thread's step did not enter this stream
    s.step(x)
    assert s.steps_done == 2


def _catch(fn) -> list[Exception]:
    try:
        fn()
    except InputError as e:
        return [e]
    return []


def test_pending_events_are_bounded(monkeypatch):
    from .test_event_engine import engine_of

    monkeypatch.setattr(engine_module, "MAX_PENDING", 100)
    eng = engine_of(chain_model())
    state = eng.initial_state()
    same_t = make_events(np.zeros(60), np.zeros(60), np.zeros(60), np.full(60, 7))
    state, _ = eng.feed(state, same_t)
    with pytest.raises(EventInputError, match="do not advance"):
        eng.feed(state, same_t)
    assert state.pending.shape[1] == 60  # the state is left as it was: flush still works
    eng.flush(state)


def test_a_reader_that_goes_away_ends_a_command_quietly():
    """`python -m runtime run ... | head -1`: once the reader has closed the pipe, the CLI
    stops with exit 1 and no traceback (every CLI's main runs inside report.guarded)."""
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first write: EPIPE on every write, no race
    code = "from runtime.report import guarded; guarded((), lambda: print('row\\n' * 50000))"
    p = subprocess.run([sys.executable, "-c", code], stdout=w, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    os.close(w)
    assert p.returncode == 1 and p.stderr == "", p.stderr


def test_a_ctrl_c_swallowed_by_a_finaliser_still_ends_the_command_unpublished(tmp_path):
    """A KeyboardInterrupt raised inside a weakref callback is printed by Python as
    "Exception ignored" and lost (Ctrl-C during `export --format nir`, 2 of 8 times): the
    command went on, wrote its output and exited 0. Now nothing is published, exit 130,
    and the one line is `interrupted`."""
    out = tmp_path / "out.bin"
    code = (
        "import os, signal, time, weakref\n"
        "from runtime.fileio import write_atomic\n"
        "from runtime.report import guarded\n"
        "class Node: pass\n"
        "def work():\n"
        "    n = Node()\n"
        # the signal arrives while the finaliser runs: its KeyboardInterrupt is unraisable
        "    weakref.finalize(n, lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.2)))\n"
        "    del n\n"
        "    print('went on', flush=True)\n"
        f"    write_atomic({str(out)!r}, lambda tmp: tmp.write_bytes(b'done'))\n"
        "guarded((), work)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.stdout == "went on\n"  # the case this is about: the signal did not stop the work
    assert p.returncode == 130 and p.stderr == "interrupted\n", p.stderr  # no "Exception ignored" trace
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("package", ["runtime", "export", "trainer", "edge"])
def test_a_ctrl_c_while_a_cli_loads_is_one_line(tmp_path, package):
    """`python -m PACKAGE` imports torch / onnx for seconds before its command runs: a Ctrl-C
    then printed a traceback of whichever module was loading. The CLI module is replaced by
    one whose import is interrupted; its package's `__main__` must end with one line."""
    fake = tmp_path / package
    fake.mkdir()
    # the real package's other modules (runtime.report) are found behind the fake cli.py
    # whatever the install (an editable one's finder did it; a plain one did not)
    (fake / "__init__.py").write_text(f"__path__.append({str(ROOT / package)!r})\n")
    (fake / "cli.py").write_text("raise KeyboardInterrupt  # Ctrl-C while the imports load\n")
    main = (ROOT / package / "__main__.py").read_text()
    (fake / "__main__.py").write_text(main)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    p = subprocess.run([sys.executable, "-m", package], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert p.returncode == 130 and p.stderr == "interrupted\n", p.stderr


@pytest.mark.parametrize(
    "sig, status, line", [(signal.SIGINT, 130, "interrupted\n"), (signal.SIGTERM, 143, "interrupted (SIGTERM)\n")]
)
def test_ctrl_c_ends_a_command_with_one_line(sig, status, line):
    """Ctrl-C during a command: `interrupted` on stderr, exit status 130, no traceback.
    SIGTERM (cron, systemd, a container's stop) killed the process without a word: it ends
    as Ctrl-C does (fit's resume note too), with its own status."""
    code = (
        "import time\nfrom runtime.report import guarded\n"
        "guarded((), lambda: (print('ready', flush=True), time.sleep(60)))"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert p.stdout is not None and p.stdout.readline() == "ready\n"
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    assert p.returncode == status and err == line, err


def test_json_nested_past_the_parsers_recursion_is_one_error(static_onnx, tmp_path, capsys):
    """A stranger's hostile tour: JSON nested 100,000 deep in a model's metadata, a parity
    result or a snapshot's description was a RecursionError traceback (only JSONDecodeError
    was caught); a FIFO named .json blocked parity compare and /dev/zero was read until
    memory ran out."""
    deep = "[" * 100_000 + "]" * 100_000
    m = onnx.load(str(static_onnx))
    for p in m.metadata_props:
        if p.key == "flexsnn.protocol":
            p.value = deep
    bad = save(m, tmp_path / "deep.onnx")
    code, _, err = _cli(capsys, "runtime", "run", bad, "--limit", "2")
    one_error(code, err, "nested too deeply")
    (tmp_path / "deep.json").write_text(deep)
    code, _, err = _cli(capsys, "edge.pi.parity", "compare", str(tmp_path / "deep.json"), str(tmp_path / "deep.json"))
    one_error(code, err, "nested too deeply")
    fifo = tmp_path / "f.json"
    os.mkfifo(fifo)
    code, _, err = _cli(capsys, "edge.pi.parity", "compare", str(fifo), str(tmp_path / "deep.json"))
    one_error(code, err, "f.json is not a regular file")


@pytest.mark.parametrize("op", ["Loop", "ConstantOfShape"])
def test_a_graph_with_an_op_of_unbounded_work_is_refused(static_onnx, tmp_path, capsys, op):
    """A stranger's hostile tour: a Loop on a true condition hung runtime run and bench (the
    event engine refused it), a ConstantOfShape of [2^20, 2^20, 2^10] was onnxruntime's
    allocation traceback. No product export writes either: refused before any session."""
    m = onnx.load(str(static_onnx))
    m.graph.node.append(onnx.helper.make_node(op, ["y"], ["unused"], name="bomb"))
    bad = save(m, tmp_path / "bomb.onnx")
    for cmd in (["run", bad, "--limit", "2"], ["bench", bad, "--T", "2", "--repeats", "1"]):
        code, _, err = _cli(capsys, "runtime", *cmd)
        one_error(code, err, f"node 'bomb' is a {op}: an op whose work or memory the file sets without bound")


def _under_file_size_limit(tmp_path, body: str) -> subprocess.CompletedProcess:
    """``body`` run by report.guarded in a fresh process whose files may not exceed 1 KB
    (``ulimit -f 1``), with an empty numba cache folder."""
    (tmp_path / "kern.py").write_text("from numba import njit\n@njit(cache=True)\ndef f(x):\n    return x + 1\n")
    code = f"import kern\nfrom runtime.report import guarded\nguarded((), lambda: {body})\n"
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, preexec_fn=limit, timeout=120
    )


def test_a_compile_cache_that_cannot_be_written_is_one_error_line(tmp_path):
    """numba writes its cache on a kernel's first call, in read-only commands too (`runtime
    run`): under `ulimit -f` that was an OSError traceback from numba's caching module."""
    p = _under_file_size_limit(tmp_path, "kern.f(1)")
    assert p.returncode == 2 and p.stderr.startswith("error: numba could not write its compile cache (File too")
    assert len(p.stderr.splitlines()) == 1, p.stderr
    other = _under_file_size_limit(tmp_path, "open('/no/such/dir/f')")  # an OSError not numba's: not hidden
    assert other.returncode == 1 and "Traceback" in other.stderr and "FileNotFoundError" in other.stderr


def test_kernels_compile_where_numba_finds_no_writable_cache(tmp_path, static_onnx):
    """A read-only install with a read-only home (numba's two cache places) crashed `runtime
    run` at import: "cannot cache function ...: no locator available" (a stranger's tour,
    under a read-only bind mount). numba is left here only its user-provided locator, with
    NUMBA_CACHE_DIR unset: what it finds on such a machine."""
    code = (
        "import numba, numba.core.caching as c\n"
        "c.CacheImpl._locator_classes = [c.UserProvidedCacheLocator]\n"
        "try:\n"
        "    numba.njit(cache=True)(lambda x: x)\n"
        "    raise SystemExit('the simulation failed: numba found a cache place')\n"
        "except RuntimeError as e:\n"
        "    assert 'no locator available' in str(e), e\n"
        "from runtime.event import kernel\n"  # the event kernels and the policy scores, compiled at import or first use
        "from runtime.policies import compiled_scores\n"
        "compiled_scores()\n"
        "print(numba.config.CACHE_DIR)\n"
        "from runtime.cli import main\n"  # the clock kernels (backend numba), in a command
        f"main(['run', {str(static_onnx)!r}, '--data', 'digits:static', '--limit', '4', '--backend', 'numba'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(TMPDIR=str(tmp_path), PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    cache = Path(p.stdout.splitlines()[0])
    assert cache.parent == tmp_path and cache.name.startswith("flexsnn-numba-cache-")
    assert any(cache.rglob("*.nbi")), "nothing cached there"


def test_a_run_warning_no_command_collected_is_one_warning_line():
    """NonFiniteReadoutWarning came out of calibrate-exit and pi-bench in Python's
    file:line form (two lines, the source quoted); a command shows every RunWarning as one
    `warning:` line and other warnings as Python does."""
    code = (
        "import warnings\nfrom runtime.errors import NonFiniteReadoutWarning\nfrom runtime.report import guarded\n"
        "guarded((), lambda: (warnings.warn('readouts overflowed', NonFiniteReadoutWarning),"
        " warnings.warn('a library note', UserWarning)))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    lines = p.stderr.splitlines()
    assert p.returncode == 0 and lines[0] == "warning: readouts overflowed", p.stderr
    assert "UserWarning: a library note" in lines[1]  # Python's own form, untouched
