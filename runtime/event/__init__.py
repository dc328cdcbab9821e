"""Event-driven runtime: the exported model run per input event (numba), in streams.

``load_event("model.onnx") -> EventEngine``; see :mod:`.engine`. The ONNX graph is lowered
to a chain of synaptic layers (:mod:`.graph`), packed into flat arrays (:mod:`.network`)
and run by the kernels of :mod:`.kernel`; :mod:`.reference` is the plain-Python loop the
kernels are checked against; :mod:`.metrics` has the spike difference.

The engine's names load on first use (PEP 562): importing this package, as every
``python -m runtime`` command does to list ``event-bench``, does not import numba (about
60 MiB of peak memory for a clock-driven run that never uses it, which a 1 GB Pi feels).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .graph import BiasError, Layer
from .metrics import spike_difference
from .network import EventState
from .validate import EventInputError

if TYPE_CHECKING:
    from .engine import EventEngine, EventResult, SpikeTrain, load_event

_ENGINE = {"EventEngine", "EventResult", "SpikeTrain", "load_event"}


def __getattr__(name: str) -> Any:
    if name in _ENGINE:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BiasError",
    "EventEngine",
    "EventInputError",
    "EventResult",
    "EventState",
    "Layer",
    "SpikeTrain",
    "load_event",
    "spike_difference",
]
