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
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.6), squeeze=False)
    cmap = ListedColormap(PHASE_COLOURS)
    h_um = spacing * 1e6
    for ax, (label, (phase, conn)) in zip(axes[0], deposits.items()):
        img = _phase_image(phase, conn)[:, phase.shape[1] // 2, :]
        nx, nz = img.shape
        ax.imshow(img.T, origin="lower", cmap=cmap, vmin=-0.5, vmax=4.5, interpolation="nearest",
                  extent=(0, nx * h_um, 0, nz * h_um))
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("x [um]")
    axes[0][0].set_ylabel("z above collector [um]")
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
