"""Compiled kernels of the phase-field stepping: the reaction term, the Allen-Cahn force, the xi
residual of an iterate (both, with the active voxels, in one call), the transport operator's
links and the Jacobi-preconditioned CG of the xi solves.  Each is one pass (or one call)
where the numpy versions made a dozen temporaries per evaluation; the formulas are the
solver's (see `solver._reaction`, `solver._allen_cahn`), which documents them.  They release
the GIL (``nogil``): the solver runs phi's solve beside c's on a second thread (`solver._overlap`)."""
from __future__ import annotations

import math

import numba
import numpy as np

from ..kinetics import _MAX_EXPONENT as MAX_EXP  # the clip of exp() arguments, continuum.kinetics'
from ..mg_kernels import gather, partial_dot  # noqa: F401 (gather: numerics' and the solver's glue)


@numba.njit(cache=True, inline="always")
def _branches(x, cc, eta, alpha_a_f, alpha_c_f, c0):
    """The pieces of one voxel's reaction: theta = xi clipped to [0, 1], theta (1 - theta),
    h'(theta), exp(alpha_a f eta), exp(-alpha_c f eta) (exponents clipped), sqrt(c^2 + e^2) and
    c+/c0 (the smooth positive part, e = 1e-3 c0)."""
    e = 1e-3 * c0
    t = min(max(x, 0.0), 1.0)  # theta, and xi clipped for h and its derivatives
    u = alpha_a_f * eta
    ea = math.exp(min(max(u, -MAX_EXP), MAX_EXP))
    v = -alpha_c_f * eta
    ec = math.exp(min(max(v, -MAX_EXP), MAX_EXP))
    root = math.sqrt(cc * cc + e * e)
    cp = 0.5 * (cc + root) / c0
    y = t * (1.0 - t)
    return t, y, 30.0 * y * y, ea, ec, root, cp


@numba.njit(cache=True, inline="always")
def _reaction_at(x, cc, eta, face, cathodic, anodic, front_c, front_a, L, alpha_a_f, alpha_c_f, c0, want):
    """R, dR/dxi and B = -dR/dc of one voxel (`solver._reaction`: ``cathodic``, ``anodic`` the
    wetting layer's site factors, ``front_c``, ``front_a`` the front's exp(-+alpha f s_f)); ``want``
    False: R only (the other two 0)."""
    t, y, dhx, ea, ec, root, cp = _branches(x, cc, eta, alpha_a_f, alpha_c_f, c0)
    hx = t * t * t * ((6.0 * t - 15.0) * t + 10.0)
    bare = face * (1.0 - hx)
    mec = cathodic * ec
    film = t * anodic * ea - (1.0 - t) * mec * cp
    drive = front_a * ea - cp * front_c * ec
    r = L * (dhx * drive + bare * film)
    dr = 0.0
    bb = 0.0
    if want:
        d2 = 60.0 * y * (1.0 - 2.0 * t)
        extra = bare * (anodic * ea + mec * cp) if (x > 0.0 and x < 1.0) else 0.0
        dr = L * (d2 * drive - face * dhx * film + extra)
        bb = L * (dhx * front_c * ec + bare * (1.0 - t) * mec) * 0.5 * (1.0 + cc / root) / c0
    return r, dr, bb


@numba.njit(cache=True, nogil=True)
def front_event_rate(xi, c, eta, front_cathodic, front_anodic, L, alpha_a_f, alpha_c_f, c0):
    """Per free voxel the front's two branches summed, L_eta h'(xi) [exp(alpha_a f (eta + s_f))
    + (c+/c0) exp(-alpha_c f (eta + s_f))] [1/s]: the gross rate of the events whose net is the
    first line of `solver._reaction` (``eta`` on the free voxels)."""
    out = np.empty(xi.size)
    for i in range(xi.size):
        _, _, dhx, ea, ec, _, cp = _branches(xi[i], c[i], eta[i], alpha_a_f, alpha_c_f, c0)
        out[i] = L * dhx * (front_anodic[i] * ea + cp * front_cathodic[i] * ec)
    return out


@numba.njit(cache=True, nogil=True)
def reaction(xi, c, eta, act, face_weight, cathodic_factor, anodic_factor, front_cathodic, front_anodic, L, alpha_a_f,
             alpha_c_f, c0, want):
    """R, dR/dxi and B = -dR/dc on the voxels ``act`` (`solver._reaction`); ``want`` 0: R only
    (the other two left empty), 1: all three."""
    m = act.size
    R = np.empty(m)
    dR = np.empty(m if want else 0)
    B = np.empty(m if want else 0)
    for j in range(m):
        i = act[j]
        r, dr, bb = _reaction_at(xi[i], c[i], eta[j], face_weight[i], cathodic_factor[i], anodic_factor[i],
                                 front_cathodic[i], front_anodic[i], L, alpha_a_f, alpha_c_f, c0, want != 0)
        R[j] = r
        if want:
            dR[j] = dr
            B[j] = bb
    return R, dR, B


@numba.njit(cache=True, nogil=True)
def allen_cahn(xi, a, b, k, well, exempt, wall, n_host):
    """-L_sigma (g'(xi) - kappa lap xi + wall) on the free voxels (`solver._allen_cahn`): ``k``
    the link conductance L_sigma kappa / h^2, ``well`` 2 L_sigma W, ``wall`` L_sigma 6 gamma_w
    / h (0: none)."""
    n = xi.size
    out = np.zeros(n)
    for j in range(a.size):
        p, q = a[j], b[j]
        f = k * (xi[p] - xi[q])
        out[q] += f
        out[p] -= f
    for i in range(n):
        x = xi[i]
        if exempt[i]:
            out[i] = 0.0
        else:
            out[i] -= well * x * (1.0 - x) * (1.0 - 2.0 * x)
        if wall != 0.0:
            out[i] += wall * n_host[i] * x * (1.0 - x)
    return out


@numba.njit(cache=True, nogil=True)
def order_parameter_residual(xi, dxi, hist, dt, c_start, dc, eta0, psi, dV, contact, a, b, k, well, wall, n_host,
                             face_weight, cathodic_factor, anodic_factor, front_cathodic, front_anodic, L, alpha_a_f,
                             alpha_c_f, c0):
    """The xi residual of an iterate in one call (`solver._residuals`): x = xi + dxi, the active
    voxels ak (h'(x) > 1e-14 or a host contact, `solver._active`), G = (dxi - hist)/dt -
    F_ac(x) + R on ak, and R, B = -dR/dc on ak at c = c_start + dc and eta0 + dV psi."""
    n = xi.size
    x = np.empty(n)
    for i in range(n):
        x[i] = xi[i] + dxi[i]
    G = allen_cahn(x, a, b, k, well, contact, wall, n_host)
    ak = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        G[i] = (dxi[i] - hist[i]) / dt - G[i]
        t = min(max(x[i], 0.0), 1.0)
        y = t * (1.0 - t)
        if 30.0 * y * y > 1e-14 or contact[i]:
            ak[m] = i
            m += 1
    ak = ak[:m]
    R = np.empty(m)
    B = np.empty(m)
    for j in range(m):
        i = ak[j]
        r, _, bb = _reaction_at(x[i], c_start[i] + dc[i], eta0[i] + dV * psi[i], face_weight[i], cathodic_factor[i],
                                anodic_factor[i], front_cathodic[i], front_anodic[i], L, alpha_a_f, alpha_c_f, c0,
                                True)
        R[j] = r
        B[j] = bb
        G[i] += r
    return G, R, B, ak, x


@numba.njit(cache=True, nogil=True)
def _scharfetter_gummel(x):
    """(B(x), B(-x), (x/2)/sinh(x/2)), B(x) = x / (exp(x) - 1) (`numerics.bernoulli`), from one
    expm1: with e = exp(|x|) - 1, B(|x|) = |x|/e, B(-|x|) = |x| (e + 1)/e and (x/2)/sinh(x/2) =
    |x| sqrt(e + 1)/e, no cancellation at any x (|x| clipped at 700)."""
    ax = min(abs(x), 700.0)
    if ax < 1e-8:
        return 1.0 - 0.5 * x, 1.0 + 0.5 * x, 1.0
    e = math.expm1(ax)
    lo = ax / e
    hi = ax * (e + 1.0) / e
    sym = ax * math.sqrt(e + 1.0) / e
    if x > 0.0:
        return lo, hi, sym
    return hi, lo, sym


@numba.njit(cache=True, nogil=True)
def transport_links(a, b, xi, phi, c, half, inv_dt, d_solid, d_liquid, h2, f):
    """The implicit-Euler transport operator of c (`solver._transport`): per link the
    Scharfetter-Gummel weights Bab (a -> b) and the symmetric conductance Ghat = k (x/2) /
    sinh(x/2); per voxel the link-flux divergence at ``c`` and the scaled matrix's diagonal
    without its links (1/dt + sum (B - Ghat)).

    ``half``: exp(f (phi - phi_mid) / 2) per voxel (the symmetric scaling `_Transport.s`), or
    an empty array where its exponent was clipped.  A link's r = exp(x/2) = half_q / half_p
    gives B(x) = x / (r^2 - 1), B(-x) = r^2 B(x), (x/2)/sinh(x/2) = r B(x): a division per link
    instead of an expm1, a square root and three divisions (`_scharfetter_gummel`, kept for
    |x| >= 50 and without ``half``), 1.4x faster at 200^2; relative error at most 1e-12 for
    |x| >= 1e-3, below that the series to x^4 (truncation 3e-23).  B(-x)/B(x) = r^2 is a ratio
    of per-voxel values, so c ~ exp(-f phi) is an equilibrium to round-off."""
    n = xi.size
    m = a.size
    Bab = np.empty(m)
    Ghat = np.empty(m)
    res = np.zeros(n)
    diag = np.full(n, inv_dt)
    ratio = half.size == n
    inv_h2 = 1.0 / h2
    for j in range(m):
        p, q = a[j], b[j]
        t = min(max(0.5 * (xi[p] + xi[q]), 0.0), 1.0)
        hf = t * t * t * ((6.0 * t - 15.0) * t + 10.0)
        k = (d_solid * hf + d_liquid * (1.0 - hf)) * inv_h2
        x = f * (phi[q] - phi[p])
        ax = abs(x)
        if ax < 1e-3:
            x2 = x * x
            even = 1.0 + x2 * (1.0 / 12.0 - x2 * (1.0 / 720.0))
            bp, bm, bs = even - 0.5 * x, even + 0.5 * x, 1.0 - x2 * (1.0 / 24.0 - x2 * (7.0 / 5760.0))
        elif ratio and ax < 50.0:
            r = half[q] / half[p]
            e = r * r
            bp = x / (e - 1.0)
            bm = bp * e
            bs = bp * r
        else:
            bp, bm, bs = _scharfetter_gummel(x)
        bab = k * bp
        bba = k * bm
        gh = k * bs
        Bab[j] = bab
        Ghat[j] = gh
        flux = bab * c[p] - bba * c[q]
        res[q] += flux
        res[p] -= flux
        diag[p] += bab - gh
        diag[q] += bba - gh
    return Bab, Ghat, res, diag


@numba.njit(cache=True, nogil=True)
def link_diagonal(a, b, G, extra):
    """Diagonal of ``sum_links G (e_p - e_q)(e_p - e_q)^T + diag(extra)``."""
    out = extra.copy()
    for j in range(a.size):
        out[a[j]] += G[j]
        out[b[j]] += G[j]
    return out


@numba.njit(cache=True, nogil=True)
def link_apply(a, b, G, dtot, v, out):
    """out = A v for A with off-diagonals -G on the links and diagonal ``dtot``."""
    for i in range(v.size):
        out[i] = dtot[i] * v[i]
    for j in range(a.size):
        p, q = a[j], b[j]
        out[p] -= G[j] * v[q]
        out[q] -= G[j] * v[p]


@numba.njit(cache=True, nogil=True)
def jacobi_cg(a, b, G, dtot, rhs, x, rtol, maxiter):
    """CG with the Jacobi preconditioner on the SPD link matrix (off-diagonals -G, diagonal
    ``dtot``) from ``x`` (overwritten): stops at |rhs - A x| <= rtol |rhs|.  Returns the
    iterations, -1 when ``maxiter`` was not enough.  Four passes per iteration (the diagonal
    part of A p is taken with the update of p, the updates of x, r and z share one)."""
    n = rhs.size
    r = np.empty(n)
    link_apply(a, b, G, dtot, x, r)
    bn = 0.0
    rn = 0.0
    for i in range(n):
        r[i] = rhs[i] - r[i]
        bn += rhs[i] * rhs[i]
        rn += r[i] * r[i]
    goal = rtol * math.sqrt(bn)
    if math.sqrt(rn) <= goal:
        return 0
    z = np.empty(n)
    pdir = np.empty(n)
    ap = np.empty(n)
    rz = 0.0
    for i in range(n):
        z[i] = r[i] / dtot[i]
        rz += r[i] * z[i]
        pdir[i] = z[i]
        ap[i] = dtot[i] * z[i]
    for it in range(1, maxiter + 1):
        for j in range(a.size):
            p, q = a[j], b[j]
            ap[p] -= G[j] * pdir[q]
            ap[q] -= G[j] * pdir[p]
        pap = 0.0
        for i in range(n):
            pap += pdir[i] * ap[i]
        alpha = rz / pap
        rn = 0.0
        rz_new = 0.0
        for i in range(n):
            x[i] += alpha * pdir[i]
            r[i] -= alpha * ap[i]
            rn += r[i] * r[i]
            z[i] = r[i] / dtot[i]
            rz_new += r[i] * z[i]
        if math.sqrt(rn) <= goal:
            return it
        beta = rz_new / rz
        rz = rz_new
        for i in range(n):
            pdir[i] = z[i] + beta * pdir[i]
            ap[i] = dtot[i] * pdir[i]
    return -1


# -- the same operator on the voxel grid (`numerics.LinkGrid`): a stencil of face conductances
# instead of a loop of scattered adds over links, 2-3x faster at 200^2; every cell subtracts its
# links in the link list's order (by axis, then low voxel: -x before +x except on the periodic
# wrap), so the product is `link_apply`'s to the bit

@numba.njit(cache=True, inline="always")
def _grid_cell(dd, vv, xa, fa, xb, fb, ya, ga, yb, gb, gz, k, nz, along_x, along_y):
    """(A v) of cell k of a row (`_grid_row`'s views)."""
    s = dd[k] * vv[k]
    if along_x:
        s -= fa[k] * xa[k]
        s -= fb[k] * xb[k]
    if along_y:
        s -= ga[k] * ya[k]
        s -= gb[k] * yb[k]
    if k > 0:
        s -= gz[k - 1] * vv[k - 1]
    if k + 1 < nz:
        s -= gz[k] * vv[k + 1]
    return s


@numba.njit(cache=True, inline="always")
def _grid_row(gx, gy, gz, dtot, v, out, i, j, nx, ny, nz):
    """out = A v on the cells (i, j, :) (flat C-order arrays; gx, gy, gz the +x, +y, +z
    faces).  On row views (a flat index base + k would cost numba's negative-index check per
    access and the loop's vectorisation: 5x slower)."""
    syz = ny * nz
    base = i * syz + j * nz
    # the periodic wrap: at i = 0 the +x link (0, 1) precedes (nx - 1, 0) in the list
    up, down = ((i + 1) % nx) * syz + j * nz, ((i - 1) % nx) * syz + j * nz
    xa, fa, xb, fb = (up, base, down, down) if i == 0 else (down, down, up, base)
    up, down = i * syz + ((j + 1) % ny) * nz, i * syz + ((j - 1) % ny) * nz
    ya, ga, yb, gb = (up, base, down, down) if j == 0 else (down, down, up, base)
    row = slice(base, base + nz)
    vv, dd, gzr, oo = v[row], dtot[row], gz[row], out[row]
    vxa, gxa, vxb, gxb = v[xa:xa + nz], gx[fa:fa + nz], v[xb:xb + nz], gx[fb:fb + nz]
    vya, gya, vyb, gyb = v[ya:ya + nz], gy[ga:ga + nz], v[yb:yb + nz], gy[gb:gb + nz]
    along_x, along_y = nx > 1, ny > 1
    oo[0] = _grid_cell(dd, vv, vxa, gxa, vxb, gxb, vya, gya, vyb, gyb, gzr, 0, nz, along_x, along_y)
    # no z boundary inside: loops without branches (one per set of axes)
    if along_x and along_y:
        for k in range(1, nz - 1):
            oo[k] = (dd[k] * vv[k] - gxa[k] * vxa[k] - gxb[k] * vxb[k] - gya[k] * vya[k] - gyb[k] * vyb[k]
                     - gzr[k - 1] * vv[k - 1] - gzr[k] * vv[k + 1])
    elif along_x:
        for k in range(1, nz - 1):
            oo[k] = dd[k] * vv[k] - gxa[k] * vxa[k] - gxb[k] * vxb[k] - gzr[k - 1] * vv[k - 1] - gzr[k] * vv[k + 1]
    elif along_y:
        for k in range(1, nz - 1):
            oo[k] = dd[k] * vv[k] - gya[k] * vya[k] - gyb[k] * vyb[k] - gzr[k - 1] * vv[k - 1] - gzr[k] * vv[k + 1]
    else:
        for k in range(1, nz - 1):
            oo[k] = dd[k] * vv[k] - gzr[k - 1] * vv[k - 1] - gzr[k] * vv[k + 1]
    if nz > 1:
        oo[nz - 1] = _grid_cell(dd, vv, vxa, gxa, vxb, gxb, vya, gya, vyb, gyb, gzr, nz - 1, nz, along_x, along_y)


@numba.njit(cache=True, nogil=True)
def grid_apply(gx, gy, gz, dtot, v, out, nx, ny, nz):
    """out = A v on the grid (flat): off-diagonals -g on the faces, diagonal ``dtot``."""
    for i in range(nx):
        for j in range(ny):
            _grid_row(gx, gy, gz, dtot, v, out, i, j, nx, ny, nz)


@numba.njit(cache=True, nogil=True)
def _grid_dot(a, b):
    """Sum of a * b (flat arrays) by four interleaved partial sums."""
    return partial_dot(a, b, 0, a.size)


@numba.njit(cache=True, nogil=True)
def layer_squares(b, nx, ny, nz):
    """Per layer z of a grid (flat C-order b), the sum and the largest of b^2: rows 0 and 1."""
    out = np.zeros((2, nz))
    for i in range(nx):
        for j in range(ny):
            row = b[(i * ny + j) * nz:(i * ny + j + 1) * nz]
            for k in range(nz):
                q = row[k] * row[k]
                out[0, k] += q
                out[1, k] = max(out[1, k], q)
    return out


@numba.njit(cache=True, nogil=True)
def grid_jacobi_cg(gx, gy, gz, dtot, dinv, rhs, x, r, z, pdir, ap, nx, ny, nz, rtol, maxiter):
    """`jacobi_cg` on the grid (``dinv`` = 1 / dtot): cells that are no unknown carry dtot = 1,
    rhs = x = 0 and no face, so they stay 0.  ``r``, ``z``, ``pdir``, ``ap``: work arrays of the
    grid's size.  The dot products by four partial sums (`_grid_dot`), z by the inverse
    diagonal: not `jacobi_cg`'s rounding."""
    n = rhs.size
    grid_apply(gx, gy, gz, dtot, x, r, nx, ny, nz)
    for i in range(n):
        r[i] = rhs[i] - r[i]
    goal = rtol * math.sqrt(_grid_dot(rhs, rhs))
    if math.sqrt(_grid_dot(r, r)) <= goal:
        return 0
    for i in range(n):
        z[i] = r[i] * dinv[i]
        pdir[i] = z[i]
    rz = _grid_dot(r, z)
    for it in range(1, maxiter + 1):
        grid_apply(gx, gy, gz, dtot, pdir, ap, nx, ny, nz)
        alpha = rz / _grid_dot(pdir, ap)
        for i in range(n):
            x[i] += alpha * pdir[i]
            r[i] -= alpha * ap[i]
            z[i] = r[i] * dinv[i]
        if math.sqrt(_grid_dot(r, r)) <= goal:
            return it
        rz_new = _grid_dot(r, z)
        beta = rz_new / rz
        rz = rz_new
        for i in range(n):
            pdir[i] = z[i] + beta * pdir[i]
    return -1


@numba.njit(cache=True, nogil=True)
def _anderson_half(x, r, image, resid, dXn, dRn, dR, old, have_last, row, rhs):
    """`anderson_differences` on one half (views from its first element)."""
    n = x.size
    if not have_last:
        for i in range(n):
            image[i] = x[i] + r[i]
            resid[i] = r[i]
        return
    s_nn = 0.0
    s_nr = 0.0
    for i in range(n):
        im = x[i] + r[i]
        dr = r[i] - resid[i]
        dXn[i] = im - image[i]
        dRn[i] = dr
        s_nn += dr * dr
        s_nr += dr * r[i]
        image[i] = im
        resid[i] = r[i]
    for k in range(old.size):  # the older differences' products (one pass each)
        u = dR[old[k]]
        a = 0.0
        b = 0.0
        for i in range(n):
            a += u[i] * dRn[i]
            b += u[i] * r[i]
        row[k] += a
        rhs[k] += b
    row[old.size] += s_nn
    rhs[old.size] += s_nr


@numba.njit(cache=True, nogil=True)
def anderson_differences(x1, x2, r1, r2, image, resid, dX, dR, new, old, have_last):
    """One pass of `numerics.Anderson.next` over the iterate x = (x1, x2) and residual r = (r1,
    r2) (halves: no concatenation): image = x + r; with ``have_last`` the differences to the
    last image and residual into slot ``new`` of dX, dR; image and resid overwritten.  Returns
    the dot products of dR's slot ``new`` with the slots ``old`` and itself (the Gram matrix's
    new row) and of r with the slots ``old`` and ``new`` (each half summed on its own)."""
    m = old.size
    row = np.zeros(m + 1)
    rhs = np.zeros(m + 1)
    n1 = x1.size
    _anderson_half(x1, r1, image[:n1], resid[:n1], dX[new, :n1], dR[new, :n1], dR[:, :n1], old, have_last, row, rhs)
    _anderson_half(x2, r2, image[n1:], resid[n1:], dX[new, n1:], dR[new, n1:], dR[:, n1:], old, have_last, row, rhs)
    return row, rhs


@numba.njit(cache=True, nogil=True)
def anderson_combine(image, dX, slots, gamma):
    """image - sum_k gamma_k dX[slots[k]] (a new array)."""
    out = image.copy()
    for k in range(slots.size):
        g = gamma[k]
        d = dX[slots[k]]
        for i in range(out.size):
            out[i] -= g * d[i]
    return out


@numba.njit(cache=True, nogil=True)
def concentration_residual(a, b, G, total, s, dc, r0, dxi, cs, dt):
    """H = M dc - r0 + c_s dxi / dt (`solver._residuals`) with M = diag(1/s) A diag(s), A the
    link matrix (off-diagonals -G, diagonal ``total``): one call instead of seven temporaries,
    the same numbers."""
    n = dc.size
    v = np.empty(n)
    for i in range(n):
        v[i] = s[i] * dc[i]
    out = np.empty(n)
    link_apply(a, b, G, total, v, out)
    for i in range(n):
        out[i] = (out[i] / s[i] - r0[i]) + cs * dxi[i] / dt
    return out


@numba.njit(cache=True, nogil=True)
def largest_abs(v):
    """max |v| (0 for an empty v; NaN if any is, as numpy's)."""
    m = 0.0
    for i in range(v.size):
        a = abs(v[i])
        if a > m:
            m = a
        elif a != a:
            return a
    return m


@numba.njit(cache=True, nogil=True)
def potential_links(a, b, x, sigma_s, sigma_l, h2):
    """phi's link conductances (sigma_s h + sigma_l (1 - h)) / h^2 at h of the links' mean order
    parameter (``x`` on phi's unknowns, 1 on the conductive host; `solver._potential_system`):
    one pass, the numpy expression's numbers."""
    m = a.size
    G = np.empty(m)
    for j in range(m):
        t = min(max(0.5 * (x[a[j]] + x[b[j]]), 0.0), 1.0)
        hf = t * t * t * ((6.0 * t - 15.0) * t + 10.0)
        G[j] = (sigma_s * hf + sigma_l * (1.0 - hf)) / h2
    return G


@numba.njit(cache=True, nogil=True)
def potential_residual(a, b, G, phi, res):
    """res += the link currents' divergence at ``phi`` (into b, out of a; each end's sum in link
    order, as numpy's bincount sums: the same numbers)."""
    n = res.size
    out_a = np.zeros(n)
    in_b = np.zeros(n)
    for j in range(a.size):
        p, q = a[j], b[j]
        flux = G[j] * (phi[p] - phi[q])
        out_a[p] += flux
        in_b[q] += flux
    for i in range(n):
        res[i] = (res[i] - out_a[i]) + in_b[i]


# -- the (xi, c) iterations' glue (`solver._coupled_step`): the numpy expressions each
# iteration made (fancy-indexed temporaries), one pass each; every entry is computed with the
# numpy expression's operations in its order, so the numbers are the same to the bit

@numba.njit(cache=True, nogil=True)
def schur_setup(Jd, dt, cs, act, B0):
    """(c_s theta, extra) of the Schur complement: theta_i = c_s / max(dt Jd_i, 1) (numpy's
    maximum: NaN propagates), extra = theta B0 on ``act``, 0 elsewhere."""
    n = Jd.size
    theta = np.empty(n)
    for i in range(n):
        t = dt * Jd[i]
        theta[i] = cs / (t if (t >= 1.0 or math.isnan(t)) else 1.0)
    extra = np.zeros(n)
    for j in range(act.size):
        i = act[j]
        extra[i] = theta[i] * B0[j]
    return theta, extra


@numba.njit(cache=True, nogil=True)
def schur_rhs(theta, G, H):
    """theta G - H (a new array)."""
    out = np.empty(G.size)
    for i in range(G.size):
        out[i] = theta[i] * G[i] - H[i]
    return out


@numba.njit(cache=True, nogil=True)
def order_parameter_rhs(G, ak, B, Dc, R, with_reaction):
    """-G plus, on ``ak``, B Dc (``with_reaction``: R + B Dc, the galvanostat's) (a new array)."""
    n = G.size
    out = np.empty(n)
    for i in range(n):
        out[i] = -G[i]
    for j in range(ak.size):
        i = ak[j]
        if with_reaction:
            out[i] += R[j] + B[j] * Dc[i]
        else:
            out[i] += B[j] * Dc[i]
    return out


@numba.njit(cache=True, nogil=True)
def coupling_estimate(G, B, H, ak, mdiag):
    """(max |G|, max over ``ak`` of B |H| / mdiag, at least 0): the stop test's two parts
    (`largest_abs` and ``np.max(..., initial=0.0)``: NaN if any is)."""
    g = largest_abs(G)
    m = 0.0
    for j in range(ak.size):
        i = ak[j]
        v = B[j] * abs(H[i]) / mdiag[i]
        if v > m:
            m = v
        elif math.isnan(v):
            return g, v
    return g, m


@numba.njit(cache=True, nogil=True)
def final_sink(r0, cs, dxi, dt):
    """r0 - c_s dxi / dt (a new array)."""
    out = np.empty(r0.size)
    for i in range(r0.size):
        out[i] = r0[i] - cs * dxi[i] / dt
    return out


@numba.njit(cache=True, nogil=True)
def noise_increment(u, xi, contact, scale):
    """``scale * (u - 1/2) * max(4 xi (1 - xi), 0) * ~contact`` (`solver._noise`; the factor
    of a host contact is 0.0, not a skipped product: the sign of its zero is numpy's)."""
    n = u.size
    out = np.empty(n)
    for i in range(n):
        w = 4.0 * xi[i] * (1.0 - xi[i])
        w = w if (w > 0.0 or math.isnan(w)) else 0.0  # np.maximum(w, 0.0): +0.0 for -0.0, NaN kept
        out[i] = scale * (u[i] - 0.5) * w * (0.0 if contact[i] else 1.0)
    return out


@numba.njit(cache=True, nogil=True)
def largest_abs_difference(a, b):
    """max |a - b| (0 for empty arrays; NaN if any is)."""
    m = 0.0
    for i in range(a.size):
        v = abs(a[i] - b[i])
        if v > m:
            m = v
        elif math.isnan(v):
            return v
    return m


@numba.njit(cache=True, nogil=True)
def scaled_squares(d, p, c, c0):
    """((d - p) / max(|c|, c0))^2 per entry (`solver._error_c`'s, squared as numpy's
    power of 2 does: a product), ``p`` empty: no p."""
    n = d.size
    out = np.empty(n)
    with_p = p.size == n
    for i in range(n):
        a = abs(c[i])
        scale = a if not (a < c0) else c0
        v = ((d[i] - p[i]) if with_p else d[i]) / scale
        out[i] = v * v
    return out


@numba.njit(cache=True, nogil=True)
def all_finite(x):
    """np.all(np.isfinite(x))."""
    for i in range(x.size):
        if not math.isfinite(x[i]):
            return False
    return True


# -- `numerics.LinkGrid`'s scatters onto the grid (numpy's fancy indexing, compiled)

@numba.njit(cache=True, nogil=True)
def grid_diagonal(voxel, total, dtot, dinv):
    """dtot[voxel] = total, dinv[voxel] = 1 / total."""
    for i in range(voxel.size):
        v = voxel[i]
        dtot[v] = total[i]
        dinv[v] = 1.0 / total[i]


@numba.njit(cache=True, nogil=True)
def grid_load(voxel, rhs, x0, b, x):
    """b[voxel] = rhs, x[voxel] = x0 (``x0`` empty: 0)."""
    with_x0 = x0.size > 0
    for i in range(voxel.size):
        v = voxel[i]
        b[v] = rhs[i]
        x[v] = x0[i] if with_x0 else 0.0


# -- a step's set-up (`solver._coupled_step`, `solver._jacobian`), numpy's numbers

@numba.njit(cache=True, nogil=True)
def active(xi, contact):
    """Voxels with h'(xi) > 1e-14 or a host contact (`solver._active`; the test of
    `order_parameter_residual`)."""
    n = xi.size
    out = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        t = min(max(xi[i], 0.0), 1.0)
        y = t * (1.0 - t)
        if 30.0 * y * y > 1e-14 or contact[i]:
            out[m] = i
            m += 1
    return out[:m].copy()


@numba.njit(cache=True, nogil=True)
def lowest_unsettled(xi, contact, free, nz, settled):
    """The lowest layer z (``free``: the free voxels' flat indices on a grid of ``nz`` layers) of a
    free voxel that is not settled lithium (xi < ``settled`` or a host contact); nz if none
    (`solver._window`)."""
    low = nz
    for i in range(xi.size):
        if xi[i] < settled or contact[i]:
            z = free[i] % nz
            if z < low:
                low = z
    return low


@numba.njit(cache=True, nogil=True)
def jacobian_diagonal(xi, exempt, well, wall, with_wall, n_host, act, dR, inv_dt, cut):
    """(diag, diag + cut) of `solver._jacobian`: diag = 1/dt + L_sigma g''(xi) (0 on ``exempt``)
    - wall n_host (1 - 2 xi) (``with_wall``) + dR/dxi on ``act``, each entry as
    `solver._double_well_curvature`'s numpy expression computes it (``well`` = 2 L_sigma W,
    ``wall`` = 6 L_sigma gamma_w / h, each a product the caller made in numpy's order)."""
    n = xi.size
    extra = np.empty(n)
    for i in range(n):
        x = xi[i]
        extra[i] = 0.0 if exempt[i] else well * ((1.0 - 6.0 * x) + 6.0 * x * x)
        if with_wall:
            extra[i] -= wall * n_host[i] * (1.0 - 2.0 * x)
    for j in range(act.size):
        extra[act[j]] += dR[j]
    diag = np.empty(n)
    total = np.empty(n)
    for i in range(n):
        diag[i] = inv_dt + extra[i]
        total[i] = diag[i] + cut[i]
    return diag, total


@numba.njit(cache=True, nogil=True)
def gather_times(values, src, index):
    """values * src[index] (a new array)."""
    out = np.empty(index.size)
    for j in range(index.size):
        out[j] = values[j] * src[index[j]]
    return out


@numba.njit(cache=True, nogil=True)
def potential_on(eta0, psi, dV, act):
    """eta0[act] + dV psi[act] (a new array)."""
    out = np.empty(act.size)
    for j in range(act.size):
        i = act[j]
        out[j] = eta0[i] + dV * psi[i]
    return out


@numba.njit(cache=True, nogil=True)
def minus_times(a, s, b):
    """a - s b (a new array)."""
    out = np.empty(a.size)
    for i in range(a.size):
        out[i] = a[i] - s * b[i]
    return out


@numba.njit(cache=True, nogil=True)
def combine(coefficients, arrays, index):
    """sum_j coefficients[j] arrays[j] over the first len(coefficients) arrays, on the entries
    ``index`` (empty: all; a new array; the BDF history and predictor, `solver._scheme`)."""
    every = index.size == 0
    out = np.zeros(arrays[0].size if every else index.size)
    for j in range(coefficients.size):
        c = coefficients[j]
        a = arrays[j]
        if every:
            for i in range(out.size):
                out[i] += c * a[i]
        else:
            for k in range(out.size):
                out[k] += c * a[index[k]]
    return out
