"""Figures a researcher would rather look at than read. All saved atomically as PNG."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from continuum.constants import LITHIUM  # noqa: E402

from ..coupling.io import atomic_path  # noqa: E402
from ..coupling.observables import height_map  # noqa: E402

# electrolyte, conductive host, dielectric host, lithium, dead lithium
PHASE_COLOURS = ["#f4f1de", "#b87333", "#8d99ae", "#3d5a80", "#e63946"]
PHASE_LABELS = ["electrolyte", "conductive host", "dielectric", "lithium", "dead lithium"]


def _save(fig, path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png")
    plt.close(fig)


def _phase_image(phase: np.ndarray, connected: np.ndarray | None) -> np.ndarray:
    img = phase.astype(np.int64).copy()
    if connected is not None:
        img[(phase == LITHIUM) & ~connected] = 4
    return img


def plot_cross_sections(path, deposits: Mapping[str, tuple[np.ndarray, np.ndarray | None]], spacing: float,
                        title: str = "") -> None:
    """x-z cross-sections through the middle of each deposit, side by side.
    ``deposits`` maps a label to (phase, connected mask or None)."""
    n = len(deposits)
    cols = min(n, 6)  # more cases wrap into rows
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.6 * rows), squeeze=False)
    cmap = ListedColormap(PHASE_COLOURS)
    h_um = spacing * 1e6
    for ax, (label, (phase, conn)) in zip(axes.ravel(), deposits.items()):
        img = _phase_image(phase, conn)[:, phase.shape[1] // 2, :]
        nx, nz = img.shape
        ax.imshow(img.T, origin="lower", cmap=cmap, vmin=-0.5, vmax=4.5, interpolation="nearest",
                  extent=(0, nx * h_um, 0, nz * h_um))
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("x [um]")
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    for row in axes:
        row[0].set_ylabel("z above collector [um]")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in PHASE_COLOURS]
    fig.legend(handles, PHASE_LABELS, loc="lower center", ncol=5, fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.04))
    if title:
        fig.suptitle(title, y=1.04)
    _save(fig, path)


def plot_height_maps(path, deposits: Mapping[str, tuple[np.ndarray, np.ndarray]], spacing: float) -> None:
    """Deposit top height per column; ``deposits`` maps label to (phase, host_phase)."""
    n = len(deposits)
    maps = {k: height_map(p, h) * spacing * 1e6 for k, (p, h) in deposits.items()}
    vmax = max(float(m.max()) for m in maps.values()) or 1.0
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n + 0.8, 3.0), squeeze=False)
    for ax, (label, m) in zip(axes[0], maps.items()):
        im = ax.imshow(m.T, origin="lower", cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes[0]), label="deposit top above collector [um]", shrink=0.85)
    _save(fig, path)


def plot_series(path, series: Mapping[str, Sequence[Mapping[str, float]]], x: str, ys: Sequence[str],
                under_current: Sequence[str] = (), current_key: str = "Applied current density [mA.cm-2]") -> None:
    """One panel per column in ``ys`` against column ``x``, one line per labelled run.
    Columns in ``under_current`` are drawn only while current flows (a pulse's open-circuit
    values would otherwise zig-zag over the on-current trace)."""
    fig, axes = plt.subplots(len(ys), 1, figsize=(6.4, 2.3 * len(ys)), sharex=True, squeeze=False)
    for ax, y in zip(axes[:, 0], ys):
        for label, rows in series.items():
            keep = [r for r in rows if y not in under_current or float(r.get(current_key, 1.0)) != 0.0]
            ax.plot([float(r[x]) for r in keep], [float(r[y]) for r in keep], label=label, lw=1.2)
        ax.set_ylabel(y + ("\n(under current)" if y in under_current else ""), fontsize=9)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(x)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
    _save(fig, path)


def plot_where_lithium_went(outdir, runs: Mapping[str, object], fill_name: str, x: str) -> None:
    """``cross_sections.png`` and the fill figure ``fill_name`` (:func:`plot_fill`) of runs
    (label -> RunResult) that plated into hosts."""
    h = next(iter(runs.values())).host.spacing
    plot_cross_sections(outdir / "cross_sections.png", {k: (r.final_phase, r.connected) for k, r in runs.items()}, h,
                        title="Lithium after plating (x-z section through the middle)")
    plot_fill(outdir / fill_name, runs, x)


def case_grid(labels: Sequence[str]) -> list[list[str]]:
    """Study case labels ('Host | Protocol') grouped by host, hosts and cases in their order;
    labels without a host form one group."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(label.split(" | ")[0] if " | " in label else "", []).append(label)
    return list(groups.values())


def plot_cycles(path, cycles: Mapping[str, Sequence[Mapping]], title: str = "") -> None:
    """Coulombic efficiency and dead lithium at the end of each cycle (rows of
    observables.cycle_balance, or an ensemble's means), one line per case, a column of panels
    per host.  Rows carrying '<column> CI95 low' and '<column> CI95 high' get 95 % CI bars."""
    from matplotlib.ticker import MaxNLocator

    from ..coupling import columns as col

    grid = case_grid(list(cycles))
    ks = [r[col.CYCLE] for rows in cycles.values() for r in rows]
    fig, axes = plt.subplots(2, len(grid), figsize=(5.2 * len(grid), 5.4), squeeze=False, sharex=True)
    for j, labels in enumerate(grid):
        for n, label in enumerate(labels):
            rows = cycles[label]
            k = np.array([r[col.CYCLE] for r in rows], float) + 0.06 * (n - (len(labels) - 1) / 2)  # dodge the bars
            name = label.split(" | ")[-1]  # the host titles the column
            for ax, key in zip(axes[:, j], (col.COULOMBIC_EFFICIENCY, col.CYCLE_DEAD_END)):
                y = np.array([r[key] for r in rows], float)
                lo, hi = (np.array([r.get(f"{key} CI95 {e}", np.nan) for r in rows], float) for e in ("low", "high"))
                err = np.array([y - lo, hi - y]) if np.isfinite(lo).any() else None
                ax.errorbar(k, y, yerr=err, fmt="o-", lw=1.2, ms=4, capsize=3, label=name, color=f"C{n}")
        axes[0, j].set_title(labels[0].split(" | ")[0] if " | " in labels[0] else "", fontsize=10)
        axes[1, j].set_xlabel("cycle")
        axes[1, j].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1, j].set_xlim(min(ks, default=1) - 0.5, max(ks, default=1) + 0.5)
        axes[0, j].legend(fontsize=7, frameon=False)
    axes[0, 0].set_ylabel(col.COULOMBIC_EFFICIENCY)
    axes[1, 0].set_ylabel(col.CYCLE_DEAD_END, fontsize=9)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_fill(path, runs: Mapping[str, object], x: str) -> None:
    """Where the lithium went: per run (label -> RunResult) the lithium fill of the pore space
    per layer at the end, and the fraction of the lithium inside the host against column ``x``
    (time or plated capacity)."""
    from ..coupling import columns as col
    from ..coupling.observables import host_top_index, lithium_fill_profile

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    h_um = next(iter(runs.values())).host.spacing * 1e6
    for label, r in runs.items():
        fill = lithium_fill_profile(r.final_phase, r.host.phase)
        ax1.plot(fill, (np.arange(fill.size) + 0.5) * h_um, label=label)
        inside = [row[col.LITHIUM_INSIDE] / row[col.LITHIUM] if row[col.LITHIUM] > 0 else np.nan for row in r.rows]
        ax2.plot([row[x] for row in r.rows], inside, label=label)
    ax1.axhline(host_top_index(next(iter(runs.values())).host.phase) * h_um, color="k", lw=0.8, ls="--")
    ax1.set_xlabel("lithium fill of the pore space per layer [-]")
    ax1.set_ylabel("height above collector [um] (dashed: host top)")
    ax2.set_xlabel(x)
    ax2.set_ylabel("fraction of the lithium inside the host [-]")
    ax2.set_ylim(0, 1.02)
    ax1.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


_WALL_COLOURS = {"conductive": PHASE_COLOURS[1], "floating conductive": "#e9c46a", "dielectric": PHASE_COLOURS[2],
                 "mixed": "#cccccc"}


def plot_layer_filling(path, panels: Mapping[str, Mapping]) -> None:
    """Bottom-up filling: per host, the lithium fill of each layer's pore space against
    plated capacity, with the wall of each host layer in a strip on the left, the capacities
    at which floating conductors were first seen connected (dashed) and the first growth
    above the host (solid).  ``panels``: label -> dict(capacity [n], fill [layers x n],
    spacing_um, host_top (layers), walls (per host layer), connections, first_above)."""
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n + 0.8, 3.8), squeeze=False, sharey=True)
    for ax, (label, p) in zip(axes[0], panels.items()):
        q, fill, h = np.asarray(p["capacity"], float), np.asarray(p["fill"], float), p["spacing_um"]
        edges = np.concatenate([[q[0]], (q[1:] + q[:-1]) / 2, [q[-1]]]) if q.size > 1 else np.array([0.0, 1.0])
        im = ax.pcolormesh(edges, np.arange(fill.shape[0] + 1) * h, fill, cmap="Blues", vmin=0, vmax=1,
                           shading="flat")
        strip = -0.04 * (edges[-1] - edges[0])
        for z, wall in enumerate(p["walls"]):
            ax.fill_betweenx([z * h, (z + 1) * h], strip, 0, color=_WALL_COLOURS.get(wall, "white"), lw=0)
        ax.axhline(p["host_top"] * h, color="k", lw=0.8, ls="--")
        for c in p["connections"]:
            if np.isfinite(c):
                ax.axvline(c, color="#e9c46a", lw=1.2, ls="--")
        if np.isfinite(p["first_above"]):
            ax.axvline(p["first_above"], color=PHASE_COLOURS[4], lw=1.2)
        ax.set_xlim(strip, edges[-1])
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("plated capacity [mAh/cm^2]")
    axes[0][0].set_ylabel("height above collector [um]")
    fig.colorbar(im, ax=list(axes[0]), label="lithium fill of the layer's pore space [-]", shrink=0.85)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _WALL_COLOURS.values()]
    handles += [plt.Line2D([], [], color="#e9c46a", ls="--"), plt.Line2D([], [], color=PHASE_COLOURS[4])]
    fig.legend(handles, [f"{k} wall" for k in _WALL_COLOURS] + ["floating band connected", "first growth above host"],
               loc="lower center", ncol=3, fontsize=8, frameon=False, bbox_to_anchor=(0.45, -0.1))
    _save(fig, path)
