"""Far-field separator column (docs/model.md, "Separator column")."""
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


def test_current_past_the_limit_empties_the_domain_side_and_passes_the_limiting_flux():
    """Above the column's limiting current the domain-side concentration stops at zero (it
    used to go negative) and the column passes the limiting salt flux D_eff c0 / L."""
    L, eps = 25e-6, 0.4
    col = SeparatorColumn(P, L, eps, n_cells=40)
    D_eff = D * eps**1.5
    j_lim = -FARADAY * D_eff * C0 / (L * (1 - TP))  # plating sign
    for _ in range(60):
        col.step(20.0, current_density=2.0 * j_lim)
        assert col.c.min() >= 0.0 and col.c_interface >= -1e-9 * C0
    assert col.c_interface == pytest.approx(0.0, abs=1e-9 * C0)
    assert col.flux == pytest.approx(D_eff * C0 / L, rel=1e-9)
    assert np.allclose(col.c, C0 * col.x / L, rtol=1e-9)
    # below the limit nothing changes: the prescribed flux passes
    col.step(20.0, current_density=0.5 * j_lim)
    assert col.flux == pytest.approx(-(1 - TP) * 0.5 * j_lim / FARADAY, rel=1e-12)


def test_limiting_current_density_closed_form_matches_the_column():
    """The column alone: i_lim empties its domain side at steady state exactly; with free
    electrolyte in series the resistances add (L_sep / D_eff + L_free / D)."""
    from continuum import limiting_current_density

    L, eps = 25e-6, 0.4
    i_lim = limiting_current_density(P, L, eps)
    col = SeparatorColumn(P, L, eps, n_cells=40)
    for _ in range(40):
        col.step(50.0, current_density=-0.999 * i_lim)
    assert col.c_interface == pytest.approx(0.001 * C0, rel=1e-6)
    # default cell of the study: 25 um separator at porosity 0.4 plus 28 um of free electrolyte
    both = limiting_current_density(P, L, eps, 28e-6)
    assert 1.0 / both == pytest.approx(1.0 / i_lim + 28e-6 * (1 - TP) / (FARADAY * D * C0), rel=1e-12)
    assert 380.0 < both < 400.0  # A/m^2: 39 mA/cm^2
