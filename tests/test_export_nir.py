"""NIR export: an independent implementation (sinabs) runs the file and gets the same
spikes; every neuron field survives in metadata; residual nets become graph merges."""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections import Counter

import numpy as np
import pytest
import torch

from export.check import run_torch
from export.nir_export import export_nir
from export.prepare import deployable, neuron_layers
from export.protocol import KEY
from runtime.protocol import parse_protocol
from tests.export_helpers import config, inputs, model

nir = pytest.importorskip("nir")


def _quantized_if_net(spike: str):
    """IF, subtract reset, v_min = -v_th (what sinabs' IAF does), weights on a 1/16 grid
    (as on Speck): every sum is exact in float32, so any difference is semantic."""
    cfg = config(name="2C1FC", width=4, bn=False, kind="IF", spike=spike, v_min=-1.0)
    net = model(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.round(p * 16) / 16)
    return cfg, net


def _sinabs_spikes(path, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    sinabs = pytest.importorskip("sinabs")  # lazily: never sinabs.backend.dynapcnn (imports samna)
    import sinabs.layers as sl

    T, B = x.shape[:2]
    with warnings.catch_warnings():  # nirtorch.load deprecation notice
        warnings.simplefilter("ignore")
        net = sinabs.from_nir(nir.read(path), batch_size=B)
    spikes: list[torch.Tensor] = []
    for m in net.modules():
        if isinstance(m, sl.IAFSqueeze):
            m.register_forward_hook(lambda _m, _a, out: spikes.append(out))
    y, _ = net(torch.from_numpy(x).transpose(0, 1).reshape(B * T, *x.shape[2:]))  # sinabs: [B*T, ...]
    back = lambda t: t.reshape(B, T, *t.shape[1:]).transpose(0, 1).detach().numpy()  # noqa: E731
    return [back(s) for s in spikes], back(y)


def test_sinabs_runs_the_file_with_identical_spike_counts(tmp_path):
    cfg, net = _quantized_if_net("multi")
    path = export_nir(cfg, net, tmp_path / "m.nir")
    x = inputs(cfg, T=6, batch=3)
    ref = run_torch(deployable(net), x)
    got, y = _sinabs_spikes(path, x)
    assert len(got) == len(ref.outs) == 2
    for r, g in zip(ref.outs, got):
        assert r.sum() > 0
        assert np.array_equal(r.sum(0), g.sum(0))  # spike count of every neuron of every sample
        assert np.array_equal(r, g)                # and at every step
    assert np.allclose(ref.y, y, atol=1e-5)
    assert "samna" not in sys.modules  # the vendor SDK stub was never imported


def test_semantics_nir_cannot_express_are_in_metadata_and_matter(tmp_path):
    cfg, net = _quantized_if_net("single")
    path = export_nir(cfg, net, tmp_path / "m.nir")
    graph = nir.read(path)
    meta = json.loads(graph.metadata[KEY])
    assert [n.spec for n in parse_protocol(meta).neurons] == [layer.spec for layer in neuron_layers(net)]
    first = graph.nodes[meta["neurons"][0]["node"]]
    assert isinstance(first, nir.IF) and first.metadata["flexsnn.spike"] == "single"
    assert first.metadata["flexsnn.reset"] == "subtract" and float(first.metadata["flexsnn.v_min"]) == -1.0
    # sinabs' IAF always fires several spikes per step: without the metadata the counts differ
    x = inputs(cfg, T=6, batch=3) * 3
    ref = run_torch(deployable(net), x)
    got, _ = _sinabs_spikes(path, x)
    assert not np.array_equal(ref.outs[0], got[0])


def test_lif_and_li_parameters(tmp_path):
    cfg = config(name="2C1FC", width=4, readout="li")
    path = export_nir(cfg, model(cfg), tmp_path / "m.nir")
    graph = nir.read(path)
    kinds = Counter(type(n).__name__ for n in graph.nodes.values())
    assert kinds["LIF"] == 2 and kinds["LI"] == 1 and kinds["SumPool2d"] == 2 and kinds["Conv2d"] == 2
    lif = next(n for n in graph.nodes.values() if isinstance(n, nir.LIF))
    assert np.allclose(np.exp(-1.0 / lif.tau), cfg.neuron.spec.decay) and np.all(lif.r == 1) and np.all(lif.v_leak == 0)
    meta = json.loads(graph.metadata[KEY])
    assert meta["readout"] == "last" and meta["neurons"][0]["spec"]["dt"] == 1.0


def test_residual_net_merges_branches(tmp_path):
    cfg = config(name="resnet10", width=4, in_shape=(1, 8, 8), data="digits:static")
    net = model(cfg)
    graph = nir.read(export_nir(cfg, net, tmp_path / "m.nir"))
    neurons = [k for k, n in graph.nodes.items() if isinstance(n, nir.LIF)]
    assert len(neurons) == net.n_states
    fan_in = Counter(dst for _, dst in graph.edges)
    assert sum(fan_in[n] == 2 for n in neurons) == 4  # one merge (body + shortcut) per basic block
    assert math.isclose(float(np.abs(graph.nodes["conv_1"].weight).sum()), float(np.abs(
        deployable(net).stages[0].layers[0].layers[0].module.weight).sum()), rel_tol=1e-6)


def test_avg_pool_without_a_weight_layer_after_it_stays_an_avg_pool(tmp_path):
    from torch import nn

    from trainer.layers import Stateless

    cfg = config(name="2C1FC", width=4, bn=False)
    net = model(cfg)
    # a pool right before a neuron: nothing to fold 1/k into
    net.stages[0].layers[0].layers.insert(1, Stateless(nn.AvgPool2d(1)))
    graph = nir.read(export_nir(cfg, net, tmp_path / "m.nir"))
    kinds = Counter(type(n).__name__ for n in graph.nodes.values())
    assert kinds["AvgPool2d"] == 1 and kinds["SumPool2d"] == 2
