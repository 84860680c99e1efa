"""Compiled kernels of the phase-field stepping: the reaction term, the Allen-Cahn force, the xi
residual of an iterate (both, with the active voxels, in one call), the transport operator's
links and the Jacobi-preconditioned CG of the xi solves.  Each is one pass (or one call)
where the numpy versions made a dozen temporaries per evaluation; the formulas are the
solver's (see `solver._reaction`, `solver._allen_cahn`), which documents them."""
from __future__ import annotations

import math

import numba
import numpy as np

from ..kinetics import _MAX_EXPONENT as MAX_EXP  # the clip of exp() arguments, continuum.kinetics'


@numba.njit(cache=True, inline="always")
def _reaction_at(x, cc, eta, face, cathodic, anodic, L, alpha_a_f, alpha_c_f, c0, want):
    """R, dR/dxi and B = -dR/dc of one voxel (`solver._reaction`); ``want`` False: R only (the
    other two 0)."""
    e = 1e-3 * c0
    t = min(max(x, 0.0), 1.0)  # theta, and xi clipped for h and its derivatives
    u = alpha_a_f * eta
    ea = math.exp(min(max(u, -MAX_EXP), MAX_EXP))
    v = -alpha_c_f * eta
    ec = math.exp(min(max(v, -MAX_EXP), MAX_EXP))
    root = math.sqrt(cc * cc + e * e)
    cp = 0.5 * (cc + root) / c0
    y = t * (1.0 - t)
    dhx = 30.0 * y * y
    hx = t * t * t * ((6.0 * t - 15.0) * t + 10.0)
    bare = face * (1.0 - hx)
    mec = cathodic * ec
    film = t * anodic * ea - (1.0 - t) * mec * cp
    drive = ea - cp * ec
    r = L * (dhx * drive + bare * film)
    dr = 0.0
    bb = 0.0
    if want:
        d2 = 60.0 * y * (1.0 - 2.0 * t)
        extra = bare * (anodic * ea + mec * cp) if (x > 0.0 and x < 1.0) else 0.0
        dr = L * (d2 * drive - face * dhx * film + extra)
        bb = L * (dhx * ec + bare * (1.0 - t) * mec) * 0.5 * (1.0 + cc / root) / c0
    return r, dr, bb


@numba.njit(cache=True)
def reaction(xi, c, eta, act, face_weight, cathodic_factor, anodic_factor, L, alpha_a_f, alpha_c_f, c0, want):
    """R, dR/dxi and B = -dR/dc on the voxels ``act`` (`solver._reaction`); ``want`` 0: R only
    (the other two left empty), 1: all three."""
    m = act.size
    R = np.empty(m)
    dR = np.empty(m if want else 0)
    B = np.empty(m if want else 0)
    for j in range(m):
        i = act[j]
        r, dr, bb = _reaction_at(xi[i], c[i], eta[j], face_weight[i], cathodic_factor[i], anodic_factor[i], L,
                                 alpha_a_f, alpha_c_f, c0, want != 0)
        R[j] = r
        if want:
            dR[j] = dr
            B[j] = bb
    return R, dR, B


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def order_parameter_residual(xi, dxi, hist, dt, c, eta0, psi, dV, contact, a, b, k, well, wall, n_host,
                             face_weight, cathodic_factor, anodic_factor, L, alpha_a_f, alpha_c_f, c0):
    """The xi residual of an iterate in one call (`solver._residuals`): x = xi + dxi, the active
    voxels ak (h'(x) > 1e-14 or a host contact, `solver._active`), G = (dxi - hist)/dt -
    F_ac(x) + R on ak, and R, B = -dR/dc on ak at c and eta0 + dV psi."""
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
        r, _, bb = _reaction_at(x[i], c[i], eta0[i] + dV * psi[i], face_weight[i], cathodic_factor[i],
                                anodic_factor[i], L, alpha_a_f, alpha_c_f, c0, True)
        R[j] = r
        B[j] = bb
        G[i] += r
    return G, R, B, ak, x


@numba.njit(cache=True)
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


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def link_diagonal(a, b, G, extra):
    """Diagonal of ``sum_links G (e_p - e_q)(e_p - e_q)^T + diag(extra)``."""
    out = extra.copy()
    for j in range(a.size):
        out[a[j]] += G[j]
        out[b[j]] += G[j]
    return out


@numba.njit(cache=True)
def link_apply(a, b, G, dtot, v, out):
    """out = A v for A with off-diagonals -G on the links and diagonal ``dtot``."""
    for i in range(v.size):
        out[i] = dtot[i] * v[i]
    for j in range(a.size):
        p, q = a[j], b[j]
        out[p] -= G[j] * v[q]
        out[q] -= G[j] * v[p]


@numba.njit(cache=True)
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
