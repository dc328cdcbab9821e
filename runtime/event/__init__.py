"""Event-driven runtime: the exported model run per input event (numba), in streams.

``load_event("model.onnx") -> EventEngine``; see :mod:`.engine`. The ONNX graph is lowered
to a chain of synaptic layers (:mod:`.graph`), packed into flat arrays (:mod:`.network`)
and run by the kernels of :mod:`.kernel`; :mod:`.reference` is the plain-Python loop the
kernels are checked against; :mod:`.metrics` has the spike difference.
"""

from .engine import EventEngine, EventResult, SpikeTrain, load_event
from .graph import BiasError, Layer
from .metrics import spike_difference
from .network import EventState
from .validate import EventInputError

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
