"""``python -m kmc validate`` (kmc/studies/validate.py): the comparison arithmetic (unit-sum
profiles, their L1 distance and its bootstrap CI, the tolerances' pass/fail) and a tiny
end-to-end run writing validation.csv, the figures and the verdict."""
import csv

import numpy as np
import pytest

from continuum.constants import ELECTROLYTE, FARADAY, LITHIUM
from kmc import make_config
from kmc.cli import main
from kmc.coupling import columns as col
from kmc.coupling.config import ConfigError
from kmc.studies import get_study
from kmc.studies.base import run_study
from kmc.studies.validate import (
    FILM_LAYERS,
    INSIDE_FRACTION,
    MEAN_HEIGHT,
    PROFILE_L1,
    Validate,
    depth_profile,
    judge,
    l1_distance,
    lithium_film,
    normalised,
    packet_interface_energy,
    profile_l1_with_ci,
)


def test_depth_profile_counts_lithium_per_layer_to_unit_sum():
    phase = np.full((4, 2, 5), ELECTROLYTE, np.uint8)
    phase[:, :, 1] = LITHIUM  # 8 voxels
    phase[:2, :, 2] = LITHIUM  # 4
    np.testing.assert_allclose(depth_profile(phase), [0, 8 / 12, 4 / 12, 0, 0])
    np.testing.assert_array_equal(normalised(np.zeros(3)), np.zeros(3))


def test_l1_of_unit_sum_profiles():
    assert l1_distance([0.5, 0.5, 0], [0.5, 0.5, 0]) == 0.0
    assert l1_distance([1, 0, 0], [0, 0, 1]) == 2.0  # disjoint
    # a quarter of the lithium one layer up: 0.25 leaves one layer and arrives in the next
    assert l1_distance([0.5, 0.5, 0], [0.5, 0.25, 0.25]) == pytest.approx(0.5)


def test_profile_l1_ci_brackets_the_estimate_and_shrinks_to_it_without_spread():
    pf = np.array([0.2, 0.5, 0.3])
    same = np.tile([0.3, 0.4, 0.3], (8, 1))
    est, lo, hi = profile_l1_with_ci(same, pf)
    assert est == pytest.approx(0.2) and lo == pytest.approx(0.2) and hi == pytest.approx(0.2)
    rng = np.random.default_rng(1)
    noisy = np.array([normalised(p) for p in same + rng.uniform(0, 0.1, same.shape)])
    est, lo, hi = profile_l1_with_ci(noisy, pf)
    assert lo <= est <= hi and hi - lo > 0.01
    assert profile_l1_with_ci(noisy, pf) == (est, lo, hi)  # fixed bootstrap seed


def test_pass_fail_against_the_acceptance_tolerances():
    # mean height: 5 % of the KMC mean, relative
    assert judge(MEAN_HEIGHT, 10.0, 10.4) == (pytest.approx(0.4), pytest.approx(0.5), True)
    assert judge(MEAN_HEIGHT, 10.0, 9.4)[2] is False
    # inside fraction: 0.05 absolute
    assert judge(INSIDE_FRACTION, 0.80, 0.84)[2] is True
    assert judge(INSIDE_FRACTION, 0.80, 0.86)[2] is False
    # L1: the distance itself against 0.05
    assert judge(PROFILE_L1, 0.0, 0.049) == (0.049, 0.05, True)
    assert judge(PROFILE_L1, 0.0, 0.051)[2] is False


def test_bad_options_are_named():
    with pytest.raises(ConfigError, match="replicas"):
        Validate(1)
    with pytest.raises(ConfigError, match="i0-roughness"):
        Validate(2, 0.0)
    cfg = make_config({}, get_study("validate").overrides + ["model=phasefield"])
    with pytest.raises(ConfigError, match="validate runs both models"):
        Validate(2).plan(cfg, np.random.SeedSequence(0))


def test_plan_gives_every_replica_its_stream_and_the_phase_field_its_config():
    study = Validate(3, i0_roughness=3.8)
    cfg = make_config({}, study.overrides)
    plan = study.plan(cfg, np.random.SeedSequence(0))
    assert len(plan.cases) == 3 * (3 + 1)
    assert len({tuple(c.seed.spawn_key) for c in plan.cases}) == len(plan.cases)
    pf = [c for c in plan.cases if c.config.model == "phasefield"]
    assert [c.protocol_label for c in pf] == ["Reaction-limited, phase field"] * 2 + ["Transport-limited, phase field"]
    for c in pf:
        assert c.config.snapshots == 1
        assert c.config.physics.kinetics.exchange_current_density == pytest.approx(
            3.8 * cfg.physics.kinetics.exchange_current_density)
    # the KMC replicas: the lattice's roughening point, a bond of 4 K_R = 1.63 thermal voltages
    kmc = [c for c in plan.cases if c.config.model == "kmc"]
    assert len(kmc) == 9
    for c in kmc:
        shift = 2 * c.config.kmc.interface_energy_J_m2 * cfg.physics.lithium_molar_volume / (FARADAY * 1e-6)
        assert shift * cfg.physics.f == pytest.approx(4 * 0.4074)
        assert c.config.physics == cfg.physics
    assert Validate(3, kmc_interface_energy=0).kmc_config(cfg, 1e-6) is None  # the study's own config
    assert Validate(3, kmc_interface_energy=7.0).kmc_config(cfg, 1e-6).kmc.interface_energy_J_m2 == 7.0
    # both models plate the foil on FILM_LAYERS of lithium, the porous host bare
    foil, porous = plan.hosts["Planar foil"].phase, plan.hosts["Porous host"].phase
    assert (foil[:, :, 1:1 + FILM_LAYERS] == LITHIUM).all() and (foil[:, :, 1 + FILM_LAYERS:] == ELECTROLYTE).all()
    assert not (porous == LITHIUM).any()
    # the transport-limited current is 0.9 of the foil's 1D limit, above the reaction-limited one
    j = {c.protocol_label: -c.segments[0].current_density for c in plan.cases}
    assert j["Transport-limited, phase field"] > 10 * j["Reaction-limited, phase field"]


def test_packet_interface_energy_is_155_J_m2_at_1_um_and_scales_with_the_voxel():
    cfg = make_config({}, [])
    assert packet_interface_energy(cfg.physics, 1e-6) == pytest.approx(155.37, rel=1e-3)  # 298.15 K
    assert packet_interface_energy(cfg.physics, 0.5e-6) == pytest.approx(0.5 * packet_interface_energy(cfg.physics, 1e-6))
    with pytest.raises(ConfigError, match="kmc-interface-energy"):
        Validate(2, kmc_interface_energy=-1.0)


def test_a_lithium_film_that_does_not_fit_is_named():
    cfg = make_config({}, get_study("validate").overrides)
    foil = cfg.host.model_copy(update={"kind": "planar_foil"}).build(0)
    assert (lithium_film(foil, 3).phase == LITHIUM).sum() == 3 * 40 * 2
    with pytest.raises(ConfigError, match="lithium film of 40 layers"):
        lithium_film(foil, 40)


def test_a_paid_step_at_open_circuit_never_plates_past_the_segments_charge():
    """Galvanostat.reduction_cap at target 0 (the KMC ahead of the applied charge) near the end
    of the last plating segment: its open-circuit exchange may not plate more than the segment
    still owes (before the fix it allowed 5 sigma of the exchange; one validate replica ended 3
    packets over, 1.36 %)."""
    from kmc.coupling.galvanostat import Galvanostat

    q = 1e-3
    g = Galvanostat(footprint=1.0, packet_charge=q, exchange_current_density=10.0, spacing=1e-6,
                    compliance_potential=-1.0)
    applied = -q / 5.0  # a packet per 5 s
    g.record_step(applied, 100.0, -23 * q, capped=False)  # 20 packets applied, 23 plated: 3 ahead
    assert g.target_current(applied, 5.0) == 0.0
    # 15 s left: 3 more packets applied, 3 already plated in advance: nothing more may plate
    assert g.reduction_cap(applied, 0.0, 5.0, final=False, segment_left=15.0, active_faces=400) == 0
    # 30 s left: 6 applied, 3 ahead: 3 more
    assert g.reduction_cap(applied, 0.0, 5.0, final=False, segment_left=30.0, active_faces=400) == 3
    # not the last plating segment: the open-circuit bound (5 sigma of the exchange)
    assert g.reduction_cap(applied, 0.0, 5.0, final=False, segment_left=None, active_faces=400) > 3


# 32 x 2 x 7 voxels, 0.35 mAh/cm^2 (109 packets) at 40 mA/cm^2 in both "regimes", a 1 um
# interface: seconds, not physics.
TINY = ["host.nx=32", "host.host_layers=2", "host.reservoir_layers=4", "protocol.capacity_mAh_cm2=0.35",
        "protocol.current_density_mA_cm2=40", "phasefield.interface_width_um=1.0", "phasefield.tol_xi=0.01"]


@pytest.mark.slow  # the phase field's three cases: 30-55 s each on the shared 2 cores (the KMC's: 2 s)
def test_tiny_validation_writes_the_csv_figures_and_verdict(tmp_path):
    study = Validate(2)
    cfg = make_config({}, study.overrides + TINY)
    out = tmp_path / "v"
    said = []
    results = run_study(study, cfg, out, progress=False, workers=1, echo=said.append)
    assert len(results) == 9
    with open(out / "validation.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    quantities = {(r["Host"], r["Regime"], r["Quantity"]) for r in rows}
    for host, regime in [("Planar foil", "Reaction-limited"), ("Porous host", "Reaction-limited"),
                         ("Planar foil", "Transport-limited")]:
        assert (host, regime, MEAN_HEIGHT) in quantities and (host, regime, PROFILE_L1) in quantities
    assert ("Porous host", "Reaction-limited", INSIDE_FRACTION) in quantities
    assert ("Planar foil", "Reaction-limited", INSIDE_FRACTION) not in quantities  # a foil has no inside
    for r in rows:
        if r["Pass"] in ("PASS", "FAIL"):
            ok = (abs(float(r["Difference"])) <= float(r["Tolerance"]) if r["Quantity"] != PROFILE_L1
                  else float(r["Phase field"]) <= float(r["Tolerance"]))
            assert (r["Pass"] == "PASS") == ok
            if r["Quantity"] == MEAN_HEIGHT:  # the KMC column is the replicas' mean
                kmc = [results[f"{r['Host']} | {r['Regime']}, KMC replica {i}"].summary[col.MEAN_HEIGHT]
                       for i in range(2)]
                assert float(r["KMC mean"]) == pytest.approx(np.mean(kmc))
                assert float(r["KMC CI95 low"]) <= float(r["KMC mean"]) <= float(r["KMC CI95 high"])
    for name in ("cross_sections.png", "depth_profile.png", "versus_capacity.png", "summary.csv"):
        assert (out / name).stat().st_size > 0
    verdict = next(s for s in said if s.startswith("Validation:"))
    assert verdict.startswith("Validation: 2 KMC replicas") and "Acceptance (reaction-limited, 5 checks): " in verdict


def test_cli_refuses_one_replica_before_writing(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["validate", "--replicas", "1", "--out", str(out), "--no-progress"]) == 2
    assert "replicas" in capsys.readouterr().err and not out.exists()
