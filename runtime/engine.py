"""onnxruntime execution of one time step, with the fastest settings measured (DESIGN.md §5).

* graph optimisation level ALL; one intra-op thread at batch 1 (thread hand-off costs
  more than it saves on a single sample), all cores for larger batches;
* IOBinding over preallocated numpy buffers, with TWO sets of state buffers: step t
  reads set A and writes set B, step t+1 reads B and writes A, so no state is copied
  and no binding changes between steps;
* the batch may shrink (early exit): :meth:`Stepper.keep` compacts the states of the
  samples that go on and rebinds once.

Spike counts need the neuron outputs, which are not graph outputs. :func:`with_outputs`
adds them to an in-memory copy of the model; that variant runs only when counts are
asked for (extra outputs can block fusions and cost copies).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort

from .protocol import ModelError, Protocol


def with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs the values ``names`` (float32, shape unknown)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in names:
        if name not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return m


def make_session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    """``threads`` 0 lets onnxruntime use all cores."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # warnings about unused initializers are noise here
    try:
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelError(f"onnxruntime cannot load the model: {str(e).splitlines()[0][:300]}") from None


def threads_for(batch: int, requested: int | None) -> int:
    if requested is not None:
        return requested
    return 1 if batch <= 1 else 0


class RowBuffers:
    """Whole-batch buffers allocated once, shared by the steppers: a shrunk batch runs on
    their first rows (C-order prefixes are contiguous), so compaction allocates nothing.

    A stepper binds views of the first ``batch`` rows to a runner in ``_bind`` and names
    its state buffers in ``_state_rows``; ``keep`` and ``regrow`` are the same for all."""

    _full_x: np.ndarray
    x: np.ndarray

    @property
    def batch(self) -> int:
        return self.x.shape[0]

    def _bind(self, runner: object, batch: int) -> None:
        raise NotImplementedError

    def _state_rows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(whole-batch buffer, view of the rows in use) of every state."""
        raise NotImplementedError

    def regrow(self, runner: object) -> None:
        """Back to the whole batch it was made for (after :meth:`keep`), on ``runner``."""
        self._bind(runner, len(self._full_x))

    def keep(self, order: np.ndarray, runner: object) -> None:
        """Only the rows ``order`` go on, row ``order[i]`` as row ``i`` (possibly on another
        runner; ``order[i] == i`` except where a row from beyond the new batch fills a
        finished row's place, session ``_Rows.compact``): only the states of the rows that
        move are copied (from rows past the new batch into rows before it: no overlap)."""
        n = len(order)
        moved = np.flatnonzero(order != np.arange(n))
        if moved.size:
            src = order[moved]
            for full, s in self._state_rows():
                full[moved] = s[src]
        self._bind(runner, n)


class Stepper(RowBuffers):
    """Steps one onnxruntime session over a batch, keeping the states between steps.

    ``extra`` names the additional outputs (neuron outputs) and ``extra_shapes`` their
    per-sample shapes; after :meth:`step`, :attr:`y` and :attr:`extra` hold this step's
    values (views into buffers that the next step overwrites).
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        proto: Protocol,
        batch: int,
        extra: Sequence[str] = (),
        extra_shapes: Sequence[tuple[int, ...]] = (),
    ):
        self.proto = proto
        self.names = list(extra)
        self._full_x = np.zeros((batch, *proto.input_shape), np.float32)
        self._full_y = np.zeros((batch, *proto.y_shape), np.float32)
        self._full_extra = [np.zeros((batch, *s), np.float32) for s in extra_shapes]
        self._full_sets = [[np.zeros((batch, *s.shape), np.float32) for s in proto.states] for _ in range(2)]
        self._p = 0
        self._bind(session, batch)

    @property
    def states(self) -> list[np.ndarray]:
        return self._sets[self._p]

    def _state_rows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return list(zip(self._full_sets[self._p], self.states))

    def _bind(self, runner: object, batch: int) -> None:
        p = self.proto
        assert isinstance(runner, ort.InferenceSession)
        self.session = session = runner
        self.x = self._full_x[:batch]
        self.t = np.zeros((), np.int64)
        self.y = self._full_y[:batch]
        # a neuron whose output is the graph's y (a stage of a multi-rate file that ends in a
        # neuron layer) shares y's buffer: one tensor is bound once
        self.extra = [self.y if name == "y" else a[:batch] for name, a in zip(self.names, self._full_extra)]
        self._sets = [[a[:batch] for a in full] for full in self._full_sets]
        self._io = []
        ov = ort.OrtValue.ortvalue_from_numpy
        for src, dst in ((0, 1), (1, 0)):
            io = session.io_binding()
            io.bind_ortvalue_input("x", ov(self.x))
            if p.uses_t:
                io.bind_ortvalue_input("t", ov(self.t))
            for s, a, b in zip(p.states, self._sets[src], self._sets[dst]):
                io.bind_ortvalue_input(s.name, ov(a))
                io.bind_ortvalue_output(f"{s.name}_out", ov(b))
            io.bind_ortvalue_output("y", ov(self.y))
            for name, buf in zip(self.names, self.extra):
                if name != "y":
                    io.bind_ortvalue_output(name, ov(buf))
            self._io.append(io)

    def step(self, x: np.ndarray, t: int) -> None:
        """Run step ``t`` (0-based) on input ``x`` ``[batch, *input_shape]``."""
        np.copyto(self.x, x)
        self.t[...] = t
        try:
            self.session.run_with_iobinding(self._io[self._p])
        except Exception as e:  # onnxruntime's own error types: the file disagrees with itself
            raise ModelError(f"onnxruntime failed to run a step: {str(e).splitlines()[0][:300]}") from None
        self._p ^= 1

    def reset(self) -> None:
        """Back to the zero state (t = 0): the buffers and bindings are kept for the next run."""
        for s in self.states:
            s.fill(0.0)
