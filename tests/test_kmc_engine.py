"""KMC engine: rate constants, input validation, incremental bookkeeping, determinism."""
import numpy as np
import pytest

from continuum.constants import HOST_DIELECTRIC, LITHIUM
from continuum.kinetics import reaction_branches
from continuum.parameters import PhysicalParameters
from kmc.engine import KMCEngine
from kmc.engine.rates import RateConstants, SurfaceDiffusion
from kmc.engine.lattice import LatticeState

from _kmc_helpers import H, advance_checked, params, slab


def test_rate_constants_match_continuum_kinetics():
    p = PhysicalParameters(kinetics=dict(exchange_current_density_mA_cm2=0.7, alpha_a=0.3, alpha_c=0.7))
    rc = RateConstants.from_parameters(p, H)
    vm = p.lithium_molar_volume
    eta = np.linspace(-0.2, 0.2, 9)
    # one packet in a voxel is c = 1/V_m; per-face packet rate = i h^2 / q = i V_m / (F h)
    an, ca = reaction_branches(eta, 1.0 / vm, p, activity=1.7, eta_nuc=0.03, on_lithium=False)
    q_per_area = p.packet_charge(H) / H**2
    np.testing.assert_allclose(rc.reduction(eta, 0.03, 1.7), ca / q_per_area, rtol=1e-12)
    an, ca = reaction_branches(eta, 0.0, p, on_lithium=True)
    np.testing.assert_allclose(rc.oxidation(eta), an / q_per_area, rtol=1e-12)
    # detailed balance of the rate constants at eta = 0, c = c_ref (implicit form)
    assert rc.implicit_reduction(0.0, p.c_ref) == pytest.approx(rc.oxidation(0.0), rel=1e-12)
    assert rc.hop == pytest.approx(p.cation_diffusivity / H**2)
    # insertion/removal: Boltzmann occupancy c V_m exp(-f (phi - phi_top))
    ins = rc.insertion_rate(1000.0, 0.01, 0.0)
    rem = rc.hop_rate(0.01, 0.0)
    assert ins / rem == pytest.approx(1000.0 * vm * np.exp(-p.f * 0.01), rel=1e-12)


def _engine(**kw):
    ph = slab(6, 6, 8, lithium_layers=1)
    st = LatticeState.from_arrays(ph, H, concentration=1000.0, seed=0)
    return KMCEngine(st, params(), seed=0, **kw), ph.shape


def test_advance_validates_inputs():
    eng, shape = _engine()
    z = np.zeros(shape)
    ok = dict(phi_l=z, phi_s=z, c_top=1000.0)
    with pytest.raises(ValueError, match="duration"):
        eng.advance(0.0, **ok)
    with pytest.raises(ValueError, match="duration"):
        eng.advance(float("nan"), **ok)
    with pytest.raises(ValueError, match="phi_l"):
        eng.advance(1.0, phi_l=np.zeros((2, 2, 2)), phi_s=z, c_top=1.0)
    bad = z.copy()
    bad[3, 3, 5] = np.nan
    with pytest.raises(ValueError, match="phi_l"):
        eng.advance(1.0, phi_l=bad, phi_s=z, c_top=1.0)
    bad = z.copy()
    bad[3, 3, 1] = np.nan  # a connected lithium voxel
    with pytest.raises(ValueError, match="phi_s"):
        eng.advance(1.0, phi_l=z, phi_s=bad, c_top=1.0)
    with pytest.raises(ValueError, match="c_top"):
        eng.advance(1.0, phi_l=z, phi_s=z)
    with pytest.raises(ValueError, match="region"):
        eng.advance(1.0, region=np.full(shape, 9, np.uint8), **ok)
    with pytest.raises(ValueError, match="max_events"):
        eng.advance(1.0, max_events=-1, **ok)
    with pytest.raises(ValueError, match="transport"):
        KMCEngine(eng.state, params(), transport="bogus")
    with pytest.raises(ValueError, match="leaps"):
        KMCEngine(eng.state, params(), leaps=3)
    # NaN where the field is not used is fine (lithium voxel's phi_l)
    phl = z.copy()
    phl[:, :, 1] = np.nan
    advance_checked(eng, 1e-3, phi_l=phl, phi_s=z, c_top=1000.0)


@pytest.mark.parametrize("case", ["explicit", "cap", "surface", "implicit", "implicit_surface"])
def test_incremental_rates_equal_fresh_recomputation(case):
    """After many phase changes in a call, every cached rate, rate group and site entry equals a
    from-scratch recomputation, and leap levels are never above the true ones."""
    rng = np.random.default_rng(7)
    p = params(exchange_current_density_mA_cm2=1e3)
    ph = slab(12, 10, 20, lithium_layers=3)
    ph[3:6, 3:6, 4:8] = LITHIUM
    ph[8, 8, 10] = LITHIUM  # dead island
    ph[0:2, :, 1] = HOST_DIELECTRIC
    implicit = case.startswith("implicit")
    st = LatticeState.from_arrays(ph, H, concentration=None if implicit else 3000.0, seed=1)
    sd = SurfaceDiffusion(enabled=True, attempt_frequency=300.0) if "surface" in case else None
    eng = KMCEngine(st, p, seed=2, transport="implicit" if implicit else "explicit",
                    occupancy_cap=2 if case == "cap" else None, surface_diffusion=sd)
    phil = rng.normal(0, 0.01, ph.shape)
    phis = rng.normal(0.0, 0.02, ph.shape)
    kw = dict(phi_l=phil, phi_s=phis)
    kw.update(concentration=np.full(ph.shape, 1500.0)) if implicit else kw.update(c_top=2000.0)
    total = 0
    for _ in range(3):
        res = advance_checked(eng, 0.4, **kw)
        total += res.reductions + res.oxidations
        v = eng.verify_incremental()
        assert v.pop("leap_too_high") == 0
        v.pop("total_rate_rel")
        assert all(x == 0 for x in v.values()), v
    assert total > 500
    if sd is not None:
        assert res.surface_hops > 0
    if case == "cap":
        assert st.occupancy.max() <= 2


def test_determinism_same_seed_same_result():
    ph = slab(16, 16, 24, lithium_layers=2)
    ph[4:8, 4:8, 3:9] = LITHIUM
    p = params(exchange_current_density_mA_cm2=300.0)
    rng = np.random.default_rng(3)
    phil = rng.normal(0, 0.005, ph.shape)
    phis = np.full(ph.shape, -0.02)
    out = []
    for seed in (11, 11, 12):
        st = LatticeState.from_arrays(ph, H, concentration=2000.0, seed=5)
        eng = KMCEngine(st, p, seed=seed)
        counts = []
        for _ in range(2):
            counts.append(advance_checked(eng, 0.3, phi_l=phil, phi_s=phis, c_top=1500.0).counts)
        out.append((st.to_dict(), counts))
    (a, ca), (b, cb), (c, cc) = out
    assert ca == cb
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert ca != cc or not np.array_equal(a["packets"], c["packets"])
    assert ca[0]["reductions"] > 10


def test_max_events_and_stop_before_duration():
    eng, shape = _engine(leaps=False)
    z = np.zeros(shape)
    r = advance_checked(eng, 10.0, phi_l=z, phi_s=z, c_top=1000.0, max_events=500)
    assert r.n_events == 500 and r.status == "max_events" and r.elapsed < 10.0
    r = advance_checked(eng, 1e-3, phi_l=z, phi_s=z, c_top=1000.0)
    assert r.status == "duration" and r.elapsed == 1e-3
    assert r.charge == (r.oxidations - r.reductions) * params().packet_charge(H)


def test_region_counts_add_up():
    ph = slab(10, 10, 12)
    st = LatticeState.from_arrays(ph, H)
    eng = KMCEngine(st, params(exchange_current_density_mA_cm2=1e3), seed=1, transport="implicit")
    region = np.zeros(ph.shape, np.uint8)
    region[:5] = 3
    z = np.zeros(ph.shape)
    r = advance_checked(eng, 0.5, phi_l=z, phi_s=np.full(ph.shape, -0.05), region=region,
                        concentration=np.full(ph.shape, 1000.0))
    assert r.region_reductions.sum() == r.reductions > 50
    assert r.region_reductions[3] > 0 and r.region_reductions[0] > 0
    assert r.region_reductions[[1, 2, 4, 5, 6, 7]].sum() == 0
    assert 0 < r.nucleations <= r.reductions
