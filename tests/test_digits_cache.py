"""The digits default: simulated per split (an image's events do not depend on the others)
and cached on disk under $FLEXSNN_CACHE after the first load."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.data import digits
from runtime.data.eventcam import saccade_events


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
