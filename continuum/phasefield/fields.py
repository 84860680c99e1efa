"""Initial order-parameter fields and observables of a phase-field state, as plain arrays.

Arrays are ``[x, y, z]`` (a 2D problem is ``(nx, 1, nz)``), periodic in x and y, z = 0 the
collector.  ``phase`` uses the project's codes: ELECTROLYTE and LITHIUM voxels are free (the
order parameter evolves there), HOST_CONDUCTIVE and HOST_DIELECTRIC are fixed.  Lithium is
counted on free voxels only: a conductive host's xi = 1 is not lithium.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from ..grid import count_faces
from .parameters import PhaseFieldParameters


def free_mask(phase) -> np.ndarray:
    """Voxels where the order parameter evolves (electrolyte or lithium)."""
    phase = np.asarray(phase)
    return (phase == ELECTROLYTE) | (phase == LITHIUM)


def logistic_profile(signed_distance, params: PhaseFieldParameters) -> np.ndarray:
    """The equilibrium profile ``1 / (1 + exp(d / sqrt(kappa / 2W)))`` at signed distance d [m]
    from the interface (d < 0 inside the metal)."""
    x = np.clip(np.asarray(signed_distance, dtype=np.float64) / params.profile_length, -700.0, 700.0)
    return 1.0 / (1.0 + np.exp(x))


def signed_distance(mask, spacing: float) -> np.ndarray:
    """Signed distance [m] from each voxel centre to the boundary of ``mask`` (negative inside),
    periodic in x and y.  The boundary lies half a voxel beyond the outermost voxels of the mask."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.full(mask.shape, np.inf)
    if mask.all():
        return np.full(mask.shape, -np.inf)
    nx, ny, _ = mask.shape
    px, py = nx if nx > 1 else 0, ny if ny > 1 else 0  # one period of padding makes EDT periodic
    padded = np.pad(mask, ((px, px), (py, py), (0, 0)), mode="wrap")
    outside = ndimage.distance_transform_edt(~padded)[px:px + nx, py:py + ny]
    inside = ndimage.distance_transform_edt(padded)[px:px + nx, py:py + ny]
    return np.where(mask, -(inside - 0.5), outside - 0.5) * spacing


def order_parameter_from_mask(phase, lithium, spacing: float, params: PhaseFieldParameters) -> np.ndarray:
    """Order parameter with the equilibrium profile around ``lithium`` (a bare host carries no
    diffuse interface: its faces exert no force at xi = 0); 1 on conductive host, 0 on
    dielectric host."""
    phase = np.asarray(phase)
    xi = logistic_profile(signed_distance(np.asarray(lithium, dtype=bool), spacing), params)
    xi[phase == HOST_CONDUCTIVE] = 1.0
    xi[phase == HOST_DIELECTRIC] = 0.0
    return xi


def planar_electrode(shape, spacing: float, params: PhaseFieldParameters, height: float, *,
                     seed_radius: float = 0.0, seed_centre=None, collector: bool = True):
    """A collector layer (z = 0, conductive host; ``collector=False``: none, the lithium then
    ends on the domain's zero-flux bottom face), a flat lithium front at ``height`` [m] above
    z = 0 and, optionally, a half-disc (2D) or hemisphere (3D) seed of ``seed_radius`` [m] on
    it.  Returns ``(phase, xi)`` with the equilibrium profile across every interface."""
    nx, ny, nz = shape
    phase = np.full(shape, ELECTROLYTE, np.uint8)
    if collector:
        phase[:, :, 0] = HOST_CONDUCTIVE
    x = (np.arange(nx) + 0.5) * spacing
    y = (np.arange(ny) + 0.5) * spacing
    z = (np.arange(nz) + 0.5) * spacing
    X, Y, Z = np.meshgrid(x, y, z, indexing="ij")
    d = Z - height
    if seed_radius > 0:
        cx, cy = seed_centre if seed_centre is not None else (nx * spacing / 2, ny * spacing / 2)
        # periodic lateral distance to the seed axis
        dx = (X - cx + nx * spacing / 2) % (nx * spacing) - nx * spacing / 2
        dy = (Y - cy + ny * spacing / 2) % (ny * spacing) - ny * spacing / 2 if ny > 1 else 0.0
        d = np.minimum(d, np.sqrt(dx**2 + dy**2 + (Z - height) ** 2) - seed_radius)
    xi = logistic_profile(d, params)
    if collector:
        xi[:, :, 0] = 1.0
    return phase, xi


def lithium_mask(xi, phase, threshold: float = 0.5) -> np.ndarray:
    """Thresholded lithium: free voxels with xi > ``threshold``."""
    return free_mask(phase) & (np.asarray(xi) > threshold)


def lithium_volume(xi, phase, spacing: float, threshold: float = 0.5) -> float:
    """Volume of the thresholded lithium [m^3]."""
    return float(np.count_nonzero(lithium_mask(xi, phase, threshold))) * spacing**3


def lithium_amount(xi, phase, spacing: float, params: PhaseFieldParameters) -> float:
    """Lithium metal in the free voxels [mol]: c_s sum(xi) h^3 (what the reaction conserves)."""
    xi = np.asarray(xi, dtype=np.float64)
    return float(xi[free_mask(phase)].sum()) * spacing**3 * params.solid_concentration


def height_map(mask, spacing: float) -> np.ndarray:
    """Per column (x, y): height of the top face of the highest voxel of ``mask`` [m], 0 where
    the column has none."""
    mask = np.asarray(mask, dtype=bool)
    nz = mask.shape[2]
    top = nz - np.argmax(mask[:, :, ::-1], axis=2)
    return np.where(mask.any(axis=2), top, 0) * spacing


def interface_area(mask, phase, spacing: float) -> float:
    """Area [m^2] of the faces between ``mask`` (lithium) and free voxels outside it."""
    mask = np.asarray(mask, dtype=bool)
    return count_faces(mask, free_mask(phase) & ~mask) * spacing**2
