"""The first run's Numba compilation split over two workers (pools: :mod:`kmc.workers`), and the
backend that runs independent jobs (cases, replicas): a local pool or Dask."""
from __future__ import annotations

from pathlib import Path


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
    c = ConcentrationSolver(ph, 1e-6, p, linear_solver="gmg").step(np.full(ph.shape, p.c_ref), 1.0, sol.faces,
                                                                     sol.face_current_density)
    # a macro-step's warm start: a host voxel turned electrolyte (a new unknown), the salt moved
    ph[2, 2, 3] = ELECTROLYTE
    PotentialSolver(ph, 1e-6, p, linear_solver="gmg", eta_tolerance=1e-5, rtol=1e-6).solve(
        np.where(ph == ELECTROLYTE, c, p.c_ref), current=-1.05e-9, initial=sol)


def kernels_compiled() -> bool:
    """Whether the KMC event loop is compiled in this process or in Numba's cache."""
    from ..engine.kernels import loop

    # where Numba's cache locator put it (NUMBA_CACHE_DIR, or __pycache__ beside the source):
    # with the cache elsewhere, __pycache__'s old files made each worker compile both halves
    cache = getattr(getattr(loop.run_events, "_cache", None), "_cache_path", None)
    cache = Path(cache) if cache else Path(loop.__file__).parent / "__pycache__"
    return bool(loop.run_events.signatures) or any(cache.glob("loop.run_events-*.nbi"))


def warm_worker() -> None:
    """A new worker's first task (kmc.workers.prestart): import the coupled run and load the
    kernels from Numba's cache, so its first case starts at once. With nothing cached it only
    imports (this module's package: every study and the coupled run): a first run compiles the
    two halves in two workers instead (base._run_in_pool)."""
    from ..workers import stamp

    stamp("worker imported")
    if kernels_compiled():
        compile_kmc_kernels()
        compile_continuum_kernels()
    stamp("worker warm")


# -- where independent jobs run ---------------------------------------------------------------
def executor(workers, scheduler, n):
    """(submit(fn, *args) -> future, as_completed(futures), close(futures)) for the chosen
    backend: ``scheduler`` (a Dask address or Client), else a local pool of ``workers``."""
    if scheduler is not None:
        from ..coupling.config import ConfigError

        try:
            from dask.distributed import Client, as_completed
        except ImportError:
            raise ConfigError("scheduler= needs Dask: pip install 'lithium-kmc[dask]'") from None
        own = isinstance(scheduler, str)
        client = Client(scheduler) if own else scheduler
        if not isinstance(client, Client):
            raise ConfigError(f"scheduler={scheduler!r}: give an address (tcp://host:port) or a Client")
        submit = lambda fn, *a: client.submit(fn, *a, pure=False)  # noqa: E731

        def close(futures):
            for f in futures:
                f.cancel()
            if own:
                client.close()
        return submit, as_completed, close
    import concurrent.futures as cf

    from ..workers import end_pool, process_pool

    ex = process_pool(min(workers, n))

    def close(futures):
        if all(f.done() for f in futures):  # every record is in: no worker teardown to wait for
            end_pool(ex)
        else:
            ex.shutdown(wait=True, cancel_futures=True)
    return ex.submit, cf.as_completed, close
