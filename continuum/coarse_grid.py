"""Solve the potential on a grid coarsened by an integer factor, fields back on the fine grid.

Blocks of k x k x k voxels become one: the block holding the collector layer (z = 0) is
conductor; other blocks take the majority of electrolyte / conductor / dielectric (ties go
to the electrolyte, so pore paths survive); a conductor block is lithium when lithium is its
majority conductor. Site properties are block means over host voxels, c the block mean
over electrolyte voxels. Fine fields are the coarse values of the enclosing block; fine
electrolyte voxels inside a coarse solid block take the nearest coarse electrolyte value,
fine conductors inside a coarse non-conductor block the cell potential (equipotential).
"""
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
from scipy import ndimage

from .constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from .grid import conductor_mask, host_mask
from .potential import PotentialSolution, PotentialSolver


def _blocks(a: np.ndarray, k: int) -> np.ndarray:
    nx, ny, nz = a.shape
    return a.reshape(nx // k, k, ny // k, k, nz // k, k).transpose(0, 2, 4, 1, 3, 5).reshape(
        nx // k, ny // k, nz // k, k**3)


def check_factor(shape, k: int) -> int:
    k = int(k)
    if k < 1:
        raise ValueError(f"coarsen={k} is out of range: must be >= 1")
    if any(n % k for n in shape):
        raise ValueError(f"coarsen={k}: every grid dimension {tuple(shape)} must be divisible by it")
    return k


def coarsen_phase(phase: np.ndarray, k: int) -> np.ndarray:
    k = check_factor(phase.shape, k)
    b = _blocks(phase, k)
    n_el = (b == ELECTROLYTE).sum(-1)
    n_li = (b == LITHIUM).sum(-1)
    n_cond = (b == HOST_CONDUCTIVE).sum(-1) + n_li
    n_di = (b == HOST_DIELECTRIC).sum(-1)
    out = np.full(b.shape[:3], ELECTROLYTE, dtype=np.uint8)
    cond = (n_cond > n_el) & (n_cond >= n_di)
    out[cond] = np.where(2 * n_li[cond] > n_cond[cond], LITHIUM, HOST_CONDUCTIVE)
    out[(n_di > n_el) & ~cond] = HOST_DIELECTRIC
    out[:, :, 0] = np.where(out[:, :, 0] == LITHIUM, LITHIUM, HOST_CONDUCTIVE)  # the collector
    return out


def block_mean(a, k: int, where=None, default: float = 0.0) -> np.ndarray:
    """Mean of ``a`` over each block (over ``where`` voxels only, ``default`` where none)."""
    a = np.asarray(a, dtype=np.float64)
    b = _blocks(a, k)
    if where is None:
        return b.mean(-1)
    w = _blocks(np.asarray(where, dtype=np.float64), k)
    n = w.sum(-1)
    return np.where(n > 0, (b * w).sum(-1) / np.maximum(n, 1), default)


def prolong(a: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(np.repeat(np.repeat(a, k, 0), k, 1), k, 2)


class CoarsePotentialSolver:
    """:class:`PotentialSolver` on a grid coarsened by ``coarsen``; same ``solve`` signature,
    fields returned on the fine grid (faces, face currents and overpotentials are the coarse
    ones)."""

    def __init__(self, phase, spacing, params, eta_nuc=None, activity=None, conductivity=None, coarsen: int = 2,
                 **options):
        phase = np.ascontiguousarray(phase, dtype=np.uint8)
        self.k = check_factor(phase.shape, coarsen)
        self.fine_phase = phase
        host = host_mask(phase)
        shape = phase.shape
        eta = np.broadcast_to(np.asarray(0.0 if eta_nuc is None else eta_nuc, dtype=np.float64), shape)
        act = np.broadcast_to(np.asarray(1.0 if activity is None else activity, dtype=np.float64), shape)
        sig = None
        if conductivity is not None:
            sig = block_mean(np.broadcast_to(conductivity, shape), self.k, conductor_mask(phase), 1.0)
        self.coarse = PotentialSolver(coarsen_phase(phase, self.k), spacing * self.k, params,
                                      block_mean(eta, self.k, host, 0.0), block_mean(act, self.k, host, 1.0),
                                      sig, **options)
        self.params = params

    def renewed(self) -> CoarsePotentialSolver:
        """This geometry's solver in a new one's state (:meth:`PotentialSolver.renewed`)."""
        new = copy.copy(self)
        new.coarse = self.coarse.renewed()
        return new

    def scratch(self):
        """:meth:`PotentialSolver.scratch` of the coarse grid's solver."""
        return self.coarse.scratch()

    def use_scratch(self, work) -> None:
        self.coarse.use_scratch(work)

    def solve(self, c, *, initial=None, **kw) -> PotentialSolution:
        k = self.k
        elec = self.fine_phase == ELECTROLYTE
        c_full = np.broadcast_to(np.asarray(c, dtype=np.float64), self.fine_phase.shape)
        cc = block_mean(c_full, k, elec, self.params.electrolyte.concentration)
        init = getattr(initial, "coarse_solution", None)
        sol = self.coarse.solve(cc, initial=init, **kw)
        phi_l = prolong(sol.phi_l, k)
        missing = elec & ~np.isfinite(phi_l)
        if missing.any():  # nearest coarse electrolyte value
            _, idx = ndimage.distance_transform_edt(~np.isfinite(phi_l), return_indices=True)
            phi_l[missing] = phi_l[tuple(i[missing] for i in idx)]
        phi_l[~elec] = np.nan
        phi_s = prolong(sol.phi_s, k)
        cond = conductor_mask(self.fine_phase)
        phi_s[cond & ~np.isfinite(phi_s)] = sol.cell_potential
        phi_s[~cond] = np.nan
        fine = replace(sol, phi_l=phi_l, phi_s=phi_s)
        fine.coarse_solution = sol
        return fine


def make_potential_solver(phase, spacing, params, eta_nuc=None, activity=None, conductivity=None, coarsen: int = 1,
                          connected=None, **options):
    """A potential solver on the voxel grid (coarsen = 1) or on a grid coarsened by ``coarsen``.
    ``connected``: the phase's collector connectivity if the caller has it (used on the voxel grid)."""
    if int(coarsen) == 1:
        return PotentialSolver(phase, spacing, params, eta_nuc, activity, conductivity, connected=connected,
                               **options)
    return CoarsePotentialSolver(phase, spacing, params, eta_nuc, activity, conductivity, coarsen, **options)
