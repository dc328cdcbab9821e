"""A small simulated event camera: saccade-like motion over still images.

The image moves along a closed triangle (three saccades, as the N-MNIST recordings were
made) across a slightly larger sensor. Each pixel keeps the log intensity at which it
last fired; whenever the current log intensity differs from it by the contrast threshold
``c``, the pixel emits ``floor(|diff| / c)`` events of the sign of the change (ON = 1,
OFF = 0) and moves its reference by that many thresholds (the DVS pixel model).
Timestamps are jittered uniformly inside each simulation step; everything is seeded, per image.

The streams are the same on every platform and CPU: a pixel reads its intensity with 16 bits
(``LEVELS``) and its log intensity from a fixed-point table (:func:`log_table`), so the
comparisons with the threshold are integer arithmetic. ``np.log`` itself is not the same
everywhere (its vectorised paths differ by up to a few ULP between AVX2, AVX-512 and
aarch64), and a float log fed straight into ``floor(|diff| / c)`` changed the event counts
of most digits between an x86 with AVX2 and one without, or an aarch64 board.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from .events import make_events

LEVELS = 2**16  # intensity resolution of a pixel: 16 bits over [0, 1]
LOG_UNITS = 2**20  # fixed-point log intensity: units of 2^-20
LOG_OFFSET = 0.1  # log(I + 0.1): the dark level that keeps log finite at I = 0
# A float64 log is within a few ULP (~5e-10 in LOG_UNITS at |log| <= 2.4) of the true value
# on any platform; rounding agrees everywhere when no value lies closer than this to a half.
_TIE_MARGIN = 1e-7

# Triangle path of the image offset (dy, dx) in pixels, as fractions of the margin.
_VERTICES = np.array([[-1.0, -1.0], [1.0, 0.0], [-1.0, 1.0], [-1.0, -1.0]])


def _shift(images: np.ndarray, dy: float, dx: float, size: int, margin: int) -> np.ndarray:
    """Bilinear sample of ``images`` [N, h, w] placed at (margin + dy, margin + dx)."""
    N, h, w = images.shape
    padded = np.zeros((N, h + 2, w + 2), dtype=np.float32)
    padded[:, 1:-1, 1:-1] = images
    ys = np.arange(size) - margin - dy + 1.0
    xs = np.arange(size) - margin - dx + 1.0
    y0 = np.clip(np.floor(ys).astype(int), 0, h)
    x0 = np.clip(np.floor(xs).astype(int), 0, w)
    fy = np.clip(ys - y0, 0.0, 1.0)[:, None]
    fx = np.clip(xs - x0, 0.0, 1.0)[None, :]
    inside = ((ys >= 0) & (ys <= h + 1))[:, None] & ((xs >= 0) & (xs <= w + 1))[None, :]
    a = padded[:, y0][:, :, x0]
    b = padded[:, y0][:, :, x0 + 1]
    c = padded[:, y0 + 1][:, :, x0]
    d = padded[:, y0 + 1][:, :, x0 + 1]
    out = (1 - fy) * ((1 - fx) * a + fx * b) + fy * ((1 - fx) * c + fx * d)
    return (out * inside).astype(np.float32)


@cache
def log_table() -> np.ndarray:
    """``round(log(q / LEVELS + LOG_OFFSET) · LOG_UNITS)`` for q = 0..LEVELS, int64.

    The same on every platform: it is refused (AssertionError) should any value lie within
    ``_TIE_MARGIN`` of a rounding boundary, where a few ULP of log could round differently
    (for these constants the nearest lies 2.1e-6 away, 4000 times a 3-ULP error).
    """
    scaled = np.log(np.arange(LEVELS + 1) / LEVELS + LOG_OFFSET) * LOG_UNITS
    tie = np.abs(scaled - np.floor(scaled) - 0.5)
    assert tie.min() > _TIE_MARGIN, "log table rounding is platform-dependent: change LOG_UNITS"
    return np.rint(scaled).astype(np.int64)


def _log_intensity(img: np.ndarray) -> np.ndarray:
    """Fixed-point log intensity of ``img`` in [0, 1] (float32: its multiply by a power of two
    and the rounding are exact IEEE operations, so the index is the same everywhere)."""
    return log_table()[np.rint(np.clip(img, 0.0, 1.0) * LEVELS).astype(np.int64)]


def saccade_events(
    images: np.ndarray,
    margin: int = 2,
    steps: int = 60,
    duration_us: int = 300_000,
    threshold: float = 0.25,
    seed: int = 0,
    ids: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Event streams for ``images`` [N, h, w] in [0, 1] on a sensor of (h + 2·margin)².

    The timestamp jitter of image ``i`` comes from its own generator, seeded by
    ``(seed, ids[i])`` (``ids`` defaults to 0..N-1), so an image's events do not depend
    on which other images are simulated with it: a split or a batch gives the same
    streams as the whole set.
    """
    N, h, w = images.shape
    ids = np.arange(N) if ids is None else np.asarray(ids)
    size = max(h, w) + 2 * margin
    seg = np.linspace(0.0, 3.0, steps + 1)  # position along the 3 saccades
    k = np.minimum(seg.astype(int), 2)
    path = (_VERTICES[k] + (seg - k)[:, None] * (_VERTICES[k + 1] - _VERTICES[k])) * margin
    c = round(threshold * LOG_UNITS)
    if c != threshold * LOG_UNITS or c <= 0:
        raise ValueError(f"threshold must be a positive multiple of 2^-20, got {threshold}")
    ref = _log_intensity(_shift(images, path[0, 0], path[0, 1], size, margin))
    chunks = []
    for i in range(1, steps + 1):
        cur = _log_intensity(_shift(images, path[i, 0], path[i, 1], size, margin))
        diff = cur - ref
        n = np.abs(diff) // c
        idx = np.nonzero(n)
        if idx[0].size:
            cnt = n[idx]
            sign = diff[idx] > 0
            ref[idx] += np.where(sign, 1, -1) * cnt * c
            reps = [np.repeat(a, cnt) for a in (*idx, sign.astype(np.int8))]
            chunks.append((*reps, np.full(reps[0].size, i - 1, np.int64)))
    sample, y, x, p, step = (np.concatenate(c) for c in zip(*chunks))
    order = np.argsort(sample, kind="stable")  # per image: by step, then pixel
    bounds = np.searchsorted(sample[order], np.arange(N + 1))
    step_us = duration_us / steps
    out = []
    for j in range(N):
        o = order[bounds[j] : bounds[j + 1]]
        jitter = np.random.default_rng([seed, int(ids[j])]).random(len(o))
        out.append(make_events(x[o], y[o], p[o], ((step[o] + jitter) * step_us).astype(np.int64)))
    return out
