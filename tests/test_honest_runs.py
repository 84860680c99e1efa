"""Honest runs: right numbers or a clear error, nothing lost, nothing overwritten."""
import json
import math
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kmc import get_study, make_config, run_study
from kmc.cli import main
from kmc.coupling import columns as col
from kmc.coupling.galvanostat import CHARGE_TOLERANCE_PERCENT
from kmc.coupling.io import SeriesWriter, read_csv, write_csv, write_json
from kmc.coupling.observables import time_weighted_mean
from kmc.coupling.waveforms import parse_step

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["host.nx=16", "host.ny=16", "host.host_layers=6", "host.reservoir_layers=8", "snapshots=1"]


def _cli(args, tmp_path, **kw):
    """Run the CLI in a subprocess; (returncode, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "kmc", *args], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=kw.get("timeout", 600))
    return p.returncode, p.stdout, p.stderr


# -- bad input: one line, exit 2, nothing written ------------------------------------------------
def _bad_inputs(tmp_path):
    cfgs = {"list.json": "[1, 2]", "string.json": '"dc"', "null.json": "null", "config_null.json": '{"config": null}'}
    for name, text in cfgs.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "latin1.json").write_bytes('{"seed": 1, "note": "\xe9"}'.encode("latin-1"))
    (tmp_path / "a_file").write_text("x")
    run = ["run", "--no-progress"]
    return {
        "top level a list": run + ["list.json"], "top level a string": run + ["string.json"],
        "top level null": run + ["null.json"], "config null": run + ["config_null.json"],
        "not UTF-8": run + ["latin1.json"],
        "--out is a file": run + ["--out", "a_file"],
        "--out under a file": run + ["--out", "a_file/sub"],
        "bool as a current": run + ["--set", "protocol.current_density_mA_cm2=true"],
        "unread schedule words": run + ["--set", "protocol.kind=schedule", "--set",
                                        'protocol.steps=["plate at 8 mA/cm^2 for 0.2 mAh/cm^2", '
                                        '"strip at 2 mA/cm^2 fro 10 s until 0.5 V cutoff"]'],
        "no host layers": run + ["--set", "host.host_layers=0"],
        "coarsening that does not divide": run + ["--set", "continuum.coarsen=5"],
        "capacity beyond the domain": run + ["--set", "host.nx=8", "--set", "host.ny=8", "--set", "host.host_layers=2",
                                             "--set", "host.reservoir_layers=6", "--set", "protocol.capacity_mAh_cm2=1.3"],
        "too few packets": run + ["--set", "host.nx=12", "--set", "host.ny=12", "--set", "protocol.capacity_mAh_cm2=0.05"],
        "a domain beyond memory": run + ["--set", "host.nx=1024", "--set", "host.ny=1024", "--set", "host.host_layers=1000"],
        "unreachable scheduler": ["pulse_vs_dc", "--replicas", "2", "--scheduler", "tcp://127.0.0.1:9", "--no-progress"],
    }


def test_every_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path):
    for what, args in _bad_inputs(tmp_path).items():
        before = {p.name for p in tmp_path.iterdir()}
        rc, out, err = _cli(args, tmp_path)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert rc == 2, (what, rc, err[-2000:])
        assert len(lines) == 1 and lines[0].startswith("error: "), (what, err)
        assert {p.name for p in tmp_path.iterdir()} == before, (what, "wrote files")
    # the error names the field that is wrong
    assert "host.host_layers" in _cli(_bad_inputs(tmp_path)["no host layers"], tmp_path)[2]
    assert "continuum.coarsen" in _cli(_bad_inputs(tmp_path)["coarsening that does not divide"], tmp_path)[2]


def test_schedule_steps_with_words_the_grammar_does_not_know_are_refused():
    with pytest.raises(ValueError, match="cannot read 'fro 10 s"):
        parse_step("strip at 2 mA/cm^2 fro 10 s until 0.5 V cutoff")
    with pytest.raises(ValueError, match="repeats"):
        parse_step("plate at 2 mA/cm^2 for 1 s for 2 s")
    s = parse_step("strip at 2 mA/cm^2 for 10 s until 500 mV cutoff")
    assert (s.duration, s.cutoff_potential) == (10.0, 0.5)
    assert parse_step("plate at 2 mA/cm^2 for 0.1 mAh/cm^2").until_charge


def test_booleans_nulls_and_strings_are_not_numbers():
    from kmc import ConfigError

    for bad in ("protocol.current_density_mA_cm2=true", "kmc.leaps=1", "host.nx=\"24\"", "seed=null"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            make_config(overrides=[bad])


# -- outputs: strict JSON, empty cells, permissions, streaming --------------------------------------
def test_outputs_are_strict_json_with_empty_cells_and_normal_permissions(tmp_path):
    write_json(tmp_path / "a.json", {"x": float("nan"), "y": [1.0, float("inf")], "z": np.float64(2.0)})
    assert json.loads((tmp_path / "a.json").read_text(), parse_constant=lambda c: pytest.fail(c)) == \
        {"x": None, "y": [1.0, None], "z": 2.0}
    write_csv(tmp_path / "a.csv", [{"a": float("nan"), "b": -0.0}])
    assert (tmp_path / "a.csv").read_text().splitlines()[1] == ",0"
    mask = os.umask(0o022)
    try:
        write_json(tmp_path / "b.json", {})
        assert stat.S_IMODE(os.stat(tmp_path / "b.json").st_mode) == 0o644
    finally:
        os.umask(mask)


def test_a_series_is_readable_row_by_row_and_marked_partial_until_it_ends(tmp_path):
    w = SeriesWriter(tmp_path / "ts.csv")
    w.append({"t": 0.0, "v": float("nan")})
    w.append({"t": 1.0, "v": 2.0})
    assert read_csv(tmp_path / "ts.partial.csv") == [{"t": "0", "v": ""}, {"t": "1", "v": "2"}]
    assert not (tmp_path / "ts.csv").exists()
    w.finish()
    assert not (tmp_path / "ts.partial.csv").exists() and len(read_csv(tmp_path / "ts.csv")) == 2


def test_mean_potential_is_time_weighted_over_the_steps_under_current():
    rows = [{col.TIME: 0.0, col.CURRENT: 0.0, col.POTENTIAL: float("nan")},
            {col.TIME: 1.0, col.CURRENT: 10.0, col.POTENTIAL: -0.2},
            {col.TIME: 1.5, col.CURRENT: 0.0, col.POTENTIAL: -0.01},  # open circuit: excluded
            {col.TIME: 4.0, col.CURRENT: 10.0, col.POTENTIAL: -0.3}]
    assert time_weighted_mean(rows, col.POTENTIAL) == pytest.approx((-0.2 * 1 + -0.3 * 2.5) / 3.5)
    assert time_weighted_mean(rows, col.POTENTIAL, under_current=False) == pytest.approx(
        (-0.2 * 1 - 0.01 * 0.5 - 0.3 * 2.5) / 4.0)


# -- charge ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [
    ["host.kind=random_porous", "protocol.kind=dc", "protocol.current_density_mA_cm2=8"],
    ["host.kind=planar_foil", "protocol.kind=pulse", "protocol.current_density_mA_cm2=20"],
    ["host.kind=fibre_mat", "host.porosity=0.7", "protocol.current_density_mA_cm2=4"],
    ["host.kind=channel_array", "host.pitch_um=8", "host.radius_um=2", "protocol.kind=pulse_reverse",
     "protocol.current_density_mA_cm2=10", "protocol.reverse_current_mA_cm2=5", "protocol.reverse_time_s=0.2"],
    ["host.kind=random_porous", "kmc.transport=implicit", "protocol.current_density_mA_cm2=8"],
    ["host.kind=planar_foil", "protocol.kind=schedule",
     'protocol.steps=["plate at 8 mA/cm^2 for 0.1 mAh/cm^2", "rest for 1 s", "strip at 4 mA/cm^2 for 3 s", '
     '"plate at 8 mA/cm^2 for 0.02 mAh/cm^2"]'],
])
def test_small_runs_end_within_the_charge_tolerance(tmp_path, extra):
    """100+ packets (16 x 16 um at 0.1 mAh/cm^2: 124) on every host kind, both transport modes
    and every protocol kind end within 1 % of the gross applied charge."""
    cfg = make_config(overrides=SMALL + ["protocol.capacity_mAh_cm2=0.1"] + extra)
    res = run_study(get_study("single"), cfg, tmp_path / "out", progress=False, echo=lambda s: None)
    (r,) = res.values()
    assert r.summary[col.CHARGE_ERROR] < CHARGE_TOLERANCE_PERCENT
    segs = read_csv(tmp_path / "out" / "segments.csv")
    assert len(segs) == len(cfg.protocol.segments())
    if cfg.protocol.kind == "schedule":  # plate, rest, strip, plate: two cycles, CE of the first < 1
        cycles = read_csv(tmp_path / "out" / "cycles.csv")
        assert len(cycles) == 2
        plated, stripped = float(cycles[0][col.CYCLE_PLATED]), float(cycles[0][col.CYCLE_STRIPPED])
        assert plated == pytest.approx(0.1, rel=0.01) and 0 < stripped < plated
        assert float(cycles[0][col.COULOMBIC_EFFICIENCY]) == pytest.approx(stripped / plated)
    assert json.loads((tmp_path / "out" / "status.json").read_text())["state"] == "complete"


def test_a_run_that_misses_the_tolerance_says_so_and_exits_1_after_writing(tmp_path, monkeypatch):
    from kmc.coupling import galvanostat

    monkeypatch.setattr(galvanostat.Galvanostat, "charge_error_percent", lambda self: 2.5)
    cfg = make_config(overrides=SMALL + ["protocol.capacity_mAh_cm2=0.1"])
    from kmc.studies.base import ChargeToleranceError

    with pytest.raises(ChargeToleranceError, match="2.50 %"):
        run_study(get_study("single"), cfg, tmp_path / "out", progress=False, echo=lambda s: None)
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    assert status["state"] == "failed" and "tolerance" in status["reason"]
    assert (tmp_path / "out" / "timeseries.csv").exists() and (tmp_path / "out" / "summary.csv").exists()


def test_a_study_whose_acceptance_fails_writes_everything_then_exits_1(tmp_path, monkeypatch, capsys):
    """A study's own acceptance check (validate's) failing is not a crash: every file is written,
    status.json is complete and names the failed checks, and the command exits 1 saying so."""
    from kmc.studies.base import AcceptanceError

    study = type(get_study("single"))
    written = study.write_outputs

    def failing(self, *args):
        assert written(self, *args) is None  # the single run has no acceptance of its own
        return "validation acceptance FAIL, 1 of 5 checks: Porous host Depth profile L1"

    monkeypatch.setattr(study, "write_outputs", failing)
    sets = [a for s in SMALL + ["protocol.capacity_mAh_cm2=0.1"] for a in ("--set", s)]
    assert main(["run", "--no-progress", *sets, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: validation acceptance FAIL, 1 of 5 checks: Porous host Depth profile L1 (outputs "
                   f"written to {tmp_path / 'out'})"]
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    assert status["state"] == "complete" and status["acceptance"].endswith("Porous host Depth profile L1")
    for name in ("summary.csv", "timeseries.csv", "segments.csv", "timing.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    with pytest.raises(AcceptanceError) as failed:  # the API raises it, with the runs
        run_study(get_study("single"), make_config(overrides=SMALL + ["protocol.capacity_mAh_cm2=0.1"]),
                  tmp_path / "api", progress=False, echo=lambda s: None)
    assert len(failed.value.results) == 1
    monkeypatch.setattr(study, "write_outputs", written)  # passed (None): exit 0, no acceptance in status.json
    assert main(["run", "--no-progress", *sets, "--out", str(tmp_path / "ok")]) == 0
    assert "acceptance" not in json.loads((tmp_path / "ok" / "status.json").read_text())


# -- folders ---------------------------------------------------------------------------------------
def test_an_output_folder_holding_a_run_is_not_overwritten(tmp_path):
    args = ["run", "--no-progress", "--out", "o"] + sum((["--set", s] for s in SMALL + ["protocol.capacity_mAh_cm2=0.1",
                                                                                        "snapshots=3"]), [])
    assert _cli(args, tmp_path)[0] == 0
    snaps = sorted(p.name for p in (tmp_path / "o" / "snapshots").iterdir())
    rc, _, err = _cli(args, tmp_path)
    assert rc == 2 and "--overwrite" in err and "--resume" in err
    rc, _, err = _cli(args[:-2] + ["--set", "seed=4"], tmp_path)  # another configuration
    assert rc == 2 and "--overwrite" in err and "--resume" not in err
    rc, _, err = _cli(args[:-2] + ["--set", "seed=4", "--set", "snapshots=1", "--overwrite"], tmp_path)
    assert rc == 0, err
    fresh = sorted(p.name for p in (tmp_path / "o" / "snapshots").iterdir())
    assert len(fresh) < len(snaps)  # the earlier run's extra snapshots are gone
    assert json.loads((tmp_path / "o" / "config.json").read_text())["config"]["seed"] == 4


def test_default_folders_of_two_configurations_differ():
    a, b = make_config(), make_config(overrides=["protocol.capacity_mAh_cm2=0.3"])
    assert a.seed == b.seed and a.digest()[:8] != b.digest()[:8]


# -- interruption ----------------------------------------------------------------------------------
def _wait_for(path_glob, root, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        hits = list(Path(root).glob(path_glob))
        if hits:
            return hits
        time.sleep(0.2)
    raise AssertionError(f"{path_glob} never appeared")


def test_a_killed_run_keeps_its_series_and_resumes_to_the_uninterrupted_result(tmp_path):
    sets = sum((["--set", s] for s in SMALL + ["protocol.capacity_mAh_cm2=0.2", "protocol.kind=pulse",
                                                "protocol.current_density_mA_cm2=20"]), [])
    args = ["run", "--no-progress", "--checkpoint-every", "5"] + sets
    assert _cli(args + ["--out", "ref"], tmp_path)[0] == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "kmc", *args, "--out", "cut"], cwd=tmp_path, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for("cut/checkpoints/*/*.ckpt-000000010.npz", tmp_path)
    p.kill()
    p.wait()
    rows = read_csv(tmp_path / "cut" / "timeseries.partial.csv")
    assert len(rows) >= 10 and all(r[col.TIME] for r in rows[1:])  # every row whole
    assert json.loads((tmp_path / "cut" / "status.json").read_text())["state"] == "running"
    rc, _, err = _cli(args + ["--out", "cut", "--resume"], tmp_path)
    assert rc == 0, err
    assert (tmp_path / "cut" / "timeseries.csv").read_text() == (tmp_path / "ref" / "timeseries.csv").read_text()
    assert (tmp_path / "cut" / "summary.csv").read_text() == (tmp_path / "ref" / "summary.csv").read_text()


def _as_from_a_terminal():
    """Ctrl-C's default action, as in a terminal's foreground job: a suite started in the
    background of a non-interactive shell (``pytest &``) ignores SIGINT, and its children
    inherit that (the study then ran to rc 0 in such suite runs)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_a_multi_worker_study_within_seconds(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "kmc", "pulse_vs_dc", "--workers", "2", "--no-progress", "--out", "s"],
                         cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         start_new_session=True, preexec_fn=_as_from_a_terminal)
    _wait_for("s/cases/*.partial.csv", tmp_path)
    time.sleep(0.3)  # soon after the first case starts: the quick study's cases are done within seconds
    t0 = time.time()
    os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group
    rc = p.wait(timeout=60)
    assert time.time() - t0 < 10.0
    assert rc == 130, p.stderr.read()
    status = json.loads((tmp_path / "s" / "status.json").read_text())
    assert status["state"] == "interrupted"
    assert list((tmp_path / "s" / "cases").glob("*.partial.csv"))
    for _ in range(100):  # no worker of the study is left (a terminated one is reaped within seconds)
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("workers of the interrupted study are still alive 10 s after it exited")


def test_compiling_message_and_units_in_config(tmp_path, capsys):
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("physics.kinetics.exchange_current_density_mA_cm2"))
    assert "mA/cm^2" in line and math.isclose(float(line.split()[1]), 1.0)
    assert make_config().physics.kinetics.exchange_current_density == 10.0  # A/m^2 inside


def test_a_capacity_segment_ends_on_the_charge_passed_not_on_the_clock(tmp_path, monkeypatch):
    """A KMC that is behind when the clock reaches the nominal end of a capacity-terminated
    segment (here made so: the solve aims at 70 % of the current while the clock runs) keeps the
    current on until the charge is passed, to half a packet."""
    from kmc.coupling.galvanostat import Galvanostat

    aim = Galvanostat.target_current
    monkeypatch.setattr(Galvanostat, "target_current",
                        lambda self, applied, dt, book=True: aim(self, applied, dt, book) * (0.7 if book else 1.0))
    cfg = make_config(overrides=["host.nx=20", "host.ny=20", "host.kind=planar_foil", "protocol.current_density_mA_cm2=8",
                                 "protocol.capacity_mAh_cm2=0.1", "snapshots=0"])
    (r,) = run_study(get_study("single"), cfg, tmp_path / "o", progress=False, echo=lambda s: None).values()
    n_packets = 194  # 0.1 mAh/cm^2 over 20 x 20 um^2 in 1 um^3 packets
    assert r.summary[col.SEGMENTS_ENDED_BY] == "charge"
    assert r.rows[-1][col.TIME] > cfg.protocol.segments()[0].duration  # past the nominal 45 s
    assert r.summary[col.CHARGE_ERROR] < 100 * 0.5 / n_packets


def test_images_stored_as_0_255_load_with_their_hash_and_warnings(tmp_path):
    from kmc.coupling.preflight import check_case

    img = np.full((12, 12, 6), 255, np.uint8)  # 255 = pore
    img[2:10, 2:10, 0:4] = 0  # a solid block on the collector ...
    img[4:8, 4:8, 1:3] = 255  # ... with a sealed cavity inside
    img[0, 0, 5] = 0  # a floating voxel
    np.save(tmp_path / "img.npy", img)
    cfg = make_config(overrides=["host.kind=image", f"host.image_path={tmp_path / 'img.npy'}",
                                 "host.image_pore_value=255", "host.reservoir_layers=8"])
    host = cfg.host.build(0)
    import hashlib

    assert host.summary()["image_sha256"] == hashlib.sha256((tmp_path / "img.npy").read_bytes()).hexdigest()
    warns = check_case(cfg, host, cfg.protocol.segments(), "image", allow_coarse=True)
    assert any("closed off" in w for w in warns) and any("floats" in w for w in warns)
    flipped = make_config(overrides=["host.kind=image", f"host.image_path={tmp_path / 'img.npy'}",
                                     "host.image_pore_value=255", "host.image_flip_z=true"]).host.build(0)
    assert (flipped.phase[:, :, 1:7] != 0).sum(axis=(0, 1)).tolist() == \
        (host.phase[:, :, 1:7] != 0).sum(axis=(0, 1)).tolist()[::-1]
