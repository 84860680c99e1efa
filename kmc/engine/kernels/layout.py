"""Layout shared by the KMC kernels: rate-group constants, packet-record fields, the
parameter/counter slots, status codes, the named kernel context, lattice neighbours.

Conventions: flat index ``v = (x*ny + y)*nz + z``; periodic in x, y; below z = 0 is closed;
above z = nz - 1 is the reservoir.  Directions 0..5 = +x, -x, +y, -y, +z, -z.  The design of
the selection machinery and its measured speed are in docs/kernels.md.
"""
from __future__ import annotations

from collections import namedtuple

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.experimental import structref
from numba.extending import intrinsic

from continuum.constants import HOST_CONDUCTIVE, LITHIUM

# Kernels called only by other kernels: no Python or C entry wrappers (a wrapper unboxes every
# argument, the whole context included: compile time for nothing).  ``inner_inline`` also has
# LLVM inline the small helpers of the event loop, which it otherwise leaves as calls.  The
# entry points (loop.setup_call, loop.run_events, leaps.leap_levels) are plain njit(cache=True).
inner = nb.njit(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
inner_inline = nb.njit(cache=True, forceinline=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
# ``inner_always``: inlined by Numba into each caller, no machine code of its own.  For the
# event bookkeeping between the events and the rate refreshes (effects, dead_lithium) and the
# setup passes: Numba optimises and compiles each kernel together with every kernel it calls,
# so each of these layers compiled its callees' code once more (4 CPU-s of a first run).
inner_always = nb.njit(cache=True, inline="always", no_cpython_wrapper=True, no_cfunc_wrapper=True)

# ---- rate groups ----------------------------------------------------------------------------
NG = 256  # rate groups per item kind (packets, sites)
NLEAF = 2 * NG  # sum-tree leaves: packet groups then site groups
BINS_PER_OCTAVE = 4
G_CENTER = 100  # B[G_CENTER] = T_ref; range 2^-24.75 .. 2^38.75 T_ref (fast reactions need room)

# ---- packet record fields (int64[cap, 8], 64 bytes) --------------------------------------
VOX, NXT, PID, PX, PY, PZ, WX, WY = 0, 1, 2, 3, 4, 5, 6, 7
N_FIELDS = 8

# ---- float parameters prm[] (P_T, P_RMAX are written by the kernels) ------------------------
P_HOP, P_KRED0, P_KOX0, P_AAF, P_ACF, P_VM, P_INS0, P_UTOP = 0, 1, 2, 3, 4, 5, 6, 7
P_SDNU, P_SDEB, P_CX, P_CY, P_CZ, P_MARGIN, P_KILL, P_RMAX, P_T = 8, 9, 10, 11, 12, 13, 14, 15, 16
P_COORD = 17  # coordination shift delta [V per lithium/host bond] (rates.coordination_shift); 0 = off
N_PRM = 18

# ---- int parameters ip[] (I_NEXTID, I_STAMP are written by the kernels) ---------------------
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

# rows of region_counts / face_counts (numpy ints: a literal int argument would compile a
# second specialisation of the callee)
TALLY_REDUCTION, TALLY_OXIDATION = np.int64(0), np.int64(1)

# ---- status codes of run_events -----------------------------------------------------------
ST_DONE, ST_MAXEV, ST_GROW, ST_NOEVENTS, ST_MAXRED, ST_OVERFLOW, ST_RELFAIL, ST_MAXOX = range(8)

# Manhattan-distance <= 2 offsets (first 7 are distance <= 1): sites whose rates a phase
# change can touch (surface-hop targets look two faces away).
OFFSETS = np.array([(dx, dy, dz) for r in (0, 1, 2) for dx in range(-2, 3) for dy in range(-2, 3)
                    for dz in range(-2, 3) if abs(dx) + abs(dy) + abs(dz) == r], dtype=np.int64)

#: Everything one kernel call works on (a named tuple of arrays, built by the engine; the entry
#: points turn it into a KernelRefType with :func:`as_ref` and pass that on).  Per voxel (flat,
#: length N): phase, connected, occupancy, eta_nuc, activity, region, stamp (flood marks), site_group,
#: site_pos, and the fields phi_l, phi_s, concentration; u, reduction_total, head, group and
#: leap are views into one 16-byte record per voxel (engine: ``_aligned_records``).
KernelContext = namedtuple("KernelContext", [
    "phase", "connected", "occupancy", "head", "group", "leap", "site_group", "site_pos",
    "region", "stamp", "reduction_total", "u", "phi_l", "phi_s", "eta_nuc", "activity",
    "concentration", "packets", "packet_start", "sites", "site_start", "tree", "bounds",
    "prm", "ip", "counters", "region_counts", "stack", "face_counts"])


@structref.register
class KernelRefType(types.StructRef):
    """The kernels' handle on a KernelContext: one pointer to its arrays.  Passed as the named
    tuple, the context travels as some 200 scalars through every call and is packed, unpacked
    and reference-counted array by array, in code every kernel compiles."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(t)) for name, t in fields)


@intrinsic
def as_ref(typingctx, ctx):
    """A KernelRefType holding the arrays of the KernelContext ctx (the entry points' first step)."""
    from numba.experimental.jitclass.base import imp_dtor

    ref_type = KernelRefType(list(zip(ctx.fields, ctx.types)))

    def codegen(context, builder, signature, args):
        data_type = context.data_model_manager[ref_type.get_data_type()].get_value_type()
        meminfo = context.nrt.meminfo_alloc_dtor(
            builder, context.get_constant(types.uintp, context.get_abi_sizeof(data_type)),
            imp_dtor(context, builder.module, ref_type))
        ptr = builder.bitcast(context.nrt.meminfo_data(builder, meminfo), data_type.as_pointer())
        data = cgutils.create_struct_proxy(ref_type.get_data_type())(context, builder, ref=ptr)
        for i, (name, t) in enumerate(zip(ctx.fields, ctx.types)):
            value = builder.extract_value(args[0], i)
            context.nrt.incref(builder, t, value)
            setattr(data, name, value)
        ref = context.make_helper(builder, ref_type)
        ref.meminfo = meminfo
        return ref._getvalue()

    return ref_type(ctx), codegen


@intrinsic
def prefetch(typingctx, arr, idx):
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


def group_bounds(t_ref: float) -> np.ndarray:
    b = t_ref * 2.0 ** ((np.arange(NG, dtype=np.float64) - G_CENTER) / BINS_PER_OCTAVE)
    b[0] = 0.0
    return b


@inner
def coords(v, ny, nz):
    x = v // (ny * nz)
    r = v - x * ny * nz
    y = r // nz
    return x, y, r - y * nz


@inner_inline
def step(x, y, z, d, nx, ny):
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


@inner_inline
def neighbour(v, x, y, z, d, nx, ny, nz):
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


@inner_inline
def u_at(U, w, utop):
    """U of neighbour index w (utop through the top, 0 below the collector).  U = 0 on every
    non-electrolyte voxel, so a blocked hop has rate 0 without a phase lookup."""
    if w >= 0:
        return np.float64(U[w])
    return utop if w == -2 else 0.0


@inner_inline
def neighbour_u(U, v, x, y, z, d, nx, ny, nz, utop):
    """(index, U) of the face neighbour in direction d (see neighbour, u_at)."""
    w = neighbour(v, x, y, z, d, nx, ny, nz)
    return w, u_at(U, w, utop)


@inner
def is_conductor(p):
    return p == HOST_CONDUCTIVE or p == LITHIUM

