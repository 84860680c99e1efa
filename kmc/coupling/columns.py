"""Every output column: its name carries its unit (tidy CSV: ``Time [s]``).  Sign conventions:
currents and capacities are written as magnitudes with a meaning (applied current density > 0
plates, < 0 strips, 0 is open circuit), potentials as cell potentials vs a lithium reference."""

# -- time series (one row per macro-step) ------------------------------------------------------
TIME = "Time [s]"
STEP = "Step [-]"  # the protocol segment's label: plate, strip, rest, on, off, reverse, start
CURRENT = "Applied current density [mA.cm-2]"  # under a potentiostatic hold: the current it passed
# the current density of the step's potential solve (plating positive): what the KMC is expected to
# pass under the step's fields (the galvanostat's target; under a hold, the mean-field current)
FIELD_CURRENT = "Field current density [mA.cm-2]"
POTENTIAL = "Cell potential [V]"
OVERPOTENTIAL = "Mean plating overpotential [mV]"
APPLIED_CAP = "Applied capacity [mAh.cm-2]"
PLATED_CAP = "Plated capacity [mAh.cm-2]"
STRIPPED_CAP = "Stripped capacity [mAh.cm-2]"
C_TOP = "Concentration at domain top [mol.m-3]"  # the separator side of the top face
C_NEAR = "Concentration near deposit [mol.m-3]"
PACKETS = "Packets in transit [-]"


def reductions_share(region_name: str) -> str:
    """Share of all reductions so far that happened in a region (observables.REGION_NAMES)."""
    return f"Reductions share {region_name} [-]"


# -- deposit observables (observables.DepositObservables) ---------------------------------------
LITHIUM = "Lithium [mAh.cm-2]"
DEAD_LITHIUM = "Dead lithium [mAh.cm-2]"
LITHIUM_INSIDE = "Lithium inside host [mAh.cm-2]"
LITHIUM_ABOVE = "Lithium above host [mAh.cm-2]"
MAX_HEIGHT = "Max height [um]"
MEAN_HEIGHT = "Mean height [um]"
RMS_ROUGHNESS = "RMS roughness [um]"
INTERFACE_AREA = "Interface area [um2.um-2]"
TIPS = "Tips [-]"
# mean height of the lithium inside the host over the host height: 0 at the collector, 1 at the
# host top, 0.5 for a uniform fill; NaN without lithium inside (a foil)
LITHIUM_CENTRE_HEIGHT = "Lithium centre height in host [-]"

# -- lithium inventory (cumulative since the start of the run, packets as capacity) -------------
# Lithium cut off from the collector between two macro-steps (relabelled after every KMC call),
# and dead lithium that a new deposit touched and so connected again.  Dead lithium never
# reacts, so at every row: Dead lithium = formed - reconnected (host lithium at the start: none).
DEAD_FORMED = "Dead lithium formed [mAh.cm-2]"
DEAD_RECONNECTED = "Dead lithium reconnected [mAh.cm-2]"

# -- segments (segments.csv: one row per protocol segment) ------------------------------------
SEGMENT = "Segment [-]"
SEGMENT_START = "Start [s]"
SEGMENT_DURATION = "Duration [s]"
PASSED_CAP = "Passed capacity [mAh.cm-2]"  # net charge the KMC passed, > 0 plating
# duration, charge, charge shortfall, cutoff, fully stripped, lithium exhausted (a strip that ran
# out of lithium to strip without 'or fully stripped' or a cutoff), top reached (a hold whose
# lithium reached the domain's top layer)
ENDED_BY = "Ended by"

# -- cycles (cycles.csv: one row per plate/strip cycle) ------------------------------------------
CYCLE = "Cycle [-]"
CYCLE_PLATED = "Plated [mAh.cm-2]"
CYCLE_STRIPPED = "Stripped [mAh.cm-2]"
CYCLE_OPEN_CIRCUIT = "Open-circuit net plated [mAh.cm-2]"  # rests, pulse off-times: exchange noise
CYCLE_NET = "Net plated [mAh.cm-2]"  # plated - stripped + open circuit: the cycle's change of lithium
COULOMBIC_EFFICIENCY = "Coulombic efficiency [-]"  # stripped / plated within the cycle
CYCLE_DEAD_END = "Dead lithium at cycle end [mAh.cm-2]"  # cumulative inactive (isolated) lithium
CYCLE_LITHIUM_END = "Lithium at cycle end [mAh.cm-2]"  # all lithium left: dead plus live
CUMULATIVE_LOSS = "Cumulative loss [mAh.cm-2]"  # sum over cycles of plated - stripped
STRIP_ENDED_BY = "Strip ended by"  # why the cycle's last stripping segment ended
MEAN_CE = "Mean Coulombic efficiency [-]"  # over a run's cycles (summary)


def cycle_ce(k: int) -> str:
    """Summary column: the Coulombic efficiency of cycle k (from 1)."""
    return f"Coulombic efficiency cycle {k} [-]"


def cycle_dead(k: int) -> str:
    """Summary column: dead lithium at the end of cycle k (from 1)."""
    return f"Dead lithium after cycle {k} [mAh.cm-2]"

# -- run summary ----------------------------------------------------------------------------
SEGMENTS_ENDED_BY = "Segments ended by"
CHARGE_ERROR = "Charge error [%]"
COMPLIANCE_STEPS = "Compliance-limited steps [-]"
CAPPED_STEPS = "Charge-capped steps [-]"
EXHAUSTED_STRIPS = "Strips that ran out [-]"  # stripping segments ended by running out of lithium
# the anodic charge such strips still owed when the lithium ran out, written off the applied
# charge (Galvanostat.end_exhausted_strip); also per segment in segments.csv
WRITTEN_OFF = "Written off at strip end [mAh.cm-2]"
MEAN_POTENTIAL = "Mean cell potential under current [V]"  # time-weighted over the steps with current
# chronoamperometry of a run's first potentiostatic hold (simulation.hold_summary): the field
# current of its first step (the kinetics of the state it starts from), the mean current passed
# over its last quarter, and the time from its start until the field current has fallen to
# simulation.HOLD_STAGE_FRACTION of the initial one (interpolated; NaN: never)
HOLD_INITIAL_CURRENT = "Hold initial current density [mA.cm-2]"
HOLD_LATE_CURRENT = "Hold late current density [mA.cm-2]"
HOLD_STAGE_BOUNDARY = "Hold stage boundary [s]"

# -- ensembles ---------------------------------------------------------------------------------
CAPACITY_CHECKPOINT = "Capacity checkpoint [%]"
