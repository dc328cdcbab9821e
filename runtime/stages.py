"""Multi-rate files (``flexsnn-onnx/3`` ``stages``): each stage at its own T (MTT appendix A.8).

The file is one ordinary step graph (any onnxruntime user can still run it at one T for
all stages); its metadata names each stage's T and the tensor where it begins. Here it is
cut, in memory, into one step model per stage (:func:`stage_models`), and
:func:`schedule` orders their steps in a streaming schedule: a stage's step runs as soon
as the outputs it consumes exist, so a stage consumes its predecessor's outputs group by
group and the readout (and any early exit) follows the last stage's steps.

Between stages the temporal transformation module (TTM) regroups ``n`` outputs into ``m``
inputs by the grouping rule of :mod:`runtime.grouping` (the one :func:`trainer.temporal.transform`
uses): fewer steps sum the outputs of each group, more steps replicate output g into
every step of group g. :func:`sources` says which outputs feed one step; its input is their sum.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Iterator

import numpy as np
import onnx
from onnx.utils import Extractor

from .grouping import group_bounds
from .protocol import ModelError, Protocol
from .split import with_value_info

# A step of the schedule: (stage, step, the previous stage's steps whose outputs it sums).
Step = tuple[int, int, range]


def sources(n: int, m: int, j: int) -> range:
    """The steps of a stage running ``n`` steps whose outputs form input step ``j`` of the
    next stage running ``m`` (summed; one step when ``m > n``: replicated)."""
    if m <= n:  # down-sampling (or the identity): group j of the n outputs, summed
        b = group_bounds(n, m)
        return range(b[j], b[j + 1])
    g = bisect.bisect_right(group_bounds(m, n), j) - 1  # up-sampling: the group j lies in
    return range(g, g + 1)


def schedule(Ts: tuple[int, ...] | list[int]) -> list[Step]:
    """Every step of every stage in the streaming order: after each step of the first stage
    (input step j), each later stage runs every step whose inputs are complete."""
    done = [0] * len(Ts)
    order: list[Step] = []
    for j in range(Ts[0]):
        order.append((0, j, range(j, j + 1)))
        done[0] += 1
        for i in range(1, len(Ts)):
            while done[i] < Ts[i] and (src := sources(Ts[i - 1], Ts[i], done[i])).stop <= done[i - 1]:
                order.append((i, done[i], src))
                done[i] += 1
    return order


def _rename(model: onnx.ModelProto, old: str, new: str) -> None:
    """Rename the tensor ``old`` to ``new`` everywhere in ``model``'s graph."""
    g = model.graph
    for node in g.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for v in (*g.input, *g.output, *g.value_info):
        if v.name == old:
            v.name = new


def stage_models(model: onnx.ModelProto, proto: Protocol) -> list[tuple[onnx.ModelProto, Protocol]]:
    """One step model ``(x, its states) -> (y, its states)`` per stage, with its protocol
    (its input, states and neurons; ``output_shape`` its boundary tensor's shape)."""
    stages = proto.stages
    ex = Extractor(with_value_info(model, [st.input for st in stages]))
    out = []
    for i, st in enumerate(stages):
        last = i + 1 == len(stages)
        dst = "y" if last else stages[i + 1].input
        sub = ex.extract_model([st.input, *st.states], [dst, *(f"{s}_out" for s in st.states)])
        given = {st.input, *st.states} | {t.name for t in sub.graph.initializer}
        made = given | {o for node in sub.graph.node for o in node.output}
        if not {t for node in sub.graph.node for t in node.input if t} <= made:
            raise ModelError(f"stage {i} of the graph reads tensors other than {st.input!r} and its own states")
        _rename(sub, st.input, "x")
        _rename(sub, dst, "y")
        own = set(st.states)
        nodes = {n.name for n in sub.graph.node}
        p = dataclasses.replace(
            proto,
            input_shape=st.shape,
            # a later stage reads spike counts (summed by the TTM), not a dense image: its
            # first synaptic layer costs accumulates per spike (runtime.cost), as in the graph
            input_kind=proto.input_kind if i == 0 else "event-frames",
            states=tuple(s for s in proto.states if s.name in own),
            neurons=tuple(n for n in proto.neurons if n.node in nodes),
            stages=(),
            exit_policy=None,
            exit_record=None,
            output_shape=None if last else stages[i + 1].shape,
        )
        out.append((sub, p))
    return out


class Stream:
    """Run :func:`schedule`: stage 0's step j reads ``first(j)``, a later stage's step the
    sum (in step order, as :func:`trainer.temporal.transform` adds) of the outputs that
    :func:`sources` names; ``step(i, j, x)`` runs one step and returns its output (a
    buffer it may overwrite later: copied while still needed). Iterating yields
    ``(i, j, x)`` after each step; a caller that stops iterating (every sample exited)
    stops the schedule, and one that drops finished samples from the batch calls
    :meth:`keep` (the outputs waiting for a later stage hold a row per sample too)."""

    def __init__(
        self,
        Ts: tuple[int, ...] | list[int],
        first: Callable[[int], np.ndarray],
        step: Callable[[int, int, np.ndarray], np.ndarray],
    ):
        self.Ts, self.first, self.step = Ts, first, step
        self._outs: list[dict[int, np.ndarray]] = [{} for _ in Ts]

    def keep(self, rows: np.ndarray) -> None:
        """Only the rows ``rows`` go on, in that order (session ``_Rows.compact``)."""
        for outs in self._outs:
            for k in outs:
                outs[k] = outs[k][rows]

    def __iter__(self) -> Iterator[tuple[int, int, np.ndarray]]:
        outs = self._outs
        for i, j, src in schedule(self.Ts):
            if i == 0:
                x = self.first(j)
            else:
                prev = outs[i - 1]
                x = prev[src.start].copy()
                for k in src[1:]:
                    x += prev[k]
                for k in [k for k in prev if k < src.start]:  # no later step reads them
                    del prev[k]
            y = self.step(i, j, x)
            if i + 1 < len(self.Ts):
                outs[i][j] = y.copy()
            yield i, j, x
