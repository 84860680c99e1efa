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
- ``packets_from_concentration``: c -> KMC packets, moles conserved to the packet.
- ``phasefield_parameters``: the phase-field constants that give a flat front the KMC's
  Butler-Volmer law (the mapping the flat-front test fixes); ``capillary_constants``: those that
  give it the KMC's interface energy and linearised Gibbs-Thomson velocity;
  ``first_voxel_shift``: the KMC's coordination shift of a first voxel plated in each electrolyte
  voxel; ``contact_coordination_shift``: the same averaged over a host voxel's contacts, as the
  host's nucleation overpotential (``phasefield.contact_coordination = "static"``).

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

from continuum.constants import ELECTROLYTE, FARADAY, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from continuum.grid import face_neighbour_sum, host_mask
from continuum.parameters import PhysicalParameters
from continuum.phasefield import HONG2018, PhaseFieldParameters

from .engine.seeds import generator

KERNELS = ("logistic", "gaussian")


def capillary_mobility(physics: PhysicalParameters) -> float:
    """The KMC's reaction-limited interface mobility M [m^4/(J s)]: its normal velocity per
    unit capillary driving force gamma K, at eta = 0 (docs/phasefield.md "Validation", "The
    phase field at the KMC's interface energy").

    A KMC interface reacts at eta + d, d the coordination shift, whose continuum limit is
    Gibbs-Thomson's ``gamma V_m K / F`` (K the mean curvature, sum of the principal curvatures,
    > 0 convex); so it moves at ``v = -(V_m/F) i_BV(eta + gamma V_m K / F)``, and linearised
    ``v = v(eta) - M gamma K`` with ``M = (V_m/F)^2 di/deta``, ``di/deta = i0 f (alpha_a +
    alpha_c)`` at eta = 0."""
    if not isinstance(physics, PhysicalParameters):
        raise TypeError("physics must be a PhysicalParameters")
    kin = physics.kinetics
    di_deta = kin.exchange_current_density * physics.f * (kin.alpha_a + kin.alpha_c)
    return (physics.lithium_molar_volume / FARADAY) ** 2 * di_deta


def capillary_constants(physics: PhysicalParameters, interface_energy: float, profile_length: float) -> dict:
    """The phase field's interface constants that give it the KMC's capillarity: interface
    energy ``interface_energy`` [J/m^2] at the profile length sqrt(kappa/2W) =
    ``profile_length`` [m] (kappa = 6 gamma l, W = 3 gamma / l), and the interface mobility
    whose Allen-Cahn curvature flow, ``v = -L_sigma kappa K``, is the KMC's linearised
    Gibbs-Thomson velocity ``-M gamma K`` (:func:`capillary_mobility`): ``L_sigma = M / (6 l)``,
    independent of gamma.  PhaseFieldParameters field -> value."""
    for name, v in (("interface_energy", interface_energy), ("profile_length", profile_length)):
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} = {v!r} is out of range: must be > 0")
    return {"gradient_coefficient": 6.0 * interface_energy * profile_length,
            "barrier_height": 3.0 * interface_energy / profile_length,
            "interface_mobility": capillary_mobility(physics) / (6.0 * profile_length)}


def first_voxel_shift(phase, shift_per_bond: float) -> np.ndarray:
    """The KMC's coordination shift [V] of a voxel plated in each electrolyte voxel e of ``phase``
    (0 elsewhere): it reduces at eta + eta_nuc + (3 - n) delta, n its face neighbours that are
    not electrolyte (host and lithium, ``kmc.engine.rates.coordination_shift``; nothing below
    the collector or above the top): 2 delta on a flat wall, 0 in a corner of three walls, -2
    delta at the floor of a one-voxel pit.  The phase field's dynamic contact coordination
    (``phasefield.contact_coordination = "dynamic"``) gives its bare contacts exactly this."""
    from .engine.rates import coordination_shift

    free = np.asarray(phase) == ELECTROLYTE
    return np.where(free, coordination_shift(face_neighbour_sum(~free), float(shift_per_bond)), 0.0)


def contact_coordination_shift(phase, shift_per_bond: float) -> np.ndarray:
    """The KMC's coordination shift of a first voxel plated on a host, as a nucleation
    overpotential per host voxel [V] (``phasefield.contact_coordination = "static"``,
    docs/phasefield.md "Validation"): the phase field's wetting layer reduces at its host's
    eta_nuc, so each conductive host voxel gets the mean of :func:`first_voxel_shift` over its
    electrolyte face neighbours (the contacts it serves); 0 on every other voxel."""
    phase = np.asarray(phase)
    free = phase == ELECTROLYTE
    shift = first_voxel_shift(phase, shift_per_bond)
    contacts = face_neighbour_sum(free)
    host = (phase == HOST_CONDUCTIVE) & (contacts > 0)
    return np.where(host, face_neighbour_sum(shift) / np.maximum(contacts, 1.0), 0.0)


def phasefield_parameters(physics: PhysicalParameters, base: PhaseFieldParameters = HONG2018,
                          **changes) -> PhaseFieldParameters:
    """The phase-field constants for the KMC's physics (MODEL.md section 9: "the flat-front test
    fixes the mapping"; tests/test_coarse_graining.py holds it to 2 %).

    Taken over as they are: T, V_m, alpha_a, alpha_c; c0 of the phase field (its kinetic and
    potential reference) = the KMC's c_ref; the Li+ diffusivity = D+ (what packets hop with);
    sigma_l = the KMC's conductivity at the bulk concentration (Nernst-Einstein, or the measured
    value), so cations carry the fraction t+ of the electrolyte's migration current as in the
    KMC.  The kinetic coefficient L_eta is set last, from the KMC's exchange current density:
    ``L_eta = i0 V_m / (6 F sqrt(kappa / 2W))``, so that a flat phase-field front moves at
    ``-V_m i_BV(eta, c) / F``, what a flat KMC front does (per face, reduction
    ``i0 c V_m / (F h c_ref) exp(-alpha_c f eta)`` and oxidation ``i0 V_m / (F h) exp(alpha_a f
    eta)``, each advancing it by h).  The interface's own constants (kappa, W, L_sigma), D_s,
    sigma_s and the noise come from ``base`` (Hong 2018's); ``changes`` override any field
    before L_eta is set (so a changed kappa or W keeps i0).
    """
    if not isinstance(physics, PhysicalParameters):
        raise TypeError("physics must be a PhysicalParameters")
    kin = physics.kinetics
    fields = {"temperature": physics.temperature, "molar_volume": physics.lithium_molar_volume,
              "bulk_concentration": physics.c_ref, "alpha_a": kin.alpha_a, "alpha_c": kin.alpha_c,
              "diffusivity_electrolyte": physics.cation_diffusivity,
              "conductivity_electrolyte": float(physics.conductivity(physics.electrolyte.concentration))}
    fields.update(changes)
    return base.replace(**fields).with_exchange_current_density(kin.exchange_current_density)


def _refinement(refinement) -> int:
    r = int(refinement)
    if r != refinement or r < 1:
        raise ValueError(f"refinement = {refinement!r}: must be a positive integer")
    return r


def _factors(shape, r: int):
    return tuple(r if n > 1 else 1 for n in shape)


def _on_fine_grid(name: str, a, phase: np.ndarray, r: int):
    """``a`` as float64 after checking it lies on ``phase``'s grid refined by ``r``: (a, factors)."""
    factors = _factors(phase.shape, r)
    fine_shape = tuple(n * f for n, f in zip(phase.shape, factors))
    a = np.asarray(a, dtype=np.float64)
    if a.shape != fine_shape:
        raise ValueError(f"{name}: shape {a.shape} does not match phase {phase.shape} refined by {r} ({fine_shape})")
    return a, factors


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


def block_mean(a, refinement: int = 1, where=None) -> np.ndarray:
    """A refined array back on the voxel grid (the inverse of :func:`refine`): each voxel's mean
    over its cells, or over those of its cells where ``where`` holds (NaN where none does)."""
    a = np.asarray(a, dtype=np.float64)
    factors = tuple(f if n > 1 else 1 for n, f in zip(a.shape, (_refinement(refinement),) * 3))
    if any(n % f for n, f in zip(a.shape, factors)):
        raise ValueError(f"an array of shape {a.shape} is no grid refined by {refinement}")
    if where is None:
        return _block_sum(a, factors) / np.prod(factors)
    w = np.asarray(where, dtype=bool)
    n = _block_sum(w.astype(np.float64), factors)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, _block_sum(np.where(w, a, 0.0), factors) / n, np.nan)


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

    ``xi = K_w * 1[lithium] / K_w * 1[free]`` (free = lithium or electrolyte), evaluated at the
    centres of the (refined) cells: each voxel's indicator is integrated exactly over the voxel
    against the kernel, so the result has no discretisation error of its own.  Normalising by
    the free cells makes a host a no-flux wall for xi, as the phase field's host contact at its
    default 90 degrees (docs/phasefield.md, "Host contact"): lithium on a host reads 1 up to the
    host, a bare host reads 0 (the old ``K_w * 1[lithium or conductive host]`` put host tails
    into free cells, which the phase field now dissolves).  Then xi = 1 on conductive host, 0 on
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
    Smoothing alone does not conserve it near corners of the free space and the domain top.  A
    flat front far from the top needs no shift (its tails cancel by the profile's symmetry).
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
    lithium = phase == LITHIUM
    # normalised over the free cells: the host is a no-flux wall for xi (the phase field's 90
    # degree contact), so lithium on a host reads xi = 1 and a bare host adds no lithium
    num = _smooth_indicator(lithium, factors, spacing, width, kernel)
    den = _smooth_indicator(lithium | (phase == ELECTROLYTE), factors, spacing, width, kernel)
    xi = np.clip(np.divide(num, den, out=np.zeros_like(num), where=den > 1e-12), 0.0, 1.0)
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
    xi, factors = _on_fine_grid("xi", xi, phase, r)
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


def packets_from_concentration(concentration, phase, spacing: float, *, molar_volume: float = 1.30e-5,
                               refinement: int = 1, seed=None) -> np.ndarray:
    """KMC packets (flat voxel indices, sorted, one entry per packet) from a phase-field Li+
    concentration [mol/m^3]: the inverse of :func:`concentration_from_packets`.

    ``concentration`` lives on ``phase``'s grid refined by ``refinement``; ``phase`` is the KMC
    lattice the packets go into (e.g. :func:`lattice_from_order_parameter`'s), packets only in
    its ELECTROLYTE voxels.  Moles are counted on every cell that is not host (host cells may
    be NaN, as ``PhaseFieldSolver.concentration`` has them): a voxel holds
    ``sum(c over its cells) (h / r)^3`` mol, ``n = that V_m / h^3`` packets' worth.  Li+ in
    voxels that are lithium in ``phase`` (the phase field's diffuse interface and metal) goes
    to the nearest electrolyte voxel (not periodic); a negative balance (the phase field's c
    may dip below zero in fresh metal) is taken from the electrolyte's positive counts in
    proportion.  The total is conserved to the packet: ``N = round(total moles V_m / h^3)``.

    The counts are drawn by systematic sampling over the electrolyte voxels in a random order
    (``seed``: int, SeedSequence, Generator or None): every voxel gets floor(n) or ceil(n) packets, n on
    average, and a field of whole packets (``concentration_from_packets`` without smoothing)
    comes back exactly.  Same seed, same packets.
    """
    phase = np.asarray(phase)
    r = _refinement(refinement)
    c, factors = _on_fine_grid("concentration", concentration, phase, r)
    host = host_mask(phase)
    free_fine = ~refine(host, r)
    if not np.isfinite(c[free_fine]).all():
        raise ValueError("concentration: must be finite on every cell that is not host")
    if not (molar_volume > 0 and math.isfinite(molar_volume)):
        raise ValueError(f"molar_volume = {molar_volume!r}: must be > 0 [m^3/mol]")
    n = _block_sum(np.where(free_fine, c, 0.0), factors) / np.prod(factors) * float(molar_volume)
    n[host] = 0.0
    total = int(round(float(n.sum())))
    elec = phase == ELECTROLYTE
    if total <= 0:
        return np.empty(0, np.int64)
    if not elec.any():
        raise ValueError("phase: no electrolyte voxel to put the packets in")
    moved = (phase == LITHIUM) & (n != 0.0)
    if moved.any():  # each lithium voxel's Li+ to its nearest electrolyte voxel
        near = ndimage.distance_transform_edt(~elec, return_distances=False, return_indices=True)
        target = np.ravel_multi_index(tuple(i[moved] for i in near), phase.shape)
        flat = n.ravel()
        np.add.at(flat, target, n[moved])
        n[moved] = 0.0
    idx = np.flatnonzero(elec.ravel())
    want = np.maximum(n.ravel()[idx], 0.0)
    if want.sum() <= 0.0:
        want = np.ones(idx.size)
    gen = seed if isinstance(seed, np.random.Generator) else generator(seed=seed)[0]
    order = gen.permutation(idx.size)
    cum = np.cumsum(want[order])
    if cum[-1] != total:  # whole-packet fields pass untouched (cumulative sums of integers are exact)
        cum *= total / cum[-1]
    points = gen.random() + np.arange(total)
    slot = np.minimum(np.searchsorted(cum, points, side="right"), idx.size - 1)
    return np.sort(idx[order[slot]])


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
