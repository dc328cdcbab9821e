"""Run a NIR graph in a peer's own simulation (sinabs 3.1.3, snnTorch 1.0.0, norse 1.1.0)
and collect every neuron layer's output per step: the oracle of the NIR tests. Nothing
of a peer is re-implemented here; each peer is driven the way its documentation shows.

Peers are imported lazily (never ``sinabs.backend.dynapcnn``, which imports samna).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch

PEERS = ("sinabs", "snntorch", "norse")


def peer(name: str):
    """The peer's package, or a skip naming how CI installs it."""
    return pytest.importorskip(name, reason=f"{name} is not installed (.ci/run installs it with --no-deps)")


def _hooked(modules: list[torch.nn.Module], pick: Callable) -> tuple[list[list[torch.Tensor]], list]:
    outs: list[list[torch.Tensor]] = [[] for _ in modules]
    hooks = [
        m.register_forward_hook(lambda _m, _a, o, i=i: outs[i].append(pick(o).detach().clone()))
        for i, m in enumerate(modules)
    ]
    return outs, hooks


def _stack(outs: list[list[torch.Tensor]]) -> list[np.ndarray]:
    return [torch.stack(o).numpy() for o in outs]


def run_sinabs(graph, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    sinabs = peer("sinabs")
    import sinabs.layers as sl

    T, B = x.shape[:2]
    with warnings.catch_warnings():  # nirtorch.load deprecation notice
        warnings.simplefilter("ignore")
        net = sinabs.from_nir(graph, batch_size=B)
    mods = [m for m in net.modules() if isinstance(m, (sl.IAFSqueeze, sl.LIFSqueeze, sl.ExpLeakSqueeze))]
    outs: list[torch.Tensor] = []
    for m in mods:
        m.register_forward_hook(lambda _m, _a, o: outs.append(o.detach()))
    with torch.no_grad():
        y, _ = net(torch.from_numpy(x).transpose(0, 1).reshape(B * T, *x.shape[2:]))  # sinabs: [B*T, ...]
    back = lambda t: t.reshape(B, T, *t.shape[1:]).transpose(0, 1).numpy()
    return [back(o) for o in outs], back(y)


def run_norse(graph, x: np.ndarray, dt: float = 1.0) -> tuple[list[np.ndarray], np.ndarray]:
    peer("norse")
    import norse.torch as nt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = nt.from_nir(graph, dt=dt)
    # norse builds a CubaLIF node as an LI synapse and then its LIF: the synapse is a state of
    # the neuron, not a layer of its own (its output is the synaptic current, not spikes)
    synapses = {id(m.synapse) for m in net.modules() if type(m).__name__ == "CubaLIF"}
    kinds = ("IAFCell", "LIFBoxCell", "LIBoxCell")
    mods = [m for m in net.modules() if type(m).__name__ in kinds and id(m) not in synapses]
    outs, _ = _hooked(mods, lambda o: o[0])
    state, ys = None, []
    with torch.no_grad():
        for x_t in torch.from_numpy(x):
            y, state = net(x_t, state)
            ys.append(y)
    return _stack(outs), torch.stack(ys).numpy()


def run_snntorch(graph, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    snn = peer("snntorch")
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        net = import_from_nir(graph)
    mods = [m for m in net.modules() if isinstance(m, (snn.Leaky, snn.Synaptic))]  # fresh: zero membranes
    outs, _ = _hooked(mods, lambda o: o[0] if isinstance(o, tuple) else o)
    ys = []
    with torch.no_grad():
        for x_t in torch.from_numpy(x):
            y, _ = net(x_t)
            ys.append(y)
    return _stack(outs), torch.stack(ys).numpy()


RUNNERS = {"sinabs": run_sinabs, "snntorch": run_snntorch, "norse": run_norse}


# -- networks built and exported by the peers themselves (peer -> NIR -> flexsnn) ---------


def _writable(graph, conv_inputs: dict[str, tuple[int, int]], flatten_inputs: dict[str, tuple[int, ...]] | None = None):
    """nir 1.0.4 cannot write a Conv2d whose ``input_shape`` is None or a Flatten whose
    ``input_type`` is None, which is what the peers' exporters leave; set those input
    shapes, nothing else (what a user has to do before ``nir.write``)."""
    import nir

    for name, hw in conv_inputs.items():
        graph.nodes[name].input_shape = hw
    for name, shape in (flatten_inputs or {}).items():
        n = graph.nodes[name]
        graph.nodes[name] = nir.Flatten({"input": np.array(shape)}, n.start_dim, n.end_dim, metadata=n.metadata)
    return graph


def _time_loop(net: torch.nn.Module, neurons: list[torch.nn.Module], x: np.ndarray, stateful: bool):
    outs, _ = _hooked(neurons, lambda o: o[0] if isinstance(o, tuple) else o)
    state, ys = None, []
    with torch.no_grad():
        for x_t in torch.from_numpy(x):
            if stateful:
                y, state = net(x_t, state)
            else:
                y = net(x_t)
            ys.append(y[0] if isinstance(y, tuple) else y)
    return _stack(outs), torch.stack(ys).numpy()


def sinabs_net(seed: int = 0):
    """conv -> IAF (sinabs' from_nir clamps at -v_th: built so) -> sum pool -> flatten ->
    linear -> LIF (tau 4 steps) -> linear -> ExpLeak (LI readout); input [1, 8, 8].
    ``norm_input=False``: sinabs' to_nir drops norm_input (its default scales the input
    by 1 - alpha) and its from_nir builds norm_input=False."""
    peer("sinabs")
    import sinabs
    import sinabs.layers as sl

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        sl.IAFSqueeze(min_v_mem=-1.0, num_timesteps=1),
        sl.SumPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 16),
        sl.LIFSqueeze(tau_mem=4.0, num_timesteps=1, norm_input=False),
        torch.nn.Linear(16, 10),
        sl.ExpLeakSqueeze(tau_mem=2.0, num_timesteps=1, norm_input=False),
    ).eval()
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[4].weight.mul_(4.0)
    graph = _writable(sinabs.to_nir(net, torch.zeros(1, 1, 8, 8)), {"0": (8, 8)}, {"3": (4, 4, 4)})

    def run(x: np.ndarray):  # one step per call (num_timesteps=1), state kept by the layers
        net.apply(lambda m: m.reset_states() if hasattr(m, "reset_states") else None)
        spikes, y = _time_loop(net, [net[1], net[5], net[7]], x, stateful=False)
        return spikes, y

    return graph, run


def snntorch_net(seed: int = 0):
    """flatten -> linear -> Leaky (reset to zero) -> linear -> Leaky; input [1, 8, 8]
    (snnTorch 1.0.0's conv export fails in nir 1.0.4's type inference)."""
    snn = peer("snntorch")
    import nir
    import snntorch.export_nir as sx

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(64, 16),
        snn.Leaky(beta=0.75, init_hidden=True, reset_mechanism="zero"),
        torch.nn.Linear(16, 10),
        snn.Leaky(beta=0.5, init_hidden=True, reset_mechanism="zero", output=True),
    ).eval()
    with torch.no_grad():
        net[1].weight.mul_(4.0)
        net[3].weight.mul_(3.0)
    lif = nir.LIF
    try:  # snnTorch 1.0.0 passes v_reset (0), which nir 1.0.4's LIF does not have
        sx.nir.LIF = lambda v_reset=None, **kw: lif(**kw)
        with contextlib.redirect_stdout(io.StringIO()):
            graph = sx.export_to_nir(net, torch.zeros(1, 1, 8, 8))
    finally:
        sx.nir.LIF = lif

    def run(x: np.ndarray):
        for m in (net[2], net[4]):
            m.reset_hidden()
        return _time_loop(net, [net[2], net[4]], x, stateful=False)

    return graph, run


def norse_net(seed: int = 0, dt: float = 1e-3):
    """conv -> IAF -> conv -> LIFBox (tau_mem_inv 250/s: dt/tau = 0.25) -> conv over the
    whole map -> LIBox (tau_mem_inv 500/s) readout; input [1, 8, 8] (norse 1.1.0 exports
    neither pooling nor Flatten)."""
    peer("norse")
    import norse.torch as nt

    torch.manual_seed(seed)
    lif = nt.LIFBoxCell(nt.LIFBoxParameters(tau_mem_inv=torch.as_tensor(250.0), v_th=torch.as_tensor(0.25)), dt=dt)
    li = nt.LIBoxCell(nt.LIBoxParameters(tau_mem_inv=torch.as_tensor(500.0)), dt=dt)
    net = nt.SequentialState(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        nt.IAFCell(),
        torch.nn.Conv2d(4, 4, 3, padding=1),
        lif,
        torch.nn.Conv2d(4, 10, 8),
        li,
    ).eval()
    with torch.no_grad():
        for i in (0, 2, 4):
            net[i].weight.mul_(3.0)
    graph = _writable(nt.to_nir(net, torch.zeros(1, 1, 8, 8), dt=dt), {"0": (8, 8), "2": (8, 8), "4": (8, 8)})

    def run(x: np.ndarray):
        spikes, y = _time_loop(net, [net[1], net[3], net[5]], x, stateful=True)
        return spikes, y.reshape(y.shape[0], y.shape[1], -1)

    return graph, run


BUILDERS = {"sinabs": sinabs_net, "snntorch": snntorch_net, "norse": norse_net}
