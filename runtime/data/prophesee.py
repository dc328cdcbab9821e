"""Prophesee event words (EVT 2.0, EVT 3.0, DAT) decoded with numpy, chunk by chunk.

Each decoder is a class whose :meth:`decode` takes the next run of whole words of a
file's body and returns its CD (change detection) events in :data:`EVENT_DTYPE`; the
state a format carries from word to word (time base, row, vector base) lives in the
object, so decoding a file in any split gives the same events as decoding it whole.
Word layouts follow Prophesee's format documentation (and OpenEB's decoders):

* EVT 2.0, 32-bit words, type in bits 31..28: CD_OFF 0x0 / CD_ON 0x1 (timestamp low
  bits 27..22, x 21..11, y 10..0), EV_TIME_HIGH 0x8 (timestamp bits 33..6 in 27..0),
  EXT_TRIGGER 0xA, OTHERS 0xE, CONTINUED 0xF.
* EVT 3.0, 16-bit words, type in bits 15..12: ADDR_Y 0x0 (y), ADDR_X 0x2 (polarity in
  bit 11, x: one event), VECT_BASE_X 0x3 (polarity, base x), VECT_12 0x4 / VECT_8 0x5
  (a mask of 12 / 8 pixels from the base, which then moves on by 12 / 8), TIME_LOW 0x6
  and TIME_HIGH 0x8 (12 bits each of a 24-bit µs counter, which wraps: a TIME_HIGH more
  than half the range below the previous one starts the next loop), CONTINUED_4 0x7,
  EXT_TRIGGER 0xA, OTHERS 0xE, CONTINUED_12 0xF.
* DAT: after the header, one byte of event type and one of event size (8), then
  records of a 32-bit timestamp and a 32-bit word: x bits 13..0, y 27..14, p 31..28.

CD events that come before the first time base of a file (EVT 2.0/3.0) have no
timestamp and are dropped, as OpenEB's decoders do. Any word type the format does not
define means the file is not what its header says (or is damaged): :class:`FormatError`.
"""

from __future__ import annotations

import numpy as np

from .events import EVENT_DTYPE


class FormatError(ValueError):
    """Bytes that are not valid words of the declared format; the message says where."""


def _forward(mask: np.ndarray) -> np.ndarray:
    """For every word, the index of the last word at or before it where ``mask`` holds (-1: none)."""
    idx = np.where(mask, np.arange(len(mask), dtype=np.int32), np.int32(-1))
    return np.maximum.accumulate(idx) if len(idx) else idx


def _events(x, y, p, t) -> np.ndarray:
    ev = np.empty(len(t), EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = x, y, p, t
    return ev


def _bad_types(typ: np.ndarray, valid: tuple[int, ...], what: str, offset: int) -> None:
    ok = np.zeros(16, bool)
    ok[list(valid)] = True
    bad = ~ok[typ]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FormatError(
            f"word {offset + i} has type 0x{int(typ[i]):X}, which {what} does not define; "
            "the file is damaged or not in this format"
        )


class Evt2Decoder:
    """EVT 2.0 (32-bit words)."""

    word = np.dtype("<u4")
    name = "EVT 2.0"

    def __init__(self) -> None:
        self.time_high: int | None = None  # bits 33..6 of the time base, once one was seen
        self.words = 0

    def decode(self, w: np.ndarray) -> np.ndarray:
        typ = (w >> 28).astype(np.int64)
        _bad_types(typ, (0x0, 0x1, 0x8, 0xA, 0xE, 0xF), self.name, self.words)
        self.words += len(w)
        is_th = typ == 0x8
        last = _forward(is_th)
        th_words = (w & 0x0FFFFFFF).astype(np.int64)
        th = np.where(last >= 0, th_words[np.maximum(last, 0)], -1 if self.time_high is None else self.time_high)
        cd = (typ <= 1) & (th >= 0)
        if is_th.any():
            self.time_high = int(th_words[np.flatnonzero(is_th)[-1]])
        wc = w[cd].astype(np.int64)
        t = (th[cd] << 6) | ((wc >> 22) & 0x3F)
        return _events((wc >> 11) & 0x7FF, wc & 0x7FF, typ[cd], t)


class Evt3Decoder:
    """EVT 3.0 (16-bit words, vectorised events)."""

    word = np.dtype("<u2")
    name = "EVT 3.0"
    LOOP = 1 << 24  # the 24-bit µs counter wraps every 16.8 s

    def __init__(self) -> None:
        self.time_high: int | None = None  # with the loops so far: bits 35..12 of the time
        self.time_low = 0
        self.y = 0
        self.base_x = 0
        self.pol = 0
        self.words = 0

    def decode(self, w: np.ndarray) -> np.ndarray:
        n = len(w)
        typ = (w >> 12).astype(np.int64)
        val = (w & 0x0FFF).astype(np.int64)
        _bad_types(typ, (0x0, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8, 0xA, 0xE, 0xF), self.name, self.words)
        self.words += n
        # time high with its loops: a drop of more than half the 12-bit range is a wrap
        th_at = np.flatnonzero(typ == 0x8)
        th_raw = val[th_at]
        prev = np.concatenate([[-1 if self.time_high is None else self.time_high & 0xFFF], th_raw[:-1]])
        wraps = np.cumsum((prev >= 0) & (prev - th_raw >= 0x800))
        base = 0 if self.time_high is None else self.time_high >> 12
        th_full = ((base + wraps) << 12) | th_raw  # in units of 4096 µs
        th = self._fill(
            typ == 0x8, np.zeros(n, np.int64), th_at, th_full, -1 if self.time_high is None else self.time_high
        )
        tl = self._fill(typ == 0x6, val, None, None, self.time_low)
        t = (th << 12) | tl
        y = self._fill(typ == 0x0, val & 0x7FF, None, None, self.y)
        # vector base: the last VECT_BASE_X plus the 12s and 8s of the vectors since
        is_base = typ == 0x3
        step = np.where(typ == 0x4, 12, np.where(typ == 0x5, 8, 0))
        moved = np.cumsum(step)
        last_base = _forward(is_base)
        b = np.maximum(last_base, 0)
        base_x = np.where(last_base >= 0, (val[b] & 0x7FF) + moved - step - moved[b], self.base_x + moved - step)
        pol = np.where(last_base >= 0, val[b] >> 11, self.pol)
        # single events
        single = np.flatnonzero((typ == 0x2) & (th >= 0))
        # vector events: one per set bit, in bit order
        vec = np.flatnonzero(((typ == 0x4) | (typ == 0x5)) & (th >= 0))
        width = np.where(typ[vec] == 0x4, 12, 8)
        bits = (val[vec, None] >> np.arange(12)) & 1
        bits[np.arange(12)[None, :] >= width[:, None]] = 0
        row, bit = np.nonzero(bits)
        at = np.concatenate([single, vec[row]])
        order = np.argsort(at, kind="stable")  # word order; bit order within a vector word
        ev = _events(
            np.concatenate([val[single] & 0x7FF, base_x[vec[row]] + bit])[order],
            y[at][order],
            np.concatenate([val[single] >> 11, pol[vec[row]]])[order],
            t[at][order],
        )
        # carry the state to the next run of words
        if len(th_at):
            self.time_high = int(th_full[-1])
        self.time_low, self.y = int(tl[-1]) if n else self.time_low, int(y[-1]) if n else self.y
        if n:
            self.base_x, self.pol = int(base_x[-1] + step[-1]), int(pol[-1])
        return ev

    @staticmethod
    def _fill(
        mask: np.ndarray, values: np.ndarray, at: np.ndarray | None, at_values: np.ndarray | None, before: int
    ) -> np.ndarray:
        """Forward-fill ``values`` (or ``at_values`` placed at ``at``) from the words where
        ``mask`` holds; ``before`` for the words before the first of them."""
        if at is not None:
            values = values.copy()
            values[at] = at_values
        last = _forward(mask)
        return np.where(last >= 0, values[np.maximum(last, 0)], before)


class DatDecoder:
    """DAT (8-byte records: timestamp, packed x/y/p); the time base is absolute."""

    word = np.dtype([("t", "<u4"), ("w", "<u4")])
    name = "DAT"

    def __init__(self) -> None:
        self.words = 0

    def decode(self, r: np.ndarray) -> np.ndarray:
        self.words += len(r)
        w = r["w"].astype(np.int64)
        return _events(w & 0x3FFF, (w >> 14) & 0x3FFF, (w >> 28) & 0xF, r["t"].astype(np.int64))


DECODERS: dict[str, type[Evt2Decoder | Evt3Decoder | DatDecoder]] = {
    "evt2": Evt2Decoder,
    "evt3": Evt3Decoder,
    "dat": DatDecoder,
}
