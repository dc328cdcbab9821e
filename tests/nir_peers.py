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
    hooks = [m.register_forward_hook(lambda _m, _a, o, i=i: outs[i].append(pick(o).detach().clone()))
             for i, m in enumerate(modules)]
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
    back = lambda t: t.reshape(B, T, *t.shape[1:]).transpose(0, 1).numpy()  # noqa: E731
    return [back(o) for o in outs], back(y)


def run_norse(graph, x: np.ndarray, dt: float = 1.0) -> tuple[list[np.ndarray], np.ndarray]:
    peer("norse")
    import norse.torch as nt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = nt.from_nir(graph, dt=dt)
    mods = [m for m in net.modules() if type(m).__name__ in ("IAFCell", "LIFBoxCell", "LIBoxCell")]
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
    mods = [m for m in net.modules() if isinstance(m, snn.Leaky)]  # fresh: zero membranes
    outs, _ = _hooked(mods, lambda o: o[0] if isinstance(o, tuple) else o)
    ys = []
    with torch.no_grad():
        for x_t in torch.from_numpy(x):
            y, _ = net(x_t)
            ys.append(y)
    return _stack(outs), torch.stack(ys).numpy()


RUNNERS = {"sinabs": run_sinabs, "snntorch": run_snntorch, "norse": run_norse}
