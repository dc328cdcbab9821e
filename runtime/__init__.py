"""flexsnn runtime (torch-free): ``runtime.load("model.onnx") -> Session``.

``load`` and ``Session`` are imported lazily so that modules which only need the neuron
spec or the data layer (the trainer, the exporter) do not pull in onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import forks as _forks  # noqa: F401  # a forked worker knows its parent's numba threads started

if TYPE_CHECKING:
    from .session import Session, load

__all__ = ["Session", "load"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import session

        return getattr(session, name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
