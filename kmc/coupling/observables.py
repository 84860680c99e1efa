"""Observables of docs/model.md, "Observables". Each is a function of the lattice state (phase,
connectivity, the initial host), so it can be recomputed from any saved snapshot."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from continuum.constants import ELECTROLYTE, LITHIUM
from continuum.grid import collector_connected, count_faces, host_mask

from . import columns as col
from .units import MAH_PER_CM2

# Region ids used to split currents and lithium by depth (docs/model.md, "Observables").
REGION_NAMES = ("host bottom third", "host middle third", "host top third", "above host")


def host_top_index(host_phase: np.ndarray) -> int:
    """Index of the first layer above the highest host voxel (collector layer included)."""
    solid = host_mask(host_phase)
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
    centre_height_in_host: float  # lithium_centre_height: 0 at the collector, 1 at the host top

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
            col.LITHIUM_CENTRE_HEIGHT: self.centre_height_in_host,
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
        centre_height_in_host=lithium_centre_height(li, top),
    )


def lithium_centre_height(lithium: np.ndarray, top: int) -> float:
    """Mean height of the lithium (mask) inside the host, layers 1 .. ``top`` - 1 (``top``:
    :func:`host_top_index`), over the host height: 0 at the collector, 1 at the host top, 0.5
    for a uniform fill; NaN with no host or no lithium inside.  Stripping that empties the
    pores from the top lowers it, from the bottom raises it."""
    per_layer = lithium[:, :, 1:top].sum(axis=(0, 1)).astype(np.float64)
    if top <= 1 or per_layer.sum() == 0:
        return float("nan")
    z = np.arange(1, top) - 0.5  # layer centres above the collector surface
    return float((per_layer * z).sum() / per_layer.sum() / (top - 1))


def capped_host_top(phase: np.ndarray, host_phase: np.ndarray) -> float:
    """Share of the columns whose host reaches its top layer that hold lithium above it: the
    lithium on the host's open top face, counted as the mean height sees it (each such column's
    top jumps from its buried lithium to above the host).  NaN with no host above the collector."""
    top = host_top_index(host_phase)
    if top <= 1:
        return float("nan")
    solid = host_mask(host_phase)
    reaching = solid[:, :, top - 1]
    capped = (phase[:, :, top:] == LITHIUM).any(axis=2)
    return float(capped[reaching].mean())


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


class DeadLithiumLedger:
    """Counts lithium voxels (packets) that turn dead or live again between consecutive
    states of a lattice, each state labelled by a full relabel (``connected``).

    ``formed``: lithium that was live (or new) and is dead now: a dissolved neck cut it off.
    ``reconnected``: dead lithium that is live now: a new deposit touched it and linked it to
    the collector again.  Dead lithium never reacts, so between two states the dead count
    changes by exactly ``formed - reconnected``; a dead voxel that stopped being lithium breaks
    the model and raises."""

    def __init__(self, phase: np.ndarray, connected: np.ndarray):
        self.dead = (phase == LITHIUM) & ~connected
        self.formed = 0
        self.reconnected = 0

    def update(self, phase: np.ndarray, connected: np.ndarray) -> tuple[int, int]:
        """Book the transitions to a new state; returns (formed, reconnected) in this update."""
        li = phase == LITHIUM
        dead = li & ~connected
        if np.any(self.dead & ~li):
            raise RuntimeError("dead lithium changed phase: dead lithium must never react")
        formed = int(np.count_nonzero(dead & ~self.dead))
        reconnected = int(np.count_nonzero(self.dead & ~dead))
        self.formed += formed
        self.reconnected += reconnected
        self.dead = dead
        return formed, reconnected


def is_stripping_segment(seg: dict) -> bool:
    """A segment of a cycle's stripping phase: anodic current (output sign: negative) and not a
    pulse-reverse pulse, which belongs to the plating it interrupts."""
    return seg[col.CURRENT] < 0 and seg.get(col.STEP) != "reverse"


def segment_cycles(segments: list[dict]) -> list[int]:
    """The cycle (1, 2, ...) of each segment record (see :func:`cycle_balance`)."""
    out: list[int] = []
    stripping = False
    for seg in segments:
        if not out or (seg[col.CURRENT] > 0 and stripping):
            out.append(out[-1] + 1 if out else 1)
            stripping = False
        else:
            out.append(out[-1])
        stripping = stripping or is_stripping_segment(seg)
    return out


def cycle_balance(segments: list[dict]) -> list[dict]:
    """Per plate/strip cycle, from a run's segment records (segments.csv): plated, stripped and
    net capacity, Coulombic efficiency (stripped / plated), dead lithium formed and reconnected,
    dead and all lithium at the cycle's end, the cumulative loss and why its strip ended.

    A cycle is a plating phase (its plating segments with their rests, pulse off-times and
    pulse-reverse pulses) followed by a stripping phase (the stripping segments, see
    :func:`is_stripping_segment`, and the rests after them); a cycle starts at a plating
    segment that follows a stripping phase (or the first segment); cycles count from 1.
    Plated: the net charge the model passed in the plating phase's segments with current
    (pulse-reverse pulses subtract);
    stripped: in the stripping segments; the net of the open-circuit segments (exchange noise:
    no external charge flows) has its own column.  So net plated = plated - stripped + open
    circuit is exactly the change of the cycle's lithium.  CE (stripped / plated) is NaN for a
    cycle that plated nothing; the strip's end is empty for a cycle without one."""
    cycles: list[dict] = []
    stripping = False
    for seg, k in zip(segments, segment_cycles(segments)):
        if k > len(cycles):
            cycles.append({col.CYCLE: k, col.CYCLE_PLATED: 0.0, col.CYCLE_STRIPPED: 0.0,
                           col.CYCLE_OPEN_CIRCUIT: 0.0, col.DEAD_FORMED: 0.0, col.DEAD_RECONNECTED: 0.0,
                           col.STRIP_ENDED_BY: ""})
            stripping = False
        if is_stripping_segment(seg):
            stripping = True
            cycles[-1][col.STRIP_ENDED_BY] = seg[col.ENDED_BY]
        c = cycles[-1]
        if seg[col.CURRENT] == 0:
            c[col.CYCLE_OPEN_CIRCUIT] += seg[col.PASSED_CAP]
        elif stripping:
            c[col.CYCLE_STRIPPED] -= seg[col.PASSED_CAP]
        else:
            c[col.CYCLE_PLATED] += seg[col.PASSED_CAP]
        for key in (col.DEAD_FORMED, col.DEAD_RECONNECTED):
            c[key] += seg.get(key, float("nan"))
        c[col.CYCLE_DEAD_END] = seg.get(col.DEAD_LITHIUM, float("nan"))
        c[col.CYCLE_LITHIUM_END] = seg.get(col.LITHIUM, float("nan"))
    loss = 0.0
    for c in cycles:
        c[col.CYCLE_NET] = c[col.CYCLE_PLATED] - c[col.CYCLE_STRIPPED] + c[col.CYCLE_OPEN_CIRCUIT]
        c[col.COULOMBIC_EFFICIENCY] = c[col.CYCLE_STRIPPED] / c[col.CYCLE_PLATED] if c[col.CYCLE_PLATED] > 0 \
            else float("nan")
        loss += c[col.CYCLE_NET]
        c[col.CUMULATIVE_LOSS] = loss
    order = [col.CYCLE, col.CYCLE_PLATED, col.CYCLE_STRIPPED, col.CYCLE_OPEN_CIRCUIT, col.CYCLE_NET,
             col.COULOMBIC_EFFICIENCY,
             col.DEAD_FORMED, col.DEAD_RECONNECTED, col.CYCLE_DEAD_END, col.CYCLE_LITHIUM_END, col.CUMULATIVE_LOSS,
             col.STRIP_ENDED_BY]
    return [{k: c[k] for k in order} for c in cycles]


def cycle_summary(cycles: list[dict]) -> dict:
    """Scalars of a run's cycles for its summary (and so for ensemble statistics): the
    Coulombic efficiency and the dead lithium after each cycle, their mean CE, the cumulative
    loss.  Empty for a run without a strip."""
    if not cycles or not any(c[col.STRIP_ENDED_BY] for c in cycles):
        return {}
    out = {}
    for c in cycles:
        out[col.cycle_ce(c[col.CYCLE])] = c[col.COULOMBIC_EFFICIENCY]
        out[col.cycle_dead(c[col.CYCLE])] = c[col.CYCLE_DEAD_END]
    ce = [c[col.COULOMBIC_EFFICIENCY] for c in cycles if np.isfinite(c[col.COULOMBIC_EFFICIENCY])]
    out[col.MEAN_CE] = float(np.mean(ce)) if ce else float("nan")
    out[col.CUMULATIVE_LOSS] = cycles[-1][col.CUMULATIVE_LOSS]
    return out


def observables_from_snapshot(path, molar_volume: float = 1.30e-5) -> DepositObservables:
    """Recompute the deposit observables from a saved ``.vti`` snapshot: the host is the
    snapshot's phase with lithium turned back into electrolyte (lithium only ever replaces
    electrolyte)."""
    from .io import read_vti

    cells, spacing = read_vti(path)
    phase = cells["phase"].astype(np.uint8)
    host = np.where(phase == LITHIUM, ELECTROLYTE, phase).astype(np.uint8)
    return deposit_observables(phase, host, spacing, molar_volume)


def lithium_fill_profile(phase: np.ndarray, host_phase: np.ndarray) -> np.ndarray:
    """Per layer z: the fraction of the layer's pore space (every voxel that is not host) that
    lithium fills; 0 where a layer has no pore space (the collector layer)."""
    solid = host_mask(host_phase)
    pore = (~solid).sum(axis=(0, 1))
    li = (phase == LITHIUM).sum(axis=(0, 1))
    return np.where(pore > 0, li / np.maximum(pore, 1), 0.0)
