"""``python -m kmc validate`` (kmc/studies/validate.py): the comparison arithmetic (unit-sum
profiles, their L1 distance and its bootstrap CI, the tolerances' pass/fail) and a tiny
end-to-end run writing validation.csv, the figures and the verdict."""
import csv
import json

import numpy as np
import pytest

from continuum.constants import ELECTROLYTE, FARADAY, HOST_CONDUCTIVE, LITHIUM
from kmc import make_config
from kmc.cli import main
from kmc.coupling import columns as col
from kmc.coupling.config import ConfigError
from kmc.studies import get_study
from kmc.studies.base import AcceptanceError, run_study
from kmc.studies.ensemble import describe
from kmc.studies.validate import (
    CAPPED_TOP,
    CENTRE_HEIGHT,
    FILM_LAYERS,
    INSIDE_FRACTION,
    MEAN_HEIGHT,
    POROUS_NY,
    PROFILE_L1,
    Validate,
    acceptance_failure,
    capacity_curves,
    compare_group,
    depth_profile,
    format_verdict,
    judge,
    l1_distance,
    lithium_film,
    normalised,
    packet_interface_energy,
    plot_capacity_curves,
    profile_l1_with_ci,
    replicas_to_resolve,
    sampling_l1,
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


def test_sampling_l1_is_the_mean_profiles_expected_sampling_error():
    # replicas = a profile plus independent Gaussian noise per layer: the mean of N is off by
    # sigma / sqrt(N) per layer, so E L1(mean, truth) = sqrt(2 / pi) sum(sigma) / sqrt(N)
    rng = np.random.default_rng(3)
    truth = np.full(10, 0.1)
    sigma = np.linspace(0.005, 0.05, 10)
    n = 8
    expected = np.sqrt(2 / np.pi) * sigma.sum() / np.sqrt(n)
    estimates = [sampling_l1(truth + sigma * rng.standard_normal((n, 10)), n_boot=400, seed=k) for k in range(150)]
    # the sample's sd is biased low by c4(8) = 0.965; 150 ensembles put the mean's SE near 2 %
    assert np.mean(estimates) == pytest.approx(0.965 * expected, rel=0.08)
    assert sampling_l1(np.tile(truth, (n, 1))) == 0.0  # no spread, no sampling error
    # four times the replicas halve it: 0.08 at 8 replicas is 0.025 (half of 0.05) at 82
    assert replicas_to_resolve(0.08, 8, 0.05) == 82
    assert replicas_to_resolve(0.02, 8, 0.05) == 6


def test_verdict_says_when_the_replicas_cannot_resolve_the_l1_tolerance():
    def l1_row(host, sampling, n=8):
        return {"Host": host, "Regime": "Reaction-limited", "Quantity": PROFILE_L1, "n": n, "KMC mean": 0.2,
                "KMC CI95 low": 0.1, "KMC CI95 high": 0.3, "Phase field": 0.2, "Difference": 0.2,
                "Tolerance": 0.05, "Pass": "FAIL", "Acceptance": True, "KMC sampling L1": sampling}

    text = format_verdict([l1_row("Porous host", 0.08), l1_row("Planar foil", 0.02)], 8, 1.0)
    assert "Porous host: at 8 replicas sampling alone gives L1 ~ 0.080" in text
    assert "from about 82 replicas" in text
    assert "Planar foil: at 8" not in text  # 0.02 is under half the tolerance: resolved
    assert text.startswith("Validation: 8 KMC replicas (mean")
    # a host with its own replica count says so, and its resolution is counted from it
    text = format_verdict([l1_row("Porous host", 0.02), l1_row("Planar foil", 0.04, n=24)], 8, 1.0)
    assert text.startswith("Validation: 8 KMC replicas (planar foil reaction-limited: 24) (mean")
    assert "Planar foil: at 24 replicas sampling alone gives L1 ~ 0.040" in text and "from about 62 replicas" in text

    def height_row(host, low, high):  # KMC mean 5.5 um: tolerance 0.275 um
        return {"Host": host, "Regime": "Reaction-limited", "Quantity": MEAN_HEIGHT, "n": 8, "KMC mean": 5.5,
                "KMC CI95 low": low, "KMC CI95 high": high, "Phase field": 6.3, "Difference": 0.8,
                "Tolerance": 0.275, "Pass": "FAIL", "Acceptance": True}

    # the 40 x 2 slab's +-0.45 um is 3.3x half the tolerance: 8 x 3.3^2 = 86 replicas
    text = format_verdict([height_row("Porous host", 5.05, 5.95), height_row("Planar foil", 5.4, 5.6)], 8, 1.0)
    assert "Porous host: the KMC's mean height is known to +-0.45 um" in text and "from about 86 replicas" in text
    assert "Planar foil: the KMC's mean height" not in text  # +-0.1 um is under half of 0.275 um


def test_a_failed_acceptance_is_one_line_naming_its_checks():
    def row(host, quantity, verdict, acceptance=True):
        return {"Host": host, "Quantity": quantity, "Pass": verdict, "Acceptance": acceptance}

    passed = [row("Planar foil", MEAN_HEIGHT, "PASS"), row("Porous host", PROFILE_L1, "PASS"),
              row("Planar foil", PROFILE_L1, "FAIL", acceptance=False)]  # the transport limit: not judged
    assert acceptance_failure(passed) is None
    failed = passed + [row("Porous host", MEAN_HEIGHT, "FAIL"), row("Porous host", INSIDE_FRACTION, "FAIL")]
    assert acceptance_failure(failed) == ("validation acceptance FAIL, 2 of 4 checks: Porous host Mean height; "
                                          "Porous host Lithium inside fraction")
    text = format_verdict([{**r, "Regime": "Reaction-limited", "n": 8, "KMC mean": 1.0, "KMC CI95 low": 0.9,
                            "KMC CI95 high": 1.1, "Phase field": 1.0, "Difference": 0.0, "Tolerance": 0.05,
                            "KMC sampling L1": 0.0} for r in failed], 8, 1.0)
    assert ("Acceptance (reaction-limited, 4 checks): FAIL (2: Porous host Mean height; Porous host Lithium inside "
            "fraction)") in text


def test_validate_on_a_scheduler_runs_its_own_cases_there(tmp_path, monkeypatch):
    """--scheduler sends validate's cases, with its options, to Dask through run_study (which
    writes the verdict), not one default replica through the ensemble path."""
    import kmc.cli
    import kmc.studies

    seen = {}

    def run_study(study, config, out, **kw):
        seen.update(study=study, scheduler=kw["scheduler"])
        return {}

    monkeypatch.setattr(kmc.studies, "run_study", run_study)
    monkeypatch.setattr(kmc.cli, "_check_scheduler", lambda address: None)  # no cluster here
    argv = ["validate", "--replicas", "3", "--face-channels", "kmc", "--scheduler", "tcp://example:8786",
            "--out", str(tmp_path / "v"), "--no-progress"]
    assert main(argv) == 0
    assert isinstance(seen["study"], Validate) and seen["scheduler"] == "tcp://example:8786"
    assert seen["study"].replicas == 3 and seen["study"].face_channels == "kmc"


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
    # the study sets the phase field's coordination from its own options: a --set is refused, not overridden
    for key, value, option in (("contact_coordination", "static", "--contact-coordination"),
                               ("front_coordination", "dynamic", "--front-coordination"),
                               ("initial_state", "lattice", "--phasefield-start"),
                               ("bond_closure", "quasi_chemical", "--bond-closure")):
        cfg = make_config({}, get_study("validate").overrides + [f"phasefield.{key}={value}"])
        with pytest.raises(ConfigError, match=f"phasefield.{key} = '{value}': validate sets it from its own "
                                              f"option; use {option} instead of --set"):
            Validate(2).plan(cfg, np.random.SeedSequence(0))
    for bad in (1, 1025, 2.5, True):
        with pytest.raises(ConfigError, match=r"--porous-ny .* out of range: a whole number of voxels in \[2, 1024\]"):
            Validate(2, porous_ny=bad)
    for bad in (1, 10001, 2.5, True):
        with pytest.raises(ConfigError, match=r"--foil-replicas .* out of range: a whole number in \[2, 10000\]"):
            Validate(2, foil_replicas=bad)


def test_the_foils_extra_replicas_take_new_streams_and_leave_the_others_theirs():
    """The reaction-limited foil runs --replicas by default (the 40 x 2 slab needed 3x); its
    replicas beyond --replicas draw the streams after every other case's, so all other cases
    keep theirs."""
    cfg = make_config({}, get_study("validate").overrides)
    assert Validate(3).foil_replicas == 3 and Validate(8).foil_replicas == 8
    same = Validate(3).plan(cfg, np.random.SeedSequence(0))
    more = Validate(3, foil_replicas=9).plan(cfg, np.random.SeedSequence(0))
    fewer = Validate(3, foil_replicas=2).plan(cfg, np.random.SeedSequence(0))
    keys = {c.label: tuple(c.seed.spawn_key) for c in same.cases}
    for plan, foil_n in ((more, 9), (fewer, 2)):
        got = {c.label: tuple(c.seed.spawn_key) for c in plan.cases}
        assert len(set(got.values())) == len(got)  # every case its own stream
        assert all(got[k] == v for k, v in keys.items() if k in got)
        foil = [c for c in plan.cases if c.host_label == "Planar foil"
                and c.protocol_label.startswith("Reaction-limited, KMC replica")]
        assert len(foil) == foil_n
        others = [c for c in plan.cases if c.config.model == "kmc" and c not in foil]
        assert len(others) == 2 * 3
    extra = [c for c in more.cases if c.label not in keys]
    assert [c.protocol_label for c in extra] == [f"Reaction-limited, KMC replica {r}" for r in range(3, 9)]


def test_the_porous_host_has_its_own_footprint_and_the_foil_the_configured_one():
    """Both 40 x 8 by default (3D hosts, their fronts 2D surfaces); --porous-ny sets the porous
    host's y extent, host.ny the foil's (host.ny=2: the old slab)."""
    cfg = make_config({}, get_study("validate").overrides)
    slab = make_config({}, get_study("validate").overrides + ["host.ny=2"])
    for ny in (2, 5):
        hosts = Validate(2, porous_ny=ny).plan(cfg, np.random.SeedSequence(0)).hosts
        assert hosts["Porous host"].phase.shape == (40, ny, 19) and hosts["Planar foil"].phase.shape == (40, 8, 19)
        hosts = Validate(2, porous_ny=ny).plan(slab, np.random.SeedSequence(0)).hosts
        assert hosts["Porous host"].phase.shape == (40, ny, 19) and hosts["Planar foil"].phase.shape == (40, 2, 19)
    porous = Validate(2).plan(cfg, np.random.SeedSequence(0)).hosts["Porous host"]
    assert porous.phase.shape == (40, POROUS_NY, 19)
    # the same host for the same seed (a validation's cases all plate one host)
    again = Validate(2).plan(cfg, np.random.SeedSequence(0)).hosts["Porous host"]
    np.testing.assert_array_equal(porous.phase, again.phase)


def test_cli_refuses_a_porous_ny_out_of_range_before_writing(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["validate", "--porous-ny", "1", "--out", str(out), "--no-progress"]) == 2
    assert "porous-ny" in capsys.readouterr().err and not out.exists()


def test_plan_gives_every_replica_its_stream_and_the_phase_field_its_config():
    study = Validate(3, i0_roughness=3.8, foil_replicas=3)
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
    assert (lithium_film(foil, 3).phase == LITHIUM).sum() == 3 * 40 * 8
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
TINY = ["host.nx=32", "host.ny=2", "host.host_layers=2", "host.reservoir_layers=4", "protocol.capacity_mAh_cm2=0.35",
        "protocol.current_density_mA_cm2=40", "phasefield.interface_width_um=1.0", "phasefield.tol_xi=0.01",
        "phasefield.refinement=1"]


@pytest.mark.slow  # the phase field's three cases: 30-55 s each on the shared 2 cores (the KMC's: 2 s)
@pytest.mark.parametrize("noise", ["off", "lattice"])
def test_tiny_validation_writes_the_csv_figures_and_verdict(tmp_path, noise):
    """Both models on tiny hosts; with the shot noise, two phase-field runs per pair whose mean
    the rows compare."""
    npf = 2 if noise == "lattice" else 1
    study = Validate(2, porous_ny=4, foil_replicas=2, phasefield_noise=noise)
    cfg = make_config({}, study.overrides + TINY)
    out = tmp_path / "v"
    said = []
    try:
        results, failure = run_study(study, cfg, out, progress=False, workers=1, echo=said.append), None
    except AcceptanceError as e:  # written first; the command then exits 1
        results, failure = e.results, str(e)
    assert len(results) == 3 * (2 + npf)
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
                label = f"{r['Host']} | {r['Regime']}, phase field"
                pf = [results[label].summary] if npf == 1 else [results[f"{label} {k}"].summary for k in range(npf)]
                assert float(r["Phase field"]) == pytest.approx(np.mean([s[col.MEAN_HEIGHT] for s in pf]))
                assert int(r["Phase-field runs"]) == npf
    for name in ("cross_sections.png", "depth_profile.png", "versus_capacity.png", "summary.csv"):
        assert (out / name).stat().st_size > 0
    verdict = next(s for s in said if s.startswith("Validation:"))
    assert verdict.startswith("Validation: 2 KMC replicas") and "Acceptance (reaction-limited, 5 checks): " in verdict
    assert (" against the mean of 2 phase-field runs" in verdict) == (npf == 2)
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "complete"
    assert (failure is None) == ("Acceptance (reaction-limited, 5 checks): PASS" in verdict)
    if failure is not None:
        assert failure.startswith("validation acceptance FAIL") and failure.startswith(status["acceptance"])


def test_cli_refuses_one_replica_before_writing(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["validate", "--replicas", "1", "--out", str(out), "--no-progress"]) == 2
    assert "replicas" in capsys.readouterr().err and not out.exists()


# -- the phase field at the KMC's interface energy (--phasefield-interface-energy match) ----------
def _matched(gamma=155.4, width=0.5e-6, extra=()):
    from kmc.coupling.phasefield_run import phasefield_constants

    cfg = make_config({}, ["model=phasefield", "phasefield.capillarity=kmc", f"kmc.interface_energy_J_m2={gamma}",
                           f"phasefield.interface_width_um={width * 1e6}", *extra])
    return cfg, phasefield_constants(cfg)


def test_matched_phase_field_has_the_kmcs_gamma_width_and_kinetics():
    from kmc.coarse_graining import capillary_mobility

    cfg, p = _matched()
    assert p.interface_energy == pytest.approx(155.4, rel=1e-12)
    assert p.profile_length == pytest.approx(0.5e-6, rel=1e-12)
    assert p.exchange_current_density == pytest.approx(cfg.physics.kinetics.exchange_current_density, rel=1e-12)
    # L_sigma = (V_m/F)^2 i0 f (alpha_a + alpha_c) / (6 l): 2.36e-12 m^3/(J s), independent of gamma
    vm, kin = cfg.physics.lithium_molar_volume, cfg.physics.kinetics
    mobility = (vm / FARADAY) ** 2 * kin.exchange_current_density * cfg.physics.f * (kin.alpha_a + kin.alpha_c)
    assert capillary_mobility(cfg.physics) == pytest.approx(mobility, rel=1e-12)
    assert p.interface_mobility == pytest.approx(mobility / 3e-6, rel=1e-12)
    assert p.interface_mobility == pytest.approx(2.355e-12, rel=1e-3)
    assert _matched(gamma=10.0)[1].interface_mobility == p.interface_mobility
    # Hong's L_sigma is 1.06e6 times the KMC's Gibbs-Thomson mobility per unit gamma (6 L_sigma l)
    assert 6 * 2.5e-6 * 0.5e-6 / mobility == pytest.approx(1.06e6, rel=0.01)
    # hong2018: Hong's interface at the same width
    from kmc.coupling.phasefield_run import phasefield_constants

    hong = phasefield_constants(cfg.model_copy(update={"phasefield": cfg.phasefield.model_copy(
        update={"capillarity": "hong2018"})}))
    assert hong.interface_energy == pytest.approx(0.5) and hong.interface_mobility == 2.5e-6


def test_matched_mobility_is_the_kmc_rate_laws_linearised_gibbs_thomson_velocity():
    """The KMC's own rates (kmc.engine.rates) at the Gibbs-Thomson shift gamma V_m K / F of a
    sphere of radius 100 um: the net growth per face, h (k_red c V_m - k_ox), against the phase
    field's curvature flow -L_sigma kappa K (f d = 0.016: linearisation error ~ (f d)^2 / 24 = 1e-5)."""
    from kmc.engine.rates import RateConstants

    cfg, p = _matched()
    h, gamma, curvature = 1e-6, 155.4, 2 / 100e-6
    shift = gamma * cfg.physics.lithium_molar_volume * curvature / FARADAY
    r = RateConstants.from_parameters(cfg.physics, h)  # a kink voxel (3 bonds): no lattice shift of its own
    kmc = h * (r.implicit_reduction(shift, cfg.physics.c_ref) - r.oxidation(shift))
    assert kmc < 0  # a convex surface dissolves
    assert -p.interface_mobility * p.gradient_coefficient * curvature == pytest.approx(float(kmc), rel=1e-3)


@pytest.mark.slow  # 4 CPU-s, up to 20 s wall on the shared cores
def test_matched_phase_field_moves_a_disc_at_the_kmcs_curvature_velocity():
    """Measured, not a closed form: a 2D lithium disc (R0 = 4 um, interface 0.5 um, h = 0.2 um,
    reactions off) shrinks under the matched Allen-Cahn part at dA/dt = -2 pi L_sigma kappa, which
    the mapping sets to the KMC's -2 pi M gamma.  The sharp-interface law holds for l << R: after
    the profile has relaxed (3 / (L_sigma W)) the disc shrinks 2.4 % faster at R = 3.7 to 3.5 um
    (l/R = 0.14), 6.9 % at 2.5 to 2.2 um (the excess ~ (l/R)^2); 6 % allowed.  Hong's L_sigma
    would be 3400x off."""
    import math

    from continuum.phasefield import PhaseFieldSolver, Potentiostatic
    from continuum.phasefield.fields import order_parameter_from_mask
    from kmc.coarse_graining import capillary_mobility

    cfg, p = _matched()
    p = p.replace(kinetic_coefficient=0.0, noise_amplitude=0.0)
    h, r0 = 0.2e-6, 4e-6
    n = round(4 * r0 / h)  # periodic: the disc's images 16 um apart
    x = (np.arange(n) + 0.5) * h - n * h / 2
    disc = (x[:, None] ** 2 + x[None, :] ** 2 < r0**2)[:, None, :]
    phase = np.full((n, 1, n), ELECTROLYTE, np.uint8)
    s = PhaseFieldSolver(phase, h, p, xi=order_parameter_from_mask(phase, disc, h, p))
    s.advance(3.0 / (p.interface_mobility * p.barrier_height), Potentiostatic(0.0))  # the profile relaxes
    area, t0 = s.order_parameter.sum() * h * h, s.t
    s.advance(0.05 * r0**2 / (p.interface_mobility * p.gradient_coefficient), Potentiostatic(0.0))
    rate = (s.order_parameter.sum() * h * h - area) / (s.t - t0)
    assert rate == pytest.approx(-2 * math.pi * capillary_mobility(cfg.physics) * 155.4, rel=0.06)


def test_phasefield_interface_energy_option_sets_the_phase_field_cases_and_names_bad_values():
    from kmc.coupling.phasefield_run import phasefield_constants

    cfg = make_config({}, get_study("validate").overrides)
    for setting, capillarity in (("match", "kmc"), ("hong", "hong2018")):
        plan = Validate(2, phasefield_interface_energy=setting).plan(cfg, np.random.SeedSequence(0))
        (kmc_gamma,) = {c.config.kmc.interface_energy_J_m2 for c in plan.cases if c.config.model == "kmc"}
        assert kmc_gamma == pytest.approx(155.37, rel=1e-3)
        for c in (c for c in plan.cases if c.config.model == "phasefield"):
            assert c.config.phasefield.capillarity == capillarity
            gamma = phasefield_constants(c.config).interface_energy
            assert gamma == pytest.approx(kmc_gamma if setting == "match" else 0.5, rel=1e-9)
    assert Validate(2).phasefield_interface_energy == "match"  # the default: like for like
    with pytest.raises(ConfigError, match="phasefield-interface-energy 'kmc'"):
        Validate(2, phasefield_interface_energy="kmc")
    # match needs a KMC interface energy to take
    with pytest.raises(ConfigError, match="match takes the KMC replicas' interface energy"):
        Validate(2, kmc_interface_energy=0).plan(cfg, np.random.SeedSequence(0))
    Validate(2, kmc_interface_energy=0, phasefield_interface_energy="hong").plan(cfg, np.random.SeedSequence(0))
    # the config: capillarity=kmc without a KMC interface energy, and an unknown value
    with pytest.raises(ConfigError, match="kmc.interface_energy_J_m2 = 0.0: set it > 0"):
        phasefield_constants(make_config({}, ["model=phasefield", "phasefield.capillarity=kmc"]))
    with pytest.raises(ConfigError, match="capillarity"):
        make_config({}, ["phasefield.capillarity=chen"])


def test_match_gives_the_wetting_layer_the_kmcs_coordination_shift_and_match_front_does_not():
    from kmc.coarse_graining import contact_coordination_shift
    from kmc.coupling.phasefield_run import (
        check_phasefield_case,
        coordination_bond_shift,
        host_nucleation_overpotential,
    )

    cfg = make_config({}, get_study("validate").overrides)
    for setting, mode, expect in (("match", "static", "static"), ("match", "dynamic", "dynamic"),
                                  ("match-front", "dynamic", "off")):
        plan = Validate(2, phasefield_interface_energy=setting, porous_ny=3,
                        contact_coordination=mode).plan(cfg, np.random.SeedSequence(0))
        case = next(c for c in plan.cases if c.host_label == "Porous host" and c.config.model == "phasefield")
        assert case.config.phasefield.contact_coordination == expect and case.config.phasefield.capillarity == "kmc"
        eta_nuc = host_nucleation_overpotential(case.config, case.host)
        delta = 2 * case.config.kmc.interface_energy_J_m2 * cfg.physics.lithium_molar_volume / (FARADAY * 1e-6)
        assert coordination_bond_shift(case.config, case.host) == pytest.approx(delta if expect != "off" else 0.0,
                                                                            rel=1e-12)
        static = expect == "static"  # dynamic: the phase field's own shift per contact, eta_nuc the host's
        expected = case.host.eta_nuc + (contact_coordination_shift(case.host.phase, delta) if static else 0.0)
        np.testing.assert_allclose(eta_nuc, expected, rtol=1e-12, atol=1e-15)
    assert eta_nuc is case.host.eta_nuc  # off: the host's own
    # static: a host voxel whose contacts all lie on flat faces nucleates at 40 mV + 2 delta = 124 mV
    # (true reads as static, false as off: older configurations)
    on = host_nucleation_overpotential(make_config(case.config.model_dump(mode="json"),
                                                   ["phasefield.contact_coordination=true"]), case.host)
    assert on.max() == pytest.approx(0.04 + 2 * delta, rel=1e-9)
    assert make_config({}, ["phasefield.contact_coordination=false"]).phasefield.contact_coordination == "off"
    with pytest.raises(ConfigError, match="contact_coordination"):
        make_config({}, ["phasefield.contact_coordination=sometimes"])
    with pytest.raises(ConfigError, match="contact-coordination"):
        Validate(2, contact_coordination="sometimes")
    # dynamic: the run's phase field counts bonds per lattice voxel (bond_cell = refinement) at the KMC's delta
    from kmc.coarse_graining import first_voxel_shift, refine
    from kmc.coupling.phasefield_run import PhaseFieldRun

    dyn = make_config(case.config.model_dump(mode="json"), ["phasefield.contact_coordination=dynamic",
                                                             "phasefield.refinement=2"])
    run = PhaseFieldRun(dyn, case.host)
    g = run.solver.geo
    assert run.params.contact_bond_shift == pytest.approx(delta, rel=1e-12) and g.contact.any()
    x, y, z = np.unravel_index(g.free, run.solver.phase.shape)  # each cell's lattice voxel
    assert np.array_equal(g._bonds.cell_of, np.ravel_multi_index((x // 2, y // 2, z // 2), case.host.phase.shape))
    # at the start the contacts' neighbours hold the rest layer and its halo: lithium only adds bonds
    bare = refine(first_voxel_shift(case.host.phase, delta), 2).ravel()[g.free][g.contact]
    assert np.all(g.coordination_shift[g.contact] <= bare + 1e-15)
    # the shift needs the KMC's interface energy
    for mode in ("static", "dynamic"):
        bad = make_config({}, ["model=phasefield", f"phasefield.contact_coordination={mode}"])
        with pytest.raises(ConfigError, match="takes the KMC's coordination shift"):
            check_phasefield_case(bad, case.host, case.segments, "porous")


def test_front_coordination_gives_every_phasefield_voxel_the_kmcs_shift_with_match_only():
    """--front-coordination dynamic: the porous phase-field case runs with
    ``phasefield.front_coordination = "dynamic"`` (match only; match-front and hong keep it
    off), its solver's front shift per bond is the KMC's delta, counted on every free voxel per
    lattice voxel; on by default; a bad value or no KMC interface energy is a ConfigError."""
    from kmc.coupling.phasefield_run import PhaseFieldRun, check_phasefield_case

    cfg = make_config({}, get_study("validate").overrides)
    delta = 2 * packet_interface_energy(cfg.physics, 1e-6) * cfg.physics.lithium_molar_volume / (FARADAY * 1e-6)
    for setting, mode, expect in (("match", "dynamic", "dynamic"), ("match", "off", "off"),
                                  ("match-front", "dynamic", "off"), ("hong", "dynamic", "off")):
        plan = Validate(2, phasefield_interface_energy=setting, porous_ny=3,
                        front_coordination=mode).plan(cfg, np.random.SeedSequence(0))
        case = next(c for c in plan.cases if c.host_label == "Porous host" and c.config.model == "phasefield")
        assert case.config.phasefield.front_coordination == expect
    assert Validate(2).front_coordination == "dynamic"
    plan = Validate(2, porous_ny=3, front_coordination="dynamic").plan(cfg, np.random.SeedSequence(0))
    case = next(c for c in plan.cases if c.host_label == "Porous host" and c.config.model == "phasefield")
    host = case.host
    run = PhaseFieldRun(make_config(case.config.model_dump(mode="json"), ["phasefield.refinement=1"]), host)
    assert run.params.front_bond_shift == pytest.approx(delta, rel=1e-12)
    assert run.solver.geo._bonds.touch.all()  # every free voxel counts its bonds
    assert np.ptp(run.solver.geo.front_cathodic) > 0  # host corners and walls differ from open cells
    with pytest.raises(ConfigError, match="front-coordination"):
        Validate(2, front_coordination="sometimes")
    bad = make_config({}, ["model=phasefield", "phasefield.front_coordination=dynamic"])
    with pytest.raises(ConfigError, match="front_coordination = 'dynamic' takes the KMC's coordination shift"):
        check_phasefield_case(bad, host, plan.cases[0].segments, "porous")


def _phasefield_settings(field: str, **options) -> set:
    """The values of ``phasefield.<field>`` over the phase-field cases of a small study plan."""
    cfg = make_config({}, get_study("validate").overrides)
    plan = Validate(2, porous_ny=3, **options).plan(cfg, np.random.SeedSequence(0))
    return {getattr(c.config.phasefield, field) for c in plan.cases if c.config is not None
            and c.config.model == "phasefield"}


def test_the_phase_field_starts_from_the_kmcs_empty_lattice_by_default():
    """--phasefield-start lattice (the default): every phase-field case starts as the KMC's
    lattice does, the bare host's free voxels empty (phasefield.initial_state = "lattice"); rest
    gives the wetting layer's rest coverage back; a bad value is a ConfigError."""
    for options, expect in (({}, "lattice"), ({"phasefield_start": "rest"}, "rest"),
                            ({"phasefield_interface_energy": "hong"}, "lattice")):
        assert _phasefield_settings("initial_state", **options) == {expect}
    with pytest.raises(ConfigError, match="--phasefield-start 'bare': must be one of lattice, rest"):
        Validate(2, phasefield_start="bare")


def test_bond_closure_reaches_the_matched_phase_field_only():
    """--bond-closure quasi_chemical (the default): the phase-field cases count their bonds by
    Bethe's pair closure (phasefield.bond_closure) with 'match'; 'hong' has no coordination and
    keeps mean_field; mean_field on request; a bad value is a ConfigError."""
    for options, expect in (({}, "quasi_chemical"), ({"bond_closure": "mean_field"}, "mean_field"),
                            ({"phasefield_interface_energy": "hong"}, "mean_field")):
        assert _phasefield_settings("bond_closure", **options) == {expect}
    from kmc.coupling.phasefield_run import PhaseFieldRun

    cfg = make_config({}, get_study("validate").overrides)
    plan = Validate(2, porous_ny=3).plan(cfg, np.random.SeedSequence(0))
    case = next(c for c in plan.cases if c.host_label == "Porous host" and c.config.model == "phasefield")
    run = PhaseFieldRun(make_config(case.config.model_dump(mode="json"), ["phasefield.refinement=1"]), case.host)
    assert run.params.bond_closure == "quasi_chemical" and run.solver.geo._bonds.quasi_chemical
    with pytest.raises(ConfigError, match="--bond-closure 'pairs': must be one of mean_field, quasi_chemical"):
        Validate(2, bond_closure="pairs")


def test_face_channels_reach_the_matched_phase_field_only():
    """--face-channels kmc: the phase-field cases carry the KMC's face channels
    (phasefield.face_channels) with 'match'; off by default and with 'hong'; they need both
    coordinations dynamic, in the study's options and in the configuration; a bad value is a
    ConfigError."""
    for options, expect in (({}, "off"), ({"face_channels": "kmc"}, "kmc"),
                            ({"face_channels": "kmc", "phasefield_interface_energy": "hong"}, "off")):
        assert _phasefield_settings("face_channels", **options) == {expect}
    from kmc.coupling.phasefield_run import PhaseFieldRun

    cfg = make_config({}, get_study("validate").overrides)
    plan = Validate(2, porous_ny=3, face_channels="kmc").plan(cfg, np.random.SeedSequence(0))
    case = next(c for c in plan.cases if c.host_label == "Porous host" and c.config.model == "phasefield")
    run = PhaseFieldRun(make_config(case.config.model_dump(mode="json"), ["phasefield.refinement=1"]), case.host)
    assert run.params.face_channels and run.solver.geo._bonds.face_channels
    with pytest.raises(ConfigError, match="--face-channels 'all': must be one of off, kmc"):
        Validate(2, face_channels="all")
    for other in ({"front_coordination": "off"}, {"contact_coordination": "static"}):
        with pytest.raises(ConfigError, match="--face-channels kmc needs --front-coordination dynamic and "
                                              "--contact-coordination dynamic"):
            Validate(2, face_channels="kmc", **other)
    with pytest.raises(ConfigError, match="phasefield.face_channels = 'kmc' needs phasefield.contact_coordination "
                                          "and phasefield.front_coordination = 'dynamic'"):
        make_config({}, ["phasefield.face_channels=kmc", "phasefield.contact_coordination=dynamic"])


def test_cli_refuses_an_unknown_phasefield_interface_energy_before_writing(tmp_path, capsys):
    out = tmp_path / "v"
    with pytest.raises(SystemExit) as exit_:  # argparse's choices: usage error, exit 2
        main(["validate", "--phasefield-interface-energy", "kmc", "--out", str(out), "--no-progress"])
    assert exit_.value.code == 2
    assert "phasefield-interface-energy" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("refinement", [1, 3])
def test_the_foils_film_starts_whole_on_a_refined_grid(refinement):
    """The film is lithium on the collector, metal on metal: its profile starts at the film's top
    only (before, the collector counted as an interface and a relaxed 2-voxel film held 115 of 160
    voxels at refinement 3, 230 at 2)."""
    from kmc.coupling.phasefield_run import PhaseFieldRun
    from kmc.coupling.streams import root_sequence

    study = Validate(2)
    cfg = make_config({}, study.overrides + [f"phasefield.refinement={refinement}"])
    plan = study.plan(cfg, root_sequence(cfg.seed))
    case = next(c for c in plan.cases if c.host_label == "Planar foil" and c.config.model == "phasefield")
    run = PhaseFieldRun(case.config_for(cfg), case.host, case.seed)
    assert run.lithium_voxels() / (40 * 8) == pytest.approx(FILM_LAYERS, abs=1 / 80)  # per footprint voxel
    assert run.rows[0][col.MEAN_HEIGHT] == pytest.approx(FILM_LAYERS, abs=0.05)


def test_a_kmc_replica_above_its_roughening_point_keeps_pace_with_the_galvanostat():
    """Seed 0's reaction-limited foil replica 17 at 190.7 J/m^2 (K = 0.5, above the lattice's
    roughening point; 51 mV per bond): the KMC passes a third of the charge its Butler-Volmer
    fields are set to over the segment, a seventh while its front is flat.  With the fields' target capped at twice
    the applied current it fell behind by 128 packets and ended on a charge shortfall at
    2860 s, 4.2 % off the applied charge; with the cap raised to let the KMC pass 1.5x the
    applied current at its measured efficiency (`Galvanostat.efficiency`) it keeps within 3 %
    of the capacity all along and ends on its charge within 5 % of the nominal end (1440 s)."""
    from kmc.coupling.streams import root_sequence
    from kmc.studies.base import run_case
    from kmc.studies.validate import FOIL, KMC_TAG, REACTION, STUDY_OVERRIDES

    cfg = make_config({}, list(STUDY_OVERRIDES) + ["seed=0", "host.ny=2"])  # the 40 x 2 slab it was found on
    plan = Validate(8, kmc_interface_energy=190.7, foil_replicas=24).plan(cfg, root_sequence(cfg.seed))
    case = next(c for c in plan.cases if c.host_label == FOIL and c.protocol_label == f"{REACTION}, {KMC_TAG} 17")
    res = run_case(case.config_for(cfg), case.host, case.segments, case.seed, case.slug)
    assert res.summary[col.CHARGE_ERROR] < 0.1
    assert res.summary[col.SEGMENTS_ENDED_BY] == "charge"
    rows = res.rows[1:]
    capacity = rows[-1][col.APPLIED_CAP]
    lag = max(r[col.APPLIED_CAP] - r[col.PLATED_CAP] for r in rows)
    assert lag < 0.03 * capacity  # 2.2 % measured
    assert rows[-1][col.TIME] < 1.05 * 1440.0  # 1460 s measured; it ran to 2860 s before


def test_phasefield_noise_runs_an_ensemble_of_phase_fields_on_new_streams():
    """--phasefield-noise lattice: every pair gets --phasefield-replicas phase-field cases
    (default --replicas) with phasefield.shot_noise = lattice, the first on the stream the single
    run had, the others after every other case's, so the KMC replicas keep theirs; the
    PhaseFieldRun's solver kicks per lattice voxel (refinement^3 cells).  Replicas without the
    noise, a bad count or mode, or a --set of the noise are ConfigErrors naming the option."""
    from kmc.coupling.phasefield_run import PhaseFieldRun

    cfg = make_config({}, get_study("validate").overrides)
    base = Validate(3, foil_replicas=3).plan(cfg, np.random.SeedSequence(0))
    noisy = Validate(3, foil_replicas=3, phasefield_noise="lattice", phasefield_replicas=4).plan(
        cfg, np.random.SeedSequence(0))
    assert Validate(3, phasefield_noise="lattice").phasefield_replicas == 3 and Validate(3).phasefield_replicas == 1
    keys = {c.label: tuple(c.seed.spawn_key) for c in base.cases}
    got = {c.label: tuple(c.seed.spawn_key) for c in noisy.cases}
    assert len(set(got.values())) == len(got)
    for label, key in keys.items():
        if "phase field" in label:
            assert got[label + " 0"] == key and label not in got
        else:
            assert got[label] == key
    pf = [c for c in noisy.cases if c.config is not None and c.config.model == "phasefield"]
    assert len(pf) == 3 * 4 and all(c.config.phasefield.shot_noise == "lattice" for c in pf)
    assert all(c.config.phasefield.shot_noise == "off" for c in base.cases
               if c.config is not None and c.config.model == "phasefield")
    assert [c.label for c in noisy.cases[len(base.cases):]] == [
        f"{h} | {r}, phase field {k}" for h, r in (("Planar foil", "Reaction-limited"), ("Porous host", "Reaction-limited"),
                                                   ("Planar foil", "Transport-limited")) for k in (1, 2, 3)]
    case = next(c for c in pf if c.host_label == "Porous host")
    run = PhaseFieldRun(case.config, case.host)
    assert run.solver.shot_noise_cell == case.config.phasefield.refinement == 3
    assert run.solver.shot_noise_interval == case.config.phasefield.shot_noise_interval_s
    with pytest.raises(ConfigError, match="--phasefield-replicas 2: without --phasefield-noise lattice"):
        Validate(2, phasefield_replicas=2)
    with pytest.raises(ConfigError, match=r"--phasefield-replicas 0 is out of range"):
        Validate(2, phasefield_noise="lattice", phasefield_replicas=0)
    with pytest.raises(ConfigError, match="--phasefield-noise 'loud'"):
        Validate(2, phasefield_noise="loud")
    bad = make_config({}, get_study("validate").overrides + ["phasefield.shot_noise=lattice"])
    with pytest.raises(ConfigError, match="use --phasefield-noise instead of --set"):
        Validate(2).plan(bad, np.random.SeedSequence(0))


def test_profile_l1_of_a_phase_field_ensemble_compares_its_mean_and_resamples_it():
    """A phase-field ensemble's L1 is that of the two means; its interval widens with the
    ensemble's own spread and is the KMC's alone when all runs agree."""
    kmc = np.array([[0.5, 0.5, 0.0], [0.3, 0.7, 0.0], [0.4, 0.6, 0.0]])
    pf = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    est, lo, hi = profile_l1_with_ci(kmc, pf)
    assert est == pytest.approx(l1_distance(kmc.mean(axis=0), pf.mean(axis=0)), abs=1e-15)
    same = np.repeat(pf.mean(axis=0)[None, :], 2, axis=0)
    est1, lo1, hi1 = profile_l1_with_ci(kmc, same)
    assert (est1, lo1, hi1) == pytest.approx(profile_l1_with_ci(kmc, pf.mean(axis=0)), abs=1e-15)
    assert est1 == pytest.approx(est) and hi - lo > hi1 - lo1


def _stand_in_run(phase, host_phase, centres, capacities):
    """A RunResult's fields that compare_group and capacity_curves read: a final lattice, its
    host, a summary and rows of (plated capacity, mean height, inside, centre height)."""
    from types import SimpleNamespace

    li = float((phase == LITHIUM).sum())
    summary = {col.MEAN_HEIGHT: 2.0, col.LITHIUM_INSIDE: li, col.LITHIUM_ABOVE: 0.0, col.LITHIUM: li,
               **{q: 1.0 for q in (col.MAX_HEIGHT, col.RMS_ROUGHNESS, col.INTERFACE_AREA, col.MEAN_POTENTIAL)}}
    rows = [{**summary, col.PLATED_CAP: q, col.LITHIUM_CENTRE_HEIGHT: c} for q, c in zip(capacities, centres)]
    return SimpleNamespace(summary=summary, rows=rows, final_phase=phase, host=SimpleNamespace(phase=host_phase))


def test_capped_host_top_counts_the_columns_whose_host_reaches_its_top():
    """capped_host_top: the share of the columns whose host reaches the host's top layer that hold
    lithium above it; lithium over a pore or a lower column does not count, lithium inside the host
    does not, a foil has none (NaN).  validation.csv reports it (KMC mean over replicas, phase
    field) and the verdict says it."""
    from kmc.coupling.observables import capped_host_top

    host = np.full((4, 2, 7), ELECTROLYTE, np.uint8)
    host[:, :, 0] = HOST_CONDUCTIVE
    host[0, :, 1:4] = HOST_CONDUCTIVE  # two columns reach the host's top layer (z = 3)
    host[1, :, 1] = HOST_CONDUCTIVE  # two that do not
    phase = host.copy()
    phase[2:, :, 1:3] = LITHIUM  # in the pores, inside the host
    assert capped_host_top(phase, host) == 0.0
    phase[0, 0, 5] = LITHIUM  # an island above one reaching column
    phase[1, :, 4] = LITHIUM  # above the lower columns
    phase[3, 1, 4:6] = LITHIUM  # above a pore
    assert capped_host_top(phase, host) == pytest.approx(0.5)
    phase[0, 1, 4] = LITHIUM
    assert capped_host_top(phase, host) == pytest.approx(1.0)
    foil = np.full_like(host, ELECTROLYTE)
    foil[:, :, 0] = HOST_CONDUCTIVE
    assert np.isnan(capped_host_top(phase, foil))

    bare = phase.copy()
    bare[0, :, 4:] = ELECTROLYTE
    kmc = [_stand_in_run(p, host, [0.5], [0.0]) for p in (phase, bare, phase, phase)]
    pf = [_stand_in_run(bare, host, [0.5], [0.0])]
    g = {"kmc": kmc, "pf": pf, "pf_profiles": np.array([depth_profile(bare)])}
    rows = {r["Quantity"]: r for r in compare_group(("Porous host", "Reaction-limited"), g)}
    r, d = rows[CAPPED_TOP], describe([1.0, 0.0, 1.0, 1.0])
    assert r["KMC mean"] == pytest.approx(0.75) and r["KMC CI95 high"] == pytest.approx(d["CI95 high"])
    assert r["Phase field"] == 0.0 and r["Pass"] == "reported" and r["Acceptance"] is False
    assert (f"Porous host / Reaction-limited: the host's top columns with lithium above the host (reported; each "
            f"lifts the mean height by its buried depth) KMC 0.750 [{d['CI95 low']:.3f}, {d['CI95 high']:.3f}], "
            "phase field 0.000.") in format_verdict(list(rows.values()), 4, 1.0)
    g_foil = {"kmc": [_stand_in_run(phase, foil, [0.5], [0.0])] * 2, "pf": [_stand_in_run(phase, foil, [0.5], [0.0])],
              "pf_profiles": np.array([depth_profile(phase)])}
    assert CAPPED_TOP not in {q["Quantity"] for q in compare_group(("Planar foil", "Reaction-limited"), g_foil)}


def test_centre_height_is_reported_per_host_with_an_inside_and_drawn_against_capacity(tmp_path):
    """validation.csv carries the lithium's centre height in the host (each model's last row; the
    KMC's mean and t-interval over replicas; reported, not judged) for a host with an inside, and
    versus_capacity.png gets a row of it; a foil has neither (its panel says so)."""
    host = np.full((4, 2, 6), ELECTROLYTE, np.uint8)
    host[:, :, 0] = HOST_CONDUCTIVE
    host[0, :, 1:4] = HOST_CONDUCTIVE  # a wall three layers tall: an inside
    phase = host.copy()
    phase[1:, :, 1] = LITHIUM
    caps = [0.0, 0.1, 0.2]
    kmc = [_stand_in_run(phase, host, [np.nan, 0.2 + 0.1 * k, 0.3 + 0.1 * k], caps) for k in range(3)]
    pf = [_stand_in_run(phase, host, [np.nan, 0.5, 0.6], caps)]
    g = {"kmc": kmc, "pf": pf, "pf_profiles": np.array([depth_profile(phase)])}
    rows = {r["Quantity"]: r for r in compare_group(("Porous host", "Reaction-limited"), g)}
    r = rows[CENTRE_HEIGHT]
    d = describe([0.3, 0.4, 0.5])
    assert r["KMC mean"] == pytest.approx(0.4) and r["KMC CI95 low"] == pytest.approx(d["CI95 low"])
    assert r["Phase field"] == pytest.approx(0.6) and r["Difference"] == pytest.approx(0.2)
    assert r["Pass"] == "reported" and r["Acceptance"] is False
    said = format_verdict(list(rows.values()), 3, 1.0)
    assert (f"Porous host / Reaction-limited: the lithium's centre height in the host (0 collector, 1 top; reported) "
            f"KMC 0.400 [{d['CI95 low']:.3f}, {d['CI95 high']:.3f}], phase field 0.600: "
            "within the KMC's 95 % CI.") in said
    assert "phase field 0.900: higher." in format_verdict([{**r, "Phase field": 0.9}], 3, 1.0)
    assert "phase field 0.100: lower." in format_verdict([{**r, "Phase field": 0.1}], 3, 1.0)
    foil = host.copy()
    foil[0, :, 1:4] = ELECTROLYTE
    bare = _stand_in_run(phase, foil, [np.nan] * 3, caps)
    g_foil = {"kmc": [bare, bare], "pf": [bare], "pf_profiles": np.array([depth_profile(phase)])}
    assert CENTRE_HEIGHT not in {r["Quantity"] for r in compare_group(("Planar foil", "Reaction-limited"), g_foil)}
    curves = {("Porous host", "Reaction-limited"): capacity_curves(g, points=3),
              ("Planar foil", "Reaction-limited"): capacity_curves(g_foil, points=3)}
    porous = curves[("Porous host", "Reaction-limited")][CENTRE_HEIGHT]
    np.testing.assert_allclose(porous["Mean"][1:], [0.3, 0.4])  # the replicas' mean at 0.1 and 0.2 mAh/cm^2
    assert np.isnan(porous["Mean"][0])  # nothing inside yet: no value, not a zero
    np.testing.assert_allclose(porous["pf"][1], [np.nan, 0.5, 0.6])
    assert np.isnan(curves[("Planar foil", "Reaction-limited")][CENTRE_HEIGHT]["Mean"]).all()
    plot_capacity_curves(tmp_path / "versus_capacity.png", curves)
    assert (tmp_path / "versus_capacity.png").stat().st_size > 0
