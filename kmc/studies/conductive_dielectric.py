"""Conductive-dielectric banded hosts: ``python -m kmc conductive_dielectric``.

One channel (or pillar) skeleton four ways: all conductive, with a dielectric skin on its top
third, and with walls that alternate conductive and dielectric bands along the height
(``host.band_period_um``, ``host.band_dielectric_fraction``) wired two ways
(:func:`~kmc.hosts.decorations.band_dielectric`): 'isolated' bands run through the wall, so a
conductive band above a dielectric one floats until lithium grown from below touches it and
makes it equipotential with the collector (the self-correction: the conductor network is
relabelled every macro-step through conductive host and lithium alike, and only connected
conductors react); 'core' bands are a dielectric skin over a conductive core that keeps every
band live from the start.  Each host is plated at one current.

Measures: lithium per layer against plated capacity (from the run's snapshots), when each
floating piece of conductor became connected (bracketed by the snapshots on either side),
pore-space utilisation at the end and when lithium first grows above the host, and the
capacity at which it does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC
from continuum.grid import collector_connected, face_dilate

from ..coupling import columns as col
from ..coupling.io import read_vti, write_csv
from ..coupling.observables import host_top_index, lithium_fill_profile
from ..coupling.simulation import RunResult
from ..hosts.analysis import floating_conductors, pore_capacity
from ..hosts.generators import channel_radius
from ..hosts.host import Host, um_to_voxels
from .base import Case, HostComparison, StudyPlan, labelled_rows, summary_row
from .gradient_hosts import fill_height
from .top_deposition import first_growth_above

STUDY_OVERRIDES = [
    "host.kind=channel_array", "host.channels_are_holes=true", "host.nx=24", "host.ny=24", "host.host_layers=24",
    "host.reservoir_layers=24", "host.porosity=0.6", "host.pitch_um=12", "host.band_period_um=8",
    "host.band_dielectric_fraction=0.5", "kmc.transport=implicit", "protocol.current_density_mA_cm2=10",
    "protocol.capacity_mAh_cm2=2.5", "snapshots=16",
]
FULL_OVERRIDES = ["host.nx=48", "host.ny=48", "host.host_layers=48", "host.reservoir_layers=48",
                  "host.band_period_um=16", "protocol.capacity_mAh_cm2=5", "snapshots=24"]
DIELECTRIC_TOP = 1.0 / 3.0  # the dielectric-top host coats the top third of the host layers
HOSTS = {
    "All conductive": {"band_period_um": 0.0, "dielectric_top_fraction": 0.0},
    "Dielectric top": {"band_period_um": 0.0, "dielectric_top_fraction": DIELECTRIC_TOP},
    "Bands, isolated": {"band_wiring": "isolated", "dielectric_top_fraction": 0.0},
    "Bands, conductive core": {"band_wiring": "core", "dielectric_top_fraction": 0.0},
}

KEY_OBSERVABLES = [col.LITHIUM_INSIDE, col.LITHIUM_ABOVE, col.MEAN_HEIGHT, col.MAX_HEIGHT]
PORE_CAPACITY = "Pore capacity [mAh.cm-2]"
FIRST_ABOVE = "Capacity at first growth above host [mAh.cm-2]"
UTILISATION = "Pore space utilisation [-]"  # lithium inside / pore capacity, at the end
UTILISATION_FIRST_ABOVE = "Pore space utilisation at first growth above host [-]"
FILL_HEIGHT = "Lithium centre height in host [-]"
FLOATING = "Floating conductor at start [-]"  # conductive host voxels not connected through host
FLOATING_CONNECTED = "Floating conductor connected at end [-]"  # share of those voxels
FIRST_CONNECTION = "Capacity at first connection [mAh.cm-2]"  # first snapshot a floating piece is live

HELP = """\
Plate one channel host (24 x 24 um, 24 um thick, porosity 0.6 in the quick default) four
ways: all conductive, a dielectric skin on its top third, and walls of alternating 4 um
conductive and 4 um dielectric bands, either through the wall (a conductive band above a
dielectric one floats until lithium from below touches it and connects it) or as a
dielectric skin over a conductive core. Outputs: lithium per layer against capacity
(layers.csv, filling.png), when each floating band was connected (connections.csv), pore
space utilisation, and the capacity at which lithium first grows above the host.

Examples:
  python -m kmc conductive_dielectric
  python -m kmc conductive_dielectric --replicas 8
  python -m kmc conductive_dielectric --set host.band_period_um=12
  python -m kmc conductive_dielectric --set host.channels_are_holes=false   (pillars)
"""


def _pitch(h) -> int:
    """The channel pitch in voxels."""
    return int(round(um_to_voxels(h.pitch_um, h.spacing_um)))


def host_specs(config) -> dict:
    """The four host specifications on one skeleton: the channel (or pillar) radius that gives
    the voxelised porosity nearest ``host.porosity``; bands as ``host.band_*`` say."""
    h = config.host
    if h.kind != "channel_array":
        raise ValueError(f"host.kind={h.kind!r}: conductive_dielectric compares channel or pillar hosts "
                         "(host.kind=channel_array; host.channels_are_holes picks which)")
    if h.band_period_um <= 0:
        raise ValueError("host.band_period_um=0: the banded hosts need a band period > 0 um")
    kind = "channels" if h.channels_are_holes else "pillars"
    radius = channel_radius(h.porosity, _pitch(h), kind) * h.spacing_um
    return {label: h.model_copy(update={"radius_um": radius, **update}) for label, update in HOSTS.items()}


class ConductiveDielectric(HostComparison):
    name = "conductive_dielectric"
    help = "channel hosts with conductive/dielectric wall bands against all-conductive and dielectric-top ones"
    description = HELP
    overrides = STUDY_OVERRIDES
    full_overrides = FULL_OVERRIDES
    key_observables = KEY_OBSERVABLES
    host_variants = dict.fromkeys(HOSTS)  # labels; the specifications depend on the config

    def host_specs(self, config):
        return host_specs(config)

    def case_summary(self, result: RunResult) -> dict:
        """The run's own scalars from its rows (ensembles add them to each replica's end)."""
        return fill_summary(result)

    def write_outputs(self, config, plan: StudyPlan, results: dict[str, RunResult], outdir: Path, echo) -> None:
        runs = {c.host_label: results[c.label] for c in plan.cases}
        states = {k: snapshot_states(r, outdir / "snapshots") for k, r in runs.items()}
        events = {k: connection_events(r.host.phase, states[k]) for k, r in runs.items()}
        rows = [band_row(results[c.label], c, events[c.host_label]) for c in plan.cases]
        labels = [{"Host": c.host_label, "Protocol": c.protocol_label} for c in plan.cases]
        write_csv(outdir / "timeseries.csv", labelled_rows(results, plan.cases, "rows"))
        write_csv(outdir / "summary.csv", rows)
        write_csv(outdir / "layers.csv", [{**lab, **r} for lab in labels
                                          for r in layer_rows(runs[lab["Host"]], states[lab["Host"]])])
        write_csv(outdir / "connections.csv", [{**lab, **e} for lab in labels for e in events[lab["Host"]]])
        from .plots import plot_cross_sections, plot_fill, plot_layer_filling  # matplotlib: only for figures

        shift = config.host.ny // 2 - _pitch(config.host) // 2  # roll y so the middle section cuts the axes
        plot_cross_sections(outdir / "cross_sections.png",
                            {k: (np.roll(r.final_phase, shift, 1), np.roll(r.connected, shift, 1))
                             for k, r in runs.items()}, config.host.spacing_um * 1e-6,
                            title="Lithium after plating (x-z section along the channel axes)")
        plot_fill(outdir / "fill.png", runs, col.PLATED_CAP)
        plot_layer_filling(outdir / "filling.png", {
            k: filling_panel(runs[k], states[k], events[k], row[FIRST_ABOVE]) for k, row in zip(runs, rows)})
        echo(format_table(rows, events))


# ----------------------------------------------------------------------------------------
# states over the run
# ----------------------------------------------------------------------------------------
def snapshot_states(result: RunResult, folder: Path) -> list[tuple[float, float, np.ndarray]]:
    """(time [s], plated capacity [mAh/cm^2], phase) at the start, at every snapshot the run
    wrote into ``folder`` and at the end, in time order."""
    rows = result.rows
    times = np.array([r[col.TIME] for r in rows])

    def capacity(t):
        return float(rows[int(np.argmin(np.abs(times - t)))][col.PLATED_CAP])  # snapshots follow a step

    out = [(0.0, 0.0, result.host.phase)]
    for t, name in result.snapshots:
        path = Path(folder) / name
        if t > 0 and path.is_file():
            out.append((float(t), capacity(t), read_vti(path)[0]["phase"].astype(np.uint8)))
    t_end = float(rows[-1][col.TIME])
    if out[-1][0] < t_end * (1 - 1e-9):
        out.append((t_end, float(rows[-1][col.PLATED_CAP]), result.final_phase))
    return out


def connection_events(host_phase: np.ndarray, states) -> list[dict]:
    """Per floating piece of conductive host (:func:`~kmc.hosts.analysis.floating_conductors`):
    its layers and size, and the first state at which it is connected to the collector
    (through lithium) with the state before it: the connection happened between the two."""
    lab, n = floating_conductors(host_phase)
    live = [collector_connected(ph) for _, _, ph in states]
    out = []
    for k in range(1, n + 1):
        piece = lab == k
        z = np.flatnonzero(piece.any(axis=(0, 1)))
        first = next((i for i, c in enumerate(live) if c[piece].all()), None)
        out.append({
            "Piece [-]": k, "Bottom layer [-]": int(z[0]), "Top layer [-]": int(z[-1]),
            "Voxels [-]": int(np.count_nonzero(piece)),
            "Connected at end [-]": first is not None,
            "Time connected [s]": states[first][0] if first is not None else float("nan"),
            "Capacity connected [mAh.cm-2]": states[first][1] if first is not None else float("nan"),
            "Capacity last unconnected [mAh.cm-2]": states[(first or len(states)) - 1][1],
        })
    return out


def wall_kinds(host_phase: np.ndarray) -> list[str]:
    """Per layer 1 .. host top: what the pore walls are made of (the host voxels with an
    electrolyte face): 'conductive' (connected to the collector through host), 'floating
    conductive', 'dielectric', or 'mixed' when more than one."""
    top = host_top_index(host_phase)
    skin = face_dilate(host_phase == ELECTROLYTE)
    base = collector_connected(host_phase)
    kinds = []
    for z in range(1, top):
        ph, s, c = host_phase[:, :, z], skin[:, :, z], base[:, :, z]
        cond = s & (ph == HOST_CONDUCTIVE)
        parts = [name for name, m in (("conductive", cond & c), ("floating conductive", cond & ~c),
                                      ("dielectric", s & (ph == HOST_DIELECTRIC))) if m.any()]
        kinds.append(parts[0] if len(parts) == 1 else ("mixed" if parts else ""))
    return kinds


def layer_rows(result: RunResult, states) -> list[dict]:
    """layers.csv: per state and layer (collector excluded, host and reservoir), the
    lithium fill of the layer's pore space."""
    host = result.host.phase
    h_um = result.host.spacing * 1e6
    walls = wall_kinds(host)
    out = []
    for t, q, ph in states:
        fill = lithium_fill_profile(ph, host)
        for z in range(1, fill.size):
            out.append({col.TIME: t, col.PLATED_CAP: q, "Height [um]": (z - 0.5) * h_um,
                        "Wall [-]": walls[z - 1] if z <= len(walls) else "above host",
                        "Lithium fill of pore space [-]": float(fill[z])})
    return out


# ----------------------------------------------------------------------------------------
# per-host summary
# ----------------------------------------------------------------------------------------
def fill_summary(result: RunResult) -> dict:
    """Pore-space utilisation at the end and at the first growth above the host, the capacity
    of that growth (NaN: never), and the centre height of the lithium inside the host."""
    host: Host = result.host
    cap = pore_capacity(host.phase, host.spacing * 1e6)
    first = first_growth_above(result.rows)
    at = next((r for r in result.rows if r[col.PLATED_CAP] == first), None)
    return {PORE_CAPACITY: cap, UTILISATION: result.summary[col.LITHIUM_INSIDE] / cap, FIRST_ABOVE: first,
            UTILISATION_FIRST_ABOVE: at[col.LITHIUM_INSIDE] / cap if at is not None else float("nan"),
            FILL_HEIGHT: fill_height(result.final_phase, host.phase)}


def band_row(result: RunResult, case: Case, events: list[dict]) -> dict:
    """summary.csv row: the final deposit, :func:`fill_summary`, and the floating conductor's
    fate: its share of the conductive host, the share of it connected by the end, and the
    first snapshot capacity at which a piece of it was connected."""
    row = {**summary_row(result, case), **fill_summary(result)}
    n_float = sum(e["Voxels [-]"] for e in events)
    n_cond = int(np.count_nonzero(result.host.phase[:, :, 1:] == HOST_CONDUCTIVE))
    row[FLOATING] = n_float / n_cond if n_cond else 0.0
    row[FLOATING_CONNECTED] = (sum(e["Voxels [-]"] for e in events if e["Connected at end [-]"]) / n_float
                               if n_float else float("nan"))
    caps = [e["Capacity connected [mAh.cm-2]"] for e in events if np.isfinite(e["Capacity connected [mAh.cm-2]"])]
    row[FIRST_CONNECTION] = min(caps) if caps else float("nan")
    return row


def filling_panel(result: RunResult, states, events: list[dict], first_above: float) -> dict:
    """What :func:`~kmc.studies.plots.plot_layer_filling` draws for one host."""
    host = result.host.phase
    top = host_top_index(host)
    return {"capacity": np.array([q for _, q, _ in states]),
            "fill": np.array([lithium_fill_profile(ph, host)[1:] for _, _, ph in states]).T,
            "spacing_um": result.host.spacing * 1e6, "host_top": top - 1, "walls": wall_kinds(host),
            "connections": [e["Capacity connected [mAh.cm-2]"] for e in events], "first_above": first_above}


def format_table(rows: list[dict], events: dict[str, list[dict]]) -> str:
    lines = ["Banded hosts (this run; floating bands connected between the capacities of two snapshots):"]
    for r in rows:
        first = r[FIRST_ABOVE]
        ev = events[r["Host"]]
        conn = ", ".join(
            f"layers {e['Bottom layer [-]']}-{e['Top layer [-]']} at "
            + (f"{e['Capacity last unconnected [mAh.cm-2]']:.2f}-{e['Capacity connected [mAh.cm-2]']:.2f}"
               if e["Connected at end [-]"] else "never") for e in ev)
        lines.append(f"  {r['Host']:24s} inside {r[col.LITHIUM_INSIDE]:.2f}, above {r[col.LITHIUM_ABOVE]:.3f} "
                     f"mAh/cm^2; pores used {100 * r[UTILISATION]:.0f} %; first growth above the host at "
                     + ("never" if not np.isfinite(first) else
                        f"{first:.2f} mAh/cm^2 ({100 * r[UTILISATION_FIRST_ABOVE]:.0f} % of the pores filled)")
                     + (f"; floating bands connected (mAh/cm^2): {conn}" if ev else ""))
    return "\n".join(lines)
