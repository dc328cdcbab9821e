"""Event-camera files and streams, read in chunks: Prophesee RAW (EVT 2.0, EVT 3.0) and
DAT, iniVation AEDAT4.

:func:`open_events` returns an :class:`EventReader`: its header (format, sensor size)
and an iterator over chunks of events in :data:`EVENT_DTYPE`, each checked (inside the
declared sensor, time never going back). Memory is bounded by the chunk size, so files
larger than memory and endless streams on stdin read the same way; the chunks of a
file joined equal the whole file, whatever the chunk size.

RAW and DAT are decoded by :mod:`.prophesee` (numpy). ``decoder="expelliarmus"`` uses
that package instead (whole files only: it reads paths). AEDAT4 needs the ``aedat``
package (the ``eventcam`` extra); it reads paths, not stdin.
"""

from __future__ import annotations

import io
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np

from .events import EVENT_DTYPE
from .prophesee import DECODERS, FormatError
from .registry import DataError

FORMATS = ("evt2", "evt3", "dat", "aedat4")
AEDAT4_MAGIC = b"#!AER-DAT4.0"
CHUNK_BYTES = 1 << 20
# Sensor sizes of Prophesee sensors by HAL plugin name, for RAW files whose header
# states no geometry (older firmware, such as the shared samples).
PLUGIN_SENSORS = {
    "gen41": (1280, 720),
    "imx636": (1280, 720),
    "gen31": (640, 480),
    "gen3": (640, 480),
    "imx8": (320, 320),
}


class EventFileError(DataError):
    """An event file or stream that cannot be read; the message says what was expected."""


@dataclass
class Header:
    """What a file says about itself before its events."""

    format: str
    sensor: tuple[int, int] | None  # (width, height); None: the file does not say
    fields: dict[str, str] = field(default_factory=dict)
    size: int = 0  # bytes of header
    guessed: tuple[int, int] | None = None  # from the plugin name, when the header states no size


MAX_HEADER_LINE = 4096  # bytes a '%' header line may take


def _header_line_next(f: io.BufferedReader) -> bool:
    """Whether ``f`` is at a ``%`` header line: text up to its newline. A file without a
    closing ``% end`` goes straight on to binary words, and 1 in 256 of those starts with
    the byte 0x25 ('%'): read as header, a word was eaten and the rest decoded misaligned."""
    head = f.peek(MAX_HEADER_LINE)[:MAX_HEADER_LINE]
    if head[:1] != b"%":
        return False
    nl = head.find(b"\n")
    return all(b in (9, 13) or 32 <= b < 127 for b in head[1 : nl if nl >= 0 else len(head)])


def _text_header(f: io.BufferedReader) -> tuple[dict[str, str], int]:
    """The ``% key value`` lines at the top of a Prophesee file; leaves ``f`` after them."""
    fields, size = {}, 0
    while _header_line_next(f):
        line = f.readline(MAX_HEADER_LINE + 1)  # bounded: an endless line on stdin grew to 13 GB
        size += len(line)
        if len(line) > MAX_HEADER_LINE:
            raise EventFileError(f"a '%' header line is longer than {MAX_HEADER_LINE} bytes: the file is damaged")
        if not line.endswith(b"\n"):
            raise EventFileError("the file ends inside its '%' header: it is truncated")
        key, _, value = line[1:].decode("latin-1").strip().partition(" ")
        if key == "end":  # newer RAW files close the header with '% end'
            break
        fields[key] = value.strip()
    return fields, size


def _raw_format(fields: dict[str, str]) -> str | None:
    evt = fields.get("evt", "")
    fmt = fields.get("format", "").split(";")[0].upper()
    if evt.startswith("2.1") or fmt == "EVT21":  # 64-bit words: read as EVT 2.0 it was "damaged"
        raise EventFileError(
            "the header says EVT 2.1 (64-bit vectorised words), which this reader does not decode; expected EVT "
            "2.0 or 3.0 (Metavision's tools convert between them)"
        )
    if evt.startswith("3") or fmt == "EVT3":
        return "evt3"
    if evt.startswith("2") or fmt == "EVT2":
        return "evt2"
    return None


def _sensor(fields: dict[str, str]) -> tuple[int, int] | None:
    """The sensor size the header states (not a guess from its plugin name: :func:`_guessed_sensor`)."""
    if m := re.fullmatch(r"(\d+)x(\d+)", fields.get("geometry", "")):
        return _size(m[1], m[2], "geometry")
    opts = dict(kv.partition("=")[::2] for kv in fields.get("format", "").split(";")[1:])
    if "width" in opts and "height" in opts:
        return _size(opts["width"], opts["height"], "format")
    if "Width" in fields and "Height" in fields:  # DAT
        return _size(fields["Width"], fields["Height"], "Width/Height")
    return None


def _size(width: str, height: str, line: str) -> tuple[int, int]:
    """A header's stated sensor size: positive whole numbers (``width=abc`` was int()'s
    traceback, ``0x0`` or ``width=-5`` a sensor of "2x2x-5 inputs")."""
    if not (width.strip().isdigit() and height.strip().isdigit() and int(width) > 0 and int(height) > 0):
        raise EventFileError(
            f"the header's {line} line states a sensor of {width!r} x {height!r}; expected positive whole numbers"
        )
    return int(width), int(height)


def _guessed_sensor(fields: dict[str, str]) -> tuple[int, int] | None:
    """The sensor of the camera the header's plugin name suggests (a writer such as
    expelliarmus names a camera's plugin whatever the events' size): a default that
    ``--sensor`` overrides, never a statement."""
    plugin = fields.get("plugin_name", "")
    hit = [s for k, s in PLUGIN_SENSORS.items() if k in plugin]
    return hit[0] if hit else None


def read_header(f: io.BufferedReader, name: str, fmt: str | None = None) -> Header:
    """Parse the header of ``f`` (a buffered binary stream), leaving ``f`` at the first event."""
    if f.peek(len(AEDAT4_MAGIC))[: len(AEDAT4_MAGIC)] == AEDAT4_MAGIC:
        if fmt is not None and fmt != "aedat4":  # was ignored
            raise EventFileError(f"{name}: the file is AEDAT4, but format {fmt} was asked")
        return Header("aedat4", None)
    try:
        fields, size = _text_header(f)
        found = _raw_format(fields)
    except EventFileError as e:
        raise EventFileError(f"{name}: {e}") from None
    if found is None and (name.lower().endswith(".dat") or "Version" in fields or fmt == "dat"):
        found = "dat"
    if fmt is not None and found is not None and fmt != found:
        raise EventFileError(f"{name}: the header says {found}, but format {fmt} was asked")
    found = found or fmt
    if found is None:
        raise EventFileError(
            f"{name}: unknown event file format; expected a Prophesee RAW file (EVT 2.0 or 3.0: "
            f"header lines '% evt 2.0' / '% evt 3.0'), a DAT file, or AEDAT4 ('{AEDAT4_MAGIC.decode()}')"
        )
    if found == "dat":
        head = f.read(2)
        if len(head) < 2:
            raise EventFileError(
                f"{name}: the DAT file ends after its header (no event type and size bytes): it is truncated"
            )
        if head[1] != 8:
            raise EventFileError(f"{name}: DAT event size is {head[1]} bytes; expected 8 (CD events)")
        size += 2
    return Header(found, _sensor(fields), fields, size, _guessed_sensor(fields))


def parse_sensor(text: str) -> tuple[int, int]:
    """``"WxH"`` -> (width, height)."""
    m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", text)
    if not m or int(m[1]) <= 0 or int(m[2]) <= 0:
        raise EventFileError(f"sensor {text!r} is not of the form WIDTHxHEIGHT (e.g. 1280x720)")
    return int(m[1]), int(m[2])


class EventReader:
    """Chunks of events from a file or a binary stream (``"-"``: stdin).

    ``sensor`` (width, height) overrides the header's; a sensor given both ways must agree.
    """

    def __init__(
        self,
        source: str | Path | BinaryIO,
        fmt: str | None = None,
        sensor: tuple[int, int] | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ):
        if fmt is not None and fmt not in FORMATS:
            raise EventFileError(f"event file format {fmt!r} is unknown; expected one of {list(FORMATS)}")
        if chunk_bytes <= 0:
            raise EventFileError(f"chunk size must be a positive number of bytes, got {chunk_bytes}")
        self.chunk_bytes = chunk_bytes
        self.path: Path | None = None
        if isinstance(source, (str, Path)) and str(source) == "-":
            stdin = cast(io.BufferedReader, sys.stdin.buffer)  # typeshed says BinaryIO; it is buffered
            self.name, self._f = "stdin", io.BufferedReader(stdin.raw, CHUNK_BYTES)
        elif isinstance(source, (str, Path)):
            self.path = Path(source)
            if not self.path.is_file():
                raise EventFileError(f"event file {self.path} does not exist or is not a file")
            self.name, self._f = str(self.path), open(self.path, "rb")
        else:
            self.name = getattr(source, "name", "stream")
            # a stream with peek() is buffered already
            self._f = cast(
                io.BufferedReader, source if hasattr(source, "peek") else io.BufferedReader(source, CHUNK_BYTES)
            )
        try:
            self.header = read_header(self._f, self.name, fmt)
        except UnicodeDecodeError:
            raise EventFileError(f"{self.name}: the header is not text; unknown event file format") from None
        if self.header.format == "aedat4":
            self.header.sensor = self._aedat4_sensor()
        declared = self.header.sensor
        if sensor is not None and declared is not None and tuple(sensor) != declared:
            raise EventFileError(
                f"{self.name}: the file declares a {declared[0]}x{declared[1]} sensor, "
                f"but {sensor[0]}x{sensor[1]} was given"
            )
        chosen = tuple(sensor) if sensor is not None else declared or self.header.guessed
        # seconds spent waiting for a pipe's next bytes (a live camera's): not the reader's work
        self.waiting_s = 0.0
        self._pipe = self.path is None
        if chosen is None:
            raise EventFileError(f"{self.name}: the header states no sensor size; give it (--sensor WIDTHxHEIGHT)")
        self.sensor: tuple[int, ...] = chosen
        self.t_last = -1

    @property
    def format(self) -> str:
        return self.header.format

    @property
    def shape(self) -> tuple[int, int, int]:
        """(polarities, height, width), the layout of the product's frames."""
        return 2, self.sensor[1], self.sensor[0]

    def close(self) -> None:
        if self.path is not None:
            self._f.close()

    def __enter__(self) -> EventReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        chunks = self._aedat4() if self.format == "aedat4" else self._words()
        for ev in chunks:
            if len(ev):
                yield self._check(ev)

    def _words(self) -> Iterator[np.ndarray]:
        dec = DECODERS[self.format]()
        size = dec.word.itemsize
        rest = b""
        read = getattr(self._f, "read1", self._f.read)
        while True:
            t0 = time.perf_counter()
            data = read(self.chunk_bytes)
            if self._pipe:
                self.waiting_s += time.perf_counter() - t0
            if not data:
                break
            data = rest + data
            whole = len(data) - len(data) % size
            rest = data[whole:]
            try:
                yield dec.decode(np.frombuffer(data, dec.word, count=whole // size))
            except FormatError as e:
                raise EventFileError(f"{self.name}: {e}") from None
        if rest:
            raise EventFileError(
                f"{self.name}: the file ends inside a word of {dec.name.upper()} ({len(rest)} of {size} bytes): "
                "it is truncated"
            )

    def _check(self, ev: np.ndarray) -> np.ndarray:
        W, H = self.sensor
        out = (ev["x"] >= W) | (ev["y"] >= H) | (ev["x"] < 0) | (ev["y"] < 0)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            # counted in this chunk: a stream stops here, before the rest is read
            raise EventFileError(
                f"{self.name}: events outside the declared {W}x{H} sensor ({int(out.sum())} of the {len(ev)} "
                f"in the chunk read up to t = {int(ev['t'][-1])} µs; first: x={ev['x'][i]}, y={ev['y'][i]}, "
                f"t = {int(ev['t'][i])} µs); the file is damaged or the sensor size is wrong"
            )
        if ev["p"].max() > 1:
            raise EventFileError(f"{self.name}: polarity {int(ev['p'].max())} found; expected 0 (OFF) or 1 (ON)")
        t = ev["t"]
        back = np.flatnonzero(np.diff(np.concatenate([[self.t_last], t])) < 0)
        if back.size:
            i = int(back[0])
            before = self.t_last if i == 0 else int(t[i - 1])
            raise EventFileError(
                f"{self.name}: time goes back from {before} to {int(t[i])} µs; "
                "the file is damaged (events must be in time order)"
            )
        self.t_last = int(t[-1])
        return ev

    # ---- AEDAT4 (iniVation), through the aedat package --------------------------------
    def _aedat4_decoder(self):
        if self.path is None:
            raise EventFileError("AEDAT4 is read from a file path (the aedat package reads no stdin)")
        try:
            import aedat
        except ImportError:
            raise EventFileError("reading AEDAT4 needs the aedat package: pip install 'flexsnn[eventcam]'") from None
        try:
            return aedat.Decoder(str(self.path))
        except Exception as e:  # aedat raises plain exceptions on damaged files
            raise EventFileError(f"{self.name}: not a readable AEDAT4 file ({e})") from None

    def _aedat4_sensor(self) -> tuple[int, int] | None:
        streams = self._aedat4_decoder().id_to_stream()
        ev = [s for s in streams.values() if s.get("type") == "events"]
        if not ev:
            raise EventFileError(f"{self.name}: the AEDAT4 file has no event stream")
        return int(ev[0]["width"]), int(ev[0]["height"])

    def _aedat4(self) -> Iterator[np.ndarray]:
        try:
            for packet in self._aedat4_decoder():
                if "events" in packet:
                    e = packet["events"]
                    out = np.empty(len(e), EVENT_DTYPE)
                    out["x"], out["y"], out["p"], out["t"] = e["x"], e["y"], e["on"], e["t"]
                    yield out
        except EventFileError:
            raise
        except Exception as e:
            raise EventFileError(f"{self.name}: the AEDAT4 file is damaged ({e})") from None


def open_events(
    source: str | Path | BinaryIO,
    fmt: str | None = None,
    sensor: tuple[int, int] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> EventReader:
    """Open an event file (or ``"-"`` for stdin) and read its header; see :class:`EventReader`."""
    return EventReader(source, fmt, sensor, chunk_bytes)


def read_events(
    path: str | Path, fmt: str | None = None, sensor: tuple[int, int] | None = None, decoder: str = "numpy"
) -> np.ndarray:
    """The whole file's events; ``decoder="expelliarmus"`` decodes RAW/DAT with that package."""
    with open_events(path, fmt, sensor) as r:
        if decoder == "numpy":
            parts = list(r)
            return np.concatenate(parts) if parts else np.empty(0, EVENT_DTYPE)
        if decoder != "expelliarmus":
            raise EventFileError(f"decoder {decoder!r} is unknown; expected 'numpy' or 'expelliarmus'")
        if r.format == "aedat4":
            raise EventFileError("expelliarmus reads Prophesee files (RAW, DAT), not AEDAT4")
        try:
            from expelliarmus import Wizard
        except ImportError:
            raise EventFileError(
                "decoder 'expelliarmus' needs the expelliarmus package: pip install 'flexsnn[eventcam]'"
            ) from None
        word = {"evt2": 4, "evt3": 2, "dat": 8}[r.format]
        body = Path(path).stat().st_size - r.header.size
        if body % word:  # expelliarmus decodes up to the cut without a word
            raise EventFileError(
                f"{path}: the file ends inside a word of {r.format.upper()} ({body % word} of {word} bytes): "
                "it is truncated"
            )
        if body == 0:
            return np.empty(0, EVENT_DTYPE)
        try:
            arr = Wizard(encoding=r.format, fpath=str(path)).read()
            len(arr)  # it returns None for a file whose header it could not skip
        except Exception as e:
            said = str(e).strip().splitlines()[0].removeprefix("ERROR: ") if str(e).strip() else ""
            raise EventFileError(
                f"{path}: expelliarmus could not decode it ({type(e).__name__}{': ' + said if said else ''}); the "
                "numpy decoder (the default) reads RAW and DAT files by their header, whatever their name"
            ) from None
        out = np.empty(len(arr), EVENT_DTYPE)
        for k in "xypt":
            out[k] = arr[k]
        return r._check(out) if len(out) else out
