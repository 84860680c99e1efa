"""The phase-field model as a run of the coupled layer (``model = "phasefield"``,
kmc/coupling/phasefield_run.py): a case through run_case and the CLI gives the KMC run's
columns, closes its charge, conserves lithium into the thresholded lattice, and refuses what it
cannot do before anything is written."""
import csv

import numpy as np
import pytest

from continuum.constants import LITHIUM
from kmc import make_config
from kmc.cli import main
from kmc.coupling import columns as col
from kmc.coupling.config import ConfigError
from kmc.coupling.phasefield_run import PhaseFieldRun
from kmc.coupling.simulation import PlatingSimulation
from kmc.coupling.waveforms import parse_step
from kmc.studies.base import run_case

# A 2 x 2 um foil at 1 um voxels.  The interface is 0.5 um wide (Hong's 0.25 um pins fronts to
# the 1 um grid, so they stick and slip and the run takes 8x the steps: 14 s instead of 2 s).
SMALL = ["model=phasefield", "host.kind=planar_foil", "host.nx=2", "host.ny=2", "host.host_layers=2",
         "host.reservoir_layers=6", "snapshots=0", "phasefield.record_interval_s=1",
         "phasefield.interface_width_um=0.5"]
STEPS = ["plate at 20 mA/cm^2 for 0.03 mAh/cm^2", "rest for 1 s", "strip at 10 mA/cm^2 for 0.01 mAh/cm^2",
         "plate at 20 mA/cm^2 for 0.01 mAh/cm^2"]


def _config(steps=STEPS, extra=()):
    return make_config({"protocol": {"kind": "schedule", "steps": list(steps)}}, SMALL + list(extra))


def _holds_supported() -> bool:
    try:
        return getattr(parse_step("hold at -150 mV for 1 s"), "held_potential", None) is not None
    except ValueError:
        return False


def test_phasefield_case_through_run_case_gives_the_kmc_columns_and_closes_its_charge():
    cfg = _config()
    host = cfg.host.build(np.random.SeedSequence(0))
    res = run_case(cfg, host, cfg.protocol.segments(), np.random.SeedSequence(1), "pf")
    kmc = PlatingSimulation(cfg.model_copy(update={"model": "kmc"}), host)
    assert [set(r) for r in res.rows] == [set(kmc.rows[0])] * len(res.rows)  # the KMC run's columns
    assert res.final_phase.shape == host.phase.shape and res.connected.dtype == bool
    last = res.rows[-1]
    # the galvanostat passes the applied charge to its root's tolerance, segment by segment
    assert res.summary[col.CHARGE_ERROR] < 1e-8
    assert [s[col.ENDED_BY] for s in res.segments] == ["charge", "duration", "charge", "charge"]
    for seg in res.segments:
        assert seg[col.PASSED_CAP] == pytest.approx(seg[col.APPLIED_CAP], abs=1e-12)
    assert last[col.PLATED_CAP] == pytest.approx(0.03, rel=1e-9)
    assert last[col.STRIPPED_CAP] == pytest.approx(0.01, rel=1e-6)
    assert last[col.APPLIED_CAP] == pytest.approx(0.03, rel=1e-9)
    assert last[col.LITHIUM] == pytest.approx(last[col.LITHIUM_INSIDE] + last[col.LITHIUM_ABOVE])
    assert np.isfinite(last[col.POTENTIAL]) and np.isnan(res.rows[0][col.POTENTIAL])
    assert sum(last[col.reductions_share(n)] for n in ("host bottom third", "host middle third", "host top third",
                                                        "above host")) == pytest.approx(1.0)
    assert res.timing["kmc [s]"] == 0.0 and res.timing["continuum [s]"] > 0


def test_thresholded_lattice_holds_the_phase_fields_lithium():
    """The lattice's lithium voxels are the order parameter's lithium integral (xi above the
    bare host's diffuse interface) rounded, and that integral is the Faradaic charge in packets:
    conserved to the solver's round-off, after every row."""
    cfg = _config(["plate at 40 mA/cm^2 for 0.25 mAh/cm^2", "strip at 20 mA/cm^2 for 0.1 mAh/cm^2"])
    host = cfg.host.build(np.random.SeedSequence(0))
    run = PhaseFieldRun(cfg, host)
    seen = []

    def check(row):
        lithium = run.lithium_voxels()
        assert lithium == pytest.approx(-run.solver.charge / run.packet_charge, abs=1e-9)
        n = int(np.count_nonzero(run.lattice() == LITHIUM))
        assert n == round(lithium)
        seen.append(n)

    res = run.run(cfg.protocol.segments(), progress=check)
    assert max(seen) >= 4 and seen[-1] < max(seen)  # it grew by whole voxels and shrank again
    assert np.count_nonzero(res.final_phase == LITHIUM) == seen[-1]
    np.testing.assert_array_equal(res.final_phase[host.phase != 0], host.phase[host.phase != 0])


def test_same_config_and_seed_give_the_same_run():
    """With Langevin noise on, the seed decides the noise: same seed, same rows to the bit.
    (A small amplitude: at Hong's 0.04 the step-size control chases the noise's Li+ and this
    run takes 40x longer, docs/phasefield.md.)"""
    cfg = _config(["plate at 20 mA/cm^2 for 0.002 mAh/cm^2"], ["phasefield.noise_amplitude=0.002"])
    host = cfg.host.build(np.random.SeedSequence(0))

    def rows(seed):
        return run_case(cfg, host, cfg.protocol.segments(), np.random.SeedSequence(seed), "pf").rows

    a, b, c = rows(1), rows(1), rows(2)
    np.testing.assert_equal(a, b)  # NaN (no potential at the start) equals NaN here
    assert a[-1][col.POTENTIAL] != c[-1][col.POTENTIAL]


@pytest.mark.skipif(not _holds_supported(), reason="the schedule has no potentiostatic hold yet")
def test_a_hold_runs_potentiostatically():
    cfg = _config(["plate at 20 mA/cm^2 for 0.01 mAh/cm^2", "hold at -150 mV for 1 s"])
    host = cfg.host.build(np.random.SeedSequence(0))
    res = run_case(cfg, host, cfg.protocol.segments(), np.random.SeedSequence(1), "pf")
    hold = [r for r in res.rows if r[col.STEP] == "hold"]
    assert all(r[col.POTENTIAL] == pytest.approx(-0.15) for r in hold)
    seg = res.segments[-1]
    assert seg[col.PASSED_CAP] == pytest.approx(seg[col.APPLIED_CAP]) and seg[col.PASSED_CAP] != 0
    assert seg[col.CURRENT] == pytest.approx(seg[col.PASSED_CAP] * 3600.0 / seg[col.SEGMENT_DURATION], rel=1e-9)


def test_cli_runs_the_phase_field_and_writes_the_kmc_outputs(tmp_path):
    out = tmp_path / "pf"
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"protocol": {"kind": "schedule", "steps": ["plate at 20 mA/cm^2 for 0.02 mAh/cm^2"]}}')
    sets = [a for s in SMALL if not s.startswith(("model=", "snapshots=")) for a in ("--set", s)]
    assert main(["run", str(cfg), "--model", "phasefield", *sets, "--set", "snapshots=1", "--out", str(out),
                 "--no-progress"]) == 0
    with open(out / "timeseries.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert float(rows[-1][col.PLATED_CAP]) == pytest.approx(0.02) and col.LITHIUM_INSIDE in rows[0]
    assert (out / "summary.csv").is_file() and (out / "segments.csv").is_file()
    assert sorted(p.name for p in (out / "snapshots").iterdir())[-1].endswith(".vti")
    assert '"model": "phasefield"' in (out / "config.json").read_text()


@pytest.mark.parametrize("args, message", [
    (["--set", "protocol.steps=[\"plate at 20 mA/cm^2 for 0.02 mAh/cm^2\", "
                       "\"strip at 10 mA/cm^2 until 0.5 V cutoff\"]"], "cutoff"),
    (["--set", "kmc.occupancy_cap=2"], "occupancy_cap"),
])
def test_what_the_phase_field_cannot_do_fails_before_anything_is_written(tmp_path, capsys, args, message):
    out = tmp_path / "pf"
    sets = [a for s in SMALL if not s.startswith("model=") for a in ("--set", s)]
    code = main(["run", "--model", "phasefield", *sets, "--set", "protocol.kind=schedule", "--set",
                 "protocol.steps=[\"plate at 20 mA/cm^2 for 0.02 mAh/cm^2\"]", *args, "--out", str(out),
                 "--no-progress"])
    assert code == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_run_refuses_open_ended_strips():
    cfg = _config(["plate at 20 mA/cm^2 for 0.02 mAh/cm^2", "strip at 10 mA/cm^2 until 0.5 V cutoff"])
    host = cfg.host.build(np.random.SeedSequence(0))
    with pytest.raises(ConfigError, match="cutoff"):
        PhaseFieldRun(cfg, host).run(cfg.protocol.segments())


def test_plating_into_a_porous_host_goes_inside_at_a_negative_cell_potential():
    """A small random porous conductive host (6 x 6 x 8 um, bare eta_nuc 40 mV), 4 mA/cm^2 for
    0.02 mAh/cm^2: the phase field plates on the host faces by reduction (no capillary filling:
    docs/phasefield.md "Host contact"), all of it inside the host here (measured 100 %), at a
    cell potential of -27 to -28 mV, the wetting layer's (it sat at +0.13 to +0.27 V with the old,
    completely wetting contact, and at -0.10 to -0.13 V with the double well as the bare faces'
    nucleation barrier)."""
    cfg = make_config({"protocol": {"kind": "schedule", "steps": ["plate at 4 mA/cm^2 for 0.02 mAh/cm^2"]}},
                      ["model=phasefield", "host.kind=random_porous", "host.nx=6", "host.ny=6", "host.host_layers=8",
                       "host.reservoir_layers=5", "snapshots=0", "phasefield.record_interval_s=2",
                       "phasefield.interface_width_um=0.5"])
    host = cfg.host.build(np.random.SeedSequence(0))
    res = run_case(cfg, host, cfg.protocol.segments(), np.random.SeedSequence(1), "pf")
    last = res.rows[-1]
    assert last[col.LITHIUM_INSIDE] > 0.9 * (last[col.LITHIUM_INSIDE] + last[col.LITHIUM_ABOVE]) > 0
    assert all(-0.05 < r[col.POTENTIAL] < -0.01 for r in res.rows[1:])


def test_a_lattice_start_plates_the_wetting_layer_with_the_runs_own_charge():
    """phasefield.initial_state = "lattice" (the validation's start, docs/phasefield.md "The KMC's
    starting state"): the bare host's free voxels start empty, as the KMC's lattice does, so its
    concave voxels (two or more host faces) fill with the run's charge; "rest" starts the contacts
    at their rest coverage (here 12 voxels' worth, 3.5x the charge plated), passed no charge and
    counted above, so those voxels count less lithium for the same fill (measured 0.126 against
    0.093 voxels each).  Both conserve the plated charge as lithium."""
    counts = {}
    for start in ("rest", "lattice"):
        cfg = make_config({"protocol": {"kind": "schedule", "steps": ["plate at 4 mA/cm^2 for 0.02 mAh/cm^2"]}},
                          ["model=phasefield", "host.kind=random_porous", "host.nx=6", "host.ny=6",
                           "host.host_layers=8", "host.reservoir_layers=5", "snapshots=0",
                           "phasefield.record_interval_s=2", "phasefield.interface_width_um=0.5",
                           f"phasefield.initial_state={start}"])
        host = cfg.host.build(np.random.SeedSequence(0))
        sim = PhaseFieldRun(cfg, host, np.random.SeedSequence(1))
        xi0 = sim.solver.order_parameter[sim.free_fine]
        assert sim.lithium_voxels() == pytest.approx(0.0, abs=1e-12)
        if start == "lattice":
            assert xi0.max() < 1e-12
        else:
            assert xi0.max() > 0.2 and xi0.sum() > 5.0  # the contacts' coverage at rest
        sim.run(cfg.protocol.segments(), label=start)
        plated = 0.02 * 36000.0 * sim.footprint / sim.packet_charge  # voxels of metal
        assert sim.lithium_voxels() == pytest.approx(plated, rel=1e-9)
        free = host.phase == 0
        host_faces = sum(np.roll(~free, s, axis=a) for a in (0, 1) for s in (1, -1))
        host_faces += np.pad(~free[:, :, 1:], ((0, 0), (0, 0), (0, 1)))  # above
        host_faces += np.pad(~free[:, :, :-1], ((0, 0), (0, 0), (1, 0)), constant_values=True)  # below
        counts[start] = sim._lithium_per_voxel()[free & (host_faces >= 2)].mean()
    assert counts["lattice"] > 1.2 * counts["rest"]
