"""Benchmark: the phase-field solver (continuum.phasefield) on Hong & Viswanathan's 2D case (ACS
Energy Lett. 2018) and on a 64^3 porous host.

Hong's case (default).  Their input file: a 200 x 200 mesh of unit spacing (1 um), the electrode
x < 20 (tanh front), -0.45 V applied at x = 0, 0 V and the bulk concentration at x = 200,
Langevin noise 0.04, end_time 400 (their time unit is 1 s).  Here: 200 x 1 x 200 voxels of
1 um, z the growth direction (a conductive collector layer at z = 0, lithium up to 20 um),
periodic in x (theirs: zero flux), noise seeded.

Porous host (``--porous64``).  64^3 voxels of 1 um: a conductive collector layer, a random
porous conductive host over the next 32 layers (Gaussian-blurred white noise, sigma 2 voxels,
thresholded at porosity 0.6, solid not connected to the collector dropped: the recipe of the
project's random_porous hosts), 31 layers of electrolyte above.  Hong's constants with the
0.5 um interface the validation study uses (Hong's 0.25 um pins fronts to a 1 um grid) at
Hong's exchange current density (1.1 mA/cm^2), noise off; the host's diffuse interface
relaxed at rest first (`relaxed_order_parameter`); then galvanostatic plating at 1.5 mA/cm^2
to 0.1 mAh/cm^2 (240 s).

Prints progress, wall time, steps (accepted, rejected), (xi, c) iterations per attempt, linear
solves, the share of the stepping CPU time per part (order parameter, concentration, potential,
galvanostat, error control), the deposit and the conservation errors.  On Hong's 2D grid the
solver runs the step's independent passes on a second thread (phi beside c), so its wall time
is below its CPU time; the 3D host's sweeps use Numba's threads.

Run:  python benchmarks/bench_phasefield.py [--quick] [--porous64] [--n N] [--t-end T] [--png PATH]
      --quick: Hong's case on 100 x 100 voxels to t = 10 s, or with --porous64 a 32^3 host to
      0.02 mAh/cm^2.  Times measured on 2 shared cores are in docs/phasefield.md, "Speed".
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # sparse work: threads only contend

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE  # noqa: E402
from continuum.grid import collector_connected  # noqa: E402
from continuum.phasefield import (HONG2018, Galvanostatic, PhaseFieldSolver, Potentiostatic,  # noqa: E402
                                  height_map, interface_area, planar_electrode, relaxed_order_parameter)

H = 1e-6  # Hong's mesh spacing, and the porous host's voxel: 1 um
MA_CM2 = 10.0  # A/m^2 per mA/cm^2
MAH_CM2 = 36000.0  # C/m^2 per mAh/cm^2


def build_hong(n: int, seed: int, tol_xi: float, linear_solver: str):
    phase, xi = planar_electrode((n, 1, n), H, HONG2018, 20e-6 * n / 200)
    return PhaseFieldSolver(phase, H, HONG2018, xi=xi, rng=seed, tol_xi=tol_xi, linear_solver=linear_solver)


def porous_host(n: int, seed: int, porosity: float = 0.6, feature: float = 2.0) -> np.ndarray:
    """Phase array (n, n, n): collector layer, n/2 layers of random porous conductive host
    (blurred noise of sigma ``feature`` voxels thresholded at ``porosity``, floating solid
    dropped), electrolyte above."""
    layers = n // 2
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal((n, n, layers)), sigma=feature,
                                mode=("wrap", "wrap", "reflect"))
    phase = np.full((n, n, n), ELECTROLYTE, np.uint8)
    phase[:, :, 0] = HOST_CONDUCTIVE
    phase[:, :, 1:1 + layers][f >= np.quantile(f, porosity)] = HOST_CONDUCTIVE
    phase[(phase == HOST_CONDUCTIVE) & ~collector_connected(phase)] = ELECTROLYTE
    return phase


def build_porous(n: int, seed: int, tol_xi: float, linear_solver: str):
    prm = HONG2018.with_profile_length(0.5e-6).replace(noise_amplitude=0.0)
    prm = prm.with_exchange_current_density(HONG2018.exchange_current_density)
    phase = porous_host(n, seed)
    xi = relaxed_order_parameter(phase, H, prm)  # the bare host at rest: what lithium counts from
    c = prm.bulk_concentration  # no lithium yet, electrolyte at c0 everywhere
    return PhaseFieldSolver(phase, H, prm, xi=xi, c=c, rng=seed, tol_xi=tol_xi, linear_solver=linear_solver), xi


def deposit(s):
    mask = s.lithium_mask()
    heights = height_map(mask, H)
    return heights.max(), s.lithium_volume() / s.footprint_area, interface_area(mask, s.phase, H)


def save_png(s, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    nx, ny, nz = s.phase.shape
    fig, ax = plt.subplots(figsize=(5.5, 5))
    im = ax.imshow(s.order_parameter[:, ny // 2, :].T, origin="lower", cmap="viridis", vmin=0, vmax=1,
                   extent=(0, nx * H * 1e6, 0, nz * H * 1e6))
    fig.colorbar(im, ax=ax, label="order parameter xi")
    ax.set_xlabel("x [um]")
    ax.set_ylabel("z [um]")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(s, wall, setup, t_end, cpu0):
    """Wall time (and this process's CPU time: on a shared machine the wall time is an upper
    bound), steps, per-attempt cost, the share of time per part, conservation."""
    attempts = s.steps + s.rejected
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu = time.process_time() - cpu0
    print(f"\nwall time {wall:.1f} s, CPU time {cpu:.1f} s (load average {load:.1f}; "
          f"setup {setup:.1f} s) for {t_end:g} s simulated "
          f"({(wall - setup) / t_end:.3f} s per s); {s.steps} steps + {s.rejected} rejected, "
          f"mean dt {s.t / max(s.steps, 1) * 1e3:.2f} ms, "
          f"{s.iterations / max(attempts, 1):.2f} (xi, c) iterations per attempt, "
          f"{(wall - setup) / max(attempts, 1) * 1e3:.1f} ms per attempt "
          f"({cpu / max(attempts, 1) * 1e3:.1f} ms of CPU)")
    cycles = [f"{k} {v.gmg.stats['iterations'] / v.gmg.stats['solves']:.1f}" for k, v in s._lin.items()
              if v.gmg.stats["solves"]]
    print("linear solves: " + ", ".join(f"{k} {v.stats['solves']}" for k, v in s._lin.items())
          + "; multigrid failures (phi: its next solves on AMG; c: the step retried shorter): "
          + ", ".join(f"{k} {v.stats['multigrid failures']}" for k, v in s._lin.items())
          + ("; V-cycles per multigrid solve: " + ", ".join(cycles) if cycles else ""))
    print(f"phi solves discarded (the second thread's, on attempts c's error then rejected): "
          f"{s.discarded_potential_solves}")
    band = s._lin["xi"].jacobi
    if band:
        print(f"xi's Jacobi-CG on the grid: {band['band']} solves on the band of layers with a source (numerics."
              f"LinkGrid), {band['whole grid']} on the whole grid ({band['widened']} of them after a band "
              f"missed the whole grid's tolerance)")
    stepping = sum(s.timing.values())  # without the setup and the kernels' compilation or loading
    print(f"stepping CPU time {stepping:.1f} s ({stepping / max(attempts, 1) * 1e3:.1f} ms per attempt); share: "
          + ", ".join(f"{k} {v:.0%}" for k, v in s.timing_shares().items()))
    bal = s.balance()
    print(f"conservation: lithium {bal['lithium'] / max(s.lithium_amount(), 1e-300):.1e} (relative to the metal), "
          f"charge {bal['charge'] / max(abs(s.charge), 1e-300):.1e}, potential-problem boundaries "
          f"{bal['boundary'] / max(s.boundary_gross, 1e-300):.1e} (relative to their current)")


def run_hong(args):
    n = args.n or (100 if args.quick else 200)
    t_end = args.t_end or (10.0 if args.quick else 400.0)
    t0, cpu0 = time.perf_counter(), time.process_time()
    s = build_hong(n, args.seed, args.tol_xi, args.linear_solver)
    setup = time.perf_counter() - t0
    print(f"Hong 2018 case: {n} x {n} voxels of 1 um, {args.potential} V, to t = {t_end:g} s "
          f"(setup {setup:.2f} s), tol_xi {args.tol_xi:g}", flush=True)
    control = Potentiostatic(args.potential)
    chunk = t_end / 20
    while s.t < t_end - 1e-9:
        s.advance(min(chunk, t_end - s.t), control)
        top, mean, _ = deposit(s)
        print(f"  t = {s.t:7.2f} s  wall {time.perf_counter() - t0:8.1f} s  CPU {time.process_time() - cpu0:7.1f} s  "
              f"steps {s.steps:6d} "
              f"(+{s.rejected} rejected)  i = {s.current_density / MA_CM2:9.1f} mA/cm^2  "
              f"max height {top * 1e6:6.1f} um  mean {(mean + H) * 1e6:6.1f} um", flush=True)
    wall = time.perf_counter() - t0
    report(s, wall, setup, t_end, cpu0)
    top, mean, area = deposit(s)
    print(f"deposit: max height {top * 1e6:.1f} um, mean thickness {(mean + H) * 1e6:.1f} um (collector "
          f"layer included), interface area / footprint {area / s.footprint_area:.2f}")
    if args.png:
        save_png(s, args.png, f"Hong 2018 case, {args.potential} V, t = {s.t:.0f} s")
        print(f"wrote {args.png}")


def run_porous(args):
    n = args.n or (32 if args.quick else 64)
    current = args.current  # mA/cm^2, plating
    capacity = args.capacity or (0.02 if args.quick else 0.1)  # mAh/cm^2
    t_end = args.t_end or capacity * MAH_CM2 / (current * MA_CM2)
    t0, cpu0 = time.perf_counter(), time.process_time()
    s, rest = build_porous(n, args.seed, args.tol_xi, args.linear_solver)
    setup = time.perf_counter() - t0
    porosity = float(np.mean(s.phase[:, :, 1:1 + n // 2] == ELECTROLYTE))
    print(f"porous host: {n}^3 voxels of 1 um, host layers 1-{n // 2} at porosity {porosity:.3f}, "
          f"{s.geo.n} free voxels; plating at {current:g} mA/cm^2 for {t_end:g} s "
          f"({current * t_end / 3600:.3g} mAh/cm^2) (setup with the host's relaxation {setup:.1f} s), "
          f"tol_xi {args.tol_xi:g}", flush=True)
    control = Galvanostatic(-current * MA_CM2)
    chunk = t_end / 10
    while s.t < t_end - 1e-9:
        s.advance(min(chunk, t_end - s.t), control)
        print(f"  t = {s.t:7.1f} s  wall {time.perf_counter() - t0:8.1f} s  steps {s.steps:6d} "
              f"(+{s.rejected} rejected)  V = {s.cell_potential * 1e3:7.1f} mV  "
              f"capacity {-s.charge / s.footprint_area / MAH_CM2:.3f} mAh/cm^2", flush=True)
    wall = time.perf_counter() - t0
    report(s, wall, setup, t_end, cpu0)
    grown = np.where(s.phase == HOST_CONDUCTIVE, 0.0, s.order_parameter - rest)
    below = grown[:, :, :1 + n // 2].sum() / grown.sum()
    print(f"deposit: {-s.charge / s.footprint_area / MAH_CM2:.3f} mAh/cm^2 plated, {below:.0%} of the new "
          f"lithium inside the host (layers 1-{n // 2}); cell potential {s.cell_potential * 1e3:.1f} mV")
    if args.png:
        save_png(s, args.png, f"{n}^3 porous host, {current:g} mA/cm^2, t = {s.t:.0f} s (y = {n // 2})")
        print(f"wrote {args.png}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="Hong: 100 x 100 to t = 10 s; porous: 32^3 to 0.02 mAh/cm^2")
    ap.add_argument("--porous64", action="store_true", help="the 64^3 porous host instead of Hong's case")
    ap.add_argument("--n", type=int, default=None, help="voxels per side (Hong 200, porous 64; quick 100, 32)")
    ap.add_argument("--t-end", type=float, default=None, help="end time [s] (Hong 400; porous: the capacity's)")
    ap.add_argument("--potential", type=float, default=-0.45, help="Hong: cell potential [V] (-0.45)")
    ap.add_argument("--current", type=float, default=1.5, help="porous: plating current density [mA/cm^2]")
    ap.add_argument("--capacity", type=float, default=None, help="porous: capacity plated [mAh/cm^2] (0.1)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the Langevin noise and of the porous host")
    ap.add_argument("--tol-xi", type=float, default=2e-3, help="local error tolerance of xi per step")
    ap.add_argument("--linear-solver", default="auto", choices=["auto", "direct", "amg", "jacobi"])
    ap.add_argument("--png", default=None, help="save the final order parameter (a cross-section) to this PNG")
    args = ap.parse_args()
    (run_porous if args.porous64 else run_hong)(args)


if __name__ == "__main__":
    main()
