"""Cost of coupled runs against their size, and of the pulse-vs-DC study.

    python benchmarks/bench_coupled.py                       # scaling table, 24 and 48 um
    python benchmarks/bench_coupled.py --large               # and 96 um (minutes)
    python benchmarks/bench_coupled.py --host-scale          # 1 mAh/cm^2 into 64 x 64 x 96 um
    python benchmarks/bench_coupled.py --no-scaling --studies pulse_vs_dc --full   # quick and full
    python benchmarks/bench_coupled.py --no-scaling --studies top_deposition gradient_hosts cycling
    python benchmarks/bench_coupled.py --compare-to ../old   # each case also in another checkout
    python benchmarks/bench_coupled.py --no-scaling --studies pulse_vs_dc --compare-to ../old --repeat 5

Scaling table: porous conductive host, DC at 8 mA/cm^2, 24 um host + 24 um reservoir,
0.05 mAh/cm^2, footprints 24, 48 (96) um, 1 um voxels.  Host scale: a 96 um deep random
porous host (porosity 0.6, 3 um features) under a 16 um reservoir, 64 x 64 um footprint,
DC 1 mA/cm^2 to 1 mAh/cm^2.

Each case is one `python -m kmc` process (single-threaded BLAS, Numba cache warmed by a first
tiny run, so compilation is not counted).  Printed per case: voxels, macro-steps (time-series
rows - 1), wall time of the process [s] (imports and output writing included), seconds per
macro-step, the share of the run's own time (timing.json: wall of the runs) spent in the
continuum solves, the KMC and the observables, and the growth factor from the previous
footprint (4x the voxels; cost that grows as the voxels is <= 4.5x), in wall and in the
process's CPU seconds (user + system; on a shared machine read the CPU growth).  With --compare-to, the
other checkout's wall time and the ratio (this / other), run alternately in the same session
(--repeat N: N alternations of each study, the median and every ratio). The machine's load is
printed beside each study's wall: on a shared machine, compare ratios, not absolute numbers.
A study of a checkout with time stamps (KMC_TIMELINE, kmc.workers.stamp) also prints its
phases: start-up, the cases, and what follows the last case, in wall and CPU seconds.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV1 = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def scaling_config(footprint_um: int) -> dict:
    return {"host": {"kind": "random_porous", "nx": footprint_um, "ny": footprint_um, "host_layers": 24,
                     "reservoir_layers": 24},
            "protocol": {"kind": "dc", "current_density_mA_cm2": 8.0, "capacity_mAh_cm2": 0.05},
            "snapshots": 0}


# Mean-field salt transport: the explicit packets' random walk would take ~2e10 hops here.  Steps
# of up to 30 s instead of 5 s: at 1 mA/cm^2 the salt field changes on the cell's diffusion time
# (~60 s); 4 replicas of a 32 x 32 x 48 um host to 0.5 mAh/cm^2 gave the same deposit either way
# (docs/model.md, "Step length").
HOST_SCALE = {"host": {"kind": "random_porous", "nx": 64, "ny": 64, "host_layers": 96, "reservoir_layers": 16,
                       "porosity": 0.6, "porosity_top": 0.6, "feature_size_um": 3.0},
              "kmc": {"transport": "implicit", "max_macro_step_s": 30.0},
              "protocol": {"kind": "dc", "current_density_mA_cm2": 1.0, "capacity_mAh_cm2": 1.0},
              "snapshots": 0}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _python(checkout: Path, args: list, workdir: Path, timeline: list | None = None,
            cpu: list | None = None) -> float:
    """Wall time of ``python -m kmc args`` in ``checkout``; ``timeline``: filled with its
    KMC_TIMELINE stamps (kmc.workers.stamp) as (wall clock, pid, CPU-s, what); ``cpu``: gets
    the CPU seconds of the command and its workers appended."""
    env = {**os.environ, "PYTHONPATH": str(checkout), **ENV1, **({"KMC_TIMELINE": "1"} if timeline is not None else {})}
    t0, c0 = time.perf_counter(), _children_cpu()
    done = subprocess.run([sys.executable, "-m", "kmc", *args, "--no-progress"], cwd=checkout, env=env, check=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if timeline is not None else None,
                          text=True)
    wall = time.perf_counter() - t0
    if cpu is not None:
        cpu.append(_children_cpu() - c0)
    if timeline is not None:
        for line in done.stderr.splitlines():
            if line.startswith("[timeline] "):
                t, _, pid, _, cpu, what = line[11:].split(" ", 5)
                timeline.append((float(t), pid, float(cpu), what))
    return wall


def phases(timeline: list) -> str:
    """A study's phases from its stamps: start-up until the last worker starts its first case
    (the CPU-s of the command and of each worker until then), the cases (each worker's CPU-s),
    and after the last case (the command's CPU-s for the outputs); '' for a checkout without stamps."""
    if not timeline:
        return ""
    t0, main = timeline[0][0], timeline[0][1]
    by: dict[str, list] = {}
    for t, pid, cpu, what in timeline:
        by.setdefault(pid, []).append((t - t0, cpu, what))
    mine = {what: (t, cpu) for t, cpu, what in by.pop(main)}
    first = [next((t, c) for t, c, w in ev if w.startswith("case start")) for ev in by.values()]
    last = [[(t, c) for t, c, w in ev if w.startswith("case done")][-1] for ev in by.values()]
    start, end = max(t for t, _ in first), mine["cases done"][0]
    return (f"start-up {start:.1f} s (CPU-s: command {mine['cases start'][1]:.1f}, workers "
            f"{'/'.join(f'{c:.1f}' for _, c in first)}), cases {end - start:.1f} s (workers' CPU-s "
            f"{'/'.join(f'{b[1] - a[1]:.1f}' for a, b in zip(first, last))}), after the last case "
            f"{mine['command done'][0] - end:.1f} s ({mine['command done'][1] - mine['cases done'][1]:.1f} CPU-s)")


def run_config(checkout: Path, cfg: dict, name: str, workdir: Path) -> dict:
    """Wall, CPU seconds, macro-steps and timing.json of one `python -m kmc run`."""
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(cfg))
    out = workdir / f"out-{checkout.name}-{name}"
    cpu = []
    wall = _python(checkout, ["run", str(path), "--out", str(out), "--overwrite"], workdir, cpu=cpu)
    with open(out / "timeseries.csv", newline="") as fh:
        steps = sum(1 for _ in csv.DictReader(fh)) - 1
    timing = json.loads((out / "timing.json").read_text())
    return {"wall": wall, "cpu": cpu[0], "steps": steps, "timing": timing}


def shares(timing: dict) -> str:
    total = max(timing.get("wall [s]", 0.0), 1e-12)
    parts = [("continuum", "continuum [s]"), ("kmc", "kmc [s]"), ("observables", "observables [s]")]
    return " ".join(f"{label} {100 * timing.get(key, 0.0) / total:3.0f}%" for label, key in parts)


def warm(checkouts, work: Path) -> None:
    for c in checkouts:  # compile the kernels once per checkout
        run_config(c, {"host": {"nx": 12, "ny": 12, "host_layers": 4, "reservoir_layers": 8},
                       "protocol": {"capacity_mAh_cm2": 0.2}, "snapshots": 0}, "warm", work)


def scaling(checkouts, sizes, work: Path) -> None:
    print("Scaling: porous host, DC 8 mA/cm^2, 0.05 mAh/cm^2, 24 um host + 24 um reservoir")
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'footprint':>10} {'voxels':>9} {'steps':>6} {'wall [s]':>9} {'CPU-s':>7} {'s/step':>7} {'growth':>7} "
          f"{'(CPU)':>6}  share of run time" + ("   | other: steps  wall [s]  this/other" if len(checkouts) > 1 else ""),
          flush=True)
    prev = None
    for n in sizes:
        r = run_config(checkouts[0], scaling_config(n), f"s{n}", work)
        vox = n * n * (1 + 24 + 24)
        growth = (r["wall"] / prev["wall"], r["cpu"] / prev["cpu"]) if prev else (float("nan"),) * 2
        line = (f"{n:>7} um {vox:>9} {r['steps']:>6} {r['wall']:>9.1f} {r['cpu']:>7.1f} {r['wall'] / r['steps']:>7.2f} "
                f"{growth[0]:>7.2f} {growth[1]:>6.2f}  {shares(r['timing'])}")
        if len(checkouts) > 1:
            o = run_config(checkouts[1], scaling_config(n), f"s{n}", work)
            line += f"   | {o['steps']:>12} {o['wall']:>9.1f} {r['wall'] / o['wall']:>11.2f}"
        print(line, flush=True)
        prev = r


def host_scale(checkouts, work: Path) -> None:
    print("Host scale: 1 mAh/cm^2 at 1 mA/cm^2 into a 64 x 64 x 96 um porous host (+16 um reservoir), "
          "mean-field salt, steps <= 30 s")
    for c in checkouts:
        r = run_config(c, HOST_SCALE, "host_scale", work)
        print(f"  {c.name}: {r['steps']} macro-steps, wall {r['wall']:.0f} s ({r['wall'] / 60:.1f} min), "
              f"{r['wall'] / r['steps']:.2f} s/step, {shares(r['timing'])}", flush=True)


def studies(checkouts, names, full: bool, work: Path, repeat: int = 1) -> None:
    print("studies (2 workers): wall of the whole command, and the cases' own time from timing.json; "
          "load: the 1-minute load average as the command started")
    for name in names:
        for flag in ([], ["--full"]) if full else ([],):
            walls: dict[Path, list[float]] = {c: [] for c in checkouts}
            for r in range(repeat):
                for c in checkouts if r % 2 == 0 else checkouts[::-1]:  # alternate who goes first
                    out = work / f"{name}-{c.name}-{'full' if flag else 'quick'}"
                    load, timeline = os.getloadavg()[0], []
                    wall = _python(c, [name, *flag, "--out", str(out), "--overwrite"], work, timeline)
                    walls[c].append(wall)
                    t = json.loads((out / "timing.json").read_text())
                    print(f"  {name} {'--full' if flag else 'quick '} ({c.name}): wall {wall:.1f} s, load {load:.1f} "
                          f"(cases' own time: continuum {t.get('continuum [s]', 0):.1f} s, "
                          f"KMC {t.get('kmc [s]', 0):.1f} s)", flush=True)
                    if timeline:
                        print(f"    {phases(timeline)}", flush=True)
            if len(checkouts) > 1:
                this, other = walls[checkouts[0]], walls[checkouts[1]]
                ratios = sorted(a / b for a, b in zip(this, other))
                print(f"  {name} {'--full' if flag else 'quick '}: median wall {statistics.median(this):.1f} s "
                      f"({checkouts[0].name}) against {statistics.median(other):.1f} s ({checkouts[1].name}); "
                      f"this/other per alternation: {', '.join(f'{q:.2f}' for q in ratios)}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare-to", type=Path, default=None, help="another checkout of the project")
    ap.add_argument("--large", action="store_true", help="also the 96 um footprint (minutes)")
    ap.add_argument("--host-scale", action="store_true", help="the 1 mAh/cm^2 64 x 64 x 96 um run (minutes)")
    ap.add_argument("--studies", nargs="*", default=None, metavar="NAME",
                    help="time these studies' quick defaults (no name: pulse_vs_dc)")
    ap.add_argument("--full", action="store_true", help="with --studies: also each study's --full")
    ap.add_argument("--no-scaling", action="store_true", help="skip the scaling table")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="with --studies: run each study N times per checkout, alternating which goes first")
    args = ap.parse_args()
    checkouts = [ROOT] + ([args.compare_to.resolve()] if args.compare_to else [])
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        warm(checkouts, work)
        if not args.no_scaling:
            scaling(checkouts, (24, 48, 96) if args.large else (24, 48), work)
        if args.host_scale:
            host_scale(checkouts, work)
        if args.studies is not None:
            studies(checkouts, args.studies or ["pulse_vs_dc"], args.full, work, args.repeat)


if __name__ == "__main__":
    main()
