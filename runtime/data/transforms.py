"""Event transforms a camera needs before a small network, the same in training and at run time.

A transform is named by a short text (CLI, ``--transform``) and stored as a JSON object
(checkpoint config, ONNX metadata ``input.transforms``):

=====================  ===================================  ===========================================
text                   object                               effect
=====================  ===================================  ===========================================
``crop:X,Y,W,H``       ``{"kind": "crop", "args": [...]}``  keep x in [X, X+W), y in [Y, Y+H); shift to 0
``downsample:WxH``     ``{"kind": "downsample", ...}``      sum pooling to a W x H sensor:
                                                            x' = floor(x·W/W_in), y' likewise
``merge-polarity``                                          one channel: p' = 0
``refractory:US``                                           drop an event if its pixel had an event
                                                            (kept or not) US µs before or less
``denoise:US``                                              keep an event only if one of its 4
                                                            neighbours had an event less than US µs before
``window:START,END``                                        keep START <= t - t0 < END µs, t0 the
                                                            stream's first timestamp
=====================  ===================================  ===========================================

Refractory and denoise follow ``tonic.functional.refractory_period_numpy`` and
``denoise_numpy`` (tests compare them), except at the start of a stream: tonic's memory
starts at ``-US`` / ``+US``, ours at "no event yet". A :class:`Pipeline` keeps the
per-pixel memory between chunks, so a stream cut anywhere gives the events of the whole.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import missing_package
from .events import EVENT_DTYPE
from .registry import DataError

NO_EVENT = np.iinfo(np.int64).min // 2
# kind -> (its written form, its number of whole-number arguments)
_FORMS = {
    "crop": ("crop:X,Y,W,H", 4),
    "downsample": ("downsample:WxH", 2),
    "merge-polarity": ("merge-polarity", 0),
    "refractory": ("refractory:US", 1),
    "denoise": ("denoise:US", 1),
    "window": ("window:START,END", 2),
}
TRANSFORM_FORMS = tuple(form for form, _ in _FORMS.values())


class TransformError(DataError):
    """A transform that is malformed or does not fit the sensor; the message says what was expected."""


@dataclass(frozen=True)
class Transform:
    kind: str
    args: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {"kind": self.kind, "args": list(self.args)}

    @property
    def text(self) -> str:
        if self.kind == "downsample":
            return f"downsample:{self.args[0]}x{self.args[1]}"
        return self.kind + (":" + ",".join(map(str, self.args)) if self.args else "")


def parse_transform(text: str) -> Transform:
    """``"crop:0,0,640,480"`` and the other forms of :data:`TRANSFORM_FORMS`."""
    kind, _, arg = text.strip().partition(":")
    if kind not in _FORMS:
        raise TransformError(f"transform {text!r} is unknown; expected one of {list(TRANSFORM_FORMS)}")
    form, arity = _FORMS[kind]
    # the form's own separator ("x" in downsample's WxH only) and no empty part: splitting on
    # either and dropping empty parts read 'refractory:x5x' as 5 and 'merge-polarity:x,x' as
    # no argument
    parts = [p.strip() for p in arg.split("x" if kind == "downsample" else ",")] if arg else []
    # digits only: int() would also take '+3', '1_000' and (via a failed parse that emptied
    # the list) let 'refractory:1e3' through the count check as one argument
    if len(parts) != arity or not all(p.isascii() and p.isdigit() for p in parts):
        raise TransformError(f"transform {text!r} is malformed; expected {form} with whole numbers >= 0")
    return _checked(Transform(kind, tuple(int(p) for p in parts)), form)


def _checked(t: Transform, form: str) -> Transform:
    if t.kind in ("crop", "downsample") and min(t.args[-2:]) <= 0:
        raise TransformError(f"transform {t.text!r}: width and height must be > 0 ({form})")
    if t.kind == "window" and t.args[1] <= t.args[0]:
        raise TransformError(f"transform {t.text!r}: END must be after START ({form})")
    return t


def from_dicts(objs: Sequence[dict]) -> list[Transform]:
    """The stored form (checkpoint, ONNX metadata) back to transforms."""
    out = []
    for o in objs:
        if not (isinstance(o, dict) and o.get("kind") in _FORMS and isinstance(o.get("args"), list)):
            raise TransformError(
                f"transform entry {o!r} is not of the form {{'kind': one of {list(_FORMS)}, 'args': [...]}}"
            )
        out.append(parse_transform(Transform(o["kind"], tuple(o["args"])).text))
    return out


def output_shape(transforms: Sequence[Transform], shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Sensor (C, H, W) after ``transforms``; :class:`TransformError` if one does not fit."""
    C, H, W = shape
    for t in transforms:
        if t.kind == "crop":
            x, y, w, h = t.args
            if x + w > W or y + h > H:
                raise TransformError(f"transform {t.text!r} reaches outside the {W}x{H} sensor")
            W, H = w, h
        elif t.kind == "downsample":
            if t.args[0] > W or t.args[1] > H:
                raise TransformError(
                    f"transform {t.text!r} would upsample the {W}x{H} sensor; expected a size no larger"
                )
            W, H = t.args
        elif t.kind == "merge-polarity":
            C = 1
    return C, H, W


@functools.cache
def _kernels() -> tuple[Callable, Callable]:
    """The per-event filters, compiled on first use (numba is heavy to import)."""
    try:
        from ..jit import cached_njit
    except ImportError as e:  # a runtime-only install: one line, not a traceback
        raise missing_package("numba", "a refractory or denoise transform", e) from e

    @cached_njit()
    def refractory(x, y, t, last, W, us):  # pragma: no cover - compiled
        keep = np.zeros(len(t), np.bool_)
        for i in range(len(t)):
            k = y[i] * W + x[i]
            keep[i] = t[i] - last[k] > us
            last[k] = t[i]
        return keep

    @cached_njit()
    def denoise(x, y, t, until, H, W, us):  # pragma: no cover - compiled
        keep = np.zeros(len(t), np.bool_)
        for i in range(len(t)):
            xi, yi, ti = x[i], y[i], t[i]
            until[yi, xi] = ti + us
            keep[i] = (
                (xi > 0 and until[yi, xi - 1] > ti)
                or (xi < W - 1 and until[yi, xi + 1] > ti)
                or (yi > 0 and until[yi - 1, xi] > ti)
                or (yi < H - 1 and until[yi + 1, xi] > ti)
            )
        return keep

    return refractory, denoise


class Pipeline:
    """``transforms`` applied in order to a stream on a sensor ``shape`` (C, H, W), chunk by chunk."""

    def __init__(self, transforms: Sequence[Transform], shape: tuple[int, int, int]):
        self.transforms = list(transforms)
        self.in_shape = (*shape,)  # a copy with the (C, H, W) type
        self.shape = output_shape(self.transforms, self.in_shape)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: per-pixel memories and the time origin."""
        self._memory: list[np.ndarray | None] = []
        C, H, W = self.in_shape
        for t in self.transforms:
            C, H, W = output_shape([t], (C, H, W))
            self._memory.append(np.full((H, W), NO_EVENT, np.int64) if t.kind in ("refractory", "denoise") else None)
        self._t0: int | None = None

    def __call__(self, ev: np.ndarray) -> np.ndarray:
        """The next chunk of the stream, transformed (a new array)."""
        ev = np.array(ev, dtype=EVENT_DTYPE)
        if len(ev) and self._t0 is None:
            self._t0 = int(ev["t"][0])
        C, H, W = self.in_shape
        for t, mem in zip(self.transforms, self._memory):
            if not len(ev):
                break
            a = t.args
            if t.kind == "crop":
                ev = ev[(ev["x"] >= a[0]) & (ev["x"] < a[0] + a[2]) & (ev["y"] >= a[1]) & (ev["y"] < a[1] + a[3])]
                ev["x"] -= a[0]
                ev["y"] -= a[1]
            elif t.kind == "downsample":
                ev["x"] = ev["x"].astype(np.int64) * a[0] // W
                ev["y"] = ev["y"].astype(np.int64) * a[1] // H
            elif t.kind == "merge-polarity":
                ev["p"] = 0
            elif t.kind == "window":
                rel = ev["t"] - self._t0
                ev = ev[(rel >= a[0]) & (rel < a[1])]
            elif t.kind in ("refractory", "denoise"):
                assert mem is not None  # reset() gives every refractory/denoise transform a memory
                xs, ys, ts = (np.ascontiguousarray(ev[k], np.int64) for k in "xyt")
                refractory, denoise = _kernels()
                keep = (
                    refractory(xs, ys, ts, mem.reshape(-1), mem.shape[1], a[0])
                    if t.kind == "refractory"
                    else denoise(xs, ys, ts, mem, mem.shape[0], mem.shape[1], a[0])
                )
                ev = ev[keep]
            else:  # a kind added to _FORMS without its effect here
                raise TransformError(f"transform {t.text!r} has no effect in Pipeline; add its branch")
            C, H, W = output_shape([t], (C, H, W))
        return ev

    def apply(self, ev: np.ndarray) -> np.ndarray:
        """One whole recording (a fresh stream)."""
        self.reset()
        return self(ev)
