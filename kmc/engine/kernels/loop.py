"""The KMC event loop and its per-call setup (docs/kernels.md).

The engine calls :func:`setup_call` once per ``advance`` and :func:`run_events` per chunk (a
chunk ends at the duration, at ``max_events``, at ``max_reductions``, at ``max_oxidations`` or
when the packet store must grow).  Time advances by Exp(sum of all group bounds) per attempt, null or not, so the
event law is exact.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from continuum.constants import ELECTROLYTE

from .effects import kill_if_far, reduce_packet, release_walker, site_event
from .layout import (C_BLOCKED, C_EVENTS, C_HOP, C_LEAP, C_LEAP_HOPS, C_NULL, C_OVERFLOW, C_OX, C_RED, C_REM, I_CAP,
                     I_IMPLICIT, I_KMAX, I_NX, I_NY, I_NZ, N_FIELDS, NG, NLEAF, NXT, P_HOP, P_T, P_UTOP,
                     PX, PY, PZ, ST_DONE, ST_GROW, ST_MAXEV, ST_MAXOX, ST_MAXRED, ST_NOEVENTS, ST_OVERFLOW,
                     ST_RELFAIL, VOX, WX, WY, as_ref, inner_always, neighbour, neighbour_u, prefetch, step, u_at)
from .leaps import leap, leap_levels
from .rate_cache import packet_rate_bound, site_rate
from .selection import delete_packet, packet_leaf, pick, rate_group, regroup_packet, site_leaf, tree_walk, unlink


# ---- per-call setup --------------------------------------------------------------------------
@inner_always
def _setup_voxel_groups(ctx):
    """Packet rate group (and reduction total) of every electrolyte voxel.  Context fields are
    read into locals once: inside the loop each access would cost a reference count."""
    phase, conn, U, PHIL, PHIS = ctx.phase, ctx.connected, ctx.u, ctx.phi_l, ctx.phi_s
    ETA, ACT, L, prm, B, cnt = ctx.eta_nuc, ctx.activity, ctx.leap, ctx.prm, ctx.bounds, ctx.counters
    G = ctx.group
    RV = ctx.reduction_total
    ip = ctx.ip
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    implicit = ip[I_IMPLICIT] != 0
    for v in range(nx * ny * nz):
        G[v] = 0
        if not implicit and phase[v] == ELECTROLYTE:
            G[v] = rate_group(packet_rate_bound(v, phase, conn, U, PHIL, PHIS, ETA, ACT, RV, L, prm, nx, ny, nz),
                              B, cnt)
        elif not implicit:
            RV[v] = 0.0


@inner_always
def _setup_sites(ctx):
    """Site groups of every voxel, stored contiguously per group (counting sort)."""
    phase, conn, U, PHIL, PHIS = ctx.phase, ctx.connected, ctx.u, ctx.phi_l, ctx.phi_s
    ETA, ACT, CONC, prm, ip, B, cnt = ctx.eta_nuc, ctx.activity, ctx.concentration, ctx.prm, ctx.ip, ctx.bounds, ctx.counters
    SG = ctx.site_group
    SI = ctx.sites
    spos = ctx.site_pos
    sstart = ctx.site_start
    N = phase.size
    counts = np.zeros(NG + 1, np.int64)
    for v in range(N):
        g = rate_group(site_rate(v, phase, conn, U, PHIL, PHIS, ETA, ACT, CONC, prm, ip), B, cnt)
        SG[v] = g
        spos[v] = -1
        if g > 0:
            counts[g] += 1
    sstart[0] = 0
    sstart[1] = 0
    for g in range(1, NG):
        sstart[g + 1] = sstart[g] + counts[g]
    fill = sstart[:NG].copy()
    for v in range(N):
        g = SG[v]
        if g > 0:
            SI[fill[g]] = v
            spos[v] = fill[g]
            fill[g] += 1


@inner_always
def _setup_packets(ctx, n_packets):
    """Packet records sorted by the group of their voxel, per-voxel lists, occupancy."""
    P = ctx.packets
    G = ctx.group
    pstart = ctx.packet_start
    head = ctx.head
    occ = ctx.occupancy
    pc = np.zeros(NG + 1, np.int64)
    for k in range(n_packets):
        pc[G[P[k, VOX]]] += 1
    pstart[0] = 0
    for g in range(NG):
        pstart[g + 1] = pstart[g] + pc[g]
    pfill = pstart[:NG].copy()
    tmp = P[:n_packets].copy()
    for k in range(n_packets):
        j = pfill[G[tmp[k, VOX]]]
        pfill[G[tmp[k, VOX]]] += 1
        for f in range(N_FIELDS):
            P[j, f] = tmp[k, f]
    track_occ = ctx.ip[I_CAP] > 0  # occupancy is kept in-call only when a cap needs it
    for v in range(head.size):
        head[v] = -1
        if track_occ:
            occ[v] = 0
    for k in range(n_packets):
        v = P[k, VOX]
        P[k, NXT] = head[v]
        head[v] = k
        if track_occ:
            occ[v] += 1


@nb.njit(cache=True)
def setup_call(context, n_packets):
    """Rates, groups, leap levels, packet lists and the sum tree for one call."""
    ctx = as_ref(context)
    ip = ctx.ip
    if ip[I_KMAX] > 0:
        leap_levels(ctx.phase, ip[I_NX], ip[I_NY], ip[I_NZ], ip[I_KMAX], ctx.leap)
    else:
        ctx.leap[:] = 0
    _setup_voxel_groups(ctx)
    _setup_sites(ctx)
    _setup_packets(ctx, n_packets)
    tree = ctx.tree
    for i in range(2 * NLEAF):
        tree[i] = 0.0
    for g in range(1, NG):
        packet_leaf(tree, ctx.packet_start, ctx.bounds, g)
        site_leaf(tree, ctx.site_start, ctx.bounds, g)


# ---- the event loop --------------------------------------------------------------------------
@nb.njit(cache=True)
def run_events(context, t_end, max_events, max_reductions, max_oxidations, seed, release):
    """Execute events until the next one would pass t_end (not executed), or max_events
    events have run, or max_reductions net reductions (minus oxidations), or max_oxidations
    net oxidations (minus reductions; < 0: no limit), or the packet store needs to grow.
    Returns a status code; the clock is ctx.prm[P_T].

    ``release``: True in release mode (the DLA driver: walkers released and killed), else
    None.  Compiling the None specialisation, Numba drops ``if release is not None`` (by its
    type), so runs without release never compile release_walker and kill_if_far (the
    normal sampler among them)."""
    np.random.seed(seed)
    ctx = as_ref(context)
    P = ctx.packets
    pstart = ctx.packet_start
    SI = ctx.sites
    sstart = ctx.site_start
    tree = ctx.tree
    B = ctx.bounds
    prm = ctx.prm
    ip = ctx.ip
    cnt = ctx.counters
    head = ctx.head
    occ = ctx.occupancy
    G = ctx.group
    L = ctx.leap
    RV = ctx.reduction_total
    U = ctx.u
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    utop = prm[P_UTOP]
    hop = prm[P_HOP]
    cap = ip[I_CAP]
    cap_p = P.shape[0]
    t = prm[P_T]
    status = ST_DONE
    # Selection is pipelined over three attempts: the uniform of attempt i+2 is drawn at
    # attempt i and the packet record it picks is prefetched; at attempt i+1 that record is
    # read and the voxel records it points at are prefetched (two dependent cache misses, each
    # hidden behind a whole attempt).  A walk is reused while the tree is unchanged (tree[0]
    # counts its changes), so each attempt walks it once.
    P_flat = P.reshape(-1)
    u1 = np.random.random()
    u2 = np.random.random()
    W = tree[1]
    leaf1, rest1 = tree_walk(tree, u1 * W)
    leaf2, rest2 = tree_walk(tree, u2 * W)
    walked = tree[0]
    while True:
        if cnt[C_OVERFLOW] > 0:
            status = ST_OVERFLOW
            break
        if cnt[C_EVENTS] >= max_events:
            status = ST_MAXEV
            break
        if max_reductions >= 0 and cnt[C_RED] - cnt[C_OX] >= max_reductions:
            status = ST_MAXRED
            break
        if max_oxidations >= 0 and cnt[C_OX] - cnt[C_RED] >= max_oxidations:
            status = ST_MAXOX
            break
        if pstart[NG] + 8 > cap_p:
            status = ST_GROW
            break
        if release is not None:
            if pstart[NG] == 0 and not release_walker(ctx):
                status = ST_RELFAIL
                break
        W = tree[1]
        if not (W > 0.0):
            if np.isfinite(t_end):
                t = t_end
            status = ST_NOEVENTS
            break
        dt = -np.log(1.0 - np.random.random()) / W
        if t + dt > t_end:
            t = t_end
            status = ST_DONE
            break
        t += dt
        if tree[0] == walked:
            leaf, x = leaf1, rest1
            leaf1, rest1 = leaf2, rest2
        else:
            leaf, x = tree_walk(tree, u1 * W)
            leaf1, rest1 = tree_walk(tree, u2 * W)
        u1 = u2
        u2 = np.random.random()
        leaf2, rest2 = tree_walk(tree, u2 * W)
        walked = tree[0]
        # written out, not called: a call with array arguments costs reference counts
        if leaf1 < NG:  # attempt i+1: its packet record is cached; prefetch voxel, hop target
            k1, y1 = pick(pstart, leaf1, B[leaf1], rest1)
            if k1 >= 0:
                v1 = P[k1, VOX]
                prefetch(U, v1)
                d1 = min(int(y1 / (B[leaf1] / 6.0)), 5)
                prefetch(U, max(neighbour(v1, P[k1, PX], P[k1, PY], P[k1, PZ], d1, nx, ny, nz), 0))
        if leaf2 < NG:  # attempt i+2: prefetch its packet record
            k2, _ = pick(pstart, leaf2, B[leaf2], rest2)
            if k2 >= 0:
                prefetch(P_flat, k2 * N_FIELDS)
        ok = False
        if leaf < NG:
            bg = B[leaf]
            k, y = pick(pstart, leaf, bg, x)
            if k >= 0:
                g = leaf
                v = P[k, VOX]
                px = P[k, PX]
                py = P[k, PY]
                pz = P[k, PZ]
                # The hop target if v has no reaction (R = 0, most packets): its address is
                # known now, so its record loads alongside v's instead of after it.
                d0 = min(int(y / (bg / 6.0)), 5)
                w0 = neighbour(v, px, py, pz, d0, nx, ny, nz)
                uw0 = u_at(U, w0, utop)
                lk = np.int64(L[v])
                inv = hop / np.float64(U[v])
                if lk > 0:
                    # leap voxel: one channel, rate K / 2^lk (no reaction can be near)
                    nh = np.int64(1) << lk
                    ksum = 0.0
                    for d in range(6):
                        w, uw = neighbour_u(U, v, px, py, pz, d, nx, ny, nz, utop)
                        ksum += inv * uw
                    if y < ksum / nh:
                        k = leap(P, head, G, U, pstart, tree, B, k, g, v, nh, nx, ny, nz)
                        cnt[C_LEAP] += 1
                        cnt[C_LEAP_HOPS] += nh
                        ok = True
                        if release is not None:
                            kill_if_far(ctx, k, np.int64(G[P[k, VOX]]))
                else:
                    R = np.float64(RV[v])
                    if y < R:
                        ok = reduce_packet(ctx, k, g, v, y)
                    else:
                        # six equal channels of width (B[g] - R)/6 >= every hop rate: only the
                        # drawn direction's neighbour is read (one record instead of six)
                        width = (bg - R) / 6.0
                        y -= R
                        dsel = 6
                        w = -1
                        if width > 0.0:  # 0 only for a voxel with no open face
                            dsel = min(int(y / width), 5)
                            if R == 0.0 and dsel == d0:
                                w = w0
                                uw = uw0
                            else:
                                w, uw = neighbour_u(U, v, px, py, pz, dsel, nx, ny, nz, utop)
                            if not (y - dsel * width < inv * uw):
                                dsel = 6  # null: thinned
                        if dsel < 6:
                            if w == -2:
                                delete_packet(ctx, k, g)  # out through the top, into the reservoir
                                cnt[C_REM] += 1
                                ok = True
                            elif cap > 0 and occ[w] >= cap:
                                cnt[C_BLOCKED] += 1
                            else:
                                # the hop, written out: the hottest path (relocate_packet
                                # as a call measured 20 % fewer hops/s)
                                x2, y2, z2, wx, wy = step(px, py, pz, dsel, nx, ny)
                                unlink(P, head, v, k)
                                P[k, NXT] = head[w]
                                head[w] = k
                                if cap > 0:
                                    occ[v] -= 1
                                    occ[w] += 1
                                P[k, VOX] = w
                                P[k, PX] = x2
                                P[k, PY] = y2
                                P[k, PZ] = z2
                                P[k, WX] += wx
                                P[k, WY] += wy
                                gw = np.int64(G[w])
                                if gw != g:
                                    k = regroup_packet(P, head, pstart, k, g, gw)
                                    packet_leaf(tree, pstart, B, g)
                                    packet_leaf(tree, pstart, B, gw)
                                cnt[C_HOP] += 1
                                ok = True
                                if release is not None:
                                    kill_if_far(ctx, k, gw)
        else:
            g = leaf - NG
            i, y = pick(sstart, g, B[g], x)
            if i >= 0:
                ok = site_event(ctx, SI[i], y)
        if ok:
            cnt[C_EVENTS] += 1
        else:
            cnt[C_NULL] += 1
    prm[P_T] = t
    return status
