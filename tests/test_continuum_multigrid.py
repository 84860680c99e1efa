"""The voxel-grid multigrid (continuum.multigrid): its operator is the solvers' matrix, its cycle
a symmetric positive definite preconditioner, its convergence independent of the grid size on
a plain domain, and the solvers give the direct solver's answers through it."""
import numpy as np
import pytest
from scipy import ndimage
import scipy.sparse.linalg as spla

from continuum import ELECTROLYTE, HOST_CONDUCTIVE, ConcentrationSolver, PhysicalParameters, PotentialSolver
from continuum.fv import SymmetricPattern, voxel_links
from continuum.multigrid import VoxelMultigrid
from continuum.phasefield import HONG2018
from continuum.phasefield.numerics import interpolation

P = PhysicalParameters()


def _porous(shape, porosity=0.6, seed=0):
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5, mode="wrap")
    ph = np.where(f > np.quantile(f, porosity), HOST_CONDUCTIVE, ELECTROLYTE).astype(np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[:, :, -3:] = ELECTROLYTE
    return ph


def _system(mask, seed=1, plane=False):
    """A random SPD graph Laplacian on ``mask`` with a Dirichlet top and a weak diagonal."""
    rng = np.random.default_rng(seed)
    shape = mask.shape
    vox = np.flatnonzero(mask.ravel())
    node = np.full(mask.size, -1)
    node[vox] = np.arange(vox.size)
    p, q, slots = voxel_links(mask, with_slots=True)
    G = rng.uniform(0.5, 2.0, p.size)
    top = np.where(vox % shape[2] == shape[2] - 1, 2.0, 0.0)
    diag = rng.uniform(0.0, 1e-3, vox.size)
    K = SymmetricPattern(vox.size, node[p], node[q]).assemble(G, diag + top)
    mg = VoxelMultigrid(shape, vox, coarse_max=40, plane=plane)
    mg.set_operator(slots, G, diag, top)
    return K, mg


@pytest.mark.parametrize("shape", [(6, 2, 9), (7, 5, 6), (1, 8, 8)])
def test_operator_equals_the_matrix_and_cycle_is_spd(shape):
    """Odd axes, a periodic axis of length 2 (two faces between the same voxels), a flat axis."""
    mask = _porous(shape) == ELECTROLYTE
    K, mg = _system(mask)
    assert len(mg.levels) >= 2
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, K.shape[0]))
    assert np.allclose(mg.matvec(x), K @ x, rtol=1e-12, atol=1e-12)
    Bx, By = mg.apply(x), mg.apply(y)
    assert np.vdot(y, Bx) == pytest.approx(np.vdot(x, By), rel=1e-5)  # symmetric (single-precision cycle)
    assert np.vdot(x, Bx) > 0 and np.vdot(y, By) > 0


@pytest.mark.parametrize("shape", [(6, 2, 9), (7, 5, 6), (1, 8, 8), (2, 1, 2), (40, 1, 40)])
def test_coarsest_dense_operator_is_the_levels_matrix_to_the_bit(shape):
    """`mg_kernels.coarsest_operator` (the coarsest level's dense matrix, compiled) against the
    level's sparse assembly (`_Level.matrix`), on every level of the hierarchy: the same cells and
    the same entries to the bit (two faces between the same cells on a periodic axis of 2 summed
    alike), so the coarse inverse is the one the sparse route gave."""
    from continuum import mg_kernels
    mask = _porous(shape) == ELECTROLYTE
    _, mg = _system(mask, plane=shape[1] == 1)
    for level in mg.levels:
        A, cells = level.matrix()
        dense_cells, dense = mg_kernels.coarsest_operator(level.gx, level.gy, level.gz, level.dtot)
        assert np.array_equal(cells, dense_cells) and np.array_equal(A.toarray(), dense)
    assert np.array_equal(mg._coarse_cells, cells)


def test_coarse_faces_follow_the_fine_paths():
    """Uniform fine conductance G: a coarse face (4 rows of G/2 in series) is 2G, the value of
    the same medium discretised at 2h; a weak link inside the coarse cells weakens its rows,
    down to a fifth of the crossing face."""
    shape = (4, 4, 4)
    mask = np.ones(shape, bool)
    p, q, slots = voxel_links(mask, with_slots=True)
    mg = VoxelMultigrid(shape, np.arange(mask.size), coarse_max=1)
    mg.set_operator(slots, np.ones(p.size), np.zeros(mask.size))
    coarse = mg.levels[1]
    assert coarse.shape == (2, 2, 2)
    assert np.allclose(coarse.gx, 2.0) and np.allclose(coarse.gy, 2.0)
    assert np.allclose(coarse.gz[:, :, 0], 2.0) and np.allclose(coarse.gz[:, :, 1], 0.0)
    # cut every x link inside the coarse cells (fine faces 0|1 and 2|3): no coarse x coupling
    # is left along any row... except through the fallback, which keeps crossing faces alive
    g = np.ones(p.size)
    axis = slots // mask.size
    owner_x = np.unravel_index(slots % mask.size, shape)[0]
    g[(axis == 0) & (owner_x % 2 == 0)] = 0.0
    mg.set_operator(slots, g, np.zeros(mask.size))
    # each row: half links take the crossing face's G (fallback), 1/(1/2 + 1 + 1/2) = 1/2
    assert np.allclose(mg.levels[1].gx, 4 * 0.5)
    g[(axis == 0) & (owner_x % 2 == 1)] = 0.0  # and the crossing faces: decoupled
    mg.set_operator(slots, g, np.zeros(mask.size))
    assert np.allclose(mg.levels[1].gx, 0.0)
    # interior x links 1e-6 of the crossing faces (metal cells at the coarse faces, weakly
    # linked to the rest of their coarse cells): they count as a quarter of the crossing
    # face, a row keeps 1/(1 + 2 + 2) of it, not 2e-6; at half of it (above the floor)
    # the series rule as before, 1/(1 + 1 + 1)
    g = np.ones(p.size)
    g[(axis == 0) & (owner_x % 2 == 0)] = 1e-6
    mg.set_operator(slots, g, np.zeros(mask.size))
    assert np.allclose(mg.levels[1].gx, 4 * 0.2)
    g[(axis == 0) & (owner_x % 2 == 0)] = 0.5
    mg.set_operator(slots, g, np.zeros(mask.size))
    assert np.allclose(mg.levels[1].gx, 4 / 3.0)


def _diffuse_front(n, gap):
    """Hong's potential problem (sigma 1e6 S/m in the metal, 1.19 in the electrolyte,
    interpolated by h(xi) on a tanh front of the phase field's width) on n x 1 x n voxels:
    collector at the bottom, Dirichlet top, a flat front at n/2 with a finger reaching to
    ``gap`` voxels under the top (gap n/2: no finger)."""
    shape = (n, 1, n)
    x = np.arange(n) + 0.5
    height = 0.5 * n + (0.5 * n - gap) * np.exp(-((x - 0.37 * n) / (0.08 * n)) ** 2)
    xi = 0.5 * (1.0 - np.tanh((x[None, :] - height[:, None]) / 0.7))[:, None, :]
    xi[:, :, 0] = 1.0

    def sigma(v):
        hv = interpolation(v)
        return HONG2018.conductivity_solid * hv + HONG2018.conductivity_electrolyte * (1.0 - hv)

    p, q, slots = voxel_links(np.ones(shape, bool), with_slots=True)
    xf = xi.ravel()
    vox = np.arange(xf.size)
    bottom, top = vox % n == 0, vox % n == n - 1
    mg = VoxelMultigrid(shape, vox, coarse_max=64)
    mg.set_operator(slots, sigma(0.5 * (xf[p] + xf[q])), np.where(bottom, 2 * sigma(xf), 0.0),
                    np.where(top, 2 * sigma(xf), 0.0))
    return mg


@pytest.mark.parametrize("n, gap", [(32, 2.0), (64, 1.5), (64, 32.0)])
def test_diffuse_metal_front_under_the_dirichlet_top(n, gap):
    """The phase field's potential at contrast 1e6: fine cells at the diffuse front that are
    strongly linked across a coarse face but weakly to the rest of their coarse cells kept
    their strong link on the coarse grid, so the cycle no longer tears the metal apart. With
    the interior links in series (the previous rule) CG took 55 V-cycles to 1e-9 on the 32^2
    finger 2 voxels under the top, 131 on 64^2 and 38 for a flat front at 64^2 (the phase
    field's potential solves gave up at 100 as its front approached the top); now 16-18."""
    mg = _diffuse_front(n, gap)
    b = np.random.default_rng(0).standard_normal(mg.n)
    x, it = mg.solve(b, rtol=1e-9, maxiter=1000)
    assert 0 < it <= 20, it
    assert np.linalg.norm(mg.matvec(x) - b) <= 1e-9 * np.linalg.norm(b)


def _cg_iterations(K, mg, b, rtol=1e-8):
    count = [0]
    x, info = spla.cg(K, b, rtol=rtol, M=mg.preconditioner(), callback=lambda _: count.__setitem__(0, count[0] + 1))
    assert info == 0
    assert np.linalg.norm(K @ x - b) <= 1.01 * rtol * np.linalg.norm(b)
    return count[0]


def test_convergence_does_not_grow_with_the_grid():
    """Plain electrolyte column: CG iterations to 1e-8 stay flat from 16^3 to 48^3 (one more
    level each doubling), where Jacobi-CG needs several times more at the largest."""
    its = []
    for n in (16, 32, 48):
        mask = np.ones((n, n, n), bool)
        mask[:, :, 0] = False
        K, mg = _system(mask)
        b = np.random.default_rng(3).standard_normal(K.shape[0])
        its.append(_cg_iterations(K, mg, b))
    assert max(its) <= 16, its
    assert its[-1] <= its[0] + 3, its


def test_closed_pockets_are_solved_exactly_beside_the_cycle():
    """Single-voxel and two-voxel electrolyte pockets walled off inside a column (a rough
    deposit's closed gaps): with a weak diagonal their mean is a near-null mode the cycle cannot
    correct, so CG needed one iteration per pocket; solved exactly beside the cycle they leave
    the iteration count of the plain column (measured: 13 iterations, 33 without)."""
    n = 24
    rng = np.random.default_rng(5)
    mask = np.ones((n, n, n), bool)
    mask[:, :, 0] = False
    wall = np.zeros_like(mask)
    centres = [tuple(c) for c in rng.integers(2, n - 3, size=(40, 3))]
    for (i, j, k) in centres:  # a shell of wall around one or two cells
        wall[i - 1:i + 2, j - 1:j + 3, k - 1:k + 2] = True
    pockets = np.zeros_like(mask)
    for (i, j, k) in centres:
        pockets[i, j, k] = pockets[i, j + 1, k] = True
    mask &= ~wall | pockets
    vox = np.flatnonzero(mask.ravel())
    node = np.full(mask.size, -1)
    node[vox] = np.arange(vox.size)
    p, q, slots = voxel_links(mask, with_slots=True)
    G = np.ones(p.size)
    top = np.where(vox % n == n - 1, 2.0, 0.0)
    diag = np.full(vox.size, 3e-3)  # storage of a time step, as in the concentration solve
    K = SymmetricPattern(vox.size, node[p], node[q]).assemble(G, diag + top)
    mg = VoxelMultigrid(mask.shape, vox)
    mg.set_operator(slots, G, diag, top)
    assert mg._pockets is not None and mg._pockets.sum() == pockets[mask].sum() > 20
    b = rng.standard_normal(vox.size)
    its = _cg_iterations(K, mg, b)
    assert its <= 16, its
    Bx, By = mg.apply(b), mg.apply(np.roll(b, 7))
    assert np.vdot(np.roll(b, 7), Bx) == pytest.approx(np.vdot(b, By), rel=1e-5)  # still symmetric


def test_potential_through_multigrid_equals_direct():
    ph = _porous((16, 16, 20))
    c = P.c_ref * (1 + 0.05 * np.sin(np.arange(ph.size).reshape(ph.shape) / 7.0))
    I = -10.0 * 16 * 16 * 1e-12
    sols = {}
    for m in ("direct", "gmg"):
        s = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, linear_solver=m)
        sols[m] = s.solve(c, current=I, c_top=P.c_ref)
        assert sols[m].converged
    assert sols["gmg"].diagnostics["linear_method"] == "gmg"
    assert sols["gmg"].cell_potential == pytest.approx(sols["direct"].cell_potential, abs=1e-10)
    assert np.nanmax(np.abs(sols["gmg"].face_overpotential - sols["direct"].face_overpotential)) < 1e-9


def test_overpotential_tolerance_stops_early_within_tolerance():
    """Stopping Newton on a 0.01 mV face-overpotential change: every face within that of the
    tight answer, in fewer linear iterations; the charge balance still meets rtol."""
    ph = _porous((16, 16, 24), seed=4)
    I = -20.0 * 16 * 16 * 1e-12
    tight = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, linear_solver="gmg")
    loose = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, linear_solver="gmg", rtol=1e-6, eta_tolerance=1e-5)
    a = tight.solve(P.c_ref, current=I)
    b = loose.solve(P.c_ref, current=I)
    assert b.converged
    assert np.nanmax(np.abs(a.face_overpotential - b.face_overpotential)) < 1e-5
    assert abs(b.total_current / I - 1) < 1e-6
    assert b.linear_iterations < 0.6 * a.linear_iterations
    with pytest.raises(ValueError, match="eta_tolerance"):
        PotentialSolver(ph, 1e-6, P, eta_tolerance=0.0)


def test_concentration_through_multigrid_equals_direct():
    ph = _porous((12, 12, 16), seed=5)
    rng = np.random.default_rng(6)
    c0 = P.c_ref * (1 + 0.1 * rng.standard_normal(ph.shape))
    out = {}
    for m in ("direct", "gmg"):
        s = ConcentrationSolver(ph, 1e-6, P, linear_solver=m)
        out[m] = s.step(c0, 0.05, c_top=P.c_ref)
    elec = ph == ELECTROLYTE
    assert np.allclose(out["gmg"][elec], out["direct"][elec], rtol=0, atol=1e-6 * P.c_ref)


@pytest.mark.parametrize("shape", [(12, 10, 14), (5, 1, 9)])
def test_compiled_cg_equals_the_python_path(shape):
    """VoxelMultigrid.solve (the whole CG in one compiled call) meets its tolerance, takes the
    iterations scipy's CG takes with the same V-cycle as preconditioner (+-1: rounding), warm
    starts, and reports a miss instead of returning an unconverged answer."""
    mask = _porous(shape, seed=7) == ELECTROLYTE
    mask[0, 0, 1] = True  # a lone cell next to a wall: a pocket when its neighbours are host
    K, mg = _system(mask)
    b = np.random.default_rng(8).standard_normal(K.shape[0])
    x, it = mg.solve(b, rtol=1e-9)
    assert np.linalg.norm(K @ x - b) <= 1e-9 * np.linalg.norm(b)
    assert abs(it - _cg_iterations(K, mg, b, rtol=1e-9)) <= 1
    x2, it2 = mg.solve(b, x0=x, rtol=1e-6)
    assert it2 == 0 and np.array_equal(x2, x)
    _, miss = mg.solve(b, rtol=1e-14, maxiter=1)
    assert miss == -1


def test_single_precision_cycle_is_free_of_units():
    """The cycle runs in single precision on coefficients scaled by the largest diagonal and a
    right-hand side scaled by its norm: the same system in units 1e-30 apart (a conductance in
    S against a float32's 1e-38 floor) takes the same iterations to the same answer."""
    mask = _porous((12, 10, 14), seed=3) == ELECTROLYTE
    K, mg = _system(mask)
    vox = np.flatnonzero(mask.ravel())
    p, q, slots = voxel_links(mask, with_slots=True)
    rng = np.random.default_rng(1)  # _system's draws
    G = rng.uniform(0.5, 2.0, p.size)
    top = np.where(vox % mask.shape[2] == mask.shape[2] - 1, 2.0, 0.0)
    diag = rng.uniform(0.0, 1e-3, vox.size)
    b = np.random.default_rng(8).standard_normal(K.shape[0])
    x, it = mg.solve(b, rtol=1e-9)
    tiny = VoxelMultigrid(mask.shape, vox, coarse_max=40)
    tiny.set_operator(slots, 1e-30 * G, 1e-30 * diag, 1e-30 * top)
    assert np.allclose(tiny.matvec(x), 1e-30 * (K @ x), rtol=1e-12, atol=1e-42)
    xt, itt = tiny.solve(1e-30 * b, rtol=1e-9)
    assert abs(itt - it) <= 1
    assert np.allclose(xt, x, rtol=1e-7, atol=1e-7 * np.abs(x).max())


def test_new_diagonal_on_the_same_faces_updates_the_cycle_in_place():
    """A Newton step on equipotential conductors changes only the diagonal (the Butler-Volmer
    links to the cell potential): the faces are kept and the packed cycle is updated in place,
    and it gives what a cycle packed afresh gives."""
    mask = _porous((12, 12, 16), seed=4) == ELECTROLYTE
    K, mg = _system(mask)
    vox = np.flatnonzero(mask.ravel())
    p, q, slots = voxel_links(mask, with_slots=True)
    G = np.random.default_rng(1).uniform(0.5, 2.0, p.size)
    top = np.where(vox % mask.shape[2] == mask.shape[2] - 1, 2.0, 0.0)
    diag = np.random.default_rng(9).uniform(0.0, 1e-2, vox.size)
    b = np.random.default_rng(8).standard_normal(vox.size)
    mg.solve(b)  # the cycle is packed
    mg.set_operator(slots, G.copy(), diag, top, hierarchy=False)
    assert mg._compiled is not None  # updated in place, not dropped
    x, it = mg.solve(b, rtol=1e-10)
    node = np.full(mask.size, -1)
    node[vox] = np.arange(vox.size)
    Knew = SymmetricPattern(vox.size, node[p], node[q]).assemble(G, diag + top)
    assert np.allclose(mg.matvec(x), Knew @ x, rtol=1e-12, atol=1e-12)
    assert np.linalg.norm(Knew @ x - b) <= 1e-10 * np.linalg.norm(b)
    mg._compiled = None  # packed afresh from the same levels
    x2, it2 = mg.solve(b, rtol=1e-10)
    assert abs(it2 - it) <= 1 and np.allclose(x2, x, rtol=1e-8, atol=1e-8 * np.abs(x).max())


def test_potential_cg_iterations_on_a_porous_host():
    """Two Gauss-Seidel sweeps each way; the coupled runs' 0.01 mV stop with the warm start
    along the sensitivity, CG stopping on an absolute move and no confirming Newton step
    after a step whose curvature error is below a tenth of the tolerance: on a 32^3 porous
    host the warm solve takes 1 CG iteration (8 before those), the tight one 28, every face
    within 1e-4 mV of the tight answer.  The second solve on the same geometry and salt
    field reuses the multigrid hierarchy; a conductivity change of more than a quarter
    rebuilds it."""
    ph = _porous((32, 32, 32), seed=2)
    I = -10.0 * 32 * 32 * 1e-12
    loose = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, linear_solver="gmg", eta_tolerance=1e-5, rtol=1e-6)
    a = loose.solve(P.c_ref, current=I)
    b = loose.solve(P.c_ref, current=1.05 * I, initial=a)
    assert loose.hierarchy_builds == 1
    tight = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, linear_solver="gmg")
    c = tight.solve(P.c_ref, current=1.05 * I, initial=a)
    assert b.converged and c.converged
    assert b.linear_iterations <= 2 and c.linear_iterations <= 36, (b.linear_iterations, c.linear_iterations)
    assert np.nanmax(np.abs(b.face_overpotential - c.face_overpotential)) < 1e-7
    d = loose.solve(1.3 * P.c_ref, current=1.05 * I, initial=b)
    assert d.converged and loose.hierarchy_builds == 2


def test_cg_stops_on_an_absolute_move():
    """With xtol, CG stops once an iteration moved no unknown by more than xtol and by at most
    half the move before: what is left of the error is below that, in fewer iterations than
    the relative residual asks for; a first iteration alone never stops on it."""
    mask = _porous((16, 16, 20), seed=7) == ELECTROLYTE
    K, mg = _system(mask)
    b = np.random.default_rng(8).standard_normal(K.shape[0])
    exact, _ = mg.solve(b, rtol=1e-13)
    scale = np.abs(exact).max()
    x, it = mg.solve(b, rtol=1e-13, xtol=1e-4 * scale)
    _, it_rel = mg.solve(b, rtol=1e-13)
    assert 1 < it < it_rel
    assert np.abs(x - exact).max() < 1e-4 * scale
    _, it_huge = mg.solve(b, rtol=1e-13, xtol=1e300)
    assert it_huge == 2


def test_potential_solve_is_bit_identical_at_one_and_two_threads():
    """The cycle kernels share their passes among Numba's threads in pieces whose arithmetic
    does not depend on the count (continuum/mg_kernels.py): a cold and a warm potential solve
    on a 40 x 40 x 24 porous host (above PARALLEL_MIN_CELLS) give the same bits."""
    import numba

    from continuum import mg_kernels

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has one thread in this process (NUMBA_NUM_THREADS)")
    ph = _porous((40, 40, 24), seed=3)
    assert ph.size >= mg_kernels.PARALLEL_MIN_CELLS
    I = -10.0 * 40 * 40 * 1e-12
    runs = []
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            s = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, linear_solver="gmg")
            cold = s.solve(P.c_ref, current=I)
            runs.append((cold, s.solve(P.c_ref, current=1.05 * I, initial=cold)))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(*runs):
        assert a.linear_iterations == b.linear_iterations > 0
        assert a.cell_potential == b.cell_potential
        assert a.phi_l.tobytes() == b.phi_l.tobytes()
        assert a.face_overpotential.tobytes() == b.face_overpotential.tobytes()


def test_each_specialisation_of_the_cycle_types_only_its_sweep(monkeypatch):
    """vcycle_into's (threaded, plane), one of them None (pcg's likewise): Numba drops the
    branches of the None one as it compiles, so the threaded specialisation types no call of
    the 2D grids' interleaved sweep (KMC runs never compile it: 9-10 s of a first run) and the
    plane one none of the threaded sweep.  Both cycles give the same bits."""
    import numba
    from numba import types

    from continuum import mg_kernels

    mask = np.ones((16, 1, 64), bool)  # a 2D grid the interleaved sweep takes
    mask[:, :, 20:30] = _porous((16, 1, 10), seed=2) == ELECTROLYTE
    b = np.random.default_rng(3).standard_normal(int(mask.sum()))
    out = []
    for on_plane, used, unused in ((False, "gauss_seidel", "gauss_seidel_plane"),
                                   (True, "gauss_seidel_plane", "gauss_seidel")):
        fresh = numba.njit(mg_kernels.vcycle_into.py_func)  # typed here, not loaded from the cache
        monkeypatch.setattr(mg_kernels, "vcycle_into", fresh)
        out.append(_system(mask, plane=on_plane)[1].apply(b))
        typemap = fresh.overloads[fresh.signatures[0]].type_annotation.typemap
        called = {t.dispatcher.py_func.__name__ for t in typemap.values() if isinstance(t, types.Dispatcher)}
        assert used in called and unused not in called
    assert out[0].tobytes() == out[1].tobytes()
