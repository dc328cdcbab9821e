"""Raspberry Pi profile: pi-bench runs torch-free and reports what it promises."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, run_cli
from tests.edge_fixtures import Conv, chain_model
from tests.runtime_fixtures import save


def test_pi_bench_json(tmp_path):
    path = save(chain_model([Conv(4, pool=2)], in_shape=(2, 20, 20), classes=10), tmp_path / "m.onnx")
    r = run_cli("edge", "pi-bench", path, "--max-threads", "2", "--T", "3", "--repeats", "1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [row["threads"] for row in out["threads"]] == [1, 2]
    assert all(row["ms_per_step"] > 0 for row in out["threads"])
    # interleaved: min and median of wall and CPU per thread count (median only, timed in blocks)
    for row in out["threads"]:
        assert row["wall_ms_min"] <= row["wall_ms_median"] == row["ms_per_step"] and row["cpu_ms_min"] > 0
    assert out["peak_rss_mib"] >= out["rss_before_model_mib"] > 0
    assert "early_exit" not in out
    # what a figure from a Pi is compared by (the text header said steps and repeats; JSON did not)
    assert (out["T"], out["repeats"]) == (3, 1) and len(out["load_average"]) == 2
    assert out["versions"]["onnxruntime"] and out["versions"]["machine"]
    # the exact backend runs one thread: a second row timed it again as "2 threads"; asked
    # for two, it timed one unsaid
    r = run_cli("edge", "pi-bench", path, "--T", "3", "--repeats", "1", "--json", "--backend", "exact")
    assert r.returncode == 0, r.stderr
    assert [row["threads"] for row in json.loads(r.stdout)["threads"]] == [1]
    r = run_cli("edge", "pi-bench", path, "--max-threads", "2", "--backend", "exact")
    assert r.returncode == 2 and "backend exact runs one thread (fixed-order sums); leave --max-threads out" in r.stderr


@pytest.mark.slow
def test_pi_bench_early_exit_saving(tmp_path):
    path = save(chain_model([Conv(4, pool=2)], in_shape=(2, 20, 20), classes=10), tmp_path / "m.onnx")
    # a threshold every output passes at the first step: the saving is (T - 1) / T of the steps
    r = run_cli(
        "edge",
        "pi-bench",
        path,
        "--max-threads",
        "1",
        "--T",
        "2",
        "--repeats",
        "1",
        "--data",
        "digits",
        "--limit",
        "4",
        "--policy",
        "confidence:0.0,tmin=1",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    e = json.loads(r.stdout)["early_exit"]
    assert e["n"] == 4 and e["fixed_steps"] == 4 and e["exit_steps"] == 1
    assert abs(e["step_saving"] - 0.75) < 1e-9


def test_pi_bench_bins_each_policy_as_it_runs(tmp_path):
    """Each policy's sample is binned as a run of it would be: into its own horizon (a
    policy to 2 of a T = 4 model sees the recording in 2 frames, not the first 2 of 4) or,
    for a cascade, into each of its T; the answers are those of `runtime run`'s."""
    from edge.pi.bench import _run_of, early_exit
    from runtime.data import load_dataset
    from runtime.evaluate import run_dataset
    from runtime.policies import parse_policy
    from runtime.session import load

    path = save(chain_model([Conv(4, pool=2)], in_shape=(2, 20, 20), classes=10), tmp_path / "m.onnx")
    ds = load_dataset("digits", "test", 6)
    s = load(path, threads=1)
    for text in ("confidence:1.0,tmax=2", "cascade:confidence:0.5,T=1+3"):
        e = early_exit(path, ds, parse_policy(text), repeats=1)
        # `runtime run` one sample at a time, as pi-bench runs them: onnxruntime may round a
        # batch of 6 differently from batch 1 (on arm64 enough to flip spikes)
        rs = [run_dataset(s, ds.subset(np.array([i])), text, batch_size=1) for i in range(len(ds))]
        for i, r in enumerate(rs):
            np.testing.assert_array_equal(_run_of(s, ds, i, parse_policy(text))().outputs[0], r.outputs[0])
        assert e["exit_steps"] == np.mean([r.steps[0] for r in rs])
        assert e["exit_accuracy"] == np.mean([r.predictions[0] == y for r, y in zip(rs, ds.labels)])


def test_pi_bench_uses_the_stored_policy_and_prints_no_raw_warning(tmp_path, capsys):
    """pi-bench measured confidence:0.9 on a model calibrate-exit had given another policy,
    printed the SDK's range warning raw (twice, with its source line) for its 20 timed steps,
    and gave a frame-count error for a multi-rate file (tests/test_multirate.py)."""
    from edge.cli import main
    from tests.conftest import run_main

    m = chain_model([Conv(4, pool=2)], in_shape=(2, 20, 20), classes=10)
    meta = json.loads(m.metadata_props[0].value)
    meta["exit"] = {"policy": "cascade:confidence:0.5,T=1+3"}
    m.metadata_props[0].value = json.dumps(meta)
    path = save(m, tmp_path / "m.onnx")
    argv = ["pi-bench", path, "--max-threads", "1", "--repeats", "1", "--data", "digits", "--limit", "4", "--json"]
    code, out, err = run_main(main, capsys, *argv)
    assert code == 0, err
    assert json.loads(out)["early_exit"]["policy"] == "cascade:confidence:0.5,T=1+3"
    assert "Warning" not in err and err.strip() == ""


def test_pi_bench_bad_input(tmp_path):
    path = save(chain_model([Conv(4)]), tmp_path / "m.onnx")
    r = run_cli("edge", "pi-bench", path, "--max-threads", "0")
    assert r.returncode == 2 and "--max-threads" in r.stderr
    r = run_cli("edge", "pi-bench", path, "--policy", "sometimes")
    assert r.returncode == 2 and "confidence:" in r.stderr
    r = run_cli("edge", "pi-bench", path, "--policy", "confidence:0.5", "--limit", "5")  # no --data: unread
    assert r.returncode == 2 and "reads --policy and --limit; add --data" in r.stderr


BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "numba", "sinabs", "samna"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked in this test)", name=name)
sys.meta_path.insert(0, Block())
from edge.cli import main
main()
"""


def test_pi_bench_needs_no_torch_and_no_numba(tmp_path):
    """A Pi install may leave numba out (the clock-driven runtime does not use it), early
    exit included (its scores were numba-only: ImportError)."""
    path = save(chain_model([Conv(4)], classes=10), tmp_path / "m.onnx")
    bench = ["pi-bench", path, "--max-threads", "1", "--T", "2", "--repeats", "1"]
    exit_on_data = ["--data", "digits", "--limit", "8", "--policy", "confidence:0.5"]
    r = subprocess.run(
        [sys.executable, "-c", BLOCK, *bench, *exit_on_data],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "ms/step" in r.stdout and "backend ort (--backend auto)" in r.stdout and "confidence:0.5" in r.stdout
    # the Speck path does need numba (the event engine): one clear line, not a traceback
    r = subprocess.run(
        [sys.executable, "-c", BLOCK, "speck", path], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert r.returncode == 2 and "needs numba" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_pi_bench_warns_outside_the_trained_range_and_past_the_cores(tmp_path):
    """`pi-bench --policy fixed:12` reported an accuracy past the trained T unsaid (runtime run
    warns), and rows past the machine's cores without a word (the default 4 on 2 cores)."""
    from runtime.limits import available_cores

    path = save(chain_model([Conv(4, pool=2)], classes=10), tmp_path / "m.onnx")  # trained range [1, 4]
    cores = available_cores()
    r = run_cli(
        "edge", "pi-bench", path, "--max-threads", str(cores + 1), "--T", "2", "--repeats", "1",
        "--data", "digits", "--limit", "4", "--policy", "fixed:12", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    want = [
        f"rows above {cores} threads run more threads than this machine's {cores} cores",
        "this run uses T=12, outside the trained range T in [1, 4]",
    ]
    assert json.loads(r.stdout)["warnings"] == want
    assert r.stderr.splitlines() == [f"warning: {w}" for w in want]


WITHOUT_NUMBA = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numba", "llvmlite"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked in this test)", name=name)
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def test_a_numba_that_fails_to_import_is_not_called_missing():
    """numba lagging numpy raises ImportError naming the versions: "not installed; pip
    install it" would be answered "already satisfied" and hide that reason."""
    from runtime.errors import missing_package

    absent = ModuleNotFoundError("No module named 'numba'", name="numba")
    assert str(missing_package("numba", "X", absent)) == (
        "X needs numba, which is not installed; install it: pip install 'numba>=0.59'"
    )
    broken = ImportError("Numba needs NumPy 2.2 or less. Got NumPy 2.3.")
    assert str(missing_package("numba", "X", broken)) == (
        "X needs numba, which is installed but failed to import: Numba needs NumPy 2.2 or less. Got NumPy 2.3. "
        "(numba>=0.59)"
    )
    llvmlite = ModuleNotFoundError("No module named 'llvmlite'", name="llvmlite")  # numba's own dependency
    assert "installed but failed to import: No module named 'llvmlite'" in str(missing_package("numba", "X", llvmlite))


def test_what_needs_numba_says_so_in_one_line_on_an_install_without_it(tmp_path):
    """docs/edge.md's runtime-only Pi install leaves numba out: `runtime run --mode event`,
    `event-bench` and `edge.pi.parity run` ended in a ModuleNotFoundError traceback, and a
    model with a refractory transform would have too."""
    from tests.runtime_fixtures import tiny_model, with_input

    path = save(chain_model([Conv(4, pool=2)], classes=10), tmp_path / "m.onnx")
    refractory = with_input(tiny_model(kind="event-frames"), transforms=[{"kind": "refractory", "args": [100]}])
    inputs = tmp_path / "in.npz"
    assert run_cli("edge.pi.parity", "inputs", str(inputs), "--limit", "2").returncode == 0
    engine = "the event-driven engine (runtime.event) needs numba, which is not installed; install it: pip install"
    for argv, needle in [
        (["runtime", "run", path, "--data", "digits", "--limit", "2", "--mode", "event"], engine),
        (["runtime", "event-bench", path, "--data", "digits", "--limit", "2"], engine),
        (["edge.pi.parity", "run", path, str(inputs), "--backend", "ort", "-o", str(tmp_path / "r.npz")], engine),
        (["runtime", "run", save(refractory, tmp_path / "t.onnx"), "--data", "digits", "--limit", "2"], "a refractory"),
    ]:
        r = subprocess.run([sys.executable, "-c", WITHOUT_NUMBA, *argv], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.startswith(f"error: {needle}"), (argv, r.stderr)
        assert r.stderr.count("\n") == 1 and "'numba>=0.59'" in r.stderr, r.stderr
    assert not (tmp_path / "r.npz").exists()


def test_clock_driven_commands_do_not_import_numba_or_scikit_learn():
    """numba (the event engine) and scikit-learn (the digits, first load only) add about 60 and
    50 MiB of peak memory; a clock-driven `runtime run` or `pi-bench` on a 1 GB Pi needs neither."""
    code = (
        "import sys, runtime.cli, edge.cli, runtime.event, runtime.data\n"
        "print(sorted(m for m in ('numba', 'llvmlite', 'sklearn', 'torch') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_an_ort_run_with_early_exit_loads_no_numba(tmp_path):
    """--backend ort is the no-numba, low-memory choice (docs/edge.md: 87 against 223 MiB),
    but the first confidence exit imported numba for its scores: about 120 MiB more."""
    path = save(chain_model([Conv(4)], classes=10), tmp_path / "m.onnx")
    code = (
        "import sys, numpy as np, runtime\n"
        f"s = runtime.load({str(path)!r}, threads=1, backend='ort')\n"
        "x = np.random.default_rng(0).poisson(0.3, (4, 3, *s.protocol.input_shape)).astype(np.float32)\n"
        "r = s.run(x, 'confidence:0.5,tmax=4')\n"
        "print(r.mean_steps > 0, 'numba' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False"]
