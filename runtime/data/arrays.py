"""Your own static images as a data set: ``npz:FILE``, a NumPy ``.npz`` file (``np.savez``).

It holds ``images``, float32 ``[N, C, H, W]`` (repeat-encoded: the same frame every step),
and ``labels``, integers ``[N]`` in 0..K-1; optionally ``classes``, K names in label order
(default ``"0"`` .. ``"K-1"``, K one more than the largest label), and ``split``, one of
"train" / "test" per sample (default: index % 5 == 0 is test, the rule of every set
without a test split of its own; "val" is drawn from "train" by index, as for all).
Read with ``allow_pickle=False``: no code runs from the file, and an object array is
refused; an array's size is checked against free memory before it is read (from the
zip entry, so a compressed bomb stops there).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..limits import check_memory
from .registry import DataError
from .splits import split_index

REQUIRED = ("images", "labels")
OPTIONAL = ("classes", "split")


READ_HEADER = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
MAX_CLASSES = 100_000  # classes an npz's labels imply by themselves (a larger label: a damaged file)


def _check_declared(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> None:
    """An entry whose .npy header declares more data than the entry holds is damaged:
    numpy allocates the declared shape before it reads (a 60-byte entry declaring
    [10**12] was the out-of-memory line, not a damaged file)."""
    with zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = READ_HEADER.get(version)
            if read_header is None:
                return  # a header version numpy reads without a public reader: numpy's own checks
            shape, _, dtype = read_header(f)  # the header only: no data read
        except ValueError:
            return  # no or a broken .npy header: reported by np.load below
        declared, held = int(np.prod(shape, dtype=object)) * dtype.itemsize, info.file_size - f.tell()
    if dtype.hasobject or declared <= held:
        return  # an object array: numpy refuses it (allow_pickle=False), named below
    raise DataError(
        f"npz:{path}: {info.filename} declares shape {list(shape)} of {dtype} ({declared} bytes) but holds "
        f"{held} bytes; expected a whole np.savez array (the file is damaged or truncated)"
    )


def _starts_as_npz_or_npy(path: Path) -> bool:
    """Whether ``path`` starts as a zip archive (a .npz: damaged ones are named further on)
    or a .npy does: the magic strings numpy's own load tells them by."""
    with open(path, "rb") as f:
        head = f.read(6)
    return head.startswith(b"PK\x03\x04") or head == b"\x93NUMPY"


def read_npz(path: str, split: str) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """``(images, labels, classes, index)`` of ``split`` ("train" or "test") of the file."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"npz:{path}: not a file; expected a .npz file of images and labels (np.savez)")
    if not _starts_as_npz_or_npy(p):
        # numpy reads a file that is neither as a pickle and advises allow_pickle: unsafe, and wrong
        raise DataError(f"npz:{path} is not a .npz file (not a zip archive); expected images and labels (np.savez)")
    try:
        z = np.load(p, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):  # a .npy: one array, no labels beside it
            raise DataError(f"npz:{path} holds one array (a .npy); expected a .npz of images and labels (np.savez)")
        with z:
            missing = [k for k in REQUIRED if k not in z.files]
            if missing:
                raise DataError(
                    f"npz:{path} has arrays {z.files}, lacking {missing}; expected images [N, C, H, W] float32 "
                    f"and labels [N] (optional: {list(OPTIONAL)})"
                )
            read = [k for k in (*REQUIRED, *OPTIONAL) if k in z.files]
            assert z.zip is not None  # open inside the with
            for info in z.zip.infolist():  # before reading: each entry's size as stored uncompressed
                if info.filename.removesuffix(".npy") in read:
                    check_memory(info.file_size, f"reading {info.filename} of npz:{path}")
                    _check_declared(z.zip, info, path)
            arrays = {k: z[k] for k in read}
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:  # zlib: a damaged compressed entry
        raise DataError(f"npz:{path} is not a readable .npz file ({e})") from None
    except DataError:
        raise
    except ValueError as e:  # an object array (pickled: refused), a damaged entry
        raise DataError(f"npz:{path}: {e}") from None
    for k, a in arrays.items():  # numpy hands a member without the .npy header back as raw bytes
        if not isinstance(a, np.ndarray):
            raise DataError(f"npz:{path}: {k} is not a NumPy array (no .npy header); expected np.savez's members")
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim != 4 or len(images) != len(labels):
        raise DataError(
            f"npz:{path}: images of shape {list(images.shape)} for {len(labels)} labels; expected [N, C, H, W] "
            "with N the number of labels"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"npz:{path}: labels of dtype {labels.dtype}, shape {list(labels.shape)}; expected int [N]")
    if not len(labels):
        raise DataError(f"npz:{path} holds no samples; expected images and labels of one or more")
    if labels.min() < 0:  # read as "classes []; expected 2 or more class names"
        raise DataError(f"npz:{path}: labels range {labels.min()}..{labels.max()}; expected class indices >= 0")
    K = int(labels.max()) + 1
    if "classes" not in arrays and K > MAX_CLASSES:  # one name per index up to the largest: 10**9 ran 17 GB
        raise DataError(
            f"npz:{path}: labels reach {labels.max()}, so {K} classes without a classes array; expected at most "
            f"{MAX_CLASSES} (give the names as a classes array to have more)"
        )
    for k in OPTIONAL:  # names: str, one per class or sample (bytes became "b'cat'" in the model)
        if k in arrays and (arrays[k].ndim != 1 or arrays[k].dtype.kind != "U"):
            a = arrays[k]
            raise DataError(f"npz:{path}: {k} of dtype {a.dtype}, shape {list(a.shape)}; expected a 1-D array of str")
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else [str(k) for k in range(K)]
    if "split" in arrays:
        given = arrays["split"]
        if given.shape != labels.shape or not set(given.tolist()) <= {"train", "test"}:
            raise DataError(f"npz:{path}: split must hold 'train' or 'test' for each of the {len(labels)} samples")
        index = np.flatnonzero(given == split)
    else:
        index = split_index(len(labels), split)
    return images[index], labels[index], classes, index
