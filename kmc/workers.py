"""Local worker processes for independent runs (study cases, ensemble replicas).

Standard library only, so that ``python -m kmc`` can start its workers before it imports numpy,
scipy and Numba itself (kmc.__main__): a worker's start-up (its imports and the cached kernels,
about 1.3 s) then overlaps the parent's own imports and planning instead of following them.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
# Commands that never use a local pool (a single run, configuration, host statistics).
_SERIAL_COMMANDS = ("run", "config", "host_analysis")

_TIMELINE = os.environ.get("KMC_TIMELINE")  # set: time stamps of the command's phases to stderr

_prestarted: ProcessPoolExecutor | None = None
_prestarted_workers = 0


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` single-threaded processes (the one :func:`prestart` started, when
    it has at least as many).

    Spawn, not fork: forking a parent that already runs Numba/BLAS threads can deadlock.
    One BLAS thread per worker: several workers each spinning a multi-threaded BLAS on the
    same cores oversubscribe them (a 2-worker study ran over 5x slower than serial). Spawned
    children read these variables when they import numpy, and the pool may start workers at
    any later submit, so the variables stay set in this process (its own BLAS, already
    loaded, is not affected).
    """
    global _prestarted
    pool, _prestarted = _prestarted, None
    if pool is not None:
        if _prestarted_workers >= workers:
            return pool
        pool.shutdown(wait=False, cancel_futures=True)
    for k in _THREAD_VARS:
        # Numba rereads NUMBA_NUM_THREADS at every compilation and fails once its threads run at
        # another count: with Numba loaded here, workers take one thread per case from
        # kmc.coupling.threads instead
        if k != "NUMBA_NUM_THREADS" or "numba" not in sys.modules:
            os.environ[k] = "1"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def workers_for_command(argv: list[str]) -> int:
    """How many local workers the command line ``argv`` (without the program name) will use,
    read without importing anything: 0 when it runs serially, uses Dask, asks for help or
    cannot be read (the command's own parser then says what is wrong)."""
    if not argv or argv[0].startswith("-") or argv[0] in _SERIAL_COMMANDS or {"-h", "--help"} & set(argv):
        return 0
    if any(a == "--scheduler" or a.startswith("--scheduler=") for a in argv):
        return 0
    workers = os.cpu_count() or 1
    for i, a in enumerate(argv):
        value = a.split("=", 1)[1] if a.startswith("--workers=") else (
            argv[i + 1] if a == "--workers" and i + 1 < len(argv) else None)
        if value is not None:
            try:
                workers = int(value)
            except ValueError:
                return 0
    return workers if workers >= 2 else 0


def prestart(workers: int, warm_up: str) -> None:
    """Start ``workers`` processes now, each running ``warm_up`` ("module:function", imported
    there by name: this module imports nothing of the project) first, for the next
    :func:`process_pool` to take."""
    global _prestarted, _prestarted_workers
    discard_prestarted()
    pool = process_pool(workers)
    for _ in range(workers):  # a submit with no idle worker spawns one
        pool.submit(call_by_name, warm_up)
    _prestarted, _prestarted_workers = pool, workers


def discard_prestarted() -> None:
    """End the workers :func:`prestart` started if nothing took them (e.g. the command
    stopped on bad input): at once, not after their imports."""
    global _prestarted
    pool, _prestarted = _prestarted, None
    if pool is not None:
        end_pool(pool)


def end_pool(pool: ProcessPoolExecutor) -> None:
    """End the pool's processes now, dropping what is queued: a study's last step once every
    result is in (each case wrote and closed its files before returning), where
    ``shutdown()`` would wait for each worker's interpreter teardown of numpy, scipy and Numba
    (0.3-2 s of a quick study, after its last case)."""
    for p in list((getattr(pool, "_processes", None) or {}).values()):
        p.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def call_by_name(target: str):
    """Import ``module:function`` and call it."""
    from importlib import import_module

    module, _, function = target.partition(":")
    return getattr(import_module(module), function)()


def stamp(what: str) -> None:
    """With ``KMC_TIMELINE=1``: print ``what`` with the wall clock and this process's CPU time
    to stderr (phases of a command across its processes, for benchmarks/bench_coupled.py)."""
    if _TIMELINE:
        import sys
        import time

        print(f"[timeline] {time.time():.3f} pid {os.getpid()} cpu {time.process_time():.2f} {what}",
              file=sys.stderr, flush=True)
