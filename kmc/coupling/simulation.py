"""The coupled plating simulation: the macro-step loop of MODEL.md section 6.

Each macro-step: relabel the conductor network (dead lithium), solve the continuum fields
under galvanostatic control, advance the KMC with those fields frozen, advance the far-field
separator column with the flux the KMC realised, correct the galvanostat so that the
cumulative KMC charge tracks the integral of the applied current, record observables.
"""
from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from continuum.concentration import ConcentrationSolver
from continuum.faces import neighbour_index
from continuum.grid import face_dilate
from continuum.constants import ELECTROLYTE, LITHIUM
from continuum.coarse_grid import make_potential_solver
from continuum.separator import SeparatorColumn

from .config import SimulationConfig
from ..engine import KMCEngine
from ..hosts import Host
from .io import write_pvd, write_vti
from ..engine.lattice import LatticeState
from .observables import REGION_NAMES, deposit_observables, region_map
from .units import MA_PER_CM2, MAH_PER_CM2
from .waveforms import Segment

# Columns of the time series, with units in the names (tidy CSV).
TIME = "Time [s]"
STEP = "Step [-]"
CURRENT = "Applied current density [mA.cm-2]"
POTENTIAL = "Cell potential [V]"
OVERPOTENTIAL = "Mean plating overpotential [mV]"
APPLIED_CAP = "Applied capacity [mAh.cm-2]"
PLATED_CAP = "Plated capacity [mAh.cm-2]"
STRIPPED_CAP = "Stripped capacity [mAh.cm-2]"
C_TOP = "Concentration at host top [mol.m-3]"
C_NEAR = "Concentration near deposit [mol.m-3]"


@dataclass
class RunResult:
    """Everything a study needs from one run."""

    label: str
    rows: list[dict]
    host: Host
    final_phase: np.ndarray
    connected: np.ndarray
    summary: dict
    timing: dict
    snapshots: list = field(default_factory=list)


class PlatingSimulation:
    """One coupled KMC/continuum run on one host under one protocol."""

    def __init__(self, config: SimulationConfig, host: Host, seed_sequence: np.random.SeedSequence | None = None):
        host.validate()
        self.config = config
        self.params = config.physics
        self.host = host
        self.h = host.spacing
        nx, ny, _ = host.phase.shape
        self.footprint = nx * ny * self.h**2  # m^2
        ss = seed_sequence if seed_sequence is not None else np.random.SeedSequence(config.seed)
        lattice_ss, engine_ss = ss.spawn(2)
        c0 = self.params.electrolyte.concentration
        k = config.kmc
        explicit = k.transport == "explicit"
        self.state = LatticeState.from_host(host, concentration=c0 if explicit else 0.0, seed=lattice_ss,
                                            molar_volume=self.params.lithium_molar_volume)
        self.engine = KMCEngine(self.state, self.params, transport=k.transport, leaps=k.leaps,
                                occupancy_cap=k.occupancy_cap, seed=engine_ss, face_counts=True)
        self.region = region_map(host.phase)
        sep = config.separator
        self.separator = SeparatorColumn(self.params, sep.length_um * 1e-6, sep.porosity, sep.cells)
        self.concentration = np.where(host.phase == ELECTROLYTE, c0, 0.0)  # implicit-mode field
        self.packet_charge = self.params.packet_charge(self.h)
        self.time = 0.0
        self.applied_charge = 0.0  # C, SI sign (negative = plating)
        self.kmc_charge = 0.0  # C realised by the KMC, SI sign
        self.reductions = 0
        self.oxidations = 0
        self.region_reductions = np.zeros(8, np.int64)
        self.rows: list[dict] = []
        self.solution = None
        self.steps = 0
        self.compliance_steps = 0  # macro-steps where the galvanostat hit its voltage limit
        self.limited_steps = 0  # macro-steps whose KMC reached the galvanostat's charge cap
        self.timing = {"continuum [s]": 0.0, "kmc [s]": 0.0, "observables [s]": 0.0}
        self._record(Segment(0.0, 0.0, "start"), None)

    # -- helpers --------------------------------------------------------------------------
    def capacity(self, charge: float) -> float:
        """Charge [C] over the footprint as capacity [mAh/cm^2]."""
        return charge / self.footprint / MAH_PER_CM2

    @property
    def plated_capacity(self) -> float:
        """Net plated capacity [mAh/cm^2] (reductions minus oxidations)."""
        return self.capacity((self.reductions - self.oxidations) * self.packet_charge)

    def _concentration_field(self) -> np.ndarray:
        """The c the continuum solves with: the mean-field salt concentration, advanced every
        macro-step with the interfacial flux the KMC realised. In explicit mode the packets
        (0.013 per voxel at 1 M: one packet alone is 77 M in its voxel) are too sparse for a
        smoothed packet density to feed the diffusion potential without noise swamping it;
        they still decide every reduction, and the packet concentration is recorded.

        A packet is 77 M of lithium in one voxel, so the sink of one reduction can drive the
        mean-field c below zero locally until diffusion refills it; the balance keeps that
        deficit (salt is conserved), while rates see c clipped at zero."""
        return np.maximum(self.concentration, 0.0)

    def _packets_owed(self, charge: float) -> int:
        """Whole packets still to plate for an owed charge [C, SI sign: negative = plating
        owed], rounded to the nearest packet; 0 when nothing is owed."""
        return max(0, math.ceil(-charge / self.packet_charge - 0.5))

    def _has_lithium_to_strip(self) -> bool:
        li = (self.state.phase == LITHIUM) & self.state.connected
        if not li.any():
            return False
        near = face_dilate(self.state.phase == ELECTROLYTE)
        return bool((li & near).any())

    def _floating_fields(self, phi_top: float):
        """Open circuit with nothing to strip: the conductor floats far anodic of any
        reduction; packets still move (relaxation in pulse off-times)."""
        phi_l = np.full(self.state.phase.shape, phi_top)
        phi_s = np.full(self.state.phase.shape, phi_top + 1.0)
        return phi_l, phi_s

    # -- one macro-step -------------------------------------------------------------------
    def macro_step(self, segment: Segment, dt: float, final: bool = False, segment_left: float | None = None) -> dict:
        """Advance the coupled system by ``dt`` [s] under ``segment``'s applied current.
        ``final``: the segment's last step; when plating, the KMC stops at the packet that
        completes the applied charge, as a galvanostat's charge counter ends a step (the
        reduction count is otherwise free to overshoot by Poisson noise). ``segment_left``
        [s]: time to the end of the run's last plating segment; no step then plates more
        than the run still owes (an overshoot there could never be taken back)."""
        k = self.config.kmc
        t0 = _time.perf_counter()
        self.state.relabel()
        phase_now = self.state.phase.copy()
        c = self._concentration_field()
        # The potential solve sees c floored at 1 % of c0: a voxel emptied by one packet's sink
        # would otherwise be an insulator whose potential drop runs to volts.
        c_solve = np.maximum(c, 0.01 * self.params.electrolyte.concentration)
        c_top = self.separator.c_interface
        applied = segment.current_density * self.footprint  # A, SI sign
        # Galvanostat: aim this step at the applied current plus the charge still owed, but
        # never reverse the applied current nor exceed twice it (open circuit stays open).
        owed = self.applied_charge + applied * dt - self.kmc_charge
        target = float(np.clip(owed / dt, min(0.0, 2 * applied), max(0.0, 2 * applied)))
        # The separator carries the external (applied) current; the KMC's packet-by-packet
        # realisation of it is noise at the scale of a short macro-step.
        phi_top = self.separator.ohmic_drop(segment.current_density)
        sol = None
        if target >= 0 and not self._has_lithium_to_strip():
            phi_l, phi_s = self._floating_fields(phi_top)
        else:
            cs = self.config.continuum
            solver = make_potential_solver(phase_now, self.h, self.params, self.state.eta_nuc, self.state.activity,
                                           coarsen=cs.coarsen, linear_solver=cs.linear_solver,
                                           rtol=cs.charge_tolerance)
            initial = self.solution if (self.solution is not None and self.solution.phi_l.shape == phase_now.shape
                                        and np.array_equal(np.isfinite(self.solution.phi_l),
                                                           phase_now == ELECTROLYTE)) else None
            try:
                sol = solver.solve(c_solve, current=target, phi_top=phi_top, c_top=c_top, initial=initial)
            except ValueError:
                if target == 0:  # open circuit with nothing that can react: nothing does
                    phi_l, phi_s = self._floating_fields(phi_top)
                elif target > 0:
                    raise
                # Past the transport limit (Sand's time) no potential delivers the current:
                # the galvanostat sits at its compliance voltage and passes what it can.
                else:
                    sol = solver.solve(c_solve, cell_potential=self.config.continuum.compliance_potential_V,
                                       phi_top=phi_top, c_top=c_top)
                    self.compliance_steps += 1
            if sol is not None:
                phi_l, phi_s = sol.phi_l, sol.phi_s
        t1 = _time.perf_counter()
        cap = None
        if final and applied < 0:
            cap = self._packets_owed(owed)
        elif target < 0:
            # A galvanostat never passes more than it is set to: the KMC stops once its net
            # reductions exceed the step's target well beyond their Poisson noise. Only steps whose
            # packets outrun the mean-field fields (past the transport limit, as an off-time's
            # refilled reservoir meets the next pulse) reach it; without it they ran away.
            n = -target * dt / self.packet_charge
            cap = math.ceil(n + 5.0 * math.sqrt(n) + 5.0)
            if segment_left is not None:
                cap = min(cap, self._packets_owed(self.applied_charge + applied * segment_left - self.kmc_charge))
        elif target == 0 and sol is not None and sol.faces.n_faces:
            # Open circuit (a rest, a pulse's off-time, or a plating step already paid): the
            # net charge stays within 5 sigma of the step's gross exchange (the bound reads
            # i0 on every active face, a generous estimate of it).
            gross = 2.0 * self.params.kinetics.exchange_current_density * sol.faces.n_faces * self.h**2 * dt \
                / self.packet_charge
            cap = math.ceil(5.0 * math.sqrt(gross) + 5.0)
        res = self.engine.advance(dt, phi_l=phi_l, phi_s=phi_s, phi_top=phi_top, c_top=c_top,
                                  concentration=c if k.transport == "implicit" else None, region=self.region,
                                  max_reductions=cap)
        t2 = _time.perf_counter()
        if res.status == "max_reductions" and not final:
            self.limited_steps += 1
        red, ox = int(res.counts["reductions"]), int(res.counts["oxidations"])
        assert red - ox == res.counts["lithium_created"] - res.counts["lithium_removed"], "Faraday balance broken"
        realised = (ox - red) * self.packet_charge  # C, SI sign
        self.kmc_charge += realised
        self.applied_charge += applied * dt
        self.reductions += red
        self.oxidations += ox
        self.region_reductions += np.asarray(res.region_reductions, np.int64)[:8]
        self._advance_concentration(dt, res, sol, realised / dt, c_top, phase_now)
        # quasi-steady salt flux -(1 - t+) j / F into the domain: feeding the domain's own
        # transient top inflow back (a Dirichlet-Neumann split) oscillated at these time steps
        self.separator.step(dt, current_density=segment.current_density)
        self.time += dt
        self.steps += 1
        self.solution = sol
        t3 = _time.perf_counter()
        self.timing["continuum [s]"] += (t1 - t0) + (t3 - t2)
        self.timing["kmc [s]"] += t2 - t1
        return self._record(segment, sol)

    def _advance_concentration(self, dt, res, sol, realised_current, c_top, phase_before):
        """Mean-field salt balance on the step's geometry with the charge the KMC realised.

        (1 - t+) of a packet's salt leaves per reduction and returns per oxidation. Where the
        continuum current has the sign and size of the realised one, the realised total is
        spread over the faces in the continuum's distribution (a single packet is 77 M in
        one voxel; dumping it there makes c spiky); otherwise (open circuit, where only
        exchange happens) each reaction is placed at the face where the KMC realised it."""
        tp = self.params.electrolyte.transference_number
        same_grid = self.config.continuum.coarsen == 1  # coarse faces do not map onto voxels
        if same_grid and sol is not None and realised_current != 0 and sol.total_current * realised_current > 0:
            scale = realised_current / sol.total_current
            if 0.2 < scale < 5.0:
                cs = ConcentrationSolver(phase_before, self.h, self.params,
                                         linear_solver=self.config.continuum.linear_solver,
                                         rtol=self.config.continuum.concentration_tolerance)
                cn = cs.step(self.concentration, dt, sol.faces, sol.face_current_density * scale, c_top)
                return self._set_concentration(cn, phase_before)
        net = (res.face_oxidations - res.face_reductions).reshape(-1, 6)  # by conductor voxel
        source = np.zeros(phase_before.size)
        for d in range(6):
            nz_ = np.flatnonzero(net[:, d])
            if nz_.size:
                nb, _ = neighbour_index(phase_before.shape, d)
                np.add.at(source, nb.ravel()[nz_], net[nz_, d])
        n_packet = self.h**3 / self.params.lithium_molar_volume  # mol
        source *= (1.0 - tp) * n_packet / dt
        cs = ConcentrationSolver(phase_before, self.h, self.params, linear_solver=self.config.continuum.linear_solver,
                                 rtol=self.config.continuum.concentration_tolerance)
        cn = cs.step(self.concentration, dt, None, None, c_top, voxel_source=source)
        self._set_concentration(cn, phase_before)

    def _set_concentration(self, cn, phase_before):
        el = self.state.phase == ELECTROLYTE
        fresh = el & (phase_before != ELECTROLYTE)  # stripped voxels take the mean of the electrolyte
        cn[fresh] = cn[el & ~fresh].mean() if (el & ~fresh).any() else self.params.electrolyte.concentration
        cn[~el] = 0.0
        self.concentration = cn

    # -- observables ----------------------------------------------------------------------
    def _near_deposit_concentration(self) -> float:
        """Mean concentration in electrolyte voxels that face a connected conductor."""
        if self.config.kmc.transport == "implicit":
            c = self.concentration
        else:
            s = self.config.kmc.concentration_smoothing_voxels
            c = self.state.packet_concentration(self.params.lithium_molar_volume, smoothing_voxels=s)
        sel = (self.state.phase == ELECTROLYTE) & face_dilate(self.state.connected)
        return float(c[sel].mean()) if sel.any() else float("nan")

    def _record(self, segment: Segment, sol) -> dict:
        t0 = _time.perf_counter()
        obs = deposit_observables(self.state.phase, self.host.phase, self.h, self.params.lithium_molar_volume,
                                  connected=self.state.connected)
        eta = float("nan")
        if sol is not None and sol.faces.n_faces:
            ok = np.isfinite(sol.face_overpotential) & (sol.face_current_density < 0)
            if ok.any():
                w = -sol.face_current_density[ok]
                eta = float(np.sum(sol.face_overpotential[ok] * w) / w.sum()) * 1e3
        total_red = max(int(self.region_reductions.sum()), 1)
        row = {
            TIME: self.time,
            STEP: segment.label,
            CURRENT: -segment.current_density / MA_PER_CM2 if segment.current_density else 0.0,
            POTENTIAL: float(sol.cell_potential) if sol is not None else float("nan"),
            OVERPOTENTIAL: eta,
            APPLIED_CAP: self.capacity(-self.applied_charge),
            PLATED_CAP: self.plated_capacity,
            STRIPPED_CAP: self.capacity(self.oxidations * self.packet_charge),
            C_TOP: self.separator.c_interface,
            C_NEAR: self._near_deposit_concentration(),
            "Packets in transit [-]": int(self.state.n_packets),
            **obs.as_row(),
        }
        for i, name in enumerate(REGION_NAMES):
            row[f"Reductions share {name} [-]"] = float(self.region_reductions[i] / total_red)
        self.rows.append(row)
        self.timing["observables [s]"] += _time.perf_counter() - t0
        return row

    # -- the loop -------------------------------------------------------------------------
    def step_length(self, segment: Segment, remaining: float, refine_end: bool = False) -> float:
        """dt_M: bounded by the config, by the number of interface sites a step may change,
        and by the segment edge (a macro-step never spans a waveform edge)."""
        k = self.config.kmc
        dt = min(k.max_macro_step_s, remaining)
        j = abs(segment.current_density)
        if j > 0:
            n_faces = max(int(self.solution.faces.n_faces) if self.solution is not None else 0,
                          self.state.phase.shape[0] * self.state.phase.shape[1])
            dt = min(dt, k.interface_change_fraction * n_faces * self.packet_charge / (j * self.footprint))
            if refine_end:
                # The charge error left at the end is the Poisson noise of the last step
                # (earlier steps are corrected by later ones): shrink steps toward the end.
                left = j * self.footprint * remaining / self.packet_charge
                dt = min(dt, max(3.0, math.sqrt(left)) * self.packet_charge / (j * self.footprint))
        # avoid a sliver step at the end of a segment
        if remaining - dt < 0.25 * dt:
            dt = remaining
        return dt

    def run_segment(self, segment: Segment, on_step: Callable[[dict], None] | None = None,
                    t_end: float | None = None, refine_end: bool = False) -> str:
        """Run one segment to its end or its stop condition; returns why it ended.
        ``refine_end``: shorten the steps toward the segment's end, so the charge it passes
        ends within about a packet of the applied charge (used for the last plating step).
        ``t_end``: the segment's end time when resuming it from a checkpoint."""
        t_end = self.time + segment.duration if t_end is None else t_end
        while t_end - self.time > 1e-9 * max(1.0, segment.duration):
            if segment.current_density > 0 and not self._has_lithium_to_strip():
                return "fully stripped"
            dt = self.step_length(segment, t_end - self.time, refine_end)
            row = self.macro_step(segment, dt, final=dt >= t_end - self.time,
                                  segment_left=t_end - self.time if refine_end else None)
            if on_step is not None:
                on_step(row)
            if segment.cutoff_potential is not None and row[POTENTIAL] > segment.cutoff_potential:
                return "cutoff"
        return "duration"

    def snapshot_fields(self) -> dict:
        phase = self.state.phase
        out = {"phase": phase, "dead_lithium": (phase == LITHIUM) & ~self.state.connected,
               "packets": self.state.occupancy,
               "region": self.region}
        out["concentration"] = self.concentration
        if self.solution is not None:
            out["phi_l"] = self.solution.phi_l
        return out

    def run(self, segments: Sequence[Segment], *, label: str = "run", outdir: str | Path | None = None,
            snapshots: int | None = None, progress=None, checkpoint_dir: str | Path | None = None,
            checkpoint_every_steps: int | None = None, resume: bool = False) -> RunResult:
        """Run a protocol. ``progress`` is a callable(row) (e.g. a tqdm updater) or None.
        Writes VTI snapshots and a PVD index into ``outdir`` when given.
        ``checkpoint_dir``: checkpoint every ``checkpoint_every_steps`` macro-steps and at the end
        (kmc/checkpoint.py); ``resume``: continue bit-identically from the newest one there."""
        total_time = sum(s.duration for s in segments)
        n_snap = self.config.snapshots if snapshots is None else snapshots
        snap_times = [total_time * (i + 1) / n_snap for i in range(n_snap)] if n_snap else []
        snaps: list[tuple[float, str]] = []
        ckpt = pos = None
        if checkpoint_dir is not None:
            from .checkpoint import RunCheckpointer

            ckpt = RunCheckpointer(self, checkpoint_dir, label=label, every_steps=checkpoint_every_steps,
                                   segments=segments)
            pos = ckpt.resume() if resume else None
        if pos is not None:  # snapshots already written before the interruption
            snaps += [tuple(s) for s in pos["extra"]["snaps"]]
            del snap_times[:pos["extra"]["snapshots_taken"]]

        def ckpt_extra():  # the snapshot bookkeeping a resumed run must continue from
            return {"snaps": snaps, "snapshots_taken": n_snap - len(snap_times) if n_snap else 0}

        def maybe_snapshot(force=False):
            while snap_times and (self.time >= snap_times[0] * (1 - 1e-9) or force):
                snap_times.pop(0)
                if outdir is not None:
                    name = f"{label}_{len(snaps):04d}.vti"
                    write_vti(Path(outdir) / name, self.snapshot_fields(), self.h)
                    snaps.append((self.time, name))
                if force:
                    break

        if outdir is not None and pos is None:
            name = f"{label}_start.vti"
            write_vti(Path(outdir) / name, self.snapshot_fields(), self.h)
            snaps.append((0.0, name))
        ends = [] if pos is None else list(pos["ends"])
        plating = [i for i, seg in enumerate(segments) if seg.current_density < 0]
        last_plating = plating[-1] if plating else -1
        for i, seg in enumerate(segments):
            if pos is not None and i < pos["segment_index"]:
                continue
            resumed = pos is not None and i == pos["segment_index"] and pos["segment_t_end"] is not None
            t_end = pos["segment_t_end"] if resumed else self.time + seg.duration
            why = self.run_segment(seg, on_step=lambda row: (progress(row) if progress else None,
                                                            maybe_snapshot(),
                                                            ckpt and ckpt.after_step(i, seg, t_end, row, ends,
                                                                                     ckpt_extra())),
                                   t_end=t_end, refine_end=i == last_plating or seg.current_density > 0)
            ends.append(why)
        if snap_times:
            maybe_snapshot(force=True)
        if ckpt is not None:  # a finished run resumes to its result without recomputing
            ckpt.save(len(segments), None, ends, ckpt_extra())
        if outdir is not None:
            write_pvd(Path(outdir) / f"{label}.pvd", snaps)
        final = self.rows[-1]
        summary = {k: final[k] for k in final if k not in (STEP,)}
        summary["Segments ended by"] = ";".join(ends)
        summary["Charge error [%]"] = self.charge_error_percent()
        summary["Compliance-limited steps [-]"] = self.compliance_steps
        summary["Charge-capped steps [-]"] = self.limited_steps
        return RunResult(label=label, rows=self.rows, host=self.host, final_phase=self.state.phase.copy(),
                         connected=self.state.connected.copy(), summary=summary, timing=dict(self.timing),
                         snapshots=snaps)

    def charge_error_percent(self) -> float:
        """|KMC charge - applied charge| relative to the applied charge [%]."""
        if self.applied_charge == 0:
            return 0.0
        return 100.0 * abs(self.kmc_charge - self.applied_charge) / abs(self.applied_charge)
