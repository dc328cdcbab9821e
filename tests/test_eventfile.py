"""Event-camera files: the numpy decoders against the reference decoding and expelliarmus,
chunked = whole, DAT and AEDAT4 written by real writers, and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.data.eventfile import EventFileError, open_events, read_events, read_header
from runtime.data.prophesee import Evt3Decoder

from .conftest import SHARED_DATA

EVENTCAM = SHARED_DATA / "eventcam"


@pytest.fixture
def eventcam():
    if not (EVENTCAM / "evt3_sample.raw").is_file():
        pytest.skip(f"real event-camera samples not found at {EVENTCAM} (set FLEXSNN_SHARED_DATA)")
    return EVENTCAM


def _words(path, dtype: str) -> np.ndarray:
    with open_events(path) as r:
        size = r.header.size
    return np.frombuffer(path.read_bytes(), dtype, offset=size)


def test_evt3_matches_reference_and_expelliarmus_except_where_they_invent_wraps(eventcam):
    ours = read_events(eventcam / "evt3_sample.raw")
    ref = np.load(eventcam / "evt3_sample.npy")
    assert len(ours) == len(ref) == 219_596
    for k in "xyp":
        np.testing.assert_array_equal(ours[k], ref[k])  # every event, in order
    # Times: ours follow the file's TIME_HIGH words (bits 23..12 of the µs counter); the
    # reference (expelliarmus 1.1.12) adds 4096 µs at every TIME_LOW drop, also where the
    # next TIME_HIGH word says the high bits did not change.
    w = _words(eventcam / "evt3_sample.raw", "<u2")
    announced = set((w[(w >> 12) == 0x8] & 0xFFF).tolist())
    assert set(np.unique(ours["t"] >> 12).tolist()) <= announced
    assert not set(np.unique(ref["t"] >> 12).tolist()) <= announced
    gap = ref["t"] - ours["t"]
    assert np.all(gap % 4096 == 0) and np.all(np.diff(gap) >= 0) and gap[0] == 0
    assert np.all(np.diff(ours["t"]) >= 0)
    expelliarmus = pytest.importorskip("expelliarmus")
    assert expelliarmus  # the package decodes as the reference does
    ex = read_events(eventcam / "evt3_sample.raw", decoder="expelliarmus")
    for k in "xypt":
        np.testing.assert_array_equal(ex[k], ref[k])


def test_evt2_equals_expelliarmus(eventcam):
    pytest.importorskip("expelliarmus")
    ours = read_events(eventcam / "evt2_sample.raw")
    ex = read_events(eventcam / "evt2_sample.raw", decoder="expelliarmus")
    assert len(ours) == 539_481
    for k in "xypt":
        np.testing.assert_array_equal(ours[k], ex[k])


def _head(path, tmp_path, n_bytes: int):
    """A copy of the recording's header and its first ``n_bytes`` of event words."""
    data = path.read_bytes()
    end = 0
    while data[end : end + 1] == b"%":  # header lines start with %
        end = data.index(b"\n", end) + 1
    out = tmp_path / path.name
    out.write_bytes(data[: end + n_bytes])
    return out


@pytest.mark.parametrize("name", ["evt3_sample.raw", "evt2_sample.raw"])
def test_chunked_equals_whole(eventcam, name, tmp_path):
    whole = read_events(eventcam / name)
    for chunk_bytes in (4097, 65_536):
        with open_events(eventcam / name, chunk_bytes=chunk_bytes) as r:
            parts = list(r)
        assert len(parts) > 1
        np.testing.assert_array_equal(np.concatenate(parts), whole)
    # chunks that split every word: on the first 24 KiB only (one chunk per 3 bytes is slow)
    head = _head(eventcam / name, tmp_path, 24_576)
    with open_events(head, chunk_bytes=3) as r:
        parts = list(r)
    assert len(parts) > 100
    np.testing.assert_array_equal(np.concatenate(parts), read_events(head))


def test_headers_give_format_and_sensor(eventcam):
    with open_events(eventcam / "evt3_sample.raw") as r:
        assert (r.format, r.sensor) == ("evt3", (1280, 720))
    with open_events(eventcam / "evt2_sample.raw") as r:
        assert (r.format, r.sensor) == ("evt2", (640, 480))


def _evt3(*words: tuple[int, int]) -> bytes:
    return b"% evt 3.0\n% geometry 64x64\n" + np.array([(t << 12) | v for t, v in words], "<u2").tobytes()


def test_evt3_time_high_wrap_and_vectors(tmp_path):
    f = tmp_path / "wrap.raw"
    # TIME_HIGH 0xFFF, TIME_LOW 5, y=3, one event x=7 ON; a vector from x=10, mask 0b101 (x=10, 12),
    # then a VECT_8 (moved on by 12: x=22+1); TIME_HIGH 0 (the 24-bit counter wrapped), TIME_LOW 3, x=9 OFF
    f.write_bytes(
        _evt3(
            (0x8, 0xFFF),
            (0x6, 5),
            (0x0, 3),
            (0x2, (1 << 11) | 7),
            (0x3, 10),
            (0x4, 0b101),
            (0x5, 0b10),
            (0x8, 0),
            (0x6, 3),
            (0x2, 9),
        )
    )
    ev = read_events(f)
    t1, t2 = 0xFFF * 4096 + 5, (1 << 24) + 3
    assert ev.tolist() == [(7, 3, 1, t1), (10, 3, 0, t1), (12, 3, 0, t1), (23, 3, 0, t1), (9, 3, 0, t2)]
    # the decoder's state carries the row, vector base and time over any split of the words
    words = np.frombuffer(f.read_bytes()[27:], "<u2")
    for cut in range(1, len(words)):
        d = Evt3Decoder()
        np.testing.assert_array_equal(np.concatenate([d.decode(words[:cut]), d.decode(words[cut:])]), ev)


def test_evt3_time_low_drop_without_time_high_is_not_a_wrap(tmp_path):
    """EVT 3.0 time is TIME_HIGH << 12 | TIME_LOW; only a TIME_HIGH word moves bits 23..12
    (and a large TIME_HIGH drop is the 24-bit wrap). A TIME_LOW that steps back a few µs
    under the same TIME_HIGH with no event at it, as the shared Gen4.1 file does 9 times
    (811 -> 800), is not a 4096 µs jump: a decoder that infers a wrap from it (expelliarmus 1.1.12) puts the next
    events 4 ms later than any TIME_HIGH word says."""
    f = tmp_path / "glitch.raw"
    f.write_bytes(
        _evt3((0x8, 5), (0x6, 811), (0x0, 2), (0x2, 1), (0x6, 800), (0x6, 815), (0x2, 4), (0x8, 6), (0x6, 1), (0x2, 8))
    )
    assert read_events(f)["t"].tolist() == [5 * 4096 + 811, 5 * 4096 + 815, 6 * 4096 + 1]


def test_dat_written_by_expelliarmus(eventcam, tmp_path):
    Wizard = pytest.importorskip("expelliarmus").Wizard
    src = Wizard(encoding="evt2", fpath=str(eventcam / "evt2_sample.raw")).read()[:20_000]
    Wizard(encoding="dat").save(str(tmp_path / "x.dat"), src)
    with pytest.raises(EventFileError, match="no sensor size"):
        read_events(tmp_path / "x.dat")  # expelliarmus writes no Width/Height lines
    ours = read_events(tmp_path / "x.dat", sensor=(640, 480))
    for k in "xypt":
        np.testing.assert_array_equal(ours[k], src[k])


def test_aedat4_written_by_dv_processing(tmp_path):
    dv = pytest.importorskip("dv_processing", reason="dv-processing (a real AEDAT4 writer) is not installed")
    pytest.importorskip("aedat")
    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(0, 50_000, 300)) + 1_000
    x, y, p = rng.integers(0, 346, 300), rng.integers(0, 260, 300), rng.integers(0, 2, 300)
    w = dv.io.MonoCameraWriter(
        str(tmp_path / "x.aedat4"), dv.io.MonoCameraWriter.EventOnlyConfig("DAVIS346", (346, 260))
    )
    store = dv.EventStore()
    for i in range(300):
        store.push_back(int(t[i]), int(x[i]), int(y[i]), bool(p[i]))
    w.writeEvents(store)
    del w  # closes the file
    with open_events(tmp_path / "x.aedat4") as r:
        assert (r.format, r.sensor) == ("aedat4", (346, 260))
        ev = np.concatenate(list(r))
    assert ev.tolist() == list(zip(x.tolist(), y.tolist(), p.tolist(), t.tolist()))


@pytest.mark.parametrize(
    "content, match",
    [
        (b"hello, not events\n", "unknown event file format"),
        (b"% evt 4.0\n" + bytes(8), "unknown event file format"),
        (b"% evt 2.0\n% geometry 64x64\n" + bytes(7), "truncated"),
        (b"% evt 3.0\n% geometry 64x64\n" + np.array([0x8000, 0x9123], "<u2").tobytes(), "type 0x9"),
        (
            b"% evt 2.0\n% geometry 64x64\n" + np.array([8 << 28, (1 << 28) | (70 << 11)], "<u4").tobytes(),
            # the count is the chunk's (a stream stops there): it said "933 events" of a file
            # holding 186,345 outside, as if it were the file's
            r"outside the declared 64x64 sensor \(1 of the 1 in the chunk read up to t = \d+ µs",
        ),
        (
            b"% evt 2.0\n% geometry 64x64\n"
            + np.array([(8 << 28) | 5, (1 << 28), (8 << 28) | 4, (1 << 28)], "<u4").tobytes(),
            "time goes back",
        ),
        (b"% evt 2.0\n", "no sensor size"),
        (b"% evt 2.0\n% geom", "truncated"),
    ],
)
def test_bad_files_are_one_clear_error(tmp_path, content, match):
    f = tmp_path / "bad.raw"
    f.write_bytes(content)
    with pytest.raises(EventFileError, match=match):
        read_events(f)


def _declaring(src: Path, dst: Path, geometry: str) -> Path:
    """``src`` with a header line that states its sensor size (the samples only name a plugin)."""
    data = src.read_bytes()
    with open(src, "rb") as f:
        size = read_header(f, src.name).size
    dst.write_bytes(b"% evt 3.0\n% geometry " + geometry.encode() + b"\n% end\n" + data[size:])
    return dst


def test_sensor_given_must_agree_with_a_stated_one_and_overrides_a_guess(eventcam, tmp_path):
    """A header's geometry is a statement; a size guessed from the plugin name is not (a
    writer such as expelliarmus names a camera's plugin whatever the events' size, and a
    DAVIS346 recording could not be given --sensor 346x260)."""
    stated = _declaring(eventcam / "evt3_sample.raw", tmp_path / "stated.raw", "1280x720")
    with pytest.raises(EventFileError, match="declares a 1280x720 sensor, but 640x480"):
        open_events(stated, sensor=(640, 480))
    with open_events(eventcam / "evt3_sample.raw") as r:
        assert r.sensor == (1280, 720)  # the gen41 plugin's, when nothing is given
    with open_events(eventcam / "evt3_sample.raw", sensor=(1300, 800)) as r:
        assert r.sensor == (1300, 800) and sum(len(c) for c in r) == 219_596  # every event fits it


def test_a_binary_word_starting_with_a_percent_byte_is_no_header_line(tmp_path):
    """Without a closing '% end', a first word whose low byte is 0x25 ('%') was read as a
    header line: the word was eaten and the rest decoded misaligned (3 of 4 events lost, y
    wrong), with no error."""
    words = np.array([0x8025, 0x0A64, 0x6005, 0x2064, 0x2065, 0x2066, 0x8026, 0x6001, 0x2067], "<u2").tobytes()
    head = b"% evt 3.0\n% geometry 1280x720\n"
    (tmp_path / "a.raw").write_bytes(head + words)
    (tmp_path / "b.raw").write_bytes(head + b"% end\n" + words)
    a, b = read_events(tmp_path / "a.raw"), read_events(tmp_path / "b.raw")
    assert len(a) == 4 and np.array_equal(a, b) and set(a["y"].tolist()) == {612}


def test_evt21_is_named_not_called_damaged(tmp_path):
    (tmp_path / "e.raw").write_bytes(b"% evt 2.1\n% end\n" + bytes(16))
    with pytest.raises(EventFileError, match="e.raw: the header says EVT 2.1"):
        read_events(tmp_path / "e.raw")


def test_expelliarmus_refusing_a_file_name_says_why(eventcam, tmp_path):
    """expelliarmus reads EVT2/EVT3 only from a file named .raw: its reason was hidden behind
    "(ValueError); the numpy decoder says what is wrong", which read the file fine."""
    pytest.importorskip("expelliarmus")
    renamed = tmp_path / "evt2.dat"
    renamed.write_bytes((eventcam / "evt2_sample.raw").read_bytes())
    with pytest.raises(EventFileError, match=r"\(ValueError: The EVT2/EVT3 encoding needs a '.raw' file"):
        read_events(renamed, decoder="expelliarmus")
    assert len(read_events(renamed)) == 539_481


def test_expelliarmus_decoder_says_truncated_and_empty_as_the_numpy_one(eventcam, tmp_path):
    """It decoded up to the cut of a truncated file without a word (539,480 events, exit 0),
    and raised TypeError for a file with a header only."""
    pytest.importorskip("expelliarmus")
    raw = eventcam / "evt2_sample.raw"
    cut = tmp_path / "cut.raw"
    cut.write_bytes(raw.read_bytes()[:-1])
    for decoder in ("numpy", "expelliarmus"):
        with pytest.raises(EventFileError, match="truncated"):
            read_events(cut, decoder=decoder)
    with open(raw, "rb") as f:
        size = read_header(f, raw.name).size
    empty = tmp_path / "empty.raw"
    empty.write_bytes(raw.read_bytes()[:size])
    assert len(read_events(empty, decoder="expelliarmus")) == len(read_events(empty)) == 0
