"""NIR import (``python -m export model.nir``): product -> NIR -> product gives the same
spikes for every neuron variant; a network built and exported by sinabs, snnTorch or
norse runs in the product's ONNX runtime with the spikes of the peer's own simulation;
bad input is one ``error:`` line and exit 2."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from export.check import check_onnx, run_torch
from export.cli import main
from export.errors import ExportError
from export.nir_export import export_nir
from export.nir_import import build, import_nir, read_graph
from export.prepare import deployable, neuron_layers
from runtime.protocol import read_model
from tests.conftest import run_main
from tests.export_helpers import config, inputs, model
from tests.nir_peers import BUILDERS

nir = pytest.importorskip("nir")
torch.set_num_threads(1)

VARIANTS = list(itertools.product(("IF", "LIF"), ("single", "multi"), ("subtract", "zero"), ("none", "vth")))


def _export(tmp_path, readout="mean", **neuron):
    cfg = config(name="2C1FC", width=4, bn=False, readout=readout, **neuron)
    net = model(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the peer notes (tests/test_nir_peers.py)
        return cfg, net, export_nir(cfg, net, tmp_path / "m.nir")


@pytest.mark.parametrize("variant", VARIANTS + [("LIF", "multi", "subtract", "li")], ids="-".join)
def test_round_trip_every_variant(variant, tmp_path):
    kind, spike, reset, clamp = variant
    cfg, net, path = _export(
        tmp_path,
        readout="li" if clamp == "li" else "mean",
        kind=kind,
        spike=spike,
        reset=reset,
        v_min=-1.0 if clamp == "vth" else -math.inf,
    )
    imported = build(read_graph(path))
    assert imported.source == "flexsnn"
    assert [n.spec for n in neuron_layers(imported.model)] == [n.spec for n in neuron_layers(net)]
    x = inputs(cfg, T=6, batch=2)
    ref, got = run_torch(deployable(net), x), run_torch(deployable(imported.model), x)
    assert all(r.sum() > 0 for r in ref.outs[:-1])
    for r, g in zip(ref.outs, got.outs):
        assert np.array_equal(r, g)
    assert np.allclose(ref.y, got.y, atol=1e-5)
    assert imported.model.readout_rule == net.readout_rule
    pools = [m for m in imported.model.modules() if isinstance(m, torch.nn.AvgPool2d)]
    assert len(pools) == 2  # the export's pooling convs come back as the average pools they were
    # the training sensor, implicit in this hand-built config (no transforms: its input shape),
    # comes back as the file stated it
    sensor = list(cfg.data.shape) if cfg.data.kind == "events" else None
    assert cfg.data.sensor is None and not cfg.data.transforms
    assert imported.cfg.to_dict()["data"] == {**cfg.to_dict()["data"], "spec": imported.cfg.data.spec, "sensor": sensor}
    assert (imported.cfg.method.tmin, imported.cfg.method.tmax) == (cfg.method.tmin, cfg.method.tmax)


def test_round_trip_onnx_matches_torch_in_onnxruntime(tmp_path):
    cfg, net, path = _export(tmp_path, kind="LIF", spike="multi", reset="zero", v_min=-1.0)
    imported, out = import_nir(path, tmp_path / "m.onnx", T=5)
    result = check_onnx(imported.cfg, imported.model, out, 5, 3)  # every neuron's spikes, onnxruntime vs torch
    assert result.ok, result.rows


def _json_of(main_fn, argv, capsys) -> dict:
    import json

    try:
        main_fn([str(a) for a in argv])
    except SystemExit as e:
        assert e.code in (0, None), capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_round_trip_runs_event_driven_and_passes_the_speck_check(tmp_path, capsys):
    """A Speck-style model (IF, multi-spike, subtract, clamp, no bias, event input):
    its NIR round trip is the same model for the event-driven engine and the Speck check."""
    from edge.cli import main as edge_main
    from export.onnx_export import export_onnx
    from runtime.cli import main as runtime_main

    cfg = config(
        name="2C1FC",
        width=4,
        bn=False,
        bias=False,
        kind="IF",
        spike="multi",
        reset="subtract",
        v_min=-1.0,
        in_shape=(2, 20, 20),
    )
    net = model(cfg)
    direct = export_onnx(cfg, net, tmp_path / "direct.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = export_nir(cfg, net, tmp_path / "m.nir")
    _, out = import_nir(path, tmp_path / "m.onnx")
    runs = [
        _json_of(runtime_main, ["run", m, "--mode", "event", "--data", "digits", "--limit", "2", "--json"], capsys)
        for m in (direct, out)
    ]
    for k in ("accuracy", "events_per_sample", "synops_per_sample", "spikes_per_sample", "sd"):
        assert runs[0][k] == runs[1][k], k
    checks = [_json_of(edge_main, ["speck", m, "--check", "--json"], capsys) for m in (direct, out)]
    assert checks[0]["fits"] and checks[1]["fits"] and checks[0]["violations"] == checks[1]["violations"] == []
    unnamed = lambda d: [{k: v for k, v in layer.items() if k != "name"} for layer in d["layers"]]
    assert unnamed(checks[0]) == unnamed(checks[1])  # ONNX node names differ, the chip mapping does not
    # the protocol comes back whole: a run without --data finds the data it was trained on
    # (the import wrote "nir:m.nir", an unknown data spec, and train split "train")
    protocols = [read_model(m)[1] for m in (direct, out)]
    for field in ("data", "train_split", "binning", "durations", "duration_us", "transforms", "T_range"):
        assert getattr(protocols[0], field) == getattr(protocols[1], field), field


def _peer_file(peer: str, tmp_path):
    graph, run = BUILDERS[peer]()
    path = tmp_path / f"{peer}_model.nir"
    nir.write(path, graph)
    return path, run


@pytest.mark.parametrize("peer", ["sinabs", "snntorch", "norse"])
def test_peer_model_runs_with_the_peers_spikes(peer, tmp_path, capsys):
    path, run = _peer_file(peer, tmp_path)
    out = tmp_path / "m.onnx"
    with pytest.raises(SystemExit) as e:
        main([str(path), "-o", str(out), "--T", "6"])  # the source is detected from the writer's marks
    assert e.value.code in (0, None)
    printed, err = capsys.readouterr()
    assert f"source {peer}" in printed and "convention:" in printed
    assert f"written by {peer}, known from: detected" in printed
    # NIR carries no reset/spike rule/clamp: said as a warning, with the default that differs
    warned = [ln for ln in err.splitlines() if ln.startswith("warning: NIR holds no reset")]
    assert len(warned) == 1 and (
        peer == "norse" or f"e.g. a {'sinabs IAF' if peer == 'sinabs' else 'snnTorch Leaky'}" in warned[0]
    )
    x = np.random.default_rng(1).poisson(1.0, (6, 3, 1, 8, 8)).astype(np.float32)
    peer_spikes, peer_y = run(x)  # the peer's own simulation of the network it built
    imported = build(nir.read(path), peer)
    if peer == "sinabs":  # its SumPool2d: an average pool, the window area in the next weights
        assert sum(isinstance(m, torch.nn.AvgPool2d) for m in imported.model.modules()) == 1
    mine = run_torch(deployable(imported.model), x)
    assert len(mine.outs) == len(peer_spikes)
    for p, m, layer in zip(peer_spikes, mine.outs, neuron_layers(imported.model)):
        assert np.abs(p).sum() > 0
        if layer.spec.spiking:  # spikes identical; an LI membrane to float rounding (norse: Euler)
            assert np.array_equal(p.reshape(m.shape), m)
        else:
            assert np.allclose(p.reshape(m.shape), m, atol=1e-5)
    # the ONNX file in the product's runtime: the readout after every step
    from runtime.session import load

    session = load(out, threads=1)
    y = peer_y.reshape(mine.y.shape)
    for t, x_t in enumerate(x):
        want = y[t] if imported.model.readout_rule == "last" else y[: t + 1].mean(0)
        assert np.allclose(session.step(x_t), want, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("peer", ["sinabs", "snntorch", "norse"])
def test_cli_import_then_runtime_run(peer, tmp_path):
    path, _ = _peer_file(peer, tmp_path)
    out = tmp_path / "m.onnx"
    env = {"OMP_NUM_THREADS": "1"}
    cmd = (
        f"{sys.executable} -m export {path} -o {out} && "
        f"{sys.executable} -m runtime run {out} --data digits:static --limit 8 --policy fixed:4 --json"
    )
    r = subprocess.run(
        ["bash", "-c", cmd], capture_output=True, text=True, timeout=120, env={**__import__("os").environ, **env}
    )
    assert r.returncode == 0, r.stderr
    assert '"accuracy"' in r.stdout or "accuracy" in r.stdout


# -- bad input: one error line, exit 2, nothing written ------------------------------------


def _fails(capsys, argv, *words):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    for w in words:
        assert w in err[0], err[0]
    return err[0]


def test_not_a_nir_file(tmp_path, capsys):
    bad = tmp_path / "m.nir"
    bad.write_text("not hdf5")
    _fails(capsys, [bad, "-o", tmp_path / "m.onnx"], "is not a NIR file")
    _fails(capsys, [tmp_path / "missing.nir"], "does not exist")
    assert not (tmp_path / "m.onnx").exists()


def test_checkpoint_only_flags_are_refused_and_a_failed_check_writes_nothing(tmp_path, capsys, monkeypatch):
    """--config, --data and --calib-batches were accepted and ignored on a .nir input (the
    file byte-identical to a plain import), --batch-size without --check too; a failed
    --check left the imported file where the runtime reads it."""
    import export.check

    path, out = _graph_file(tmp_path, *_dense()), tmp_path / "m.onnx"
    base = [path, "-o", out, "--from", "sinabs"]
    _fails(capsys, [*base, "--config", "2,2"], "--config apply to a checkpoint (model.pt), not to a .nir import")
    _fails(capsys, [*base, "--data", "digits", "--calib-batches", "3"], "--data and --calib-batches apply to")
    _fails(capsys, [*base, "--batch-size", "7"], "only --check reads --batch-size")
    assert not out.exists()
    monkeypatch.setattr(export.check, "close_enough", lambda ref, got: False)  # every state differs
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in base] + ["--check"])
    assert e.value.code == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].endswith(f"-> {out}: not written, the check failed")
    assert lines[-1] == f"check FAILED; {out} was not written" and sorted(os.listdir(tmp_path)) == ["g.nir"]


def _graph_file(tmp_path, nodes, edges, name="g.nir"):
    path = tmp_path / name
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges))
    return path


def _dense(n_in=4, n_out=3, neuron=None):
    w = np.ones((n_out, n_in), np.float32)
    nodes = {
        "input": nir.Input({"input": np.array([n_in])}),
        "fc": nir.Affine(w, np.zeros(n_out, np.float32)),
        "lif": neuron
        or nir.LIF(
            tau=np.full(n_out, 0.01, np.float32),
            r=np.ones(n_out, np.float32),
            v_leak=np.zeros(n_out, np.float32),
            v_threshold=np.ones(n_out, np.float32),
        ),
        "output": nir.Output({"output": np.array([n_out])}),
    }
    return nodes, [("input", "fc"), ("fc", "lif"), ("lif", "output")]


def test_a_nan_weight_is_refused_naming_node_and_parameter(tmp_path, capsys):
    """NIR carries no digest: a NaN weight imported with exit 0 and ran."""
    nodes, edges = _dense()
    nodes["fc"].weight[1, 2] = np.nan
    path = _graph_file(tmp_path, nodes, edges)
    _fails(capsys, [path, "--from", "nir", "--dt-us", "1000"], "node 'fc' parameter 'weight' has 1 NaN or infinite")
    assert not (tmp_path / "g.onnx").exists() and not list(tmp_path.glob("*.onnx"))


def test_unsupported_node_names_it_and_the_supported_set(tmp_path, capsys):
    nodes, edges = _dense()
    nodes["lif"] = nir.Threshold(threshold=np.ones(3))
    path = _graph_file(tmp_path, nodes, edges)
    _fails(capsys, [path, "--from", "nir", "--dt-us", "1000"], "'lif' (Threshold)", "supported nodes: Input, Conv2d")


@pytest.mark.parametrize(
    "source, field, value",
    [
        ("nir", "tau", 0.0),
        ("snntorch", "tau", 0.0),
        ("snntorch", "tau", np.inf),
        ("sinabs", "tau", -0.01),
        ("norse", "tau", -0.01),
        ("snntorch", "r", 0.0),
        ("nir", "r", -1.0),
    ],
)
def test_a_time_constant_or_gain_that_is_not_positive_is_one_error(tmp_path, capsys, source, field, value):
    """tau 0 (and snnTorch's tau inf or r 0) were ZeroDivisionError tracebacks, a negative tau
    was refused as a derived "decay must be in (0, 1], got 1.105", r 0 or below imported a
    network that never fires (or fires on inhibition), exit 0."""
    nodes, edges = _dense()
    setattr(nodes["lif"], field, np.full(3, value, np.float32))
    path = _graph_file(tmp_path, nodes, edges)
    dt = ["--dt-us", "1000"] if source == "nir" else []
    _fails(capsys, [path, "--from", source, *dt], f"parameter {field!r} must be a")
    assert not list(tmp_path.glob("*.onnx"))


@pytest.mark.parametrize("source", ["sinabs", "nir", "norse"])
def test_a_tau_of_inf_is_no_leak_where_the_source_reads_it_so(tmp_path, capsys, source):
    """flexsnn's NIR writes tau = inf for decay 1; the positivity check refused it for every
    source (snnTorch's convention divides by it: refused there)."""
    nodes, edges = _dense()
    nodes["lif"].tau = np.full(3, np.inf, np.float32)
    path = _graph_file(tmp_path, nodes, edges)
    dt = ["--dt-us", "1000"] if source != "sinabs" else []
    code, _, err = run_main(main, capsys, str(path), "--from", source, *dt, "-o", str(tmp_path / "m.onnx"))
    assert code == 0, err
    (neuron,) = read_model(tmp_path / "m.onnx")[1].neurons
    assert neuron.spec.decay == 1.0


def test_a_conv_input_with_an_extra_dimension_is_one_error(tmp_path, capsys):
    """norse's graph (Input [1, 1, 8, 8]: its batch dim) read --from sinabs or nir was a
    ValueError traceback at the first conv's shape check."""
    nodes = {
        "input": nir.Input({"input": np.array([1, 1, 8, 8])}),
        "conv": nir.Conv2d((8, 8), np.ones((2, 1, 3, 3), np.float32), 1, 1, 1, 1, np.zeros(2, np.float32)),
        "if": nir.IF(r=np.ones((2, 8, 8), np.float32), v_threshold=np.ones((2, 8, 8), np.float32)),
        "output": nir.Output({"output": np.array([2, 8, 8])}),
    }
    path = _graph_file(tmp_path, nodes, [("input", "conv"), ("conv", "if"), ("if", "output")])
    _fails(capsys, [path, "--from", "sinabs"], "shape [1, 1, 8, 8] has 4 dimensions", "--from snntorch or norse")
    assert not list(tmp_path.glob("*.onnx"))


def test_cuba_lif_from_a_source_whose_discretisation_is_not_mapped_is_one_error(tmp_path, capsys):
    nodes, edges = _dense()
    nodes["lif"] = nir.CubaLIF(
        tau_syn=np.ones(3), tau_mem=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)
    )
    path = _graph_file(tmp_path, nodes, edges)
    _fails(capsys, [path, "--from", "nir", "--dt-us", "1000"], "CubaLIF nodes import from flexsnn or snntorch only")


@pytest.mark.parametrize(
    "edge, node", [(("output", "input"), "input"), (("lif", "input"), "input"), (("output", "fc"), "fc")]
)
def test_an_edge_back_into_the_chain_is_refused(tmp_path, capsys, edge, node):
    """An edge back to Input (a recurrence) imported as the plain chain, exit 0."""
    nodes, edges = _dense()
    path = _graph_file(tmp_path, nodes, [*edges, edge])
    inputs = 1 if node == "input" else 2
    _fails(capsys, [path, "--from", "nir", "--dt-us", "1000"], f"node {node!r} has {inputs} inputs (", "no recurrence")
    assert not list(tmp_path.glob("*.onnx"))


def test_inconsistent_shapes(tmp_path, capsys):
    nodes, edges = _dense()
    nodes["input"] = nir.Input({"input": np.array([5])})  # the Affine takes 4
    path = _graph_file(tmp_path, nodes, edges)
    _fails(capsys, [path, "--from", "norse"], "node 'fc' does not fit its input of shape [5]")


def test_missing_source_and_missing_dt(tmp_path, capsys):
    nodes, edges = _dense()
    path = _graph_file(tmp_path, nodes, edges)
    _fails(capsys, [path], "does not show which framework", "--from", "sinabs, snntorch, norse, nir")
    _fails(capsys, [path, "--from", "nir"], "needs --dt-us (µs per step)")
    _fails(capsys, [path, "--from", "sinabs", "--dt-us", "1000"], "--dt-us does not apply")
    _fails(capsys, [path, "--from", "nir", "--dt-us", "-1"], "--dt-us must be")
    # the old flag took seconds: it is refused with its new name, never read as a prefix of --dt-us
    _fails(capsys, [path, "--from", "nir", "--dt", "0.001"], "--dt is now --dt-us (in µs, not seconds)")
    _fails(capsys, [path, "--from", "nir", "--dt=0.001"], "--dt is now --dt-us (in µs, not seconds)")


def test_dt_us_is_read_in_microseconds(tmp_path, capsys):
    """--dt-us 500 on a `nir` graph is a step of 0.5 ms (the JSON's dt_s), decay exp(-dt/tau)."""
    nodes, edges = _dense()
    path = _graph_file(tmp_path, nodes, edges)
    code, out, err = run_main(main, capsys, str(path), "--from", "nir", "--dt-us", "500", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["dt_us"] == 500  # exactly: a program compares it with what it gave
    argv = [str(path), "--from", "nir", "--dt-us", "100", "--json", "-o", str(tmp_path / "b.onnx")]
    code, out, err = run_main(main, capsys, *argv)
    assert code == 0 and json.loads(out)["dt_us"] == 100, err  # was 99.99999999999999
    assert report["neurons"][0]["decay"] == pytest.approx(math.exp(-5e-4 / 0.01), rel=1e-6)  # tau 10 ms


def test_per_neuron_parameters_that_differ_are_refused(tmp_path, capsys):
    lif = nir.LIF(
        tau=np.array([1.0, 2.0, 3.0], np.float32),
        r=np.ones(3, np.float32),
        v_leak=np.zeros(3, np.float32),
        v_threshold=np.ones(3, np.float32),
    )
    path = _graph_file(tmp_path, *_dense(neuron=lif))
    _fails(capsys, [path, "--from", "sinabs"], "'tau' differs between neurons")


def test_nir_source_integrates_the_ode_exactly_over_dt(tmp_path, capsys):
    path = _graph_file(tmp_path, *_dense())
    imported = build(read_graph(path), "nir", 1e-3)
    spec = neuron_layers(imported.model)[0].spec
    decay = math.exp(-1e-3 / 0.01)
    assert math.isclose(spec.decay, decay, rel_tol=1e-6) and spec.reset == "zero" and spec.spike == "single"
    fc = imported.model.stages[0].layers[0].module  # input factor r * (1 - decay) folded into the weights
    assert torch.allclose(fc.weight, torch.full((3, 4), 1 - decay), rtol=1e-5)


def test_window_us_makes_a_foreign_model_take_event_frames(tmp_path):
    from export.protocol import read_protocol

    path = _graph_file(tmp_path, *_dense())
    _, out = import_nir(path, tmp_path / "m.onnx", "nir", 1e-3, T=4, window_us=40000.0)
    meta = read_protocol(out)
    assert meta.input_kind == "event-frames" and meta.duration_us == 40000.0
    assert meta.dt_us == 10000.0 and meta.T_trained == 4
    # a step is one 10 ms frame, in the neurons too: the event-driven engine leaks them by
    # decay per dt µs, and the source's 1 ms step (or sinabs' dt of one step, read as 1 µs)
    # made it leak them 10 (10^4) times too fast, silent: no spikes per event
    assert [n.spec.dt for n in meta.neurons] == [10000.0]
    imported = build(read_graph(path), "nir", 1e-3, T=4, window_us=40000.0)
    assert any("discretised the neurons at 1000 µs per step" in n and "10000 µs" in n for n in imported.notes)
    sinabs = build(read_graph(path), "sinabs", T=4, window_us=40000.0)
    assert neuron_layers(sinabs.model)[0].spec.dt == 10000.0 and not any("discretised" in n for n in sinabs.notes)
    _, out = import_nir(path, tmp_path / "s.onnx", "nir", 1e-3)
    assert read_protocol(out).input_kind == "repeat" and read_protocol(out).T_trained == 10


def test_window_us_is_refused_for_this_products_own_graph_with_the_reason(tmp_path):
    """It read like a range error ("takes the recording duration in µs (> 0) ...; got 6000.0")."""
    _, _, path = _export(tmp_path)
    with pytest.raises(ExportError, match="^--window-us applies to a foreign graph: this one was written by flexsnn"):
        build(read_graph(path), window_us=6000.0)
    with pytest.raises(ExportError, match=r"^--window-us takes a foreign graph's window .* > 0; got -1.0$"):
        build(read_graph(_graph_file(tmp_path, *_dense())), "nir", 1e-3, T=4, window_us=-1.0)


def test_the_import_table_shows_a_kinds_own_fields(tmp_path, capsys):
    """The table had the common columns only: a CubaLIF's imported syn_gain and
    decay_syn showed nowhere (the file carried them)."""
    cfg, net, path = _export(tmp_path, kind="CubaLIF", spike="single", reset="zero", extra={"syn_gain": 0.25})
    code, out, err = run_main(main, capsys, str(path), "-o", str(tmp_path / "m.onnx"))
    assert code == 0, err
    header = next(line for line in out.splitlines() if line.lstrip().startswith("layer"))
    assert header.split()[-2:] == ["decay_syn", "syn_gain"], header
    rows = [line.split() for line in out.splitlines() if " CubaLIF " in f" {line} "]
    assert [r[-2:] for r in rows] == [["0.5000", "0.2500"]] * 2, rows  # decay_syn (default) and syn_gain


def test_a_nir_file_declaring_huge_arrays_or_inputs_is_refused_before_allocating(tmp_path, monkeypatch):
    """A stranger's hostile tour: a 148 KB file whose gzip weight declared (32, 2, 4000, 4000)
    took 12 GB before any check, an Input of [2, 40000, 40000] 13 GB, and a conv of groups 0
    was torch's ValueError traceback."""
    import h5py
    import nir

    from runtime.limits import ResourceError

    def graph(side: int = 34, groups: int = 1) -> nir.NIRGraph:
        conv = nir.Conv2d(
            input_shape=(side, side), weight=np.ones((4, 2, 3, 3)), stride=1, padding=1, dilation=1, groups=groups,
            bias=np.zeros(4),
        )  # fmt: skip
        return nir.NIRGraph(
            nodes={"input": nir.Input(input_type={"input": np.array([2, side, side])}), "conv": conv,
                   "lif": nir.IF(r=np.ones(4), v_threshold=np.ones(4)),
                   "output": nir.Output(output_type={"output": np.array([4, side, side])})},
            edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")],
        )  # fmt: skip

    path = tmp_path / "bomb.nir"
    nir.write(path, graph())
    with h5py.File(path, "a") as f:
        del f["node/nodes/conv/weight"]
        f.create_dataset("node/nodes/conv/weight", shape=(32, 2, 4000, 4000), dtype="f8", compression="gzip")
    assert path.stat().st_size < 100_000
    monkeypatch.setenv("FLEXSNN_MAX_MEMORY", "2G")
    with pytest.raises(ResourceError, match=r"its arrays' declared sizes\) needs about 7.6 GiB"):
        read_graph(path)
    with pytest.raises(ExportError, match=r"\[2, 40000, 40000\] has a side above 16384"):
        build(graph(side=40000), source="sinabs")
    with pytest.raises(ExportError, match="Conv2d node 'conv': groups must be a positive integer"):
        build(graph(groups=0), source="sinabs")


def test_a_fixed_binned_graph_keeps_its_bin_width_at_another_T():
    """`export m.nir --T 2` of an MTT A.2 model (fixed bins: the first T of Tmax) set its
    step to the recording over 2 (150 ms where it trained on 75): 28 of 100 predictions
    differed from the model's own export. Equal binning is retimed, as before."""
    from types import SimpleNamespace

    from export.nir_import import _retimed

    # the protocol fields it reads
    meta = SimpleNamespace(T_trained=4, dt_us=75000.0, duration_us=300000.0, binning="fixed")
    assert _retimed(meta, 2) is None  # the trained width at any T: the model's own frames
    meta.binning = "equal"
    assert _retimed(meta, 2) == (150000.0, 75000.0)  # the recording in 2 bins, the neurons' dt kept
