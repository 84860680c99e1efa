"""Butler-Volmer kinetics and interface-face bookkeeping."""
import numpy as np
import pytest

from continuum import (ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM, PhysicalParameters,
                       butler_volmer, collector_connected, equilibrium_overpotential,
                       interface_faces, reaction_branches)

P = PhysicalParameters()


def test_bv_zero_at_equilibrium_and_detailed_balance():
    a, c = reaction_branches(0.0, P.c_ref, P)
    assert a == pytest.approx(c, rel=1e-15)
    assert butler_volmer(0.0, P.c_ref, P) == 0.0
    # Nernst folded into c/c_ref: equilibrium shifts by ln(c/c_ref)/f
    c = 0.3 * P.c_ref
    assert abs(butler_volmer(equilibrium_overpotential(c, P), c, P)) < 1e-12


def test_bv_values_signs_and_derivative():
    i0 = P.kinetics.exchange_current_density
    f = P.f
    eta = np.linspace(-0.2, 0.2, 41)
    i, di = butler_volmer(eta, P.c_ref, P, derivative=True)
    assert np.allclose(i, i0 * (np.exp(0.5 * f * eta) - np.exp(-0.5 * f * eta)), rtol=1e-13)
    assert np.all(np.sign(i[eta < 0]) == -1)  # plating is negative
    fd = (butler_volmer(eta + 1e-7, P.c_ref, P) - butler_volmer(eta - 1e-7, P.c_ref, P)) / 2e-7
    assert np.allclose(di, fd, rtol=1e-6)
    assert np.all(di > 0)


def test_bv_host_face_is_cathodic_with_nucleation_shift():
    i0 = P.kinetics.exchange_current_density
    eta = np.array([-0.1, 0.0, 0.1])
    i = butler_volmer(eta, 500.0, P, on_lithium=False, eta_nuc=0.03, activity=2.0)
    expected = -i0 * 2.0 * 0.5 * np.exp(-0.5 * P.f * (eta + 0.03))
    assert np.allclose(i, expected, rtol=1e-13)
    # on lithium eta_nuc is ignored
    assert butler_volmer(0.0, P.c_ref, P, on_lithium=True, eta_nuc=0.05) == 0.0


def test_interface_faces_directions_lithium_rule_periodicity():
    ph = np.full((4, 3, 4), ELECTROLYTE, np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[0, 0, 1] = LITHIUM  # connected lithium on the collector
    ph[2, 1, 1] = HOST_DIELECTRIC
    ph[3, 1, 2] = HOST_CONDUCTIVE  # floating host: not connected, no faces
    ph[1, 2, 3] = LITHIUM  # dead lithium
    eta_nuc = np.full(ph.shape, 0.02)
    act = np.full(ph.shape, 3.0)
    conn = collector_connected(ph)
    fc = interface_faces(ph, conn, eta_nuc, act)
    # collector top faces: 12 voxels minus the lithium- and dielectric-covered ones
    down = (fc.direction == 5) & (fc.conductor_index % ph.shape[2] == 0)
    assert down.sum() == 12 - 2
    # lithium voxel (0,0,1): faces from +x neighbour (dir -x), -x neighbour wraps around (3,0,1)
    li = fc.on_lithium
    e = np.array(np.unravel_index(fc.electrolyte_index[li], ph.shape)).T
    d = fc.direction[li]
    got = {(tuple(a), int(b)) for a, b in zip(e, d)}
    assert got == {((1, 0, 1), 1), ((3, 0, 1), 0), ((0, 1, 1), 3), ((0, 2, 1), 2), ((0, 0, 2), 5)}
    assert np.all(fc.eta_nuc[li] == 0) and np.all(fc.activity[li] == 1)
    assert np.all(fc.eta_nuc[~li] == 0.02) and np.all(fc.activity[~li] == 3.0)
    # no face touches the dead lithium, the floating host or the dielectric
    bad = {np.ravel_multi_index(v, ph.shape) for v in [(3, 1, 2), (1, 2, 3), (2, 1, 1)]}
    assert not bad & set(fc.conductor_index.tolist())
    assert np.all(ph.ravel()[fc.electrolyte_index] == ELECTROLYTE)
