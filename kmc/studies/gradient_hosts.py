"""Gradient and vertical-channel hosts against a random porous host of equal porosity:
``python -m kmc gradient_hosts``.

Three hosts of one footprint, thickness and mean porosity: random porous (uniform), a
porosity gradient (porosity + 0.2 at the collector falling linearly to porosity - 0.2 at the
top: open at the bottom, dense at the top) and vertical channels (square array of
cylindrical holes, radius fitted to the porosity).  Each is plated at one current up to its
pore capacity; the question is which fills from the bottom up and up to what capacity
before lithium grows above the host (published gradient hosts fill bottom-up to 3-8
mAh/cm^2; the pore capacity is the upper bound).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from continuum.constants import LITHIUM

from ..coupling import columns as col
from ..coupling.config import SimulationConfig
from ..coupling.io import write_csv
from ..coupling.observables import host_top_index, lithium_centre_height
from ..coupling.simulation import RunResult
from ..hosts.analysis import pore_capacity
from ..hosts.generators import channel_radius
from ..hosts.host import um_to_voxels
from .base import Case, HostComparison, StudyPlan, labelled_rows, summary_row
from .top_deposition import first_growth_above

STUDY_OVERRIDES = [
    "host.nx=24", "host.ny=24", "host.host_layers=24", "host.reservoir_layers=24", "host.porosity=0.6",
    "host.feature_size_um=3", "host.pitch_um=12", "kmc.transport=implicit",
    "protocol.current_density_mA_cm2=10", "protocol.capacity_mAh_cm2=2.5", "snapshots=4",
]
FULL_OVERRIDES = ["host.nx=48", "host.ny=48", "host.host_layers=48", "host.reservoir_layers=48",
                  "protocol.capacity_mAh_cm2=5"]
GRADIENT = 0.2  # porosity step from the mean to the collector and to the top
HOSTS = ("Random porous", "Porosity gradient", "Vertical channels")

KEY_OBSERVABLES = [col.LITHIUM_INSIDE, col.LITHIUM_ABOVE, col.MEAN_HEIGHT, col.MAX_HEIGHT]
FIRST_ABOVE = "Capacity at first growth above host [mAh.cm-2]"
PORE_CAPACITY = "Pore capacity [mAh.cm-2]"
FILL_HEIGHT = "Lithium centre height in host [-]"  # mean height of the lithium inside the host / host height

HELP = """\
Plate a random porous host, a porosity-gradient host (open at the collector, dense at the
top) and a vertical-channel host of the same mean porosity up to their pore capacity, and
compare how they fill: lithium per layer, the height of the lithium inside the host against
capacity, and the capacity at which lithium first grows above the host.

Examples:
  python -m kmc gradient_hosts
  python -m kmc gradient_hosts --replicas 8
  python -m kmc gradient_hosts --set host.porosity=0.7
"""


def host_specs(config: SimulationConfig) -> dict:
    """The three host specifications at the configured mean porosity."""
    h = config.host
    p = h.porosity
    if not (0.05 < p - GRADIENT and p + GRADIENT < 0.98):
        raise ValueError(f"host.porosity={p}: the gradient host needs {0.05 + GRADIENT:.2f} < porosity < "
                         f"{0.98 - GRADIENT:.2f}")
    pitch = int(round(um_to_voxels(h.pitch_um, h.spacing_um)))
    radius = channel_radius(p, pitch) * h.spacing_um  # the voxelised porosity nearest p
    return {
        "Random porous": h.model_copy(update={"kind": "random_porous"}),
        "Porosity gradient": h.model_copy(update={"kind": "porosity_gradient", "porosity": p + GRADIENT,
                                                  "porosity_top": p - GRADIENT}),
        "Vertical channels": h.model_copy(update={"kind": "channel_array", "channels_are_holes": True,
                                                  "radius_um": radius}),
    }


class GradientHosts(HostComparison):
    name = "gradient_hosts"
    help = "porosity-gradient and vertical-channel hosts against random porous ones"
    description = HELP
    overrides = STUDY_OVERRIDES
    full_overrides = FULL_OVERRIDES
    key_observables = KEY_OBSERVABLES
    host_variants = dict.fromkeys(HOSTS)  # labels; the specifications depend on the config

    def host_specs(self, config):
        return host_specs(config)


    def write_outputs(self, config, plan: StudyPlan, results: dict[str, RunResult], outdir: Path, echo) -> None:
        rows = [fill_row(results[c.label], c) for c in plan.cases]
        write_csv(outdir / "timeseries.csv", labelled_rows(results, plan.cases, "rows"))
        write_csv(outdir / "summary.csv", rows)
        from .plots import plot_where_lithium_went  # matplotlib: only when writing figures

        runs = {c.host_label: results[c.label] for c in plan.cases}
        plot_where_lithium_went(outdir, runs, "fill.png", col.PLATED_CAP)
        echo(format_table(rows))


def fill_height(phase: np.ndarray, host_phase: np.ndarray) -> float:
    """Mean height of the lithium inside the host over the host height (0 at the collector, 1
    at the host top; 0.5 for a uniform fill; NaN with no lithium inside)."""
    return lithium_centre_height(phase == LITHIUM, host_top_index(host_phase))


def fill_row(result: RunResult, case: Case) -> dict:
    row = summary_row(result, case)
    row[PORE_CAPACITY] = pore_capacity(result.host.phase, result.host.spacing * 1e6)
    row[FIRST_ABOVE] = first_growth_above(result.rows)
    row[FILL_HEIGHT] = fill_height(result.final_phase, result.host.phase)
    return row


def format_table(rows: list[dict]) -> str:
    lines = ["Host fill (this run):"]
    for r in rows:
        first = r[FIRST_ABOVE]
        lines.append(f"  {r['Host']:18s} pore capacity {r[PORE_CAPACITY]:.2f} mAh/cm^2; lithium inside "
                     f"{r[col.LITHIUM_INSIDE]:.3f}, above {r[col.LITHIUM_ABOVE]:.3f} mAh/cm^2; centre of the "
                     f"lithium inside at {r[FILL_HEIGHT]:.2f} of the host height; first growth above the host at "
                     + ("never" if not np.isfinite(first) else f"{first:.2f} mAh/cm^2"))
    return "\n".join(lines)


