"""Threads of the compiled continuum kernels for a run (docs/model.md, "Threads").

The multigrid's cycle kernels (continuum/mg_kernels.py) share a pass among Numba's threads
and give the same numbers bit for bit whatever their count, so a run may take any count.
A case run on its own (``python -m kmc run``, the API, a scenario) uses the threads Numba
has (by default the cores) as far as the cores are idle as it starts: threads on busy cores
wait for each other at every pass and gain nothing (2 threads on 2 cores at load 5-8: a
128^3 potential solve in the wall time of 1 thread).  ``NUMBA_NUM_THREADS`` or
``numba.set_num_threads`` choose the count instead.  A case in a worker process
(kmc.workers' pools, Dask's processes) uses one: an ensemble or a study already fills the
cores with cases.  Its ``NUMBA_NUM_THREADS`` may say otherwise (kmc.workers sets it to 1 when
it starts workers before Numba is loaded, as ``python -m kmc`` does).
"""
from __future__ import annotations

import multiprocessing
import os
import time
from contextlib import contextmanager

import numba

# How long run_threads watches the cores' idle time, and how idle a core must be to count.
IDLE_WINDOW_S = 0.1
IDLE_MARGIN = 0.25


def idle_cores(window: float = IDLE_WINDOW_S) -> float | None:
    """Cores idle over the next ``window`` seconds (/proc/stat), None where it cannot be read."""
    def sample():
        with open("/proc/stat") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:9]]
        return ticks[3] + ticks[4], sum(ticks)  # idle + waiting for I/O, all

    try:
        idle0, all0 = sample()
        time.sleep(window)
        idle1, all1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (os.cpu_count() or 1) * (idle1 - idle0) / max(all1 - all0, 1)


def run_threads() -> int:
    """Numba threads for a case run in this thread (the module docstring's rule)."""
    if multiprocessing.parent_process() is not None:  # a worker; the environment says now what
        # it wants (a forked child inherits Numba's count from before)
        return max(1, min(int(os.environ.get("NUMBA_NUM_THREADS", "1")), numba.config.NUMBA_NUM_THREADS))
    n = numba.get_num_threads()
    if n == 1 or n < numba.config.NUMBA_NUM_THREADS or "NUMBA_NUM_THREADS" in os.environ:
        return n  # one, or the count asked for
    idle = idle_cores()
    return n if idle is None else max(1, min(n, int(idle + IDLE_MARGIN)))


@contextmanager
def case_threads():
    """Run the block at :func:`run_threads` threads (Numba's count is per thread; restored after)."""
    before = numba.get_num_threads()
    numba.set_num_threads(run_threads())
    try:
        yield
    finally:
        numba.set_num_threads(before)
