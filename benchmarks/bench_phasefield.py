"""Benchmark: Hong & Viswanathan's 2D phase-field case (ACS Energy Lett. 2018) with
continuum.phasefield.

Their input file: a 200 x 200 mesh of unit spacing (1 um), the electrode x < 20 (tanh front),
-0.45 V applied at x = 0, 0 V and the bulk concentration at x = 200, Langevin noise 0.04,
end_time 400 (their time unit is 1 s).  Here: 200 x 1 x 200 voxels of 1 um, z the growth
direction (a conductive collector layer at z = 0, lithium up to 20 um), periodic in x (theirs:
zero flux), noise seeded.

Prints progress, wall time, steps (accepted, rejected), (xi, c) iterations per step, linear
solves, the share of the stepping time per part (order parameter, concentration, potential,
galvanostat, error control), the deposit (max and mean height, interface area) and the
conservation errors.

Run:  python benchmarks/bench_phasefield.py [--quick] [--png final.png] [--n 200] [--t-end 400]
      --quick: 100 x 100 voxels to t = 10 s (about half a minute on 2 cores).  The full case
      takes about an hour on 2 cores (10 s per simulated second measured to t = 20 s; figures
      and the reasons in docs/phasefield.md, "Speed").
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # sparse work: threads only contend


from continuum.phasefield import (HONG2018, PhaseFieldSolver, Potentiostatic, height_map,  # noqa: E402
                                  interface_area, planar_electrode)

H = 1e-6  # Hong's mesh spacing: 1 um


def build(n: int, seed: int, tol_xi: float, linear_solver: str):
    phase, xi = planar_electrode((n, 1, n), H, HONG2018, 20e-6 * n / 200)
    return PhaseFieldSolver(phase, H, HONG2018, xi=xi, rng=seed, tol_xi=tol_xi, linear_solver=linear_solver)


def deposit(s):
    mask = s.lithium_mask()
    heights = height_map(mask, H)
    return heights.max(), s.lithium_volume() / s.footprint_area + H, interface_area(mask, s.phase, H)


def save_png(s, path, V):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    nx, _, nz = s.phase.shape
    fig, ax = plt.subplots(figsize=(5.5, 5))
    im = ax.imshow(s.order_parameter[:, 0, :].T, origin="lower", cmap="viridis", vmin=0, vmax=1,
                   extent=(0, nx * H * 1e6, 0, nz * H * 1e6))
    fig.colorbar(im, ax=ax, label="order parameter xi")
    ax.set_xlabel("x [um]")
    ax.set_ylabel("z [um]")
    ax.set_title(f"Hong 2018 case, {V} V, t = {s.t:.0f} s")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 x 100 voxels to t = 10 s (about 30 s)")
    ap.add_argument("--n", type=int, default=None, help="voxels per side (default 200; quick 100)")
    ap.add_argument("--t-end", type=float, default=None, help="end time [s] (default 400; quick 10)")
    ap.add_argument("--potential", type=float, default=-0.45, help="cell potential [V] (Hong: -0.45)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the Langevin noise")
    ap.add_argument("--tol-xi", type=float, default=2e-3, help="local error tolerance of xi per step")
    ap.add_argument("--linear-solver", default="auto", choices=["auto", "direct", "amg", "jacobi"])
    ap.add_argument("--png", default=None, help="save the final order parameter to this PNG")
    args = ap.parse_args()
    n = args.n or (100 if args.quick else 200)
    t_end = args.t_end or (10.0 if args.quick else 400.0)

    t0 = time.perf_counter()
    s = build(n, args.seed, args.tol_xi, args.linear_solver)
    setup = time.perf_counter() - t0
    print(f"Hong 2018 case: {n} x {n} voxels of 1 um, {args.potential} V, to t = {t_end:g} s "
          f"(setup {setup:.2f} s)", flush=True)
    control = Potentiostatic(args.potential)
    chunk = t_end / 20
    while s.t < t_end - 1e-9:
        s.advance(min(chunk, t_end - s.t), control)
        top, mean, _ = deposit(s)
        print(f"  t = {s.t:7.2f} s  wall {time.perf_counter() - t0:8.1f} s  steps {s.steps:6d} "
              f"(+{s.rejected} rejected)  i = {s.current_density / 10:9.1f} mA/cm^2  "
              f"max height {top * 1e6:6.1f} um  mean {mean * 1e6:6.1f} um", flush=True)
    wall = time.perf_counter() - t0
    top, mean, area = deposit(s)
    attempts = s.steps + s.rejected
    print(f"\nwall time {wall:.1f} s for {t_end:g} s simulated ({wall / t_end:.3f} s per s); "
          f"{s.steps} steps + {s.rejected} rejected, mean dt {s.t / max(s.steps, 1) * 1e3:.2f} ms, "
          f"{s.iterations / max(attempts, 1):.2f} (xi, c) iterations per attempt, "
          f"{wall / max(attempts, 1) * 1e3:.1f} ms per attempt")
    print("linear solves: " + ", ".join(f"{k} {v.stats['solves']}" for k, v in s._lin.items()))
    print("share of stepping time: " + ", ".join(f"{k} {v:.0%}" for k, v in s.timing_shares().items()))
    print(f"deposit: max height {top * 1e6:.1f} um, mean thickness {mean * 1e6:.1f} um, "
          f"interface area / footprint {area / s.footprint_area:.2f}")
    bal = s.balance()
    print(f"conservation: lithium {bal['lithium'] / max(s.lithium_amount(), 1e-300):.1e} (relative to the metal), "
          f"charge {bal['charge'] / max(abs(s.charge), 1e-300):.1e}, potential-problem boundaries "
          f"{bal['boundary'] / max(s.boundary_gross, 1e-300):.1e} (relative to their current)")
    if args.png:
        save_png(s, args.png, args.potential)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
