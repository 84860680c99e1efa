"""A dendrite from a seed at large overpotential, smooth growth at small (issue 12, MODEL.md
section 9), on the phase-field API: Hong & Viswanathan's constants (noise off), a 2D cell of
24 x 36 um at h = 0.5 um, a flat lithium front at 4 um with a 2 um half-disc seed, held at
-0.45 V and at -0.2 V until the deposit's mean thickness has doubled to 8 um (the case of the
slow test in tests/test_phasefield.py).  The seed's lead is its top minus the mean thickness.
Writes the side-by-side order parameter maps.

    python scenarios/dendrite_vs_smooth.py [OUT_PNG]
"""
import sys
import time

import numpy as np

from continuum.phasefield import HONG2018, PhaseFieldSolver, Potentiostatic, height_map, planar_electrode

QUIET = HONG2018.replace(noise_amplitude=0.0)
# (held potential [V], how often the thickness is checked [s]): growth at -0.2 V is ~4x slower
CASES = ((-0.45, 0.05), (-0.2, 0.25))


def grow(potential: float, chunk: float, *, shape=(48, 1, 72), spacing=0.5e-6, front=4e-6, seed_radius=2e-6,
         thickness=8e-6, params=QUIET) -> dict:
    """Hold ``potential`` [V] from the seeded flat front until the mean thickness (lithium
    volume over the footprint, plus the collector layer) reaches ``thickness`` [m], checked
    every ``chunk`` s.  Returns the final order parameter (x, z), the lead [m] per check, the
    simulated and the wall time [s]."""
    t0 = time.perf_counter()
    phase, xi = planar_electrode(shape, spacing, params, front, seed_radius=seed_radius)
    s = PhaseFieldSolver(phase, spacing, params, xi=xi)
    lead, mean = [], []
    while True:
        mean.append(s.lithium_volume() / s.footprint_area + spacing)
        lead.append(height_map(s.lithium_mask(), spacing).max() - mean[-1])
        if mean[-1] >= thickness:
            break
        s.advance(chunk, Potentiostatic(potential))
    return {"potential": potential, "xi": s.order_parameter[:, 0, :].copy(), "spacing": spacing,
            "lead": np.array(lead), "mean": np.array(mean), "time": s.t, "wall": time.perf_counter() - t0}


def plot(results: list[dict], path) -> None:
    """Order parameter maps side by side (um axes), the mean thickness dashed, the lead in the titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(3.3 * len(results) + 1.0, 4.6), sharey=True,
                             constrained_layout=True)
    for ax, r in zip(np.atleast_1d(axes), results):
        nx, nz = r["xi"].shape
        um = r["spacing"] * 1e6
        im = ax.imshow(r["xi"].T, origin="lower", extent=(0, nx * um, 0, nz * um), vmin=0, vmax=1, cmap="viridis",
                       interpolation="nearest")
        ax.axhline(r["mean"][-1] * 1e6, color="w", ls="--", lw=0.8)
        ratio = r["lead"][-1] / r["lead"][0]
        ax.set_title(f"{r['potential']:g} V, t = {r['time']:.2f} s: seed's lead over the\nmean thickness "
                     f"{r['lead'][0] * 1e6:.1f} -> {r['lead'][-1] * 1e6:.1f} um ({ratio:.2f}x)", fontsize=9)
        ax.set_xlabel("x [um]")
    np.atleast_1d(axes)[0].set_ylabel("z [um]")
    fig.colorbar(im, ax=axes, label="order parameter xi", shrink=0.8)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(out: str = "docs/figures/dendrite_vs_smooth.png", cases=CASES, **cell) -> list[dict]:
    """Both cases (``cell``: :func:`grow`'s geometry, e.g. a smaller one), the figure, a line each."""
    results = [grow(v, chunk, **cell) for v, chunk in cases]
    plot(results, out)
    for r in results:
        print(f"{r['potential']:g} V: lead {r['lead'][0] * 1e6:.2f} -> {r['lead'][-1] * 1e6:.2f} um "
              f"({r['lead'][-1] / r['lead'][0]:.2f}x) at mean thickness {r['mean'][-1] * 1e6:.2f} um, "
              f"t = {r['time']:.1f} s simulated, {r['wall']:.0f} s wall")
    print(f"figure: {out}")
    return results


if __name__ == "__main__":
    main(*sys.argv[1:2])
