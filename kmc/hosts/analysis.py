"""Host geometry and deposit topology (``../shared/MODEL.md`` section 10): what a study reports
about its hosts (``host.json`` beside every run) and about a deposit at any snapshot.

Conventions (those of :mod:`kmc.hosts`): arrays ``[x, y, z]``, periodic in x and y, layer
``z = 0`` the collector, host region the layers ``1 .. H`` with ``H = host_layers`` (the
highest layer holding a host voxel), voxel edge ``h``.

* **Pore** is every voxel that is not host (electrolyte *or lithium*), so the analysis of a
  plated snapshot describes the same skeleton as that of the bare host.
* **Conductor** (for SA) is HOST_CONDUCTIVE connected to the collector through conductive host
  (floating conductive clusters and dielectric walls do not react; their faces are counted
  apart as ``inactive_interface_area_um2``). The collector's top faces under pores count.
* **SA** = conductor/pore face area / footprint area ``nx ny h^2`` [-], all faces in the grid
  (the host's top surface included); ``SA_inside`` only the faces whose pore voxel lies in the
  host region (pore walls and pore bottoms, not the top surface).
* **SV** = the same areas / pore volume of the host region [1/um].
* **Pore capacity** = porosity x host height x 2061 mAh/cm^3 [mAh/cm^2] (the lithium that
  fills the pores; ``open_pore_capacity_mAh_cm2`` counts only pores open to the top).
* **Tortuosity**: geodesic length through the pore space from the collector's top face to the
  host's top face, over the host height ``H h``. Graph: pore voxels of the host region, linked
  to their 26 neighbours with Euclidean weights 1, sqrt 2, sqrt 3 (a chamfer metric: exact
  along axes and face or body diagonals, at most 13 % long in between; a face-step count
  would be up to 73 % long), where an edge or corner link is allowed
  only if a face-by-face route between the two voxels runs through pore voxels too (so the
  graph connects exactly the face-connected pore space the model's transport sees). A path
  from a layer-1 voxel centre to a layer-H voxel centre of length L has the length L + h
  (half a voxel at each end); a straight vertical channel has tortuosity exactly 1. Shortest
  paths are Dijkstra from all layer-1 pore voxels at once (``scipy.sparse.csgraph``).
* **Throat**: the pore-space Euclidean distance transform ``D`` (voxel centre to the nearest
  host voxel centre above the collector, periodic in x, y; the collector and the open top are
  not walls) gives, for a channel of odd width w voxels, ``D = (w + 1) / 2`` on its axis. The
  *best path* is the widest one: the largest ``r_c`` for which the pore voxels with
  ``D >= r_c`` still connect layer 1 to layer H (the breakthrough or critical throat of a
  percolation / mercury-intrusion picture); along it, the path within that set that crosses
  the fewest *critical* voxels (``D = r_c``), and the shortest of those (so it keeps to the
  wide parts and meets the critical width only where it must). ``throat_diameter_um =
  (2 r_c - 1) h`` (exact for odd-width axis-aligned openings: a one-voxel hole is h);
  ``throat_location_um`` is the centre of the middle voxel of the first (lowest) run of
  critical voxels along the best path (a uniform channel is critical over its whole height:
  its middle); ``tortuosity_best_path`` is that path's tortuosity.
* **Closed pores**: face-connected (periodic) pore components that do not reach the top layer
  of the grid; count and volume (fraction of the host region's pore volume).

Graph work: the pore graph of a 64 x 64 x 96 random porous host (porosity 0.6) has 2.3 million
links, so its shortest paths and components run on ``scipy.sparse.csgraph`` and
``scipy.ndimage`` (links and Dijkstra 0.35 s; the same graph in networkx took 3.8 s to build
and 4.4 s per multi-source Dijkstra); networkx carries the deposit's growth tree, which is
small (:func:`growth_tree`, :func:`deposit_topology`). The whole
:func:`host_analysis` of a 64 x 64 x 96 random porous host takes 0.3-0.8 s (porosity 0.4-0.8).
"""
from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Optional

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, LITHIUM, LITHIUM_MAH_PER_CM3
from continuum.grid import collector_connected, count_faces, host_mask

from .host import Host, _check_spacing_um, _periodic_label

if TYPE_CHECKING:  # networkx is imported where the growth tree is built (0.25 s per process)
    import networkx as nx

#: Default shortest branch (in shells beyond its junction) that :func:`deposit_topology` counts.
MIN_BRANCH_LENGTH = 2

# forward half of the 26-neighbourhood: every undirected link once
_OFFSETS = [o for o in itertools.product((-1, 0, 1), repeat=3)
            if (o[2], o[1], o[0]) > (0, 0, 0)]


# ----------------------------------------------------------------------------------------
# voxel helpers (periodic x, y; bounded z)
# ----------------------------------------------------------------------------------------
def _shifted(mask: np.ndarray, off) -> np.ndarray:
    """``out[i, j, k] = mask[i + dx, j + dy, k + dz]`` (periodic x, y; False past the z ends)."""
    dx, dy, dz = off
    r = np.roll(mask, (-dx, -dy), axis=(0, 1)) if (dx or dy) else mask
    if dz == 0:
        return r
    out = np.zeros_like(mask)
    if dz > 0:
        out[:, :, :-dz] = r[:, :, dz:]
    else:
        out[:, :, -dz:] = r[:, :, :dz]
    return out


def _links(mask: np.ndarray, offsets, corridor: bool):
    """Undirected links (p, q, length in voxels) between voxels of ``mask`` (flat indices of
    ``mask``), deduplicated (keeping the shortest), without self-links. With ``corridor``, an
    edge/corner link needs a face-by-face route through ``mask`` between its ends."""
    flat = np.arange(mask.size, dtype=np.int64).reshape(mask.shape)
    ps, qs, ws = [], [], []
    for off in offsets:
        ok = mask & _shifted(mask, off)
        steps = [tuple(s if a == i else 0 for a in range(3)) for i, s in enumerate(off) if s]
        if corridor and len(steps) > 1:
            route = np.zeros_like(mask)
            for perm in itertools.permutations(steps):
                leg = np.ones_like(mask)
                partial = np.zeros(3, dtype=int)
                for st in perm[:-1]:
                    partial += st
                    leg &= _shifted(mask, tuple(partial))
                route |= leg
            ok &= route
        p = np.flatnonzero(ok)
        ps.append(p)
        qs.append(_shifted(flat, off).ravel()[p])
        ws.append(np.full(p.size, math.sqrt(len(steps))))
    p, q, w = (np.concatenate(a) if a else np.zeros(0) for a in (ps, qs, ws))
    p, q = np.minimum(p, q).astype(np.int64), np.maximum(p, q).astype(np.int64)
    keep = p != q
    p, q, w = p[keep], q[keep], w[keep]
    order = np.lexsort((w, q, p))
    p, q, w = p[order], q[order], w[order]
    first = np.ones(p.size, dtype=bool)
    first[1:] = (p[1:] != p[:-1]) | (q[1:] != q[:-1])
    return p[first], q[first], w[first]


def _graph(mask: np.ndarray, p, q, w):
    """Symmetric CSR over the voxels of ``mask`` (node i = i-th True voxel in C order)."""
    node = np.full(mask.size, -1, dtype=np.int64)
    node[mask.ravel()] = np.arange(int(np.count_nonzero(mask)))
    n = int(np.count_nonzero(mask))
    return sparse.coo_matrix((w, (node[p], node[q])), shape=(n, n)).tocsr(), node


def _path_length(path: np.ndarray, shape) -> float:
    """Euclidean length [voxels] of a chain of neighbouring voxels (periodic x, y)."""
    c = np.stack(np.unravel_index(path, shape), axis=1)
    d = np.abs(np.diff(c, axis=0))
    for ax in (0, 1):
        d[:, ax] = np.minimum(d[:, ax], shape[ax] - d[:, ax])
    return float(np.sqrt((d ** 2).sum(axis=1)).sum())


def _geodesic(mask: np.ndarray, avoid: Optional[np.ndarray] = None):
    """Shortest path through ``mask`` (host region, layer 1 = index 0) from the bottom layer
    to the top layer: (length in voxels face to face, path as flat indices) or (None, None).
    With ``avoid`` (bool, same shape), the path crosses as few ``avoid`` voxels as it can
    first (each costs more than any path's length), and is the shortest of those."""
    H = mask.shape[2]
    if not mask[:, :, 0].any() or not mask[:, :, -1].any():
        return None, None
    p, q, w = _links(mask, _OFFSETS, corridor=True)
    if avoid is not None:
        a = avoid.ravel()
        w = w + 2.0 * mask.size * (a[p].astype(float) + a[q])  # half a penalty per end of a link
    g, node = _graph(mask, p, q, w)
    voxels = np.flatnonzero(mask.ravel())
    z = voxels % H
    dist, pred, _ = csgraph.dijkstra(g, directed=False, indices=np.flatnonzero(z == 0), min_only=True,
                                     return_predecessors=True)
    tops = np.flatnonzero(z == H - 1)
    best = tops[np.argmin(dist[tops])]
    if not np.isfinite(dist[best]):
        return None, None
    path = [best]
    while pred[path[-1]] >= 0:
        path.append(pred[path[-1]])
    path = voxels[np.array(path[::-1])]
    return _path_length(path, mask.shape) + 1.0, path


def _periodic_edt(pore: np.ndarray) -> np.ndarray:
    """Euclidean distance [voxels] from each pore voxel centre to the nearest non-pore voxel
    centre, periodic in x and y (the z ends are not walls); inf where there is no wall."""
    if pore.all():
        return np.full(pore.shape, np.inf)
    px, py = pore.shape[0] // 2 + 1, pore.shape[1] // 2 + 1
    big = np.pad(pore, ((px, px), (py, py), (0, 0)), mode="wrap")
    d = ndimage.distance_transform_edt(big)
    return d[px:px + pore.shape[0], py:py + pore.shape[1], :]


def _spans(mask: np.ndarray) -> bool:
    """Does a face-connected (periodic) component of ``mask`` touch both z ends?"""
    lab, n = _periodic_label(mask)
    if n == 0:
        return False
    bottom, top = np.unique(lab[:, :, 0]), np.unique(lab[:, :, -1])
    return bool(np.intersect1d(bottom[bottom > 0], top[top > 0]).size)


def _critical_radius(pore: np.ndarray, dt: np.ndarray) -> Optional[float]:
    """Largest r with {pore, D >= r} spanning the host region (None if the pores do not span)."""
    values = np.unique(dt[pore])
    if values.size == 0 or not _spans(pore):
        return None
    lo, hi = 0, values.size - 1  # values[lo] spans; find the last index that does
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _spans(pore & (dt >= values[mid])):
            lo = mid
        else:
            hi = mid - 1
    return float(values[lo])


# ----------------------------------------------------------------------------------------
# host analysis
# ----------------------------------------------------------------------------------------
def _surface(phase: np.ndarray, pore: np.ndarray, H: int) -> dict:
    """Face counts: active conductor/pore (all, inside the host region), inactive host/pore."""
    skeleton = np.where(phase == LITHIUM, ELECTROLYTE, phase)  # conduction through the host alone
    active = (phase == HOST_CONDUCTIVE) & collector_connected(skeleton)
    inactive = host_mask(phase) & ~active
    inside = pore.copy()
    inside[:, :, H + 1:] = False
    inside[:, :, 0] = False
    return {"active": count_faces(active, pore), "active_inside": count_faces(active, inside),
            "inactive": count_faces(inactive, pore)}


def _pores(pore: np.ndarray, H: int) -> dict:
    """Closed pores (components not reaching the grid's top layer) in the host region."""
    lab, n = _periodic_label(pore)
    open_ids = np.unique(lab[:, :, -1])
    closed = (lab > 0) & ~np.isin(lab, open_ids[open_ids > 0])
    n_closed = int(np.unique(lab[closed]).size)
    region = pore[:, :, 1:H + 1]
    n_pore = int(np.count_nonzero(region))
    n_closed_vox = int(np.count_nonzero(closed[:, :, 1:H + 1]))
    return {"n_pore": n_pore, "n_closed": n_closed, "n_closed_vox": n_closed_vox}


def _transport(pore_region: np.ndarray, h_um: float) -> dict:
    """Tortuosity, the widest path's throat and that path's tortuosity."""
    H = pore_region.shape[2]
    out = {"percolates": False, "tortuosity": None, "tortuosity_best_path": None,
           "throat_diameter_um": None, "throat_location_um": None}
    length, _ = _geodesic(pore_region)
    if length is None:
        return out
    out.update(percolates=True, tortuosity=length / H)
    dt = _periodic_edt(pore_region)
    r_c = _critical_radius(pore_region, dt)
    best = pore_region & (dt >= r_c)
    critical = best & np.isclose(dt, r_c)
    length_b, path = _geodesic(best, avoid=critical)
    if length_b is None:  # cannot happen (best spans by construction); stay honest if it does
        return out
    crit = critical.ravel()[path]
    start = int(np.argmax(crit))  # the first run of critical voxels on the path, and its middle
    stop = start + (int(np.argmin(crit[start:])) if not crit[start:].all() else int(crit[start:].size))
    i, j, k = np.unravel_index(path[(start + stop - 1) // 2], pore_region.shape)
    out.update(tortuosity_best_path=length_b / H,
               throat_diameter_um=(2.0 * r_c - 1.0) * h_um,
               throat_location_um=[(i + 0.5) * h_um, (j + 0.5) * h_um, (k + 0.5) * h_um])
    return out


def _host_region(phase: np.ndarray):
    """(host mask, H = highest host layer above the collector, pore mask of layers 1..H)."""
    host = host_mask(phase)
    layers = np.flatnonzero(host[:, :, 1:].any(axis=(0, 1)))
    H = int(layers[-1]) + 1 if layers.size else 0
    return host, H, ~host[:, :, 1:H + 1]


def pore_capacity(phase: np.ndarray, spacing_um: float) -> float:
    """Lithium that fills the host region's pores [mAh/cm^2]: porosity x host height x
    2061 mAh/cm^3 (0 for a bare collector); the ``pore_capacity_mAh_cm2`` of
    :func:`analyse_phase` without its graph work."""
    _, H, region = _host_region(np.asarray(phase))
    return float(region.mean()) * H * _check_spacing_um(spacing_um) * 1e-4 * LITHIUM_MAH_PER_CM3 if H else 0.0


def floating_conductors(phase: np.ndarray) -> tuple[np.ndarray, int]:
    """Pieces of conductive host not connected to the collector through conductive host (a
    conductive band above a dielectric one, a floating cluster of a random host): face-connected
    (periodic x, y) labels 1..n and n. Lithium is ignored: a piece stays in the list after
    lithium connects it (test that with ``collector_connected`` of the plated phase)."""
    host_c = np.asarray(phase) == HOST_CONDUCTIVE
    return _periodic_label(host_c & ~collector_connected(np.where(host_c, HOST_CONDUCTIVE, ELECTROLYTE)))


def analyse_phase(phase: np.ndarray, spacing_um: float, *, name: Optional[str] = None) -> dict:
    """Host descriptors of a phase array (codes of :mod:`continuum.constants`) with voxel edge
    ``spacing_um`` [um], as a JSON-ready dict (lengths in um, areas in um^2; None where a value
    does not exist, e.g. a tortuosity when no pore path crosses the host). Definitions: the
    module docstring. Keys: ``porosity_per_layer`` lists layers 1..H (entry k-1 is layer k,
    centred (k - 1/2) h above the collector's top face)."""
    phase = np.asarray(phase)
    if phase.ndim != 3 or phase.shape[2] < 2:
        raise ValueError(f"phase must be 3-D (nx, ny, nz) with nz >= 2, got shape {phase.shape}")
    h = _check_spacing_um(spacing_um)
    nx_, ny_, nz_ = phase.shape
    host, H, region = _host_region(phase)
    pore = ~host
    per_layer = region.mean(axis=(0, 1)) if H else np.zeros(0)
    porosity = float(region.mean()) if H else 1.0
    faces, pores = _surface(phase, pore, H), _pores(pore, H)
    footprint = nx_ * ny_
    n_pore = pores["n_pore"]
    n_open = n_pore - pores["n_closed_vox"]
    out = {
        "name": name, "shape": [nx_, ny_, nz_], "spacing_um": h, "host_layers": H, "host_height_um": H * h,
        "porosity": porosity, "porosity_per_layer": [float(v) for v in per_layer],
        "interface_area_um2": faces["active"] * h * h, "inactive_interface_area_um2": faces["inactive"] * h * h,
        "SA": faces["active"] / footprint, "SA_inside": faces["active_inside"] / footprint,
        "pore_volume_um3": n_pore * h ** 3,
        "SV_per_um": faces["active"] / (n_pore * h) if n_pore else None,
        "SV_inside_per_um": faces["active_inside"] / (n_pore * h) if n_pore else None,
        "pore_capacity_mAh_cm2": pore_capacity(phase, h),
        "open_pore_capacity_mAh_cm2": n_open / footprint * h * 1e-4 * LITHIUM_MAH_PER_CM3,
        "open_pore_volume_fraction": n_open / n_pore if n_pore else None,
        "closed_pore_count": pores["n_closed"],
        "closed_pore_volume_um3": pores["n_closed_vox"] * h ** 3,
        "closed_pore_volume_fraction": pores["n_closed_vox"] / n_pore if n_pore else None,
    }
    if H:
        out.update(_transport(region, h))
    else:
        out.update(percolates=False, tortuosity=None, tortuosity_best_path=None,
                   throat_diameter_um=None, throat_location_um=None)
    return out


def host_analysis(host: Host) -> dict:
    """:func:`analyse_phase` of a :class:`~kmc.hosts.host.Host` (``host.spacing`` is in metres)."""
    return analyse_phase(host.phase, float(host.spacing) * 1e6, name=host.name)


# ----------------------------------------------------------------------------------------
# deposit topology
# ----------------------------------------------------------------------------------------
def growth_tree(li: np.ndarray, roots: np.ndarray) -> "nx.DiGraph":
    """Split tree of the lithium voxels ``li`` grown from ``roots`` (both bool arrays).

    ``d(v)`` is the geodesic distance through lithium (face steps, periodic x, y) from the
    nearest root voxel. Node ``(d, k)`` is the k-th face-connected component of the voxels with
    ``d(v) >= d`` (what is still ahead of the growth front at distance d); an edge joins it to
    each component at ``d + 1`` that it contains. Node attributes: ``level`` (d), ``top`` (the
    largest ``d(v)`` in the component) and ``voxels``. A node with several children is a place
    where the deposit splits as it grows away from its roots; unlike the pieces of a thin
    shell, these components do not fragment in a compact blob, whatever its thickness.
    """
    p, q, _ = _links(li, [(1, 0, 0), (0, 1, 0), (0, 0, 1)], corridor=False)
    g, node = _graph(li, p, q, np.ones(p.size))
    n = g.shape[0]
    dist = csgraph.dijkstra(g, directed=False, indices=node[np.flatnonzero(roots.ravel())],
                            unweighted=True, min_only=True)
    dist = np.where(np.isfinite(dist), dist, -1).astype(np.int64)  # unreached: not in the tree
    a, b = node[p], node[q]
    import networkx as nx  # here: importing it costs every process 0.25 s

    tree, prev = nx.DiGraph(), None
    for d in range(int(dist.max()) + 1 if n else 0):
        ahead = dist >= d
        keep = ahead[a] & ahead[b]
        _, lab = csgraph.connected_components(
            sparse.coo_matrix((np.ones(int(keep.sum())), (a[keep], b[keep])), shape=(n, n)), directed=False)
        ids, inv = np.unique(lab[ahead], return_inverse=True)
        top = np.full(ids.size, d, dtype=np.int64)
        np.maximum.at(top, inv, dist[ahead])
        size = np.bincount(inv, minlength=ids.size)
        tree.add_nodes_from(((d, int(k)), {"level": d, "top": int(t), "voxels": int(m)})
                            for k, t, m in zip(ids, top, size))
        if prev is not None:
            pairs = np.unique(prev[ahead].astype(np.int64) * n + lab[ahead])
            tree.add_edges_from(((d - 1, int(x)), (d, int(y))) for x, y in zip(pairs // n, pairs % n))
        prev = lab
    return tree


def _branch_points(tree: "nx.DiGraph", min_length: int) -> int:
    """Nodes above the root shell with two or more children that each reach ``min_length``
    shells beyond the node (shorter ones are surface bumps)."""
    count = 0
    for v, data in tree.nodes(data=True):
        if data["level"] < 1 or tree.out_degree(v) < 2:
            continue
        long = sum(1 for c in tree.successors(v) if tree.nodes[c]["top"] - data["level"] >= min_length)
        count += long >= 2
    return count


def deposit_topology(phase: np.ndarray, connected: Optional[np.ndarray] = None, *,
                     min_branch_length: int = MIN_BRANCH_LENGTH) -> dict:
    """Topology of the lithium in ``phase`` at any snapshot, as a JSON-ready dict.

    * ``clusters``: face-connected (periodic x, y) lithium components; ``dead_clusters`` those
      with no voxel in ``connected`` (conductor voxels connected to the collector through
      conductors; computed from ``phase`` when None), i.e. dead lithium.
    * ``branch_points``: junctions of the deposit's skeleton, taken as the splits of its
      growth tree (:func:`growth_tree`): the geodesic distance through lithium from each
      cluster's root, and the components of what lies beyond each distance. The root of a live
      cluster is every voxel of it touching a connected conductive host voxel (the collector
      included), so the tree follows growth away from the conductors, and lithium lying on a
      conductor is root, not branch (splits at the root shell itself are separate growths from
      the conductor and are not counted); a dead cluster's root is its lowest voxel (the first
      in C order among equals). A branch point is a tree node with at least two children that
      each reach ``min_branch_length`` shells beyond it (a shorter one is a surface bump); a
      k-way split counts once. A thick compact blob has none, a plus-shaped junction of arms
      two voxels long has one. This stands in for a thinning skeleton (scikit-image's
      ``skeletonize`` is not a dependency of the core); unlike a count of voxels with three or
      more lithium neighbours it does not depend on thickness, and unlike a graph of thin
      distance shells it does not fragment (a face-step distance's shells around a point are
      octahedra whose voxels touch only along edges). Fronts that meet again (loops) are not
      branch points here.
    """
    phase = np.asarray(phase)
    li = phase == LITHIUM
    if connected is None:
        connected = collector_connected(phase)
    connected = np.asarray(connected, dtype=bool)
    if connected.shape != phase.shape:
        raise ValueError(f"connected has shape {connected.shape}, phase has {phase.shape}")
    lab, n = _periodic_label(li)
    alive_ids = np.unique(lab[li & connected])
    n_li = int(np.count_nonzero(li))
    dead = li & ~np.isin(lab, alive_ids)
    out = {"clusters": int(n), "dead_clusters": int(n - alive_ids.size), "lithium_voxels": n_li,
           "dead_lithium_voxels": int(np.count_nonzero(dead)),
           "dead_lithium_fraction": float(np.count_nonzero(dead)) / n_li if n_li else 0.0,
           "branch_points": 0, "min_branch_length": int(min_branch_length),
           "branch_point_method": "splits of the growth tree (geodesic distance from each cluster's root)"}
    if n == 0:
        return out
    host_c = (phase == HOST_CONDUCTIVE) & connected  # the collector is part of it
    touching = np.zeros_like(li)
    for off in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
        touching |= _shifted(host_c, off)
    roots = li & touching
    rootless = li & ~np.isin(lab, np.unique(lab[roots]))  # dead clusters: one lowest voxel each
    key = (np.arange(phase.shape[2]) * phase.size)[None, None, :] + np.arange(phase.size).reshape(phase.shape)
    first = np.asarray(ndimage.minimum(np.where(rootless, key, np.iinfo(np.int64).max), lab, np.arange(n + 1)))
    roots |= rootless & (key == first[lab])
    out["branch_points"] = _branch_points(growth_tree(li, roots), int(min_branch_length))
    return out
