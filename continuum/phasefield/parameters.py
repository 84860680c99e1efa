"""Parameters of the nonlinear phase-field model (Chen et al., J. Power Sources 2015, as ported
to MOOSE by Hong & Viswanathan, ACS Energy Lett. 2018), in SI.

Hong's input file is dimensionless.  Its scales, read off its own constants: length
l0 = 1 um, time t0 = 1 s, potential 1 V, conductivity 1 S/m (so that
``ft2 = n F c_s l0^2 / (t0 * 1 S/m * 1 V) = 0.0074`` and ``M0 = D_l t0 / l0^2 = 317.9``),
energy density E0 = 2.5e6 J/m^3, our choice: Hong's file does not fix it, and this value makes
L_sigma = 6.25 / (E0 t0) = 2.5e-6 m^3/(J s), Chen's interface mobility as we recall it, and
gamma = sqrt(2 kappa W) / 6 = 0.5 J/m^2.  Only the products L_sigma W, L_sigma kappa enter
the dynamics; E0 fixes the interface energy alone.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..constants import FARADAY, GAS_CONSTANT

# Hong 2018's scales (see the module docstring); `hong2018_normalised` maps back with them.
HONG2018_SCALES = {"length": 1e-6, "time": 1.0, "energy_density": 2.5e6, "potential": 1.0,
                   "conductivity": 1.0}

# field -> (lower, lower inclusive, upper, upper inclusive, unit)
_BOUNDS = {
    "temperature": (150.0, False, 500.0, False, "K"),
    "molar_volume": (0.0, False, 1e-3, True, "m^3/mol"),
    "bulk_concentration": (0.0, False, 1e4, True, "mol/m^3"),
    "interface_mobility": (0.0, False, 1.0, True, "m^3/(J s)"),
    "gradient_coefficient": (0.0, False, 1.0, True, "J/m"),
    "barrier_height": (0.0, False, 1e12, True, "J/m^3"),
    "kinetic_coefficient": (0.0, True, 1e6, True, "1/s"),
    "alpha_a": (0.0, False, 1.0, False, "1"),
    "alpha_c": (0.0, False, 1.0, False, "1"),
    "conductivity_solid": (0.0, False, 1e9, True, "S/m"),
    "conductivity_electrolyte": (0.0, False, 1e9, True, "S/m"),
    "diffusivity_electrolyte": (0.0, False, 1e-3, True, "m^2/s"),
    "diffusivity_solid": (0.0, True, 1e-3, True, "m^2/s"),
    "noise_amplitude": (0.0, True, 1e3, True, "1/s"),
    "noise_time": (0.0, False, 1e3, True, "s"),
    "contact_angle_deg": (0.0, True, 180.0, True, "deg"),
    "contact_bond_shift": (0.0, True, 1.0, True, "V"),
    "front_bond_shift": (0.0, True, 1.0, True, "V"),
}


BOND_CLOSURES = ("mean_field", "quasi_chemical")


def _range_text(lo, lo_in, hi, hi_in) -> str:
    return f"{'>=' if lo_in else '>'} {lo} and {'<=' if hi_in else '<'} {hi}"


@dataclass(frozen=True)
class PhaseFieldParameters:
    """Constants of the phase-field model, SI; defaults are Hong & Viswanathan 2018's.

    Symbols of ../shared/MODEL.md section 9 in brackets.  Construction validates every field
    and raises ``ValueError`` naming the field, its value and the allowed range.
    """

    temperature: float = 300.0  # T [K]; Hong's nF/RT = 38.69 /V is T = 299.9 K
    molar_volume: float = 1.30e-5  # V_m [m^3/mol]; c_s = 1 / V_m
    bulk_concentration: float = 1000.0  # c0 [mol/m^3], Li+ in the bulk electrolyte
    interface_mobility: float = 2.5e-6  # L_sigma [m^3/(J s)] (Hong: 6.25)
    gradient_coefficient: float = 7.5e-7  # kappa [J/m] (Hong: 0.3)
    barrier_height: float = 6.0e6  # W [J/m^3] (Hong: 2.4)
    kinetic_coefficient: float = 1.0e-3  # L_eta [1/s] (Hong: 0.001)
    alpha_a: float = 0.5  # anodic transfer coefficient (Hong: 1/2)
    alpha_c: float = 0.5  # cathodic transfer coefficient (Hong: 1/2)
    conductivity_solid: float = 1.0e6  # sigma_s [S/m] (Hong: 1e6)
    conductivity_electrolyte: float = 1.19  # sigma_l [S/m] (Hong: 1.19)
    diffusivity_electrolyte: float = 3.179e-10  # D_l [m^2/s] (Hong: M0 = 317.9)
    diffusivity_solid: float = 7.5e-13  # D_s [m^2/s] (Chen 2015 as recalled; Hong's form has none)
    noise_amplitude: float = 0.04  # Langevin noise on xi [1/s] (Hong: 0.04)
    noise_time: float = 0.02  # s: the step Hong's noise was drawn at (its dt); see docs
    # equilibrium contact angle of lithium on conductive host faces (Cahn's cubic wall energy);
    # 90: no wall force (zero flux), as the KMC, whose host faces hold no interface energy
    contact_angle_deg: float = 90.0
    # coordination energy of the wetting layer per bond [V]: a host contact reacts (both
    # branches) at eta + (3 - n) delta, n its host faces plus its neighbours' lithium, counted on
    # cells of `bond_cell` voxels per edge (Geometry.update_coordination); 0: off
    contact_bond_shift: float = 0.0
    # the same for the lithium front's reaction on every free voxel (lithium on lithium, the
    # contacts' front term included): eta + (3 - n) delta, n counted as for the contacts; 0: off
    front_bond_shift: float = 0.0
    # how those bonds are counted from the neighbours' lithium: "mean_field" (each neighbour at
    # its mean filling, Bragg-Williams) or "quasi_chemical" (each neighbour's filling given the
    # voxel's own state, from the pair probabilities of Bethe's closure at one bond's energy f
    # delta: the reduction sees the neighbours of an empty voxel, the oxidation a filled one's)
    bond_closure: str = "mean_field"
    # a lattice's face channels in both shifts' reactions (needs both > 0): a cell's reduction
    # summed over its faces to conductor (host faces at the host's site factor, lithium faces at
    # 1: lithium has no nucleation overpotential), its oxidation over its faces to electrolyte,
    # normalised to the wetting layer's per-host-face rate and the flat front's half-filled layer
    face_channels: bool = False

    def __post_init__(self):
        if self.bond_closure not in BOND_CLOSURES:
            raise ValueError(f"bond_closure = {self.bond_closure!r}: must be one of {', '.join(BOND_CLOSURES)}")
        for name, (lo, lo_in, hi, hi_in, _unit) in _BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} = {value!r}: must be a real number")
            v = float(value)
            ok = math.isfinite(v) and (v >= lo if lo_in else v > lo) and (v <= hi if hi_in else v < hi)
            if not ok:
                raise ValueError(f"{name} = {value!r} is out of range: must be "
                                 f"{_range_text(lo, lo_in, hi, hi_in)} [{_unit}]")
            object.__setattr__(self, name, v)
        if not isinstance(self.face_channels, bool):
            raise ValueError(f"face_channels = {self.face_channels!r}: must be True or False")
        if self.face_channels and not (self.contact_bond_shift and self.front_bond_shift):
            raise ValueError("face_channels = True needs contact_bond_shift > 0 and front_bond_shift > 0 "
                             f"(got {self.contact_bond_shift!r} and {self.front_bond_shift!r} V): the channels are "
                             "counted with their bonds")

    def replace(self, **changes) -> "PhaseFieldParameters":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- derived -------------------------------------------------------------------
    @property
    def f(self) -> float:
        """nF/(RT) [1/V], n = 1."""
        return FARADAY / (GAS_CONSTANT * self.temperature)

    @property
    def solid_concentration(self) -> float:
        """c_s = 1 / V_m [mol/m^3]: lithium per unit volume of xi = 1."""
        return 1.0 / self.molar_volume

    @property
    def profile_length(self) -> float:
        """sqrt(kappa / (2 W)) [m]: the equilibrium profile is xi = 1 / (1 + exp(x / this))."""
        return math.sqrt(self.gradient_coefficient / (2.0 * self.barrier_height))

    @property
    def profile_std(self) -> float:
        """Standard deviation of that logistic profile's derivative, (pi / sqrt 3) sqrt(kappa / 2W)
        [m]: the width a Gaussian coarse-graining kernel must have to reproduce it."""
        return math.pi / math.sqrt(3.0) * self.profile_length

    @property
    def interface_energy(self) -> float:
        """gamma = sqrt(2 kappa W) / 6 [J/m^2] (for g = W xi^2 (1 - xi)^2)."""
        return math.sqrt(2.0 * self.gradient_coefficient * self.barrier_height) / 6.0

    @property
    def wall_tension(self) -> float:
        """gamma cos(theta) [J/m^2]: the wall energy per face area is ``-gamma cos(theta) (3 xi^2 -
        2 xi^3)`` (Cahn; Jacqmin), which gives Young's contact angle theta and exerts no force
        at xi = 0 or 1.  Exactly 0 at 90 degrees."""
        if self.contact_angle_deg == 90.0:
            return 0.0
        return self.interface_energy * math.cos(math.radians(self.contact_angle_deg))

    @property
    def exchange_current_density(self) -> float:
        """i0 [A/m^2] of the Butler-Volmer law a flat front obeys.

        A flat front driven by ``L_eta h'(xi) [...]`` moves at ``v = L_eta [...] / int xi'^2 dx``
        (solvability condition; ``int h' xi' dx = -1``), and on the equilibrium profile
        ``int xi'^2 dx = 1 / (6 profile_length)``.  Setting v = V_m i / F with
        ``i = i0 [...]`` gives ``i0 = 6 F L_eta profile_length / V_m``.
        """
        return 6.0 * FARADAY * self.kinetic_coefficient * self.profile_length / self.molar_volume

    def with_profile_length(self, length: float) -> "PhaseFieldParameters":
        """A copy whose diffuse interface has the profile length sqrt(kappa/2W) = ``length`` [m]
        at the same interface energy gamma: kappa = 6 gamma length, W = 3 gamma / length.  L_eta
        is kept, so i0 scales with the length (set it again with
        `with_exchange_current_density`)."""
        if not (length > 0 and math.isfinite(length)):
            raise ValueError(f"profile length = {length!r} is out of range: must be > 0 [m]")
        gamma = self.interface_energy
        return self.replace(gradient_coefficient=6.0 * gamma * length, barrier_height=3.0 * gamma / length)

    def with_exchange_current_density(self, i0: float) -> "PhaseFieldParameters":
        """A copy whose kinetic coefficient L_eta gives a flat front the exchange current i0 [A/m^2]."""
        return self.replace(kinetic_coefficient=i0 * self.molar_volume / (6.0 * FARADAY * self.profile_length))

    def butler_volmer(self, eta, concentration_ratio=1.0):
        """Flat-front current density i [A/m^2] (> 0 anodic) at overpotential eta [V] and
        c / c0 = ``concentration_ratio``."""
        return self.exchange_current_density * (math.exp(self.alpha_a * self.f * eta)
                                                - concentration_ratio * math.exp(-self.alpha_c * self.f * eta))

    def front_velocity(self, eta, concentration_ratio=1.0) -> float:
        """Growth velocity of a flat front [m/s] (> 0 while plating): -V_m i / F."""
        return -self.molar_volume * self.butler_volmer(eta, concentration_ratio) / FARADAY

    def hong2018_normalised(self) -> dict:
        """These constants in Hong's dimensionless units (names of their input file)."""
        s = HONG2018_SCALES
        l0, t0, e0 = s["length"], s["time"], s["energy_density"]
        return {
            "kappa_op": self.gradient_coefficient / (e0 * l0**2),
            "L": self.interface_mobility * e0 * t0,
            "Ls": self.kinetic_coefficient * t0,
            "B": self.barrier_height / e0,
            "S1": self.conductivity_solid / s["conductivity"],
            "S2": self.conductivity_electrolyte / s["conductivity"],
            "AA": self.f * s["potential"],
            "M0": self.diffusivity_electrolyte * t0 / l0**2,
            "ft2": FARADAY * self.solid_concentration * l0**2 / (t0 * s["conductivity"] * s["potential"]),
            "noise": self.noise_amplitude * t0,
        }


HONG2018 = PhaseFieldParameters()
