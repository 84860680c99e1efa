"""Validated simulation configuration (pydantic v2). Field names carry their units at
the user edge (``_um``, ``_mA_cm2``, ``_mAh_cm2``, ``_s``, ``_V``); physics is SI."""
from __future__ import annotations

import hashlib
import json
from typing import Literal, Optional, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from continuum.parameters import PhysicalParameters, StrictModel, describe_validation_error

from ..engine.rates import SurfaceDiffusion
from ..hosts import Host
from ..hosts.registry import build_host, get_host_kind
from .waveforms import Segment, cycling, dc_plating, parse_schedule, pulse_plating


class ConfigError(ValueError):
    """A bad configuration; the message names the field, the value and the allowed range."""


class HostSpec(StrictModel):
    kind: str = Field("random_porous", description="host generator")
    nx: int = Field(24, ge=2, le=1024, description="lattice size in x [voxels]")
    ny: int = Field(24, ge=2, le=1024, description="lattice size in y [voxels]")
    host_layers: int = Field(12, ge=1, le=1024, description="host thickness above the collector layer [voxels]")
    reservoir_layers: int = Field(16, ge=2, le=1024, description="electrolyte layers above the host [voxels]")
    spacing_um: float = Field(1.0, gt=0.01, le=100.0, description="voxel edge h [um]")
    porosity: float = Field(0.6, gt=0.05, lt=0.98, description="target host porosity (bottom value of a gradient host) [-]")
    porosity_top: float = Field(0.8, gt=0.05, lt=0.98, description="porosity at the host top (gradient host) [-]")
    feature_size_um: float = Field(3.0, gt=0, le=1000.0, description="pore/solid feature size [um]")
    pitch_um: float = Field(8.0, gt=0, le=1000.0, description="channel/pillar pitch [um]")
    radius_um: float = Field(2.0, gt=0, le=1000.0, description="channel/pillar/fibre radius [um]")
    channels_are_holes: bool = Field(False, description="channel_array: holes in a block (True) or pillars (False)")
    image_path: Optional[str] = Field(None, description="voxel image (.npy/.tif/.tiff) for host.kind = image")
    image_pore_value: Union[bool, int, float] = Field(True, description="image value that marks pore (True for boolean images, e.g. 0 or 255 for 8-bit ones)")
    image_axes: Optional[Literal["xyz", "xzy", "yxz", "yzx", "zxy", "zyx"]] = Field(
        None, description="order of the image's axes (default xyz for .npy, zyx for TIFF stacks)")
    image_flip_z: bool = Field(False, description="flip the image along z (its z = 0 must face the collector)")
    seed_fraction: float = Field(0.0, ge=0, lt=1, description="fraction of host surface voxels that are lithiophilic seeds [-]")
    seed_weighting: Literal["uniform", "top", "bottom"] = Field("uniform", description="where seeds concentrate along the height")
    seed_eta_nuc_V: float = Field(0.0, ge=0, le=0.5, description="nucleation overpotential on seeds [V]")
    bare_eta_nuc_V: float = Field(0.04, ge=0, le=0.5, description="nucleation overpotential on bare host [V]")
    dielectric_top_fraction: float = Field(0.0, ge=0, le=1, description="top fraction of the host coated with dielectric [-]")
    band_period_um: float = Field(0.0, ge=0, le=1000.0, description="conductive/dielectric bands along the host height: one conductive and one dielectric band per period, a whole number of voxels; 0 = no bands [um]")
    band_dielectric_fraction: float = Field(0.5, gt=0, lt=1, description="dielectric share of each band period [-]")
    band_wiring: Literal["isolated", "core"] = Field("isolated", description="isolated: dielectric bands run through the wall, so a conductive band above one floats until lithium touches it; core: dielectric skin over a conductive core that keeps every band connected")
    activity_bottom: float = Field(1.0, ge=0, le=100, description="host surface activity factor at the collector, linear in z to activity_top [-]")
    activity_top: float = Field(1.0, ge=0, le=100, description="host surface activity factor at the host top [-]")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.nx, self.ny, 1 + self.host_layers + self.reservoir_layers)

    def build(self, seed) -> Host:
        """Generate the host this spec describes through the host registry (``seed``: int or
        SeedSequence); an impossible host is a :class:`ConfigError` naming the problem."""
        try:
            return build_host(self, seed)
        except (ValueError, ImportError, OSError) as e:
            raise ConfigError(f"host: {e}") from None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        # the registry, not a Literal, so that a newly registered kind is valid config
        get_host_kind(kind)  # ValueError naming the allowed kinds
        return kind


class KMCSettings(StrictModel):
    transport: Literal["explicit", "implicit"] = Field("explicit", description="packets hop (explicit) or reduce from the continuum c (implicit)")
    leaps: bool = Field(True, description="Brownian leaps far from conductors")
    occupancy_cap: Optional[int] = Field(None, ge=1, le=1000, description="max packets per voxel")
    max_macro_step_s: float = Field(5.0, gt=0, le=1e5, description="upper bound on the macro-step dt_M [s]")
    interface_change_fraction: float = Field(0.02, gt=0, le=1, description="dt_M keeps reductions per step below this fraction of interface faces [-]")
    concentration_smoothing_voxels: int = Field(2, ge=0, le=20, description="half-width of the box that averages packets into the recorded near-deposit concentration [voxels]")
    # Coordination-dependent kinetics (docs/model.md, "Coordination"): a voxel with n lithium/host
    # neighbours reacts as if its overpotential were shifted by (3 - n) 2 gamma V_m / (F h). At
    # 1 um voxels a physical gamma (~0.5 J/m^2) shifts it by 0.13 mV per bond (< 1 % in rate):
    # off by default; it matters for voxels below ~50 nm or as an exploratory knob.
    interface_energy_J_m2: float = Field(0.0, ge=0, le=1000, description="lithium/electrolyte interface energy gamma for coordination-dependent plating and stripping; 0 = off [J/m^2]")
    # Off by default (measured against the phase field and not used there: at nu_s 1e4 /s it
    # grows mounds at several times the cost; docs/phasefield.md, "Validation").
    surface_diffusion: SurfaceDiffusion = Field(default_factory=SurfaceDiffusion, description="surface hops of deposited lithium voxels (kmc/engine/rates.py)")


class ContinuumSettings(StrictModel):
    linear_solver: Literal["auto", "gmg", "amg", "jacobi", "direct"] = Field(
        "auto", description="sparse SPD solver: auto (direct LU when small, else gmg), gmg (voxel-grid "
                            "multigrid CG), amg (pyamg CG), jacobi (CG), direct")
    coarsen: int = Field(1, ge=1, le=16, description="solve the potential on a grid coarser by this factor (must divide nx, ny, nz)")
    # The KMC realises the current in whole packets, so charge balance far tighter than one
    # packet per macro-step buys nothing; the standalone solvers default to 1e-10.
    charge_tolerance: float = Field(1e-6, gt=0, le=1e-2, description="relative charge-balance tolerance of the potential solve [-]")
    # 0.01 mV moves a Butler-Volmer rate by 0.04 % (eta / (R T / F) at 25 C), far below the
    # KMC's counting noise; the Newton solve stops there instead of on a 1e-6 residual.
    overpotential_tolerance_mV: float = Field(0.01, gt=0, le=1.0, description="Newton stops when no face overpotential moved by more than this [mV]")
    compliance_potential_V: float = Field(-1.0, ge=-10, lt=0, description="galvanostat voltage limit when plating past the transport limit [V]")
    concentration_tolerance: float = Field(1e-6, gt=0, le=1e-2, description="relative tolerance of the concentration solve (the salt balance is closed to round-off whatever it is) [-]")


class PhaseFieldSettings(StrictModel):
    """The phase-field model's options (``model = "phasefield"``, docs/phasefield.md)."""

    refinement: int = Field(1, ge=1, le=16, description="phase-field cells per voxel edge: the voxel grid refined by this factor on every axis longer than 1 [-]")
    interface_width_um: Optional[float] = Field(None, gt=0, le=100, description="profile length sqrt(kappa / 2W) of the diffuse interface, at the interface energy phasefield.capillarity sets; None: Hong's 0.25 um. Fronts move freely only on cells of at most 0.4 of it [um]")
    capillarity: Literal["hong2018", "kmc"] = Field("hong2018", description="interface energy and mobility of the diffuse interface: hong2018 (gamma 0.5 J/m^2, L_sigma 2.5e-6 m^3/(J s)) or kmc (gamma = kmc.interface_energy_J_m2, which must be > 0, and L_sigma = (V_m/F)^2 i0 f (alpha_a + alpha_c) / (6 sqrt(kappa/2W)): the KMC's linearised Gibbs-Thomson velocity; docs/phasefield.md 'Validation')")
    contact_coordination: Literal["off", "static", "dynamic"] = Field("off", description="the KMC's coordination shift of a voxel plated on the host, (3 - n) 2 gamma V_m / (F h) with gamma = kmc.interface_energy_J_m2 (> 0), in the phase field's wetting layer: off; static (n the voxel's non-electrolyte neighbours in the bare host, averaged over each host voxel's contacts, in the host's nucleation overpotential: reduction only); dynamic (per contact, both branches, n its host faces plus its neighbouring voxels' lithium, updated every step); true/false read as static/off; docs/phasefield.md 'Validation'")

    front_coordination: Literal["off", "dynamic"] = Field("off", description="the KMC's coordination shift (3 - n) 2 gamma V_m / (F h), gamma = kmc.interface_energy_J_m2 (> 0), in the lithium front's reaction on every voxel (lithium on lithium; n its host faces plus its neighbouring voxels' lithium, updated every step): off or dynamic; docs/phasefield.md 'The front's coordination'")

    bond_closure: Literal["mean_field", "quasi_chemical"] = Field("mean_field", description="how contact_coordination and front_coordination count a voxel's bonds from its neighbours' lithium: mean_field (each neighbour at its mean filling) or quasi_chemical (each neighbour's filling given the voxel empty, for the reduction, or filled, for the oxidation: Bethe's pair closure at one bond's energy f delta); docs/phasefield.md 'Pair correlations'")
    face_channels: Literal["off", "kmc"] = Field("off", description="the KMC's face channels in contact_coordination's and front_coordination's reactions (both must be dynamic): kmc = a voxel's reduction summed over its faces to conductor (host faces with the host's nucleation overpotential and activity, lithium faces without), its oxidation over its faces to electrolyte, as the KMC's rates are; off = one channel per host face of the wetting layer and none counted on the front; docs/phasefield.md 'The KMC's face channels'")
    initial_state: Literal["rest", "lattice"] = Field("rest", description="the state a run on a bare host starts from: rest (its contacts hold the wetting layer's coverage at rest, eta = 0, passed no charge, and lithium counts above it) or lattice (the host as a KMC lattice starts: every free voxel empty, lithium counts from 0, so the wetting layer is plated by the run's own charge); docs/phasefield.md 'The KMC's starting state'")

    @field_validator("contact_coordination", mode="before")
    @classmethod
    def _coordination_from_bool(cls, v):
        return {True: "static", False: "off"}.get(v, v) if isinstance(v, bool) else v

    @model_validator(mode="after")
    def _check_channels(self):
        if self.face_channels != "off" and not (self.contact_coordination == self.front_coordination == "dynamic"):
            raise ValueError(f"phasefield.face_channels = {self.face_channels!r} needs phasefield.contact_coordination "
                             f"and phasefield.front_coordination = 'dynamic' (got {self.contact_coordination!r} and "
                             f"{self.front_coordination!r}): the channels are counted with the bonds")
        return self
    noise_amplitude: float = Field(0.0, ge=0, le=1000, description="Langevin noise on the order parameter (Hong 2018: 0.04); 0 = off [1/s]")
    shot_noise: Literal["off", "lattice"] = Field("off", description="the KMC lattice's shot noise in the phase field: lattice = every shot_noise_interval_s each voxel (refinement^3 cells) puts a normal draw of metal volume on its stretch of the lithium front, along its normal, whose variance is the Poisson count of its reductions and oxidations over the interval (the phase field's own gross rate) in voxels^2; zero net, no charge passed; the run is then stochastic (an ensemble compares); off; docs/phasefield.md 'Shot noise'")
    shot_noise_interval_s: float = Field(5.0, gt=0, le=1e4, description="time between shot-noise kicks; short against a voxel's relaxation time (hundreds of s at the validation's currents) [s]")
    record_interval_s: float = Field(5.0, gt=0, le=1e5, description="time between rows of the time series [s]")
    tol_xi: float = Field(2e-3, gt=0, le=0.1, description="local error tolerance of the order parameter per time step [-]")
    linear_solver: Literal["auto", "direct", "amg", "jacobi"] = Field("auto", description="auto (LU when small, else CG with the voxel-grid multigrid), direct, amg or jacobi")


class SeparatorSpec(StrictModel):
    length_um: float = Field(25.0, gt=0, le=10000, description="separator thickness [um]")
    porosity: float = Field(0.4, gt=0.01, le=1, description="separator porosity [-]")
    cells: int = Field(50, ge=2, le=100000, description="finite-volume cells across the separator")


class ProtocolSpec(StrictModel):
    kind: Literal["dc", "pulse", "pulse_reverse", "schedule"] = Field("dc", description="current waveform: dc, pulse, pulse_reverse, or schedule (steps)")
    current_density_mA_cm2: float = Field(8.0, gt=0, le=1000, description="DC or pulse on-current [mA/cm^2]")
    capacity_mAh_cm2: float = Field(0.2, gt=0, le=100, description="capacity to plate [mAh/cm^2]")
    on_time_s: float = Field(1.0, gt=0, le=1e6, description="pulse on-time [s]")
    off_time_s: float = Field(1.0, ge=0, le=1e6, description="pulse off-time (open circuit) [s]")
    reverse_current_mA_cm2: float = Field(0.0, ge=0, le=1000, description="pulse-reverse anodic current [mA/cm^2]")
    reverse_time_s: float = Field(0.0, ge=0, le=1e6, description="pulse-reverse anodic time [s]")
    steps: list[str] = Field(default_factory=list, description="schedule steps, e.g. 'plate at 2 mA/cm^2 for 0.5 mAh/cm^2'")
    cycles: int = Field(0, ge=0, le=1000, description="plate/strip cycles: 0 plates once; N plates the capacity and strips until fully stripped, N times")
    strip_current_density_mA_cm2: Optional[float] = Field(None, gt=0, le=1000, description="stripping current of the cycles; None: the plating (on-)current [mA/cm^2]")
    strip_cutoff_V: Optional[float] = Field(None, gt=0, le=10, description="a strip also ends when the cell potential exceeds this; None: only when fully stripped [V]")
    rest_s: float = Field(0.0, ge=0, le=1e6, description="open circuit after each plating and each strip of the cycles [s]")

    @model_validator(mode="after")
    def _check(self):
        if self.kind == "schedule":
            parse_schedule(self.steps)  # raises ValueError naming the bad step
            if self.cycles:
                raise ValueError("protocol.cycles applies to dc, pulse and pulse_reverse: a schedule lists its own "
                                 "plate and strip steps")
        if self.kind == "pulse_reverse" and (self.reverse_current_mA_cm2 <= 0 or self.reverse_time_s <= 0):
            raise ValueError("pulse_reverse needs reverse_current_mA_cm2 > 0 and reverse_time_s > 0")
        return self

    @property
    def duty_cycle(self) -> float:
        """Pulse on-time over period [-]."""
        return self.on_time_s / (self.on_time_s + self.off_time_s)

    def segments(self) -> list[Segment]:
        if self.kind == "schedule":
            return parse_schedule(self.steps)
        if self.kind == "dc":
            plating = dc_plating(self.current_density_mA_cm2, self.capacity_mAh_cm2)
        else:
            rev = self.kind == "pulse_reverse"
            plating = pulse_plating(self.current_density_mA_cm2, self.on_time_s, self.off_time_s,
                                    self.capacity_mAh_cm2, self.reverse_current_mA_cm2 if rev else 0.0,
                                    self.reverse_time_s if rev else 0.0)
        return self.cycled(plating)

    def cycled(self, plating: list[Segment]) -> list[Segment]:
        """``plating`` as it is (cycles = 0), or ``cycles`` plate/strip cycles of it."""
        if not self.cycles:
            return plating
        strip = self.strip_current_density_mA_cm2 or self.current_density_mA_cm2
        return cycling(plating, self.cycles, strip, self.strip_cutoff_V, self.rest_s)


class SimulationConfig(StrictModel):
    physics: PhysicalParameters = Field(default_factory=PhysicalParameters)
    host: HostSpec = Field(default_factory=HostSpec)
    kmc: KMCSettings = Field(default_factory=KMCSettings)
    continuum: ContinuumSettings = Field(default_factory=ContinuumSettings)
    separator: SeparatorSpec = Field(default_factory=SeparatorSpec)
    protocol: ProtocolSpec = Field(default_factory=ProtocolSpec)
    seed: int = Field(0, ge=0, description="root seed of every random stream")
    snapshots: int = Field(4, ge=0, le=10000, description="VTK snapshots per run (evenly in time)")
    model: Literal["kmc", "phasefield"] = Field("kmc", description="kmc: the coupled KMC/continuum run; phasefield: the phase-field model on the same host and protocol (docs/phasefield.md)")
    phasefield: PhaseFieldSettings = Field(default_factory=PhaseFieldSettings)

    @field_validator("model")
    @classmethod
    def _phasefield_options(cls, model: str, info):
        """Options the phase-field run cannot honour are errors, not silently ignored."""
        kmc, cont = info.data.get("kmc"), info.data.get("continuum")
        if model == "phasefield" and kmc is not None and kmc.occupancy_cap is not None:
            raise ValueError("phasefield has no packets for kmc.occupancy_cap to cap: leave it unset")
        if model == "phasefield" and cont is not None and cont.coarsen != 1:
            raise ValueError(f"phasefield runs on the voxel grid or a refined one (phasefield.refinement), "
                             f"not one coarsened by continuum.coarsen = {cont.coarsen}: leave it 1")
        return model

    def digest(self) -> str:
        """Stable hash of the configuration (for checkpoints and ensemble bookkeeping)."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def _unit(info) -> str:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if "unit" in extra:
        return "-" if extra["unit"] == "1" else extra["unit"]
    d = info.description or ""
    return d[d.rindex("[") + 1:d.rindex("]")] if "[" in d and d.rstrip().endswith("]") else ""


def describe_config(model: StrictModel, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(field, value, unit, description) of every field, sections flattened with dots: what
    ``python -m kmc config`` prints."""
    out = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, StrictModel):
            out += describe_config(value, key + ".")
            continue
        desc = (info.description or "").strip()
        if desc.endswith("]") and "[" in desc:  # the unit has its own column
            desc = desc[:desc.rindex("[")].rstrip()
        out.append((key, json.dumps(value), _unit(info), desc))
    return out


def format_config(model: StrictModel) -> str:
    rows = describe_config(model)
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{k:<{w[0]}}  {v:>{w[1]}}  {u:<{w[2]}}  {d}".rstrip() for k, v, u, d in rows)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        return text


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` overrides to a plain config dict (values parsed as JSON
    where possible); unknown keys are caught by validation afterwards."""
    data = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. protocol.current_density_mA_cm2=2")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for p in parts[:-1]:
            if not isinstance(node.get(p, {}), dict):
                raise ConfigError(f"--set {key}: {p!r} is not a section")
            node = node.setdefault(p, {})
        node[parts[-1]] = _parse_value(value.strip())
    return data


def make_config(base: dict | None = None, overrides: list[str] | None = None) -> SimulationConfig:
    """Build a validated config; raise ConfigError with a one-line message on bad input."""
    data = apply_overrides(base or {}, overrides or [])
    try:
        return SimulationConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e)) from None
