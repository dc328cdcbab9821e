"""NIR export: every neuron field survives in metadata, the encoding is the one every
peer reads (tests/test_nir_peers.py runs the peers), residual nets become graph merges."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter

import numpy as np
import pytest
import torch

from export.nir_export import NirPeerWarning, build_nir, export_nir
from export.prepare import deployable, neuron_layers
from export.protocol import KEY
from runtime.protocol import parse_protocol
from tests.export_helpers import config, model

nir = pytest.importorskip("nir")


def _if_net(spike: str):
    cfg = config(name="2C1FC", width=4, bn=False, kind="IF", spike=spike, v_min=-1.0)
    return cfg, model(cfg)


def test_semantics_nir_cannot_express_are_in_metadata_and_matter(tmp_path):
    cfg, net = _if_net("single")
    path = export_nir(cfg, net, tmp_path / "m.nir")
    graph = nir.read(path)
    meta = json.loads(graph.metadata[KEY])
    assert [n.spec for n in parse_protocol(meta).neurons] == [layer.spec for layer in neuron_layers(net)]
    first = graph.nodes[meta["neurons"][0]["node"]]
    assert isinstance(first, nir.IF) and first.metadata["flexsnn.spike"] == "single"
    assert first.metadata["flexsnn.reset"] == "subtract" and float(first.metadata["flexsnn.v_min"]) == -1.0
    assert first.metadata["flexsnn.nir_time"] == "none"


def test_lif_and_li_parameters(tmp_path):
    cfg = config(name="2C1FC", width=4, readout="li")
    path = export_nir(cfg, model(cfg), tmp_path / "m.nir")
    graph = nir.read(path)
    kinds = Counter(type(n).__name__ for n in graph.nodes.values())
    assert kinds["LIF"] == 2 and kinds["LI"] == 1 and kinds["Conv2d"] == 4  # 2 convs, 2 pools
    lif = next(n for n in graph.nodes.values() if isinstance(n, nir.LIF))
    assert lif.tau.shape == (4, 1, 1)  # per channel: what sinabs can read
    assert np.allclose(np.exp(-1.0 / lif.tau), cfg.neuron.spec.decay) and np.all(lif.r == 1) and np.all(lif.v_leak == 0)
    assert lif.metadata["flexsnn.nir_time"] == "exp steps"
    meta = json.loads(graph.metadata[KEY])
    assert meta["readout"] == "last" and meta["neurons"][0]["spec"]["dt"] == cfg.dt_us


def test_residual_net_merges_branches(tmp_path):
    cfg = config(name="resnet10", width=4, in_shape=(1, 8, 8), data="digits:static")
    net = model(cfg)
    graph = nir.read(export_nir(cfg, net, tmp_path / "m.nir"))
    neurons = [k for k, n in graph.nodes.items() if isinstance(n, nir.LIF)]
    assert len(neurons) == net.n_states
    fan_in = Counter(dst for _, dst in graph.edges)
    assert sum(fan_in[n] == 2 for n in neurons) == 4  # one merge (body + shortcut) per basic block
    assert math.isclose(
        float(np.abs(graph.nodes["n001_conv"].weight).sum()),
        float(np.abs(deployable(net).stages[0].layers[0].layers[0].module.weight).sum()),
        rel_tol=1e-6,
    )


def test_single_spike_zero_reset_lif_is_written_in_snntorch_time():
    cfg = config(name="1C1FC", width=4, bn=False, spike="single", reset="zero")
    with pytest.warns(NirPeerWarning):
        graph = build_nir(cfg, model(cfg))
    lif = next(n for n in graph.nodes.values() if isinstance(n, nir.LIF))
    # forward Euler of NIR's ODE at dt = 1e-4 s: v + dt/tau (r I - v) = decay v + I
    dt = 1e-4
    assert np.allclose(1 - dt / lif.tau, cfg.neuron.spec.decay) and np.allclose(lif.r * dt / lif.tau, 1.0)
    assert lif.metadata["flexsnn.nir_time"] == "euler dt=0.0001s"


def test_pooling_flatten_and_names_every_peer_reads(tmp_path):
    cfg = config(name="1C1FC", width=4, bn=False)
    net = model(cfg)
    graph = nir.read(export_nir(cfg, net, tmp_path / "m.nir"))
    assert list(graph.nodes) == sorted(graph.nodes)  # nir.read sorts by name: execution order
    pool = graph.nodes["n003_conv"]
    assert pool.weight.shape == (4, 4, 2, 2) and tuple(pool.stride) == (2, 2) and pool.groups == 1
    assert np.array_equal(pool.weight, np.einsum("ij,kl->ijkl", np.eye(4), np.full((2, 2), 0.25)))
    flat = graph.nodes["n004_flatten"]
    assert (flat.start_dim, flat.end_dim) == (-3, -1)  # no dim that a peer could read as the batch
    x = torch.rand(3, 4, 8, 8)
    assert torch.equal(
        torch.nn.functional.conv2d(x, torch.from_numpy(pool.weight), stride=2), torch.nn.functional.avg_pool2d(x, 2)
    )
    meta = json.loads(graph.metadata[KEY])
    assert meta["nir"]["peers"]["sinabs 3.1.3"].startswith("runs LIF with floor(v/v_th) spikes per step")


def test_lif_without_leak_round_trips(tmp_path):
    from export.nir_import import build, read_graph

    cfg = config(name="1C1FC", width=4, bn=False)
    cfg.neuron.spec = dataclasses.replace(
        cfg.neuron.spec, decay=1.0
    )  # a LIF that does not leak: tau = inf, exp(-1/tau) = 1
    net = model(cfg)
    with pytest.warns(NirPeerWarning):
        graph = nir.read(export_nir(cfg, net, tmp_path / "m.nir"))
    lif = next(n for n in graph.nodes.values() if isinstance(n, nir.LIF))
    assert np.all(np.isinf(lif.tau))
    assert [n.spec for n in neuron_layers(build(read_graph(tmp_path / "m.nir")).model)] == [
        n.spec for n in neuron_layers(net)
    ]


def test_a_kind_without_a_nir_node_is_one_export_error(tmp_path):
    from export.errors import ExportError

    cfg = config(name="1C1FC", width=4, bn=False, kind="ALIF")
    with pytest.raises(ExportError, match="ALIF neurons have no NIR node"):
        export_nir(cfg, model(cfg), tmp_path / "m.nir")
    assert not (tmp_path / "m.nir").exists()


@pytest.mark.parametrize("decay_syn", [0.8, 1.0])
@pytest.mark.parametrize("kind", ["LIF", "CubaLIF"])
def test_a_nodes_time_label_says_how_its_tau_was_written(kind, decay_syn):
    """CubaLIF's tau were written in steps when decay_syn = 1 (snnTorch's Synaptic form needs a
    leaking current) while its flexsnn.nir_time said "euler dt=0.0001s": the label came from
    a second, LIF-only copy of the rule. Each kind now labels its own node."""
    from runtime.neuron import kind_of, make_spec
    from runtime.neuron.nir import euler_tau, steps_tau

    extra = {"decay_syn": decay_syn} if kind == "CubaLIF" else {}
    spec = make_spec(kind, decay=0.9, spike="single", reset="zero", **extra)
    _, params = kind_of(kind).to_nir(spec, (2,))
    tau = float(params["tau_mem" if kind == "CubaLIF" else "tau"].flat[0])
    label = kind_of(kind).nir_time(spec)
    written = {"euler dt=0.0001s": euler_tau(0.9), "exp steps": steps_tau(0.9)}
    assert label in written and math.isclose(tau, written[label], rel_tol=1e-6), (label, tau)
    assert label == ("exp steps" if kind == "CubaLIF" and decay_syn == 1.0 else "euler dt=0.0001s")


@pytest.mark.parametrize(
    "fields, finite",
    [({"decay": 0.5, "decay_syn": 0.5}, True), ({"decay": 0.9, "decay_syn": 0.6, "syn_gain": 0.7}, True),
     ({"decay": 1.0, "decay_syn": 0.6}, False), ({"decay": 0.9, "decay_syn": 1.0}, False)],
)  # fmt: skip
def test_a_steps_cuba_lif_node_is_the_event_engines_neuron_in_nirs_ode(fields, finite):
    """NIR's CubaLIF: ``tau_syn di/dt = -i + w_in x``, ``tau_mem dv/dt = -v + r i`` (time in
    steps). The node written for a multi-spike model (the form event-driven use wants) read
    that way must be the engine's neuron: an input of weight w lifts i by w (``w_in /
    tau_syn = 1``), the membrane is charged at the event form's rate (``r / tau_mem = charge
    * dt``) and both decay at its rates. It was ``r = syn_gain``, ``w_in = 1``: an input lifted
    i by 1 / tau_syn and the drive was (1 - d)(1 - d_syn) = 0.25 of the engine's at decays 0.5."""
    from runtime.neuron import kind_of, make_spec

    spec = make_spec("CubaLIF", spike="multi", reset="subtract", dt=100.0, **fields)
    kind = kind_of("CubaLIF")
    assert kind.nir_time(spec) == "exp steps"
    _, params = kind.to_nir(spec, (3,))
    p = {k: float(v.flat[0]) for k, v in params.items()}
    form = kind.event_form(spec)
    if not finite:  # a decay of 1: tau = inf has no finite r / w_in; the gain as it was
        assert (p["r"], p["w_in"]) == (spec.syn_gain, 1.0)
        return
    assert p["w_in"] / p["tau_syn"] == pytest.approx(1.0, rel=1e-12)
    assert p["r"] / p["tau_mem"] == pytest.approx(form.charge * spec.dt, rel=1e-6)
    assert 1 / p["tau_mem"] == pytest.approx(form.inv_tau * spec.dt, rel=1e-6)
    assert 1 / p["tau_syn"] == pytest.approx(form.inv_tau_syn * spec.dt, rel=1e-6)
