"""Phase-field solver: order parameter xi, Li+ concentration c and potential phi on a voxel grid.

Equations (../shared/MODEL.md section 9; docs/phasefield.md has the discretisation, the scheme
and why):

    dxi/dt = -L_sigma (g'(xi) - kappa lap xi) - L_eta h'(xi) [exp(alpha_a f eta) - (c/c0) exp(-alpha_c f eta)]
    dc/dt  = div(D_eff (grad c + f c grad phi)) - c_s dxi/dt
    div(sigma_eff grad phi) = F c_s dxi/dt,        eta = phi

with g = W xi^2 (1 - xi)^2, h = xi^3 (6 xi^2 - 15 xi + 10), D_eff and sigma_eff interpolated by
h.  On a free voxel with n_f faces on conductive host (a contact) xi is the host's wetting
layer: no Allen-Cahn force acts on it (its neighbours see it), and it adds the KMC's
nucleation law per host face, ``- L_eta 6 n_f (sqrt(kappa/2W)/h) (1 - h(xi)) [theta
exp(alpha_a f eta) - (1 - theta) m (c/c0) exp(-alpha_c f eta)]``, theta = xi, m = mean over
host faces of ``a exp(-alpha_c f eta_nuc)`` (`_reaction`; optionally both branches at eta + s, s
the contact's coordination energy, `Geometry.update_coordination`); host faces carry a contact-angle
wall energy (none at the default 90 degrees).  phi is measured against a
lithium reference at c0; phi = V (cell potential) on the collector face z = 0, phi = phi_top
and c = c_top half a voxel above the top layer (or a closed top).

One step of length dt: variable-step BDF up to order 3 (implicit Euler on the first steps) for
(xi, c) together with phi lagged by one step (the reaction's eta, and phi's solve start,
extrapolated from the last step's phi increment while the increments are coherent;
`_coupled_step`: block Gauss-Seidel Newton
iterations, c first through a Schur diagonal that holds the stiff reaction-depletion-transport
loop, then xi with its exact Jacobian, Anderson mixing; the galvanostat's cell potential is a
scalar root inside each iteration); the optional Langevin noise, added to xi and taken from c in
place; then phi with the realised source. A local error estimate (increments against their
extrapolation, the lag of eta, the iterations' residual) accepts the step or retries it shorter.
Every balance is kept in increment form, so lithium and charge are conserved to the linear
solves' tolerance.  On 2D grids the step's independent passes (phi's solve beside c's final
one, among others) run on a second thread, to the serial run's bits until c's error rejects an
attempt whose phi the worker already solved (`_overlap`, `discarded_potential_solves`).
"""
from __future__ import annotations

import os
import threading
import time
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import numba
import numpy as np
from scipy.optimize import brentq

from ..constants import ELECTROLYTE, FARADAY, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from ..grid import collector_connected
from ..multigrid import VoxelMultigrid
from . import kernels
from .fields import lithium_mask, order_parameter_from_mask, planar_electrode
from .geometry import Geometry, PotentialWindow, Window, coarse_cells
from .numerics import (DH_MAX, GMG_PAUSE, Anderson, HierarchyReuse, LinearSolver, LinkGrid, LinkMatrix,
                       bdf_coefficients, bernoulli, dh, interpolation, unsigned)
from .parameters import HONG2018, PhaseFieldParameters


# Relative tolerance of xi's solves inside the (xi, c) iterations (inexact Newton: a correction
# needs a few digits, the stopping test reads the exact residuals; the galvanostat's xi solves,
# which carry the charge, go to 1e-11, the final c solve to FINAL_RTOL).  1e-2, was 1e-4: Hong's
# 200^2 case to 4 s 2.66 instead of 4.85 Jacobi-CG iterations per solve for the same (xi, c)
# iterations per attempt (2.95 against 2.98; 100^2 to 10 s: 2.90 both)
INNER_RTOL = 1e-2
# ...and of c's Schur solves in them: the iterations' stop reads the exact residuals, so a
# looser correction costs iterations, not accuracy; at 1e-2 instead of 1e-4, 3.6 instead of
# 5.3 V-cycles per c solve in the quick benchmark for 2 % more iterations.  3e-2 (was 1e-2):
# Hong's 200^2 case to 8 s 10.3 instead of 11.9 c V-cycles per attempt (the final solve's
# included) for 1.4 % more iterations; 100^2 to 60 s (into the approach) 6.5 against 7.0 for
# +4 % (0.1: 5.6 and +5-8 %); the porous 32^3 quick case 4.1 against 4.7 per solve, the same
# iterations
SCHUR_RTOL = 3e-2

# Relative tolerance of the final c solve (iterative solvers; LU is exact): the Li+ balance
# holds to round-off whatever it is (`_Transport.balance_shift`), so it is what c's accuracy
# needs, far inside tol_c (it was 1e-9 for the balance: 10 V-cycles per solve in Hong's case,
# then 6 at 1e-6).  Measured against a solve to 1e-12 over the quick benchmark's attempts: c's
# error at 1e-4 at most 5e-6 of max(c, c0) as a root mean square, 6e-5 in any voxel (tol_c:
# 0.02); 1e-6 left 8e-8 and 1e-6
FINAL_RTOL = 1e-4

# The variable-step BDF scheme's highest order, and the largest step ratio dt / dt_last at which
# each order is taken (`numerics.bdf_coefficients`): BDF2 up to 2 (variable-step BDF2 is
# zero-stable below 1 + sqrt 2), BDF3 up to 1.5 for this and the last step (Li & Liao 2022 prove
# variable-step BDF3 stable for ratios below 2.553); above, a lower order, implicit Euler after a
# step cut to end an `advance`.  BDF3 (where coherent, below) against BDF2 throughout, Hong's 200^2
# case to t = 400 s: 8906 against 10 616 attempts (docs/phasefield.md, "Speed")
MAX_ORDER = 3
BDF2_MAX_RATIO = 2.0
BDF3_MAX_RATIO = 1.5
# ...and the least cosine between the last two xi increments at which the next step may take
# BDF3 (`_coherent`).  Where consecutive increments ring (a filled cell: the last rows against the
# top boundary, the current changing sign from step to step) BDF3's cubic predictor misses by
# more and BDF2 steps longer: Hong's case to t = 400 s 8906 attempts at 0.5, 9908 at 0 (BDF3 in
# the filled cell too: its last 120 s took 1.6x the CPU of BDF2's), 10 616 with BDF2 throughout
COHERENT_COSINE = 0.5
# (the same test switches the reaction's eta and phi's solve start from phi^n to its linear extrapolation,
# `_extrapolated_potential`: ringing increments extrapolated doubled the filled cell's attempts)
# The least cut of a step the (xi, c) iterations did not converge on (`_next_step`): their
# remaining-correction estimate jumps by orders of magnitude at a slip's onset (840 at 121 ms,
# under 0.1 at 24 ms), so err^(-1/k) hit the 0.2 floor and the steps took ~15 attempts to regrow.
# Hong's case to t = 400 s, seeds 0 / 1 / 2: 6 / 5 / 12 % fewer attempts, CPU -9 / +1 / -10 %
UNCONVERGED_CUT = 0.5

# A moving front's velocity is R projected on the profile's slope, 6 L_eta sqrt(kappa/2W) per unit
# of drive (`PhaseFieldParameters.front_velocity`), not R summed across it: 5 L_eta sqrt(kappa/2W)
# for the logistic profile (the integral of h'(xi) over it is 5 of its lengths; the profile's
# deformation under motion carries the sixth).  The shot noise's event count is the former's.
PROJECTED_RATE = 6.0 / 5.0

# Largest relative residual of phi's solve (below it, 1e-9 of the Faradaic source and 1e-13 of
# the boundary driving: the from-zero solves).  The boundaries' balance no longer rests on it
# (a uniform shift closes it, `_solve_potential`); phi's error at 1e-4 is a few uV against the
# 2 mV of tol_eta (measured from a 1 mV rough start: 0.7 uV at 1e-5, 3.8 uV at 1e-4).  It was
# 1e-5 for the balances: 17-19 V-cycles per solve in Hong's case, then 14-17; 9-10 since the
# multigrid's coarse faces keep strong fine faces
PHI_RTOL_MAX = 1e-4
# ...and the multigrid's CG stops once an iteration moved phi by at most this fraction of
# tol_eta (20 uV; and by half the move before, `mg_kernels.pcg`): in Hong's case 9.4 -> 4.2
# V-cycles per solve while growing, 17 -> 7.8 at the top, where the residual of the last phi
# under the new conductances asks for 1e-9 of itself (at 1e-3).  1e-2 (was 1e-3): 2.9 instead
# of 4.3 V-cycles per solve over Hong's case to t = 400 s; phi against a solve to 1e-12 from the
# same start at t = 50-350 s off by at most 3.6 uV anywhere and 5e-9 V in the interface (1e-3:
# 0.6 uV and 1e-10 V), against the 2 mV of tol_eta
PHI_XTOL = 1e-2

# Steps phi's multigrid hierarchy serves (only its fine level replaced) before a rebuild, at
# most (`HierarchyReuse`): the interface moves by a fraction of a voxel per step
PHI_REUSE = 3
C_REUSE = 3  # the same for c's Schur operator (across attempts)

# Settled lithium: a free voxel whose xi is within SETTLED of 1 and that is no host contact.  While
# every free voxel below a row is settled, the (xi, c) step solves on the rows from WINDOW_MARGIN
# below the lowest unsettled one to the top (`_window`): there h'(xi) < 1e-18 (no reaction), the
# double well holds xi at 1, and what the held voxels leave out is Li+'s exchange by D_s inside
# the metal (docs/phasefield.md "Settled lithium").  Only where the window cuts at least an eighth
# of the rows (and 2), and only on the multigrid's path (large grids)
SETTLED = 1e-10
WINDOW_MARGIN = 2
# ...and phi's slab below eliminated column by column while its drop from the collector is at most
# this fraction of tol_eta (20 uV), what leaving out the current between its columns can move phi
# by (`_solve_potential`); above (a short through the metal) the whole grid: a window's phi was then
# 25-29 mV off the whole grid's in Hong's cell, and a window's change trapped the steps
SLAB_DROP = 1e-2


_BLAS = None
_WORKER = None  # `_second_thread`'s thread pool
_WORKER_LOCK = threading.Lock()


def _second_thread():
    """One thread, shared by the process's solvers, for a step's independent passes (`PhaseFieldSolver._overlap`)."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = futures.ThreadPoolExecutor(1, thread_name_prefix="phasefield-second")
        return _WORKER


def _forget_worker():
    """A forked child has none of its parent's threads: it starts its own."""
    global _WORKER, _WORKER_LOCK
    _WORKER, _WORKER_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_worker)


def _blas_single_thread():
    """BLAS threads off while stepping: the vectors here are too short to share, and on a busy
    machine a threaded numpy dot inside CG took 7 ms instead of 20 us (a step ten times slower)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


class GalvanostatError(RuntimeError):
    """No cell potential within +-10 V carries the applied current (e.g. nothing left to strip)."""


@dataclass(frozen=True)
class Potentiostatic:
    """Cell potential V [V] of the collector against the lithium reference at c0."""

    potential: float


@dataclass(frozen=True)
class Galvanostatic:
    """Faradaic current density [A/m^2] over the footprint (nx ny h^2); > 0 anodic (stripping)."""

    current_density: float


def _allen_cahn_coefficients(g: Geometry, p: PhaseFieldParameters):
    """(L_sigma kappa / h^2, 2 L_sigma W, L_sigma 6 gamma_w / h or 0): the link conductance of
    the gradient term, the double well's and the wall's factors (`kernels.allen_cahn`)."""
    return (p.interface_mobility * p.gradient_coefficient / g.h**2, p.interface_mobility * 2.0 * p.barrier_height,
            p.interface_mobility * 6.0 * p.wall_tension / g.h if p.wall_tension else 0.0)


def _allen_cahn(g: Geometry, p: PhaseFieldParameters, xi, exempt=None):
    """-L_sigma (g'(xi) - kappa lap xi + wall) on free voxels [1/s].  Dielectric and domain faces
    carry no flux; a conductive host face adds Cahn's wall energy -gamma cos(theta) (3 xi^2 -
    2 xi^3) per face area (contact angle theta; none at 90 degrees), which exerts no force at
    xi = 0: a bare host is at rest.  The ``exempt`` voxels (default: the host contacts, whose
    lithium is the wetting layer, docs/phasefield.md "Host contact") feel neither the double
    well nor the gradient term, only the wall's; their neighbours see their xi (one-way)."""
    k, well, wall = _allen_cahn_coefficients(g, p)
    return kernels.allen_cahn(xi, g.a, g.b, k, well, g.contact if exempt is None else exempt, wall, g.n_host)


def _double_well_curvature(g: Geometry, p: PhaseFieldParameters, xi, exempt=None):
    """L_sigma (g''(xi) + the wall energy's second derivative per volume) [1/s] (no g'' on the
    ``exempt`` voxels, see `_allen_cahn`)."""
    out = p.interface_mobility * 2.0 * p.barrier_height * (1.0 - 6.0 * xi + 6.0 * xi * xi)
    out[g.contact if exempt is None else exempt] = 0.0
    if p.wall_tension:
        out -= p.interface_mobility * 6.0 * p.wall_tension / g.h * g.n_host * (1.0 - 2.0 * xi)
    return out


def _gradient_links(g: Geometry, k: float, exempt=None):
    """Link conductances and extra diagonal of the gradient term's Jacobian (`_allen_cahn`): a
    link to an ``exempt`` voxel enters only its other end's diagonal.  Its off-diagonal (the
    free voxel's dependence on the wetting layer) is left out to keep the matrix symmetric; the
    wetting layer's own rows are exact, so the iterations pick it up in one more pass."""
    cut, n_cut = (g.contact_link, g.n_contact_links) if exempt is None else g.cut_links(exempt)
    return np.where(cut, 0.0, k), k * n_cut


def _reaction(g: Geometry, p: PhaseFieldParameters, xi, c, eta, act, derivatives=True):
    """On the voxels ``act`` (eta given there): R (dxi/dt gets -R), dR/dxi, and B = -dR/dc, with

        R = L_eta h'(xi) [exp(alpha_a f (eta + s_f)) - (c+/c0) exp(-alpha_c f (eta + s_f))]
            + L_eta face_weight (1 - h(xi)) [theta exp(alpha_a f (eta + s))
                                             - (1 - theta) m (c+/c0) exp(-alpha_c f (eta + s))]

    The first line is the lithium front's.  The second, on host contacts only (face_weight =
    6 n_f sqrt(kappa/2W) / h, theta = xi clipped to [0, 1], m the site factor a exp(-alpha_c f
    eta_nuc)), is the wetting layer's: per host face the KMC's reduction on the bare share
    (1 - theta) at eta + eta_nuc with the site's activity, and the oxidation of the covered
    share theta at eta, each at the flat front's rate per face (docs/phasefield.md "Host
    contact"); it hands over to the front's term as the contact fills (1 - h(xi)).  s: the
    contact's coordination energy, s_f the front's on every voxel (`Geometry.update_coordination`;
    0 unless ``contact_bond_shift``, ``front_bond_shift``).  The cathodic
    branches see c+ = (c + sqrt(c^2 + e^2)) / 2, e = 1e-3 c0: a smooth positive part, because c
    in this model can go negative where the Allen-Cahn part converts faster than transport
    brings Li+ (docs/phasefield.md)."""
    return kernels.reaction(xi, c, np.asarray(eta, dtype=np.float64), act, g.face_weight, g.cathodic_factor,
                            g.anodic_factor, g.front_cathodic, g.front_anodic, p.kinetic_coefficient, p.alpha_a * p.f,
                            p.alpha_c * p.f, p.bulk_concentration, 1 if derivatives else 0)


def _shrank(t, streak):
    """The step control's last word: where the rejections in a row began and ended, and whether
    their error fell with the step (stiffness) or not (a jump in the state, an inaccurate solve:
    no step length helps)."""
    msg = f"phase-field step shrank below 1e-14 s at t = {t:.6g} s"
    if streak is None:
        return msg
    (dt0, e0), (dt1, e1) = streak
    if e0 is None or e1 is None:
        return msg + f" (attempts from dt = {dt0:.3g} s to {dt1:.3g} s that could not be solved)"
    tail = ("; it did not fall with the step: a jump in the state or an inaccurate solve, not stiffness"
            if e1 > 0.5 * e0 else "")
    return msg + f" (rejected from dt = {dt0:.3g} s at {e0:.4g} x the error tolerance to {dt1:.3g} s at {e1:.4g}{tail})"


def _timed(fn, *args):
    """(fn(*args), the CPU time of the thread that runs it spent on it)."""
    clock = time.thread_time()
    out = fn(*args)
    return out, time.thread_time() - clock


def _pcg_lateral(K, C, bottom, mg, b, rtol, xtol, lin, maxiter=100):
    """dphi with (K + C on the cells ``bottom``) dphi = b by CG preconditioned with K's V-cycle
    (``mg``, set to K): a window's phi with its uniform slab's currents between columns
    (`PotentialWindow.lateral`).  Stops as `mg_kernels.pcg` does (|r| <= rtol |b|, or a move of
    at most xtol and at most half the last); None after ``maxiter``.  ``lin``: phi's
    `LinearSolver`, whose counts it keeps."""
    x = np.zeros(b.size)
    r = b.copy()
    goal = rtol * np.sqrt(b @ b)
    lin.cycles = 0
    lin.stats["solves"] += 1
    if np.sqrt(r @ r) <= goal:
        return x
    z = mg.apply(r)
    p = z.copy()
    rz, last = r @ z, 0.0
    for it in range(1, maxiter + 1):
        q = K.apply(p)
        q[bottom] += C @ p[bottom]
        alpha = rz / (p @ q)
        x += alpha * p
        r -= alpha * q
        move = abs(alpha) * np.max(np.abs(p))
        lin.cycles = it
        if np.sqrt(r @ r) <= goal or (move <= xtol and move <= 0.5 * last):
            lin.gmg.stats["solves"] += 1
            lin.gmg.stats["iterations"] += it
            return x
        last = move
        z = mg.apply(r)
        rz, rz_last = r @ z, rz
        p = z + (rz / rz_last) * p
    lin.stats["multigrid failures"] += 1
    return None


def _active(g: Geometry, xi):
    """Voxels where the reaction acts: the diffuse interface and the host contacts."""
    return kernels.active(xi, g.contact)  # np.flatnonzero((dh(xi) > 1e-14) | g.contact), compiled


def _coherent(d1, d2):
    """Whether two consecutive xi increments point the same way (cosine >= COHERENT_COSINE; no
    earlier increment: yes)."""
    if d2 is None:
        return True
    n1, n2 = float(np.dot(d1, d1)), float(np.dot(d2, d2))
    return n1 > 0.0 and n2 > 0.0 and float(np.dot(d1, d2)) >= COHERENT_COSINE * np.sqrt(n1 * n2)


class _Transport:
    """The c system of one step (see `PhaseFieldSolver._transport`).  Direct and AMG solve it
    in v = exp(f phi / 2) c (symmetric, off-diagonals D (x/2)/sinh(x/2) / h^2); the voxel-grid
    multigrid in the Slotboom variable u = exp(f phi) c, where it is a weighted graph
    Laplacian with positive diagonal: links (D/h^2) B(x_pq) exp(-f phi_p) (symmetric in p, q),
    storage exp(-f phi) / dt, the top link B(x_top) exp(-f phi)."""

    def __init__(self, solver, M, Ghat, diag, r0, s, Bt, Btm, Bab, key):
        self.solver, self.M, self.Ghat, self.diag, self.r0, self.s = solver, M, Ghat, diag, r0, s
        self.geo, self.index = solver.geo, None  # its voxels; index: theirs among all free voxels (a window's)
        self.mg = solver._mg_c  # its voxels' c multigrid (a window's; `finish` may run after the window's scope)
        self.Bt, self.Btm, self.Bab = Bt, Btm, Bab
        self.key = key  # (the solver's `_key`, drawn by the calling thread)
        self.mdiag = M.diagonal()
        self.dominant = diag.min() / self.mdiag.max() > 0.02  # I/dt dominates: Jacobi-CG
        self.schur = None  # (extra diagonal, matrix, key) of the last Schur system
        self.slotboom = None  # (w, links, top) of the multigrid's system, made on its first solve

    def apply(self, dc):
        """M dc (unscaled)."""
        return self.M.apply(self.s * dc) / self.s

    def solve(self, rhs, extra=None, guess=None):
        """dc with (M + diag(extra)) dc = rhs; with ``extra`` (an iteration's correction) to
        the inexact-Newton tolerance SCHUR_RTOL.  ``guess``: a starting dc for the iterative
        solvers (the iterations' last dc for the final solve)."""
        lin, mg = self.solver._lin["c"], self.mg
        if mg is not None:
            return self._solve_multigrid(lin, mg, rhs, extra, guess)
        if extra is None:
            x0 = None if guess is None else self.s * guess
            return lin.solve(self.M, self.s * rhs, self.key, rtol=FINAL_RTOL, dominant=self.dominant,
                             x0=x0) / self.s
        if self.schur is None or self.schur[0] is not extra:
            g = self.geo
            K = LinkMatrix(g.pattern, *self.solver._ab, self.Ghat, self.diag + extra)
            self.schur = (extra, K, self.solver._key())
        return lin.solve(self.schur[1], self.s * rhs, self.schur[2], rtol=SCHUR_RTOL, dominant=self.dominant,
                         kind="schur") / self.s

    def _solve_multigrid(self, lin, mg, rhs, extra, guess):
        g, dt = self.geo, self.solver._dt
        if self.slotboom is None:  # the same for all of a step's solves
            w = 1.0 / self.s**2  # exp(-f (phi - phi0)): c = w u
            top = np.zeros(g.n)
            if self.solver.top_reservoir and g.ctop.size:
                top[g.ctop] = self.Bt * w[g.ctop]
            self.slotboom = (w, kernels.gather_times(self.Bab, w, g.a), top)  # Bab w[a]
        w, links, top = self.slotboom
        key = (self.key, id(extra))
        if self.solver._mg_c_key != key:
            storage = w / dt if extra is None else w * (1.0 / dt + extra)
            # the final solve after the same step's Schur solves: its operator differs only in
            # the interface's storage, so it keeps their coarse levels (a set-up saved per
            # attempt); a step's Schur operator keeps the last steps' while that costs at most
            # a V-cycle per solve (`C_REUSE`)
            last, reuse = self.solver._mg_c_key, self.solver._mg_c_reuse
            final = extra is None and last is not None and last[0] == self.key
            rebuild = not final and reuse.rebuild()
            mg.set_operator(g.slots, links, storage, top, hierarchy=rebuild)
            if not final:
                reuse.built(rebuild)
            self.solver._mg_c_key = key
            first = extra is not None
        else:
            first = False
        du = lin.solve(None, rhs, key, rtol=FINAL_RTOL if extra is None else SCHUR_RTOL, multigrid=mg,
                       x0=None if guess is None else guess / w)
        if first:
            self.solver._mg_c_reuse.solved(lin.cycles)
        return w * du

    def finish(self, rhs, dc):
        """The step's dc: the transport of the final sink ``rhs`` solved from the iterations' dc,
        shifted so that its Li+ balance holds to round-off (`balance_shift`)."""
        dc = self.solve(rhs, guess=dc)
        dc += self.balance_shift(dc, rhs)
        return dc

    def balance_shift(self, dc, rhs):
        """The uniform shift of dc that makes the residual of M dc = rhs sum to zero: the Li+
        balance then holds to round-off whatever the solve's tolerance (`FINAL_RTOL`).  The
        residual's sum is the Li+ the step would create; a uniform shift changes it by the
        storage n/dt (links carry Li+ from voxel to voxel) plus the top links."""
        storage = self.r0.size / self.solver._dt + (np.sum(self.Bt) if np.ndim(self.Bt) else 0.0)
        return float(np.sum(rhs - self.apply(dc))) / storage

    def inflow(self, c_new):
        """Li+ entering through the top [mol/s] for the end-of-step c (on all free voxels)."""
        g = self.geo
        if not (self.solver.top_reservoir and g.ctop.size):
            return 0.0
        top = g.ctop if self.index is None else self.index[g.ctop]
        return -float(np.sum(self.Bt * c_new[top] - self.Btm)) * g.h**3


class PhaseFieldSolver:
    """The phase-field model on one host geometry; SI throughout.

    ``phase``: project phase codes on the grid ``(nx, ny, nz)`` (2D: ny = 1).  ``xi`` (full grid)
    defaults to the equilibrium profile around the LITHIUM voxels;
    ``c`` to c0 (1 - h(xi)).  ``eta_nuc`` [V] and ``activity`` are per-voxel arrays read on
    conductive host voxels; ``bond_cell``: edge, in voxels, of the cells on which the host
    contacts' coordination is counted (with ``params.contact_bond_shift``, see
    `Geometry.update_coordination`; it must divide every axis longer than 1).  ``top_reservoir``:
    Dirichlet c_top, phi_top half a voxel above the top layer (default) or a closed, insulating
    top.  ``rng``: seed or numpy Generator of the
    Langevin noise (used when ``params.noise_amplitude > 0``) and of the shot noise.
    ``shot_noise_cell`` (0: off) and ``shot_noise_interval`` [s]: every interval, each cubic cell
    of that many voxels per edge puts a normal draw of metal volume, of the Poisson variance of
    its gross front events over the interval, on its stretch of the interface (`_shot_noise`,
    the fluctuations of a lattice of such cells).  ``linear_solver``: 'auto'
    (LU up to ``direct_max`` unknowns, 4000 by default, a million for columns; above, CG with
    the voxel-grid multigrid for c and phi, Jacobi or AMG for xi), 'direct', 'amg' or
    'jacobi'.  Tolerances: per-step local error of xi (absolute), of c (relative to c0), and of
    eta at the interface [V]; steps start at ``dt_initial`` and stay below ``dt_max`` [s].
    ``settled_window`` (an attribute): the (xi, c) step solves above settled lithium only
    (`_window`; False: on the whole grid always).
    """

    settled_window = True
    # ...and a second thread for the step's independent passes where that is safe (`_overlap`):
    # phi's solve beside c's final one, c's operator beside xi's Jacobian, the c residual beside xi's
    threaded_stepping = True
    _floating_conductor = None  # `_floating`: None until first looked at
    _thread = None  # this attempt's second thread (`_attempt`)
    _jobs = ()  # ...and its passes there
    _cpu = staticmethod(time.process_time)  # the parts' clock (`_tick`)
    _win = None  # the window the last attempt solved on (`geometry.Window`); None: the whole grid

    def __init__(self, phase, spacing: float, params: PhaseFieldParameters = HONG2018, *, xi=None, c=None,
                 eta_nuc=None, activity=None, bond_cell: int = 1, top_reservoir: bool = True, top_concentration=None,
                 top_potential: float = 0.0, cell_potential: float = 0.0, rng=0, shot_noise_cell: int = 0,
                 shot_noise_interval: float = 0.0, linear_solver: str = "auto", direct_max: int | None = None,
                 dt_initial: float = 1e-4,
                 dt_max: float = 10.0, tol_xi: float = 2e-3, tol_c: float = 2e-2, tol_eta: float = 2e-3):
        if not isinstance(params, PhaseFieldParameters):
            raise TypeError("params must be a PhaseFieldParameters")
        if not spacing > 0:
            raise ValueError(f"spacing = {spacing!r} is out of range: must be > 0 [m]")
        for name, v in (("dt_initial", dt_initial), ("dt_max", dt_max), ("tol_xi", tol_xi),
                        ("tol_c", tol_c), ("tol_eta", tol_eta)):
            if not v > 0:
                raise ValueError(f"{name} = {v!r} is out of range: must be > 0")
        phase = np.ascontiguousarray(phase, dtype=np.uint8)
        self.params, self.phase, self.spacing = params, phase, float(spacing)
        self.geo = g = Geometry(phase, self.spacing, params, eta_nuc, activity, bond_cell)
        self._ab, self._pab = (unsigned(g.a), unsigned(g.b)), (unsigned(g.pa), unsigned(g.pb))  # kernels' link ends
        self.top_reservoir = bool(top_reservoir)
        self.top_concentration = params.bulk_concentration if top_concentration is None else float(top_concentration)
        self.top_potential = float(top_potential)
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self._set_shot_noise(shot_noise_cell, shot_noise_interval)
        # direct LU for columns and small grids, as the project's solvers do (continuum/fv.py)
        dmax = direct_max if direct_max is not None else (10**6 if phase.shape[0] * phase.shape[1] <= 16 else 4000)
        self._lin = {k: LinearSolver(linear_solver, n, dmax) for k, n in (("xi", g.n), ("c", g.n), ("phi", g.np_))}
        # phi's operator is a weighted graph Laplacian on voxels with contrast 1e6: the project's
        # coefficient-aware geometric multigrid (continuum/multigrid.py) preconditions it.  Its
        # hierarchy is rebuilt every attempt: coarsest at most 64 cells (a 169-cell dense inverse
        # per build cost 1 ms on a 200^2 grid, and phi took more V-cycles)
        self._mg = self._mg_c = None
        # a 2D grid (ny = 1) solves in this thread with the interleaved sweep (`mg_kernels.pcg`'s
        # plane specialisation): at 200^2 two threads cost 15 % more CPU per attempt, no less wall
        plane = phase.shape[1] == 1
        if not self._lin["phi"].direct and linear_solver == "auto":
            self._mg = VoxelMultigrid(phase.shape, g.pidx, coarse_max=64, plane=plane)
            self._mg_key = None
        # phi's hierarchy kept up to PHI_REUSE steps (fine level replaced) at <= 2 more V-cycles
        self._mg_reuse = HierarchyReuse(PHI_REUSE, 2)
        self._mg_c_reuse = HierarchyReuse(C_REUSE, 1)
        if not self._lin["c"].direct and linear_solver == "auto":  # c in the Slotboom variable
            self._mg_c = VoxelMultigrid(phase.shape, g.free, coarse_max=64, plane=plane)
            self._mg_c_key = None
        self.dt_max, self._dt_next = float(dt_max), float(dt_initial)
        # step-size control's memory: the last accepted step's error, and whether the attempt
        # before this one was rejected (see `_next_step`)
        self._err_prev, self._after_rejection = 1.0, False
        self.tol = {"xi": float(tol_xi), "c": float(tol_c), "eta": float(tol_eta)}
        if xi is None:
            xi = order_parameter_from_mask(phase, phase == LITHIUM, self.spacing, params)
        xi = np.asarray(xi, dtype=np.float64)
        if xi.shape != phase.shape:
            raise ValueError(f"xi has shape {xi.shape}, the grid is {phase.shape}")
        self.xi = xi.ravel()[g.free].copy()
        g.set_wetting(self.xi < 0.5)  # host faces under lithium at the start are not bare
        g.update_coordination(self.xi)
        if c is None:
            self.c = params.bulk_concentration * (1.0 - interpolation(self.xi))
        else:
            self.c = np.broadcast_to(np.asarray(c, dtype=np.float64), phase.shape).ravel()[g.free].copy()
        self.t = 0.0
        self.cell_potential = float(cell_potential)
        self.charge = 0.0  # Faradaic charge passed [C], > 0 anodic
        self.top_inflow = 0.0  # Li+ that entered through the top [mol]
        self.boundary_charge = 0.0  # charge into the potential problem through its boundaries [C]
        self.boundary_gross = 0.0  # the same, absolute values of collector and top summed [C]
        self.current_density = 0.0  # Faradaic, last step [A/m^2]
        self.steps = self.rejected = self.discarded_potential_solves = 0  # discarded: phi solves, see `_overlap`
        self.iterations = 0  # (xi, c) iterations, summed over steps
        self.timing = {"order parameter": 0.0, "galvanostat": 0.0, "potential": 0.0,
                       "concentration": 0.0, "error control": 0.0}
        self._history = ()  # (dt, dxi, dc, dphi) of the last MAX_ORDER accepted steps, newest first
        self._order_next = MAX_ORDER  # the order the next steps take where the history allows it
        self._order = 1  # of the step just attempted (its error goes as dt^(order + 1))
        self._control = None
        self._keys = 0  # numbers assembled matrices, so a cached factorisation is never reused wrongly
        self._psi = None
        self._mixer = Anderson(depth=2)  # the (xi, c) iterations' (its arrays kept from step to step)
        self._xi_links = None  # (links, extra diagonal, their LinkGrid) of xi's gradient term (`_jacobian`)
        self._psi_start = np.zeros(g.np_)  # the last psi: where the next one's solve starts
        self._zero = None  # `_zeros`
        self._source = np.zeros(g.n)  # F c_s dxi/dt of the last step [A/m^3], for re-solving phi
        self._psys = self._potential_system(self.xi)
        self.phi, _ = self._solve_potential(self._psys, np.zeros(g.np_), self.cell_potential, self._source)
        self._initial = (self.lithium_amount(), self.ion_amount())

    def _set_shot_noise(self, cell, interval):
        """The shot noise's cells (`_shot_noise`; ``cell`` 0: off), validated; its counters."""
        g = self.geo
        self._shot_cells = None
        if cell != 0:
            if not (np.isfinite(interval) and interval > 0):
                raise ValueError(f"shot_noise_interval = {interval!r} is out of range: must be > 0 [s] "
                                 "with shot_noise_cell > 0")
            of, cs, k = coarse_cells(self.phase.shape, cell, "shot_noise_cell")
            self._shot_cells = (of[g.free], cs[0] * cs[1] * cs[2], float(np.prod(k)))
        self.shot_noise_cell, self.shot_noise_interval = int(cell), float(interval)
        self.kicks = 0  # shot-noise kicks due so far
        self.kicks_dropped = 0  # of those, dropped because phi of the kicked state could not be solved

    def set_top(self, *, potential: float | None = None, concentration: float | None = None):
        """Change the top boundary's potential [V] or Li+ concentration [mol/m^3] (e.g. from a
        separator model) between calls to `advance`; phi is re-solved at once."""
        if concentration is not None:
            if not concentration >= 0:
                raise ValueError(f"top concentration = {concentration!r} is out of range: "
                                 "must be >= 0 [mol/m^3]")
            self.top_concentration = float(concentration)
        if potential is not None and float(potential) != self.top_potential:
            self.top_potential = float(potential)
            self.phi, _ = self._solve_potential(self._psys, self.phi, self.cell_potential, self._source)

    # -- potential ----------------------------------------------------------------------
    def _key(self):
        self._keys += 1
        return self._keys

    def _potential_system(self, xi):
        """Matrix and boundary conductances of the potential problem for order parameter xi."""
        g, p = self.geo, self.params
        xf = np.ones(g.np_)
        xf[g.pfree] = xi
        # (a compiled function's array carries its own float64 descriptor, which numpy's ufunc.at
        # (the multigrid's face sums) does not take on its fast path: 100x slower; a view is numpy's)
        G = kernels.potential_links(*self._pab, xf, p.conductivity_solid, p.conductivity_electrolyte,
                                    g.h**2).view(np.float64)

        def sigma(cells):
            hv = interpolation(xf[cells])
            return p.conductivity_solid * hv + p.conductivity_electrolyte * (1.0 - hv)

        gbot = 2.0 * sigma(g.pbot) / g.h**2
        gtop = 2.0 * sigma(g.ptop) / g.h**2 if self.top_reservoir else np.zeros(g.ptop.size)
        diag = np.zeros(g.np_)
        diag[g.pbot] += gbot
        diag[g.ptop] += gtop
        return LinkMatrix(g.ppattern, *self._pab, G, diag), G, gbot, gtop, self._key()

    def _solve_potential(self, psys, phi0, V, source, top=None, accuracy=None, window=None):
        """phi with the current system for collector potential V and source F c_s dxi/dt
        [A/m^3] on free voxels, from phi0; returns (phi, charge inflow rate through boundaries
        [A]).  ``accuracy``: instead of the balances' tolerance, a residual of this fraction
        of the boundary driving (for psi, which only linearises eta in V).  ``window``: the
        step's `geometry.Window`, whose phi system (`geometry.PotentialWindow`, where it has
        one) is solved instead, the settled slab below eliminated, while the slab's drop shows
        that exact to microvolts."""
        pw = None if window is None else window.phi
        if pw is None:
            return self._solve_phi(self.geo, self._pab, self._mg, psys, phi0, V, source, top, accuracy)
        _, G, gbot, gtop, key = psys
        along = pw.reduce(G, gbot)
        Gw = G[pw.links]
        diag = np.zeros(pw.np_)
        diag[pw.pbot] += 1.0 / along[:, -1]
        diag[pw.ptop] += gtop
        wsys = LinkMatrix(pw.ppattern, *pw.pab, Gw, diag), Gw, 1.0 / along[:, -1], gtop, key
        solve = partial(self._solve_phi, pw, pw.pab, pw.mg, wsys, V=V, source=source[pw.source], top=top,
                        accuracy=accuracy)
        start = phi0[pw.index]
        lateral = pw.lateral(G, gbot) if pw.exact else None
        phi, charge = solve(start, lateral=None if lateral is None else lateral[0])
        # the columns alone leave out current crossing between them inside the slab, which moves
        # phi by at most the slab's own drop: microvolts under a Faradaic current, but hundreds of
        # mV where the metal shorts the collector to the top (Hong's cell as its front meets the
        # top, where the columns' phi was 25-29 mV off the whole grid's).  Over SLAB_DROP tol_eta
        # (20 uV) the window's phi takes those currents from then on where it can (a uniform 2D
        # slab, `PotentialWindow.lateral`, exact), else goes back to the whole grid for the
        # window's life (so does a failed solve)
        drop = np.max(np.abs(V - phi[pw.pbot]), initial=0.0) if phi is not None and lateral is None else 0.0
        if drop > SLAB_DROP * self.tol["eta"]:
            lateral = pw.lateral(G, gbot)
            pw.exact = lateral is not None
            phi, charge = solve(phi, lateral=lateral[0]) if pw.exact else (None, None)
        if phi is None:
            window.phi = None
            return self._solve_phi(self.geo, self._pab, self._mg, psys, phi0, V, source, top, accuracy)
        return pw.expand(phi, V, along, self.geo.np_, lateral), charge

    def _solve_phi(self, g, pab, mg, psys, phi0, V, source, top, accuracy, lateral=None):
        """`_solve_potential` on the phi unknowns of ``g`` (the geometry, or a window's phi system)
        with its link ends ``pab`` and multigrid ``mg`` (None: none).  ``lateral``: a window's
        dense correction C of its bottom cells' links (`PotentialWindow.lateral`), solved by
        `_pcg_lateral` (None returned where that fails)."""
        K, G, gbot, gtop, key = psys
        top = self.top_potential if top is None else top
        h = self.geo.h
        res = np.zeros(g.np_)
        res[g.pfree] -= source
        kernels.potential_residual(*pab, G, phi0, res)
        res[g.pbot] += gbot * (V - phi0[g.pbot])
        if lateral is not None:
            res[g.pbot] -= lateral @ (phi0[g.pbot] - V)
        res[g.ptop] += gtop * (top - phi0[g.ptop])
        # Tolerance on the residual itself: 1e-9 of the Faradaic source and 1e-13 of the
        # boundary driving.  The collector-to-top current can be 1e3 times the Faradaic one;
        # the charge balance of the two boundaries is as good as the residual's sum.
        drive = np.linalg.norm(gbot * V) + np.linalg.norm(gtop * top)
        target = 1e-9 * np.linalg.norm(source) + 1e-13 * drive
        rnorm = np.linalg.norm(res)
        # a floating conductor's level is an outlier of the V-cycle-preconditioned operator that CG
        # finds only late: a residual of 1e-6 of itself or a move of microvolts left it 16 mV off
        # (docs/phasefield.md "Floating conductors"); there only the residual target stops it
        floating = self._floating()
        rtol = float(np.clip(target / rnorm, 1e-12, 1.0 if floating else PHI_RTOL_MAX)) if rnorm > 0 else 1e-12
        if accuracy is not None:
            if rnorm <= accuracy * drive:
                return phi0.copy(), (0.0, 0.0)
            rtol = float(np.clip(accuracy * drive / rnorm, 1e-12, 0.1))
        if mg is not None and self._mg_key != (mg is self._mg, key):  # (the grid's or a window's)
            top_g = np.zeros(g.np_)
            top_g[g.ptop] = gtop
            bot = np.zeros(g.np_)
            bot[g.pbot] = gbot
            rebuild = self._mg_reuse.rebuild()
            mg.set_operator(g.pslots, G, bot, top_g, hierarchy=rebuild)
            self._mg_reuse.built(rebuild)
            self._mg_key = (mg is self._mg, key)
        xtol = PHI_XTOL * self.tol["eta"] if accuracy is None and not floating else 0.0
        if lateral is None:
            dphi = self._lin["phi"].solve(K, res, key, rtol=rtol, multigrid=mg, xtol=xtol)
        else:
            dphi = _pcg_lateral(K, lateral, g.pbot, mg, res, rtol, xtol, self._lin["phi"])
            if dphi is None:
                return None, None
        if mg is not None and accuracy is None:
            self._mg_reuse.solved(self._lin["phi"].cycles)
        phi = phi0 + dphi
        gsum = gbot.sum() + gtop.sum()
        if accuracy is None and gsum > 0:  # (C's rows sum to 0: a shift moves no current between columns)
            # the boundaries' current equals the Faradaic one when the residual sums to zero:
            # a uniform shift of phi (nanovolts) closes the balance to round-off whatever the
            # solve's tolerance
            excess = np.sum(gbot * (V - phi[g.pbot])) + np.sum(gtop * (top - phi[g.ptop])) - source.sum()
            phi += excess / gsum
        i_bot, i_top = np.sum(gbot * (V - phi[g.pbot])) * h**3, np.sum(gtop * (top - phi[g.ptop])) * h**3
        return phi, (i_bot + i_top, abs(i_bot) + abs(i_top))

    def _floating(self):
        """Whether phi's system holds a conductor cut off from the collector, whose level phi's
        multigrid CG finds late (`_solve_phi`): a component of conductive host and metal (xi >
        1/2) that misses the collector's row (a floating host, detached metal).  Looked at on
        the first solve and again where metal dissolved (`_track_detached`); once seen it is
        kept (the state dict carries it)."""
        if self._floating_conductor is None:
            self._floating_conductor = self._conductor_floats(self.xi)
        return self._floating_conductor

    def _conductor_floats(self, xi):
        metal = (self.phase == HOST_CONDUCTIVE).ravel()
        metal[self.geo.free] = xi > 0.5
        metal = metal.reshape(self.phase.shape)
        return bool(np.any(metal & ~collector_connected(np.where(metal, HOST_CONDUCTIVE, ELECTROLYTE))))

    def _track_detached(self, xi_old, xi_new):
        """Look for detached metal again where a voxel's metal dissolved (xi fell through 1/2)."""
        if not self._floating_conductor and np.any((xi_old > 0.5) & (xi_new <= 0.5)):
            self._floating_conductor = self._conductor_floats(xi_new)

    def _unit_response(self, window=None):
        """psi: d phi / d V at fixed source (collector at 1 V, top at 0, no source), from the
        last step's psi, to 1e-8 of the driving: an error dpsi moves eta by (V - V^n) dpsi,
        microvolts at most, against the 2 mV of tol_eta (it was solved from zero to 1e-12,
        which on a porous host cost more than phi itself)."""
        if self._psi is None:
            self._psi, _ = self._solve_potential(self._psys, self._psi_start, 1.0, np.zeros(self.geo.n),
                                                 top=0.0, accuracy=1e-8, window=window)
            self._psi_start = self._psi
        return self._psi

    # -- order parameter ------------------------------------------------------------------
    def _reaction(self, xi, c, eta, act, derivatives=True):
        return _reaction(self.geo, self.params, xi, c, eta, act, derivatives)

    def _jacobian(self, xi, c, eta, act, dt):
        """J = I/dt + L_sigma (kappa L + g''(xi)) + dR/dxi, the xi-Jacobian of the implicit
        Euler residual at fixed c.  The Allen-Cahn part is exact: near a stable front it is
        positive semi-definite with a zero eigenvalue on the front's translation, so the
        iterations converge along that mode in one go whatever dt (a stabilised or clipped
        g'' would give it an eigenvalue lambda and a contraction of only lambda dt /
        (1 + lambda dt) per iteration).  The host contacts' rows (the wetting layer, no
        Allen-Cahn force) are diagonal; the free voxels' dependence on them is left out
        (`_gradient_links`).  Returns J, its key, its diagonal without the links and B = -dR/dc
        on ``act`` (the Schur diagonal's, from the same reaction call)."""
        g, p = self.geo, self.params
        if self._xi_links is None:  # the gradient term's links: fixed by the geometry
            links, cut = _gradient_links(g, _allen_cahn_coefficients(g, p)[0])
            grid = None if self._lin["xi"].direct else LinkGrid(g.shape, g.free, g.slots, links,
                                                                 self._lin["xi"].jacobi)  # Jacobi-CG's
            self._xi_links = links, cut, grid
        links, cut, grid = self._xi_links
        _, dR, B = self._reaction(xi, c, eta, act)
        # 1/dt + `_double_well_curvature` + dR on act, and that plus the cut links, in one pass
        _, well, wall = _allen_cahn_coefficients(g, p)
        diag, total = kernels.jacobian_diagonal(xi, g.contact, well, wall, bool(p.wall_tension), g.n_host, act, dR,
                                                1.0 / dt, cut)
        return LinkMatrix(g.pattern, *self._ab, links, total, grid), self._key(), diag, B

    def _noise(self, xi, dt):
        """Langevin increment on the interface: amplitude sqrt(tau dt) U(-1/2, 1/2) 4 xi (1 - xi),
        tau = noise_time, so a step of tau draws Hong's per-step noise and the variance per unit
        time does not depend on dt.  Not on the host contacts: the wetting layer is not a diffuse
        interface, and nothing there would restore it (docs/phasefield.md "Host contact")."""
        p = self.params
        if p.noise_amplitude == 0.0:
            return np.zeros(self.geo.n)
        # amplitude * (u - 1/2) * max(4 xi (1 - xi), 0) * ~contact in one pass, numpy's numbers
        return kernels.noise_increment(self.rng.random(self.geo.n), xi, self.geo.contact,
                                       p.noise_amplitude * np.sqrt(p.noise_time * dt))

    def _interface_slope(self):
        """|grad xi| [1/m] on the free voxels from their free neighbours: D sum(dxi^2) / (n h^2)
        over a voxel's n links (D the grid's dimensions; exact for a linear xi with every
        neighbour free)."""
        g = self.geo
        d2 = (self.xi[g.b] - self.xi[g.a]) ** 2
        s = np.bincount(g.a, weights=d2, minlength=g.n) + np.bincount(g.b, weights=d2, minlength=g.n)
        links = np.bincount(g.a, minlength=g.n) + np.bincount(g.b, minlength=g.n)
        dims = sum(n > 1 for n in g.shape)
        return np.sqrt(dims * s / np.maximum(links, 1)) / g.h

    def _shot_noise(self):
        """One interval's shot noise (docs/phasefield.md "Shot noise"): per cell of
        ``shot_noise_cell`` voxels per edge (a lattice voxel) a normal draw of metal volume with
        the variance of its events' Poisson count over T, k T cell volumes^2, k the cell's gross
        front event rate in cell volumes per second (`kernels.front_event_rate` summed over its
        voxels, times PROJECTED_RATE), spread over the cell's stretch of the interface in
        proportion to |grad xi| (a translation of the profile along its normal, which excites no
        profile relaxation); a front spread over several cells so keeps the variance of its
        total.  The draws' net
        volume is taken off everywhere in proportion to |grad xi|: the kick moves metal and
        passes no charge (c untouched; lithium and charge conserved to round-off).  Not on the
        host contacts (the wetting layer is no diffuse interface).  A kick is a jump of the
        state: the steps restart (no BDF history) and phi is re-solved on a fresh multigrid
        hierarchy; where no solver reaches it, the kick is dropped and counted
        (``kicks_dropped``)."""
        g, p = self.geo, self.params
        cells, ncell, size = self._shot_cells
        eta = kernels.gather(self.phi, g.pfree)
        rate = kernels.front_event_rate(self.xi, self.c, eta, g.front_cathodic, g.front_anodic, p.kinetic_coefficient,
                                        p.alpha_a * p.f, p.alpha_c * p.f, p.bulk_concentration)
        rate[g.contact] = 0.0
        k = np.bincount(cells, weights=rate, minlength=ncell) * (PROJECTED_RATE / size)
        z = self.rng.standard_normal(ncell)
        slope = np.where(g.contact, 0.0, self._interface_slope())
        area = np.bincount(cells, weights=slope, minlength=ncell)  # each cell's interface (|grad xi| summed)
        self.kicks += 1
        weight = area.sum()
        if not weight > 0:
            return
        # volume in voxels per unit of |grad xi|: a cell's draw of z sqrt(k T) cell volumes over its interface
        per_slope = np.divide(z * np.sqrt(k * self.shot_noise_interval) * size, area, out=np.zeros(ncell),
                              where=area > 0)
        dxi = (per_slope[cells] - np.dot(per_slope, area) / weight) * slope
        # within [0, 1] (or where xi already is), the clipped excess taken off the other side's
        # increments in proportion: a zero sum to round-off
        xi = self.xi
        dxi = np.clip(xi + dxi, np.minimum(xi, 0.0), np.maximum(xi, 1.0)) - xi
        net = dxi.sum()
        side = dxi > 0 if net > 0 else dxi < 0
        total = dxi[side].sum()
        if net != 0.0 and total != 0.0:
            dxi[side] *= 1.0 - net / total
        xi_new = xi + dxi
        self._track_detached(xi, xi_new)
        psys = self._potential_system(xi_new)
        self._forget_window()  # a jump of the state: the multigrids' hierarchies built afresh
        try:
            phi, _ = self._solve_potential(psys, self.phi, self.cell_potential, self._source)
        except FloatingPointError:  # no solver reaches phi of the kicked state: the kick is dropped
            self.kicks_dropped += 1
            return
        self.xi, self.phi, self._psys, self._psi = xi_new, phi, psys, None
        self._history, self._order_next, self._err_prev = (), MAX_ORDER, 1.0

    def _bracket(self, fun, V0, limit=10.0):
        lo, hi, step = V0 - 0.01, V0 + 0.01, 0.02
        while fun(lo) > 0.0:
            lo -= step
            step *= 2.0
            if lo < -limit:
                raise GalvanostatError(f"galvanostat: no cell potential above {-limit} V carries the "
                                   "applied current")
        step = 0.02
        while fun(hi) < 0.0:
            hi += step
            step *= 2.0
            if hi > limit:
                raise GalvanostatError(f"galvanostat: no cell potential below {limit} V carries the applied "
                                   "current (nothing left to strip?)")
        return lo, hi

    def _cell_potential(self, w, goal, R_of, act):
        """Galvanostat: V with w.R(V) = goal, where sum(dxi) = ... - w.R(V) must equal the
        target; R grows monotonically with V (psi >= 0) and w = J^-1 1 >= 0 (J an SPD matrix
        with non-positive off-diagonals), so this is a bracketed scalar root."""
        wa = w[act]

        def excess(V):
            return wa @ R_of(V) - goal

        return brentq(excess, *self._bracket(excess, self.cell_potential), xtol=1e-13, rtol=1e-15, maxiter=200)

    # -- concentration --------------------------------------------------------------------
    def _transport(self, xi, phi, c, dt, key=None):
        """Implicit-Euler operator for c over one step: Scharfetter-Gummel link fluxes (exact
        for the Boltzmann equilibrium c ~ exp(-f phi)) with phi of the step's start, Dirichlet
        c_top at the top.  With c = exp(-f phi/2) v the matrix is symmetric (off-diagonal
        D (x/2)/sinh(x/2) / h^2, x = f dphi) and goes to the SPD solver.  Returns an object
        with ``solve(rhs, extra)`` for (M + diag(extra)) dc = rhs, ``apply(dc)`` = M dc,
        ``r0``: the flux divergence at ``c`` (so the Li+ balance of dc is exact to the solver's
        tolerance), and ``inflow(c_new)``: Li+ entering through the top [mol/s]."""
        g, p = self.geo, self.params
        f = p.f
        # the symmetric scaling exp(f phi / 2) (about the middle of phi's range); its ratios give
        # the links' exp(x / 2) unless the exponent was clipped (a span of phi above 30 V)
        u = 0.5 * f * (phi - 0.5 * (phi.max() + phi.min()))
        s = np.exp(np.clip(u, -300.0, 300.0))
        half = s if np.max(np.abs(u), initial=0.0) < 300.0 else np.empty(0)
        Bab, Ghat, res, diag = kernels.transport_links(*self._ab, xi, phi, c, half, 1.0 / dt, p.diffusivity_solid,
                                                       p.diffusivity_electrolyte, g.h**2, f)
        Bt = Btm = 0.0
        if self.top_reservoir and g.ctop.size:
            ht = interpolation(xi[g.ctop])
            kt = 2.0 * (p.diffusivity_solid * ht + p.diffusivity_electrolyte * (1.0 - ht)) / g.h**2
            xt = f * (self.top_potential - phi[g.ctop])
            Bt, Btm = kt * bernoulli(xt), kt * bernoulli(-xt) * self.top_concentration
            res[g.ctop] -= Bt * c[g.ctop] - Btm
            diag[g.ctop] += Bt
        self._dt = dt
        return _Transport(self, LinkMatrix(g.pattern, *self._ab, Ghat, diag), Ghat, diag, res, s, Bt, Btm, Bab,
                          self._key() if key is None else key)

    # -- stepping -------------------------------------------------------------------------
    def _zeros(self):
        """A zero vector on the free voxels, kept (read by the kernels only: never write it)."""
        if self._zero is None:
            self._zero = np.zeros(self.geo.n)
        return self._zero

    def _residuals(self, xi, dxi, c_start, dc, eta0, psi, dV, dt, tr, xi_hist):
        """G (xi equation, 1/s) and H (c equation, mol/(m^3 s)) at the iterate (dxi, dc),
        with R and B on the active voxels ak of xi + dxi.  ``dt``: the implicit-Euler length
        dt/a of the scheme, ``xi_hist`` its history term (`_scheme`)."""
        g, p = self.geo, self.params
        hist = xi_hist if np.ndim(xi_hist) else self._zeros()
        k, well, wall = _allen_cahn_coefficients(g, p)
        # one compiled pass: x, the active voxels (`_active`), R and B there (`_reaction`, at
        # c = c_start + dc), G
        M = tr.M  # (H on the second thread while this one makes G)
        args = M.a, M.b, M.G, M.total, tr.s, dc, tr.r0, dxi, p.solid_concentration, dt
        job = self._submit(kernels.concentration_residual, *args)
        G, R, B, ak, x = kernels.order_parameter_residual(
            xi, dxi, hist, dt, c_start, dc, eta0, psi, float(dV), g.contact, *self._ab, k, well, wall, g.n_host,
            g.face_weight, g.cathodic_factor, g.anodic_factor, g.front_cathodic, g.front_anodic, p.kinetic_coefficient,
            p.alpha_a * p.f, p.alpha_c * p.f, p.bulk_concentration)
        H = self._joined(job, "concentration", kernels.concentration_residual, *args)
        return G, H, R, B, ak, x

    def _coupled_step(self, control, dt, noise, sch, phi_pred):
        """Implicit Euler (or BDF-k, ``sch`` from `_scheme`: implicit Euler of length dt/a with
        the history's source, written below with dt for dt/a) for (xi, c) together, phi
        lagged (the reaction's at ``phi_pred``, `_extrapolated_potential`): find dxi, dc with
        ``G = dxi/dt - F_ac(xi + dxi) + R(xi + dxi, c + dc, V) = 0`` and
        ``H = M dc - r0 + c_s dxi/dt = 0`` (c's implicit transport with the sink c_s dxi/dt).

        Block Gauss-Seidel Newton iterations, c first: with J's diagonal standing in for J,
        eliminating the xi correction gives ``(M + c_s theta B) Dc = -H + c_s theta G``,
        theta = 1 / (dt J_pp) -- one SPD solve that holds the stiff loop of reaction,
        depletion and transport exactly; then ``J Dxi = -G + B Dc`` with the exact xi-Jacobian
        (the galvanostat's V is the root that makes sum(dxi) pass the applied charge).
        Anderson mixing accelerates; stop when the next correction, estimated from the
        residuals, is below half the tolerance and 1 % of the increment (at most 6
        iterations).  Returns (V, dxi, dc, eta on act, act, transport, estimated remaining
        correction / tol, the final sink): `_Transport.finish` then makes dc exactly the
        transport of that sink (`_attempt`, beside phi's solve)."""
        p, g = self.params, self.geo
        clock = self._cpu()
        xi = self.xi
        c_start = kernels.minus_times(self.c, p.solid_concentration, noise)  # noise's Li+ leaves its voxel
        dt_full, dt, xh = dt, dt / sch["a"], sch["xi"]
        phi_n = kernels.gather(self.phi, g.pfree)  # phi on the free voxels (read only): the ions' drift
        # c's operator on the second thread while this one makes xi's Jacobian (its key drawn here)
        args = xi, phi_n, c_start, dt, self._key()
        job = self._submit(self._transport, *args)
        eta0 = kernels.gather(phi_pred, g.pfree)  # the reaction's eta at V^n (`_extrapolated_potential`)
        galvanostatic = isinstance(control, Galvanostatic)
        Vn = self.cell_potential
        V = Vn if galvanostatic else float(control.potential)
        psi = self._unit_response()[g.pfree] if V != Vn or galvanostatic else self._zeros()
        cs = p.solid_concentration
        target = (-control.current_density * g.footprint * dt_full / (FARADAY * cs * g.h**3)
                  - noise.sum()) if galvanostatic else None
        act = _active(g, xi)
        J, key, Jd, B0 = self._jacobian(xi, c_start, kernels.potential_on(eta0, psi, V - Vn, act), act, dt)
        # the Schur diagonal c_s theta B, taken at the step's start for all iterations (one
        # matrix per step; the iterations correct for its drift)
        # c_s theta of the Schur complement per voxel, cs / max(dt Jd, 1), and its extra diagonal
        theta, extra = kernels.schur_setup(Jd, dt, cs, act, B0)
        dominant = 1.0 / dt > 0.02 * Jd.max()  # I/dt dominates: Jacobi-CG
        w = self._lin["xi"].solve(J, np.ones(g.n), key, dominant=dominant) if galvanostatic else None
        clock = self._tick("order parameter", clock)
        tr = self._joined(job, "concentration", self._transport, *args)
        if sch["order"] >= 2:  # the BDF history's Li+ per time: (its dc + c_s dxi) / (dt/a)
            tr.r0 = tr.r0 + (sch["c"] + p.solid_concentration * xh) / dt
        # xi starts from the last steps' increments extrapolated to this dt (a predictor; c's
        # increment, started likewise, made a galvanostatic front's steps collapse after a
        # transient of c: its increments are no guide to the next)
        dxi = sch["pred"][0].copy() if sch["pred"] is not None else np.zeros(g.n)
        dc = np.zeros(g.n)
        mixer = self._mixer
        mixer.reset()
        G, H, R, B, ak, x = self._residuals(xi, dxi, c_start, dc, eta0, psi, V - Vn, dt, tr, xh)
        for it in range(6):
            Dc = tr.solve(kernels.schur_rhs(theta, G, H), extra)
            clock = self._tick("concentration", clock)
            # -G plus B Dc on ak (V fixed: G already holds the reaction at it); galvanostatic:
            # plus R, the reaction goes back in at the root's V
            rhs = kernels.order_parameter_rhs(G, ak, B, Dc, R, galvanostatic)
            if galvanostatic:
                def reaction(v, ak=ak, x=x, c=c_start + dc):
                    return self._reaction(x, c, eta0[ak] + (v - Vn) * psi[ak], ak, derivatives=False)[0]

                V = self._cell_potential(w, w @ rhs - (target - dxi.sum()), reaction, ak)
                clock = self._tick("galvanostat", clock)
                rhs[ak] -= reaction(V)
            # galvanostatic: sum(dxi) is the charge passed, as exact as this solve
            Dx = self._lin["xi"].solve(J, rhs, key, rtol=1e-11 if galvanostatic else INNER_RTOL, dominant=dominant)
            new = mixer.next((dxi, dc), (Dx, Dc))
            dxi, dc = new[:g.n], new[g.n:]
            G, H, R, B, ak, x = self._residuals(xi, dxi, c_start, dc, eta0, psi, V - Vn, dt, tr, xh)
            clock = self._tick("order parameter", clock)
            # the next correction: at most dt |G| (J >= I/dt near a stable front), plus what the
            # c residual changes through B (c's correction ~ H / M_pp).  Stop below half the
            # tolerance (the step's error estimate keeps the other half) and below 1 % of the
            # step's own increment (else a slow front's small steps would carry a bias)
            g_max, h_max = kernels.coupling_estimate(G, B, H, ak, tr.mdiag)
            corr = dt * (g_max + h_max)
            change = corr / min(self.tol["xi"], 0.02 * kernels.largest_abs(dxi) + 1e-300)
            if change < 0.5:
                break
        self.iterations += it + 1
        sink = kernels.final_sink(tr.r0, cs, dxi, dt)
        return V, dxi, dc, kernels.potential_on(eta0, psi, V - Vn, ak), ak, tr, corr / self.tol["xi"], sink

    def _extrapolated_potential(self, dt):
        """phi at the end of a step of length dt, at the collector's potential of its start:
        phi^n plus the last step's increment of phi at fixed V scaled to dt (a linear
        extrapolation) while the last two xi increments are coherent (`_order_next`); phi^n
        itself on a first step or where the increments ring.  The reaction's eta (its lag is
        then second order in dt, not first) and the start of phi's solve; the ions' drift stays
        at phi^n (an extrapolated drift made c's multigrid CG fail in Hong's stick-slip).
        docs/phasefield.md "Time stepping"."""
        if not self._history or self._history[0][3] is None or self._order_next < MAX_ORDER:
            return self.phi
        dt_last, _, _, dphi = self._history[0]
        return self.phi + (dt / dt_last) * dphi

    def _window(self):
        """The free voxels the next (xi, c) step solves on: None (all) or a `geometry.Window` from
        WINDOW_MARGIN rows below the lowest free voxel that is not settled lithium (SETTLED) to the
        top, where that cuts at least an eighth of the rows; the voxels below are held, and phi's
        slab below is eliminated where it can be (`geometry.PotentialWindow`).  A new window gets
        its own multigrids, and the kept hierarchies start afresh."""
        g = self.geo
        z0 = 0
        if self.settled_window and self._mg_c is not None:
            nz = g.shape[2]
            z0 = kernels.lowest_unsettled(self.xi, g.contact, g.free, nz, 1.0 - SETTLED) - WINDOW_MARGIN
            z0 = z0 if z0 >= max(2, nz // 8) else 0
        win = self._win
        if (0 if win is None else win.z0) != z0:
            self._forget_window()
            win = self._win = Window(g, z0) if z0 else None
            if win is not None:
                win.mg = VoxelMultigrid(win.shape, win.free, coarse_max=64, plane=self._mg_c.plane)
                win.ab, win.xi_links, win.zero = (unsigned(win.a), unsigned(win.b)), None, np.zeros(win.n)
                # phi's, on the multigrid's path where the slab below carries phi in every voxel
                win.phi = PotentialWindow.of(g, win) if self._mg is not None else None
                if win.phi is not None:
                    win.phi.pab = unsigned(win.phi.pa), unsigned(win.phi.pb)
                    win.phi.mg = VoxelMultigrid(win.shape, win.phi.pidx, coarse_max=64, plane=self._mg.plane)
        elif win is not None and g.coordinated:
            win.refresh(g)  # the coordination's factors change every step
        return win

    def _forget_window(self):
        """No window until `_window` makes the next (after a jump of the state: a kick, a loaded
        state); the multigrids' kept hierarchies and AMG's start afresh."""
        self._win = None
        self._mg_c_reuse.reset()
        self._mg_reuse.reset()
        self._mg_c_key = self._mg_key = None
        for lin in (self._lin["xi"], self._lin["c"]):
            lin.amg.clear()  # hierarchies of another window's size

    @contextmanager
    def _on_window(self, win, control):
        """The step's solver state on the window ``win`` (None: as it is): its geometry, its slices
        of xi and c, its c multigrid and xi links; psi solved first (on the whole grid)."""
        if win is None:
            yield
            return
        if isinstance(control, Galvanostatic) or float(control.potential) != self.cell_potential:
            self._unit_response(win)
        full = self.geo, self._ab, self.xi, self.c, self._mg_c, self._xi_links, self._zero
        self.geo, self._ab = win, win.ab
        self.xi, self.c, self._mg_c = self.xi[win.index], self.c[win.index], win.mg
        self._xi_links, self._zero = win.xi_links, win.zero
        try:
            yield
        finally:
            # a pass still on the second thread (this thread raised) reads the window's state: first
            # let it end (restored under it, its kernels would index the whole grid's arrays)
            futures.wait(self._jobs)
            win.xi_links = self._xi_links
            self.geo, self._ab, self.xi, self.c, self._mg_c, self._xi_links, self._zero = full

    def _attempt(self, control, dt):
        """One step of length dt; commits it and returns (True, error, False) when its error
        estimate is within tolerance (error <= 1), else (False, error, unconverged) and leaves
        the state alone (error None: the step could not be solved; unconverged: the (xi, c)
        iterations' remaining correction, not the increments' error, rejected it).  The xi
        increments' error is read first: a step it rejects needs neither c's final solve nor
        phi's.  Then c's final solve and phi's run at once where `_overlap` gives a worker
        thread (phi's solve then runs on a step c's error may still reject)."""
        p, g = self.params, self.geo
        xi = self.xi
        g.update_coordination(xi)  # the contacts' coordination energy at the step's start
        noise = self._noise(xi, dt)
        win = self._window()
        sch = self._scheme(dt, win)
        self._order = sch["order"]
        # the second thread (`_overlap`), and the clock of the parts: each thread's own CPU time there
        self._thread = worker = self._overlap()
        self._cpu = time.process_time if worker is None else time.thread_time
        self._jobs = []  # what this attempt gave the second thread (`_submit`)
        job = None
        try:
            phi_pred = self._extrapolated_potential(dt)  # the reaction's eta and phi's solve start
            step_noise = noise if win is None else noise[win.index]  # none on the held voxels
            with self._on_window(win, control):
                V, dxi, dc, eta, act, transport, coupling, sink = self._coupled_step(control, dt, step_noise, sch,
                                                                                     phi_pred)
                c_step = self.c  # (the window's) c: the scale of c's error
            clock = self._cpu()
            increments = self._error_xi(dxi, sch)
            err = max(coupling, increments)
            if err > 1.0:
                self._tick("error control", clock)
                self.rejected += 1
                return False, err, coupling >= increments
            dx = dxi if win is None else win.scatter(dxi, g.n)  # the held voxels' increments are 0
            if win is not None:
                act, noise, transport.index = win.index[act], win.scatter(step_noise, g.n), win.index
            xi_new = xi + dx + noise
            source = FARADAY * p.solid_concentration * (dx + noise) / dt
            args = xi_new, source, V, phi_pred, win
            job = self._submit(self._potential_step, *args)
            clock = self._cpu()
            dc = transport.finish(sink, dc)
            clock = self._tick("concentration", clock)
            increments = max(increments, self._error_c(dc, sch, g.n, c_step))
            clock = self._tick("error control", clock)
            if win is not None:
                dc = win.scatter(dc, g.n)
            err = max(coupling, increments)
            if err > 1.0:
                if job is not None and job.exception() is None:  # (waits for it)
                    self.timing["potential"] += job.result()[1]  # (a solve for nothing, on the other core)
                    self.discarded_potential_solves += 1
                self.rejected += 1
                return False, err, coupling >= increments
            psys, phi_new, charge_in, shift = self._joined(job, "potential", self._potential_step, *args)
        except (FloatingPointError, np.linalg.LinAlgError):  # a step too long to linearise
            self.rejected += 1
            return False, None, False
        except GalvanostatError:
            # within a step the reaction acts only where h'(xi) > 0 at the step's start, so a long
            # step can ask more of the galvanostat than any potential gives: shorter; below a
            # microsecond it is the state's own limit (nothing left to strip)
            if dt < 1e-6:
                raise
            self.rejected += 1
            return False, None, False
        finally:  # the worker holds its pass's state until the pass ends (also where this thread raised)
            futures.wait(self._jobs)
        clock = self._tick("potential", clock)  # (phi's solve where it ran here)
        # the lag of eta at the interface (phi^n or its extrapolation used for phi^{n+1})
        lag = np.max(dh(xi_new[act]) / DH_MAX * np.abs(phi_new[g.pfree[act]] - eta), initial=0.0)
        err = max(err, lag / self.tol["eta"])
        self._tick("error control", clock)
        if err > 1.0:
            self.rejected += 1
            return False, err, False
        self._commit(dt, sch, dx, dc, noise, V, phi_new, shift, psys, source, charge_in, transport)
        return True, err, False

    def _commit(self, dt, sch, dx, dc, noise, V, phi, shift, psys, source, charge_in, transport):
        """The accepted step's state, balances and history (`_attempt`): increments dx, dc and
        the noise on all free voxels, phi and V at its end, V's share of phi's increment (or
        None), phi's system and source, the boundaries' charge inflow, c's transport."""
        p, g = self.params, self.geo
        # phi's increment at fixed V (the part `_extrapolated_potential` extrapolates; V's is psi's)
        dphi = phi - self.phi
        if shift is not None:
            dphi -= shift
        xi = self.xi + dx + noise
        self._track_detached(self.xi, xi)
        self.xi, self.c = xi, self.c - p.solid_concentration * noise + dc
        self.phi, self.cell_potential = phi, V
        self._psys, self._psi, self._source = psys, None, source
        dq = -FARADAY * p.solid_concentration * g.h**3 * float(np.sum(dx + noise))
        self.charge += dq
        self.current_density = dq / dt / g.footprint
        # the BDF Li+ balance per step: the history's share plus dt/a of the end-of-step inflow
        self.top_inflow += transport.inflow(self.c) * dt / sch["a"] + sch["inflow"]
        self.boundary_charge += charge_in[0] * dt
        self.boundary_gross += charge_in[1] * dt
        self.t += dt
        self.steps += 1
        self._history = ((dt, dx, dc, dphi),) + self._history[:MAX_ORDER - 1]
        # the next step's highest order: BDF3 while the increments move one way (COHERENT_COSINE)
        last = self._history[1][1] if len(self._history) > 1 else None
        self._order_next = MAX_ORDER if _coherent(dx, last) else 2

    def _submit(self, fn, *args):
        """``fn(*args)`` on this attempt's second thread, timed (`_timed`), or None without one;
        `_attempt` waits for it before it returns or raises."""
        if self._thread is None:
            return None
        job = self._thread.submit(_timed, fn, *args)
        self._jobs.append(job)
        return job

    def _joined(self, job, part, fn, *args):
        """The result of the second thread's ``job``, its CPU time counted under ``part``; without
        a job, ``fn(*args)`` run here (the calling thread's own ticks count it)."""
        if job is None:
            return fn(*args)
        out, cpu = job.result()
        self.timing[part] += cpu
        return out

    def _potential_step(self, xi_new, source, V, phi_pred, win):
        """phi at the end of an attempt: the system of ``xi_new`` solved for the source F c_s
        dxi/dt [A/m^3] at collector potential V from phi's extrapolation plus V's own share
        (psi: a V-cycle less per solve where phi moves one way, Hong's approach to the top 6.7
        against 8.4).  Returns (system, phi, the boundaries' charge inflow, V's share of phi's
        increment or None).  Reads and writes phi's solvers only, so it runs beside c's final
        solve (`_overlap`)."""
        psys = self._potential_system(xi_new)
        shift = (V - self.cell_potential) * self._unit_response(win) if V != self.cell_potential else None
        start = phi_pred if shift is None else phi_pred + shift
        phi, charge_in = self._solve_potential(psys, start, V, source, window=win)
        return psys, phi, charge_in, shift

    def _overlap(self):
        """The second thread of this attempt (`_second_thread`), or None (serial): phi's solve
        beside c's final solve (`_attempt`), c's operator beside xi's Jacobian (`_coupled_step`),
        the c residual beside xi's (`_residuals`).  Only on 2D grids on the multigrid path, where
        no kernel starts Numba's threads and each releases the GIL, so the passes share no
        state and give the serial run's bits (until a phi solve is discarded:
        `discarded_potential_solves`); and only where this thread may use two
        (`numba.get_num_threads()`: a case in a worker process runs at one, docs/model.md
        "Threads"); 3D grids' threaded sweeps keep both cores already."""
        if not (self.threaded_stepping and numba.get_num_threads() >= 2 and self._mg is not None and self._mg.plane
                and self._mg_c is not None):
            return None
        return _second_thread()

    def _tick(self, part, since):
        now = self._cpu()
        self.timing[part] += now - since
        return now

    def _scheme(self, dt, win=None):
        """The scheme of a step of length dt from the last accepted steps' increments
        (docs/phasefield.md "Time stepping"): variable-step BDF of the highest order up to
        MAX_ORDER that the history and the step ratios allow (BDF2 for omega = dt / dt_last <=
        BDF2_MAX_RATIO, BDF3 when also this and the last ratio are <= BDF3_MAX_RATIO and the last
        two increments were coherent, `_coherent`), else implicit Euler.  BDF-k ``dx = (dt/a)
        F(x^{n+1}) + sum_j eta_j dx_j`` is implicit Euler of length dt/a with the history as a
        source (`numerics.bdf_coefficients`).  Returns order,
        a, the history terms of xi and c, the Li+ the history carries in [mol] (``inflow``: the
        top inflow's share), the predicted increments (xi, c) (the polynomial through the last
        order + 1 states; None on a first step) and the weight that turns increment minus
        prediction into the local error estimate; all on the window ``win``'s voxels (None: all
        free voxels).  The held voxels below a window take no step: its history's Li+ is the
        window's."""
        first = {"order": 1, "a": 1.0, "xi": 0.0, "c": 0.0, "inflow": 0.0, "pred": None, "weight": None}
        hist = self._history
        if not hist:
            return first
        steps = [h[0] for h in hist]
        w = dt / steps[0]
        top = 1  # the highest order the history and the step ratios allow
        if len(hist) >= 2 and w <= BDF2_MAX_RATIO:
            top = 2
            if MAX_ORDER >= 3 and len(hist) >= 3 and max(w, steps[0] / steps[1]) <= BDF3_MAX_RATIO:
                top = 3
        order = min(top, self._order_next)  # _order_next is 2 or 3
        a, eta, pi, weight = bdf_coefficients(dt, steps, order)
        dxs, dcs = tuple(h[1] for h in hist[:order]), tuple(h[2] for h in hist[:order])
        at = np.empty(0, dtype=np.int64) if win is None else win.index
        pred = (kernels.combine(pi, dxs, at), kernels.combine(pi, dcs, at))
        if order == 1:
            return {**first, "pred": pred, "weight": weight}
        hx, hc = kernels.combine(eta, dxs[:order - 1], at), kernels.combine(eta, dcs[:order - 1], at)
        inflow = (float(np.sum(hc)) + self.params.solid_concentration * float(np.sum(hx))) * self.geo.h**3
        return {"order": order, "a": a, "xi": hx, "c": hc, "inflow": inflow, "pred": pred, "weight": weight}

    def _error_xi(self, dxi, sch):
        """Error of the step's xi increments over the tolerance (accept when <= 1; `_attempt`
        adds c's, `_error_c`, and the lag of eta): the local error of xi (max over voxels) from
        its increment against the prediction from the previous steps' (`_scheme`: of the
        scheme's order), and a cap of 0.25 on any xi increment (0.05 on a first step after a
        start or a control change)."""
        largest = kernels.largest_abs(dxi)
        if sch["pred"] is None:
            return float(largest / 0.05)
        return float(max(largest / 0.25,
                         kernels.largest_abs_difference(dxi, sch["pred"][0]) * sch["weight"] / self.tol["xi"]))

    def _error_c(self, dc, sch, count, c):
        """Error of the step's c increments over the tolerance: the root mean square of (dc
        minus its prediction) / max(|c|, c0) over ``count`` free voxels (a window's held voxels
        count, with no error), c the concentration at the step's start on dc's voxels.  A root
        mean square: the Li+ the noise trades voxel by voxel is uncorrelated and averages out, a
        diffusion layer's transient does not.  Relative to max(c, c0): where cations pile up at
        a negative electrode (tens to hundreds of c0 as a front closes on the top boundary) a
        share of c0 is a relative accuracy of 1e-4 that held the steps at a few ms for no
        change in xi.  The squares in one pass (`kernels.scaled_squares`), their mean numpy's."""
        c0 = float(self.params.bulk_concentration)
        if sch["pred"] is None:  # first step after a start or a control change
            return float(np.sqrt(np.sum(kernels.scaled_squares(dc, dc[:0], c, c0)) / count) / 0.25)
        (_, pc), wt = sch["pred"], sch["weight"]
        return float(np.sqrt(np.sum(kernels.scaled_squares(dc, pc, c, c0)) / count) * wt / self.tol["c"])

    def advance(self, duration: float, control) -> "PhaseFieldSolver":
        """Advance by ``duration`` [s] under ``control`` (Potentiostatic or Galvanostatic) with
        adaptive steps; the last step ends exactly at t + duration."""
        if not isinstance(control, (Potentiostatic, Galvanostatic)):
            raise TypeError("control must be Potentiostatic or Galvanostatic")
        if not duration >= 0:
            raise ValueError(f"duration = {duration!r} is out of range: must be >= 0 [s]")
        if control != self._control:
            self._history = ()  # the time derivative jumps at a control change
            self._order_next = MAX_ORDER
            self._control = control
            self._err_prev = 1.0
        t_end = self.t + duration
        streak = None  # the rejections in a row: (dt, error) of the first and the last
        with _blas_single_thread(), self._fresh_hierarchies():
            while t_end - self.t > 1e-12 * max(t_end, 1.0):
                # shot noise at every multiple of its interval (a kick due at t_end waits for the next call)
                kick = (self.kicks + 1) * self.shot_noise_interval if self._shot_cells else np.inf
                if kick - self.t <= 1e-12 * max(self.t, 1.0):
                    self._shot_noise()
                    continue
                remaining = min(t_end, kick) - self.t
                dt = min(self._dt_next, self.dt_max)
                chosen = dt < remaining / 2  # the controller's own length, not cut to fit the end
                if dt >= remaining:
                    dt = remaining
                elif not chosen:
                    dt = remaining / 2  # no sliver of a last step
                accepted, err, unconverged = self._attempt(control, dt)
                self._next_step(dt, accepted, err, chosen, unconverged)
                streak = None if accepted else ((streak or ((dt, err),))[0], (dt, err))
                if self._dt_next < 1e-14:
                    raise RuntimeError(_shrank(self.t, streak))
        return self

    @contextmanager
    def _fresh_hierarchies(self):
        """Multigrid hierarchies are reused within one `advance` only: the next solve after it
        (a `set_top`, the next `advance`, or a solver restored from `state_dict` between the
        two) builds them afresh, so a restored solver steps to the bit as the original."""
        try:
            yield
        finally:
            self._mg_reuse.reset()
            self._mg_c_reuse.reset()
            self._mg_key = self._mg_c_key = None

    def _next_step(self, dt, accepted, err, chosen, unconverged=False):
        """The next step's length (PI control, Gustafsson's; docs/phasefield.md "Error
        control").  The error goes as dt^k (k = the order + 1), so a rejected step is retried
        at 0.9 err^(-1/k) of its length (at most 0.9 of it; 1/4 when it could not be solved;
        0.9 err^(-1/2), within 0.5 and 0.9, when the iterations' remaining correction
        rejected it: that estimate does not go as dt^k, and after one in the hundreds the
        0.2 floor cut far below what converges),
        and after an accepted one the step changes by the PI factor 0.9 err^(-0.7/k)
        err_prev^(0.4/k), or, while the error is not rising, by min(0.9 err^(-1/k), 1.25) where
        that is more (within 0.2 and 2): remembering the last error damps the grow-reject-halve
        cycle a front's stick-slip provokes with the elementary controller 0.9 err^(-1/k);
        after a rejection it does not grow.  A step cut to fit the end of `advance` keeps the
        length that was allowed (when it would have grown) and does not enter the memory."""
        k = self._order + 1  # the error goes as dt^k
        if not accepted:
            self._after_rejection = True
            if err is None:
                factor = 0.25
            elif unconverged:
                factor = float(np.clip(0.9 * err ** -0.5, UNCONVERGED_CUT, 0.9))
            else:
                factor = float(np.clip(0.9 * err ** (-1.0 / k), 0.2, 0.9))
            self._dt_next = dt * factor
            return
        e = max(err, 1e-4)
        # PI, but never slower than 1.25 per step where the elementary controller would grow
        # and the error is not rising: at a steady small error (an estimate that does not follow
        # dt^k, as in a transient of c) PI alone grows by only 0.9 err^(-0.3/k) per step; a
        # rising error (a voxel starting to convert) is PI's to follow, else the next step is
        # rejected (Hong's case: 975 against 2061 rejections, docs/phasefield.md "Speed")
        factor = 0.9 * e ** (-0.7 / k) * self._err_prev ** (0.4 / k)
        if e <= self._err_prev:
            factor = max(factor, min(0.9 * e ** (-1.0 / k), 1.25))
        factor = float(np.clip(factor, 0.2, 2.0))
        if self._after_rejection:
            factor = min(factor, 1.0)
        self._after_rejection = False
        if chosen:
            self._err_prev = e
            self._dt_next = dt * factor
        elif factor < 1.0:
            self._dt_next = min(self._dt_next, dt * factor)

    # -- checkpoints (kmc/coupling/checkpoint.py stores these) ---------------------------
    _STATE_ARRAYS = ("xi", "c", "phi", "_source", "_psi_start")
    _STATE_SCALARS = ("t", "cell_potential", "_dt_next", "_err_prev", "_after_rejection", "top_concentration",
                      "top_potential", "charge", "top_inflow", "boundary_charge", "boundary_gross", "current_density",
                      "steps", "rejected", "iterations", "kicks", "kicks_dropped", "discarded_potential_solves")

    def state_dict(self) -> dict:
        """Everything the stepping reads that the constructor does not rebuild from its arguments:
        the fields, the last source (phi's re-solves in `set_top`), the clock, the step-size
        control (the next step's length, the last accepted (dt, dxi, dc), the BDF history that
        the error estimate extrapolates, the control they were taken under), the top boundary, the ledgers, the
        lithium and ions at the start (`balance`) and the noise's generator.  Keep in step with
        `advance`, `_attempt`, `_error_xi` and `_error_c`: a test resumes a run bit-identically."""
        return {**{k: getattr(self, k).copy() for k in self._STATE_ARRAYS},
                **{k: getattr(self, k) for k in self._STATE_SCALARS},
                "_history": self._history, "_order_next": self._order_next, "_control": self._control,
                "_initial": self._initial, "_floating_conductor": self._floating_conductor,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, d: dict) -> None:
        """Restore a `state_dict` of a solver of the same geometry and parameters.  What was
        cached for the old state goes (phi's system is rebuilt from xi, its unit response and
        the AMG hierarchies, which depend on the solves' history, are rebuilt when next needed),
        so a restored solver steps exactly like the one the state came from after its own
        round trip."""
        for k in self._STATE_ARRAYS:
            a = np.array(d[k], dtype=np.float64)
            if a.shape != getattr(self, k).shape:
                raise ValueError(f"phase-field state: {k} has shape {a.shape}, this grid needs {getattr(self, k).shape}")
            setattr(self, k, a)
        for k in self._STATE_SCALARS:
            newer = k.startswith("kicks") or k == "discarded_potential_solves"  # (none in older states)
            setattr(self, k, type(getattr(self, k))(d.get(k, 0) if newer else d[k]))
        if "_history" in d:
            hist = d["_history"]
        else:  # a checkpoint of the BDF2 solver: the last two steps (the older one may be None)
            hist = [h for h in (d.get("_hist"), d.get("_hist_prev")) if h is not None]
        # (dt, dxi, dc, dphi); a checkpoint before phi's increment was kept: dphi None (lagged)
        self._history = tuple((float(h[0]), np.array(h[1], dtype=np.float64), np.array(h[2], dtype=np.float64),
                               np.array(h[3], dtype=np.float64) if len(h) > 3 else None) for h in hist)
        self._order_next = int(d.get("_order_next", MAX_ORDER))
        self._control, self._initial = d["_control"], tuple(float(v) for v in d["_initial"])
        self._floating_conductor = d.get("_floating_conductor")  # (not in older states: looked at again)
        self.rng.bit_generator.state = d["rng"]
        self._psys, self._psi = self._potential_system(self.xi), None
        self._forget_window()
        for lin in self._lin.values():
            lin.amg.clear()
            lin.gmg_off, lin.gmg_pause = 0, GMG_PAUSE  # a fresh solver tries the multigrid first too

    # -- observables ----------------------------------------------------------------------
    def _full(self, values, index, fill):
        out = np.full(self.phase.size, fill, dtype=np.float64)
        out[index] = values
        return out.reshape(self.phase.shape)

    @property
    def order_parameter(self) -> np.ndarray:
        """xi on the grid: 1 on conductive host, 0 on dielectric host."""
        out = self._full(self.xi, self.geo.free, 0.0)
        out[self.phase == HOST_CONDUCTIVE] = 1.0
        return out

    @property
    def concentration(self) -> np.ndarray:
        """Li+ concentration [mol/m^3] on free voxels, NaN on hosts."""
        return self._full(self.c, self.geo.free, np.nan)

    @property
    def potential(self) -> np.ndarray:
        """phi [V] (= eta, against the lithium reference at c0), NaN on dielectric."""
        return self._full(self.phi, self.geo.pidx, np.nan)

    @property
    def conversion_rate(self) -> np.ndarray:
        """dxi/dt of the last accepted step on the grid [1/s] (> 0 where metal formed), 0 on
        hosts: F c_s times it is the Faradaic source of the potential problem."""
        p = self.params
        return self._full(self._source / (FARADAY * p.solid_concentration), self.geo.free, 0.0)

    @property
    def footprint_area(self) -> float:
        return self.geo.footprint

    def lithium_mask(self, threshold: float = 0.5) -> np.ndarray:
        """Thresholded lithium (free voxels with xi > threshold)."""
        return lithium_mask(self.order_parameter, self.phase, threshold)

    def lithium_volume(self, threshold: float = 0.5) -> float:
        """Volume of the thresholded lithium [m^3]."""
        return float(np.count_nonzero(self.lithium_mask(threshold))) * self.spacing**3

    def lithium_amount(self) -> float:
        """Lithium metal [mol]: c_s h^3 sum(xi) over free voxels."""
        return float(self.xi.sum()) * self.spacing**3 * self.params.solid_concentration

    def ion_amount(self) -> float:
        """Li+ in the free voxels [mol]."""
        return float(self.c.sum()) * self.spacing**3

    def balance(self) -> dict:
        """Conservation errors since the start: lithium (metal + ions - initial - top inflow)
        [mol], Faradaic charge against the metal deposited [C], and the potential problem's
        boundary charge against the Faradaic charge [C] (exact to the potential solve's
        tolerance, which is relative to the collector and top currents, ``boundary_gross``)."""
        li0, ion0 = self._initial
        li = self.lithium_amount()
        return {"lithium": li + self.ion_amount() - li0 - ion0 - self.top_inflow,
                "charge": self.charge + FARADAY * (li - li0),
                "boundary": self.boundary_charge + self.charge}

    def timing_shares(self) -> dict:
        """Share of the stepping time per part (CPU time of this process: wall time on a shared
        machine mixes in the other jobs)."""
        total = sum(self.timing.values()) or 1.0
        return {k: v / total for k, v in self.timing.items()}


def flat_front_velocity(params: PhaseFieldParameters, eta: float, *, spacing: float = 0.1e-6,
                        relax: float = 2.0, window: float = 0.2e-6, max_time: float = 300.0) -> float:
    """Measured growth velocity [m/s] (> 0 plating) of a flat front at uniform overpotential
    ``eta`` [V] in the reaction-limited limit: a 1D column of 10 um at ``spacing`` (the front
    at 5 um, no host layer), noise off and ions made fast (D_l = D_s = 1e-6 m^2/s, so c = c0 at
    the front), phi = eta everywhere (top held at eta too: no current through the electrolyte).
    Relaxes ``relax`` s at eta = 0, then measures the lithium's growth rate over a window of
    ``window`` m of growth or ``max_time`` s.  The closed form it tests is
    ``params.front_velocity(eta)``; ``spacing`` <= 0.4 sqrt(kappa/2W) resolves it within 1 %."""
    prm = params.replace(noise_amplitude=0.0, diffusivity_electrolyte=1e-6, diffusivity_solid=1e-6)
    n = int(round(10e-6 / spacing))
    phase, xi = planar_electrode((1, 1, n), spacing, prm, 5e-6, collector=False)
    s = PhaseFieldSolver(phase, spacing, prm, xi=xi)
    s.advance(relax, Potentiostatic(0.0))
    s.set_top(potential=eta)
    start, t0 = s.lithium_amount(), s.t
    s.advance(min(window / abs(prm.front_velocity(eta)), max_time), Potentiostatic(eta))
    return (s.lithium_amount() - start) / prm.solid_concentration / spacing**2 / (s.t - t0)


def relaxed_order_parameter(phase, spacing: float, params: PhaseFieldParameters = HONG2018, xi=None, *,
                            eta_nuc=None, activity=None, bond_cell: int = 1, max_steps: int = 60,
                            tol: float = 1e-10) -> np.ndarray:
    """The order parameter at rest at eta = 0: the bare host contacts (xi < 1/2 in ``xi``) hold
    the wetting layer at rest, the root of its reaction with c = c0 (1 - h(xi)) (the ions runs
    start from; Langmuir's theta / (1 - theta) = m (c/c0) but for the front's own term: 0.28, and
    0.24-0.27 with it, at eta_nuc = 40 mV, a = 1); every other free voxel is relaxed under the interface forces, the
    wall energy and the reaction at c = c0 (``dxi/dt = -L_sigma (g'(xi) - kappa lap xi + wall) -
    R(xi, c0, 0)``, the wetting layer held) by implicit Euler steps doubling from 0.1 / (L_sigma
    W) up to 50 / (L_sigma W), until no voxel moves by more than ``tol`` in a step or for
    ``max_steps`` steps (about 2500 / (L_sigma W), 170 s with Hong's constants); from ``xi``
    (default: the equilibrium profile around the LITHIUM voxels).  ``eta_nuc``, ``activity``,
    ``bond_cell``: the host's site kinetics, as the solver's (with either bond shift the
    layer's root is taken with its coordination energy from the layer itself, three passes).

    What a run on a host starts from (docs/phasefield.md "Host contact").  On grids that resolve
    the interface (h <= 0.4 sqrt(kappa/2W)) a lithium front near a host face with a contact
    angle other than 90 degrees is pulled or pushed by the wall (the force falls off as
    exp(-2 d / sqrt(kappa/2W))): followed here only for the ``max_steps``."""
    phase = np.ascontiguousarray(phase, dtype=np.uint8)
    g = Geometry(phase, float(spacing), params, eta_nuc, activity, bond_cell)
    if xi is None:
        xi = order_parameter_from_mask(phase, phase == LITHIUM, float(spacing), params)
    xi = np.asarray(xi, dtype=np.float64)
    if xi.shape != phase.shape:
        raise ValueError(f"xi has shape {xi.shape}, the grid is {phase.shape}")
    x = xi.ravel()[g.free].copy()
    # the bare contacts' wetting layer at rest: R(theta) < 0 at 0 (m > 0), > 0 below 1; bisection
    wet = np.flatnonzero(g.contact & (x < 0.5))
    for _ in range(3 if params.contact_bond_shift or params.front_bond_shift else 1):  # coordination: a fixed point
        g.update_coordination(x)
        lo, hi = np.zeros(wet.size), np.ones(wet.size)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            x[wet] = mid
            c = params.bulk_concentration * (1.0 - interpolation(x))
            up = _reaction(g, params, x, c, np.zeros(wet.size), wet)[0] < 0.0
            lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
        x[wet] = 0.5 * (lo + hi)
    held = np.zeros(g.n, dtype=bool)
    held[wet] = True
    rate = params.interface_mobility * params.barrier_height
    lin = LinearSolver("auto", g.n, 10**6 if phase.shape[0] * phase.shape[1] <= 16 else 4000)
    k = params.interface_mobility * params.gradient_coefficient / g.h**2
    links, cut = _gradient_links(g, k, held)
    c0 = np.full(g.n, params.bulk_concentration)
    dt = 0.1 / rate
    for step in range(max_steps):
        act = np.flatnonzero(((dh(x) > 1e-14) | g.contact) & ~held)
        R, dR, _ = _reaction(g, params, x, c0, np.zeros(act.size), act)
        diag = 1.0 / dt + _double_well_curvature(g, params, x, held)
        diag[act] += dR
        rhs = _allen_cahn(g, params, x, held)
        rhs[act] -= R
        dx = lin.solve(LinkMatrix(g.pattern, g.a, g.b, links, diag + cut), rhs, step, rtol=1e-12, dominant=True)
        x = np.clip(x + dx, 0.0, 1.0)
        if np.max(np.abs(dx), initial=0.0) < tol:
            break
        dt = min(2.0 * dt, 50.0 / rate)
    out = np.array(xi, dtype=np.float64)
    out.ravel()[g.free] = x
    out[phase == HOST_CONDUCTIVE] = 1.0
    out[phase == HOST_DIELECTRIC] = 0.0
    return out
