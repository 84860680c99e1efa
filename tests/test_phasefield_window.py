"""The (xi, c) step on the rows above settled lithium (`PhaseFieldSolver._window`,
docs/phasefield.md "Settled lithium"): it engages where it cuts enough rows, holds the settled
voxels, conserves lithium and charge, follows the whole grid's run within its step tolerance and
restores from a checkpoint to the bit."""
import numpy as np
import pytest

from continuum.phasefield import HONG2018, Galvanostatic, PhaseFieldSolver, Potentiostatic, planar_electrode
from continuum.phasefield import solver as pf_solver
from continuum.phasefield.geometry import PotentialWindow

H = 1e-6


def _solver(window=True, front=30e-6, shape=(24, 1, 48), **kw):
    phase, xi = planar_electrode(shape, H, HONG2018, front)
    s = PhaseFieldSolver(phase, H, HONG2018, xi=xi, rng=3, direct_max=0, **kw)  # multigrid for c and phi
    s.settled_window = window
    return s


def _lowest_unsettled(s):
    xi = s.order_parameter[:, 0, 1:]  # above the collector layer
    return 1 + int(np.flatnonzero((xi < 1.0 - pf_solver.SETTLED).any(axis=0)).min())


def test_window_holds_the_settled_rows_and_conserves_lithium():
    s = _solver()
    s.advance(0.2, Potentiostatic(-0.45))
    z0 = s._win.z0
    # WINDOW_MARGIN rows below the lowest unsettled one, and only settled lithium below it
    assert z0 == _lowest_unsettled(s) - pf_solver.WINDOW_MARGIN and z0 >= 48 // 8
    below = s.order_parameter[:, 0, 1:z0].copy(), s.concentration[:, 0, 1:z0].copy()
    assert below[0].min() >= 1.0 - pf_solver.SETTLED
    s.advance(1.0, Potentiostatic(-0.45))
    assert s._win.z0 >= z0  # the front moved up: the window did too
    np.testing.assert_array_equal(s.order_parameter[:, 0, 1:z0], below[0])
    np.testing.assert_array_equal(s.concentration[:, 0, 1:z0], below[1])  # held: no D_s exchange
    bal = s.balance()
    assert abs(bal["lithium"]) < 1e-12 * s.lithium_amount()
    assert abs(bal["charge"]) < 1e-12 * abs(s.charge)
    # the whole grid's run changes the settled rows' c (Li+ diffuses inside the metal at D_s)
    full = _solver(window=False)
    full.advance(1.2, Potentiostatic(-0.45))
    assert full._win is None
    assert not np.array_equal(full.concentration[:, 0, 1:z0], below[1])


@pytest.mark.parametrize("control", [Potentiostatic(-0.45), Galvanostatic(-2000.0)])
def test_window_follows_the_whole_grids_run(control):
    """The same growth as on the whole grid within the step control's tolerance: the lithium
    plated and the front's rows (noise on, so the trajectories part by a step's error)."""
    runs = []
    for window in (True, False):
        s = _solver(window)
        s.advance(2.0, control)
        runs.append(s)
    win, full = runs
    assert win._win is not None and win._win.z0 >= 10 and full._win is None
    grown = [s.lithium_amount() - s._initial[0] for s in runs]
    assert grown[0] == pytest.approx(grown[1], rel=5e-3)  # potentiostatic: 1.5e-3 apart measured
    assert np.array_equal(win.lithium_mask(), full.lithium_mask())
    assert win.cell_potential == pytest.approx(full.cell_potential, abs=2e-3)  # galvanostatic: 0.7 mV


def test_no_window_where_it_would_cut_few_rows():
    s = _solver(front=4e-6)
    s.advance(0.2, Potentiostatic(-0.45))
    assert s._win is None  # the lowest unsettled row is under an eighth of the grid up


def test_windowed_solver_restores_to_the_bit():
    def rest(s):
        s.advance(0.3, Potentiostatic(-0.45))

    ref, a = _solver(), _solver()
    for s in (ref, a):
        s.advance(0.4, Potentiostatic(-0.45))
    assert a._win is not None
    rest(ref)
    b = _solver()
    b.load_state_dict(a.state_dict())
    rest(b)
    for k in ("xi", "c", "phi"):
        np.testing.assert_array_equal(getattr(ref, k), getattr(b, k))
    assert (ref.t, ref.steps, ref.rejected, ref._win.z0) == (b.t, b.steps, b.rejected, b._win.z0)


@pytest.mark.parametrize("control", [Potentiostatic(-0.45), Galvanostatic(-2000.0)])
def test_potential_on_the_window_is_the_whole_grids_to_nanovolts(control, monkeypatch):
    """phi solved on the window, the settled slab below eliminated column by column
    (`geometry.PotentialWindow`), against phi solved on the whole grid from the same state: within
    1e-8 V everywhere (0.9 and 2.8 nV measured), the boundaries' charge within 1e-6 of itself; psi
    (V's response) the same.  With phi's solves stopped at 2 uV (`PHI_XTOL` 1e-3, the default's
    tenth), so that what is compared is the elimination, not where two CGs stop."""
    monkeypatch.setattr(pf_solver, "PHI_XTOL", 1e-3)
    s = _solver()
    s.advance(1.0, control)
    w = s._win
    assert w is not None and w.phi is not None and w.phi.slab.shape == (24, w.z0)
    V = s.cell_potential
    full, q_full = s._solve_potential(s._psys, s.phi, V, s._source)
    s._mg_key = None
    win, q_win = s._solve_potential(s._psys, s.phi, V, s._source, window=w)
    assert np.abs(win - full).max() < 1e-8
    assert q_win == pytest.approx(q_full, rel=1e-6)
    psi = []
    for window in (w, None):
        s._mg_key = None
        psi.append(s._solve_potential(s._psys, np.zeros_like(s.phi), 1.0, np.zeros(s.geo.n), top=0.0,
                                      accuracy=1e-12, window=window)[0])
    assert np.abs(psi[0] - psi[1]).max() < 1e-8


def test_a_dielectric_under_the_window_keeps_phi_on_the_whole_grid():
    """A slab with a voxel that carries no phi (dielectric host) cannot be eliminated column by
    column: phi stays on the whole grid, the (xi, c) window does not depend on it."""
    from continuum import HOST_DIELECTRIC
    phase, xi = planar_electrode((24, 1, 48), H, HONG2018, 30e-6)
    phase[5, 0, 3] = HOST_DIELECTRIC
    s = PhaseFieldSolver(phase, H, HONG2018, xi=np.where(phase == HOST_DIELECTRIC, 0.0, xi), rng=3, direct_max=0)
    s.advance(0.3, Potentiostatic(-0.45))
    assert s._win is not None and s._win.phi is None
    assert abs(s.balance()["lithium"]) < 1e-12 * s.lithium_amount()


def test_set_top_after_a_windowed_advance_solves_the_whole_grid():
    """Between `advance` calls phi is the whole grid's again: `set_top` re-solves it there (the
    grid's multigrid holds its own operator, not the window's) to within phi's solve tolerance
    (`PHI_XTOL` tol_eta, 20 uV; 3.5 uV measured) of a solve from zero."""
    s = _solver()
    s.advance(0.5, Potentiostatic(-0.45))
    assert s._win is not None and s._win.phi is not None
    s.set_top(potential=-0.01)
    s._mg_key = None
    fresh, _ = s._solve_potential(s._psys, np.zeros_like(s.phi), s.cell_potential, s._source)
    assert np.abs(s.phi - fresh).max() < pf_solver.PHI_XTOL * s.tol["eta"]


def test_a_uniform_slabs_currents_between_columns_are_its_schur_complement():
    """`PotentialWindow.lateral` against the slab eliminated by a dense solve: the current the
    window's bottom cells send into the slab, S psi_b = (D_link - K_bs K_ss^-1 K_sb) psi_b (psi =
    phi - V), is C + S_0 I (S_0 the columns' own conductance), and the slab's phi from the
    bottom cells' (`expand`) is -K_ss^-1 K_sb psi_b, both to 1e-10 of their scale."""
    s = _solver(front=14e-6, shape=(10, 1, 24))
    s.advance(0.05, Potentiostatic(-0.45))  # (the noise off the settled rows: a uniform slab)
    w = s._win if s._win is not None else pf_solver.Window(s.geo, 6)
    pw = PotentialWindow.of(s.geo, w)
    K, G, gbot = s._psys[0], s._psys[1], s._psys[2]
    C, T = pw.lateral(G, gbot)
    along = pw.reduce(G, gbot)
    slab, bottom = pw.slab.T.ravel(), pw.index[pw.pbot]  # g's phi unknowns, row by row; x = 0..nx-1
    A = K.csr().toarray()
    gl = G[pw.slab_links[:, -1]]
    coupling = -np.linalg.solve(A[np.ix_(slab, slab)], A[np.ix_(slab, bottom)])
    S = np.diag(gl) + A[np.ix_(bottom, slab)] @ coupling
    assert np.abs(C + np.diag(1.0 / along[:, -1]) - S).max() < 1e-10 * np.abs(S).max()
    assert np.abs(C).max() > 1e-3 * np.abs(S).max()  # the columns alone would miss it
    psi_b = np.random.default_rng(0).normal(size=bottom.size)
    V = -0.3
    phi = np.zeros(pw.np_)
    phi[pw.pbot] = V + psi_b
    out = pw.expand(phi, V, along, s.geo.np_, (C, T))
    assert np.abs(out[slab] - V - coupling @ psi_b).max() < 1e-10


def test_a_uniform_slab_that_shorts_the_cell_keeps_phi_on_the_window_exactly():
    """Metal from the collector to the top shorts V to the top's potential: the slab carries the
    cell's whole drop (hundreds of mV) and its columns are no longer independent (a window's phi
    by columns alone was 25-29 mV off the whole grid's in Hong's cell, and trapped the steps at a
    window's change).  A uniform 2D slab's currents between its columns are then taken exactly
    (`PotentialWindow.lateral`): phi on the window is the whole grid's to 1e-7 V (8.7 nV
    measured)."""
    phase, xi = planar_electrode((24, 1, 48), H, HONG2018, 47.6e-6)  # metal into the top layer
    s = PhaseFieldSolver(phase, H, HONG2018, xi=xi, rng=3, direct_max=0)
    s.advance(0.05, Potentiostatic(-0.45))
    w = s._win
    assert w is not None and w.z0 >= 6 and w.phi is not None and w.phi.exact
    V = s.cell_potential
    assert np.abs(V - s.phi[w.phi.index[w.phi.pbot]]).max() > 0.1  # the slab's drop
    s._mg_key = None
    full, q_full = s._solve_potential(s._psys, s.phi, V, s._source)
    s._mg_key = None
    win, q_win = s._solve_potential(s._psys, s.phi, V, s._source, window=w)
    assert np.abs(win - full).max() < 1e-7
    assert q_win == pytest.approx(q_full, rel=1e-6)


def test_a_slab_that_shorts_the_cell_sends_phi_back_to_the_whole_grid():
    """The same short on a 3D grid, whose slab `lateral` does not take (a 2D slab's only): its
    columns are no longer independent to microvolts, so phi goes back to the whole grid."""
    phase, xi = planar_electrode((12, 2, 48), H, HONG2018, 47.6e-6)  # metal into the top layer
    s = PhaseFieldSolver(phase, H, HONG2018, xi=xi, rng=3, direct_max=0)
    s.advance(0.05, Potentiostatic(-0.45))
    w = s._win
    assert w is not None and w.z0 >= 6 and w.phi is None  # tried on the first solve, then dropped
    slab = PotentialWindow.of(s.geo, w)
    drop = s.cell_potential - s.phi[slab.slab[:, -1]]
    assert np.abs(drop).max() > 1e-3  # a mV-scale drop across the slab
    s._mg_key = None
    fresh, _ = s._solve_potential(s._psys, np.zeros_like(s.phi), s.cell_potential, s._source)
    assert np.abs(s.phi - fresh).max() < 1e-5
