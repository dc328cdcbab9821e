"""The neuron of a deployed network: exact forward, no surrogate, one ONNX node.

The forward is the trainer's own torch step of the kind (:func:`trainer.neurons.neuron_step`
with the exact spike rule), so there is no second copy of the maths. Only while
``torch.onnx.export`` runs, it emits one ``snn::<kind>`` node with inputs
``(x, *state)``, outputs ``(out, *state)`` and every field of its spec as attributes.
"""

from __future__ import annotations

import torch
from torch import nn

from runtime.neuron import NeuronSpec
from runtime.neuron.functions import DOMAIN, DOMAIN_VERSION, attributes
from trainer.neurons import State, neuron_step, zero_state


class DeployNeuron(nn.Module):
    """``forward(x, state) -> (out, state)`` like :class:`trainer.neurons.Neuron`."""

    def __init__(self, spec: NeuronSpec):
        super().__init__()
        self.spec = spec

    def forward(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        state = zero_state(self.spec, x) if state is None else state
        if not torch.onnx.is_in_onnx_export():
            return neuron_step(self.spec, state, x)
        n = 1 + len(state)
        out, *new = torch.onnx.ops.symbolic_multi_out(
            f"{DOMAIN}::{self.spec.kind}",
            (x, *state),
            dict(attributes(self.spec)),  # a copy typed by the parameter (dict is invariant)
            dtypes=(x.dtype,) * n,
            shapes=(x.shape,) * n,
            version=DOMAIN_VERSION,
        )
        return out, tuple(new)

    def fire(self, x: torch.Tensor) -> torch.Tensor:
        """A stateless neuron's output (:meth:`trainer.neurons.Neuron.fire`): the exported
        graph keeps its neuron node, with a zero state input."""
        return self(x, None)[0]

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.spec.to_dict().items())
