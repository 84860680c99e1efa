"""The top-deposition study: remedies are configurations of their own, a remedy that fills the
pores ranks above the baseline, and the study's command writes its outputs."""
import csv

import numpy as np
import pytest

from kmc import get_study, make_config
from kmc.cli import main
from kmc.coupling import columns as col
from kmc.coupling.observables import lithium_fill_profile
from kmc.coupling.streams import root_sequence
from kmc.studies.base import run_case
from kmc.studies.top_deposition import (DIFFUSIVITY_FACTOR, INSIDE_FRACTION, SALT_FACTOR, first_growth_above,
                                        remedy_row)
from continuum import ELECTROLYTE, HOST_CONDUCTIVE, LITHIUM

SMALL = ["host.nx=12", "host.ny=12", "host.host_layers=16", "host.reservoir_layers=8", "snapshots=0",
         "protocol.current_density_mA_cm2=12", "protocol.capacity_mAh_cm2=0.5"]


def _plan(extra=()):
    st = get_study("top_deposition")
    cfg = make_config({}, st.overrides + SMALL + list(extra))
    return cfg, st.plan(cfg, root_sequence(cfg.seed))


def test_each_remedy_changes_only_its_own_configuration_on_one_host():
    cfg, plan = _plan()
    by = {c.protocol_label: c for c in plan.cases}
    el = cfg.physics.electrolyte
    base = by["Baseline"].config_for(cfg)
    assert base == cfg
    assert by["Salt x3"].config.physics.electrolyte.concentration == pytest.approx(SALT_FACTOR * el.concentration)
    assert by["Diffusivity x10"].config.physics.electrolyte.salt_diffusivity == pytest.approx(
        DIFFUSIVITY_FACTOR * el.salt_diffusivity)
    assert by["Salt x3"].config.physics.electrolyte.salt_diffusivity == el.salt_diffusivity
    both = by["Diffusivity x10 + gradient"]
    assert both.config.host.activity_top == pytest.approx(0.1) and both.config.physics.electrolyte.salt_diffusivity \
        == pytest.approx(DIFFUSIVITY_FACTOR * el.salt_diffusivity)
    # one skeleton for all: the gradient host differs only in its surface activity, falling with z
    plain, graded = by["Baseline"].host, by["Activity gradient"].host
    assert np.array_equal(plain.phase, graded.phase)
    solid = plain.phase == HOST_CONDUCTIVE
    top_layer = plain.host_layers
    assert np.allclose(graded.activity[:, :, 0][solid[:, :, 0]], plain.activity[:, :, 0][solid[:, :, 0]])
    upper = solid[:, :, top_layer]
    assert upper.any()
    assert np.allclose(graded.activity[:, :, top_layer][upper], 0.1 * plain.activity[:, :, top_layer][upper])


def test_activity_gradient_does_not_push_lithium_out_of_the_host():
    """Three seeds, 12 x 12 x 16 um host at 12 mA/cm^2 to 0.5 mAh/cm^2: a surface activity
    falling to 0.1 at the host top leaves at least as much of the lithium inside the pores: the
    mean paired gain is above -2 standard errors of the paired differences.  A gain is not
    asserted: at this size it is within the seed-to-seed noise (measured over seeds 0-7: +0.023,
    standard error 0.019, with this KMC random stream; +0.023, 0.021 with the previous one; zero
    where the host takes all the lithium, up to +0.16 where the baseline grows on top), as the
    study's 8-replica ensemble finds for the gradient alone (README).  An every-seed inequality
    held for seeds 0-2 of the previous stream only (its seed 5 reversed it, -0.063)."""
    base, grad = [], []
    for seed in (0, 1, 2):
        cfg, plan = _plan([f"seed={seed}"])
        for c in plan.cases:
            if c.protocol_label in ("Baseline", "Activity gradient"):
                r = run_case(c.config_for(cfg), c.host, c.segments, c.seed, c.slug)
                assert r.summary[col.CHARGE_ERROR] < 1.0
                (base if c.protocol_label == "Baseline" else grad).append(remedy_row(r, c)[INSIDE_FRACTION])
    gain = np.array(grad) - np.array(base)
    assert gain.mean() > -2.0 * gain.std(ddof=1) / np.sqrt(gain.size), (base, grad)


def test_first_growth_above_and_fill_profile_on_hand_built_rows():
    rows = [{col.LITHIUM: 0.0, col.LITHIUM_ABOVE: 0.0, col.PLATED_CAP: 0.0},
            {col.LITHIUM: 1.0, col.LITHIUM_ABOVE: 0.005, col.PLATED_CAP: 1.0},
            {col.LITHIUM: 2.0, col.LITHIUM_ABOVE: 0.05, col.PLATED_CAP: 2.0}]
    assert first_growth_above(rows) == 2.0
    assert np.isnan(first_growth_above(rows[:2]))
    host = np.full((2, 2, 4), ELECTROLYTE, np.uint8)
    host[:, :, 0] = HOST_CONDUCTIVE
    host[0, :, 1] = HOST_CONDUCTIVE  # layer 1: half host
    phase = host.copy()
    phase[1, 0, 1] = LITHIUM  # one of layer 1's two pore voxels
    phase[:, :, 2] = LITHIUM  # layer 2 full
    assert np.allclose(lithium_fill_profile(phase, host), [0.0, 0.5, 1.0, 0.0])


def test_command_writes_profile_summary_and_figures(tmp_path):
    out = tmp_path / "td"
    args = ["top_deposition", "--out", str(out), "--no-progress", "--workers", "1"]
    for s in SMALL + ["protocol.capacity_mAh_cm2=0.15"]:
        args += ["--set", s]
    assert main(args) == 0
    for name in ("summary.csv", "depth_profile.csv", "timeseries.csv", "depth_profile.png", "cross_sections.png",
                 "host.json"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["Protocol"] for r in rows] == ["Baseline", "Salt x3", "Diffusivity x10", "Activity gradient",
                                             "Diffusivity x10 + gradient"]
    for r in rows:
        assert 0.0 <= float(r[INSIDE_FRACTION]) <= 1.0
