"""Numba kernels of the voxel-grid multigrid (continuum.multigrid owns the arrays).

A level is a cell-centred grid [x, y, z], periodic in x and y, with face conductances
``gx[i, j, k]`` between (i, j, k) and (i+1 mod nx, j, k) (likewise ``gy``; ``gz`` between k and
k+1, zero on the top layer), a diagonal term ``d`` (links to fixed potentials, storage), a
Dirichlet conductance ``dtop[i, j]`` above the top layer, and ``dtot``, the operator's
diagonal.  ``dtot == 0`` marks a cell that is not an unknown.

The 7-point stencil is written out in each sweep on purpose: a shared helper, even with
``inline="always"``, made the Gauss-Seidel sweep 2x slower at 128^3.
"""
from __future__ import annotations

import numba


@numba.njit(cache=True)
def operator_diagonal(gx, gy, gz, d, dtop, dtot):
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


@numba.njit(cache=True)
def gauss_seidel(x, b, gx, gy, gz, dtot, reverse):
    """One lexicographic Gauss-Seidel sweep in place (backward when ``reverse``: a forward
    pre-sweep and a backward post-sweep make the V-cycle symmetric, as CG needs)."""
    nx, ny, nz = x.shape
    for ii in range(nx):
        i = nx - 1 - ii if reverse else ii
        ip = i + 1 if i + 1 < nx else 0
        im = i - 1 if i > 0 else nx - 1
        for jj in range(ny):
            j = ny - 1 - jj if reverse else jj
            jp = j + 1 if j + 1 < ny else 0
            jm = j - 1 if j > 0 else ny - 1
            for kk in range(nz):
                k = nz - 1 - kk if reverse else kk
                dd = dtot[i, j, k]
                if dd == 0.0:
                    continue
                s = (b[i, j, k] + gx[i, j, k] * x[ip, j, k] + gx[im, j, k] * x[im, j, k]
                     + gy[i, j, k] * x[i, jp, k] + gy[i, jm, k] * x[i, jm, k])
                if k + 1 < nz:
                    s += gz[i, j, k] * x[i, j, k + 1]
                if k > 0:
                    s += gz[i, j, k - 1] * x[i, j, k - 1]
                x[i, j, k] = s / dd


@numba.njit(cache=True)
def restrict_residual(x, b, gx, gy, gz, dtot, fx, fy, fz, rc):
    """rc = sum over each coarse cell's children of the residual b - A x."""
    nx, ny, nz = x.shape
    rc[:] = 0.0
    for i in range(nx):
        ip = i + 1 if i + 1 < nx else 0
        im = i - 1 if i > 0 else nx - 1
        for j in range(ny):
            jp = j + 1 if j + 1 < ny else 0
            jm = j - 1 if j > 0 else ny - 1
            for k in range(nz):
                dd = dtot[i, j, k]
                if dd == 0.0:
                    continue
                s = (b[i, j, k] - dd * x[i, j, k] + gx[i, j, k] * x[ip, j, k] + gx[im, j, k] * x[im, j, k]
                     + gy[i, j, k] * x[i, jp, k] + gy[i, jm, k] * x[i, jm, k])
                if k + 1 < nz:
                    s += gz[i, j, k] * x[i, j, k + 1]
                if k > 0:
                    s += gz[i, j, k - 1] * x[i, j, k - 1]
                rc[i // fx, j // fy, k // fz] += s


@numba.njit(cache=True)
def prolong_add(x, ec, dtot, fx, fy, fz):
    """x += the coarse correction, constant over each coarse cell's children."""
    nx, ny, nz = x.shape
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                if dtot[i, j, k] != 0.0:
                    x[i, j, k] += ec[i // fx, j // fy, k // fz]


@numba.njit(cache=True)
def sum_children(a, fx, fy, fz, out):
    out[:] = 0.0
    nx, ny, nz = a.shape
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                out[i // fx, j // fy, k // fz] += a[i, j, k]


@numba.njit(cache=True)
def coarse_faces(g, f0, f1, f2, periodic, out):
    """Coarse conductances of the faces normal to axis 0 (callers pass transposed views).

    Each fine face crossing a coarse face is one row of the coarse link: half of the interior
    link of the coarse cell on either side (conductance 2 g: half the length), the crossing
    face, in series.  A wall inside a coarse cell then blocks its rows, and a coarse face
    costs what the fine path costs, not 2x as Galerkin aggregation would.  A missing interior
    link (its fine voxel is not an unknown) takes the crossing face's conductance, so fine
    cells connected through a face stay connected on the coarse grid.
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
                                r += 0.5 / (a if a > 0.0 else b)
                            if hi2 > lo2:
                                c = g[lo2, j, k]
                                r += 0.5 / (c if c > 0.0 else b)
                            s += 1.0 / r
                out[ic, jc, kc] = s


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def apply_operator(x, gx, gy, gz, dtot, out):
    """out = A x."""
    nx, ny, nz = x.shape
    for i in range(nx):
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
