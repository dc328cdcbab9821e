"""Whole streams on numba's threads (:meth:`EventEngine.run_batch`), safe to call from any
thread and in a forked process.

numba runs a ``parallel=True`` kernel on its threading layer (numba docs, "The Threading
Layers"), and two of the layers a pip install may get break a service:

* ``workqueue`` (numba's own, present everywhere) is not thread-safe: two threads that
  enter a parallel kernel at once abort the process ("Concurrent access has been
  detected"), with no Python exception;
* ``omp`` with GNU OpenMP (Linux) is not fork-safe: a child forked after its parent ran a
  parallel kernel aborts at its first one ("fork() called from a process already using
  GNU OpenMP"), and a ``multiprocessing`` pool waits for it forever.

So a process runs one parallel call at a time (each already uses every numba thread; a
second would only compete for them), and a process forked after its parent started the
threading layer (by any means: a parallel kernel, ``numba.set_num_threads``; told by
:mod:`runtime.forks`) runs its streams on its own thread (:func:`.kernel.run_streams_serial`:
the same numbers). A pre-forking server with a worker per core wants that anyway.
"""

from __future__ import annotations

import threading

import numpy as np

from ..forks import FORKS
from .kernel import kernel_threads, run_streams, run_streams_serial
from .network import Net

# one parallel call at a time in this process. A forked child never finds it held: a thread
# takes it after kernel_threads() has started numba's layer, so a child forked meanwhile
# has FORKS.after_layer set and runs serially, without it
ONE_CALL = threading.Lock()


def run_whole_streams(
    net: Net,
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    t: np.ndarray,
    offsets: np.ndarray,
    ends: np.ndarray,
    readout: np.ndarray,
    V: np.ndarray,
    CNT: np.ndarray,
    SYN: np.ndarray,
) -> None:
    """Run the streams into ``V``, ``CNT``, ``SYN`` (:func:`.kernel.run_streams`), on
    numba's threads or, in a forked process, on the calling one."""
    sizes = (net.n_groups, net.second_states, net.crossing_states)
    if FORKS.after_layer:
        run_streams_serial(net.P, net.F, net.W, x, y, p, t, offsets, ends, *sizes, readout, V, CNT, SYN)
        return
    threads = kernel_threads()  # the calling thread's setting (use_threads)
    with ONE_CALL:
        run_streams(net.P, net.F, net.W, x, y, p, t, offsets, ends, *sizes, readout, threads, V, CNT, SYN)
