"""Observables of docs/model.md, "Observables". Each is a function of the lattice state (phase,
connectivity, the initial host), so it can be recomputed from any saved snapshot."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from continuum.grid import collector_connected, count_faces

from . import columns as col
from .units import MAH_PER_CM2

# Region ids used to split currents and lithium by depth (docs/model.md, "Observables").
REGION_NAMES = ("host bottom third", "host middle third", "host top third", "above host")


def host_top_index(host_phase: np.ndarray) -> int:
    """Index of the first layer above the highest host voxel (collector layer included)."""
    solid = (host_phase == HOST_CONDUCTIVE) | (host_phase == HOST_DIELECTRIC)
    zs = np.nonzero(solid.any(axis=(0, 1)))[0]
    return int(zs.max()) + 1 if zs.size else 0


def region_map(host_phase: np.ndarray) -> np.ndarray:
    """uint8 region id per voxel: thirds of the host height above the collector, then above."""
    nz = host_phase.shape[2]
    top = host_top_index(host_phase)
    z = np.arange(nz)
    height = max(top - 1, 1)  # host layers above the collector layer
    third = np.clip(((z - 1) * 3) // height, 0, 2)
    ids = np.where(z >= top, 3, third).astype(np.uint8)
    return np.broadcast_to(ids, host_phase.shape).copy()


def voxels_to_capacity(n_voxels, spacing: float, area_voxels: int, molar_volume: float) -> float:
    """Capacity [mAh/cm^2] of ``n_voxels`` lithium voxels over a footprint of ``area_voxels``."""
    from continuum.constants import FARADAY

    charge = n_voxels * FARADAY * spacing**3 / molar_volume
    return float(charge / (area_voxels * spacing**2) / MAH_PER_CM2)


def height_map(phase: np.ndarray, host_phase: np.ndarray) -> np.ndarray:
    """Deposit top per (x, y) column, in voxels above the collector surface (the top of
    the z = 0 layer): the top of the highest lithium voxel, 0 where a column has none."""
    li = phase == LITHIUM
    nz = phase.shape[2]
    has = li.any(axis=2)
    top = nz - np.argmax(li[:, :, ::-1], axis=2)  # index of highest Li + 1
    return np.where(has, top - 1, 0).astype(np.float64)


def count_tips(hmap: np.ndarray, threshold_voxels: float = 3.0) -> int:
    """Protrusions: plateaus of the height map that are local maxima (3x3, periodic) and
    stand at least ``threshold_voxels`` above the median height."""
    peak = (hmap == ndimage.maximum_filter(hmap, size=3, mode="wrap")) & (hmap >= np.median(hmap) + threshold_voxels)
    _, n = ndimage.label(peak, structure=np.ones((3, 3)))
    return int(n)


def interface_faces_count(phase: np.ndarray) -> int:
    """Lithium/electrolyte faces (periodic in x, y; z not wrapped)."""
    return count_faces(phase == LITHIUM, phase == ELECTROLYTE)


@dataclass
class DepositObservables:
    lithium_capacity: float  # mAh/cm^2, all lithium voxels
    dead_lithium_capacity: float  # mAh/cm^2
    lithium_inside_host: float  # mAh/cm^2
    lithium_above_host: float  # mAh/cm^2
    max_height: float  # um above the collector surface
    mean_height: float  # um
    rms_roughness: float  # um
    interface_area: float  # um^2 of Li/electrolyte per um^2 of footprint
    n_tips: int

    def as_row(self) -> dict:
        return {
            col.LITHIUM: self.lithium_capacity,
            col.DEAD_LITHIUM: self.dead_lithium_capacity,
            col.LITHIUM_INSIDE: self.lithium_inside_host,
            col.LITHIUM_ABOVE: self.lithium_above_host,
            col.MAX_HEIGHT: self.max_height,
            col.MEAN_HEIGHT: self.mean_height,
            col.RMS_ROUGHNESS: self.rms_roughness,
            col.INTERFACE_AREA: self.interface_area,
            col.TIPS: self.n_tips,
        }


def deposit_observables(phase: np.ndarray, host_phase: np.ndarray, spacing: float, molar_volume: float,
                        connected: np.ndarray | None = None, tip_threshold_voxels: float = 3.0) -> DepositObservables:
    if connected is None:
        connected = collector_connected(phase)
    nx, ny, _ = phase.shape
    area = nx * ny
    li = phase == LITHIUM
    top = host_top_index(host_phase)
    inside = int(np.count_nonzero(li[:, :, :top]))
    total = int(np.count_nonzero(li))
    dead = int(np.count_nonzero(li & ~connected))
    hmap = height_map(phase, host_phase)
    h_um = spacing * 1e6
    cap = lambda n: voxels_to_capacity(n, spacing, area, molar_volume)  # noqa: E731
    return DepositObservables(
        lithium_capacity=cap(total), dead_lithium_capacity=cap(dead),
        lithium_inside_host=cap(inside), lithium_above_host=cap(total - inside),
        max_height=float(hmap.max() * h_um), mean_height=float(hmap.mean() * h_um),
        rms_roughness=float(hmap.std() * h_um),
        interface_area=interface_faces_count(phase) / area,
        n_tips=count_tips(hmap, tip_threshold_voxels),
    )


def time_weighted_mean(rows, column: str, *, under_current: bool = True) -> float:
    """Mean of ``column`` over time: each row stands for the macro-step it ends, weighted by that
    step's length; rows without a value (NaN) are skipped.  ``under_current``: only the steps
    with applied current (a pulse's open-circuit steps excluded).  NaN when nothing is left."""
    num = den = 0.0
    for prev, row in zip(rows, rows[1:]):
        dt = row[col.TIME] - prev[col.TIME]
        v = row[column]
        if dt > 0 and np.isfinite(v) and (not under_current or row[col.CURRENT] != 0):
            num += v * dt
            den += dt
    return num / den if den > 0 else float("nan")


def cycle_balance(segments: list[dict]) -> list[dict]:
    """Plated, stripped and net capacity and Coulombic efficiency (stripped / plated) per
    plate/strip cycle from a run's segment records (segments.csv); a cycle starts at a plating
    segment that follows a stripping one.  CE is empty for a cycle that plated nothing."""
    cycles: list[dict] = []
    stripped_last = True
    for seg in segments:
        passed = seg[col.PASSED_CAP]
        current = seg[col.CURRENT]
        if current > 0 and stripped_last:  # plating after stripping (or the first): a new cycle
            cycles.append({col.CYCLE: len(cycles), col.CYCLE_PLATED: 0.0, col.CYCLE_STRIPPED: 0.0})
            stripped_last = False
        elif current < 0:
            stripped_last = True
        if not cycles:
            cycles.append({col.CYCLE: 0, col.CYCLE_PLATED: 0.0, col.CYCLE_STRIPPED: 0.0})
        c = cycles[-1]
        if passed > 0:
            c[col.CYCLE_PLATED] += passed
        else:
            c[col.CYCLE_STRIPPED] -= passed
    for c in cycles:
        c[col.CYCLE_NET] = c[col.CYCLE_PLATED] - c[col.CYCLE_STRIPPED]
        c[col.COULOMBIC_EFFICIENCY] = c[col.CYCLE_STRIPPED] / c[col.CYCLE_PLATED] if c[col.CYCLE_PLATED] > 0 \
            else float("nan")
    return cycles


def observables_from_snapshot(path, molar_volume: float = 1.30e-5) -> DepositObservables:
    """Recompute the deposit observables from a saved ``.vti`` snapshot: the host is the
    snapshot's phase with lithium turned back into electrolyte (lithium only ever replaces
    electrolyte)."""
    from .io import read_vti

    cells, spacing = read_vti(path)
    phase = cells["phase"].astype(np.uint8)
    host = np.where(phase == LITHIUM, ELECTROLYTE, phase).astype(np.uint8)
    return deposit_observables(phase, host, spacing, molar_volume)
