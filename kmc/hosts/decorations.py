"""Host decorations: lithiophilic seeds, dielectric coatings, conductive/dielectric bands and
activity gradients. Each takes a :class:`~kmc.hosts.host.Host` and returns a new, validated
one, recording itself in ``metadata["decorations"]``."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC
from continuum.grid import face_dilate, host_mask

from ..engine.seeds import generator
from .host import Host, SeedLike, _check_choice, _check_num


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
    gen, rec = generator(rng, seed)
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
    before = out.connected_conductor_fraction
    coat = _coat_skin(ph, in_range, thickness)
    out.seed_mask &= ~coat
    if name:
        out.name = name
    _record(out, {"decorator": "coat_dielectric", "z_from": int(z_from), "z_to": int(z_to),
                  "thickness": thickness, "n_coated": int(np.count_nonzero(coat)),
                  "connected_conductor_fraction_before": before,
                  "connected_conductor_fraction_after": out.connected_conductor_fraction})
    return out.validate()


def _coat_skin(ph: np.ndarray, in_range: np.ndarray, thickness: int) -> np.ndarray:
    """Turn the conductive skin inside ``in_range`` (``thickness`` voxels deep from the
    electrolyte) into HOST_DIELECTRIC in place; returns the coated voxels."""
    elec = ph == ELECTROLYTE
    coat = np.zeros(ph.shape, dtype=bool)
    for _ in range(thickness):
        # each pass peels the conductive voxels touching electrolyte or the coating so far
        skin = (ph == HOST_CONDUCTIVE) & in_range & face_dilate(elec | coat)
        if not skin.any():
            break
        ph[skin] = HOST_DIELECTRIC
        coat |= skin
    return coat


#: How the conductive bands of :func:`band_dielectric` reach the collector.
BAND_WIRINGS = ("isolated", "core")


def band_layers(host_layers: int, period: int, dielectric_fraction: float) -> list[tuple[int, int, str]]:
    """The bands of :func:`band_dielectric` as half-open layer ranges ``(z_from, z_to, kind)``
    (kind 'conductive' or 'dielectric'), from the collector up to ``host_layers``: each period
    of ``period`` layers holds a conductive band and above it round(dielectric_fraction x
    period) dielectric layers. ValueError naming the argument when a band would be empty or no
    dielectric band fits in the host."""
    host_layers = _check_num("host_layers", host_layers, 1, integer=True)
    period = _check_num("period", period, 2, integer=True)
    dielectric_fraction = _check_num("dielectric_fraction", dielectric_fraction, 0.0, 1.0,
                                     lo_open=True, hi_open=True)
    n_diel = int(round(dielectric_fraction * period))
    if not 1 <= n_diel <= period - 1:
        raise ValueError(f"dielectric_fraction={dielectric_fraction:g} at period={period} layers gives "
                         f"{n_diel} dielectric layers per period: must give 1 to {period - 1}, i.e. "
                         f"dielectric_fraction in [{0.5 / period:.3g}, {(period - 0.5) / period:.3g})")
    n_cond = period - n_diel
    if n_cond >= host_layers:
        raise ValueError(f"period={period} layers with dielectric_fraction={dielectric_fraction:g}: the first "
                         f"conductive band ({n_cond} layers) fills the whole host ({host_layers} layers), so no "
                         "dielectric band fits; use a shorter period")
    bands = []
    for z0 in range(1, host_layers + 1, period):
        bands.append((z0, min(z0 + n_cond, host_layers + 1), "conductive"))
        if z0 + n_cond <= host_layers:
            bands.append((z0 + n_cond, min(z0 + period, host_layers + 1), "dielectric"))
    return bands


def band_dielectric(host: Host, period: int, dielectric_fraction: float = 0.5, *, wiring: str = "isolated",
                    name: Optional[str] = None) -> Host:
    """Alternate conductive and dielectric bands along the height of the host's walls.

    Counting from the collector, every ``period`` layers [voxels] hold a conductive band and
    above it a dielectric band of round(``dielectric_fraction`` x period) layers
    (:func:`band_layers`). ``wiring`` says how a conductive band reaches the collector:

    * 'isolated': the dielectric bands run through the whole wall, so every conductive band
      above the first dielectric one floats: it carries no current until lithium grown from
      below touches it, which connects it (equipotential with the lithium) at the next
      relabel of the conductor network.
    * 'core': the dielectric bands are a one-voxel skin (as :func:`coat_dielectric`) over a
      conductive core that keeps every conductive band connected (a wall two voxels thin or
      less is coated through there, so the core runs where the wall is thicker).

    The collector is never changed; seeds on new dielectric voxels are removed. The bands and
    the connected conductive fraction before and after are in ``metadata``.
    """
    _check_choice("wiring", wiring, BAND_WIRINGS)
    k = host.host_layers
    if k == 0:
        raise ValueError(f"impossible request ({host.name}): no host above the collector to band")
    bands = band_layers(k, period, dielectric_fraction)
    out = host.copy()
    ph = out.phase
    diel = np.zeros(ph.shape, dtype=bool)
    for z0, z1, kind in bands:
        if kind == "dielectric":
            diel[:, :, z0:z1] = True
    before = out.connected_conductor_fraction
    if wiring == "isolated":
        changed = diel & (ph == HOST_CONDUCTIVE)
        ph[changed] = HOST_DIELECTRIC
    else:
        changed = _coat_skin(ph, diel, 1)
    out.seed_mask &= ~changed
    if name:
        out.name = name
    _record(out, {"decorator": "band_dielectric", "period": int(period),
                  "dielectric_fraction": float(dielectric_fraction), "wiring": wiring,
                  "bands": [list(b) for b in bands], "n_dielectric": int(np.count_nonzero(changed)),
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
    mask = host_mask(out.phase)
    out.activity[mask] *= np.broadcast_to(factor, out.phase.shape)[mask]
    if name:
        out.name = name
    _record(out, {"decorator": "activity_gradient", "bottom": bottom, "top": top})
    return out.validate()
