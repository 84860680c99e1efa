"""Threads (docs/model.md, "Threads"): the multigrid's cycle kernels give the same numbers bit
for bit at one and two threads, and so does a coupled run; a pool worker runs them at one
thread, so does any other worker process, and a child forked after the parent ran them on
two threads runs a case (GNU OpenMP would end it if it started threads there)."""
import multiprocessing
import os

import numba
import numpy as np
import pytest
from _kmc_helpers import same_rows

from continuum import mg_kernels as K
from kmc import workers
from kmc.coupling import threads
from kmc.coupling.config import make_config
from kmc.coupling.simulation import PlatingSimulation
from kmc.coupling.threads import case_threads, run_threads

two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                 reason="Numba has one thread in this process (NUMBA_NUM_THREADS)")


def at_threads(n, fn, *args):
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        return fn(*args)
    finally:
        numba.set_num_threads(before)


def _level(shape, dtype, seed=0):
    """A level as the cycle holds it: random conductances between random unknowns."""
    rng = np.random.default_rng(seed)
    unknown = rng.random(shape) > 0.3
    g = [rng.uniform(0.5, 2.0, shape) * unknown * np.roll(unknown, -1, axis=a) for a in range(3)]
    g[2][:, :, -1] = 0.0
    dtot, dinv = np.empty(shape), np.empty(shape)
    K.operator_diagonal(*g, rng.uniform(0, 1e-2, shape) * unknown, rng.uniform(0, 1, shape[:2]), dtot, dinv)
    dtot *= unknown
    dinv *= unknown
    x, b = rng.standard_normal((2,) + shape)
    return [a.astype(dtype) for a in (*g, dtot, dinv, x, b)]


def _cycle_kernels(gx, gy, gz, dtot, dinv, x0, b):
    """Every cycle kernel once on the level; their outputs."""
    out = []
    for reverse in (False, True):
        x = x0.copy()
        K.gauss_seidel(x, b, gx, gy, gz, dinv, reverse)
        out.append(x)
    shifts = [1 if n > 1 else 0 for n in x0.shape]
    rc = np.full([(n + (1 << s) - 1) >> s for n, s in zip(x0.shape, shifts)], np.nan, x0.dtype)
    K.restrict_residual(x0, b, gx, gy, gz, dtot, *shifts, rc)
    x = x0.copy()
    K.prolong_add(x, rc, dtot, *shifts)
    ax = np.empty_like(x0)
    K.apply_operator(x0, gx, gy, gz, dtot, ax)
    return out + [rc, x, ax, np.array([K._dot(x0.astype(np.float64), b.astype(np.float64))])]


@two_threads
@pytest.mark.parametrize("shape", [(37, 33, 29), (3, 110, 100), (2, 130, 130), (1, 190, 180)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cycle_kernels_give_the_same_bits_at_one_and_two_threads(shape, dtype):
    """Above PARALLEL_MIN_CELLS (the kernels then use the threads): odd axes, an axis of 3 and
    of 2 (two slabs; each slab's periodic neighbour is the other), a flat axis (one slab)."""
    assert np.prod(shape) >= K.PARALLEL_MIN_CELLS
    level = _level(shape, dtype)
    one = at_threads(1, _cycle_kernels, *level)
    both = at_threads(2, _cycle_kernels, *level)
    for a, b in zip(one, both):
        assert a.tobytes() == b.tobytes()


def test_gauss_seidel_sweeps_its_slabs_in_the_documented_order():
    """Forward: the even slabs along i, then the odd ones, each lexicographic; backward the exact
    reverse (what keeps the V-cycle symmetric), checked against the plain cell-by-cell rule."""
    shape = (10, 3, 4)
    gx, gy, gz, _, dinv, x0, b = _level(shape, np.float64, seed=1)
    nx = shape[0]
    ns = 2 * min(K.GS_SLABS // 2, nx // 2)
    slabs = [range(s * nx // ns, (s + 1) * nx // ns) for s in range(ns)]
    planes = [i for s in slabs[0::2] + slabs[1::2] for i in s]
    cells = [(i, j, k) for i in planes for j in range(shape[1]) for k in range(shape[2])]
    for reverse in (False, True):
        ref = x0.copy()
        for i, j, k in (cells[::-1] if reverse else cells):
            nb = (gx[i, j, k] * ref[(i + 1) % nx, j, k] + gx[i - 1, j, k] * ref[i - 1, j, k]
                  + gy[i, j, k] * ref[i, (j + 1) % shape[1], k] + gy[i, j - 1, k] * ref[i, j - 1, k]
                  + (gz[i, j, k] * ref[i, j, k + 1] if k + 1 < shape[2] else 0.0)
                  + (gz[i, j, k - 1] * ref[i, j, k - 1] if k > 0 else 0.0))
            ref[i, j, k] = (b[i, j, k] + nb) * dinv[i, j, k]
        x = x0.copy()
        K.gauss_seidel(x, b, gx, gy, gz, dinv, reverse)
        assert np.allclose(x, ref, rtol=1e-12, atol=1e-12)


# -- processes ------------------------------------------------------------------------------------
def test_a_pool_worker_runs_its_cases_at_one_thread(monkeypatch):
    """Numba is loaded here, so the pool leaves NUMBA_NUM_THREADS alone (Numba rereads it at
    every compilation and fails once its threads run at another count): a compilation after it
    works, and the worker's cases take one thread from kmc.coupling.threads."""
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    pool = workers.process_pool(1)
    try:
        assert pool.submit(workers.call_by_name, "kmc.coupling.threads:run_threads").result(timeout=120) == 1
    finally:
        pool.shutdown()
    assert "NUMBA_NUM_THREADS" not in os.environ
    assert numba.njit(lambda a: a + 1)(1) == 2


def test_any_worker_process_runs_cases_at_one_thread_unless_told(monkeypatch):
    """A child process without NUMBA_NUM_THREADS (a Dask worker) runs its cases at one thread;
    with it, at what it says."""
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(run_threads) == 1
    if numba.config.NUMBA_NUM_THREADS >= 2:
        monkeypatch.setenv("NUMBA_NUM_THREADS", "2")
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            assert pool.apply(run_threads) == 2


@two_threads
def test_a_case_on_its_own_takes_the_idle_cores_unless_told(monkeypatch):
    """This process is no worker: Numba's threads as far as the cores are idle, or the count
    asked for (NUMBA_NUM_THREADS, numba.set_num_threads)."""
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    n = numba.config.NUMBA_NUM_THREADS
    assert 0.0 <= threads.idle_cores(0.05) <= (os.cpu_count() or 1) + 1e-9
    for idle, want in ((0.2, 1), (1.6, 1), (1.8, 2), (n + 0.0, n), (None, n)):
        monkeypatch.setattr(threads, "idle_cores", lambda idle=idle: idle)
        assert at_threads(n, run_threads) == want, idle
    assert at_threads(1, run_threads) == 1
    monkeypatch.setenv("NUMBA_NUM_THREADS", str(n))
    monkeypatch.setattr(threads, "idle_cores", lambda: 0.0)
    assert at_threads(n, run_threads) == n


def _solve_in_case_threads(level):
    with case_threads():
        return _cycle_kernels(*level), numba.get_num_threads()


@two_threads
def test_a_child_forked_after_two_thread_kernels_runs_them(monkeypatch):
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    level = _level((37, 33, 29), np.float32)
    ref = at_threads(2, _cycle_kernels, *level)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        out, threads = pool.apply_async(_solve_in_case_threads, (level,)).get(timeout=120)
    assert threads == 1
    assert all(a.tobytes() == b.tobytes() for a, b in zip(ref, out))


# -- a coupled run ----------------------------------------------------------------------------------
@two_threads
def test_a_coupled_run_is_bit_identical_at_one_and_two_threads(monkeypatch):
    """A grid of 32 x 32 x 32 voxels: its fine level is above PARALLEL_MIN_CELLS.  The count
    is asked for (NUMBA_NUM_THREADS), so the run takes it whatever the load."""
    monkeypatch.setenv("NUMBA_NUM_THREADS", "2")
    config = make_config({}, ["host.nx=32", "host.ny=32", "host.host_layers=12", "host.reservoir_layers=19",
                              "protocol.capacity_mAh_cm2=0.003", "snapshots=0"])

    def run():
        host_ss, run_ss = np.random.SeedSequence(config.seed).spawn(2)
        sim = PlatingSimulation(config, config.host.build(host_ss), seed_sequence=run_ss)
        assert sim.state.phase.size >= K.PARALLEL_MIN_CELLS
        return sim.run(config.protocol.segments())

    one, both = at_threads(1, run), at_threads(2, run)
    assert len(one.rows) >= 3
    assert np.array_equal(one.final_phase, both.final_phase)
    same_rows(one.rows, both.rows)
