"""docs/sdk.md runs as written: its python blocks, in order, on an exported digits model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from export.onnx_export import export_onnx
from tests.export_helpers import config, model

DOC = Path(__file__).resolve().parents[1] / "docs" / "sdk.md"


def test_every_python_block_of_the_sdk_page_runs(tmp_path, monkeypatch):
    cfg = config(name="2C1FCW8", bn=False, bias=False, kind="IF", spike="multi", in_shape=(2, 20, 20))
    cfg.data.duration_us = 300_000.0
    cfg.with_step_dt()  # one step is one bin of the new duration
    export_onnx(cfg, model(cfg), tmp_path / "model.onnx")
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 6
    ns: dict = {}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{DOC.name} block {i + 1}", "exec"), ns)
        except Exception as e:  # name the block that broke
            pytest.fail(f"docs/sdk.md block {i + 1} raised {type(e).__name__}: {e}")
    assert ns["r4"].steps.tolist() == [4] * 8 and ns["a"].t == 4
    assert 0 <= int(ns["res"].predictions) < 10  # one stream: one prediction


def test_every_name_the_sdk_page_cites_exists():
    """A name in the prose (`runtime.data.read_events`) was not importable from where the
    page says: every dotted ``runtime.`` name it quotes must resolve."""
    import importlib

    names = sorted(set(re.findall(r"`(runtime(?:\.[A-Za-z_]\w*)+)", DOC.read_text())))
    assert "runtime.data.read_events" in names
    for name in names:
        module, _, attr = name.rpartition(".")
        try:
            found = hasattr(importlib.import_module(module), attr)
        except ImportError:  # the name is a module itself
            found = importlib.util.find_spec(name) is not None
        assert found, f"docs/sdk.md cites {name}, which does not exist"
