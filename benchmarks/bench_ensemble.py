"""Ensemble throughput: pulse-vs-DC replicas per hour with 1 and 2 local workers.

    python benchmarks/bench_ensemble.py              # the quick pulse_vs_dc case (24x24 lattice)
    python benchmarks/bench_ensemble.py --quick      # 12x12 lattice, 0.02 mAh/cm^2: a minute or two
    python benchmarks/bench_ensemble.py --replicas 8 --workers 1 2 4
    python benchmarks/bench_ensemble.py --scheduler tcp://host:8786   # also time a Dask cluster

One replica = the six pulse-vs-DC cases on its own host realisation.  Every setting runs the
same replicas into a fresh folder.  workers=1 runs in this process (no pool); the pool timings
include starting the worker processes (spawn, imports, loading the Numba cache), which is what
a user pays.  Scaling efficiency = rate(W) / (W x rate(1)).  A warm-up replica runs first so
that Numba compilation is not charged to the serial run.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from kmc.coupling.config import make_config
from kmc.studies.ensemble import run_ensemble

QUICK = ["host.nx=12", "host.ny=12", "host.host_layers=6", "host.reservoir_layers=8",
         "protocol.capacity_mAh_cm2=0.02", "snapshots=0"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shrink the lattice and capacity")
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--scheduler", default=None, help="also run on this Dask scheduler")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    config = make_config({}, (QUICK if args.quick else ["snapshots=0"]) + args.overrides)
    print(f"pulse_vs_dc ensemble, lattice {config.host.shape}, {config.protocol.capacity_mAh_cm2} mAh/cm^2, "
          f"{args.replicas} replicas, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        warm = make_config(config.model_dump(mode="json"), ["seed=999"])
        run_ensemble(warm, 1, outdir=Path(tmp) / "warmup", cases="pulse_vs_dc", workers=1, progress=False)
        settings = [(f"{w} worker{'s' * (w > 1)}", dict(workers=w)) for w in args.workers]
        if args.scheduler:
            settings.append((f"dask {args.scheduler}", dict(scheduler=args.scheduler)))
        rates = {}
        print(f"{'setting':>22} {'wall [s]':>9} {'replicas/h':>11} {'efficiency':>10}")
        for i, (name, kw) in enumerate(settings):
            t0 = time.perf_counter()
            res = run_ensemble(config, args.replicas, outdir=Path(tmp) / f"run{i}", cases="pulse_vs_dc",
                               progress=False, **kw)
            wall = time.perf_counter() - t0
            assert len(res.records) == args.replicas, res.failures
            rate = args.replicas / wall * 3600
            rates[name] = rate
            w = kw.get("workers")
            base = rates.get("1 worker")
            eff = f"{rate / (w * base):10.2f}" if (w and base) else f"{'-':>10}"
            print(f"{name:>22} {wall:9.1f} {rate:11.1f} {eff}")


if __name__ == "__main__":
    main()
