"""Lithiophilic seeds and a lithiophilic-lithiophobic gradient: ``python -m kmc lithiophilic``.

One random porous conductive host skeleton, bare (eta_nuc 40 mV on every host voxel, as bare
Cu), with seeds (eta_nuc 0, as Au/Ag/Zn/ZnO) on 10 % of its conductive surface placed
uniformly, toward the bottom or toward the top, and the review's double-gradient framework:
bottom-weighted seeds with a surface activity falling from 1 at the collector to 0.1 at the
host top.  Compared on where the lithium goes (inside versus above the host, by host third),
how many separate deposits nucleated, and how strongly the lithium prefers the seeds (the
seed share of the host surface that lithium touches, over the seed share of the surface).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, LITHIUM
from continuum.faces import neighbour_index

from ..coupling import columns as col
from ..coupling.io import write_csv
from ..coupling.observables import REGION_NAMES
from ..coupling.simulation import RunResult
from ..hosts.analysis import deposit_topology
from .base import Case, HostComparison, StudyPlan, labelled_rows, summary_row

STUDY_OVERRIDES = ["host.nx=24", "host.ny=24", "host.host_layers=16", "host.reservoir_layers=16",
                   "kmc.transport=implicit", "protocol.current_density_mA_cm2=2", "protocol.capacity_mAh_cm2=0.2",
                   "snapshots=2"]
FULL_OVERRIDES = ["host.nx=48", "host.ny=48", "host.host_layers=32", "host.reservoir_layers=24",
                  "protocol.capacity_mAh_cm2=0.5"]
SEED_FRACTION = 0.1
HOSTS = {
    "Bare host": {},
    "Seeds uniform": {"seed_fraction": SEED_FRACTION, "seed_weighting": "uniform"},
    "Seeds bottom": {"seed_fraction": SEED_FRACTION, "seed_weighting": "bottom"},
    "Seeds top": {"seed_fraction": SEED_FRACTION, "seed_weighting": "top"},
    "Double gradient": {"seed_fraction": SEED_FRACTION, "seed_weighting": "bottom", "activity_bottom": 1.0,
                        "activity_top": 0.1},
}
KEY_OBSERVABLES = [col.LITHIUM_INSIDE, col.LITHIUM_ABOVE, col.MAX_HEIGHT, col.RMS_ROUGHNESS]
CLUSTERS = "Lithium clusters [-]"
SEED_ENRICHMENT = "Seed enrichment of lithium contacts [-]"

HELP = """\
Plate one porous host skeleton bare and with lithiophilic seeds (eta_nuc 0 on 10 % of the
conductive surface) placed uniformly, toward the bottom or toward the top, and as a double
gradient (bottom seeds plus a surface activity falling to 0.1 at the host top); compare
lithium inside versus above the host, the share plated in each host third, the number of
separate lithium deposits, and how much the lithium prefers the seeds.

Examples:
  python -m kmc lithiophilic
  python -m kmc lithiophilic --replicas 8
  python -m kmc lithiophilic --set host.seed_eta_nuc_V=0.01
"""


class Lithiophilic(HostComparison):
    name = "lithiophilic"
    help = "lithiophilic seeds (uniform, bottom, top) and a double-gradient host against a bare host"
    description = HELP
    overrides = STUDY_OVERRIDES
    full_overrides = FULL_OVERRIDES
    key_observables = KEY_OBSERVABLES
    host_variants = HOSTS  # one skeleton: the seeds draw from their own child stream of it

    def write_outputs(self, config, plan: StudyPlan, results: dict[str, RunResult], outdir: Path, echo) -> None:
        rows = [seed_row(results[c.label], c) for c in plan.cases]
        write_csv(outdir / "timeseries.csv", labelled_rows(results, plan.cases, "rows"))
        write_csv(outdir / "summary.csv", rows)
        from .plots import plot_where_lithium_went  # matplotlib: only when writing figures

        plot_where_lithium_went(outdir, {c.host_label: results[c.label] for c in plan.cases}, "fill.png",
                                col.PLATED_CAP)
        echo(format_table(rows))


def seed_enrichment(phase: np.ndarray, seed_mask: np.ndarray) -> float:
    """(seed share of the conductive host voxels that touch lithium) / (seed share of the
    conductive host voxels that touch electrolyte or lithium): 1 when lithium ignores the
    seeds, above 1 when it prefers them; NaN without seeds or without contacts."""
    host = phase == HOST_CONDUCTIVE
    li = phase == LITHIUM
    open_ = li | (phase == ELECTROLYTE)
    touch_li = np.zeros(phase.shape, dtype=bool)
    touch_open = np.zeros(phase.shape, dtype=bool)
    for d in range(6):
        nb, valid = neighbour_index(phase.shape, d)
        nbv = np.where(valid, nb, 0)
        touch_li |= valid & li.ravel()[nbv]
        touch_open |= valid & open_.ravel()[nbv]
    contact, surface = host & touch_li, host & touch_open
    seeds = np.asarray(seed_mask, dtype=bool)
    if not seeds.any() or not contact.any() or not (surface & seeds).any():
        return float("nan")
    return float((contact & seeds).sum() / contact.sum()) / float((surface & seeds).sum() / surface.sum())


def seed_row(result: RunResult, case: Case) -> dict:
    row = summary_row(result, case)
    last = result.rows[-1]
    for name in REGION_NAMES:
        key = col.reductions_share(name)
        row[key] = last.get(key, float("nan"))
    row[CLUSTERS] = deposit_topology(result.final_phase, result.connected)["clusters"]
    row[SEED_ENRICHMENT] = seed_enrichment(result.final_phase, result.host.seed_mask)
    return row


def format_table(rows: list[dict]) -> str:
    lines = ["Where the lithium went (this run; reductions by host third: bottom / middle / top / above):"]
    for r in rows:
        shares = " / ".join(f"{r[col.reductions_share(n)]:.2f}" for n in REGION_NAMES)
        enr = r[SEED_ENRICHMENT]
        lines.append(f"  {r['Host']:16s} inside {r[col.LITHIUM_INSIDE]:.3f}, above {r[col.LITHIUM_ABOVE]:.3f} "
                     f"mAh/cm^2; reductions {shares}; {r[CLUSTERS]} deposits; seed enrichment "
                     + ("-" if not np.isfinite(enr) else f"{enr:.1f}x"))
    return "\n".join(lines)
