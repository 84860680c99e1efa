"""Every output column: its name carries its unit (tidy CSV: ``Time [s]``).  Sign conventions:
currents and capacities are written as magnitudes with a meaning (applied current density > 0
plates, < 0 strips, 0 is open circuit), potentials as cell potentials vs a lithium reference."""

# -- time series (one row per macro-step) ------------------------------------------------------
TIME = "Time [s]"
STEP = "Step [-]"  # the protocol segment's label: plate, strip, rest, on, off, reverse, start
CURRENT = "Applied current density [mA.cm-2]"
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

# -- segments (segments.csv: one row per protocol segment) ------------------------------------
SEGMENT = "Segment [-]"
SEGMENT_START = "Start [s]"
SEGMENT_DURATION = "Duration [s]"
PASSED_CAP = "Passed capacity [mAh.cm-2]"  # net charge the KMC passed, > 0 plating
ENDED_BY = "Ended by"  # duration, charge, charge shortfall, cutoff, fully stripped

# -- cycles (cycles.csv: one row per plate/strip cycle) ------------------------------------------
CYCLE = "Cycle [-]"
CYCLE_PLATED = "Plated [mAh.cm-2]"
CYCLE_STRIPPED = "Stripped [mAh.cm-2]"
CYCLE_NET = "Net plated [mAh.cm-2]"
COULOMBIC_EFFICIENCY = "Coulombic efficiency [-]"  # stripped / plated within the cycle

# -- run summary ----------------------------------------------------------------------------
SEGMENTS_ENDED_BY = "Segments ended by"
CHARGE_ERROR = "Charge error [%]"
COMPLIANCE_STEPS = "Compliance-limited steps [-]"
CAPPED_STEPS = "Charge-capped steps [-]"
MEAN_POTENTIAL = "Mean cell potential under current [V]"  # time-weighted over the steps with current

# -- ensembles ---------------------------------------------------------------------------------
CAPACITY_CHECKPOINT = "Capacity checkpoint [%]"
