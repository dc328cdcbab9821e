"""The experiments that need no data still run: a script whose imports or calls drifted
from the code would print nothing the docs can be checked against."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_runtime_alternatives_prints_every_system():
    r = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "runtime_alternatives.py"), "--repeats", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["graph_settings"]) == 4 and len(out["neuron_pass"]) == 2
    for system in (*out["graph_settings"].values(), *out["neuron_pass"].values()):
        assert 0 < system["cpu_ms_min"] <= system["cpu_ms_median"]
    assert all(0 < r["GB_per_s"] for r in out["neuron_pass"].values())
    assert out["threads"] == 1 and out["versions"]["onnxruntime"]
