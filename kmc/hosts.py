"""Voxel host skeletons for lithium plating (MODEL.md sections 2-3).

Conventions
-----------
* Arrays are indexed ``[x, y, z]``, periodic in x and y.
* Layer ``z = 0`` is the current collector: every voxel there is HOST_CONDUCTIVE. Every
  generator includes this one-voxel layer; the host proper sits on top of it.
* ``z = nz - 1`` is the top layer, facing the separator / bulk electrolyte. Generators leave
  ``reservoir`` pure-electrolyte layers above the host (default :data:`DEFAULT_RESERVOIR`),
  so the host occupies layers ``1 .. nz - 1 - reservoir``.
* ``spacing`` is the voxel edge in metres (SI). Every other geometric argument (thickness,
  pitch, radius, height, feature_size, length, particle_radius, z ranges) is in **voxels**;
  convert micrometres with :func:`um_to_voxels`.
* Randomness comes only from an explicit ``rng`` (``numpy.random.Generator``) or ``seed``
  (int or ``SeedSequence``); never from numpy's global state. With neither, a fresh
  ``SeedSequence`` is drawn and its entropy stored in ``host.metadata["seed_entropy"]`` so the
  host can be regenerated.

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
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from continuum.grid import collector_connected, count_faces, face_dilate

__all__ = [
    "ETA_NUC_BARE", "DEFAULT_RESERVOIR", "POROSITY_TOLERANCE", "Host", "um_to_voxels",
    "planar_foil", "channel_array", "random_porous", "overlapping_spheres", "fibre_mat",
    "porosity_gradient", "decorate_lithiophilic_seeds", "coat_dielectric",
    "activity_gradient", "load_voxel_image",
]

#: Nucleation overpotential of bare Cu [V]: ~40 mV measured for Li on Cu by
#: Yan et al., Nat. Energy 1, 16010 (2016); lithiophilic Au/Ag/ZnO are ~0 V.
ETA_NUC_BARE = 0.04
#: Pure-electrolyte layers left above generated hosts unless told otherwise.
DEFAULT_RESERVOIR = 4
#: Largest |achieved - target| porosity the generators accept.
POROSITY_TOLERANCE = 0.02

_HOST_PHASES = (HOST_CONDUCTIVE, HOST_DIELECTRIC)
_DISCONNECTED_MODES = ("keep", "drop")

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


def _check_spacing(spacing: Any) -> float:
    return _check_num("spacing", spacing, 0.0, 1.0, lo_open=True)  # metres


def _host_layer_count(nz: int, reservoir: Any) -> int:
    """Layers available to the host between the collector and the reservoir."""
    reservoir = _check_num("reservoir", reservoir, 0, nz - 2, integer=True)
    return nz - 1 - reservoir


def _make_rng(rng: Optional[np.random.Generator], seed: SeedLike):
    """Generator plus a JSON-friendly record of where its randomness came from."""
    if rng is not None and seed is not None:
        raise ValueError("give either rng or seed, not both")
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng={rng!r} must be a numpy.random.Generator")
        return rng, {"rng": "caller-supplied numpy Generator (not reproducible from metadata)"}
    if seed is None:
        ss = np.random.SeedSequence()
    elif isinstance(seed, np.random.SeedSequence):
        ss = seed
    elif isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)) and seed >= 0:
        ss = np.random.SeedSequence(int(seed))
    else:
        raise ValueError(f"seed={seed!r} must be a non-negative int or numpy.random.SeedSequence")
    return np.random.default_rng(ss), {"seed_entropy": ss.entropy,
                                       "seed_spawn_key": [int(k) for k in ss.spawn_key]}


def um_to_voxels(length_um: float, spacing: float) -> float:
    """Length in micrometres -> (fractional) number of voxels of edge ``spacing`` [m]."""
    _check_num("length_um", length_um, 0.0)
    return float(length_um) * 1e-6 / _check_spacing(spacing)


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


def _is_host(phase: np.ndarray) -> np.ndarray:
    return (phase == HOST_CONDUCTIVE) | (phase == HOST_DIELECTRIC)


# ----------------------------------------------------------------------------------------
# Host
# ----------------------------------------------------------------------------------------
@dataclass(eq=False)
class Host:
    """A voxelised host skeleton with per-voxel site properties.

    phase        uint8 (nx, ny, nz): phase codes of :mod:`continuum.constants`.
    spacing      voxel edge [m].
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
                self.eta_nuc = np.where(_is_host(self.phase), ETA_NUC_BARE, 0.0)
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
        layers = np.flatnonzero(_is_host(self.phase).any(axis=(0, 1)))
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
        faces = count_faces(_is_host(self.phase), self.phase == ELECTROLYTE)
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
        host = _is_host(self.phase)
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
# assembling hosts
# ----------------------------------------------------------------------------------------
def _phase_from_solid(shape3, solid_host: np.ndarray, solid_phase=HOST_CONDUCTIVE) -> np.ndarray:
    """Grid with collector at z=0, ``solid_host`` in layers 1..H, electrolyte above."""
    phase = np.zeros(shape3, dtype=np.uint8)
    phase[:, :, 0] = HOST_CONDUCTIVE
    H = solid_host.shape[2]
    phase[:, :, 1:H + 1][solid_host] = solid_phase
    return phase


def _drop_floating(phase: np.ndarray) -> np.ndarray:
    """Turn conductive host clusters not connected to the collector into electrolyte."""
    floating = (phase == HOST_CONDUCTIVE) & ~collector_connected(phase)
    out = phase.copy()
    out[floating] = ELECTROLYTE
    return out


def _finish(phase, spacing, name, metadata, eta_nuc) -> Host:
    _check_num("eta_nuc", eta_nuc)
    eta = np.where(_is_host(phase), float(eta_nuc), 0.0)
    host = Host(phase=phase, spacing=float(spacing), eta_nuc=eta, name=name, metadata=metadata)
    host.validate()
    host.metadata.setdefault("achieved_porosity", host.porosity)
    host.metadata.setdefault("connected_conductor_fraction", host.connected_conductor_fraction)
    return host


def _region_porosity(phase: np.ndarray, H: int) -> float:
    return float(np.mean(phase[:, :, 1:H + 1] == ELECTROLYTE))


def _porosity_miss(name: str, target: float, got: float, hint: str) -> ValueError:
    return ValueError(f"impossible request ({name}): porosity {got:.3f} reached instead of "
                      f"{target:.3f} (tolerance {POROSITY_TOLERANCE}); {hint}")


# ----------------------------------------------------------------------------------------
# deterministic generators
# ----------------------------------------------------------------------------------------
def planar_foil(shape: Shape, spacing: float, thickness: int = 1, *, reservoir: Optional[int] = None,
                eta_nuc: float = ETA_NUC_BARE, name: str = "planar_foil") -> Host:
    """Flat conductive foil of ``thickness`` voxels *including* the collector layer.

    ``thickness=1`` is the bare collector (host_layers 0, porosity 1 by definition).
    Everything above the foil is electrolyte; ``reservoir``, if given, is only checked to fit.
    """
    nx, ny, nz = _parse_shape(shape)
    spacing = _check_spacing(spacing)
    thickness = _check_num("thickness", thickness, 1, nz - 1, integer=True)
    if reservoir is not None:
        _check_num("reservoir", reservoir, 0, nz - thickness, integer=True)
    phase = np.zeros((nx, ny, nz), dtype=np.uint8)
    phase[:, :, :thickness] = HOST_CONDUCTIVE
    meta = {"generator": "planar_foil", "thickness": thickness}
    return _finish(phase, spacing, name, meta, eta_nuc)


def channel_array(shape: Shape, spacing: float, pitch: int, radius: float,
                  height: Optional[int] = None, *, kind: str = "pillars",
                  reservoir: int = DEFAULT_RESERVOIR, eta_nuc: float = ETA_NUC_BARE,
                  name: Optional[str] = None) -> Host:
    """Square array of vertical cylinders on the collector.

    kind='pillars': solid cylinders of ``radius`` standing in electrolyte;
    kind='channels': cylindrical holes through a solid block, open at the top and reaching
    the collector. ``pitch`` (voxels, integer) must divide nx and ny so the array is periodic;
    ``radius`` (voxels) must be in (0, pitch/2); ``height`` (layers above the collector)
    defaults to all layers below the reservoir.
    """
    nx, ny, nz = _parse_shape(shape)
    spacing = _check_spacing(spacing)
    _check_choice("kind", kind, ("pillars", "channels"))
    H = _host_layer_count(nz, reservoir)
    pitch = _check_num("pitch", pitch, 2, min(nx, ny), integer=True)
    if nx % pitch or ny % pitch:
        raise ValueError(f"pitch={pitch} is not allowed: it must divide nx={nx} and ny={ny} "
                         "so that the array is periodic")
    radius = _check_num("radius", radius, 0.0, pitch / 2, lo_open=True, hi_open=True)
    height = H if height is None else _check_num("height", height, 1, H, integer=True)
    # Cylinder axis at the centre of each pitch x pitch cell; voxel centres at integer indices.
    c = np.arange(pitch) - (pitch - 1) / 2
    disc = c[:, None] ** 2 + c[None, :] ** 2 <= radius ** 2
    if not disc.any():
        raise ValueError(f"radius={radius:g} is too small to resolve at pitch={pitch}: "
                         "the voxelised cylinder is empty")
    if disc[0, :].any() or disc[:, 0].any():
        raise ValueError(f"radius={radius:g} with pitch={pitch}: voxelised neighbouring cylinders "
                         "touch; use a smaller radius or a larger pitch")
    disc_xy = np.tile(disc, (nx // pitch, ny // pitch))
    column = disc_xy if kind == "pillars" else ~disc_xy
    solid = np.zeros((nx, ny, H), dtype=bool)
    solid[:, :, :height] = column[:, :, None]
    phase = _phase_from_solid((nx, ny, nz), solid)
    meta = {"generator": "channel_array", "kind": kind, "pitch": pitch, "radius": radius,
            "height": height, "reservoir": int(reservoir)}
    return _finish(phase, spacing, name or f"channel_array_{kind}", meta, eta_nuc)


# ----------------------------------------------------------------------------------------
# random generators
# ----------------------------------------------------------------------------------------
def _blurred_noise(rng, dims, feature_size) -> np.ndarray:
    noise = rng.standard_normal(dims)
    # wrap in x, y (periodic); reflect in z (the host is bounded there)
    return ndimage.gaussian_filter(noise, sigma=feature_size, mode=("wrap", "wrap", "reflect"))


def random_porous(shape: Shape, spacing: float, porosity: float, feature_size: float = 2.0, *,
                  reservoir: int = DEFAULT_RESERVOIR, disconnected: str = "keep",
                  rng: Optional[np.random.Generator] = None, seed: SeedLike = None,
                  eta_nuc: float = ETA_NUC_BARE, name: str = "random_porous") -> Host:
    """Gaussian-blurred white noise thresholded at the quantile that gives ``porosity``.

    ``feature_size`` is the Gaussian sigma in voxels (pores and ligaments ~2-3 sigma wide).
    ``disconnected='keep'`` leaves solid clusters not touching the collector in place as
    floating conductors (they take no part in reactions; the connected fraction is in
    ``metadata`` and ``summary()``); ``'drop'`` turns them into electrolyte and re-thresholds
    until the porosity is back within :data:`POROSITY_TOLERANCE`.
    """
    nx, ny, nz = _parse_shape(shape)
    spacing = _check_spacing(spacing)
    porosity = _check_num("porosity", porosity, 0.0, 1.0, lo_open=True, hi_open=True)
    feature_size = _check_num("feature_size", feature_size, 0.0, lo_open=True)
    _check_choice("disconnected", disconnected, _DISCONNECTED_MODES)
    H = _host_layer_count(nz, reservoir)
    gen, rec = _make_rng(rng, seed)
    f = _blurred_noise(gen, (nx, ny, H), feature_size)
    sorted_f = np.sort(f, axis=None)
    n = sorted_f.size

    def build(phi):
        k = int(round(min(max(phi, 0.0), 1.0) * n))
        thr = sorted_f[k] if k < n else np.inf
        phase = _phase_from_solid((nx, ny, nz), f >= thr)  # exactly k pore voxels (ties aside)
        return _drop_floating(phase) if disconnected == "drop" else phase

    phi_eff, phase = porosity, build(porosity)
    got = _region_porosity(phase, H)
    for _ in range(30):  # dropping floating solid raises porosity: lower the threshold to compensate
        if abs(got - porosity) <= POROSITY_TOLERANCE / 4:
            break
        phi_eff -= got - porosity
        phase = build(phi_eff)
        got = _region_porosity(phase, H)
    if abs(got - porosity) > POROSITY_TOLERANCE:
        raise _porosity_miss(name, porosity, got, "too much solid is disconnected; use "
                             "disconnected='keep' or a larger feature_size")
    meta = {"generator": "random_porous", "porosity_target": porosity, "feature_size": feature_size,
            "disconnected": disconnected, "reservoir": int(reservoir), **rec}
    return _finish(phase, spacing, name, meta, eta_nuc)


def _fit_count(phi_of: Callable[[int], float], n_max: int, target: float, decreasing: bool) -> int:
    """Object count in [0, n_max] whose porosity is nearest ``target`` (bisection; phi ~monotone)."""
    cache: dict[int, float] = {}

    def phi(n):
        if n not in cache:
            cache[n] = phi_of(n)
        return cache[n]

    lo, hi = 0, n_max
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (phi(mid) > target) == decreasing:
            lo = mid
        else:
            hi = mid
    return min((lo, hi), key=lambda m: abs(phi(m) - target))


def _object_host(kind_solid: bool, porosity: float, disconnected: str, shape3, H: int,
                 n_estimate: float, draw_and_stamp, name: str) -> tuple[np.ndarray, int]:
    """Shared engine for Boolean models (spheres, fibres).

    ``draw_and_stamp(first, k0, count)`` draws ``count`` more objects numbered k0.. and writes,
    for every host-region voxel, the index of the first object covering it into ``first``.
    Objects are added in rounds until the target porosity is bracketed; then the number of
    objects kept is fitted (objects are i.i.d., so keeping the first N is a fair sample).
    """
    nx, ny, nz = shape3
    big = np.iinfo(np.int64).max
    first = np.full((nx, ny, H), big, dtype=np.int64)
    n_total = 0
    # bracket the target with some room, since dropping floating solid shifts the porosity
    goal = max(porosity - 0.05, porosity / 2) if kind_solid else min(porosity + 0.05, (1 + porosity) / 2)
    for _ in range(40):
        count = int(math.ceil((1.5 if n_total == 0 else 0.5) * n_estimate)) + 8
        draw_and_stamp(first, n_total, count)
        n_total += count
        covered = np.count_nonzero(first < big) / first.size
        phi_max_objects = 1.0 - covered if kind_solid else covered
        if (phi_max_objects <= goal) if kind_solid else (phi_max_objects >= goal):
            break
        if covered >= 1.0:
            break
    hits = np.bincount(first[first < big], minlength=n_total)
    cum = np.concatenate([[0], np.cumsum(hits)]) / first.size  # covered fraction with N objects

    def phase_of(N):
        obj = first < N
        phase = _phase_from_solid(shape3, obj if kind_solid else ~obj)
        return _drop_floating(phase) if disconnected == "drop" else phase

    if disconnected == "keep":
        phi_of = (lambda N: 1.0 - cum[N]) if kind_solid else (lambda N: cum[N])
    else:
        phi_of = lambda N: _region_porosity(phase_of(N), H)  # noqa: E731
    N = _fit_count(phi_of, n_total, porosity, decreasing=kind_solid)
    phase = phase_of(N)
    got = _region_porosity(phase, H)
    if abs(got - porosity) > POROSITY_TOLERANCE:
        raise _porosity_miss(name, porosity, got, "objects are too coarse for this grid or too "
                             "much solid is disconnected; use smaller objects, a larger grid, or "
                             "disconnected='keep'")
    return phase, N


def overlapping_spheres(shape: Shape, spacing: float, porosity: float, radius: float, *,
                        kind: str = "solid", reservoir: int = DEFAULT_RESERVOIR,
                        disconnected: str = "keep", rng: Optional[np.random.Generator] = None,
                        seed: SeedLike = None, eta_nuc: float = ETA_NUC_BARE,
                        name: Optional[str] = None) -> Host:
    """Boolean model of overlapping spheres of ``radius`` (voxels) with uniform random centres.

    kind='solid': solid spheres in electrolyte (sintered particles); kind='pores': spherical
    pores in a solid matrix (foam). Centres are spread over the host region widened by one
    radius above and below, so the porosity is uniform in z (spheres are cut at the collector
    and at the host top). The sphere count is fitted to ``porosity``.
    """
    nx, ny, nz = _parse_shape(shape)
    spacing = _check_spacing(spacing)
    porosity = _check_num("porosity", porosity, 0.0, 1.0, lo_open=True, hi_open=True)
    _check_choice("kind", kind, ("solid", "pores"))
    _check_choice("disconnected", disconnected, _DISCONNECTED_MODES)
    H = _host_layer_count(nz, reservoir)
    radius = _check_num("radius", radius, 1.0, min(nx, ny) / 2)
    gen, rec = _make_rng(rng, seed)
    R = int(math.ceil(radius + 0.5))
    o = np.arange(-R, R + 1)
    ox, oy, oz = (a.ravel() for a in np.meshgrid(o, o, o, indexing="ij"))
    chunk = max(1, 2_000_000 // ox.size)

    def draw_and_stamp(first, k0, count):
        # host-local z: voxel centre of host layer 1 at 0
        c = gen.random((count, 3)) * [nx, ny, H + 2 * radius] - [0.0, 0.0, radius + 0.5]
        flat = first.reshape(-1)
        for s in range(0, count, chunk):
            cc = c[s:s + chunk]
            base = np.rint(cc).astype(np.int64)
            X, Y, Z = (base[:, i, None] + off[None, :] for i, off in enumerate((ox, oy, oz)))
            d2 = (X - cc[:, 0, None]) ** 2 + (Y - cc[:, 1, None]) ** 2 + (Z - cc[:, 2, None]) ** 2
            keep = (d2 <= radius * radius) & (Z >= 0) & (Z < H)
            idx = ((X[keep] % nx) * ny + (Y[keep] % ny)) * H + Z[keep]
            ks = np.broadcast_to(np.arange(k0 + s, k0 + s + len(cc))[:, None], X.shape)[keep]
            np.minimum.at(flat, idx, ks)

    vol = 4.0 / 3.0 * math.pi * radius ** 3
    frac = porosity if kind == "solid" else 1.0 - porosity
    n_est = -math.log(frac) * nx * ny * (H + 2 * radius) / vol
    phase, N = _object_host(kind == "solid", porosity, disconnected, (nx, ny, nz), H, n_est,
                            draw_and_stamp, name or f"overlapping_spheres_{kind}")
    meta = {"generator": "overlapping_spheres", "kind": kind, "porosity_target": porosity,
            "radius": radius, "n_spheres": int(N), "disconnected": disconnected,
            "reservoir": int(reservoir), **rec}
    return _finish(phase, spacing, name or f"overlapping_spheres_{kind}", meta, eta_nuc)


def fibre_mat(shape: Shape, spacing: float, porosity: float, radius: float, *,
              length: Optional[float] = None, max_tilt_deg: float = 5.0,
              reservoir: int = DEFAULT_RESERVOIR, disconnected: str = "keep",
              rng: Optional[np.random.Generator] = None, seed: SeedLike = None,
              eta_nuc: float = ETA_NUC_BARE, name: str = "fibre_mat") -> Host:
    """Random straight fibres (cylinders of ``radius`` voxels) lying roughly in the xy-plane.

    Each fibre has a uniform random centre, in-plane angle uniform in [0, 2 pi) and tilt out
    of the plane uniform in [-max_tilt_deg, max_tilt_deg]; ``length`` (voxels) defaults to
    min(nx, ny) and may not exceed it (fibres wrap periodically in x, y). The fibre count is
    fitted to ``porosity``. Fibres cut by the collector or the host top are truncated.
    """
    nx, ny, nz = _parse_shape(shape)
    spacing = _check_spacing(spacing)
    porosity = _check_num("porosity", porosity, 0.0, 1.0, lo_open=True, hi_open=True)
    _check_choice("disconnected", disconnected, _DISCONNECTED_MODES)
    H = _host_layer_count(nz, reservoir)
    radius = _check_num("radius", radius, 0.5, min(nx, ny) / 2)
    length = float(min(nx, ny)) if length is None else _check_num(
        "length", length, 2 * radius, min(nx, ny))
    tilt = math.radians(_check_num("max_tilt_deg", max_tilt_deg, 0.0, 90.0, hi_open=True))
    gen, rec = _make_rng(rng, seed)
    xs = np.arange(nx, dtype=np.float64)[:, None, None]
    ys = np.arange(ny, dtype=np.float64)[None, :, None]
    half = length / 2

    def draw_and_stamp(first, k0, count):
        c = gen.random((count, 3)) * [nx, ny, H + 2 * radius] - [0.0, 0.0, radius + 0.5]
        theta = gen.random(count) * 2 * math.pi
        psi = (2 * gen.random(count) - 1) * tilt
        d = np.stack([np.cos(theta) * np.cos(psi), np.sin(theta) * np.cos(psi), np.sin(psi)], 1)
        for j in range(count):
            zc, dz = c[j, 2], d[j, 2]
            reach = abs(dz) * half + radius + 1
            z0, z1 = max(0, int(math.floor(zc - reach))), min(H, int(math.ceil(zc + reach)) + 1)
            if z0 >= z1:
                continue
            # minimum-image offsets from the fibre centre (valid because length <= nx, ny)
            wx = (xs - c[j, 0] + nx / 2) % nx - nx / 2
            wy = (ys - c[j, 1] + ny / 2) % ny - ny / 2
            wz = np.arange(z0, z1, dtype=np.float64)[None, None, :] - zc
            t = np.clip(wx * d[j, 0] + wy * d[j, 1] + wz * dz, -half, half)
            inside = ((wx - t * d[j, 0]) ** 2 + (wy - t * d[j, 1]) ** 2 + (wz - t * dz) ** 2
                      <= radius * radius)
            sub = first[:, :, z0:z1]
            sub[inside & (sub > k0 + j)] = k0 + j

    vol = math.pi * radius ** 2 * length
    n_est = -math.log(porosity) * nx * ny * (H + 2 * radius) / vol
    phase, N = _object_host(True, porosity, disconnected, (nx, ny, nz), H, n_est,
                            draw_and_stamp, name)
    meta = {"generator": "fibre_mat", "porosity_target": porosity, "radius": radius,
            "length": length, "max_tilt_deg": float(max_tilt_deg), "n_fibres": int(N),
            "disconnected": disconnected, "reservoir": int(reservoir), **rec}
    return _finish(phase, spacing, name, meta, eta_nuc)


def porosity_gradient(shape: Shape, spacing: float, porosity_bottom: float, porosity_top: float,
                      feature_size: float = 2.0, *, reservoir: int = DEFAULT_RESERVOIR,
                      rng: Optional[np.random.Generator] = None, seed: SeedLike = None,
                      eta_nuc: float = ETA_NUC_BARE, name: str = "porosity_gradient") -> Host:
    """Blurred-noise host whose porosity varies linearly in z.

    Each host layer z = 1..H is thresholded at its own quantile so that its porosity is
    porosity_bottom + (porosity_top - porosity_bottom) * (z - 1) / (H - 1) (to 1/(nx ny)).
    Floating solid clusters are kept (see :func:`random_porous`).
    """
    nx, ny, nz = _parse_shape(shape)
    spacing = _check_spacing(spacing)
    pb = _check_num("porosity_bottom", porosity_bottom, 0.0, 1.0, lo_open=True, hi_open=True)
    pt = _check_num("porosity_top", porosity_top, 0.0, 1.0, lo_open=True, hi_open=True)
    feature_size = _check_num("feature_size", feature_size, 0.0, lo_open=True)
    H = _host_layer_count(nz, reservoir)
    gen, rec = _make_rng(rng, seed)
    f = _blurred_noise(gen, (nx, ny, H), feature_size).reshape(nx * ny, H)
    n = nx * ny
    target = pb + (pt - pb) * (np.arange(H) / (H - 1) if H > 1 else np.full(1, 0.5))
    k = np.clip(np.rint(target * n).astype(np.int64), 0, n)
    srt = np.sort(f, axis=0)
    thr = np.where(k < n, srt[np.minimum(k, n - 1), np.arange(H)], np.inf)
    solid = (f >= thr[None, :]).reshape(nx, ny, H)
    phase = _phase_from_solid((nx, ny, nz), solid)
    meta = {"generator": "porosity_gradient", "porosity_bottom": pb, "porosity_top": pt,
            "feature_size": feature_size, "reservoir": int(reservoir), **rec}
    return _finish(phase, spacing, name, meta, eta_nuc)


# ----------------------------------------------------------------------------------------
# decorators (each returns a new, validated Host)
# ----------------------------------------------------------------------------------------
def _record(host: Host, entry: dict) -> None:
    host.metadata.setdefault("decorations", []).append(entry)


def decorate_lithiophilic_seeds(host: Host, fraction: float = 0.1, *, particle_radius: float = 0.0,
                                eta_nuc_seed: float = 0.0, eta_nuc_bare: Optional[float] = None,
                                activity_seed: float = 1.0, weighting: str = "uniform",
                                rng: Optional[np.random.Generator] = None, seed: SeedLike = None,
                                name: Optional[str] = None) -> Host:
    """Place lithiophilic seeds (Au, Ag, ZnO...) on the conductive surface.

    Candidates are HOST_CONDUCTIVE voxels with an electrolyte face (collector included).
    ``fraction`` of them (rounded) become seeds: single voxels when ``particle_radius`` is 0,
    otherwise surface patches within ``particle_radius`` voxels of randomly chosen centres,
    added until the coverage is nearest ``fraction``. ``weighting`` biases the choice in z:
    'uniform'; 'top' / 'bottom': probability proportional to (z - z_min + 1) or
    (z_max - z + 1) over the candidates (linear ramp). Seeds get ``eta_nuc_seed`` [V] and
    their activity multiplied by ``activity_seed``; if ``eta_nuc_bare`` [V] is given, all other
    conductive voxels get it, else they keep their value (generators use ETA_NUC_BARE).
    """
    fraction = _check_num("fraction", fraction, 0.0, 1.0, lo_open=True)
    particle_radius = _check_num("particle_radius", particle_radius, 0.0)
    eta_nuc_seed = _check_num("eta_nuc_seed", eta_nuc_seed)
    if eta_nuc_bare is not None:
        eta_nuc_bare = _check_num("eta_nuc_bare", eta_nuc_bare)
    activity_seed = _check_num("activity_seed", activity_seed, 0.0)
    _check_choice("weighting", weighting, ("uniform", "top", "bottom"))
    gen, rec = _make_rng(rng, seed)
    out = host.copy()
    ph = out.phase
    cand = out.surface_mask((HOST_CONDUCTIVE,))
    idx = np.flatnonzero(cand)
    if idx.size == 0:
        raise ValueError(f"impossible request ({host.name}): no conductive surface to seed")
    n_target = max(1, int(round(fraction * idx.size)))
    z = np.unravel_index(idx, ph.shape)[2]
    if weighting == "uniform":
        w = np.ones(idx.size)
    elif weighting == "top":
        w = (z - z.min() + 1).astype(np.float64)
    else:
        w = (z.max() - z + 1).astype(np.float64)
    # weighted sampling without replacement (Efraimidis-Spirakis): largest log(u)/w first
    order = idx[np.argsort(-(np.log(gen.random(idx.size)) / w), kind="stable")]
    if particle_radius == 0:
        new = np.zeros(ph.shape, dtype=bool)
        new.flat[order[:n_target]] = True
    else:
        new = _grow_patches(ph.shape, cand, order, particle_radius, n_target)
    fresh = new & ~out.seed_mask
    if eta_nuc_bare is not None:
        out.eta_nuc[ph == HOST_CONDUCTIVE] = eta_nuc_bare
    out.eta_nuc[new] = eta_nuc_seed
    out.activity[fresh] *= activity_seed
    out.seed_mask |= new
    if name:
        out.name = name
    _record(out, {"decorator": "decorate_lithiophilic_seeds", "fraction": fraction,
                  "particle_radius": particle_radius, "eta_nuc_seed": eta_nuc_seed,
                  "eta_nuc_bare": eta_nuc_bare, "activity_seed": activity_seed,
                  "weighting": weighting, "n_seed_voxels": int(np.count_nonzero(new)), **rec})
    return out.validate()


def _grow_patches(shape, cand, order, radius, n_target) -> np.ndarray:
    """Union of balls (radius, voxel-centred, periodic x,y) around ordered centres, cut to
    ``cand``, with the number of centres chosen so the covered count is nearest n_target."""
    nx, ny, nz = shape
    R = int(math.floor(radius))
    o = np.arange(-R, R + 1)
    ox, oy, oz = (a.ravel() for a in np.meshgrid(o, o, o, indexing="ij"))
    ball = ox ** 2 + oy ** 2 + oz ** 2 <= radius ** 2
    ox, oy, oz = ox[ball], oy[ball], oz[ball]
    big = np.iinfo(np.int64).max
    first = np.full(nx * ny * nz, big, dtype=np.int64)
    cand_flat = cand.reshape(-1)
    cx, cy, cz = np.unravel_index(order, shape)
    step = max(16, 1_000_000 // ox.size)
    n_used = 0
    for s in range(0, order.size, step):
        X = (cx[s:s + step, None] + ox) % nx
        Y = (cy[s:s + step, None] + oy) % ny
        Z = cz[s:s + step, None] + oz
        ks = np.broadcast_to(np.arange(s, s + X.shape[0])[:, None], X.shape)
        ok = (Z >= 0) & (Z < nz)
        flat = (X[ok] * ny + Y[ok]) * nz + Z[ok]
        keep = cand_flat[flat]
        np.minimum.at(first, flat[keep], ks[ok][keep])
        n_used = s + X.shape[0]
        if np.count_nonzero(first < big) >= n_target:
            break
    hits = np.bincount(first[first < big], minlength=n_used)
    cum = np.concatenate([[0], np.cumsum(hits)])
    N = int(np.argmin(np.abs(cum - n_target)))
    return (first < N).reshape(shape)


def coat_dielectric(host: Host, z_from: Optional[int] = None, z_to: Optional[int] = None, *,
                    top_fraction: Optional[float] = None, thickness: int = 1,
                    name: Optional[str] = None) -> Host:
    """Turn the surface skin of the conductive host in a z-range into HOST_DIELECTRIC.

    The range is the half-open layer interval [z_from, z_to) (z_from >= 1: the collector is
    never coated; z_to defaults to nz), or, with ``top_fraction`` f, the top ceil(f * host_layers)
    host layers (f = 1/3 for "top third"). Conductive voxels with an electrolyte face in the
    range are coated, ``thickness`` voxels deep; the conductor beneath stays conductive. Seeds
    under the coating are removed. If thin features are coated through, parts of the
    conductor may lose their collector connection (see metadata / summary()).
    """
    nz = host.phase.shape[2]
    if top_fraction is not None:
        if z_from is not None or z_to is not None:
            raise ValueError("give either z_from/z_to or top_fraction, not both")
        top_fraction = _check_num("top_fraction", top_fraction, 0.0, 1.0, lo_open=True)
        k = host.host_layers
        if k == 0:
            raise ValueError(f"impossible request ({host.name}): no host above the collector to coat")
        z_from, z_to = k - int(math.ceil(top_fraction * k)) + 1, k + 1
    else:
        z_from = _check_num("z_from", 1 if z_from is None else z_from, 1, nz - 1, integer=True)
        z_to = _check_num("z_to", nz if z_to is None else z_to, z_from + 1, nz, integer=True)
    thickness = _check_num("thickness", thickness, 1, integer=True)
    out = host.copy()
    ph = out.phase
    in_range = np.zeros(ph.shape, dtype=bool)
    in_range[:, :, z_from:z_to] = True
    elec = ph == ELECTROLYTE
    coat = np.zeros(ph.shape, dtype=bool)
    before = out.connected_conductor_fraction
    for _ in range(thickness):
        # each pass peels the conductive voxels touching electrolyte or the coating so far
        skin = (ph == HOST_CONDUCTIVE) & in_range & face_dilate(elec | coat)
        if not skin.any():
            break
        ph[skin] = HOST_DIELECTRIC
        coat |= skin
    out.seed_mask &= ~coat
    if name:
        out.name = name
    _record(out, {"decorator": "coat_dielectric", "z_from": int(z_from), "z_to": int(z_to),
                  "thickness": thickness, "n_coated": int(np.count_nonzero(coat)),
                  "connected_conductor_fraction_before": before,
                  "connected_conductor_fraction_after": out.connected_conductor_fraction})
    return out.validate()


def activity_gradient(host: Host, bottom: float, top: float, *, name: Optional[str] = None) -> Host:
    """Multiply the activity of host voxels by a factor linear in z: ``bottom`` at the collector
    (z = 0) to ``top`` at the highest host layer (multiplying keeps seed multipliers)."""
    bottom = _check_num("bottom", bottom, 0.0)
    top = _check_num("top", top, 0.0)
    out = host.copy()
    k = out.host_layers
    zf = np.arange(out.phase.shape[2]) / k if k else np.zeros(out.phase.shape[2])
    factor = bottom + (top - bottom) * np.clip(zf, 0.0, 1.0)
    mask = _is_host(out.phase)
    out.activity[mask] *= np.broadcast_to(factor, out.phase.shape)[mask]
    if name:
        out.name = name
    _record(out, {"decorator": "activity_gradient", "bottom": bottom, "top": top})
    return out.validate()


# ----------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------
def load_voxel_image(source: Union[str, Path, np.ndarray], spacing: float, *, pore_value: Any = True,
                     add_collector: bool = True, reservoir: int = 0,
                     solid_phase: int = HOST_CONDUCTIVE, axes: Optional[str] = None,
                     flip_z: bool = False, eta_nuc: float = ETA_NUC_BARE,
                     name: Optional[str] = None) -> Host:
    """Host from a 3-D segmented image (array, .npy, or .tif/.tiff with tifffile installed).

    Voxels equal to ``pore_value`` are electrolyte (True = pore, as in PoreSpy); all others
    become ``solid_phase`` (HOST_CONDUCTIVE or HOST_DIELECTRIC). ``axes`` names the image axes
    (default 'xyz' for arrays and .npy, 'zyx' for TIFF stacks, whose pages run along z);
    image z = 0 faces the collector unless ``flip_z``. With ``add_collector`` a collector layer
    is prepended; otherwise the image's own z = 0 layer must be all solid and becomes the
    (conductive) collector. ``reservoir`` electrolyte layers are appended on top.
    """
    spacing = _check_spacing(spacing)
    if solid_phase not in _HOST_PHASES:
        raise ValueError(f"solid_phase={solid_phase!r} is not allowed: must be HOST_CONDUCTIVE "
                         f"({HOST_CONDUCTIVE}) or HOST_DIELECTRIC ({HOST_DIELECTRIC})")
    reservoir = _check_num("reservoir", reservoir, 0, integer=True)
    is_tiff = False
    if isinstance(source, np.ndarray):
        img, label = source, "array"
    else:
        path = Path(source)
        suffix = path.suffix.lower()
        label = str(path)
        if suffix == ".npy":
            img = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            try:
                import tifffile
            except ImportError as exc:
                raise ImportError("reading TIFF images needs the optional package 'tifffile' "
                                  "(pip install tifffile, or pip install 'lithium-kmc[tiff]'); "
                                  "alternatively save the stack as .npy") from exc
            img, is_tiff = tifffile.imread(path), True
        else:
            raise ValueError(f"source={label!r}: unsupported file type {suffix!r}; "
                             "use .npy, .tif or .tiff, or pass a numpy array")
    img = np.asarray(img)
    if img.ndim != 3:
        raise ValueError(f"image from {label} must be 3-D, got shape {img.shape}")
    axes = axes if axes is not None else ("zyx" if is_tiff else "xyz")
    if not isinstance(axes, str) or sorted(axes) != ["x", "y", "z"]:
        raise ValueError(f"axes={axes!r} must be a permutation of 'xyz'")
    img = np.transpose(img, [axes.index(a) for a in "xyz"])
    if flip_z:
        img = img[:, :, ::-1]
    pore = np.asarray(img == pore_value)
    if pore.shape != img.shape or not pore.any():
        vals = np.unique(img)
        raise ValueError(f"pore_value={pore_value!r} matches no voxel of the image from {label} "
                         f"(values present: {vals[:8].tolist()}{' ...' if vals.size > 8 else ''})")
    solid = ~pore
    nx, ny, nzi = img.shape
    if add_collector:
        phase = np.zeros((nx, ny, nzi + 1 + reservoir), dtype=np.uint8)
        phase[:, :, 0] = HOST_CONDUCTIVE
        phase[:, :, 1:nzi + 1][solid] = solid_phase
    else:
        if not solid[:, :, 0].all():
            raise ValueError("add_collector=False needs the image's z=0 layer to be entirely solid "
                             f"(it becomes the collector); {int(np.count_nonzero(pore[:, :, 0]))} "
                             "voxels there are pore")
        phase = np.zeros((nx, ny, nzi + reservoir), dtype=np.uint8)
        phase[:, :, :nzi][solid] = solid_phase
        phase[:, :, 0] = HOST_CONDUCTIVE
    if phase.shape[2] < 2:
        raise ValueError(f"image from {label} is too thin: need at least one layer above the collector")
    meta = {"generator": "load_voxel_image", "source": label, "image_shape": [int(s) for s in img.shape],
            "axes": axes, "flip_z": bool(flip_z), "pore_value": repr(pore_value),
            "add_collector": bool(add_collector), "reservoir": reservoir,
            "solid_phase": int(solid_phase)}
    return _finish(phase, spacing, name or (Path(label).stem if label != "array" else "voxel_image"),
                   meta, eta_nuc)
