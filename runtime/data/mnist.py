"""MNIST images from IDX files (gzip or not), read with numpy only.

Hostile or damaged files are refused with a ValueError naming the file: a header that
does not match the file kind (images: 3 dimensions, labels: 1), a gzip stream that is
truncated, damaged or not gzip at all, a file that decompresses beyond what its header
announces (a gzip bomb is stopped after at most that many bytes), labels outside 0..9,
and anything that is not a regular file inside the data folder.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..limits import check_memory

_PATTERNS = {"train": "train-{kind}*", "test": "t10k-{kind}*"}
NDIM = {"images": 3, "labels": 1}
NUM_CLASSES = 10
MAX_BYTES = 2**32  # an IDX body larger than this is not MNIST-like data


def _read_limited(f, n: int, path: Path) -> bytes:
    data = f.read(n + 1)  # one byte more: a body longer than its header says is refused
    if len(data) > n:
        raise ValueError(f"{path}: holds more bytes than its IDX header announces")
    return data


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """An unsigned-byte IDX array; ``ndim``: the number of dimensions it must have."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise ValueError(f"{path} is not an IDX file (bad magic number)")
            dtype_code, nd = head[2], head[3]
            if dtype_code != 0x08:
                raise ValueError(f"{path}: only unsigned byte IDX files are supported, got type 0x{dtype_code:02x}")
            if ndim is not None and nd != ndim:
                raise ValueError(f"{path}: IDX header has {nd} dimensions; expected {ndim}")
            raw_dims = f.read(4 * nd)
            if len(raw_dims) < 4 * nd:
                raise ValueError(f"{path}: IDX header is truncated")
            dims = [int.from_bytes(raw_dims[4 * i : 4 * i + 4], "big") for i in range(nd)]
            size = int(np.prod(dims, dtype=object)) if dims else 1
            if nd == 0 or size == 0 or size > MAX_BYTES:
                raise ValueError(
                    f"{path}: IDX header dimensions {dims} are not a data set (expected 1..{MAX_BYTES} bytes of data)"
                )
            check_memory(5 * size, f"reading {path} ({dims})")  # bytes, then float32 images
            body = _read_limited(f, size, path)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ValueError(f"{path}: the gzip data is truncated or damaged ({e or type(e).__name__})") from None
    except OSError as e:  # a folder, no permission, an I/O error
        raise ValueError(f"{path} cannot be read: {e.strerror or e}") from None
    if len(body) != size:
        raise ValueError(f"{path}: header says {dims} but holds {len(body)} bytes")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _find(root: Path, split: str, kind: str) -> Path:
    pattern = _PATTERNS[split].format(kind=kind)
    # regular files inside the data folder only: never a FIFO (would block), a device, or a
    # symlink that leads out of the folder
    hits = sorted(p for p in root.glob(pattern) if p.is_file() and p.resolve().is_relative_to(root.resolve()))
    if not hits:
        raise FileNotFoundError(
            f"no MNIST {split} {kind} file under {root}: expected a regular file named like "
            f"{pattern}-idx*-ubyte[.gz] inside that folder"
        )
    return hits[0]


def read_mnist(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 1, H, W]`` float32 in [0, 1] (H x W as the IDX header gives: 28 x 28 for
    MNIST, Fashion-MNIST, KMNIST) and labels ``[N]`` int64 in 0..9."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"MNIST path {root} is not a directory")
    images = read_idx(_find(root, split, "images"), NDIM["images"])
    labels = read_idx(_find(root, split, "labels"), NDIM["labels"])
    if len(images) != len(labels):
        raise ValueError(f"MNIST {split}: {len(images)} images but {len(labels)} labels")
    if labels.size and labels.max() >= NUM_CLASSES:
        raise ValueError(f"MNIST {split}: label {int(labels.max())} found; expected 0..{NUM_CLASSES - 1}")
    return images[:, None].astype(np.float32) / 255.0, labels.astype(np.int64)
