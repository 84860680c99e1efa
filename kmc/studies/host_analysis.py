"""Host geometry over replicas: ``python -m kmc host_analysis``.

Builds N realisations of each host kind (the configured host with ``host.kind`` replaced; the
replica streams the studies' ``--replicas`` use, so replica r is the host replica r of a study
plates) and reports what :func:`kmc.hosts.analysis.host_analysis` measures: porosity and its
profile, SA, SV, pore capacity, tortuosity, the narrowest throat on the best path and closed
pores, as mean [95 % CI] over the replicas.  No plating: seconds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..coupling.config import ConfigError, SimulationConfig
from ..coupling.io import write_csv, write_json
from ..coupling.streams import provenance, replica_sequence, study_streams
from ..hosts.analysis import host_analysis
from .ensemble import describe

DEFAULT_KINDS = ("random_porous", "porosity_gradient", "channel_array", "fibre_mat", "overlapping_spheres")
# the scalars compared across kinds (host.json holds everything, per replica 0)
SCALARS = {
    "porosity": "Porosity [-]",
    "SA": "SA [-]",
    "SV_per_um": "SV [um-1]",
    "pore_capacity_mAh_cm2": "Pore capacity [mAh.cm-2]",
    "tortuosity": "Tortuosity [-]",
    "throat_diameter_um": "Throat diameter [um]",
    "closed_pore_volume_fraction": "Closed pore volume fraction [-]",
}

HELP = """\
Measure host skeletons without plating them: N realisations of each host kind on the
configured grid (porosity, feature size, pitch, radius from the configuration), and their
porosity per layer, SA (conductor/electrolyte area per footprint), SV (that area per pore
volume), pore capacity, pore-space tortuosity from collector to top, the narrowest throat on
the best path, and closed pores, as mean [95 % CI] over the replicas. Replica r is the host
that replica r of a study's --replicas plates (same seed streams). Writes hosts.csv (one row per
host and replica), statistics.csv, host.json (replica 0, every measure) and
porosity_profiles.png.

Examples:
  python -m kmc host_analysis
  python -m kmc host_analysis --kinds random_porous channel_array --replicas 16
  python -m kmc host_analysis --set host.porosity=0.7 --set host.host_layers=32
"""


def analyse_hosts(config: SimulationConfig, kinds=DEFAULT_KINDS, replicas: int = 8) -> dict[str, list[dict]]:
    """kind -> the host_analysis of each replica's host (ConfigError for a kind the
    configuration cannot build)."""
    if int(replicas) != replicas or replicas < 1:
        raise ConfigError(f"replicas = {replicas!r}: must be an integer >= 1")
    if not kinds:
        raise ConfigError("kinds: name at least one host kind")
    specs = {}
    for kind in kinds:
        try:
            specs[kind] = config.host.model_copy(update={"kind": kind})
            SimulationConfig.model_validate({**config.model_dump(mode="json"),
                                             "host": specs[kind].model_dump(mode="json")})
        except ValueError as e:
            raise ConfigError(f"host.kind = {kind!r}: {e}") from None
    out: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for r in range(int(replicas)):
        host_ss = study_streams(replica_sequence(config.seed, r), 0)[0]
        for kind, spec in specs.items():
            try:
                out[kind].append(host_analysis(spec.build(host_ss)))
            except ValueError as e:
                raise ConfigError(f"host.kind = {kind!r}: {e}") from None
    return out


def statistics(analyses: dict[str, list[dict]]) -> list[dict]:
    """One row per kind and scalar: n, mean, std, 95 % CI (ensemble.describe)."""
    return [{"Host": kind, "Observable": label, **describe([a[key] for a in runs])}
            for kind, runs in analyses.items() for key, label in SCALARS.items()]


def write_host_analysis(config: SimulationConfig, analyses: dict[str, list[dict]], outdir) -> Path:
    """hosts.csv, statistics.csv, host.json, porosity_profiles.png and config.json in ``outdir``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    write_json(outdir / "config.json", provenance(config, kinds=list(analyses),
                                                  replicas=len(next(iter(analyses.values())))))
    write_csv(outdir / "hosts.csv", [{"Host": kind, "Replica": r, **{label: a[key] for key, label in SCALARS.items()}}
                                     for kind, runs in analyses.items() for r, a in enumerate(runs)])
    write_csv(outdir / "statistics.csv", statistics(analyses))
    write_json(outdir / "host.json", {kind: runs[0] for kind, runs in analyses.items()})
    plot_porosity_profiles(outdir / "porosity_profiles.png", analyses, config.host.spacing_um)
    return outdir


def plot_porosity_profiles(path, analyses: dict[str, list[dict]], spacing_um: float) -> None:
    """Porosity per layer against height, the replicas' mean and range, one line per kind."""
    from .plots import _save, plt

    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for kind, runs in analyses.items():
        prof = np.array([a["porosity_per_layer"] for a in runs])
        z = (np.arange(prof.shape[1]) + 0.5) * spacing_um
        (line,) = ax.plot(prof.mean(axis=0), z, lw=1.4, label=kind)
        ax.fill_betweenx(z, prof.min(axis=0), prof.max(axis=0), color=line.get_color(), alpha=0.12, lw=0)
    ax.set_xlabel("porosity of the layer [-]")
    ax.set_ylabel("height above the collector [um]")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"mean and range over {len(next(iter(analyses.values())))} replicas", fontsize=9)
    _save(fig, path)


def format_statistics(rows: list[dict]) -> str:
    """The statistics as one line per kind: mean [95 % CI] of each scalar."""
    lines = []
    for kind in dict.fromkeys(r["Host"] for r in rows):
        parts = [f"{r['Observable'].split(' [')[0]} {r['Mean']:.3g} [{r['CI95 low']:.3g}, {r['CI95 high']:.3g}]"
                 for r in rows if r["Host"] == kind]
        lines.append(f"{kind}: " + "; ".join(parts))
    return "\n".join(lines)
