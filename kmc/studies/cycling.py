"""Plate/strip cycling: the study behind ``python -m kmc cycling``.

N cycles (plate a capacity, strip until fully stripped) into a porous conductive host and a
planar foil, with DC and with pulsed plating (and pulse-reverse plating when the protocol
gives a reverse pulse); each case reports its Coulombic efficiency and dead lithium per
cycle, its voltage-capacity curves and a cross-section after the last strip.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..coupling import columns as col
from ..coupling.config import SimulationConfig
from ..coupling.io import write_csv
from ..coupling.observables import cycle_balance, segment_cycles
from ..coupling.simulation import RunResult
from ..coupling.waveforms import dc_plating, pulse_plating
from .base import Case, HostVersusFoil, StudyPlan, labelled_rows, summary_row

# Quick default: five cycles of 0.2 mAh/cm^2 (248 packets per plating) on a 16 x 16 um
# footprint, 8 um of host under 12 um of electrolyte, plated at 20 mA/cm^2 (half the foil
# cell's 1D limiting current, 41 mA/cm^2) and stripped at the same current until fully
# stripped. Steps of up to 5 % of the faces (the default 2 %) keep it within the 3-minute
# budget on two cores; the stop conditions and the charge bookkeeping do not depend on it.
STUDY_OVERRIDES = [
    "host.nx=16", "host.ny=16", "host.host_layers=8", "host.reservoir_layers=12", "host.feature_size_um=2",
    "protocol.current_density_mA_cm2=20", "protocol.capacity_mAh_cm2=0.2", "protocol.cycles=5",
    "kmc.interface_change_fraction=0.05", "snapshots=0",
]
FULL_OVERRIDES = [
    "host.nx=32", "host.ny=32", "host.host_layers=16", "host.reservoir_layers=20", "host.feature_size_um=3",
    "protocol.capacity_mAh_cm2=0.5", "protocol.cycles=10", "kmc.interface_change_fraction=0.02",
]

KEY_OBSERVABLES = [col.MEAN_CE, col.cycle_ce(1), col.DEAD_LITHIUM, col.CUMULATIVE_LOSS]
SUMMARY_EXTRA = [col.MEAN_CE, col.CUMULATIVE_LOSS, col.WRITTEN_OFF, col.EXHAUSTED_STRIPS]

HELP = """\
Cycle lithium: plate a capacity and strip it until fully stripped, N times, into a porous
conductive host and into a planar foil, with DC and with pulsed plating (1 s on, 1 s open
circuit at the DC current; with --set protocol.reverse_current_mA_cm2=X --set
protocol.reverse_time_s=T also pulse-reverse plating). Reports the Coulombic efficiency
(stripped / plated) and the dead lithium of every cycle (cycles.csv, coulombic_efficiency.png),
the voltage against capacity of every cycle (voltage_capacity.png) and the deposits after the
last strip with dead lithium in its own colour (cross_sections.png).

The quick default (5 cycles of 0.2 mAh/cm^2 at 20 mA/cm^2 on a 16 x 16 um footprint) takes
70-110 s on a 2-core laptop; --replicas N gives every cycle's CE with a 95 % CI
(statistics.csv) and each pulse protocol's ratio to DC (comparison.csv).

Examples:
  python -m kmc cycling
  python -m kmc cycling --replicas 8
  python -m kmc cycling --set protocol.cycles=10 --set protocol.strip_current_density_mA_cm2=5
  python -m kmc cycling --set protocol.strip_cutoff_V=0.5 --set protocol.rest_s=10
Any configuration field can be set with --set key=value (see `python -m kmc config`).
"""


def protocols(config: SimulationConfig) -> dict:
    """DC and pulsed (equal on-current) plating, each cycled; pulse-reverse when configured."""
    p = config.protocol
    out = {
        "DC": p.cycled(dc_plating(p.current_density_mA_cm2, p.capacity_mAh_cm2)),
        "Pulse": p.cycled(pulse_plating(p.current_density_mA_cm2, p.on_time_s, p.off_time_s, p.capacity_mAh_cm2)),
    }
    if p.reverse_current_mA_cm2 > 0 and p.reverse_time_s > 0:
        out["Pulse-reverse"] = p.cycled(pulse_plating(p.current_density_mA_cm2, p.on_time_s, p.off_time_s,
                                                      p.capacity_mAh_cm2, p.reverse_current_mA_cm2,
                                                      p.reverse_time_s))
    return out


class Cycling(HostVersusFoil):
    name = "cycling"
    help = "plate/strip cycles: Coulombic efficiency and dead lithium per cycle, porous host vs foil, DC vs pulse"
    description = HELP
    overrides = STUDY_OVERRIDES
    full_overrides = FULL_OVERRIDES
    key_observables = KEY_OBSERVABLES
    reference_protocol = "DC"

    def protocols(self, config):
        if config.protocol.cycles < 1:
            from ..coupling.config import ConfigError

            raise ConfigError("protocol.cycles = 0: the cycling study needs at least one cycle")
        return protocols(config)

    def write_outputs(self, config, plan: StudyPlan, results: dict[str, RunResult], outdir: Path, echo) -> None:
        write_outputs(config, results, plan.cases, outdir)
        echo(format_cycles(results, plan.cases))


def write_outputs(config, results: dict[str, RunResult], cases: list[Case], outdir: Path) -> None:
    from .plots import plot_cross_sections

    write_csv(outdir / "timeseries.csv", labelled_rows(results, cases, "rows"))
    write_csv(outdir / "summary.csv", [{**summary_row(results[c.label], c),
                                        **{k: results[c.label].summary.get(k) for k in SUMMARY_EXTRA}}
                                       for c in cases])
    h = next(iter(results.values())).host.spacing
    plot_cross_sections(outdir / "cross_sections.png",
                        {c.label.replace(" | ", "\n"): (results[c.label].final_phase, results[c.label].connected)
                         for c in cases}, h,
                        title="After the last strip (x-z section through the middle; dead lithium in red)")
    plot_cycles(outdir / "coulombic_efficiency.png", {c.label: cycle_balance(results[c.label].segments)
                                                      for c in cases})
    plot_voltage_capacity(outdir / "voltage_capacity.png", {c.label: results[c.label] for c in cases})


def row_cycles(result: RunResult) -> list[int]:
    """The cycle of each time-series row (0 for the start row): a row ends a macro-step, which
    lies in exactly one segment."""
    segs = result.segments
    ks = segment_cycles(segs)
    ends = np.array([s[col.SEGMENT_START] + s[col.SEGMENT_DURATION] for s in segs])
    out = []
    for r in result.rows:
        if r[col.STEP] == "start":
            out.append(0)
            continue
        i = int(np.searchsorted(ends, r[col.TIME] - 1e-9 * max(1.0, r[col.TIME])))
        out.append(ks[min(i, len(ks) - 1)])
    return out


def plot_cycles(path, cycles: dict[str, list[dict]]) -> None:
    """Coulombic efficiency and dead lithium at the end of each cycle, one line per case."""
    from matplotlib.ticker import MaxNLocator

    from .plots import _save, plt

    fig, axes = plt.subplots(2, 1, figsize=(6.4, 5.2), sharex=True)
    for label, cyc in cycles.items():
        k = [c[col.CYCLE] for c in cyc]
        axes[0].plot(k, [c[col.COULOMBIC_EFFICIENCY] for c in cyc], "o-", label=label, lw=1.2, ms=4)
        axes[1].plot(k, [c[col.CYCLE_DEAD_END] for c in cyc], "o-", label=label, lw=1.2, ms=4)
    axes[0].set_ylabel(col.COULOMBIC_EFFICIENCY)
    axes[1].set_ylabel(col.CYCLE_DEAD_END, fontsize=9)
    axes[1].set_xlabel("cycle")
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes:
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
    _save(fig, path)


def plot_voltage_capacity(path, results: dict[str, RunResult]) -> None:
    """Cell potential against the capacity plated since the cycle's start (right while
    plating, back left while stripping; the gap at the end is the cycle's loss), one panel per
    case, one line per cycle, steps under current only."""
    from .plots import _save, plt

    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.4), squeeze=False, sharey=True)
    for ax, (label, res) in zip(axes[0], results.items()):
        ks = row_cycles(res)
        n_cyc = max(ks) if ks else 0
        cmap = plt.get_cmap("viridis")
        for k in range(1, n_cyc + 1):
            idx = [i for i, kk in enumerate(ks) if kk == k]
            base = res.rows[idx[0] - 1][col.PLATED_CAP]  # the row before the cycle's first (row 0: start)
            keep = [res.rows[i] for i in idx
                    if res.rows[i][col.CURRENT] != 0 and np.isfinite(res.rows[i][col.POTENTIAL])]
            ax.plot([r[col.PLATED_CAP] - base for r in keep], [r[col.POTENTIAL] for r in keep], lw=1.0,
                    color=cmap(k / max(n_cyc, 1)), label=f"cycle {k}")
        ax.set_title(label.replace(" | ", "\n"), fontsize=9)
        ax.set_xlabel("capacity since cycle start [mAh.cm-2]")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(col.POTENTIAL)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6) or 1, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    _save(fig, path)


def format_cycles(results: dict[str, RunResult], cases: list[Case]) -> str:
    """CE of every cycle, mean CE, dead lithium after the last cycle, charge error per case."""
    lines = []
    for c in cases:
        s = results[c.label].summary
        cyc = cycle_balance(results[c.label].segments)
        ce = " ".join(f"{x[col.COULOMBIC_EFFICIENCY]:.3f}" for x in cyc)
        lines.append(f"{c.label}: CE per cycle {ce} (mean {s.get(col.MEAN_CE, float('nan')):.3f}); dead lithium "
                     f"{s[col.DEAD_LITHIUM]:.4f} mAh/cm^2 after {len(cyc)} cycles; charge error "
                     f"{s[col.CHARGE_ERROR]:.2f} %")
    return "\n".join(lines)
