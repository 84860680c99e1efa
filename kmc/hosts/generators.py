"""Host generators: deterministic (planar foil, channel/pillar arrays) and random (blurred
noise, overlapping spheres, fibre mats, porosity gradients). Each returns a validated
:class:`~kmc.hosts.host.Host`.

Units: every generator takes the voxel edge as ``spacing_um`` [um] (stored as
``Host.spacing`` in metres); every other geometric argument (thickness, pitch, radius,
height, length, feature_size, reservoir) is in voxels -- convert micrometres with
:func:`~kmc.hosts.host.um_to_voxels`."""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
from scipy import ndimage

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE
from continuum.grid import collector_connected

from ..engine.seeds import generator
from .host import (DEFAULT_RESERVOIR, ETA_NUC_BARE, POROSITY_TOLERANCE, Host, SeedLike, Shape,
                   _check_choice, _check_num, _check_spacing_um, _finish, _host_layer_count, _parse_shape)

_DISCONNECTED_MODES = ("keep", "drop")


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


def _region_porosity(phase: np.ndarray, H: int) -> float:
    return float(np.mean(phase[:, :, 1:H + 1] == ELECTROLYTE))


def _porosity_miss(name: str, target: float, got: float, hint: str) -> ValueError:
    return ValueError(f"impossible request ({name}): porosity {got:.3f} reached instead of "
                      f"{target:.3f} (tolerance {POROSITY_TOLERANCE}); {hint}")


# ----------------------------------------------------------------------------------------
# deterministic generators
# ----------------------------------------------------------------------------------------
def planar_foil(shape: Shape, spacing_um: float, thickness: int = 1, *, reservoir: Optional[int] = None,
                eta_nuc: float = ETA_NUC_BARE, name: str = "planar_foil") -> Host:
    """Flat conductive foil of ``thickness`` [voxels] *including* the collector layer.

    ``spacing_um`` is the voxel edge [um]. ``thickness=1`` is the bare collector
    (host_layers 0, porosity 1 by definition). Everything above the foil is electrolyte;
    ``reservoir`` [voxels], if given, is only checked to fit.
    """
    nx, ny, nz = _parse_shape(shape)
    spacing = _check_spacing_um(spacing_um) * 1e-6  # [m]: SI inside
    thickness = _check_num("thickness", thickness, 1, nz - 1, integer=True)
    if reservoir is not None:
        _check_num("reservoir", reservoir, 0, nz - thickness, integer=True)
    phase = np.zeros((nx, ny, nz), dtype=np.uint8)
    phase[:, :, :thickness] = HOST_CONDUCTIVE
    meta = {"generator": "planar_foil", "thickness": thickness}
    return _finish(phase, spacing, name, meta, eta_nuc)


def channel_array(shape: Shape, spacing_um: float, pitch: int, radius: float,
                  height: Optional[int] = None, *, kind: str = "pillars",
                  reservoir: int = DEFAULT_RESERVOIR, eta_nuc: float = ETA_NUC_BARE,
                  name: Optional[str] = None) -> Host:
    """Square array of vertical cylinders on the collector.

    kind='pillars': solid cylinders of ``radius`` standing in electrolyte;
    kind='channels': cylindrical holes through a solid block, open at the top and reaching
    the collector. ``spacing_um`` is the voxel edge [um]. ``pitch`` [voxels, integer] must
    divide nx and ny so the array is periodic; ``radius`` [voxels] must be in (0, pitch/2);
    ``height`` [voxels: layers above the collector] defaults to all layers below the
    ``reservoir`` [voxels].
    """
    nx, ny, nz = _parse_shape(shape)
    spacing = _check_spacing_um(spacing_um) * 1e-6  # [m]: SI inside
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


def channel_radius(porosity: float, pitch: int, kind: str = "channels", tolerance: float = 0.03) -> float:
    """The ``radius`` [voxels] for :func:`channel_array` whose voxelised cylinders give the
    host ``porosity`` closest to the target at this ``pitch`` (a disc holds the voxel centres
    within the radius, so only some porosities exist); ValueError when none is within
    ``tolerance`` (a larger pitch resolves finer steps)."""
    c = np.arange(pitch) - (pitch - 1) / 2
    r2 = np.add.outer(c**2, c**2)
    edge = min(r2[0, :].min(), r2[:, 0].min())  # cylinders may not touch their neighbours
    levels = np.unique(r2[r2 < edge])
    disc_fraction = np.array([(r2 <= v).sum() for v in levels]) / pitch**2
    got = disc_fraction if kind == "channels" else 1.0 - disc_fraction
    best = int(np.argmin(np.abs(got - porosity)))
    if abs(got[best] - porosity) > tolerance:
        raise ValueError(f"porosity={porosity:g} with {kind} at pitch={pitch}: the nearest voxelised value is "
                         f"{got[best]:.3f}; use another pitch")
    return float(np.sqrt(levels[best]) + 1e-9)


# ----------------------------------------------------------------------------------------
# random generators
# ----------------------------------------------------------------------------------------
def _blurred_noise(rng, dims, feature_size) -> np.ndarray:
    noise = rng.standard_normal(dims)
    # wrap in x, y (periodic); reflect in z (the host is bounded there)
    return ndimage.gaussian_filter(noise, sigma=feature_size, mode=("wrap", "wrap", "reflect"))


def random_porous(shape: Shape, spacing_um: float, porosity: float, feature_size: float = 2.0, *,
                  reservoir: int = DEFAULT_RESERVOIR, disconnected: str = "keep",
                  rng: Optional[np.random.Generator] = None, seed: SeedLike = None,
                  eta_nuc: float = ETA_NUC_BARE, name: str = "random_porous") -> Host:
    """Gaussian-blurred white noise thresholded at the quantile that gives ``porosity``.

    ``spacing_um`` is the voxel edge [um]; ``feature_size`` is the Gaussian sigma [voxels]
    (pores and ligaments ~2-3 sigma wide); ``reservoir`` [voxels] electrolyte layers on top.
    ``disconnected='keep'`` leaves solid clusters not touching the collector in place as
    floating conductors (they take no part in reactions; the connected fraction is in
    ``metadata`` and ``summary()``); ``'drop'`` turns them into electrolyte and re-thresholds
    until the porosity is back within :data:`POROSITY_TOLERANCE`.
    """
    nx, ny, nz = _parse_shape(shape)
    spacing = _check_spacing_um(spacing_um) * 1e-6  # [m]: SI inside
    porosity = _check_num("porosity", porosity, 0.0, 1.0, lo_open=True, hi_open=True)
    feature_size = _check_num("feature_size", feature_size, 0.0, lo_open=True)
    _check_choice("disconnected", disconnected, _DISCONNECTED_MODES)
    H = _host_layer_count(nz, reservoir)
    gen, rec = generator(rng, seed)
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


def overlapping_spheres(shape: Shape, spacing_um: float, porosity: float, radius: float, *,
                        kind: str = "solid", reservoir: int = DEFAULT_RESERVOIR,
                        disconnected: str = "keep", rng: Optional[np.random.Generator] = None,
                        seed: SeedLike = None, eta_nuc: float = ETA_NUC_BARE,
                        name: Optional[str] = None) -> Host:
    """Boolean model of overlapping spheres of ``radius`` [voxels] with uniform random centres.

    ``spacing_um`` is the voxel edge [um]; ``reservoir`` [voxels]. kind='solid': solid
    spheres in electrolyte (sintered particles); kind='pores': spherical pores in a solid
    matrix (foam). Centres are spread over the host region widened by one
    radius above and below, so the porosity is uniform in z (spheres are cut at the collector
    and at the host top). The sphere count is fitted to ``porosity``.
    """
    nx, ny, nz = _parse_shape(shape)
    spacing = _check_spacing_um(spacing_um) * 1e-6  # [m]: SI inside
    porosity = _check_num("porosity", porosity, 0.0, 1.0, lo_open=True, hi_open=True)
    _check_choice("kind", kind, ("solid", "pores"))
    _check_choice("disconnected", disconnected, _DISCONNECTED_MODES)
    H = _host_layer_count(nz, reservoir)
    radius = _check_num("radius", radius, 1.0, min(nx, ny) / 2)
    gen, rec = generator(rng, seed)
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


def fibre_mat(shape: Shape, spacing_um: float, porosity: float, radius: float, *,
              length: Optional[float] = None, max_tilt_deg: float = 5.0,
              reservoir: int = DEFAULT_RESERVOIR, disconnected: str = "keep",
              rng: Optional[np.random.Generator] = None, seed: SeedLike = None,
              eta_nuc: float = ETA_NUC_BARE, name: str = "fibre_mat") -> Host:
    """Random straight fibres (cylinders of ``radius`` [voxels]) lying roughly in the xy-plane.

    ``spacing_um`` is the voxel edge [um]; ``reservoir`` [voxels]. Each fibre has a uniform
    random centre, in-plane angle uniform in [0, 2 pi) and tilt out of the plane uniform in
    [-max_tilt_deg, max_tilt_deg]; ``length`` [voxels] defaults to min(nx, ny) and may not
    exceed it (fibres wrap periodically in x, y). The fibre count is
    fitted to ``porosity``. Fibres cut by the collector or the host top are truncated.
    """
    nx, ny, nz = _parse_shape(shape)
    spacing = _check_spacing_um(spacing_um) * 1e-6  # [m]: SI inside
    porosity = _check_num("porosity", porosity, 0.0, 1.0, lo_open=True, hi_open=True)
    _check_choice("disconnected", disconnected, _DISCONNECTED_MODES)
    H = _host_layer_count(nz, reservoir)
    radius = _check_num("radius", radius, 0.5, min(nx, ny) / 2)
    length = float(min(nx, ny)) if length is None else _check_num(
        "length", length, 2 * radius, min(nx, ny))
    tilt = math.radians(_check_num("max_tilt_deg", max_tilt_deg, 0.0, 90.0, hi_open=True))
    gen, rec = generator(rng, seed)
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


def porosity_gradient(shape: Shape, spacing_um: float, porosity_bottom: float, porosity_top: float,
                      feature_size: float = 2.0, *, reservoir: int = DEFAULT_RESERVOIR,
                      rng: Optional[np.random.Generator] = None, seed: SeedLike = None,
                      eta_nuc: float = ETA_NUC_BARE, name: str = "porosity_gradient") -> Host:
    """Blurred-noise host whose porosity varies linearly in z.

    Each host layer z = 1..H is thresholded at its own quantile so that its porosity is
    porosity_bottom + (porosity_top - porosity_bottom) * (z - 1) / (H - 1) (to 1/(nx ny)).
    ``spacing_um`` is the voxel edge [um]; ``feature_size`` is the Gaussian sigma [voxels];
    ``reservoir`` [voxels]. Floating solid clusters are kept (see :func:`random_porous`).
    """
    nx, ny, nz = _parse_shape(shape)
    spacing = _check_spacing_um(spacing_um) * 1e-6  # [m]: SI inside
    pb = _check_num("porosity_bottom", porosity_bottom, 0.0, 1.0, lo_open=True, hi_open=True)
    pt = _check_num("porosity_top", porosity_top, 0.0, 1.0, lo_open=True, hi_open=True)
    feature_size = _check_num("feature_size", feature_size, 0.0, lo_open=True)
    H = _host_layer_count(nz, reservoir)
    gen, rec = generator(rng, seed)
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
