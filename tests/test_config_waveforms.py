"""Configuration validation, schedules and waveforms, atomic outputs, observables."""
import json
import os
import re

import numpy as np
import pytest

from continuum.constants import HOST_CONDUCTIVE, LITHIUM
from kmc.coupling.config import ConfigError, make_config
from kmc.coupling.io import read_csv, write_csv, write_json, write_pvd, write_vti
from kmc.coupling.observables import count_tips, deposit_observables, height_map, region_map, voxels_to_capacity
from kmc.coupling.units import MA_PER_CM2, MAH_PER_CM2
from kmc.coupling.waveforms import average_current, parse_schedule, parse_step, pulse_plating


def test_defaults_are_model_section_3():
    c = make_config()
    p = c.physics
    assert p.temperature == 298.15 and p.lithium_molar_volume == 1.30e-5
    assert p.electrolyte.salt_diffusivity == 3.2e-10 and p.electrolyte.transference_number == 0.38
    assert p.kinetics.exchange_current_density == 10.0
    # D+ = D / (2 (1 - t+)), D- = D / (2 t+)
    assert p.cation_diffusivity == pytest.approx(3.2e-10 / (2 * 0.62))
    assert p.anion_diffusivity == pytest.approx(3.2e-10 / (2 * 0.38))
    # Nernst-Einstein conductivity at 1 M is about 2.6 S/m (docs/model.md, "Parameters and derived constants")
    assert p.conductivity(1000.0) == pytest.approx(2.55, abs=0.05)


@pytest.mark.parametrize("override, field", [
    ("protocol.current_density_mA_cm2=-1", "protocol.current_density_mA_cm2"),
    ("physics.electrolyte.transference_number=1.5", "physics.electrolyte.transference_number"),
    ("host.porosity=0", "host.porosity"),
    ("protocol.capacity_mAh_cm2=0", "protocol.capacity_mAh_cm2"),
    ("kmc.transport=magic", "kmc.transport"),
    ("nonsense=3", "nonsense"),
])
def test_bad_values_name_field_and_range(override, field):
    with pytest.raises(ConfigError) as e:
        make_config({}, [override])
    msg = str(e.value)
    assert field in msg
    assert "\n" not in msg


def test_out_of_range_message_states_range():
    with pytest.raises(ConfigError, match=r"must be > 0"):
        make_config({}, ["protocol.current_density_mA_cm2=-1"])


def test_override_types_and_digest():
    a = make_config({}, ["kmc.leaps=false", "protocol.kind=pulse", "seed=7"])
    assert a.kmc.leaps is False and a.protocol.kind == "pulse" and a.seed == 7
    b = make_config({}, ["seed=8"])
    assert a.digest() != b.digest()
    assert make_config({}, ["seed=8"]).digest() == b.digest()


def test_schedule_steps_parse_with_units():
    segs = parse_schedule(["plate at 2 mA/cm^2 for 0.5 mAh/cm^2", "rest for 10 s",
                           "strip at 1 mA/cm^2 until 0 V cutoff or fully stripped", "strip at 1 mA/cm2 for 2 min"])
    assert segs[0].current_density == -2 * MA_PER_CM2
    assert segs[0].duration == pytest.approx(0.5 * MAH_PER_CM2 / (2 * MA_PER_CM2))  # 900 s
    assert segs[1].current_density == 0 and segs[1].duration == 10
    assert segs[2].current_density == 10.0 and segs[2].cutoff_potential == 0.0 and segs[2].until_stripped
    assert segs[3].duration == 120


@pytest.mark.parametrize("bad", ["plate at 2 mA/cm^2", "rest for -3 s", "dance at 2 mA/cm^2 for 1 s",
                                 "plate at 0 mA/cm^2 for 1 s", "strip at 1 mA/cm^2"])
def test_bad_schedule_steps(bad):
    with pytest.raises(ValueError):
        parse_step(bad)


def test_hold_steps_parse_with_units():
    """'hold at V (mV|V) for T': a potentiostatic segment (no current; the held cell potential,
    signed, negative plates)."""
    a, b = parse_schedule(["hold at -50 mV for 600 s", "Hold at +0.02 V for 2 min"])
    assert (a.current_density, a.duration, a.label, a.held_potential) == (0.0, 600.0, "hold", -0.05)
    assert a.potentiostatic and not parse_step("rest for 1 s").potentiostatic
    assert b.held_potential == 0.02 and b.duration == 120.0


@pytest.mark.parametrize("bad, says", [
    ("hold at -50 mA for 600 s", "expected 'hold at V mV for T s'"),
    ("hold at -50 mV", "expected 'hold at V mV for T s'"),
    ("hold at -50 mV for 600 s or fully stripped", "expected 'hold at V mV for T s'"),
    ("hold at -1500 mV for 1 s", "held potential -1500 mV is out of range: must be within +-1000 mV"),
    ("hold at -50 mV for 0 s", "must be > 0"),
    ("hold at -50 mV for 1e8 s", "hold duration 1e+08 s is out of range"),
])
def test_bad_hold_steps_name_the_problem(bad, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_step(bad)
    with pytest.raises(ConfigError, match=re.escape(says)):  # at validation, before anything runs
        make_config({}, ["protocol.kind=schedule", "protocol.steps=" + json.dumps([bad])])


def test_pulse_capacity_and_average_current():
    on, t_on, t_off, q = 4.0, 1.0, 3.0, 0.01
    segs = pulse_plating(on, t_on, t_off, q)
    plated = -sum(s.current_density * s.duration for s in segs)
    assert plated == pytest.approx(q * MAH_PER_CM2, rel=1e-12)
    assert segs[-1].label == "on"  # never ends in an idle off-time
    full = segs[:-1]  # whole on/off periods only
    assert average_current(full[:2]) == pytest.approx(-on * MA_PER_CM2 * t_on / (t_on + t_off))
    rev = pulse_plating(on, t_on, t_off, q, reverse_current_mA_cm2=1.0, reverse_time_s=0.5)
    net = -sum(s.current_density * s.duration for s in rev)
    assert net == pytest.approx(q * MAH_PER_CM2, rel=1e-9)
    assert any(s.label == "reverse" and s.current_density > 0 for s in rev)


def test_atomic_outputs(tmp_path):
    rows = [{"Time [s]": 0.0, "Cell potential [V]": -0.1}, {"Time [s]": 1.5, "Cell potential [V]": -0.12}]
    write_csv(tmp_path / "ts.csv", rows)
    back = read_csv(tmp_path / "ts.csv")
    assert float(back[1]["Time [s]"]) == 1.5 and list(back[0]) == ["Time [s]", "Cell potential [V]"]
    write_json(tmp_path / "c.json", {"a": np.float64(1.0), "b": np.arange(3)})
    assert json.loads((tmp_path / "c.json").read_text()) == {"a": 1.0, "b": [0, 1, 2]}
    write_vti(tmp_path / "s.vti", {"phase": np.ones((2, 3, 4), np.uint8)}, 1e-6)
    write_pvd(tmp_path / "s.pvd", [(0.0, "s.vti")])
    assert b'WholeExtent="0 2 0 3 0 4"' in (tmp_path / "s.vti").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["c.json", "s.pvd", "s.vti", "ts.csv"]  # no temp files left


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        write_json(tmp_path / "x.json", {"bad": object()})
    assert os.listdir(tmp_path) == []


def test_observables_by_hand():
    host = np.zeros((8, 8, 12), np.uint8)
    host[:, :, 0] = HOST_CONDUCTIVE
    phase = host.copy()
    phase[:, :, 1:3] = LITHIUM  # two flat layers
    phase[2, 2, 3:8] = LITHIUM  # one needle, 5 voxels tall
    obs = deposit_observables(phase, host, 1e-6, 1.3e-5)
    hmap = height_map(phase, host)
    assert hmap[2, 2] == 7 and hmap[0, 0] == 2
    assert obs.max_height == pytest.approx(7.0) and obs.n_tips == 1
    assert obs.mean_height == pytest.approx((63 * 2 + 7) / 64)
    n = 2 * 64 + 5
    assert obs.lithium_capacity == pytest.approx(voxels_to_capacity(n, 1e-6, 64, 1.3e-5))
    # 1 voxel layer of Li at h = 1 um: 96485 * 1e-6 / 1.3e-5 C/m^2 = 7422 C/m^2 = 0.206 mAh/cm^2
    assert voxels_to_capacity(64, 1e-6, 64, 1.3e-5) == pytest.approx(96485.33212e-6 / 1.3e-5 / 36000)
    assert obs.lithium_above_host == pytest.approx(obs.lithium_capacity)
    # top face of the flat layer (63 columns) + needle: 4 sides x 5 + its top
    assert obs.interface_area == pytest.approx((63 + 4 * 5 + 1) / 64)
    assert count_tips(np.full((6, 6), 3.0)) == 0


def test_region_map_thirds():
    host = np.zeros((4, 4, 14), np.uint8)
    host[:, :, 0] = HOST_CONDUCTIVE
    host[0, 0, :10] = HOST_CONDUCTIVE  # host layers 1..9 above the collector
    r = region_map(host)[0, 0]
    assert list(r[1:10]) == [0, 0, 0, 1, 1, 1, 2, 2, 2] and all(r[10:] == 3)
