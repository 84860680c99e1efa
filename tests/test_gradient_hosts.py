"""The gradient-hosts study: three hosts of one mean porosity, their fill measures, and the
command's outputs."""
import csv

import numpy as np
import pytest

from kmc import get_study, make_config
from kmc.cli import main
from kmc.coupling.config import ConfigError
from kmc.coupling.streams import root_sequence
from kmc.hosts.analysis import host_analysis
from kmc.studies.gradient_hosts import FILL_HEIGHT, FIRST_ABOVE, GRADIENT, fill_height
from continuum import ELECTROLYTE, HOST_CONDUCTIVE, LITHIUM

SMALL = ["host.nx=24", "host.ny=24", "host.host_layers=12", "host.reservoir_layers=12", "snapshots=0",
         "protocol.capacity_mAh_cm2=0.3"]


def test_hosts_share_the_mean_porosity_and_differ_in_shape():
    st = get_study("gradient_hosts")
    cfg = make_config({}, st.overrides + ["host.nx=36", "host.ny=36"])
    hosts = st.plan(cfg, root_sequence(0)).hosts
    p = cfg.host.porosity
    a = {k: host_analysis(h) for k, h in hosts.items()}
    for label, r in a.items():
        assert np.mean(r["porosity_per_layer"][1:]) == pytest.approx(p, abs=0.06), label
    grad = np.array(a["Porosity gradient"]["porosity_per_layer"][1:])
    assert grad[:3].mean() == pytest.approx(p + GRADIENT, abs=0.07)
    assert grad[-3:].mean() == pytest.approx(p - GRADIENT, abs=0.07)
    assert a["Vertical channels"]["tortuosity"] == pytest.approx(1.0)
    assert a["Random porous"]["tortuosity"] >= 1.0
    with pytest.raises(ConfigError, match="porosity"):
        st.plan(make_config({}, st.overrides + ["host.porosity=0.85"]), root_sequence(0))


def test_fill_height_is_the_centre_of_the_lithium_inside():
    host = np.full((2, 2, 6), ELECTROLYTE, np.uint8)
    host[:, :, 0] = HOST_CONDUCTIVE
    host[0, 0, 1:5] = HOST_CONDUCTIVE  # host layers 1..4: height 4
    phase = host.copy()
    assert np.isnan(fill_height(phase, host))
    phase[1, :, 1] = LITHIUM  # bottom layer: centre 0.5 / 4
    assert fill_height(phase, host) == pytest.approx(0.125)
    phase[1, :, 4] = LITHIUM  # and top layer: (0.5 + 3.5) / 2 / 4
    assert fill_height(phase, host) == pytest.approx(0.5)
    phase[1, :, 5] = LITHIUM  # above the host: not counted
    assert fill_height(phase, host) == pytest.approx(0.5)


def test_command_writes_summary_and_figures(tmp_path):
    out = tmp_path / "gh"
    args = ["gradient_hosts", "--out", str(out), "--no-progress", "--workers", "1"]
    for s in SMALL:
        args += ["--set", s]
    assert main(args) == 0
    for name in ("summary.csv", "timeseries.csv", "fill.png", "cross_sections.png", "host.json"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["Host"] for r in rows] == ["Random porous", "Porosity gradient", "Vertical channels"]
    for r in rows:
        assert 0.0 < float(r[FILL_HEIGHT]) < 1.0
        assert r[FIRST_ABOVE] == "" or float(r[FIRST_ABOVE]) <= 0.31


def test_channel_radius_gives_the_nearest_voxelised_porosity():
    from kmc.hosts.generators import channel_array, channel_radius

    r = channel_radius(0.6, 12)
    host = channel_array((24, 24, 1 + 6 + 4), 1.0, 12, r, kind="channels", reservoir=4)
    assert host.porosity == pytest.approx(88 / 144)  # the voxelised level nearest 0.6
    with pytest.raises(ValueError, match="pitch=8"):
        channel_radius(0.6, 8)  # at pitch 8 the holes reach 0.5 before they touch
