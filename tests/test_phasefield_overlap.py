"""The step's independent passes on a second thread (`PhaseFieldSolver._overlap`,
docs/phasefield.md "Two cores"): phi's solve beside c's final one, c's operator beside xi's
Jacobian, the c residual beside xi's.  They share no state, so a run steps to the bit as in
series until c's error rejects an attempt whose phi the worker already solved; only 2D grids
on the multigrid path, at two or more Numba threads, take it; a forked child starts its own
thread."""
import multiprocessing
import threading

import numba
import numpy as np
import pytest

from continuum.phasefield import (
    HONG2018,
    Galvanostatic,
    PhaseFieldSolver,
    Potentiostatic,
    planar_electrode,
)
from continuum.phasefield import solver as pf_solver

H = 1e-6
two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one Numba thread: always serial")


def _run(overlap, shape=(24, 1, 48), **kw):
    phase, xi = planar_electrode(shape, H, HONG2018, 30e-6)
    s = PhaseFieldSolver(phase, H, HONG2018, xi=xi, rng=5, **kw)
    s.threaded_stepping = overlap
    threads = set()
    step = s._potential_step

    def recorded(*args):
        threads.add(threading.current_thread().name)
        return step(*args)

    s._potential_step = recorded
    s.advance(0.5, Potentiostatic(-0.45)).advance(0.2, Galvanostatic(-2000.0))
    return s, threads


@two_threads
def test_phi_beside_c_steps_to_the_bit_as_in_series_until_c_rejects_after_it():
    """On a 2D grid's multigrid path phi is solved on the worker thread, beside c's final solve.
    Where c's error rejects no attempt (tol_c out of reach) the run (with a window,
    potentiostatic then galvanostatic) ends on the serial run's bits.  Where it does, the
    worker's phi solve of that attempt is discarded, yet it left phi's multigrid (its kept
    hierarchy, the reuse counters) where the serial run, which never made it, did not: the two
    part at round-off, far inside the tolerances, and each is reproducible to the bit."""
    a, on = _run(True, direct_max=0, tol_c=1e6)
    b, off = _run(False, direct_max=0, tol_c=1e6)
    assert a._overlap() is not None and b._overlap() is None
    assert all(name.startswith("phasefield-second") for name in on) and on
    assert off == {threading.main_thread().name}
    assert a._win is not None  # the window's solves too
    assert a.discarded_potential_solves == 0
    assert (a.t, a.steps, a.rejected) == (b.t, b.steps, b.rejected)
    for x, y in ((a.xi, b.xi), (a.c, b.c), (a.phi, b.phi)):
        assert np.array_equal(x, y)
    assert a.timing["potential"] > 0.0 and a.timing["concentration"] > 0.0

    a, _ = _run(True, direct_max=0, tol_c=2e-3)  # c's error rejects attempts
    again, _ = _run(True, direct_max=0, tol_c=2e-3)
    b, _ = _run(False, direct_max=0, tol_c=2e-3)
    assert a.discarded_potential_solves > 0 and b.discarded_potential_solves == 0
    for x, y in ((a.xi, again.xi), (a.c, again.c), (a.phi, again.phi)):
        assert np.array_equal(x, y)
    assert not np.array_equal(a.phi, b.phi)
    assert np.abs(a.xi - b.xi).max() < 0.05 * a.tol["xi"]
    assert np.abs(a.phi - b.phi).max() < 0.01 * a.tol["eta"]
    assert np.abs(a.c - b.c).max() < 1e-3 * HONG2018.bulk_concentration
    restored = PhaseFieldSolver(*planar_electrode((24, 1, 48), H, HONG2018, 30e-6)[:1], H, HONG2018)
    restored.load_state_dict(a.state_dict())  # the ledger goes with the state
    assert restored.discarded_potential_solves == a.discarded_potential_solves


def test_no_worker_on_3d_grids_off_the_multigrid_or_at_one_thread():
    """3D grids' threaded sweeps keep both cores already, the direct path has no kernel that
    releases the GIL for long, a case in a worker process runs at one Numba thread
    (docs/model.md "Threads"): phi stays in the calling thread."""
    s3, threads3 = _run(True, shape=(8, 2, 40), direct_max=0)
    sd, threadsd = _run(True, direct_max=10**6)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        s1, threads1 = _run(True, direct_max=0)
    finally:
        numba.set_num_threads(before)
    assert s3._overlap() is None and sd._overlap() is None
    assert threads3 == threadsd == threads1 == {threading.main_thread().name}


def _child(queue):
    s, threads = _run(True, direct_max=0)
    queue.put((s.steps, sorted(threads)))


@two_threads
def test_a_forked_child_starts_its_own_worker():
    """The parent's worker thread does not exist in a forked child: the child starts its own
    (else its first phi would wait for ever)."""
    _run(True, direct_max=0)
    assert pf_solver._WORKER is not None
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue,))
    child.start()
    steps, threads = queue.get(timeout=300)
    child.join(timeout=60)
    assert child.exitcode == 0 and steps > 0
    assert threads and all(name.startswith("phasefield-second") for name in threads)


@two_threads
def test_an_attempt_that_raises_waits_for_its_passes_on_the_second_thread(monkeypatch):
    """An attempt that fails while c's operator is still being made on the second thread (here
    xi's Jacobian raises) leaves the window's scope, and returns, only once that pass has ended:
    restored under it, the pass would read the whole grid's geometry with the window's arrays
    (its kernels then wrote out of bounds: the process aborted in the garbage collector), and
    the next attempt must not meet it still writing the solver's state."""
    import time

    phase, xi = planar_electrode((24, 1, 48), H, HONG2018, 30e-6)
    s = PhaseFieldSolver(phase, H, HONG2018, xi=xi, rng=5, direct_max=0)
    s.advance(0.1, Potentiostatic(-0.45))
    transport, seen = s._transport, []

    def slow_transport(*args):
        time.sleep(0.2)
        seen.append(s.geo)  # the geometry the pass reads
        return transport(*args)

    def failing_jacobian(*args):
        raise FloatingPointError

    monkeypatch.setattr(s, "_transport", slow_transport)
    monkeypatch.setattr(s, "_jacobian", failing_jacobian)
    whole = s.geo
    accepted, err, _ = s._attempt(Potentiostatic(-0.45), 1e-3)
    assert not accepted and err is None and s._win is not None
    assert seen and seen[0] is not whole and seen[0] is s._win  # the window's, not the restored grid's
    assert all(job.done() for job in s._jobs)


@pytest.mark.parametrize("threaded", [False, True])
def test_the_parts_clock_counts_each_pass_once(threaded, monkeypatch):
    """The stepping's shares per part add up to at most the process's CPU time over the run,
    serial or with the second thread: a pass timed on its own (`_timed`) is not also inside
    the calling thread's ticks (in series, c's operator and residual were counted twice).  c's
    operator is made to cost 5 ms of CPU per step here, so a second count of it would show."""
    import time

    phase, xi = planar_electrode((24, 1, 48), H, HONG2018, 30e-6)
    s = PhaseFieldSolver(phase, H, HONG2018, xi=xi, rng=5, direct_max=0)
    s.threaded_stepping = threaded
    transport = s._transport

    def costly(*args):
        spin = time.thread_time()
        while time.thread_time() - spin < 5e-3:
            pass
        return transport(*args)

    monkeypatch.setattr(s, "_transport", costly)
    clock = time.process_time()
    s.advance(0.5, Potentiostatic(-0.45))
    cpu = time.process_time() - clock
    assert s.steps + s.rejected > 10
    assert 0.5 * cpu < sum(s.timing.values()) <= cpu
