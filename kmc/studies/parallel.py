"""Local process pools for independent runs (study cases, ensemble replicas)."""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` single-threaded processes.

    Spawn, not fork: forking a parent that already runs Numba/BLAS threads can deadlock.
    One BLAS thread per worker: several workers each spinning a multi-threaded BLAS on the
    same cores oversubscribe them (a 2-worker study ran over 5x slower than serial). Spawned
    children read these variables when they import numpy, and the pool may start workers at
    any later submit, so the variables stay set in this process (its own BLAS, already
    loaded, is not affected).
    """
    for k in _THREAD_VARS:
        os.environ[k] = "1"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
