"""Validated, unit-labelled physical parameters (docs/model.md, "Parameters and derived constants").

Every field is SI; its unit is in the field description and ``json_schema_extra``.
Derived quantities (D+, D-, f, Nernst-Einstein conductivity) are properties, so they
can never disagree with the inputs they come from.
"""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .constants import FARADAY, GAS_CONSTANT


def _unit(u: str) -> dict:
    return {"unit": u}


class StrictModel(BaseModel):
    """Base for all configuration: unknown keys are errors, assignments re-validate, and values
    are not coerced (``true`` is no current, ``1`` no switch, ``"2"`` no count)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, strict=True)


class Electrolyte(StrictModel):
    """Binary 1:1 electrolyte (default 1 M LiPF6 in carbonates, Valoen & Reimers 2005)."""

    concentration: float = Field(1000.0, gt=0, le=10000.0, description="bulk salt concentration c0 [mol/m^3]",
                                 json_schema_extra=_unit("mol/m^3"))
    salt_diffusivity: float = Field(3.2e-10, gt=0, le=1e-6, description="salt diffusivity D [m^2/s]",
                                    json_schema_extra=_unit("m^2/s"))
    transference_number: float = Field(0.38, gt=0, lt=1, description="cation transference number t+ [-]",
                                       json_schema_extra=_unit("1"))
    measured_conductivity: Optional[float] = Field(
        None, gt=0, le=1e3,
        description="measured conductivity at c0 [S/m]; None uses the Nernst-Einstein value "
        "consistent with the KMC hops", json_schema_extra=_unit("S/m"))


class Kinetics(StrictModel):
    """Butler-Volmer interface kinetics on lithium (docs/model.md, "Interface kinetics")."""

    exchange_current_density_mA_cm2: float = Field(1.0, gt=0, le=1e4, description="i0 at c_ref [mA/cm^2]",
                                                   json_schema_extra=_unit("mA/cm^2"))
    alpha_a: float = Field(0.5, gt=0, lt=1, description="anodic transfer coefficient [-]",
                           json_schema_extra=_unit("1"))
    alpha_c: float = Field(0.5, gt=0, lt=1, description="cathodic transfer coefficient [-]",
                           json_schema_extra=_unit("1"))


    @property
    def exchange_current_density(self) -> float:
        """i0 at c_ref [A/m^2] (SI inside; 1 mA/cm^2 = 10 A/m^2)."""
        return self.exchange_current_density_mA_cm2 * 10.0


class PhysicalParameters(StrictModel):
    """Everything the continuum and the KMC must agree on."""

    temperature: float = Field(298.15, gt=150.0, lt=500.0, description="temperature T [K]",
                               json_schema_extra=_unit("K"))
    lithium_molar_volume: float = Field(1.30e-5, gt=0, le=1e-3, description="lithium molar volume V_m [m^3/mol]",
                                        json_schema_extra=_unit("m^3/mol"))
    electrolyte: Electrolyte = Field(default_factory=Electrolyte)
    kinetics: Kinetics = Field(default_factory=Kinetics)
    reference_concentration: Optional[float] = Field(
        None, gt=0, le=10000.0, description="c_ref of the Butler-Volmer law [mol/m^3]; None means c0",
        json_schema_extra=_unit("mol/m^3"))

    # -- derived -------------------------------------------------------------------
    @property
    def f(self) -> float:
        """F/(RT) [1/V]."""
        return FARADAY / (GAS_CONSTANT * self.temperature)

    @property
    def c_ref(self) -> float:
        return self.reference_concentration or self.electrolyte.concentration

    @property
    def cation_diffusivity(self) -> float:
        """D+ = D / (2 (1 - t+)) [m^2/s]."""
        e = self.electrolyte
        return e.salt_diffusivity / (2.0 * (1.0 - e.transference_number))

    @property
    def anion_diffusivity(self) -> float:
        """D- = D / (2 t+) [m^2/s]."""
        e = self.electrolyte
        return e.salt_diffusivity / (2.0 * e.transference_number)

    def conductivity(self, c):
        """kappa(c) [S/m]: Nernst-Einstein F f (D+ + D-) c, or the measured value scaled
        linearly in c when one is given (then KMC and continuum transport differ)."""
        if self.electrolyte.measured_conductivity is None:
            return FARADAY * self.f * (self.cation_diffusivity + self.anion_diffusivity) * c
        return self.electrolyte.measured_conductivity * (c / self.electrolyte.concentration)

    @property
    def transport_consistent(self) -> bool:
        """True when continuum conductivity and KMC hops describe one electrolyte."""
        return self.electrolyte.measured_conductivity is None

    def packet_charge(self, spacing: float) -> float:
        """Charge of one packet, the lithium that fills one voxel: F h^3 / V_m [C]."""
        return FARADAY * spacing**3 / self.lithium_molar_volume


def describe_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line per problem: the dotted field, the bad value and what is allowed."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        if prefix:
            loc = f"{prefix}.{loc}"
        val = e.get("input")
        ctx = e.get("ctx") or {}
        rng = []
        for key, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if key in ctx:
                rng.append(f"{sym} {ctx[key]}")
        if e["type"] == "value_error":
            lines.append(f"{loc}: {e['msg'].removeprefix('Value error, ')}")
        elif e["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key (value {val!r})")
        elif rng:
            lines.append(f"{loc} = {val!r} is out of range: must be {' and '.join(rng)}")
        else:
            lines.append(f"{loc} = {val!r}: {e['msg']}")
    return "; ".join(lines)
