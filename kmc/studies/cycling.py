"""Plate/strip cycling: the study behind ``python -m kmc cycling``.

N cycles (plate a capacity, strip until fully stripped) into a porous conductive host and a
planar foil, with DC, pulsed and pulse-reverse plating, and DC plating stripped at a quarter
and at twice the stripping current; each case reports its Coulombic efficiency and dead
lithium per cycle, where the strips emptied the host's pores, its voltage-capacity curves and
a cross-section after the last strip.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..coupling import columns as col
from ..coupling.config import SimulationConfig
from ..coupling.io import write_csv
from ..coupling.observables import cycle_balance, is_stripping_segment, segment_cycles
from ..coupling.simulation import RunResult
from ..coupling.waveforms import dc_plating, pulse_plating
from .base import Case, HostVersusFoil, StudyPlan, labelled_rows, summary_row

# Quick default: five cycles of 0.2 mAh/cm^2 (248 packets per plating) on a 16 x 16 um
# footprint, 8 um of host under 12 um of electrolyte, plated at 20 mA/cm^2 (half the foil
# cell's 1D limiting current, 41 mA/cm^2) and stripped at the same current until fully
# stripped. Steps of up to 5 % of the faces (the default 2 %) keep it within the 3-minute
# budget on two cores; the stop conditions and the charge bookkeeping do not depend on it.
# Pulse-reverse: after each 1-s on-pulse a 0.25-s anodic pulse at the on-current (a quarter of
# the pulse's charge back), then the 1-s rest.
STUDY_OVERRIDES = [
    "host.nx=16", "host.ny=16", "host.host_layers=8", "host.reservoir_layers=12", "host.feature_size_um=2",
    "protocol.current_density_mA_cm2=20", "protocol.capacity_mAh_cm2=0.2", "protocol.cycles=5",
    "protocol.reverse_current_mA_cm2=20", "protocol.reverse_time_s=0.25",
    "kmc.interface_change_fraction=0.05", "snapshots=0",
]
FULL_OVERRIDES = [
    "host.nx=32", "host.ny=32", "host.host_layers=16", "host.reservoir_layers=20", "host.feature_size_um=3",
    "protocol.capacity_mAh_cm2=0.5", "protocol.cycles=10", "kmc.interface_change_fraction=0.02",
]

# DC plating is also stripped at these multiples of the stripping current (5 and 40 mA/cm^2
# by default: from kinetics-dominated to near the foil's 1D limiting current, 41 mA/cm^2)
STRIP_SWEEP = (0.25, 2.0)

KEY_OBSERVABLES = [col.MEAN_CE, col.cycle_ce(1), col.DEAD_LITHIUM, col.CUMULATIVE_LOSS]
SUMMARY_EXTRA = [col.MEAN_CE, col.CUMULATIVE_LOSS, col.WRITTEN_OFF, col.EXHAUSTED_STRIPS]

# Where the strips empty the host (pore_emptying; means over the cycles in the summary): the
# centre height of the lithium inside the host (columns.LITHIUM_CENTRE_HEIGHT) when a strip
# starts and halfway through the host's emptying, and the shift between the two
CENTRE_AT_STRIP_START = "Lithium centre height at strip start [-]"
CENTRE_AT_HALF_STRIP = "Lithium centre height at half strip [-]"
EMPTYING_SHIFT = "Pore emptying shift [-]"  # half strip - strip start: < 0 the pores emptied from the top
EMPTYING_COLUMNS = [CENTRE_AT_STRIP_START, CENTRE_AT_HALF_STRIP, EMPTYING_SHIFT]

HELP = """\
Cycle lithium: plate a capacity and strip it until fully stripped, N times, into a porous
conductive host and into a planar foil. Protocols: DC; Pulse (1 s on at the DC current, 1 s
open circuit); Pulse-reverse (1 s on, then 0.25 s anodic at the DC current, then 1 s open
circuit: protocol.reverse_current_mA_cm2 = 20, protocol.reverse_time_s = 0.25; 0 drops it);
and DC plating stripped at a quarter and at twice the stripping current (5 and 40 mA/cm^2;
the others strip at protocol.strip_current_density_mA_cm2, default the plating current, 20).
Reports the Coulombic efficiency (stripped / plated) and the dead lithium of every cycle
(cycles.csv, coulombic_efficiency.png), where each strip emptied the host's pores
(pore_emptying.csv: the centre height of the lithium inside the host at the strip's start
and halfway through the host's emptying; a negative shift means the pores emptied from the
top), the voltage against capacity of every cycle (voltage_capacity.png) and the deposits
after the last strip with dead lithium in its own colour (cross_sections.png).

The quick default (5 cycles of 0.2 mAh/cm^2 at 20 mA/cm^2 on a 16 x 16 um footprint, 10
cases) takes about 150 s on a quiet 2-core machine (4 min beside other jobs); --replicas N
gives every cycle's CE and dead lithium with a 95 % CI (statistics.csv,
coulombic_efficiency.png) and each protocol's ratio to DC (comparison.csv).

Examples:
  python -m kmc cycling
  python -m kmc cycling --replicas 8
  python -m kmc cycling --set protocol.cycles=10 --set protocol.strip_current_density_mA_cm2=5
  python -m kmc cycling --set protocol.strip_cutoff_V=0.5 --set protocol.rest_s=10
Any configuration field can be set with --set key=value (see `python -m kmc config`).
"""


def protocols(config: SimulationConfig) -> dict:
    """DC, pulsed and (when protocol.reverse_* are set) pulse-reverse plating at one
    on-current, each cycled at the stripping current, then DC plating cycled at each
    STRIP_SWEEP multiple of it."""
    p = config.protocol
    dc = dc_plating(p.current_density_mA_cm2, p.capacity_mAh_cm2)
    out = {
        "DC": p.cycled(dc),
        "Pulse": p.cycled(pulse_plating(p.current_density_mA_cm2, p.on_time_s, p.off_time_s, p.capacity_mAh_cm2)),
    }
    if p.reverse_current_mA_cm2 > 0 and p.reverse_time_s > 0:
        out["Pulse-reverse"] = p.cycled(pulse_plating(p.current_density_mA_cm2, p.on_time_s, p.off_time_s,
                                                      p.capacity_mAh_cm2, p.reverse_current_mA_cm2,
                                                      p.reverse_time_s))
    strip = p.strip_current_density_mA_cm2 or p.current_density_mA_cm2
    for factor in STRIP_SWEEP:
        j = factor * strip
        out[f"DC, strip {j:.3g} mA.cm-2"] = p.model_copy(update={"strip_current_density_mA_cm2": j}).cycled(dc)
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

    def case_summary(self, result: RunResult) -> dict:
        """The run's own scalars beyond the simulation's summary (ensembles add them too)."""
        return emptying_summary(result)

    def write_outputs(self, config, plan: StudyPlan, results: dict[str, RunResult], outdir: Path, echo) -> None:
        write_outputs(config, results, plan.cases, outdir)
        echo(format_cycles(results, plan.cases))


def write_outputs(config, results: dict[str, RunResult], cases: list[Case], outdir: Path) -> None:
    from .plots import plot_cross_sections, plot_cycles

    write_csv(outdir / "timeseries.csv", labelled_rows(results, cases, "rows"))
    write_csv(outdir / "summary.csv", [{**summary_row(results[c.label], c),
                                        **{k: results[c.label].summary.get(k) for k in SUMMARY_EXTRA},
                                        **emptying_summary(results[c.label])}
                                       for c in cases])
    write_csv(outdir / "pore_emptying.csv", [{"Host": c.host_label, "Protocol": c.protocol_label, **row}
                                             for c in cases for row in pore_emptying(results[c.label])])
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


def pore_emptying(result: RunResult) -> list[dict]:
    """Per cycle, where its strip emptied the host's pores: the centre height of the lithium
    inside the host (0 at the collector, 1 at the host top) when the strip starts and when the
    lithium inside has fallen halfway from that to its value at the strip's end (linear between
    the two rows around it), and the shift between them: < 0 when the pores emptied from the
    top, > 0 from the bottom, 0 when evenly.  NaN for a strip that took no lithium from inside
    a host (a foil has none)."""
    rows, ks = result.rows, row_cycles(result)
    out = []
    for k in sorted(set(ks) - {0}):
        strip = [i for i, kk in enumerate(ks) if kk == k and is_stripping_segment(rows[i])]
        start = at_half = float("nan")
        if strip:
            run = rows[strip[0] - 1:strip[-1] + 1]  # from the state the strip starts from
            inside = np.array([r[col.LITHIUM_INSIDE] for r in run])
            centre = np.array([r[col.LITHIUM_CENTRE_HEIGHT] for r in run])
            half = (inside[0] + inside[-1]) / 2
            start = centre[0]
            i = int(np.argmax(inside <= half))  # the first row at or past the middle
            if inside[0] > inside[-1] and i > 0:
                w = (inside[i - 1] - half) / (inside[i - 1] - inside[i])
                at_half = centre[i - 1] + w * (centre[i] - centre[i - 1])
        out.append({col.CYCLE: k, CENTRE_AT_STRIP_START: float(start), CENTRE_AT_HALF_STRIP: float(at_half),
                    EMPTYING_SHIFT: float(at_half - start)})
    return out


def emptying_summary(result: RunResult) -> dict:
    """pore_emptying's columns averaged over the cycles that have them (NaN for a foil)."""
    import warnings

    per_cycle = pore_emptying(result)
    with warnings.catch_warnings():  # a foil: all NaN, and NaN is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        return {k: float(np.nanmean([c[k] for c in per_cycle])) if per_cycle else float("nan")
                for k in EMPTYING_COLUMNS}


def plot_voltage_capacity(path, results: dict[str, RunResult]) -> None:
    """Cell potential against the capacity plated since the cycle's start (right while
    plating, back left while stripping; the gap at the end is the cycle's loss), one panel per
    case (a row per host), one line per cycle, steps under current only (the anodic pulses of
    pulse-reverse plating left out: their potential would zigzag over the plating curve)."""
    from .plots import _save, case_grid, plt

    grid = case_grid(list(results))
    n_cols = max(len(row) for row in grid)
    fig, axes = plt.subplots(len(grid), n_cols, figsize=(3.0 * n_cols, 2.9 * len(grid)), squeeze=False, sharey=True)
    cmap = plt.get_cmap("viridis")
    for h, row in enumerate(grid):
        for ax in axes[h][len(row):]:
            ax.set_visible(False)
        for ax, label in zip(axes[h], row):
            res = results[label]
            ks = row_cycles(res)
            n_cyc = max(ks) if ks else 0
            for k in range(1, n_cyc + 1):
                idx = [i for i, kk in enumerate(ks) if kk == k]
                base = res.rows[idx[0] - 1][col.PLATED_CAP]  # the row before the cycle's first (row 0: start)
                keep = [res.rows[i] for i in idx if res.rows[i][col.CURRENT] != 0 and res.rows[i][col.STEP] != "reverse"
                        and np.isfinite(res.rows[i][col.POTENTIAL])]
                ax.plot([r[col.PLATED_CAP] - base for r in keep], [r[col.POTENTIAL] for r in keep], lw=1.0,
                        color=cmap(k / max(n_cyc, 1)), label=f"cycle {k}")
            ax.set_title(label.replace(" | ", "\n"), fontsize=9)
            ax.set_xlabel("capacity since cycle start [mAh.cm-2]", fontsize=8)
            ax.grid(alpha=0.3)
        axes[h][0].set_ylabel(col.POTENTIAL)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6) or 1, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout()
    _save(fig, path)


def format_cycles(results: dict[str, RunResult], cases: list[Case]) -> str:
    """CE of every cycle, mean CE, dead lithium after the last cycle, charge error and, in a host,
    the mean pore emptying shift per case."""
    lines = []
    for c in cases:
        s = results[c.label].summary
        cyc = cycle_balance(results[c.label].segments)
        ce = " ".join(f"{x[col.COULOMBIC_EFFICIENCY]:.3f}" for x in cyc)
        shift = emptying_summary(results[c.label])[EMPTYING_SHIFT]
        where = "" if not np.isfinite(shift) else f"; pore emptying shift {shift:+.3f} (< 0: from the top)"
        lines.append(f"{c.label}: CE per cycle {ce} (mean {s.get(col.MEAN_CE, float('nan')):.3f}); dead lithium "
                     f"{s[col.DEAD_LITHIUM]:.4f} mAh/cm^2 after {len(cyc)} cycles; charge error "
                     f"{s[col.CHARGE_ERROR]:.2f} %{where}")
    return "\n".join(lines)
