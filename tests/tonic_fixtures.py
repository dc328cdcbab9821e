"""A small synthetic data set in tonic's interface (``tonic:tests.tonic_fixtures.Synthetic11:ROOT``):
11 classes, recordings of different lengths, on a 20x16 sensor.

Class k is a horizontal bar on row k + 2 (x from 2 to 17), its events spread over the
recording with random polarity, plus a few noise events anywhere. Seeded by (split, index).
"""

from __future__ import annotations

import numpy as np

DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])  # tonic's N-MNIST layout


class Synthetic11:
    sensor_size = (20, 16, 2)
    classes = [f"bar {k}" for k in range(11)]

    def __init__(self, save_to: str, train: bool = True, per_class: int | None = None):
        self.save_to, self.train = save_to, train
        n = per_class or (12 if train else 4)
        self.targets = [k for k in range(11) for _ in range(n)]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([int(self.train), i])
        k = self.targets[i]
        duration = int(rng.integers(20_000, 60_000))
        n, noise = 80, 8
        ev = np.zeros(n + noise, DTYPE)
        ev["x"][:n] = rng.integers(2, 18, n)
        ev["y"][:n] = k + 2
        ev["x"][n:] = rng.integers(0, 20, noise)
        ev["y"][n:] = rng.integers(0, 16, noise)
        ev["p"] = rng.integers(0, 2, n + noise)
        ev["t"] = rng.integers(0, duration, n + noise)
        return ev[np.argsort(ev["t"], kind="stable")], k


class OnePolarity(Synthetic11):
    """tonic's SHD convention: sensor_size (W, H, 1), every event p = 1."""

    sensor_size = (20, 16, 1)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        ev, k = super().__getitem__(i)
        ev["p"] = 1
        return ev, k


class OffSensor(Synthetic11):
    """Recording 3 has an event at x = 25 on the 20-wide sensor."""

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        ev, k = super().__getitem__(i)
        if i == 3:
            ev["x"][0] = 25
        return ev, k


class NegativeTime(Synthetic11):
    """Recording 2 starts 5 ms before zero."""

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        ev, k = super().__getitem__(i)
        if i == 2:
            ev["t"] -= 5000
        return ev, k


class DictClasses(Synthetic11):
    """Classes as tonic's {name: index}, the keys not in index order."""

    classes = {f"bar {k}": k for k in reversed(range(11))}


class NameTargets(Synthetic11):
    """Targets that are class names, not indices."""

    def __init__(self, save_to: str, train: bool = True):
        super().__init__(save_to, train)
        self.targets = [f"bar {k}" for k in self.targets]


class TargetTransformed(Synthetic11):
    """tonic's ``target_transform``: ``[i]`` yields the transformed target, ``.targets``
    holds the raw ones (here class k is labelled 10 - k)."""

    def __init__(self, save_to: str, train: bool = True):
        super().__init__(save_to, train)
        self.target_transform = lambda t: 10 - t

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        ev, k = super().__getitem__(i)
        return ev, self.target_transform(k)


class ShiftedItems(Synthetic11):
    """``[i]`` yields target k + 1 (mod 11) where ``.targets`` says k: labels from
    ``.targets`` would be wrong for every recording."""

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        ev, k = super().__getitem__(i)
        return ev, (k + 1) % 11


class FractionalTargets(Synthetic11):
    """Targets 3.9 and the like: truncated, they trained as the class below."""

    def __init__(self, save_to: str, train: bool = True):
        super().__init__(save_to, train)
        self.targets = [k + 0.9 if k == 3 else float(k) for k in self.targets]


FLOAT_XY = np.dtype([("x", float), ("y", float), ("t", float), ("p", int)])


class FloatFields(Synthetic11):
    """x, y and t as floats (tonic's SHD stores float µs): whole values read as they are;
    recording 5 has x = 4.5 (no pixel), recording 1 a NaN timestamp."""

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        ev, k = super().__getitem__(i)
        out = ev.astype(FLOAT_XY)
        out["x"][0] = 4.5 if i == 5 else out["x"][0]
        out["t"][-1] = np.nan if i == 1 else out["t"][-1]
        return out, k


class AllEmpty(Synthetic11):
    """No recording has an event: nothing to take the time step from."""

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        ev, k = super().__getitem__(i)
        return ev[:0], k


class BrokenInit(Synthetic11):
    """The user's own class fails to build (its index file is missing)."""

    def __init__(self, save_to: str, train: bool = True):
        raise FileNotFoundError(f"{save_to}/index.csv")


class BrokenItem(Synthetic11):
    """Recording 7 cannot be read (a corrupt file, in the user's own code)."""

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if i == 7:
            raise OSError("corrupt file rec7.bin")
        return super().__getitem__(i)


class LongRecordings(Synthetic11):
    """10 classes on a 20x20 sensor (the event-frame fixtures' shape), recordings of 200 to
    600 ms: longer than those fixtures' 300 ms span."""

    sensor_size = (20, 20, 2)
    classes = [str(k) for k in range(10)]

    def __init__(self, save_to: str, train: bool = True):
        super().__init__(save_to, train)
        self.targets = [k for k in range(10) for _ in range(2)]

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        ev, k = super().__getitem__(i)
        ev["t"] = ev["t"] * 10  # 200 to 600 ms
        return ev, k


class OneRecording(Synthetic11):
    """One recording, no train/test of its own: split by index, it is all "test"."""

    def __init__(self, save_to: str):
        super().__init__(save_to, True)
        self.targets = [0]
