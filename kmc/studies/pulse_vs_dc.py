"""Pulse versus DC plating: the study behind ``python -m kmc pulse_vs_dc``.

The same capacity is plated with DC and with square pulses of (a) equal on-current and
(b) equal average current, into a porous conductive host under a reservoir and into a
planar foil; the deposits are compared side by side.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..coupling.config import SimulationConfig
from ..coupling.io import write_csv, write_json
from ..coupling.simulation import PLATED_CAP, POTENTIAL, PlatingSimulation, RunResult
from ..coupling.units import MA_PER_CM2
from ..coupling.waveforms import dc_plating, pulse_plating

# The study's current: 38 mA/cm^2 is 0.97 x the foil cell's 1D limiting current (25 um
# separator at porosity 0.4 plus 28 um of free electrolyte: 39 mA/cm^2). Under DC the
# foil surface runs nearly empty of salt and grows tips; pulses at the same on-current
# refill it during off-times; pulses at the same average current (76 mA/cm^2 on) pass the
# limit within each pulse. Well below the limit growth is reaction-limited and the three
# protocols give the same deposit within noise (8 mA/cm^2: ratios 0.97-1.11, all p >= 0.1).
STUDY_OVERRIDES = ["protocol.current_density_mA_cm2=38"]
# Quick default: the configuration defaults under STUDY_OVERRIDES (24 x 24 footprint,
# 0.2 mAh/cm^2): about 1 minute on a 2-core laptop. ``--full`` adds these:
# 48 um of electrolyte above the foil lower its limiting current to 33.9 mA/cm^2; 33 mA/cm^2
# keeps the study at 0.97 x the limit.
FULL_OVERRIDES = [
    "host.nx=48", "host.ny=48", "host.host_layers=24", "host.reservoir_layers=24",
    "protocol.capacity_mAh_cm2=0.5", "protocol.current_density_mA_cm2=33", "snapshots=8",
]

# The deposit observables that pulse and DC are compared on (single runs and ensembles).
KEY_OBSERVABLES = ["RMS roughness [um]", "Max height [um]", "Interface area [um2.um-2]", "Tips [-]",
                   "Lithium above host [mAh.cm-2]"]

SUMMARY_COLUMNS = [
    "Max height [um]", "Mean height [um]", "RMS roughness [um]", "Interface area [um2.um-2]", "Tips [-]",
    "Lithium inside host [mAh.cm-2]", "Lithium above host [mAh.cm-2]", "Dead lithium [mAh.cm-2]",
    PLATED_CAP,
]


@dataclass
class Case:
    host_label: str
    protocol_label: str

    @property
    def label(self) -> str:
        return f"{self.host_label} | {self.protocol_label}"

    @property
    def slug(self) -> str:
        return (self.host_label + "_" + self.protocol_label).lower().replace(" ", "_").replace("(", "").replace(
            ")", "").replace("-", "_").replace(",", "")


def protocols(config: SimulationConfig) -> dict:
    """DC, pulse with the DC current as on-current, pulse with the DC current as average."""
    p = config.protocol
    return {
        "DC": dc_plating(p.current_density_mA_cm2, p.capacity_mAh_cm2),
        "Pulse, equal on-current": pulse_plating(p.current_density_mA_cm2, p.on_time_s, p.off_time_s,
                                                 p.capacity_mAh_cm2),
        "Pulse, equal average": pulse_plating(p.current_density_mA_cm2 / p.duty_cycle, p.on_time_s, p.off_time_s,
                                              p.capacity_mAh_cm2),
    }


def hosts(config: SimulationConfig, seed_sequence: np.random.SeedSequence) -> dict:
    """The configured host and a planar foil of the same footprint and reservoir."""
    foil = config.host.model_copy(update={"kind": "planar_foil", "seed_fraction": 0.0, "dielectric_top_fraction": 0.0})
    return {"Porous host": config.host.build(seed_sequence), "Planar foil": foil.build(seed_sequence)}


def study_plan(config: SimulationConfig, seed_sequence: np.random.SeedSequence):
    """The hosts and the six cases as the study runs them: (host map, [(Case, host,
    segments, seed stream)]). The host streams come first, then one stream per case in
    host x protocol order, so a case's result depends only on the root seed."""
    host_ss, *case_ss = seed_sequence.spawn(7)
    host_map, prot_map = hosts(config, host_ss), protocols(config)
    cases = [(Case(h, p), host_map[h], prot_map[p]) for h in host_map for p in prot_map]
    return host_map, [(case, host, segs, ss) for (case, host, segs), ss in zip(cases, case_ss)]


def run_case(config: SimulationConfig, host, segments, seed_sequence, label: str, outdir=None, progress=None):
    sim = PlatingSimulation(config, host, seed_sequence=seed_sequence)
    return sim.run(segments, label=label, outdir=outdir, progress=progress)


def _run_job(job):
    config, host, segs, ss, label, slug, snapdir = job
    return label, run_case(config, host, segs, ss, slug, snapdir)


def run_pulse_vs_dc(config: SimulationConfig, outdir: str | Path, *, progress: bool = True, workers: int | None = None,
                    echo=print) -> dict[str, RunResult]:
    """Run all cases, write outputs into ``outdir``, return results by case label."""
    from tqdm.auto import tqdm

    outdir = Path(outdir)
    t_start = time.perf_counter()
    root = np.random.SeedSequence(config.seed)
    host_map, plan = study_plan(config, root)
    cases = [(case, host, segs) for case, host, segs, _ in plan]
    write_json(outdir / "config.json", {
        "package": "lithium-kmc", "version": __version__, "python": platform.python_version(),
        "seed": config.seed, "seed_entropy": root.entropy, "config_digest": config.digest(),
        "config": config.model_dump(mode="json"),
        "transport_consistent": config.physics.transport_consistent,
        "hosts": {k: v.summary() for k, v in host_map.items()},
    })
    total_cap = config.protocol.capacity_mAh_cm2 * len(cases)
    bar = tqdm(total=round(total_cap, 6), unit="mAh/cm2", desc="plating", disable=not progress,
               bar_format="{l_bar}{bar}| {n:.3f}/{total:.3f} mAh/cm2 [{elapsed}<{remaining}]")
    jobs = [(config, host, segs, ss, case.label, case.slug, outdir / "snapshots") for case, host, segs, ss in plan]
    results: dict[str, RunResult] = {}
    n_workers = max(1, min(workers if workers else (os.cpu_count() or 1), len(jobs)))
    if n_workers == 1:
        for job in jobs:
            label, result = _run_job(job)
            results[label] = result
            bar.update(config.protocol.capacity_mAh_cm2)
    else:
        # Cases are independent (own seed streams), so running them in parallel changes nothing
        # in the results; the bar advances as each case's capacity is plated.
        from concurrent.futures import as_completed

        from .parallel import process_pool

        with process_pool(n_workers) as pool:
            futures = [pool.submit(_run_job, job) for job in jobs]
            for fut in as_completed(futures):
                label, result = fut.result()
                results[label] = result
                bar.set_postfix_str(label)
                bar.update(config.protocol.capacity_mAh_cm2)
        results = {job[4]: results[job[4]] for job in jobs}
    bar.close()
    _write_outputs(config, results, cases, outdir)
    wall = time.perf_counter() - t_start
    timing = {"wall [s]": wall}
    for r in results.values():
        for k, v in r.timing.items():
            timing[k] = timing.get(k, 0.0) + v
    write_json(outdir / "timing.json", timing)
    echo(format_summary(results))
    echo(format_transport_limit(config, host_map))
    echo(format_pulse_ratios(results, cases))
    echo(f"wall time {wall:.1f} s (continuum {timing['continuum [s]']:.1f} s, KMC {timing['kmc [s]']:.1f} s, "
         f"observables {timing['observables [s]']:.1f} s); outputs in {outdir}")
    return results


def _write_outputs(config, results, cases, outdir: Path) -> None:
    from .plots import plot_cross_sections, plot_height_maps, plot_series

    rows = []
    for (case, _, _) in cases:
        for r in results[case.label].rows:
            rows.append({"Host": case.host_label, "Protocol": case.protocol_label, **r})
    write_csv(outdir / "timeseries.csv", rows)
    summary = []
    for (case, _, _) in cases:
        r = results[case.label]
        potentials = [row[POTENTIAL] for row in r.rows if np.isfinite(row[POTENTIAL])]
        summary.append({"Host": case.host_label, "Protocol": case.protocol_label,
                        **{k: r.summary[k] for k in SUMMARY_COLUMNS},
                        "Mean cell potential [V]": float(np.mean(potentials)) if potentials else float("nan"),
                        "Charge error [%]": r.summary["Charge error [%]"]})
    write_csv(outdir / "summary.csv", summary)
    h = next(iter(results.values())).host.spacing
    plot_cross_sections(outdir / "cross_sections.png",
                        {c.label.replace(" | ", "\n"): (results[c.label].final_phase, results[c.label].connected)
                         for c, _, _ in cases}, h, title="Deposits after plating (x-z section through the middle)")
    plot_height_maps(outdir / "height_maps.png",
                     {c.label.replace(" | ", "\n"): (results[c.label].final_phase, results[c.label].host.phase)
                      for c, _, _ in cases}, h)
    plot_series(outdir / "potential_and_roughness.png", {c.label: results[c.label].rows for c, _, _ in cases},
                PLATED_CAP, [POTENTIAL, "RMS roughness [um]", "Max height [um]"], under_current=[POTENTIAL])


def format_summary(results: dict[str, RunResult]) -> str:
    """Side-by-side table of the final deposits."""
    cols = [("Max h [um]", "Max height [um]", "{:8.2f}"), ("Mean h [um]", "Mean height [um]", "{:8.2f}"),
            ("RMS [um]", "RMS roughness [um]", "{:8.3f}"), ("Area [-]", "Interface area [um2.um-2]", "{:8.2f}"),
            ("Tips", "Tips [-]", "{:5d}"), ("In host", "Lithium inside host [mAh.cm-2]", "{:8.4f}"),
            ("Above", "Lithium above host [mAh.cm-2]", "{:8.4f}"), ("Q err %", "Charge error [%]", "{:7.2f}")]
    width = max(len(k) for k in results) + 2
    head = "case".ljust(width) + " ".join(f"{c[0]:>9}" for c in cols)
    lines = [head, "-" * len(head)]
    for label, r in results.items():
        vals = []
        for _, key, fmt in cols:
            v = r.summary[key]
            vals.append(f"{fmt.format(int(v) if 'd' in fmt else float(v)):>9}")
        lines.append(label.ljust(width) + " ".join(vals))
    lines.append("(capacities in mAh/cm^2; heights above the collector surface)")
    return "\n".join(lines)


def format_pulse_ratios(results: dict[str, RunResult], cases) -> str:
    """Each pulse protocol's final observables over DC's on the same host (one run each:
    replicas, ``--replicas N``, give confidence intervals and p-values)."""
    lines = ["pulse / DC (this run):"]
    for case, _, _ in cases:
        if case.protocol_label == "DC":
            continue
        dc = results[Case(case.host_label, "DC").label].summary
        mine = results[case.label].summary
        parts = []
        for key in KEY_OBSERVABLES:
            name = key.split(" [")[0]
            a, b = float(mine[key]), float(dc[key])
            parts.append(f"{name} {a / b:.2f}" if b != 0 else f"{name} -")
        lines.append(f"  {case.label}: " + ", ".join(parts))
    return "\n".join(lines)


def format_transport_limit(config: SimulationConfig, host_map: dict) -> str:
    """Where the applied currents sit against the 1D limiting current of each cell (free
    electrolyte between the host top and the domain top, plus the separator)."""
    from continuum import limiting_current_density

    p = config.protocol
    sep = config.separator
    i_lim = {label: limiting_current_density(config.physics, sep.length_um * 1e-6, sep.porosity,
                                             (host.phase.shape[2] - 1) * host.spacing - host.host_height) / MA_PER_CM2
             for label, host in host_map.items()}
    return ("1D limiting current: " + ", ".join(f"{k} {v:.1f} mA/cm^2" for k, v in i_lim.items())
            + f"; DC and equal on-current pulses at {p.current_density_mA_cm2:g} mA/cm^2"
            f" ({p.current_density_mA_cm2 / min(i_lim.values()):.2f} x the lowest),"
            f" equal-average pulses at {p.current_density_mA_cm2 / p.duty_cycle:g} mA/cm^2 on")


def run_single(config: SimulationConfig, outdir: str | Path, *, progress: bool = True, echo=print) -> RunResult:
    """One run of the configured host and protocol, with the same outputs as the study."""
    from tqdm.auto import tqdm

    from .plots import plot_cross_sections, plot_series

    outdir = Path(outdir)
    root = np.random.SeedSequence(config.seed)
    host_ss, run_ss = root.spawn(2)
    host = config.host.build(host_ss)
    segs = config.protocol.segments()
    write_json(outdir / "config.json", {"package": "lithium-kmc", "version": __version__, "seed": config.seed,
                                        "seed_entropy": root.entropy, "config_digest": config.digest(),
                                        "config": config.model_dump(mode="json"), "host": host.summary()})
    bar = tqdm(total=sum(s.duration for s in segs), unit="s", desc="simulated time", disable=not progress)
    last = [0.0]

    def tick(row):
        bar.update(row["Time [s]"] - last[0])
        last[0] = row["Time [s]"]

    result = run_case(config, host, segs, run_ss, "run", outdir / "snapshots", tick)
    bar.close()
    write_csv(outdir / "timeseries.csv", result.rows)
    plot_cross_sections(outdir / "cross_section.png", {"final": (result.final_phase, result.connected)}, host.spacing)
    plot_series(outdir / "series.png", {"run": result.rows}, "Time [s]",
                [POTENTIAL, PLATED_CAP, "RMS roughness [um]"])
    echo(json.dumps({k: v for k, v in result.summary.items()}, indent=1, default=str))
    return result
