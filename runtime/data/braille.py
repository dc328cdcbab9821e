"""Tactile Braille letters (Müller-Cleve et al., 2022): 27 classes (space, A-Z) x 50 recordings
from the 12 taxels of an iCub fingertip, read from the pickle of the Braille tutorial.

The file is a gzip-compressed pickle of a list of dicts ``{experiment_name, letter,
repetition, taxel_data [L, 12]}``. A pickle can name any importable callable, so it is read
with an unpickler that resolves only the numpy names an array needs (:data:`ALLOWED`); any
other name refuses the file before anything is built from it. Every record is then checked
(a letter of :data:`CLASSES`, an integer repetition, a finite numeric ``[L, 12]`` array in
0..255).

Features: each taxel's reading minus its first reading (the recording starts before the
finger touches the dot pattern), divided by :data:`SCALE`; a fixed constant of the
reader (not fitted to any split), about the spread of the taxels that move. In this file
most taxels stay at 255 and every reading appears twice in a row (the recording was
up-sampled x2); both are kept as they are.

Split by repetition (0..49 per letter): ``repetition % 5 == 0`` is the test split (10 per
letter, 270), the others the training split (40 per letter, 1080); the validation split is
``repetition % 10 == 1`` of the training split (5 per letter, 135) as for every data set
(:func:`runtime.data.datasets.load_dataset`).
"""

from __future__ import annotations

import gzip
import io
import pickle
import string
from pathlib import Path

import numpy as np

from .splits import in_test

FILE_NAME = "tutorial5_braille_spiking_data.pkl.gz"
CLASSES = ("Space", *string.ascii_uppercase)
TAXELS = 12
SCALE = 16.0
MAX_BYTES = 256 * 2**20  # the file is about 10 MB unpacked; far larger is not this data set
# the only globals the file may name: what numpy needs to rebuild an array
ALLOWED = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(
                f"it names {module}.{name}; a Braille file may only hold numpy arrays, strings, numbers, "
                "lists and dicts (refused, nothing was loaded)"
            )
        return super().find_class(module, name)


def _file(path: Path) -> Path:
    f = path / FILE_NAME if path.is_dir() else path
    if not f.is_file():
        raise FileNotFoundError(f"no Braille data at {path}: expected {FILE_NAME} or a folder holding it")
    return f


def _records(path: Path) -> list:
    try:
        with gzip.open(path, "rb") as g:
            raw = g.read(MAX_BYTES + 1)
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable gzip file ({e})") from None
    if len(raw) > MAX_BYTES:
        raise ValueError(f"{path}: more than {MAX_BYTES} bytes unpacked; expected the Braille pickle (about 10 MB)")
    try:
        data = _ArraysOnly(io.BytesIO(raw)).load()
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path}: {e}") from None
    except Exception as e:  # a damaged pickle fails in many ways; each is this one error
        raise ValueError(f"{path}: not a readable Braille pickle ({type(e).__name__}: {e})") from None
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty list of recordings, got {type(data).__name__}")
    return data


def _check(rec: object, i: int, path: Path) -> tuple[np.ndarray, int, int]:
    where = f"{path}: recording {i}"
    if not isinstance(rec, dict) or not {"letter", "repetition", "taxel_data"} <= set(rec):
        raise ValueError(f"{where}: expected a dict with 'letter', 'repetition' and 'taxel_data'")
    letter, rep, x = rec["letter"], rec["repetition"], rec["taxel_data"]
    if letter not in CLASSES:
        raise ValueError(f"{where}: letter {letter!r} is not one of {list(CLASSES)}")
    if not isinstance(rep, int) or isinstance(rep, bool) or rep < 0:
        raise ValueError(f"{where}: repetition must be an integer >= 0, got {rep!r}")
    if not (isinstance(x, np.ndarray) and x.dtype.kind in "uif" and x.ndim == 2 and x.shape[1] == TAXELS):
        got = f"{x.dtype} {list(x.shape)}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"{where}: taxel_data must be a numeric [L, {TAXELS}] array, got {got}")
    if len(x) == 0 or not np.isfinite(x).all() or x.min() < 0 or x.max() > 255:
        raise ValueError(f"{where}: taxel_data must hold L >= 1 finite readings in 0..255")
    return x, CLASSES.index(letter), rep


def read_braille(root: str | Path, split: str) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Feature sequences ``[L, 12]`` float32, labels and repetitions of ``split`` ("train"/"test")."""
    path = _file(Path(root))
    seqs, labels, reps = [], [], []
    for i, rec in enumerate(_records(path)):
        x, label, rep = _check(rec, i, path)
        if in_test(rep) != (split == "test"):
            continue
        seqs.append(((x - x[0]) / SCALE).astype(np.float32))
        labels.append(label)
        reps.append(rep)
    return seqs, np.array(labels, np.int64), np.array(reps, np.int64)
