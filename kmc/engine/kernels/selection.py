"""Event selection: composition-rejection over geometric rate groups (docs/kernels.md).

Group ``g`` holds items whose rate bound r satisfies ``B[g-1] < r <= B[g]``; a sum tree over
the 2 x NG group weights ``n_g B[g]`` picks a group (``tree[0]`` counts the tree's changes),
the remainder picks the item and its channel variable.  Items of one group are stored contiguously: packets as 64-byte records
(also linked per voxel through ``NXT``), sites as voxel indices with their positions; an item
changes group by one swap per group boundary crossed.
"""
from __future__ import annotations

import numpy as np

from .layout import (BINS_PER_OCTAVE, C_OVERFLOW, G_CENTER, I_CAP, I_NEXTID, N_FIELDS, NG, NLEAF, NXT, PID, PX, PY,
                     PZ, VOX, WX, WY, inner, inner_inline)


# ---- groups and the sum tree ----------------------------------------------------------------
@inner
def rate_group(rate, B, cnt):
    """Smallest group whose bound is >= rate (0 for rate 0); flags overflow."""
    if not (rate > 0.0):
        return 0
    g = G_CENTER + int(np.ceil(BINS_PER_OCTAVE * np.log2(rate / B[G_CENTER])))
    if g < 1:
        g = 1
    if g > NG - 1:
        g = NG - 1
    while g < NG - 1 and B[g] < rate:
        g += 1
    while g > 1 and B[g - 1] >= rate:
        g -= 1
    if B[g] < rate:
        cnt[C_OVERFLOW] += 1
    return g


@inner
def _tree_set(tree, leaf, w):
    tree[0] += 1.0  # change count (the event loop reuses a walk while it stays)
    i = NLEAF + leaf
    tree[i] = w
    i >>= 1
    while i >= 1:
        tree[i] = tree[2 * i] + tree[2 * i + 1]
        i >>= 1


@inner
def packet_leaf(tree, pstart, B, g):
    """Refresh the tree weight of packet group g."""
    if g > 0:
        _tree_set(tree, g, (pstart[g + 1] - pstart[g]) * B[g])


@inner
def site_leaf(tree, sstart, B, g):
    """Refresh the tree weight of site group g."""
    if g > 0:
        _tree_set(tree, NG + g, (sstart[g + 1] - sstart[g]) * B[g])


@inner_inline
def tree_walk(tree, x):
    """(leaf, remainder): the leaf whose cumulative weight interval holds x in [0, tree[1])
    and x less the weight before it."""
    i = 1
    while i < NLEAF:
        left = tree[2 * i]
        if x < left:
            i = 2 * i
        else:
            x -= left
            i = 2 * i + 1
    return i - NLEAF, x


@inner_inline
def pick(start, g, bg, x):
    """Composition-rejection inside group g (items start[g] .. start[g+1]-1, rate bound bg):
    x in [0, n bg) picks the item at start[g] + x // bg, and the rest, y in [0, bg), is its
    channel variable.  Returns (position, y), or (-1, 0.0) for an empty group."""
    n = start[g + 1] - start[g]
    if n <= 0:
        return -1, 0.0
    q = x / bg
    j = min(int(q), n - 1)
    return start[g] + j, (q - j) * bg


# ---- packet store: records contiguous per group, singly linked per voxel ----------------------
@inner
def _relabel(P, head, v, i, j):
    """Swap the labels i <-> j in the packet list of voxel v (before rows i, j swap)."""
    p = head[v]
    if p == i:
        head[v] = j
    elif p == j:
        head[v] = i
    while p != -1:
        q = P[p, NXT]
        if q == i:
            P[p, NXT] = j
        elif q == j:
            P[p, NXT] = i
        p = q


@inner
def swap_packets(P, head, i, j):
    if i == j:
        return
    vi = P[i, VOX]
    vj = P[j, VOX]
    _relabel(P, head, vi, i, j)
    if vj != vi:
        _relabel(P, head, vj, i, j)
    for f in range(N_FIELDS):
        t = P[i, f]
        P[i, f] = P[j, f]
        P[j, f] = t


@inner
def regroup_packet(P, head, pstart, k, a, b):
    """Move the packet record at k from group a to group b by one swap per group boundary
    crossed; returns its new position.  (The site store's twin is :func:`_regroup_site`: a
    routine shared through a function argument cannot be cached by Numba.)"""
    if b > a:
        for g in range(a, b):
            last = pstart[g + 1] - 1
            swap_packets(P, head, k, last)
            k = last
            pstart[g + 1] -= 1
    else:
        for g in range(a, b, -1):
            first = pstart[g]
            swap_packets(P, head, k, first)
            k = first
            pstart[g] += 1
    return k


@inner_inline
def unlink(P, head, v, k):
    p = head[v]
    if p == k:
        head[v] = P[k, NXT]
        return
    while p != -1:
        q = P[p, NXT]
        if q == k:
            P[p, NXT] = P[k, NXT]
            return
        p = q


@inner
def list_length(P, head, v):
    n = 0
    p = head[v]
    while p != -1:
        n += 1
        p = P[p, NXT]
    return n


@inner
def relocate_packet(P, head, G, pstart, tree, B, k, g, v, w, x2, y2, z2, wx, wy):
    """Move the packet at k (group g) from voxel v to voxel w = (x2, y2, z2), adding the image
    shifts wx, wy; regroups it if w's group differs.  Returns its record position."""
    unlink(P, head, v, k)
    P[k, NXT] = head[w]
    head[w] = k
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
    return k


@inner
def add_packet(ctx, v, x, y, z):
    """New packet (new id, periodic images 0) in electrolyte voxel v = (x, y, z); returns its
    record position."""
    P = ctx.packets
    head = ctx.head
    pstart = ctx.packet_start
    ip = ctx.ip
    k = pstart[NG]
    P[k, VOX] = v
    P[k, PID] = ip[I_NEXTID]
    ip[I_NEXTID] += 1
    P[k, PX] = x
    P[k, PY] = y
    P[k, PZ] = z
    P[k, WX] = 0
    P[k, WY] = 0
    P[k, NXT] = head[v]
    head[v] = k
    pstart[NG] += 1
    if ip[I_CAP] > 0:
        ctx.occupancy[v] += 1
    g = np.int64(ctx.group[v])
    k = regroup_packet(P, head, pstart, k, NG - 1, g)
    packet_leaf(ctx.tree, pstart, ctx.bounds, g)
    return k


@inner
def delete_packet(ctx, k, g):
    """Delete the packet at k (group g)."""
    P = ctx.packets
    head = ctx.head
    pstart = ctx.packet_start
    v = P[k, VOX]
    unlink(P, head, v, k)
    if ctx.ip[I_CAP] > 0:
        ctx.occupancy[v] -= 1
    k = regroup_packet(P, head, pstart, k, g, NG - 1)
    last = pstart[NG] - 1
    swap_packets(P, head, k, last)
    pstart[NG] -= 1
    packet_leaf(ctx.tree, pstart, ctx.bounds, g)


# ---- site store: voxel indices contiguous per group ------------------------------------------
@inner
def _swap_sites(SI, spos, i, j):
    a = SI[i]
    b = SI[j]
    SI[i] = b
    SI[j] = a
    spos[b] = i
    spos[a] = j


@inner
def _regroup_site(SI, spos, sstart, k, a, b):
    if b > a:
        for g in range(a, b):
            last = sstart[g + 1] - 1
            _swap_sites(SI, spos, k, last)
            k = last
            sstart[g + 1] -= 1
    else:
        for g in range(a, b, -1):
            first = sstart[g]
            _swap_sites(SI, spos, k, first)
            k = first
            sstart[g] += 1
    return k


@inner
def set_site_group(ctx, v, g_new):
    """Put voxel v's site into group g_new (0: no site events)."""
    SG = ctx.site_group
    g_old = np.int64(SG[v])
    if g_old == g_new:
        return
    SI = ctx.sites
    spos = ctx.site_pos
    sstart = ctx.site_start
    if g_old == 0:
        k = sstart[NG]
        SI[k] = v
        spos[v] = k
        sstart[NG] += 1
        _regroup_site(SI, spos, sstart, k, NG - 1, g_new)
    elif g_new == 0:
        k = _regroup_site(SI, spos, sstart, spos[v], g_old, NG - 1)
        _swap_sites(SI, spos, k, sstart[NG] - 1)
        sstart[NG] -= 1
        spos[v] = -1
    else:
        _regroup_site(SI, spos, sstart, spos[v], g_old, g_new)
    SG[v] = g_new
    site_leaf(ctx.tree, sstart, ctx.bounds, g_old)
    site_leaf(ctx.tree, sstart, ctx.bounds, g_new)
