"""Electrolyte/conductor interface faces on the voxel grid.

A face exists between an ELECTROLYTE voxel and a face-neighbouring conductor voxel that is
electronically connected to the collector; only those react (docs/model.md, "Lattice conventions").  Dead
lithium, unconnected host and HOST_DIELECTRIC carry no flux.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .constants import ELECTROLYTE, LITHIUM
from .grid import conductor_mask

# direction d points from the electrolyte voxel to the conductor: +x, -x, +y, -y, +z, -z
DIRECTION_OFFSETS = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))


@dataclass(frozen=True)
class InterfaceFaces:
    """One entry per reacting face.  Indices are flat C-order indices into ``shape``."""

    electrolyte_index: np.ndarray  # int64
    conductor_index: np.ndarray  # int64
    direction: np.ndarray  # int8, 0..5 = +x,-x,+y,-y,+z,-z from electrolyte to conductor
    on_lithium: np.ndarray  # bool: conductor voxel is LITHIUM (both BV branches)
    eta_nuc: np.ndarray  # V, 0 on lithium
    activity: np.ndarray  # -, 1 on lithium
    shape: tuple

    def __len__(self) -> int:
        return int(self.electrolyte_index.size)

    @property
    def n_faces(self) -> int:
        return len(self)

    def subset(self, mask) -> "InterfaceFaces":
        return InterfaceFaces(self.electrolyte_index[mask], self.conductor_index[mask],
                              self.direction[mask], self.on_lithium[mask], self.eta_nuc[mask],
                              self.activity[mask], self.shape)


def _site_values(value, default, shape, index):
    """The site array ``value`` (per voxel, scalar or None: ``default``) at the flat ``index``."""
    if value is None:
        value = default
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(index.size, float(arr))
    if arr.shape != tuple(shape):
        raise ValueError(f"site array has shape {arr.shape}, grid is {tuple(shape)}")
    return arr.ravel()[index]


def neighbour_index(shape, d: int) -> tuple:
    """(flat index of the neighbour in direction d, validity mask), both over the full grid;
    periodic in x and y, bounded in z."""
    nx, ny, nz = shape
    flat = np.arange(nx * ny * nz, dtype=np.int64).reshape(shape)
    dx, dy, dz = DIRECTION_OFFSETS[d]
    valid = np.ones(shape, dtype=bool)
    if dz == 0:
        nb = np.roll(flat, shift=(-dx, -dy), axis=(0, 1))
    else:
        nb = np.full(shape, -1, dtype=np.int64)
        if dz == 1:
            nb[:, :, :-1] = flat[:, :, 1:]
            valid[:, :, -1] = False
        else:
            nb[:, :, 1:] = flat[:, :, :-1]
            valid[:, :, 0] = False
    return nb, valid


def interface_faces(phase: np.ndarray, connected: np.ndarray, eta_nuc=None, activity=None) -> InterfaceFaces:
    """All electrolyte / connected-conductor faces.

    ``eta_nuc`` (V) and ``activity`` are per-voxel site arrays of the grid's shape, scalars, or
    None (0 and 1).  Values are taken at the conductor voxel; lithium faces get eta_nuc = 0 and
    activity = 1 whatever the arrays say.
    """
    phase = np.asarray(phase)
    shape = phase.shape
    nx, ny, nz = shape
    elec = phase == ELECTROLYTE
    conn = np.asarray(connected, dtype=bool) & conductor_mask(phase)
    eidx, cidx, dirs = [], [], []
    for d in range(6):
        # the conductor mask seen from each voxel in direction d, and the neighbour's flat index
        # from the face's own (no full-grid index arrays: they cost their page faults at 128^3)
        dx, dy, dz = DIRECTION_OFFSETS[d]
        if dz == 0:
            nb_conn = np.roll(conn, shift=(-dx, -dy), axis=(0, 1))
        else:
            nb_conn = np.zeros(shape, dtype=bool)
            if dz == 1:
                nb_conn[:, :, :-1] = conn[:, :, 1:]
            else:
                nb_conn[:, :, 1:] = conn[:, :, :-1]
        e = np.flatnonzero(elec & nb_conn)
        if dx:
            i = e // (ny * nz)
            c = e + ((i + dx) % nx - i) * (ny * nz)
        elif dy:
            j = (e // nz) % ny
            c = e + ((j + dy) % ny - j) * nz
        else:
            c = e + dz
        eidx.append(e)
        cidx.append(c)
        dirs.append(np.full(e.size, d, dtype=np.int8))
    eidx = np.concatenate(eidx)
    cidx = np.concatenate(cidx)
    dirs = np.concatenate(dirs)
    on_li = phase.ravel()[cidx] == LITHIUM
    en = np.where(on_li, 0.0, _site_values(eta_nuc, 0.0, shape, cidx))
    act = np.where(on_li, 1.0, _site_values(activity, 1.0, shape, cidx))
    return InterfaceFaces(eidx, cidx, dirs, on_li, en, act, tuple(shape))
