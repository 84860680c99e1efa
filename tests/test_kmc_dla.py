"""Growth laws (validation ladder 8.3 of ../shared/MODEL.md): with sticking certain on contact and walkers released one at
a time far away the deposit is a diffusion-limited aggregate (mass-radius dimension ~2.5 in
3D, ~1.71 in 2D); with reduction far slower than hopping it is compact (~3).

Dimensions: the slope of log N against log R_g (radius of gyration about the centre of
mass) as the cluster grows, and the mass-radius slope of M(r) about the seed.  Default tests are small and loose; ``-m slow`` runs the sharp ones."""
import numpy as np
import pytest

from continuum.constants import HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from kmc.engine import KMCEngine, Release
from kmc.engine.lattice import LatticeState

from _kmc_helpers import H, advance_checked, params


def seed_geometry(nx, ny, nz, tip):
    """Covered collector and one sheathed conductive pillar: only the tip's top face reacts."""
    ph = np.zeros((nx, ny, nz), np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[:, :, 1] = HOST_DIELECTRIC
    cx, cy = nx // 2, ny // 2
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            if ny == 1 and dy:
                continue
            ph[(cx + dx) % nx, (cy + dy) % ny, 1:tip + 1] = HOST_DIELECTRIC
    ph[cx, cy, 1:tip + 1] = HOST_CONDUCTIVE
    return ph, (cx, cy, tip + 1)


def _offsets_from_seed(st, center):
    """Minimum-image (periodic x, y) displacements of every lithium voxel from the seed."""
    nx, ny, nz = st.shape
    x, y, z = np.nonzero(st.phase == LITHIUM)
    dx = (x - center[0]).astype(float)
    dy = (y - center[1]).astype(float)
    dx -= nx * np.round(dx / nx)
    dy -= ny * np.round(dy / ny)
    return dx, dy, (z - center[2]).astype(float)


def radius_of_gyration(st, center):
    dx, dy, dz = _offsets_from_seed(st, center)
    r2 = dx**2 + dy**2 + dz**2
    # R_g about the centre of mass (positions unwrapped around the seed)
    rg2 = r2.mean() - dx.mean() ** 2 - dy.mean() ** 2 - dz.mean() ** 2
    return np.sqrt(rg2), np.sqrt(r2.max())


def grow(shape, n_total, chunk, *, seed, implicit=False, eta=-1.0, i0=10.0, kill=3.0):
    """Grow a deposit from the tip; returns (N, R_g) after each chunk."""
    nx, ny, nz = shape
    ph, center = seed_geometry(nx, ny, nz, tip=nz // 3)
    p = params(exchange_current_density_mA_cm2=i0 / 10)
    st = LatticeState.from_arrays(ph, H)
    eng = KMCEngine(st, p, seed=seed, transport="implicit" if implicit else "explicit",
                    leaps=True)
    phi_l = np.zeros(ph.shape)
    phi_s = np.full(ph.shape, eta)
    out = []
    n = 0
    rmax = 0.0
    while n < n_total:
        kw = dict(phi_l=phi_l, phi_s=phi_s, max_reductions=chunk)
        if implicit:
            kw.update(concentration=np.full(ph.shape, p.c_ref))
        else:
            kw.update(c_top=0.0, release=Release(center=center, margin=5.0, kill_factor=kill,
                                                  initial_radius=rmax))
        res = advance_checked(eng, np.inf, **kw)
        assert res.reductions == chunk and res.oxidations == 0
        assert res.killed + res.removals_top + chunk == res.released or implicit
        n += chunk
        rg, rmax = radius_of_gyration(st, center)
        out.append((n, rg))
    grow.last = (st, center)
    return np.array(out)


def mass_radius_dimension(st, center, r_lo, r_hi):
    """Slope of log M(r) against log r, M(r) = lithium voxels within r of the seed."""
    dx, dy, dz = _offsets_from_seed(st, center)
    r = np.sqrt(dx**2 + dy**2 + dz**2)
    radii = np.geomspace(r_lo, r_hi, 8)
    mass = np.array([np.count_nonzero(r <= q) for q in radii])
    return np.polyfit(np.log(radii), np.log(mass), 1)[0]


def dimension(track, n_min):
    n, rg = track[:, 0], track[:, 1]
    sel = n >= n_min
    slope = np.polyfit(np.log(rg[sel]), np.log(n[sel]), 1)[0]
    return slope


def test_dla_3d_small():
    """Small DLA (800 walkers): well below compact, near 2.5 (measured 2.33-2.46)."""
    tr = grow((64, 64, 64), 800, 100, seed=1)
    d = dimension(tr, 200)
    assert 2.1 < d < 2.75, d


def test_reaction_limited_growth_is_compact_small():
    """Reaction-limited (implicit transport, uniform c): the interior fills, M(r) ~ r^3."""
    grow((48, 48, 48), 3000, 300, seed=2, implicit=True, eta=-0.3)
    st, c = grow.last
    rg = radius_of_gyration(st, c)[0]
    d = mass_radius_dimension(st, c, 3.0, rg)
    assert d > 2.85, d


def _both_estimators(shape, n_total, chunk, seed, n_min):
    """(R_g-vs-N slope, mass-radius slope over 2..R_g of the final cluster).  At these sizes
    the first runs high and the second low by a few percent; their mean is the estimate."""
    tr = grow(shape, n_total, chunk, seed=seed, kill=2.0)
    st, c = grow.last
    return dimension(tr, n_min), mass_radius_dimension(st, c, 2.0, tr[-1, 1])


@pytest.mark.slow
def test_dla_3d_dimension():
    """3D DLA, 3000 walkers, box 160^3 (the kill radius, 2x the release radius, stays inside)."""
    est = np.array([_both_estimators((160, 160, 160), 3000, 375, s, 750) for s in (11, 12, 13)])
    assert abs(est.mean() - 2.5) < 0.15, est


@pytest.mark.slow
def test_dla_2d_slab_dimension():
    """2D DLA in a y = 1 slab (y hops return to the same voxel and only cost time)."""
    est = np.array([_both_estimators((512, 1, 400), 2000, 250, s, 500) for s in (21, 22, 23)])
    assert abs(est.mean() - 1.71) < 0.1, est


@pytest.mark.slow
def test_reaction_limited_growth_is_compact():
    grow((64, 64, 64), 12000, 1000, seed=3, implicit=True, eta=-0.3)
    st, c = grow.last
    rg = radius_of_gyration(st, c)[0]
    d = mass_radius_dimension(st, c, 3.0, rg)
    assert abs(d - 3.0) < 0.15, d
