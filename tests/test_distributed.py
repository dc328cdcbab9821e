"""``fit`` under torchrun with two processes (DistributedDataParallel, gloo on CPU)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two training processes: run alone (CI's slow group runs without pytest workers)
def test_fit_with_two_processes(tmp_path):
    out = tmp_path / "ddp.pt"
    torchrun = shutil.which("torchrun")
    cmd = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]) + [
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "-m",
        "trainer",
        "fit",
        "--epochs",
        "1",
        "--limit-train",
        "128",
        "--limit",
        "40",
        "--width",
        "4",
        "--batch-size",
        "16",
        "--method",
        "mtt",
        "--samples",
        "2",
        "--out",
        str(out),
        "--quiet",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["metrics"]["world_size"] == 2
    # each rank trained on its own half of the 128 samples
    assert ckpt["metrics"]["history"][0]["samples_this_rank"] == 64
