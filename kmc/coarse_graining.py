"""Coarse-graining between a KMC lattice state and phase-field fields (../shared/MODEL.md
section 9, issue 12, docs/phasefield.md "Coarse-graining").

It sits above both models: it reads the KMC's phase array and packets and writes the arrays the
phase field (``continuum.phasefield``) takes, and back.

- ``order_parameter_from_lattice``: lithium occupancy -> order parameter xi, on the voxel grid
  or a grid refined by an integer factor, by a smoothing kernel matched to the phase field's
  equilibrium interface.
- ``concentration_from_packets`` / ``concentration_from_mean_field``: Li+ concentration c.
- ``lattice_from_order_parameter``: xi -> a KMC phase array with exactly as many lithium voxels
  as the phase field holds lithium, rounded to whole voxels.

Grids are ``[x, y, z]``, periodic in x and y; z = 0 the collector, z boundaries zero-flux (a
kernel meets them by reflection).  A refined grid splits every axis of length > 1 into
``refinement`` cells (a 2D problem ``(nx, 1, nz)`` stays ``(r nx, 1, r nz)``); the *volume
ratio* is ``r ** d``, d the number of refined axes: one coarse voxel is that many fine cells.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.optimize import brentq
from scipy.special import expit, logit, ndtr

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from continuum.phasefield import PhaseFieldParameters

KERNELS = ("logistic", "gaussian")


def _refinement(refinement) -> int:
    r = int(refinement)
    if r != refinement or r < 1:
        raise ValueError(f"refinement = {refinement!r}: must be a positive integer")
    return r


def _factors(shape, r: int):
    return tuple(r if n > 1 else 1 for n in shape)


def volume_ratio(shape, refinement: int = 1) -> int:
    """Fine cells per coarse voxel: ``refinement ** d``, d = axes of length > 1."""
    return int(np.prod(_factors(shape, _refinement(refinement))))


def refine(a, refinement: int = 1) -> np.ndarray:
    """A coarse array on the refined grid, each voxel's value copied to its cells (a phase
    array refined this way is the fine-grid geometry the phase field runs on)."""
    a = np.asarray(a)
    for axis, f in enumerate(_factors(a.shape, _refinement(refinement))):
        if f > 1:
            a = np.repeat(a, f, axis=axis)
    return a


def _block_sum(a, factors) -> np.ndarray:
    nx, ny, nz = (n // f for n, f in zip(a.shape, factors))
    fx, fy, fz = factors
    return a.reshape(nx, fx, ny, fy, nz, fz).sum(axis=(1, 3, 5))


def _interface_scale(interface_width) -> float:
    w = interface_width.profile_length if isinstance(interface_width, PhaseFieldParameters) \
        else float(interface_width)
    if not (w > 0 and math.isfinite(w)):
        raise ValueError(f"interface_width = {interface_width!r}: must be a positive length in metres "
                         "(or PhaseFieldParameters)")
    return w


def _axis_weights(n: int, f: int, spacing: float, width: float, cdf, periodic: bool, cutoff: float):
    """(n f, n) matrix: cell centre i of the fine axis, integral of the 1D kernel over coarse
    voxel j and its images (periodic: period n; reflecting: mirror images, period 2n)."""
    x = (np.arange(n * f) + 0.5) / f  # fine cell centres, coarse voxel units
    j = np.arange(n, dtype=np.float64)
    period = n if periodic else 2 * n
    m_max = int(math.ceil(cutoff * width / spacing / period)) + 1
    w = np.zeros((n * f, n))
    for m in range(-m_max, m_max + 1):
        intervals = [(j + m * period, j + 1 + m * period)]
        if not periodic:
            intervals.append((-j - 1 + m * period, -j + m * period))
        for a, b in intervals:
            w += cdf((x[:, None] - a[None, :]) * spacing / width) - cdf((x[:, None] - b[None, :]) * spacing / width)
    return w


def _smooth_indicator(indicator, factors, spacing, width, kernel):
    cdf, cutoff = (expit, 40.0) if kernel == "logistic" else (ndtr, 10.0)
    out = indicator.astype(np.float64)
    for axis, (n, f) in enumerate(zip(indicator.shape, factors)):
        w = _axis_weights(n, f, spacing, width, cdf, periodic=axis < 2, cutoff=cutoff)
        out = np.moveaxis(np.tensordot(w, out, axes=([1], [axis])), 0, axis)
    return out


def _conserve(xi, free, target):
    """Shift every interface cell's logit by one constant s so that sum(xi[free]) = target:
    monotone (keeps the xi rank), keeps 0 < xi < 1, moves all interfaces alike."""
    inner = free & (xi > 0.0) & (xi < 1.0)
    fixed = float(xi[free & ~inner].sum())
    z = logit(np.clip(xi[inner], 1e-300, 1.0 - 1e-16))
    excess = lambda s: fixed + float(expit(z + s).sum()) - target  # noqa: E731
    if z.size == 0 or excess(-800.0) > 0 or excess(800.0) < 0:
        return xi  # not reachable by a shift (no interface, or target outside the bracket)
    s = brentq(excess, -800.0, 800.0, xtol=1e-14, rtol=1e-15, maxiter=400)
    out = xi.copy()
    out[inner] = expit(z + s)
    return out


def order_parameter_from_lattice(phase, spacing: float, interface_width, *, refinement: int = 1,
                                 kernel: str = "logistic", conserve: bool = True) -> np.ndarray:
    """Phase-field order parameter xi from a KMC phase array (lithium where ``phase == LITHIUM``).

    ``xi = K_w * 1[metal]``, metal = lithium or conductive host (the phase field treats a
    conductive host as fixed metal, xi = 1), evaluated at the centres of the (refined) cells:
    each voxel's indicator is integrated exactly over the voxel against the kernel, so the
    result has no discretisation error of its own.  Then xi = 1 on conductive host, 0 on
    dielectric host (fixed voxels, MODEL.md section 9).

    Kernel: ``interface_width`` is the phase field's ``profile_length`` ``w = sqrt(kappa/2W)``
    [m] (or pass the ``PhaseFieldParameters``).  The equilibrium profile is the logistic
    ``xi = 1 / (1 + exp(d / w)) = (1 - tanh(d / 2w)) / 2``; a step convolved with a kernel K
    gives K's cumulative distribution, so

    - ``kernel="logistic"`` (default): the separable product of 1D logistic densities of scale
      w, ``K(u) = 1 / (4 w cosh^2(u / 2w))``, the derivative of the equilibrium profile itself.
      A flat KMC front normal to a grid axis coarse-grains to *exactly* the equilibrium tanh
      profile centred at the front.  Not isotropic: an oblique front is slightly sharper or
      wider (by at most the Gaussian's error below).
    - ``kernel="gaussian"``: MODEL.md's isotropic Gaussian, standard deviation matched to the
      profile's, ``sigma = (pi / sqrt 3) w``.  A flat front then gets an erf profile, within
      0.023 of the tanh one everywhere (the logistic's and normal's CDFs at equal variance).

    ``conserve=True``: after smoothing, the lithium the phase field counts (``sum(xi)`` over
    free cells, divided by the volume ratio) is set equal to the KMC's lithium voxel count by
    shifting the logit of every interface cell by one constant (brentq to round-off).
    Smoothing alone does not conserve it: lithium's tail leaks into host voxels, a bare
    conductive host's tail adds xi to free cells.  A flat front far from the top needs no
    shift (its tails cancel by the profile's symmetry).
    """
    phase = np.asarray(phase)
    if phase.ndim != 3:
        raise ValueError(f"phase: must be a 3D [x, y, z] array, got shape {phase.shape}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel = {kernel!r}: must be one of {KERNELS}")
    spacing = float(spacing)
    if not (spacing > 0 and math.isfinite(spacing)):
        raise ValueError(f"spacing = {spacing!r}: must be a positive length in metres")
    w = _interface_scale(interface_width)
    r = _refinement(refinement)
    factors = _factors(phase.shape, r)
    width = w if kernel == "logistic" else math.pi / math.sqrt(3.0) * w
    metal = (phase == LITHIUM) | (phase == HOST_CONDUCTIVE)
    xi = np.clip(_smooth_indicator(metal, factors, spacing, width, kernel), 0.0, 1.0)
    fine = refine(phase, r)
    xi[fine == HOST_CONDUCTIVE] = 1.0
    xi[fine == HOST_DIELECTRIC] = 0.0
    if conserve:
        free = (fine == ELECTROLYTE) | (fine == LITHIUM)
        target = float(np.count_nonzero(phase == LITHIUM)) * np.prod(factors)
        xi = _conserve(xi, free, target)
    return xi


def lattice_from_order_parameter(xi, phase, *, refinement: int = 1) -> np.ndarray:
    """KMC phase array from a phase-field order parameter on ``phase``'s grid refined by
    ``refinement``; ``phase`` (coarse) fixes the host voxels, which are returned unchanged.

    Lithium is conserved in whole voxels: the number of LITHIUM voxels is
    ``round(sum(xi over free cells) / volume ratio)`` (capped at the number of free voxels), and
    they are the free voxels of largest mean xi over their cells; ties go to the smaller flat
    index.  A host voxel never becomes lithium; every other free voxel becomes ELECTROLYTE.
    """
    phase = np.asarray(phase)
    r = _refinement(refinement)
    factors = _factors(phase.shape, r)
    fine_shape = tuple(n * f for n, f in zip(phase.shape, factors))
    xi = np.asarray(xi, dtype=np.float64)
    if xi.shape != fine_shape:
        raise ValueError(f"xi: shape {xi.shape} does not match phase {phase.shape} refined by {r} "
                         f"({fine_shape})")
    if not np.isfinite(xi).all():
        raise ValueError("xi: must be finite")
    free = (phase == ELECTROLYTE) | (phase == LITHIUM)
    ratio = int(np.prod(factors))
    free_fine = refine(free, r)
    n_li = int(round(float(xi[free_fine].sum()) / ratio))
    idx = np.flatnonzero(free.ravel())
    mean = (_block_sum(np.where(free_fine, xi, 0.0), factors) / ratio).ravel()[idx]
    order = np.lexsort((idx, -mean))  # largest xi first, then smaller flat index
    n_li = max(0, min(n_li, idx.size))
    out = phase.astype(np.uint8).copy()
    flat = out.reshape(-1)
    flat[idx] = ELECTROLYTE
    flat[idx[order[:n_li]]] = LITHIUM
    return out


def _conservative_smooth(c, mask, sigma_cells):
    """Smooth ``c`` over ``mask`` cells with a Gaussian (periodic x, y; reflecting z), each cell
    scattering its content over the mask cells near it: ``mask G(c / G(mask))``.  G is
    self-adjoint, so ``sum(out) = sum(c)`` to round-off."""
    if sigma_cells <= 0:
        return np.where(mask, c, 0.0)
    modes = ("wrap", "wrap", "reflect")
    m = mask.astype(np.float64)
    sig = [sigma_cells if n > 1 else 0.0 for n in c.shape]
    norm = ndimage.gaussian_filter(m, sig, mode=modes, truncate=5.0)
    src = np.where(mask, c / np.where(mask, norm, 1.0), 0.0)  # norm > 0 on mask: a cell sees itself
    return m * ndimage.gaussian_filter(src, sig, mode=modes, truncate=5.0)


def concentration_from_packets(packets, phase, spacing: float, *, molar_volume: float = 1.30e-5,
                               smoothing_width: float | None = None, refinement: int = 1) -> np.ndarray:
    """Li+ concentration [mol/m^3] for the phase field from the KMC's packets.

    ``packets``: flat voxel indices (``LatticeState.packets``; one entry per packet, repeats
    allowed), each packet ``h^3 / V_m`` mol, so a voxel holds ``count / V_m`` mol/m^3.  The
    field is copied onto the refined cells and smoothed over the electrolyte cells by a Gaussian
    of standard deviation ``smoothing_width`` [m] (default one voxel, ``spacing``; 0: none) that
    conserves moles exactly: ``sum(c) h^3 / volume ratio = n_packets h^3 / V_m``.  0 on lithium
    and host cells (the phase field's own start, ``c0 (1 - h(xi))``, is 0 in the metal too).
    """
    phase = np.asarray(phase)
    packets = np.asarray(packets, dtype=np.int64).ravel()
    if packets.size and (packets.min() < 0 or packets.max() >= phase.size):
        raise ValueError("packets: voxel index out of range")
    counts = np.bincount(packets, minlength=phase.size).reshape(phase.shape)
    if np.any(counts[phase != ELECTROLYTE]):
        raise ValueError("packets: every packet must sit in an electrolyte voxel")
    return concentration_from_mean_field(counts / float(molar_volume), phase, spacing,
                                         smoothing_width=spacing if smoothing_width is None else smoothing_width,
                                         refinement=refinement)


def concentration_from_mean_field(concentration, phase, spacing: float, *, smoothing_width: float = 0.0,
                                  refinement: int = 1) -> np.ndarray:
    """Li+ concentration [mol/m^3] for the phase field from a coarse field (the KMC's mean-field
    c, scalar or per voxel): copied onto the refined electrolyte cells, optionally smoothed as in
    ``concentration_from_packets`` (moles conserved), 0 on lithium and host cells."""
    phase = np.asarray(phase)
    r = _refinement(refinement)
    c = np.broadcast_to(np.asarray(concentration, dtype=np.float64), phase.shape)
    if not (np.isfinite(c).all() and (c >= 0).all()):
        raise ValueError("concentration: must be finite and >= 0")
    if not (smoothing_width >= 0 and math.isfinite(smoothing_width)):
        raise ValueError(f"smoothing_width = {smoothing_width!r}: must be a length >= 0 in metres")
    elec = refine(phase == ELECTROLYTE, r)
    c_fine = np.where(elec, refine(c, r), 0.0)
    sigma_cells = smoothing_width / (float(spacing) / r)
    return _conservative_smooth(c_fine, elec, sigma_cells)
