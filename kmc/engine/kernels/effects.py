"""What an executed event does to the lattice: reduction, oxidation, surface hop, insertion,
release, and the cached-rate updates every phase change triggers.  The choices the model
leaves open (fields a new voxel takes, where displaced packets go) are listed in
:mod:`kmc.engine.engine` and docs/model.md.
"""
from __future__ import annotations

import numpy as np

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, LITHIUM

from .dead_lithium import dead_check
from .layout import (C_BLOCKED, C_CREATED, C_DISPLACED, C_INS, C_KILLED, C_NUC, C_OX, C_RED, C_RED_BLOCKED,
                     C_RELEASED, C_REMOVED, C_SURF, I_CAP, I_DEADCHK, I_FACECNT, I_IMPLICIT, I_KMAX, I_NX, I_NY,
                     I_NZ, I_RELEASE, P_CX, P_CY, P_CZ, P_KILL, P_MARGIN, P_RMAX, PX, PY, PZ, TALLY_OXIDATION,
                     TALLY_REDUCTION, VOX, WX, WY, coords, inner, inner_always, is_conductor, neighbour, step)
from .leaps import lower_leap_levels
from .rate_cache import (SITE_INSERTION, SITE_OXIDATION, SITE_REDUCTION, SITE_SURFACE_HOP, coordination_eta,
                         face_reduction_rate, refresh_electrolyte_neighbours, refresh_sites_around, refresh_voxel,
                         site_channels)
from .selection import add_packet, delete_packet, list_length, relocate_packet


@inner_always
def after_phase_change(ctx, v):
    """Update every cached rate a phase change of voxel v touches."""
    ip = ctx.ip
    if ctx.phase[v] == ELECTROLYTE:
        ctx.leap[v] = 0
    elif ip[I_KMAX] > 0:
        lower_leap_levels(ctx, v)
    if ip[I_IMPLICIT] == 0:
        refresh_voxel(ctx, v)
        refresh_electrolyte_neighbours(ctx, v)
    refresh_sites_around(ctx, v)


# ---- tallies -------------------------------------------------------------------------------
@inner
def _count_region(ctx, v, which):
    ctx.region_counts[which, ctx.region[v]] += 1


@inner
def _face_count(ctx, c, e, which):
    """Per-face tallies (salt balance, tests): row `which` (0 reductions, 1 oxidations),
    conductor-side voxel c, direction from c to electrolyte voxel e."""
    ip = ctx.ip
    if ip[I_FACECNT] == 0:
        return
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    x, y, z = coords(c, ny, nz)
    for d in range(6):
        if neighbour(c, x, y, z, d, nx, ny, nz) == e:
            ctx.face_counts[which, c, d] += 1
            return


# ---- phase changes -------------------------------------------------------------------------
@inner
def _become_lithium(ctx, v, c):
    """Electrolyte voxel v (no packets left) becomes connected lithium reduced on conductor c."""
    ctx.phase[v] = LITHIUM
    ctx.connected[v] = True
    ctx.u[v] = 0.0
    ctx.phi_s[v] = ctx.phi_s[c]
    ctx.eta_nuc[v] = 0.0
    ctx.activity[v] = 1.0
    ctx.counters[C_CREATED] += 1
    ip = ctx.ip
    if ip[I_RELEASE] != 0:
        prm = ctx.prm
        nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
        x, y, z = coords(v, ny, nz)
        dx = x - prm[P_CX]
        dy = y - prm[P_CY]
        dx -= nx * np.floor(dx / nx + 0.5)
        dy -= ny * np.floor(dy / ny + 0.5)
        dz = z - prm[P_CZ]
        r = np.sqrt(dx * dx + dy * dy + dz * dz)
        if r > prm[P_RMAX]:
            prm[P_RMAX] = r


@inner
def _become_electrolyte(ctx, v, e):
    """Lithium voxel v becomes electrolyte; fields taken from its electrolyte neighbour e."""
    ctx.phase[v] = ELECTROLYTE
    ctx.connected[v] = False
    ctx.phi_l[v] = ctx.phi_l[e]
    ctx.u[v] = ctx.u[e]
    if ctx.ip[I_IMPLICIT] != 0:
        ctx.concentration[v] = ctx.concentration[e]
    ctx.leap[v] = 0
    ctx.counters[C_REMOVED] += 1


@inner_always
def _reduced(ctx, v, c):
    """Bookkeeping of a reduction into voxel v on conductor c (its packet already removed)."""
    _become_lithium(ctx, v, c)
    cnt = ctx.counters
    cnt[C_RED] += 1
    if ctx.phase[c] == HOST_CONDUCTIVE:
        cnt[C_NUC] += 1
    _count_region(ctx, v, TALLY_REDUCTION)
    _face_count(ctx, c, v, TALLY_REDUCTION)
    after_phase_change(ctx, v)


# ---- packets that must step aside ------------------------------------------------------------
@inner
def _free_neighbours(ctx, v, out):
    """Electrolyte face neighbours of v (inside the grid) that accept packets; returns the
    count and their free capacity (large without a cap)."""
    phase = ctx.phase
    occ = ctx.occupancy
    ip = ctx.ip
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    cap = ip[I_CAP]
    x, y, z = coords(v, ny, nz)
    n = 0
    room = 0
    for d in range(6):
        w = neighbour(v, x, y, z, d, nx, ny, nz)
        if w < 0 or w == v or phase[w] != ELECTROLYTE:
            continue
        if cap > 0:
            if occ[w] >= cap:
                continue
            room += cap - occ[w]
        else:
            room += 1 << 30
        out[n] = d
        n += 1
    return n, room


@inner
def _move_packet(ctx, k, g, d):
    """Move the packet at k (group g) one face in direction d (target inside the grid)."""
    P = ctx.packets
    ip = ctx.ip
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    v = P[k, VOX]
    x2, y2, z2, wx, wy = step(P[k, PX], P[k, PY], P[k, PZ], d, nx, ny)
    w = (x2 * ny + y2) * nz + z2
    if ip[I_CAP] > 0:
        ctx.occupancy[v] -= 1
        ctx.occupancy[w] += 1
    return relocate_packet(P, ctx.head, ctx.group, ctx.packet_start, ctx.tree, ctx.bounds, k, g, v, w,
                           x2, y2, z2, wx, wy)


@inner
def _displace_all(ctx, v, dirs, n):
    """Move every packet of v to a random free neighbour among dirs[:n] (uniform, re-drawn
    when a capped neighbour is full)."""
    head = ctx.head
    ip = ctx.ip
    cap = ip[I_CAP]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    x, y, z = coords(v, ny, nz)
    while head[v] != -1:
        k = np.int64(head[v])  # head is int32: keep one int64 specialisation downstream
        while True:
            d = dirs[int(np.random.random() * n)]
            if cap == 0 or ctx.occupancy[neighbour(v, x, y, z, d, nx, ny, nz)] < cap:
                break
        _move_packet(ctx, k, np.int64(ctx.group[v]), d)
        ctx.counters[C_DISPLACED] += 1


# ---- events ----------------------------------------------------------------------------------
@inner
def reduce_packet(ctx, k, g, v, y):
    """Reduction of the packet at k in voxel v; y in [0, R[v]) picks the face."""
    phase = ctx.phase
    conn = ctx.connected
    ip = ctx.ip
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    x, y0, z = coords(v, ny, nz)
    chosen = -1
    last = -1
    shift = coordination_eta(v, x, y0, z, phase, ctx.prm, nx, ny, nz)
    for d in range(6):
        c = neighbour(v, x, y0, z, d, nx, ny, nz)
        if c >= 0 and is_conductor(phase[c]) and conn[c]:
            last = c
            r = face_reduction_rate(c, v, ctx.phi_s, ctx.phi_l, ctx.eta_nuc, ctx.activity, ctx.prm, shift)
            if y < r:
                chosen = c
                break
            y -= r
    if chosen == -1:
        chosen = last  # float32 rounding of the stored sum
    if chosen == -1:
        return False
    dirs = np.empty(6, np.int64)
    others = list_length(ctx.packets, ctx.head, v) - 1
    if others > 0:
        n, room = _free_neighbours(ctx, v, dirs)
        if n == 0 or room < others:
            # nowhere for the other packets to go: this reduction cannot happen now
            ctx.counters[C_RED_BLOCKED] += 1
            return False
    delete_packet(ctx, k, g)
    if ctx.head[v] != -1:
        n, room = _free_neighbours(ctx, v, dirs)
        _displace_all(ctx, v, dirs, n)
    _reduced(ctx, v, chosen)
    return True


@inner
def kill_if_far(ctx, k, g):
    """Release mode: a walker beyond kill_factor x release radius is removed."""
    P = ctx.packets
    prm = ctx.prm
    ip = ctx.ip
    dx = P[k, PX] + P[k, WX] * ip[I_NX] - prm[P_CX] if ip[I_NX] > 1 else 0.0
    dy = P[k, PY] + P[k, WY] * ip[I_NY] - prm[P_CY] if ip[I_NY] > 1 else 0.0
    dz = P[k, PZ] - prm[P_CZ]
    rk = prm[P_KILL] * (prm[P_RMAX] + prm[P_MARGIN])
    if dx * dx + dy * dy + dz * dz > rk * rk:
        delete_packet(ctx, k, g)
        ctx.counters[C_KILLED] += 1


@inner_always
def _oxidise(ctx, v, e):
    _become_electrolyte(ctx, v, e)
    ctx.counters[C_OX] += 1
    _count_region(ctx, v, TALLY_OXIDATION)
    _face_count(ctx, v, e, TALLY_OXIDATION)
    after_phase_change(ctx, v)
    ip = ctx.ip
    if ip[I_IMPLICIT] == 0:
        x, y, z = coords(v, ip[I_NY], ip[I_NZ])
        add_packet(ctx, v, x, y, z)
    if ip[I_DEADCHK] != 0:
        dead_check(ctx, v)


@inner_always
def _surface_hop(ctx, v, w):
    """Lithium voxel v moves into electrolyte voxel w; packets in w step aside."""
    _become_electrolyte(ctx, v, w)
    ip = ctx.ip
    if ip[I_IMPLICIT] == 0 and ctx.head[w] != -1:
        dirs = np.empty(6, np.int64)
        n, room = _free_neighbours(ctx, w, dirs)
        _displace_all(ctx, w, dirs, n)
    _become_lithium(ctx, w, v)
    ctx.counters[C_SURF] += 1
    after_phase_change(ctx, v)
    after_phase_change(ctx, w)
    if ip[I_DEADCHK] != 0:
        dead_check(ctx, v)


@inner
def site_event(ctx, v, y):
    """Execute the site channel of voxel v that y selects (rate_cache.site_channels); False
    for a null event."""
    kind, w, _ = site_channels(v, y, ctx.phase, ctx.connected, ctx.u, ctx.phi_l, ctx.phi_s, ctx.eta_nuc,
                               ctx.activity, ctx.concentration, ctx.prm, ctx.ip)
    if kind == SITE_OXIDATION:
        _oxidise(ctx, v, w)
    elif kind == SITE_SURFACE_HOP:
        _surface_hop(ctx, v, w)
    elif kind == SITE_REDUCTION:
        _reduced(ctx, v, w)
    elif kind == SITE_INSERTION:
        cap = ctx.ip[I_CAP]
        if cap > 0 and ctx.occupancy[v] >= cap:
            ctx.counters[C_BLOCKED] += 1
            return False
        x, y0, z = coords(v, ctx.ip[I_NY], ctx.ip[I_NZ])
        add_packet(ctx, v, x, y0, z)
        ctx.counters[C_INS] += 1
    else:
        return False
    return True


@inner
def release_walker(ctx):
    """Release mode: one new walker on the sphere of radius r_max + margin."""
    prm = ctx.prm
    ip = ctx.ip
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    phase = ctx.phase
    r = prm[P_RMAX] + prm[P_MARGIN]
    for _ in range(10000):
        # a dimension of size 1 (thin slab) is degenerate: release on the circle
        gx = np.random.normal() if nx > 1 else 0.0
        gy = np.random.normal() if ny > 1 else 0.0
        gz = np.random.normal()
        s = np.sqrt(gx * gx + gy * gy + gz * gz)
        if s == 0.0:
            continue
        xu = int(np.floor(prm[P_CX] + r * gx / s + 0.5))
        yu = int(np.floor(prm[P_CY] + r * gy / s + 0.5))
        z = int(np.floor(prm[P_CZ] + r * gz / s + 0.5))
        if z < 0 or z >= nz:
            continue
        x = xu % nx
        y = yu % ny
        v = (x * ny + y) * nz + z
        if phase[v] != ELECTROLYTE:
            continue
        k = add_packet(ctx, v, x, y, z)
        ctx.packets[k, WX] = (xu - x) // nx
        ctx.packets[k, WY] = (yu - y) // ny
        ctx.counters[C_RELEASED] += 1
        return True
    return False
