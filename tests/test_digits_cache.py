"""The digits default: simulated per split (an image's events do not depend on the others),
cached on disk under $FLEXSNN_CACHE after the first load, and the same on every platform."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.data import digits
from runtime.data.eventcam import LEVELS, LOG_UNITS, log_table, saccade_events


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(digits.CACHE_ENV, str(tmp_path))
    return tmp_path


def test_first_load_writes_the_cache_second_reads_it(cache, monkeypatch):
    ev, labels = digits.digits_events("test")
    assert len(ev) == len(labels) == 360
    assert [p.name for p in cache.iterdir()] == [f"digits-events-{digits.VERSION}-test.npz"]

    def no_simulation(*a, **k):
        raise AssertionError("simulated again despite the cache")

    monkeypatch.setattr(digits, "_simulate", no_simulation)
    monkeypatch.setattr(digits, "_load_digits", no_simulation)  # not even scikit-learn is loaded
    ev2, labels2 = digits.digits_events("test")
    np.testing.assert_array_equal(labels2, labels)
    for a, b in zip(ev, ev2):
        np.testing.assert_array_equal(a, b)


def test_damaged_cache_is_simulated_again(cache):
    path = cache / f"digits-events-{digits.VERSION}-test.npz"
    path.write_bytes(b"PK\x03\x04 damaged")
    ev, labels = digits.digits_events("test")
    assert len(ev) == 360 and path.stat().st_size > 1000


def test_an_images_events_do_not_depend_on_the_batch(cache):
    images, _ = digits._load_digits()
    ev, _ = digits.digits_events("test")
    idx = digits.split_index(len(images), "test")
    for k in (0, 7, 359):
        big = np.kron(images[idx[k]][None], np.ones((1, 2, 2), np.float32))
        alone = saccade_events(big, duration_us=digits.DURATION_US, ids=idx[k : k + 1])[0]
        np.testing.assert_array_equal(alone, ev[k])


# sha256 over the concatenated event records (EVENT_DTYPE bytes) of every sample of the
# split, as simulated from scikit-learn's digits. Measured on x86-64 with AVX-512, with
# numpy's SIMD paths disabled, and on aarch64 (edge/aarch64_check.sh): the same everywhere.
DIGEST = {
    "test": "1c3f4a0351162ab1b345c155ab666b80d684968b789d253f9c81a131ee27bc44",
    "train": "e60f20605f0f83d8797c3261c18f1656433a17776c426c3f78b885ab15d3b687",
}

_DIGEST_SCRIPT = """
import hashlib, sys
import numpy as np
from numpy._core import _multiarray_umath as m
off = [f for f in m.__cpu_dispatch__ if m.__cpu_features__.get(f)]
assert not off, f"still enabled: {off}"  # the variable must have taken effect
from runtime.data import digits
images, labels = digits._load_digits()
h = hashlib.sha256()
for e in digits._simulate(images, digits.split_index(len(labels), "test")):
    h.update(e.tobytes())
print(h.hexdigest())
"""


def _digest(split: str) -> str:
    images, labels = digits._load_digits()
    h = hashlib.sha256()
    for e in digits._simulate(images, digits.split_index(len(labels), split)):
        h.update(e.tobytes())
    return h.hexdigest()


def test_events_match_the_stored_digest():
    assert _digest("test") == DIGEST["test"]


@pytest.mark.slow
def test_train_events_match_the_stored_digest():
    assert _digest("train") == DIGEST["train"]


def test_events_are_the_same_without_numpys_simd_paths():
    """Every dispatched SIMD target off (on x86-64: AVX2, FMA3, AVX-512...): the baseline code paths,
    whose float log differs by some ULP from the vectorised ones, give the same events."""
    from numpy._core import _multiarray_umath as m

    if not m.__cpu_dispatch__:
        pytest.skip("this numpy build dispatches to no SIMD target")
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(m.__cpu_dispatch__), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == DIGEST["test"]


def test_log_table_is_exact_fixed_point():
    t = log_table()
    assert t.dtype == np.int64 and len(t) == LEVELS + 1
    assert t[0] == round(np.log(0.1) * LOG_UNITS) and t[-1] == round(np.log(1.1) * LOG_UNITS)
    assert (np.diff(t) > 0).all()  # strictly increasing: 16 bits of intensity never collapse
