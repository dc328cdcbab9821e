"""Files written before the neuron-registry change (flexsnn-checkpoint/1, flexsnn-onnx/1)
still load, and give what the current format gives for the same weights.

The fixtures were written by the code of commit ef9f5c5 (a 2C1FCW4 IF model on the
digits shape, weights x3 so that it spikes)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx

import runtime
from export.check import check_onnx
from export.onnx_export import export_onnx
from runtime.cli import main as runtime_main
from runtime.neuron import NeuronSpec
from trainer.checkpoint import load_checkpoint

from .conftest import run_main

FIXTURES = Path(__file__).parent / "fixtures"


def test_v1_checkpoint_loads_with_its_neuron_as_a_spec(tmp_path):
    cfg, model, metrics = load_checkpoint(FIXTURES / "if_v1.pt")
    assert cfg.neuron.spec == NeuronSpec("IF", 1.0, 1.0, "subtract", "single", float("-inf"), 50000.0)
    assert cfg.neuron.surrogate == "triangle" and "ef9f5c5" in metrics["note"]
    path = export_onnx(cfg, model, tmp_path / "m.onnx")
    assert json.loads(onnx.load(path).metadata_props[0].value)["format"] == "flexsnn-onnx/3"
    assert check_onnx(cfg, model, path).ok


def test_v1_onnx_runs_and_equals_the_v2_export_of_the_same_weights(tmp_path):
    old = FIXTURES / "if_v1.onnx"
    assert json.loads(onnx.load(old).metadata_props[0].value)["format"] == "flexsnn-onnx/1"
    cfg, model, _ = load_checkpoint(FIXTURES / "if_v1.pt")
    new = export_onnx(cfg, model, tmp_path / "m.onnx")
    x = np.random.default_rng(0).poisson(0.8, (6, 5, 2, 20, 20)).astype(np.float32)
    a, b = runtime.load(old).run(x), runtime.load(new).run(x)
    assert a.steps.tolist() == [6] * 5
    np.testing.assert_array_equal(a.outputs, b.outputs)
    assert a.outputs.std() > 0  # the fixture's network really computes something
    p = runtime.load(old).protocol
    assert [n.states for n in p.neurons] == [("state_0",), ("state_1",)]  # v1: linked by the state's node


def test_calibrate_exit_of_a_v1_file_writes_the_current_format_running_the_same(tmp_path, capsys):
    """calibrate-exit writes the file's protocol anew (runtime.protocol.Protocol.to_dict, one
    writer): an old file comes out in the current format, its network read as before."""
    old_path, out = FIXTURES / "if_v1.onnx", tmp_path / "exit.onnx"
    argv = ["calibrate-exit", str(old_path), "--data", "digits", "--limit", "40", "--out", str(out)]
    code, _, err = run_main(runtime_main, capsys, *argv)
    assert code == 0, err
    assert json.loads(onnx.load(out).metadata_props[0].value)["format"] == "flexsnn-onnx/3"
    old, new = runtime.load(old_path), runtime.load(out)
    assert new.protocol.exit_policy is not None
    assert dataclasses.replace(new.protocol, exit_policy=None, exit_record=None) == old.protocol
    x = np.random.default_rng(1).poisson(0.8, (6, 5, 2, 20, 20)).astype(np.float32)
    np.testing.assert_array_equal(old.run(x, 6).outputs, new.run(x, 6).outputs)
