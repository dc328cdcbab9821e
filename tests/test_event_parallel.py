"""run_batch in a service: from several threads at once, and in processes forked after a
parallel run (runtime/event/parallel.py). Both aborted the process before: numba's
workqueue layer on concurrent entry, GNU OpenMP in a forked child."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

from runtime import forks
from runtime.event.engine import load_event

from .event_fixtures import chain_model, random_stream, spec

ROOT = Path(__file__).resolve().parents[1]
SENSOR = (2, 12, 12)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    """A LIF and an IF network (one spike per step, zero reset) and 6 streams."""
    d = tmp_path_factory.mktemp("parallel")
    onnx.save(chain_model(spec("LIF", "multi", decay=0.9), sensor=SENSOR, readout="spike", scale=1.0), d / "lif.onnx")
    onnx.save(chain_model(spec("IF", "single", "zero"), sensor=SENSOR, scale=1.0), d / "if.onnx")
    np.savez(d / "streams.npz", *[random_stream(120 + 10 * s, SENSOR, seed=s) for s in range(6)])
    return d, d / "streams.npz"


def _streams(path: Path) -> list[np.ndarray]:
    with np.load(path) as z:
        return [z[k] for k in z.files]


@pytest.mark.parametrize("name", ["lif.onnx", "if.onnx"])
def test_the_one_thread_kernel_gives_the_parallel_ones_numbers(files, name, monkeypatch):
    d, streams_npz = files
    eng, streams = load_event(d / name), _streams(streams_npz)
    want = eng.run_batch(streams)
    monkeypatch.setattr(forks.FORKS, "after_layer", True)  # as in a forked child
    got = eng.run_batch(streams)
    np.testing.assert_array_equal(got.outputs, want.outputs)
    np.testing.assert_array_equal(got.synops, want.synops)
    for node, counts in want.neuron_counts.items():
        np.testing.assert_array_equal(got.neuron_counts[node], counts)
    assert want.outputs.any()


SCRIPT = """
import sys, threading, multiprocessing as mp
import numpy as np
import runtime  # what every SDK user has imported; the event engine itself only where warm_up says
MODEL = sys.argv[1]
with np.load(sys.argv[2]) as z:
    streams = [z[k] for k in z.files]
def one(i):  # a worker's task: the engine loaded there, if the parent has none
    from runtime.event.engine import load_event
    from runtime.forks import FORKS
    return load_event(MODEL).run_batch([streams[i]]).outputs[0], FORKS.after_layer
def whole():
    from runtime.event.engine import load_event
    return load_event(MODEL).run_batch(streams).outputs
"""


def _run(code: str, files: tuple[Path, Path], **env: str) -> str:
    d, streams_npz = files
    script = textwrap.dedent(SCRIPT) + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script, str(d / "lif.onnx"), str(streams_npz)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize(
    "warm_up",
    [
        "whole()",  # a warm-up batch starts the parent's numba threads
        "from runtime.event.engine import use_threads; use_threads(1)",  # so does their count (--threads)
        "import numba; numba.get_num_threads()",  # or the app's own numba: the engine not imported yet
    ],
)
def test_workers_forked_after_the_parent_started_numbas_threads_run_their_streams(files, warm_up):
    """A pre-forking server (a fork Pool after a warm-up): each child died with "fork()
    called from a process already using GNU OpenMP" and the pool waited forever. Each
    child must know (on any threading layer, not only where the old code died)."""
    out = _run(
        f"""
        {warm_up}
        with mp.get_context("fork").Pool(2) as pool:
            got = pool.map_async(one, range(len(streams))).get(timeout=120)
        assert all(knew for _, knew in got), "a worker did not know its parent's numba threads had started"
        assert all(np.array_equal(g, w) for (g, _), w in zip(got, whole())), "a forked worker's numbers differ"
        print("forked ok")
        """,
        files,
    )
    assert "forked ok" in out


def test_threads_may_call_run_batch_at_once_on_the_workqueue_layer(files):
    """numba's own layer, the one every install has: two threads in a parallel kernel at
    once aborted the process ("Concurrent access has been detected", SIGABRT)."""
    out = _run(
        """
        import numba
        got = [None] * 16
        from runtime.event.engine import load_event
        eng = load_event(MODEL)
        def work(k):
            got[k] = eng.run_batch([streams[k % len(streams)]]).outputs[0]
        threads = [threading.Thread(target=work, args=(k,)) for k in range(16)]
        for th in threads: th.start()
        for th in threads: th.join()
        want = whole()
        assert all(np.array_equal(g, want[k % len(streams)]) for k, g in enumerate(got))
        print("layer", numba.threading_layer())
        """,
        files,
        NUMBA_THREADING_LAYER="workqueue",
    )
    assert "layer workqueue" in out
