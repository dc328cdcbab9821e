"""Multi-rate deployment (issue #17): ``export --config`` writes one step graph whose
stages the runtime cuts out and runs each at its own T, in a streaming schedule with the
temporal transformation module (TTM) between them. The schedule's TTM is the trainer's,
the runtime equals ``trainer eval --config`` (outputs, accuracy, operations), early exit
acts on the last stage's steps, and bad input is one error line."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

import runtime
from export.cli import main as export_main
from export.formats import FORMATS
from runtime.cli import main as runtime_main
from runtime.data import load_dataset
from runtime.errors import InputError
from runtime.integrity import stamp_onnx
from runtime.protocol import METADATA_KEY, ModelError
from runtime.stages import schedule, sources
from tests.conftest import one_error, run_main
from tests.conftest import run_trainer as run
from trainer.checkpoint import load_checkpoint
from trainer.cli import main
from trainer.temporal import transform

TINY = ["--epochs", "1", "--limit-train", "150", "--width", "4", "--quiet", "--tmax", "4", "--threads", "1"]


# ---- the schedule (pure) ---------------------------------------------------------------
@pytest.mark.parametrize("n", range(1, 8))
def test_sources_sum_to_the_trainers_ttm(n):
    x = torch.from_numpy(np.random.default_rng(n).poisson(1.0, (n, 3, 5)).astype(np.float32))
    for m in range(1, 8):
        got = torch.stack([sum((x[k] for k in sources(n, m, j)), torch.zeros(3, 5)) for j in range(m)])
        assert torch.equal(got, transform(x, m)), (n, m)


def test_schedule_streams_group_by_group():
    steps = lambda Ts: [(i, j, tuple(src)) for i, j, src in schedule(Ts)]
    # 4 -> 2: stage 1 sums outputs 0+1 as soon as both exist, then 2+3
    assert steps([4, 2]) == [(0, 0, (0,)), (0, 1, (1,)), (1, 0, (0, 1)), (0, 2, (2,)), (0, 3, (3,)), (1, 1, (2, 3))]
    # 2 -> 4: each output replicated into two steps, right after it exists
    assert steps([2, 4]) == [(0, 0, (0,)), (1, 0, (0,)), (1, 1, (0,)), (0, 1, (1,)), (1, 2, (1,)), (1, 3, (1,))]
    assert steps([3, 3]) == [(0, 0, (0,)), (1, 0, (0,)), (0, 1, (1,)), (1, 1, (1,)), (0, 2, (2,)), (1, 2, (2,))]


@pytest.mark.parametrize("seed", range(20))
def test_schedule_runs_every_step_once_after_its_inputs_and_no_later(seed):
    rng = np.random.default_rng(seed)
    Ts = [int(t) for t in rng.integers(1, 7, int(rng.integers(2, 5)))]
    order = schedule(Ts)
    pos = {(i, j): k for k, (i, j, _) in enumerate(order)}
    assert sorted(pos) == [(i, j) for i, T in enumerate(Ts) for j in range(T)]
    need = {}  # the first-stage step after which (i, j) has all its inputs
    for i, j, src in order:
        assert i == 0 or all(pos[(i - 1, k)] < pos[(i, j)] for k in src)
        assert list(src) == list(sources(Ts[i - 1], Ts[i], j)) if i else list(src) == [j]
        need[(i, j)] = j if i == 0 else max(need[(i - 1, k)] for k in src)
        if need[(i, j)] + 1 < Ts[0]:  # streamed: it runs before the next input step
            assert pos[(i, j)] < pos[(0, need[(i, j)] + 1)]


# ---- export and runtime on tiny models ------------------------------------------------
@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """3 stages (the first ends at a pooling, the second at a neuron layer's spikes) and 2
    with BatchNorm."""
    d = tmp_path_factory.mktemp("multirate")
    plain, bn = d / "plain.pt", d / "bn.pt"
    main(["fit", "--data", "digits", "--model", "1C2FC", "--stages", "3", "--out", str(plain), *TINY])
    main(["fit", "--data", "digits", "--model", "2C1FC", "--stages", "2", "--norm", "bn", "--out", str(bn), *TINY])
    return plain, bn


def _export(capsys, ckpt, out, config: str, *more: str) -> dict:
    code, stdout, err = run_main(export_main, capsys, str(ckpt), "-o", str(out), "--config", config, "--json", *more)
    assert code == 0, err
    return json.loads(stdout)


def _torch_logits(ckpt, config: list[int], n: int, calib: bool) -> tuple[np.ndarray, np.ndarray]:
    """The torch model at ``config`` (BN calibrated as eval --config): every last-stage
    output ``[T_last, B, C]`` on the first ``n`` test samples, and the labels."""
    from trainer.search_cli import calibration_data, for_config
    from trainer.train import frames

    cfg, model, _ = load_checkpoint(ckpt)
    if calib:
        model = for_config(model, calibration_data(str(ckpt), cfg, model, None), config, 10)
    ds = load_dataset("digits", "test", n)
    with torch.no_grad():
        ys = model.eval()(frames(ds, np.arange(len(ds)), config[0]), config)
    return ys.numpy(), ds.labels


@pytest.mark.parametrize("which,config", [(0, [2, 4, 1]), (0, [4, 1, 3]), (1, [1, 4]), (1, [3, 2])])
def test_runtime_runs_the_configuration_as_torch_does(ckpts, capsys, tmp_path, which, config):
    path = tmp_path / "m.onnx"
    rep = _export(capsys, ckpts[which], path, ",".join(map(str, config)), "--check")
    assert rep["check"]["ok"] and rep["config"] == config
    assert all(n["mismatched_spikes"] == 0 for n in rep["check"]["neurons"])
    assert (rep["bn_calibration"] is not None) == (which == 1)
    ys, labels = _torch_logits(ckpts[which], config, 24, which == 1)
    session = runtime.load(path)
    assert session.protocol.config == tuple(config)
    ds = load_dataset("digits", "test", 24)
    r = session.run(ds.frames(np.arange(len(ds)), config[0]))
    assert r.steps.tolist() == [config[-1]] * len(ds)
    np.testing.assert_allclose(r.outputs, ys.mean(0), rtol=1e-5, atol=1e-5)
    assert np.array_equal(r.predictions, ys.mean(0).argmax(1))
    # the same graph at one T for all stages (what a plain onnxruntime user gets) differs
    uniform = runtime.load(_with_meta(path, tmp_path / "u.onnx", lambda meta: meta.pop("stages")))
    assert uniform.protocol.config is None
    assert not np.allclose(uniform.run(ds.frames(np.arange(len(ds)), config[-1])).outputs, r.outputs)


def test_export_says_the_calibration_batches_that_ran(ckpts, capsys, tmp_path):
    """--calib-batches 500 on a split of about 1300 samples runs about 21 batches of 64; the
    report said 500."""
    from trainer.search_cli import CALIB_BATCH_SIZE, calibration_data

    cfg, model, _ = load_checkpoint(ckpts[1])
    n = len(calibration_data(str(ckpts[1]), cfg, model, None))
    rep = _export(capsys, ckpts[1], tmp_path / "m.onnx", "1,4", "--calib-batches", "500")
    assert rep["bn_calibration"]["batches"] == -(-n // CALIB_BATCH_SIZE) < 500


def _with_meta(src, dst, change) -> str:
    """A copy of ``src`` whose protocol metadata ``change`` edits (re-stamped)."""
    m = onnx.load(src)
    props = {p.key: p.value for p in m.metadata_props}
    meta = json.loads(props[METADATA_KEY])
    change(meta)
    props[METADATA_KEY] = json.dumps(meta)
    onnx.helper.set_model_props(m, props)
    onnx.save(stamp_onnx(m), dst)
    return str(dst)


@pytest.mark.parametrize(
    "which, config, calib",
    [(0, "2,4,1", []), (1, "1,4", []), (1, "3,2", ["--calib-runs", "3"])],  # export had no --calib-runs
)
def test_runtime_run_equals_trainer_eval_config(ckpts, capsys, tmp_path, which, config, calib):
    path = tmp_path / "m.onnx"
    rep = _export(capsys, ckpts[which], path, config, *calib)
    if which == 1:
        assert rep["bn_calibration"]["runs"] == (3 if calib else 1) and rep["bn_calibration"]["seed"] == 0
    code, out, err = run_main(runtime_main, capsys, "run", str(path), "--limit", "60", "--json", "--threads", "1")
    assert code == 0, err
    got = json.loads(out)
    assert got["config"] == [int(t) for t in config.split(",")]
    code, out, err = run(capsys, "eval", str(ckpts[which]), "--config", config, "--limit", "60", "--json", *calib)
    assert code == 0, err
    want = json.loads(out)["runs"][0]["results"][0]
    assert got["accuracy"] == want["accuracy"]
    assert got["macs"] == pytest.approx(want["macs"], rel=1e-6, abs=1e-6)
    assert got["acs"] == pytest.approx(want["acs"], rel=1e-6)
    assert got["energy_uj"] == pytest.approx(want["energy_uj"], rel=1e-6)


def test_static_images_through_a_resnet_at_three_rates(capsys, tmp_path):
    """Static input (the same image every step of stage 0) and residual blocks, BatchNorm
    calibrated for the configuration: every spike as torch, and the runtime equals eval."""
    ckpt, path = tmp_path / "r.pt", tmp_path / "r.onnx"
    fit = ["--model", "resnet10", "--norm", "bn", "--stages", "3", "--width", "8", "--limit-train", "600"]
    fit += ["--epochs", "2", "--quiet", "--tmax", "4", "--threads", "1", "--out", str(ckpt)]
    main(["fit", "--data", "digits:static", *fit])
    capsys.readouterr()
    rep = _export(capsys, ckpt, path, "1,4,2", "--check")
    assert rep["check"]["ok"] and len(rep["check"]["neurons"]) == 9
    assert all(n["mismatched_spikes"] == 0 for n in rep["check"]["neurons"])
    code, out, err = run_main(runtime_main, capsys, "run", str(path), "--limit", "60", "--json", "--threads", "1")
    assert code == 0, err
    got = json.loads(out)
    code, out, err = run(capsys, "eval", str(ckpt), "--config", "1,4,2", "--limit", "60", "--json")
    assert code == 0, err
    want = json.loads(out)["runs"][0]["results"][0]
    assert got["accuracy"] == want["accuracy"] > 0.3  # 10 classes: above chance
    assert got["acs"] == pytest.approx(want["acs"], rel=1e-6) and got["acs"] > 0


def test_bn_export_deploys_the_calibration_deterministically(ckpts, capsys, tmp_path):
    a, b, off = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "off.onnx"
    _export(capsys, ckpts[1], a, "1,4")
    _export(capsys, ckpts[1], b, "1,4")
    _export(capsys, ckpts[1], off, "1,4", "--calib-batches", "0")
    weights = lambda p: [onnx.numpy_helper.to_array(i) for i in onnx.load(p).graph.initializer]
    assert all(np.array_equal(x, y) for x, y in zip(weights(a), weights(b)))
    assert not all(np.array_equal(x, y) for x, y in zip(weights(a), weights(off)))


def test_early_exit_acts_on_the_last_stages_steps(ckpts, capsys, tmp_path):
    path = tmp_path / "m.onnx"
    _export(capsys, ckpts[0], path, "4,1,3")
    ys, _ = _torch_logits(ckpts[0], [4, 1, 3], 16, False)
    session = runtime.load(path)
    ds = load_dataset("digits", "test", 16)
    x = ds.frames(np.arange(len(ds)), 4)
    full, early = session.run(x), session.run(x, "fixed:2")
    assert early.steps.tolist() == [2] * 16 and early.batch_per_step == [16, 16]
    np.testing.assert_allclose(early.outputs, ys[:2].mean(0), rtol=1e-5, atol=1e-5)
    assert early.cost is not None and full.cost is not None
    assert (early.cost.acs < full.cost.acs).all()  # the steps not run are not counted
    conf = session.run(x, "confidence:0.3,tmin=1,tmax=3")  # each sample's readout where it stopped
    assert 1 <= conf.steps.min() and conf.steps.max() <= 3
    want = np.stack([ys[:s].mean(0)[k] for k, s in enumerate(conf.steps)])
    np.testing.assert_allclose(conf.outputs, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["ort", "numba"])
def test_finished_samples_leave_the_batch_with_the_same_results(ckpts, capsys, tmp_path, monkeypatch, backend):
    """Compacting at every exit (rows of every stage and the outputs waiting between stages)
    gives bit-for-bit what keeping every row gives: outputs, steps, spikes, operations."""
    import runtime.session as rs
    from runtime.stages import Stream

    path = tmp_path / "m.onnx"
    _export(capsys, ckpts[0], path, "2,4,3")
    ds = load_dataset("digits", "test", 48)
    x = ds.frames(np.arange(len(ds)), 2)
    compactions = []
    keep = Stream.keep
    monkeypatch.setattr(Stream, "keep", lambda self, rows: compactions.append(len(rows)) or keep(self, rows))
    results, kept = [], []
    for every in (1, 10**9):  # never (all rows must be done), then at every exit
        monkeypatch.setattr(rs, "COMPACT_AT", every)
        session = runtime.load(path, backend=backend, threads=1)
        results.append(session.run(x, "confidence:0.2,tmin=1,tmax=3", neuron_counts=True))
        kept.append(compactions[:])
        compactions.clear()
    whole, compacted = results
    assert 1 < len(set(whole.steps.tolist())) and kept[0] == [] and len(kept[1]) >= 2
    assert np.array_equal(whole.outputs, compacted.outputs) and np.array_equal(whole.steps, compacted.steps)
    assert whole.batch_per_step == compacted.batch_per_step
    for name in whole.spike_counts:
        assert np.array_equal(whole.spike_counts[name], compacted.spike_counts[name]), name
        assert np.array_equal(whole.neuron_counts[name], compacted.neuron_counts[name]), name
    assert np.array_equal(whole.cost.acs, compacted.cost.acs) and np.array_equal(whole.cost.macs, compacted.cost.macs)


@pytest.mark.parametrize("backend", ["auto", "numba"])
def test_a_multirate_session_pickles_for_worker_processes(ckpts, capsys, tmp_path, backend):
    """It pickled its per-stage backends ("numba+ort"), which no load takes: the copy failed
    in the worker ("backend 'numba+ort' is unknown")."""
    import pickle

    path = tmp_path / "m.onnx"
    _export(capsys, ckpts[0], path, "2,4,3")
    session = runtime.load(path, backend=backend, threads=1)
    assert "+" in session.backend  # one per stage
    twin = pickle.loads(pickle.dumps(session))
    assert twin.backend == session.backend
    x = load_dataset("digits", "test", 8).frames(np.arange(8), 2)
    assert np.array_equal(twin.run(x).outputs, session.run(x).outputs)


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--config", "2,2"], "gives 2 T values, but"),
        (["--config", "2,5,2"], "T=[5] outside [1, 4]"),
        (["--config", "2,0,2"], "comma-separated time steps"),
        (["--config", "2,2,2", "--format", "nir"], "which a NIR graph cannot say"),
        (["--config", "2,2,2", "--check", "--T", "3"], "checked at its own T per stage; leave out --T"),
        (["--calib-batches", "3"], "give --config too"),
        (["--calib-runs", "3"], "--calib-runs calibrate BatchNorm for a --config; give --config too"),
    ],
)
def test_export_config_bad_input(ckpts, capsys, tmp_path, args, msg):
    out = tmp_path / "m.onnx"
    code, stdout, err = run_main(export_main, capsys, str(ckpts[0]), "-o", str(out), *args)
    one_error(code, err, msg)
    assert stdout == "" and not out.exists()


@pytest.mark.parametrize(
    "which, args, msg",
    [
        # ckpts[0] has no BatchNorm: --data was accepted, never read (an unknown spec too)
        (0, ["--data", "nosuch"], "has no BatchNorm layers: leave them out"),
        (0, ["--calib-batches", "3"], "has no BatchNorm layers: leave them out"),
        (0, ["--calib-runs", "2"], "has no BatchNorm layers: leave them out"),
        (1, ["--calib-batches", "0", "--calib-runs", "3"], "calibration is off"),  # runs of nothing, unsaid
        # calibration data of another kind and shape: a RuntimeError traceback from the first conv
        (1, ["--data", "digits:static"], "holds static images, but"),
    ],
)
def test_export_config_calibration_data_is_checked(ckpts, capsys, tmp_path, which, args, msg):
    out = tmp_path / "m.onnx"
    config = ["2,2,2", "2,2"][which]  # ckpts[0] has 3 stages, ckpts[1] 2
    code, stdout, err = run_main(export_main, capsys, str(ckpts[which]), "-o", str(out), "--config", config, *args)
    one_error(code, err, msg)
    assert stdout == "" and not out.exists()


@pytest.mark.parametrize("fmt", ["torchscript", "pt2"])
def test_torch_formats_run_the_configuration_as_torch_does(ckpts, capsys, tmp_path, fmt):
    """`export --config` was refused for TorchScript and pt2 (they ran one T for all
    stages); now each writes the configuration's whole sequence, BatchNorm calibrated for it
    as eval --config calibrates, beside the uniform file."""
    ckpt = tmp_path / "bn.pt"
    ckpt.write_bytes(ckpts[1].read_bytes())
    code, out, err = run_main(export_main, capsys, str(ckpt), "--config", "1,4", "--format", fmt)
    assert code == 0, err
    path = tmp_path / ("bn_1,4" + FORMATS[fmt][0])
    assert f"wrote {path}" in out and "BatchNorm calibration: 10 batches" in out
    loaded = torch.jit.load(str(path)) if fmt == "torchscript" else torch.export.load(str(path)).module()
    ys, _ = _torch_logits(ckpt, [1, 4], 24, True)  # 1 -> 4: up-sampling between the stages
    ds = load_dataset("digits", "test", 24)
    got = loaded(torch.from_numpy(ds.frames(np.arange(len(ds)), 1))).numpy()
    np.testing.assert_allclose(got, ys, rtol=1e-5, atol=1e-5)  # BatchNorm folded in the file
    assert np.array_equal(got.mean(0).argmax(1), ys.mean(0).argmax(1))


def test_export_config_writes_beside_the_uniform_file(ckpts, capsys, tmp_path):
    """Without -o, --config wrote model.onnx, replacing the uniform export unsaid."""
    ckpt = tmp_path / "bn.pt"
    ckpt.write_bytes(ckpts[1].read_bytes())
    code, _, err = run_main(export_main, capsys, str(ckpt))
    assert code == 0, err
    uniform = (tmp_path / "bn.onnx").read_bytes()
    code, out, err = run_main(export_main, capsys, str(ckpt), "--config", "3,1")
    assert code == 0, err
    assert f"wrote {tmp_path / 'bn_3,1.onnx'}" in out and (tmp_path / "bn.onnx").read_bytes() == uniform


def test_runtime_refuses_what_a_multirate_file_cannot_do(ckpts, capsys, tmp_path):
    path = tmp_path / "m.onnx"
    _export(capsys, ckpts[0], path, "4,1,3")
    code, out, err = run_main(runtime_main, capsys, "run", str(path), "--policy", "fixed:4", "--limit", "5")
    one_error(code, err, "runs its last stage at T=3")
    session = runtime.load(path)
    x = np.zeros((2, 3, *session.protocol.input_shape), np.float32)
    with pytest.raises(InputError, match="first stage runs T=4"):
        session.run(x)
    with pytest.raises(InputError, match="each stage at its own T"):
        session.step(x[0])
    code, out, err = run_main(
        runtime_main, capsys, "run", str(path), "--policy", "cascade:confidence:0.5,T=1+3", "--limit", "5"
    )
    one_error(code, err, "runs its configuration 4,1,3 only")
    code, out, err = run_main(
        runtime_main, capsys, "calibrate-exit", str(path), "--rules", "cascade", "--out", str(tmp_path / "e.onnx")
    )
    one_error(code, err, "--rules cascade: a multi-rate file runs its configuration only")
    from runtime.event.engine import load_event

    with pytest.raises(ModelError, match="multi-rate model"):
        load_event(path)
    # pi-bench's timed steps run one T for all stages (its error named frames the user never gave)
    from edge.cli import main as edge_main

    code, out, err = run_main(edge_main, capsys, "pi-bench", str(path), "--max-threads", "1")
    one_error(code, err, "multi-rate model", "pi-bench runs one T for all stages")


def test_flexsnn_onnx_2_files_still_load(ckpts, tmp_path):
    from export.onnx_export import export_onnx

    cfg, model, _ = load_checkpoint(ckpts[0])
    new = export_onnx(cfg, model, tmp_path / "v3.onnx")
    assert "stages" not in json.loads(onnx.load(new).metadata_props[0].value)
    old = _with_meta(new, tmp_path / "v2.onnx", lambda meta: meta.update(format="flexsnn-onnx/2"))
    x = np.random.default_rng(0).poisson(0.5, (3, 4, *cfg.model.in_shape)).astype(np.float32)
    a, b = runtime.load(old).run(x), runtime.load(new).run(x)
    assert np.array_equal(a.outputs, b.outputs) and runtime.load(old).protocol.config is None
