"""Physics of the KMC: which events exist and their rate constants (docs/model.md, "Kinetic Monte Carlo").

Pure Python/numpy; no selection logic lives here.  The Numba kernels evaluate the same
formulas per face inside the event loop (they must, because phase changes create new faces
during a call); they do so through :func:`reduction_rate`, :func:`oxidation_rate`,
:func:`hop_factor` and :func:`surface_hop_rate` compiled with Numba, so there is one source
for every formula (each is self-contained so that Numba can compile it).  ``tests/test_kmc_engine.py`` checks these against
:func:`continuum.kinetics.reaction_branches` divided by the packet charge.

Units: rates in 1/s, potentials in V, concentrations in mol/m^3.

Events
------
hop          packet -> face-neighbour electrolyte voxel, ``(D+/h^2) exp(-f (phi_j - phi_i)/2)``
removal      packet in the top layer hops out to the reservoir (same law with phi_top)
insertion    reservoir -> top-layer electrolyte voxel, ``(D+/h^2) c_top V_m exp(-f (phi_i - phi_top)/2)``
             (with removal this is detailed balance against a reservoir at c_top)
reduction    packet next to a connected conductor, per shared face,
             ``k_red = i0 a / (F h c_ref) exp(-alpha_c f (eta + d(n) + eta_nuc))``, ``eta = phi_s - phi_l``
             (in implicit transport: per face at rate ``k_red c V_m``)
oxidation    connected lithium voxel, per electrolyte face, ``k_ox = i0 V_m / (F h) exp(alpha_a f (eta + d(n)))``
             ``d(n) = (3 - n) delta``: the coordination shift (Gibbs-Thomson on the lattice) of
             the lithium voxel that the event removes or creates, n its lithium/host face
             neighbours, ``delta = 2 gamma V_m / (F h)``; 0 unless an interface energy gamma is
             given (:func:`coordination_shift`)
surface hop  connected lithium voxel -> electrolyte face neighbour that stays bonded to a
             connected conductor, ``nu_s exp(-n_b E_b / (k_B T))``
leap         n hops in one event far from every reactive/blocked voxel, rate k_hop_total / n
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from continuum.constants import BOLTZMANN, FARADAY
from continuum.parameters import PhysicalParameters, StrictModel

EVENT_TYPES = ("hops", "leaps", "insertions", "removals_top", "reductions", "oxidations",
               "surface_hops", "nucleations")

# Exponent clip shared with continuum.kinetics (_MAX_EXPONENT): keeps rates finite, never
# reached at physical overpotentials.
MAX_EXPONENT = 200.0
ELEMENTARY_CHARGE = 1.602176634e-19  # C, to turn eV into J


class SurfaceDiffusion(StrictModel):
    """Surface diffusion of deposited lithium voxels (off by default).

    A connected lithium voxel with ``n_b`` lithium/host face neighbours moves into a face-
    neighbour electrolyte voxel that touches another connected conductor, at rate
    ``attempt_frequency * exp(-n_b * bond_energy / (k_B T))`` per such target.  The defaults
    (when enabled) make a voxel with one bond hop at ~2e4 /s and a voxel with three bonds at
    ~1e1 /s at 298 K: comparable to the packet hop rate, so the event set stays balanced.
    Physical attempt frequencies (1e12 /s) with 0.1-0.3 eV bonds would make surface diffusion
    dominate every other event; coarse-grained voxels (1 um) move far more slowly than atoms.
    """

    enabled: bool = Field(False, description="switch surface diffusion on")
    attempt_frequency: float = Field(1.0e6, gt=0, le=1e15, description="nu_s [1/s]",
                                     json_schema_extra={"unit": "1/s"})
    bond_energy: float = Field(0.1, ge=0, le=5.0, description="E_b per lithium/host bond [eV]",
                               json_schema_extra={"unit": "eV"})


def hop_factor(phi_from, phi_to, f):
    """``exp(-f (phi_to - phi_from) / 2)``: multiply by D+/h^2 for the hop rate (cations go
    down the potential)."""
    return np.exp(np.minimum(np.maximum(-0.5 * f * (phi_to - phi_from), -MAX_EXPONENT), MAX_EXPONENT))


def reduction_rate(k_red0, activity, alpha_c_f, eta, eta_nuc):
    """Per-packet, per-face reduction rate [1/s]; ``k_red0 = i0 / (F h c_ref)``."""
    return k_red0 * activity * np.exp(np.minimum(np.maximum(-alpha_c_f * (eta + eta_nuc), -MAX_EXPONENT),
                                                 MAX_EXPONENT))


def oxidation_rate(k_ox0, activity, alpha_a_f, eta):
    """Per-face oxidation rate of a lithium voxel [1/s]; ``k_ox0 = i0 V_m / (F h)``."""
    return k_ox0 * activity * np.exp(np.minimum(np.maximum(alpha_a_f * eta, -MAX_EXPONENT), MAX_EXPONENT))


#: Lithium/host face neighbours of a kink voxel of a simple cubic crystal: removing or adding it
#: leaves the interface area unchanged, so it reacts at the flat electrode's equilibrium.
KINK_BONDS = 3


def coordination_shift(bonds, shift_per_bond):
    """Overpotential shift [V] of the reaction that removes (oxidation) or creates (reduction)
    a lithium voxel with ``bonds`` lithium/host face neighbours: ``(3 - bonds) shift_per_bond``.

    Removing a voxel with n solid neighbours changes the lithium/electrolyte interface by
    ``(2 n - 6)`` faces, i.e. its free energy by ``gamma h^2 (2 n - 6)`` per packet of
    ``h^3 / V_m`` mol; per mole of electrons that is an overpotential shift ``gamma V_m (6 - 2 n)
    / (F h) = (3 - n) shift_per_bond`` with ``shift_per_bond = 2 gamma V_m / (F h)``.  A tip
    (n = 1) dissolves as if 2 delta more anodic, a voxel in a flat face (n = 5) as if 2 delta
    less; the same shift in the cathodic branch keeps detailed balance (k_ox / k_red =
    exp(f (eta + d)) for every configuration)."""
    return (KINK_BONDS - bonds) * shift_per_bond


def surface_hop_rate(nu_s, bonds, bond_energy_over_kt):
    """Per-target surface-hop rate [1/s] of a lithium voxel with ``bonds`` lithium/host
    neighbours."""
    return nu_s * np.exp(-bonds * bond_energy_over_kt)


@dataclass(frozen=True)
class RateConstants:
    """Everything the kernels need from the parameters for one grid spacing (SI)."""

    spacing: float
    hop: float  # D+ / h^2 [1/s], per direction
    k_red0: float  # i0 / (F h c_ref) [1/s] per packet per face at eta + eta_nuc = 0, a = 1
    k_ox0: float  # i0 V_m / (F h) [1/s] per face at eta = 0
    alpha_a_f: float  # [1/V]
    alpha_c_f: float  # [1/V]
    f: float  # F / RT [1/V]
    molar_volume: float  # V_m [m^3/mol]
    packet_charge: float  # F h^3 / V_m [C]
    surface_nu: float = 0.0
    surface_bond_over_kt: float = 0.0
    coordination_shift: float = 0.0  # delta = 2 gamma V_m / (F h) [V per lithium/host bond]; 0 = off

    @classmethod
    def from_parameters(cls, params: PhysicalParameters, spacing: float,
                        surface_diffusion: SurfaceDiffusion | None = None,
                        interface_energy: float = 0.0) -> "RateConstants":
        """``interface_energy``: gamma of the lithium/electrolyte interface [J/m^2] for the
        coordination shift (:func:`coordination_shift`); 0 switches it off."""
        if not (spacing > 0 and math.isfinite(spacing)):
            raise ValueError(f"spacing = {spacing!r}: must be a positive length in metres")
        if not (interface_energy >= 0 and math.isfinite(interface_energy)):
            raise ValueError(f"interface_energy = {interface_energy!r}: must be a finite value >= 0 [J/m^2]")
        kin = params.kinetics
        f = params.f
        i0 = kin.exchange_current_density
        vm = params.lithium_molar_volume
        sd = surface_diffusion or SurfaceDiffusion()
        kt_ev = BOLTZMANN * params.temperature / ELEMENTARY_CHARGE
        return cls(
            spacing=spacing,
            hop=params.cation_diffusivity / spacing**2,
            k_red0=i0 / (FARADAY * spacing * params.c_ref),
            k_ox0=i0 * vm / (FARADAY * spacing),
            alpha_a_f=kin.alpha_a * f,
            alpha_c_f=kin.alpha_c * f,
            f=f,
            molar_volume=vm,
            packet_charge=params.packet_charge(spacing),
            surface_nu=sd.attempt_frequency if sd.enabled else 0.0,
            surface_bond_over_kt=sd.bond_energy / kt_ev,
            coordination_shift=2.0 * interface_energy * vm / (FARADAY * spacing),
        )

    # -- reference (vectorised) rates, used by tests and for diagnostics -----------------
    def hop_rate(self, phi_from, phi_to):
        return self.hop * hop_factor(phi_from, phi_to, self.f)

    def insertion_rate(self, c_top, phi_l_top, phi_top):
        """Reservoir -> top voxel; with removal at ``hop_rate(phi_l_top, phi_top)`` the mean
        occupancy is ``c_top V_m exp(-f (phi_l - phi_top))`` (Boltzmann)."""
        return self.hop * c_top * self.molar_volume * hop_factor(phi_top, phi_l_top, self.f)

    def reduction(self, eta, eta_nuc=0.0, activity=1.0, bonds=KINK_BONDS):
        """Per packet and face; ``bonds``: lithium/host neighbours of the voxel it fills."""
        return reduction_rate(self.k_red0, activity, self.alpha_c_f,
                              eta + coordination_shift(bonds, self.coordination_shift), eta_nuc)

    def oxidation(self, eta, activity=1.0, bonds=KINK_BONDS):
        """Per face; ``bonds``: lithium/host neighbours of the oxidising voxel."""
        return oxidation_rate(self.k_ox0, activity, self.alpha_a_f,
                              eta + coordination_shift(bonds, self.coordination_shift))

    def implicit_reduction(self, eta, c, eta_nuc=0.0, activity=1.0):
        """Implicit transport: expected packets in the voxel (c V_m) times k_red."""
        return self.reduction(eta, eta_nuc, activity) * np.maximum(c, 0.0) * self.molar_volume
