"""The torch side of ``python -m runtime bench --checkpoint``: a checkpoint's model stepped
three ways, each a :class:`runtime.bench.Loop` over the same inputs as the runtime.

* ``torch model.step``: the project's module (``SpikingNet.step``), no autograd;
* ``torch plain step``: what a careful torch user writes for inference: BatchNorm folded
  into the conv before it (``torch.nn.utils.fusion.fuse_conv_bn_eval``), the modules
  called in a flat loop and the neurons by their exact rule (:func:`neuron_step` without
  the surrogate's autograd function), so the baseline is not slowed by training scaffolding;
* ``torch.compile``: the plain step compiled (inductor), when it compiles here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from runtime.bench import Loop
from runtime.errors import InputError
from runtime.neuron import NeuronSpec

from .checkpoint import load_checkpoint
from .layers import NeuronLayer, Sequence, Stateless, States
from .models import Net
from .neurons import Neuron, neuron_step, zero_state

Step = Callable[[torch.Tensor, States], tuple[torch.Tensor, States]]


class NotPlain(ValueError):
    """A model family the plain step does not cover (residual blocks, T-RevNet)."""


def _flat(layers: Iterable[nn.Module]) -> Iterator[nn.Module]:
    for layer in layers:
        if isinstance(layer, Sequence):
            yield from _flat(layer.layers)
        else:
            yield layer


def plain_ops(model: Net) -> list[nn.Module | NeuronSpec]:
    """The model as a flat list of stateless modules and neuron specs, BatchNorm folded."""
    ops: list[nn.Module | NeuronSpec] = []
    for layer in _flat(model.stages):
        if isinstance(layer, NeuronLayer):
            ops.append(layer.spec)
        elif not isinstance(layer, Stateless):
            raise NotPlain(f"a layer is a {type(layer).__name__}")
        elif isinstance(layer.module, nn.BatchNorm2d) and ops and isinstance(ops[-1], nn.Conv2d):
            ops[-1] = nn.utils.fusion.fuse_conv_bn_eval(ops[-1], layer.module)
        else:
            ops.append(layer.module)
    return ops


def plain_step(model: Net) -> Step:
    """One step of the plain form; ``states`` None entries start at zero."""
    ops = plain_ops(model)

    def step(x: torch.Tensor, states: States) -> tuple[torch.Tensor, States]:
        new: States = []
        for op in ops:
            if isinstance(op, NeuronSpec):
                k = op.n_states
                given = states[len(new) : len(new) + k]
                prev = zero_state(op, x) if given[0] is None else tuple(s for s in given if s is not None)
                x, s = neuron_step(op, prev, x)
                new += list(s)
            else:
                x = op(x)
        return x, new

    return step


TimedStep = Callable[[torch.Tensor, int, States], tuple[torch.Tensor, States]]


def _loop(step: TimedStep, n_states: int, x: torch.Tensor, frames: bool, steps: int, threads: int) -> Loop:
    def prepare() -> None:
        torch.set_num_threads(threads)

    def run() -> None:
        states: States = [None] * n_states
        with torch.inference_mode():
            for t in range(steps):
                _, states = step(x[t] if frames else x, t, states)

    return Loop(prepare, run)


def _spec_keys(specs: Iterable[NeuronSpec]) -> set[str]:
    """The distinct neurons (a T-RevSNN's sub-networks repeat the file's layers)."""
    return {json.dumps(s.to_dict(), sort_keys=True) for s in specs}


def torch_loops(
    checkpoint: str,
    x: np.ndarray,
    frames: bool,
    steps: int,
    threads: int,
    compile_step: bool = True,
    num_classes: int | None = None,
    neurons: Iterable[NeuronSpec] | None = None,
) -> tuple[dict[str, Loop], dict[str, str]]:
    """The torch systems that run here, and why the others do not; a checkpoint whose
    input, class count or neurons are not the runtime model's (``x``, ``num_classes``,
    ``neurons``) is refused."""
    cfg, model, _ = load_checkpoint(checkpoint)
    shape, want = tuple(cfg.model.in_shape), tuple(x.shape[-len(cfg.model.in_shape) :])
    if shape != want or (num_classes is not None and cfg.model.num_classes != num_classes):
        raise InputError(
            f"--checkpoint {checkpoint} is a model of input {list(shape)} and {cfg.model.num_classes} classes; "
            f"the ONNX model takes {list(want)} and gives {num_classes}: give the checkpoint it was exported from"
        )
    mine = [m.spec for m in model.modules() if isinstance(m, Neuron)]  # every family (a T-RevSNN has no NeuronLayer)
    if neurons is not None and _spec_keys(mine) != _spec_keys(neurons):  # e.g. an IF model beside a LIF file
        kinds = lambda specs: ", ".join(sorted({s.kind for s in specs}))
        raise InputError(
            f"--checkpoint {checkpoint} has other neurons than the ONNX model ({kinds(mine)} against "
            f"{kinds(neurons)}, or other fields): give the checkpoint it was exported from"
        )
    model.eval()
    xt = torch.from_numpy(x)
    # the model's own step, told the step index (a T-RevSNN runs sub-network t at step t)
    loops = {"torch model.step": _loop(model.step, model.n_states, xt, frames, steps, threads)}
    missing: dict[str, str] = {}
    try:
        with torch.no_grad():
            plain = plain_step(model)
    except NotPlain as e:
        missing["torch plain step"] = missing["torch.compile"] = f"no plain step for this model: {e}"
        return loops, missing
    loops["torch plain step"] = _loop(lambda x_t, t, s: plain(x_t, s), model.n_states, xt, frames, steps, threads)
    if not compile_step:
        missing["torch.compile"] = "not asked (--no-compile)"
        return loops, missing
    # a fresh compile per batch size: dynamo keys its graphs by the step's code, and past
    # its recompile limit (8: the 5th batch size) it ran the step eagerly, still labelled
    # torch.compile; the batch sizes before are timed and done
    torch._dynamo.reset()
    compiled = torch.compile(plain, dynamic=False)
    compiled_step: TimedStep = lambda x_t, t, s: compiled(x_t, s)
    try:  # compile now (two graphs: the zero state, then the carried one) so a failure is reported
        _loop(compiled_step, model.n_states, xt, frames, min(steps, 3), threads).run()
    except Exception as e:  # inductor raises many types (no compiler, unsupported op)
        missing["torch.compile"] = f"does not compile here: {str(e).splitlines()[0][:200]}"
        return loops, missing
    loops["torch.compile"] = _loop(compiled_step, model.n_states, xt, frames, steps, threads)
    return loops, missing


@contextlib.contextmanager
def kept_threads() -> Iterator[None]:
    """Restore torch's thread count after the loops have set theirs."""
    old = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(old)
