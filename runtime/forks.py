"""Whether this process was forked from one whose numba threading layer had started.

Registered when ``runtime`` is imported (numba is not imported here: the hook only looks at
what the parent had loaded), so a worker forked from any process that used the SDK knows,
even when the event engine (:mod:`runtime.event.parallel`, which reads this) was first
imported in the worker. GNU OpenMP cannot run in such a child (numba docs, "The Threading
Layers"). A parent that never imported ``runtime`` is not seen: import it before forking.
"""

from __future__ import annotations

import os
import sys


class _Forks:
    after_layer = False  # forked (at any depth) from a process whose numba layer had started


FORKS = _Forks()


def layer_started() -> bool:
    """Whether numba's threading layer has started in this process (by a parallel kernel,
    ``numba.set_num_threads``/``get_num_threads`` or any numba parallel code): numba's own
    record, read by ``numba.threading_layer()``, which raises while it is unset and starts
    nothing. False while numba is not imported."""
    numba = sys.modules.get("numba")
    if numba is None:
        return False
    try:
        numba.threading_layer()
    except ValueError:
        return False
    return True


def _after_fork_in_child() -> None:
    FORKS.after_layer = FORKS.after_layer or layer_started()  # as the parent left it


os.register_at_fork(after_in_child=_after_fork_in_child)
