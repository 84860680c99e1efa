"""Cached rates of the KMC: per-voxel packet rate bounds and site rates, and their refresh
after a phase change.  Fields are frozen within a call, so every rate is constant until a
phase change touches it; only those are recomputed.  The rate laws come from
:mod:`kmc.engine.rates` (compiled here), never re-derived.
"""
from __future__ import annotations

import numpy as np

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, LITHIUM

from .. import rates as _rates
from .layout import (I_IMPLICIT, I_NX, I_NY, I_NZ, I_SD, NXT, OFFSETS, P_ACF, P_AAF, P_COORD, P_HOP, P_INS0, P_KOX0,
                     P_KRED0, P_SDEB, P_SDNU, P_UTOP, P_VM, coords, inner, is_conductor, neighbour, neighbour_u)
from .selection import list_length, packet_leaf, rate_group, regroup_packet, set_site_group

_reduction_rate = inner(_rates.reduction_rate)
_oxidation_rate = inner(_rates.oxidation_rate)
_surface_hop_rate = inner(_rates.surface_hop_rate)
_coordination_shift = inner(_rates.coordination_shift)

# what a site channel does (site_channels)
SITE_NONE, SITE_OXIDATION, SITE_SURFACE_HOP, SITE_REDUCTION, SITE_INSERTION = range(5)


@inner
def face_reduction_rate(c, e, PHIS, PHIL, ETA, ACT, prm, shift):
    """Per-packet reduction rate on the face between conductor c and electrolyte voxel e;
    ``shift``: the coordination shift of the voxel it would fill (:func:`coordination_eta`)."""
    return _reduction_rate(prm[P_KRED0], ACT[c], prm[P_ACF], PHIS[c] - PHIL[e] + shift, ETA[c])


@inner
def face_oxidation_rate(l, e, PHIS, PHIL, prm, shift):
    """Oxidation rate of lithium voxel l through its face to electrolyte voxel e (a = 1);
    ``shift``: l's coordination shift (:func:`coordination_eta`)."""
    return _oxidation_rate(prm[P_KOX0], 1.0, prm[P_AAF], PHIS[l] - PHIL[e] + shift)


@inner
def coordination_eta(v, x, y, z, phase, prm, nx, ny, nz):
    """Coordination shift [V] of the lithium voxel v is or would become: its face neighbours
    that are not electrolyte (lithium, live or dead, and host) are its bonds; the reservoir
    above the top layer is electrolyte.  0 when the shift is off (one compare, no lookups)."""
    delta = prm[P_COORD]
    if delta == 0.0:
        return 0.0
    bonds = 0
    for d in range(6):
        w = neighbour(v, x, y, z, d, nx, ny, nz)
        if w >= 0 and phase[w] != ELECTROLYTE:
            bonds += 1
    return _coordination_shift(bonds, delta)


# ---- packets -------------------------------------------------------------------------------
@inner
def packet_rate_bound(v, phase, conn, U, PHIL, PHIS, ETA, ACT, RV, L, prm, nx, ny, nz):
    """Store the total reduction rate of electrolyte voxel v in RV[v] (float32) and return
    the per-packet rate bound that groups it: R + 6 K_max (K_max: its fastest hop), or K/2^L
    on leap voxels (K: the hop total).  Hop rates are (D+/h^2) U[w]/U[v] with
    U = exp(-f (phi_l - phi_top)/2), evaluated the same way by the event loop, which thins
    each direction against (B[g] - R)/6 >= K_max.  Arrays are passed explicitly: this runs
    for every voxel in setup."""
    x, y, z = coords(v, ny, nz)
    inv = prm[P_HOP] / np.float64(U[v])
    utop = prm[P_UTOP]
    K = 0.0
    kmax = 0.0
    R = 0.0
    shift = coordination_eta(v, x, y, z, phase, prm, nx, ny, nz)
    for d in range(6):
        w, uw = neighbour_u(U, v, x, y, z, d, nx, ny, nz, utop)
        K += inv * uw
        if inv * uw > kmax:
            kmax = inv * uw
        if w >= 0:
            p = phase[w]
            if (p == HOST_CONDUCTIVE or p == LITHIUM) and conn[w]:
                R += face_reduction_rate(w, v, PHIS, PHIL, ETA, ACT, prm, shift)
    R32 = np.float32(R)
    RV[v] = R32
    lk = np.int64(L[v])
    if lk > 0:
        return K / (np.int64(1) << lk)
    return 6.0 * kmax + np.float64(R32)


@inner
def _regroup_voxel_packets(ctx, v, a, b):
    """Move every packet of voxel v from group a to group b."""
    P = ctx.packets
    head = ctx.head
    pstart = ctx.packet_start
    n = list_length(P, head, v)
    for _ in range(n):
        p = np.int64(head[v])
        while p != -1 and not (pstart[a] <= p and p < pstart[a + 1]):
            p = P[p, NXT]
        if p == -1:
            break
        regroup_packet(P, head, pstart, p, a, b)
    packet_leaf(ctx.tree, pstart, ctx.bounds, a)
    packet_leaf(ctx.tree, pstart, ctx.bounds, b)


@inner
def refresh_voxel(ctx, v):
    """Recompute the packet rates of voxel v and regroup its packets (explicit transport)."""
    G = ctx.group
    if ctx.phase[v] != ELECTROLYTE:
        ctx.reduction_total[v] = 0.0
        G[v] = 0
        return
    ip = ctx.ip
    bound = packet_rate_bound(v, ctx.phase, ctx.connected, ctx.u, ctx.phi_l, ctx.phi_s, ctx.eta_nuc,
                              ctx.activity, ctx.reduction_total, ctx.leap, ctx.prm, ip[I_NX], ip[I_NY], ip[I_NZ])
    g_new = rate_group(bound, ctx.bounds, ctx.counters)
    g_old = np.int64(G[v])
    if g_new != g_old:
        G[v] = g_new
        if ctx.head[v] != -1:
            _regroup_voxel_packets(ctx, v, g_old, g_new)


# ---- sites ---------------------------------------------------------------------------------
@inner
def _surface_target_ok(v, w, phase, conn, nx, ny, nz):
    """Electrolyte voxel w keeps a lithium voxel moved from v bonded to a connected conductor
    other than v."""
    x, y, z = coords(w, ny, nz)
    for d in range(6):
        q = neighbour(w, x, y, z, d, nx, ny, nz)
        if q >= 0 and q != v and is_conductor(phase[q]) and conn[q]:
            return True
    return False


@inner
def site_channels(v, y, phase, conn, U, PHIL, PHIS, ETA, ACT, CONC, prm, ip):
    """Walk voxel v's own event channels in a fixed order.  Returns (kind, other voxel, rest):
    the first channel whose rate exceeds what is left of y, or (SITE_NONE, -1, total rate
    passed) when y is not used up; with y = inf the rest is the site's total rate.

    Lithium (connected): oxidation through each electrolyte face, then (surface diffusion on)
    a surface hop into each electrolyte face neighbour that stays bonded.  Electrolyte: in
    implicit transport, reduction from each connected conductor face at k_red c V_m; in
    explicit transport, insertion from the reservoir into a top-layer voxel."""
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    p = phase[v]
    S = 0.0
    x, y0, z = coords(v, ny, nz)
    if p == LITHIUM:
        if not conn[v]:
            return SITE_NONE, -1, 0.0
        shift = coordination_eta(v, x, y0, z, phase, prm, nx, ny, nz)
        bonds = 0
        for d in range(6):
            w = neighbour(v, x, y0, z, d, nx, ny, nz)
            if w < 0:
                continue
            if phase[w] == ELECTROLYTE:
                r = face_oxidation_rate(v, w, PHIS, PHIL, prm, shift)
                if y < r:
                    return SITE_OXIDATION, w, y
                y -= r
                S += r
            else:
                bonds += 1
        if ip[I_SD] != 0:
            rs = _surface_hop_rate(prm[P_SDNU], bonds, prm[P_SDEB])
            for d in range(6):
                w = neighbour(v, x, y0, z, d, nx, ny, nz)
                if w >= 0 and phase[w] == ELECTROLYTE and _surface_target_ok(v, w, phase, conn, nx, ny, nz):
                    if y < rs:
                        return SITE_SURFACE_HOP, w, y
                    y -= rs
                    S += rs
    elif p == ELECTROLYTE:
        if ip[I_IMPLICIT] != 0:
            cv = CONC[v] * prm[P_VM]
            if cv > 0.0:
                shift = coordination_eta(v, x, y0, z, phase, prm, nx, ny, nz)
                for d in range(6):
                    c = neighbour(v, x, y0, z, d, nx, ny, nz)
                    if c >= 0 and is_conductor(phase[c]) and conn[c]:
                        r = face_reduction_rate(c, v, PHIS, PHIL, ETA, ACT, prm, shift) * cv
                        if y < r:
                            return SITE_REDUCTION, c, y
                        y -= r
                        S += r
        elif z == nz - 1:
            r = prm[P_INS0] * U[v] / prm[P_UTOP]
            if y < r:
                return SITE_INSERTION, v, y
            S = r
    return SITE_NONE, -1, S


@inner
def site_rate(v, phase, conn, U, PHIL, PHIS, ETA, ACT, CONC, prm, ip):
    """Total rate of voxel v's own events (see :func:`site_channels`); the voxels that have
    none (host, dead lithium, explicit-transport electrolyte below the top layer: most of the
    grid) return 0 at once, which halves the per-call setup."""
    p = phase[v]
    if p == LITHIUM:
        if not conn[v]:
            return 0.0
    elif p != ELECTROLYTE or (ip[I_IMPLICIT] == 0 and v % ip[I_NZ] != ip[I_NZ] - 1):
        return 0.0
    return site_channels(v, np.inf, phase, conn, U, PHIL, PHIS, ETA, ACT, CONC, prm, ip)[2]


@inner
def refresh_site(ctx, v):
    r = site_rate(v, ctx.phase, ctx.connected, ctx.u, ctx.phi_l, ctx.phi_s, ctx.eta_nuc, ctx.activity,
                  ctx.concentration, ctx.prm, ctx.ip)
    set_site_group(ctx, v, rate_group(r, ctx.bounds, ctx.counters))


@inner
def refresh_sites_around(ctx, v):
    """Refresh every site whose rate a phase change of v can touch (two faces away when
    surface diffusion is on, one otherwise)."""
    ip = ctx.ip
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    x, y, z = coords(v, ny, nz)
    n_off = 25 if ip[I_SD] != 0 else 7
    for i in range(n_off):
        z2 = z + OFFSETS[i, 2]
        if z2 < 0 or z2 >= nz:
            continue
        x2 = (x + OFFSETS[i, 0]) % nx
        y2 = (y + OFFSETS[i, 1]) % ny
        refresh_site(ctx, (x2 * ny + y2) * nz + z2)


@inner
def refresh_electrolyte_neighbours(ctx, v):
    """Refresh the packet rates of v's electrolyte face neighbours (their reduction faces or
    hop targets changed)."""
    phase = ctx.phase
    ip = ctx.ip
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    x, y, z = coords(v, ny, nz)
    for d in range(6):
        w = neighbour(v, x, y, z, d, nx, ny, nz)
        if w >= 0 and phase[w] == ELECTROLYTE:
            refresh_voxel(ctx, w)
