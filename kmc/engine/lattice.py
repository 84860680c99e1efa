"""Lattice state of the KMC: phases, site properties, packets, connectivity.

Arrays are ``[x, y, z]`` C-order; a voxel's flat index is ``v = (x*ny + y)*nz + z``.
A packet is the lithium of one voxel (``h^3 / V_m`` mol).  Packets carry stable integer ids
and an image count in x and y (how many times they crossed the periodic boundary), so that
``unwrapped_positions()`` gives tracer trajectories across calls.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from continuum.grid import collector_connected

from .seeds import generator

_STATE_KEYS = ("phase", "spacing", "eta_nuc", "activity", "packets", "packet_ids", "packet_images",
               "next_packet_id", "connected")


class LatticeState:
    """Everything the KMC changes.  Build with :meth:`from_arrays` or :meth:`from_host`."""

    def __init__(self, phase, spacing, eta_nuc, activity, packets, packet_ids, packet_images,
                 next_packet_id, connected=None):
        self.phase = phase
        self.spacing = float(spacing)
        self.eta_nuc = eta_nuc
        self.activity = activity
        self.packets = packets
        self.packet_ids = packet_ids
        self.packet_images = packet_images
        self.next_packet_id = int(next_packet_id)
        self.occupancy = np.zeros(phase.shape, dtype=np.int32)
        self._count_occupancy()
        if connected is None:
            connected = collector_connected(phase)
        self.connected = np.ascontiguousarray(connected, dtype=np.bool_)
        self.validate()

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, phase, spacing, eta_nuc=None, activity=None, *, concentration=None,
                    rng=None, seed=None, molar_volume=1.30e-5) -> "LatticeState":
        """State from a phase array (uint8, ``[x, y, z]``) and spacing h [m].

        ``concentration`` (mol/m^3, scalar or full-grid array) places Poisson(c V_m) packets in
        every electrolyte voxel (``molar_volume`` = V_m, m^3/mol; pass the run's
        ``params.lithium_molar_volume``).  ``eta_nuc`` [V] and ``activity`` [-] default to 0
        and 1; on lithium they are forced to 0 and 1.
        """
        phase = np.asarray(phase)
        if phase.ndim != 3:
            raise ValueError(f"phase: must be a 3D array [x, y, z], got shape {phase.shape}")
        if not np.issubdtype(phase.dtype, np.integer):
            raise ValueError(f"phase: must hold integer phase codes, got dtype {phase.dtype}")
        if phase.size and (phase.min() < 0 or phase.max() > LITHIUM):
            raise ValueError("phase: codes must be ELECTROLYTE=0, HOST_CONDUCTIVE=1, "
                             "HOST_DIELECTRIC=2 or LITHIUM=3")
        phase = np.ascontiguousarray(phase, dtype=np.uint8).copy()
        spacing = float(spacing)
        if not (spacing > 0 and np.isfinite(spacing)):
            raise ValueError(f"spacing = {spacing!r}: must be a positive length in metres")
        eta = cls._site_array(eta_nuc, phase.shape, 0.0, "eta_nuc")
        act = cls._site_array(activity, phase.shape, 1.0, "activity")
        li = phase == LITHIUM
        eta[li] = 0.0
        act[li] = 1.0
        gen, _ = generator(rng, seed)
        packets = np.empty(0, np.int64)
        if concentration is not None:
            c = np.asarray(concentration, dtype=np.float64)
            if c.ndim != 0 and c.shape != phase.shape:
                raise ValueError(f"concentration: must be a scalar or shape {phase.shape}, got {c.shape}")
            cfull = np.broadcast_to(c, phase.shape)
            elec = phase == ELECTROLYTE
            if not np.all(np.isfinite(cfull[elec])) or np.any(cfull[elec] < 0):
                raise ValueError("concentration: must be finite and >= 0 in electrolyte voxels")
            if not (molar_volume > 0):
                raise ValueError("molar_volume: must be > 0")
            lam = np.where(elec, cfull * molar_volume, 0.0).ravel()
            counts = gen.poisson(lam)
            packets = np.repeat(np.arange(phase.size, dtype=np.int64), counts)
        n = packets.size
        return cls(phase, spacing, eta, act, packets, np.arange(n, dtype=np.int64),
                   np.zeros((n, 2), np.int64), n)

    @classmethod
    def from_host(cls, host: Any, **kwargs) -> "LatticeState":
        """State from a host object with ``.phase, .spacing, .eta_nuc, .activity``."""
        return cls.from_arrays(host.phase, host.spacing, getattr(host, "eta_nuc", None),
                               getattr(host, "activity", None), **kwargs)

    @staticmethod
    def _site_array(a, shape, default, name):
        if a is None:
            return np.full(shape, default, dtype=np.float64)
        a = np.asarray(a, dtype=np.float64)
        if a.ndim == 0:
            return np.full(shape, float(a), dtype=np.float64)
        if a.shape != shape:
            raise ValueError(f"{name}: shape {a.shape} does not match phase shape {shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: must be finite")
        return np.ascontiguousarray(a).copy()

    # -- basic properties ---------------------------------------------------------------
    @property
    def shape(self):
        return self.phase.shape

    @property
    def n_packets(self) -> int:
        return int(self.packets.size)

    @property
    def lithium_count(self) -> int:
        return int(np.count_nonzero(self.phase == LITHIUM))

    def _count_occupancy(self):
        occ = np.bincount(self.packets, minlength=self.phase.size) if self.packets.size else \
            np.zeros(self.phase.size, np.int64)
        self.occupancy[...] = occ.reshape(self.phase.shape)

    def validate(self):
        p = self.phase
        if p.dtype != np.uint8 or not p.flags.c_contiguous or p.ndim != 3:
            raise ValueError("phase: must be a C-contiguous uint8 3D array")
        if np.any(p[:, :, 0] != HOST_CONDUCTIVE):
            raise ValueError("phase: the collector layer z = 0 must be HOST_CONDUCTIVE")
        for name in ("eta_nuc", "activity"):
            a = getattr(self, name)
            if a.shape != p.shape or a.dtype != np.float64 or not a.flags.c_contiguous:
                raise ValueError(f"{name}: must be a C-contiguous float64 array of shape {p.shape}")
        if np.any(self.activity[p == HOST_CONDUCTIVE] < 0):
            raise ValueError("activity: must be >= 0 on host voxels")
        pk = self.packets
        if pk.dtype != np.int64 or pk.ndim != 1:
            raise ValueError("packets: must be a 1D int64 array of flat voxel indices")
        if pk.size:
            if pk.min() < 0 or pk.max() >= p.size:
                raise ValueError("packets: voxel index out of range")
            if np.any(p.ravel()[pk] != ELECTROLYTE):
                raise ValueError("packets: every packet must sit in an electrolyte voxel")
        if self.packet_ids.shape != pk.shape or self.packet_images.shape != (pk.size, 2):
            raise ValueError("packet_ids / packet_images: must match packets")

    # -- connectivity --------------------------------------------------------------------
    def relabel(self) -> np.ndarray:
        """Recompute ``connected`` (conductors linked to the collector); returns it."""
        self.connected[...] = collector_connected(self.phase)
        return self.connected

    @property
    def dead_lithium(self) -> np.ndarray:
        return (self.phase == LITHIUM) & ~self.connected

    # -- packets -------------------------------------------------------------------------
    def add_packets(self, voxels) -> np.ndarray:
        """Add packets at flat voxel indices (electrolyte only); returns their ids."""
        vox = np.atleast_1d(np.asarray(voxels, dtype=np.int64)).ravel()
        if vox.size and (vox.min() < 0 or vox.max() >= self.phase.size):
            raise ValueError("voxels: flat index out of range")
        if vox.size and np.any(self.phase.ravel()[vox] != ELECTROLYTE):
            raise ValueError("voxels: packets can only be placed in electrolyte voxels")
        ids = np.arange(self.next_packet_id, self.next_packet_id + vox.size, dtype=np.int64)
        self.next_packet_id += vox.size
        self.packets = np.concatenate([self.packets, vox])
        self.packet_ids = np.concatenate([self.packet_ids, ids])
        self.packet_images = np.concatenate([self.packet_images, np.zeros((vox.size, 2), np.int64)])
        np.add.at(self.occupancy.reshape(-1), vox, 1)
        return ids

    def clear_packets(self):
        self.packets = np.empty(0, np.int64)
        self.packet_ids = np.empty(0, np.int64)
        self.packet_images = np.empty((0, 2), np.int64)
        self.occupancy[...] = 0

    def unwrapped_positions(self) -> np.ndarray:
        """(n, 3) float array of packet positions in voxel units, unwrapped across the periodic
        x/y boundaries (same row order as ``packets``)."""
        nx, ny, nz = self.phase.shape
        x, y, z = np.unravel_index(self.packets, self.phase.shape)
        return np.stack([x + self.packet_images[:, 0] * nx, y + self.packet_images[:, 1] * ny, z],
                        axis=1).astype(np.float64)

    def packet_concentration(self, molar_volume=1.30e-5, smoothing_voxels: int = 0) -> np.ndarray:
        """Packet concentration [mol/m^3] = occupancy / V_m, averaged over electrolyte voxels
        in a (2s+1)^3 box (periodic in x, y; not across z boundaries); 0 outside electrolyte."""
        from scipy.ndimage import uniform_filter

        elec = (self.phase == ELECTROLYTE).astype(np.float64)
        c = self.occupancy.astype(np.float64) / molar_volume
        s = int(smoothing_voxels)
        if s < 0:
            raise ValueError("smoothing_voxels: must be >= 0")
        if s == 0:
            return c * elec
        size = 2 * s + 1
        modes = ("wrap", "wrap", "constant")
        num = uniform_filter(c * elec, size=size, mode=modes)
        den = uniform_filter(elec, size=size, mode=modes)
        out = np.zeros_like(c)
        ok = (elec > 0) & (den > 1e-12)
        out[ok] = num[ok] / den[ok]
        return out

    # -- copies and checkpoints ----------------------------------------------------------
    def copy(self) -> "LatticeState":
        return LatticeState.from_dict(self.to_dict())

    def to_dict(self) -> dict:
        """Plain arrays (copies) for checkpoints; inverse of :meth:`from_dict`."""
        return {
            "phase": self.phase.copy(), "spacing": np.float64(self.spacing),
            "eta_nuc": self.eta_nuc.copy(), "activity": self.activity.copy(),
            "packets": self.packets.copy(), "packet_ids": self.packet_ids.copy(),
            "packet_images": self.packet_images.copy(),
            "next_packet_id": np.int64(self.next_packet_id), "connected": self.connected.copy(),
        }

    state_dict = to_dict

    def load_state_dict(self, d: dict) -> None:
        """Replace this state's arrays by those of ``d`` (same grid), in place: the engine that
        holds this state keeps working on it."""
        other = LatticeState.from_dict(d)
        if other.phase.shape != self.phase.shape:
            raise ValueError(f"state dict: grid {other.phase.shape} does not match {self.phase.shape}")
        self.__dict__.update(other.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "LatticeState":
        missing = [k for k in _STATE_KEYS if k not in d]
        if missing:
            raise ValueError(f"state dict: missing keys {missing}")
        return cls(np.ascontiguousarray(d["phase"], dtype=np.uint8).copy(), float(d["spacing"]),
                   np.ascontiguousarray(d["eta_nuc"], dtype=np.float64).copy(),
                   np.ascontiguousarray(d["activity"], dtype=np.float64).copy(),
                   np.asarray(d["packets"], dtype=np.int64).copy(),
                   np.asarray(d["packet_ids"], dtype=np.int64).copy(),
                   np.asarray(d["packet_images"], dtype=np.int64).reshape(-1, 2).copy(),
                   int(d["next_packet_id"]), np.asarray(d["connected"], dtype=np.bool_).copy())

    def __repr__(self):
        counts = np.bincount(self.phase.ravel(), minlength=4)
        return (f"LatticeState(shape={self.shape}, h={self.spacing:g} m, electrolyte={counts[0]}, "
                f"host_conductive={counts[1]}, host_dielectric={counts[2]}, lithium={counts[3]}, "
                f"packets={self.n_packets}, dead_lithium={int(self.dead_lithium.sum())})")


__all__ = ["LatticeState", "ELECTROLYTE", "HOST_CONDUCTIVE", "HOST_DIELECTRIC", "LITHIUM"]
