"""Far-field separator column (MODEL.md section 4, far field)."""
import numpy as np
import pytest

from continuum import FARADAY, PhysicalParameters, SeparatorColumn

P = PhysicalParameters()
D = P.electrolyte.salt_diffusivity
TP = P.electrolyte.transference_number
C0 = P.electrolyte.concentration


def test_steady_linear_profile_under_constant_flux():
    L, eps = 25e-6, 0.4
    col = SeparatorColumn(P, L, eps, n_cells=40)
    j = -20.0  # A/m^2 plating in the domain
    J = -(1 - TP) * j / FARADAY  # salt drawn into the domain
    for _ in range(30):
        col.step(50.0, current_density=j)  # dt >> eps L^2 / D_eff ~ 5 s
    D_eff = D * eps**1.5
    slope = np.polyfit(col.x, col.c, 1)[0]
    assert slope == pytest.approx(J / D_eff, rel=1e-9)
    assert np.allclose(col.c, col.steady_profile(J), rtol=1e-12)
    assert col.c_interface == pytest.approx(C0 - J * L / D_eff, rel=1e-12)
    # giving the salt flux directly is the same thing
    col2 = SeparatorColumn(P, L, eps, n_cells=40)
    for _ in range(30):
        col2.step(50.0, salt_flux_into_domain=J)
    assert np.allclose(col2.c, col.c, rtol=1e-14)


def test_transient_salt_balance():
    col = SeparatorColumn(P, 20e-6, 0.5, n_cells=20)
    J = 2e-4
    m0 = col.salt_content()
    col.step(0.01, salt_flux_into_domain=J)
    # lost J dt through x = 0; gained from the bulk through the Dirichlet half cell
    D_eff = col.D_eff
    gain = 2 * D_eff / col.dx * (C0 - col.c[-1]) * 0.01
    assert col.salt_content() - m0 == pytest.approx(-J * 0.01 + gain, rel=1e-10)


def test_ohmic_drop_uniform_and_with_diffusion_potential():
    L, eps = 25e-6, 0.4
    col = SeparatorColumn(P, L, eps, n_cells=50)
    j = -10.0
    kappa_eff = P.conductivity(C0) * eps**1.5
    # uniform c: plain Ohm; plating current flows toward the domain, so phi there is lower
    assert col.ohmic_drop(j) == pytest.approx(j * L / kappa_eff, rel=1e-12)
    assert col.ohmic_drop(j) < 0
    # at steady state the Nernst-Einstein column has the closed form
    # j int dx / kappa_eff(c) + (D+ - D-) / (f (D+ + D-)) ln(c(L) / c(0))
    J = -(1 - TP) * j / FARADAY
    for _ in range(40):
        col.step(100.0, salt_flux_into_domain=J)
    c_if = col.c_interface
    D_eff = col.D_eff
    s = J / D_eff  # dc/dx
    dp, dm = P.cation_diffusivity, P.anion_diffusivity
    ohm = j / (P.conductivity(1.0) * eps**1.5) * np.log(C0 / c_if) / s
    diff = (dp - dm) / (P.f * (dp + dm)) * np.log(C0 / c_if)
    assert col.ohmic_drop(j) == pytest.approx(ohm + diff, rel=1e-3)
