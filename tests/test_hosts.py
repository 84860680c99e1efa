"""Tests for kmc.hosts: voxel host generators, decorators, validation and image loading."""
import builtins

import numpy as np
import pytest

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from continuum.grid import collector_connected
from kmc.coupling.config import ConfigError, make_config
from kmc.hosts import (ETA_NUC_BARE, Host, um_to_voxels, activity_gradient, build_host, channel_array,
                       coat_dielectric, decorate_lithiophilic_seeds, fibre_mat, host_kinds,
                       load_voxel_image, overlapping_spheres, planar_foil, porosity_gradient,
                       random_porous, register_host, unregister_host)

H_UM = 1.0  # voxel edge [um] (1 um voxels)
SHAPE = (32, 32, 24)  # host layers 1..19 with the default reservoir of 4


def _all_generators(seed=7):
    return {
        "foil": planar_foil(SHAPE, H_UM, thickness=3),
        "pillars": channel_array(SHAPE, H_UM, pitch=8, radius=2.5, kind="pillars"),
        "channels": channel_array(SHAPE, H_UM, pitch=8, radius=2.5, kind="channels"),
        "random_porous": random_porous(SHAPE, H_UM, 0.5, 2.0, seed=seed),
        "spheres": overlapping_spheres(SHAPE, H_UM, 0.5, 3.0, seed=seed),
        "fibres": fibre_mat(SHAPE, H_UM, 0.6, 2.0, seed=seed),
        "gradient": porosity_gradient(SHAPE, H_UM, 0.8, 0.4, seed=seed),
    }


@pytest.fixture(scope="module")
def generated():
    return _all_generators()


@pytest.fixture(scope="module")
def porous():
    return random_porous(SHAPE, H_UM, 0.6, 2.0, seed=11)


# -- planar foil: summary by hand ------------------------------------------------------------
def test_planar_foil_bare_collector_summary_exact():
    foil = planar_foil((8, 6, 5), 2.0)  # thickness 1 = just the collector layer
    s = foil.summary()
    assert foil.shape == (8, 6, 5)
    assert s["host_layers"] == 0 and s["host_height_um"] == 0.0
    assert s["porosity"] == 1.0  # everything above the collector is electrolyte
    assert np.isnan(s["specific_surface_area_per_um"])  # host region has zero volume
    assert s["spacing_um"] == pytest.approx(2.0)
    assert s["seed_fraction"] == 0.0 and s["connected_conductor_fraction"] == 1.0
    assert np.all(foil.phase[:, :, 0] == HOST_CONDUCTIVE) and np.all(foil.phase[:, :, 1:] == ELECTROLYTE)


def test_planar_foil_thick_summary_exact():
    foil = planar_foil((8, 6, 7), 2.0, thickness=3)  # collector + 2 solid layers
    s = foil.summary()
    assert s["host_layers"] == 2
    assert s["host_height_um"] == pytest.approx(4.0)  # 2 layers x 2 um
    assert s["porosity"] == 0.0
    # 8*6 faces of h^2 over a host volume of 8*6*2*h^3 -> 1/(2h) = 0.25 /um
    assert s["specific_surface_area_per_um"] == pytest.approx(0.25)
    assert foil.specific_surface_area == pytest.approx(1 / (2 * 2e-6))
    assert np.all(foil.eta_nuc[:, :, :3] == ETA_NUC_BARE) and np.all(foil.eta_nuc[:, :, 3:] == 0)
    assert np.all(foil.activity == 1.0) and foil.conductivity is None


def test_channel_array_geometry_is_periodic_and_exact():
    p = channel_array(SHAPE, H_UM, pitch=8, radius=2.5, height=10, kind="pillars")
    c = channel_array(SHAPE, H_UM, pitch=8, radius=2.5, height=10, kind="channels")
    # pillars and channels are complements in the host layers
    assert np.array_equal(p.phase[:, :, 1:11] == HOST_CONDUCTIVE, c.phase[:, :, 1:11] == ELECTROLYTE)
    assert p.host_layers == 10 and np.all(p.phase[:, :, 11:] == ELECTROLYTE)
    for ax in (0, 1):  # invariant under a shift by one pitch
        assert np.array_equal(np.roll(p.phase, 8, axis=ax), p.phase)
    # offsets (+-0.5, +-1.5) in both axes are inside r = 2.5, (0.5, 2.5) is not: 16 of 64
    assert p.porosity == pytest.approx(1 - 16 / 64)
    assert c.porosity == pytest.approx(16 / 64)


# -- collector, validity -----------------------------------------------------------------------
def test_every_generator_has_collector_and_reservoir(generated):
    for name, host in generated.items():
        assert host.phase.dtype == np.uint8 and host.phase.shape == SHAPE, name
        assert np.all(host.phase[:, :, 0] == HOST_CONDUCTIVE), name
        assert np.all(host.phase[:, :, -4:] == ELECTROLYTE), name  # default reservoir
        assert host.eta_nuc.dtype == np.float64 and host.activity.dtype == np.float64, name
        host.validate()


@pytest.mark.parametrize("target", [0.4, 0.7])
def test_porosity_targets(target):
    cases = {
        "random_porous": random_porous(SHAPE, H_UM, target, 2.0, seed=1),
        "random_porous_drop": random_porous(SHAPE, H_UM, target, 2.0, seed=1, disconnected="drop"),
        "spheres": overlapping_spheres(SHAPE, H_UM, target, 3.0, seed=2),
        "sphere_pores": overlapping_spheres(SHAPE, H_UM, target, 3.0, kind="pores", seed=2),
        "spheres_drop": overlapping_spheres(SHAPE, H_UM, target, 3.0, seed=2, disconnected="drop"),
        "fibres": fibre_mat(SHAPE, H_UM, target, 2.0, seed=3),
    }
    for name, host in cases.items():
        assert abs(host.porosity - target) <= 0.02, (name, host.porosity)
    for name in ("random_porous_drop", "spheres_drop"):
        assert cases[name].connected_conductor_fraction == 1.0


def test_porosity_gradient_slices():
    g = porosity_gradient(SHAPE, H_UM, 0.8, 0.3, seed=4)
    per_layer = np.mean(g.phase[:, :, 1:20] == ELECTROLYTE, axis=(0, 1))
    expected = np.linspace(0.8, 0.3, 19)
    assert np.max(np.abs(per_layer - expected)) <= 1.0 / (32 * 32)
    assert g.porosity == pytest.approx(0.55, abs=0.005)


def _long_z_run_fraction(solid, maxlen):
    """Fraction of solid voxels lying in vertical (z) runs longer than ``maxlen``."""
    nx, ny, nz = solid.shape
    run = np.zeros(solid.shape, dtype=np.int64)
    for z in range(nz):
        run[:, :, z] = np.where(solid[:, :, z], (run[:, :, z - 1] if z else 0) + 1, 0)
    ends = solid & np.concatenate([~solid[:, :, 1:], np.ones((nx, ny, 1), dtype=bool)], axis=2)
    lengths = run[ends]
    return lengths[lengths > maxlen].sum() / solid.sum()


def test_fibres_lie_roughly_in_plane():
    # an untilted fibre of radius 1.5 spans at most 4 layers: only crossings of fibres at
    # different heights make longer vertical solid runs; steep fibres make many
    for seed in (5, 6):
        flat = fibre_mat(SHAPE, H_UM, 0.85, 1.5, max_tilt_deg=0.0, seed=seed)
        steep = fibre_mat(SHAPE, H_UM, 0.85, 1.5, max_tilt_deg=80.0, seed=seed)
        f_flat = _long_z_run_fraction(flat.phase[:, :, 1:20] != ELECTROLYTE, 4)
        f_steep = _long_z_run_fraction(steep.phase[:, :, 1:20] != ELECTROLYTE, 4)
        assert f_flat < 0.15 and f_steep > 2 * f_flat, (f_flat, f_steep)


@pytest.mark.parametrize("make", [
    lambda: random_porous(SHAPE, H_UM, 0.5, 2.0, seed=9),
    lambda: porosity_gradient(SHAPE, H_UM, 0.7, 0.4, 2.0, seed=9),
    lambda: overlapping_spheres(SHAPE, H_UM, 0.5, 3.0, seed=9),
    lambda: fibre_mat(SHAPE, H_UM, 0.6, 2.0, seed=9),
], ids=["random_porous", "gradient", "spheres", "fibres"])
def test_structures_are_periodic_in_xy(make):
    solid = make().phase[:, :, 1:20] != ELECTROLYTE
    p = solid.mean()
    chance = p * p + (1 - p) * (1 - p)  # agreement of uncorrelated voxels
    for ax in (0, 1):
        # neighbours across the x / y boundary must be correlated like neighbours inside the
        # box (agreement well above chance); a non-periodic structure falls to ~chance there
        agree = np.mean(solid == np.roll(solid, 1, axis=ax), axis=tuple(a for a in range(3) if a != ax))
        inside = np.mean(agree[1:])
        assert inside > chance + 0.2
        assert agree[0] > (chance + inside) / 2, (ax, agree[0], inside, chance)


# -- reproducibility ------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda **k: random_porous(SHAPE, H_UM, 0.5, 2.0, **k),
    lambda **k: overlapping_spheres(SHAPE, H_UM, 0.5, 3.0, **k),
    lambda **k: fibre_mat(SHAPE, H_UM, 0.6, 2.0, **k),
    lambda **k: porosity_gradient(SHAPE, H_UM, 0.8, 0.4, **k),
], ids=["random_porous", "spheres", "fibres", "gradient"])
def test_same_seed_same_host_different_seed_differs(make):
    a, b, c = make(seed=123), make(seed=123), make(seed=124)
    assert np.array_equal(a.phase, b.phase)
    assert not np.array_equal(a.phase, c.phase)
    # an rng built from the same seed gives the same host; the seed is recorded
    d = make(rng=np.random.default_rng(np.random.SeedSequence(123)))
    assert np.array_equal(a.phase, d.phase)
    assert a.metadata["seed_entropy"] == 123
    # with neither, the drawn entropy is recorded and regenerates the host
    e = make()
    f = make(seed=np.random.SeedSequence(e.metadata["seed_entropy"]))
    assert np.array_equal(e.phase, f.phase)


def test_global_random_state_untouched():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    random_porous(SHAPE, H_UM, 0.5, 2.0, seed=1)
    overlapping_spheres(SHAPE, H_UM, 0.5, 3.0, seed=1)
    decorate_lithiophilic_seeds(planar_foil(SHAPE, H_UM), 0.2, seed=1)
    assert np.array_equal(np.random.get_state()[1], before)


def test_rng_and_seed_together_rejected():
    with pytest.raises(ValueError, match="either rng or seed"):
        random_porous(SHAPE, H_UM, 0.5, seed=1, rng=np.random.default_rng(1))


# -- impossible requests and argument validation --------------------------------------------------
@pytest.mark.parametrize("bad", [0.0, 1.0, 1.3, -0.1])
def test_porosity_out_of_range(bad):
    for make in (random_porous, overlapping_spheres, fibre_mat):
        with pytest.raises(ValueError, match=rf"porosity={bad:g} is out of range: must be in \(0, 1\)"):
            make(SHAPE, H_UM, bad, 2.0, seed=0)
    with pytest.raises(ValueError, match="porosity_top"):
        porosity_gradient(SHAPE, H_UM, 0.5, bad, seed=0)


def test_channel_radius_vs_pitch():
    with pytest.raises(ValueError, match=r"radius=5 is out of range: must be in \(0, 4\)"):
        channel_array(SHAPE, H_UM, pitch=8, radius=5)
    with pytest.raises(ValueError, match="radius=4"):
        channel_array(SHAPE, H_UM, pitch=8, radius=4.0)
    with pytest.raises(ValueError, match="touch"):  # r < p/2 but voxelised cylinders merge
        channel_array(SHAPE, H_UM, pitch=8, radius=3.9)
    with pytest.raises(ValueError, match="pitch=6.*divide"):
        channel_array(SHAPE, H_UM, pitch=6, radius=2)


def test_other_argument_edges():
    with pytest.raises(ValueError, match="reservoir=23 is out of range"):
        random_porous(SHAPE, H_UM, 0.5, reservoir=23, seed=0)
    with pytest.raises(ValueError, match="spacing_um=-1 is out of range"):
        planar_foil(SHAPE, -1.0)
    with pytest.raises(ValueError, match="thickness=24 is out of range"):
        planar_foil(SHAPE, H_UM, thickness=24)
    with pytest.raises(ValueError, match="kind='tubes'"):
        channel_array(SHAPE, H_UM, pitch=8, radius=2, kind="tubes")
    with pytest.raises(ValueError, match="feature_size"):
        random_porous(SHAPE, H_UM, 0.5, feature_size=0, seed=0)
    with pytest.raises(ValueError, match="weighting"):
        decorate_lithiophilic_seeds(planar_foil(SHAPE, H_UM), 0.1, weighting="middle", seed=0)


def test_dielectric_lid_is_impossible():
    foil = planar_foil(SHAPE, H_UM)
    lid = foil.copy()
    lid.phase[:, :, 10] = HOST_DIELECTRIC
    with pytest.raises(ValueError, match="impossible request.*no electrolyte \\(pore\\) path"):
        lid.validate()
    # a lid with one hole is fine again
    lid.phase[3, 4, 10] = ELECTROLYTE
    lid.validate()


def test_pore_path_through_periodic_boundary():
    host = planar_foil((8, 8, 16), H_UM)
    host.phase[:, :, 9:12] = HOST_DIELECTRIC  # three-layer lid
    host.phase[0, 4, 11] = ELECTROLYTE  # hole in the top sheet at x = 0 ...
    host.phase[0, 4, 10] = ELECTROLYTE
    host.phase[7, 4, 10] = ELECTROLYTE  # ... joined across the x boundary to x = nx-1 ...
    host.phase[7, 4, 9] = ELECTROLYTE  # ... which leads down to the collector
    host.validate()
    host.phase[7, 4, 10] = HOST_DIELECTRIC  # cut the wrap-around link
    with pytest.raises(ValueError, match="impossible request"):
        host.validate()


def test_no_electrolyte_on_top_and_isolated_pores_rejected():
    full = planar_foil(SHAPE, H_UM)
    full.phase[:, :, -1] = HOST_DIELECTRIC
    with pytest.raises(ValueError, match="impossible request.*top layer"):
        full.validate()
    # a closed cavity inside a solid conductor is not a path from the top
    block = np.zeros((8, 8, 8), dtype=bool)
    block[3:5, 3:5, 3:5] = True  # pore only inside
    with pytest.raises(ValueError, match="impossible request"):
        load_voxel_image(block, H_UM)  # no reservoir: top layer is solid


def test_validate_rejects_malformed_hosts():
    foil = planar_foil((6, 6, 6), H_UM)
    bad = foil.copy()
    bad.phase = bad.phase.astype(np.int32)
    with pytest.raises(ValueError, match="uint8"):
        bad.validate()
    bad = foil.copy()
    bad.eta_nuc = bad.eta_nuc.astype(np.float32)
    with pytest.raises(ValueError, match="eta_nuc must be a float64"):
        bad.validate()
    bad = foil.copy()
    bad.activity = np.ones((6, 6, 5))
    with pytest.raises(ValueError, match="activity has shape"):
        bad.validate()
    bad = foil.copy()
    bad.conductivity = -np.ones((6, 6, 6))
    with pytest.raises(ValueError, match="conductivity has negative"):
        bad.validate()
    bad = foil.copy()
    bad.phase[2, 3, 0] = ELECTROLYTE
    with pytest.raises(ValueError, match="collector layer z=0 must be entirely HOST_CONDUCTIVE"):
        bad.validate()
    bad = foil.copy()
    bad.phase[2, 3, 0] = HOST_DIELECTRIC
    with pytest.raises(ValueError, match="1 of 36 voxels"):
        bad.validate()
    bad = foil.copy()
    bad.phase[1, 1, 3] = 9
    with pytest.raises(ValueError, match="unknown codes"):
        bad.validate()
    good = foil.copy()
    good.conductivity = np.full((6, 6, 6), 5.8e7)
    good.phase[1, 1, 1] = LITHIUM  # deposit on the collector is allowed
    good.validate()


def test_host_constructor_defaults_and_units():
    phase = np.zeros((4, 4, 6), dtype=np.uint8)
    phase[:, :, :2] = HOST_CONDUCTIVE
    h = Host(phase, 5e-7).validate()
    assert h.eta_nuc[0, 0, 1] == ETA_NUC_BARE and h.eta_nuc[0, 0, 2] == 0.0
    assert np.all(h.activity == 1.0) and not h.seed_mask.any()
    assert h.spacing == 5e-7 and h.summary()["spacing_um"] == pytest.approx(0.5)  # Host.spacing is in m
    assert h.host_height == pytest.approx(5e-7) and h.porosity == 0.0


def test_spacing_is_in_micrometres():
    assert um_to_voxels(2.0, 0.5) == 4.0
    assert um_to_voxels(3.0, 1.0) == 3.0
    foil = planar_foil(SHAPE, 0.5)
    assert foil.spacing == 5e-7 and foil.summary()["spacing_um"] == pytest.approx(0.5)  # SI inside
    arr = np.ones((6, 6, 5), dtype=bool)  # all pore: a bare collector is prepended
    assert load_voxel_image(arr, 2.0).spacing == 2e-6
    # a voxel edge written in metres is not a length in um: refused, naming spacing_um and its range
    metres = r"spacing_um=1e-06 is out of range: must be in \[0\.001, 10000\].*not a voxel edge in micrometres"
    with pytest.raises(ValueError, match=metres):
        load_voxel_image(arr, 1e-6)
    for build in (lambda s: planar_foil(SHAPE, s), lambda s: random_porous(SHAPE, s, 0.5, seed=0),
                  lambda s: channel_array(SHAPE, s, pitch=8, radius=2.5),
                  lambda s: overlapping_spheres(SHAPE, s, 0.5, 3.0, seed=0),
                  lambda s: fibre_mat(SHAPE, s, 0.6, 2.0, seed=0),
                  lambda s: porosity_gradient(SHAPE, s, 0.8, 0.4, seed=0),
                  lambda s: um_to_voxels(2.0, s)):
        with pytest.raises(ValueError, match=metres):
            build(1e-6)
    with pytest.raises(ValueError, match=r"spacing_um=0\.0005 is out of range"):
        planar_foil(SHAPE, 5e-4)  # below 1 nm
    with pytest.raises(ValueError, match=r"spacing_um=20000 is out of range: must be in \[0\.001, 10000\]"):
        planar_foil(SHAPE, 2e4)
    assert planar_foil(SHAPE, 1e-3).spacing == pytest.approx(1e-9)  # the bounds themselves are allowed
    assert planar_foil(SHAPE, 1e4).spacing == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="spacing_um"):
        planar_foil(SHAPE, spacing_um=float("nan"))


def test_copy_is_deep(porous):
    before = porous.phase.copy()
    c = porous.copy()
    c.phase[:, :, 5] = HOST_DIELECTRIC
    c.metadata["x"] = 1
    c.eta_nuc[:] = 9
    c.seed_mask[:] = True
    assert np.array_equal(porous.phase, before)
    assert "x" not in porous.metadata and not np.any(porous.eta_nuc == 9)
    assert not porous.seed_mask.any()


# -- decorators --------------------------------------------------------------------------------
def test_seed_fraction_and_properties(porous):
    s = decorate_lithiophilic_seeds(porous, 0.2, eta_nuc_seed=0.0, eta_nuc_bare=0.05,
                                    activity_seed=3.0, seed=1)
    surf = porous.surface_mask((HOST_CONDUCTIVE,))
    assert np.all(s.seed_mask <= surf)  # seeds only on the conductive surface
    assert s.seed_fraction == pytest.approx(0.2, abs=1.0 / surf.sum())
    assert s.summary()["seed_fraction"] == pytest.approx(0.2, abs=1e-3)
    assert np.all(s.eta_nuc[s.seed_mask] == 0.0)
    bare = (s.phase == HOST_CONDUCTIVE) & ~s.seed_mask
    assert np.all(s.eta_nuc[bare] == 0.05)
    assert np.all(s.activity[s.seed_mask] == 3.0) and np.all(s.activity[~s.seed_mask] == 1.0)
    assert not porous.seed_mask.any()  # input host unchanged
    assert s.metadata["decorations"][-1]["decorator"] == "decorate_lithiophilic_seeds"


def test_seed_weighting_biases_height(porous):
    def mean_z(weighting):
        d = decorate_lithiophilic_seeds(porous, 0.1, weighting=weighting, seed=3)
        return np.nonzero(d.seed_mask)[2].mean()
    zu, zt, zb = mean_z("uniform"), mean_z("top"), mean_z("bottom")
    assert zt > zu + 2 and zb < zu - 2, (zb, zu, zt)


def test_seed_particles_cover_fraction(porous):
    d = decorate_lithiophilic_seeds(porous, 0.15, particle_radius=2.0, seed=2)
    assert d.seed_fraction == pytest.approx(0.15, abs=0.01)
    single = decorate_lithiophilic_seeds(porous, 0.15, seed=2)
    # patches are clumped: more seed-seed face contacts than single-voxel seeding
    def contacts(m):
        return sum(np.count_nonzero(m & np.roll(m, 1, ax)) for ax in range(3))
    assert contacts(d.seed_mask) > 2 * contacts(single.seed_mask)


def test_coat_dielectric_only_in_range(porous):
    c = coat_dielectric(porous, 8, 14)
    new = (c.phase == HOST_DIELECTRIC) & (porous.phase != HOST_DIELECTRIC)
    z = np.nonzero(new)[2]
    assert z.size > 0 and z.min() >= 8 and z.max() <= 13
    # exactly the conductive skin in the range was converted; deeper conductor untouched
    skin = porous.surface_mask((HOST_CONDUCTIVE,))
    skin[:, :, :8] = False
    skin[:, :, 14:] = False
    assert np.array_equal(new, skin)
    outside = np.ones(SHAPE, dtype=bool)
    outside[:, :, 8:14] = False
    assert np.array_equal(c.phase[outside], porous.phase[outside])
    interior = (porous.phase == HOST_CONDUCTIVE) & ~porous.surface_mask()
    assert np.all(c.phase[interior] == HOST_CONDUCTIVE)


def test_coat_top_fraction_and_thickness():
    foil = planar_foil(SHAPE, H_UM)
    pill = channel_array(SHAPE, H_UM, pitch=8, radius=3.0, kind="pillars")  # host layers 1..19
    top = coat_dielectric(pill, top_fraction=1 / 3)  # ceil(19/3) = 7 layers: 13..19
    zs = np.nonzero(top.phase == HOST_DIELECTRIC)[2]
    assert zs.min() == 13 and zs.max() == 19
    thick = coat_dielectric(pill, 1, 5, thickness=2)
    assert np.count_nonzero(thick.phase == HOST_DIELECTRIC) > np.count_nonzero(
        coat_dielectric(pill, 1, 5).phase == HOST_DIELECTRIC)
    # collector is never coated, and a coated foil keeps its conductive collector
    assert np.all(coat_dielectric(pill, 1).phase[:, :, 0] == HOST_CONDUCTIVE)
    with pytest.raises(ValueError, match="z_from=0 is out of range"):
        coat_dielectric(foil, 0, 5)
    # coating a thick foil's only surface leaves no conductor the electrolyte can reach
    with pytest.raises(ValueError, match="impossible request"):
        coat_dielectric(planar_foil(SHAPE, H_UM, thickness=3), 1, 3)


def test_activity_gradient_linear():
    pill = channel_array(SHAPE, H_UM, pitch=8, radius=2.5, kind="pillars")
    g = activity_gradient(pill, 1.0, 3.0)  # host layers 0..19
    col = g.activity[3, 3, :]  # inside a pillar (axis at 3.5, 3.5)
    assert pill.phase[3, 3, 19] == HOST_CONDUCTIVE
    assert np.allclose(col[:20], 1.0 + 2.0 * np.arange(20) / 19)
    assert np.all(g.activity[g.phase == ELECTROLYTE] == 1.0)
    seeded = decorate_lithiophilic_seeds(pill, 0.3, activity_seed=2.0, seed=0)
    both = activity_gradient(seeded, 1.0, 3.0)  # multiplies: seed factor kept
    m = seeded.seed_mask
    assert np.allclose(both.activity[m], 2.0 * g.activity[m])


# -- images ------------------------------------------------------------------------------------
def _pore_image(host):
    """Pore image (True = pore) of the layers above the collector."""
    return host.phase[:, :, 1:] == ELECTROLYTE


def test_load_npy_round_trip(tmp_path, porous):
    img = _pore_image(porous)
    path = tmp_path / "img.npy"
    np.save(path, img)
    h = load_voxel_image(path, H_UM)
    assert np.array_equal(h.phase, porous.phase) and h.spacing == H_UM * 1e-6
    assert h.porosity == pytest.approx(porous.porosity)
    flipped = load_voxel_image(img[:, :, ::-1], H_UM, flip_z=True)
    assert np.array_equal(flipped.phase, porous.phase)
    # inverted convention, dielectric solid, extra reservoir
    np.save(path, (~img).astype(np.uint8))
    d = load_voxel_image(path, H_UM, pore_value=0, solid_phase=HOST_DIELECTRIC, reservoir=3)
    assert d.shape == (32, 32, 27)
    assert np.all(d.phase[:, :, 0] == HOST_CONDUCTIVE) and np.all(d.phase[:, :, -3:] == ELECTROLYTE)
    assert np.array_equal(d.phase[:, :, 1:24] == HOST_DIELECTRIC, ~img)


def test_load_without_collector_and_errors(tmp_path):
    img = np.ones((6, 6, 6), dtype=bool)
    img[:, :, 0] = False  # solid bottom becomes the collector
    img[2:4, 2:4, 1:4] = False
    h = load_voxel_image(img, H_UM, add_collector=False)
    assert h.shape == (6, 6, 6) and np.all(h.phase[:, :, 0] == HOST_CONDUCTIVE)
    with pytest.raises(ValueError, match="z=0 layer to be entirely solid"):
        load_voxel_image(np.ones((6, 6, 6), dtype=bool), H_UM, add_collector=False)
    with pytest.raises(ValueError, match="pore_value=7 matches no voxel"):
        load_voxel_image(img, H_UM, pore_value=7)
    with pytest.raises(ValueError, match="unsupported file type"):
        load_voxel_image(tmp_path / "x.png", H_UM)


def test_load_tiff_round_trip(tmp_path, porous):
    tifffile = pytest.importorskip("tifffile")
    img = _pore_image(porous)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, img.transpose(2, 1, 0).astype(np.uint8) * 255)  # pages along z
    h = load_voxel_image(path, H_UM, pore_value=255)
    assert np.array_equal(h.phase, porous.phase)


def test_tiff_without_tifffile_says_how_to_fix(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "tifffile":
            raise ImportError("no tifffile")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="optional package 'tifffile'"):
        load_voxel_image(tmp_path / "stack.tiff", H_UM)


def test_summary_is_consistent(generated):
    for name, host in generated.items():
        s = host.summary()
        assert 0.0 <= s["porosity"] <= 1.0, name
        assert s["host_height_um"] == pytest.approx(s["host_layers"] * 1.0), name
        assert s["specific_surface_area_per_um"] > 0, name
        assert s["connected_conductor_fraction"] <= 1.0, name
        conn = collector_connected(host.phase)
        assert conn[:, :, 0].all(), name


# -- registry ----------------------------------------------------------------------------------
CONFIG_KINDS = ("planar_foil", "random_porous", "channel_array", "fibre_mat", "overlapping_spheres",
                "porosity_gradient", "image")


def test_registry_lists_config_kinds_and_rejects_unknown():
    assert host_kinds() == CONFIG_KINDS
    spec = make_config().host.model_copy(update={"kind": "no_such_host"})  # bypasses validation
    with pytest.raises(ValueError, match="'no_such_host' is not a host kind") as err:
        build_host(spec, 0)
    assert all(repr(k) in str(err.value) for k in CONFIG_KINDS)
    with pytest.raises(ConfigError, match=r"host\.kind: .*must be one of \['planar_foil'"):
        make_config(overrides=["host.kind=no_such_host"])
    with pytest.raises(ValueError, match="already registered"):
        register_host("planar_foil")(lambda spec, spacing_um, seed: None)


def test_registered_kind_is_valid_config():
    @register_host("two_voxel_foil", needs_seed=False)
    def _build(spec, spacing_um, seed):
        """Foil two voxels thick (the collector and one layer)."""
        return planar_foil(spec.shape, spacing_um, thickness=2, reservoir=spec.reservoir_layers)

    try:
        cfg = make_config(overrides=["host.kind=two_voxel_foil"])
        host = cfg.host.build(0)
        assert np.array_equal(host.phase, planar_foil(cfg.host.shape, cfg.host.spacing_um, thickness=2).phase)
        assert host.host_layers == 1
        # the spec's decorations apply to a registered kind too
        seeded = make_config(overrides=["host.kind=two_voxel_foil", "host.seed_fraction=0.2"]).host.build(0)
        assert seeded.seed_mask.any() and np.array_equal(seeded.phase, host.phase)
    finally:
        unregister_host("two_voxel_foil")
    assert host_kinds() == CONFIG_KINDS
    with pytest.raises(ConfigError, match="must be one of"):
        make_config(overrides=["host.kind=two_voxel_foil"])


def test_seed_decoration_draws_from_its_own_stream(monkeypatch):
    """The skeleton and the lithiophilic seeds must not be placed by the same random numbers."""
    from kmc.hosts import registry

    seen = {}
    real = registry.decorate_lithiophilic_seeds

    def spy(host, fraction, **kw):
        seen["seed"] = kw["seed"]
        return real(host, fraction, **kw)

    monkeypatch.setattr(registry, "decorate_lithiophilic_seeds", spy)
    root = np.random.SeedSequence(7)
    make_config(overrides=["host.seed_fraction=0.1"]).host.build(root)
    assert not np.array_equal(seen["seed"].generate_state(4), root.generate_state(4))
    again = {}
    monkeypatch.setattr(registry, "decorate_lithiophilic_seeds", lambda h, f, **kw: again.setdefault("s", kw["seed"]) and h)
    make_config(overrides=["host.seed_fraction=0.1"]).host.build(np.random.SeedSequence(7))
    assert np.array_equal(again["s"].generate_state(4), seen["seed"].generate_state(4))  # and reproducibly so
