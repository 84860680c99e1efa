"""Cost of a coupled run against its size: porous conductive host, DC at 8 mA/cm^2,
24 um host + 24 um reservoir, 0.05 mAh/cm^2, footprints 24 and 48 um (96 um with --large).

    python benchmarks/bench_coupled.py                       # this checkout
    python benchmarks/bench_coupled.py --compare-to ../old   # and another checkout, side by side

Each case is one `python -m kmc run` in a fresh process (single-threaded BLAS, Numba cache
warmed by a first tiny run). Printed per case: voxels, macro-steps (time-series rows - 1), wall
time of the process [s], seconds per macro-step, and the growth factor from the previous
footprint (a footprint twice as large has 4x the voxels; cost that grows about as the voxels
is <= 4.5x).  With --compare-to, the other checkout's wall time and the ratio (this / other).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _config(footprint_um: int) -> dict:
    return {"host": {"kind": "random_porous", "nx": footprint_um, "ny": footprint_um, "host_layers": 24,
                     "reservoir_layers": 24},
            "protocol": {"kind": "dc", "current_density_mA_cm2": 8.0, "capacity_mAh_cm2": 0.05},
            "snapshots": 0}


def run_case(checkout: Path, footprint_um: int, workdir: Path) -> tuple[float, int]:
    """(wall seconds, macro-steps) of one run in ``checkout``."""
    cfg = workdir / f"c{footprint_um}.json"
    cfg.write_text(json.dumps(_config(footprint_um)))
    out = workdir / f"out-{checkout.name}-{footprint_um}"
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kmc", "run", str(cfg), "--out", str(out), "--no-progress"],
                   cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    with open(out / "timeseries.csv", newline="") as fh:
        steps = sum(1 for _ in csv.DictReader(fh)) - 1
    return wall, steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare-to", type=Path, default=None, help="another checkout of the project")
    ap.add_argument("--large", action="store_true", help="also the 96 um footprint (minutes)")
    args = ap.parse_args()
    sizes = (24, 48, 96) if args.large else (24, 48)
    checkouts = [ROOT] + ([args.compare_to.resolve()] if args.compare_to else [])
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        for c in checkouts:  # compile the kernels once per checkout
            cfg = work / "warm.json"
            cfg.write_text(json.dumps({"host": {"nx": 12, "ny": 12, "host_layers": 4, "reservoir_layers": 8},
                                       "protocol": {"capacity_mAh_cm2": 0.2}, "snapshots": 0}))
            subprocess.run([sys.executable, "-m", "kmc", "run", str(cfg), "--out", str(work / f"warm-{c.name}"),
                            "--no-progress"], cwd=c, env={**os.environ, "PYTHONPATH": str(c)}, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"{'footprint':>10} {'voxels':>9} {'steps':>6} {'wall [s]':>9} {'s/step':>7} {'growth':>7}"
              + ("  other: steps  wall [s]  this/other" if args.compare_to else ""))
        prev = None
        for n in sizes:
            wall, steps = run_case(ROOT, n, work)
            vox = n * n * (1 + 24 + 24)
            line = (f"{n:>7} um {vox:>9} {steps:>6} {wall:>9.1f} {wall / steps:>7.2f} "
                    f"{(wall / prev if prev else float('nan')):>7.2f}")
            if args.compare_to:
                w2, s2 = run_case(checkouts[1], n, work)
                line += f"  {s2:>12} {w2:>9.1f} {wall / w2:>11.2f}"
            print(line, flush=True)
            prev = wall


if __name__ == "__main__":
    main()
