"""N-MNIST (Orchard et al., 2015) in its original binary format, read with numpy only.

Each event is 5 bytes, big-endian: x (8 bits), y (8 bits), polarity (bit 7 of byte 2)
and a 23-bit timestamp in µs. An event with y == 240 marks a timestamp overflow
(+2**13 µs for everything after it) and is not a pixel event. ``tests/`` checks this
decoder against ``tonic.io.read_mnist_file``.

Layout read: ``PATH/train/<label>/<i>.bin`` where ``i`` is the 1-based MNIST index (and
``PATH/test/...`` if present). Without a test folder, the split is by index: samples
whose index is divisible by 5 form the test split, the others the training split.

Only regular files inside ``PATH`` are read (a symlink leading out of the folder, a FIFO
or a device named like a recording is refused, never followed or opened), at most
:data:`MAX_FILE_BYTES` each, and every recording is checked by the one event-input
validation (:mod:`runtime.eventinput`) against the 34x34 sensor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..eventinput import check_stream
from .events import make_events
from .splits import in_test

SENSOR = (2, 34, 34)
OVERFLOW_Y = 240
OVERFLOW_US = 2**13
MAX_FILE_BYTES = 64 * 2**20  # a recording is about 20-50 kB; far larger is not N-MNIST


def read_nmnist_bin(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():  # opening a FIFO would block forever
        raise ValueError(f"{path} is not a regular file; expected an N-MNIST .bin recording")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: {size} bytes; an N-MNIST recording is at most {MAX_FILE_BYTES} bytes")
    if size == 0:  # every N-MNIST saccade recording holds events: an empty file is a failed copy
        raise ValueError(f"{path} is empty (0 bytes); an N-MNIST recording holds events (an interrupted copy?)")
    raw = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if raw.size % 5:
        raise ValueError(f"{path}: size {raw.size} bytes is not a multiple of 5 (N-MNIST events)")
    x, y, b2 = raw[0::5], raw[1::5], raw[2::5]
    t = ((b2 & 127) << 16) | (raw[3::5] << 8) | raw[4::5]
    overflow = y == OVERFLOW_Y
    t = t + OVERFLOW_US * np.cumsum(overflow)
    keep = ~overflow
    ev = make_events(x[keep], y[keep], (b2[keep] & 128) >> 7, t[keep])
    check_stream(ev, SENSOR, what=str(path))  # e.g. x = 34..40 on the 34-wide sensor
    return ev


def _find_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _split_dir(root: Path, split: str) -> tuple[Path, bool]:
    """Folder holding ``<label>/<i>.bin`` for ``split``; second value: split by index."""
    test = _find_dir(root, ("test", "Test"))
    train = _find_dir(root, ("train", "Train"))
    if test is not None and train is not None:
        return (test if split == "test" else train), False
    if train is not None:
        return train, True
    if any((root / str(c)).is_dir() for c in range(10)):
        return root, True
    raise FileNotFoundError(f"no N-MNIST data under {root}: expected {root}/train/<label>/<index>.bin files")


def list_nmnist(root: str | Path, split: str) -> list[tuple[Path, int]]:
    """(file, label) pairs of ``split`` ("train" or "test"), sorted by label then index."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"N-MNIST path {root} is not a directory")
    folder, by_index = _split_dir(root, split)
    labels = {str(k) for k in range(10)}
    other = sorted(d.name for d in folder.iterdir() if d.is_dir() and d.name not in labels)
    if other:  # read past, a folder "10" or "zero" would be a class that silently is not there
        raise ValueError(
            f"{folder} holds folders {other[:5]} besides the label folders; N-MNIST keeps its recordings in "
            "folders named 0 to 9 (one per digit)"
        )
    inside = root.resolve()
    items = []
    for label in range(10):
        for f in sorted((folder / str(label)).glob("*.bin")):
            if not f.resolve().is_relative_to(inside):
                raise ValueError(f"{f} leads outside the data folder {root} (to {f.resolve()}); refused")
            if not f.is_file():
                raise ValueError(f"{f} is not a regular file; expected an N-MNIST .bin recording")
            if not f.stem.isdigit():
                raise ValueError(f"{f}: expected a file named <index>.bin (the MNIST index)")
            if by_index:
                if in_test(int(f.stem)) != (split == "test"):  # no test folder: by index
                    continue
            items.append((f, label))
    if not items:
        raise FileNotFoundError(f"no N-MNIST .bin files for split {split!r} under {folder}")
    return items
