"""Shared fixtures: paths to the real data beside the checkout, and tiny configs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FLEXSNN_SHARED_DATA", ROOT.parent / "shared" / "data"))
NMNIST = SHARED_DATA / "nmnist"
MNIST = SHARED_DATA / "mnist"
BRAILLE = SHARED_DATA / "braille"


def _need(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set FLEXSNN_SHARED_DATA)")
    return path


@pytest.fixture
def nmnist_path() -> Path:
    return _need(NMNIST)


@pytest.fixture
def mnist_path() -> Path:
    return _need(MNIST)


@pytest.fixture
def braille_path() -> Path:
    return _need(BRAILLE)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None):
    """Run ``python -m ...`` in a subprocess; returns CompletedProcess (text)."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def run_main(main, capsys, *argv: str) -> tuple[int, str, str]:
    """A CLI's ``main(ARGV)`` in-process: ``(exit code, stdout, stderr)``."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code: int, err: str, *needles: str) -> None:
    """A CLI refused its input as promised: exit 2 and one ``error:`` line (notes aside)
    that names each of ``needles``, no traceback."""
    lines = [ln for ln in err.splitlines() if not ln.startswith("note: ")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, err)


def run_trainer(capsys, *argv: str) -> tuple[int, str, str]:
    """``python -m trainer ARGV`` in-process: ``(exit code, stdout, stderr)``."""
    from trainer.cli import main  # lazily: the torch-free runtime tests share this file

    return run_main(main, capsys, *argv)


def fit_checkpoint(capsys, out: Path, *argv: str):
    """``python -m trainer fit ARGV --out OUT`` in-process, which must succeed; returns
    what the checkpoint it wrote loads as: ``(config, model, metrics)``."""
    from trainer.checkpoint import load_checkpoint

    code, _, err = run_trainer(capsys, "fit", *argv, "--out", str(out))
    assert code == 0, err
    return load_checkpoint(out)


@pytest.fixture(autouse=True, scope="session")
def _digits_cache(tmp_path_factory):
    """The digits event cache of this test session lives in a tmp folder, not the user's."""
    os.environ["FLEXSNN_CACHE"] = str(tmp_path_factory.mktemp("flexsnn-cache"))
    yield
