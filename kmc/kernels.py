"""Numba kernels of the lattice KMC: event selection and the whole event loop.

Everything here runs inside ``@numba.njit(cache=True)`` functions; the Python engine
(:mod:`kmc.engine`) calls :func:`setup_call` once per ``advance`` and :func:`run_events` per
chunk (a chunk ends at the duration, at ``max_events``, or when the packet store must grow).
The rate formulas come from :mod:`kmc.events` (compiled here), never re-derived.

Selection algorithm and why
---------------------------
Composition-rejection (CR) over geometric rate groups, with a binary sum tree over groups.

* Items are packets (rate: everything a packet can do in its voxel) and sites (a voxel's own
  events: oxidation + surface hops of a lithium voxel, insertion into a top-layer voxel, or
  implicit-transport reduction into an electrolyte voxel).
* Group ``g`` holds items whose total rate r satisfies ``B[g-1] < r <= B[g]`` with
  ``B[g] = T_ref 2^((g - G_CENTER)/4)``: four groups per octave, so acceptance is >= 0.84 and
  exactly 1 for a bulk packet with no field (T_ref = 6 D+/h^2 is a bin edge).  A packet's
  rate for grouping is R + 6 K_max (its reduction total plus six times its fastest hop): the
  hop direction is drawn among six equal channels and thinned, so a hop reads only the
  target voxel (next to a wall or in a strong field some attempts are null).  Group 0 holds
  rate-0 items (never drawn).  Rates below the lowest edge are clamped into group 1 (still
  exact: thinning against a larger bound); a rate above the top edge aborts the call.
* Selection: a sum tree over the 2 x 256 group weights ``n_g B[g]`` (9 levels) picks a group;
  the remainder picks the item uniformly and the remainder of that is the channel variable
  ``y`` in [0, B[g]): one uniform serves group, item, acceptance and channel; the item's
  channels are walked in a fixed order and ``y`` past their sum is a null event.  Time
  advances by Exp(sum of all bounds) per attempt, null or not, so the event law is exact.
* Items of one group are stored contiguously (packets as 64-byte records, sites as voxel
  indices); a group change moves an item by one swap per group boundary crossed.  A hop
  changes only the packet record and two voxel list heads unless the packet enters a voxel
  of another rate group; the tree is touched only then.  Measured: 1.000-1.02 attempts per
  event (no field, fields, deposition next to fast electrodes), 1.06 in a porous electrode
  (hops thinned at walls).
* The next attempt's selection uniform is drawn one attempt ahead and the voxel records it
  points at are prefetched, so the two dependent cache misses of a hop overlap with the
  current attempt's (128^3: 3.0 -> 5.5-7.2 M hops/s).

Why not a plain sum tree over packets: ~20 levels of dependent cache misses per event at
6e5 packets and an update on every hop.  Why not one global null-event bound: reduction
rates next to an electrode can exceed hop rates by 1e4-1e6 (DLA, high overpotential), so
one bound would waste almost every attempt.  CR costs O(1) per event whatever the spread.

Frozen fields make every per-voxel rate constant within a call.  Hop rates are
``(D+/h^2) U[j]/U[i]`` with ``U = exp(-f (phi_l - phi_top)/2)`` stored per voxel (0 off the
electrolyte, so a blocked face needs no phase lookup); the total reduction rate R of each
electrolyte voxel is precomputed.  U, R, the voxel's packet-list head, its rate group and
its leap level share one 16-byte record (engine: ``_aligned_records``), so a hop costs about
one cache miss for the voxel and one for its target.  Only what a phase change touches
is recomputed.  Reduction/oxidation face rates are evaluated when the event fires (same
formula, same order as the sums).  Occupancy is maintained in-call only under a cap.

Leaps: a packet whose Chebyshev distance to every non-electrolyte voxel and to the top
boundary exceeds ``n = 2^L`` (L = leap level, per voxel) does an ``n``-hop leap at rate
``K/n`` (K = its hop total) with the multinomial sum of n hops drawn from its local hop
probabilities.  Within that distance every voxel the n hops can visit is plain electrolyte
with all faces open and no reaction, so the leap's displacement law is that of n hops (exact
for a uniform field; in a non-uniform field the start voxel's probabilities are used for all
n hops, an O(n grad E) approximation) and its rate keeps E[hops by time t] = K t: MSD and
drift are unchanged.  Off under an occupancy cap and in implicit transport.
The level map is computed exactly per call (separable chessboard erosion) and lowered
conservatively when a voxel becomes non-electrolyte (only the shells at radii 2^k can change,
because the new conductor touches an old one); it is never raised within a call.

Conventions: flat index ``v = (x*ny + y)*nz + z``; periodic in x, y; below z = 0 is closed;
above z = nz - 1 is the reservoir.  Directions 0..5 = +x, -x, +y, -y, +z, -z.
"""
from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM

from . import events as _ev


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Hint the cache to load arr[idx] (LLVM prefetch: read, high locality, data); never
    faults and changes no result."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen

# ---- formulas from kmc.events, compiled ---------------------------------------------------
_reduction_rate = nb.njit(cache=True)(_ev.reduction_rate)
_oxidation_rate = nb.njit(cache=True)(_ev.oxidation_rate)
_surface_hop_rate = nb.njit(cache=True)(_ev.surface_hop_rate)

# ---- groups ---------------------------------------------------------------------------------
NG = 256  # rate groups per item kind (packets, sites)
NLEAF = 2 * NG  # sum-tree leaves: packet groups then site groups
BINS_PER_OCTAVE = 4
G_CENTER = 100  # B[G_CENTER] = T_ref; range 2^-24.75 .. 2^38.75 T_ref (fast reactions need room)


def group_bounds(t_ref: float) -> np.ndarray:
    b = t_ref * 2.0 ** ((np.arange(NG, dtype=np.float64) - G_CENTER) / BINS_PER_OCTAVE)
    b[0] = 0.0
    return b


# ---- packet record fields (int64[cap, 8], 64 bytes) --------------------------------------
VOX, NXT, PID, PX, PY, PZ, WX, WY = 0, 1, 2, 3, 4, 5, 6, 7

# ---- float parameters prm[] ---------------------------------------------------------------
P_HOP, P_KRED0, P_KOX0, P_AAF, P_ACF, P_VM, P_INS0, P_UTOP = 0, 1, 2, 3, 4, 5, 6, 7
P_SDNU, P_SDEB, P_CX, P_CY, P_CZ, P_MARGIN, P_KILL, P_RMAX, P_T = 8, 9, 10, 11, 12, 13, 14, 15, 16
N_PRM = 17

# ---- int parameters ip[] ------------------------------------------------------------------
I_NX, I_NY, I_NZ, I_IMPLICIT, I_KMAX, I_CAP, I_SD, I_RELEASE, I_DEADCHK, I_BUDGET = range(10)
I_NEXTID, I_STAMP, I_FACECNT = 10, 11, 12
N_IP = 13

# ---- counters cnt[] -----------------------------------------------------------------------
(C_HOP, C_LEAP, C_LEAP_HOPS, C_INS, C_REM, C_RED, C_OX, C_SURF, C_NUC, C_CREATED, C_REMOVED,
 C_EVENTS, C_NULL, C_DISPLACED, C_DEAD, C_RELEASED, C_KILLED, C_OVERFLOW, C_BLOCKED,
 C_RED_BLOCKED) = range(20)
N_CNT = 20
COUNTER_NAMES = ("hops", "leaps", "leap_hops", "insertions", "removals_top", "reductions",
                 "oxidations", "surface_hops", "nucleations", "lithium_created",
                 "lithium_removed", "n_events", "null_events", "displaced_packets",
                 "dead_marked", "released", "killed", "rate_overflow", "blocked_hops",
                 "blocked_reductions")

# ---- status codes of run_events -----------------------------------------------------------
ST_DONE, ST_MAXEV, ST_GROW, ST_NOEVENTS, ST_MAXRED, ST_OVERFLOW, ST_RELFAIL = range(7)

# Manhattan-distance <= 2 offsets (first 7 are distance <= 1): sites whose rates a phase
# change can touch (surface-hop targets look two faces away).
_OFFS = []
for _r in (0, 1, 2):
    for _dx in range(-2, 3):
        for _dy in range(-2, 3):
            for _dz in range(-2, 3):
                if abs(_dx) + abs(_dy) + abs(_dz) == _r:
                    _OFFS.append((_dx, _dy, _dz))
OFFSETS = np.array(_OFFS, dtype=np.int64)
del _OFFS, _r, _dx, _dy, _dz

# context tuple layout (see engine._context)
(X_PHASE, X_CONN, X_OCC, X_HEAD, X_GRP, X_LEAP, X_SGRP, X_SPOS, X_REGION, X_STAMP, X_RV, X_U,
 X_PHIL, X_PHIS, X_ETA, X_ACT, X_CONC, X_PREC, X_PSTART, X_SITES, X_SSTART, X_TREE, X_BOUND,
 X_PRM, X_IP, X_CNT, X_REG, X_STACK, X_FACE) = range(29)


# =============================================================================================
# small helpers
# =============================================================================================
@nb.njit(cache=True)
def _coords(v, ny, nz):
    x = v // (ny * nz)
    r = v - x * ny * nz
    y = r // nz
    return x, y, r - y * nz


@nb.njit(cache=True)
def _step(x, y, z, d, nx, ny):
    """Neighbour coordinates in direction d with x/y wrap counts; z may leave [0, nz)."""
    wx = 0
    wy = 0
    if d == 0:
        x += 1
        if x == nx:
            x = 0
            wx = 1
    elif d == 1:
        x -= 1
        if x < 0:
            x = nx - 1
            wx = -1
    elif d == 2:
        y += 1
        if y == ny:
            y = 0
            wy = 1
    elif d == 3:
        y -= 1
        if y < 0:
            y = ny - 1
            wy = -1
    elif d == 4:
        z += 1
    else:
        z -= 1
    return x, y, z, wx, wy


@nb.njit(cache=True)
def _is_conductor(p):
    return p == HOST_CONDUCTIVE or p == LITHIUM


@nb.njit(cache=True)
def _group(rate, B, cnt):
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


@nb.njit(cache=True)
def _tree_set(tree, leaf, w):
    i = NLEAF + leaf
    tree[i] = w
    i >>= 1
    while i >= 1:
        tree[i] = tree[2 * i] + tree[2 * i + 1]
        i >>= 1


@nb.njit(cache=True)
def _pleaf(tree, pstart, B, g):
    if g > 0:
        _tree_set(tree, g, (pstart[g + 1] - pstart[g]) * B[g])


@nb.njit(cache=True)
def _sleaf(tree, sstart, B, g):
    if g > 0:
        _tree_set(tree, NG + g, (sstart[g + 1] - sstart[g]) * B[g])


@nb.njit(cache=True)
def _kred(c, e, PHIS, PHIL, ETA, ACT, prm):
    """Per-packet reduction rate on the face between conductor c and electrolyte voxel e."""
    return _reduction_rate(prm[P_KRED0], ACT[c], prm[P_ACF], PHIS[c] - PHIL[e], ETA[c])


@nb.njit(cache=True)
def _kox(l, e, PHIS, PHIL, prm):
    """Oxidation rate of lithium voxel l through its face to electrolyte voxel e (a = 1)."""
    return _oxidation_rate(prm[P_KOX0], 1.0, prm[P_AAF], PHIS[l] - PHIL[e])


# =============================================================================================
# packet records: contiguous per group, singly linked per voxel
# =============================================================================================
@nb.njit(cache=True)
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


@nb.njit(cache=True)
def _prec_swap(P, head, i, j):
    if i == j:
        return
    vi = P[i, VOX]
    vj = P[j, VOX]
    _relabel(P, head, vi, i, j)
    if vj != vi:
        _relabel(P, head, vj, i, j)
    for f in range(8):
        t = P[i, f]
        P[i, f] = P[j, f]
        P[j, f] = t


@nb.njit(cache=True)
def _pmove_group(P, head, pstart, k, a, b):
    """Move the record at k from group a to group b; returns its new position."""
    if b > a:
        for g in range(a, b):
            last = pstart[g + 1] - 1
            _prec_swap(P, head, k, last)
            k = last
            pstart[g + 1] -= 1
    else:
        for g in range(a, b, -1):
            first = pstart[g]
            _prec_swap(P, head, k, first)
            k = first
            pstart[g] += 1
    return k


@nb.njit(cache=True)
def _unlink(P, head, v, k):
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


@nb.njit(cache=True)
def _list_len(P, head, v):
    n = 0
    p = head[v]
    while p != -1:
        n += 1
        p = P[p, NXT]
    return n


@nb.njit(cache=True)
def _padd(ctx, v, x, y, z, wx, wy):
    """New packet (new id) in electrolyte voxel v; returns its record position."""
    P = ctx[X_PREC]
    head = ctx[X_HEAD]
    pstart = ctx[X_PSTART]
    ip = ctx[X_IP]
    k = pstart[NG]
    P[k, VOX] = v
    P[k, PID] = ip[I_NEXTID]
    ip[I_NEXTID] += 1
    P[k, PX] = x
    P[k, PY] = y
    P[k, PZ] = z
    P[k, WX] = wx
    P[k, WY] = wy
    P[k, NXT] = head[v]
    head[v] = k
    pstart[NG] += 1
    if ip[I_CAP] > 0:
        ctx[X_OCC][v] += 1
    g = np.int64(ctx[X_GRP][v])
    k = _pmove_group(P, head, pstart, k, NG - 1, g)
    _pleaf(ctx[X_TREE], pstart, ctx[X_BOUND], g)
    return k


@nb.njit(cache=True)
def _pdel(ctx, k, g):
    """Delete the packet at k (group g)."""
    P = ctx[X_PREC]
    head = ctx[X_HEAD]
    pstart = ctx[X_PSTART]
    v = P[k, VOX]
    _unlink(P, head, v, k)
    if ctx[X_IP][I_CAP] > 0:
        ctx[X_OCC][v] -= 1
    k = _pmove_group(P, head, pstart, k, g, NG - 1)
    last = pstart[NG] - 1
    _prec_swap(P, head, k, last)
    pstart[NG] -= 1
    _pleaf(ctx[X_TREE], pstart, ctx[X_BOUND], g)


@nb.njit(cache=True)
def _pmove(ctx, k, g, d):
    """Move the packet at k (group g) one face in direction d (target inside the grid)."""
    P = ctx[X_PREC]
    head = ctx[X_HEAD]
    occ = ctx[X_OCC]
    ip = ctx[X_IP]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    v = P[k, VOX]
    x2, y2, z2, wx, wy = _step(P[k, PX], P[k, PY], P[k, PZ], d, nx, ny)
    w = (x2 * ny + y2) * nz + z2
    _unlink(P, head, v, k)
    P[k, NXT] = head[w]
    head[w] = k
    if ip[I_CAP] > 0:
        occ[v] -= 1
        occ[w] += 1
    P[k, VOX] = w
    P[k, PX] = x2
    P[k, PY] = y2
    P[k, PZ] = z2
    P[k, WX] += wx
    P[k, WY] += wy
    gw = np.int64(ctx[X_GRP][w])
    if gw != g:
        pstart = ctx[X_PSTART]
        k = _pmove_group(P, head, pstart, k, g, gw)
        _pleaf(ctx[X_TREE], pstart, ctx[X_BOUND], g)
        _pleaf(ctx[X_TREE], pstart, ctx[X_BOUND], gw)
    return k


# =============================================================================================
# sites: voxel indices contiguous per group
# =============================================================================================
@nb.njit(cache=True)
def _sswap(SI, spos, i, j):
    a = SI[i]
    b = SI[j]
    SI[i] = b
    SI[j] = a
    spos[b] = i
    spos[a] = j


@nb.njit(cache=True)
def _smove_group(SI, spos, sstart, k, a, b):
    if b > a:
        for g in range(a, b):
            last = sstart[g + 1] - 1
            _sswap(SI, spos, k, last)
            k = last
            sstart[g + 1] -= 1
    else:
        for g in range(a, b, -1):
            first = sstart[g]
            _sswap(SI, spos, k, first)
            k = first
            sstart[g] += 1
    return k


@nb.njit(cache=True)
def _sset(ctx, v, g_new):
    SG = ctx[X_SGRP]
    g_old = np.int64(SG[v])
    if g_old == g_new:
        return
    SI = ctx[X_SITES]
    spos = ctx[X_SPOS]
    sstart = ctx[X_SSTART]
    if g_old == 0:
        k = sstart[NG]
        SI[k] = v
        spos[v] = k
        sstart[NG] += 1
        _smove_group(SI, spos, sstart, k, NG - 1, g_new)
    elif g_new == 0:
        k = _smove_group(SI, spos, sstart, spos[v], g_old, NG - 1)
        _sswap(SI, spos, k, sstart[NG] - 1)
        sstart[NG] -= 1
        spos[v] = -1
    else:
        _smove_group(SI, spos, sstart, spos[v], g_old, g_new)
    SG[v] = g_new
    _sleaf(ctx[X_TREE], sstart, ctx[X_BOUND], g_old)
    _sleaf(ctx[X_TREE], sstart, ctx[X_BOUND], g_new)


# =============================================================================================
# rates of one voxel
# =============================================================================================
@nb.njit(cache=True)
def _nbr_index(v, x, y, z, d, nx, ny, nz):
    """Flat index of the face neighbour of v = (x, y, z) in direction d; -2 through the top,
    -1 below the collector."""
    if d == 0:
        return v + ny * nz if x < nx - 1 else v - (nx - 1) * ny * nz
    if d == 1:
        return v - ny * nz if x > 0 else v + (nx - 1) * ny * nz
    if d == 2:
        return v + nz if y < ny - 1 else v - (ny - 1) * nz
    if d == 3:
        return v - nz if y > 0 else v + (ny - 1) * nz
    if d == 4:
        return -2 if z == nz - 1 else v + 1
    return -1 if z == 0 else v - 1


@nb.njit(cache=True)
def _u_at(U, w, utop):
    """U of neighbour index w (utop through the top, 0 below the collector).  U = 0 on every
    non-electrolyte voxel, so a blocked hop has rate 0 without a phase lookup."""
    if w >= 0:
        return np.float64(U[w])
    return utop if w == -2 else 0.0


@nb.njit(cache=True)
def _nbr_u(U, v, x, y, z, d, nx, ny, nz, utop):
    """(index, U) of the face neighbour in direction d (see _nbr_index, _u_at)."""
    w = _nbr_index(v, x, y, z, d, nx, ny, nz)
    return w, _u_at(U, w, utop)


@nb.njit(cache=True)
def _packet_rates(v, phase, conn, U, PHIL, PHIS, ETA, ACT, RV, L, prm, nx, ny, nz):
    """Store the total reduction rate of electrolyte voxel v in RV[v] (float32) and return
    the per-packet rate bound that groups it: R + 6 K_max (K_max: its fastest hop), or K/2^L
    on leap voxels (K: the hop total).  Hop rates are (D+/h^2) U[w]/U[v] with
    U = exp(-f (phi_l - phi_top)/2), evaluated the same way by the event loop, which thins
    each direction against (B[g] - R)/6 >= K_max.  Arrays are passed explicitly: this runs
    for every voxel in setup."""
    x, y, z = _coords(v, ny, nz)
    inv = prm[P_HOP] / np.float64(U[v])
    utop = prm[P_UTOP]
    K = 0.0
    kmax = 0.0
    R = 0.0
    for d in range(6):
        w, uw = _nbr_u(U, v, x, y, z, d, nx, ny, nz, utop)
        K += inv * uw
        if inv * uw > kmax:
            kmax = inv * uw
        if w >= 0:
            p = phase[w]
            if (p == HOST_CONDUCTIVE or p == LITHIUM) and conn[w]:
                R += _kred(w, v, PHIS, PHIL, ETA, ACT, prm)
    R32 = np.float32(R)
    RV[v] = R32
    lk = np.int64(L[v])
    if lk > 0:
        return K / (np.int64(1) << lk)
    return 6.0 * kmax + np.float64(R32)


@nb.njit(cache=True)
def _packet_rates_ctx(ctx, v):
    ip = ctx[X_IP]
    return _packet_rates(v, ctx[X_PHASE], ctx[X_CONN], ctx[X_U], ctx[X_PHIL], ctx[X_PHIS],
                         ctx[X_ETA], ctx[X_ACT], ctx[X_RV], ctx[X_LEAP], ctx[X_PRM],
                         ip[I_NX], ip[I_NY], ip[I_NZ])


@nb.njit(cache=True)
def _regroup_packets(ctx, v, a, b):
    """Move every packet of voxel v from group a to group b."""
    P = ctx[X_PREC]
    head = ctx[X_HEAD]
    pstart = ctx[X_PSTART]
    n = _list_len(P, head, v)
    for _ in range(n):
        p = head[v]
        while p != -1 and not (pstart[a] <= p and p < pstart[a + 1]):
            p = P[p, NXT]
        if p == -1:
            break
        _pmove_group(P, head, pstart, p, a, b)
    _pleaf(ctx[X_TREE], pstart, ctx[X_BOUND], a)
    _pleaf(ctx[X_TREE], pstart, ctx[X_BOUND], b)


@nb.njit(cache=True)
def _refresh_voxel(ctx, v):
    """Recompute the packet rates of voxel v and regroup its packets (explicit transport)."""
    G = ctx[X_GRP]
    if ctx[X_PHASE][v] != ELECTROLYTE:
        ctx[X_RV][v] = 0.0
        G[v] = 0
        return
    g_new = _group(_packet_rates_ctx(ctx, v), ctx[X_BOUND], ctx[X_CNT])
    g_old = np.int64(G[v])
    if g_new != g_old:
        G[v] = g_new
        if ctx[X_HEAD][v] != -1:
            _regroup_packets(ctx, v, g_old, g_new)


@nb.njit(cache=True)
def _sd_target_ok(v, x2, y2, z2, phase, conn, nx, ny, nz):
    """Electrolyte voxel (x2, y2, z2) keeps a lithium voxel moved from v bonded to a
    connected conductor other than v."""
    for d in range(6):
        x3, y3, z3, wx, wy = _step(x2, y2, z2, d, nx, ny)
        if z3 < 0 or z3 >= nz:
            continue
        q = (x3 * ny + y3) * nz + z3
        if q != v and _is_conductor(phase[q]) and conn[q]:
            return True
    return False


@nb.njit(cache=True)
def _site_rate(v, phase, conn, U, PHIL, PHIS, ETA, ACT, CONC, prm, ip):
    """Total rate of voxel v's own events (see module docstring)."""
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    p = phase[v]
    S = 0.0
    x, y, z = _coords(v, ny, nz)
    if p == LITHIUM:
        if not conn[v]:
            return 0.0
        bonds = 0
        for d in range(6):
            x2, y2, z2, wx, wy = _step(x, y, z, d, nx, ny)
            if z2 < 0 or z2 >= nz:
                continue
            w = (x2 * ny + y2) * nz + z2
            if phase[w] == ELECTROLYTE:
                S += _kox(v, w, PHIS, PHIL, prm)
            else:
                bonds += 1
        if ip[I_SD] != 0:
            rs = _surface_hop_rate(prm[P_SDNU], bonds, prm[P_SDEB])
            for d in range(6):
                x2, y2, z2, wx, wy = _step(x, y, z, d, nx, ny)
                if z2 < 0 or z2 >= nz:
                    continue
                w = (x2 * ny + y2) * nz + z2
                if phase[w] == ELECTROLYTE and _sd_target_ok(v, x2, y2, z2, phase, conn, nx, ny, nz):
                    S += rs
    elif p == ELECTROLYTE:
        if ip[I_IMPLICIT] != 0:
            cv = CONC[v] * prm[P_VM]
            if cv > 0.0:
                for d in range(6):
                    x2, y2, z2, wx, wy = _step(x, y, z, d, nx, ny)
                    if z2 < 0 or z2 >= nz:
                        continue
                    c = (x2 * ny + y2) * nz + z2
                    if _is_conductor(phase[c]) and conn[c]:
                        S += _kred(c, v, PHIS, PHIL, ETA, ACT, prm) * cv
        elif z == nz - 1:
            S = prm[P_INS0] * U[v] / prm[P_UTOP]
    return S


@nb.njit(cache=True)
def _site_rate_ctx(ctx, v):
    return _site_rate(v, ctx[X_PHASE], ctx[X_CONN], ctx[X_U], ctx[X_PHIL], ctx[X_PHIS],
                      ctx[X_ETA], ctx[X_ACT], ctx[X_CONC], ctx[X_PRM], ctx[X_IP])


@nb.njit(cache=True)
def _refresh_site(ctx, v):
    _sset(ctx, v, _group(_site_rate_ctx(ctx, v), ctx[X_BOUND], ctx[X_CNT]))


@nb.njit(cache=True)
def _refresh_sites_around(ctx, v):
    ip = ctx[X_IP]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    x, y, z = _coords(v, ny, nz)
    n_off = 25 if ip[I_SD] != 0 else 7
    for i in range(n_off):
        z2 = z + OFFSETS[i, 2]
        if z2 < 0 or z2 >= nz:
            continue
        x2 = (x + OFFSETS[i, 0]) % nx
        y2 = (y + OFFSETS[i, 1]) % ny
        _refresh_site(ctx, (x2 * ny + y2) * nz + z2)


@nb.njit(cache=True)
def _leap_ring(ctx, v):
    """v just became non-electrolyte next to an old non-electrolyte voxel: lower the leap
    level of voxels whose protective cube now contains v (only shells at radius 2^k)."""
    L = ctx[X_LEAP]
    ip = ctx[X_IP]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    implicit = ip[I_IMPLICIT] != 0
    x, y, z = _coords(v, ny, nz)
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
                                _refresh_voxel(ctx, w)
                    dz = dz + 1 if edge else dz + 2 * n


@nb.njit(cache=True)
def _after_phase_change(ctx, v):
    """Update every cached rate a phase change of voxel v touches."""
    phase = ctx[X_PHASE]
    ip = ctx[X_IP]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    if phase[v] == ELECTROLYTE:
        ctx[X_LEAP][v] = 0
    elif ip[I_KMAX] > 0:
        _leap_ring(ctx, v)
    if ip[I_IMPLICIT] == 0:
        _refresh_voxel(ctx, v)
        x, y, z = _coords(v, ny, nz)
        for d in range(6):
            x2, y2, z2, wx, wy = _step(x, y, z, d, nx, ny)
            if 0 <= z2 < nz:
                w = (x2 * ny + y2) * nz + z2
                if phase[w] == ELECTROLYTE:
                    _refresh_voxel(ctx, w)
    _refresh_sites_around(ctx, v)


# =============================================================================================
# dead lithium (local check after a conductor voxel disappears)
# =============================================================================================
@nb.njit(cache=True)
def _mark_dead(ctx, comp, n):
    conn = ctx[X_CONN]
    phase = ctx[X_PHASE]
    ip = ctx[X_IP]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    for i in range(n):
        conn[comp[i]] = False
    for i in range(n):
        u = comp[i]
        _refresh_sites_around(ctx, u)
        if ip[I_IMPLICIT] == 0:
            x, y, z = _coords(u, ny, nz)
            for d in range(6):
                x2, y2, z2, wx, wy = _step(x, y, z, d, nx, ny)
                if 0 <= z2 < nz:
                    w = (x2 * ny + y2) * nz + z2
                    if phase[w] == ELECTROLYTE:
                        _refresh_voxel(ctx, w)
    ctx[X_CNT][C_DEAD] += n


@nb.njit(cache=True)
def _dead_check(ctx, v):
    """Voxel v stopped conducting.  If its connected conductor neighbours stay linked inside
    the 3x3x3 cube around v nothing can have been cut off; otherwise flood from each of them
    (at most ``budget`` voxels): a finite component that never reaches z = 0 is dead lithium.
    A flood that exceeds the budget is assumed connected (the next relabel decides)."""
    phase = ctx[X_PHASE]
    conn = ctx[X_CONN]
    ip = ctx[X_IP]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    x, y, z = _coords(v, ny, nz)
    cand = np.empty(6, np.int64)
    cand_l = np.empty(6, np.int64)
    nc = 0
    for d in range(6):
        x2, y2, z2, wx, wy = _step(x, y, z, d, nx, ny)
        if 0 <= z2 < nz:
            w = (x2 * ny + y2) * nz + z2
            if _is_conductor(phase[w]) and conn[w]:
                cand[nc] = w
                dx = 1 if d == 0 else (-1 if d == 1 else 0)
                dy = 1 if d == 2 else (-1 if d == 3 else 0)
                dz = 1 if d == 4 else (-1 if d == 5 else 0)
                cand_l[nc] = (dx + 1) * 9 + (dy + 1) * 3 + (dz + 1)
                nc += 1
    if nc <= 1:
        return
    # local connectivity inside the cube (periodic wrap in x, y; v itself excluded)
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
                good[a * 9 + b * 3 + c] = _is_conductor(phase[w]) and conn[w]
    seen = np.zeros(27, np.bool_)
    queue = np.empty(27, np.int64)
    queue[0] = cand_l[0]
    seen[cand_l[0]] = True
    qh = 0
    qt = 1
    while qh < qt:
        li = queue[qh]
        qh += 1
        a = li // 9
        b = (li // 3) % 3
        c = li % 3
        for d in range(6):
            a2, b2, c2 = a, b, c
            if d == 0:
                a2 += 1
            elif d == 1:
                a2 -= 1
            elif d == 2:
                b2 += 1
            elif d == 3:
                b2 -= 1
            elif d == 4:
                c2 += 1
            else:
                c2 -= 1
            if a2 < 0 or a2 > 2 or b2 < 0 or b2 > 2 or c2 < 0 or c2 > 2:
                continue
            lj = a2 * 9 + b2 * 3 + c2
            if good[lj] and not seen[lj]:
                seen[lj] = True
                queue[qt] = lj
                qt += 1
    all_in = True
    for i in range(nc):
        if not seen[cand_l[i]]:
            all_in = False
    if all_in:
        return
    stack = ctx[X_STACK]
    stamp = ctx[X_STAMP]
    budget = ip[I_BUDGET]
    for i in range(nc):
        c0 = cand[i]
        if not conn[c0]:
            continue
        ip[I_STAMP] += 1
        gen = ip[I_STAMP]
        stamp[c0] = gen
        stack[0] = c0
        qh = 0
        qt = 1
        alive = False
        while qh < qt:
            u = stack[qh]
            qh += 1
            ux, uy, uz = _coords(u, ny, nz)
            if uz == 0:
                alive = True
                break
            for d in range(5, -1, -1):
                x2, y2, z2, wx, wy = _step(ux, uy, uz, d, nx, ny)
                if z2 < 0 or z2 >= nz:
                    continue
                w = (x2 * ny + y2) * nz + z2
                if stamp[w] != gen and _is_conductor(phase[w]) and conn[w]:
                    stamp[w] = gen
                    stack[qt] = w
                    qt += 1
            if qt > budget:
                alive = True
                break
        if not alive:
            _mark_dead(ctx, stack, qt)


# =============================================================================================
# events
# =============================================================================================
@nb.njit(cache=True)
def _count_region(ctx, v, which):
    reg = ctx[X_REG]
    r = ctx[X_REGION][v]
    reg[which, r] += 1


@nb.njit(cache=True)
def _face_count(ctx, c, e, which):
    """Per-face tallies (tests): row `which` (0 reductions, 1 oxidations), conductor-side
    voxel c, direction from c to electrolyte voxel e."""
    if ctx[X_IP][I_FACECNT] == 0:
        return
    ip = ctx[X_IP]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    x, y, z = _coords(c, ny, nz)
    for d in range(6):
        x2, y2, z2, wx, wy = _step(x, y, z, d, nx, ny)
        if 0 <= z2 < nz and (x2 * ny + y2) * nz + z2 == e:
            ctx[X_FACE][which, c, d] += 1
            return


@nb.njit(cache=True)
def _become_lithium(ctx, v, c):
    """Electrolyte voxel v (no packets left) becomes connected lithium reduced on conductor c."""
    ctx[X_PHASE][v] = LITHIUM
    ctx[X_CONN][v] = True
    ctx[X_U][v] = 0.0
    ctx[X_PHIS][v] = ctx[X_PHIS][c]
    ctx[X_ETA][v] = 0.0
    ctx[X_ACT][v] = 1.0
    ctx[X_CNT][C_CREATED] += 1
    ip = ctx[X_IP]
    if ip[I_RELEASE] != 0:
        prm = ctx[X_PRM]
        nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
        x, y, z = _coords(v, ny, nz)
        dx = x - prm[P_CX]
        dy = y - prm[P_CY]
        dx -= nx * np.floor(dx / nx + 0.5)
        dy -= ny * np.floor(dy / ny + 0.5)
        dz = z - prm[P_CZ]
        r = np.sqrt(dx * dx + dy * dy + dz * dz)
        if r > prm[P_RMAX]:
            prm[P_RMAX] = r


@nb.njit(cache=True)
def _become_electrolyte(ctx, v, e):
    """Lithium voxel v becomes electrolyte; fields taken from its electrolyte neighbour e."""
    ctx[X_PHASE][v] = ELECTROLYTE
    ctx[X_CONN][v] = False
    ctx[X_PHIL][v] = ctx[X_PHIL][e]
    ctx[X_U][v] = ctx[X_U][e]
    if ctx[X_IP][I_IMPLICIT] != 0:
        ctx[X_CONC][v] = ctx[X_CONC][e]
    ctx[X_LEAP][v] = 0
    ctx[X_CNT][C_REMOVED] += 1


@nb.njit(cache=True)
def _free_neighbours(ctx, v, out):
    """Electrolyte face neighbours of v (inside the grid) that accept packets; returns the
    count and their free capacity (large without a cap)."""
    phase = ctx[X_PHASE]
    occ = ctx[X_OCC]
    ip = ctx[X_IP]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    cap = ip[I_CAP]
    x, y, z = _coords(v, ny, nz)
    n = 0
    room = 0
    for d in range(6):
        x2, y2, z2, wx, wy = _step(x, y, z, d, nx, ny)
        if z2 < 0 or z2 >= nz:
            continue
        w = (x2 * ny + y2) * nz + z2
        if w == v or phase[w] != ELECTROLYTE:
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


@nb.njit(cache=True)
def _displace_all(ctx, v, dirs, n):
    """Move every packet of v to a random free neighbour among dirs[:n] (uniform, re-drawn
    when a capped neighbour is full)."""
    head = ctx[X_HEAD]
    occ = ctx[X_OCC]
    P = ctx[X_PREC]
    G = ctx[X_GRP]
    cap = ctx[X_IP][I_CAP]
    ip = ctx[X_IP]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    x, y, z = _coords(v, ny, nz)
    while head[v] != -1:
        k = head[v]
        while True:
            d = dirs[int(np.random.random() * n)]
            if cap == 0:
                break
            x2, y2, z2, wx, wy = _step(x, y, z, d, nx, ny)
            if occ[(x2 * ny + y2) * nz + z2] < cap:
                break
        _pmove(ctx, k, np.int64(G[v]), d)
        ctx[X_CNT][C_DISPLACED] += 1


@nb.njit(cache=True)
def _reduce_packet(ctx, k, g, v, y):
    """Reduction of the packet at k in voxel v; y in [0, R[v]) picks the face."""
    phase = ctx[X_PHASE]
    conn = ctx[X_CONN]
    ip = ctx[X_IP]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    x, y0, z = _coords(v, ny, nz)
    chosen = -1
    last = -1
    for d in range(6):
        x2, y2, z2, wx, wy = _step(x, y0, z, d, nx, ny)
        if z2 < 0 or z2 >= nz:
            continue
        c = (x2 * ny + y2) * nz + z2
        if _is_conductor(phase[c]) and conn[c]:
            last = c
            r = _kred(c, v, ctx[X_PHIS], ctx[X_PHIL], ctx[X_ETA], ctx[X_ACT], ctx[X_PRM])
            if y < r:
                chosen = c
                break
            y -= r
    if chosen == -1:
        chosen = last  # float32 rounding of the stored sum
    if chosen == -1:
        return False
    dirs = np.empty(6, np.int64)
    others = _list_len(ctx[X_PREC], ctx[X_HEAD], v) - 1
    if others > 0:
        n, room = _free_neighbours(ctx, v, dirs)
        if n == 0 or room < others:
            # nowhere for the other packets to go: this reduction cannot happen now
            ctx[X_CNT][C_RED_BLOCKED] += 1
            return False
    _pdel(ctx, k, g)
    if ctx[X_HEAD][v] != -1:
        n, room = _free_neighbours(ctx, v, dirs)
        _displace_all(ctx, v, dirs, n)
    _become_lithium(ctx, v, chosen)
    cnt = ctx[X_CNT]
    cnt[C_RED] += 1
    if phase[chosen] == HOST_CONDUCTIVE:
        cnt[C_NUC] += 1
    _count_region(ctx, v, 0)
    _face_count(ctx, chosen, v, 0)
    _after_phase_change(ctx, v)
    return True


@nb.njit(cache=True)
def _leap(P, head, G, U, pstart, tree, B, k, g, v, n, nx, ny, nz):
    """n hops in one event: multinomial displacement with the local hop probabilities
    (conditional binomials), then one move.  Returns the record's new position.  On a leap
    voxel all six neighbours are electrolyte, so the probabilities are U[w] / sum U[w]."""
    x = P[k, PX]
    y = P[k, PY]
    z = P[k, PZ]
    uw = np.empty(6)
    tot = 0.0
    for d in range(6):
        w, u = _nbr_u(U, v, x, y, z, d, nx, ny, nz, 1.0)
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
    _unlink(P, head, v, k)
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
        k = _pmove_group(P, head, pstart, k, g, gw)
        _pleaf(tree, pstart, B, g)
        _pleaf(tree, pstart, B, gw)
    return k


@nb.njit(cache=True)
def _kill_if_far(ctx, k, g):
    """Release mode: a walker beyond kill_factor x release radius is removed."""
    P = ctx[X_PREC]
    prm = ctx[X_PRM]
    ip = ctx[X_IP]
    dx = P[k, PX] + P[k, WX] * ip[I_NX] - prm[P_CX] if ip[I_NX] > 1 else 0.0
    dy = P[k, PY] + P[k, WY] * ip[I_NY] - prm[P_CY] if ip[I_NY] > 1 else 0.0
    dz = P[k, PZ] - prm[P_CZ]
    rk = prm[P_KILL] * (prm[P_RMAX] + prm[P_MARGIN])
    if dx * dx + dy * dy + dz * dz > rk * rk:
        _pdel(ctx, k, g)
        ctx[X_CNT][C_KILLED] += 1


@nb.njit(cache=True)
def _oxidise(ctx, v, e):
    _become_electrolyte(ctx, v, e)
    cnt = ctx[X_CNT]
    cnt[C_OX] += 1
    _count_region(ctx, v, 1)
    _face_count(ctx, v, e, 1)
    _after_phase_change(ctx, v)
    ip = ctx[X_IP]
    if ip[I_IMPLICIT] == 0:
        x, y, z = _coords(v, ip[I_NY], ip[I_NZ])
        _padd(ctx, v, x, y, z, 0, 0)
    if ip[I_DEADCHK] != 0:
        _dead_check(ctx, v)


@nb.njit(cache=True)
def _surface_hop(ctx, v, w):
    """Lithium voxel v moves into electrolyte voxel w; packets in w step aside."""
    _become_electrolyte(ctx, v, w)
    ip = ctx[X_IP]
    if ip[I_IMPLICIT] == 0 and ctx[X_HEAD][w] != -1:
        dirs = np.empty(6, np.int64)
        n, room = _free_neighbours(ctx, w, dirs)
        _displace_all(ctx, w, dirs, n)
    _become_lithium(ctx, w, v)
    ctx[X_CNT][C_SURF] += 1
    _after_phase_change(ctx, v)
    _after_phase_change(ctx, w)
    if ip[I_DEADCHK] != 0:
        _dead_check(ctx, v)


@nb.njit(cache=True)
def _site_event(ctx, v, y):
    phase = ctx[X_PHASE]
    conn = ctx[X_CONN]
    prm = ctx[X_PRM]
    ip = ctx[X_IP]
    cnt = ctx[X_CNT]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    x, y0, z = _coords(v, ny, nz)
    p = phase[v]
    if p == LITHIUM:
        bonds = 0
        for d in range(6):
            x2, y2, z2, wx, wy = _step(x, y0, z, d, nx, ny)
            if z2 < 0 or z2 >= nz:
                continue
            w = (x2 * ny + y2) * nz + z2
            if phase[w] == ELECTROLYTE:
                r = _kox(v, w, ctx[X_PHIS], ctx[X_PHIL], prm)
                if y < r:
                    _oxidise(ctx, v, w)
                    return True
                y -= r
            else:
                bonds += 1
        if ip[I_SD] != 0:
            rs = _surface_hop_rate(prm[P_SDNU], bonds, prm[P_SDEB])
            for d in range(6):
                x2, y2, z2, wx, wy = _step(x, y0, z, d, nx, ny)
                if z2 < 0 or z2 >= nz:
                    continue
                w = (x2 * ny + y2) * nz + z2
                if phase[w] == ELECTROLYTE and _sd_target_ok(v, x2, y2, z2, phase, conn, nx, ny, nz):
                    if y < rs:
                        _surface_hop(ctx, v, w)
                        return True
                    y -= rs
        return False
    if p != ELECTROLYTE:
        return False
    if ip[I_IMPLICIT] != 0:
        cv = ctx[X_CONC][v] * prm[P_VM]
        for d in range(6):
            x2, y2, z2, wx, wy = _step(x, y0, z, d, nx, ny)
            if z2 < 0 or z2 >= nz:
                continue
            c = (x2 * ny + y2) * nz + z2
            if _is_conductor(phase[c]) and conn[c]:
                r = _kred(c, v, ctx[X_PHIS], ctx[X_PHIL], ctx[X_ETA], ctx[X_ACT], prm) * cv
                if y < r:
                    _become_lithium(ctx, v, c)
                    cnt[C_RED] += 1
                    if phase[c] == HOST_CONDUCTIVE:
                        cnt[C_NUC] += 1
                    _count_region(ctx, v, 0)
                    _face_count(ctx, c, v, 0)
                    _after_phase_change(ctx, v)
                    return True
                y -= r
        return False
    # explicit transport: insertion from the reservoir into a top-layer voxel
    if y < prm[P_INS0] * ctx[X_U][v] / prm[P_UTOP]:
        cap = ip[I_CAP]
        if cap > 0 and ctx[X_OCC][v] >= cap:
            cnt[C_BLOCKED] += 1
            return False
        _padd(ctx, v, x, y0, z, 0, 0)
        cnt[C_INS] += 1
        return True
    return False


@nb.njit(cache=True)
def _release(ctx):
    """Release mode: one new walker on the sphere of radius r_max + margin."""
    prm = ctx[X_PRM]
    ip = ctx[X_IP]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    phase = ctx[X_PHASE]
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
        _padd(ctx, v, x, y, z, (xu - x) // nx, (yu - y) // ny)
        ctx[X_CNT][C_RELEASED] += 1
        return True
    return False


# =============================================================================================
# per-call setup
# =============================================================================================
@nb.njit(cache=True)
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
        _cyclic_dist(dy, n, dxa, 1, nx, ny * nz, ny * nz)  # along x: inner (y, z)
        any_clean = False
        for i in range(N):
            if dxa[i] > n:
                L[i] = k
                any_clean = True
        if not any_clean:
            break


@nb.njit(cache=True)
def setup_call(ctx, n_packets):
    """Rates, groups, leap levels, packet lists and the sum tree for one call."""
    phase = ctx[X_PHASE]
    G = ctx[X_GRP]
    SG = ctx[X_SGRP]
    SI = ctx[X_SITES]
    spos = ctx[X_SPOS]
    sstart = ctx[X_SSTART]
    P = ctx[X_PREC]
    pstart = ctx[X_PSTART]
    head = ctx[X_HEAD]
    occ = ctx[X_OCC]
    tree = ctx[X_TREE]
    B = ctx[X_BOUND]
    ip = ctx[X_IP]
    cnt = ctx[X_CNT]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    N = nx * ny * nz
    if ip[I_KMAX] > 0:
        leap_levels(phase, nx, ny, nz, ip[I_KMAX], ctx[X_LEAP])
    else:
        ctx[X_LEAP][:] = 0
    RV = ctx[X_RV]
    conn = ctx[X_CONN]
    U = ctx[X_U]
    PHIL = ctx[X_PHIL]
    PHIS = ctx[X_PHIS]
    ETA = ctx[X_ETA]
    ACT = ctx[X_ACT]
    CONC = ctx[X_CONC]
    L = ctx[X_LEAP]
    prm = ctx[X_PRM]
    implicit = ip[I_IMPLICIT] != 0
    for v in range(N):
        G[v] = 0
        if not implicit and phase[v] == ELECTROLYTE:
            G[v] = _group(_packet_rates(v, phase, conn, U, PHIL, PHIS, ETA, ACT, RV, L, prm,
                                        nx, ny, nz), B, cnt)
        elif not implicit:
            RV[v] = 0.0
    # sites, counting sort by group
    counts = np.zeros(NG + 1, np.int64)
    for v in range(N):
        g = _group(_site_rate(v, phase, conn, U, PHIL, PHIS, ETA, ACT, CONC, prm, ip), B, cnt)
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
    # packets, counting sort by the group of their voxel
    pc = np.zeros(NG + 1, np.int64)
    for k in range(n_packets):
        pc[G[P[k, VOX]]] += 1
    pstart[0] = 0
    for g in range(NG):
        pstart[g + 1] = pstart[g] + pc[g]
    pfill = pstart[:NG].copy()
    tmp = P[:n_packets].copy()
    for k in range(n_packets):
        g = G[tmp[k, VOX]]
        j = pfill[g]
        pfill[g] += 1
        for f in range(8):
            P[j, f] = tmp[k, f]
    track_occ = ip[I_CAP] > 0  # occupancy is kept in-call only when a cap needs it
    for v in range(N):
        head[v] = -1
        if track_occ:
            occ[v] = 0
    for k in range(n_packets):
        v = P[k, VOX]
        P[k, NXT] = head[v]
        head[v] = k
        if track_occ:
            occ[v] += 1
    for i in range(2 * NLEAF):
        tree[i] = 0.0
    for g in range(1, NG):
        _pleaf(tree, pstart, B, g)
        _sleaf(tree, sstart, B, g)


# =============================================================================================
# the event loop
# =============================================================================================
@nb.njit(cache=True)
def _tree_walk(tree, x):
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


@nb.njit(cache=True)
def _pick(start, g, bg, x):
    """Composition-rejection inside group g (items start[g] .. start[g+1]-1, rate bound bg):
    x in [0, n bg) picks the item at start[g] + x // bg, and the rest, y in [0, bg), is its
    channel variable.  Returns (position, y), or (-1, 0.0) for an empty group."""
    n = start[g + 1] - start[g]
    if n <= 0:
        return -1, 0.0
    q = x / bg
    j = min(int(q), n - 1)
    return start[g] + j, (q - j) * bg


@nb.njit(cache=True)
def _prefetch_next(P, U, pstart, tree, B, x, nx, ny, nz):
    """Prefetch the voxel records of the packet that x would select now and of its hop
    target if it has no reaction (as the event loop's R = 0 path computes it)."""
    leaf, x = _tree_walk(tree, x)
    if leaf >= NG:
        return
    bg = B[leaf]
    k, y = _pick(pstart, leaf, bg, x)
    if k < 0:
        return
    v = P[k, VOX]
    _prefetch(U, v)
    d0 = min(int(y / (bg / 6.0)), 5)
    w0 = _nbr_index(v, P[k, PX], P[k, PY], P[k, PZ], d0, nx, ny, nz)
    if w0 >= 0:
        _prefetch(U, w0)
@nb.njit(cache=True)
def run_events(ctx, t_end, max_events, max_reductions, seed):
    """Execute events until the next one would pass t_end (not executed), or max_events
    events have run, or max_reductions net reductions (minus oxidations), or the packet store needs
    to grow.  Returns a status code; the clock is ctx[X_PRM][P_T]."""
    np.random.seed(seed)
    P = ctx[X_PREC]
    pstart = ctx[X_PSTART]
    SI = ctx[X_SITES]
    sstart = ctx[X_SSTART]
    tree = ctx[X_TREE]
    B = ctx[X_BOUND]
    prm = ctx[X_PRM]
    ip = ctx[X_IP]
    cnt = ctx[X_CNT]
    head = ctx[X_HEAD]
    occ = ctx[X_OCC]
    G = ctx[X_GRP]
    L = ctx[X_LEAP]
    RV = ctx[X_RV]
    U = ctx[X_U]
    nx, ny, nz = ip[I_NX], ip[I_NY], ip[I_NZ]
    utop = prm[P_UTOP]
    hop = prm[P_HOP]
    cap = ip[I_CAP]
    cap_p = P.shape[0]
    t = prm[P_T]
    release = ip[I_RELEASE] != 0
    status = ST_DONE
    # The selection uniform of the next attempt is drawn one attempt ahead, so the packet it
    # will pick (if this attempt leaves the tree as it is, nearly always) can be prefetched:
    # its voxel record then loads while this attempt waits on its own.
    u_sel = np.random.random()
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
        if pstart[NG] + 8 > cap_p:
            status = ST_GROW
            break
        if release and pstart[NG] == 0:
            if not _release(ctx):
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
        x = u_sel * W
        u_sel = np.random.random()
        leaf, x = _tree_walk(tree, x)
        _prefetch_next(P, U, pstart, tree, B, u_sel * W, nx, ny, nz)
        ok = False
        if leaf < NG:
            bg = B[leaf]
            k, y = _pick(pstart, leaf, bg, x)
            if k >= 0:
                g = leaf
                v = P[k, VOX]
                px = P[k, PX]
                py = P[k, PY]
                pz = P[k, PZ]
                # The hop target if v has no reaction (R = 0, most packets): its address is
                # known now, so its record loads alongside v's instead of after it.
                d0 = min(int(y / (bg / 6.0)), 5)
                w0 = _nbr_index(v, px, py, pz, d0, nx, ny, nz)
                uw0 = _u_at(U, w0, utop)
                lk = np.int64(L[v])
                inv = hop / np.float64(U[v])
                if lk > 0:
                    # leap voxel: one channel, rate K / 2^lk (no reaction can be near)
                    nh = np.int64(1) << lk
                    ksum = 0.0
                    for d in range(6):
                        w, uw = _nbr_u(U, v, px, py, pz, d, nx, ny, nz, utop)
                        ksum += inv * uw
                    if y < ksum / nh:
                        k = _leap(P, head, G, U, pstart, tree, B, k, g, v, nh, nx, ny, nz)
                        cnt[C_LEAP] += 1
                        cnt[C_LEAP_HOPS] += nh
                        ok = True
                        if release:
                            _kill_if_far(ctx, k, np.int64(G[P[k, VOX]]))
                else:
                    R = np.float64(RV[v])
                    if y < R:
                        ok = _reduce_packet(ctx, k, g, v, y)
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
                                w, uw = _nbr_u(U, v, px, py, pz, dsel, nx, ny, nz, utop)
                            if not (y - dsel * width < inv * uw):
                                dsel = 6  # null: thinned
                        if dsel < 6:
                            if w == -2:
                                _pdel(ctx, k, g)  # out through the top, into the reservoir
                                cnt[C_REM] += 1
                                ok = True
                            elif cap > 0 and occ[w] >= cap:
                                cnt[C_BLOCKED] += 1
                            else:
                                x2, y2, z2, wx, wy = _step(px, py, pz, dsel, nx, ny)
                                _unlink(P, head, v, k)
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
                                    k = _pmove_group(P, head, pstart, k, g, gw)
                                    _pleaf(tree, pstart, B, g)
                                    _pleaf(tree, pstart, B, gw)
                                cnt[C_HOP] += 1
                                ok = True
                                if release:
                                    _kill_if_far(ctx, k, gw)
        else:
            g = leaf - NG
            i, y = _pick(sstart, g, B[g], x)
            if i >= 0:
                ok = _site_event(ctx, SI[i], y)
        if ok:
            cnt[C_EVENTS] += 1
        else:
            cnt[C_NULL] += 1
    prm[P_T] = t
    return status
