"""Geometric multigrid on the voxel grid: the preconditioner of the continuum's CG solves.

The solvers' systems are weighted graph Laplacians on voxels (face conductances between
unknown voxels, a diagonal for links to fixed potentials and storage, a Dirichlet top).  On
the structured grid these are a 7-point stencil with a conductance per face, so the
hierarchy needs no algebraic setup: each level halves every axis longer than one (the last
cell of an odd axis keeps one child), coarse face conductances follow the fine paths in
series (``mg_kernels.coarse_faces``: coefficient-aware, a weak link inside a coarse cell
weakens its rows, but a row keeps at least a fifth of a strong crossing face, so a diffuse
metal front at contrast 1e6 is not cut apart on the coarse grids), diagonals add up.
Piecewise-constant transfers, symmetric Gauss-Seidel (forward before, backward after the
coarse correction) and an exact coarsest solve make one V-cycle a symmetric positive
definite preconditioner for any such operator.  The cycle runs in
single precision on scaled coefficients (the CG's operator and vectors stay double): a sweep
costs the bytes it reads.  ``sweeps`` Gauss-Seidel sweeps each way (the potential and salt
solvers use two: 16 CG iterations for 33 on a 128^3 porous host's warm solve).

Small components of the unknowns (electrolyte pockets closed off by a deposit or a host
wall, linked to nothing else) are solved exactly by LU beside the cycle: a pocket shares its
coarse cells with its neighbours, so the constant prolongation cannot correct its mean,
which Gauss-Seidel reduces only by storage/conductance per sweep.  On a rough foil deposit
89 such pockets (121 cells) took CG from 15 to 43 iterations.

Building a hierarchy is a few passes over the grid (milliseconds per million voxels), so a
new geometry (a deposit grew) or new coefficients (a Newton step) cost nothing to speak of;
what pyamg's smoothed aggregation spends seconds on at 128^3 is not needed here.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from . import mg_kernels as K
from .grid import periodic_components
from .scratch import Scratch


def face_slots(shape, a: np.ndarray, b: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Face slot ``axis * N + low voxel`` of the faces between voxels a and b (flat indices),
    ``direction`` 0..5 (+x, -x, +y, -y, +z, -z) pointing from a to b."""
    direction = np.asarray(direction, dtype=np.int64)
    low = np.where(direction % 2 == 0, a, b)
    return (direction // 2) * int(np.prod(shape)) + low


def _symmetric_inverse(A: np.ndarray) -> np.ndarray:
    """Dense inverse of the (small, SPD, dense) coarsest matrix, symmetrised so the cycle stays a
    symmetric preconditioner."""
    if A.shape[0] == 0:
        return np.zeros((0, 0))
    inv = np.linalg.inv(A)
    return 0.5 * (inv + inv.T)


class _Level:
    def __init__(self, gx, gy, gz, d, dtop, dtot=None, dinv=None):
        self.gx, self.gy, self.gz, self.d, self.dtop = gx, gy, gz, d, dtop
        self.shape = d.shape
        self.dtot = np.empty(self.shape) if dtot is None else dtot
        self.dinv = np.empty(self.shape) if dinv is None else dinv
        K.operator_diagonal(gx, gy, gz, d, dtop, self.dtot, self.dinv)
        self.factors = None  # to the next level

    def coarsen(self) -> "_Level":
        f = tuple(2 if n > 1 else 1 for n in self.shape)
        nc = tuple((n + fi - 1) // fi for n, fi in zip(self.shape, f))
        fx, fy, fz = f
        gx, gy, gz = np.zeros(nc), np.zeros(nc), np.zeros(nc)
        K.coarse_faces(self.gx, fx, fy, fz, True, gx)
        K.coarse_faces(self.gy.transpose(1, 0, 2), fy, fx, fz, True, gy.transpose(1, 0, 2))
        K.coarse_faces(self.gz.transpose(2, 0, 1), fz, fx, fy, False, gz.transpose(2, 0, 1))
        d = np.empty(nc)
        K.sum_children(self.d, fx, fy, fz, d)
        dtop = np.empty(nc[:2])
        K.coarse_top(self.gz, self.dtop, fx, fy, fz, dtop)
        self.factors = f
        return _Level(gx, gy, gz, d, dtop)

    def masked(self, keep: np.ndarray, array) -> "_Level":
        """This level restricted to the cells ``keep`` (faces to other cells removed), its
        grid arrays from ``array(name, shape)``."""
        def out(name):
            return array(name, self.shape)

        g = []
        for a, (name, gi) in enumerate((("masked.gx", self.gx), ("masked.gy", self.gy), ("masked.gz", self.gz))):
            both = np.roll(keep, -1, axis=a)
            both &= keep
            g.append(np.multiply(gi, both, out=out(name)))
        return _Level(g[0], g[1], g[2], np.multiply(self.d, keep, out=out("masked.d")), self.dtop * keep[:, :, -1],
                      out("masked.dtot"), out("masked.dinv"))

    def matrix(self, cells: np.ndarray | None = None):
        """This level as a CSC matrix over its unknown cells (and their flat indices), or over
        the unknown ones of ``cells`` (sorted flat indices closed under links, e.g. pockets:
        built from those cells alone, without a pass over the grid)."""
        shape = self.shape
        dtot = self.dtot.ravel()
        act = np.flatnonzero(dtot > 0) if cells is None else cells[dtot[cells] > 0]
        ijk = np.unravel_index(act, shape)
        own = np.arange(act.size)
        rows, cols, vals = [own], [own], [dtot[act]]
        for axis, g in enumerate((self.gx, self.gy, self.gz)):
            w = g.ravel()[act]
            nb = list(ijk)
            nb[axis] = (nb[axis] + 1) % shape[axis]
            nb = np.ravel_multi_index(nb, shape)
            pos = np.searchsorted(act, nb)
            sel = np.flatnonzero(w > 0)
            sel = sel[pos[sel] < act.size]
            sel = sel[act[pos[sel]] == nb[sel]]
            rows += [own[sel], pos[sel]]
            cols += [pos[sel], own[sel]]
            vals += [-w[sel], -w[sel]]
        A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(act.size, act.size))
        return A, act


_CG_WORK = tuple(f"mg.cg{k}" for k in range(4))  # the CG's work arrays' names in the scratch


def _scatter(values, index, out):
    """out[index] = values (flat ``out``), compiled where values has one entry per index."""
    if np.shape(values) == index.shape:
        K.scatter(np.ascontiguousarray(values, dtype=np.float64), index, out)
    else:
        out[index] = values


class VoxelMultigrid:
    """A V-cycle preconditioner for a system on the unknowns ``node_voxel`` (flat voxel index
    of each unknown) of a grid of ``shape``.  :meth:`set_operator` takes the operator as face
    conductances; :meth:`preconditioner` is the LinearOperator for CG.  ``plane``: :meth:`solve`
    runs in the calling thread with the 2D grids' interleaved sweep (`mg_kernels.pcg`'s plane, the
    same numbers; the phase field's x-z grids), compiled only where it is asked for."""

    def __init__(self, shape, node_voxel: np.ndarray, *, coarse_max: int = 256, sweeps: int = 1,
                 pocket_max: int = 4096, plane: bool = False):
        self.shape = tuple(int(s) for s in shape)
        self.N = int(np.prod(self.shape))
        self.node_voxel = np.asarray(node_voxel, dtype=np.int64)
        self.n = self.node_voxel.size
        self.coarse_max = int(coarse_max)
        self.sweeps = int(sweeps)
        self.pocket_max = int(pocket_max)
        self.plane = bool(plane)
        self._kernels = (None, True) if self.plane else (True, None)  # pcg's (threaded, plane)
        self.levels: list[_Level] = []  # the cycle's hierarchy (pockets masked out of the fine level)
        self._fine: _Level | None = None  # the whole fine operator
        self._coarse_cells = None
        self._pockets: np.ndarray | None = None  # bool grid, or None when there are none
        self._unknown = self._found = None  # the cells of the last pocket search, and what it found
        self._pocket_lu = None
        self._pocket_cells = None
        self._coarse_inverse = None
        self._compiled = None  # the hierarchy as the compiled CG takes it (built on first use)
        self._slots = self._conductance = None  # the fine faces' last input (reused when unchanged)
        self._level_arrays = {}  # the fine level's and the packed cycle's arrays, rewritten in place
        self.scratch = Scratch()  # the solves' temporaries (CG vectors, grid right-hand sides)

    def _level_array(self, name: str, shape) -> np.ndarray:
        """The fine level's array ``name``, reused from the last set_operator (whose level it
        was part of is replaced by this call's): fresh grid arrays cost their page faults."""
        a = self._level_arrays.get(name)
        if a is None or a.shape != tuple(shape):
            a = self._level_arrays[name] = np.empty(shape)
        return a

    def _top_diagonal(self, top_conductance):
        """The top Dirichlet links' conductance per column (nonzero on top-layer unknowns only)."""
        shape = self.shape
        dtop = np.zeros(shape[:2])
        if top_conductance is None:
            return dtop
        vox = self.node_voxel
        if np.shape(top_conductance) == vox.shape:  # compiled: the same sums
            ok = K.top_diagonal(np.ascontiguousarray(top_conductance, dtype=np.float64), vox, shape[2],
                                dtop.reshape(-1))
        else:
            on = np.flatnonzero(top_conductance)
            ok = not np.any(vox[on] % shape[2] != shape[2] - 1)
            if ok:
                dtop.ravel()[vox[on] // shape[2]] += top_conductance[on]
        if not ok:
            raise ValueError("top_conductance on an unknown outside the top layer")
        return dtop

    def set_operator(self, slots: np.ndarray, conductance: np.ndarray, diagonal: np.ndarray,
                     top_conductance: np.ndarray | None = None, *, hierarchy: bool = True):
        """Operator ``sum_links G (e_p - e_q)(e_p - e_q)^T + diag(diagonal + top_conductance)``.

        ``slots``: the links' face slots (``fv.voxel_links(..., with_slots=True)``,
        :func:`face_slots`); ``conductance`` per link; ``diagonal`` and ``top_conductance`` (a
        Dirichlet link above the top layer, nonzero on top-layer unknowns only) per unknown.
        ``hierarchy`` False: replace the fine operator only and keep the coarse levels (a
        Newton step that changed only the weak interface conductances): :meth:`matvec` is
        then exact and the preconditioner slightly stale."""
        shape = self.shape
        # a Newton step on equipotential conductors changes the diagonal only: keep the faces
        same_faces = (not hierarchy and bool(self.levels) and self._slots is not None
                      and (slots is self._slots or np.array_equal(slots, self._slots))
                      and np.array_equal(conductance, self._conductance))
        if same_faces:
            g = (self._fine.gx, self._fine.gy, self._fine.gz)
        else:
            # the sum over links per face slot (np.bincount's, in the same order) into the
            # fine level's own array
            g = self._level_array("faces", (3,) + shape)
            g.fill(0.0)
            if np.shape(conductance) == np.shape(slots):
                K.scatter_add(np.ascontiguousarray(conductance, dtype=np.float64), slots, g.reshape(-1))
            else:
                np.add.at(g.reshape(-1), slots, conductance)
            if self._conductance is not None and self._conductance.shape == np.shape(conductance):
                np.copyto(self._conductance, conductance)
            else:
                self._conductance = np.array(conductance, dtype=np.float64)
            self._slots = slots
        d = self._level_array("diagonal", shape)
        d.fill(0.0)
        _scatter(diagonal, self.node_voxel, d.reshape(-1))
        dtop = self._top_diagonal(top_conductance)
        fine = _Level(g[0], g[1], g[2], d, dtop, self._level_array("dtot", shape), self._level_array("dinv", shape))
        self._fine = fine
        if hierarchy or not self.levels:
            self._pockets = self._find_pockets(fine)
        pockets_before = self._pockets
        if self._pockets is not None:
            A, self._pocket_cells = fine.matrix(np.flatnonzero(self._pockets.ravel()))
            if np.any(A.diagonal() <= 0) or A.shape[0] > 4 * self.pocket_max:
                self._pockets = None  # a pocket without a diagonal is singular; too many cells: leave them
            else:
                self._pocket_lu = spla.splu(A)
        if same_faces and self._pockets is pockets_before:
            # the cycle's faces (pockets cut off) are unchanged too: new diagonals only, written
            # into the packed single-precision level in place
            L0 = self.levels[0]
            if self._pockets is None:
                cycle_fine = fine  # the same faces (L0's arrays)
            else:  # the cycle leaves them out, as `masked` does
                keep = ~self._pockets  # into the masked level's arrays (L0's, which this replaces)
                d = np.multiply(fine.d, keep, out=self._level_array("masked.d", shape))
                cycle_fine = _Level(L0.gx, L0.gy, L0.gz, d, fine.dtop * keep[:, :, -1],
                                    self._level_array("masked.dtot", shape), self._level_array("masked.dinv", shape))
            cycle_fine.factors = L0.factors
            self.levels[0] = cycle_fine
            if self._compiled is not None:
                n0 = cycle_fine.dtot.size
                cscale = self._compiled[-1]  # entries 3 and 4: the packed dtot and dinv
                np.divide(cycle_fine.dtot.ravel(), cscale, out=self._compiled[3][:n0], casting="same_kind")
                np.multiply(cycle_fine.dinv.ravel(), cscale, out=self._compiled[4][:n0], casting="same_kind")
            return
        cycle_fine = fine if self._pockets is None else fine.masked(~self._pockets, self._level_array)
        if not hierarchy and self.levels:
            cycle_fine.factors = self.levels[0].factors
            self.levels[0] = cycle_fine
            self._compiled = None
            return
        levels = [cycle_fine]
        while levels[-1].d.size > self.coarse_max and max(levels[-1].shape) > 1:
            levels.append(levels[-1].coarsen())
        self.levels = levels
        coarsest = levels[-1]
        self._coarse_cells, A = K.coarsest_operator(coarsest.gx, coarsest.gy, coarsest.gz, coarsest.dtot)
        self._coarse_inverse = _symmetric_inverse(A)
        self._compiled = None

    def _find_pockets(self, fine: _Level) -> np.ndarray | None:
        """Cells of the components (face-connected unknowns, periodic in x and y) of at most
        ``pocket_max`` cells other than the largest, or None.  Components are taken from the
        unknowns' adjacency: a zero conductance between two unknowns only merges components,
        which leaves them in the cycle as before.  Kept while the unknowns are the same cells
        (the labelling was a fifth of a hierarchy's set-up on Hong's 200^2 grid)."""
        unknown = fine.dtot > 0
        if self._unknown is not None and np.array_equal(unknown, self._unknown):
            return self._found
        lab, n = periodic_components(unknown)
        found = None
        if n > 1:
            size = np.bincount(lab.ravel())
            size[0] = 0
            small = (size <= self.pocket_max) & (size > 0)
            small[np.argmax(size)] = False
            found = small[lab] if small.any() else None
        self._unknown, self._found = unknown, found
        return found

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """The fine operator on a vector over the unknowns."""
        L = self._fine
        xg = np.zeros(self.N)
        xg[self.node_voxel] = x
        out = np.empty(L.shape)
        K.apply_operator(xg.reshape(L.shape), L.gx, L.gy, L.gz, L.dtot, out)
        return out.ravel()[self.node_voxel]

    def operator(self) -> spla.LinearOperator:
        return spla.LinearOperator((self.n, self.n), matvec=self.matvec, dtype=np.float64)

    def vcycle(self, b: np.ndarray) -> np.ndarray:
        """One cycle from x = 0 on the fine-grid right-hand side ``b`` (grid shape): the
        compiled cycle the CG of :meth:`solve` applies, pockets solved beside it."""
        x = np.empty(self.shape)
        *levels, cscale = self._compiled_levels()
        bn = float(np.sqrt(np.vdot(b, b))) or 1.0
        K.vcycle_into(*levels, self.sweeps, np.ascontiguousarray(b), x, 1.0 / bn, bn / cscale, *self._kernels)
        if self._pockets is not None:
            x.ravel()[self._pocket_cells] = self._pocket_lu.solve(b.ravel()[self._pocket_cells])
        return x

    def _compiled_levels(self):
        if self._compiled is None:
            levels = self.levels
            shapes = np.array([L.shape for L in levels], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(shapes.prod(axis=1))[:-1]]).astype(np.int64)
            # single precision, scaled so the largest diagonal is 1 (the cycle's answer is
            # scaled back by cscale): no conductance units under- or overflow a float32
            cscale = float(levels[0].dtot.max(initial=0.0)) or 1.0
            total = int(shapes.prod(axis=1).sum())
            # the cycle's arrays: the faces, diagonals and the two vectors of its levels, float32;
            # the last hierarchy's reused (the same sizes whenever the grid is)
            packed = [self._level_arrays.get(f"packed{k}") for k in range(7)]
            if packed[0] is None or packed[0].size != total:
                packed = [np.empty(total, np.float32) for _ in range(7)]
                self._level_arrays.update({f"packed{k}": a for k, a in enumerate(packed)})
            for L, o in zip(levels, offsets):
                K.pack_level(L.gx.ravel(), L.gy.ravel(), L.gz.ravel(), L.dtot.ravel(), L.dinv.ravel(),
                             cscale, int(o), *packed[:5])
            shifts = np.array([[f // 2 for f in L.factors] for L in levels[:-1]] or [[0, 0, 0]],
                              dtype=np.int64)
            for a in packed[5:]:
                a.fill(0.0)
            self._compiled = (*packed, offsets, shapes, shifts,
                              np.asarray(self._coarse_cells, dtype=np.int64), self._coarse_inverse * cscale,
                              cscale)
        return self._compiled

    @property
    def conductance(self):
        """The fine operator's link conductances as last given to :meth:`set_operator` (its own
        copy, rewritten in place by the next call)."""
        return self._conductance

    @property
    def work(self):
        """This hierarchy's :class:`Scratch` (the solves' temporaries), for another's :meth:`share_work`."""
        return self.scratch

    def share_work(self, work) -> None:
        """Take ``work`` (another hierarchy's :attr:`work`, no longer solving) as this one's
        scratch if this one has used none yet: fresh arrays cost their page faults (17 MB each
        at 128^3)."""
        if work is not None and not len(self.scratch):
            self.scratch = work

    def solve(self, b: np.ndarray, x0: np.ndarray | None = None, rtol: float = 1e-10,
              maxiter: int = 5000, xtol: float = 0.0) -> tuple[np.ndarray, int]:
        """CG on the fine operator preconditioned by the V-cycle, in one compiled call:
        (x over the unknowns, iterations; -1 when ``maxiter`` was not enough).  Stops at
        |b - A x| <= rtol |b| or (``xtol`` > 0) once an iteration moved no unknown by more
        than xtol.  Closed pockets are solved exactly beside it (they share no link with the
        rest, so the system splits)."""
        bg = self.scratch.zeros("mg.b", self.N)
        _scatter(b, self.node_voxel, bg)
        xg = self.scratch.zeros("mg.x", self.N)
        if x0 is not None:
            _scatter(x0, self.node_voxel, xg)
        xp = None
        if self._pockets is not None:
            cells = self._pocket_cells
            xp = self._pocket_lu.solve(bg[cells])
            bg[cells] = 0.0
            xg[cells] = 0.0
        xg = xg.reshape(self.shape)
        L = self.levels[0]
        work = [self.scratch.array(name, self.shape) for name in _CG_WORK]
        its = K.pcg(xg, bg.reshape(self.shape), *work, L.gx, L.gy, L.gz, L.dtot, *self._compiled_levels(),
                    self.sweeps, float(rtol), int(maxiter), float(xtol), *self._kernels)
        xg = xg.ravel()
        if xp is not None:
            xg[self._pocket_cells] = xp
        return K.gather(xg, self.node_voxel), its

    def apply(self, r: np.ndarray) -> np.ndarray:
        """The preconditioner on a vector over the unknowns."""
        b = np.zeros(self.N)
        b[self.node_voxel] = r
        return self.vcycle(b.reshape(self.shape)).ravel()[self.node_voxel]

    def preconditioner(self) -> spla.LinearOperator:
        return spla.LinearOperator((self.n, self.n), matvec=self.apply, dtype=np.float64)
