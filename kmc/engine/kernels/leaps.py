"""Brownian leaps: far from every reactive or blocked voxel a packet makes n = 2^L hops in one
event (docs/kernels.md, "Leaps").  The leap-level map is computed exactly per call and only
lowered within it.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from continuum.constants import ELECTROLYTE

from .layout import I_IMPLICIT, I_KMAX, I_NX, I_NY, I_NZ, NXT, PX, PY, PZ, VOX, WX, WY, coords, inner, neighbour_u
from .rate_cache import refresh_voxel
from .selection import packet_leaf, regroup_packet, unlink


@inner
def lower_leap_levels(ctx, v):
    """v just became non-electrolyte next to an old non-electrolyte voxel: lower the leap
    level of voxels whose protective cube now contains v (only shells at radius 2^k)."""
    L = ctx.leap
    ip = ctx.ip
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    implicit = ip[I_IMPLICIT] != 0
    x, y, z = coords(v, ny, nz)
    for k in range(1, ip[I_KMAX] + 1):
        n = 1 << k
        for dx in range(-n, n + 1):
            x2 = (x + dx) % nx
            for dy in range(-n, n + 1):
                y2 = (y + dy) % ny
                edge = dx == -n or dx == n or dy == -n or dy == n
                dz = -n
                while dz <= n:
                    z2 = z + dz
                    if 0 <= z2 < nz:
                        w = (x2 * ny + y2) * nz + z2
                        if L[w] >= k:
                            L[w] = k - 1
                            if not implicit:
                                refresh_voxel(ctx, w)
                    dz = dz + 1 if edge else dz + 2 * n


@inner
def leap(P, head, G, U, pstart, tree, B, k, g, v, n, nx, ny, nz):
    """n hops in one event: multinomial displacement with the local hop probabilities
    (conditional binomials), then one move.  Returns the record's new position.  On a leap
    voxel all six neighbours are electrolyte, so the probabilities are U[w] / sum U[w]."""
    x = P[k, PX]
    y = P[k, PY]
    z = P[k, PZ]
    uw = np.empty(6)
    tot = 0.0
    for d in range(6):
        w, u = neighbour_u(U, v, x, y, z, d, nx, ny, nz, 1.0)
        uw[d] = u
        tot += u
    rest = 1.0  # probability mass of the directions not yet drawn
    m = n
    c0 = 0
    c1 = 0
    c2 = 0
    c3 = 0
    c4 = 0
    for d in range(5):
        if m == 0:
            break
        pd = uw[d] / tot
        if pd >= rest:
            c = m
        else:
            c = np.random.binomial(m, pd / rest)
        if d == 0:
            c0 = c
        elif d == 1:
            c1 = c
        elif d == 2:
            c2 = c
        elif d == 3:
            c3 = c
        else:
            c4 = c
        m -= c
        rest -= pd
    xu = P[k, PX] + c0 - c1
    yu = P[k, PY] + c2 - c3
    x2 = xu % nx
    y2 = yu % ny
    z2 = P[k, PZ] + c4 - m
    w = (x2 * ny + y2) * nz + z2
    # written out, as the event loop's hop (a call to selection.relocate_packet measured slower)
    unlink(P, head, v, k)
    P[k, NXT] = head[w]
    head[w] = k
    P[k, VOX] = w
    P[k, PX] = x2
    P[k, PY] = y2
    P[k, PZ] = z2
    P[k, WX] += (xu - x2) // nx
    P[k, WY] += (yu - y2) // ny
    gw = np.int64(G[w])
    if gw != g:
        k = regroup_packet(P, head, pstart, k, g, gw)
        packet_leaf(tree, pstart, B, g)
        packet_leaf(tree, pstart, B, gw)
    return k


@inner
def _cyclic_dist(src, thr, out, n_lines_outer, m, stride, block):
    """out = cyclic distance along an axis (length m, element stride `stride`) to the nearest
    element with src <= thr.  Lines are laid out as n_lines_outer blocks of `block` inner
    elements (the inner index runs fastest, so sweeps are contiguous)."""
    INF = 1 << 28
    row = np.empty(block, np.int64)
    for o in range(n_lines_outer):
        base0 = o * m * stride
        for direction in range(2):
            for i in range(block):
                row[i] = INF
            for rnd in range(2):
                for s in range(m):
                    a = s if direction == 0 else m - 1 - s
                    base = base0 + a * stride
                    for i in range(block):
                        if src[base + i] <= thr:
                            row[i] = 0
                        elif row[i] < INF:
                            row[i] += 1
                        if rnd == 1:
                            if direction == 0 or row[i] < out[base + i]:
                                out[base + i] = row[i]


@nb.njit(cache=True)
def leap_levels(phase, nx, ny, nz, kmax, L):
    """L[v] = largest k <= kmax with chessboard distance from v to every non-electrolyte
    voxel, to z = -1 and to z = nz greater than 2^k (0 if none)."""
    N = nx * ny * nz
    az = np.empty(N, np.int64)
    for xy in range(nx * ny):
        base = xy * nz
        last = -1
        for z in range(nz):
            if phase[base + z] != ELECTROLYTE:
                last = z
            az[base + z] = z - last
        nxt = nz
        for z in range(nz - 1, -1, -1):
            if phase[base + z] != ELECTROLYTE:
                nxt = z
            if nxt - z < az[base + z]:
                az[base + z] = nxt - z
    for i in range(N):
        L[i] = 0
    dy = np.empty(N, np.int64)
    dxa = np.empty(N, np.int64)
    for k in range(1, kmax + 1):
        n = 1 << k
        _cyclic_dist(az, n, dy, nx, ny, nz, nz)  # along y: outer x, inner z
        _cyclic_dist(dy, n, dxa, np.int64(1), nx, ny * nz, ny * nz)  # along x: inner (y, z)
        any_clean = False
        for i in range(N):
            if dxa[i] > n:
                L[i] = k
                any_clean = True
        if not any_clean:
            break

