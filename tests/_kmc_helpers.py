"""Shared helpers for the KMC tests: every run goes through :func:`advance_checked`, which
asserts the exact Faraday/packet accounting and the lattice invariants."""
from __future__ import annotations

import math
import numpy as np

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from continuum.parameters import PhysicalParameters
from kmc.engine import KMCEngine

H = 1.0e-6


def slab(nx, ny, nz, lithium_layers=0, cover=False):
    """Collector at z = 0, optional dielectric cover at z = 1, optional lithium layers."""
    ph = np.zeros((nx, ny, nz), np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    z = 1
    if cover:
        ph[:, :, 1] = HOST_DIELECTRIC
        z = 2
    if lithium_layers:
        ph[:, :, z:z + lithium_layers] = LITHIUM
    return ph


def advance_checked(engine: KMCEngine, duration, **kw):
    st = engine.state
    li0 = st.lithium_count
    np0 = st.n_packets
    res = engine.advance(duration, **kw)
    c = res.counts
    # Faraday: packets reduced - oxidised == lithium voxels created - removed == net change
    assert c["reductions"] - c["oxidations"] == c["lithium_created"] - c["lithium_removed"]
    assert st.lithium_count - li0 == c["reductions"] - c["oxidations"]
    if engine.transport == "explicit":
        assert st.n_packets - np0 == (c["insertions"] + c["oxidations"] + c["released"]
                                      - c["removals_top"] - c["reductions"] - c["killed"])
    assert np.array_equal(np.bincount(st.packets, minlength=st.phase.size),
                          st.occupancy.reshape(-1))
    assert np.all(st.phase.reshape(-1)[st.packets] == ELECTROLYTE)
    assert len(np.unique(st.packet_ids)) == st.n_packets
    li = st.phase == LITHIUM
    assert np.all(st.eta_nuc[li] == 0.0) and np.all(st.activity[li] == 1.0)
    assert res.elapsed <= duration
    return res


def params(**kin):
    return PhysicalParameters(kinetics=kin) if kin else PhysicalParameters()


def same_rows(a, b):
    """Rows (lists of dicts) equal to the bit, NaN equal to NaN: a resumed run against an
    uninterrupted one."""
    assert len(a) == len(b)
    for i, (ra, rb) in enumerate(zip(a, b)):
        assert list(ra) == list(rb), i
        for k in ra:
            x, y = ra[k], rb[k]
            ok = x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
            assert ok, (i, k, x, y)
