"""The coupled plating simulation: the macro-step loop (docs/model.md, "Coupling: one
macro-step").

Each macro-step: relabel the conductor network (dead lithium), solve the continuum fields
under galvanostatic control (or, in a potentiostatic hold, at the held cell potential),
advance the KMC with those fields frozen, advance the salt balance and the separator column,
and book the charge the KMC realised with the galvanostat, which aims the next step at what
the run still owes; then record observables.
"""
from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from continuum.coarse_grid import make_potential_solver
from continuum.constants import ELECTROLYTE, LITHIUM
from continuum.grid import face_dilate

from ..engine import KMCEngine
from ..engine.lattice import LatticeState
from ..hosts import Host
from . import columns as col
from .checkpoint import RunCheckpointer, restore_checkpoint
from .config import SimulationConfig
from .galvanostat import Galvanostat
from .io import streamed_series, write_pvd, write_vti
from .observables import (REGION_NAMES, DeadLithiumLedger, cycle_balance, cycle_summary, deposit_observables,
                          region_map, time_weighted_mean)
from .salt import SaltBalance
from .streams import root_sequence, simulation_streams
from .threads import case_threads
from .units import MA_PER_CM2, MAH_PER_CM2
from .waveforms import Segment, expected_duration

# The end refinement of the step length acts in a segment's last this many regular steps
# (the last step's reduction cap and the charge-terminated end bound the error, not it).
END_REFINEMENT_STEPS = 1
# A step that would leave less than this fraction of itself before the segment's end takes the
# rest too (no sliver step).
SLIVER_FRACTION = 0.25
# A stripping step asks for at most this fraction of the live lithium (docs/model.md, "Step length").
STRIP_STEP_LIVE_FRACTION = 0.25
# A hold's current changes fastest at its start (the salt near the surfaces depletes): its steps
# grow geometrically, each at most this fraction of the time since the hold began, the first one
# the salt's diffusion time across a voxel (docs/model.md, "Potentiostatic holds").
HOLD_STEP_GROWTH = 0.5
# Solves per hold step at most: the separator's drop (phi_top) depends on the current the held
# potential delivers, iterated to agreement; a small series resistance, so 2-3 solves.
HOLD_MAX_SOLVES = 12
# A hold's stage boundary (hold_summary): its field current has fallen to this fraction of the
# initial one, i.e. transport has taken a tenth of the kinetic current.
HOLD_STAGE_FRACTION = 0.9
# hold_summary's late current: the mean over this last fraction of the hold
HOLD_LATE_FRACTION = 0.25

# Old names of the time-series columns (scripts import them from here).
TIME, STEP, CURRENT, POTENTIAL = col.TIME, col.STEP, col.CURRENT, col.POTENTIAL
OVERPOTENTIAL, APPLIED_CAP, PLATED_CAP, STRIPPED_CAP = col.OVERPOTENTIAL, col.APPLIED_CAP, col.PLATED_CAP, col.STRIPPED_CAP
C_TOP, C_NEAR = col.C_TOP, col.C_NEAR


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
    segments: list = field(default_factory=list)  # one record per protocol segment (segments.csv)


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
        ss = seed_sequence if seed_sequence is not None else root_sequence(config.seed)
        lattice_ss, engine_ss = simulation_streams(ss)
        c0 = self.params.electrolyte.concentration
        k = config.kmc
        explicit = k.transport == "explicit"
        self.state = LatticeState.from_host(host, concentration=c0 if explicit else 0.0, seed=lattice_ss,
                                            molar_volume=self.params.lithium_molar_volume)
        self.engine = KMCEngine(self.state, self.params, transport=k.transport, leaps=k.leaps,
                                occupancy_cap=k.occupancy_cap, seed=engine_ss, face_counts=True,
                                interface_energy=k.interface_energy_J_m2, surface_diffusion=k.surface_diffusion)
        self.region = region_map(host.phase)
        self.dead_ledger = DeadLithiumLedger(self.state.phase, self.state.connected)
        self.salt = SaltBalance(host.phase, self.h, self.params, config.separator, config.continuum)
        self.packet_charge = self.params.packet_charge(self.h)
        self.galvanostat = Galvanostat(self.footprint, self.packet_charge,
                                       self.params.kinetics.exchange_current_density, self.h,
                                       config.continuum.compliance_potential_V)
        self.time = 0.0
        self.steps = 0
        self.reductions = 0
        self.oxidations = 0
        self.region_reductions = np.zeros(8, np.int64)
        self.rows: list[dict] = []
        self.segment_log: list[dict] = []  # one record per finished segment (segments.csv)
        self._segment_start = None  # (time, applied, realised charge, dead formed, reconnected) at its start
        self._written_off = 0.0  # C written off when the current strip ran out (Galvanostat.end_exhausted_strip)
        self.solution = None
        self._other_solution = None  # the last solution of the other kind (at rest / driven)
        # (phase, eta_nuc, activity, the potential solver built for them): _geometry_solver
        self._kept_solver = None
        self.solvers_built = 0  # potential solvers whose geometry was built
        self.timing = {"continuum [s]": 0.0, "kmc [s]": 0.0, "observables [s]": 0.0}
        self._record(Segment(0.0, 0.0, "start"), None)

    # -- views -------------------------------------------------------------------------------
    @property
    def concentration(self) -> np.ndarray:
        """Mean-field salt concentration [mol/m^3] on the voxel grid."""
        return self.salt.concentration

    @property
    def separator(self):
        return self.salt.separator

    @property
    def applied_charge(self) -> float:
        return self.galvanostat.applied_charge

    @property
    def kmc_charge(self) -> float:
        return self.galvanostat.realised_charge

    def capacity(self, charge: float) -> float:
        """Charge [C] over the footprint as capacity [mAh/cm^2]."""
        return charge / self.footprint / MAH_PER_CM2

    @property
    def plated_capacity(self) -> float:
        """Net plated capacity [mAh/cm^2] (reductions minus oxidations)."""
        return self.capacity((self.reductions - self.oxidations) * self.packet_charge)

    def charge_error_percent(self) -> float:
        """|KMC charge - applied charge| relative to the applied charge [%]."""
        return self.galvanostat.charge_error_percent()

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
    def _potential_solver(self, phase, at_rest: bool = False):
        """(the potential solver of this geometry, the warm start: the last solution of the same
        kind, at rest (open circuit) or driven, else the last one).  A pulse alternates the two:
        the last off-time's field is much nearer the next off-time's than the on-time's field
        is (5 Newton steps at open circuit fell to 2)."""
        solver = self._geometry_solver(phase)
        # Warm start from the last solution even where the deposit changed the geometry (new
        # electrolyte voxels start at phi_top): its potentials are still near the answer.
        prev = self.solution
        other = self._other_solution
        if prev is not None and _at_rest(prev) != at_rest and other is not None and _at_rest(other) == at_rest:
            prev = other
        return solver, prev if (prev is not None and prev.phi_l.shape == phase.shape) else None

    def _geometry_solver(self, phase):
        """A potential solver for ``phase`` (and the lattice's eta_nuc, activity) in a new
        solver's state: the last one renewed while the geometry is unchanged (a step that filled
        or emptied no voxel: 1-4 of 22-46 in the quick pulse_vs_dc cases, none at host scale), so
        the geometry is not built again.  Nothing of one step's solves carries into the next
        (PotentialSolver.renewed): a resumed run, which starts without a kept solver, repeats the
        uninterrupted run bit for bit.  What is kept between steps is the geometry alone (a
        renewed copy): the used solver's hierarchy and vectors go with the step."""
        st = self.state
        kept = self._kept_solver
        if (kept is not None and np.array_equal(kept[0], phase) and np.array_equal(kept[1], st.eta_nuc)
                and np.array_equal(kept[2], st.activity)):
            return kept[3].renewed()
        scratch = kept[3].scratch() if kept is not None else None
        self._kept_solver = kept = None  # freed first: the new one's arrays reuse its memory
        cs = self.config.continuum
        # the lattice's connectivity where it is that of ``phase`` (macro_step relabels it first)
        connected = st.connected if np.array_equal(phase, st.phase) else None
        solver = make_potential_solver(phase, self.h, self.params, st.eta_nuc, st.activity,
                                       coarsen=cs.coarsen, connected=connected, linear_solver=cs.linear_solver,
                                       rtol=cs.charge_tolerance, eta_tolerance=cs.overpotential_tolerance_mV * 1e-3)
        solver.use_scratch(scratch)  # the last solver's CG vectors: fresh ones cost page faults
        self.solvers_built += 1
        self._kept_solver = (phase.copy(), st.eta_nuc.copy(), st.activity.copy(), solver.renewed())
        return solver

    def _solve_fields(self, phase, target: float, phi_top: float):
        """Potential fields for a step whose galvanostat target is ``target`` [A]:
        (phi_l, phi_s, solution or None)."""
        if target >= 0 and not self._has_lithium_to_strip():
            return (*self._floating_fields(phi_top), None)
        solver, initial = self._potential_solver(phase, at_rest=target == 0)
        c_solve, c_top = self.salt.field_for_potential(), self.salt.c_top
        try:
            sol = solver.solve(c_solve, current=target, phi_top=phi_top, c_top=c_top, initial=initial)
        except ValueError:
            if target == 0:  # open circuit with nothing that can react: nothing does
                return (*self._floating_fields(phi_top), None)
            if target > 0:
                raise
            # Past the transport limit (Sand's time) no potential delivers the current: the
            # galvanostat sits at its compliance voltage and passes what it can.
            sol = solver.solve(c_solve, cell_potential=self.galvanostat.compliance_potential,
                               phi_top=phi_top, c_top=c_top)
            self.galvanostat.compliance_steps += 1
        return sol.phi_l, sol.phi_s, sol

    def _held_fields(self, phase, held: float):
        """Fields of a potentiostatic step at the held cell potential ``held`` [V]: (phi_l,
        phi_s, solution, phi_top).  The separator's drop phi_top depends on the current the held
        potential delivers; the current density is iterated (secant) until the drop it implies
        moves by at most the solve's overpotential tolerance."""
        solver, initial = self._potential_solver(phase)
        c_solve, c_top = self.salt.field_for_potential(), self.salt.c_top
        tol = self.config.continuum.overpotential_tolerance_mV * 1e-3
        j = self.solution.total_current / self.footprint if self.solution is not None else 0.0
        prev = None  # (j, g) of the last iterate, g = the current density it delivered - j
        for _ in range(HOLD_MAX_SOLVES):
            phi_top = self.salt.ohmic_drop(j)
            sol = solver.solve(c_solve, cell_potential=held, phi_top=phi_top, c_top=c_top, initial=initial)
            delivered = sol.total_current / self.footprint
            if abs(self.salt.ohmic_drop(delivered) - phi_top) <= tol:
                break
            g = delivered - j
            j_next = delivered if prev is None or g == prev[1] else j - g * (j - prev[0]) / (g - prev[1])
            prev, j, initial = (j, g), j_next, sol
        else:
            implied = self.salt.ohmic_drop(delivered)
            raise RuntimeError(f"hold at {held * 1e3:g} mV: the separator drop did not settle in {HOLD_MAX_SOLVES} "
                               f"solves (last {phi_top * 1e3:.4f} mV against {implied * 1e3:.4f} mV)")
        return sol.phi_l, sol.phi_s, sol, phi_top

    def macro_step(self, segment: Segment, dt: float, final: bool = False, segment_left: float | None = None,
                   book: bool = True) -> dict:
        """Advance the coupled system by ``dt`` [s] under ``segment``'s applied current (or held
        potential).  ``final``: the segment's last step; ``segment_left`` [s]: time to the end of
        the run's last plating segment (see :meth:`Galvanostat.reduction_cap`); ``book`` False: a
        step past a capacity-terminated segment's nominal end that only pays the charge still owed."""
        t0 = _time.perf_counter()
        self.state.relabel()
        phase_now = self.state.phase.copy()
        gs = self.galvanostat
        if segment.potentiostatic:  # the current is the output: nothing to aim at, nothing to cap
            phi_l, phi_s, sol, phi_top = self._held_fields(phase_now, segment.held_potential)
            t1 = _time.perf_counter()
            cap = ox_cap = None
        else:
            applied = gs.applied_current(segment.current_density)  # A, SI sign
            target = gs.target_current(applied, dt, book)
            # The separator carries the external (applied) current; the KMC's packet-by-packet
            # realisation of it is noise at the scale of a short macro-step.
            phi_top = self.salt.ohmic_drop(segment.current_density)
            phi_l, phi_s, sol = self._solve_fields(phase_now, target, phi_top)
            t1 = _time.perf_counter()
            cap = gs.reduction_cap(applied, target, dt, final=final, segment_left=segment_left,
                                   active_faces=int(sol.faces.n_faces) if sol is not None else 0, book=book)
            ox_cap = gs.oxidation_cap(applied, target, dt, final=final, book=book)
        implicit = self.config.kmc.transport == "implicit"
        res = self.engine.advance(dt, phi_l=phi_l, phi_s=phi_s, phi_top=phi_top, c_top=self.salt.c_top,
                                  concentration=self.salt.field() if implicit else None, region=self.region,
                                  max_reductions=cap, max_oxidations=ox_cap)
        t2 = _time.perf_counter()
        red, ox = int(res.counts["reductions"]), int(res.counts["oxidations"])
        realised = (ox - red) * self.packet_charge  # C, SI sign
        # The true connectivity after the call (the in-call check leaves pieces beyond its budget
        # to a relabel, and only a relabel sees dead lithium that a new deposit reconnected), and
        # the lithium that turned dead or live again in this step.
        self.state.relabel()
        self.dead_ledger.update(self.state.phase, self.state.connected)
        if segment.potentiostatic:
            gs.record_held_step(realised)
            # the separator carries the hold's field current, as it carries the applied one under
            # a galvanostat: the KMC's realisation of it is packet noise on a short step
            external = sol.total_current / self.footprint
        else:
            stopped = res.status in ("max_reductions", "max_oxidations")
            gs.record_step(applied, dt, realised, capped=stopped and not final, book=book,
                           target=None if stopped else target)
            external = segment.current_density
        self.reductions += red
        self.oxidations += ox
        self.region_reductions += np.asarray(res.region_reductions, np.int64)[:8]
        self.salt.advance(dt, res, sol, realised / dt, phase_now, self.state.phase, external)
        self.time += dt
        self.steps += 1
        if sol is not None and self.solution is not None and _at_rest(sol) != _at_rest(self.solution):
            self._other_solution = self.solution
        self.solution = sol
        t3 = _time.perf_counter()
        self.timing["continuum [s]"] += (t1 - t0) + (t3 - t2)
        self.timing["kmc [s]"] += t2 - t1
        return self._record(segment, sol, passed=realised / dt)

    # -- observables ----------------------------------------------------------------------
    def _near_deposit_concentration(self) -> float:
        """Mean concentration in electrolyte voxels that face a connected conductor."""
        if self.config.kmc.transport == "implicit":
            c = self.salt.concentration
        else:
            s = self.config.kmc.concentration_smoothing_voxels
            c = self.state.packet_concentration(self.params.lithium_molar_volume, smoothing_voxels=s)
        sel = (self.state.phase == ELECTROLYTE) & face_dilate(self.state.connected)
        return float(c[sel].mean()) if sel.any() else float("nan")

    @staticmethod
    def _plating_overpotential_mV(sol) -> float:
        """Mean overpotential of the plating faces, weighted by their current [mV]."""
        if sol is None or not sol.faces.n_faces:
            return float("nan")
        ok = np.isfinite(sol.face_overpotential) & (sol.face_current_density < 0)
        if not ok.any():
            return float("nan")
        w = -sol.face_current_density[ok]
        return float(np.sum(sol.face_overpotential[ok] * w) / w.sum()) * 1e3

    def _record(self, segment: Segment, sol, passed: float = 0.0) -> dict:
        """One time-series row after a step; ``passed``: the net current [A, SI sign] the model
        passed over it (a hold's current column)."""
        t0 = _time.perf_counter()
        obs = deposit_observables(self.state.phase, self.host.phase, self.h, self.params.lithium_molar_volume,
                                  connected=self.state.connected)
        total_red = max(int(self.region_reductions.sum()), 1)
        row = {
            col.TIME: self.time,
            col.STEP: segment.label,
            col.CURRENT: self._current_mA_cm2(passed) if segment.potentiostatic else _applied_mA_cm2(segment),
            col.FIELD_CURRENT: self._current_mA_cm2(sol.total_current) if sol is not None else 0.0,
            col.POTENTIAL: float(sol.cell_potential) if sol is not None else float("nan"),
            col.OVERPOTENTIAL: self._plating_overpotential_mV(sol),
            col.APPLIED_CAP: self.capacity(-self.galvanostat.applied_charge),
            col.PLATED_CAP: self.plated_capacity,
            col.STRIPPED_CAP: self.capacity(self.oxidations * self.packet_charge),
            col.C_TOP: self.salt.c_top,
            col.C_NEAR: self._near_deposit_concentration(),
            col.PACKETS: int(self.state.n_packets),
            **obs.as_row(),
            col.DEAD_FORMED: self.capacity(self.dead_ledger.formed * self.packet_charge),
            col.DEAD_RECONNECTED: self.capacity(self.dead_ledger.reconnected * self.packet_charge),
        }
        for i, name in enumerate(REGION_NAMES):
            row[col.reductions_share(name)] = float(self.region_reductions[i] / total_red)
        self.rows.append(row)
        self.timing["observables [s]"] += _time.perf_counter() - t0
        return row

    def _current_mA_cm2(self, current: float) -> float:
        """A current [A, SI sign] as the output columns write it [mA/cm^2, > 0 plating]."""
        return -current / self.footprint / MA_PER_CM2 if current else 0.0

    def _lithium_at_top(self) -> bool:
        """Lithium in the domain's top layer (the separator boundary, where c and phi_l are held)."""
        return bool((self.state.phase[:, :, -1] == LITHIUM).any())

    # -- the loop -------------------------------------------------------------------------
    def step_length(self, segment: Segment, remaining: float, refine_end: bool = False) -> float:
        """dt_M: bounded by the config, by the number of interface sites a step may change,
        and by the segment edge (a macro-step never spans a waveform edge)."""
        k = self.config.kmc
        dt = min(k.max_macro_step_s, remaining)
        if segment.potentiostatic:
            dt = self._hold_step_bound(dt)
        j = abs(segment.current_density)
        if j > 0:
            n_faces = max(int(self.solution.faces.n_faces) if self.solution is not None else 0,
                          self.state.phase.shape[0] * self.state.phase.shape[1])
            dt = min(dt, k.interface_change_fraction * n_faces * self.packet_charge / (j * self.footprint))
            if refine_end:
                # The charge error left at the end is the Poisson noise of the last steps (earlier
                # steps are corrected by later ones): shrink steps to sqrt(packets left), but only
                # in the segment's last regular step (from the first step it made the step
                # count grow as 2 sqrt(packets)).
                per_packet = self.packet_charge / (j * self.footprint)  # s per packet
                left = remaining / per_packet
                last = END_REFINEMENT_STEPS
                if not (segment.until_charge or segment.until_stripped):
                    # ends on the clock, so nothing pays a shortfall after it: the step that will
                    # take the sliver after it (below) is its last step too
                    last += SLIVER_FRACTION
                if left < last * dt / per_packet:
                    dt = min(dt, max(3.0, math.sqrt(left)) * per_packet)
            if segment.current_density > 0:
                # A strip never asks a step for more than a quarter of the live lithium (at least
                # one packet): the fields are frozen over a step, and a step that dissolves much
                # of what is left falls behind; as the electrode runs out the steps shrink with it.
                live = int(np.count_nonzero((self.state.phase == LITHIUM) & self.state.connected))
                dt = min(dt, max(1.0, STRIP_STEP_LIVE_FRACTION * live) * self.packet_charge / (j * self.footprint))
        # avoid a sliver step at the end of a segment
        if remaining - dt < SLIVER_FRACTION * dt:
            dt = remaining
        return dt

    def _hold_step_bound(self, dt: float) -> float:
        """A hold's steps: at most HOLD_STEP_GROWTH times the time since it began (the first the
        salt's diffusion time across a voxel), and at most interface_change_fraction of the
        interface faces reduced at the current of the last solve."""
        k = self.config.kmc
        elapsed = self.time - self._segment_start[0] if self._segment_start is not None else 0.0
        first = self.h**2 / self.params.electrolyte.salt_diffusivity
        dt = min(dt, max(first, HOLD_STEP_GROWTH * elapsed))
        if self.solution is not None and self.solution.total_current:
            n_faces = max(int(self.solution.faces.n_faces), self.state.phase.shape[0] * self.state.phase.shape[1])
            dt = min(dt, k.interface_change_fraction * n_faces * self.packet_charge / abs(self.solution.total_current))
        return dt

    def run_segment(self, segment: Segment, on_step: Callable[[dict], None] | None = None,
                    t_end: float | None = None, refine_end: bool = False) -> str:
        """Run one segment to its end or its stop condition; returns why it ended.
        ``refine_end``: shorten the steps toward the segment's end, so the charge it passes
        ends within about a packet of the applied charge (used for the last plating step).
        ``t_end``: the segment's end time when resuming it from a checkpoint."""
        if t_end is None or self._segment_start is None:
            self._segment_start = self._charge_marks()
        self._written_off = 0.0
        t_end = self.time + segment.duration if t_end is None else t_end
        why = self._run_to(segment, t_end, on_step, refine_end)
        if why == "duration" and segment.until_charge and segment.current_density != 0:
            why = self._pay_owed_charge(segment, on_step)
        self._log_segment(segment, why)
        return why

    def _run_to(self, segment: Segment, t_end: float, on_step, refine_end: bool) -> str:
        while t_end - self.time > 1e-9 * max(1.0, segment.duration):
            if segment.current_density > 0 and not self._has_lithium_to_strip():
                return self._end_exhausted(segment)
            if segment.potentiostatic and self._lithium_at_top():
                # a held potential bounds no charge (no preflight fill check can): its deposit
                # met the boundary where c and phi_l are held, past which the model does not hold
                return "top reached"
            dt = self.step_length(segment, t_end - self.time, refine_end)
            row = self.macro_step(segment, dt, final=dt >= t_end - self.time,
                                  segment_left=t_end - self.time if refine_end else None)
            if on_step is not None:
                on_step(row)
            if segment.cutoff_potential is not None and row[col.POTENTIAL] > segment.cutoff_potential:
                return "cutoff"
        return "duration"

    def _end_exhausted(self, segment: Segment) -> str:
        """End a stripping segment with no connected lithium left at the electrolyte: the
        charge it still owed is written off (:meth:`Galvanostat.end_exhausted_strip`).  Returns
        why it ended: its 'fully stripped' condition; else its cutoff (with nothing to oxidise
        the electrode's potential under anodic current has no bound, so it passes any cutoff);
        else 'lithium exhausted' (the segment asked for more than the electrode could give)."""
        if self._segment_start is not None:
            self._written_off += self.galvanostat.end_exhausted_strip(*self._segment_start[1:3])
        if segment.until_stripped:
            return "fully stripped"
        if segment.cutoff_potential is not None:
            return "cutoff"
        return "lithium exhausted"

    def _pay_owed_charge(self, segment: Segment, on_step) -> str:
        """A capacity-terminated segment (plating or stripping) ends on the charge the KMC
        passed, not on the clock: if the KMC is behind at the nominal end (packets outran by
        the fields, a slow host), the current stays on, without adding applied charge, until it
        has caught up to half a packet; at most half the segment's duration or twice the debt's
        time longer.  A strip that runs out of lithium meanwhile ends as :meth:`_exhausted_reason`."""
        gs = self.galvanostat
        applied = gs.applied_current(segment.current_density)
        anodic = applied > 0
        # time enough to pay the debt twice over at the applied current (a short last pulse
        # can inherit the debt of the pulses before it), and at least half the segment
        limit = self.time + max(0.5 * segment.duration, 2.0 * gs.owed_charge(applied, 0.0) / applied)
        while gs.packets_owed(gs.owed_charge(applied, 0.0), anodic) > 0:
            if anodic and not self._has_lithium_to_strip():
                return self._end_exhausted(segment)
            if self.time >= limit:
                return "charge shortfall"
            dt = min(self.config.kmc.max_macro_step_s, max(1e-6, gs.owed_charge(applied, 0.0) / applied),
                     limit - self.time)
            row = self.macro_step(segment, dt, final=True, book=False)
            if on_step is not None:
                on_step(row)
        return "charge"

    def _charge_marks(self) -> tuple[float, ...]:
        led = self.dead_ledger
        return (self.time, self.galvanostat.applied_charge, self.galvanostat.realised_charge,
                float(led.formed), float(led.reconnected))

    def _log_segment(self, segment: Segment, why: str) -> None:
        """One row of segments.csv: what the segment applied and what the KMC passed, the dead
        lithium it formed and reconnected, and the lithium (all, dead) at its end."""
        t0, applied0, realised0, *dead0 = self._segment_start
        formed0, reconnected0 = dead0 if dead0 else (self.dead_ledger.formed, self.dead_ledger.reconnected)
        applied = self.galvanostat.applied_charge - applied0
        passed = self.galvanostat.realised_charge - realised0
        q = self.packet_charge
        last = self.rows[-1]
        duration = self.time - t0
        self.segment_log.append({
            col.SEGMENT: len(self.segment_log), col.STEP: segment.label,
            # a hold: the mean current it passed
            col.CURRENT: (self._current_mA_cm2(passed / duration) if duration > 0 else 0.0) if segment.potentiostatic
            else _applied_mA_cm2(segment),
            col.SEGMENT_START: t0, col.SEGMENT_DURATION: duration,
            col.APPLIED_CAP: self.capacity(-applied), col.PASSED_CAP: self.capacity(-passed),
            col.CHARGE_ERROR: 100.0 * abs(passed - applied) / abs(applied) if applied else float("nan"),
            col.ENDED_BY: why,
            col.DEAD_FORMED: self.capacity((self.dead_ledger.formed - formed0) * q),
            col.DEAD_RECONNECTED: self.capacity((self.dead_ledger.reconnected - reconnected0) * q),
            col.LITHIUM: last[col.LITHIUM], col.DEAD_LITHIUM: last[col.DEAD_LITHIUM],
            col.WRITTEN_OFF: self.capacity(self._written_off)})
        self._segment_start = None

    def snapshot_fields(self) -> dict:
        phase = self.state.phase
        out = {"phase": phase, "dead_lithium": (phase == LITHIUM) & ~self.state.connected,
               "packets": self.state.occupancy, "region": self.region, "concentration": self.salt.concentration}
        if self.solution is not None:
            out["phi_l"] = self.solution.phi_l
        return out

    def run(self, segments: Sequence[Segment], *, label: str = "run", outdir: str | Path | None = None,
            snapshots: int | None = None, progress=None, checkpoint_dir: str | Path | None = None,
            checkpoint_every_steps: int | None = None, resume: bool = False,
            series: str | Path | None = None) -> RunResult:
        """Run a protocol. ``progress`` is a callable(row) (e.g. a tqdm updater) or None.
        Writes VTI snapshots and their PVD index into ``outdir`` as they are taken.
        ``series``: a CSV path the time series is appended to row by row (``.partial.csv`` until
        the run ends).  ``checkpoint_dir``: checkpoint every ``checkpoint_every_steps``
        macro-steps and at the end (kmc/coupling/checkpoint.py); ``resume``: continue
        bit-identically from the newest one there."""
        # BLAS threads on these small dense pieces only contend; the multigrid's kernels take the
        # case's Numba threads (kmc/coupling/threads.py)
        with threadpool_limits(limits=1), case_threads():
            return self._run(segments, label, outdir, snapshots, progress, checkpoint_dir, checkpoint_every_steps,
                             resume, series)

    def _run(self, segments, label, outdir, snapshots, progress, checkpoint_dir, checkpoint_every_steps,
             resume, series) -> RunResult:
        plating = [i for i, seg in enumerate(segments) if seg.current_density < 0]
        last_plating = plating[-1] if plating else -1

        def step_segment(i, seg, t_end, resumed, on_step):
            return self.run_segment(seg, on_step=on_step, t_end=t_end,
                                    refine_end=i == last_plating or seg.current_density > 0)

        return walk_protocol(self, segments, step_segment, label=label, outdir=outdir, snapshots=snapshots,
                             progress=progress, checkpoint_dir=checkpoint_dir,
                             checkpoint_every_steps=checkpoint_every_steps, resume=resume, series=series)

    def _result(self, label: str, ends: list[str], snapshots: list) -> RunResult:
        final = self.rows[-1]
        summary = {k: final[k] for k in final if k not in (col.STEP,)}
        summary[col.MEAN_POTENTIAL] = time_weighted_mean(self.rows, col.POTENTIAL, under_current=True)
        summary[col.SEGMENTS_ENDED_BY] = ";".join(ends)
        summary[col.CHARGE_ERROR] = self.charge_error_percent()
        summary[col.COMPLIANCE_STEPS] = self.galvanostat.compliance_steps
        summary[col.CAPPED_STEPS] = self.galvanostat.limited_steps
        summary[col.EXHAUSTED_STRIPS] = self.galvanostat.exhausted_strips
        summary[col.WRITTEN_OFF] = self.capacity(self.galvanostat.written_off_charge)
        summary.update(cycle_summary(cycle_balance(self.segment_log)))  # runs that strip: CE per cycle
        summary.update(hold_summary(self.rows, self.segment_log))  # runs that hold a potential
        return RunResult(label=label, rows=self.rows, host=self.host, final_phase=self.state.phase.copy(),
                         connected=self.state.connected.copy(), summary=summary, timing=dict(self.timing),
                         snapshots=snapshots, segments=list(self.segment_log))

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything the macro-step loop reads that the constructor does not rebuild from
        (config, host): a resumed run continues bit-identically.  The last potential solution
        is part of it (the next solve warm-starts from it and step_length reads its faces)."""
        return {"lattice": self.state.state_dict(), "engine": self.engine.state_dict(),
                "galvanostat": self.galvanostat.state_dict(), "salt": self.salt.state_dict(),
                "clock": {"time": self.time, "steps": self.steps, "reductions": self.reductions,
                          "oxidations": self.oxidations, "region_reductions": self.region_reductions.copy(),
                          "dead_formed": self.dead_ledger.formed, "dead_reconnected": self.dead_ledger.reconnected},
                "solution": self.solution, "other_solution": self._other_solution, "rows": self.rows, "timing": dict(self.timing),
                "segments": {"log": self.segment_log, "start": self._segment_start}}

    def load_state_dict(self, d: dict) -> None:
        self.state.load_state_dict(d["lattice"])
        self.engine.load_state_dict(d["engine"])
        self.galvanostat.load_state_dict(d["galvanostat"])
        self.salt.load_state_dict(d["salt"])
        clock = d["clock"]
        self.time = float(clock["time"])
        self.steps = int(clock["steps"])
        self.reductions = int(clock["reductions"])
        self.oxidations = int(clock["oxidations"])
        self.region_reductions = np.array(clock["region_reductions"], dtype=np.int64)
        self.dead_ledger = DeadLithiumLedger(self.state.phase, self.state.connected)
        self.dead_ledger.formed = int(clock.get("dead_formed", 0))
        self.dead_ledger.reconnected = int(clock.get("dead_reconnected", 0))
        self.solution = d["solution"]
        self._other_solution = d.get("other_solution")
        self.rows = list(d["rows"])
        self.timing = dict(d["timing"])
        self.segment_log = list(d["segments"]["log"])
        start = d["segments"]["start"]
        self._segment_start = None if start is None else tuple(float(v) for v in start)


def _at_rest(solution) -> bool:
    """A galvanostatic solve at zero current (open circuit)."""
    return solution.applied_current is not None and solution.applied_current == 0


def hold_summary(rows: list[dict], segments: list[dict]) -> dict:
    """Chronoamperometry of a run's first potentiostatic hold (empty without one): its initial
    current (the field current of its first step: the kinetic current of the state the hold
    starts from, which the KMC passes in expectation), its late current (the charge the KMC
    passed over the hold's last HOLD_LATE_FRACTION, over that time) and its stage boundary (the
    time from its start at which the field current has fallen to HOLD_STAGE_FRACTION of the
    initial one in size, interpolated linearly between the two steps that bracket it; NaN if it never
    does).  A row's field current is that of the state at the start of the step it ends."""
    seg = next((s for s in segments if s[col.STEP] == "hold"), None)
    if seg is None or seg[col.SEGMENT_DURATION] <= 0:
        return {}
    t0, t1 = seg[col.SEGMENT_START], seg[col.SEGMENT_START] + seg[col.SEGMENT_DURATION]
    inside = [r for r in rows if t0 < r[col.TIME] <= t1]
    before = [r for r in rows if r[col.TIME] <= t0][-1]
    t = np.array([before[col.TIME]] + [r[col.TIME] for r in inside])
    field = np.array([r[col.FIELD_CURRENT] for r in inside])  # of the states at t[:-1]
    initial = field[0]
    size = np.abs(field)  # a stripping hold's current is negative here
    below = np.flatnonzero(size <= HOLD_STAGE_FRACTION * size[0]) if initial else np.zeros(0, int)
    boundary = float("nan")
    if below.size:
        k = below[0]  # k >= 1: the initial current is above the threshold
        boundary = t[k - 1] + (HOLD_STAGE_FRACTION * size[0] - size[k - 1]) / (size[k] - size[k - 1]) \
            * (t[k] - t[k - 1]) - t0
    q = np.array([before[col.PLATED_CAP]] + [r[col.PLATED_CAP] for r in inside])  # mAh/cm^2
    t_late = t1 - HOLD_LATE_FRACTION * (t1 - t0)
    late = (q[-1] - np.interp(t_late, t, q)) * 3600.0 / (t1 - t_late)  # mAh/cm^2 per s -> mA/cm^2
    return {col.HOLD_INITIAL_CURRENT: float(initial), col.HOLD_LATE_CURRENT: float(late),
            col.HOLD_STAGE_BOUNDARY: float(boundary)}


def _applied_mA_cm2(segment: Segment) -> float:
    """The segment's current density as the output columns write it [mA/cm^2, > 0 plating]."""
    return -segment.current_density / MA_PER_CM2 if segment.current_density else 0.0


def walk_protocol(run, segments, step_segment, *, label, outdir, snapshots, progress, checkpoint_dir,
                  checkpoint_every_steps, resume, series) -> RunResult:
    """The segment loop of a run (KMC or phase field): resume position, snapshots, the
    streamed time series and checkpoints around ``step_segment(i, seg, t_end, resumed,
    on_step)``, which runs one segment and returns why it ended."""
    n_snap = run.config.snapshots if snapshots is None else snapshots
    snaps = _Snapshots(run, outdir, label, n_snap, expected_duration(segments))
    ckpt = pos = None
    if checkpoint_dir is not None:
        ckpt = RunCheckpointer(run, checkpoint_dir, label=label, every_steps=checkpoint_every_steps,
                               segments=segments)
        pos = ckpt.resume() if resume else None
    if pos is not None:  # snapshots already written before the interruption
        snaps.load_state_dict(pos["extra"])
    else:
        snaps.write_start()
    ends = [] if pos is None else list(pos["ends"])
    with streamed_series(series, run.rows) as writer:
        for i, seg in enumerate(segments):
            if pos is not None and i < pos["segment_index"]:
                continue
            resumed = pos is not None and i == pos["segment_index"] and pos["segment_t_end"] is not None
            t_end = pos["segment_t_end"] if resumed else run.time + seg.duration

            def on_step(row, i=i, seg=seg, t_end=t_end):
                if writer is not None:
                    writer.append(row)
                if progress:
                    progress(row)
                snaps.maybe_take()
                if ckpt:
                    ckpt.after_step(i, seg, t_end, row, ends, snaps.state_dict())

            ends.append(step_segment(i, seg, t_end, resumed, on_step))
        snaps.finish()
        if ckpt is not None:  # a finished run resumes to its result without recomputing
            ckpt.save(len(segments), None, ends, snaps.state_dict())
    return run._result(label, ends, snaps.taken)


class _Snapshots:
    """VTI snapshots of a run evenly in time, and their ParaView index."""

    def __init__(self, sim: PlatingSimulation, outdir, label: str, n: int, total_time: float):
        self.sim, self.outdir, self.label, self.n = sim, outdir, label, n
        # the last one is the final state, whenever the run ends (a capacity-terminated
        # segment may run past its nominal time while the KMC catches up with the charge)
        self.times = [total_time * (i + 1) / n for i in range(n - 1)] if n else []
        self.taken: list[tuple[float, str]] = []
        self.final_taken = False

    def _write(self, name: str) -> None:
        write_vti(Path(self.outdir) / name, self.sim.snapshot_fields(), self.sim.h)
        self.taken.append((self.sim.time, name))
        write_pvd(Path(self.outdir) / f"{self.label}.pvd", self.taken)  # the index follows every snapshot

    def write_start(self) -> None:
        if self.outdir is not None:
            self._write(f"{self.label}_start.vti")

    def maybe_take(self) -> None:
        while self.times and self.sim.time >= self.times[0] * (1 - 1e-9):
            self.times.pop(0)
            if self.outdir is not None:
                self._write(f"{self.label}_{len(self.taken):04d}.vti")

    def finish(self) -> None:
        if self.n and not self.final_taken:
            self.times.clear()
            self.final_taken = True
            if self.outdir is not None:
                self._write(f"{self.label}_{len(self.taken):04d}.vti")

    def state_dict(self) -> dict:
        """The bookkeeping a resumed run must continue from."""
        return {"snaps": self.taken, "snapshots_taken": self.n - len(self.times) - (not self.final_taken) if self.n else 0,
                "final_taken": self.final_taken}

    def load_state_dict(self, d: dict) -> None:
        self.taken = [tuple(s) for s in d["snaps"]]
        self.final_taken = bool(d.get("final_taken", False))
        del self.times[:d["snapshots_taken"]]


def load_checkpoint(path, config: SimulationConfig, host: Host, segments: Sequence | None = None):
    """A :class:`PlatingSimulation` for ``config`` and ``host`` in the state of ``path``, and
    its position in the protocol (see :func:`kmc.coupling.checkpoint.restore_checkpoint`).
    Raises CheckpointError if the checkpoint belongs to another config, host or protocol."""
    from .checkpoint import check_config

    check_config(path, config)  # fail on a foreign config before building anything
    sim = PlatingSimulation(config, host)
    return sim, restore_checkpoint(sim, path, segments)
