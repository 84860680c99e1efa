"""Numerical building blocks of the phase-field solver: the interpolation and barrier
polynomials, Scharfetter-Gummel weights, linear solves, Anderson mixing."""
from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as spla

from ..fv import SPDSolver
from . import kernels

DH_MAX = 1.875  # max of h'(xi), at xi = 1/2


# The polynomials below are written as products (no x**n): numpy's power is several times
# slower, and they are evaluated a dozen times per step on every voxel and link.

def interpolation(x):
    """h(xi) = xi^3 (6 xi^2 - 15 xi + 10), on xi clipped to [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * ((6.0 * x - 15.0) * x + 10.0)


def dh(x):
    """h'(xi) = 30 xi^2 (1 - xi)^2 on xi clipped to [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    y = x * (1.0 - x)
    return 30.0 * y * y


def bernoulli(x):
    """B(x) = x / (exp(x) - 1), the Scharfetter-Gummel weight (B(0) = 1)."""
    x = np.clip(x, -700.0, 700.0)
    small = np.abs(x) < 1e-8
    return np.where(small, 1.0 - 0.5 * x, x / np.where(small, 1.0, np.expm1(x)))


def unsigned(index):
    """Index array as uint64 for the compiled link loops: numba checks a signed index for
    wrap-around on every access (a link product at 200^2: 0.33 ms with int64, 0.21 ms with
    uint64, the same numbers)."""
    return np.ascontiguousarray(index, dtype=np.uint64)


GMG_FALLBACK = 100  # V-cycles per solve above which a field leaves the voxel-grid multigrid...
GMG_PAUSE = 10  # ...for this many solves, doubled at each failure in a row (at most 1000)
JACOBI_MAXITER = 5000  # CG iterations of a Jacobi-preconditioned solve (SPDSolver's default)
BAND_NEGLIGIBLE = 1e-14  # a layer whose right-hand side is below this share of the largest holds no source...
BAND_MARGIN = 4  # ...and the Jacobi-CG solves on the source layers plus this many on each side (`LinkGrid`)
BAND_MAX = 0.5  # only where that band is at most this share of the layers (else the whole grid)
BAND_RTOL = 1e-4  # and only for solves this loose (a tight one's answer spreads past any margin)


def bdf_coefficients(dt: float, past, order: int):
    """Variable-step BDF of ``order`` (1, 2 or 3) for a step dt after accepted steps of lengths
    ``past`` (newest first, at least ``order`` of them).  With the past increments d_1, d_2, ...
    (newest first) the step solves ``dx = (dt/a) F(x + dx) + sum_j eta_j d_j``: implicit Euler
    of length dt/a with the history as a source (the BDF formula, the derivative at the new time
    of the polynomial through the new and the last ``order`` states, in increments).  The
    predictor, the polynomial through the last ``order`` + 1 states at the new time, is
    ``sum_j pi_j d_j``, and ``weight`` |dx - prediction| is the local error: BDF-k's error
    (dt/a) x^(k+1)/(k+1)! T_1 ... T_k against the predictor's miss x^(k+1)/(k+1)! T_1 ... T_k+1,
    T_j = t_new - t_(n+1-j).  Returns (a, eta (order - 1 entries), pi (order entries), weight)."""
    T = np.cumsum(np.concatenate(([dt], np.asarray(past[:order], dtype=np.float64))))
    if T.size < order + 1:
        raise ValueError(f"BDF{order} needs {order} past steps, got {len(past)}")
    # the corrector's nodes (new time 0): 0, -T_1, ..., -T_order; alpha_m = dt l_m'(0)
    tau = np.concatenate(([0.0], -T[:order]))
    a = dt * float(np.sum(1.0 / T[:order]))
    alpha = np.zeros(order + 1)
    for m in range(2, order + 1):
        others = [i for i in range(order + 1) if i != m]
        alpha[m] = dt * np.prod([-tau[i] for i in others if i != 0]) / np.prod([tau[m] - tau[i] for i in others])
    # x^(n+1-m) = x^n - (d_1 + ... + d_(m-1)): the history sum_m alpha_m (d_1 + ... + d_(m-1)) / a
    eta = np.array([alpha[j + 1:].sum() / a for j in range(1, order)])
    # the predictor's nodes -T_0 ... -T_order hold x^n - (d_1 + ... + d_m), m = 0..order
    sigma = -T[:order + 1]
    lagrange = np.array([np.prod([(0.0 - sigma[i]) / (sigma[m] - sigma[i]) for i in range(order + 1) if i != m])
                         for m in range(order + 1)])
    pi = np.array([-lagrange[j:].sum() for j in range(1, order + 1)])
    return a, eta, pi, float(dt / (a * T[order]))


class HierarchyReuse:
    """When a field's multigrid hierarchy is rebuilt for a new operator (a full set-up costs
    about six V-cycles on Hong's grid) and when only its fine level is replaced
    (`VoxelMultigrid.set_operator(hierarchy=False)`: the coarse levels then precondition a
    slightly different operator, CG still solves the new one).  Rebuilt after ``max_reuse``
    reuses, when a solve on a reused hierarchy took more than ``slack`` V-cycles above the
    first solve on a fresh one, or when the last solve was not the multigrid's.  The
    decisions depend on the solves' history only: same run, same decisions; the solver resets
    it at the end of every `advance`, so no state outside its checkpoint carries over."""

    def __init__(self, max_reuse: int, slack: int):
        self.max_reuse, self.slack = max_reuse, slack
        self.reset()

    def reset(self):
        self.uses, self.fresh, self.last = None, None, None

    def rebuild(self) -> bool:
        return (self.uses is None or self.uses >= self.max_reuse
                or (self.fresh is not None and self.last > self.fresh + self.slack))

    def built(self, rebuilt: bool):
        if rebuilt:
            self.uses, self.fresh, self.last = 0, None, None
        else:
            self.uses += 1

    def solved(self, cycles):
        """After the first solve on each operator: its V-cycles (None: not the multigrid's)."""
        if cycles is None:
            self.uses = None
        elif self.fresh is None:
            self.fresh = self.last = cycles
        else:
            self.last = cycles


class LinkMatrix:
    """The SPD matrix ``sum_links G (e_p - e_q)(e_p - e_q)^T + diag(extra)`` on the links (a, b)
    of ``pattern``, kept as links: products and Jacobi-CG run on them compiled; the CSR matrix
    (for LU and AMG) is assembled on first use only (the multigrid paths never need it)."""

    def __init__(self, pattern, a, b, G, extra, grid=None):
        self.pattern, self.a, self.b, self.G, self.extra = pattern, a, b, G, extra
        self._total = None
        self._csr = None
        self.grid = grid  # a `LinkGrid` of the same links G: Jacobi-CG on the voxel grid

    @property
    def total(self):
        """The diagonal, links included; made on first use (phi's multigrid path needs none)."""
        if self._total is None:
            self._total = kernels.link_diagonal(self.a, self.b, self.G, self.extra)
        return self._total

    @property
    def shape(self):
        return (self.extra.size, self.extra.size)

    def diagonal(self):
        return self.total

    def csr(self):
        if self._csr is None:
            self._csr = self.pattern.assemble(self.G, self.extra)
        return self._csr

    def apply(self, v):
        out = np.empty(self.total.size)
        kernels.link_apply(self.a, self.b, self.G, self.total, np.ascontiguousarray(v, dtype=np.float64), out)
        return out

    def jacobi_cg(self, rhs, x0, rtol):
        """Jacobi-preconditioned CG in one compiled call (scipy's cg loops in Python: its
        overhead was a tenth of a step on 10^4 unknowns)."""
        if not np.any(rhs):
            return np.zeros(rhs.size)
        if self.grid is not None:
            return self.grid.jacobi_cg(self.total, rhs, x0, rtol)
        x = np.zeros(rhs.size) if x0 is None else np.array(x0, dtype=np.float64)
        if kernels.jacobi_cg(self.a, self.b, self.G, self.total, np.ascontiguousarray(rhs, dtype=np.float64), x,
                             float(rtol), JACOBI_MAXITER) < 0:
            raise RuntimeError(f"CG (jacobi) did not converge in {JACOBI_MAXITER} iterations")
        return x


def _grid_cg(faces, b, x, work, shape, rtol):
    """`kernels.grid_jacobi_cg` on a grid of ``shape`` with its faces and diagonal ``faces`` (gx,
    gy, gz, dtot, dinv) and work arrays (r, z, p, A p); raises where it did not converge."""
    if kernels.grid_jacobi_cg(*faces, b, x, *work, *shape, rtol, JACOBI_MAXITER) < 0:
        raise RuntimeError(f"CG (jacobi) did not converge in {JACOBI_MAXITER} iterations")


class LinkGrid:
    """Fixed links (conductances ``G`` on the links with face slots ``slots``, `fv.voxel_links`)
    of unknowns on the voxels ``voxel`` of a grid of ``shape``, as face conductances on the
    grid: Jacobi-CG runs there as a stencil (`kernels.grid_jacobi_cg`; a product 2-3x faster
    than the links' scattered adds at 200^2, the same numbers).  Work arrays are kept."""

    def __init__(self, shape, voxel, slots, G, counts=None):
        self.shape = tuple(int(s) for s in shape)
        self.voxel = np.asarray(voxel, dtype=np.int64)
        self.slots, self.G = slots, G
        self.work = None  # the grid's arrays, made on the first solve (a solver on AMG needs none)
        self._total = None  # the diagonal's total now in dtot and dinv (the same for a step's solves)
        self._band = None  # ((z0, z1), the total, the band's faces and diagonal, its work arrays) of the last band
        # solves by where they ran (a band widened: both), into ``counts`` where given (a solver's stats)
        self.bands = {} if counts is None else counts
        for key in ("band", "whole grid", "widened"):
            self.bands.setdefault(key, 0)

    def jacobi_cg(self, total, rhs, x0, rtol):
        """x with A x = rhs to |rhs - A x| <= rtol |rhs| from x0 (None: 0), A = the links plus
        the diagonal whose total (links included) is ``total``."""
        if self.work is None:
            N = int(np.prod(self.shape))
            faces = np.zeros(3 * N)
            faces[self.slots] = self.G  # one link per face slot
            self.gx, self.gy, self.gz = faces[:N], faces[N:2 * N], faces[2 * N:]
            self.dtot = np.ones(N)  # cells that are no unknown: 1, with rhs = x = 0 they stay 0
            self.dinv = np.ones(N)
            self.work = [np.zeros(N) for _ in range(6)]  # rhs, x, r, z, p, A p
        v = self.voxel
        # compiled scatters (numpy's fancy indexing cost a fifth of a solve at 200^2); the
        # diagonal only when it is another array than the last solve's (a step's solves share J)
        if total is not self._total:
            kernels.grid_diagonal(v, np.ascontiguousarray(total, dtype=np.float64), self.dtot, self.dinv)
            self._total = total  # (held: the check is on this very array, never a reused id)
        b, x = self.work[0], self.work[1]
        kernels.grid_load(v, np.ascontiguousarray(rhs, dtype=np.float64),
                          np.zeros(0) if x0 is None else np.ascontiguousarray(x0, dtype=np.float64), b, x)
        if x0 is None and rtol >= BAND_RTOL and self._band_solve(b, x, float(rtol)):
            return kernels.gather(x, v)
        self.bands["whole grid"] += 1
        _grid_cg((self.gx, self.gy, self.gz, self.dtot, self.dinv), b, x, self.work[2:], self.shape, float(rtol))
        return kernels.gather(x, v)

    def _band_solve(self, b, x, rtol):
        """Jacobi-CG on the layers z0 <= z < z1 that hold b's sources (a value above BAND_NEGLIGIBLE
        of its largest) plus BAND_MARGIN on each side, x = 0 held outside: xi's right-hand side
        lives on the front, a tenth of Hong's 200 layers, while the bulk electrolyte and settled
        lithium carry none worth a bit.  True when x (from 0) then meets the whole grid's
        tolerance, |b - A x| <= rtol |b| with the layers outside and their links to the band
        counted; else x holds the band's answer for the whole grid's CG to go on from (False).
        Only for loose solves (rtol >= BAND_RTOL: xi's inexact Newton corrections): a tight
        one's answer spreads past any margin.  (Layers with sources below a share of the
        tolerance, not of round-off, left out too: Hong's case took 1.5x longer, its far field
        never corrected.)"""
        nx, ny, nz = self.shape
        rows = kernels.layer_squares(b, nx, ny, nz)  # sum and largest of b^2 per layer
        norm2 = float(rows[0].sum())
        source = np.flatnonzero(rows[1] > BAND_NEGLIGIBLE**2 * rows[1].max())
        if source.size == 0:
            return False
        z0, z1 = max(int(source[0]) - BAND_MARGIN, 0), min(int(source[-1]) + 1 + BAND_MARGIN, nz)
        if z1 - z0 > BAND_MAX * nz:
            return False
        band = self._band
        if band is None or band[0] != (z0, z1) or band[1] is not self._total:
            def part(a):
                return np.ascontiguousarray(a.reshape(self.shape)[:, :, z0:z1]).ravel()
            n = nx * ny * (z1 - z0)
            band = self._band = ((z0, z1), self._total, [part(a) for a in (self.gx, self.gy, self.gz, self.dtot,
                                                                              self.dinv)],
                                 [np.empty(n) for _ in range(6)])  # rhs, x, r, z, p, A p
        faces, (bs, xs, r) = band[2], band[3][:3]
        B = b.reshape(self.shape)
        bs[:] = B[:, :, z0:z1].ravel()
        xs[:] = 0.0
        # the band's goal in its own b's norm is the whole grid's: rtol |b| / |b on the band|
        _grid_cg(faces, bs, xs, band[3][2:], (nx, ny, z1 - z0), rtol * np.sqrt(norm2 / float(rows[0][z0:z1].sum())))
        X = xs.reshape(nx, ny, z1 - z0)
        x.reshape(self.shape)[:, :, z0:z1] = X
        # the residual outside: b, plus the links into the band on the two layers next to it
        gz = self.gz.reshape(self.shape)
        out = float(rows[0][:max(z0 - 1, 0)].sum() + rows[0][z1 + 1:].sum())
        if z0 > 0:
            out += float(np.sum((B[:, :, z0 - 1] + gz[:, :, z0 - 1] * X[:, :, 0]) ** 2))
        if z1 < nz:
            out += float(np.sum((B[:, :, z1] + gz[:, :, z1 - 1] * X[:, :, -1]) ** 2))
        if kernels.partial_dot(r, r, 0, r.size) + out <= rtol**2 * norm2:
            self.bands["band"] += 1
            return True
        self.bands["widened"] += 1
        return False


class LinearSolver:
    """Linear solves of one field: sparse LU (kept while the matrix key stays the same) up to
    ``direct_max`` unknowns, else conjugate gradients through the project's SPDSolver.  The LU
    orders by minimum degree on A + A^T in SuperLU's symmetric mode (on these SPD matrices
    about twice as fast as its default column order).  CG is preconditioned by the voxel-grid
    multigrid when the caller passes one (continuum/multigrid.py), by AMG (hierarchy kept
    across steps), or by Jacobi when the caller says the matrix is strongly diagonally
    dominant (the xi and c matrices at short steps, where I/dt dominates: a Jacobi iteration
    costs a tenth of a V-cycle and a dozen of them converge)."""

    def __init__(self, method: str, n: int, direct_max: int):
        if method not in ("auto", "direct", "amg", "jacobi"):
            raise ValueError(f"linear_solver = {method!r}: must be 'auto', 'direct', 'amg' or 'jacobi'")
        self.method = method
        self.direct = method == "direct" or (method == "auto" and n <= direct_max)
        self.amg = {}  # one hierarchy per kind of matrix, so each stays a good preconditioner
        self.gmg = SPDSolver("gmg", maxiter=500)
        # solves left on AMG after the voxel-grid multigrid failed to converge in GMG_FALLBACK
        # iterations on a matrix the caller also gave (phi); then the multigrid is tried again.
        # A safety net: phi at contrast 1e6 takes 4-10 V-cycles on Hong's case and on a 3D
        # porous host since the coarse faces keep strong fine faces (mg_kernels.coarse_faces;
        # before, 350-650 on the porous host and up to 100+ as Hong's front neared the top,
        # where AMG took 7-13 cycles)
        self.gmg_off, self.gmg_pause = 0, GMG_PAUSE
        self.lu, self.key = None, None
        self.cycles = None
        self.stats = {"factorizations": 0, "solves": 0, "multigrid failures": 0}
        self.jacobi = {}  # Jacobi-CG solves on the voxel grid by where they ran (`LinkGrid`)

    def solve(self, K, b, key, rtol=1e-11, dominant=False, kind="", multigrid=None, x0=None, xtol=0.0):
        """x with K x = b (iterative: |b - K x| <= rtol |b|, from ``x0`` when given).  K: a
        `LinkMatrix` (None with a multigrid that holds the operator and no fallback).  ``xtol``
        > 0: the multigrid's CG also stops once an iteration moved no unknown by more than
        xtol (and by at most half the move before: `mg_kernels.pcg`)."""
        self.stats["solves"] += 1
        self.cycles = None  # V-cycles of this solve when the multigrid did it
        if not self.direct:
            guess, x = None if x0 is None else [x0], None
            if multigrid is not None and not self.gmg_off:
                self.gmg.maxiter = 5000 if K is None else GMG_FALLBACK
                try:
                    before = self.gmg.stats["iterations"]
                    x = self.gmg.solve(None, [b], x0=guess, rtol=rtol, multigrid=multigrid, xtol=xtol)[0]
                    self.cycles = self.gmg.stats["iterations"] - before
                    self.gmg_pause = GMG_PAUSE
                except RuntimeError:
                    self.stats["multigrid failures"] += 1
                    if K is None:
                        # no assembled matrix to fall back on (c's Slotboom operator lives in
                        # the multigrid): the step is too long for it, so the caller shortens it
                        raise FloatingPointError("multigrid CG did not converge") from None
                    self.gmg_off, self.gmg_pause = self.gmg_pause, min(2 * self.gmg_pause, 1000)
            elif multigrid is not None:
                self.gmg_off -= 1
            if x is None and (self.method == "jacobi" or (self.method == "auto" and dominant)):
                x = K.jacobi_cg(b, x0, rtol)
            elif x is None:
                # a short leash: these matrices move with the interface every step, and a stale
                # hierarchy (contrast 1e6 in phi) can take thousands of iterations before
                # SPDSolver would rebuild it at its default 5000
                amg = self.amg.setdefault(kind, SPDSolver("amg", rebuild_factor=2.0, maxiter=60))
                try:
                    x = amg.solve(K.csr(), [b], x0=guess, rtol=rtol)[0]
                except RuntimeError:
                    if multigrid is None:
                        raise
                    # AMG failed too: a system no solver reaches the tolerance on (a step too
                    # long to linearise: the caller shortens it)
                    self.gmg_off = 0
                    raise FloatingPointError("linear solve did not converge") from None
        else:
            if key != self.key or self.lu is None:
                self.lu = spla.splu(K.csr().tocsc(), permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})
                self.key = key
                self.stats["factorizations"] += 1
            x = self.lu.solve(b)
            x += self.lu.solve(b - K.apply(x))  # one refinement: balances exact to round-off
        finite = (kernels.all_finite(x) if isinstance(x, np.ndarray) and x.dtype == np.float64 and x.ndim == 1
                  else np.all(np.isfinite(x)))
        if not finite:
            raise FloatingPointError("linear solve gave non-finite values")
        return x


class Anderson:
    """Anderson mixing of a fixed-point iteration x -> x + r(x): the next iterate is the
    combination of the last few images x + r that minimises the combined residual.  Affine
    combinations keep linear constraints every image satisfies (the galvanostat's charge).
    The differences of consecutive images and residuals (in a ring of ``depth`` slots) and
    their Gram matrix are kept from call to call; one compiled pass makes the new differences
    and their dot products (`kernels.anderson_differences`: it was a dozen numpy passes and as
    many temporaries, a tenth of an attempt at 200^2)."""

    def __init__(self, depth: int):
        self.depth = depth
        self.gram = np.zeros((depth, depth))  # dR_i . dR_j by slot
        self.image = None  # the last image, residual and the ring's arrays, kept by `reset`
        self.reset()

    def reset(self):
        """Start a new iteration (the arrays are kept: fresh ones cost their page faults)."""
        self.order = []  # the ring's slots in use, oldest first
        self.started = False

    def next(self, x, r):
        """The next iterate (a new array) from the iterate ``x`` and its residual ``r``, each
        an array or a pair of arrays (its halves, e.g. (xi, c))."""
        x1, x2 = (x, x[:0]) if isinstance(x, np.ndarray) else x
        r1, r2 = (r, r[:0]) if isinstance(r, np.ndarray) else r
        n = x1.size + x2.size
        have_last = self.started
        if self.image is None or self.image.size != n:
            self.image, self.resid = np.empty(n), np.empty(n)
            self.dX, self.dR = np.empty((self.depth, n)), np.empty((self.depth, n))
        self.started = True
        order = self.order
        if len(order) == self.depth:  # the oldest slot takes the new differences
            new = order.pop(0)
        else:
            new = len(order)
        old = np.array(order, dtype=np.int64)
        row, rhs = kernels.anderson_differences(*(np.ascontiguousarray(v, dtype=np.float64) for v in (x1, x2, r1, r2)),
                                                self.image, self.resid, self.dX, self.dR, new, old, have_last)
        if not have_last:
            return self.image.copy()
        order.append(new)
        self.gram[new, order] = row
        self.gram[order, new] = row
        # least squares through the (at most depth x depth) normal equations: an SVD of the
        # tall n x depth matrix cost more than the rest of the mixing together
        gamma = np.linalg.lstsq(self.gram[np.ix_(order, order)], rhs, rcond=1e-12)[0]
        return kernels.anderson_combine(self.image, self.dX, np.array(order, dtype=np.int64), gamma)
