"""Host analysis and deposit topology (kmc.hosts.analysis) against hosts whose answers are known
by hand, and host.json beside a run."""
import json
import math

import numpy as np
import pytest

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from continuum.grid import collector_connected
from kmc.hosts import Host, porosity_gradient
from kmc.hosts.analysis import analyse_phase, deposit_topology, host_analysis


def block(nx, ny, H, reservoir=3, solid=HOST_CONDUCTIVE):
    """Collector at z = 0, solid layers 1..H, electrolyte above."""
    ph = np.zeros((nx, ny, 1 + H + reservoir), np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[:, :, 1:H + 1] = solid
    return ph


def strict(d):
    """The dict is strict JSON as it stands (no NaN, no numpy types)."""
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    return d


# -- straight channels: everything in closed form ---------------------------------------------------
def square_channels(H=8, w=3, pitch=4, n=8):
    """w x w holes at ``pitch`` through an H-layer conductive block on an n x n footprint."""
    ph = block(n, n, H)
    hole = (np.arange(n) % pitch) < w
    ph[np.ix_(hole, hole, np.arange(1, H + 1))] = ELECTROLYTE
    return ph


def test_straight_channels_have_tortuosity_one_and_closed_form_sa_sv_and_capacity():
    H, w, pitch, n, h = 8, 3, 4, 8, 0.5
    m = (n // pitch) ** 2  # channels
    r = strict(analyse_phase(square_channels(H, w, pitch, n), h))
    pore = m * w * w * H  # voxels
    walls, bottoms, top = m * 4 * w * H, m * w * w, n * n - m * w * w  # faces
    assert r["host_layers"] == H and r["host_height_um"] == H * h
    assert r["porosity"] == pytest.approx(m * w * w / n ** 2)
    assert r["porosity_per_layer"] == pytest.approx([m * w * w / n ** 2] * H)
    assert r["SA"] == pytest.approx((walls + bottoms + top) / n ** 2)  # 7 = 0.75 H + 1
    assert r["SA_inside"] == pytest.approx((walls + bottoms) / n ** 2)
    assert r["interface_area_um2"] == pytest.approx((walls + bottoms + top) * h * h)
    assert r["SV_per_um"] == pytest.approx((walls + bottoms + top) / (pore * h))  # 3.11 /um
    assert r["SV_inside_per_um"] == pytest.approx((walls + bottoms) / (pore * h))
    assert r["pore_volume_um3"] == pytest.approx(pore * h ** 3)
    assert r["pore_capacity_mAh_cm2"] == pytest.approx(9 / 16 * H * h * 1e-4 * 2061)  # 0.464
    assert r["open_pore_capacity_mAh_cm2"] == pytest.approx(r["pore_capacity_mAh_cm2"])
    assert r["tortuosity"] == pytest.approx(1.0) and r["tortuosity_best_path"] == pytest.approx(1.0)
    assert r["throat_diameter_um"] == pytest.approx(w * h)  # the channel's width
    assert r["closed_pore_count"] == 0 and r["open_pore_volume_fraction"] == 1.0
    assert r["percolates"] is True


def test_sa_agrees_with_the_hosts_specific_surface_area_and_counts_only_connected_conductors():
    H, h = 8, 0.5
    ph = square_channels(H)
    host = Host(ph, h * 1e-6).validate()
    r = host_analysis(host)
    assert r["SA"] == pytest.approx(host.specific_surface_area * host.host_height)
    # dielectric walls: only the collector's faces under the channels react
    diel = ph.copy()
    diel[:, :, 1:][diel[:, :, 1:] == HOST_CONDUCTIVE] = HOST_DIELECTRIC
    d = analyse_phase(diel, h)
    assert d["SA"] == pytest.approx(4 * 9 / 64) and d["SA_inside"] == pytest.approx(4 * 9 / 64)
    assert d["inactive_interface_area_um2"] == pytest.approx((4 * 4 * 3 * H + 64 - 36) * h * h)
    # lithium in the channels is pore for the host analysis: the skeleton's numbers do not change
    plated = ph.copy()
    plated[:, :, 1:4][plated[:, :, 1:4] == ELECTROLYTE] = LITHIUM
    p = analyse_phase(plated, h)
    assert {k: p[k] for k in r if k != "name"} == {k: r[k] for k in r if k != "name"}


def test_a_bare_collector_has_no_pores_to_cross_and_is_still_strict_json():
    ph = np.zeros((4, 4, 6), np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    r = strict(analyse_phase(ph, 1.0))
    assert r["host_layers"] == 0 and r["porosity_per_layer"] == [] and r["pore_capacity_mAh_cm2"] == 0.0
    assert r["SA"] == 1.0 and r["SV_per_um"] is None and r["percolates"] is False and r["tortuosity"] is None


# -- closed pores ------------------------------------------------------------------------------------
def cavity_host(touching=False):
    """A 1-voxel channel at (0, 0) and a 2 x 2 x 2 cavity at x, y, z in 2..3 (opened into a
    channel at (1, 2) when ``touching``)."""
    ph = block(6, 6, 6)
    ph[0, 0, 1:7] = ELECTROLYTE
    ph[2:4, 2:4, 2:4] = ELECTROLYTE
    if touching:
        ph[1, 2, 1:7] = ELECTROLYTE
    return ph


def test_a_closed_cavity_is_found_with_its_volume():
    h = 2.0
    r = strict(analyse_phase(cavity_host(), h))
    assert r["closed_pore_count"] == 1
    assert r["closed_pore_volume_um3"] == pytest.approx(8 * h ** 3)
    assert r["closed_pore_volume_fraction"] == pytest.approx(8 / (6 + 8))
    assert r["open_pore_capacity_mAh_cm2"] == pytest.approx(r["pore_capacity_mAh_cm2"] * 6 / 14)
    # a channel beside it opens the cavity to the top: nothing closed
    o = analyse_phase(cavity_host(touching=True), h)
    assert o["closed_pore_count"] == 0 and o["closed_pore_volume_fraction"] == 0.0


def test_pores_sealed_by_a_plate_do_not_percolate_and_are_closed():
    ph = block(5, 5, 6)
    ph[1:4, 1:4, 1:4] = ELECTROLYTE  # a pocket under the solid layers 4..6
    r = strict(analyse_phase(ph, 1.0))
    assert r["percolates"] is False and r["tortuosity"] is None and r["throat_diameter_um"] is None
    assert r["closed_pore_count"] == 1 and r["closed_pore_volume_fraction"] == 1.0


# -- throats and tortuous paths ----------------------------------------------------------------------
def plugged_channel(hole=(3, 3), plug_layer=5, H=9):
    """A 5 x 5 channel (x, y in 1..5) in a 7 x 7 cell, plugged at ``plug_layer`` but for one
    voxel at ``hole``; ``hole=None``: no plug."""
    ph = block(7, 7, H)
    ph[1:6, 1:6, 1:H + 1] = ELECTROLYTE
    if hole is not None:
        ph[1:6, 1:6, plug_layer] = HOST_CONDUCTIVE
        ph[hole[0], hole[1], plug_layer] = ELECTROLYTE
    return ph


@pytest.mark.parametrize("hole", [(3, 3), (1, 1)])
def test_a_one_voxel_throat_is_the_narrowest_throat_and_is_located(hole):
    h = 0.5
    r = analyse_phase(plugged_channel(hole), h)
    assert r["throat_diameter_um"] == pytest.approx(h)
    assert r["throat_location_um"] == pytest.approx([(hole[0] + 0.5) * h, (hole[1] + 0.5) * h, 4.5 * h])
    assert r["tortuosity"] == pytest.approx(1.0)  # straight up through the hole
    open_ = analyse_phase(plugged_channel(None), h)
    assert open_["throat_diameter_um"] == pytest.approx(5 * h)  # without the plug: the channel's width


@pytest.mark.parametrize("far_end", [5, -2])
def test_a_zigzag_pore_has_the_chamfer_geodesic_tortuosity(far_end):
    """Up x = 0 to layer 4, along layer 4 to x = far_end (-2: through the periodic x boundary),
    up to the top (layer 8): the shortest 26-neighbour path turns each corner on a diagonal,
    so its length is H + L - 4 + 2 sqrt 2 voxels face to face (a face-step count gives H + L)."""
    H, nx, a = 8, 12, 4
    ph = block(nx, 3, H)
    L = abs(far_end)
    ph[0, 1, 1:a + 1] = ELECTROLYTE
    for x in range(0, far_end + (1 if far_end > 0 else -1), 1 if far_end > 0 else -1):
        ph[x % nx, 1, a] = ELECTROLYTE
    ph[far_end % nx, 1, a:H + 1] = ELECTROLYTE
    r = analyse_phase(ph, 1.0)
    assert r["tortuosity"] == pytest.approx((H + L - 4 + 2 * math.sqrt(2)) / H)
    assert r["tortuosity_best_path"] == pytest.approx(r["tortuosity"])
    assert r["throat_diameter_um"] == pytest.approx(1.0)


# -- porosity per layer ------------------------------------------------------------------------------
def test_porosity_per_layer_of_a_graded_host():
    ph = block(4, 4, 4)
    for k, n_pore in zip(range(1, 5), (2, 4, 8, 12)):
        layer = ph[:, :, k].reshape(-1)
        layer[:n_pore] = ELECTROLYTE
        ph[:, :, k] = layer.reshape(4, 4)
    r = analyse_phase(ph, 1.0)
    assert r["porosity_per_layer"] == pytest.approx([0.125, 0.25, 0.5, 0.75])
    assert r["porosity"] == pytest.approx(26 / 64) == Host(ph, 1e-6).porosity
    assert r["pore_capacity_mAh_cm2"] == pytest.approx(26 / 64 * 4e-4 * 2061)


def test_porosity_per_layer_follows_the_gradient_generators_targets():
    host = porosity_gradient((16, 16, 14), 1.0, 0.3, 0.8, reservoir=3, seed=7)
    H = 10
    target = 0.3 + 0.5 * np.arange(H) / (H - 1)
    r = host_analysis(host)
    assert r["porosity_per_layer"] == pytest.approx(np.rint(target * 256) / 256)
    assert r["porosity"] == pytest.approx(host.porosity)


# -- deposit topology --------------------------------------------------------------------------------
def foil(n=8, nz=8):
    ph = np.zeros((n, n, nz), np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    return ph


def test_two_clusters_one_of_them_dead():
    ph = foil()
    ph[2, 2, 1:4] = LITHIUM  # on the collector
    ph[5, 5, 4:6] = LITHIUM  # floating
    t = strict(deposit_topology(ph))
    assert (t["clusters"], t["dead_clusters"], t["lithium_voxels"], t["dead_lithium_voxels"]) == (2, 1, 5, 2)
    assert t["dead_lithium_fraction"] == pytest.approx(2 / 5)
    assert deposit_topology(ph, collector_connected(ph)) == t
    ph[5, 5, 1:4] = LITHIUM  # reconnect it
    assert deposit_topology(ph)["dead_clusters"] == 0


def test_clusters_join_across_the_periodic_boundary_and_live_through_conductive_host():
    ph = foil()
    ph[0, 3, 1] = ph[7, 3, 1:3] = LITHIUM  # one live cluster through the x boundary
    ph[6, 0, 5] = ph[6, 7, 5] = LITHIUM  # one dead cluster through the y boundary
    ph[3, 5, 1:4] = HOST_CONDUCTIVE  # a pillar on the collector...
    ph[4, 5, 3] = LITHIUM  # ...makes lithium on its side live
    ph[3, 3, 5] = HOST_CONDUCTIVE  # a floating conductor...
    ph[3, 3, 6] = LITHIUM  # ...does not
    t = deposit_topology(ph)
    assert (t["clusters"], t["dead_clusters"]) == (4, 2)


def plus(ph, c, z, arm):
    """Arms of length ``arm`` along +-x and +-y from (c, c, z)."""
    for d in range(1, arm + 1):
        ph[c + d, c, z] = ph[c - d, c, z] = ph[c, c + d, z] = ph[c, c - d, z] = LITHIUM


def test_a_plus_shaped_junction_is_one_branch_point_and_a_thick_block_none():
    ph = foil(12, 10)
    ph[5, 5, 1:7] = LITHIUM
    plus(ph, 5, 4, 2)
    assert deposit_topology(ph)["branch_points"] == 1
    plus(ph, 5, 6, 2)  # a second junction higher up the same stem
    assert deposit_topology(ph)["branch_points"] == 2
    stem = foil(12, 10)
    stem[5, 5, 1:7] = LITHIUM
    assert deposit_topology(stem)["branch_points"] == 0
    thick = foil(12, 10)
    thick[3:6, 3:6, 1:6] = LITHIUM  # every inner voxel has 6 lithium neighbours, yet no branch
    assert deposit_topology(thick)["branch_points"] == 0


def test_one_voxel_bumps_are_pruned_unless_asked_for_and_dead_clusters_branch_too():
    ph = foil(12, 10)
    ph[5, 5, 1:7] = LITHIUM
    plus(ph, 5, 4, 1)  # arms one voxel long: surface bumps
    assert deposit_topology(ph)["branch_points"] == 0
    assert deposit_topology(ph, min_branch_length=1)["branch_points"] == 1
    dead = foil(12, 10)
    plus(dead, 5, 6, 2)
    dead[5, 5, 6] = LITHIUM  # a flat floating plus, rooted at its lowest first voxel (an arm tip)
    t = deposit_topology(dead)
    assert (t["clusters"], t["dead_clusters"], t["branch_points"]) == (1, 1, 1)


def test_compact_blobs_do_not_fragment_and_columns_on_a_film_are_separate_growths():
    blob = foil(12, 10)
    blob[3:7, 3:7, 4:7] = LITHIUM  # floating: grown from one corner voxel, fronts are octahedra
    t = deposit_topology(blob)
    assert (t["dead_clusters"], t["branch_points"]) == (1, 0)
    film = foil(12, 10)
    film[2:9, 2:9, 1] = LITHIUM  # lies on the collector: all root
    film[3, 3, 2:6] = film[7, 7, 2:6] = LITHIUM
    assert deposit_topology(film)["branch_points"] == 0
    film[3, 3, 6:8] = LITHIUM
    film[2, 3, 5] = film[1, 3, 5] = LITHIUM  # a side branch off the first column
    assert deposit_topology(film)["branch_points"] == 1


# -- host.json beside a run --------------------------------------------------------------------------
def test_a_quick_run_writes_host_json_with_the_analysis_of_its_host(tmp_path):
    from kmc import get_study, make_config, run_study
    from kmc.coupling.io import strict_json
    from kmc.coupling.streams import root_sequence

    cfg = make_config(overrides=["host.nx=16", "host.ny=16", "host.host_layers=6", "host.reservoir_layers=8",
                                 "snapshots=1", "protocol.capacity_mAh_cm2=0.1", "protocol.current_density_mA_cm2=8"])
    run_study(get_study("single"), cfg, tmp_path / "out", progress=False, echo=lambda s: None)
    written = json.loads((tmp_path / "out" / "host.json").read_text())
    hosts = get_study("single").plan(cfg, root_sequence(cfg.seed)).hosts
    assert list(written) == list(hosts) == [cfg.host.kind]
    assert written == strict_json({k: host_analysis(v) for k, v in hosts.items()})
    mine = written[cfg.host.kind]
    assert mine["host_layers"] == 6 and mine["porosity"] == pytest.approx(0.6, abs=0.02)
