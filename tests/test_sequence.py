"""The sequence path (issue 18, MTT appendix A.12): the Braille reader and its restricted
unpickler, sequences grouped into T steps by the TTM rule, FC models, MTT with
non-increasing stage configurations, and a Braille model run by the runtime."""

from __future__ import annotations

import gzip
import itertools
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.data import DataError, load_dataset
from runtime.data.braille import CLASSES, FILE_NAME, SCALE
from runtime.data.sequences import sequence_frames
from runtime.grouping import group_sizes
from tests.conftest import run_main, run_trainer
from trainer import temporal
from trainer.config import Config, ConfigError, MethodConfig, ModelConfig, NeuronConfig
from trainer.methods import sample_configs
from trainer.models import build_model

CALLED: list[str] = []


def _mark(what: str) -> str:
    CALLED.append(what)
    return what


class Payload:
    """A class a hostile pickle could name: unpickling it would call ``_mark``."""

    def __reduce__(self):
        return (_mark, ("unpickled",))


class Other:
    """Any other class (a plain instance pickles as its class's name)."""


def _write(path: Path, records: object) -> Path:
    with gzip.open(path / FILE_NAME, "wb") as f:
        pickle.dump(records, f)
    return path


def _records(letters=("Space", "A"), reps=10, L=9, seed=0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"letter": c, "repetition": r, "taxel_data": rng.integers(0, 256, (L, 12)).astype(np.float64)}
        for c in letters
        for r in range(reps)
    ]


def test_reader_splits_by_repetition_and_scales_from_the_first_reading(tmp_path):
    recs = _records()
    _write(tmp_path, recs)
    train = load_dataset(f"braille:{tmp_path}", "train")
    test = load_dataset(f"braille:{tmp_path}", "test")
    val = load_dataset(f"braille:{tmp_path}", "val")
    assert (len(train), len(test), len(val)) == (16, 4, 2)  # rep % 5 == 0 test; rep % 10 == 1 val
    assert train.kind == "sequence" and train.shape == (12,) and train.classes == list(CLASSES)
    assert list(test.labels) == [0, 0, 1, 1] and list(test.meta["index"]) == [0, 5, 0, 5]
    x = recs[10 + 5]["taxel_data"]  # letter A, repetition 5: the last test sample
    assert np.allclose(test.sequences[3], (x - x[0]) / SCALE)


def test_a_pickle_naming_another_class_is_refused_before_anything_runs(tmp_path, capsys):
    recs = _records()
    recs[3]["taxel_data"] = Other()
    _write(tmp_path, recs)
    with pytest.raises(DataError, match=r"names tests\.test_sequence\.Other; .*refused"):
        load_dataset(f"braille:{tmp_path}", "train")
    recs[3]["taxel_data"] = Payload()
    _write(tmp_path, recs)
    with pytest.raises(DataError, match=r"names tests\.test_sequence\._mark; .*refused"):
        load_dataset(f"braille:{tmp_path}", "train")
    assert CALLED == []
    code, _, err = run_trainer(
        capsys, "fit", "--data", f"braille:{tmp_path}", "--model", "fc-8", "--out", str(tmp_path / "m.pt")
    )
    assert code == 2 and err.startswith("error: ") and "refused" in err and not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"letter": "ä"}, "letter 'ä' is not one of"),
        ({"repetition": -1}, "repetition must be an integer"),
        ({"taxel_data": np.zeros((5, 11))}, r"numeric \[L, 12\] array"),
        ({"taxel_data": np.full((5, 12), 300.0)}, "0..255"),
        ({"taxel_data": np.array([["a"] * 12])}, "numeric"),
    ],
)
def test_bad_records_are_one_clear_error(tmp_path, bad, message):
    recs = _records()
    recs[0].update(bad)
    _write(tmp_path, recs)
    with pytest.raises(DataError, match=message):
        load_dataset(f"braille:{tmp_path}", "test")


def test_missing_file_names_what_was_expected(tmp_path):
    with pytest.raises(DataError, match=FILE_NAME):
        load_dataset(f"braille:{tmp_path}", "test")


def test_real_braille_recordings(braille_path):
    spec = f"braille:{braille_path}"
    sizes = {s: len(load_dataset(spec, s)) for s in ("train", "test", "val", "train-minus-val")}
    assert sizes == {"train": 1080, "test": 270, "val": 135, "train-minus-val": 945}
    test = load_dataset(spec, "test")
    assert np.bincount(test.labels).tolist() == [10] * 27
    assert {len(s) for s in test.sequences} <= {76, 77}


@pytest.mark.parametrize("L, T", [(9, 9), (9, 4), (77, 20), (5, 12), (7, 1)])
def test_sequences_are_grouped_by_the_ttm_rule(L, T):
    seq = np.random.default_rng(L * T).normal(size=(L, 3)).astype(np.float32)
    got = sequence_frames([seq], T)[:, 0]
    x = torch.from_numpy(seq)[:, None]
    if T <= L:  # mean of each TTM group: TTM's sum over the group size
        want = temporal.transform(x, T)[:, 0].numpy() / np.array(group_sizes(L, T))[:, None]
        assert np.allclose((got * np.array(group_sizes(L, T))[:, None]).sum(0), seq.sum(0), atol=1e-5)
    else:  # TTM up-sampling: each sample repeated over its group
        want = temporal.transform(x, T)[:, 0].numpy()
    assert got.shape == (T, 3) and np.allclose(got, want, atol=1e-6)


def test_nonincreasing_mtt_configurations_are_sorted_and_reach_every_one():
    m = MethodConfig("mtt", T=4, tmin=1, tmax=4, samples=3, order="nonincreasing")
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        for c in sample_configs(m, 3, rng):
            assert all(a >= b for a, b in itertools.pairwise(c)) and all(1 <= t <= 4 for t in c)
            seen.add(tuple(c))
    assert len(seen) == 20  # every non-increasing triple from 1..4 (C(4 + 2, 3))
    free = MethodConfig("mtt", T=4, tmin=1, tmax=4, samples=3)
    rng = np.random.default_rng(0)
    draws = [c for _ in range(20) for c in sample_configs(free, 3, rng)]
    assert any(c != sorted(c, reverse=True) for c in draws)  # the default order stays free


def test_mtt_order_is_checked():
    with pytest.raises(ConfigError, match="mtt-order 'up' is unknown"):
        Config(method=MethodConfig(order="up")).validate()
    with pytest.raises(ConfigError, match="applies to method mtt only"):
        Config(method=MethodConfig("sdt", order="nonincreasing")).validate()


def test_fc_stages_are_joined_by_the_ttm():
    cfg = Config(ModelConfig("fc-16-8", stages=3, bn=False, in_shape=(5,), num_classes=4), NeuronConfig())
    torch.manual_seed(0)
    model = build_model(cfg.validate())
    assert len(model.stages) == 3
    x = torch.rand(6, 2, 5)
    stage_T = [6, 3, 2]
    want = x
    for stage, T in zip(model.stages, stage_T):
        want = stage.seq(temporal.transform(want, T))
    assert torch.equal(model(x, stage_T), want) and want.shape == (2, 2, 4)


def test_fc_seq_names():
    from trainer.models import model_builder

    with pytest.raises(ConfigError, match="fc-H1"):
        model_builder("fc-")


def test_braille_model_runs_in_the_runtime(tmp_path, capsys, braille_path, monkeypatch):
    from export.cli import main as export_main
    from runtime.cli import main as runtime_main

    monkeypatch.setenv("FLEXSNN_SHARED_DATA", str(braille_path.parent))
    ckpt = tmp_path / "m.pt"
    fit = ["fit", "--data", "braille", "--model", "fc-32", "--neuron", "lif", "--readout", "li", "--bias"]
    fit += ["--method", "mtt", "--mtt-order", "nonincreasing", "--tmin", "2", "--tmax", "8", "--stages", "2"]
    fit += ["--epochs", "1", "--limit-train", "200", "--quiet", "--threads", "1", "--out", str(ckpt)]
    assert run_trainer(capsys, *fit)[0] == 0
    code, out, err = run_main(export_main, capsys, str(ckpt), "--check", "--T", "8")
    assert code == 0, err
    assert "check passed" in out and re.search(r"\bLIF\b", out) and re.search(r"\bLI\b", out)  # neuron and readout
    code, out, err = run_trainer(capsys, "eval", str(ckpt), "--T", "8", "--json", "--threads", "1")
    import json

    acc = json.loads(out)["runs"][0]["accuracy"][0]
    code, out, err = run_main(runtime_main, capsys, "run", str(tmp_path / "m.onnx"), "--json", "--threads", "1")
    assert code == 0, err
    res = json.loads(out)
    assert res["n"] == 270 and abs(res["accuracy"] - acc) < 1e-9
    # one cost model: eval --config counted the first layer's real-valued (and negative)
    # inputs as accumulates weighted by their values (negative ACs and energy); the
    # runtime counts them dense, as for static images
    code, out, err = run_trainer(capsys, "eval", str(ckpt), "--config", "8,8", "--json", "--threads", "1")
    assert code == 0, err
    tr = json.loads(out)["runs"][0]["results"][0]
    assert tr["accuracy"] == res["accuracy"] and tr["macs"] == res["macs"] > 0
    assert tr["acs"] == pytest.approx(res["acs"], rel=1e-9) and tr["energy_uj"] == pytest.approx(res["energy_uj"])
    # a NIR round trip keeps the sequence input (it came back as a static image repeated per step)
    code, _, err = run_main(export_main, capsys, str(ckpt), "--format", "nir")
    assert code == 0, err
    back = tmp_path / "back.onnx"
    code, _, err = run_main(export_main, capsys, str(tmp_path / "m.nir"), "-o", str(back))
    assert code == 0, err
    import runtime

    assert runtime.load(back).protocol.input_kind == "sequence-frames"
