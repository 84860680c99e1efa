"""Salt transport against closed forms (validation ladder 8.1 of ../shared/MODEL.md): steady symmetric cell and limiting
current, Sand's time, and exact salt balance on a porous host."""
import numpy as np
import pytest
from scipy import ndimage

from continuum import (FARADAY, ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM,
                       ConcentrationSolver, PhysicalParameters, collector_connected, conductor_mask, interface_faces)

P = PhysicalParameters()
D = P.electrolyte.salt_diffusivity
TP = P.electrolyte.transference_number
C0 = P.electrolyte.concentration


def test_symmetric_cell_steady_profile_and_limiting_current():
    """Li|Li cell on a (3, 2, N) grid: plating on the bottom electrode, stripping on the top
    one, no reservoir (salt conserved).  The steady profile is linear with slope
    (1 - t+) J / (F D), and the cathode concentration reaches zero at
    i_lim = 2 F D c0 / ((1 - t+) L)."""
    h, n_el = 1e-6, 40
    L = n_el * h
    ph = np.full((3, 2, n_el + 2), ELECTROLYTE, np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[:, :, -1] = LITHIUM  # the counter electrode (both ends react in this cell)
    faces = interface_faces(ph, conductor_mask(ph))
    J = 20.0  # A/m^2, about a third of the limiting current
    i_face = np.where(faces.direction == 5, -J, +J)  # plating at z = 0, stripping at the top
    cs = ConcentrationSolver(ph, h, P)
    c = np.full(ph.shape, C0)
    for _ in range(10):  # implicit Euler with dt = 10 L^2/D: each step damps transients 100x
        c = cs.step(c, 50.0, faces, i_face)
    col = c[:, :, 1:-1]
    assert np.ptp(col, axis=(0, 1)).max() < 1e-9 * C0  # laterally uniform
    prof = col[0, 0]
    z = (np.arange(n_el) + 0.5) * h
    slope, icpt = np.polyfit(z, prof, 1)
    assert np.abs(prof - (slope * z + icpt)).max() < 1e-8 * C0  # linear
    assert slope == pytest.approx((1 - TP) * J / (FARADAY * D), rel=1e-6)
    assert prof.mean() == pytest.approx(C0, rel=1e-12)  # salt conserved
    c_cathode = icpt  # the profile extrapolated to the electrode face z = 0
    i_lim = J * C0 / (C0 - c_cathode)  # linear in J: zero at this current
    expected = 2 * FARADAY * D * C0 / ((1 - TP) * L)
    assert i_lim == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("J", [50.0, 100.0])
def test_sand_time(J):
    """Constant plating current into a semi-infinite column: the electrode concentration hits
    zero at t_s = pi D (F c0)^2 / (4 (J (1 - t+))^2)  (so t_s ~ J^-2)."""
    ts = np.pi * D * (FARADAY * C0) ** 2 / (4 * (J * (1 - TP)) ** 2)
    N, nt = 300, 1500
    h = 6 * np.sqrt(D * ts) / N  # column 6 diffusion lengths long: semi-infinite to 1e-7
    ph = np.zeros((1, 1, N + 1), np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    faces = interface_faces(ph, collector_connected(ph))
    assert len(faces) == 1
    cs = ConcentrationSolver(ph, h, P)
    c = np.full(ph.shape, C0)
    dt = 1.2 * ts / nt
    prev_t, prev_c = 0.0, C0
    t_sand = None
    for k in range(1, nt + 1):
        c = cs.step(c, dt, faces, [-J], c_top=C0)
        # face value from the first cell and the known boundary flux
        c_surf = c[0, 0, 1] - (1 - TP) * J * h / (2 * FARADAY * D)
        if c_surf <= 0:
            t_sand = prev_t + (k * dt - prev_t) * prev_c / (prev_c - c_surf)
            break
        prev_t, prev_c = k * dt, c_surf
    assert t_sand is not None
    assert t_sand == pytest.approx(ts, rel=0.03)


def _porous_host(n=12, nz=12, seed=1):
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((n, n, nz)), 1.5, mode="wrap")
    ph = np.where(field > np.quantile(field, 0.6), HOST_CONDUCTIVE, ELECTROLYTE).astype(np.uint8)
    ph[rng.random(ph.shape) < 0.03] = HOST_DIELECTRIC
    ph[rng.random(ph.shape) < 0.03] = LITHIUM
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[:, :, -3:] = ELECTROLYTE
    return ph


def test_salt_balance_exact_on_porous_host():
    h = 1e-6
    ph = _porous_host()
    conn = collector_connected(ph)
    faces = interface_faces(ph, conn)
    rng = np.random.default_rng(3)
    i_face = rng.normal(-10.0, 20.0, len(faces))
    cs = ConcentrationSolver(ph, h, P)
    c = np.where(ph == ELECTROLYTE, C0 * (1 + 0.1 * rng.random(ph.shape)), 0.0)
    for dt in (1e-3, 1e-3, 0.05):
        m0 = cs.salt_content(c)
        c = cs.step(c, dt, faces, i_face, c_top=0.9 * C0)
        m1 = cs.salt_content(c)
        inflow = dt * (cs.last_top_inflow + cs.last_source)
        assert cs.last_source == pytest.approx((1 - TP) * np.sum(i_face) * h**2 / FARADAY, rel=1e-12)
        assert abs((m1 - m0) - inflow) <= 1e-9 * abs(inflow)
    # the AMG path conserves salt to its tolerance as well
    cs2 = ConcentrationSolver(ph, h, P, linear_solver="amg")
    c2 = cs2.step(np.full(ph.shape, C0), 1e-3, faces, i_face)
    inflow = 1e-3 * (cs2.last_top_inflow + cs2.last_source)
    assert abs(cs2.salt_content(c2) - cs.salt_content(np.full(ph.shape, C0)) - inflow) <= 1e-8 * abs(inflow)


def test_salt_balance_exact_at_a_loose_tolerance():
    """The solve's residual is closed by a uniform shift, so the salt balance holds to round-off
    even when the linear solve stops early (rtol 1e-3: without the shift it missed by 4e-4)."""
    h = 1e-6
    ph = _porous_host()
    faces = interface_faces(ph, collector_connected(ph))
    rng = np.random.default_rng(5)
    i_face = rng.normal(-10.0, 20.0, len(faces))
    loose = ConcentrationSolver(ph, h, P, rtol=1e-3, linear_solver="gmg")
    tight = ConcentrationSolver(ph, h, P, rtol=1e-12, linear_solver="gmg")
    c = np.where(ph == ELECTROLYTE, C0 * (1 + 0.1 * rng.random(ph.shape)), 0.0)
    c_tight = c.copy()
    for dt in (1e-3, 0.05, 5.0):
        m0 = loose.salt_content(c)
        c = loose.step(c, dt, faces, i_face, c_top=0.9 * C0)
        c_tight = tight.step(c_tight, dt, faces, i_face, c_top=0.9 * C0)
        inflow = dt * (loose.last_top_inflow + loose.last_source)
        assert abs((loose.salt_content(c) - m0) - inflow) <= 1e-12 * abs(inflow)
    elec = ph == ELECTROLYTE
    assert np.abs(c[elec] - c_tight[elec]).max() <= 1e-3 * C0  # and the field is the solve's
    assert loose.linear.stats["iterations"] < tight.linear.stats["iterations"]
