"""Coarse-graining between KMC lattice states and phase-field fields (kmc/coarse_graining.py,
docs/phasefield.md "Coarse-graining")."""
import numpy as np
import pytest

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from continuum.phasefield import HONG2018, logistic_profile
from kmc.coarse_graining import (concentration_from_mean_field, concentration_from_packets,
                                 lattice_from_order_parameter, order_parameter_from_lattice, refine,
                                 volume_ratio)

H = 0.5e-6  # voxel [m]; HONG2018's profile length sqrt(kappa / 2W) is 0.25 um


def _flat_front(shape, height):
    phase = np.full(shape, ELECTROLYTE, np.uint8)
    phase[:, :, 0] = HOST_CONDUCTIVE
    phase[:, :, 1:height] = LITHIUM
    return phase


@pytest.mark.parametrize("refinement", [1, 3])
@pytest.mark.parametrize("shape", [(4, 3, 32), (5, 1, 32)])
def test_flat_front_coarse_grains_to_the_equilibrium_profile(shape, refinement):
    for height in (12, 17):  # front 6 and 8.5 um above z = 0
        phase = _flat_front(shape, height)
        xi = order_parameter_from_lattice(phase, H, HONG2018, refinement=refinement)
        z = (np.arange(shape[2] * refinement) + 0.5) * H / refinement
        ref = np.broadcast_to(logistic_profile(z - height * H, HONG2018), xi.shape)  # centred at the front
        free = refine(phase != HOST_CONDUCTIVE, refinement)
        # logistic kernel: exact but for the front's image in the reflecting bottom face,
        # ~exp(-2 z_front / w) (measured 6.5e-11 at 6 um, 6.7e-14 at 8.5 um)
        assert np.abs(xi - ref)[free].max() < 1e-9
        assert np.all(xi[refine(phase == HOST_CONDUCTIVE, refinement)] == 1.0)
        # MODEL.md's Gaussian of matched standard deviation: an erf profile, within 0.023
        # (measured 0.0218 at r = 1, 0.0227 at r = 3); a wrong width or centre fails this
        xg = order_parameter_from_lattice(phase, H, HONG2018, refinement=refinement, kernel="gaussian")
        err = np.abs(xg - ref)[free].max()
        assert 0.01 < err < 0.025
        # the interface width is the phase field's: half the profile length wider fails
        wide = order_parameter_from_lattice(phase, H, 1.5 * HONG2018.profile_length, refinement=refinement)
        assert np.abs(wide - ref)[free].max() > 0.05


def _random_deposit(rng, shape, fill):
    phase = np.full(shape, ELECTROLYTE, np.uint8)
    phase[:, :, 0] = HOST_CONDUCTIVE
    host = rng.random(shape) < 0.15
    host[:, :, 0] = False
    phase[host] = np.where(rng.random(host.sum()) < 0.5, HOST_CONDUCTIVE, HOST_DIELECTRIC)
    elec = phase == ELECTROLYTE
    zbias = np.exp(-np.arange(shape[2]) / 4.0)[None, None, :]  # more lithium near the collector
    phase[elec & (rng.random(shape) < fill * zbias * 3)] = LITHIUM
    return phase


@pytest.mark.parametrize("refinement,kernel", [(1, "logistic"), (2, "logistic"), (2, "gaussian")])
def test_kmc_to_phasefield_to_kmc_conserves_lithium_voxels(refinement, kernel):
    rng = np.random.default_rng(12)
    for trial in range(4):
        shape = (8, 1, 16) if trial % 2 else (6, 5, 12)
        phase = _random_deposit(rng, shape, fill=0.2 + 0.1 * trial)
        n = int(np.count_nonzero(phase == LITHIUM))
        xi = order_parameter_from_lattice(phase, H, HONG2018, refinement=refinement, kernel=kernel)
        free_fine = refine((phase == ELECTROLYTE) | (phase == LITHIUM), refinement)
        # the phase field's lithium, in voxels, is the KMC's (conserve=True shifts the interfaces)
        assert xi[free_fine].sum() / volume_ratio(shape, refinement) == pytest.approx(n, abs=1e-8)
        back = lattice_from_order_parameter(xi, phase, refinement=refinement)
        assert np.count_nonzero(back == LITHIUM) == n
        hosts = (phase == HOST_CONDUCTIVE) | (phase == HOST_DIELECTRIC)
        np.testing.assert_array_equal(back[hosts], phase[hosts])
        # without the correction the smoothing alone loses or gains lithium on these hosts
        raw = order_parameter_from_lattice(phase, H, HONG2018, refinement=refinement, kernel=kernel,
                                           conserve=False)
        assert abs(raw[free_fine].sum() / volume_ratio(shape, refinement) - n) > 0.5


def test_threshold_never_puts_lithium_on_hosts_and_ranks_by_xi():
    rng = np.random.default_rng(3)
    shape, r = (6, 4, 10), 2
    phase = _random_deposit(rng, shape, fill=0.3)
    hosts = (phase == HOST_CONDUCTIVE) | (phase == HOST_DIELECTRIC)
    xi = rng.random(tuple(2 * n for n in shape))
    xi[refine(hosts, r)] = 1.0  # hosts look the most lithium-like of all
    back = lattice_from_order_parameter(xi, phase, refinement=r)
    np.testing.assert_array_equal(back[hosts], phase[hosts])
    free = ~hosts
    n = int(round(xi[refine(free, r)].sum() / 8))
    assert np.count_nonzero(back == LITHIUM) == n and 0 < n < free.sum()
    mean = xi.reshape(6, 2, 4, 2, 10, 2).mean(axis=(1, 3, 5))
    assert mean[back == LITHIUM].min() >= mean[free & (back == ELECTROLYTE)].max()
    # a state that asks for more lithium than there are free voxels fills them all, no host
    full = lattice_from_order_parameter(np.full_like(xi, 1.0), phase, refinement=r)
    assert np.all(full[free] == LITHIUM) and np.array_equal(full[hosts], phase[hosts])
    # ties: uniform xi picks the smallest flat indices among free voxels
    tie = lattice_from_order_parameter(np.full(shape, 0.25), phase)
    idx = np.flatnonzero(free.ravel())
    expect = idx[:int(round(0.25 * idx.size))]
    assert np.array_equal(np.flatnonzero(tie.ravel() == LITHIUM), expect)


@pytest.mark.parametrize("refinement", [1, 2])
def test_concentration_mapping_conserves_moles(refinement):
    rng = np.random.default_rng(5)
    shape, vm = (7, 6, 12), 1.30e-5
    phase = _random_deposit(rng, shape, fill=0.2)
    elec = np.flatnonzero((phase == ELECTROLYTE).ravel())
    packets = rng.choice(elec, size=300)  # repeats: several packets in a voxel
    ratio = volume_ratio(shape, refinement)
    elec_fine = refine(phase == ELECTROLYTE, refinement)
    for width in (0.0, H, 2.5 * H):
        c = concentration_from_packets(packets, phase, H, molar_volume=vm, smoothing_width=width,
                                       refinement=refinement)
        moles = c.sum() * H**3 / ratio
        assert moles == pytest.approx(packets.size * H**3 / vm, rel=1e-12)
        assert np.all(c[~elec_fine] == 0.0) and np.all(c >= 0.0)
        if width > 0:  # smoothed: the packets' spikes are spread
            assert c.max() < 0.5 * np.bincount(packets).max() / vm
    c0 = 1000.0
    cm = concentration_from_mean_field(c0, phase, H, smoothing_width=H, refinement=refinement)
    assert cm.sum() * H**3 / ratio == pytest.approx(c0 * elec.size * H**3, rel=1e-12)
    with pytest.raises(ValueError):
        concentration_from_packets([np.flatnonzero((phase == LITHIUM).ravel())[0]], phase, H)
