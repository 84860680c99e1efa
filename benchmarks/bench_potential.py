"""Benchmark: galvanostatic potential solve on a random porous host.

Host: Gaussian-blurred white noise thresholded to porosity 0.6 (conductive host where the
field is high), collector layer z = 0, the top 4 layers electrolyte.  Uniform 1 M salt with a
smooth +-5 % perturbation (so the diffusion-potential source is exercised), plating at
1 mA/cm^2 over the cross-section.

For each size and linear solver: cold (construction + solve), warm (same solver object, 5 %
different current, previous solution as initial guess) and "warm + salt" (then the salt field
changed by a smooth 1 % and the current by another 5 %, as between two macro-steps: the warm
line changes only the current, which the last solution's d phi / dV predicts almost exactly).  Solvers: the voxel-grid multigrid
PCG (gmg; "gmg+eta" stops Newton on a 0.01 mV face-overpotential change, as coupled runs
do), pyamg smoothed-aggregation PCG (amg), Jacobi-preconditioned CG, and sparse direct LU
(scipy splu) where affordable (skipped above --direct-max unknowns).  Ratios and the largest
face-overpotential difference are against the first method listed.

Timings are wall seconds; the warm solve also prints its CPU seconds (time.process_time),
the figure to quote on a shared machine.

``--threads 1 2`` runs each size at each Numba thread count in turn (the multigrid's cycle
kernels use them) and prints the solves' wall and CPU seconds side by side, with the load
average, and whether the answers are the same bit for bit (they must be).  A 2-thread
speed-up shows only on cores nothing else is using.

``--series N`` then runs N more warm solves on the same solver that change the current alone
(another 5 % each, from the last solution), then N macro-step-like ones (each: the salt moved
by another smooth 1 %, the current by another 5 %), and prints each one's CPU seconds, Newton
steps, CG iterations and the page faults it took (a first touch of fresh memory; on a virtual
machine whose host reclaims freed pages one costs up to ~50 us) with the growth of resident
memory (the fresh memory it touched: ~1.2 ms per MB there, however many faults served it),
and the medians: the steady state of a run, where the single "warm" and "warm + salt" figures also pay for memory the
process had not used before (the solver keeps its work arrays from solve to solve,
``continuum.scratch``, but the first solves of a kind still reach new peaks).

Run:  python benchmarks/bench_potential.py [--sizes 64 128] [--methods gmg gmg+eta amg] [--threads 1 2] [--series 8]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import numba
import numpy as np
from scipy import ndimage

from continuum import ELECTROLYTE, HOST_CONDUCTIVE, PhysicalParameters, PotentialSolver


def resident() -> int:
    """Resident memory [bytes] (0 where /proc is missing): its growth over a solve is the fresh
    memory the solve touched (a count of page faults is not, where transparent huge pages
    serve a 2 MB region with one)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def porous_host(n: int, porosity: float = 0.6, blur: float = 2.0, top_layers: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), blur, mode="wrap")
    ph = np.where(field > np.quantile(field, porosity), HOST_CONDUCTIVE, ELECTROLYTE).astype(np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[:, :, -top_layers:] = ELECTROLYTE
    return ph


# (label, linear solver, eta_tolerance [V]): the tight solves converge the residual to 1e-10,
# "gmg+eta" stops where the KMC's rates stop caring (coupled runs: 0.01 mV).
VARIANTS = {"gmg": ("gmg", None), "gmg+eta": ("gmg", 1e-5), "amg": ("amg", None), "jacobi": ("jacobi", None),
            "direct": ("direct", None)}


def run(n: int, labels, h: float = 1e-6, series: int = 0):
    P = PhysicalParameters()
    ph = porous_host(n)
    rng = np.random.default_rng(1)
    blur = ndimage.gaussian_filter(rng.standard_normal(ph.shape), 3, mode="wrap")
    c = P.electrolyte.concentration * (1 + 0.05 * np.tanh(blur / blur.std()))
    I = -10.0 * n * n * h**2
    blur2 = ndimage.gaussian_filter(rng.standard_normal(ph.shape), 3, mode="wrap")
    c_step = c * (1 + 0.01 * np.tanh(blur2 / blur2.std()))
    out = {}
    for m in labels:
        method, eta_tol = VARIANTS[m]
        t0 = time.perf_counter()
        s = PotentialSolver(ph, h, P, eta_nuc=0.02, linear_solver=method, eta_tolerance=eta_tol)
        t1 = time.perf_counter()
        sol = s.solve(c, current=I, c_top=P.electrolyte.concentration)
        t2, c2, f2 = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        m2 = resident()
        warm = s.solve(c, current=1.05 * I, c_top=P.electrolyte.concentration, initial=sol)
        t3, c3, f3 = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        m3 = resident()
        # as a macro-step does it: the salt moved too (1 %, smooth), from the warm solution
        step = s.solve(c_step, current=1.1 * I, c_top=P.electrolyte.concentration, initial=warm)
        t4, c4, f4 = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        m4 = resident()
        out[m] = dict(setup=t1 - t0, cold=t2 - t0, solve=t2 - t1, warm=t3 - t2, warm_cpu=c3 - c2, V=sol.cell_potential,
                      step=t4 - t3, step_cpu=c4 - c3, warm_faults=f3 - f2, step_faults=f4 - f3, warm_mb=(m3 - m2) / 1e6,
                      step_mb=(m4 - m3) / 1e6, phi=(sol.phi_l, warm.phi_l, step.phi_l),
                      newton_s=step.iterations, lin_s=step.linear_iterations,
                      Vw=warm.cell_potential, newton=sol.iterations, lin=sol.linear_iterations,
                      newton_w=warm.iterations, lin_w=warm.linear_iterations, eta=sol.face_overpotential,
                      eta_w=warm.face_overpotential, eta_s=step.face_overpotential,
                      err=abs(sol.total_current / I - 1), kirchhoff=abs(sol.top_current / I - 1),
                      unknowns=sol.diagnostics["unknowns"], faces=len(sol.faces))
        r = out[m]
        if series:
            c_now, last, x = c_step, step, 1.1
            for kind in ("warm", "warm + salt 1 %"):
                cpus = []
                for k in range(series):
                    if kind != "warm":
                        blur_k = ndimage.gaussian_filter(rng.standard_normal(ph.shape), 3, mode="wrap")
                        c_now = c_now * (1 + 0.01 * np.tanh(blur_k / blur_k.std()))
                    x += 0.05
                    f0, t5, m5 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time(), resident()
                    last = s.solve(c_now, current=x * I, c_top=P.electrolyte.concentration, initial=last)
                    cpus.append(time.process_time() - t5)
                    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
                    print(f"  {n}^3 {m:8s} {kind} series {k + 1}: {cpus[-1]:.2f} CPU-s [Newton {last.iterations}, "
                          f"CG {last.linear_iterations}], {faults} page faults, resident "
                          f"{(resident() - m5) / 1e6:+.1f} MB", flush=True)
                print(f"  {n}^3 {m:8s} series of {series} {kind} solves: median {statistics.median(cpus):.2f} "
                      f"CPU-s (min {min(cpus):.2f}, max {max(cpus):.2f})", flush=True)
        print(f"  {n}^3 {m:8s} unknowns={r['unknowns']} faces={r['faces']}  setup {r['setup']:.2f}s  "
              f"cold {r['cold']:.2f}s [Newton {r['newton']}, CG {r['lin']}]  "
              f"warm {r['warm']:.2f}s ({r['warm_cpu']:.2f} CPU-s, {r['warm_faults']} page faults, resident "
              f"{r['warm_mb']:+.1f} MB) "
              f"[Newton {r['newton_w']}, CG {r['lin_w']}]  warm + salt 1 % {r['step_cpu']:.2f} CPU-s "
              f"({r['step_faults']} page faults, resident {r['step_mb']:+.1f} MB) [Newton {r['newton_s']}, "
              f"CG {r['lin_s']}]  V={r['V']:.9f}  "
              f"|I/Iapp-1|={r['err']:.1e}  |I_top/Iapp-1|={r['kirchhoff']:.1e}", flush=True)
    ref_label = labels[0]
    ref = out[ref_label]
    for m, r in out.items():
        if m == ref_label:
            continue
        deta = np.nanmax(np.abs(r["eta_w"] - ref["eta_w"])) * 1e3
        deta_s = np.nanmax(np.abs(r["eta_s"] - ref["eta_s"])) * 1e3
        print(f"  {n}^3 {m} / {ref_label}: cold x{r['cold'] / ref['cold']:.2f}, warm x{r['warm'] / ref['warm']:.2f}, "
              f"|dV| = {abs(r['V'] - ref['V']):.1e} V, largest face |d eta| (warm) = {deta:.1e} mV, "
              f"(warm + salt) = {deta_s:.1e} mV", flush=True)
        if max(deta, deta_s) > 1e-2:  # the coupled runs' tolerance, 0.01 mV
            raise SystemExit(f"{m}: a face's overpotential is more than 0.01 mV off {ref_label}'s")
    return out


def compare_threads(n: int, by_threads: dict) -> None:
    """The same solves at each thread count side by side (wall / CPU seconds) and whether they
    gave the same bits."""
    counts = list(by_threads)
    first = by_threads[counts[0]]
    for m in first:
        cells = []
        for t in counts:
            r = by_threads[t][m]
            cells.append(f"{t} thr: solve {r['solve']:.2f}s, warm {r['warm']:.2f}s/{r['warm_cpu']:.2f} CPU-s, "
                         f"warm + salt {r['step']:.2f}s/{r['step_cpu']:.2f} CPU-s [load {r['load']:.2f}]")
        same = all(a.tobytes() == b.tobytes() for t in counts[1:]
                   for a, b in zip(first[m]["phi"], by_threads[t][m]["phi"]))
        wall = {t: sum(by_threads[t][m][k] for k in ("solve", "warm", "step")) for t in counts}
        ratios = ", ".join(f"wall {t} / {counts[0]} thr x{wall[t] / wall[counts[0]]:.2f}" for t in counts[1:])
        print(f"  {n}^3 {m:8s} " + " | ".join(cells) + f" | {ratios}; same bits: {'yes' if same else 'NO'}", flush=True)
        if not same:
            raise SystemExit(f"{m}: {n}^3 solves differ between thread counts")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--methods", nargs="+", default=["gmg", "gmg+eta", "amg", "jacobi", "direct"],
                    choices=list(VARIANTS), help="the first is the reference of the ratios")
    ap.add_argument("--direct-max", type=int, default=200_000,
                    help="largest system given to the direct (splu) baseline")
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help=f"Numba thread counts to compare (1..{numba.config.NUMBA_NUM_THREADS}); default: Numba's own")
    ap.add_argument("--series", type=int, default=0, metavar="N",
                    help="N more warm solves of each kind (current only; salt +1 %%, current +5 %%), their CPU-s "
                         "and medians")
    args = ap.parse_args()
    if args.series < 0:
        ap.error(f"--series {args.series}: must be >= 0")
    for t in args.threads or []:
        if not 1 <= t <= numba.config.NUMBA_NUM_THREADS:
            ap.error(f"--threads {t}: must be 1..{numba.config.NUMBA_NUM_THREADS} (NUMBA_NUM_THREADS)")
    for n in args.sizes:
        ne = int(0.6 * n**3)  # about
        methods = [m for m in args.methods if m != "direct" or ne <= args.direct_max]
        if len(methods) < len(args.methods):
            print(f"  {n}^3: direct LU baseline skipped (~{ne} unknowns > --direct-max {args.direct_max})")
        by_threads = {}
        for t in args.threads or [numba.get_num_threads()]:
            numba.set_num_threads(t)
            load = os.getloadavg()[0]
            print(f"  {n}^3 at {t} Numba thread(s), load average {load:.2f} on {os.cpu_count()} cores", flush=True)
            by_threads[t] = run(n, methods, series=args.series)
            for r in by_threads[t].values():
                r["load"] = load
        if len(by_threads) > 1:
            compare_threads(n, by_threads)


if __name__ == "__main__":
    main()
