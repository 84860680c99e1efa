"""Numba kernels of the voxel-grid multigrid (continuum.multigrid owns the arrays).

A level is a cell-centred grid [x, y, z], periodic in x and y, with face conductances
``gx[i, j, k]`` between (i, j, k) and (i+1 mod nx, j, k) (likewise ``gy``; ``gz`` between k and
k+1, zero on the top layer), a diagonal term ``d`` (links to fixed potentials, storage), a
Dirichlet conductance ``dtop[i, j]`` above the top layer, and ``dtot``, the operator's
diagonal.  ``dtot == 0`` marks a cell that is not an unknown.

The 7-point stencil is written out in each kernel on purpose: a shared helper, even with
``inline="always"``, made the Gauss-Seidel sweep 2x slower at 128^3.

Threads (gauss_seidel, apply_operator; the transfers and the CG's vector passes stay serial,
docs/model.md "Threads"): a kernel splits its pass into pieces whose arithmetic does not
depend on the thread count (planes, slabs) and runs them in the calling thread (``range``) when ``_threads`` says 1, on Numba's
threads (``prange``) otherwise: the same numbers bit for bit either way.  The serial branch
starts no threads, so a forked child (GNU OpenMP cannot run there) works at one thread.
Every kernel releases the GIL (``nogil``): the phase field solves phi and c at once on two
Python threads on its 2D grids, where no kernel starts Numba's threads.
"""
from __future__ import annotations

import os

import numba
import numpy as np
from numba import prange
from numba.np.ufunc.parallel import _iget_num_threads

# A thread that finished its share of a pass sleeps until the next instead of spinning (GNU
# OpenMP spins first by default): on busy cores the spinning thread holds the core the others
# need (2 threads on 2 cores at load 8: a 128^3 potential solve 2-3x the wall time of 1 thread
# with spinning, the same as 1 without).  Read when OpenMP loads, in the next call; a value
# set before is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# _iget_num_threads: numba.get_num_threads as a cached kernel can call it (that one holds a
# ctypes pointer, which stops caching); its symbol exists once Numba's threading layer is
# loaded, which this call does before any kernel is.
numba.get_num_threads()

# Below this many cells a cycle kernel runs in the calling thread: starting the threads
# (microseconds; tens on a loaded machine) would cost more than the pass saves.
PARALLEL_MIN_CELLS = 1 << 15
# Slabs along i of a Gauss-Seidel sweep (gauss_seidel): half of them at once on the threads.
GS_SLABS = 8
# Length of the pieces of a vector pass (dot products: summed piece by piece, in order, so
# the rounding is the same whatever the thread count).
CHUNK = 1 << 14
# gauss_seidel's direction as numpy bools: a literal True/False argument would compile the
# sweep, a threaded kernel, once per value (2 s of a first run); its slab is compiled per
# direction all the same (_slab_either_way)
FORWARD, BACKWARD = np.bool_(False), np.bool_(True)


@numba.njit(cache=True, nogil=True)
def operator_diagonal(gx, gy, gz, d, dtop, dtot, dinv):
    """dtot = the operator's diagonal, dinv = 1 / dtot (0 where dtot is 0: not an unknown)."""
    nx, ny, nz = d.shape
    for i in range(nx):
        im = i - 1 if i > 0 else nx - 1
        for j in range(ny):
            jm = j - 1 if j > 0 else ny - 1
            for k in range(nz):
                s = d[i, j, k] + gx[i, j, k] + gx[im, j, k] + gy[i, j, k] + gy[i, jm, k] + gz[i, j, k]
                if k > 0:
                    s += gz[i, j, k - 1]
                if k == nz - 1:
                    s += dtop[i, j]
                dtot[i, j, k] = s
                dinv[i, j, k] = 1.0 / s if s > 0.0 else 0.0


@numba.njit(cache=True, nogil=True)
def _threads(cells):
    """Threads for a pass over ``cells`` cells: this thread's Numba count
    (numba.set_num_threads), 1 below PARALLEL_MIN_CELLS, where starting the threads costs
    more than the pass.  No kernel's result depends on it (see each kernel)."""
    return _iget_num_threads() if cells >= PARALLEL_MIN_CELLS else 1


@numba.njit(cache=True, nogil=True)
def _gauss_seidel_slab(x, b, gx, gy, gz, dinv, reverse, i0, i1):
    """gauss_seidel's lexicographic sweep over the planes [i0, i1) (backward when reverse)."""
    nx, ny, nz = x.shape
    s = np.empty(nz)
    for ii in range(i1 - i0):
        i = i1 - 1 - ii if reverse else i0 + ii
        ip = i + 1 if i + 1 < nx else 0
        im = i - 1 if i > 0 else nx - 1
        for jj in range(ny):
            j = ny - 1 - jj if reverse else jj
            jp = j + 1 if j + 1 < ny else 0
            jm = j - 1 if j > 0 else ny - 1
            if not reverse:
                for k in range(nz):
                    old = gz[i, j, k] * x[i, j, k + 1] if k + 1 < nz else 0.0
                    s[k] = (b[i, j, k] + gx[i, j, k] * x[ip, j, k] + gx[im, j, k] * x[im, j, k]
                            + gy[i, j, k] * x[i, jp, k] + gy[i, jm, k] * x[i, jm, k] + old)
                carry = 0.0
                for k in range(nz):
                    v = (s[k] + carry) * dinv[i, j, k]
                    x[i, j, k] = v
                    carry = gz[i, j, k] * v
            else:
                # k = 0 apart: a guarded k - 1 inside the loops cost a fifth of the sweep
                s[0] = (b[i, j, 0] + gx[i, j, 0] * x[ip, j, 0] + gx[im, j, 0] * x[im, j, 0]
                        + gy[i, j, 0] * x[i, jp, 0] + gy[i, jm, 0] * x[i, jm, 0])
                for k in range(1, nz):
                    s[k] = (b[i, j, k] + gx[i, j, k] * x[ip, j, k] + gx[im, j, k] * x[im, j, k]
                            + gy[i, j, k] * x[i, jp, k] + gy[i, jm, k] * x[i, jm, k]
                            + gz[i, j, k - 1] * x[i, j, k - 1])
                carry = 0.0
                for k in range(nz - 1, 0, -1):
                    v = (s[k] + carry) * dinv[i, j, k]
                    x[i, j, k] = v
                    carry = gz[i, j, k - 1] * v
                x[i, j, 0] = (s[0] + carry) * dinv[i, j, 0]


@numba.njit(cache=True, nogil=True)
def _slab_either_way(x, b, gx, gy, gz, dinv, reverse, i0, i1):
    """_gauss_seidel_slab with ``reverse`` passed on as a literal: the slab compiles once per
    direction (15 % faster sweeps than with the flag read at run time), gauss_seidel, a
    threaded kernel, once for both."""
    if reverse:
        _gauss_seidel_slab(x, b, gx, gy, gz, dinv, True, i0, i1)
    else:
        _gauss_seidel_slab(x, b, gx, gy, gz, dinv, False, i0, i1)


@numba.njit(parallel=True, cache=True, nogil=True)
def gauss_seidel(x, b, gx, gy, gz, dinv, reverse):
    """One Gauss-Seidel sweep in place (backward when ``reverse``: a forward pre-sweep and a
    backward post-sweep make the V-cycle symmetric, as CG needs).  ``dinv``: 1/diagonal, 0
    where the cell is not an unknown (it is set to 0).

    The order: the grid split along i into GS_SLABS slabs (an even number: fewer when nx is
    small), the even slabs first, then the odd ones, each lexicographic; backward, the exact
    reverse.  Slabs of one colour share no face (the periodic pair included), so they run on
    the threads at once, and the order, hence every number, is the same whatever the thread
    count: two thread starts per sweep.

    Per column, every neighbour but the one just updated is known, so those terms are summed
    first (a loop the compiler vectorises) and only a multiply-add recurrence runs along z:
    2.5x faster than updating cell by cell, whose divisions chained through z.  (Interleaving
    four slabs' recurrences in one thread made a 2D sweep 2x faster but added 9 s to the first
    run's compilation: only pcg's plane specialisation has it, `gauss_seidel_plane`.)"""
    nx = x.shape[0]
    ns = 2 * min(GS_SLABS // 2, nx // 2) if nx > 1 else 1
    serial = _threads(x.size) == 1
    for colour in range(2 if ns > 1 else 1):
        first = 1 - colour if reverse and ns > 1 else colour
        if serial:
            for h in range((ns - first + 1) // 2):
                s = first + 2 * h
                _slab_either_way(x, b, gx, gy, gz, dinv, reverse, s * nx // ns, (s + 1) * nx // ns)
        else:
            for h in prange((ns - first + 1) // 2):
                s = first + 2 * h
                _slab_either_way(x, b, gx, gy, gz, dinv, reverse, s * nx // ns, (s + 1) * nx // ns)


@numba.njit(cache=True, nogil=True)
def pack_level(gx, gy, gz, dtot, dinv, scale, offset, pgx, pgy, pgz, pdtot, pdinv):
    """A level's flat arrays into the cycle's packed single-precision ones from ``offset``:
    conductances and diagonal times 1/scale, dinv times scale (numpy's concatenate, multiply
    and astype made three passes and temporaries: a tenth of a set-up)."""
    inv = 1.0 / scale
    for a in range(dtot.size):
        pgx[offset + a] = gx[a] * inv
        pgy[offset + a] = gy[a] * inv
        pgz[offset + a] = gz[a] * inv
        pdtot[offset + a] = dtot[a] * inv
        pdinv[offset + a] = dinv[a] * scale


@numba.njit(cache=True, nogil=True)
def sum_children(a, fx, fy, fz, out):
    """out = each coarse cell's sum over its children (factors 1 or 2 per axis: shifts, not
    the integer divisions that were most of this pass)."""
    out[:] = 0.0
    nx, ny, nz = a.shape
    sx, sy, sz = fx >> 1, fy >> 1, fz >> 1
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                out[i >> sx, j >> sy, k >> sz] += a[i, j, k]


@numba.njit(cache=True, nogil=True)
def coarse_faces(g, f0, f1, f2, periodic, out):
    """Coarse conductances of the faces normal to axis 0 (callers pass transposed views).

    Each fine face crossing a coarse face is one row of the coarse link: half of the interior
    link of the coarse cell on either side (conductance 2 g: half the length), the crossing
    face, in series, so a coarse face costs what the fine path costs, not 2x as Galerkin
    aggregation would, and a weak link inside a coarse cell weakens its rows.  A missing
    interior link (its fine voxel is not an unknown) takes the crossing face's conductance,
    so fine cells connected through a face stay connected on the coarse grid; an interior
    link weaker than a quarter of the crossing face counts as that quarter, so a row keeps at
    least a fifth of its crossing face: cells joined by a strong face stay joined whatever
    else shares their coarse cells.  (Without that floor the phase field's diffuse metal
    front at contrast 1e6, whose coarse cells pair a metal cell with an electrolyte one
    behind a link 1e-4 of the metal's, was cut apart on the coarse grid, to 1e-5 of its fine
    path three levels down: the cycle tore the metal apart, preconditioned condition number
    7900 for 4, and the potential's solves stopped converging as the front neared the
    Dirichlet top.  A floor of one half, not a quarter, cost the KMC potential solver 5 %
    more iterations.)
    """
    n0, n1, n2 = g.shape
    c0, c1, c2 = out.shape
    for ic in range(c0):
        lo = ic * f0
        hi = min(lo + f0 - 1, n0 - 1)
        if ic + 1 < c0:
            nxt = ic + 1
        elif periodic and c0 > 1:
            nxt = 0
        else:
            nxt = -1
        lo2 = nxt * f0
        hi2 = min(lo2 + f0 - 1, n0 - 1)
        for jc in range(c1):
            for kc in range(c2):
                s = 0.0
                if nxt >= 0:
                    for j in range(jc * f1, min(jc * f1 + f1, n1)):
                        for k in range(kc * f2, min(kc * f2 + f2, n2)):
                            b = g[hi, j, k]
                            if b <= 0.0:
                                continue
                            r = 1.0 / b
                            if hi > lo:
                                a = g[lo, j, k]
                                r += 0.5 / (b if a <= 0.0 else max(a, 0.25 * b))
                            if hi2 > lo2:
                                c = g[lo2, j, k]
                                r += 0.5 / (b if c <= 0.0 else max(c, 0.25 * b))
                            s += 1.0 / r
                out[ic, jc, kc] = s


@numba.njit(cache=True, nogil=True)
def coarse_top(gz, dtop, fx, fy, fz, out):
    """Coarse Dirichlet conductance above the top layer: the same series rule in z."""
    nx, ny, nz = gz.shape
    cx, cy = out.shape
    lo = ((nz - 1) // fz) * fz
    hi = nz - 1
    for ic in range(cx):
        for jc in range(cy):
            s = 0.0
            for i in range(ic * fx, min(ic * fx + fx, nx)):
                for j in range(jc * fy, min(jc * fy + fy, ny)):
                    t = dtop[i, j]
                    if t <= 0.0:
                        continue
                    r = 1.0 / t
                    if hi > lo:
                        a = gz[i, j, lo]
                        r += 0.5 / (a if a > 0.0 else t)
                    s += 1.0 / r
            out[ic, jc] = s


@numba.njit(parallel=True, cache=True, nogil=True)
def apply_operator(x, gx, gy, gz, dtot, out):
    """out = A x (planes i on the threads: each value is the serial one)."""
    nx = x.shape[0]
    if _threads(x.size) == 1:
        for i in range(nx):
            _apply_plane(x, gx, gy, gz, dtot, out, i)
    else:
        for i in prange(nx):
            # prange's index is unsigned: cast, or _apply_plane compiles twice
            _apply_plane(x, gx, gy, gz, dtot, out, np.int64(i))


@numba.njit(cache=True, nogil=True)
def _apply_plane(x, gx, gy, gz, dtot, out, i):
    nx, ny, nz = x.shape
    ip = i + 1 if i + 1 < nx else 0
    im = i - 1 if i > 0 else nx - 1
    for j in range(ny):
        jp = j + 1 if j + 1 < ny else 0
        jm = j - 1 if j > 0 else ny - 1
        for k in range(nz):
            dd = dtot[i, j, k]
            if dd == 0.0:
                out[i, j, k] = 0.0
                continue
            s = (dd * x[i, j, k] - gx[i, j, k] * x[ip, j, k] - gx[im, j, k] * x[im, j, k]
                 - gy[i, j, k] * x[i, jp, k] - gy[i, jm, k] * x[i, jm, k])
            if k + 1 < nz:
                s -= gz[i, j, k] * x[i, j, k + 1]
            if k > 0:
                s -= gz[i, j, k - 1] * x[i, j, k - 1]
            out[i, j, k] = s


# -- the whole preconditioned CG in one call (no Python per iteration) ---------------------
# Levels arrive packed one after another in flat arrays (level 0 the fine grid); ``factors[l]`` are the coarsening
# factors from level l to l + 1 (1 or 2 per axis: shifts, not divisions, index the parents).
# The coarsest level is solved by a dense inverse over its unknown cells.

# serial: threaded, the transfers cost compilation time for no measured gain (docs/model.md "Threads")
@numba.njit(cache=True, nogil=True)
def restrict_residual(x, b, gx, gy, gz, dtot, sx, sy, sz, rc):
    """rc = sum over each coarse cell's children of the residual b - A x (``sx``..: the
    coarsening factors as shifts, 0 or 1); a column's residual is formed first (vectorised),
    then summed into the parents, coarse plane by coarse plane, in the same order either way
    (the sum by k >> sz, whose store each next add waited on, was a quarter slower)."""
    for ic in range(rc.shape[0]):
        _restrict_plane(x, b, gx, gy, gz, dtot, sx, sy, sz, rc, ic)


@numba.njit(cache=True, nogil=True)
def _restrict_plane(x, b, gx, gy, gz, dtot, sx, sy, sz, rc, ic):
    nx, ny, nz = x.shape
    rc[ic] = 0.0
    r = np.empty(nz)
    for i in range(ic << sx, min((ic + 1) << sx, nx)):
        ip = i + 1 if i + 1 < nx else 0
        im = i - 1 if i > 0 else nx - 1
        for j in range(ny):
            jp = j + 1 if j + 1 < ny else 0
            jm = j - 1 if j > 0 else ny - 1
            jc = j >> sy
            for k in range(nz):
                s = (b[i, j, k] - dtot[i, j, k] * x[i, j, k] + gx[i, j, k] * x[ip, j, k]
                     + gx[im, j, k] * x[im, j, k] + gy[i, j, k] * x[i, jp, k] + gy[i, jm, k] * x[i, jm, k])
                if k + 1 < nz:
                    s += gz[i, j, k] * x[i, j, k + 1]
                if k > 0:
                    s += gz[i, j, k - 1] * x[i, j, k - 1]
                r[k] = s if dtot[i, j, k] != 0.0 else 0.0
            if sz == 1:  # a parent's two children by one index: its sum stays in a register
                for kc in range(nz >> 1):
                    rc[ic, jc, kc] += r[2 * kc]
                    rc[ic, jc, kc] += r[2 * kc + 1]
                if nz & 1:
                    rc[ic, jc, nz >> 1] += r[nz - 1]
            else:
                for k in range(nz):
                    rc[ic, jc, k] += r[k]


@numba.njit(cache=True, nogil=True)
def prolong_add(x, ec, dtot, sx, sy, sz):
    """x += the coarse correction, constant over each coarse cell's children (serial, as
    restrict_residual)."""
    for i in range(x.shape[0]):
        _prolong_plane(x, ec, dtot, sx, sy, sz, i)


@numba.njit(cache=True, nogil=True)
def _prolong_plane(x, ec, dtot, sx, sy, sz, i):
    _, ny, nz = x.shape
    ic = i >> sx
    for j in range(ny):
        jc = j >> sy
        for k in range(nz):
            if dtot[i, j, k] != 0.0:
                x[i, j, k] += ec[ic, jc, k >> sz]


@numba.njit(cache=True, nogil=True)
def _level(flat, offsets, shapes, lvl):
    """Level lvl's view of an array packed level after level."""
    o = offsets[lvl]
    n0, n1, n2 = shapes[lvl, 0], shapes[lvl, 1], shapes[lvl, 2]
    return flat[o:o + n0 * n1 * n2].reshape((n0, n1, n2))


@numba.njit(cache=True, nogil=True)
def vcycle_into(gxs, gys, gzs, dts, dinvs, xs, bs, offsets, shapes, shifts, coarse_cells, coarse_inverse,
                sweeps, b0, out, rscale, oscale, threaded, plane):
    """out = one V-cycle from zero on the fine right-hand side b0 (the multigrid's
    preconditioner: forward Gauss-Seidel down, exact coarsest solve, backward up).  The
    levels' arrays are packed one after another in flat arrays (``offsets``, ``shapes``), in
    single precision: the cycle only preconditions (CG applies the exact operator), and half
    the bytes per sweep is what a sweep costs.  b0 and out are the CG's double vectors: b0
    enters times ``rscale`` and out leaves times ``oscale`` (so single precision sees numbers
    near 1 whatever the units; the coefficients were scaled likewise).  ``threaded``, ``plane``:
    one True, the other None: gauss_seidel's sweeps or gauss_seidel_plane's (see `pcg`)."""
    nl = shapes.shape[0]
    xs[:] = 0.0
    n0 = b0.size
    _scaled_copy(b0.ravel(), rscale, bs[:n0])
    for lvl in range(nl - 1):
        x = _level(xs, offsets, shapes, lvl)
        b = _level(bs, offsets, shapes, lvl)
        gx = _level(gxs, offsets, shapes, lvl)
        gy = _level(gys, offsets, shapes, lvl)
        gz = _level(gzs, offsets, shapes, lvl)
        dt = _level(dts, offsets, shapes, lvl)
        dinv = _level(dinvs, offsets, shapes, lvl)
        for _ in range(sweeps):
            if threaded is not None:
                gauss_seidel(x, b, gx, gy, gz, dinv, FORWARD)
            if plane is not None:
                gauss_seidel_plane(x, b, gx, gy, gz, dinv, False)
        restrict_residual(x, b, gx, gy, gz, dt, shifts[lvl, 0], shifts[lvl, 1], shifts[lvl, 2],
                          _level(bs, offsets, shapes, lvl + 1))
    xc = xs[offsets[nl - 1]:]
    bc = bs[offsets[nl - 1]:]
    m = coarse_cells.size
    for a in range(m):
        s = 0.0
        for c in range(m):
            s += coarse_inverse[a, c] * bc[coarse_cells[c]]
        xc[coarse_cells[a]] = s
    for lvl in range(nl - 2, -1, -1):
        x = _level(xs, offsets, shapes, lvl)
        dt = _level(dts, offsets, shapes, lvl)
        prolong_add(x, _level(xs, offsets, shapes, lvl + 1), dt, shifts[lvl, 0], shifts[lvl, 1],
                    shifts[lvl, 2])
        b, dinv = _level(bs, offsets, shapes, lvl), _level(dinvs, offsets, shapes, lvl)
        gx, gy = _level(gxs, offsets, shapes, lvl), _level(gys, offsets, shapes, lvl)
        gz = _level(gzs, offsets, shapes, lvl)
        for _ in range(sweeps):
            if threaded is not None:
                gauss_seidel(x, b, gx, gy, gz, dinv, BACKWARD)
            if plane is not None:
                gauss_seidel_plane(x, b, gx, gy, gz, dinv, True)
    _scaled_copy(xs[:n0], oscale, out.ravel())


# The CG's vector passes stay in the calling thread: they are memory-bound, and as parallel
# kernels they added 6 s to the first run's compilation for a few percent of a solve.
@numba.njit(cache=True, nogil=True)
def _scaled_copy(src, factor, dst):
    """dst = src * factor (flat arrays)."""
    for a in range(src.size):
        dst[a] = src[a] * factor


@numba.njit(cache=True, nogil=True)
def partial_dot(a, b, lo, hi):
    """Sum of a[i] * b[i] over lo <= i < hi (flat arrays) by four interleaved partial sums (one
    running sum waits on every add: 2.7x slower)."""
    p0 = p1 = p2 = p3 = 0.0
    i = lo
    while i + 4 <= hi:
        p0 += a[i] * b[i]
        p1 += a[i + 1] * b[i + 1]
        p2 += a[i + 2] * b[i + 2]
        p3 += a[i + 3] * b[i + 3]
        i += 4
    while i < hi:
        p0 += a[i] * b[i]
        i += 1
    return (p0 + p1) + (p2 + p3)


@numba.njit(cache=True, nogil=True)
def _dot(a, b):
    """Sum of a * b, in CHUNK-long pieces summed in order, each by `partial_dot`.  The order is
    fixed, so the rounding does not depend on the thread count."""
    fa = a.ravel()
    fb = b.ravel()
    s = 0.0
    for c in range((fa.size + CHUNK - 1) // CHUNK):
        s += partial_dot(fa, fb, c * CHUNK, min((c + 1) * CHUNK, fa.size))
    return s


@numba.njit(cache=True, nogil=True)
def _cg_step(x, r, p, q, alpha):
    """x += alpha p, r -= alpha q; returns the largest |alpha p|."""
    fx, fr, fp, fq = x.ravel(), r.ravel(), p.ravel(), q.ravel()
    move = 0.0
    for i in range(fx.size):
        dx = alpha * fp[i]
        fx[i] += dx
        fr[i] -= alpha * fq[i]
        move = max(move, abs(dx))
    return move


@numba.njit(cache=True, nogil=True)
def _subtract_from(b, r):
    """r = b - r in place (an array expression would allocate a grid-sized temporary)."""
    fb, fr = b.ravel(), r.ravel()
    for i in range(fr.size):
        fr[i] = fb[i] - fr[i]


@numba.njit(cache=True, nogil=True)
def _cg_direction(p, z, beta):
    """p = z + beta p."""
    fp, fz = p.ravel(), z.ravel()
    for i in range(fp.size):
        fp[i] = fz[i] + beta * fp[i]


@numba.njit(cache=True, nogil=True)
def pcg(x, b, r, z, p, q, gx, gy, gz, dtot, gxs, gys, gzs, dts, dinvs, xs, bs, offsets, shapes, shifts,
        coarse_cells, coarse_inverse, cscale, sweeps, rtol, maxiter, xtol, threaded, plane):
    """Conjugate gradients on the fine operator (gx, gy, gz, dtot: double precision),
    preconditioned by one V-cycle (its coefficients times 1 / ``cscale``), from x (in place) until |b - A x| <= rtol |b| (2-norms over
    the grid; cells that are not unknowns hold zeros) or, with ``xtol`` > 0, until an
    iteration moved no cell by more than xtol and by at most half the previous iteration's
    largest move (an absolute accuracy: with the error at least halved per iteration what is
    left is below the last move; the first iteration alone never stops on it, nor does a
    slow contraction, as in depleted electrolyte).  Returns
    the iteration count, or -1 when maxiter did not reach it.  r, z, p, q: work arrays
    shaped like x (the caller keeps them: fresh 17 MB arrays at 128^3 cost their page faults).

    ``threaded``, ``plane``: one True, the other None.  threaded: apply_operator and
    gauss_seidel, on Numba's threads.  plane: the phase field's 2D grids, in the calling thread
    with gauss_seidel_plane's sweeps, the same numbers bit for bit (on its 200 x 200 grid two
    threads cost 15 % more CPU per step than one).  Two arguments, not one flag: compiling a
    specialisation, Numba drops ``if a is not None`` where a is None (by its type; a True is
    not known then), so each compiles only the kernels it calls: KMC runs never compile the
    interleaved sweep (9-10 s of a first run), the phase field never the threaded kernels."""
    if threaded is not None:
        apply_operator(x, gx, gy, gz, dtot, r)
    if plane is not None:
        _apply_serial(x, gx, gy, gz, dtot, r)
    _subtract_from(b, r)
    goal = rtol * np.sqrt(_dot(b, b))
    rn = np.sqrt(_dot(r, r))
    if rn <= goal:
        return 0
    vcycle_into(gxs, gys, gzs, dts, dinvs, xs, bs, offsets, shapes, shifts, coarse_cells, coarse_inverse,
                sweeps, r, z, 1.0 / rn, rn / cscale, threaded, plane)
    # p = z (times 1.0: exact) by the flat copy loop: an array-to-array slice assignment
    # compiles its shape-mismatch error message (string formatting, 4 s of a first run)
    _scaled_copy(z.ravel(), 1.0, p.ravel())
    rz = _dot(r, z)
    last_move = 0.0  # no stop on the move in the first iteration
    for it in range(1, maxiter + 1):
        if threaded is not None:
            apply_operator(p, gx, gy, gz, dtot, q)
        if plane is not None:
            _apply_serial(p, gx, gy, gz, dtot, q)
        alpha = rz / _dot(p, q)
        move = _cg_step(x, r, p, q, alpha)
        rn = np.sqrt(_dot(r, r))
        if rn <= goal or (move <= xtol and move <= 0.5 * last_move):
            return it
        last_move = move
        vcycle_into(gxs, gys, gzs, dts, dinvs, xs, bs, offsets, shapes, shifts, coarse_cells, coarse_inverse,
                    sweeps, r, z, 1.0 / rn, rn / cscale, threaded, plane)
        rz_new = _dot(r, z)
        beta = rz_new / rz
        rz = rz_new
        _cg_direction(p, z, beta)
    return -1


# -- the phase field's 2D grids (ny = 1): the CG and V-cycle above in the calling thread, with a
# sweep that interleaves four slabs' z-recurrences (2x the plain sweep at 200^2, as fast as two
# threads of it): pcg and vcycle_into with plane True (VoxelMultigrid(plane=True)).  Only that
# specialisation compiles these: compiled into every V-cycle, the interleaved sweep's
# specialisations added 9-10 s to a first KMC run, which never calls them (`pcg`;
# docs/phasefield.md "Speed").

# Shortest column (nz) whose sweep interleaves (`_gauss_seidel_interleaved`): 1.7x at nz = 100,
# 1.1x at 64, slower below
INTERLEAVE_MIN_NZ = 64


@numba.njit(cache=True, nogil=True)
def _column_sums(x, b, gx, gy, gz, reverse, i, s, q):
    """s[q] = a 2D grid's column (i, 0) sums of every term but the one the z-recurrence adds
    (the same expressions as _gauss_seidel_slab's)."""
    nx, _, nz = x.shape
    ip = i + 1 if i + 1 < nx else 0
    im = i - 1 if i > 0 else nx - 1
    j = jp = jm = 0
    if not reverse:
        for k in range(nz):
            old = gz[i, j, k] * x[i, j, k + 1] if k + 1 < nz else 0.0
            s[q, k] = (b[i, j, k] + gx[i, j, k] * x[ip, j, k] + gx[im, j, k] * x[im, j, k]
                       + gy[i, j, k] * x[i, jp, k] + gy[i, jm, k] * x[i, jm, k] + old)
    else:
        s[q, 0] = (b[i, j, 0] + gx[i, j, 0] * x[ip, j, 0] + gx[im, j, 0] * x[im, j, 0]
                   + gy[i, j, 0] * x[i, jp, 0] + gy[i, jm, 0] * x[i, jm, 0])
        for k in range(1, nz):
            s[q, k] = (b[i, j, k] + gx[i, j, k] * x[ip, j, k] + gx[im, j, k] * x[im, j, k]
                       + gy[i, j, k] * x[i, jp, k] + gy[i, jm, k] * x[i, jm, k]
                       + gz[i, j, k - 1] * x[i, j, k - 1])


@numba.njit(cache=True, nogil=True)
def _four_columns(x, b, gx, gy, gz, dinv, reverse, i0, i1, i2, i3, s):
    """The columns (i0..i3, 0) of a 2D grid, one from each slab of a colour (they share no
    face), swept with their z-recurrences interleaved: four independent chains keep the core
    busy where one waits on each multiply-add."""
    nz = x.shape[2]
    _column_sums(x, b, gx, gy, gz, reverse, i0, s, 0)
    _column_sums(x, b, gx, gy, gz, reverse, i1, s, 1)
    _column_sums(x, b, gx, gy, gz, reverse, i2, s, 2)
    _column_sums(x, b, gx, gy, gz, reverse, i3, s, 3)
    c0 = c1 = c2 = c3 = 0.0
    if not reverse:
        for k in range(nz):
            v0 = (s[0, k] + c0) * dinv[i0, 0, k]
            v1 = (s[1, k] + c1) * dinv[i1, 0, k]
            v2 = (s[2, k] + c2) * dinv[i2, 0, k]
            v3 = (s[3, k] + c3) * dinv[i3, 0, k]
            x[i0, 0, k] = v0
            x[i1, 0, k] = v1
            x[i2, 0, k] = v2
            x[i3, 0, k] = v3
            c0 = gz[i0, 0, k] * v0
            c1 = gz[i1, 0, k] * v1
            c2 = gz[i2, 0, k] * v2
            c3 = gz[i3, 0, k] * v3
    else:
        for k in range(nz - 1, 0, -1):
            v0 = (s[0, k] + c0) * dinv[i0, 0, k]
            v1 = (s[1, k] + c1) * dinv[i1, 0, k]
            v2 = (s[2, k] + c2) * dinv[i2, 0, k]
            v3 = (s[3, k] + c3) * dinv[i3, 0, k]
            x[i0, 0, k] = v0
            x[i1, 0, k] = v1
            x[i2, 0, k] = v2
            x[i3, 0, k] = v3
            c0 = gz[i0, 0, k - 1] * v0
            c1 = gz[i1, 0, k - 1] * v1
            c2 = gz[i2, 0, k - 1] * v2
            c3 = gz[i3, 0, k - 1] * v3
        x[i0, 0, 0] = (s[0, 0] + c0) * dinv[i0, 0, 0]
        x[i1, 0, 0] = (s[1, 0] + c1) * dinv[i1, 0, 0]
        x[i2, 0, 0] = (s[2, 0] + c2) * dinv[i2, 0, 0]
        x[i3, 0, 0] = (s[3, 0] + c3) * dinv[i3, 0, 0]


@numba.njit(cache=True, nogil=True)
def _gauss_seidel_interleaved(x, b, gx, gy, gz, dinv, reverse):
    """gauss_seidel on a 2D grid (ny = 1) of 8 slabs: each colour's four slabs plane by plane
    in step, the four columns' recurrences interleaved (`_four_columns`); a slab's planes left
    over (slabs differ by one plane) after, in its order.  Each slab sees the order the plain
    sweep gives it, so the numbers are gauss_seidel's bit for bit."""
    nx, _, nz = x.shape
    ns = 8
    s = np.empty((4, nz))  # double sums, as _gauss_seidel_slab's
    lo = np.empty(4, np.int64)
    ln = np.empty(4, np.int64)
    for colour in range(2):
        first = 1 - colour if reverse else colour
        for h in range(4):
            sl = first + 2 * h
            lo[h] = sl * nx // ns
            ln[h] = (sl + 1) * nx // ns - lo[h]
        m = ln.min()
        for ii in range(m):
            if reverse:
                _four_columns(x, b, gx, gy, gz, dinv, True, lo[0] + ln[0] - 1 - ii, lo[1] + ln[1] - 1 - ii,
                              lo[2] + ln[2] - 1 - ii, lo[3] + ln[3] - 1 - ii, s)
            else:
                _four_columns(x, b, gx, gy, gz, dinv, False, lo[0] + ii, lo[1] + ii, lo[2] + ii, lo[3] + ii, s)
        for h in range(4):
            if ln[h] > m:
                if reverse:
                    _gauss_seidel_slab(x, b, gx, gy, gz, dinv, True, lo[h], lo[h] + ln[h] - m)
                else:
                    _gauss_seidel_slab(x, b, gx, gy, gz, dinv, False, lo[h] + m, lo[h] + ln[h])


@numba.njit(cache=True, nogil=True)
def gauss_seidel_plane(x, b, gx, gy, gz, dinv, reverse):
    """gauss_seidel in the calling thread (the same order, so the same numbers); a 2D grid
    (ny = 1) of 8 slabs with columns of at least INTERLEAVE_MIN_NZ cells runs a colour's four
    slabs with their recurrences interleaved (`_gauss_seidel_interleaved`)."""
    nx, ny, nz = x.shape
    ns = 2 * min(GS_SLABS // 2, nx // 2) if nx > 1 else 1
    if ny == 1 and ns == 8 and nz >= INTERLEAVE_MIN_NZ:
        _gauss_seidel_interleaved(x, b, gx, gy, gz, dinv, reverse)
        return
    for colour in range(2 if ns > 1 else 1):
        first = 1 - colour if reverse and ns > 1 else colour
        for h in range((ns - first + 1) // 2):
            sl = first + 2 * h
            _gauss_seidel_slab(x, b, gx, gy, gz, dinv, reverse, sl * nx // ns, (sl + 1) * nx // ns)


@numba.njit(cache=True, nogil=True)
def _apply_serial(x, gx, gy, gz, dtot, out):
    """apply_operator in the calling thread."""
    for i in range(x.shape[0]):
        _apply_plane(x, gx, gy, gz, dtot, out, i)


# -- a hierarchy's set-up and solve glue (`multigrid.VoxelMultigrid`): the index passes numpy
# makes through its fancy indexing, compiled (a tenth of the time per pass at 200^2), the same
# numbers

@numba.njit(cache=True, nogil=True)
def scatter(values, index, out):
    """out[index[i]] = values[i] (flat arrays)."""
    for i in range(index.size):
        out[index[i]] = values[i]


@numba.njit(cache=True, nogil=True)
def gather(src, index):
    """src[index] (a new array)."""
    out = np.empty(index.size)
    for i in range(index.size):
        out[i] = src[index[i]]
    return out


@numba.njit(cache=True, nogil=True)
def scatter_add(values, index, out):
    """out[index[i]] += values[i] in order (numpy's ``np.add.at``, the same sums)."""
    for i in range(index.size):
        out[index[i]] += values[i]


@numba.njit(cache=True, nogil=True)
def coarsest_operator(gx, gy, gz, dtot):
    """The coarsest level as a dense matrix over its unknown cells (dtot > 0, in flat order)
    and those cells' flat indices: the entries `multigrid._Level.matrix` assembles (a link of
    positive conductance between two unknowns, to the next cell along each axis, periodic),
    without the sparse matrix (its assembly was most of a hierarchy's coarsest set-up)."""
    nx, ny, nz = dtot.shape
    flat = dtot.ravel()
    pos = np.full(flat.size, -1, np.int64)
    m = 0
    for c in range(flat.size):
        if flat[c] > 0.0:
            pos[c] = m
            m += 1
    cells = np.empty(m, np.int64)
    A = np.zeros((m, m))
    for c in range(flat.size):
        if pos[c] >= 0:
            cells[pos[c]] = c
            A[pos[c], pos[c]] = flat[c]
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                a = pos[(i * ny + j) * nz + k]
                if a < 0:
                    continue
                for axis in range(3):
                    if axis == 0:
                        w, nb = gx[i, j, k], (((i + 1) % nx) * ny + j) * nz + k
                    elif axis == 1:
                        w, nb = gy[i, j, k], (i * ny + (j + 1) % ny) * nz + k
                    else:
                        w, nb = gz[i, j, k], (i * ny + j) * nz + (k + 1) % nz
                    if w > 0.0 and pos[nb] >= 0:
                        A[a, pos[nb]] -= w
                        A[pos[nb], a] -= w
    return cells, A


@numba.njit(cache=True, nogil=True)
def top_diagonal(top, voxel, nz, dtop):
    """dtop.ravel()[voxel[i] // nz] += top[i] where top[i] != 0 (each top-layer unknown is one
    column of dtop); False when a nonzero ``top`` is on an unknown outside the top layer."""
    for i in range(top.size):
        t = top[i]
        if t != 0.0:
            v = voxel[i]
            if v % nz != nz - 1:
                return False
            dtop[v // nz] += t
    return True
