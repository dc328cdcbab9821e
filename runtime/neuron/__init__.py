"""The one definition of each spiking neuron kind (DESIGN.md §1): a registry keyed by name.

Each kind lives in one module of this package (``lif`` for LIF and IF, ``li``,
``cuba_lif``, ``alif``) and holds everything that kind is (:class:`NeuronKind`): spec
fields and validation, state variables, the numpy reference step, the ONNX function
body, the event-driven form, the NIR mapping (shared conventions: ``nir``) and what
Speck can do with it. The trainer registers one torch step per kind
(``trainer.neurons``). Every other part asks :func:`kind_of`.

Adding a kind: a new module here with its spec class and :class:`NeuronKind` subclass
(typed by that spec class: ``NeuronKind[ALIFSpec]``), its import below, its torch step in
``trainer.neurons``, its variants in the two test lists and its state order in the docs:
docs/neurons.md, "Adding a kind" (dynamics beyond :class:`base.EventForm`'s fields need the
event kernels extended, as CubaLIF's did).
"""

from __future__ import annotations

import numpy as np

from . import alif, cuba_lif, li, lif  # noqa: F401  (each module registers its kinds on import)
from .alif import ALIFSpec
from .base import (
    EventForm,
    EventFormError,
    NeuronKind,
    NeuronSpec,
    SpecError,
    all_fields,
    decay_of,
    field_names,
    kind_of,
    kinds,
    make_spec,
    presets,
    tau_of,
)
from .cuba_lif import CubaLIFSpec

__all__ = [
    "ALIFSpec",
    "CubaLIFSpec",
    "EventForm",
    "EventFormError",
    "NeuronKind",
    "NeuronSpec",
    "SpecError",
    "all_fields",
    "decay_of",
    "field_names",
    "kind_of",
    "kinds",
    "make_spec",
    "presets",
    "step",
    "tau_of",
    "zero_state",
]


def step(
    spec: NeuronSpec, state: tuple[np.ndarray, ...], current: np.ndarray
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """One clock step of ``spec`` (numpy reference): ``(output, new state)``.

    ``state`` holds one array per state variable of the kind (``kind_of(spec.kind).states``).
    Arithmetic is done in the dtype of the inputs, in the same order as the torch and ONNX
    versions, so float32 results agree bit for bit. State and current share one floating
    dtype, as in an ONNX graph (mixed, numpy and torch promote at different operations).
    """
    kind = kind_of(spec.kind)
    if len(state) != len(kind.states):
        raise SpecError(
            f"a {spec.kind} neuron has {len(kind.states)} state variables {list(kind.states)}, got {len(state)}"
        )
    current = np.asarray(current)
    if not np.issubdtype(current.dtype, np.floating):
        raise TypeError(f"the input current must be a floating array, got dtype {current.dtype}")
    for name, x in zip(kind.states, state):
        if np.asarray(x).dtype != current.dtype:
            raise TypeError(
                f"state {name!r} has dtype {np.asarray(x).dtype} but the current {current.dtype}: give one "
                "floating dtype (zero_state(spec, current) makes the state to match)"
            )
    return kind.step(spec, tuple(state), current)


def zero_state(spec: NeuronSpec, like: np.ndarray) -> tuple[np.ndarray, ...]:
    """The state at t = 0: zeros for every state variable."""
    return tuple(np.zeros_like(like) for _ in kind_of(spec.kind).states)
