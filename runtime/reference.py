"""A numpy reference evaluator of an exported model, for cross-checking onnxruntime.

Standard ops run on :class:`onnx.reference.ReferenceEvaluator`; the ``snn`` nodes run
the registry's numpy step of their kind (:func:`runtime.neuron.step`), built from the
node's own attributes, not from the
function bodies in the file. That matters twice: the bodies are what onnxruntime runs
(so using them here would check nothing), and ReferenceEvaluator ignores ``overload``,
so with several variants of one op it would pick a wrong body.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from .neuron import kinds, step
from .neuron.functions import spec_from_attributes
from .protocol import SNN_DOMAIN, Protocol


class _Neuron(OpRun):
    """One ``snn::<kind>`` node: ``(current, *state) -> (out, *state)``."""

    op_domain = SNN_DOMAIN

    def _run(self, current, *state, **attrs):
        spec = spec_from_attributes(type(self).__name__, attrs)
        out, new = step(spec, state, current)
        return (out, *new)


# ReferenceEvaluator matches a node's op_type by class name; attributes arrive as keywords
NEURON_OPS = [type(k, (_Neuron,), {}) for k in kinds()]


class Reference:
    """Steps the graph with numpy; same call shape as a single onnxruntime step."""

    def __init__(self, model: onnx.ModelProto, protocol: Protocol):
        m = onnx.ModelProto()
        m.CopyFrom(model)
        del m.functions[:]  # the snn nodes must resolve to the numpy ops, never to the bodies
        self.protocol = protocol
        self.evaluator = ReferenceEvaluator(m, new_ops=NEURON_OPS)

    def run(self, frames: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """For frames ``[T, B, *shape]``: ``y`` of every step ``[T, B, classes]`` and the
        total spikes per sample ``[B]`` of each spiking neuron node."""
        p = self.protocol
        spiking = {n.node for n in p.neurons if n.spec.spiking}
        outs = {n.name: n.output[0] for n in self.evaluator.proto_.graph.node if n.name in spiking}
        states = {s.name: np.zeros((frames.shape[1], *s.shape), np.float32) for s in p.states}
        spikes = {name: np.zeros(frames.shape[1]) for name in outs}
        ys = []
        for t, x in enumerate(frames):
            feed = {"x": x, **states}
            if p.uses_t:
                feed["t"] = np.array(t, np.int64)
            # onnx types run() as a list; intermediate=True returns a dict by output name
            values = cast(dict[str, np.ndarray], self.evaluator.run(None, feed, intermediate=True))
            ys.append(values["y"])
            states = {s.name: values[f"{s.name}_out"] for s in p.states}
            for name, out in outs.items():
                spikes[name] += values[out].reshape(len(x), -1).sum(1)
        return np.stack(ys), spikes
