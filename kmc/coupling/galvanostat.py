"""The galvanostat of a coupled run: it makes the charge a discrete model realises (whole
packets) track the integral of the applied current.  It knows nothing of the field model: any
model that reports the charge it realised per step can be driven by it (docs/model.md,
"Galvanostat").

Sign convention: currents and charges are SI with anodic (stripping) positive, so plating
is negative.  ``applied`` is the applied current [A] over the footprint.  Under a
potentiostatic hold there is nothing to track: the charge the model passes is booked as
applied (``record_held_step``).
"""
from __future__ import annotations

import math

import numpy as np

#: Largest whole-run charge error a run may end with [% of the gross applied charge].
CHARGE_TOLERANCE_PERCENT = 1.0
#: Fewest plated packets for which that tolerance can be held (half a packet is 0.5 % at 100).
MIN_PACKETS = 100
#: Weight of the steps before in the model's efficiency estimate (its memory: about 5 steps).
EFFICIENCY_MEMORY = 0.8
#: The current [x applied] the model can pass at the target's ceiling, at its efficiency:
#: the ceiling is max(2, REPAY_CURRENT / efficiency) x applied, so a debt is repaid at half
#: the applied current or faster (the ceiling stays at twice the applied current down to
#: an efficiency of 0.75).
REPAY_CURRENT = 1.5
#: Lowest efficiency the target's ceiling follows (at most 30 x the applied current).
MIN_EFFICIENCY = 0.05


class Galvanostat:
    """Charge bookkeeping and per-step control of a galvanostatic run.

    Each step aims at the applied current plus the charge still owed (``target_current``),
    never reversing the applied current nor exceeding twice it, or more where the model's
    efficiency is below 0.75 (open circuit stays open), and bounds the net reductions a
    step may realise (``reduction_cap``).  The efficiency is the charge the model passed
    over the charge the fields were set to, over the last few steps of each sign
    (``efficiency``): a lattice whose coordination makes it slower than the fields'
    Butler-Volmer would otherwise fall behind for good where twice the applied current
    makes it pass less than the applied one."""

    def __init__(self, footprint: float, packet_charge: float, exchange_current_density: float,
                 spacing: float, compliance_potential: float):
        self.footprint = float(footprint)  # m^2
        self.packet_charge = float(packet_charge)  # C per packet
        self.exchange_current_density = float(exchange_current_density)  # A/m^2
        self.spacing = float(spacing)  # m
        self.compliance_potential = float(compliance_potential)  # V, plating past the transport limit
        self.applied_charge = 0.0  # C, SI sign (negative = plating)
        self.realised_charge = 0.0  # C realised by the model, SI sign
        self.gross_applied_charge = 0.0  # C, |applied| summed over time: what errors are relative to
        self.compliance_steps = 0  # steps held at the compliance potential
        self.limited_steps = 0  # steps whose model reached the reduction (or oxidation) cap
        self.exhausted_strips = 0  # stripping segments that ran out of lithium
        self.written_off_charge = 0.0  # C the model owed when a strip ran out (end_exhausted_strip)
        # decaying sums of |charge the fields were set to| and of the charge the model passed
        # that way, per sign of the applied current (plating, stripping): `efficiency`
        self.efficiency_sums = [0.0, 0.0, 0.0, 0.0]  # plating asked, passed; stripping asked, passed

    def applied_current(self, current_density: float) -> float:
        """Applied current [A] for a current density [A/m^2] over the footprint."""
        return current_density * self.footprint

    def owed_charge(self, applied: float, dt: float, book: bool = True) -> float:
        """Charge [C] the run owes after a step of ``dt`` at ``applied`` (negative: plating owed).
        ``book`` False: a step that only pays what is owed (a capacity-terminated segment past
        its nominal end) adds no applied charge."""
        return self.applied_charge + (applied * dt if book else 0.0) - self.realised_charge

    @staticmethod
    def _efficiency_slot(applied: float) -> int:
        """Index of the (asked, passed) pair in ``efficiency_sums`` for the sign of ``applied``."""
        return 0 if applied < 0 else 2

    def efficiency(self, applied: float) -> float:
        """The charge the model passed over the charge the fields were set to, over the last
        few steps with the sign of ``applied`` (1 before any; at least MIN_EFFICIENCY)."""
        k = self._efficiency_slot(applied)
        asked, passed = self.efficiency_sums[k], self.efficiency_sums[k + 1]
        return 1.0 if asked <= 0 else max(MIN_EFFICIENCY, passed / asked)

    def target_current(self, applied: float, dt: float, book: bool = True) -> float:
        """The current [A] the field solve of the next step is set to: the applied current plus
        the charge owed over dt, at most twice the applied current, or REPAY_CURRENT times it
        over the model's efficiency where that is more (an efficiency below 0.75)."""
        owed = self.owed_charge(applied, dt, book)
        ceiling = applied * max(2.0, REPAY_CURRENT / self.efficiency(applied))
        return float(np.clip(owed / dt, min(0.0, ceiling), max(0.0, ceiling)))

    def packets_owed(self, charge: float, anodic: bool = False) -> int:
        """Whole packets still to plate (``anodic``: to strip) for an owed charge [C, SI sign:
        negative = plating owed], rounded to the nearest packet; 0 when nothing is owed."""
        return max(0, math.ceil((charge if anodic else -charge) / self.packet_charge - 0.5))

    def reduction_cap(self, applied: float, target: float, dt: float, *, final: bool,
                      segment_left: float | None, active_faces: int, book: bool = True) -> int | None:
        """Most net reductions (reductions minus oxidations) the step may realise; None: no cap.

        ``final``: the segment's last step; when plating, the model stops at the packet that
        completes the applied charge, as a galvanostat's charge counter ends a step.
        ``segment_left`` [s]: time to the end of the run's last plating segment; no step then
        plates more than the run still owes (an overshoot there could never be taken back).
        ``active_faces``: reacting faces of the field solve (0 when there was none)."""
        if final and applied < 0:
            return self.packets_owed(self.owed_charge(applied, dt, book))
        cap = None
        if target < 0:
            # A galvanostat never passes more than it is set to: stop once net reductions exceed
            # the step's target well beyond their Poisson noise. Only steps whose packets outrun
            # the mean-field fields (past the transport limit) reach it.
            n = -target * dt / self.packet_charge
            cap = math.ceil(n + 5.0 * math.sqrt(n) + 5.0)
        elif target == 0 and active_faces:
            # Open circuit (a rest, a pulse's off-time, or a plating step already paid): the net
            # charge stays within 5 sigma of the step's gross exchange (i0 on every active face,
            # a generous estimate of it).
            gross = 2.0 * self.exchange_current_density * active_faces * self.spacing**2 * dt / self.packet_charge
            cap = math.ceil(5.0 * math.sqrt(gross) + 5.0)
        if cap is not None and segment_left is not None and applied < 0:
            # also when the step is paid (target 0): its open-circuit exchange must not plate past
            # what the segment still owes, which nothing after it could take back
            cap = min(cap, self.packets_owed(self.applied_charge + applied * segment_left - self.realised_charge))
        return cap

    def oxidation_cap(self, applied: float, target: float, dt: float, *, final: bool,
                      book: bool = True) -> int | None:
        """Most net oxidations (oxidations minus reductions) a stripping step may realise; None:
        no cap.  The mirror of :meth:`reduction_cap`: in the segment's last step the model stops
        at the packet that completes the applied charge (a capacity-terminated strip then ends
        on its capacity, not past it); any other step with an anodic target at the target plus
        5 sigma of its Poisson noise."""
        if final and applied > 0:
            return self.packets_owed(self.owed_charge(applied, dt, book), anodic=True)
        if target > 0:
            n = target * dt / self.packet_charge
            return math.ceil(n + 5.0 * math.sqrt(n) + 5.0)
        return None

    def record_step(self, applied: float, dt: float, realised: float, capped: bool, book: bool = True,
                    target: float | None = None) -> None:
        """Book a step: ``realised`` [C, SI sign] the model passed; ``capped``: it stopped at a
        reduction or oxidation cap before the step's end.  ``target``: the current [A] its
        fields were set to, for the efficiency estimate (None: a step that says nothing of it,
        e.g. one stopped at a cap)."""
        if target is not None and target * applied > 0:  # a field target of the applied sign
            k = self._efficiency_slot(applied)
            sums = self.efficiency_sums
            sums[k] = EFFICIENCY_MEMORY * sums[k] + abs(target) * dt
            sums[k + 1] = EFFICIENCY_MEMORY * sums[k + 1] + (realised if applied > 0 else -realised)
        self.realised_charge += realised
        if book:
            self.applied_charge += applied * dt
            self.gross_applied_charge += abs(applied * dt)
        if capped:
            self.limited_steps += 1

    def record_held_step(self, realised: float) -> None:
        """Book a potentiostatic step (a hold): its current is the model's output, so the charge
        it passed [C, SI sign] is also the charge applied; what the run owed before the hold is
        left for the next galvanostatic segment, as across an open-circuit rest."""
        self.realised_charge += realised
        self.applied_charge += realised
        self.gross_applied_charge += abs(realised)

    def end_exhausted_strip(self, applied0: float, realised0: float) -> float:
        """A stripping segment that ran out of lithium ends with the charge it passed: with
        nothing left to oxidise the electrode potential runs away and a galvanostat stops the
        current (its cutoff), so the anodic charge the model still owed from this segment
        (applied since ``applied0`` beyond what it passed since ``realised0``, at most what the
        run owes) can never be passed.  It is written off the applied charge, not carried into
        the next plating (which would plate less to pay it).  Returns the charge written off [C,
        >= 0]; the step length keeps it within a packet or two (PlatingSimulation.step_length)."""
        seg_owed = (self.applied_charge - applied0) - (self.realised_charge - realised0)
        off = max(0.0, min(seg_owed, self.applied_charge - self.realised_charge))
        self.applied_charge -= off
        self.gross_applied_charge -= off
        self.written_off_charge += off
        self.exhausted_strips += 1
        return off

    def charge_error_percent(self) -> float:
        """|realised - applied| relative to the gross applied charge [%]: for plating alone the
        applied charge; for plate/strip cycles plated plus stripped (a net can be zero)."""
        if self.gross_applied_charge == 0:
            return 0.0
        return 100.0 * abs(self.realised_charge - self.applied_charge) / self.gross_applied_charge

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"applied_charge": self.applied_charge, "realised_charge": self.realised_charge,
                "gross_applied_charge": self.gross_applied_charge,
                "compliance_steps": self.compliance_steps, "limited_steps": self.limited_steps,
                "exhausted_strips": self.exhausted_strips, "written_off_charge": self.written_off_charge,
                "efficiency_sums": list(self.efficiency_sums)}

    def load_state_dict(self, d: dict) -> None:
        self.applied_charge = float(d["applied_charge"])
        self.realised_charge = float(d["realised_charge"])
        self.gross_applied_charge = float(d["gross_applied_charge"])
        self.compliance_steps = int(d["compliance_steps"])
        self.limited_steps = int(d["limited_steps"])
        self.exhausted_strips = int(d.get("exhausted_strips", 0))
        self.written_off_charge = float(d.get("written_off_charge", 0.0))
        self.efficiency_sums = [float(v) for v in d.get("efficiency_sums", (0.0, 0.0, 0.0, 0.0))]
