"""Voxel-grid topology: conductor masks and electronic connectivity to the collector.

Conventions (docs/model.md, "Lattice conventions"): arrays are indexed ``[x, y, z]``; periodic in x and y;
the layer ``z = 0`` is the current collector (every voxel there is HOST_CONDUCTIVE);
``z = nz`` is the top, facing the separator.
"""
from __future__ import annotations

import numba
import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph

from .constants import HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM


def periodic_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Face-connected components of ``mask``, periodic in x and y: (labels, 1..n on the
    mask and 0 off it; n).  ``ndimage.label`` plus a merge across the periodic faces: far
    cheaper than a sparse graph's connected components (a COO -> CSR conversion and sort)."""
    lab, n = ndi.label(mask)
    if n <= 1:
        return lab, n
    pairs = [(lab[-1], lab[0]), (lab[:, -1], lab[:, 0])]
    a = np.concatenate([p[0][(p[0] > 0) & (p[1] > 0)] for p in pairs])
    b = np.concatenate([p[1][(p[0] > 0) & (p[1] > 0)] for p in pairs])
    if a.size:
        links = sp.coo_matrix((np.ones(a.size), (a, b)), shape=(n + 1, n + 1))
        n_merged, merged = csgraph.connected_components(links, directed=False)
        lab = np.where(lab > 0, merged[lab], 0)  # label 0 has no link: its component is 0
        n = n_merged - 1
    return lab, n


def host_mask(phase: np.ndarray) -> np.ndarray:
    """True where a voxel is host skeleton (conductive or dielectric)."""
    return (phase == HOST_CONDUCTIVE) | (phase == HOST_DIELECTRIC)


def conductor_mask(phase: np.ndarray) -> np.ndarray:
    """True where a voxel conducts electrons (conductive host or lithium)."""
    return (phase == HOST_CONDUCTIVE) | (phase == LITHIUM)


@numba.njit(cache=True)
def _flood_from_collector(cond, out):
    nx, ny, nz = cond.shape
    stack = np.empty(nx * ny * nz, dtype=np.int64)
    top = 0
    for i in range(nx):
        for j in range(ny):
            if cond[i, j, 0] and not out[i, j, 0]:
                out[i, j, 0] = True
                stack[top] = (i * ny + j) * nz
                top += 1
    while top > 0:
        top -= 1
        v = stack[top]
        k = v % nz
        j = (v // nz) % ny
        i = v // (ny * nz)
        for d in range(6):
            a, b, c = i, j, k
            if d == 0:
                a = (i + 1) % nx
            elif d == 1:
                a = (i - 1) % nx
            elif d == 2:
                b = (j + 1) % ny
            elif d == 3:
                b = (j - 1) % ny
            elif d == 4:
                c = k + 1
                if c >= nz:
                    continue
            else:
                c = k - 1
                if c < 0:
                    continue
            if cond[a, b, c] and not out[a, b, c]:
                out[a, b, c] = True
                stack[top] = (a * ny + b) * nz + c
                top += 1


def collector_connected(phase: np.ndarray) -> np.ndarray:
    """Boolean mask of conductor voxels electronically connected to the collector (z = 0)
    through face-sharing conductor voxels, periodic in x and y."""
    cond = np.ascontiguousarray(conductor_mask(phase))
    out = np.zeros(phase.shape, dtype=np.bool_)
    _flood_from_collector(cond, out)
    return out


def dead_lithium_mask(phase: np.ndarray, connected: np.ndarray | None = None) -> np.ndarray:
    """Lithium voxels cut off from the collector (dead lithium)."""
    if connected is None:
        connected = collector_connected(phase)
    return (phase == LITHIUM) & ~connected


def face_dilate(mask: np.ndarray) -> np.ndarray:
    """Voxels in ``mask`` or sharing a face with it (periodic in x, y; bounded in z)."""
    out = mask.copy()
    for ax in (0, 1):
        out |= np.roll(mask, 1, ax)
        out |= np.roll(mask, -1, ax)
    out[:, :, 1:] |= mask[:, :, :-1]
    out[:, :, :-1] |= mask[:, :, 1:]
    return out


def face_neighbour_sum(a: np.ndarray) -> np.ndarray:
    """Sum of ``a`` over each voxel's six face neighbours (periodic in x, y; nothing through the
    z boundaries): face_dilate's stencil, counting."""
    a = np.asarray(a, dtype=np.float64)
    out = np.zeros_like(a)
    for ax in (0, 1):
        out += np.roll(a, 1, ax) + np.roll(a, -1, ax)
    out[:, :, 1:] += a[:, :, :-1]
    out[:, :, :-1] += a[:, :, 1:]
    return out


def count_faces(a: np.ndarray, b: np.ndarray) -> int:
    """Number of voxel faces with ``a`` on one side and ``b`` on the other."""
    n = 0
    for ax in (0, 1):
        n += int(np.count_nonzero(a & np.roll(b, -1, ax)))
        n += int(np.count_nonzero(b & np.roll(a, -1, ax)))
    n += int(np.count_nonzero(a[:, :, :-1] & b[:, :, 1:]))
    n += int(np.count_nonzero(b[:, :, :-1] & a[:, :, 1:]))
    return n
