"""Wall time of `python -m kmc pulse_vs_dc` (quick default, optionally --full) and the share
of time in continuum solves versus KMC.

    python benchmarks/bench_pulse_vs_dc.py [--full] [--workers N]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

from kmc.coupling.config import make_config
from kmc.studies.pulse_vs_dc import FULL_OVERRIDES, STUDY_OVERRIDES, run_pulse_vs_dc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    cfg = make_config({}, STUDY_OVERRIDES + (FULL_OVERRIDES if args.full else []))
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        run_pulse_vs_dc(cfg, Path(d), progress=False, workers=args.workers, echo=lambda s: None)
        wall = time.perf_counter() - t
        timing = json.loads((Path(d) / "timing.json").read_text())
    cpu = timing["continuum [s]"] + timing["kmc [s]"] + timing["observables [s]"]
    print(f"{'full' if args.full else 'quick'} pulse_vs_dc: wall {wall:.1f} s")
    print(f"  summed over cases: continuum {timing['continuum [s]']:.1f} s ({100 * timing['continuum [s]'] / cpu:.0f} %), "
          f"KMC {timing['kmc [s]']:.1f} s ({100 * timing['kmc [s]'] / cpu:.0f} %), "
          f"observables {timing['observables [s]']:.1f} s")
    print(f"  parallel speed-up over summed case time: {cpu / wall:.2f}x")


if __name__ == "__main__":
    main()
