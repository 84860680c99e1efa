"""Unknown numbering, links and boundary lists of a phase-field geometry: which voxels carry
xi and c (free: electrolyte and lithium), which carry phi (free and conductive host), the
host contacts (free voxels sharing a face with conductive host that start bare: the wetting
layer; `set_wetting`) with their site kinetics and, optionally, their coordination energy and
the front's (`update_coordination`), the collector and top layers."""
from __future__ import annotations

import math

import numpy as np

from ..constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from ..faces import neighbour_index
from ..fv import SymmetricPattern, voxel_links

# solid face neighbours of a kink site of a simple cubic crystal: filling or emptying it leaves
# the interface area unchanged (the coordination energy's zero, `Geometry.update_coordination`)
KINK_BONDS = 3


def _site_array(value, default, shape, name):
    if value is None:
        return np.full(shape, float(default))
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(shape, float(arr))
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} has shape {arr.shape}, the grid is {tuple(shape)}")
    return arr


class Geometry:
    """Unknown numbering, links and boundary lists of one host geometry."""

    def __init__(self, phase, spacing, params, eta_nuc, activity, bond_cell=1):
        if phase.ndim != 3:
            raise ValueError(f"phase must be a 3D array [x, y, z] (2D: shape (nx, 1, nz)), got {phase.ndim}D")
        bad = ~np.isin(phase, (ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM))
        if bad.any():
            raise ValueError(f"phase has unknown codes {sorted(set(phase[bad].tolist()))}")
        shape = phase.shape
        nz = shape[2]
        free = (phase == ELECTROLYTE) | (phase == LITHIUM)
        cond = phase == HOST_CONDUCTIVE
        if not free.any():
            raise ValueError("phase has no free (electrolyte or lithium) voxel")
        self.shape, self.h = shape, spacing
        self.free = np.flatnonzero(free)  # xi and c unknowns
        self.n = self.free.size
        node = np.full(phase.size, -1, dtype=np.int64)
        node[self.free] = np.arange(self.n)
        a, b, self.slots = voxel_links(free, with_slots=True)
        self.a, self.b = node[a], node[b]
        self.pattern = SymmetricPattern(self.n, self.a, self.b)
        # free voxels touching conductive host: the wall force and the host's site kinetics act there
        en = _site_array(eta_nuc, 0.0, shape, "eta_nuc").ravel()
        act = _site_array(activity, 1.0, shape, "activity").ravel()
        if np.any(act < 0) or not np.all(np.isfinite(act)) or not np.all(np.isfinite(en)):
            raise ValueError("activity must be finite and >= 0, eta_nuc finite")
        n_host = np.zeros(phase.size)
        mult = np.zeros(phase.size)
        for d in range(6):
            nb, valid = neighbour_index(shape, d)
            nbv = np.where(valid, nb, 0).ravel()
            hit = free.ravel() & valid.ravel() & cond.ravel()[nbv]
            n_host += hit
            mult += np.where(hit, act[nbv] * np.exp(-params.alpha_c * params.f * en[nbv]), 0.0)
        self.n_host = n_host[self.free]
        self._site_factor = mult[self.free] / np.maximum(self.n_host, 1)
        self._face_rate = 6.0 * params.profile_length / spacing * self.n_host
        touch = np.ones(self.n, dtype=bool) if params.front_bond_shift else self.n_host > 0
        self._bonds = _BondCells(phase, free, touch, bond_cell, params) \
            if params.contact_bond_shift or params.front_bond_shift else None
        # the wetting layer's voxels: free voxels on conductive host faces that start bare (a
        # face under a LITHIUM voxel of ``phase``, e.g. a foil's film, is lithium-covered and
        # its voxel an ordinary one); the solver narrows this to its initial xi (`set_wetting`)
        self.set_wetting(phase.ravel()[self.free] != LITHIUM)
        # potential unknowns: free and conductive host (dielectric carries no current)
        pm = free | cond
        self.pidx = np.flatnonzero(pm)
        self.np_ = self.pidx.size
        pnode = np.full(phase.size, -1, dtype=np.int64)
        pnode[self.pidx] = np.arange(self.np_)
        a, b, self.pslots = voxel_links(pm, with_slots=True)
        self.pa, self.pb = pnode[a], pnode[b]
        self.ppattern = SymmetricPattern(self.np_, self.pa, self.pb)
        self.pfree = pnode[self.free]
        self.pbot = np.flatnonzero(self.pidx % nz == 0)
        top_free = self.free[self.free % nz == nz - 1]
        self.ptop = pnode[top_free]
        self.ctop = node[top_free]
        self.footprint = shape[0] * shape[1] * spacing**2

    def set_wetting(self, bare):
        """The host contacts (the wetting layer, docs/phasefield.md "Host contact"): free voxels
        with host faces where ``bare`` (on the free voxels) holds; the others are ordinary."""
        self.contact = (self.n_host > 0) & np.asarray(bare, dtype=bool)
        # the wetting layer's site factor m = mean over host faces of a exp(-alpha_c f eta_nuc);
        # with the coordination energy times exp(-alpha_c f s), the anodic one exp(alpha_a f s)
        self.cathodic_factor = np.where(self.contact, self._site_factor, 1.0)
        self.anodic_factor = np.ones(self.n)
        self.coordination_shift = np.zeros(self.n)
        self.front_anodic, self.front_cathodic = np.ones(self.n), np.ones(self.n)
        self.update_coordination(np.zeros(self.n))  # the bare geometry's until the first step
        # its reaction on the host faces: per face the flat front's rate v / h = 6 L_eta
        # (sqrt(kappa/2W) / h) [...], the KMC's k_red (and k_ox) per host face
        self.face_weight = self._face_rate * self.contact
        # links with a contact at one end: the contact feels no Allen-Cahn force, its free
        # neighbour sees the contact's lithium (one-way); n_contact_links counts such links per
        # voxel for the Jacobian's diagonal
        self.contact_link, self.n_contact_links = self.cut_links(self.contact)

    @property
    def coordinated(self) -> bool:
        """Whether `update_coordination` changes anything (a contact's or the front's bond shift)."""
        return self._bonds is not None

    def update_coordination(self, xi):
        """The wetting layer's coordination energy at the order parameter ``xi`` (free voxels;
        no-op when ``contact_bond_shift`` is 0): each host contact reacts, in both branches, at
        eta + s with s = (3 - n) delta, delta = ``contact_bond_shift``: a cubic cell of edge b with
        n solid face neighbours changes the interface by 6 - 2n faces when it fills, gamma b^2 (6 -
        2n) per b^3 / V_m mol, an overpotential shift (3 - n) delta with delta = 2 gamma V_m / (F b)
        (the caller's choice of gamma and b).  n = the solid (host) faces of the contact's bond
        cell plus the lithium of its free neighbouring bond cells (each the mean of xi, clipped to
        [0, 1], over its voxels); bond cells are ``bond_cell`` voxels per edge.  Detailed balance
        holds per contact: oxidation / reduction = exp(f (eta + s)) / (m c/c0).  The solver calls
        it at every step with the step's starting xi (lagged by one step, as phi).

        With ``front_bond_shift`` (delta_f) every free voxel's front reaction (the h'(xi) term of
        `solver._reaction`, contacts included) also runs at eta + (3 - n) delta_f, n counted the
        same way: the KMC's coordination law for lithium on lithium, in mean field.

        With ``face_channels`` a cell reacts through its faces as a lattice site does: reduction
        through its faces to conductor, oxidation through those to electrolyte.  The front's
        factors are times (n - dielectric bonds) / 3 and (6 - n) / 3 (faces / 2 on a grid with
        fewer axes): a flat front's half-filled layer keeps its rate.  A contact's reduction is
        per conductive host face at its site factor m plus per lithium face at 1, (c m + n - h) /
        c, and its oxidation (6 - n) / c (h its host faces, c of them conductive)."""
        b = self._bonds
        if b is None:
            return
        missing = b.missing_bonds(xi)
        red = ox = missing
        if b.quasi_chemical and b.front_delta:
            red, ox = b.conditional_missing_bonds(xi, b.front_delta)
        if b.front_delta:
            self.front_anodic = np.exp(b.alpha_a_f * (ox * b.front_delta))
            self.front_cathodic = np.exp(-b.alpha_c_f * (red * b.front_delta))
            if b.face_channels:  # per face to conductor and to electrolyte; a flat front's half-filled layer: 1
                half = 0.5 * b.faces
                self.front_cathodic *= b.conductor_faces(red) / half
                self.front_anodic *= b.electrolyte_faces(ox) / half
        if b.quasi_chemical and b.delta and b.delta != b.front_delta:  # the closure depends on the bond's energy
            red, ox = b.conditional_missing_bonds(xi, b.delta)
        shift = missing * b.delta
        on = self.contact
        self.coordination_shift = np.where(on, shift, 0.0)
        anodic, reduction = np.exp(b.alpha_a_f * (ox * b.delta)), np.exp(-b.alpha_c_f * (red * b.delta))
        cathodic = self._site_factor * reduction
        if b.face_channels:  # per host face of the wetting layer: its host faces at the site factor, lithium at 1
            nc = np.maximum(b.conductive_bonds, 1.0)
            lithium = np.maximum(b.conductor_faces(red) - b.conductive_bonds, 0.0)
            cathodic = cathodic + reduction * lithium / nc
            anodic = anodic * b.electrolyte_faces(ox) / nc
        self.anodic_factor = np.where(on, anodic, 1.0)
        self.cathodic_factor = np.where(on, cathodic, 1.0)

    def cut_links(self, exempt):
        """The links with an ``exempt`` voxel at one end, and per voxel that is not exempt the
        number of such links (the gradient term's one-way links, `solver._gradient_links`)."""
        cut = exempt[self.a] | exempt[self.b]
        return cut, (np.bincount(self.a[cut], minlength=self.n) + np.bincount(self.b[cut], minlength=self.n)) * ~exempt


def _above(shape, voxels, z0):
    """The unknowns on ``voxels`` (flat indices on a grid of ``shape``) at z >= z0 on the sub-grid
    [:, :, z0:]: their positions among ``voxels``, their flat indices on the sub-grid, and its
    links between them (`fv.voxel_links`, numbered by position) with their face slots."""
    nx, ny, nz = shape
    nw = nz - z0
    z = voxels % nz
    index = np.flatnonzero(z >= z0)
    sub = voxels[index] // nz * nw + (z[index] - z0)
    mask = np.zeros(nx * ny * nw, dtype=bool)
    mask[sub] = True
    node = np.full(mask.size, -1, dtype=np.int64)
    node[sub] = np.arange(index.size)
    a, b, slots = voxel_links(mask.reshape(nx, ny, nw), with_slots=True)
    return index, sub, node[a], node[b], slots


class Window:
    """The free voxels at z >= ``z0`` of a geometry ``g`` as a geometry of their own, on the
    sub-grid ``[:, :, z0:]``: what the (xi, c) step solves on while every free voxel below is
    settled lithium (`PhaseFieldSolver._window`).  Links, face slots and the top layer are the
    sub-grid's (no link crosses z0: the cut is closed); the per-voxel data are ``g``'s, gathered
    (`refresh` copies the coordination's, which change every step).  ``index``: each voxel's
    index among ``g``'s free voxels (ascending: the sub-grid's C order is the grid's)."""

    def __init__(self, g: Geometry, z0: int):
        nx, ny, nz = g.shape
        nw = nz - z0
        self.z0, self.shape, self.h, self.footprint = z0, (nx, ny, nw), g.h, g.footprint
        self.index, self.free, self.a, self.b, self.slots = _above(g.shape, g.free, z0)  # free: on the sub-grid
        self.n = self.index.size
        self.pattern = SymmetricPattern(self.n, self.a, self.b)
        self.ctop = np.flatnonzero(self.free % nw == nw - 1)
        i = self.index
        self.pfree, self.n_host, self.contact, self.face_weight = g.pfree[i], g.n_host[i], g.contact[i], g.face_weight[i]
        self.contact_link, self.n_contact_links = Geometry.cut_links(self, self.contact)
        self.refresh(g)

    def scatter(self, values, n: int):
        """``values`` on the window's voxels as an array on all ``n`` free voxels, 0 elsewhere."""
        out = np.zeros(n)
        out[self.index] = values
        return out

    def refresh(self, g: Geometry):
        """The coordination's factors from ``g`` (`Geometry.update_coordination`, every step)."""
        i = self.index
        self.cathodic_factor, self.anodic_factor = g.cathodic_factor[i], g.anodic_factor[i]
        self.front_cathodic, self.front_anodic = g.front_cathodic[i], g.front_anodic[i]


class PotentialWindow:
    """phi's unknowns at z >= the window ``win``'s z0 (`Window`) of a geometry ``g`` whose every
    voxel below z0 carries phi (free or conductive host; `of` says whether it applies), the slab
    below eliminated column by column: each column's resistances from the collector's potential
    up to the window's bottom cell in series, a Dirichlet link of their sum's conductance
    (`reduce`); after the solve the slab's phi follows along its columns (`expand`).  What that
    leaves out is current crossing between columns inside the slab: the slab is settled lithium
    (sigma_s) and the collector, where such currents move phi by less than the whole slab's
    ohmic drop, microvolts (docs/phasefield.md "Settled lithium").  On the sub-grid [:, :, z0:]
    as `Window` is; ``index``: the unknowns among ``g``'s phi unknowns, ``links``: ``g``'s phi
    links they keep (both ends in the window: the sub-grid's links, in its order)."""

    @staticmethod
    def of(g: Geometry, win: Window):
        """The window's phi system, or None where a voxel below z0 carries no phi (dielectric)."""
        nx, ny, nz = g.shape
        full = np.full(nx * ny * nz, -1, dtype=np.int64)
        full[g.pidx] = np.arange(g.np_)
        flat = np.arange(nx * ny)[:, None] * nz + np.arange(win.z0 + 1)[None, :]  # per column z = 0..z0
        column = full[flat]
        return PotentialWindow(g, win, column, full) if np.all(column >= 0) else None

    def __init__(self, g: Geometry, win: Window, column, full):
        z0, nz = win.z0, g.shape[2]
        pz = g.pidx % nz
        self.index, self.pidx, self.pa, self.pb, self.pslots = _above(g.shape, g.pidx, z0)  # pidx: on the sub-grid
        self.np_ = self.index.size
        self.links = np.flatnonzero((pz[g.pa] >= z0) & (pz[g.pb] >= z0))
        pnode = np.full(g.np_, -1, dtype=np.int64)
        pnode[self.index] = np.arange(self.np_)
        if self.links.size != self.pa.size or np.any(pnode[g.pa[self.links]] != self.pa):
            raise AssertionError("the window's phi links are not the grid's in order")
        self.ppattern = SymmetricPattern(self.np_, self.pa, self.pb)
        self.pfree, self.ptop = pnode[g.pfree[win.index]], pnode[g.ptop]
        self.source = win.index  # the free voxels whose source the window's phi takes
        self.slab = column[:, :z0]  # per column its phi unknowns below z0 (g's numbering)
        self.pbot = pnode[column[:, z0]]  # per column the window's bottom cell
        link = np.full(3 * full.size, -1, dtype=np.int64)
        link[g.pslots] = np.arange(g.pslots.size)
        self.slab_links = link[2 * full.size + g.pidx[self.slab]]  # the z-link from each slab cell up
        if not np.all(self.slab_links >= 0) or not np.array_equal(g.pbot, column[:, 0]):
            raise AssertionError("the slab's columns are not the grid's")
        self._slab = None  # the slab's resistances (`reduce`)
        # a 2D grid's slab in columns x = 0..nx-1 (`lateral`): its x-links (periodic) from each cell
        nx, ny = g.shape[:2]
        self.slab_xlinks = link[g.pidx[self.slab]] if ny == 1 and nx > 2 else None
        if self.slab_xlinks is not None and not np.all(self.slab_xlinks >= 0):
            self.slab_xlinks = None  # (a grid without periodic links)
        self._uniform = None  # the slab's uniform conductances (gx, gz, gbot), False where it is not
        self._lateral = (None, None)  # (the link into the window, its `lateral` arrays)
        self.exact = False  # the solver's: phi with `lateral` from now on (the slab's drop showed it matters)

    def reduce(self, G, gbot):
        """Per column the resistance from the collector's potential to each slab cell and to the
        window's bottom cell (the last), from ``g``'s link conductances G and collector ones gbot.
        The slab's own are kept (its voxels are held while the window lives: the same numbers);
        the last link, into the window, is read each time."""
        if self._slab is None:
            self._slab = np.concatenate([1.0 / gbot[:, None], 1.0 / G[self.slab_links[:, :-1]]], axis=1).cumsum(axis=1)
        return np.concatenate([self._slab, (self._slab[:, -1] + 1.0 / G[self.slab_links[:, -1]])[:, None]], axis=1)

    def expand(self, phi, V, along, n, lateral=None):
        """phi on all ``n`` of ``g``'s phi unknowns from the window's ``phi``: each slab column
        carries its bottom link's current I = (V - phi_bottom) / R, phi = V - I R(z) in it; with
        ``lateral`` (`lateral`'s) the uniform slab's exact phi, mode by mode."""
        out = np.empty(n)
        out[self.index] = phi
        if lateral is not None:
            transfer = lateral[1]
            modes = np.fft.rfft(phi[self.pbot] - V)
            out[self.slab] = V + np.fft.irfft(transfer * modes[None, :], n=self.pbot.size, axis=1).T
            return out
        current = (V - phi[self.pbot]) / along[:, -1]
        out[self.slab] = V - current[:, None] * along[:, :-1]
        return out

    def lateral(self, G, gbot):
        """A 2D grid's uniform slab exactly: (C, T), or None where the slab is not uniform (or
        not 2D).  The columns' elimination (`reduce`) leaves out current between the slab's
        columns; a slab of equal conductances (gx across, gz up, gbot to the collector) and
        equal links into the window, periodic in x, is diagonal in x's Fourier modes: in mode k
        (lateral eigenvalue mu_k = 2 gx (1 - cos 2 pi k / nx)) each cell's admittance to the
        collector, looking down, is A_0 = gbot + mu_k, A_j = mu_k + gz A_(j-1) / (gz + A_(j-1)),
        and the window's bottom cell sees S_k = gl A / (gl + A) through its link gl.  C = S - S_0 I
        on the bottom cells (dense, circulant; S_0 is the columns' own conductance, which the
        window's operator holds), T[j, k] phi's share of the bottom cell's in slab row j."""
        if self.slab_xlinks is None:
            return None
        if self._uniform is None:
            self._uniform = _uniform(G[self.slab_xlinks], G[self.slab_links[:, :-1]], gbot)
        gl = _uniform(G[self.slab_links[:, -1]])
        if self._uniform is False or gl is False:
            return None
        if self._lateral[0] != gl:
            gx, gz, gb = self._uniform
            nx, m = self.slab.shape
            mu = 2.0 * gx * (1.0 - np.cos(2.0 * np.pi * np.arange(nx // 2 + 1) / nx))
            A = np.empty((m, mu.size))
            A[0] = gb + mu
            for j in range(1, m):
                A[j] = mu + gz * A[j - 1] / (gz + A[j - 1])
            S = gl * A[-1] / (gl + A[-1])
            T = np.empty_like(A)
            T[-1] = gl / (gl + A[-1])
            for j in range(m - 2, -1, -1):
                T[j] = T[j + 1] * gz / (gz + A[j])
            s = np.fft.irfft(S, n=nx)  # the circulant's first column
            C = s[(np.arange(nx)[:, None] - np.arange(nx)[None, :]) % nx] - S[0] * np.eye(nx)
            self._lateral = (gl, (C, T))
        return self._lateral[1]


def _uniform(*conductances):
    """Each array's common value (to 1e-12 of it; tuple for several, a float for one), or False
    where one spreads further."""
    out = []
    for c in conductances:
        lo, hi = float(np.min(c)), float(np.max(c))
        if not (lo > 0.0 and hi - lo <= 1e-12 * hi):
            return False
        out.append(float(np.mean(c)))
    return out[0] if len(out) == 1 else tuple(out)


def coarse_cells(shape, cell, name: str):
    """The grid in cubic cells of ``cell`` voxels per edge (an axis of length 1 stays one
    voxel): per voxel (flat C order) its cell's index, the cells' shape and their edges per
    axis.  ValueError naming ``name`` unless ``cell`` is a whole number >= 1 dividing every
    longer axis."""
    if isinstance(cell, bool) or int(cell) != cell or cell < 1:
        raise ValueError(f"{name} = {cell!r} is out of range: must be a whole number >= 1")
    cell = int(cell)
    k = tuple(cell if n > 1 else 1 for n in shape)
    if any(n % f for n, f in zip(shape, k)):
        raise ValueError(f"{name} = {cell}: the grid {tuple(shape)} is not made of cells of {cell} "
                         "voxels per edge")
    cs = tuple(n // f for n, f in zip(shape, k))
    idx = [np.arange(n) // f for n, f in zip(shape, k)]
    of = ((idx[0][:, None, None] * cs[1] + idx[1][None, :, None]) * cs[2] + idx[2][None, None, :]).ravel()
    return of, cs, k


class _BondCells:
    """The bond count of `Geometry.update_coordination`: the grid in cells of ``cell`` voxels per
    edge (axes of length 1 stay), each cell's solid (non-free) face neighbours, and per voxel
    whose bonds are counted (``touch``: those that can be contacts, or all with a front shift)
    its cell's free neighbour cells."""

    def __init__(self, phase, free, touch, cell, params):
        of, cs, k = coarse_cells(phase.shape, cell, "bond_cell")
        ncell = cs[0] * cs[1] * cs[2]
        # a cell is free when most of its voxels are (all or none on a refined voxel grid)
        cfree = np.bincount(of, weights=free.ravel(), minlength=ncell) >= 0.5 * np.prod(k)
        self.cell_of = of[np.flatnonzero(free)]
        self.size, self.ncell = float(np.prod(k)), ncell
        own = np.arange(ncell).reshape(cs)
        # a solid cell is conductive when most of its voxels are
        ccond = np.bincount(of, weights=(phase == HOST_CONDUCTIVE).ravel(), minlength=ncell) > 0.5 * np.prod(k)
        bonds, conductive = np.zeros(ncell), np.zeros(ncell)
        nbrs = []
        for d in range(6):
            nb, valid = neighbour_index(cs, d)
            valid = valid & (nb != own)  # an axis of length 1 has no neighbour
            nb, valid = nb.ravel(), valid.ravel()
            at = np.where(valid, nb, 0)
            bonds += valid & ~cfree[at]
            conductive += valid & ~cfree[at] & ccond[at]
            nbrs.append(np.where(valid & cfree[at], nb, ncell))  # ncell: theta 0
        mine = self.cell_of[touch]
        self.touch = touch
        self.host_bonds = bonds[mine]
        # the face channels (`PhaseFieldParameters.face_channels`): faces per cell, conductive bonds per voxel
        self.faces = 2.0 * sum(c > 1 for c in cs)
        self.conductive_bonds = self._per_voxel_value(conductive[mine])
        self.dielectric_bonds = self._per_voxel_value(bonds[mine] - conductive[mine])
        self.neighbours = np.stack(nbrs, axis=1)[mine]
        self.delta, self.front_delta = params.contact_bond_shift, params.front_bond_shift
        self.alpha_a_f, self.alpha_c_f = params.alpha_a * params.f, params.alpha_c * params.f
        self.f, self.quasi_chemical = params.f, params.bond_closure == "quasi_chemical"
        self.face_channels = params.face_channels

    def _filling(self, xi):
        """Each bond cell's mean lithium (xi clipped to [0, 1]); index ``ncell``: 0 (no cell)."""
        theta = np.bincount(self.cell_of, weights=np.clip(xi, 0.0, 1.0), minlength=self.ncell + 1) / self.size
        theta[self.ncell] = 0.0
        return theta

    def _per_voxel(self, n):
        return self._per_voxel_value(KINK_BONDS - n)

    def _per_voxel_value(self, v):
        out = np.zeros(self.cell_of.size)
        out[self.touch] = v
        return out

    def conductor_faces(self, missing):
        """A voxel's faces to conductor (host or lithium) at its bond count KINK_BONDS - ``missing``."""
        return KINK_BONDS - missing - self.dielectric_bonds

    def electrolyte_faces(self, missing):
        """A voxel's faces to electrolyte at its bond count KINK_BONDS - ``missing``."""
        return self.faces - (KINK_BONDS - missing)

    def missing_bonds(self, xi):
        """3 - n (missing bonds from a kink's) on the ``touch`` voxels, 0 elsewhere."""
        theta = self._filling(xi)
        return self._per_voxel(self.host_bonds + theta[self.neighbours].sum(axis=1))

    def conditional_missing_bonds(self, xi, delta):
        """Bethe's quasi-chemical closure of the bond count at one bond's energy f ``delta``: 3 - n
        with each neighbour j's filling given the voxel i empty (the reduction's, first) and given
        it filled (the oxidation's), on the ``touch`` voxels.  The pair (i, j) filled with p11 of
        p11 p00 = exp(f delta) p10 p01 at the marginals theta_i, theta_j (the smaller root):
        P(j | i empty) = (theta_j - p11) / (1 - theta_i), P(j | i filled) = p11 / theta_i, their
        limits at theta_i = 1 and 0 where they are 0 / 0."""
        theta = self._filling(xi)
        tj = theta[self.neighbours]
        ti = np.minimum(theta[self.cell_of[self.touch]], 1.0)[:, None]
        w = math.exp(self.f * delta)
        b = 1.0 + (w - 1.0) * (ti + tj)
        c = w * ti * tj
        p11 = 2.0 * c / (b + np.sqrt(np.maximum(b * b - 4.0 * (w - 1.0) * c, 0.0)))
        p11 = np.minimum(p11, np.minimum(ti, tj))
        small = 1e-9
        given_empty = np.where(1.0 - ti > small, (tj - p11) / np.maximum(1.0 - ti, small), tj / (tj + w * (1.0 - tj)))
        given_filled = np.where(ti > small, p11 / np.maximum(ti, small), w * tj / (1.0 - tj + w * tj))
        return (self._per_voxel(self.host_bonds + given_empty.sum(axis=1)),
                self._per_voxel(self.host_bonds + given_filled.sum(axis=1)))
