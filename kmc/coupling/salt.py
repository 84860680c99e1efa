"""Mean-field salt balance of a coupled run and its separator column (docs/model.md, "Salt").

The continuum solves with this concentration: at 0.013 packets per voxel a smoothed packet
density is too noisy for the diffusion potential.  The packets still decide every reduction.
"""
from __future__ import annotations

import numpy as np

from continuum.concentration import ConcentrationSolver
from continuum.constants import ELECTROLYTE
from continuum.faces import neighbour_index
from continuum.separator import SeparatorColumn


class SaltBalance:
    """Salt concentration on the voxel grid, advanced every macro-step with the interfacial
    flux the KMC realised, fed from a 1D separator column above the domain."""

    def __init__(self, host_phase: np.ndarray, spacing: float, params, separator, continuum):
        self.params = params
        self.h = float(spacing)
        self.continuum = continuum  # config.continuum: solver choice, tolerance, coarsening
        c0 = params.electrolyte.concentration
        self.concentration = np.where(host_phase == ELECTROLYTE, c0, 0.0)
        self.separator = SeparatorColumn(params, separator.length_um * 1e-6, separator.porosity, separator.cells)

    @property
    def c_top(self) -> float:
        """Concentration at the domain's top face [mol/m^3] (the separator's domain side)."""
        return self.separator.c_interface

    def field(self) -> np.ndarray:
        """The c rates see: a packet is 77 M of lithium in one voxel, so one reduction's sink
        can drive the mean field below zero locally until diffusion refills it; the balance
        keeps that deficit (salt is conserved) while rates see c clipped at zero."""
        return np.maximum(self.concentration, 0.0)

    def field_for_potential(self) -> np.ndarray:
        """c floored at 1 % of c0: a voxel emptied by one packet's sink would otherwise be an
        insulator whose potential drop runs to volts."""
        return np.maximum(self.field(), 0.01 * self.params.electrolyte.concentration)

    def ohmic_drop(self, current_density: float) -> float:
        return self.separator.ohmic_drop(current_density)

    def advance(self, dt, res, sol, realised_current, phase_before, phase_after, current_density) -> None:
        """One macro-step: the domain's salt with the reactions the KMC realised (``res``,
        ``realised_current`` [A, SI sign]) on the step's geometry, then the separator column
        with the quasi-steady salt flux -(1 - t+) j / F of the applied ``current_density``
        (feeding the domain's transient top inflow back oscillated at these time steps)."""
        c_top = self.c_top
        cn = self._step_domain(dt, res, sol, realised_current, c_top, phase_before)
        el = phase_after == ELECTROLYTE
        fresh = el & (phase_before != ELECTROLYTE)  # stripped voxels take the mean of the electrolyte
        cn[fresh] = cn[el & ~fresh].mean() if (el & ~fresh).any() else self.params.electrolyte.concentration
        cn[~el] = 0.0
        self.concentration = cn
        self.separator.step(dt, current_density=current_density)

    def _solver(self, phase):
        return ConcentrationSolver(phase, self.h, self.params, linear_solver=self.continuum.linear_solver,
                                   rtol=self.continuum.concentration_tolerance)

    def _step_domain(self, dt, res, sol, realised_current, c_top, phase_before) -> np.ndarray:
        """(1 - t+) of a packet's salt leaves per reduction and returns per oxidation. Where the
        continuum current has the sign and size of the realised one, the realised total is
        spread over the faces in the continuum's distribution (a single packet is 77 M in one
        voxel; dumping it there makes c spiky); otherwise (open circuit, where only exchange
        happens) each reaction is placed at the face where the KMC realised it."""
        tp = self.params.electrolyte.transference_number
        same_grid = self.continuum.coarsen == 1  # coarse faces do not map onto voxels
        if same_grid and sol is not None and realised_current != 0 and sol.total_current * realised_current > 0:
            scale = realised_current / sol.total_current
            if 0.2 < scale < 5.0:
                return self._solver(phase_before).step(self.concentration, dt, sol.faces,
                                                       sol.face_current_density * scale, c_top)
        net = (res.face_oxidations - res.face_reductions).reshape(-1, 6)  # by conductor voxel
        source = np.zeros(phase_before.size)
        for d in range(6):
            nz_ = np.flatnonzero(net[:, d])
            if nz_.size:
                nb, _ = neighbour_index(phase_before.shape, d)
                np.add.at(source, nb.ravel()[nz_], net[nz_, d])
        n_packet = self.h**3 / self.params.lithium_molar_volume  # mol
        source *= (1.0 - tp) * n_packet / dt
        return self._solver(phase_before).step(self.concentration, dt, None, None, c_top, voxel_source=source)

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"concentration": self.concentration.copy(), "separator": self.separator.state_dict()}

    def load_state_dict(self, d: dict) -> None:
        c = np.array(d["concentration"], dtype=np.float64)
        if c.shape != self.concentration.shape:
            raise ValueError(f"salt state: concentration has shape {c.shape}, the grid is {self.concentration.shape}")
        self.concentration = c
        self.separator.load_state_dict(d["separator"])
