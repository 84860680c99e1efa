"""Surface area against pore volume, the review's two stages: ``python -m kmc sa_sv``.

A family of random porous conductive hosts of one thickness, pore feature size and porosity
swept (so their surface area per footprint, SA, and per pore volume, SV, differ, and not in
step), each held at a potential (``hold at -50 mV for 600 s``; the current is the output) and,
for comparison, plated at a constant current for the same time.  The review's picture: under a
held overpotential the early current scales with SA (electron transfer limits), the later one
falls as ion transport in the pores limits it, inversely with SV.

The early current is the hold's initial current (the field current of its first step: the
kinetic current of the bare host, which the KMC passes in expectation), the late current the
mean current the KMC passed over the hold's last quarter, the stage boundary the time at which
the hold's field current has fallen to 0.9 of its initial value (``simulation.hold_summary``).
Fits: early current against SA (the bare host's kinetics give the slope in closed form,
``i0 exp(-alpha_c f (V + eta_nuc))`` per unit SA when nothing but the interface drops the
potential) and late current against 1/SV (and porosity); galvanostatically, the cell potential of the first
step against ln SA (closed-form slope ``1 / (alpha_c f)``: the same cathodic branch).  SA and
SV are :func:`kmc.hosts.analysis.host_analysis`'s.

Transport is the mean-field (implicit) mode, as in the other host studies: the question is
where the current goes and how much flows, which the mean-field salt decides.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..coupling import columns as col
from ..coupling.config import ConfigError, SimulationConfig
from ..coupling.io import write_csv
from ..coupling.simulation import HOLD_LATE_FRACTION, RunResult
from ..coupling.units import MA_PER_CM2, MAH_PER_CM2
from ..coupling.waveforms import Segment, parse_step
from ..hosts.analysis import host_analysis
from .base import Case, HostComparison, StudyPlan, labelled_rows, summary_row

STUDY_OVERRIDES = [
    "host.kind=random_porous", "host.nx=20", "host.ny=20", "host.host_layers=20", "host.reservoir_layers=16",
    "kmc.transport=implicit", "kmc.max_macro_step_s=10", "protocol.kind=schedule",
    'protocol.steps=["hold at -50 mV for 600 s"]', "protocol.current_density_mA_cm2=8", "snapshots=0",
]
FULL_OVERRIDES = ["host.nx=32", "host.ny=32", "host.host_layers=24", "host.reservoir_layers=16",
                  "kmc.max_macro_step_s=5", "snapshots=4"]
# feature size [um] and porosity: a 2 x 2 sweep and its centre (SA and SV do not move together)
HOSTS = {
    "Features 1.5 um, porosity 0.5": {"feature_size_um": 1.5, "porosity": 0.5},
    "Features 1.5 um, porosity 0.8": {"feature_size_um": 1.5, "porosity": 0.8},
    "Features 2.5 um, porosity 0.65": {"feature_size_um": 2.5, "porosity": 0.65},
    "Features 4 um, porosity 0.5": {"feature_size_um": 4.0, "porosity": 0.5},
    "Features 4 um, porosity 0.8": {"feature_size_um": 4.0, "porosity": 0.8},
}
POTENTIOSTATIC, GALVANOSTATIC = "Potentiostatic", "Galvanostatic"

KEY_OBSERVABLES = [col.HOLD_INITIAL_CURRENT, col.HOLD_LATE_CURRENT, col.PLATED_CAP, col.LITHIUM_ABOVE]
SA, SV = "SA [-]", "SV [um-1]"
POROSITY, FEATURE = "Porosity [-]", "Feature size [um]"
EARLY_POTENTIAL = "Initial cell potential [V]"  # galvanostatic: the first step's (bare host kinetics)
LATE_POTENTIAL = "Late cell potential [V]"  # galvanostatic: time-weighted over the last quarter

HELP = """\
Hold five random porous hosts of one thickness (pore feature size 1.5-4 um, porosity 0.5-0.8:
different surface area per footprint SA and per pore volume SV) at -50 mV for 600 s, and plate
them at 8 mA/cm^2 for the same time; show the review's two stages: the early current against
SA and the late current against 1/SV (fits with slope and R^2), current against time per host
with the stage boundary (the current at 0.9 of its initial value) marked, and the galvanostatic
cell potential. The hold is the schedule step in protocol.steps; the galvanostatic current is
protocol.current_density_mA_cm2.

Examples:
  python -m kmc sa_sv
  python -m kmc sa_sv --replicas 8          (per-case statistics)
  python scenarios/sa_sv.py runs/sa_sv8 8   (and every replica's fits: fit_statistics.csv)
  python -m kmc sa_sv --set 'protocol.steps=["hold at -80 mV for 300 s"]'
"""


def held_segment(config: SimulationConfig) -> Segment:
    """The study's hold: protocol.steps must be exactly one potentiostatic hold."""
    p = config.protocol
    segs = p.segments() if p.kind == "schedule" else []
    if len(segs) != 1 or not segs[0].potentiostatic:
        raise ConfigError(f"sa_sv: protocol.kind must be 'schedule' with protocol.steps one hold, e.g. "
                          f"[\"hold at -50 mV for 600 s\"]; got kind {p.kind!r}, steps {p.steps!r}")
    return segs[0]


class SaSv(HostComparison):
    name = "sa_sv"
    help = "hosts of different SA and SV under a held potential and a constant current: the two stages"
    description = HELP
    overrides = STUDY_OVERRIDES
    full_overrides = FULL_OVERRIDES
    key_observables = KEY_OBSERVABLES
    host_variants = HOSTS

    def protocols(self, config):
        hold = held_segment(config)
        j = config.protocol.current_density_mA_cm2
        return {POTENTIOSTATIC: [hold], GALVANOSTATIC: [parse_step(f"plate at {j!r} mA/cm^2 for {hold.duration!r} s")]}

    def write_outputs(self, config, plan: StudyPlan, results: dict[str, RunResult], outdir: Path, echo) -> None:
        hosts = {label: host_analysis(h) for label, h in plan.hosts.items()}
        rows = [stage_row(results[c.label], c, hosts[c.host_label]) for c in plan.cases]
        fits = fit_rows(rows, config)
        write_csv(outdir / "timeseries.csv", labelled_rows(results, plan.cases, "rows"))
        write_csv(outdir / "summary.csv", rows)
        write_csv(outdir / "fits.csv", fits)
        plot_stages(outdir / "current.png", config, {c.host_label: results[c.label] for c in plan.cases
                                            if c.protocol_label == POTENTIOSTATIC},
                   {c.host_label: results[c.label] for c in plan.cases if c.protocol_label == GALVANOSTATIC},
                   rows, fits)
        echo(format_table(rows, fits))


# -- measures -----------------------------------------------------------------------------
def late_mean(rows: list[dict], column: str, fraction: float = HOLD_LATE_FRACTION) -> float:
    """Time-weighted mean of ``column`` over the run's last ``fraction`` of time (each row stands
    for the step it ends)."""
    t_end = rows[-1][col.TIME]
    t_from = t_end - fraction * (t_end - rows[0][col.TIME])
    num = den = 0.0
    for prev, row in zip(rows, rows[1:]):
        dt = row[col.TIME] - max(prev[col.TIME], t_from)
        if dt > 0 and np.isfinite(row[column]):
            num += row[column] * dt
            den += dt
    return num / den if den > 0 else float("nan")


def stage_measures(result: RunResult, host_label: str, protocol_label: str, host: dict) -> dict:
    """The study's measures of one case: the host's SA, SV, porosity (``host``: its
    host_analysis); the hold's initial and late current and stage boundary, or the
    constant-current run's initial and late cell potential."""
    out = {SA: host["SA"], SV: host["SV_per_um"], POROSITY: host["porosity"],
           FEATURE: HOSTS.get(host_label, {}).get("feature_size_um", float("nan"))}
    for key in (col.HOLD_INITIAL_CURRENT, col.HOLD_LATE_CURRENT, col.HOLD_STAGE_BOUNDARY):
        out[key] = result.summary.get(key, float("nan"))
    potential = protocol_label == GALVANOSTATIC
    out[EARLY_POTENTIAL] = result.rows[1][col.POTENTIAL] if potential else float("nan")
    out[LATE_POTENTIAL] = late_mean(result.rows, col.POTENTIAL) if potential else float("nan")
    return out


def stage_row(result: RunResult, case: Case, host: dict) -> dict:
    """summary.csv row: the final deposit (base.summary_row) and :func:`stage_measures`."""
    return {**summary_row(result, case), **stage_measures(result, case.host_label, case.protocol_label, host)}


def linear_fit(x, y) -> tuple[float, float, float]:
    """Least-squares line through (x, y): (slope, intercept, R^2); NaNs where fewer than 2 points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2 or np.ptp(x) == 0:
        return float("nan"), float("nan"), float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(((y - (slope * x + intercept)) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return float(slope), float(intercept), r2


def kinetic_slopes(config: SimulationConfig) -> tuple[float, float]:
    """Closed forms of the bare host's cathodic branch (c = c_ref, no drop but the interface's):
    the hold's initial current per unit SA [mA/cm^2] and the galvanostatic first-step potential
    per e-fold of SA [V]."""
    p = config.physics
    k = p.kinetics
    v = held_segment(config).held_potential
    per_sa = k.exchange_current_density * math.exp(-k.alpha_c * p.f * (v + config.host.bare_eta_nuc_V))
    return per_sa / MA_PER_CM2, 1.0 / (k.alpha_c * p.f)


FIT_COLUMNS = ("Protocol", "Observable", "Against", "Slope", "Intercept", "R2", "n", "Closed-form slope")


def fit_rows(rows: list[dict], config: SimulationConfig) -> list[dict]:
    """fits.csv: the hold's initial current against SA and late current against 1/SV (and, what
    the model's late current follows, against porosity), and the galvanostatic first-step
    potential against ln SA, with the closed-form kinetic slopes."""
    hold = [r for r in rows if r["Protocol"] == POTENTIOSTATIC]
    galv = [r for r in rows if r["Protocol"] == GALVANOSTATIC]
    per_sa, per_efold = kinetic_slopes(config)
    out = []
    for prot, sel, y, xname, x, closed in (
            (POTENTIOSTATIC, hold, col.HOLD_INITIAL_CURRENT, SA, lambda r: r[SA], per_sa),
            (POTENTIOSTATIC, hold, col.HOLD_LATE_CURRENT, "1/SV [um]", lambda r: 1.0 / r[SV], float("nan")),
            (POTENTIOSTATIC, hold, col.HOLD_LATE_CURRENT, POROSITY, lambda r: r[POROSITY], float("nan")),
            (GALVANOSTATIC, galv, EARLY_POTENTIAL, "ln SA [-]", lambda r: math.log(r[SA]), per_efold)):
        slope, intercept, r2 = linear_fit([x(r) for r in sel], [r[y] for r in sel])
        out.append(dict(zip(FIT_COLUMNS, (prot, y, xname, slope, intercept, r2, len(sel), closed))))
    return out


def format_table(rows: list[dict], fits: list[dict]) -> str:
    lines = ["Two stages (this run):"]
    for r in rows:
        if r["Protocol"] == POTENTIOSTATIC:
            b = r[col.HOLD_STAGE_BOUNDARY]
            lines.append(f"  {r['Host']:32s} SA {r[SA]:5.2f}, SV {r[SV]:.3f}/um: hold current initial "
                         f"{r[col.HOLD_INITIAL_CURRENT]:.2f}, late {r[col.HOLD_LATE_CURRENT]:.2f} mA/cm^2, stage "
                         "boundary " + ("not reached" if not np.isfinite(b) else f"{b:.2f} s"))
    for r in rows:
        if r["Protocol"] == GALVANOSTATIC:
            lines.append(f"  {r['Host']:32s} constant current: cell potential initial {1e3 * r[EARLY_POTENTIAL]:.1f}, "
                         f"late {1e3 * r[LATE_POTENTIAL]:.1f} mV")
    for f in fits:
        lines.append(f"  fit {f['Protocol']} {f['Observable']} against {f['Against']}: slope {f['Slope']:.4g} "
                     f"(closed form {f['Closed-form slope']:.4g}), R^2 {f['R2']:.3f}")
    return "\n".join(lines)


# -- figure ---------------------------------------------------------------------------------
def packet_capacity(config: SimulationConfig, result: RunResult) -> float:
    """One packet over the run's footprint [mAh/cm^2]."""
    nx, ny, _ = result.host.phase.shape
    h = result.host.spacing
    return config.physics.packet_charge(h) / (nx * ny * h**2) / MAH_PER_CM2
def windowed_current(rows: list[dict], packet_capacity: float, packets: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """The current the KMC passed [mA/cm^2] at each row since the last row at least ``packets``
    packets earlier (``packet_capacity`` [mAh/cm^2]: one packet over the footprint); rows with
    fewer packets behind them are left out (a short step passes a few packets or none)."""
    t = np.array([r[col.TIME] for r in rows])
    q = np.array([r[col.PLATED_CAP] for r in rows])
    start = np.searchsorted(q, q - packets * packet_capacity, side="right") - 1  # q rises while plating
    keep = (start >= 0) & (t > t[np.maximum(start, 0)])
    s = start[keep]
    return t[keep], (q[keep] - q[s]) * 3600.0 / (t[keep] - t[s])


def plot_stages(path, config: SimulationConfig, held: dict[str, RunResult], constant: dict[str, RunResult],
                rows: list[dict], fits: list[dict]) -> None:
    """current.png: the hold's current against time per host (field current as lines, the KMC's
    current over its last 50 packets as dots, the stage boundary as a cross), the fits of the initial current
    against SA and of the late current against 1/SV, and the constant-current cell potential."""
    import matplotlib.pyplot as plt

    from .plots import _save

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    (ax_i, ax_sa), (ax_v, ax_sv) = axes
    hold = {r["Host"]: r for r in rows if r["Protocol"] == POTENTIOSTATIC}
    for k, (label, res) in enumerate(held.items()):
        c = f"C{k}"
        t = np.array([r[col.TIME] for r in res.rows[:-1]])  # a row's field current: its step's start
        field = [r[col.FIELD_CURRENT] for r in res.rows[1:]]
        ax_i.plot(t[1:], field[1:], color=c, lw=1.3,
                  label=f"{label} (SA {hold[label][SA]:.1f}, SV {hold[label][SV]:.2f}/um)")
        tw, jw = windowed_current(res.rows, packet_capacity(config, res))
        ax_i.plot(tw, jw, ".", color=c, ms=2.5, alpha=0.5)
        b = hold[label][col.HOLD_STAGE_BOUNDARY]
        if np.isfinite(b):
            ax_i.plot([b], [np.interp(b, t, field)], "x", color=c, ms=9, mew=2)
    ax_i.set_xscale("log")
    ax_i.set_xlabel("time in the hold [s]")
    ax_i.set_ylabel("current density [mA/cm^2]\n(lines: field, dots: KMC over 50 packets)")
    ax_i.set_title("hold: x = stage boundary (current at 0.9 of initial)", fontsize=9)
    ax_i.legend(fontsize=6.5)
    for label, res in constant.items():
        ax_v.plot([r[col.TIME] for r in res.rows[1:]], [1e3 * r[col.POTENTIAL] for r in res.rows[1:]], lw=1.2,
                  label=label)
    ax_v.set_xlabel("time [s]")
    ax_v.set_ylabel("cell potential [mV]")
    ax_v.set_title("constant current", fontsize=9)
    fit = {(f["Observable"], f["Against"]): f for f in fits}
    for ax, y, xkey, xf in ((ax_sa, col.HOLD_INITIAL_CURRENT, SA, lambda r: r[SA]),
                            (ax_sv, col.HOLD_LATE_CURRENT, "1/SV [um]", lambda r: 1.0 / r[SV])):
        x = np.array([xf(r) for r in hold.values()])
        ax.plot(x, [r[y] for r in hold.values()], "o")
        f = fit[(y, xkey)]
        xs = np.linspace(0, x.max() * 1.1, 50)
        ax.plot(xs, f["Slope"] * xs + f["Intercept"], "k-", lw=1,
                label=f"fit: slope {f['Slope']:.3g}, R^2 {f['R2']:.3f}")
        if np.isfinite(f["Closed-form slope"]):
            ax.plot(xs, f["Closed-form slope"] * xs, "k:", lw=1,
                    label=f"bare-host kinetics: {f['Closed-form slope']:.3g}")
        ax.set_xlabel(xkey)
        ax.set_ylabel(y)
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


# -- ensembles ------------------------------------------------------------------------------
def replica_cases(config: SimulationConfig, ss, run=None) -> list:
    """What one replica of :func:`run_sa_sv_ensemble` runs: the study's cases (as
    ``python -m kmc sa_sv --replicas N`` does), each case's summary also carrying the study's
    measures (:func:`stage_measures`), so that every replica's record holds what its fits need."""
    from .ensemble import study_cases

    out = study_cases("sa_sv")(config, ss, run)
    analysed: dict[str, dict] = {}
    for labels, res in out:
        if labels["Host"] not in analysed:
            analysed[labels["Host"]] = host_analysis(res.host)
        res.summary.update(stage_measures(res, labels["Host"], labels["Protocol"], analysed[labels["Host"]]))
    return out


def replica_fits(rows: list[dict], config: SimulationConfig) -> list[dict]:
    """The fits (:func:`fit_rows`) of every replica of an ensemble's table (replicas.csv rows),
    from its end-of-run values."""
    from .ensemble import CHECKPOINT_COL

    out = []
    for r in sorted({row["Replica"] for row in rows}):
        final = [row for row in rows if row["Replica"] == r and row[CHECKPOINT_COL] == 100]
        out += [{"Replica": r, **f} for f in fit_rows(final, config)]
    return out


def fit_statistics(fits: list[dict]) -> list[dict]:
    """Mean, std and 95 % CI over replicas of each fit's slope and R^2."""
    from .ensemble import describe

    out = []
    for key in dict.fromkeys((f["Protocol"], f["Observable"], f["Against"]) for f in fits):
        sel = [f for f in fits if (f["Protocol"], f["Observable"], f["Against"]) == key]
        for what in ("Slope", "R2"):
            out.append({"Protocol": key[0], "Observable": key[1], "Against": key[2], "Statistic": what,
                        "Closed-form slope": sel[0]["Closed-form slope"] if what == "Slope" else float("nan"),
                        **describe(f[what] for f in sel)})
    return out


def run_sa_sv_ensemble(config: SimulationConfig, out, replicas: int, echo=print, **kwargs):
    """``replicas`` independent replicas of the study (own host realisations and streams each,
    :mod:`kmc.studies.ensemble`), with per-case statistics (statistics.csv) and each replica's
    fits (replica_fits.csv) summarised as mean [95 % CI] of slope and R^2 (fit_statistics.csv)."""
    from .ensemble import run_ensemble

    held_segment(config)  # a bad protocol fails before anything is written
    res = run_ensemble(config, replicas, outdir=out, cases=replica_cases, echo=echo, **kwargs)
    if res.rows:
        fits = replica_fits(res.rows, config)
        stats = fit_statistics(fits)
        write_csv(Path(out) / "replica_fits.csv", fits)
        write_csv(Path(out) / "fit_statistics.csv", stats)
        if echo is not None:
            echo(format_fit_statistics(stats))
    return res


def format_fit_statistics(stats: list[dict]) -> str:
    lines = ["fits over replicas: mean [95 % CI]"]
    for s in stats:
        closed = s["Closed-form slope"]
        lines.append(f"  {s['Protocol']}: {s['Observable']} against {s['Against']}: {s['Statistic']} "
                     f"{s['Mean']:.4g} [{s['CI95 low']:.4g}, {s['CI95 high']:.4g}] (n={s['n']})"
                     + (f"; closed-form slope {closed:.4g}" if s["Statistic"] == "Slope" and closed == closed else ""))
    return "\n".join(lines)
