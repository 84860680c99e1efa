"""Figures a researcher would rather look at than read. All saved atomically as PNG."""
from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from typing import Callable, Mapping, Sequence

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


def _save(fig, path, tight: bool = True) -> None:
    """Write ``fig`` as PNG (atomically) and close it. ``tight`` crops to what was drawn, which
    draws the figure twice: figures laid out by :func:`_margins` pass False (one draw).
    zlib level 1: a third of the encoding time for PNGs ~20 % larger."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight" if tight else None, format="png",
                    pil_kwargs={"compress_level": 1})
    plt.close(fig)


def draw_side_by_side(figures: Sequence[tuple[Callable, tuple]], timeout: float = 60.0) -> None:
    """Draw ``figures`` ((function, args) each writing one file): on Linux the first in a
    forked child while this process draws the others. A study draws after its cases, when a
    core is idle (a quick pulse_vs_dc: its cross-sections, 0.3-0.4 of 0.8-1.1 CPU-s of figures).
    The child only draws and writes its file atomically, then leaves by ``os._exit``; should it
    fail or not finish within ``timeout`` seconds, this process draws that figure itself."""
    figures = list(figures)
    child = None
    if len(figures) > 1 and sys.platform.startswith("linux"):
        child = os.fork()
        if child == 0:  # the child: nothing of the parent's (buffers, exit handlers) runs here
            code = 1
            try:
                function, args = figures[0]
                function(*args)
                code = 0
            finally:
                os._exit(code)
    try:
        for function, args in figures[child is not None:]:
            function(*args)
    finally:  # the child is waited for whatever happens here
        drawn = child is None or _child_succeeded(child, timeout)
    if not drawn:
        function, args = figures[0]
        function(*args)


def _child_succeeded(pid: int, timeout: float) -> bool:
    """Wait for the child ``pid``; False if it failed, or did not finish in time (then killed)."""
    end = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        if time.monotonic() > end:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False
        time.sleep(0.002)


def _margins(fig, left: float, right: float, top: float, bottom: float, **space) -> None:
    """A fixed layout: the subplots' margins in inches (``space``: wspace, hspace)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=bottom / h, **space)


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
    nx, _, nz = next(iter(deposits.values()))[0].shape
    width = min(max(2.8 * nx / nz, 1.4), 4.2)  # of a section 2.8 in high, in inches
    lines = max(label.count("\n") + 1 for label in deposits)  # of the panel titles
    fig_width = (width + 0.5) * cols + 0.2
    title = textwrap.fill(title, max(int(fig_width / 0.11), 12))  # about 0.11 in per character
    top, gap = 0.1 + 0.16 * lines + (0.08 + 0.22 * (title.count("\n") + 1) if title else 0.0), 0.6 + 0.16 * lines
    legend_cols = max(1, min(len(PHASE_LABELS), int(fig_width / 1.45)))  # about 1.4 in per entry
    bottom = 0.55 + 0.2 * -(-len(PHASE_LABELS) // legend_cols)
    fig, axes = plt.subplots(rows, cols, figsize=(fig_width, (2.8 + gap) * rows - gap + top + bottom), squeeze=False)
    _margins(fig, left=0.65, right=0.05, top=top, bottom=bottom, wspace=0.5 / width, hspace=gap / 2.8)
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
    fig.legend(handles, PHASE_LABELS, loc="lower center", ncol=legend_cols, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    if title:
        fig.suptitle(title, y=1 - 0.1 / fig.get_size_inches()[1], va="top")
    _save(fig, path, tight=False)


def plot_height_maps(path, deposits: Mapping[str, tuple[np.ndarray, np.ndarray]], spacing: float) -> None:
    """Deposit top height per column; ``deposits`` maps label to (phase, host_phase)."""
    n = len(deposits)
    maps = {k: height_map(p, h) * spacing * 1e6 for k, (p, h) in deposits.items()}
    vmax = max(float(m.max()) for m in maps.values()) or 1.0
    lines = max(label.count("\n") + 1 for label in maps)  # of the panel titles
    side, gap, bar = 2.6, 0.25, 1.2  # panel, space between panels, colour bar with its labels [in]
    width, top = 0.1 + n * side + (n - 1) * gap + bar, 0.12 + 0.16 * lines
    fig, axes = plt.subplots(1, n, figsize=(width, side + top + 0.1), squeeze=False)
    _margins(fig, left=0.1, right=bar, top=top, bottom=0.1, wspace=gap / side)
    for ax, (label, m) in zip(axes[0], maps.items()):
        im = ax.imshow(m.T, origin="lower", cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    height = side + top + 0.1
    cax = fig.add_axes((1 - (bar - 0.3) / width, (0.1 + 0.075 * side) / height, 0.15 / width, 0.85 * side / height))
    fig.colorbar(im, cax=cax, label="deposit top above collector [um]")
    _save(fig, path, tight=False)


def plot_series(path, series: Mapping[str, Sequence[Mapping[str, float]]], x: str, ys: Sequence[str],
                under_current: Sequence[str] = (), current_key: str = "Applied current density [mA.cm-2]") -> None:
    """One panel per column in ``ys`` against column ``x``, one line per labelled run.
    Columns in ``under_current`` are drawn only while current flows (a pulse's open-circuit
    values would otherwise zig-zag over the on-current trace)."""
    legend = 0.1 + 0.19 * -(-len(series) // 2)  # two columns of labels below the panels
    fig, axes = plt.subplots(len(ys), 1, figsize=(6.4, 2.3 * len(ys) + legend), sharex=True, squeeze=False)
    _margins(fig, left=1.0, right=0.15, top=0.1, bottom=0.55 + legend, hspace=0.25)
    for ax, y in zip(axes[:, 0], ys):
        for label, rows in series.items():
            keep = [r for r in rows if y not in under_current or float(r.get(current_key, 1.0)) != 0.0]
            ax.plot([float(r[x]) for r in keep], [float(r[y]) for r in keep], label=label, lw=1.2)
        ax.set_ylabel(y + ("\n(under current)" if y in under_current else ""), fontsize=9)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(x)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
    _save(fig, path, tight=False)


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
