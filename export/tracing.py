"""One torch trace at a time in a process.

torch.export (which torch.onnx.export's dynamo path runs) keeps its dispatch-mode stack
per process, not per thread, and ``warnings.catch_warnings`` around it is process state
too: two threads exporting at once (an app's worker pool, the SDK's ``fit_config`` choosing
the default model) failed with "Trying to pop empty mode stack" (TorchExportError). Every
trace of the exporter holds :data:`TRACING`; the rest of an export runs in parallel.
"""

from __future__ import annotations

import threading

TRACING = threading.Lock()
