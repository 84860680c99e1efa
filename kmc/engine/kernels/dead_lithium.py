"""Dead lithium inside a call: after a conductor voxel disappears (oxidation, surface hop), a
cheap local test and, only when it fails, a bounded flood find lithium cut off from the
collector.  Larger cut-off pieces are caught by the next relabel (engine docstring)."""
from __future__ import annotations

import numpy as np

from .layout import (C_DEAD, I_BUDGET, I_IMPLICIT, I_NX, I_NY, I_NZ, I_STAMP, coords, inner, inner_always,
                     is_conductor, neighbour)
from .rate_cache import refresh_electrolyte_neighbours, refresh_sites_around


@inner_always
def _mark_dead(ctx, comp, n):
    conn = ctx.connected
    for i in range(n):
        conn[comp[i]] = False
    for i in range(n):
        u = comp[i]
        refresh_sites_around(ctx, u)
        if ctx.ip[I_IMPLICIT] == 0:
            refresh_electrolyte_neighbours(ctx, u)
    ctx.counters[C_DEAD] += n


@inner
def _cube_index(d):
    """Index in the 3x3x3 cube (a*9 + b*3 + c, centre 13) of the face neighbour in direction d."""
    dx = 1 if d == 0 else (-1 if d == 1 else 0)
    dy = 1 if d == 2 else (-1 if d == 3 else 0)
    dz = 1 if d == 4 else (-1 if d == 5 else 0)
    return (dx + 1) * 9 + (dy + 1) * 3 + (dz + 1)


@inner
def _linked_in_cube(ctx, x, y, z, cand_l, nc):
    """Do the nc conductor neighbours (cube indices cand_l) stay face-linked through live
    conductors inside the 3x3x3 cube around (x, y, z), the centre excluded (periodic in x, y)?"""
    phase = ctx.phase
    conn = ctx.connected
    ip = ctx.ip
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    good = np.zeros(27, np.bool_)
    for a in range(3):
        for b in range(3):
            for c in range(3):
                if a == 1 and b == 1 and c == 1:
                    continue
                z2 = z + c - 1
                if z2 < 0 or z2 >= nz:
                    continue
                w = (((x + a - 1) % nx) * ny + (y + b - 1) % ny) * nz + z2
                good[a * 9 + b * 3 + c] = is_conductor(phase[w]) and conn[w]
    seen = np.zeros(27, np.bool_)
    queue = np.empty(27, np.int64)
    queue[0] = cand_l[0]
    seen[cand_l[0]] = True
    qh = 0
    qt = 1
    while qh < qt:
        li = queue[qh]
        qh += 1
        abc = (li // 9, (li // 3) % 3, li % 3)
        for d in range(6):
            a2 = abc[0] + (1 if d == 0 else (-1 if d == 1 else 0))
            b2 = abc[1] + (1 if d == 2 else (-1 if d == 3 else 0))
            c2 = abc[2] + (1 if d == 4 else (-1 if d == 5 else 0))
            if a2 < 0 or a2 > 2 or b2 < 0 or b2 > 2 or c2 < 0 or c2 > 2:
                continue
            lj = a2 * 9 + b2 * 3 + c2
            if good[lj] and not seen[lj]:
                seen[lj] = True
                queue[qt] = lj
                qt += 1
    for i in range(nc):
        if not seen[cand_l[i]]:
            return False
    return True


@inner
def _flood_reaches_collector(ctx, c0):
    """Flood the live conductor component of c0 into ctx.stack (at most the budget); returns
    (alive, size): alive when it reaches z = 0 or exceeds the budget."""
    phase = ctx.phase
    conn = ctx.connected
    ip = ctx.ip
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    stack = ctx.stack
    stamp = ctx.stamp
    ip[I_STAMP] += 1
    gen = ip[I_STAMP]
    stamp[c0] = gen
    stack[0] = c0
    qh = 0
    qt = 1
    while qh < qt:
        u = stack[qh]
        qh += 1
        ux, uy, uz = coords(u, ny, nz)
        if uz == 0:
            return True, qt
        for d in range(5, -1, -1):
            w = neighbour(u, ux, uy, uz, d, nx, ny, nz)
            if w >= 0 and stamp[w] != gen and is_conductor(phase[w]) and conn[w]:
                stamp[w] = gen
                stack[qt] = w
                qt += 1
        if qt > ip[I_BUDGET]:
            return True, qt
    return False, qt


@inner_always
def dead_check(ctx, v):
    """Voxel v stopped conducting.  If its connected conductor neighbours stay linked inside
    the 3x3x3 cube around v nothing can have been cut off; otherwise flood from each of them
    (at most ``budget`` voxels): a finite component that never reaches z = 0 is dead lithium.
    A flood that exceeds the budget is assumed connected (the next relabel decides)."""
    phase = ctx.phase
    conn = ctx.connected
    ip = ctx.ip
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    x, y, z = coords(v, ny, nz)
    cand = np.empty(6, np.int64)
    cand_l = np.empty(6, np.int64)
    nc = np.int64(0)  # not a literal 0: _linked_in_cube would compile for it too
    for d in range(6):
        w = neighbour(v, x, y, z, d, nx, ny, nz)
        if w >= 0 and is_conductor(phase[w]) and conn[w]:
            cand[nc] = w
            cand_l[nc] = _cube_index(d)
            nc += 1
    if nc <= 1 or _linked_in_cube(ctx, x, y, z, cand_l, nc):
        return
    for i in range(nc):
        if conn[cand[i]]:
            alive, n = _flood_reaches_collector(ctx, cand[i])
            if not alive:
                _mark_dead(ctx, ctx.stack, n)
