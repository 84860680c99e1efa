"""Far field: a 1D column of porous separator between the 3D domain's top and the bulk.

Coordinate x runs from the 3D domain's top (x = 0) to the bulk end (x = length), where the
concentration is held at c0.  Binary electrolyte with migration eliminated:
``eps dc/dt = d/dx(D_eff dc/dx)``, ``D_eff = D eps^b`` (Bruggeman, b = 1.5 by default: the
effective transport is porosity over tortuosity eps^(1-b)).  Finite volumes, ``n_cells``
cells, Dirichlet c0 half a cell beyond the last one, a prescribed salt flux at x = 0.

Flux sign: ``salt_flux_into_domain`` [mol/(m^2 s), per unit cross-section of the cell] is the
salt that leaves the column into the 3D domain (positive during plating: the domain consumes
salt).  With only a current density j given [A/m^2, the domain's sign: negative = plating],
the quasi-steady flux ``-(1 - t+) j / F`` is used.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .constants import FARADAY
from .parameters import PhysicalParameters


class SeparatorColumn:
    def __init__(self, params: PhysicalParameters, length: float, porosity: float, n_cells: int = 50,
                 bruggeman: float = 1.5, c_initial: float | None = None):
        if not (0 < porosity <= 1):
            raise ValueError("porosity must be in (0, 1]")
        if length <= 0 or n_cells < 1:
            raise ValueError("length > 0 and n_cells >= 1 required")
        self.params = params
        self.length = float(length)
        self.porosity = float(porosity)
        self.bruggeman = float(bruggeman)
        self.n = int(n_cells)
        self.dx = self.length / self.n
        self.c0 = params.electrolyte.concentration
        self.c = np.full(self.n, self.c0 if c_initial is None else float(c_initial))
        self.effective_factor = self.porosity**self.bruggeman  # multiplies D and kappa
        self.D_eff = params.electrolyte.salt_diffusivity * self.effective_factor
        self.flux = 0.0  # last salt flux into the domain [mol/(m^2 s)]
        self.time = 0.0

    @property
    def x(self) -> np.ndarray:
        """Cell centres [m], from the domain side."""
        return (np.arange(self.n) + 0.5) * self.dx

    @property
    def c_interface(self) -> float:
        """Concentration at x = 0 (the c_top the 3D domain sees), extrapolated from the first
        cell with the boundary flux: c(0) = c_1 - flux dx / (2 D_eff); exactly 0, not a
        rounding-error negative, at the transport limit."""
        return max(0.0, self._boundary_value(self.c, self.flux))

    def _boundary_value(self, c: np.ndarray, flux: float) -> float:
        """c at x = 0 extrapolated from the first cell with the salt flux leaving there."""
        return float(c[0] - flux * 0.5 * self.dx / self.D_eff)

    def salt_content(self) -> float:
        """Moles of salt per unit cross-section [mol/m^2]."""
        return float(self.porosity * self.c.sum() * self.dx)

    def step(self, dt: float, salt_flux_into_domain: float | None = None,
             current_density: float | None = None) -> None:
        """Implicit Euler step of length dt [s] with a salt flux (or current density, see the
        module docstring) held constant over the step."""
        if (salt_flux_into_domain is None) == (current_density is None):
            raise ValueError("give exactly one of salt_flux_into_domain= and current_density=")
        if salt_flux_into_domain is None:
            tp = self.params.electrolyte.transference_number
            salt_flux_into_domain = -(1.0 - tp) * float(current_density) / FARADAY
        J = float(salt_flux_into_domain)
        c = self._solve(dt, flux=J)
        if self._boundary_value(c, J) < 0.0:
            # Past the transport limit the column cannot supply J: its domain side empties
            # (c = 0 there) and it passes the most it can, the diffusive flux into c = 0.
            c = self._solve(dt, flux=None)
            J = float(c[0] * 2.0 * self.D_eff / self.dx)
        self.c = c
        self.flux = J
        self.time += dt

    def _solve(self, dt: float, flux: float | None) -> np.ndarray:
        """One implicit Euler step with the salt flux ``flux`` leaving at x = 0, or with
        c = 0 held at x = 0 when ``flux`` is None."""
        n, dx = self.n, self.dx
        a = self.porosity * dx / dt
        g = self.D_eff / dx
        # tridiagonal (banded) system
        main = np.full(n, a + 2 * g)
        main[0] -= g  # the flux boundary at x = 0 ...
        if flux is None:
            main[0] += 2 * g  # ... or a half cell to c = 0 there
        main[-1] += g  # half cell to the Dirichlet bulk value
        off = np.full(n - 1, -g)
        rhs = a * self.c
        if flux is not None:
            rhs[0] -= flux
        rhs[-1] += 2 * g * self.c0
        ab = np.zeros((3, n))
        ab[0, 1:] = off
        ab[1] = main
        ab[2, :-1] = off
        return sla.solve_banded((1, 1), ab, rhs)

    def steady_profile(self, salt_flux_into_domain: float) -> np.ndarray:
        """Closed-form steady profile at the cell centres for a constant flux J:
        ``c(x) = c0 - J (L - x) / D_eff``."""
        return self.c0 - salt_flux_into_domain * (self.length - self.x) / self.D_eff

    def state_dict(self) -> dict:
        """What changes as the column evolves (checkpoints); the rest follows from the arguments."""
        return {"c": self.c.copy(), "flux": self.flux, "time": self.time}

    def load_state_dict(self, d: dict) -> None:
        c = np.array(d["c"], dtype=np.float64)
        if c.shape != (self.n,):
            raise ValueError(f"separator state: c has shape {c.shape}, this column has {self.n} cells")
        self.c, self.flux, self.time = c, float(d["flux"]), float(d["time"])

    def ohmic_drop(self, current_density: float) -> float:
        """phi_l(x = 0) - phi_l(bulk end) [V] for current density j [A/m^2, domain sign: the
        ionic current along +x equals j], with the column's present concentration profile.

        Integrates ``dphi/dx = -(j + F (D+ - D-) eps^b dc/dx) / (eps^b kappa(c))``, i.e. the ohmic
        drop plus the diffusion potential.  With the bulk end as the potential reference this
        is the ``phi_top`` the 3D domain should use.
        """
        prm = self.params
        j = float(current_density)
        cb = np.concatenate([[self.c_interface], self.c, [self.c0]])
        xb = np.concatenate([[0.0], self.x, [self.length]])
        dxs = np.diff(xb)
        cm = np.maximum(0.5 * (cb[1:] + cb[:-1]), 1e-12 * self.c0)
        kap = prm.conductivity(cm) * self.effective_factor
        dcdx = np.diff(cb) / dxs
        dphi = -(j + FARADAY * (prm.cation_diffusivity - prm.anion_diffusivity) * self.effective_factor * dcdx) / kap
        return float(-(dphi * dxs).sum())


def limiting_current_density(params: PhysicalParameters, separator_length: float, separator_porosity: float,
                             electrolyte_length: float = 0.0, bruggeman: float = 1.5) -> float:
    """Steady 1D limiting current density [A/m^2, magnitude] of a planar electrode under
    ``electrolyte_length`` [m] of free electrolyte and the separator column, with the bulk
    value c0 held at the column's far end: the salt flux (1 - t+) i / F that empties the
    electrode side, ``i_lim = F c0 / ((1 - t+) (L_sep / D_eff + L_free / D))``."""
    el = params.electrolyte
    resistance = separator_length / (el.salt_diffusivity * separator_porosity**bruggeman) \
        + electrolyte_length / el.salt_diffusivity
    return FARADAY * el.concentration / ((1.0 - el.transference_number) * resistance)
