"""The event engine against finer clock bins: the spike-difference series that
docs/neurons.md and docs/event_driven.md publish for ALIF and CubaLIF. The nets, the
stream (150 events on a 2x8x8 sensor over 2 ms, seed 4) and the bin widths are those of
tests/test_alif_event_driven.py and tests/test_cuba_lif_event_driven.py, which assert
that the series falls towards 0; this prints it. Deterministic for a torch version (the
nets' weights are torch's seeded initialisation). Rerun (about 20 s):

    OMP_NUM_THREADS=1 python experiments/event_convergence.py
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.errors import TrainedRangeWarning  # noqa: E402
from runtime.report import versions  # noqa: E402
from tests import test_alif_event_driven as alif  # noqa: E402
from tests import test_cuba_lif_event_driven as cuba  # noqa: E402
from tests.event_fixtures import finer_bin_sds, random_stream  # noqa: E402

BINS_US = (500.0, 100.0, 50.0, 5.0, 1.0, 0.5, 0.25)  # 100: the CubaLIF net's trained width


def main() -> None:
    warnings.simplefilter("ignore", TrainedRangeWarning)  # the fine bins run far past the trained T, by design
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        rows = []
        for name, mod, build in (
            ("ALIF", alif, lambda dt: alif.alif_onnx(out / f"a{dt}.onnx", dt)),
            ("CubaLIF", cuba, lambda dt: cuba.cuba_onnx(out / f"c{dt}.onnx", dt)),
        ):
            stream = random_stream(150, mod.SENSOR, mod.DURATION, seed=4, unique_t=True)
            until = mod.DURATION if name == "CubaLIF" else None  # CubaLIF membranes cross after the last input
            rows.append((name, finer_bin_sds(build, stream, mod.DURATION, BINS_US, until=until)))
    print("spike difference of the event-driven run against clock bins of width dt (µs)")
    print("| kind | " + " | ".join(f"dt {dt:g}" for dt in BINS_US) + " |")
    print("|---|" + "---:|" * len(BINS_US))
    for name, sds in rows:
        print(f"| {name} | " + " | ".join(f"{v:.2g}" for v in sds) + " |")
    print(f"versions: {versions('torch', 'numpy', 'numba', 'onnxruntime')}")


if __name__ == "__main__":
    main()
