"""The :class:`Host` record, argument checks shared by the host builders, and topology helpers.

Definitions used by :class:`Host`
---------------------------------
* host voxel: HOST_CONDUCTIVE or HOST_DIELECTRIC (lithium is deposit, not host).
* ``host_layers``: index of the highest z-layer holding a host voxel above the collector
  (0 for a bare collector). ``host_height = host_layers * spacing`` is the distance from the
  top face of the collector layer to the top face of the highest host voxel.
* host region: layers ``1 .. host_layers`` (the collector layer excluded).
* ``porosity``: electrolyte voxels / all voxels of the host region; 1.0 when the host region
  is empty (bare collector: everything above it is electrolyte).
* ``specific_surface_area``: (number of host/electrolyte voxel faces anywhere in the grid,
  periodic in x, y, collector top included) * spacing**2 / bulk volume of the host region
  (nx * ny * host_layers * spacing**3), in 1/m; NaN for a bare collector (zero volume).
"""
from __future__ import annotations

import copy as _copy
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from continuum.grid import collector_connected, count_faces, face_dilate, host_mask

#: Nucleation overpotential of bare Cu [V]: ~40 mV measured for Li on Cu by
#: Yan et al., Nat. Energy 1, 16010 (2016); lithiophilic Au/Ag/ZnO are ~0 V.
ETA_NUC_BARE = 0.04
#: Pure-electrolyte layers left above generated hosts unless told otherwise.
DEFAULT_RESERVOIR = 4
#: Largest |achieved - target| porosity the generators accept.
POROSITY_TOLERANCE = 0.02

_HOST_PHASES = (HOST_CONDUCTIVE, HOST_DIELECTRIC)

SeedLike = Union[None, int, np.random.SeedSequence]
Shape = Sequence[int]


# ----------------------------------------------------------------------------------------
# argument checking
# ----------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _allowed(lo, hi, lo_open, hi_open) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_fmt(lo)}"
    return f"{'<' if hi_open else '<='} {_fmt(hi)}"


def _check_num(name: str, value: Any, lo=None, hi=None, *, lo_open=False, hi_open=False,
               integer=False):
    """Return ``value`` as float/int or raise ValueError naming it, its value and the range."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
        raise ValueError(f"{name}={value!r} must be {'an integer' if integer else 'a real number'}")
    v = int(value) if integer else float(value)
    if not integer and not math.isfinite(v):
        raise ValueError(f"{name}={value!r} must be finite")
    bad = ((lo is not None and (v <= lo if lo_open else v < lo))
           or (hi is not None and (v >= hi if hi_open else v > hi)))
    if bad:
        raise ValueError(f"{name}={_fmt(v)} is out of range: must be {_allowed(lo, hi, lo_open, hi_open)}")
    return v


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not allowed: must be one of {list(choices)}")
    return value


def _parse_shape(shape: Shape) -> tuple[int, int, int]:
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"shape={shape!r} must be a sequence (nx, ny, nz)") from None
    if len(dims) != 3:
        raise ValueError(f"shape={shape!r} must have three entries (nx, ny, nz)")
    nx = _check_num("shape[0] (nx)", dims[0], 1, integer=True)
    ny = _check_num("shape[1] (ny)", dims[1], 1, integer=True)
    nz = _check_num("shape[2] (nz)", dims[2], 3, integer=True)
    return nx, ny, nz


#: Allowed voxel edge for the public API, in micrometres (1 nm .. 1 cm). The lower bound is
#: what catches a metre value (1e-6 for 1 um) passed where micrometres are expected.
SPACING_UM_RANGE = (1e-3, 1e4)


def _check_spacing(spacing: Any) -> float:
    """Voxel edge in metres (the unit of :attr:`Host.spacing`; SI inside)."""
    return _check_num("spacing", spacing, 0.0, 1.0, lo_open=True)  # metres


def _check_spacing_um(spacing_um: Any) -> float:
    """Voxel edge in micrometres, as the public host API takes it; returned in um.

    Raises ValueError naming ``spacing_um`` and its allowed range; a value below 1e-3 um
    (e.g. 1e-6, i.e. 1 um written in metres) is refused as not a length in um.
    """
    lo, hi = SPACING_UM_RANGE
    v = _check_num("spacing_um", spacing_um)  # type and finiteness
    if not lo <= v <= hi:
        hint = ""
        if 0 < v < lo:
            hint = (f"; {_fmt(v)} is not a voxel edge in micrometres (a length in metres? "
                    "1 um voxels are spacing_um=1.0)")
        raise ValueError(f"spacing_um={_fmt(v)} is out of range: must be in [{_fmt(lo)}, {_fmt(hi)}] "
                         f"(voxel edge in micrometres){hint}")
    return v


def _host_layer_count(nz: int, reservoir: Any) -> int:
    """Layers available to the host between the collector and the reservoir."""
    reservoir = _check_num("reservoir", reservoir, 0, nz - 2, integer=True)
    return nz - 1 - reservoir


def um_to_voxels(length_um: float, spacing_um: float) -> float:
    """Length in micrometres -> (fractional) number of voxels of edge ``spacing_um`` [um].

    ``um_to_voxels(2.0, 0.5) == 4.0``.
    """
    _check_num("length_um", length_um, 0.0)
    spacing = _check_spacing_um(spacing_um) * 1e-6  # SI inside
    return float(length_um) * 1e-6 / spacing


# ----------------------------------------------------------------------------------------
# topology helpers (periodic in x, y; bounded in z)
# ----------------------------------------------------------------------------------------
def _periodic_label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Face-connected components of ``mask``, merged across the x and y boundaries."""
    lab, n = ndimage.label(mask)
    if n == 0:
        return lab, 0
    pairs_a, pairs_b = [], []
    for ax in (0, 1):
        first, last = np.take(lab, 0, axis=ax), np.take(lab, -1, axis=ax)
        both = (first > 0) & (last > 0)
        pairs_a.append(first[both])
        pairs_b.append(last[both])
    a, b = np.concatenate(pairs_a), np.concatenate(pairs_b)
    if a.size == 0:
        return lab, n
    graph = sparse.coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(n + 1, n + 1))
    _, comp = csgraph.connected_components(graph, directed=False)
    uniq, inv = np.unique(comp[1:], return_inverse=True)
    remap = np.concatenate([[0], inv + 1])
    return remap[lab], int(uniq.size)


def _open_pores(phase: np.ndarray) -> np.ndarray:
    """Electrolyte voxels connected through electrolyte to the top layer."""
    lab, n = _periodic_label(phase == ELECTROLYTE)
    if n == 0:
        return np.zeros(phase.shape, dtype=bool)
    top = np.unique(lab[:, :, -1])
    top = top[top > 0]
    return np.isin(lab, top)


# ----------------------------------------------------------------------------------------
# Host
# ----------------------------------------------------------------------------------------
@dataclass(eq=False)
class Host:
    """A voxelised host skeleton with per-voxel site properties.

    phase        uint8 (nx, ny, nz): phase codes of :mod:`continuum.constants`.
    spacing      voxel edge [m] -- metres here (SI inside), unlike the builders
                 (:mod:`.generators`, :func:`~kmc.hosts.images.load_voxel_image`), which take
                 ``spacing_um`` in micrometres; :meth:`summary` reports ``spacing_um``.
    eta_nuc      float64 per voxel: nucleation overpotential [V]; meaningful on conductive host
                 voxels (ignored on dielectric ones, which carry no electrons; lithium always
                 uses 0). Default: :data:`ETA_NUC_BARE` on host voxels, 0 elsewhere.
    activity     float64 per voxel: exchange-current multiplier [-]; default 1.
    conductivity None (equipotential conductor) or float64 per voxel [S/m].
    name         label for outputs.
    metadata     JSON-friendly record of how the host was made.
    seed_mask    bool per voxel: lithiophilic seed voxels (subset of the conductive host).
    """

    phase: np.ndarray
    spacing: float
    eta_nuc: Optional[np.ndarray] = None
    activity: Optional[np.ndarray] = None
    conductivity: Optional[np.ndarray] = None
    name: str = "host"
    metadata: dict = field(default_factory=dict)
    seed_mask: Optional[np.ndarray] = None

    def __post_init__(self):
        # Fill defaults only when the phase is usable; validate() reports everything else.
        if isinstance(self.phase, np.ndarray) and self.phase.ndim == 3:
            if self.eta_nuc is None:
                self.eta_nuc = np.where(host_mask(self.phase), ETA_NUC_BARE, 0.0)
            if self.activity is None:
                self.activity = np.ones(self.phase.shape, dtype=np.float64)
            if self.seed_mask is None:
                self.seed_mask = np.zeros(self.phase.shape, dtype=bool)

    # -- geometry -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.phase.shape)

    @property
    def host_layers(self) -> int:
        """Index of the highest layer holding a host voxel (0: bare collector)."""
        layers = np.flatnonzero(host_mask(self.phase).any(axis=(0, 1)))
        return int(layers[-1]) if layers.size else 0

    @property
    def host_height(self) -> float:
        """Top face of the highest host voxel above the collector's top face [m]."""
        return self.host_layers * float(self.spacing)

    @property
    def porosity(self) -> float:
        """Electrolyte fraction of layers 1..host_layers (1.0 for a bare collector)."""
        k = self.host_layers
        if k == 0:
            return 1.0
        return float(np.count_nonzero(self.phase[:, :, 1:k + 1] == ELECTROLYTE)) / (
            self.phase.shape[0] * self.phase.shape[1] * k)

    @property
    def specific_surface_area(self) -> float:
        """Host/electrolyte face area per bulk volume of the host region [1/m] (NaN if empty)."""
        k = self.host_layers
        if k == 0:
            return float("nan")
        faces = count_faces(host_mask(self.phase), self.phase == ELECTROLYTE)
        nx, ny, _ = self.phase.shape
        return faces / (nx * ny * k * float(self.spacing))

    def specific_surface_area_per_um(self) -> float:
        """:attr:`specific_surface_area` in 1/um."""
        return self.specific_surface_area * 1e-6

    def surface_mask(self, phases: Sequence[int] = _HOST_PHASES) -> np.ndarray:
        """Voxels of the given phases with at least one face on electrolyte."""
        return np.isin(self.phase, phases) & face_dilate(self.phase == ELECTROLYTE)

    @property
    def seed_fraction(self) -> float:
        """Seed voxels / conductive surface voxels (collector included)."""
        surf = self.surface_mask((HOST_CONDUCTIVE,))
        n = int(np.count_nonzero(surf))
        return float(np.count_nonzero(self.seed_mask & surf)) / n if n else 0.0

    @property
    def connected_conductor_fraction(self) -> float:
        """Conductive host voxels above the collector that are connected to it (1.0 if none)."""
        cond = self.phase[:, :, 1:] == HOST_CONDUCTIVE
        n = int(np.count_nonzero(cond))
        if n == 0:
            return 1.0
        return float(np.count_nonzero(collector_connected(self.phase)[:, :, 1:] & cond)) / n

    @property
    def closed_pore_fraction(self) -> float:
        """Electrolyte voxels not connected to the top layer / all electrolyte voxels."""
        elec = self.phase == ELECTROLYTE
        n = int(np.count_nonzero(elec))
        return float(np.count_nonzero(elec & ~_open_pores(self.phase))) / n if n else 0.0

    def summary(self) -> dict:
        """Scalar descriptors (JSON-friendly), lengths in um."""
        host = host_mask(self.phase)
        above = host[:, :, 1:]
        n_host = int(np.count_nonzero(above))
        n_diel = int(np.count_nonzero(self.phase[:, :, 1:] == HOST_DIELECTRIC))
        return {
            "name": self.name,
            "shape": list(self.shape),
            "spacing_um": float(self.spacing) * 1e6,
            "porosity": self.porosity,
            "specific_surface_area_per_um": self.specific_surface_area_per_um(),
            "host_height_um": self.host_height * 1e6,
            "host_layers": self.host_layers,
            "seed_fraction": self.seed_fraction,
            "dielectric_fraction": n_diel / n_host if n_host else 0.0,
            "connected_conductor_fraction": self.connected_conductor_fraction,
            "closed_pore_fraction": self.closed_pore_fraction,
            **({"image_sha256": self.metadata["sha256"]} if "sha256" in self.metadata else {}),
        }

    # -- checks ---------------------------------------------------------------------------
    def validate(self) -> "Host":
        """Raise ValueError on malformed arrays or a host that cannot be plated; return self."""
        ph = self.phase
        if not isinstance(ph, np.ndarray) or ph.dtype != np.uint8:
            raise ValueError(f"phase must be a numpy uint8 array, got "
                             f"{type(ph).__name__} {getattr(ph, 'dtype', '')}")
        if ph.ndim != 3 or min(ph.shape) < 1 or ph.shape[2] < 2:
            raise ValueError(f"phase must be 3-D (nx, ny, nz) with nz >= 2, got shape {ph.shape}")
        if int(ph.max()) > LITHIUM:
            raise ValueError(f"phase holds unknown codes {sorted(set(np.unique(ph)) - {0, 1, 2, 3})}")
        _check_spacing(self.spacing)
        for fname, required in (("eta_nuc", True), ("activity", True), ("conductivity", False)):
            arr = getattr(self, fname)
            if arr is None and not required:
                continue
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float64:
                raise ValueError(f"{fname} must be a float64 array, got "
                                 f"{type(arr).__name__} {getattr(arr, 'dtype', '')}")
            if arr.shape != ph.shape:
                raise ValueError(f"{fname} has shape {arr.shape}, phase has {ph.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{fname} has non-finite values")
            if fname != "eta_nuc" and np.any(arr < 0):
                raise ValueError(f"{fname} has negative values (min {arr.min():g})")
        sm = self.seed_mask
        if not isinstance(sm, np.ndarray) or sm.dtype != np.bool_ or sm.shape != ph.shape:
            raise ValueError("seed_mask must be a bool array with the shape of phase")
        if np.any(sm & (ph != HOST_CONDUCTIVE)):
            raise ValueError("seed_mask marks voxels that are not HOST_CONDUCTIVE")
        if not isinstance(self.metadata, dict):
            raise ValueError("metadata must be a dict")
        bad = int(np.count_nonzero(ph[:, :, 0] != HOST_CONDUCTIVE))
        if bad:
            raise ValueError(f"collector layer z=0 must be entirely HOST_CONDUCTIVE "
                             f"({HOST_CONDUCTIVE}); {bad} of {ph.shape[0] * ph.shape[1]} voxels are not")
        if not np.any(ph[:, :, -1] == ELECTROLYTE):
            raise ValueError(f"impossible request ({self.name}): the top layer z={ph.shape[2] - 1} "
                             "holds no electrolyte, so no pore leads into the host")
        reach = _open_pores(ph) & face_dilate(collector_connected(ph))
        if not np.any(reach):
            raise ValueError(f"impossible request ({self.name}): no electrolyte (pore) path leads "
                             "from the top layer to a conductor connected to the current collector")
        return self

    def copy(self) -> "Host":
        """Deep copy (arrays and metadata)."""
        return Host(
            phase=self.phase.copy(), spacing=float(self.spacing),
            eta_nuc=None if self.eta_nuc is None else self.eta_nuc.copy(),
            activity=None if self.activity is None else self.activity.copy(),
            conductivity=None if self.conductivity is None else self.conductivity.copy(),
            name=self.name, metadata=_copy.deepcopy(self.metadata),
            seed_mask=None if self.seed_mask is None else self.seed_mask.copy())


# ----------------------------------------------------------------------------------------
# finishing (shared by the generators and the image loader)
# ----------------------------------------------------------------------------------------
def _finish(phase, spacing, name, metadata, eta_nuc) -> Host:
    _check_num("eta_nuc", eta_nuc)
    eta = np.where(host_mask(phase), float(eta_nuc), 0.0)
    host = Host(phase=phase, spacing=float(spacing), eta_nuc=eta, name=name, metadata=metadata)
    host.validate()
    host.metadata.setdefault("achieved_porosity", host.porosity)
    host.metadata.setdefault("connected_conductor_fraction", host.connected_conductor_fraction)
    return host
