"""Ensembles and checkpoints: same replicas on every backend, kill-and-resume loses nothing and
changes nothing, a single run resumes bit-identically, a failing replica is reported."""
import json
import sys
import warnings

import numpy as np
import pytest

from kmc.coupling.checkpoint import CheckpointError, RunCheckpointer, save_checkpoint
from kmc.coupling.config import ConfigError, make_config
from kmc.studies.ensemble import (EnsembleError, EnsembleWarning, run_ensemble, run_pulse_vs_dc_ensemble, single_case)
from kmc.coupling.simulation import PlatingSimulation, load_checkpoint
from kmc.studies import get_study, run_study
from kmc.studies.pulse_vs_dc import protocols
from _kmc_helpers import same_rows

TINY = ["host.nx=8", "host.ny=8", "host.host_layers=4", "host.reservoir_layers=6",
        "protocol.capacity_mAh_cm2=0.005", "snapshots=0"]
# many short macro-steps, so an interruption lands mid-segment
STEPPY = TINY + ["kmc.max_macro_step_s=0.2", "protocol.capacity_mAh_cm2=0.01"]


def cfg(extra=()):
    return make_config({}, TINY + list(extra))


def results_of(res):
    """Replica results without the bookkeeping that may differ (wall time, pid, machine)."""
    return {r: {k: v for k, v in rec.items() if k not in ("wall [s]", "pid", "host")}
            for r, rec in sorted(res.records.items())}


def tables(outdir):
    return [(outdir / name).read_text() for name in ("replicas.csv", "statistics.csv")]


# -- single-run checkpoints --------------------------------------------------------------------
class Stop(Exception):
    pass


def _sim(config):
    host_ss, run_ss = np.random.SeedSequence(config.seed).spawn(2)
    return PlatingSimulation(config, config.host.build(host_ss), seed_sequence=run_ss)


@pytest.mark.parametrize("transport,protocol", [("implicit", "DC"), ("explicit", "Pulse, equal on-current")])
def test_interrupted_run_resumes_bit_identically(tmp_path, transport, protocol):
    config = make_config({}, STEPPY + [f"kmc.transport={transport}"])
    segs = protocols(config)[protocol]
    ref_sim = _sim(config)
    ref = ref_sim.run(segs)
    assert ref_sim.steps > 20

    def kill_after_17(row, n=[0]):
        n[0] += 1
        if n[0] == 17:
            raise Stop  # the process dies here: everything after the last checkpoint is lost

    with pytest.raises(Stop):
        _sim(config).run(segs, checkpoint_dir=tmp_path, checkpoint_every_steps=5, progress=kill_after_17)
    assert [p.name for p in RunCheckpointer(None, tmp_path).files()] == ["run.ckpt-000000010.npz",
                                                                        "run.ckpt-000000015.npz"]
    sim = _sim(config)
    res = sim.run(segs, checkpoint_dir=tmp_path, checkpoint_every_steps=5, resume=True)
    same_rows(ref.rows, res.rows)
    assert np.array_equal(ref.final_phase, res.final_phase)
    assert np.array_equal(ref.connected, res.connected)
    assert np.array_equal(ref_sim.state.packets, sim.state.packets)
    assert np.array_equal(ref_sim.state.packet_ids, sim.state.packet_ids)
    assert np.array_equal(ref_sim.concentration, sim.concentration)
    assert np.array_equal(ref_sim.separator.c, sim.separator.c)
    assert ref_sim.engine.rng_state() == sim.engine.rng_state()
    assert (ref_sim.time, ref_sim.kmc_charge, ref_sim.steps) == (sim.time, sim.kmc_charge, sim.steps)
    assert ref.summary["Segments ended by"] == res.summary["Segments ended by"]
    # a finished run resumes to the same result without stepping again
    again = _sim(config)
    res2 = again.run(segs, checkpoint_dir=tmp_path, checkpoint_every_steps=5, resume=True,
                     progress=lambda row: pytest.fail("stepped after the final checkpoint"))
    same_rows(ref.rows, res2.rows)


def test_checkpoint_of_another_config_is_rejected(tmp_path):
    config = make_config({}, STEPPY)
    sim = _sim(config)
    sim.run(protocols(config)["DC"], checkpoint_dir=tmp_path, checkpoint_every_steps=10)
    path = RunCheckpointer(sim, tmp_path).files()[-1]
    other = make_config({}, STEPPY + ["protocol.current_density_mA_cm2=3"])
    with pytest.raises(CheckpointError, match="config digest"):
        load_checkpoint(path, other, sim.host)
    with pytest.raises(CheckpointError, match="config digest"):
        _sim(other).run(protocols(other)["DC"], checkpoint_dir=tmp_path, resume=True)
    loaded, pos = load_checkpoint(path, config, sim.host)
    assert pos["segment_index"] == 1 and loaded.steps == sim.steps


def test_checkpoint_covers_every_simulation_attribute(tmp_path):
    """Fails when PlatingSimulation gains state the checkpoint does not know how to save."""
    config = make_config({}, STEPPY)
    sim = _sim(config)
    seg = protocols(config)["DC"][0]
    sim.macro_step(seg, 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_checkpoint(sim, tmp_path / "a.npz", 0, segment_t_end=seg.duration)
    loaded, _ = load_checkpoint(tmp_path / "a.npz", config, sim.host)
    sim.macro_step(seg, 0.2)
    loaded.macro_step(seg, 0.2)
    same_rows(sim.rows, loaded.rows)


# -- ensembles ---------------------------------------------------------------------------------
def test_replicas_identical_serial_pool_and_dask(tmp_path):
    config = cfg()
    serial = run_ensemble(config, 3, outdir=tmp_path / "serial", workers=1, progress=False)
    pool = run_ensemble(config, 3, outdir=tmp_path / "pool", workers=2, progress=False)
    assert len(serial.records) == 3 and not serial.failures
    assert results_of(serial) == results_of(pool)
    assert tables(tmp_path / "serial") == tables(tmp_path / "pool")
    assert {rec["pid"] for rec in pool.records.values()}.isdisjoint({rec["pid"] for rec in serial.records.values()})
    # independent streams: the replicas differ
    finals = [rec["results"][-1]["Packets in transit [-]"] for rec in serial.records.values()]
    assert len(set(finals)) > 1
    assert [rec["spawn_key"] for rec in serial.records.values()] == [[0], [1], [2]]

    distributed = pytest.importorskip("dask.distributed", reason="dask[distributed] not installed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dask = run_ensemble(config, 3, outdir=tmp_path / "dask", scheduler=client, progress=False)
    assert results_of(serial) == results_of(dask)
    assert tables(tmp_path / "serial") == tables(tmp_path / "dask")


def test_a_studys_cases_on_dask_are_its_local_runs(tmp_path):
    """run_study(scheduler=): the cases as Dask tasks give the local run's results and files to
    the bit (validate --scheduler takes this path, its own options kept)."""
    distributed = pytest.importorskip("dask.distributed", reason="dask[distributed] not installed")
    # 124 packets: within the charge tolerance
    config = make_config({}, ["host.nx=16", "host.ny=16", "host.host_layers=6", "host.reservoir_layers=8",
                              "protocol.capacity_mAh_cm2=0.1", "snapshots=1"])
    study, quiet = get_study("single"), dict(progress=False, echo=lambda s: None)
    local = run_study(study, config, tmp_path / "local", workers=1, **quiet)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dask = run_study(study, config, tmp_path / "dask", scheduler=client, **quiet)
    assert list(dask) == list(local)
    for label, res in local.items():
        same_rows(res.rows, dask[label].rows)
    written = sorted(f.relative_to(tmp_path / "local") for f in (tmp_path / "local").rglob("*")
                     if f.suffix in (".csv", ".vti"))  # the series and snapshots come from the workers
    assert any(f.suffix == ".vti" for f in written)
    for name in written:
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes(), name


INTERRUPT_AT = set()


def interruptible(config, ss, run=None):
    if ss.spawn_key[-1] in INTERRUPT_AT:
        raise KeyboardInterrupt  # not an Exception: stops the ensemble like Ctrl-C / a kill
    return single_case(config, ss)


def test_killed_ensemble_resumes_to_the_same_tables(tmp_path):
    config = cfg()
    ref = run_ensemble(config, 4, outdir=tmp_path / "ref", cases=interruptible, workers=1, progress=False)
    out = tmp_path / "resumed"
    INTERRUPT_AT.add(2)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_ensemble(config, 4, outdir=out, cases=interruptible, workers=1, progress=False)
    finally:
        INTERRUPT_AT.clear()
    assert sorted(p.name for p in (out / "replicas").iterdir()) == ["replica_0000.json", "replica_0001.json"]
    (out / "replicas" / ".replica_0002.json.abc.tmp").write_text('{"trunc')  # a write the kill cut short
    res = run_ensemble(config, 4, outdir=out, cases=interruptible, workers=2, progress=False)
    assert res.skipped == 2 and len(res.records) == 4
    assert results_of(ref) == results_of(res)
    assert tables(tmp_path / "ref") == tables(out)
    assert run_ensemble(config, 4, outdir=out, cases=interruptible, workers=1, progress=False).skipped == 4
    with pytest.raises(EnsembleError, match="another configuration"):
        run_ensemble(cfg(["seed=1"]), 4, outdir=out, cases=interruptible, workers=1, progress=False)


def fails_for_replica_1(config, ss, run=None):
    if ss.spawn_key[-1] == 1:
        raise ValueError("injected failure")
    return single_case(config, ss)


def test_failing_replica_is_reported_and_others_complete(tmp_path):
    with pytest.warns(EnsembleWarning, match=r"replica 1 failed \(seed 0, entropy \d+, spawn key \(1,\)\): "
                                             r"ValueError: injected failure"):
        res = run_ensemble(cfg(), 3, outdir=tmp_path, cases=fails_for_replica_1, workers=2, progress=False)
    assert sorted(res.records) == [0, 2] and sorted(res.failures) == [1]
    rec = json.loads((tmp_path / "replicas" / "replica_0001.failed.json").read_text())
    assert rec["status"] == "failed" and rec["spawn_key"] == [1] and "injected failure" in rec["traceback"]
    assert rec["entropy"] == np.random.SeedSequence(0).entropy
    assert {row["Replica"] for row in res.rows} == {0, 2}
    assert "n" in res.statistics[0] and all(s["n"] <= 2 for s in res.statistics)
    from kmc.cli import _check_replicas  # the command exits 1 naming the failed replicas
    from kmc.studies.ensemble import EnsembleIncomplete

    with pytest.raises(EnsembleIncomplete, match="1 replica.*1: ValueError: injected failure"):
        _check_replicas(res)


def test_pulse_vs_dc_ensemble_statistics_and_cli(tmp_path, monkeypatch):
    config = cfg(["protocol.capacity_mAh_cm2=0.05"])  # about 15 packets: every case has a deposit
    res = run_pulse_vs_dc_ensemble(config, tmp_path / "pvd", 2, workers=1, progress=False, echo=None)
    assert len(res.rows) == 2 * 6 * 4  # replicas x cases x capacity checkpoints
    assert (tmp_path / "pvd" / "distributions.png").stat().st_size > 1000
    c = next(r for r in res.comparison if r["Host"] == "Porous host" and r["Observable"] == "Max height [um]")
    final = {(r["Protocol"], r["Replica"]): r["Max height [um]"] for r in res.rows
             if r["Host"] == "Porous host" and r["Capacity checkpoint [%]"] == 100}
    assert c["Ratio of means"] == pytest.approx(np.mean([final[(c["Protocol"], i)] for i in (0, 1)])
                                                / np.mean([final[("DC", i)] for i in (0, 1)]))
    stat = next(s for s in res.statistics
                if s["Observable"] == "Max height [um]" and s["Capacity checkpoint [%]"] == 100)
    assert stat["n"] == 2 and stat["CI95 low"] <= stat["Mean"] <= stat["CI95 high"]

    from kmc.cli import main

    argv = ["ensemble", "--replicas", "2", "--workers", "1", "--no-progress", "--out", str(tmp_path / "cli")]
    assert main(argv + sum((["--set", s] for s in TINY), [])) == 0
    assert (tmp_path / "cli" / "statistics.csv").is_file()
    assert main(argv + ["--replicas", "0"]) == 2
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # as if dask were not installed
    with pytest.raises(ConfigError, match="needs Dask"):  # a bad-input error: exit 2
        run_ensemble(config, 1, outdir=tmp_path / "nodask", scheduler="tcp://127.0.0.1:1", progress=False)


def test_short_cases_checkpoint_only_when_asked_and_run_the_same(tmp_path, monkeypatch):
    """A study's KMC case estimated under CHECKPOINT_MIN_SECONDS writes no checkpoint unless
    --checkpoint-every is given; its series is the same bit for bit either way."""
    from kmc.coupling.preflight import estimate_seconds
    from kmc.studies import get_study, run_study
    from kmc.studies.base import CHECKPOINT_MIN_SECONDS

    config = make_config({}, ["host.nx=16", "host.ny=16", "host.host_layers=4", "host.reservoir_layers=6",
                              "protocol.capacity_mAh_cm2=0.1", "protocol.current_density_mA_cm2=20", "snapshots=0",
                              "kmc.max_macro_step_s=0.5"])
    assert estimate_seconds(config, config.host.build(np.random.SeedSequence(0)), config.protocol.segments()) \
        < CHECKPOINT_MIN_SECONDS
    saved = []
    save = RunCheckpointer.save
    monkeypatch.setattr(RunCheckpointer, "save", lambda self, *a, **k: saved.append(self.label) or save(self, *a, **k))
    quiet = {"progress": False, "workers": 1, "echo": lambda s: None}
    run_study(get_study("single"), config, tmp_path / "short", **quiet)
    assert saved == []
    run_study(get_study("single"), config, tmp_path / "asked", checkpoint_every=5, **quiet)
    assert len(saved) >= 3  # every 5 of > 20 macro-steps, and the end
    assert (tmp_path / "short" / "timeseries.csv").read_bytes() == (tmp_path / "asked" / "timeseries.csv").read_bytes()
