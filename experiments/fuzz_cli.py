"""Bad-input fuzz run behind the table in docs/hardening.md (issue 12).

Tries hostile and careless inputs on every CLI (in-process, through each ``main``), the
SDK and the data readers, and classifies each outcome:

* clear error   - exit 2 with exactly one ``error:`` line (``note:`` lines aside), or the
                  SDK's documented error class with a message;
* correct       - an input that is valid, or a corrupted copy whose content is intact
                  (a bit flip in zip padding), ran and gave the same result as the original;
* traceback     - any other exception, or an exit status other than 0/2;
* silently wrong - exit 0 (or a result) for an input that must be refused, or a result
                  that differs from the original's for a corrupted copy;
* data lost     - an input file changed by the command.

    OMP_NUM_THREADS=1 python experiments/fuzz_cli.py [--seed 0] [--flips 300] [--json out.json]

Deterministic for a seed here (another clone's reruns moved one case between "clear
error" and "correct": docs/hardening.md); about 3 minutes on one core. Needs torch (it trains a tiny
model first) and scikit-learn (the digits data).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from runtime import cliargs  # noqa: E402

torch.set_num_threads(1)

OUTCOMES = ("clear error", "correct", "traceback", "silently wrong", "data lost")
results: dict[str, Counter] = defaultdict(Counter)
examples: dict[str, list[str]] = defaultdict(list)


def record(group: str, outcome: str, case: str) -> None:
    results[group][outcome] += 1
    if outcome in ("traceback", "silently wrong", "data lost") and len(examples[group]) < 5:
        examples[group].append(f"{outcome}: {case}")


def call_cli(module: str, argv: list[str]) -> tuple[int, str]:
    """(exit code or -1 for an escaped exception, stderr)."""
    main = __import__(f"{module}.cli", fromlist=["main"]).main
    err, out = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException as e:
            err.write(f"Traceback: {type(e).__name__}: {e}\n")
            code = -1
    return code, err.getvalue()


def is_clear(code: int, err: str) -> bool:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("note: ")]
    return code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err


def digest_files(paths: list[Path]) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths if p.is_file()}


def expect_error(group: str, module: str, argv: list[str], inputs: list[Path]) -> None:
    before = digest_files(inputs)
    code, err = call_cli(module, argv)
    case = f"python -m {module} {' '.join(argv)}"
    if any(not p.is_file() or p.read_bytes() != b for p, b in before.items()):
        record(group, "data lost", case)
        for p, b in before.items():  # restore for the next case
            p.unlink(missing_ok=True)
            p.write_bytes(b)
    elif is_clear(code, err):
        record(group, "clear error", case)
    elif code == 0:
        record(group, "silently wrong", case)
    else:
        record(group, "traceback", case + " -> " + err.strip().splitlines()[-1][:160] if err.strip() else case)


# ---- the artifacts -------------------------------------------------------------------------
def make_models(work: Path) -> dict[str, Path]:
    tiny = "--epochs 1 --limit-train 64 --limit 32 --width 4 --batch-size 32 --tmax 3 --quiet".split()
    paths = {"ev_pt": work / "ev.pt", "st_pt": work / "st.pt", "ev_onnx": work / "ev.onnx", "st_onnx": work / "st.onnx"}
    for data, key, extra in (("digits", "ev", ["--no-bias", "--norm", "none"]), ("digits:static", "st", [])):
        # the event model: no biases, no BatchNorm, so the event-driven engine runs it too
        code, err = call_cli("trainer", ["fit", "--data", data, *tiny, *extra, "--out", str(paths[f"{key}_pt"])])
        assert code == 0, err
        code, err = call_cli("export", [str(paths[f"{key}_pt"]), "-o", str(paths[f"{key}_onnx"])])
        assert code == 0, err
    return paths


BAD_INT = ["0", "-1", "-5", "1e30", "inf", "nan", "abc", "", "1.5", "0x10", "1e400"]
BAD_INT0 = [v for v in BAD_INT if v != "0"]  # options where 0 is valid
BAD_FLOAT_POS = ["0", "-1", "inf", "-inf", "nan", "abc", "", "1e400"]
BAD_UNIT = ["-0.1", "1.5", "inf", "nan", "abc", ""]
HUGE_T = ["1e8", "100000000", "1000001"]
HUGE_BATCH = ["3000000", "1e12"]


def cli_numbers(m: dict[str, Path], work: Path) -> None:
    g = "CLI numbers"
    ev, st, evp = str(m["ev_onnx"]), str(m["st_onnx"]), str(m["ev_pt"])
    ins = [m["ev_onnx"], m["st_onnx"], m["ev_pt"], m["st_pt"]]
    tiny_fit = [
        *"fit --epochs 1 --limit-train 64 --limit 32 --width 4 --quiet --tmax 3 --out".split(),
        str(work / "fz.pt"),
    ]
    specs: list[tuple[str, list[str], str, list[str]]] = [
        ("runtime", ["run", st, "--data", "digits:static", "--limit", "8"], "--limit", BAD_INT),
        ("runtime", ["run", st, "--data", "digits:static", "--limit", "8"], "--batch-size", BAD_INT + HUGE_BATCH),
        ("runtime", ["run", st, "--data", "digits:static", "--limit", "8"], "--threads", BAD_INT0),
        ("runtime", ["bench", st, "--T", "2", "--repeats", "1"], "--batch-size", BAD_INT + HUGE_BATCH),
        ("runtime", ["bench", st, "--batch-size", "1", "--repeats", "1"], "--T", BAD_INT + HUGE_T),
        ("runtime", ["bench", st, "--batch-size", "1", "--T", "2"], "--repeats", BAD_INT),
        ("runtime", ["tradeoff", st, "--data", "digits:static", "--limit", "8"], "--tmin", BAD_INT + HUGE_T),
        ("runtime", ["tradeoff", st, "--data", "digits:static", "--limit", "8"], "--tmax", BAD_INT + HUGE_T),
        ("runtime", ["tradeoff", st, "--data", "digits:static", "--limit", "8"], "--thresholds", BAD_UNIT),
        ("runtime", ["event-bench", ev, "--data", "digits", "--limit", "2"], "--T", BAD_INT + HUGE_T),
        ("runtime", ["event-bench", ev, "--data", "digits", "--limit", "2"], "--reference-limit", BAD_INT),
        ("runtime", ["event-bench", ev, "--data", "digits", "--limit", "2"], "--repeats", BAD_INT),
        ("trainer", ["eval", evp, "--limit", "8"], "--T", BAD_INT + HUGE_T),
        ("trainer", ["eval", evp, "--limit", "8"], "--batch-size", BAD_INT + HUGE_BATCH),
        ("trainer", ["calibrate", evp, "--calib-batches", "1", "--out", str(work / "cal.pt")], "--T", BAD_INT + HUGE_T),
        ("trainer", ["calibrate", evp, "--out", str(work / "cal.pt")], "--calib-batches", BAD_INT),
        ("trainer", ["memory", "--no-rss", "--repeats", "1", "--T", "2"], "--width", BAD_INT0 + ["70000"]),
        ("trainer", ["memory", "--no-rss", "--repeats", "1", "--T", "2"], "--batch-size", BAD_INT + HUGE_BATCH),
        ("export", [evp, "-o", str(work / "x.onnx"), "--check"], "--T", BAD_INT + HUGE_T),
        ("export", [evp, "-o", str(work / "x.onnx"), "--check"], "--batch-size", BAD_INT + HUGE_BATCH),
        ("edge", ["pi-bench", st, "--T", "2", "--repeats", "1"], "--max-threads", BAD_INT + ["100000"]),
        ("edge", ["pi-bench", st, "--max-threads", "1", "--repeats", "1"], "--T", BAD_INT + HUGE_T),
        ("edge", ["speck", ev], "--readout-threshold", BAD_FLOAT_POS),
        ("edge", ["speck", ev, "--emulate", "--data", "digits"], "--limit", BAD_INT),
    ]
    for opt, bad in [
        ("--T", BAD_INT + HUGE_T),
        ("--tmin", BAD_INT + HUGE_T),
        ("--tmax", BAD_INT + HUGE_T),
        ("--stages", BAD_INT),
        ("--configs-per-batch", BAD_INT),
        ("--epochs", BAD_INT),
        ("--K", BAD_INT0),
        ("--batch-size", BAD_INT + HUGE_BATCH),
        ("--lr", BAD_FLOAT_POS),
        ("--seed", BAD_INT0),
        ("--weight-decay", [v for v in BAD_FLOAT_POS if v != "0"]),
        ("--width", BAD_INT0 + ["70000"]),
        ("--decay", BAD_UNIT),
        ("--v-th", BAD_FLOAT_POS),
        ("--mse-weight", BAD_UNIT),
        ("--calib-batches", BAD_INT0),
        ("--limit-train", BAD_INT),
        ("--limit", BAD_INT),
    ]:
        specs.append(("trainer", tiny_fit, opt, bad))
    for module, base, opt, bad in specs:
        for v in bad:
            expect_error(g, module, [*base, f"{opt}={v}"], ins)
    # policies and whole-model sizes
    for pol in [
        "fixed:0",
        "fixed:-3",
        "fixed:1e8",
        "fixed:100000000",
        "fixed:abc",
        "confidence:2",
        "confidence:nan",
        "confidence:0.9,tmin=0",
        "confidence:0.9,tmin=5,tmax=2",
        "confidence:0.9,tmax=100000000",
        "confidence:0.9,foo=1",
        "entropy:-1",
        "fixed",
        "",
        "median:3",
        "fixed:3:4",
    ]:
        expect_error(g, "runtime", ["run", st, "--data", "digits:static", "--limit", "8", "--policy", pol], ins)
    for model_name in ["9C1FC", "vgg99", "2C1FC:", ""]:
        expect_error(g, "trainer", [*tiny_fit, "--model", model_name], ins)
    for shape in (["0", "0", "0"], ["-1", "2", "2"], ["100000", "2", "2"]):
        expect_error(g, "trainer", ["memory", "--no-rss", "--in-shape", *shape], ins)


def output_paths(m: dict[str, Path], work: Path) -> None:
    g = "output paths"
    ev_pt, st_onnx, ev_onnx = m["ev_pt"], m["st_onnx"], m["ev_onnx"]
    ins = list(m.values())
    hard = work / "hard.pt"
    os.link(ev_pt, hard)
    soft = work / "soft.onnx"
    soft.symlink_to(ev_pt)
    (work / "adir").mkdir()
    bad_for_pt = [str(ev_pt), str(hard), str(soft), "", str(work / "missing" / "x.onnx"), str(work / "adir")]
    for fmt in ("onnx", "torchscript", "pt2", "nir"):
        for out in bad_for_pt:
            expect_error(g, "export", [str(ev_pt), "--format", fmt, "-o", out], ins + [hard])
    for out in [str(ev_pt), str(hard), str(soft), "", str(work / "missing" / "c.pt"), str(work / "adir")]:
        expect_error(g, "trainer", ["calibrate", str(ev_pt), "--calib-batches", "1", "--out", out], ins + [hard])
    for out in [str(ev_onnx), str(work / "missing" / "d.json"), str(work / "adir"), ""]:
        expect_error(g, "edge", ["speck", str(ev_onnx), "--describe", out], ins)
    for out in [str(work / "missing" / "p.png"), str(work / "adir"), str(work / "curves"), "", str(st_onnx)]:
        expect_error(
            g, "runtime", ["tradeoff", str(st_onnx), "--data", "digits:static", "--limit", "8", "--plot", out], ins
        )
        expect_error(g, "trainer", ["eval", str(ev_pt), "--limit", "8", "--plot", out], ins)
    for out in ["", str(work / "missing" / "m.pt"), str(work / "adir")]:
        expect_error(g, "trainer", ["fit", "--epochs", "1", "--limit-train", "16", "--out", out], ins)


def damaged(
    group: str, data: bytes, bad: Path, flips: int, rng: random.Random, cli: tuple[str, list[str]], unchanged
) -> None:
    """``flips`` single-bit flips of ``data``, each written to ``bad`` and run by ``cli``
    (module, argv): a clear error, or a run whose content is ``unchanged()``; then 20
    truncations of ``data``, each a clear error."""
    module, argv = cli
    for _ in range(flips):
        b = bytearray(data)
        pos = rng.randrange(len(b))
        b[pos] ^= 1 << rng.randrange(8)
        bad.write_bytes(bytes(b))
        code, err = call_cli(module, argv)
        case = f"{group[:-1]} at byte {pos}"
        if is_clear(code, err):
            record(group, "clear error", case)
        elif code == 0:
            record(group, "correct" if unchanged() else "silently wrong", case)
        else:
            record(group, "traceback", f"{case}: {err.strip()[-160:]}")
    for n in sorted(rng.sample(range(len(data)), 20)):
        bad.write_bytes(data[:n])
        expect_error(group, module, argv, [])


def corruption(m: dict[str, Path], work: Path, flips: int, rng: random.Random) -> None:
    from runtime.protocol import read_model
    from trainer.checkpoint import load_checkpoint

    bad = work / "flip.pt"
    _, ref_model, _ = load_checkpoint(m["st_pt"])
    ref = {k: v.clone() for k, v in ref_model.state_dict().items()}

    def same_weights() -> bool:
        _, got, _ = load_checkpoint(bad)
        return all(torch.equal(got.state_dict()[k], v) for k, v in ref.items())

    export = ("export", [str(bad), "-o", str(work / "flip.onnx")])
    damaged("checkpoint bit flips", m["st_pt"].read_bytes(), bad, flips, rng, export, same_weights)
    bad_onnx = work / "flip.onnx"
    ref_graph = read_model(m["st_onnx"])[0].graph
    run = ("runtime", ["run", str(bad_onnx), "--data", "digits:static", "--limit", "16"])
    same_graph = lambda: read_model(bad_onnx)[0].graph == ref_graph
    damaged("ONNX bit flips", m["st_onnx"].read_bytes(), bad_onnx, flips, rng, run, same_graph)


def metadata(m: dict[str, Path], work: Path, n: int, rng: random.Random) -> None:
    """Random edits of the protocol metadata, re-stamped (so the parser, not the digest,
    judges them): a valid edit may run; anything else must be one error line."""
    import onnx

    from runtime.integrity import stamp_onnx
    from tests.json_edits import edit, json_paths

    base = onnx.load(str(m["ev_onnx"]))
    meta = json.loads(next(p.value for p in base.metadata_props if p.key == "flexsnn.protocol"))
    values = [None, True, 0, -1, 1, 10**9, 1e308, float("nan"), "abc", "", [], {}, [0], [1, 2], {"a": 1}, 2**40]

    every = [p for p in json_paths(meta) if p]
    path = work / "meta.onnx"
    for _ in range(n):
        mm = json.loads(json.dumps(meta))
        where = rng.choice(every)
        edit(mm, where, rng.choice(values), rng.random() < 0.2)
        model = onnx.ModelProto()
        model.CopyFrom(base)
        onnx.helper.set_model_props(model, {"flexsnn.protocol": json.dumps(mm)})
        onnx.save(stamp_onnx(model), str(path))
        for argv in (
            ["run", str(path), "--data", "digits", "--limit", "4"],
            ["run", str(path), "--data", "digits", "--limit", "4", "--mode", "event"],
        ):
            code, err = call_cli("runtime", argv)
            case = f"metadata {where} edited; {' '.join(argv[:1] + argv[4:])}"
            if is_clear(code, err):
                record("ONNX metadata edits", "clear error", case)
            elif code == 0:
                record("ONNX metadata edits", "correct", case)  # a valid edit (a name, a class label)
            else:
                record("ONNX metadata edits", "traceback", f"{case}: {err.strip()[-200:]}")


def event_streams(m: dict[str, Path], rng: random.Random, n: int) -> None:
    import runtime
    from runtime.data.events import EVENT_DTYPE, make_events
    from runtime.event import EventInputError, load_event
    from runtime.session import InputError

    s, eng = runtime.load(m["ev_onnx"]), load_event(m["ev_onnx"])
    C, H, W = s.protocol.input_shape
    nrng = np.random.default_rng(rng.randrange(2**32))

    def good(k: int = 40) -> np.ndarray:
        return make_events(
            nrng.integers(0, W, k),
            nrng.integers(0, H, k),
            nrng.integers(0, 2, k),
            np.sort(nrng.integers(0, 300_000, k)),
        )

    def retype(ev: np.ndarray, field: str, dtype: str) -> np.ndarray:
        return ev.astype([(f, dtype if f == field else ev.dtype[f]) for f in ev.dtype.names])

    def mutate() -> tuple[str, object]:
        ev = good()
        kind = rng.choice(["x", "y", "p", "t", "unsorted", "nan", "dtype", "plain", "2d", "missing"])
        i = rng.randrange(len(ev))
        if kind in ("x", "y", "p"):
            bad = rng.choice([-1, -1000, {"x": W, "y": H, "p": C}[kind], 30000])
            ev = retype(ev, kind, "i4")
            ev[kind][i] = bad
        elif kind == "t":
            ev = retype(ev, "t", "f8")
            ev["t"][i] = rng.choice([-5.0, 1e30, 0.5 + ev["t"][i]])
        elif kind == "unsorted":
            ev = ev[::-1].copy()
        elif kind == "nan":
            ev = retype(ev, "t", "f8")
            ev["t"][i] = float("nan")
        elif kind == "dtype":
            ev = retype(ev, rng.choice(["x", "y", "p"]), "f4")
        elif kind == "plain":
            return kind, np.zeros((10, 4))
        elif kind == "2d":
            return kind, np.zeros((2, 3), EVENT_DTYPE)
        else:
            return kind, np.zeros(3, [("x", "i2"), ("y", "i2"), ("t", "i8")])
        return kind, ev

    for _ in range(n):
        kind, bad = mutate()
        for name, fn, errs in (
            ("Session.run", lambda bad=bad: s.run([good(), bad]), (InputError,)),
            ("EventEngine.run_batch", lambda bad=bad: eng.run_batch([good(), bad]), (EventInputError,)),
        ):
            try:
                fn()
                record("SDK event streams", "silently wrong", f"{name} took a stream with {kind}")
            except errs as e:
                record("SDK event streams", "clear error" if str(e) else "traceback", f"{name}: {kind}")
            except Exception as e:
                record("SDK event streams", "traceback", f"{name}: {kind}: {type(e).__name__}: {e}")
    # an empty stream is valid (a recording in which the sensor saw nothing): the model at
    # rest, the stream beside it unchanged, in both engines
    empty = np.zeros(0, EVENT_DTYPE)
    for _ in range(max(1, n // 20)):
        ev = good()
        for name, run in (
            ("Session.run", lambda x: s.run(x).outputs),
            ("EventEngine.run_batch", lambda x: eng.run_batch(x).outputs),
        ):
            both, alone, rest = run([ev, empty]), run([ev]), run([empty])
            same = np.array_equal(both[0], alone[0]) and np.array_equal(both[1], rest[0])
            record("SDK event streams", "correct" if same else "silently wrong", f"{name}: an empty stream")
    # valid, wider dtypes: same answer as the int16 layout
    for _ in range(max(1, n // 20)):
        ev = good()
        wide = ev.astype([("x", "u8"), ("y", "u8"), ("p", "u8"), ("t", "u8")])
        same = np.array_equal(s.run([ev]).outputs, s.run([wide]).outputs)
        record("SDK event streams", "correct" if same else "silently wrong", "uint64 fields")


def direct_read(spec: str) -> None:
    """The reader itself (the CLIs above may also refuse on the model's input shape)."""
    from runtime.data import DataError, load_dataset

    try:
        load_dataset(spec, "test")
        record("data readers", "silently wrong", f"load_dataset({spec!r}) accepted it")
    except DataError as e:
        record("data readers", "clear error" if str(e) else "traceback", spec)
    except Exception as e:
        record("data readers", "traceback", f"{spec}: {type(e).__name__}: {e}")


def data_readers(work: Path) -> None:
    g = "data readers"

    def idx(dims: list[int], body: bytes) -> bytes:
        return bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + body

    def mnist(name: str, images: bytes | None = None, labels: bytes | None = None, gz: bool = True) -> Path:
        root = work / "mnist" / name
        root.mkdir(parents=True)
        images = images if images is not None else idx([4, 28, 28], bytes(4 * 784))
        labels = labels if labels is not None else idx([4], bytes([1, 2, 3, 4]))
        wrap = gzip.compress if gz else (lambda b: b)
        (root / "t10k-images-idx3-ubyte.gz").write_bytes(wrap(images))
        (root / "t10k-labels-idx1-ubyte.gz").write_bytes(wrap(labels))
        return root

    cases: list[Path] = []
    r = mnist("truncated")
    (r / "t10k-images-idx3-ubyte.gz").write_bytes((r / "t10k-images-idx3-ubyte.gz").read_bytes()[:40])
    cases.append(r)
    r = mnist("crc")
    raw = bytearray((r / "t10k-labels-idx1-ubyte.gz").read_bytes())
    raw[-6] ^= 0xFF
    (r / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(raw))
    cases.append(r)
    cases += [
        mnist("raw-named-gz", gz=False),
        mnist("labels-0-dims", labels=idx([], b"")),
        mnist("images-2-dims", images=idx([4, 784], bytes(4 * 784))),
        mnist("label-200", labels=idx([4], bytes([1, 2, 200, 4]))),
        mnist("count-mismatch", labels=idx([3], bytes(3))),
        mnist("bomb", labels=idx([4], bytes(4) + bytes(200 * 2**20))),
        mnist("huge-header", images=idx([2**20, 2**10, 2**10], b"")),
        mnist("type-float", images=bytes([0, 0, 0x0D, 3]) + bytes(12)),
    ]
    fifo_root = work / "mnist" / "fifo"
    fifo_root.mkdir()
    os.mkfifo(fifo_root / "t10k-images-idx3-ubyte")
    cases.append(fifo_root)
    for root in cases:
        direct_read(f"mnist:{root}")
        for cmd in (
            ["runtime", ["run", str(work / "st.onnx"), "--data", f"mnist:{root}", "--limit", "2"]],
            ["trainer", ["eval", str(work / "st.pt"), "--data", f"mnist:{root}", "--limit", "2"]],
        ):
            expect_error(g, cmd[0], cmd[1], [])

    def nmnist(name: str, xs=(1, 5, 9), ys=(3, 3, 3), extra: Callable[[Path], None] | None = None) -> Path:
        root = work / "nmnist" / name
        for label in range(10):
            d = root / "train" / str(label)
            d.mkdir(parents=True)
            for i in (5 * label + 1, 5 * label + 5):
                rec = b"".join(bytes([x, y, 128, 0, k]) for k, (x, y) in enumerate(zip(xs, ys)))
                (d / f"{i}.bin").write_bytes(rec)
        if extra:
            extra(root)
        return root

    outside = work / "outside.bin"
    outside.write_bytes(bytes(5))
    ncases = [
        nmnist("x-34-40", xs=(1, 34, 40)),
        nmnist("y-200", ys=(3, 200, 3)),
        nmnist("symlink-out", extra=lambda r: (r / "train" / "0" / "10.bin").symlink_to(outside)),
        nmnist("fifo", extra=lambda r: os.mkfifo(r / "train" / "0" / "10.bin")),
        nmnist("not-5-bytes", extra=lambda r: (r / "train" / "0" / "10.bin").write_bytes(bytes(7))),
        nmnist("name", extra=lambda r: (r / "train" / "0" / "abc.bin").write_bytes(bytes(5))),
        nmnist("huge", extra=lambda r: (r / "train" / "0" / "10.bin").write_bytes(bytes(65 * 2**20))),
    ]
    empty = work / "nmnist" / "empty"
    (empty / "train").mkdir(parents=True)
    ncases.append(empty)
    for root in ncases:
        direct_read(f"nmnist:{root}")
        for cmd in (
            ["runtime", ["run", str(work / "ev.onnx"), "--data", f"nmnist:{root}"]],
            ["runtime", ["run", str(work / "ev.onnx"), "--data", f"nmnist:{root}", "--mode", "event"]],
            ["trainer", ["eval", str(work / "ev.pt"), "--data", f"nmnist:{root}"]],
        ):
            expect_error(g, cmd[0], cmd[1], [])


def main() -> None:
    p = cliargs.Parser(description=__doc__)  # the product's one-line errors, whole flag names
    cliargs.add_seed(p, "the fuzzing")
    p.add_argument("--flips", type=cliargs.nonneg_int, default=300, help="bit-flipped copies per artifact kind")
    p.add_argument("--meta", type=cliargs.nonneg_int, default=300, help="metadata edits")
    p.add_argument("--streams", type=cliargs.nonneg_int, default=400, help="bad event streams")
    p.add_argument("--json", default=None, help="also write the counts here")
    a = p.parse_args()
    rng = random.Random(a.seed)
    work = Path(tempfile.mkdtemp(prefix="flexsnn-fuzz-"))
    t0 = time.perf_counter()
    try:
        m = make_models(work)
        cli_numbers(m, work)
        output_paths(m, work)
        corruption(m, work, a.flips, rng)
        metadata(m, work, a.meta, rng)
        event_streams(m, rng, a.streams)
        data_readers(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = Counter()
    print(f"| inputs | tried | {' | '.join(OUTCOMES)} |")
    print("|---|---:|" + "---:|" * len(OUTCOMES))
    for g, c in results.items():
        total.update(c)
        print(f"| {g} | {sum(c.values())} | " + " | ".join(str(c[o]) for o in OUTCOMES) + " |")
    print(f"| **all** | {sum(total.values())} | " + " | ".join(str(total[o]) for o in OUTCOMES) + " |")
    for g, ex in examples.items():
        for e in ex:
            print(f"  {g}: {e}")
    print(f"({time.perf_counter() - t0:.0f} s, seed {a.seed})")
    if a.json:
        Path(a.json).write_text(json.dumps({"seed": a.seed, "counts": results, "examples": examples}, indent=1))


if __name__ == "__main__":
    main()
