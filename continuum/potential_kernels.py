"""Numba kernels of the potential solver's Newton iteration (continuum.potential owns the arrays).

One pass each over the links and the faces instead of numpy's gathers, temporaries and
bincounts: at 128^3 (3.7 M links, 0.67 M faces) the residual fell from ~0.1 s to ~0.01 s.
The Butler-Volmer law here is continuum.kinetics' (``butler_volmer``, derivative and exponent
clip included) written per face; tests/test_continuum_potential.py holds the two equal.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .kinetics import _MAX_EXPONENT


@numba.njit(cache=True, inline="always")
def _clipped_exp(x):
    return math.exp(min(max(x, -_MAX_EXPONENT), _MAX_EXPONENT))


@numba.njit(cache=True, inline="always")
def _face_bv(eta, c, on_li, pref, eta_nuc, aaf, acf, f, alpha_a, alpha_c, c_ref):
    """(i, di/deta) of one face: continuum.kinetics.butler_volmer."""
    anodic = pref * _clipped_exp(aaf * eta) if on_li else 0.0
    shift = 0.0 if on_li else eta_nuc
    cathodic = pref * (max(c, 0.0) / c_ref) * _clipped_exp(-acf * (eta + shift))
    return anodic - cathodic, f * (alpha_a * anodic + alpha_c * cathodic)


@numba.njit(cache=True)
def face_currents(eta, c, on_li, pref, eta_nuc, aaf, acf, f, alpha_a, alpha_c, c_ref, i_out, di_out):
    """Butler-Volmer current density and its derivative per face (vector form of _face_bv)."""
    for k in range(eta.size):
        i_out[k], di_out[k] = _face_bv(eta[k], c[k], on_li[k], pref[k], eta_nuc[k], aaf, acf, f, alpha_a,
                                       alpha_c, c_ref)


@numba.njit(cache=True, inline="always")
def _log_mean(a, b):
    """(a - b) / ln(a / b) for positive a, b.  With x = (a - b) / (a + b), ln(a / b) =
    2 artanh(x), so this is (a + b) / 2 over 1 + x^2/3 + x^4/5 + ...: for |x| < 0.01
    (neighbours within 2 %) five terms are exact to double precision, need no logarithm
    (3x faster) and escape the cancellation of (a - b) / ln(a / b) near a = b (1e-10
    relative there)."""
    x = (a - b) / (a + b)
    x2 = x * x
    if x2 < 1e-4:
        return (0.5 * (a + b)) / (1.0 + x2 * (1.0 / 3.0 + x2 * (0.2 + x2 * (1.0 / 7.0 + x2 / 9.0))))
    return (a - b) / math.log(a / b)


@numba.njit(cache=True)
def log_means(a, b, scale, out):
    """out = scale times the logarithmic mean of a and b, elementwise."""
    for k in range(a.size):
        out[k] = scale * _log_mean(a[k], b[k])


@numba.njit(cache=True)
def link_conductances(kap, p, q, h, out):
    """out[k] = h times the logarithmic mean of kap over link k (p[k], q[k])."""
    for k in range(p.size):
        out[k] = h * _log_mean(kap[p[k]], kap[q[k]])


@numba.njit(cache=True)
def diffusion_source(ce, p, q, dp, src):
    """src += the diffusion current F (D+ - D-) h (c_p - c_q) of every link, out of p into q."""
    for k in range(p.size):
        s = dp * (ce[p[k]] - ce[q[k]])
        src[p[k]] += s
        src[q[k]] -= s


@numba.njit(cache=True)
def residual(u, V, lp, lq, G, top, G_top, phi_top, src, pins, g_pin, cv_p, G_cv,
             bv_e, bv_q, bv_v, area, c_face, on_li, pref, eta_nuc, aaf, acf, f, alpha_a, alpha_c, c_ref,
             R, eta, i, di, with_links):
    """The Newton residual R (current out of each unknown), per-face eta, i, di/deta.  Returns
    (sum of A i over the faces, sum of A |i|, sum |R|, the round-off scale sum |G phi| of
    R's link terms).  ``with_links`` False: the faces alone (R untouched, the last two 0)."""
    n = R.size
    scale = 0.0
    if with_links:
        scale = _link_residual(u, V, lp, lq, G, top, G_top, phi_top, src, pins, g_pin, cv_p, G_cv, R)
    total = 0.0
    total_abs = 0.0
    for k in range(bv_e.size):
        e = bv_e[k]
        x = V if bv_v[k] else u[bv_q[k]]
        et = x - u[e]
        ii, dd = _face_bv(et, c_face[k], on_li[k], pref[k], eta_nuc[k], aaf, acf, f, alpha_a, alpha_c, c_ref)
        eta[k] = et
        i[k] = ii
        di[k] = dd
        Ai = area * ii
        if with_links:
            R[e] -= Ai
            if not bv_v[k]:
                R[bv_q[k]] += Ai
        total += Ai
        total_abs += abs(Ai)
    rabs = 0.0
    if with_links:
        for a in range(n):
            rabs += abs(R[a])
    return total, total_abs, rabs, scale


@numba.njit(cache=True, inline="always")
def _link_residual(u, V, lp, lq, G, top, G_top, phi_top, src, pins, g_pin, cv_p, G_cv, R):
    """R = the source plus the currents out of each unknown through its links (conductance,
    top, pins, collector); returns the round-off scale sum |G phi|."""
    n = R.size
    scale = 0.0
    for a in range(n):
        R[a] = src[a]
    for k in range(lp.size):
        up = u[lp[k]]
        uq = u[lq[k]]
        fl = G[k] * (up - uq)
        R[lp[k]] += fl
        R[lq[k]] -= fl
        scale += G[k] * (abs(up) + abs(uq))
    for k in range(top.size):
        t = top[k]
        R[t] += G_top[k] * (u[t] - phi_top)
        scale += G_top[k] * abs(u[t])
    for k in range(pins.size):
        R[pins[k]] += g_pin * u[pins[k]]
        scale += g_pin * abs(u[pins[k]])
    for k in range(cv_p.size):
        R[cv_p[k]] += G_cv[k] * (u[cv_p[k]] - V)
        scale += G_cv[k] * abs(u[cv_p[k]])
    return scale


@numba.njit(cache=True)
def bv_jacobian(g, bv_e, bv_q, bv_v, diag_v, rvec, bv_links):
    """The Butler-Volmer part of the Newton matrix from the face conductances g = A di/deta:
    diag_v (links to the cell potential, on the diagonal), rvec (d(sum A i)/du), the links
    to resistive conductors (in face order).  Returns d(sum A i)/dV."""
    diag_v[:] = 0.0
    rvec[:] = 0.0
    d = 0.0
    m = 0
    for k in range(bv_e.size):
        gk = g[k]
        rvec[bv_e[k]] -= gk
        if bv_v[k]:
            diag_v[bv_e[k]] += gk
            d += gk
        else:
            rvec[bv_q[k]] += gk
            bv_links[m] = gk
            m += 1
    return d


@numba.njit(cache=True)
def add_diffusion_potential(u, c_now, c_then, beta, ref, clip):
    """u[k] -= beta (ln(c_now[k] / c_then[k]) - ref), the bracket clipped to +-clip, for the
    first c_now.size unknowns; nothing where c_then is not positive (NaN: a voxel new to the
    electrolyte)."""
    for k in range(c_now.size):
        ct = c_then[k]
        if ct > 0.0:
            x = c_now[k]
            d = (math.log(x / ct) if x != ct else 0.0) - ref
            u[k] -= beta * min(max(d, -clip), clip)


@numba.njit(cache=True)
def neighbour_means(grid, nx, ny, nz, cells, default, out):
    """out[j]: the mean of the finite face neighbours (periodic in x, y) of voxel cells[j]
    (sorted flat indices) in the flat field grid, where the field is not finite there; cells
    with none take the mean of the cells filled in an earlier sweep (three); else default."""
    m = cells.size
    done = np.zeros(m, dtype=np.int64)  # the sweep that filled the cell (0: not yet)
    syz = ny * nz
    for sweep in range(1, 4):
        for j in range(m):
            if done[j]:
                continue
            v = cells[j]
            i, rest = divmod(v, syz)
            jj, k = divmod(rest, nz)
            nbs = (((i + 1) % nx) * syz + rest, ((i - 1) % nx) * syz + rest,
                   i * syz + ((jj + 1) % ny) * nz + k, i * syz + ((jj - 1) % ny) * nz + k,
                   v + 1 if k + 1 < nz else -1, v - 1 if k > 0 else -1)
            total = 0.0
            count = 0
            for nb in nbs:
                if nb < 0:
                    continue
                x = grid[nb]
                if not math.isfinite(x):
                    at = np.searchsorted(cells, nb)
                    if at < m and cells[at] == nb and 0 < done[at] < sweep:
                        x = out[at]
                    else:
                        continue
                total += x
                count += 1
            if count:
                out[j] = total / count
                done[j] = sweep
    for j in range(m):
        if not done[j]:
            out[j] = default


@numba.njit(cache=True)
def largest_relative_change(new, old):
    """max |new - old| / old over positive old values (inf where old is 0 and new is not)."""
    m = 0.0
    for k in range(new.size):
        d = abs(new[k] - old[k])
        if d > 0.0:
            m = max(m, d / old[k] if old[k] > 0.0 else math.inf)
    return m


@numba.njit(cache=True)
def largest_face_change(du, dV, bv_e, bv_q, bv_v):
    """max |d eta| over the faces of the step (du, dV)."""
    m = 0.0
    for k in range(bv_e.size):
        x = dV if bv_v[k] else du[bv_q[k]]
        m = max(m, abs(x - du[bv_e[k]]))
    return m


@numba.njit(cache=True)
def ray_current(eta0, slope, s, c_face, on_li, pref, eta_nuc, aaf, acf, f, alpha_a, alpha_c, c_ref):
    """(sum of i, sum of slope di/deta) over the faces at overpotentials eta0 + s slope: the
    charge balance along a predictor ray and its derivative in s."""
    total = 0.0
    deriv = 0.0
    for k in range(eta0.size):
        ii, dd = _face_bv(eta0[k] + s * slope[k], c_face[k], on_li[k], pref[k], eta_nuc[k], aaf, acf, f, alpha_a,
                          alpha_c, c_ref)
        total += ii
        deriv += slope[k] * dd
    return total, deriv


@numba.njit(cache=True)
def ray_start(u, V, w, bv_e, bv_q, bv_v, eta0, slope):
    """Per face, the overpotential (phi_s - phi_l) at (u, V) into eta0 and its rate along the
    sensitivity w (phi moves by w s, V by s) into slope: a warm start's predictor ray."""
    for k in range(bv_e.size):
        e = bv_e[k]
        if bv_v[k]:
            xq, wq = V, -1.0
        else:
            xq, wq = u[bv_q[k]], w[bv_q[k]]
        eta0[k] = xq - u[e]
        slope[k] = w[e] - wq
