"""NIR import: a NIR graph written by snnTorch, norse, sinabs, nir itself or this product
becomes the product's network (a :class:`SpikingNet` of conv/linear/pool/flatten layers
and neuron layers), which the ONNX writer turns into the one-step ONNX file.

A NIR neuron node is a continuous-time ODE; the discrete neuron it becomes depends on
how the source framework discretises it (:data:`runtime.neuron.nir.CONVENTIONS`). The
importer therefore needs the source (given, or detected from the marks each writer
leaves: :func:`detect_source`) and, where the convention takes one, the step duration
``dt``; it states both. Where a convention scales a neuron's input (forward Euler: ``dt / tau``), the
factor is folded into the weight layer before the neuron.

Supported: chains of Input, Conv2d, Affine, Linear, SumPool2d, AvgPool2d, Flatten, IF,
LIF, LI, Output. Anything else is refused with one line naming the node and this set.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from runtime.cliargs import MAX_SIDE
from runtime.errors import ModelError
from runtime.fileio import json_loads, not_a_file
from runtime.limits import check_memory
from runtime.neuron import kind_of
from runtime.neuron.nir import (
    CONVENTIONS,
    DT_DEFAULTS,
    FIRES_ABOVE,
    FIRES_ABOVE_NOTE,
    SNNTORCH_DT,
    SOURCES,
    NirNeuronError,
    import_warning,
    node_kinds,
    spec_from_metadata,
)
from runtime.protocol import Protocol, data_kind, parse_protocol, unfinished_note
from trainer.config import Config, DataConfig, MethodConfig, ModelConfig
from trainer.layers import Layer, NeuronLayer, Sequence, Stateless
from trainer.models import SpikingNet

from .errors import ExportError
from .protocol import KEY

SUPPORTED = ("Input", "Conv2d", "Affine", "Linear", "SumPool2d", "AvgPool2d", "Flatten", *node_kinds(), "Output")
# frameworks whose exporters put the sample's batch dim into the Input node
BATCHED_INPUT = ("snntorch", "norse")


@dataclass
class Imported:
    """The imported network and what the import assumed (printed by the CLI)."""

    cfg: Config
    model: SpikingNet
    source: str
    how: str  # how the source was known: --from, or what detected it
    dt: float | None
    convention: str
    notes: list[str]
    # (epochs done, epochs) when our own graph came from an unfinished run: its ONNX says so too
    unfinished: tuple[int, int] | None = None


def _array(v: Any) -> np.ndarray:
    return np.asarray(v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v)


def _pair(v: Any) -> tuple[int, int]:
    a = _array(v).astype(int).ravel()
    if a.size == 1:
        return int(a[0]), int(a[0])
    if a.size != 2:
        raise ExportError(f"expected one or two integers, got {a.tolist()}")
    return int(a[0]), int(a[1])


def _declared_bytes(path: Path) -> int:
    """What ``nir.read`` will allocate: the sizes the HDF5 datasets declare (a 148 KB file of
    gzip-compressed zeros declared a 4 GB weight and took 12 GB before any check); 0 for a
    file h5py cannot open (``nir.read`` then says what it is)."""
    import h5py

    sizes: list[int] = []

    def visit(_name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            sizes.append(int(obj.size) * obj.dtype.itemsize)

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except Exception:  # h5py raises many types for a file that is not HDF5
        return 0
    return sum(sizes)


def read_graph(path: str | Path):
    """The NIR graph in ``path``; a missing or foreign file is one clear error."""
    import nir

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"NIR file {path} {not_a_file(path)}")
    check_memory(_declared_bytes(path), f"reading {path} (its arrays' declared sizes)")
    try:
        graph = nir.read(path)
    except Exception as e:  # h5py/nir raise many types for a file that is not NIR
        raise ExportError(
            f"{path} is not a NIR file (nir.read: {type(e).__name__}: {e}); expected an HDF5 file written by nir.write"
        ) from None
    # NIR carries no digest: a NaN or infinite parameter (a damaged file, a diverged
    # training) is the one corruption that can be told from the numbers alone; an infinite
    # time constant is no leak (an IF written as LIF), not damage
    for name, node in graph.nodes.items():
        for key, value in vars(node).items():
            if not (isinstance(value, np.ndarray) and value.dtype.kind == "f"):
                continue
            wrong = np.isnan(value) if key.startswith("tau") else ~np.isfinite(value)
            if wrong.any():
                bad = int(wrong.sum())
                raise ExportError(
                    f"{path}: node {name!r} parameter {key!r} has {bad} NaN or infinite values; expected finite "
                    "numbers (a damaged file, or a model that diverged in training)"
                )
    return graph


def _flexsnn_meta(graph) -> Protocol:
    """The graph's flexsnn protocol, parsed as an ONNX file's is (a damaged one was a
    KeyError or RecursionError traceback)."""
    try:
        meta = json_loads(graph.metadata[KEY])
        if not isinstance(meta, dict):
            raise ModelError("expected a JSON object")
        return parse_protocol(meta)
    except (ModelError, ValueError) as e:
        raise ExportError(f"the graph's {KEY!r} metadata is not valid: {e}") from None


def detect_source(graph) -> tuple[str, str] | None:
    """``(source, how it was told)`` from what each writer leaves in the graph, or None.

    Only the writers' own marks count: our metadata; snnTorch's ``r = tau / 1e-4`` on
    every leaky node (its export convention); the sample's batch dim in the Input node
    (nirtorch without ``ignore_dims``: snnTorch and norse) with ``r = 1`` (norse); no batch
    dim, ``r = 1`` and ``tau`` of at least one step (sinabs). Anything else: None.
    """
    import nir

    if KEY in (graph.metadata or {}):
        return "flexsnn", "the graph's flexsnn metadata"
    nodes = list(graph.nodes.values())
    # (node, its membrane time constant) of the leaky neuron nodes
    leaky = [(n, n.tau) for n in nodes if isinstance(n, (nir.LIF, nir.LI))]
    leaky += [(n, n.tau_mem) for n in nodes if isinstance(n, nir.CubaLIF)]
    neurons = [n for n, _ in leaky] + [n for n in nodes if isinstance(n, nir.IF)]
    if not neurons or any(isinstance(n, nir.NIRGraph) for n in nodes):
        return None
    r_one = all(np.allclose(_array(n.r), 1.0) for n in neurons)
    if leaky and all(
        not np.allclose(_array(n.r), 1.0) and np.allclose(_array(n.r) * SNNTORCH_DT / _array(tau), 1.0)
        for n, tau in leaky
    ):
        return "snntorch", f"every leaky node has r = tau / {SNNTORCH_DT}, snnTorch's export convention"
    inputs = [n for n in nodes if isinstance(n, nir.Input)]
    shape = _array(next(iter(inputs[0].input_type.values()))).ravel() if len(inputs) == 1 else np.zeros(0)
    first = next((graph.nodes[b] for a, b in graph.edges if inputs and graph.nodes.get(a) is inputs[0]), None)
    wants = (
        3
        if isinstance(first, (nir.Conv2d, nir.SumPool2d, nir.AvgPool2d))
        else 1
        if isinstance(first, (nir.Affine, nir.Linear))
        else None
    )
    if wants is None or not r_one:
        return None
    if len(shape) == wants + 1 and shape[0] == 1:
        return "norse", "the Input node has the exporter's batch dim and every neuron has r = 1 (norse's export)"
    if len(shape) == wants and all(np.all(_array(tau) >= 1.0) for _, tau in leaky):
        return "sinabs", "no batch dim in the Input node, r = 1 and tau of at least one step (sinabs' export)"
    return None


def chain(graph) -> list[tuple[str, Any]]:
    """The nodes in execution order; refuses anything but one chain from Input to Output."""
    import nir

    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise ExportError(f"the graph has {len(inputs)} Input nodes; expected exactly one")
    succ: dict[str, list[str]] = {k: [] for k in graph.nodes}
    pred: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for a, b in dict.fromkeys(map(tuple, graph.edges)):  # snnTorch's export may repeat an edge
        if a not in graph.nodes or b not in graph.nodes:
            raise ExportError(f"edge ({a!r}, {b!r}) names a node the graph does not have")
        succ[a].append(b)
        pred[b].append(a)
    order, name = [], inputs[0]
    while True:
        node = graph.nodes[name]
        if isinstance(node, nir.NIRGraph) or type(node).__name__ not in SUPPORTED:
            raise ExportError(
                f"node {name!r} ({type(node).__name__}) cannot be imported; "
                f"supported nodes: {', '.join(SUPPORTED)} in a chain"
            )
        if len(pred[name]) != (0 if name == inputs[0] else 1):
            raise ExportError(
                f"node {name!r} has {len(pred[name])} inputs ({', '.join(map(repr, pred[name]))}); flexsnn imports "
                f"feed-forward chains, no recurrence or merge (the Input no input, each other node one): "
                f"{', '.join(SUPPORTED)}"
            )
        order.append((name, node))
        if isinstance(node, nir.Output):  # an edge from it lands on a chain node and is an extra input there
            break
        if len(succ[name]) != 1:
            raise ExportError(
                f"node {name!r} feeds {len(succ[name])} nodes; flexsnn imports chains "
                "(each node one output) ending in an Output node"
            )
        name = succ[name][0]
        if any(name == k for k, _ in order):
            raise ExportError(f"the graph has a cycle through node {name!r}; flexsnn imports feed-forward chains")
    if len(order) != len(graph.nodes):
        left = sorted(set(graph.nodes) - {k for k, _ in order})
        raise ExportError(f"nodes {left} are not on the chain from Input to Output")
    return order


def _input_shape(node, source: str, first) -> tuple[int, ...]:
    import nir

    shape = tuple(int(s) for s in _array(next(iter(node.input_type.values()))).ravel())
    wants = 3 if isinstance(first, (nir.Conv2d, nir.SumPool2d, nir.AvgPool2d)) else None
    if source in BATCHED_INPUT and len(shape) > 1 and shape[0] == 1 and (wants is None or len(shape) == wants + 1):
        shape = shape[1:]  # the exporter's sample batch
    if not shape or any(s <= 0 for s in shape):
        raise ExportError(f"the Input node's shape {list(shape)} is not a valid sample shape")
    if wants is not None and len(shape) != wants:  # was a ValueError traceback at the first conv's shape check
        batched = f"; a leading batch dim of 1 is the exporter's with --from {' or '.join(BATCHED_INPUT)}"
        raise ExportError(
            f"the Input node's shape {list(shape)} has {len(shape)} dimensions; its first node "
            f"({type(first).__name__}) takes [C, H, W]{batched if source not in BATCHED_INPUT else ''}"
        )
    if any(s > MAX_SIDE for s in shape):  # [2, 40000, 40000] allocated 13 GB before any check
        raise ExportError(f"the Input node's shape {list(shape)} has a side above {MAX_SIDE}, as no model takes")
    return shape


class _Layers:
    """Builds the layer list while a sample flows through it (to check every shape)."""

    def __init__(self, shape: tuple[int, ...]):
        self.layers: list[Layer] = []
        self.x = torch.zeros(1, *shape)

    def add(self, name: str, layer: Stateless | NeuronLayer) -> None:
        m = layer.module if isinstance(layer, Stateless) else None
        if isinstance(m, nn.Conv2d):  # its output, bounded before it is computed: channels x padded input
            ph, pw = _pair(m.padding)  # _weight built it from integers (string paddings are refused)
            h, w = self.x.shape[2:]
            check_memory(4 * m.out_channels * (h + 2 * ph) * (w + 2 * pw), f"node {name!r} on one sample")
        try:
            with torch.no_grad():
                y = layer.neuron(self.x, None)[0] if isinstance(layer, NeuronLayer) else layer.module(self.x)
        except RuntimeError as e:
            raise ExportError(
                f"node {name!r} does not fit its input of shape {list(self.x.shape[1:])}: {str(e).splitlines()[0]}"
            ) from None
        self.layers.append(layer)
        self.x = y

    def scale_input(self, name: str, gain: float) -> None:
        """Fold a neuron's input factor into the weight layer just before it."""
        prev = self.layers[-1] if self.layers else None
        if not (isinstance(prev, Stateless) and isinstance(prev.module, (nn.Conv2d, nn.Linear))):
            raise ExportError(
                f"neuron node {name!r} scales its input by {gain:g} under this convention, and "
                "flexsnn folds that into a Conv2d/Affine/Linear right before it; there is none"
            )
        with torch.no_grad():
            prev.module.weight.mul_(gain)
            if prev.module.bias is not None:
                prev.module.bias.mul_(gain)


def _weight(name: str, node) -> nn.Conv2d | nn.Linear:
    import nir

    w = torch.from_numpy(_array(node.weight).astype(np.float32))
    if isinstance(node, nir.Conv2d):
        if w.dim() != 4:
            raise ExportError(f"Conv2d node {name!r} has a {w.dim()}-D weight; expected [out, in/groups, kh, kw]")
        if isinstance(node.padding, str):
            raise ExportError(f"Conv2d node {name!r} has padding {node.padding!r}; expected integers")
        groups = int(node.groups)
        try:  # torch's own checks name the field (groups 0 was its ValueError traceback)
            m: nn.Conv2d | nn.Linear = nn.Conv2d(
                w.shape[1] * groups,
                w.shape[0],
                (w.shape[2], w.shape[3]),
                _pair(node.stride),
                _pair(node.padding),
                _pair(node.dilation),
                groups,
            )
        except ValueError as e:
            raise ExportError(f"Conv2d node {name!r}: {e}") from None
    else:
        if w.dim() != 2:
            raise ExportError(f"{type(node).__name__} node {name!r} has a {w.dim()}-D weight; expected [out, in]")
        m = nn.Linear(w.shape[1], w.shape[0], bias=isinstance(node, nir.Affine))
    with torch.no_grad():
        m.weight.copy_(w)
        if m.bias is not None:
            b = torch.from_numpy(_array(node.bias).astype(np.float32)).reshape(-1)
            if b.shape != m.bias.shape:
                raise ExportError(f"node {name!r} has {b.numel()} biases for {m.bias.numel()} outputs")
            m.bias.copy_(b)
    return m


def _pool_conv(node) -> nn.Module | None:
    """The average pool a Conv2d is (our export's pooling form: identity across channels,
    ``1 / k`` everywhere in the window, stride = window, no padding or bias), else None."""
    w, b = _array(node.weight), _array(node.bias)
    if w.ndim != 4 or w.shape[0] != w.shape[1] or int(node.groups) != 1 or np.any(b != 0):
        return None
    k = tuple(w.shape[2:])
    eye = np.eye(w.shape[0], dtype=np.float32)[:, :, None, None] * np.float32(1.0 / np.prod(k))
    if (
        _pair(node.stride) != k
        or _pair(node.padding) != (0, 0)
        or _pair(node.dilation) != (1, 1)
        or not np.array_equal(w, np.broadcast_to(eye, w.shape))
    ):
        return None
    return nn.AvgPool2d(k)


def _sum_pool(node, channels: int) -> nn.Module:
    """A sum pool as a conv with an identity-across-channels kernel of ones (exact)."""
    k, s, p = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
    m = nn.Conv2d(channels, channels, k, s, p, bias=False)
    with torch.no_grad():
        m.weight.zero_()
        m.weight[torch.arange(channels), torch.arange(channels)] = 1.0
    return m


def _folds_into_next(order: list[tuple[str, Any]], i: int, pool) -> bool:
    """Whether the sum pool at ``order[i]`` can be an average pool whose window area is
    multiplied into the next weight layer, exactly: a power-of-two area, no padding, and
    only Flatten or other such pools before a Conv2d/Affine/Linear (not our pooling conv)."""
    import nir

    area = int(np.prod(_pair(pool.kernel_size)))
    if area & (area - 1) or _pair(pool.padding) != (0, 0):
        return False
    for _, node in order[i + 1 :]:
        if isinstance(node, (nir.Affine, nir.Linear)) or isinstance(node, nir.Conv2d) and _pool_conv(node) is None:
            return True
        if not isinstance(node, (nir.Flatten, nir.SumPool2d)):
            return False
    return False


def _flatten(node) -> nn.Module:
    # NIR dims exclude the batch dim: shift non-negative ones past it
    start, end = int(node.start_dim), int(node.end_dim)
    return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)


def _neuron(name: str, node, source: str, dt_s: float, step_us: float | None) -> tuple[NeuronLayer, float]:
    """The neuron layer of a NIR neuron node and the gain its input takes; ``step_us``: the
    µs of one input frame, which becomes the neuron's ``dt`` (event input)."""
    kind = type(node).__name__
    try:
        if source == "flexsnn":
            spec = spec_from_metadata(node.metadata or {})
            if spec is None:
                raise NirNeuronError("has no flexsnn metadata although the graph does")
            return NeuronLayer(spec if step_us is None else dataclasses.replace(spec, dt=step_us)), 1.0
        neuron = kind_of(kind)
        spec, gain = neuron.from_nir({p: _array(getattr(node, p)) for p in neuron.nir_params}, source, dt_s)
    except NirNeuronError as e:
        raise ExportError(f"{kind} node {name!r}: {e}") from None
    return NeuronLayer(spec if step_us is None else dataclasses.replace(spec, dt=step_us)), gain


def _config(
    meta: Protocol | None,
    name: str,
    in_shape: tuple[int, ...],
    n_out: int,
    readout: str,
    T: int | None,
    window_us: float | None,
) -> Config:
    """The config the ONNX protocol is written from: our own graph's protocol as it was
    exported (input kind, binning, T range, classes); for a foreign graph static input
    repeated per step, or event frames of ``window_us`` recordings, T = ``T`` (10)."""
    if meta is not None:
        tmin, tmax = meta.T_range
        method = MethodConfig(name="sdt", T=tmax) if tmin == tmax else MethodConfig(name="mtt", tmin=tmin, tmax=tmax)
        if T is not None:
            method = MethodConfig(name="sdt", T=T)
        else:  # the T its BatchNorm statistics fit: the file's default T, as in the original ONNX
            method.bn_T = meta.bn_calibration_T
        data = DataConfig(  # the data it was trained on, so that runs find it as with the original file
            spec=meta.data or name,
            kind=data_kind(meta.input_kind),  # a sequence model stays one (it read as static)
            shape=in_shape,
            classes=list(meta.classes),
            binning=meta.binning or "equal",
            duration_us=float(meta.duration_us or 0.0),
            durations=meta.durations or "dataset",
            transforms=[dict(t) for t in meta.transforms],
            sensor=meta.sensor,
            train_split=meta.train_split or "train",
        )
        name, classes = meta.model, meta.classes
        if len(classes) != n_out:
            raise ExportError(f"the graph's metadata names {len(classes)} classes for {n_out} outputs")
    else:
        method = MethodConfig(name="sdt", T=10 if T is None else T)
        data = DataConfig(
            spec=name,
            kind="static" if window_us is None else "events",
            shape=in_shape,
            classes=[str(c) for c in range(n_out)],
            duration_us=float(window_us or 0.0),
        )
    return (
        Config(
            ModelConfig(name=name, stages=1, bn=False, readout=readout, num_classes=n_out, in_shape=in_shape),
            data=data,
            method=method,
        )
        .with_step_dt()
        .validate()
    )


def _retimed(meta: Protocol | None, T: int | None) -> tuple[float, float] | None:
    """Our own graph run at another ``T`` than it was trained at, on event input: its step
    now (the recording in T bins) and the step it was trained with, both µs; else None."""
    if meta is None or T is None or T == meta.T_trained or not meta.dt_us or meta.duration_us is None:
        return None
    if meta.binning == "fixed":  # at any T, bins of the trained width (MTT A.2's first T)
        return None
    return meta.duration_us / T, meta.dt_us


def build(
    graph,
    source: str | None = None,
    dt: float | None = None,
    T: int | None = None,
    name: str = "nir",
    window_us: float | None = None,
) -> Imported:
    """The product's network for ``graph`` (see the module docstring)."""
    import nir

    found = detect_source(graph)
    how = "--from"
    if source is None:
        if found is None:
            raise ExportError(
                "the NIR graph does not show which framework wrote it; pass --from, one of "
                f"{', '.join(s for s in SOURCES if s != 'flexsnn')} (each discretises NIR neurons "
                "its own way)"
            )
        source, how = found[0], f"detected: {found[1]}; --from overrides"
    if source not in SOURCES:
        raise ExportError(f"source {source!r} is unknown; expected one of {list(SOURCES)}")
    if source == "flexsnn" and (found is None or found[0] != "flexsnn"):
        raise ExportError("--from flexsnn needs a graph written by flexsnn export (its metadata is missing)")
    if dt is not None and source not in DT_DEFAULTS:
        fixed = {
            "sinabs": "sinabs reads tau in steps",
            "snntorch": f"snnTorch fixes dt = {SNNTORCH_DT * 1e6:g} µs",
            "flexsnn": "the graph's metadata has every neuron's dt",
        }[source]
        raise ExportError(f"--dt-us does not apply to source {source!r}: {fixed}")
    if source in DT_DEFAULTS:
        dt = DT_DEFAULTS[source] if dt is None else dt
        if dt is None:
            raise ExportError(f"source {source!r} needs --dt-us (µs per step): a NIR ODE has no step of its own")
        if not (dt > 0 and math.isfinite(dt)):
            raise ExportError(f"dt must be a finite number of seconds > 0, got {dt}")
    if T is not None and T <= 0:
        raise ExportError(f"--T must be a positive integer, got {T}")
    if window_us is not None and source == "flexsnn":
        raise ExportError(
            "--window-us applies to a foreign graph: this one was written by flexsnn export and keeps the "
            "input stored in its metadata; leave it out"
        )
    if window_us is not None and not (window_us > 0 and math.isfinite(window_us)):
        raise ExportError(f"--window-us takes a foreign graph's window (one sample) in µs, > 0; got {window_us}")
    # event input: a step is one frame of the recording, and the event-driven engine leaks
    # each neuron by its decay per that many µs (a foreign spec's dt is the source's step;
    # our own graph at another T: its recording in T bins, each neuron's decay per step kept)
    meta = _flexsnn_meta(graph) if source == "flexsnn" else None
    step_us = None if window_us is None else window_us / (10 if T is None else T)
    retimed = _retimed(meta, T)
    if retimed is not None:
        step_us = retimed[0]
    order = chain(graph)
    if len(order) < 3:
        raise ExportError("the graph has no node between Input and Output")
    in_shape = _input_shape(order[0][1], source, order[1][1])
    net = _Layers(in_shape)
    owed = 1.0  # a sum pool's window area, owed to the next weight layer
    for i, (key, node) in enumerate(order[1:-1], start=1):
        if isinstance(node, nir.Conv2d) and (pool := _pool_conv(node)) is not None:
            net.add(key, Stateless(pool))
        elif isinstance(node, (nir.Conv2d, nir.Affine, nir.Linear)):
            synapse = _weight(key, node)
            with torch.no_grad():
                synapse.weight.mul_(owed)
            owed = 1.0
            net.add(key, Stateless(synapse))
        elif isinstance(node, nir.SumPool2d):
            if net.x.dim() != 4:
                raise ExportError(f"SumPool2d node {key!r} needs a [C, H, W] input, got {list(net.x.shape[1:])}")
            if _folds_into_next(order, i, node):  # an average pool, as Speck and our export see it
                area = int(np.prod(_pair(node.kernel_size)))
                net.add(key, Stateless(nn.AvgPool2d(_pair(node.kernel_size), _pair(node.stride), _pair(node.padding))))
                owed *= area
            else:
                net.add(key, Stateless(_sum_pool(node, net.x.shape[1])))
        elif isinstance(node, nir.AvgPool2d):
            net.add(key, Stateless(nn.AvgPool2d(_pair(node.kernel_size), _pair(node.stride), _pair(node.padding))))
        elif isinstance(node, nir.Flatten):
            net.add(key, Stateless(_flatten(node)))
        else:
            layer, gain = _neuron(key, node, source, dt or 0.0, step_us)
            if gain != 1.0:
                net.scale_input(key, gain)
            net.add(key, layer)
    notes = []
    last = net.layers[-1]
    if net.x.dim() != 2:  # e.g. a conv-only net (norse exports no Flatten): scores as a vector
        notes.append(f"the output of shape {list(net.x.shape[1:])} is flattened to a vector of class scores")
        net.add("output", Stateless(nn.Flatten()))
    readout = "li" if isinstance(last, NeuronLayer) and not last.spec.spiking else "mean"
    model = SpikingNet([Sequence(net.layers)], readout).eval()
    n_out = int(net.x.shape[1])
    if retimed is not None:
        step_us, trained_us = retimed
        notes.append(
            f"--T {T}: a step is one bin of {step_us:g} µs of the recording (trained: {trained_us:g} "
            "µs); each neuron keeps its decay per step, so its time constants in µs (the event engine's) scale "
            f"by {step_us / trained_us:g}"
        )
    cfg = _config(meta, name, in_shape, n_out, readout, T, window_us)
    source_us = SNNTORCH_DT * 1e6 if source == "snntorch" else None if dt is None else dt * 1e6
    if step_us is not None and source_us is not None and not math.isclose(source_us, step_us):
        notes.append(
            f"{source} discretised the neurons at {source_us:g} µs per step; a step here is one input frame "
            f"of {step_us:g} µs (--window-us / T), the time the event-driven engine's leak follows"
        )
    if source in FIRES_ABOVE:
        notes.append(f"{source} {FIRES_ABOVE_NOTE}")
    unfinished = meta.unfinished if meta is not None else None
    return Imported(cfg, model, source, how, dt, CONVENTIONS[source], notes, unfinished)


def import_nir(
    path: str | Path,
    out: str | Path,
    source: str | None = None,
    dt: float | None = None,
    T: int | None = None,
    window_us: float | None = None,
) -> tuple[Imported, Path]:
    """Read the NIR file ``path`` and write its one-step ONNX file ``out``."""
    from .onnx_export import export_onnx

    path, out = Path(path), Path(out)
    if out.resolve() == path.resolve():
        raise ExportError(f"output {out} is the input file; choose another -o")
    imported = build(read_graph(path), source, dt, T, name=f"nir:{path.name}", window_us=window_us)
    return imported, export_onnx(imported.cfg, imported.model, out, unfinished=imported.unfinished)


def describe(imported: Imported) -> dict[str, Any]:
    """What the import assumed, as JSON-safe data (for the CLI and the report)."""
    return {
        "source": imported.source,
        "source_from": imported.how,
        "dt_us": None if imported.dt is None else imported.dt * 1e6,  # as --dt-us gives it
        "convention": imported.convention,
        "notes": imported.notes,
        "warnings": [
            w for w in [import_warning(imported.source), unfinished_note("the graph", imported.unfinished)] if w
        ],
        "neurons": [layer.spec.to_dict() for layer in imported.model.modules() if isinstance(layer, NeuronLayer)],
    }
