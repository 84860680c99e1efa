"""Conductive/dielectric banded hosts: the band decoration and its configuration, the
self-correction (a floating conductive band becomes live only once lithium touches it, at the
next relabel of the conductor network), and the study's outputs."""
import csv

import numpy as np
import pytest

from continuum import ELECTROLYTE, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from continuum.grid import face_dilate
from kmc import KMCEngine, LatticeState, get_study, make_config
from kmc.cli import main
from kmc.coupling.config import ConfigError
from kmc.coupling.streams import root_sequence
from kmc.hosts.decorations import band_dielectric, band_layers, decorate_lithiophilic_seeds
from kmc.hosts.generators import channel_array, channel_radius, planar_foil
from kmc.hosts.analysis import floating_conductors
from kmc.studies.conductive_dielectric import FIRST_ABOVE, FLOATING, FLOATING_CONNECTED, connection_events, wall_kinds

from _kmc_helpers import H, advance_checked, params

CHANNELS = ["host.kind=channel_array", "host.channels_are_holes=true", "host.nx=24", "host.ny=24",
            "host.host_layers=24", "host.pitch_um=12", "host.radius_um=5.3"]


def _channels(H_layers=24, reservoir=4):
    return channel_array((24, 24, 1 + H_layers + reservoir), 1.0, 12, channel_radius(0.6, 12), kind="channels",
                         reservoir=reservoir)


# ----------------------------------------------------------------------------------------
# the decoration
# ----------------------------------------------------------------------------------------
def test_band_layers_alternate_from_the_collector():
    assert band_layers(24, 8, 0.5) == [(1, 5, "conductive"), (5, 9, "dielectric"), (9, 13, "conductive"),
                                       (13, 17, "dielectric"), (17, 21, "conductive"), (21, 25, "dielectric")]
    # 0.25 of 4 layers is one dielectric layer; the last period is cut at the host top
    assert band_layers(10, 4, 0.25) == [(1, 4, "conductive"), (4, 5, "dielectric"), (5, 8, "conductive"),
                                        (8, 9, "dielectric"), (9, 11, "conductive")]


def test_isolated_bands_float_and_core_bands_stay_connected():
    host = _channels()
    iso = band_dielectric(host, 8, 0.5, wiring="isolated")
    core = band_dielectric(host, 8, 0.5, wiring="core")
    solid = (host.phase == HOST_CONDUCTIVE)
    for h in (iso, core):  # same skeleton, collector untouched
        assert np.array_equal(h.phase != ELECTROLYTE, host.phase != ELECTROLYTE)
        assert np.all(h.phase[:, :, 0] == HOST_CONDUCTIVE)
    diel_layers = np.r_[5:9, 13:17, 21:25]
    cond_layers = np.r_[1:5, 9:13, 17:21]
    # isolated: whole wall dielectric in the dielectric bands, untouched in the conductive ones
    assert np.all(iso.phase[:, :, diel_layers][solid[:, :, diel_layers]] == HOST_DIELECTRIC)
    assert np.array_equal(iso.phase[:, :, cond_layers], host.phase[:, :, cond_layers])
    lab, n = floating_conductors(iso.phase)
    assert n == 2  # the bands above the first dielectric one (the block between the holes is one piece each)
    assert [sorted(np.unique(np.nonzero(lab == k)[2])) for k in (1, 2)] == [list(range(9, 13)), list(range(17, 21))]
    assert floating_conductors(core.phase)[1] == 0 and floating_conductors(host.phase)[1] == 0
    assert iso.connected_conductor_fraction == pytest.approx(1 / 3)  # equal bands: only the first is live
    # core: only the skin is dielectric; every conductive voxel reaches the collector
    assert core.connected_conductor_fraction == 1.0
    skin = face_dilate(host.phase == ELECTROLYTE) & solid
    assert np.all(core.phase[:, :, diel_layers][skin[:, :, diel_layers]] == HOST_DIELECTRIC)
    assert np.any(core.phase[:, :, diel_layers] == HOST_CONDUCTIVE)
    assert wall_kinds(iso.phase)[:9] == ["conductive"] * 4 + ["dielectric"] * 4 + ["floating conductive"]
    assert wall_kinds(core.phase)[:9] == ["conductive"] * 4 + ["dielectric"] * 4 + ["conductive"]
    assert iso.metadata["decorations"][-1]["connected_conductor_fraction_after"] == pytest.approx(1 / 3)


def test_band_dielectric_removes_seeds_it_covers():
    seeded = decorate_lithiophilic_seeds(_channels(), 0.3, seed=1)
    out = band_dielectric(seeded, 8, 0.5)
    assert out.seed_mask.any() and not np.any(out.seed_mask & (out.phase != HOST_CONDUCTIVE))


def test_band_errors_name_the_argument():
    host = _channels(H_layers=8)
    with pytest.raises(ValueError, match=r"dielectric_fraction=0.05 at period=8 .* 0 dielectric layers"):
        band_dielectric(host, 8, 0.05)
    with pytest.raises(ValueError, match=r"period=16 .* no dielectric band fits"):
        band_dielectric(host, 16, 0.25)
    with pytest.raises(ValueError, match="period=1"):
        band_dielectric(host, 1, 0.5)
    with pytest.raises(ValueError, match="wiring='skin'"):
        band_dielectric(host, 4, 0.5, wiring="skin")
    with pytest.raises(ValueError, match="no host above the collector"):
        band_dielectric(planar_foil((8, 8, 8), 1.0), 4, 0.5)


def test_config_asks_for_bands_with_errors_naming_the_fields():
    host = make_config({}, CHANNELS + ["host.band_period_um=8", "host.band_wiring=core"]).host.build(0)
    assert host.metadata["decorations"][-1]["wiring"] == "core"
    assert make_config({}, CHANNELS).host.build(0).summary()["dielectric_fraction"] == 0.0  # off by default
    with pytest.raises(ConfigError, match=r"host.band_period_um=7.5 is 7.5 voxels .* whole number"):
        make_config({}, CHANNELS + ["host.band_period_um=7.5"]).host.build(0)
    with pytest.raises(ConfigError, match=r"host.band_period_um=8, host.band_dielectric_fraction=0.05"):
        make_config({}, CHANNELS + ["host.band_period_um=8", "host.band_dielectric_fraction=0.05"]).host.build(0)
    for bad in ("host.band_dielectric_fraction=1", "host.band_period_um=-1", "host.band_wiring=skin"):
        with pytest.raises(ConfigError, match=bad.split("=")[0].split(".")[1]):
            make_config({}, CHANNELS + [bad])


# ----------------------------------------------------------------------------------------
# the self-correction
# ----------------------------------------------------------------------------------------
def test_floating_band_plates_only_after_lithium_connects_it():
    """A lithium column grows through a hole in a dielectric slab toward a floating conductive
    band. The reduction that fills the last gap touches the band, but within that KMC call the
    band stays unconnected and takes nothing (the call runs out of events with the band's
    faces open); the next call relabels the conductor network, the band is live and plates."""
    p = params(exchange_current_density_mA_cm2=1e3)
    ph = np.zeros((8, 8, 12), np.uint8)
    ph[:, :, 0] = HOST_CONDUCTIVE
    ph[:, :, 1:4] = HOST_DIELECTRIC
    ph[4, 4, 1:3] = LITHIUM  # column from the collector, one voxel short of the band
    ph[4, 4, 3] = ELECTROLYTE  # the gap
    ph[:, :, 4] = HOST_CONDUCTIVE  # the band: on dielectric, under electrolyte
    band = np.zeros(ph.shape, bool)
    band[:, :, 4] = True
    st = LatticeState.from_arrays(ph, H)
    assert not st.connected[band].any() and st.connected[4, 4, 2]
    eng = KMCEngine(st, p, seed=4, transport="implicit", face_counts=True)
    fields = dict(phi_l=np.zeros(ph.shape), phi_s=np.full(ph.shape, -0.2), concentration=np.full(ph.shape, p.c_ref))
    r = advance_checked(eng, 1.0, **fields)
    assert st.phase[4, 4, 3] == LITHIUM and r.reductions - r.oxidations == 1
    assert r.status == "no_events"  # the band's 64 open faces carried no rate at all
    assert r.face_reductions[band].sum() == 0 and not st.connected[band].any()
    r = advance_checked(eng, 1.0, max_reductions=1, **fields)  # relabel at the call's start: the band is live
    assert st.connected[band].all()
    assert r.reductions == 1 and r.face_reductions[band].sum() == 1  # its faces were the only sites left


def test_coupled_run_connects_a_floating_band_through_lithium():
    """In a coupled run the conductor network is relabelled every macro-step: the floating band
    is live exactly when live lithium touches it, and it does get connected."""
    from kmc import PlatingSimulation
    from kmc.coupling.waveforms import dc_plating

    host = band_dielectric(channel_array((12, 12, 15), 1.0, 12, channel_radius(0.6, 12), kind="channels",
                                        reservoir=6), 4, 0.5)
    lab, n = floating_conductors(host.phase)
    band = lab == 1
    assert n == 1 and sorted(np.unique(np.nonzero(band)[2])) == [5, 6]
    cfg = make_config({}, ["kmc.transport=implicit", "snapshots=0"])
    sim = PlatingSimulation(cfg, host, seed_sequence=root_sequence(3))
    seen = []

    def check(row):
        st = sim.state
        live_li = (st.phase == LITHIUM) & st.connected
        touching = bool((face_dilate(live_li) & band).any())
        seen.append((bool(st.connected[band].all()), touching))

    sim.run(dc_plating(10.0, 0.5), progress=check)
    assert all(conn == touch for conn, touch in seen), seen
    assert not seen[0][0] and seen[-1][0]


# ----------------------------------------------------------------------------------------
# the study
# ----------------------------------------------------------------------------------------
def test_connection_events_bracket_the_connection():
    host = band_dielectric(_channels(H_layers=8), 4, 0.5)
    grown = host.phase.copy()
    hole = host.phase[:, :, 1] == ELECTROLYTE
    grown[:, :, 1:5][hole] = LITHIUM  # the channels filled to the top of the dielectric band: not touching
    touching = grown.copy()
    touching[:, :, 5][hole] = LITHIUM  # one layer more: lithium beside the floating band
    states = [(0.0, 0.0, host.phase), (1.0, 0.1, grown), (2.0, 0.2, touching), (3.0, 0.3, touching)]
    (ev,) = connection_events(host.phase, states)
    assert (ev["Bottom layer [-]"], ev["Top layer [-]"]) == (5, 6)
    assert ev["Connected at end [-]"] and ev["Time connected [s]"] == 2.0
    assert ev["Capacity last unconnected [mAh.cm-2]"] == 0.1 and ev["Capacity connected [mAh.cm-2]"] == 0.2
    (ev,) = connection_events(host.phase, states[:2])
    assert not ev["Connected at end [-]"] and np.isnan(ev["Capacity connected [mAh.cm-2]"])


def test_hosts_share_one_skeleton():
    st = get_study("conductive_dielectric")
    cfg = make_config({}, st.overrides)
    hosts = st.plan(cfg, root_sequence(0)).hosts
    solid = {k: h.phase != ELECTROLYTE for k, h in hosts.items()}
    ref = solid["All conductive"]
    assert all(np.array_equal(s, ref) for s in solid.values())
    assert hosts["All conductive"].porosity == pytest.approx(88 / 144)
    diel = {k: bool(np.any(h.phase == HOST_DIELECTRIC)) for k, h in hosts.items()}
    assert diel == {"All conductive": False, "Dielectric top": True, "Bands, isolated": True,
                    "Bands, conductive core": True}
    assert not np.any(hosts["Dielectric top"].phase[:, :, :17] == HOST_DIELECTRIC)  # top 8 of 24 layers
    with pytest.raises(ConfigError, match="host.band_period_um=0"):
        st.plan(make_config({}, st.overrides + ["host.band_period_um=0"]), root_sequence(0))
    with pytest.raises(ConfigError, match="host.kind='random_porous'"):
        st.plan(make_config({}, st.overrides + ["host.kind=random_porous"]), root_sequence(0))


def test_command_writes_outputs_and_the_isolated_band_connects(tmp_path):
    out = tmp_path / "cd"
    args = ["conductive_dielectric", "--out", str(out), "--no-progress", "--workers", "1"]
    for s in ["host.nx=12", "host.ny=12", "host.host_layers=8", "host.reservoir_layers=6", "host.band_period_um=4",
              "protocol.capacity_mAh_cm2=0.3", "snapshots=4"]:
        args += ["--set", s]
    assert main(args) == 0
    for name in ("summary.csv", "timeseries.csv", "layers.csv", "connections.csv", "filling.png", "fill.png",
                 "cross_sections.png", "host.json"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "summary.csv", newline="") as fh:
        rows = {r["Host"]: r for r in csv.DictReader(fh)}
    assert list(rows) == ["All conductive", "Dielectric top", "Bands, isolated", "Bands, conductive core"]
    assert float(rows["Bands, isolated"][FLOATING]) == pytest.approx(1 / 2)  # bands 1-2, 5-6: the second floats
    assert float(rows["Bands, isolated"][FLOATING_CONNECTED]) == 1.0
    assert float(rows["All conductive"][FLOATING]) == 0.0
    # the all-conductive host grows above its top almost at once; the isolated bands hold it off
    first = {k: float(r[FIRST_ABOVE]) if r[FIRST_ABOVE] else np.inf for k, r in rows.items()}
    assert first["All conductive"] < 0.1 and first["Bands, isolated"] > 2 * first["All conductive"]
    with open(out / "connections.csv", newline="") as fh:
        (ev,) = list(csv.DictReader(fh))
    assert ev["Host"] == "Bands, isolated" and ev["Connected at end [-]"] == "True"
    assert 0.0 < float(ev["Capacity connected [mAh.cm-2]"]) <= 0.3 * 1.01  # the last snapshot is the run's end, within its charge tolerance
    with open(out / "layers.csv", newline="") as fh:
        layers = list(csv.DictReader(fh))
    assert {r["Wall [-]"] for r in layers} >= {"conductive", "dielectric", "floating conductive", "above host"}
