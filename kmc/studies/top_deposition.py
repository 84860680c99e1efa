"""Top deposition in a deep porous host and the review's remedies: ``python -m kmc top_deposition``.

A deep porous conductive host is plated for a fixed time at one current; the baseline is
compared with the remedies the review names (more salt, faster diffusion, a surface
activity that falls from the collector to the host top) and with faster diffusion combined
with the gradient.  Each remedy is a change of the case's own configuration; all cases use
the same host realisation (the gradient cases decorate it) and the same current.

Transport is the mean-field (implicit) mode: the remedies change the salt and its
diffusivity tenfold, which would change the explicit packet count and hop rate (the KMC's
cost) as much; the question here is where the reductions land, which the mean-field
concentration decides.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..coupling import columns as col
from ..coupling.config import SimulationConfig, apply_overrides
from ..coupling.io import write_csv
from ..coupling.observables import lithium_fill_profile
from ..coupling.simulation import RunResult
from ..coupling.waveforms import dc_plating
from ..hosts.analysis import pore_capacity
from .base import Case, Study, StudyPlan, labelled_rows, summary_row

STUDY_OVERRIDES = [
    "host.kind=random_porous", "host.nx=24", "host.ny=24", "host.host_layers=32", "host.reservoir_layers=16",
    "host.porosity=0.7", "host.porosity_top=0.7", "host.feature_size_um=4",
    "kmc.transport=implicit", "protocol.current_density_mA_cm2=12", "protocol.capacity_mAh_cm2=2", "snapshots=4",
]
FULL_OVERRIDES = ["host.nx=48", "host.ny=48", "host.host_layers=64", "host.reservoir_layers=24",
                  "protocol.capacity_mAh_cm2=4", "protocol.current_density_mA_cm2=24"]

# The review's remedies as changes of the study's configuration (multipliers of its values).
SALT_FACTOR = 3.0
DIFFUSIVITY_FACTOR = 10.0
ACTIVITY_TOP = 0.1  # surface activity at the host top; 1 at the collector, linear between
REMEDIES = ("Baseline", "Salt x3", "Diffusivity x10", "Activity gradient", "Diffusivity x10 + gradient")

KEY_OBSERVABLES = [col.LITHIUM_INSIDE, col.LITHIUM_ABOVE, col.MEAN_HEIGHT, col.MAX_HEIGHT]
FIRST_ABOVE = "Capacity at first growth above host [mAh.cm-2]"
UTILISATION = "Pore space utilisation [-]"
INSIDE_FRACTION = "Lithium inside fraction [-]"

HELP = """\
Plate a deep porous conductive host (32 um, porosity 0.7 in the quick default) at one
current for a fixed time, and compare the baseline with the review's remedies for lithium
growing on top of the host: salt concentration x3, salt diffusivity x10, a surface activity
falling linearly from 1 at the collector to 0.1 at the host top, and diffusivity x10 with
the gradient. Outputs: lithium per layer (depth profile) after plating, the fraction of the
lithium inside the pores against time, pore-space utilisation, the capacity at which lithium
first grows above the host, and a ranking (with CIs under --replicas N).

Examples:
  python -m kmc top_deposition
  python -m kmc top_deposition --replicas 8
  python -m kmc top_deposition --set protocol.current_density_mA_cm2=6
"""


def remedy_config(config: SimulationConfig, remedy: str) -> SimulationConfig:
    """The study's configuration with ``remedy`` applied."""
    el = config.physics.electrolyte
    sets = []
    if "Salt" in remedy:
        sets.append(f"physics.electrolyte.concentration={el.concentration * SALT_FACTOR}")
    if "Diffusivity" in remedy:
        sets.append(f"physics.electrolyte.salt_diffusivity={el.salt_diffusivity * DIFFUSIVITY_FACTOR}")
    if "gradient" in remedy:
        sets += ["host.activity_bottom=1.0", f"host.activity_top={ACTIVITY_TOP}"]
    if not sets:
        return config
    return SimulationConfig.model_validate(apply_overrides(config.model_dump(mode="json"), sets))


class TopDeposition(Study):
    name = "top_deposition"
    help = "top deposition in a deep porous host and the review's remedies"
    description = HELP
    overrides = STUDY_OVERRIDES
    full_overrides = FULL_OVERRIDES
    key_observables = KEY_OBSERVABLES
    reference_protocol = "Baseline"

    def host_labels(self, config):
        return ["Porous host"]

    def protocols(self, config):
        p = config.protocol
        return {r: dc_plating(p.current_density_mA_cm2, p.capacity_mAh_cm2) for r in REMEDIES}

    def plan(self, config, root):
        """One host realisation for every case (the gradient cases decorate the same one)."""
        from ..coupling.streams import study_streams

        prots = self.protocols(config)
        host_ss, case_ss = study_streams(root, len(prots))
        cases = []
        hosts = {}
        for (remedy, segments), ss in zip(prots.items(), case_ss):
            cfg = remedy_config(config, remedy)
            label = "Porous host" + (" (activity gradient)" if "gradient" in remedy else "")
            if label not in hosts:
                hosts[label] = cfg.host.build(host_ss)
            cases.append(Case("Porous host", remedy, hosts[label], segments, ss, cfg))
        return StudyPlan(hosts, cases)

    def write_outputs(self, config, plan: StudyPlan, results: dict[str, RunResult], outdir: Path, echo) -> None:
        rows = [remedy_row(results[c.label], c) for c in plan.cases]
        write_csv(outdir / "timeseries.csv", labelled_rows(results, plan.cases, "rows"))
        write_csv(outdir / "summary.csv", rows)
        write_csv(outdir / "depth_profile.csv", depth_rows(results, plan.cases))
        from .plots import plot_where_lithium_went  # matplotlib: only when writing figures

        runs = {c.protocol_label: results[c.label] for c in plan.cases}
        plot_where_lithium_went(outdir, runs, "depth_profile.png", col.TIME)
        echo(format_ranking(rows))


def first_growth_above(rows: list[dict], threshold_fraction: float = 0.01) -> float:
    """Plated capacity [mAh/cm^2] of the first row where lithium above the host exceeds
    ``threshold_fraction`` of the lithium plated (NaN if it never does)."""
    for r in rows:
        li = r[col.LITHIUM]
        if li > 0 and r[col.LITHIUM_ABOVE] > threshold_fraction * li:
            return float(r[col.PLATED_CAP])
    return float("nan")


def remedy_row(result: RunResult, case: Case) -> dict:
    """summary.csv row: the final deposit plus the top-deposition measures."""
    row = summary_row(result, case)
    li = row[col.LITHIUM_INSIDE] + row[col.LITHIUM_ABOVE]
    row[INSIDE_FRACTION] = row[col.LITHIUM_INSIDE] / li if li > 0 else float("nan")
    row[UTILISATION] = row[col.LITHIUM_INSIDE] / pore_capacity(result.host.phase, result.host.spacing * 1e6)
    row[FIRST_ABOVE] = first_growth_above(result.rows)
    return row


def depth_rows(results: dict[str, RunResult], cases: list[Case]) -> list[dict]:
    """depth_profile.csv: per case and host layer, the fraction of the layer's pore space
    that lithium fills after plating."""
    out = []
    for c in cases:
        r = results[c.label]
        fill = lithium_fill_profile(r.final_phase, r.host.phase)
        h_um = r.host.spacing * 1e6
        for z, f in enumerate(fill):
            out.append({"Host": c.host_label, "Protocol": c.protocol_label, "Height [um]": (z + 0.5) * h_um,
                        "Lithium fill of pore space [-]": f})
    return out


def format_ranking(rows: list[dict]) -> str:
    """Cases from the most lithium inside the pores to the least (one run each; ``--replicas``
    gives CIs)."""
    ranked = sorted(rows, key=lambda r: -r[INSIDE_FRACTION])
    lines = ["Ranking by the fraction of the lithium inside the host (this run):"]
    for i, r in enumerate(ranked, 1):
        first = r[FIRST_ABOVE]
        lines.append(f"  {i}. {r['Protocol']:28s} inside {100 * r[INSIDE_FRACTION]:5.1f} %, "
                     f"pore space used {100 * r[UTILISATION]:5.1f} %, above host "
                     f"{r[col.LITHIUM_ABOVE]:.3f} mAh/cm^2, first growth above host at "
                     + ("never" if not np.isfinite(first) else f"{first:.3f} mAh/cm^2"))
    return "\n".join(lines)




def run_top_deposition(config: SimulationConfig, outdir: str | Path, *, progress: bool = True,
                       workers: int | None = None, echo=print) -> dict[str, RunResult]:
    """Run all cases, write outputs into ``outdir``, return results by case label."""
    from .base import run_study

    return run_study(TopDeposition(), config, outdir, progress=progress, workers=workers, echo=echo)
