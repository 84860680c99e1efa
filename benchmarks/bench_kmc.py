"""KMC throughput: accepted events per second of the jitted event loop (one core).

    python benchmarks/bench_kmc.py            # 64^3, 128^3, 256^3 hopping + deposition
    python benchmarks/bench_kmc.py --quick    # 64^3 and 128^3 only
    python benchmarks/bench_kmc.py --compile  # cold compilation cost of the kernels only
    python benchmarks/bench_kmc.py --hop-row  # the 128^3 plain-hop row only (run trees alternately)

Pure hopping: collector covered by a dielectric layer (no reactions), reservoir at the same
concentration, no field.  'events/s' counts executed events (a leap is one); 'hops/s' counts
executed single hops only; with leaps on, 'hop-equiv/s' adds the hops the leaps stand for (a
leap of n hops counts n).  Each rate is per second of the event loop's wall time; the
'per CPU-s' figure divides by the process's CPU time instead (one thread: on a machine shared
with other work it leaves out the time spent waiting for the core; the load average is printed
first).
Deposition: planar and porous electrodes at phi_s = -0.3 V (reduction ~36 /s per face against
~258 /s per hop direction at the defaults), full event set (hops, leaps, insertion/removal,
reduction, oxidation, dead-lithium checks).  Per-call setup (rates, groups, leap map) is timed
separately.  Numbers depend on the machine's load; the first run includes Numba compilation
(cached afterwards).
Compilation ('--compile'): a child process with an empty Numba cache runs deposition and
stripping on an 8^3 lattice (leaps on, every kernel compiled); it prints the child's CPU
seconds (user + sys; all compilation but about a second of imports) and how many
specialisations the kernels compiled (one per kernel when argument types are consistent).
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from continuum.constants import HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from continuum.parameters import PhysicalParameters
from kmc.engine import KMCEngine
from kmc.engine.lattice import LatticeState

H = 1e-6


def _run(st, params, n_events, *, leaps, phi_s=None, c_top, duration=np.inf):
    eng = KMCEngine(st, params, seed=1, leaps=leaps)
    z = np.zeros(st.shape)
    ps = z if phi_s is None else phi_s
    t0, c0 = time.perf_counter(), time.process_time()
    eng.advance(1e-15, phi_l=z, phi_s=ps, c_top=c_top)  # setup only (no event fits)
    t_setup, c_setup = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    r = eng.advance(duration, phi_l=z, phi_s=ps, c_top=c_top, max_events=n_events)
    loop = time.perf_counter() - t0 - t_setup
    cpu = time.process_time() - c0 - c_setup
    return r, loop, t_setup, cpu


def hopping(n, packets_per_voxel, leaps, n_events, show=True):
    p = PhysicalParameters()
    ph = np.zeros((n, n, n), np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[:, :, 1] = HOST_DIELECTRIC
    c = packets_per_voxel / p.lithium_molar_volume
    st = LatticeState.from_arrays(ph, H, concentration=c, seed=0)
    r, loop, setup, cpu = _run(st, p, n_events, leaps=leaps, c_top=c)
    if show:
        equiv = f"  hop-equiv/s={(r.hops + r.leap_hops) / loop:9.3g}" if leaps else ""
        print(f"hopping {n:4d}^3  occ={packets_per_voxel:<6g} leaps={str(leaps):5s} packets={st.n_packets:9d}  "
              f"events/s={r.n_events / loop:9.3g}  hops/s={r.hops / loop:9.3g} ({r.hops / cpu:9.3g} per CPU-s)"
              f"{equiv}  attempts/event={r.attempts_per_event:.4f}  setup={setup:.2f}s", flush=True)


def deposition(n, porous, n_events):
    p = PhysicalParameters()
    ph = np.zeros((n, n, n), np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    if porous:  # random conductive skeleton in the lower half, connected through the collector
        rng = np.random.default_rng(0)
        host = rng.random((n, n, n // 2)) < 0.35
        ph[:, :, 1:n // 2 + 1][host[:, :, : n // 2]] = HOST_CONDUCTIVE
    else:
        ph[:, :, 1:4] = LITHIUM
    st = LatticeState.from_arrays(ph, H, concentration=p.c_ref, seed=0)
    phi_s = np.full(ph.shape, -0.3)
    r, loop, setup, cpu = _run(st, p, n_events, leaps=True, phi_s=phi_s, c_top=p.c_ref)
    kind = "porous" if porous else "planar"
    print(f"deposit {n:4d}^3  {kind:6s} packets={st.n_packets:8d}  events/s={r.n_events / loop:9.3g} "
          f"({r.n_events / cpu:9.3g} per CPU-s)  "
          f"attempts/event={r.attempts_per_event:.4f}  reductions={r.reductions} oxidations={r.oxidations} "
          f"leaps={r.leaps} hops={r.hops} dead_marked={r.dead_marked} setup={setup:.2f}s", flush=True)


_COLD_RUN = """
import importlib
from kmc.studies.parallel import compile_kmc_kernels
compile_kmc_kernels()  # what a study's first run compiles in one worker
n = 0
for m in ("layout", "selection", "rate_cache", "leaps", "dead_lithium", "effects", "loop"):
    mod = importlib.import_module("kmc.engine.kernels." + m)
    n += sum(len(f.signatures) for f in vars(mod).values()
             if getattr(getattr(f, "py_func", None), "__module__", None) == mod.__name__)
print(n)
"""


def compile_cost():
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as cache:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _COLD_RUN], cwd=root, capture_output=True, text=True, check=True,
                             env={**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(root)})
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"cold compile (empty cache, 8^3 deposition + stripping): {cpu:.1f} CPU-s (user+sys), "
          f"{wall:.1f} s wall, {out.stdout.split()[-1]} kernel specialisations, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)


def main():
    if "--compile" in sys.argv:
        compile_cost()
        return
    quick = "--quick" in sys.argv
    sizes = (64, 128) if quick else (64, 128, 256)
    print("load average (1 min):", os.getloadavg()[0], flush=True)
    hopping(16, 0.013, False, 10_000, show=False)  # compile / warm the cache
    if "--hop-row" in sys.argv:
        hopping(128, 0.013, False, 5_000_000)
        return
    for n in sizes:
        for occ in (0.013, 0.3):
            for leaps in (False, True):
                hopping(n, occ, leaps, 5_000_000 if n < 256 else 10_000_000)
    for porous in (False, True):
        deposition(128 if not quick else 64, porous, 3_000_000)


if __name__ == "__main__":
    main()
