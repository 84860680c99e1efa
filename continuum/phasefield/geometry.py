"""Unknown numbering, links and boundary lists of a phase-field geometry: which voxels carry
xi and c (free: electrolyte and lithium), which carry phi (free and conductive host), the
host contacts (free voxels sharing a face with conductive host that start bare: the wetting
layer; `set_wetting`) with their site kinetics, the collector and top layers."""
from __future__ import annotations

import numpy as np

from ..constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from ..faces import neighbour_index
from ..fv import SymmetricPattern, voxel_links


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

    def __init__(self, phase, spacing, params, eta_nuc, activity):
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
        # the wetting layer's site factor m = mean over host faces of a exp(-alpha_c f eta_nuc)
        self.cathodic_factor = np.where(self.contact, self._site_factor, 1.0)
        # its reaction on the host faces: per face the flat front's rate v / h = 6 L_eta
        # (sqrt(kappa/2W) / h) [...], the KMC's k_red (and k_ox) per host face
        self.face_weight = self._face_rate * self.contact
        # links with a contact at one end: the contact feels no Allen-Cahn force, its free
        # neighbour sees the contact's lithium (one-way); n_contact_links counts such links per
        # voxel for the Jacobian's diagonal
        self.contact_link, self.n_contact_links = self.cut_links(self.contact)

    def cut_links(self, exempt):
        """The links with an ``exempt`` voxel at one end, and per voxel that is not exempt the
        number of such links (the gradient term's one-way links, `solver._gradient_links`)."""
        cut = exempt[self.a] | exempt[self.b]
        return cut, (np.bincount(self.a[cut], minlength=self.n) + np.bincount(self.b[cut], minlength=self.n)) * ~exempt
