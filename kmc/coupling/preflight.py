"""Checks a run passes before anything is written: enough packets for the charge tolerance,
room for the lithium it will plate, memory for the domain.  A failed check is a one-line
:class:`ConfigError` naming what to change."""
from __future__ import annotations

import os

import numpy as np

from continuum.constants import ELECTROLYTE, LITHIUM_MAH_PER_CM3

from .config import ConfigError, SimulationConfig
from .galvanostat import CHARGE_TOLERANCE_PERCENT, MIN_PACKETS
from .units import MAH_PER_CM2

# The plated lithium, as a dense layer, may fill at most this share of the free electrolyte
# height: deposits are rough, and one that reaches the top boundary leaves the model.
FILL_LIMIT = 0.5
# Memory per voxel of one coupled run [bytes]: KMC records and face tallies (~200), the potential
# and concentration solves with their AMG hierarchies (~800), fields and copies (~300).
BYTES_PER_VOXEL = 1300


def plated_charge(segments) -> tuple[float, float]:
    """(total charge plated, largest net plated charge at any time) of a protocol [C/m^2]."""
    total = net = peak = 0.0
    for s in segments:
        q = -s.current_density * s.duration
        if s.current_density < 0:
            total += q
            net += q
        elif s.current_density > 0:  # a strip removes at most what is there; an open-ended one all of
            net = 0.0 if s.duration >= 1e6 else max(0.0, net + q)  # it (what turns dead is not counted)
        peak = max(peak, net)
    return total, peak


def check_case(config: SimulationConfig, host, segments, label: str, *, allow_coarse: bool = False) -> list[str]:
    """ConfigError when the case cannot run as asked; the warnings to record otherwise."""
    nx, ny, nz = host.phase.shape
    h = host.spacing
    footprint = nx * ny * h**2
    warnings = []
    k = config.continuum.coarsen
    if k > 1 and (nx % k or ny % k or nz % k):
        raise ConfigError(f"continuum.coarsen = {k} must divide the grid {nx} x {ny} x {nz} of {label} "
                          f"(nz = 1 collector + host.host_layers + host.reservoir_layers)")
    total, peak = plated_charge(segments)
    packet = config.physics.packet_charge(h)
    n_packets = total * footprint / packet
    if 0 < n_packets < MIN_PACKETS:
        msg = (f"{label}: plates {n_packets:.0f} packets ({total / MAH_PER_CM2:g} mAh/cm^2 over {nx} x {ny} voxels "
               f"of {h * 1e6:g} um): one packet is {100 / n_packets:.1f} % of the charge, coarser than the "
               f"{CHARGE_TOLERANCE_PERCENT:g} % tolerance needs ({MIN_PACKETS} packets); raise "
               "protocol.capacity_mAh_cm2 or host.nx/host.ny, or pass --allow-coarse")
        if not allow_coarse:
            raise ConfigError(msg)
        warnings.append(msg)
    closed, floating = host.closed_pore_fraction, 1.0 - host.connected_conductor_fraction
    if closed > 0:
        warnings.append(f"{label}: {closed:.1%} of the pore space is closed off from the top; its electrolyte "
                        "exchanges no salt with the reservoir and carries no net current")
    if floating > 0:
        warnings.append(f"{label}: {floating:.1%} of the conductive solid floats (no path to the collector); "
                        "it stays inert until lithium connects it")
    free_um = np.count_nonzero(host.phase == ELECTROLYTE) * h**3 / footprint * 1e6
    dense_um = peak / MAH_PER_CM2 / LITHIUM_MAH_PER_CM3 * 1e4  # cm -> um
    if dense_um > FILL_LIMIT * free_um:
        raise ConfigError(f"{label}: {peak / MAH_PER_CM2:g} mAh/cm^2 is {dense_um:.1f} um of dense lithium, more than "
                          f"{FILL_LIMIT:.0%} of the {free_um:.1f} um of pore and reservoir height: lower "
                          "protocol.capacity_mAh_cm2 or raise host.reservoir_layers")
    return warnings


# Wall time of one macro-step per voxel on one laptop core [s], fields and KMC together:
# measured 4.5e-6 (quick pulse_vs_dc, 16.7 k voxels, 202 steps in 15.3 s) and 8e-6 (--full,
# 113 k voxels, 431 steps in 394 s) with the voxel-grid multigrid; the larger is used.
SECONDS_PER_VOXEL_STEP = 8e-6


def estimate_steps(config: SimulationConfig, host, segments) -> int:
    """Rough number of macro-steps of a protocol under the step-length rule (docs/model.md,
    "Step length"): each segment's duration over its bounded step, plus the end refinement
    of a capacity-terminated segment's last step (a few steps)."""
    nx, ny, _ = host.phase.shape
    area = nx * ny * host.spacing**2
    q = config.physics.packet_charge(host.spacing)
    k = config.kmc
    steps = 0.0
    net = 0.0  # plated so far [C/m^2]: what an open-ended strip ("until fully stripped") removes
    for s in segments:
        j = abs(s.current_density)
        if s.current_density < 0:
            net += j * s.duration
        duration = s.duration
        if s.duration >= 1e6:
            duration = min(net / j, 3600.0) if s.current_density > 0 else min(s.duration, 3600.0)
            net = 0.0
        elif s.current_density > 0:
            net = max(0.0, net - j * s.duration)
        dt = k.max_macro_step_s if j == 0 else min(k.max_macro_step_s, k.interface_change_fraction * nx * ny * q / (j * area))
        steps += max(1.0, duration / dt)
        if j > 0 and s.until_charge:
            steps += 3.0
    return int(steps)


def estimate_seconds(config: SimulationConfig, host, segments) -> float:
    """Rough wall time of one run on a laptop core [s] (order of magnitude, for a warning)."""
    return estimate_steps(config, host, segments) * host.phase.size * SECONDS_PER_VOXEL_STEP


def check_memory(n_voxels: int, concurrent: int) -> None:
    """ConfigError when ``concurrent`` runs of ``n_voxels`` voxels cannot fit in memory."""
    need = n_voxels * BYTES_PER_VOXEL * concurrent
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if need > 0.8 * have:
        raise ConfigError(f"the domain needs about {need / 2**30:.1f} GiB ({n_voxels} voxels x {concurrent} runs at "
                          f"~{BYTES_PER_VOXEL} B per voxel), more than 80 % of this machine's {have / 2**30:.1f} GiB: "
                          "use fewer voxels, fewer --workers, or continuum.coarsen")
