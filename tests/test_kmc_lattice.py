"""LatticeState: construction, validation, packets, checkpoints."""
import numpy as np
import pytest

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from kmc.engine.lattice import LatticeState

from _kmc_helpers import H, slab


def test_from_arrays_places_poisson_packets():
    ph = slab(32, 32, 32)
    st = LatticeState.from_arrays(ph, H, concentration=3000.0, seed=4)
    n_el = np.count_nonzero(ph == ELECTROLYTE)
    lam = 3000.0 * 1.30e-5
    mean = st.n_packets / n_el
    se = np.sqrt(lam / n_el)
    assert abs(mean - lam) < 4 * se
    assert np.all(ph.reshape(-1)[st.packets] == ELECTROLYTE)
    assert st.occupancy.sum() == st.n_packets
    assert np.array_equal(st.packet_ids, np.arange(st.n_packets))


def test_validation_errors_name_the_argument():
    ph = slab(4, 4, 4)
    with pytest.raises(ValueError, match="phase"):
        LatticeState.from_arrays(ph[0], H)
    bad = ph.copy()
    bad[0, 0, 0] = ELECTROLYTE
    with pytest.raises(ValueError, match="collector"):
        LatticeState.from_arrays(bad, H)
    with pytest.raises(ValueError, match="spacing"):
        LatticeState.from_arrays(ph, -1.0)
    with pytest.raises(ValueError, match="eta_nuc"):
        LatticeState.from_arrays(ph, H, eta_nuc=np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="concentration"):
        LatticeState.from_arrays(ph, H, concentration=-1.0)
    st = LatticeState.from_arrays(ph, H)
    with pytest.raises(ValueError, match="electrolyte"):
        st.add_packets([0])  # z = 0 is the collector


def test_lithium_site_properties_forced_and_dead_label():
    ph = slab(8, 8, 10, lithium_layers=1)
    ph[4, 4, 6] = LITHIUM  # floating island
    st = LatticeState.from_arrays(ph, H, eta_nuc=0.05, activity=2.0)
    li = ph == LITHIUM
    assert np.all(st.eta_nuc[li] == 0) and np.all(st.activity[li] == 1)
    assert np.all(st.eta_nuc[ph == HOST_CONDUCTIVE] == 0.05)
    assert st.dead_lithium.sum() == 1 and st.dead_lithium[4, 4, 6]
    st.phase[4, 4, 2:6] = LITHIUM  # connect it
    st.relabel()
    assert st.dead_lithium.sum() == 0


def test_checkpoint_round_trip_and_copy():
    ph = slab(6, 5, 7)
    ph[2, 2, 3] = HOST_DIELECTRIC
    st = LatticeState.from_arrays(ph, H, concentration=5000.0, seed=1)
    d = st.to_dict()
    assert all(isinstance(v, np.ndarray) or np.isscalar(v) for v in d.values())
    st2 = LatticeState.from_dict(d)
    for k in ("phase", "eta_nuc", "activity", "packets", "packet_ids", "packet_images", "connected"):
        assert np.array_equal(getattr(st, k), getattr(st2, k))
    assert np.array_equal(st.occupancy, st2.occupancy)
    c = st.copy()
    c.phase[1, 1, 1] = LITHIUM
    assert st.phase[1, 1, 1] == ELECTROLYTE


def test_packet_concentration_smoothing_conserves_mean():
    ph = slab(16, 16, 16)
    st = LatticeState.from_arrays(ph, H, concentration=1000.0, seed=2)
    raw = st.packet_concentration()
    sm = st.packet_concentration(smoothing_voxels=2)
    el = ph == ELECTROLYTE
    assert raw[el].mean() == pytest.approx(st.n_packets / el.sum() / 1.30e-5)
    assert abs(sm[el].mean() - raw[el].mean()) < 0.05 * raw[el].mean()
    assert sm[el].std() < raw[el].std()
    assert np.all(sm[~el] == 0)
