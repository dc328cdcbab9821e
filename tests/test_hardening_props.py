"""Property tests (hypothesis) for every parser of outside input: N-MNIST recordings, IDX
files, the ONNX protocol metadata, event streams, exit-policy strings and CLI numbers.
The property is the product's promise: either a valid result (checked for what it must
satisfy) or the parser's one user-facing error, never another exception.

Kept to about a minute on one core: ``max_examples`` per test, no deadline.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import copy
import gzip
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import cliargs
from runtime.data.mnist import read_idx
from runtime.data.nmnist import SENSOR, read_nmnist_bin
from runtime.eventinput import EventInputError, check_stream
from runtime.policies import PolicyError, parse_policy
from runtime.protocol import ModelError, Protocol, parse_protocol

from .json_edits import edit, json_paths
from .runtime_fixtures import tiny_model

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TMP = Path(tempfile.mkdtemp(prefix="flexsnn-props-"))  # files the parsers read; hypothesis reruns need no fixture
atexit.register(shutil.rmtree, TMP, True)


# ---- N-MNIST ----------------------------------------------------------------------------
@FAST
@given(st.binary(max_size=400))
def test_nmnist_bytes_decode_or_refuse(raw):
    path = TMP / "r.bin"
    path.write_bytes(raw)
    try:
        ev = read_nmnist_bin(path)
    except ValueError:
        return
    assert len(raw) % 5 == 0
    C, H, W = SENSOR
    assert ((ev["x"] >= 0) & (ev["x"] < W) & (ev["y"] >= 0) & (ev["y"] < H)).all()
    assert np.all(np.diff(ev["t"]) >= 0) and set(np.unique(ev["p"]).tolist()) <= {0, 1}


@FAST
@given(
    st.lists(
        st.tuples(st.integers(0, 33), st.integers(0, 33), st.integers(0, 1), st.integers(0, 2**23 - 1)),
        min_size=1,  # an empty file is refused (below)
        max_size=30,
    )
)
def test_nmnist_valid_records_round_trip(events):
    events = sorted(events, key=lambda e: e[3])
    raw = b"".join(bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 255, t & 255]) for x, y, p, t in events)
    path = TMP / "ok.bin"
    path.write_bytes(raw)
    ev = read_nmnist_bin(path)
    assert sorted(zip(ev["x"].tolist(), ev["y"].tolist(), ev["p"].tolist(), ev["t"].tolist())) == sorted(events)


def test_an_empty_nmnist_file_is_refused():
    """A 0-byte .bin was read as a recording with no events (one of 51 in a stranger's
    copied folder), while a truncated one was refused: every saccade recording has events."""
    path = TMP / "empty.bin"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.bin is empty \(0 bytes\); an N-MNIST recording holds events"):
        read_nmnist_bin(path)


# ---- IDX ----------------------------------------------------------------------------------
def _idx(dims: list[int], body: bytes) -> bytes:
    return bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + body


@FAST
@given(
    st.one_of(
        st.binary(max_size=64),
        st.builds(
            lambda dims, body: _idx(dims, body), st.lists(st.integers(0, 6), max_size=4), st.binary(max_size=300)
        ),
    ),
    st.booleans(),
    st.sampled_from([None, 1, 3]),
)
def test_idx_reads_or_refuses(data, gz, ndim):
    path = TMP / ("f.idx.gz" if gz else "f.idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    try:
        a = read_idx(path, ndim)
    except ValueError:
        return
    assert a.dtype == np.uint8 and a.size > 0 and (ndim is None or a.ndim == ndim)
    assert a.tobytes() == data[4 + 4 * a.ndim :]


# ---- ONNX protocol metadata --------------------------------------------------------------
BASE = json.loads(tiny_model().metadata_props[0].value)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


PATHS = [p for p in json_paths(BASE) if p]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), JSON, st.booleans()), min_size=1, max_size=3))
def test_protocol_metadata_parses_or_is_a_model_error(changes):
    meta = copy.deepcopy(BASE)
    for path, value, delete in changes:
        with contextlib.suppress(KeyError, IndexError, TypeError):  # an earlier change removed the parent
            edit(meta, path, value, delete)
    try:
        p = parse_protocol(meta)
    except ModelError:
        return
    assert isinstance(p, Protocol) and p.T_trained >= 1 and 1 <= p.T_range[0] <= p.T_range[1]
    assert all(v > 0 for v in p.input_shape)


# ---- event streams -----------------------------------------------------------------------
FIELD_TYPES = st.sampled_from(["i1", "i2", "i4", "i8", "u1", "u2", "u8", "f4", "f8"])


@st.composite
def streams(draw):
    n = draw(st.integers(0, 20))
    dtype = [(f, draw(FIELD_TYPES)) for f in ("x", "y", "p", "t")]
    ev = np.zeros(n, dtype)
    for f, t in dtype:
        info = np.iinfo(t) if t[0] in "iu" else None
        lo, hi = (int(info.min), int(info.max)) if info else (-1e20, 1e20)
        if info:
            small, wide = st.integers(max(lo, -3), min(hi, 40)), st.integers(lo, hi)
        else:
            small, wide = st.integers(-3, 40).map(float), st.floats(allow_nan=True, allow_infinity=True, width=32)
        vals = draw(st.lists(st.one_of(small, small, wide), min_size=n, max_size=n))
        with np.errstate(all="ignore"):
            ev[f] = np.array(vals, dtype=object).astype(t)
    if draw(st.booleans()) and n:
        ev = ev[np.argsort(ev["t"], kind="stable")]
    return ev


@settings(max_examples=300, deadline=None)
@given(streams())
def test_event_streams_validate_or_refuse(ev):
    shape = (2, 12, 16)
    try:
        x, y, p, t = check_stream(ev, shape)
    except EventInputError:
        return
    assert all(a.dtype == np.int64 for a in (x, y, p, t))
    assert ((x >= 0) & (x < 16) & (y >= 0) & (y < 12) & (p >= 0) & (p < 2)).all()
    assert (np.diff(t) >= 0).all() and (t >= 0).all()
    assert np.array_equal(x, ev["x"].astype(np.int64)) and np.array_equal(t, ev["t"].astype(np.int64))


# ---- policy strings ----------------------------------------------------------------------
@FAST
@given(
    st.one_of(
        st.text(max_size=20),
        st.builds(
            lambda n, a: f"{n}:{a}",
            st.sampled_from(["fixed", "confidence", "entropy", "margin"]),
            st.text(alphabet="0123456789.,:e-+naif", max_size=12),
        ),
    )
)
def test_policy_strings_parse_or_are_a_policy_error(text):
    try:
        policy = parse_policy(text)
    except PolicyError:
        return
    T = policy.horizon(4)
    assert isinstance(T, int) and T >= 1


# ---- CLI numbers -------------------------------------------------------------------------
NUMBERS = st.one_of(
    st.text(max_size=12),
    st.integers().map(str),
    st.floats().map(repr),
    st.sampled_from(["inf", "-inf", "nan", "1e8", "1e3", "0", "-0", "1.5", " 3", ""]),
)


@settings(max_examples=400, deadline=None)
@given(
    NUMBERS,
    st.sampled_from(
        [
            "positive_int",
            "nonneg_int",
            "steps",
            "batch",
            "width",
            "side",
            "threads",
            "positive_float",
            "nonneg_float",
            "unit_float",
        ]
    ),
)
def test_cli_numbers_are_in_range_or_refused(text, kind):
    parse = getattr(cliargs, kind)
    try:
        v = parse(text)
    except argparse.ArgumentTypeError as e:
        assert str(e)
        return
    assert math.isfinite(v)
    lo = {
        "positive_int": 1,
        "steps": 1,
        "batch": 1,
        "side": 1,
        "nonneg_int": 0,
        "width": 0,
        "threads": 0,
        "positive_float": 0.0,
        "nonneg_float": 0.0,
        "unit_float": 0.0,
    }.get(kind, -math.inf)
    assert v >= lo and (kind != "positive_float" or v > 0)
    if kind == "steps":
        assert v <= cliargs.MAX_T
    if kind == "unit_float":
        assert v <= 1.0
