"""The phase-field model as a run of the coupled layer (``model = "phasefield"``,
docs/phasefield.md "Phase-field runs"): the same host, protocol, time-series columns, segment
records, snapshots and summary as a KMC run (:class:`~kmc.coupling.simulation.PlatingSimulation`),
so a study runs either model by one switch.

The phase field (``continuum.phasefield``) runs on the voxel grid or one refined by
``phasefield.refinement``, its constants mapped from the KMC's physics
(:func:`phasefield_constants`), under the protocol's segments: a current
density is ``Galvanostatic`` (exact to the root's tolerance, no packets), a potentiostatic hold
``Potentiostatic``.  The separator column of the KMC run sets the top's concentration and
potential between rows.  Every deposit observable is the KMC's, computed on the lattice
:func:`~kmc.coarse_graining.lattice_from_order_parameter` thresholds from the lithium order
parameter, i.e. xi above the bare host's own diffuse interface (the free cells next to a
conductive host hold xi > 0 at rest), so that lithium is counted from zero and the lattice holds
exactly the phase field's lithium, rounded to whole voxels.

Checkpoints as the KMC run's (kmc/coupling/checkpoint.py): every ``checkpoint_every_steps``
rows and at the end; the state is the solver's (fields, clock, step-size control, noise
generator), the separator's, the charge ledgers and the rows; ``resume`` continues
bit-identically.

Not done (ConfigError before anything is written): strips that end on a condition ('until ...
cutoff', 'fully stripped'), per-voxel host conductivity; ``kmc.occupancy_cap`` and
``continuum.coarsen`` are refused by the config.
"""
from __future__ import annotations

import time as _time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from continuum.grid import collector_connected, face_dilate
from continuum.phasefield import (HONG2018, Galvanostatic, PhaseFieldParameters, PhaseFieldSolver, Potentiostatic,
                                  interpolation, order_parameter_from_mask, relaxed_order_parameter)
from continuum.separator import SeparatorColumn

from ..coarse_graining import (block_mean, capillary_constants, contact_coordination_shift, lattice_from_order_parameter,
                               phasefield_parameters, refine, volume_ratio)
from ..hosts import Host
from . import columns as col
from . import simulation as _simulation
from .config import ConfigError, SimulationConfig
from .observables import REGION_NAMES, cycle_balance, cycle_summary, deposit_observables, region_map, time_weighted_mean
from .simulation import RunResult, _applied_mA_cm2, walk_protocol
from .streams import root_sequence
from .threads import case_threads
from .units import MA_PER_CM2, MAH_PER_CM2
from .waveforms import Segment


def _held_potential(segment: Segment):
    """The held cell potential [V] of a potentiostatic segment, None for a galvanostatic one
    (``held_potential`` is read with getattr: holds are newer than this adapter's first version)."""
    return getattr(segment, "held_potential", None)


def check_phasefield_case(config: SimulationConfig, host: Host, segments, label: str) -> list[str]:
    """ConfigError naming what the phase-field run cannot do with this case; else the warnings
    of the KMC's preflight that apply (the pore fill limit is an error there too), without its
    packet-granularity check, which is the KMC's."""
    from .preflight import check_case

    phasefield_constants(config)  # ConfigError for constants it cannot map
    host_nucleation_overpotential(config, host)
    coordination_bond_shift(config, host, "front_coordination")  # ConfigError without the KMC's interface energy
    if host.conductivity is not None:
        raise ConfigError(f"{label}: model=phasefield takes one metal conductivity (sigma_s); the host's "
                          "per-voxel conductivity is the KMC run's only")
    for i, s in enumerate(segments):
        if s.until_stripped or s.cutoff_potential is not None:
            raise ConfigError(f"{label}: segment {i} ({s.label}) ends on 'fully stripped' or a cutoff potential, "
                              "which model=phasefield does not evaluate: give strips a capacity or a duration "
                              "(protocol.steps 'strip at X mA/cm^2 for Y mAh/cm^2'), or use model=kmc")
    return [w for w in check_case(config, host, segments, label, allow_coarse=True) if "one packet is" not in w]


def lithium_profile(phase: np.ndarray, spacing: float, params: PhaseFieldParameters) -> np.ndarray:
    """The equilibrium profile around the LITHIUM voxels of ``phase`` whose interface is the
    lithium/electrolyte boundary only: lithium against a conductive host (a foil's film on the
    collector) is metal on metal, no interface (counting it as one started a 2-voxel film as a
    lens, xi = 0.58 at the collector at refinement 3, which then relaxed to 1.4 voxels)."""
    lithium = phase == LITHIUM
    inside = order_parameter_from_mask(phase, lithium | (phase == HOST_CONDUCTIVE), spacing, params)
    return np.where(lithium, inside, order_parameter_from_mask(phase, lithium, spacing, params))


def phasefield_constants(config: SimulationConfig) -> PhaseFieldParameters:
    """The phase field's constants for a run's configuration: the flat-front mapping of the
    KMC's physics (:func:`~kmc.coarse_graining.phasefield_parameters`) on Hong 2018's interface,
    at the profile length ``phasefield.interface_width_um``; with ``phasefield.capillarity =
    "kmc"`` at the KMC's interface energy ``kmc.interface_energy_J_m2`` and the interface
    mobility of its linearised Gibbs-Thomson velocity
    (:func:`~kmc.coarse_graining.capillary_constants`)."""
    pf = config.phasefield
    base = HONG2018 if pf.interface_width_um is None else HONG2018.with_profile_length(pf.interface_width_um * 1e-6)
    changes = {"noise_amplitude": pf.noise_amplitude}
    if pf.capillarity == "kmc":
        gamma = config.kmc.interface_energy_J_m2
        if not gamma > 0:
            raise ConfigError(f"phasefield.capillarity = 'kmc' takes the KMC's interface energy, but "
                              f"kmc.interface_energy_J_m2 = {gamma!r}: set it > 0 (at most 1000 J/m^2), or use "
                              "phasefield.capillarity = 'hong2018'")
        changes.update(capillary_constants(config.physics, gamma, base.profile_length))
    return phasefield_parameters(config.physics, base, **changes)


def coordination_bond_shift(config: SimulationConfig, host: Host, field: str = "contact_coordination") -> float:
    """delta [V per bond] of ``phasefield.<field>`` (``contact_coordination`` or
    ``front_coordination``; 0 when "off"): the KMC engine's own coordination shift per bond,
    2 gamma V_m / (F h) at gamma = ``kmc.interface_energy_J_m2`` (``RateConstants.coordination_shift``)."""
    mode = getattr(config.phasefield, field)
    if mode == "off":
        return 0.0
    from ..engine.rates import RateConstants

    gamma = config.kmc.interface_energy_J_m2
    if not gamma > 0:
        raise ConfigError(f"phasefield.{field} = {mode!r} takes the KMC's coordination shift, but "
                          f"kmc.interface_energy_J_m2 = {gamma!r}: set it > 0 (at most 1000 J/m^2), or "
                          f"phasefield.{field} = 'off'")
    return RateConstants.from_parameters(config.physics, host.spacing, interface_energy=gamma).coordination_shift


def host_nucleation_overpotential(config: SimulationConfig, host: Host) -> np.ndarray:
    """eta_nuc [V] per voxel of the phase field's wetting layer: the host's, plus with
    ``phasefield.contact_coordination = "static"`` the KMC's coordination shift of a first voxel
    on the bare host (:func:`~kmc.coarse_graining.contact_coordination_shift`, delta from
    :func:`coordination_bond_shift`).  "dynamic" leaves eta_nuc the host's: the shift is then the
    phase field's own, per contact and step (``contact_bond_shift`` of its parameters)."""
    delta = coordination_bond_shift(config, host)
    if config.phasefield.contact_coordination != "static":
        return host.eta_nuc
    return host.eta_nuc + contact_coordination_shift(host.phase, delta)


class PhaseFieldRun:
    """One phase-field run on one host under one protocol; ``run`` returns the KMC run's
    :class:`RunResult`."""

    def __init__(self, config: SimulationConfig, host: Host, seed_sequence: np.random.SeedSequence | None = None):
        host.validate()
        if config.model != "phasefield":
            raise ConfigError(f"model = {config.model!r}: PhaseFieldRun runs model=phasefield")
        self.config, self.host, self.physics = config, host, config.physics
        pf = config.phasefield
        self.r = r = pf.refinement
        self.h = host.spacing
        nx, ny, _ = host.phase.shape
        self.footprint = nx * ny * self.h**2
        self.params = phasefield_constants(config)
        if pf.contact_coordination == "dynamic":  # the bond counted per voxel of the lattice
            self.params = self.params.replace(contact_bond_shift=coordination_bond_shift(config, host))
        if pf.front_coordination == "dynamic":  # the same for lithium on lithium, every voxel
            self.params = self.params.replace(front_bond_shift=coordination_bond_shift(config, host, "front_coordination"))
        self.params = self.params.replace(bond_closure=pf.bond_closure, face_channels=pf.face_channels == "kmc")
        fine = refine(host.phase, r)
        hf = self.h / r
        sites = {"eta_nuc": refine(host_nucleation_overpotential(config, host), r),
                 "activity": refine(host.activity, r), "bond_cell": r}
        if pf.initial_state == "rest":
            # lithium counts above the bare host's rest state (its contacts hold the wetting layer
            # at rest, docs/phasefield.md "Host contact"); where the run starts with lithium (a
            # foil's film) the host is not bare and lithium counts from 0
            bare = refine(np.where(host.phase == LITHIUM, ELECTROLYTE, host.phase).astype(np.uint8), r)
            self.xi_host = np.where(fine == LITHIUM, 0.0, relaxed_order_parameter(bare, hf, self.params, **sites))
        else:  # "lattice": the host as a KMC lattice starts, its free voxels empty; all xi is lithium
            self.xi_host = np.zeros(fine.shape)
        # lithium at the start (a foil's film) carries its equilibrium profile, not relaxed further:
        # relaxed_order_parameter's long steps (up to 50 / (L_sigma W)) dissolve a resolved film
        # (0 of 160 voxels left at refinement 2 and 3, docs/phasefield.md "Validation")
        xi0 = np.maximum(lithium_profile(fine, hf, self.params), self.xi_host)
        self.free_fine = (fine == ELECTROLYTE) | (fine == LITHIUM)
        c0 = np.where(self.free_fine, config.physics.electrolyte.concentration * (1.0 - interpolation(xi0)), 0.0)
        sep = config.separator
        self.separator = SeparatorColumn(config.physics, sep.length_um * 1e-6, sep.porosity, sep.cells)
        ss = seed_sequence if seed_sequence is not None else root_sequence(config.seed)
        self.solver = PhaseFieldSolver(fine, hf, self.params, xi=xi0, c=c0, **sites,
                                       top_concentration=self.separator.c_interface, rng=np.random.default_rng(ss),
                                       linear_solver=pf.linear_solver, tol_xi=pf.tol_xi,
                                       shot_noise_cell=r if pf.shot_noise == "lattice" else 0,
                                       shot_noise_interval=pf.shot_noise_interval_s)
        self.region = region_map(host.phase)
        self.packet_charge = config.physics.packet_charge(self.h)
        self.time = 0.0
        self.steps = 0  # rows after the start (checkpoints count them)
        self.applied_charge = 0.0  # C, SI sign (> 0 anodic); a hold's passed charge counts as applied
        self.gross_applied = 0.0
        self.stripped_charge = 0.0  # anodic charge passed, summed per row [C]
        self.region_growth = np.zeros(len(REGION_NAMES))
        self._voxel_lithium = self._lithium_per_voxel()
        self.rows: list[dict] = []
        self.segment_log: list[dict] = []
        self._segment_start = None  # (time, applied charge, passed charge) at the current segment's start
        self.timing = {"continuum [s]": 0.0, "kmc [s]": 0.0, "observables [s]": 0.0}
        self._lattice = None
        self._record(Segment(0.0, 0.0, "start"), float("nan"))

    # -- state as the KMC sees it ------------------------------------------------------------
    @property
    def lithium_order_parameter(self) -> np.ndarray:
        """xi above the bare host's diffuse interface on the (refined) grid: the lithium."""
        return np.where(self.free_fine, self.solver.order_parameter - self.xi_host, 0.0)

    def _lithium_per_voxel(self) -> np.ndarray:
        """Lithium per voxel [voxels of metal]: the lithium order parameter's block mean."""
        return block_mean(self.lithium_order_parameter, self.r)

    def lattice(self) -> np.ndarray:
        """The KMC phase array of the state: exactly round(lithium) voxels of LITHIUM, the free
        voxels holding the most lithium."""
        if self._lattice is None:
            self._lattice = lattice_from_order_parameter(self.lithium_order_parameter, self.host.phase,
                                                         refinement=self.r)
        return self._lattice

    def lithium_voxels(self) -> float:
        """The phase field's lithium in voxels (packets), unrounded."""
        return float(self.lithium_order_parameter.sum()) / volume_ratio(self.host.phase.shape, self.r)

    def capacity(self, charge: float) -> float:
        """Charge [C] over the footprint as capacity [mAh/cm^2]."""
        return charge / self.footprint / MAH_PER_CM2

    # -- the loop ------------------------------------------------------------------------------
    def _advance(self, segment: Segment, dt: float) -> float:
        """Advance by dt under the segment; returns the charge passed [C, SI sign]."""
        t0 = _time.perf_counter()
        held = _held_potential(segment)
        s = self.solver
        before = s.charge
        j_ext = segment.current_density if held is None else s.current_density  # the separator's current
        s.set_top(concentration=self.separator.c_interface, potential=self.separator.ohmic_drop(j_ext))
        try:
            s.advance(dt, Potentiostatic(held) if held is not None else Galvanostatic(segment.current_density))
        except RuntimeError as e:
            raise RuntimeError(f"phase-field run, segment '{segment.label}' at t = {s.t:.6g} s: {e}") from None
        passed = s.charge - before
        self.separator.step(dt, current_density=passed / dt / self.footprint if held is not None else j_ext)
        if held is None:
            self.applied_charge += segment.current_density * self.footprint * dt
            self.gross_applied += abs(segment.current_density) * self.footprint * dt
        else:
            self.applied_charge += passed
            self.gross_applied += abs(passed)
        self.stripped_charge += max(passed, 0.0)
        self.time += dt
        self.steps += 1
        self._lattice = None
        self.timing["continuum [s]"] += _time.perf_counter() - t0
        return passed

    def _run_segment(self, segment: Segment, t_end: float, on_step) -> str:
        interval = self.config.phasefield.record_interval_s
        while t_end - self.time > 1e-9 * max(1.0, segment.duration):
            dt = min(interval, t_end - self.time)
            if t_end - self.time - dt < 0.25 * dt:  # no sliver of a last row
                dt = t_end - self.time
            passed = self._advance(segment, dt)
            on_step(self._record(segment, passed / dt / self.footprint))
        # the galvanostat passes the applied charge exactly: a capacity-terminated segment ends
        # on its charge at its nominal end
        return "charge" if segment.until_charge and segment.current_density else "duration"

    def run(self, segments: Sequence[Segment], *, label: str = "run", outdir: str | Path | None = None,
            snapshots: int | None = None, progress=None, checkpoint_dir: str | Path | None = None,
            checkpoint_every_steps: int | None = None, resume: bool = False,
            series: str | Path | None = None) -> RunResult:
        """Run a protocol (the arguments of :meth:`PlatingSimulation.run`, which see: a row is a
        macro-step, so ``checkpoint_every_steps`` counts rows)."""
        check_phasefield_case(self.config, self.host, segments, label)
        with threadpool_limits(limits=1), case_threads():
            return self._run(list(segments), label, outdir, snapshots, progress, series, checkpoint_dir,
                             checkpoint_every_steps, resume)

    def _run(self, segments, label, outdir, snapshots, progress, series, checkpoint_dir, checkpoint_every_steps,
             resume) -> RunResult:
        def step_segment(i, seg, t_end, resumed, on_step):
            if not resumed:
                self._segment_start = (self.time, self.applied_charge, self.solver.charge)
            why = self._run_segment(seg, t_end, on_step)
            self._log_segment(seg, why)
            return why

        return walk_protocol(self, segments, step_segment, label=label, outdir=outdir, snapshots=snapshots,
                             progress=progress, checkpoint_dir=checkpoint_dir,
                             checkpoint_every_steps=checkpoint_every_steps, resume=resume, series=series)

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything the loop reads that the constructor does not rebuild from (config, host):
        the solver's state, the separator column's, the charge ledgers, the per-voxel lithium
        the next row's growth is measured from, the rows and the segment records."""
        return {"solver": self.solver.state_dict(), "separator": self.separator.state_dict(),
                "clock": {"time": self.time, "steps": self.steps, "applied_charge": self.applied_charge,
                          "gross_applied": self.gross_applied, "stripped_charge": self.stripped_charge,
                          "region_growth": self.region_growth.copy(), "voxel_lithium": self._voxel_lithium.copy()},
                "rows": self.rows, "timing": dict(self.timing),
                "segments": {"log": self.segment_log, "start": self._segment_start}}

    def load_state_dict(self, d: dict) -> None:
        self.solver.load_state_dict(d["solver"])
        self.separator.load_state_dict(d["separator"])
        clock = d["clock"]
        self.time, self.steps = float(clock["time"]), int(clock["steps"])
        self.applied_charge, self.gross_applied = float(clock["applied_charge"]), float(clock["gross_applied"])
        self.stripped_charge = float(clock["stripped_charge"])
        self.region_growth = np.array(clock["region_growth"], dtype=np.float64)
        self._voxel_lithium = np.array(clock["voxel_lithium"], dtype=np.float64)
        self.rows = list(d["rows"])
        self.timing = dict(d["timing"])
        self.segment_log = list(d["segments"]["log"])
        start = d["segments"]["start"]
        self._segment_start = None if start is None else tuple(float(v) for v in start)
        self._lattice = None

    def after_checkpoint(self) -> None:
        """After each checkpoint the solver restarts from its own state, as a resumed run's does
        (its AMG hierarchies, which depend on the solves' history, are rebuilt), so the run goes
        on exactly as a resumed one would."""
        self.solver.load_state_dict(self.solver.state_dict())

    # -- records -------------------------------------------------------------------------------
    def _plating_overpotential_mV(self) -> float:
        """Mean potential (= eta against the lithium reference at c_ref) over the cells where
        metal formed in the last step, weighted by its rate [mV]."""
        rate = self.solver.conversion_rate
        ok = (rate > 0) & self.free_fine
        if not ok.any():
            return float("nan")
        return float(np.sum(self.solver.potential[ok] * rate[ok]) / rate[ok].sum()) * 1e3

    def _near_deposit_concentration(self, lattice, connected) -> float:
        """Mean concentration in the electrolyte voxels that face a connected conductor."""
        c = block_mean(np.nan_to_num(self.solver.concentration), self.r, where=self.free_fine)
        sel = (lattice == ELECTROLYTE) & face_dilate(connected)
        return float(c[sel].mean()) if sel.any() else float("nan")

    def _record(self, segment: Segment, current: float) -> dict:
        """One row after a step; ``current``: the Faradaic current density it passed [A/m^2, SI]."""
        t0 = _time.perf_counter()
        lattice = self.lattice()
        connected = collector_connected(lattice)
        obs = deposit_observables(lattice, self.host.phase, self.h, self.physics.lithium_molar_volume,
                                  connected=connected)
        voxel = self._lithium_per_voxel()
        grown = np.maximum(voxel - self._voxel_lithium, 0.0)
        self._voxel_lithium = voxel
        self.region_growth += np.bincount(self.region.ravel(), weights=grown.ravel(),
                                          minlength=len(REGION_NAMES))[:len(REGION_NAMES)]
        start = segment.label == "start"
        passed_mA_cm2 = -current / MA_PER_CM2 if np.isfinite(current) and current else 0.0
        held = _held_potential(segment) is not None
        row = {
            col.TIME: self.time,
            col.STEP: segment.label,
            col.CURRENT: passed_mA_cm2 if held else _applied_mA_cm2(segment),
        }
        field_current = getattr(col, "FIELD_CURRENT", None)  # the KMC's hold work adds it
        if field_current is not None:  # the phase field passes what its fields carry
            row[field_current] = passed_mA_cm2
        row.update({
            col.POTENTIAL: float("nan") if start else float(self.solver.cell_potential),
            col.OVERPOTENTIAL: float("nan") if start else self._plating_overpotential_mV(),
            col.APPLIED_CAP: self.capacity(-self.applied_charge),
            col.PLATED_CAP: self.capacity(-self.solver.charge),
            col.STRIPPED_CAP: self.capacity(self.stripped_charge),
            col.C_TOP: self.separator.c_interface,
            col.C_NEAR: self._near_deposit_concentration(lattice, connected),
            col.PACKETS: float("nan"),  # no packets
            **obs.as_row(),
            col.DEAD_FORMED: float("nan"),  # no electronic isolation in the phase field
            col.DEAD_RECONNECTED: float("nan"),
        })
        total = self.region_growth.sum()
        for i, name in enumerate(REGION_NAMES):
            row[col.reductions_share(name)] = float(self.region_growth[i] / total) if total > 0 else 0.0
        self.rows.append(row)
        self.timing["observables [s]"] += _time.perf_counter() - t0
        return row

    def _log_segment(self, segment: Segment, why: str) -> None:
        """One row of segments.csv, as the KMC run writes it."""
        t0, applied0, passed0 = self._segment_start
        applied = self.applied_charge - applied0
        passed = self.solver.charge - passed0
        duration = self.time - t0
        last = self.rows[-1]
        held = _held_potential(segment) is not None
        self.segment_log.append({
            col.SEGMENT: len(self.segment_log), col.STEP: segment.label,
            col.CURRENT: (-passed / duration / self.footprint / MA_PER_CM2 if duration > 0 else 0.0) if held
            else _applied_mA_cm2(segment),
            col.SEGMENT_START: t0, col.SEGMENT_DURATION: duration,
            col.APPLIED_CAP: self.capacity(-applied), col.PASSED_CAP: self.capacity(-passed),
            col.CHARGE_ERROR: 100.0 * abs(passed - applied) / abs(applied) if applied else float("nan"),
            col.ENDED_BY: why,
            col.DEAD_FORMED: float("nan"), col.DEAD_RECONNECTED: float("nan"),
            col.LITHIUM: last[col.LITHIUM], col.DEAD_LITHIUM: last[col.DEAD_LITHIUM],
            col.WRITTEN_OFF: 0.0})

    def charge_error_percent(self) -> float:
        """|passed - applied| over the gross applied charge [%] (the galvanostat's root tolerance)."""
        if self.gross_applied == 0:
            return 0.0
        return 100.0 * abs(self.solver.charge - self.applied_charge) / self.gross_applied

    def _result(self, label: str, ends: list[str], snapshots: list) -> RunResult:
        if self.solver.kicks_dropped:  # the shot noise not applied in full: say so
            warnings.warn(f"phase-field run {label}: {self.solver.kicks_dropped} of {self.solver.kicks} shot-noise "
                          "kicks dropped (phi of the kicked state not solved)", RuntimeWarning, stacklevel=2)
        final = self.rows[-1]
        summary = {k: final[k] for k in final if k != col.STEP}
        summary[col.MEAN_POTENTIAL] = time_weighted_mean(self.rows, col.POTENTIAL, under_current=True)
        summary[col.SEGMENTS_ENDED_BY] = ";".join(ends)
        summary[col.CHARGE_ERROR] = self.charge_error_percent()
        summary[col.COMPLIANCE_STEPS] = 0
        summary[col.CAPPED_STEPS] = 0
        summary[col.EXHAUSTED_STRIPS] = 0
        summary[col.WRITTEN_OFF] = 0.0
        summary.update(cycle_summary(cycle_balance(self.segment_log)))
        hold_summary = getattr(_simulation, "hold_summary", None)  # the KMC's hold work adds it
        if hold_summary is not None:
            summary.update(hold_summary(self.rows, self.segment_log))
        lattice = self.lattice()
        timing = dict(self.timing)
        return RunResult(label=label, rows=self.rows, host=self.host, final_phase=lattice.copy(),
                         connected=collector_connected(lattice), summary=summary, timing=timing,
                         snapshots=snapshots, segments=list(self.segment_log))

    def snapshot_fields(self) -> dict:
        """The voxel-grid fields of a snapshot: the lattice, the order parameters, c and phi
        (block means over the refined cells)."""
        lattice = self.lattice()
        s = self.solver
        return {"phase": lattice, "dead_lithium": (lattice == LITHIUM) & ~collector_connected(lattice),
                "region": self.region, "order_parameter": block_mean(s.order_parameter, self.r),
                "lithium_fraction": self._lithium_per_voxel(),
                "concentration": block_mean(np.nan_to_num(s.concentration), self.r, where=self.free_fine),
                "potential": block_mean(np.nan_to_num(s.potential), self.r,
                                        where=refine(self.host.phase != HOST_DIELECTRIC, self.r))}


def model_run(config: SimulationConfig, host: Host, seed_sequence: np.random.SeedSequence | None = None):
    """The run ``config.model`` asks for: a PlatingSimulation (kmc) or a PhaseFieldRun; both
    have ``run(segments, ...)`` returning a RunResult."""
    if config.model == "phasefield":
        return PhaseFieldRun(config, host, seed_sequence)
    return _simulation.PlatingSimulation(config, host, seed_sequence=seed_sequence)
