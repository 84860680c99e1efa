"""Potential solver against closed forms and conservation laws (validation ladder 8.1 of ../shared/MODEL.md)."""
import numpy as np
import pytest
from scipy import ndimage

from continuum import (ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM,
                       PhysicalParameters, PotentialSolver, butler_volmer, collector_connected,
                       equilibrium_overpotential)

P = PhysicalParameters()


def _planar(nz=6, n=2, top=LITHIUM):
    ph = np.full((n, n, nz), ELECTROLYTE, np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[:, :, 1] = top
    return ph


@pytest.mark.parametrize("alphas", [(0.5, 0.5), (0.3, 0.7)])
def test_reaction_limited_planar_electrode_follows_butler_volmer(alphas):
    """Planar lithium electrode, uniform c = c_ref, potentiostatic sweep.  The eta at the face
    is rebuilt from the cell potential and the 1D ohmic drop (closed form, not read back from
    the solver), and the current must follow BV within 1 %; Tafel slope ln(10)/(alpha_c f)."""
    prm = PhysicalParameters(kinetics=dict(alpha_a=alphas[0], alpha_c=alphas[1]))
    h, nz = 1e-6, 6
    ph = _planar(nz)
    s = PotentialSolver(ph, h, prm)
    kappa = prm.conductivity(prm.c_ref)
    dist = (nz - 2.5) * h  # first electrolyte voxel centre to the top boundary
    V = np.concatenate([np.linspace(-0.3, -0.2, 5), np.linspace(-0.1, 0.1, 9)])
    j, eta = [], []
    for v in V:
        sol = s.solve(prm.c_ref, cell_potential=v)
        assert sol.converged
        jj = sol.total_current / (ph.shape[0] * ph.shape[1] * h**2)
        j.append(jj)
        eta.append(v - (0.0 + jj * dist / kappa))  # phi_l at the face voxel = phi_top + j d / kappa
    j, eta = np.array(j), np.array(eta)
    bv = butler_volmer(eta, prm.c_ref, prm)
    nz_ = np.abs(V) > 1e-12
    assert np.allclose(j[nz_], bv[nz_], rtol=1e-2)
    assert np.max(np.abs(j[nz_] / bv[nz_] - 1)) < 1e-6  # in fact exact to solver tolerance
    assert j[np.argmin(np.abs(V))] == 0.0  # no current at eta = 0, c = c_ref
    tafel = V <= -0.2
    slope = np.polyfit(np.log10(-j[tafel]), eta[tafel], 1)[0]
    assert slope == pytest.approx(-np.log(10) / (alphas[1] * prm.f), rel=1e-2)


def test_equilibrium_shifts_with_concentration_and_host_faces_only_plate():
    h = 1e-6
    s = PotentialSolver(_planar(), h, P)
    c = 0.4 * P.c_ref
    sol = s.solve(c, cell_potential=float(equilibrium_overpotential(c, P)))
    assert abs(sol.total_current) < 1e-12 * P.kinetics.exchange_current_density * 4 * h**2
    # bare host with a nucleation overpotential: cathodic branch only, shifted by eta_nuc
    ph = _planar(top=HOST_CONDUCTIVE)
    prm = PhysicalParameters(electrolyte=dict(measured_conductivity=1e3))  # ohmic drop ~1e-9 V
    s = PotentialSolver(ph, h, prm, eta_nuc=0.05, activity=2.0)
    for v in (-0.1, 0.0, 0.1):
        sol = s.solve(prm.c_ref, cell_potential=v)
        j = sol.total_current / (4 * h**2)
        i0 = prm.kinetics.exchange_current_density
        assert j == pytest.approx(-2 * i0 * np.exp(-0.5 * prm.f * (v + 0.05)), rel=1e-4)
    with pytest.raises(ValueError):
        s.solve(prm.c_ref, current=+1e-12)  # nothing to strip


def porous_host(n=14, nz=16, porosity=0.6, seed=0, lithium=0.03, dielectric=0.03):
    """Blurred-noise host with a collector layer, some lithium, some dielectric, open top."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((n, n, nz)), 1.5, mode="wrap")
    ph = np.where(field > np.quantile(field, porosity), HOST_CONDUCTIVE, ELECTROLYTE).astype(np.uint8)
    ph[(rng.random(ph.shape) < dielectric)] = HOST_DIELECTRIC
    ph[(rng.random(ph.shape) < lithium)] = LITHIUM
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[:, :, -3:] = ELECTROLYTE
    return ph


@pytest.mark.parametrize("method,resistive", [("direct", False), ("amg", False), ("amg", True)])
def test_galvanostatic_charge_conservation_porous_host(method, resistive):
    h = 1e-6
    ph = porous_host()
    rng = np.random.default_rng(5)
    eta_nuc = rng.uniform(0.0, 0.04, ph.shape)
    act = rng.uniform(0.5, 2.0, ph.shape)
    c = P.electrolyte.concentration * (1 + 0.2 * rng.random(ph.shape))  # diffusion potential on
    sigma = rng.uniform(1e2, 1e3, ph.shape) if resistive else None
    s = PotentialSolver(ph, h, P, eta_nuc, act, conductivity=sigma, linear_solver=method)
    area = ph.shape[0] * ph.shape[1] * h**2
    I = -30.0 * area  # 3 mA/cm^2 plating
    sol = s.solve(c, current=I, c_top=P.electrolyte.concentration)
    assert sol.converged
    assert abs(sol.total_current - I) <= 1e-8 * abs(I)
    assert abs(sol.face_current_density.sum() * h**2 - I) <= 1e-6 * abs(I)
    assert abs(sol.top_current - I) <= 1e-6 * abs(I)  # Kirchhoff: what reacts left through the top
    elec = ph == ELECTROLYTE
    assert np.all(np.isfinite(sol.phi_l[elec])) and np.all(np.isnan(sol.phi_l[~elec]))
    conn = collector_connected(ph)
    assert np.all(np.isfinite(sol.phi_s[conn])) and np.all(np.isnan(sol.phi_s[~conn]))
    assert np.all(sol.phi_s[:, :, 0] == sol.cell_potential)
    # the face data are consistent with the fields
    fc = sol.faces
    eta = sol.phi_s.ravel()[fc.conductor_index] - sol.phi_l.ravel()[fc.electrolyte_index]
    assert np.allclose(sol.face_overpotential, eta, atol=1e-14)
    # stripping (lithium faces exist) and warm start
    sol2 = s.solve(c, current=-0.5 * I, c_top=P.electrolyte.concentration)
    assert abs(sol2.total_current + 0.5 * I) <= 1e-8 * abs(I)
    sol3 = s.solve(c, current=1.02 * I, c_top=P.electrolyte.concentration, initial=sol)
    cold = s.solve(c, current=1.02 * I, c_top=P.electrolyte.concentration)
    assert sol3.iterations <= cold.iterations
    assert sol3.cell_potential == pytest.approx(cold.cell_potential, abs=1e-9)


def test_amg_solve_is_reproducible_whatever_the_global_rng():
    """pyamg seeds its spectral-radius estimates from numpy's global RNG; the solver must
    give bit-identical fields for equal inputs (and leave the caller's RNG as it was)."""
    h = 1e-6
    ph = porous_host()
    c = np.full(ph.shape, P.electrolyte.concentration)
    I = -30.0 * ph.shape[0] * ph.shape[1] * h**2
    fields = []
    for state in (1, 2):
        np.random.seed(state)
        before = np.random.get_state()[1].copy()
        s = PotentialSolver(ph, h, P, linear_solver="amg")
        fields.append(s.solve(c, current=I, c_top=P.electrolyte.concentration).phi_l)
        assert np.array_equal(np.random.get_state()[1], before)
    assert np.array_equal(fields[0], fields[1], equal_nan=True)


def test_potentiostatic_and_galvanostatic_agree():
    h = 1e-6
    ph = porous_host(seed=2)
    s = PotentialSolver(ph, h, P)
    pot = s.solve(P.c_ref, cell_potential=-0.08)
    gal = s.solve(P.c_ref, current=pot.total_current)
    assert gal.cell_potential == pytest.approx(-0.08, abs=1e-9)
    assert np.nanmax(np.abs(gal.phi_l - pot.phi_l)) < 1e-9


def test_floating_electrolyte_pocket_is_pinned():
    ph = _planar(nz=8, n=5)
    ph[:, :, 3] = HOST_DIELECTRIC  # lid
    ph[:, :, 2] = HOST_DIELECTRIC
    ph[2, 2, 2] = ELECTROLYTE  # pocket between dielectric, lid and the lithium layer: reacts
    ph[:, :, 5] = HOST_DIELECTRIC
    ph[1, 1, 4] = ELECTROLYTE  # pocket enclosed by dielectric only: floating
    ph[1, 1, 5] = HOST_DIELECTRIC
    s = PotentialSolver(ph, 1e-6, P)
    sol = s.solve(P.c_ref, cell_potential=-0.05)
    assert sol.converged and sol.diagnostics["pinned_pockets"] >= 1
    assert np.all(np.isfinite(sol.phi_l[ph == ELECTROLYTE]))


def test_closed_bare_host_pocket_is_switched_off():
    """A pore sealed by bare host (no lithium) cannot pass net current and can only plate: no
    steady potential exists, so its faces are inactive; a sealed pore with lithium stays on."""
    ph = _planar(nz=10, n=6, top=HOST_CONDUCTIVE)
    ph[:, :, 2:5] = HOST_CONDUCTIVE
    ph[2, 2, 3] = ELECTROLYTE  # sealed, bare host walls
    ph[4, 4, 3] = ELECTROLYTE  # sealed, one lithium wall
    ph[4, 4, 2] = LITHIUM
    s = PotentialSolver(ph, 1e-6, P, eta_nuc=0.01)
    sol = s.solve(P.c_ref, current=-10 * 36e-12)
    assert sol.converged and sol.iterations < 10
    e = np.array(np.unravel_index(sol.faces.electrolyte_index, ph.shape)).T
    dead = np.all(e == (2, 2, 3), axis=1)
    li_pocket = np.all(e == (4, 4, 3), axis=1)
    assert dead.sum() == 6 and li_pocket.sum() == 6
    assert not sol.face_active[dead].any() and sol.face_active[li_pocket].all()
    assert np.all(sol.face_current_density[dead] == 0) and np.all(np.isnan(sol.face_overpotential[dead]))
    # the lithium-walled pocket: lithium strips to feed the plating host walls, net zero
    assert abs(sol.face_current_density[li_pocket].sum()) < 1e-9 * np.abs(sol.face_current_density[li_pocket]).max()
    assert sol.face_current_density[li_pocket & sol.faces.on_lithium][0] > 0
    assert sol.total_current == pytest.approx(-10 * 36e-12, rel=1e-8)


def _needle(r, U=1e-6):
    """Square needle (2U x 2U x 6U) on a flat lithium electrode, cell 8U wide, 16U of
    electrolyte above the flat; r voxels per U.  Every refinement represents it exactly."""
    W, nz, a, Hn = 8 * r, 2 + 16 * r, 2 * r, 6 * r
    ph = np.zeros((W, W, nz), np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[:, :, 1] = LITHIUM
    lo = W // 2 - a // 2
    ph[lo:lo + a, lo:lo + a, 2:2 + Hn] = LITHIUM
    return ph, U / r, Hn


def needle_tip_ratio(r):
    # primary distribution: kinetic resistance RT/(F i0) ~ 3e-7 Ohm m^2 against an ohmic
    # resistance h_cell/kappa ~ 2e-3 Ohm m^2 (Wagner number ~ 1e-4)
    prm = PhysicalParameters(kinetics=dict(exchange_current_density_mA_cm2=1e4),
                             electrolyte=dict(measured_conductivity=0.01))
    ph, h, Hn = _needle(r)
    sol = PotentialSolver(ph, h, prm).solve(prm.c_ref, cell_potential=-0.01)
    fc = sol.faces
    cx, cy, cz = np.unravel_index(fc.conductor_index, ph.shape)
    tip = (fc.direction == 5) & (cz == 1 + Hn)
    W = ph.shape[0]
    far = (np.abs(cx + 0.5 - W / 2) > 3 * r) & (np.abs(cy + 0.5 - W / 2) > 3 * r) & (cz == 1)
    assert tip.sum() == (2 * r) ** 2
    return sol.face_current_density[tip].mean() / sol.face_current_density[far].mean()


def test_needle_tip_current_concentration_converges():
    ratios = [needle_tip_ratio(r) for r in (1, 2, 4)]
    assert all(q > 5 for q in ratios)  # the tip draws several times the flat current density
    d1, d2 = abs(ratios[1] - ratios[0]), abs(ratios[2] - ratios[1])
    assert d2 < 0.8 * d1


@pytest.mark.slow
def test_needle_tip_current_concentration_converges_fine():
    ratios = [needle_tip_ratio(r) for r in (1, 2, 4, 8)]
    d = np.abs(np.diff(ratios))
    assert np.all(d[1:] < 0.8 * d[:-1])


def test_resistive_pillar_follows_ohms_law():
    """A 1x1-voxel conductive pillar in dielectric, reacting only at its top face; two
    segments of different conductivity.  The phi_s drop along it is I times the series
    resistance of the voxel links (harmonic face means), i.e. 1D Ohm's law."""
    h, H = 1e-6, 10
    ph = np.full((3, 3, H + 6), ELECTROLYTE, np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[:, :, 1:H + 1] = HOST_DIELECTRIC
    ph[1, 1, 1:H + 1] = HOST_CONDUCTIVE
    ph[1, 1, H] = LITHIUM  # top voxel is lithium: plates and strips
    sigma = np.full(ph.shape, 1e7)
    sigma[1, 1, 1:6] = 50.0
    sigma[1, 1, 6:H + 1] = 200.0
    s = PotentialSolver(ph, h, P, conductivity=sigma)
    I = -20.0 * 9 * h**2
    sol = s.solve(P.c_ref, current=I)
    assert sol.total_current == pytest.approx(I, rel=1e-8)
    assert len(sol.faces) == 1
    col = sol.phi_s[1, 1, :H + 1]
    links = 1.0 / (2 * sigma[1, 1, :H] * sigma[1, 1, 1:H + 1] / (sigma[1, 1, :H] + sigma[1, 1, 1:H + 1]))
    # current flows from the electrolyte down the pillar to the collector: phi_s rises upward
    expected = sol.cell_potential - I * np.concatenate([[0.0], np.cumsum(links * h / h**2)])
    drop = col[-1] - col[0]
    assert drop == pytest.approx(expected[-1] - expected[0], rel=1e-6)
    assert np.allclose(col, expected, rtol=0, atol=1e-9 * abs(drop))
    # the equipotential fast path has no drop at all
    eq = PotentialSolver(ph, h, P).solve(P.c_ref, current=I)
    assert np.nanmax(eq.phi_s) == np.nanmin(eq.phi_s) == eq.cell_potential


def _numpy_residual(s, u, V, pre, I_app):
    """The Newton residual as numpy writes it (bincounts and continuum.kinetics), the
    reference of the compiled one."""
    n = s.n
    lp, lq = np.concatenate([s.ee_p, s.cc_p]), np.concatenate([s.ee_q, s.cc_q])
    flux = pre["G_lin"] * (u[lp] - u[lq])
    R = np.bincount(lp, weights=flux, minlength=n) - np.bincount(lq, weights=flux, minlength=n)
    R += np.bincount(s.top, weights=pre["G_top"] * (u[s.top] - pre["phi_top"]), minlength=n)
    R += pre["src"]
    R[s.pins] += s.h * s.params.conductivity(s.params.c_ref) * u[s.pins]
    R += np.bincount(s.cv_p, weights=s.G_cv * (u[s.cv_p] - V), minlength=n)
    xq = np.where(s.bv_v, V, u[np.minimum(s.bv_q, n - 1)])
    eta = xq - u[s.bv_e]
    i, di = butler_volmer(eta, pre["c_face"], s.params, derivative=True, **s.face_site)
    Ai = s.area * i
    R -= np.bincount(s.bv_e, weights=Ai, minlength=n)
    R += np.bincount(s.bvc_q, weights=Ai[~s.bv_v], minlength=n)
    return R, Ai.sum() - I_app, eta, i, di


@pytest.mark.parametrize("resistive", [False, True])
def test_compiled_residual_equals_numpy(resistive):
    """The compiled residual (links, top, pins, resistive conductors, Butler-Volmer faces on
    lithium and on bare host with eta_nuc and activity) equals the numpy formulation to
    1e-12, and its link conductances the logarithmic mean (series branch and log branch)
    to 1e-14 of an accurate reference ((a - b) / log1p((a - b) / b): no cancellation)."""
    h = 1e-6
    ph = porous_host(seed=3)
    rng = np.random.default_rng(11)
    eta_nuc, act = rng.uniform(0.0, 0.04, ph.shape), rng.uniform(0.5, 2.0, ph.shape)
    c = P.electrolyte.concentration * (1 + 0.3 * rng.random(ph.shape))  # both conductance branches
    sigma = rng.uniform(1e2, 1e3, ph.shape) if resistive else None
    s = PotentialSolver(ph, h, P, eta_nuc, act, conductivity=sigma)
    pre = s._prepare(c, 0.003, 0.9 * P.electrolyte.concentration)
    kap = P.conductivity(pre["ce"])
    a, b = kap[s.ee_p], kap[s.ee_q]
    x = np.abs(a - b) / (a + b)
    assert (x < 1e-2).sum() > 100 and (x > 1e-2).sum() > 100  # both branches
    G_ref = h * np.where(a == b, a, (a - b) / np.log1p((a - b) / np.where(a == b, 1.0, b)))
    assert np.allclose(pre["G_lin"][: s.ee_p.size], G_ref, rtol=1e-14, atol=0)
    u = rng.uniform(-0.05, 0.05, s.n)
    V = -0.07
    R, F, eta, i, di, _ = s._residual(u, V, pre, -1e-9)
    Rn, Fn, etan, i_n, din = _numpy_residual(s, u, V, pre, -1e-9)
    scale = np.abs(Rn).max()
    assert np.allclose(R, Rn, rtol=0, atol=1e-12 * scale)
    assert F == pytest.approx(Fn, rel=1e-12, abs=1e-12 * np.abs(s.area * i_n).sum())
    assert np.array_equal(eta, etan)
    assert np.allclose(i, i_n, rtol=1e-12, atol=0) and np.allclose(di, din, rtol=1e-12, atol=0)


def test_warm_start_moves_along_the_sensitivity():
    """A galvanostatic solution carries d(phi)/dV; a warm start from it (even by another
    solver object, as coupled runs make one per step) steps along it to the new current and
    needs far fewer CG iterations than the same warm start without it, every face within the
    0.01 mV tolerance of the tight answer."""
    ph = porous_host(n=20, nz=24, seed=6, lithium=0.0, dielectric=0.0)
    I = -10.0 * 20 * 20 * 1e-12
    opts = dict(eta_nuc=0.02, linear_solver="gmg", eta_tolerance=1e-5, rtol=1e-6)
    first = PotentialSolver(ph, 1e-6, P, **opts).solve(P.c_ref, current=I)
    elec = ph == ELECTROLYTE
    assert np.all(np.isfinite(first.sensitivity[elec]))
    assert np.all(first.sensitivity[elec] <= 0) and np.all(first.sensitivity[elec] >= -1)  # phi_l lags V
    with_w = PotentialSolver(ph, 1e-6, P, **opts).solve(P.c_ref, current=1.05 * I, initial=first)
    from dataclasses import replace

    without = PotentialSolver(ph, 1e-6, P, **opts).solve(P.c_ref, current=1.05 * I,
                                                        initial=replace(first, sensitivity_values=None))
    tight = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, linear_solver="gmg").solve(P.c_ref, current=1.05 * I)
    assert with_w.converged and without.converged
    assert with_w.linear_iterations <= 3 and without.linear_iterations >= 2 * with_w.linear_iterations, \
        (with_w.linear_iterations, without.linear_iterations)
    for sol in (with_w, without):
        assert np.nanmax(np.abs(sol.face_overpotential - tight.face_overpotential)) < 1e-5
        assert abs(sol.total_current / (1.05 * I) - 1) < 1e-6


def _smooth_factor(shape, amplitude, rng):
    b = ndimage.gaussian_filter(rng.standard_normal(shape), 3, mode="wrap")
    return 1 + amplitude * np.tanh(b / b.std())


def test_warm_start_follows_the_salt_diffusion_potential():
    """A solution carries the salt field it was solved with; a warm start from it (by another
    solver object, as coupled runs make one per step) after the salt moved by a smooth 1 %
    shifts phi_l by the diffusion potential of that move first: one Newton step of 2 CG
    iterations where the same start without it takes 2 steps and 6-7, every face within a
    tenth of the 0.01 mV tolerance of the tight answer."""
    from dataclasses import replace

    ph = porous_host(n=20, nz=24, seed=6, lithium=0.0, dielectric=0.0)
    rng = np.random.default_rng(6)
    c = P.c_ref * _smooth_factor(ph.shape, 0.05, rng)
    c_step = c * _smooth_factor(ph.shape, 0.01, rng)
    I = -10.0 * 20 * 20 * 1e-12
    opts = dict(eta_nuc=0.02, linear_solver="gmg", eta_tolerance=1e-5, rtol=1e-6)
    first = PotentialSolver(ph, 1e-6, P, **opts).solve(c, current=I, c_top=P.c_ref)
    elec = ph == ELECTROLYTE
    assert np.array_equal(np.isfinite(first.concentration), elec) and first.c_top == P.c_ref
    kw = dict(current=1.05 * I, c_top=1.002 * P.c_ref)
    shifted = PotentialSolver(ph, 1e-6, P, **opts).solve(c_step, initial=first, **kw)
    plain = PotentialSolver(ph, 1e-6, P, **opts).solve(c_step, initial=replace(first, concentration_values=None), **kw)
    tight = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, linear_solver="gmg").solve(c_step, **kw)
    assert shifted.converged and plain.converged
    assert shifted.iterations == 1 and shifted.linear_iterations <= 2, (shifted.iterations, shifted.linear_iterations)
    assert plain.iterations >= 2 and plain.linear_iterations >= 2 * shifted.linear_iterations
    for sol in (shifted, plain):
        assert np.nanmax(np.abs(sol.face_overpotential - tight.face_overpotential)) < 1e-6
        assert abs(sol.total_current / (1.05 * I) - 1) < 1e-6


@pytest.mark.parametrize("move", [0.01, 0.08, 0.3])
def test_kept_operator_leaves_every_face_within_tolerance(move):
    """With eta_tolerance the solver keeps the multigrid's operator while every coefficient
    stays within 10 % of it (salt moves of a few percent, small Newton steps): the residual is
    exact, so the answer is the current one.  Three salt moves in a row on one solver, by
    1 %, 8 % (kept, near the limit) and 30 % (rebuilt), each to 0.01 mV of the tight answer,
    the 1 % ones without a new operator."""
    ph = porous_host(n=20, nz=24, seed=7, lithium=0.02, dielectric=0.0)
    rng = np.random.default_rng(7)
    c = P.c_ref * _smooth_factor(ph.shape, 0.05, rng)
    I = -10.0 * 20 * 20 * 1e-12
    loose = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, linear_solver="gmg", eta_tolerance=1e-5, rtol=1e-6)
    tight = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, linear_solver="gmg")
    sol = loose.solve(c, current=I, c_top=P.c_ref)
    updates = []
    set_operator = loose._mg.set_operator
    loose._mg.set_operator = lambda *a, **k: (updates.append(1), set_operator(*a, **k))
    for k in range(3):
        c = c * _smooth_factor(ph.shape, move, rng)
        sol = loose.solve(c, current=I * (1 + 0.02 * k), c_top=P.c_ref, initial=sol)
        ref = tight.solve(c, current=I * (1 + 0.02 * k), c_top=P.c_ref)
        assert sol.converged
        assert np.nanmax(np.abs(sol.face_overpotential - ref.face_overpotential)) < 1e-5
        assert abs(sol.total_current / ref.total_current - 1) < 1e-6
    if move == 0.01:
        assert len(updates) == 0


@pytest.mark.parametrize("shape", [(1, 1, 5), (2, 3, 4), (1, 7, 3), (5, 1, 1), (2, 2, 2), (4, 3, 5)])
def test_voxel_links_lists_every_face_once(shape):
    """The compiled voxel_links against its definition: each face between two mask voxels
    once, +x, +y (periodic, none along an axis of length 1) and +z (bounded), by axis and
    then by the low voxel, with slot axis * N + p."""
    from continuum.fv import voxel_links

    mask = np.random.default_rng(sum(shape)).random(shape) < 0.7
    nx, ny, nz = shape
    want = []
    for axis, n_axis in enumerate(shape):
        for v in np.flatnonzero(mask.ravel()):
            i, j, k = np.unravel_index(v, shape)
            if axis < 2 and n_axis == 1 or axis == 2 and k + 1 == nz:
                continue
            nb = [i, j, k]
            nb[axis] = (nb[axis] + 1) % n_axis
            q = np.ravel_multi_index(nb, shape)
            if mask.ravel()[q]:
                want.append((v, q, axis * mask.size + v))
    p, q, slots = voxel_links(mask, with_slots=True)
    want = np.array(want, dtype=np.int64).reshape(-1, 3)
    assert p.dtype == q.dtype == slots.dtype == np.int64
    assert np.array_equal(np.stack([p, q, slots], axis=1), want)


def test_voxels_new_to_a_warm_start_take_their_neighbours_mean():
    """A warm start's voxels new to the electrolyte start at the mean of their finite face
    neighbours (inside a cluster: of its members filled in an earlier sweep; none: the
    default), not at phi_top: a dissolved deposit voxel sits where its neighbours are."""
    from continuum import potential_kernels as PK

    shape = (4, 4, 5)
    grid = np.arange(np.prod(shape), dtype=float).reshape(shape) * 1e-3
    grid[1, 1, 2] = grid[1, 2, 2] = np.nan  # a pair inside the field
    grid[:, :, 0] = grid[:, :, 1] = np.nan  # a slab: the bottom layer reached through the next
    iso = np.full(shape, np.nan)
    cells = np.flatnonzero(~np.isfinite(grid.ravel()))
    out = np.empty(cells.size)
    PK.neighbour_means(grid.ravel(), *shape, cells, -7.0, out)
    got = dict(zip(cells, out))
    flat = lambda i, j, k: np.ravel_multi_index((i, j, k), shape)  # noqa: E731
    first = np.mean([grid[0, 1, 2], grid[2, 1, 2], grid[1, 0, 2], grid[1, 1, 3]])  # finite ones
    assert got[flat(1, 1, 2)] == pytest.approx(first)
    assert got[flat(2, 3, 1)] == pytest.approx(grid[2, 3, 2])
    assert got[flat(2, 3, 0)] == pytest.approx(grid[2, 3, 2])  # its only filled neighbour, above
    out = np.empty(1)
    PK.neighbour_means(iso.ravel(), *shape, np.array([flat(2, 2, 2)]), -7.0, out)
    assert out[0] == -7.0


def _porous_case(rng_seed, resistive):
    """The 12 x 12 x 14 porous host these solver-state tests share: (phase, rng, salt field,
    conductivity or None, current [A])."""
    ph = porous_host(n=12, nz=14, seed=3)
    rng = np.random.default_rng(rng_seed)
    c = P.c_ref * _smooth_factor(ph.shape, 0.05, rng)
    sigma = rng.uniform(1e2, 1e3, ph.shape) if resistive else None
    return ph, rng, c, sigma, -10.0 * 12 * 12 * 1e-12


def _same_solution(a, b):
    for name in ("phi_l", "phi_s", "face_overpotential", "face_current_density", "sensitivity", "concentration"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or np.array_equal(x, y, equal_nan=True), name
    assert (a.cell_potential, a.iterations, a.linear_iterations) == (b.cell_potential, b.iterations,
                                                                     b.linear_iterations)


@pytest.mark.parametrize("method,resistive,tol", [("gmg", False, 1e-5), ("gmg", True, None), ("direct", False, 1e-5)])
def test_renewed_solver_repeats_a_new_one_bit_for_bit(method, resistive, tol):
    """A renewed solver keeps the geometry (not built again) and nothing of its solves: after
    two solves on the old one (kept multigrid hierarchy, operator and sensitivity), the renewed
    one's warm solve on a moved salt field is bit for bit a new solver's, so a resumed run,
    which starts without it, repeats the uninterrupted one."""
    ph, rng, c, sigma, I = _porous_case(3, resistive)
    kw = dict(eta_nuc=0.02, conductivity=sigma, linear_solver=method, eta_tolerance=tol)
    old = PotentialSolver(ph, 1e-6, P, **kw)
    sol = old.solve(c, current=I, c_top=P.c_ref)
    sol = old.solve(c, current=1.05 * I, c_top=P.c_ref, initial=sol)
    renewed = old.renewed()
    assert renewed.ee_p is old.ee_p and renewed.faces is old.faces  # the geometry is shared
    c2 = c * _smooth_factor(ph.shape, 0.02, rng)
    for k in range(2):  # its own state grows as a new one's
        got = renewed.solve(c2, current=(1.1 + 0.05 * k) * I, c_top=P.c_ref, initial=sol)
        if k == 0:
            new = PotentialSolver(ph, 1e-6, P, **kw)
        want = new.solve(c2, current=(1.1 + 0.05 * k) * I, c_top=P.c_ref, initial=sol)
        _same_solution(got, want)
        assert renewed.hierarchy_builds == new.hierarchy_builds
        sol = want
    # the old one is unaffected by the renewed one's solves
    assert old.solve(c2, current=I, c_top=P.c_ref, initial=sol).converged


def test_resistive_conductors_converge_on_the_overpotential_tolerance():
    """With resistive conductors the eta_tolerance solve (the coupled runs' stop) solves the
    sensitivity tightly: loose (as without them) Newton diverged here, 60 steps without
    converging.  Its faces agree with the tight solve's within the tolerance."""
    ph, _, c, sigma, I = _porous_case(5, resistive=True)
    tight = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, conductivity=sigma).solve(c, current=I, c_top=P.c_ref)
    s = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, conductivity=sigma, linear_solver="gmg", eta_tolerance=1e-5)
    prev = None
    for k in range(2):
        sol = s.solve(c, current=I, c_top=P.c_ref, initial=prev)
        assert sol.converged and sol.iterations <= 4
        on = sol.face_active
        assert np.max(np.abs(sol.face_overpotential[on] - tight.face_overpotential[on])) < 1e-5
        assert sol.total_current == pytest.approx(I, rel=1e-9)
        prev = sol


@pytest.mark.parametrize("method,resistive,tol", [("gmg", False, 1e-5), ("gmg", True, 1e-5), ("gmg", True, None),
                                                  ("direct", False, 1e-5)])
def test_shared_scratch_carries_nothing_between_solves(method, resistive, tol):
    """Solvers that share their temporaries (``use_scratch``: the coupled run hands each new
    solver the last one's) give bit for bit the answers of a solver with its own: a solve of
    another geometry between two of this one's, and a salt change that rebuilds the
    multigrid's operator, leave no trace in them."""
    ph, rng, c, sigma, I = _porous_case(5, resistive)
    other_ph = porous_host(n=12, nz=14, seed=4)
    kw = dict(eta_nuc=0.02, conductivity=sigma, linear_solver=method, eta_tolerance=tol)
    alone = PotentialSolver(ph, 1e-6, P, **kw)
    shared = PotentialSolver(ph, 1e-6, P, **kw)
    other = PotentialSolver(other_ph, 1e-6, P, eta_nuc=0.01, linear_solver=method, eta_tolerance=1e-5)
    other.use_scratch(shared.scratch())
    assert other.scratch() is shared.scratch()
    prev_a = prev_s = prev_o = None
    for k in range(4):
        if k == 2:
            c = c * _smooth_factor(ph.shape, 0.3, rng)  # beyond the kept operator's 10 %
        want = alone.solve(c, current=(1 + 0.05 * k) * I, c_top=P.c_ref, initial=prev_a)
        prev_o = other.solve(c, current=(1.2 - 0.05 * k) * I, c_top=P.c_ref, initial=prev_o)
        got = shared.solve(c, current=(1 + 0.05 * k) * I, c_top=P.c_ref, initial=prev_s)
        _same_solution(got, want)
        assert got.converged and prev_o.converged
        prev_a, prev_s = want, got
    if method == "gmg":
        assert len(shared.scratch()) > 0 and shared.scratch().nbytes > 0


def test_faces_only_residual_is_the_full_residuals_face_part():
    """The charge polish evaluates the faces alone (``faces_only``): the same eta, i, di/deta and
    total current as the full residual, bit for bit, and R left unwritten."""
    ph = porous_host(n=10, nz=12, seed=2)
    s = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, eta_tolerance=1e-5)
    c = P.c_ref * _smooth_factor(ph.shape, 0.05, np.random.default_rng(2))
    sol = s.solve(c, current=-1e-9, c_top=P.c_ref)
    pre = s._prepare(c, 0.0, P.c_ref)
    u = np.concatenate([sol.phi_l.ravel()[s.elec_flat], sol.phi_s.ravel()[s.cond_flat]])
    R, F, eta, i, di, sums = s._residual(u, sol.cell_potential + 1e-4, pre, -1e-9)
    full = [R.copy(), F, eta.copy(), i.copy(), di.copy(), sums]
    R[:] = 7.0
    R2, F2, eta2, i2, di2, sums2 = s._residual(u, sol.cell_potential + 1e-4, pre, -1e-9, faces_only=True)
    assert R2 is None and np.all(R == 7.0)
    assert F2 == full[1] and sums2[0] == full[5][0] and sums2[1:] == [0.0, 0.0]
    for a, b in zip((eta2, i2, di2), full[2:5]):
        assert np.array_equal(a, b)
    assert abs(F2) > 1e-3 * 1e-9  # the shifted V: the check is not of a zero


def test_scratch_reuses_its_arrays_by_name_and_grows_with_room():
    from continuum.scratch import Scratch

    ws = Scratch()
    a = ws.array("a", (4, 5))
    assert a.shape == (4, 5) and a.flags.c_contiguous and len(ws) == 1
    a[:] = 3.0
    b = ws.array("a", 12)  # fewer elements: the same memory
    assert np.shares_memory(a, b) and b.shape == (12,)
    assert np.shares_memory(ws.array("a", 21), a)  # within the 1/16 to spare of 20
    big = ws.array("a", 40)
    assert not np.shares_memory(big, a)
    assert not np.shares_memory(ws.array("b", 12), big)  # names do not share
    ints = ws.array("a", 3, dtype=np.int64)
    assert ints.dtype == np.int64 and not np.shares_memory(ints, big)
    z = ws.zeros("a", 40)
    assert np.shares_memory(z, big) and not z.any()


def test_coupled_run_reuses_the_solver_while_the_geometry_is_unchanged():
    """A pulse's off-times and short steps fill no voxel: the run renews the last solver
    instead of building the geometry again, and its rows are bit for bit those of a run that
    builds a new solver every step."""
    from kmc.coupling.config import make_config
    from kmc.coupling.simulation import PlatingSimulation

    cfg = make_config({}, ["host.nx=8", "host.ny=8", "host.host_layers=4", "host.reservoir_layers=6",
                           "protocol.kind=pulse", "protocol.current_density_mA_cm2=5",
                           "protocol.capacity_mAh_cm2=0.02", "snapshots=0"])
    host = cfg.host.build(np.random.SeedSequence(1))
    segs = cfg.protocol.segments()
    sims = []
    for reuse in (True, False):
        sim = PlatingSimulation(cfg, host, seed_sequence=np.random.SeedSequence(2))
        if not reuse:  # forget the kept solver before every step
            step = sim.macro_step
            def forgetting(*a, sim=sim, step=step, **k):
                sim._kept_solver = None
                return step(*a, **k)

            sim.macro_step = forgetting
        sims.append((sim, sim.run(segs)))
    (a, ra), (b, rb) = sims
    assert a.steps == b.steps > 10
    assert b.solvers_built > a.solvers_built  # reuse happened
    assert len(ra.rows) == len(rb.rows)
    for x, y in zip(ra.rows, rb.rows):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == y[k] or (x[k] != x[k] and y[k] != y[k]), k


def test_given_connectivity_builds_the_same_solver():
    """A caller's collector connectivity (the coupled run's lattice has it) replaces the
    solver's own flood fill: the same solver, kept as a copy; a wrong shape is refused."""
    ph = porous_host(n=10, nz=12, seed=5)
    conn = collector_connected(ph)
    a = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02)
    b = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, connected=conn)
    assert b.connected is not conn and np.array_equal(a.connected, b.connected)
    I = -10.0 * 10 * 10 * 1e-12
    _same_solution(a.solve(P.c_ref, current=I), b.solve(P.c_ref, current=I))
    with pytest.raises(ValueError, match="connected"):
        PotentialSolver(ph, 1e-6, P, connected=conn[:, :, 1:])


def test_warm_start_fields_on_the_unknowns_spread_to_the_full_grids():
    """A solution keeps its warm-start fields (d phi/dV, the salt) on the solver's unknowns and
    electrolyte voxels, not as full grids (two fresh 17 MB grids per solve at 128^3);
    ``sensitivity`` and ``concentration`` spread them onto the grid, NaN elsewhere.  A warm
    start from the full grids themselves (read off the grid, as from another geometry's
    solve) is bit for bit the one from the compact fields."""
    from dataclasses import replace

    from continuum.potential import VoxelValues

    ph, rng, c, _, I = _porous_case(7, resistive=False)
    kw = dict(eta_nuc=0.02, linear_solver="gmg", eta_tolerance=1e-5)
    s = PotentialSolver(ph, 1e-6, P, **kw)
    first = s.solve(c, current=I, c_top=P.c_ref)
    sens, conc = first.sensitivity_values, first.concentration_values
    assert sens.values.size == s.n and conc.values.size == s.ne
    elec = ph == ELECTROLYTE
    assert np.array_equal(np.isfinite(first.concentration), elec)
    assert np.array_equal(first.concentration[elec], np.maximum(c[elec], s.c_floor))
    assert np.array_equal(first.sensitivity.ravel()[s.node_flat], sens.values)  # finite there, NaN elsewhere
    assert np.isfinite(sens.values).all() and np.isfinite(first.sensitivity).sum() == s.n
    every = np.arange(ph.size)
    full = replace(first, sensitivity_values=VoxelValues(first.sensitivity.ravel(), every, ph.shape),
                   concentration_values=VoxelValues(first.concentration.ravel(), every, ph.shape))
    c2 = c * _smooth_factor(ph.shape, 0.02, rng)
    for k in range(2):  # the moved salt; the current alone
        a = PotentialSolver(ph, 1e-6, P, **kw).solve(c2, current=(1.1 + 0.05 * k) * I, c_top=P.c_ref, initial=first)
        b = PotentialSolver(ph, 1e-6, P, **kw).solve(c2, current=(1.1 + 0.05 * k) * I, c_top=P.c_ref, initial=full)
        _same_solution(a, b)
        first = full = a


def test_warm_solve_allocates_little_beyond_its_answer():
    """Fresh memory costs its page faults (at 128^3 the first warm solve after a cold one took
    83 MB of them, ~0.1 CPU-s): a warm solve's allocations peak within its answer (phi_l,
    phi_s, the face arrays) and two vectors on the unknowns (its CG answer; the warm-start
    fields are the solve's own vectors, the predictor's and Newton's temporaries the
    solver's); with the salt moved (the salt field's own copy, the conductivities) within
    four."""
    import tracemalloc

    n = 32
    ph = porous_host(n=n, nz=n, seed=3)
    rng = np.random.default_rng(3)
    c = P.c_ref * _smooth_factor(ph.shape, 0.05, rng)
    I = -10.0 * n * n * 1e-12
    s = PotentialSolver(ph, 1e-6, P, eta_nuc=0.02, linear_solver="gmg", eta_tolerance=1e-5)
    sol = s.solve(c, current=I, c_top=P.c_ref)
    for k, (cc, vectors) in enumerate([(c, 2), (c * _smooth_factor(ph.shape, 0.01, rng), 4)]):
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            sol = s.solve(cc, current=(1.05 + 0.05 * k) * I, c_top=P.c_ref, initial=sol)
            peak = tracemalloc.get_traced_memory()[1] - start
        finally:
            tracemalloc.stop()
        assert sol.converged
        answer = sum(a.nbytes for a in (sol.phi_l, sol.phi_s, sol.face_overpotential, sol.face_current_density))
        assert peak <= answer + vectors * 8 * s.n, (k, (peak - answer) / (8 * s.n))
