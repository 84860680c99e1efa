"""Potential solves on a grid coarsened by an integer factor."""
import numpy as np
import pytest
from scipy import ndimage

from continuum import ELECTROLYTE, HOST_CONDUCTIVE, LITHIUM, PhysicalParameters
from continuum.coarse_grid import coarsen_phase, make_potential_solver
from continuum.grid import collector_connected, conductor_mask

PARAMS = PhysicalParameters()


def _foil(nx=4, nz=24):
    phase = np.zeros((nx, nx, nz), np.uint8)
    phase[:, :, 0] = HOST_CONDUCTIVE
    return phase


def test_planar_cell_potential_matches_fine_grid():
    phase = _foil()
    area = 16 * 1e-12
    current = -10.0 * area  # 1 mA/cm^2 plating
    fine = make_potential_solver(phase, 1e-6, PARAMS, coarsen=1).solve(1000.0, current=current)
    coarse = make_potential_solver(phase, 1e-6, PARAMS, coarsen=2).solve(1000.0, current=current)
    assert coarse.total_current == pytest.approx(current, rel=1e-6)
    # same interfacial area and kinetics; the ohmic drop over ~23 um differs by < 0.1 mV
    assert abs(coarse.cell_potential - fine.cell_potential) < 1e-3
    assert coarse.phi_l.shape == phase.shape
    assert np.all(np.isfinite(coarse.phi_l[phase == ELECTROLYTE]))
    assert np.all(np.isnan(coarse.phi_l[phase != ELECTROLYTE]))


def test_porous_host_fields_on_fine_grid():
    rng = np.random.default_rng(3)
    noise = ndimage.gaussian_filter(rng.standard_normal((16, 16, 16)), 1.5, mode="wrap")
    phase = np.where(noise > np.quantile(noise, 0.6), HOST_CONDUCTIVE, ELECTROLYTE).astype(np.uint8)
    phase[:, :, 0] = HOST_CONDUCTIVE
    phase[:, :, 12:] = ELECTROLYTE
    phase[3:5, 3:5, 10:12] = LITHIUM
    current = -10.0 * 256e-12
    sol = make_potential_solver(phase, 1e-6, PARAMS, coarsen=2).solve(1000.0, current=current)
    conn = collector_connected(phase)
    assert sol.total_current == pytest.approx(current, rel=1e-6)
    assert np.all(np.isfinite(sol.phi_l[phase == ELECTROLYTE]))
    assert np.all(np.isfinite(sol.phi_s[conductor_mask(phase) & conn]))
    assert sol.phi_s[0, 0, 0] == pytest.approx(sol.cell_potential)


def test_coarsen_phase_rules():
    phase = _foil(4, 8)
    phase[0:2, 0:2, 2:4] = LITHIUM  # a full block of lithium
    phase[2, 2, 2] = HOST_CONDUCTIVE  # one voxel of 8: electrolyte keeps the block
    c = coarsen_phase(phase, 2)
    assert c.shape == (2, 2, 4)
    assert np.all(c[:, :, 0] == HOST_CONDUCTIVE)  # the collector block
    assert c[0, 0, 1] == LITHIUM and c[1, 1, 1] == ELECTROLYTE


def test_bad_factor():
    with pytest.raises(ValueError, match="coarsen"):
        make_potential_solver(_foil(4, 9), 1e-6, PARAMS, coarsen=2)


def test_renewed_coarse_solver_repeats_a_new_one():
    """The coarse solver's renewal keeps its coarse geometry and repeats a new solver's warm
    solve bit for bit (continuum.potential.PotentialSolver.renewed)."""
    rng = np.random.default_rng(4)
    noise = ndimage.gaussian_filter(rng.standard_normal((16, 16, 16)), 1.5, mode="wrap")
    phase = np.where(noise > np.quantile(noise, 0.6), HOST_CONDUCTIVE, ELECTROLYTE).astype(np.uint8)
    phase[:, :, 0] = HOST_CONDUCTIVE
    phase[:, :, 12:] = ELECTROLYTE
    current = -10.0 * 256e-12
    kw = dict(coarsen=2, linear_solver="gmg", eta_tolerance=1e-5)
    old = make_potential_solver(phase, 1e-6, PARAMS, **kw)
    sol = old.solve(1000.0, current=current)
    sol = old.solve(1010.0, current=1.1 * current, initial=sol)
    renewed = old.renewed()
    assert renewed.coarse.faces is old.coarse.faces and renewed.coarse is not old.coarse
    got = renewed.solve(1020.0, current=1.2 * current, initial=sol)
    want = make_potential_solver(phase, 1e-6, PARAMS, **kw).solve(1020.0, current=1.2 * current, initial=sol)
    assert got.cell_potential == want.cell_potential
    assert np.array_equal(got.phi_l, want.phi_l, equal_nan=True)
    assert np.array_equal(got.face_overpotential, want.face_overpotential, equal_nan=True)
