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


# -- first run: the two halves of the Numba kernels compiled side by side --------------------
def compile_kmc_kernels() -> None:
    """Compile (or load from Numba's cache) the KMC event loop: deposition and stripping on a
    tiny lattice, leaps on, which reaches every kernel a coupled run calls."""
    import numpy as np

    from continuum.constants import HOST_CONDUCTIVE, LITHIUM
    from continuum.parameters import PhysicalParameters

    from ..engine import KMCEngine, LatticeState

    p = PhysicalParameters()
    ph = np.zeros((8, 8, 8), np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[:, :, 1:3] = LITHIUM
    eng = KMCEngine(LatticeState.from_arrays(ph, 1e-6, concentration=p.c_ref, seed=0), p, seed=1)
    for phi_s in (-0.2, 0.2):
        eng.advance(1.0, phi_l=np.zeros(ph.shape), phi_s=np.full(ph.shape, phi_s), c_top=p.c_ref, max_events=2000)


def compile_continuum_kernels() -> None:
    """Compile (or load) the continuum's kernels: a potential and a salt solve through the
    voxel-grid multigrid."""
    import numpy as np

    from continuum import ELECTROLYTE, HOST_CONDUCTIVE, ConcentrationSolver, PhysicalParameters, PotentialSolver

    p = PhysicalParameters()
    ph = np.full((6, 6, 8), ELECTROLYTE, np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[2:4, 2:4, 1:4] = HOST_CONDUCTIVE
    sol = PotentialSolver(ph, 1e-6, p, linear_solver="gmg", eta_tolerance=1e-5, rtol=1e-6).solve(p.c_ref, current=-1e-9)
    ConcentrationSolver(ph, 1e-6, p, linear_solver="gmg").step(np.full(ph.shape, p.c_ref), 1.0, sol.faces,
                                                                 sol.face_current_density)
