"""Electrolyte (and optionally electrode) potential with Butler-Volmer interfaces.

Equations (docs/model.md, "Continuum fields"), finite volumes on the voxel grid, face area h^2, link length h:

* electrolyte: ``div(kappa(c) grad phi_l) = -F div((D+ - D-) grad c)``, i.e. the ionic current
  ``i_l = -kappa grad phi_l - F (D+ - D-) grad c`` is divergence free.  Face conductance
  ``h * kappa_face`` with kappa_face the **logarithmic** mean of kappa(c) of the two voxels
  (``_log_mean``: with kappa proportional to c it makes the diffusion potential exact at zero
  current for any concentration ratio across a face, and a depleted voxel still chokes the
  current through it).  The diffusion current ``F (D+ - D-) h (c_p - c_q)`` enters as a known
  source.
* top boundary (separator side): Dirichlet ``phi_l = phi_top`` half a voxel above the top layer
  (conductance ``2 h kappa``); optional ``c_top`` for the diffusion current over that half cell.
* conductors: equipotential ``phi_s = V`` on every collector-connected conductor (fast path),
  or, with a per-voxel ``conductivity``, ``div(sigma grad phi_s) = 0`` with the collector layer
  z = 0 held at V (harmonic-mean face conductance).
* interfaces: Butler-Volmer current (continuum.kinetics) on every electrolyte / connected
  conductor face; everything else (dielectric, dead lithium, x-y boundaries: periodic) carries
  no flux.

Nonlinear solve: Newton on (phi_l, [phi_s], V).  The BV derivative di/deta > 0 enters as a
conductance g = h^2 di/deta between the electrolyte and conductor unknowns, so the Jacobian is
symmetric positive definite (a weighted graph Laplacian plus a Dirichlet boundary), and
CG applies.  Galvanostatic control borders the system with the unknown V and the equation
"current delivered by the collector = applied current"; the bordered Jacobian is again SPD and
is solved by a Schur complement on V: per Newton step one solve for the correction and one
for the sensitivity of phi to V.  Newton steps are scaled so no face overpotential moves by
more than ``max_step`` (the exponential BV branches overshoot otherwise).
"""
from __future__ import annotations

import copy
import functools
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .constants import ELECTROLYTE, FARADAY
from . import potential_kernels as PK
from .faces import InterfaceFaces, interface_faces
from .fv import SPDSolver, SymmetricPattern, _default_direct_max, voxel_links
from .multigrid import VoxelMultigrid, face_slots
from .scratch import Scratch
from .grid import collector_connected, periodic_components
from .parameters import PhysicalParameters


# largest relative change of the Jacobian's coefficients for which an eta_tolerance solve's
# Newton step keeps the multigrid's operator (PotentialSolver._set_multigrid)
_KEPT_OPERATOR = 0.1
_W_RESISTIVE = 1e-4  # relative tolerance of the sensitivity solve with resistive conductors
# share of the overpotential tolerance a Newton step's sensitivity error may take (times dV;
# |w| <= 1, so the last solve's w serves unsolved once dV is below this share)
_W_BUDGET = 0.3
# largest |ln(c / c_then)| a warm start's diffusion-potential shift follows (a voxel refilled
# from the floor, shifted by the whole 1.2 V, stalled Newton)
_SHIFT_CLIP = 0.1


def _harmonic(a, b):
    s = a + b
    return np.where(s > 0, 2.0 * a * b / np.where(s > 0, s, 1.0), 0.0)


def _joined(*parts):
    """np.concatenate of int arrays, the first itself when the others are empty."""
    return parts[0] if all(p.size == 0 for p in parts[1:]) else np.concatenate(parts)


def _log_mean(a, b):
    """(a - b) / ln(a / b) for positive a, b, elementwise (a where they are equal). As the face
    value of a conductivity proportional to c it makes the linear diffusion-potential source
    exact at zero current for any concentration ratio across the face: (1/f) (D+ - D-)/(D+ +
    D-) ln(c_a / c_b). The harmonic mean gives (c_a - c_b)/c_b there, hundreds of mV where a
    depleted voxel meets a full one.  Compiled: potential_kernels.log_means."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    out = np.empty(a.shape)
    PK.log_means(np.ascontiguousarray(a).ravel(), np.ascontiguousarray(b).ravel(), 1.0, out.reshape(-1))
    return out


@dataclass(frozen=True, eq=False)
class VoxelValues:
    """A field on some voxels of a grid (flat indices ``voxels``, the solver's own array;
    neither is ever written): a solution's warm-start fields without a full grid each (17 MB
    at 128^3 for every solve, fresh memory: ~1.2 ms per MB in page faults on the benchmarks'
    machine)."""

    values: np.ndarray
    voxels: np.ndarray
    shape: tuple

    def grid(self) -> np.ndarray:
        """The field on the full grid, NaN elsewhere."""
        out = np.full(int(np.prod(self.shape)), np.nan)
        out[self.voxels] = self.values
        return out.reshape(self.shape)

    def on(self, voxels: np.ndarray) -> np.ndarray | None:
        """The values on ``voxels`` if those are this field's voxels (the same solver's
        unknowns) and all finite, else None (then read them off :meth:`grid`)."""
        same = voxels is self.voxels or (voxels.size == self.voxels.size and np.array_equal(voxels, self.voxels))
        # the sum is finite only if every value is (no boolean temporary)
        return self.values if same and np.isfinite(np.sum(self.values)) else None


@dataclass
class PotentialSolution:
    """Result of :meth:`PotentialSolver.solve`.  Potentials in V, currents in A, densities A/m^2.

    ``face_overpotential`` is ``phi_s - phi_l`` on each face (the site's eta_nuc is *not*
    added; the kinetics add it on host faces).  Faces in an electrolyte pocket that is cut off
    from the top and has no lithium face have ``face_active`` False, zero current and NaN
    overpotential: such a pocket can carry no net current and its bare host can only plate,
    so no steady potential exists there.  ``face_current_density`` > 0 is anodic.
    ``top_current`` is the ionic current leaving through the top boundary; by charge
    conservation it equals ``total_current`` to solver tolerance.
    """

    phi_l: np.ndarray
    phi_s: np.ndarray
    cell_potential: float
    faces: InterfaceFaces
    face_overpotential: np.ndarray
    face_current_density: np.ndarray
    total_current: float
    iterations: int
    linear_iterations: int
    converged: bool
    mode: str
    applied_current: float | None
    top_current: float
    residual: float
    phi_top: float
    diagnostics: dict = field(default_factory=dict)
    face_active: np.ndarray | None = None  # False: face in a closed bare-host pocket (no current)
    # galvanostatic: d(phi)/dV on the solve's unknowns (electrolyte and resistive conductors), the
    # last Newton step's (full grid: ``sensitivity``).  A warm start from this solution moves phi
    # along it with V.
    sensitivity_values: VoxelValues | None = None
    # the salt field the solve used [mol/m^3] on the electrolyte voxels, floored (full grid:
    # ``concentration``), and the top boundary's (None: none given): a warm start shifts phi_l by
    # the salt's diffusion potential
    concentration_values: VoxelValues | None = None
    c_top: float | None = None

    @functools.cached_property
    def sensitivity(self) -> np.ndarray | None:
        """d(phi)/dV per voxel (NaN off the unknowns), or None."""
        return None if self.sensitivity_values is None else self.sensitivity_values.grid()

    @functools.cached_property
    def concentration(self) -> np.ndarray | None:
        """The salt field the solve used per voxel (NaN off the electrolyte), or None."""
        return None if self.concentration_values is None else self.concentration_values.grid()


class PotentialSolver:
    """Potential solver for one geometry (phase + site arrays + optional conductivity).

    Build once per geometry and call :meth:`solve` repeatedly (new c, new control): the
    sparsity pattern, the AMG or multigrid hierarchy (the latter rebuilt once the
    concentration moved by more than a quarter somewhere) and, for the same salt field, the
    conductances are reused; with ``eta_tolerance`` so is the multigrid's operator while every
    coefficient stays within 10 % of it.  A warm start from a solution (any solver's) shifts
    phi_l by the diffusion potential of the salt's change since (``concentration``) and,
    galvanostatic, steps along its ``sensitivity`` to the new current.  :meth:`renewed` gives a
    solver for the same geometry in a new one's state (its solves bit for bit a new solver's)
    without building the geometry again.

    Parameters: ``phase`` uint8 [x, y, z]; ``spacing`` h [m]; ``params``; ``eta_nuc`` [V] and
    ``activity`` per-voxel arrays (or scalars / None); ``conductivity`` [S/m] per-voxel
    electronic conductivity of conductors (None: equipotential conductors); ``coarsen`` must
    be 1 here (``continuum.coarse_grid.CoarsePotentialSolver`` solves on a coarsened grid).
    Keyword options: ``linear_solver`` ('auto', 'gmg', 'amg', 'direct', 'jacobi'),
    ``direct_max`` (largest system solved directly under 'auto'), ``rtol`` (relative
    nonlinear tolerance on charge balance), ``eta_tolerance`` [V] (None: Newton stops on the
    residual alone; else it stops once a Newton step moved no face overpotential by more than
    this and the charge balance meets ``rtol``: the accuracy the KMC's rates need, reached in
    far fewer linear iterations), ``max_iterations``, ``max_step`` (largest change of a face
    overpotential per Newton step, V), ``connected`` (``continuum.grid.collector_connected(phase)``
    where the caller has it already: the coupled run's lattice does).
    """

    def __init__(self, phase, spacing: float, params: PhysicalParameters, eta_nuc=None, activity=None,
                 conductivity=None, coarsen: int = 1, *, linear_solver: str = "auto",
                 direct_max: int | None = None, rtol: float = 1e-10, eta_tolerance: float | None = None,
                 max_iterations: int = 60, max_step: float = 0.1, c_floor_fraction: float = 1e-6,
                 connected=None):
        if coarsen != 1:
            raise ValueError("PotentialSolver works on the grid it is given: for coarsen > 1 use "
                             "continuum.coarse_grid.CoarsePotentialSolver (or make_potential_solver)")
        phase = np.ascontiguousarray(phase, dtype=np.uint8)
        if phase.ndim != 3:
            raise ValueError("phase must be a 3D array [x, y, z]")
        self.phase = phase
        self.shape = phase.shape
        self.h = float(spacing)
        self.params = params
        self.rtol = rtol
        if eta_tolerance is not None and not eta_tolerance > 0:
            raise ValueError(f"eta_tolerance={eta_tolerance!r} is out of range: must be > 0 V (or None)")
        self.eta_tolerance = eta_tolerance
        self.max_iterations = max_iterations
        self.max_step = max_step
        self.c_floor = c_floor_fraction * params.c_ref
        if connected is None:
            connected = collector_connected(phase)
        elif np.shape(connected) != phase.shape:
            raise ValueError(f"connected has shape {np.shape(connected)}, phase {phase.shape}")
        self.connected = np.array(connected, dtype=bool)  # a copy: the caller's may change
        self.faces = interface_faces(phase, self.connected, eta_nuc, activity)
        self._linear_options = (linear_solver, _default_direct_max(phase.shape, direct_max))
        self.linear = SPDSolver(linear_solver, direct_max=self._linear_options[1])

        self._number_nodes(conductivity)
        self._reacting_faces()
        self.pins = self._pin_floating_pockets()
        self.node_flat = _joined(self.elec_flat, self.cond_flat)  # each unknown's voxel
        # the linear (conductance) links (no copy on equipotential conductors: a 30 MB array
        # at 128^3, and fresh memory costs its page faults)
        self._lp = _joined(self.ee_p, self.cc_p)
        self._lq = _joined(self.ee_q, self.cc_q)
        self._cv_diag = np.bincount(self.cv_p, weights=self.G_cv, minlength=self.n).astype(float, copy=False)
        self._g_pin = self.h * params.conductivity(params.c_ref)
        # the Jacobian's diagonal from links to fixed potentials other than the top: pins, collector
        self._diag_other = self._cv_diag + np.bincount(self.pins, weights=np.full(self.pins.size, self._g_pin),
                                                       minlength=self.n)
        # diffusion potential per unit ln c: F (D+ - D-) / (dkappa/dc), kappa proportional to c
        self._beta = (FARADAY * (params.cation_diffusivity - params.anion_diffusivity) * params.c_ref
                      / params.conductivity(params.c_ref))
        kin = params.kinetics
        # the compiled Butler-Volmer law's constants (continuum.kinetics' products, same order)
        self._bv_args = (self._rf.on_lithium, kin.exchange_current_density * self._rf.activity,
                         self._rf.eta_nuc, kin.alpha_a * params.f, kin.alpha_c * params.f, params.f,
                         kin.alpha_a, kin.alpha_c, params.c_ref)
        self.pattern = None
        if self.linear.effective_method(self.n) == "gmg":  # the grid operator is the matrix
            rf = self._rf.subset(~self.bv_v)
            bv_slots = face_slots(self.shape, rf.electrolyte_index, rf.conductor_index, rf.direction)
            self._mg_slots = _joined(self._ee_slots, self._cc_slots, bv_slots)
        else:
            self.pattern = SymmetricPattern(self.n, *self._jacobian_links())

        self.area = self.h**2
        self.face_site = dict(activity=self._rf.activity, eta_nuc=self._rf.eta_nuc,
                              on_lithium=self._rf.on_lithium)
        self._start_state()

    def _start_state(self):
        """What solves keep and reuse (linear solver, multigrid hierarchy and operator, the last
        sensitivity and salt field), as a new solver has it."""
        self._scratch = Scratch()  # a solve's temporaries (the multigrid's too)
        self._mg = None
        if self.pattern is None:
            # two Gauss-Seidel sweeps each way: 16 CG iterations for 33 (warm, 128^3 porous host)
            self._mg = VoxelMultigrid(self.shape, self.node_flat, sweeps=2)
            self._mg.share_work(self._scratch)
        self._mg_operator = None  # (links, diagonal, top) of the multigrid's current operator
        self._kept_diagonals = None  # the solver's own copies of its two diagonals
        self._w_prev = None  # last sensitivity d(phi)/dV solve: initial guess for the next
        self._calls = 0
        self._ce_built = None  # the concentrations the multigrid's coarse levels were built with
        self._last_prepare = None
        self._prepared_arrays = {}  # _prepare's kept arrays, rewritten for each new salt field
        self.hierarchy_builds = 0

    def scratch(self) -> Scratch:
        """This solver's temporaries (``continuum.scratch``), for another's :meth:`use_scratch`."""
        return self._scratch

    def use_scratch(self, work: Scratch | None) -> None:
        """Take another solver's :meth:`scratch` (one that solves no more, or not while this one
        does) as this one's, if this one has used none yet: fresh arrays cost their page faults
        (a deposit step's solve at 128^3: 1.2 CPU-s for 1.7-1.9)."""
        if work is None or len(self._scratch):
            return
        self._scratch = work
        if self._mg is not None:
            self._mg.share_work(work)

    def renewed(self) -> PotentialSolver:
        """A solver for this geometry in the state a new one starts in: its solves are bit for bit
        those of ``PotentialSolver`` built again from the same arguments (nothing of this one's
        solves carries over, so a run resumed from a checkpoint, which starts without it, repeats
        them), without the geometry's construction (0.15-0.3 CPU-s at 128^3, 0.035 at 64 x 64 x
        112) nor new CG vectors.  A coupled run's macro-step whose deposit changed no voxel takes one."""
        new = copy.copy(self)
        new.linear = SPDSolver(self._linear_options[0], direct_max=self._linear_options[1])
        new._start_state()
        new.use_scratch(self.scratch())
        return new

    # -- geometry (built once in __init__) ------------------------------------------------
    def _number_nodes(self, conductivity):
        """Node numbering (electrolyte, resistive conductors, V node n), link arrays, top nodes."""
        phase = self.phase
        nz = self.shape[2]
        N = phase.size
        elec = (phase == ELECTROLYTE).ravel()
        self.elec_flat = np.flatnonzero(elec)
        ne = self.elec_flat.size
        self.ne = ne
        node = np.full(N, -1, dtype=np.int64)
        node[self.elec_flat] = np.arange(ne)
        conn = self.connected.ravel()
        self.resistive = conductivity is not None
        if self.resistive:
            sigma = np.broadcast_to(np.asarray(conductivity, dtype=np.float64), self.shape).ravel()
            if np.any(~(sigma[conn] > 0)):
                raise ValueError("conductivity must be positive on every connected conductor")
            collector = np.zeros(self.shape, dtype=bool)
            collector[:, :, 0] = self.connected[:, :, 0]
            collector = collector.ravel()
            self.cond_flat = np.flatnonzero(conn & ~collector)
            n = ne + self.cond_flat.size
            node[self.cond_flat] = ne + np.arange(self.cond_flat.size)
            node[collector] = n
            p, q, slots = voxel_links(self.connected, with_slots=True)
            npn, nqn = node[p], node[q]
            Gs = self.h * _harmonic(sigma[p], sigma[q])
            both = (npn < n) & (nqn < n)
            self.cc_p, self.cc_q, self.G_cc = npn[both], nqn[both], Gs[both]
            self._cc_slots = slots[both]
            onev = (npn < n) ^ (nqn < n)
            self.cv_p = np.where(npn[onev] < n, npn[onev], nqn[onev])
            self.G_cv = Gs[onev]
        else:
            self.cond_flat = np.zeros(0, dtype=np.int64)
            n = ne
            node[conn] = n
            self.cc_p = self.cc_q = self.cv_p = self._cc_slots = np.zeros(0, dtype=np.int64)
            self.G_cc = self.G_cv = np.zeros(0)
        self.n = n
        self.node = node

        p, q, self._ee_slots = voxel_links(phase == ELECTROLYTE, with_slots=True)
        self.ee_p, self.ee_q = node[p], node[q]
        self.top = node[self.elec_flat[self.elec_flat % nz == nz - 1]]

    def _reacting_faces(self):
        """face_active and the BV index arrays of the active faces."""
        n, node = self.n, self.node
        # Electrolyte pockets cut off from the top carry no net current.  If such a pocket has
        # only bare-host faces (cathodic branch only) no finite potential satisfies that: its
        # phi_l would run to -inf (physically it plates until its salt is gone).  Those faces
        # are switched off (zero current, overpotential NaN); see face_active.
        lab_grid, ncomp_e = periodic_components(self.phase == ELECTROLYTE)  # the ee links' components
        lab_e = lab_grid.ravel()[self.elec_flat] - 1
        self._lab_e = lab_e
        open_comp = np.zeros(ncomp_e, dtype=bool)
        open_comp[lab_e[self.top]] = True
        has_li = np.zeros(ncomp_e, dtype=bool)
        fe = node[self.faces.electrolyte_index]
        has_li[lab_e[fe[self.faces.on_lithium]]] = True
        self.face_active = open_comp[lab_e[fe]] | has_li[lab_e[fe]]
        self._rf = self.faces.subset(self.face_active)
        self.bv_e = node[self._rf.electrolyte_index]
        self.bv_q = node[self._rf.conductor_index]
        self.bv_v = self.bv_q == n  # faces whose conductor side is the V node
        self.bvc_e, self.bvc_q = self.bv_e[~self.bv_v], self.bv_q[~self.bv_v]

    def _jacobian_links(self):
        """(lp, lq): the Jacobian's off-diagonal links (electrolyte, conductor, BV to resistive
        conductors)."""
        return (_joined(self.ee_p, self.cc_p, self.bvc_e), _joined(self.ee_q, self.cc_q, self.bvc_q))

    def _pin_floating_pockets(self):
        """Nodes to pin to 0, one per component of the Jacobian's link graph with no fixed potential."""
        n = self.n
        # electrolyte pockets touching neither the top, nor a reacting face, nor (through
        # conductors) the collector have a floating potential: pin one voxel each to 0.
        anchored = np.zeros(n, dtype=bool)
        anchored[self.top] = True
        anchored[self.bv_e[self.bv_v]] = True
        anchored[self.cv_p] = True
        if n == self.ne:  # equipotential conductors: the graph is the electrolyte's links
            ncomp, lab = int(self._lab_e.max(initial=-1)) + 1, self._lab_e
        else:
            lp, lq = self._jacobian_links()
            adj = sp.coo_matrix((np.ones(lp.size), (lp, lq)), shape=(n, n))
            ncomp, lab = connected_components(adj, directed=False)
        comp_anchored = np.zeros(ncomp, dtype=bool)
        comp_anchored[lab[anchored]] = True
        _, first = np.unique(lab, return_index=True)  # first node of each component
        return first[~comp_anchored].astype(np.int64)

    # -- pieces ---------------------------------------------------------------------------
    def _prepare(self, c, phi_top, c_top):
        """Everything that depends on c but not on the potentials."""
        prm = self.params
        c_full = np.broadcast_to(np.asarray(c, dtype=np.float64), self.shape).ravel()
        ce = np.take(c_full, self.elec_flat, out=self._scratch.array("potential.ce", self.ne), mode="clip")
        np.maximum(ce, self.c_floor, out=ce)
        last = self._last_prepare
        if (last is not None and last["phi_top"] == phi_top and last["c_top"] == c_top
                and np.array_equal(last["ce"], ce)):
            return last  # the same salt field as the last solve: nothing here changed
        # the arrays kept with it: the last salt field's, which nothing reads once it is replaced
        # (its ce, compared above, is its own; the multigrid's operator and the diagonals kept
        # for its comparison are copies)
        own = self._prepared_arrays

        def kept(name, size):
            if name not in own or own[name].size != size:
                own[name] = np.empty(size)
            return own[name]

        # the salt field's own array, never written: the multigrid's hierarchy and the solutions
        # (their concentration) keep it
        ce = ce.copy()
        kap = prm.conductivity(ce)
        h = self.h
        G_lin = kept("G_lin", self._lp.size)
        PK.link_conductances(kap, self.ee_p, self.ee_q, h, G_lin[: self.ee_p.size])
        G_lin[self.ee_p.size:] = self.G_cc
        ct = ce[self.top] if c_top is None else np.full(self.top.size, max(float(c_top), self.c_floor))
        G_top = 2.0 * h * _log_mean(kap[self.top], prm.conductivity(ct))
        n = self.n
        diag_top = kept("diag_top", n)
        diag_top.fill(0.0)
        np.add.at(diag_top, self.top, G_top)  # np.bincount's sum, into the kept array
        dp = FARADAY * (prm.cation_diffusivity - prm.anion_diffusivity) * h
        s_top = 2.0 * dp * (ce[self.top] - ct)
        src = kept("src", n)
        src.fill(0.0)
        PK.diffusion_source(ce, self.ee_p, self.ee_q, dp, src)
        src[self.top] += s_top  # one entry per top voxel
        c_face = np.take(ce, self.bv_e, out=kept("c_face", self.bv_e.size), mode="clip")
        pre = dict(ce=ce, c_face=c_face, G_top=G_top, diag_top=diag_top, src=src,
                   src_abs=float(np.abs(src).sum()), s_top=s_top, phi_top=phi_top, c_top=c_top, G_lin=G_lin)
        self._last_prepare = pre
        return pre

    def _residual(self, u, V, pre, I_app, faces_only: bool = False):
        """(R, F, eta, i, di, sums): the residual of every unknown (current out of it), the
        charge balance (None when potentiostatic), per face eta, i, di/deta, and the sums
        (A |i|, |R|, |G phi| of R's link terms: its round-off scale), in one compiled pass.
        The arrays are this solve's scratch, valid until the next call.  ``faces_only``: the
        faces' part alone (R None and not written, the last two sums 0), a tenth of the cost."""
        nf = self.bv_e.size
        ws = self._scratch
        R = ws.array("potential.R", self.n)
        eta, i, di = (ws.array(f"potential.{x}", nf) for x in ("eta", "i", "di"))
        total, *sums = PK.residual(u, float(V), self._lp, self._lq, pre["G_lin"], self.top, pre["G_top"],
                                   float(pre["phi_top"]), pre["src"], self.pins, self._g_pin, self.cv_p, self.G_cv,
                                   self.bv_e, self.bv_q, self.bv_v, self.area, pre["c_face"], *self._bv_args,
                                   R, eta, i, di, not faces_only)
        # Charge balance on the total interfacial current (not on the collector current: with
        # resistive conductors the latter is a difference of large link currents and carries
        # round-off far above the tolerance; at convergence the two agree).
        F = None if I_app is None else total - I_app
        return (None if faces_only else R), F, eta, i, di, sums

    def _jacobian(self, pre, di, first_step: bool):
        """The Newton matrix (K; None on the gmg path, where it becomes the multigrid's fine
        operator, the coarse levels built on the first Newton step only: later steps change
        only the weak Butler-Volmer conductances), the Schur vectors and d."""
        n = self.n
        ws = self._scratch
        g = np.multiply(di, self.area, out=ws.array("potential.g", di.size))
        diag_v = ws.array("potential.diag_v", n)  # BV links to the V node
        rvec = ws.array("potential.rvec", n)  # the row of the charge balance
        nl, nb = pre["G_lin"].size, self.bvc_e.size
        links = ws.array("potential.links", nl + nb)  # the linear links, then the BV ones
        d = PK.bv_jacobian(g, self.bv_e, self.bv_q, self.bv_v, diag_v, rvec, links[nl:])
        links[:nl] = pre["G_lin"]
        diag = np.add(self._diag_other, diag_v, out=ws.array("potential.diag", n))
        K = None
        if self._mg is not None:
            self._set_multigrid(pre, links, diag, first_step)
        else:
            K = self.pattern.assemble(links, pre["diag_top"] + self._diag_other + diag_v)
        cvec = np.add(self._cv_diag, diag_v, out=ws.array("potential.cvec", n))
        np.negative(cvec, out=cvec)
        return K, cvec, rvec, d

    def _set_multigrid(self, pre, links, diag, first_step: bool):
        """Make (links, diag, the top's) the multigrid's operator, or, on eta_tolerance solves,
        keep the one it has where every coefficient is within _KEPT_OPERATOR of it: the whole
        operator (a salt move of a few percent, the small steps near convergence), or its faces
        with the new diagonal (0.04 CPU-s for 0.28 at 128^3).  Each coefficient within a
        fraction d makes the kept operator spectrally within 1 +- d of the true Jacobian: a
        Newton step then contracts the error by at most d worse; the residual, hence the
        answer, is always the current one."""
        hierarchy = first_step and self._hierarchy_due(pre["ce"])
        new = (links, diag, pre["diag_top"])
        kept = self._mg_operator
        if not hierarchy and self.eta_tolerance is not None and kept is not None:
            close = [a.size == b.size and PK.largest_relative_change(a, b) <= _KEPT_OPERATOR
                     for a, b in zip(new, kept)]
            if all(close):
                return
            if close[0]:
                new = (kept[0], diag, pre["diag_top"])
        self._mg.set_operator(self._mg_slots, *new, hierarchy=hierarchy)
        # kept for the next comparison: the multigrid's copy of the links, the solver's of the
        # diagonals (``links`` and ``diag`` are this solve's scratch, the top's is rewritten by
        # the next _prepare of a new salt field)
        if self._kept_diagonals is None:
            self._kept_diagonals = (np.empty(diag.shape), np.empty(diag.shape))
        for mine, given in zip(self._kept_diagonals, new[1:]):
            np.copyto(mine, given)
        self._mg_operator = (self._mg.conductance, *self._kept_diagonals)

    def _hierarchy_due(self, ce) -> bool:
        """Build the multigrid's coarse levels on this solve's first Newton step?  Only when
        none exist or the conductivity moved by more than a quarter somewhere since they were
        built: CG runs on the current operator, the hierarchy only preconditions it."""
        old = self._ce_built
        if old is not None and self._mg.levels and PK.largest_relative_change(ce, old) <= 0.25:
            return False
        self._ce_built = ce  # (a salt field's own array, never written)
        self.hierarchy_builds += 1
        return True

    def _initial_V(self, u, pre, I_app, eta0=None, slope=None, guess=None):
        """Cold-start V for galvanostatic control: the V that carries I_app with phi_l frozen.
        With ``eta0`` and ``slope`` (per face): the s with face overpotentials eta0 + s slope
        that carries I_app instead (a warm start's step along its sensitivity)."""
        if not np.any(self._rf.on_lithium) and I_app >= 0:
            raise ValueError("galvanostatic current >= 0 needs lithium to strip, and no connected "
                             "lithium touches the electrolyte")
        if len(self._rf) == 0:
            raise ValueError("no reacting interface: galvanostatic control impossible")
        if eta0 is None:
            nf = self.bv_e.size
            eta0, slope = (self._scratch.array(f"potential.{x}", nf) for x in ("ray_eta0", "ray_slope"))
            np.negative(np.take(u, self.bv_e, out=eta0, mode="clip"), out=eta0)
            slope.fill(1.0)
        args = (pre["c_face"], *self._bv_args)

        def total(V):
            return self.area * PK.ray_current(eta0, slope, V, *args)[0] - I_app

        from scipy.optimize import brentq  # here: scipy.optimize costs 0.35 s to import

        if guess is not None:
            # Newton from the guess (near the root: 2-3 evaluations where brentq takes 10);
            # brentq below if it does not settle
            s = guess
            for _ in range(8):
                f0, df0 = PK.ray_current(eta0, slope, s, *args)
                step = -(self.area * f0 - I_app) / (self.area * df0) if df0 > 0 else np.inf
                if not abs(step) < 0.05:
                    break
                s += step
                if abs(step) <= 1e-12:
                    return s
        lo, hi = -0.05, 0.05
        for _ in range(12):
            if total(lo) < 0 < total(hi):
                return brentq(total, lo, hi, xtol=1e-12)
            lo, hi = 2 * lo, 2 * hi
        raise ValueError(f"cannot bracket the cell potential for current {I_app:g} A")

    # -- public ---------------------------------------------------------------------------
    def solve(self, c, *, current=None, cell_potential=None, phi_top: float = 0.0, initial=None,
              c_top=None) -> PotentialSolution:
        """Solve for phi_l, phi_s and (galvanostatic) the cell potential.

        ``c``: concentration [mol/m^3], full grid or scalar (values in electrolyte voxels used).
        Exactly one of ``current`` (total interfacial current, A, negative = plating) and
        ``cell_potential`` (phi_s at the collector, V) is given.  ``phi_top``: electrolyte
        potential at the top boundary.  ``initial``: a previous PotentialSolution (warm start).
        ``c_top``: concentration at the top boundary for the diffusion current across the top
        half cell (None: no gradient there).
        """
        if (current is None) == (cell_potential is None):
            raise ValueError("give exactly one of current= and cell_potential=")
        t0 = time.perf_counter()
        galv = current is not None
        I_app = float(current) if galv else None
        pre = self._prepare(c, float(phi_top), c_top)
        u, V, w = self._initial_state(pre, I_app, cell_potential, phi_top, initial)
        lin_iters0 = self.linear.stats["iterations"]
        it, res, converged, V, eta, i, w = self._newton(u, V, pre, I_app, w)
        return self._solution(u, V, eta, i, it=it, res=res, converged=converged, pre=pre,
                              I_app=I_app, phi_top=phi_top, lin_iters0=lin_iters0, t0=t0, w=w)

    def _initial_state(self, pre, I_app, cell_potential, phi_top, initial):
        """Start vector u, cell potential V and sensitivity guess w (or None): warm start, then
        (galvanostatic) the V predictor."""
        galv = I_app is not None
        n = self.n
        u = self._scratch.array("potential.u", n)  # the Newton state: read out by _solution
        u.fill(float(phi_top))
        V = float(cell_potential) if not galv else None
        w = self._w_prev if (self._w_prev is not None and self._w_prev.size == n) else None
        if initial is not None:
            self._warm_values(initial.phi_l, self.elec_flat, phi_top, out=u[: self.ne])
            if self.eta_tolerance is not None:  # (tight solves: 56 CG iterations for 48 at 128^3)
                self._shift_by_salt(u, initial, pre)
            if galv:
                V = float(initial.cell_potential)
            ws = getattr(initial, "sensitivity_values", None)
            if galv and ws is not None and tuple(ws.shape) == self.shape:
                # this solver's unknowns: the last solve's w itself (never written), else
                # read off the grid as phi_l is
                w = ws.on(self.node_flat)
                if w is None:
                    w = self._warm_values(ws.grid(), self.node_flat, 0.0)
        if self.resistive:
            ps = None if initial is None else initial.phi_s.ravel()[self.cond_flat]
            Vs = V if V is not None else 0.0
            u[self.ne:] = Vs if ps is None else np.where(np.isfinite(ps), ps, Vs)
        s = None
        if galv and initial is not None and w is not None and self.eta_tolerance is not None:
            # predictor along the sensitivity: phi moves by w dV with V (to first order the
            # answer to a new current), dV such that the faces carry I_app on that ray
            nf = self.bv_e.size
            eta0, slope = (self._scratch.array(f"potential.{x}", nf) for x in ("ray_eta0", "ray_slope"))
            PK.ray_start(u, float(V), w, self.bv_e, self.bv_q, self.bv_v, eta0, slope)
            try:
                s = self._initial_V(u, pre, I_app, eta0=eta0, slope=slope, guess=0.0)
            except ValueError:  # no root on the ray (a stale w?): the frozen-phi predictor below
                s = None
            if s is not None:
                u -= np.multiply(w, s, out=self._scratch.array("potential.w_dV", n))
                V += s
        if galv and s is None:
            # predictor: the V that carries I_app with phi_l frozen (a scalar root; from a warm
            # start this already absorbs most of a change of the applied current)
            V_old = V
            V = self._initial_V(u, pre, I_app)
            if self.resistive:  # shift the conductor potentials with the collector
                u[self.ne:] = V if V_old is None else u[self.ne:] + (V - V_old)
        return u, V, w

    def _warm_values(self, field, flat, default, out=None):
        """A warm start's ``field`` (full grid, NaN off its unknowns) on the voxels ``flat``
        (into ``out`` if given): voxels new to them take the mean of their neighbours there
        (else ``default``).  On a 16 x 16 x 28 host's plate and 40 mA/cm^2 strip, 91 -> 75
        Newton steps, 327 -> 245 CG iterations, where the value at the top took up to 11 steps
        after a deposit dissolved."""
        grid = np.ascontiguousarray(field, dtype=np.float64).ravel()
        # mode "clip" (the indices are valid): "raise" writes through a temporary of out's size
        vals = np.take(grid, flat, out=out, mode="clip")
        # (the sum is finite only if every value is: no boolean temporary on the common path)
        miss = np.flatnonzero(~np.isfinite(vals)) if not np.isfinite(np.sum(vals)) else flat[:0]
        if miss.size:
            out = np.empty(miss.size)
            PK.neighbour_means(grid, *self.shape, flat[miss], float(default), out)
            vals[miss] = out
        return vals

    def _shift_by_salt(self, u, initial, pre):
        """Add to the electrolyte's phi_l (u, in place) its zero-current response to the salt's
        change since ``initial`` was solved: the diffusion potential -beta ln(c / c_then),
        relative to the top boundary's when both solves gave c_top (the log-mean links make
        it exact at zero current).  Voxels new to the electrolyte keep their start.  A 1 %
        salt move at 128^3: the first Newton step moves faces by 2e-6 V instead of 7e-5."""
        then = getattr(initial, "concentration_values", None)
        if then is None or tuple(then.shape) != self.shape:
            return
        ref = 0.0
        if pre["c_top"] is not None and getattr(initial, "c_top", None) is not None:
            ref = np.log(max(float(pre["c_top"]), self.c_floor) / max(float(initial.c_top), self.c_floor))
        c_then = then.on(self.elec_flat)
        if c_then is None:  # another geometry's solve: voxels new to the electrolyte are NaN
            c_then = then.grid().ravel()[self.elec_flat]
        PK.add_diffusion_potential(u, pre["ce"], c_then, self._beta, ref, _SHIFT_CLIP)

    def _newton(self, u, V, pre, I_app, w):
        """Damped inexact Newton on (u, V), u updated in place, from the sensitivity guess w:
        (it, res, converged, V, eta, i, w)."""
        galv = I_app is not None
        n = self.n
        tol = self.eta_tolerance
        i0 = self.params.kinetics.exchange_current_density
        floor = 1e-6 * i0 * self.area * max(len(self._rf), 1)
        self._calls += 1
        converged = False
        it = 0
        res = np.inf
        last_deta = np.inf  # largest face-overpotential change of the last Newton step
        for it in range(1, self.max_iterations + 1):
            R, F, eta, i, di, (i_abs, R_abs, G_phi) = self._residual(u, V, pre, I_app)
            Iscale = max(abs(I_app) if galv else 0.0, i_abs, pre["src_abs"], floor)
            res = R_abs / Iscale
            ferr = 0.0 if not galv else abs(F) / max(abs(I_app), floor)
            # round-off floor of R: link currents are differences of G*phi terms
            noise = 64 * np.finfo(float).eps * G_phi / Iscale
            # (stopping a step earlier on the exponential's curvature, (alpha f) s^2 under a tenth
            # of the tolerance, left a foil's open-circuit solve 0.22 mV off past the transport
            # limit, where the linear solves converge slowly: not adopted)
            eta_done = tol is not None and last_deta <= tol
            if eta_done and ferr > self.rtol:
                # the potentials are there; the charge balance misses by the last step's
                # curvature: shift the collector alone (a few scalar Newton steps)
                polished = self._polish_charge(u, V, pre, I_app, F, di, tol, floor)
                if polished is not None:
                    V, (R, F, eta, i, di, _) = polished
                    ferr = abs(F) / max(abs(I_app), floor)
            if ferr <= self.rtol and (res <= max(self.rtol, noise) or eta_done):
                converged = True
                it -= 1
                break
            K, cvec, rvec, d = self._jacobian(pre, di, first_step=it == 1)
            eta_lin, w_lin, xtol = self._linear_tolerances(max(res, ferr), last_deta)
            mg = self._mg
            if galv:
                key = ("newton", self._calls, it)  # one LU per Newton step on the direct path
                # -R in place (this step reads R no more): no temporary on the unknowns
                (a,) = self.linear.solve(K, [np.negative(R, out=R)], rtol=eta_lin, cache_key=key, multigrid=mg,
                                         xtol=xtol)
                w_xtol = 0.0
                if tol is not None and w is not None:
                    # w's error enters the step times dV (the charge balance stays exact to
                    # linear order whatever w is): solve it to _W_BUDGET of the tolerance over dV
                    dV_guess = abs((-F - rvec @ a) / (d - rvec @ w))
                    w_xtol = _W_BUDGET * tol / max(dV_guess, 1e-300)
                if w is None or w_xtol < 1.0:  # |w| <= 1: a larger xtol asks for nothing
                    (w,) = self.linear.solve(K, [cvec], x0=[w], rtol=w_lin, cache_key=key, multigrid=mg,
                                             xtol=w_xtol)
                dV = (-F - rvec @ a) / (d - rvec @ w)
                du = a  # a - w dV, in place (a is this step's own)
                du -= np.multiply(w, dV, out=self._scratch.array("potential.w_dV", n))
            else:
                (du,) = self.linear.solve(K, [np.negative(R, out=R)], rtol=eta_lin, multigrid=mg, xtol=xtol)
                dV = 0.0
            deta = PK.largest_face_change(du, float(dV), self.bv_e, self.bv_q, self.bv_v)
            scale = min(1.0, self.max_step / deta) if deta > 0 else 1.0
            last_deta = scale * deta
            u += du if scale == 1.0 else np.multiply(du, scale, out=self._scratch.array("potential.w_dV", n))
            V += scale * dV
            step = scale * max(max(du.max(), -du.min()) if n else 0.0, abs(dV))
            if scale == 1.0 and step < 1e-13 and res < 1e-6 and ferr < 1e-6:
                # round-off floor reached before rtol (huge, well-conditioned systems)
                R, F, eta, i, di, _ = self._residual(u, V, pre, I_app)
                converged = (F is None) or abs(F) / Iscale <= max(self.rtol, 1e-9)
                break
        else:
            R, F, eta, i, di, _ = self._residual(u, V, pre, I_app)
            warnings.warn(f"PotentialSolver: Newton did not converge in {self.max_iterations} "
                          f"iterations (relative residual {res:.2e})", RuntimeWarning)
        if galv and w is not None:
            self._w_prev = w
        return it, res, converged, V, eta, i, w

    def _linear_tolerances(self, r_now: float, last_deta: float) -> tuple[float, float, float]:
        """Inexact Newton: (relative tolerance of the correction, of the sensitivity, absolute
        move at which CG stops). The correction is solved only as far as the residual needs (a
        warm start near the answer then costs a few CG iterations, not a full solve). On the
        eta criterion a step's linear error is a small fraction of a step that is itself below
        the tolerance; the charge balance is exact to linear order whatever the accuracy of the
        correction and the sensitivity (dV solves the linearised balance with them)."""
        tol = self.eta_tolerance
        if tol is None:  # loose while the nonlinear error dominates, tight enough to finish once close
            eta_lin = 1e-3 if r_now > 1e-3 else float(np.clip(0.05 * self.rtol / r_now, 1e-11, 1e-3))
            return eta_lin, 1e-7, 0.0
        # a step after one below 10x the tolerance is (nearly always) the last: its own linear
        # error, 10 % of a step under the tolerance, is all it leaves; CG stops once its moves
        # fall below a tenth of the tolerance (near the answer a relative residual would ask
        # for accuracy no face needs)
        lin = 1e-2 if last_deta > 10 * tol else 1e-1
        # resistive conductors follow V (their sensitivity near 1): a loose one leaves them
        # behind and Newton diverged (a 12 x 12 x 14 host at 1e2-1e3 S/m: 60 steps, 662 CG
        # iterations, not converged; at 1e-4 2 steps, 27)
        return lin, (min(lin, _W_RESISTIVE) if self.resistive else lin), 0.1 * tol

    def _polish_charge(self, u, V, pre, I_app, F, di, tol, floor):
        """Shift V (and resistive conductors with it) until the faces carry I_app, phi_l
        fixed: (V, the faces' residual there: R None), or None when that takes more than a
        tenth of the overpotential tolerance (then Newton goes on from the state it had).
        The faces are evaluated into the Newton step's arrays (a polish that returns ends the
        solve: the charge balance met, the potentials within the tolerance, so no one reads
        R); one that gives up evaluates them again where it started."""
        V0 = V
        evaluated = False
        for _ in range(4):
            dF = self.area * di.sum()  # d(sum A i)/d(shift): every face's eta moves with it
            if not dF > 0:
                break
            step = -F / dF
            V += step
            if self.resistive:
                u[self.ne:] += step
            if abs(V - V0) > 0.1 * tol:
                break
            out = self._residual(u, V, pre, I_app, faces_only=True)
            evaluated = True
            F, di = out[1], out[4]
            if abs(F) / max(abs(I_app), floor) <= self.rtol:
                return V, out
        if self.resistive:
            u[self.ne:] -= V - V0
        if evaluated:
            self._residual(u, V0, pre, I_app, faces_only=True)
        return None

    def _solution(self, u, V, eta, i, *, it, res, converged, pre, I_app, phi_top, lin_iters0, t0, w=None):
        """The PotentialSolution (full-grid fields, per-face data, diagnostics) of the state (u, V)."""
        galv = I_app is not None
        n = self.n
        phi_l = np.full(self.phase.size, np.nan)
        phi_l[self.elec_flat] = u[: self.ne]
        phi_s = np.full(self.phase.size, np.nan)
        phi_s[self.connected.ravel()] = V
        if self.resistive:
            phi_s[self.cond_flat] = u[self.ne:]
        eta_all = np.full(len(self.faces), np.nan)
        eta_all[self.face_active] = eta
        i_all = np.zeros(len(self.faces))
        i_all[self.face_active] = i
        top_current = float(np.sum(pre["G_top"] * (u[self.top] - phi_top) + pre["s_top"]))
        # w and ce are never written again (each CG solve's answer, each salt field's own array)
        sens = VoxelValues(w, self.node_flat, self.shape) if galv and w is not None else None
        conc = VoxelValues(pre["ce"], self.elec_flat, self.shape)
        return PotentialSolution(
            phi_l=phi_l.reshape(self.shape), phi_s=phi_s.reshape(self.shape), cell_potential=float(V),
            faces=self.faces, face_overpotential=eta_all, face_current_density=i_all,
            total_current=float(self.area * i.sum()), iterations=it,
            linear_iterations=self.linear.stats["iterations"] - lin_iters0, converged=converged,
            mode="galvanostatic" if galv else "potentiostatic", applied_current=I_app,
            top_current=top_current, residual=float(res), phi_top=float(phi_top),
            diagnostics=dict(seconds=time.perf_counter() - t0, unknowns=n,
                             linear_method=self.linear.effective_method(n),
                             amg_builds=self.linear.stats["amg_builds"], pinned_pockets=int(self.pins.size),
                             inactive_faces=int((~self.face_active).sum())),
            face_active=self.face_active, sensitivity_values=sens, concentration_values=conc,
            c_top=None if pre["c_top"] is None else float(pre["c_top"]))
