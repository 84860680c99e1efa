"""Packet transport: tracer MSD = 6 D+ t, Einstein drift D+ f E, with and without leaps."""
import numpy as np
import pytest

from kmc.engine import KMCEngine
from kmc.engine.lattice import LatticeState

from _kmc_helpers import H, advance_checked, params, slab

NX, NY, NZ = 32, 32, 160
N_TRACERS = 20000
HOPS_EACH = 400  # mean hops per tracer


def _tracers(seed):
    """Tracers in the middle of a tall box whose collector is covered (no reactions); they
    stay > 5.5 standard deviations (drift included) from every wall during the run."""
    ph = slab(NX, NY, NZ, cover=True)
    st = LatticeState.from_arrays(ph, H)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, NX, N_TRACERS)
    y = rng.integers(0, NY, N_TRACERS)
    z = rng.integers(56, 72, N_TRACERS)
    ids = st.add_packets((x * NY + y) * NZ + z)
    return st, ids, st.unwrapped_positions()


def _displacements(st, ids, start):
    order = np.argsort(st.packet_ids)
    assert np.array_equal(st.packet_ids[order], ids)  # nobody left or arrived
    return (st.unwrapped_positions()[order] - start) * H


@pytest.mark.parametrize("leaps", [False, True])
def test_tracer_msd_is_6Dt(leaps):
    p = params()
    D = p.cation_diffusivity
    t = HOPS_EACH / (6 * D / H**2)
    st, ids, start = _tracers(1)
    eng = KMCEngine(st, p, seed=2, leaps=leaps)
    z = np.zeros(st.shape)
    res = advance_checked(eng, t, phi_l=z, phi_s=z, c_top=0.0)
    r2 = (_displacements(st, ids, start) ** 2).sum(axis=1)
    ratio = r2.mean() / (6 * D * t)
    se = r2.std() / np.sqrt(r2.size) / (6 * D * t)
    assert 0.03 > 4 * se  # the tolerance is several standard errors wide
    assert abs(ratio - 1) < 0.03, (ratio, se)
    if leaps:
        assert res.leaps > 0.3 * res.n_events  # leaps did real work
        assert res.leap_hops + res.hops == pytest.approx(N_TRACERS * HOPS_EACH, rel=0.01)
    else:
        assert res.leaps == 0


@pytest.mark.parametrize("leaps", [False, True])
def test_uniform_field_drift_is_einstein(leaps):
    p = params()
    D, f = p.cation_diffusivity, p.f
    E = 0.2 / (f * H)  # f E h = 0.2: small-field regime (lattice correction 0.17 %)
    t = HOPS_EACH / (6 * D / H**2)
    st, ids, start = _tracers(3)
    eng = KMCEngine(st, p, seed=4, leaps=leaps)
    zc = np.arange(NZ) * H
    phi_l = np.broadcast_to(-E * zc, st.shape).copy()  # potential falls with z
    res = advance_checked(eng, t, phi_l=phi_l, phi_s=np.zeros(st.shape), phi_top=-E * NZ * H,
                          c_top=0.0)
    d = _displacements(st, ids, start)
    v_expected = D * f * E
    v = d[:, 2].mean() / t
    se = d[:, 2].std() / np.sqrt(len(d)) / t
    assert v > 0  # cations move toward lower potential (+z here)
    assert 0.03 * v_expected > 4 * se
    assert abs(v / v_expected - 1) < 0.03, (v / v_expected, se / v_expected)
    for axis in (0, 1):  # no drift across the field
        m = d[:, axis].mean()
        assert abs(m) < 4 * d[:, axis].std() / np.sqrt(len(d))
    # transverse spreading unchanged by the field: 2 D t per axis
    assert d[:, 0].var() == pytest.approx(2 * D * t, rel=0.03)
    if leaps:
        assert res.leaps > 0.3 * res.n_events
