"""The phase field's shot noise (`PhaseFieldSolver(shot_noise_cell=, shot_noise_interval=)`):
the variance of a kick against the Poisson count of a flat front's events, conservation, and
reproducibility through a checkpoint."""
import numpy as np
import pytest

from continuum.constants import FARADAY, HOST_CONDUCTIVE
from continuum.phasefield import HONG2018, Galvanostatic, PhaseFieldSolver, planar_electrode
from continuum.phasefield import solver as pf_solver

FAST_IONS = HONG2018.replace(noise_amplitude=0.0, diffusivity_electrolyte=1e-6, diffusivity_solid=1e-6)


@pytest.mark.parametrize("eta, front", [(-0.05, 2e-6), (-0.15, 2e-6), (-0.15, 4e-6)])
def test_a_kick_moves_each_cells_front_by_the_poisson_variance_of_its_events(eta, front):
    """A flat front at rest in its equilibrium profile, c = c0, phi = eta everywhere, cells of
    b = 40 voxels of 0.1 um (cells of 4 um; the profile, sqrt(kappa/2W) = 0.25 um, inside one
    cell in z with the front at 2 um, split between two at 4 um: the column's total keeps its
    variance).  Over an interval T a column of the front sees Poisson many reductions and oxidations:
    the variance of its displacement is (v_red + v_ox) T b h, where the net v_red - v_ox is
    the flat-front velocity (`front_velocity`, the rung's closed form) and, at alpha 1/2 and
    c = c0, the gross is the net times coth(alpha f |eta|) (1.33 at 50 mV: the oxidations
    count; the integral of the reaction across the profile is 5/6 of it, `PROJECTED_RATE`).
    The kick removes the columns' mean, a factor (1 - 1/N) for N columns.  Measured
    over 150 kicks x 10 columns from the same state: 1500 draws, the variance's standard error
    3.7 %; tolerance 12 %.  Each kick is a zero sum to round-off."""
    h, b, columns = 0.1e-6, 40, 10
    phase, xi = planar_electrode((b * columns, 1, 2 * b), h, FAST_IONS, front, collector=False)
    T = 0.02  # s: displacements of ~0.05 um, a fifth of the profile (no clipping)
    s = PhaseFieldSolver(phase, h, FAST_IONS, xi=xi, c=FAST_IONS.bulk_concentration, cell_potential=eta,
                         top_potential=eta, rng=3, shot_noise_cell=b, shot_noise_interval=T)
    assert np.allclose(s.phi, eta, atol=pf_solver.PHI_XTOL * s.tol["eta"])  # (phi's solve stops within 20 uV)
    xi0 = s.xi.copy()
    x = s.geo.free // phase.shape[2]  # x index of each free voxel (ny = 1)
    columns_displaced = []
    for _ in range(150):
        s.xi = xi0.copy()
        s._shot_noise()
        dxi = s.xi - xi0
        assert abs(dxi.sum()) < 1e-12 * np.abs(dxi).sum()
        # metal moved per column over its width b h (depth h) is the front's displacement
        columns_displaced.append(np.bincount(x // b, weights=dxi, minlength=columns) * h / b)
    d = np.array(columns_displaced)
    alpha_f = 0.5 * FAST_IONS.f
    gross = abs(FAST_IONS.front_velocity(eta)) / np.tanh(alpha_f * abs(eta))
    expected = gross * T * b * h * (1.0 - 1.0 / columns)
    assert d.var() == pytest.approx(expected, rel=0.12, abs=0.0)
    assert s.kicks == 150


def _plating_cell(seed, cell=2, **kw):
    """A 3D cell (12 x 6 x 12 voxels of 0.5 um): a lithium film on a collector, a conductive
    pillar (host contacts, which the kicks leave alone)."""
    h = 0.5e-6
    phase, xi = planar_electrode((12, 6, 12), h, HONG2018, 2.5 * h)
    phase[3, 2, 1:6] = HOST_CONDUCTIVE
    xi[phase == HOST_CONDUCTIVE] = 1.0
    prm = HONG2018.replace(noise_amplitude=0.0)
    return PhaseFieldSolver(phase, h, prm, xi=xi, rng=seed, shot_noise_cell=cell, **kw)


def test_shot_noise_conserves_lithium_and_charge_and_resumes_to_the_bit():
    """Galvanostatic plating with a kick every 0.1 s: the kicks land on the interval's
    multiples (the one due at the end of a call waits for the next), lithium and charge are
    conserved to 1e-6 of what moved, and the metal moves (the same run without kicks ends
    elsewhere); a solver restored from a state_dict between calls steps on to the same bits;
    another seed, other bits."""
    a = _plating_cell(5, shot_noise_interval=0.1)
    metal0 = a.lithium_amount()
    a.advance(0.5, Galvanostatic(-20.0))
    assert a.kicks == 4
    b = _plating_cell(99, shot_noise_interval=0.1)
    b.load_state_dict(a.state_dict())
    a.advance(0.5, Galvanostatic(-20.0))
    b.advance(0.5, Galvanostatic(-20.0))
    assert a.kicks == b.kicks == 9
    assert np.array_equal(a.xi, b.xi) and np.array_equal(a.c, b.c)
    applied = -20.0 * a.footprint_area * 1.0
    assert a.charge == pytest.approx(applied, rel=1e-6)
    bal = a.balance()
    moved = abs(a.lithium_amount() - metal0) + abs(applied) / FARADAY
    assert abs(bal["lithium"]) < 1e-6 * moved and abs(bal["charge"]) < 1e-6 * abs(applied)
    quiet = _plating_cell(5, cell=0)
    quiet.advance(1.0, Galvanostatic(-20.0))
    other = _plating_cell(6, shot_noise_interval=0.1)
    other.advance(1.0, Galvanostatic(-20.0))
    assert np.abs(a.xi - quiet.xi).max() > 1e-3 and np.abs(a.xi - other.xi).max() > 1e-3


@pytest.mark.parametrize("kw, message", [
    ({"cell": 5, "shot_noise_interval": 1.0}, "shot_noise_cell = 5: the grid"),
    ({"cell": -1, "shot_noise_interval": 1.0}, "whole number >= 1"),
    ({"shot_noise_interval": 0.0}, "shot_noise_interval = 0.0 is out of range")])
def test_bad_shot_noise_settings_name_the_field(kw, message):
    with pytest.raises(ValueError) as err:
        _plating_cell(0, **kw)
    assert message in str(err.value)
