"""Reactions: detailed balance, Butler-Volmer ratio, lithiophilic nucleation, dead lithium,
occupancy cap, surface diffusion.  Every run checks exact Faraday accounting."""
import numpy as np

from continuum.constants import ELECTROLYTE, LITHIUM
from kmc.engine import KMCEngine
from kmc.engine.rates import SurfaceDiffusion
from kmc.engine.lattice import LatticeState

from _kmc_helpers import H, advance_checked, params, slab


def test_detailed_balance_explicit_reservoir_at_cref():
    """Planar lithium, eta = 0, reservoir at c_ref: packets reach the Boltzmann density and
    reductions balance oxidations (their difference is a random walk of +-1 steps)."""
    p = params(exchange_current_density_mA_cm2=1e4)
    ph = slab(12, 12, 24, lithium_layers=4)
    st = LatticeState.from_arrays(ph, H, concentration=p.c_ref, seed=3)
    eng = KMCEngine(st, p, seed=5)
    z = np.zeros(ph.shape)
    red = ox = 0
    for _ in range(4):
        r = advance_checked(eng, 2.0, phi_l=z, phi_s=z, c_top=p.c_ref)
        red += r.reductions
        ox += r.oxidations
    assert red + ox > 20000
    assert abs(red - ox) < 4 * np.sqrt(red + ox), (red, ox)


def test_detailed_balance_and_bv_ratio_implicit():
    """Implicit transport, c = c_ref: per active face, reduction/oxidation = exp(-f eta)
    (= 1 at eta = 0): counts agree within Poisson error."""
    p = params(exchange_current_density_mA_cm2=1e4)
    ph = slab(48, 48, 24, lithium_layers=12)
    for eta in (0.0, 0.01):
        st = LatticeState.from_arrays(ph, H)
        eng = KMCEngine(st, p, seed=8, transport="implicit")
        c = np.full(ph.shape, p.c_ref)
        r = advance_checked(eng, 0.25, phi_l=np.zeros(ph.shape), phi_s=np.full(ph.shape, eta),
                            concentration=c)
        # every lithium/electrolyte face carries both channels; faces on exposed collector
        # (reduction only) are the nucleations and are left out
        assert r.nucleations < 0.01 * r.reductions
        red = r.reductions - r.nucleations
        ratio = red / r.oxidations
        se = ratio * np.sqrt(1 / red + 1 / r.oxidations)
        expected = np.exp(-p.f * eta)
        assert r.oxidations > 10000
        assert abs(ratio - expected) < 4 * se, (eta, ratio, expected, se)
    assert expected < 1 - 8 * se  # the test can tell eta = 10 mV from equilibrium


def test_lithiophilic_seeds_nucleate_first():
    """eta_nuc = 0 on 10 % seed sites, 0.04 V elsewhere: the seed share of the first nuclei is
    a r / (a r + 1 - a) with r = exp(alpha_c f 0.04) ~ 2.2, far above the area fraction a."""
    p = params(exchange_current_density_mA_cm2=1e3)
    n = 256
    ph = slab(n, n, 4)
    rng = np.random.default_rng(0)
    seeds = rng.random((n, n)) < 0.1
    eta_nuc = np.zeros(ph.shape)
    eta_nuc[:, :, 0] = np.where(seeds, 0.0, 0.04)
    st = LatticeState.from_arrays(ph, H, eta_nuc=eta_nuc)
    eng = KMCEngine(st, p, seed=1, transport="implicit", face_counts=True)
    r = advance_checked(eng, 1e3, phi_l=np.zeros(ph.shape), phi_s=np.full(ph.shape, -0.02),
                        concentration=np.full(ph.shape, p.c_ref), max_reductions=1150)
    nuc = r.face_reductions[:, :, 0, :].sum(axis=-1)  # by collector voxel
    n_nuc = nuc.sum()
    assert n_nuc == r.nucleations and n_nuc > 900
    frac = nuc[seeds].sum() / n_nuc
    a = seeds.mean()
    rr = np.exp(p.kinetics.alpha_c * p.f * 0.04)
    expected = a * rr / (a * rr + 1 - a)
    se = np.sqrt(expected * (1 - expected) / n_nuc)
    assert abs(frac - expected) < 4 * se, (frac, expected, se)
    assert frac > a + 4 * np.sqrt(a * (1 - a) / n_nuc)


def test_dead_island_never_reacts():
    """A lithium island cut from the collector is dead: not oxidised at strongly anodic eta,
    no reduction on it, while connected lithium strips."""
    p = params(exchange_current_density_mA_cm2=1e3)
    ph = slab(16, 16, 16, lithium_layers=2)
    ph[6:8, 6:8, 8:10] = LITHIUM
    for transport in ("explicit", "implicit"):
        st = LatticeState.from_arrays(ph, H, concentration=None if transport == "implicit" else 1000.0,
                                      seed=0)
        assert st.dead_lithium.sum() == 8
        eng = KMCEngine(st, p, seed=2, transport=transport, face_counts=True)
        kw = dict(phi_l=np.zeros(ph.shape), phi_s=np.full(ph.shape, 0.2))
        kw.update(concentration=np.full(ph.shape, p.c_ref)) if transport == "implicit" else \
            kw.update(c_top=1000.0)
        r = advance_checked(eng, 0.3, **kw)
        assert r.oxidations > 300
        assert np.all(st.phase[6:8, 6:8, 8:10] == LITHIUM)
        assert not st.connected[6:8, 6:8, 8:10].any()
        assert r.face_reductions[6:8, 6:8, 8:10].sum() == 0
        assert r.face_oxidations[6:8, 6:8, 8:10].sum() == 0


def test_lithium_cut_off_in_call_is_marked_dead_at_once():
    """Stripping the neck of a mushroom cuts its cap off: the local check marks the cap dead
    within the call, so it is never oxidised although its overpotential is anodic."""
    p = params(exchange_current_density_mA_cm2=1e3)
    ph = slab(16, 16, 20)
    ph[8, 8, 1:6] = LITHIUM  # neck
    ph[7:10, 7:10, 6:9] = LITHIUM  # cap, 27 voxels
    phi_s = np.full(ph.shape, -0.3)  # cathodic: oxidation ~1e-5 of the neck's rate
    phi_s[8, 8, 3] = 0.3  # the neck voxel that strips
    st = LatticeState.from_arrays(ph, H)
    eng = KMCEngine(st, p, seed=3, transport="implicit", face_counts=True)
    zero_c = np.zeros(ph.shape)  # no reduction
    r = advance_checked(eng, 1.0, phi_l=np.zeros(ph.shape), phi_s=phi_s, concentration=zero_c,
                        max_events=1)
    assert r.oxidations == 1 and st.phase[8, 8, 3] == ELECTROLYTE
    assert r.dead_marked == 2 + 27  # neck above the cut + cap
    assert not st.connected[7:10, 7:10, 6:9].any()
    # next call, everything anodic: the live stub strips, the dead cap does not
    r = advance_checked(eng, 0.5, phi_l=np.zeros(ph.shape), phi_s=np.full(ph.shape, 0.3),
                        concentration=zero_c)
    assert r.oxidations == 2  # z = 1, 2 of the stub
    assert np.all(st.phase[7:10, 7:10, 6:9] == LITHIUM)


def test_occupancy_cap_blocks_full_voxels():
    ph = slab(16, 16, 16)
    st = LatticeState.from_arrays(ph, H, concentration=0.3 / 1.30e-5, seed=1)
    np.minimum(st.occupancy, 1, out=st.occupancy)
    keep = np.unique(st.packets)  # at most one packet per voxel to start
    st.clear_packets()
    st.add_packets(keep)
    eng = KMCEngine(st, params(), seed=1, occupancy_cap=1)
    z = np.zeros(ph.shape)
    r = advance_checked(eng, 0.05, phi_l=z, phi_s=z, c_top=0.3 / 1.30e-5)
    assert st.occupancy.max() == 1
    assert r.blocked_hops > 0.1 * r.hops
    assert r.leaps == 0


def test_surface_diffusion_conserves_lithium_and_connectivity():
    p = params()
    ph = slab(16, 16, 16, lithium_layers=1)
    ph[4:10, 4:10, 2:5] = LITHIUM
    st = LatticeState.from_arrays(ph, H)
    sd = SurfaceDiffusion(enabled=True, attempt_frequency=1e4, bond_energy=0.05)
    eng = KMCEngine(st, p, seed=4, transport="implicit", surface_diffusion=sd)
    n0 = st.lithium_count
    r = advance_checked(eng, 0.05, phi_l=np.zeros(ph.shape), phi_s=np.full(ph.shape, -0.3),
                        concentration=np.zeros(ph.shape))
    assert r.surface_hops > 100 and r.reductions == 0 and r.oxidations == 0
    assert st.lithium_count == n0
    assert r.lithium_created == r.lithium_removed == r.surface_hops
    st.relabel()
    assert st.dead_lithium.sum() == 0  # moves keep the voxel bonded to the deposit


def test_surface_diffusion_adatom_random_walk_closed_form():
    """A lone adatom on a flat lithium surface has one bond and four lateral targets, each at
    Gamma = nu_s exp(-E_b / kT): a continuous-time 2D lattice walk, so its hop count is
    Poisson(4 Gamma t) and its mean squared displacement is exactly 4 Gamma t h^2. Adatoms 16
    voxels apart (RMS excursion 2) never meet; each is matched to its start site."""
    p = params()
    nu, e_b = 1.0e4, 0.1
    gamma = nu * np.exp(-e_b / (8.617333262e-5 * p.temperature))
    t = 1.0 / gamma  # 4 Gamma t = 4 voxels^2
    n_side, sp = 8, 16
    starts = np.array([(i * sp, j * sp) for i in range(n_side) for j in range(n_side)])
    r2, hops, n = [], 0, 0
    for seed in range(16):
        ph = slab(n_side * sp, n_side * sp, 4, lithium_layers=1)
        ph[starts[:, 0], starts[:, 1], 2] = LITHIUM
        st = LatticeState.from_arrays(ph, H)
        eng = KMCEngine(st, p, seed=seed, transport="implicit",
                        surface_diffusion=SurfaceDiffusion(enabled=True, attempt_frequency=nu, bond_energy=e_b))
        r = advance_checked(eng, t, phi_l=np.zeros(ph.shape), phi_s=np.full(ph.shape, -0.3),
                            concentration=np.zeros(ph.shape))
        assert r.reductions == 0 and r.oxidations == 0
        hops += r.surface_hops
        ends = np.argwhere(st.phase[:, :, 2] == LITHIUM)
        assert len(ends) == len(starts)  # none met another, climbed or sank
        size = n_side * sp
        d = (ends[:, None, :] - starts[None, :, :] + size // 2) % size - size // 2  # minimum image
        dist2 = (d**2).sum(axis=2)
        r2.extend(dist2.min(axis=1))
        assert len(set(dist2.argmin(axis=1))) == len(starts)  # one adatom per start site
        n += len(starts)
    expected_hops = 4 * gamma * t * n
    assert abs(hops - expected_hops) < 4 * np.sqrt(expected_hops), (hops, expected_hops)
    r2 = np.asarray(r2, float)
    se = r2.std(ddof=1) / np.sqrt(n)  # about 3 % of the mean (r^2 is near exponential)
    assert abs(r2.mean() - 4 * gamma * t) < 3.5 * se, (r2.mean(), 4 * gamma * t, se)
    assert abs(r2.mean() / (4 * gamma * t) - 1) < 0.12
