"""KMC throughput: accepted events per second of the jitted event loop (one core).

    python benchmarks/bench_kmc.py            # 64^3, 128^3, 256^3 hopping + deposition
    python benchmarks/bench_kmc.py --quick    # 64^3 and 128^3 only

Pure hopping: collector covered by a dielectric layer (no reactions), reservoir at the same
concentration, no field.  'events/s' counts executed events (a leap is one); 'hops/s' counts
hop equivalents (a leap of n hops counts n), so with leaps on it exceeds the plain hop rate.
Deposition: planar and porous electrodes at phi_s = -0.3 V (reduction ~36 /s per face against
~258 /s per hop direction at the defaults), full event set (hops, leaps, insertion/removal,
reduction, oxidation, dead-lithium checks).  Per-call setup (rates, groups, leap map) is timed
separately.  Numbers depend on the machine's load; the first run includes Numba compilation
(cached afterwards).
"""
from __future__ import annotations

import sys
import time

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
    t0 = time.perf_counter()
    eng.advance(1e-15, phi_l=z, phi_s=ps, c_top=c_top)  # setup only (no event fits)
    t_setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = eng.advance(duration, phi_l=z, phi_s=ps, c_top=c_top, max_events=n_events)
    loop = time.perf_counter() - t0 - t_setup
    return r, loop, t_setup


def hopping(n, packets_per_voxel, leaps, n_events, show=True):
    p = PhysicalParameters()
    ph = np.zeros((n, n, n), np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[:, :, 1] = HOST_DIELECTRIC
    c = packets_per_voxel / p.lithium_molar_volume
    st = LatticeState.from_arrays(ph, H, concentration=c, seed=0)
    r, loop, setup = _run(st, p, n_events, leaps=leaps, c_top=c)
    hops = r.hops + r.leap_hops
    if show:
        print(f"hopping {n:4d}^3  occ={packets_per_voxel:<6g} leaps={str(leaps):5s} packets={st.n_packets:9d}  "
          f"events/s={r.n_events / loop:9.3g}  hops/s={hops / loop:9.3g}  "
          f"attempts/event={r.attempts_per_event:.4f}  setup={setup:.2f}s", flush=True)


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
    r, loop, setup = _run(st, p, n_events, leaps=True, phi_s=phi_s, c_top=p.c_ref)
    kind = "porous" if porous else "planar"
    print(f"deposit {n:4d}^3  {kind:6s} packets={st.n_packets:8d}  events/s={r.n_events / loop:9.3g}  "
          f"attempts/event={r.attempts_per_event:.4f}  reductions={r.reductions} oxidations={r.oxidations} "
          f"leaps={r.leaps} hops={r.hops} dead_marked={r.dead_marked} setup={setup:.2f}s", flush=True)


def main():
    quick = "--quick" in sys.argv
    sizes = (64, 128) if quick else (64, 128, 256)
    hopping(16, 0.013, False, 10_000, show=False)  # compile / warm the cache
    for n in sizes:
        for occ in (0.013, 0.3):
            for leaps in (False, True):
                hopping(n, occ, leaps, 5_000_000 if n < 256 else 10_000_000)
    for porous in (False, True):
        deposition(128 if not quick else 64, porous, 3_000_000)


if __name__ == "__main__":
    main()
