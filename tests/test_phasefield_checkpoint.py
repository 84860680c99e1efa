"""Checkpoints of phase-field runs (kmc/coupling/phasefield_run.py through
kmc/coupling/checkpoint.py): an interrupted run resumes to the uninterrupted run's rows and
fields to the bit, a checkpoint of another config or host is refused, and ensembles checkpoint
phase-field replicas."""

import numpy as np
import pytest

from continuum.phasefield import HONG2018, Galvanostatic, PhaseFieldSolver, Potentiostatic, planar_electrode
from kmc import make_config
from kmc.coupling.checkpoint import CheckpointError, RunCheckpointer, read_checkpoint, restore_checkpoint
from kmc.coupling.phasefield_run import PhaseFieldRun
from kmc.coupling.simulation import PlatingSimulation
from kmc.studies.ensemble import run_ensemble

from test_phasefield_run import SMALL
from _kmc_helpers import same_rows

# noise on (the generator's state is part of the checkpoint); plating, a rest and a strip: 10
# rows, control changes inside the run
NOISY = SMALL + ["phasefield.noise_amplitude=0.002", "phasefield.record_interval_s=0.5"]
STEPS = ["plate at 20 mA/cm^2 for 0.01 mAh/cm^2", "rest for 1 s", "strip at 10 mA/cm^2 for 0.005 mAh/cm^2"]


class Stop(Exception):
    pass


def _config(extra=()):
    return make_config({"protocol": {"kind": "schedule", "steps": STEPS}}, NOISY + list(extra))


def _kill_after(n_rows):
    seen = [0]

    def progress(row):
        seen[0] += 1
        if seen[0] == n_rows:
            raise Stop  # the process dies here: everything after the last checkpoint is lost
    return progress


# the contacts' and the front's coordination shifts, recomputed from xi at every step attempt
COORDINATION = ["kmc.interface_energy_J_m2=155.4", "phasefield.contact_coordination=dynamic",
                "phasefield.front_coordination=dynamic"]


@pytest.mark.parametrize("linear_solver, extra", [("auto", []), ("amg", []), ("auto", COORDINATION)],
                         ids=["auto", "amg", "coordination"])
def test_interrupted_phasefield_run_resumes_bit_identically(tmp_path, linear_solver, extra):
    """With direct solves (the default on small grids) the reference run writes no checkpoints:
    checkpoints change nothing.  'amg': the preconditioner hierarchies depend on the solves'
    history, which no checkpoint holds; a run restarts its solver from its own state at every
    checkpoint, as a resumed one does, so the reference checkpoints too and both go on alike.
    'coordination': the bond shifts are no state of their own (each attempt takes them from xi)."""
    cfg = _config([f"phasefield.linear_solver={linear_solver}"] + extra)
    host = cfg.host.build(np.random.SeedSequence(0))
    segs = cfg.protocol.segments()
    ref = PhaseFieldRun(cfg, host)
    a = ref.run(segs, checkpoint_dir=tmp_path / "ref" if linear_solver == "amg" else None, checkpoint_every_steps=4,
                outdir=tmp_path / "ref", snapshots=3)
    assert len(a.rows) == 11 and ref.solver.rejected > 0
    if extra:
        assert ref.params.front_bond_shift > 0 and np.ptp(ref.solver.geo.front_cathodic) > 0

    with pytest.raises(Stop):
        PhaseFieldRun(cfg, host).run(segs, checkpoint_dir=tmp_path / "cut", checkpoint_every_steps=4,
                                     outdir=tmp_path / "cut", snapshots=3, progress=_kill_after(9))
    files = RunCheckpointer(None, tmp_path / "cut").files()
    assert [p.name for p in files] == ["run.ckpt-000000004.npz", "run.ckpt-000000008.npz"]
    assert read_checkpoint(files[-1])[0]["segment_index"] == 2  # inside the strip
    run = PhaseFieldRun(cfg, host)
    b = run.run(segs, checkpoint_dir=tmp_path / "cut", checkpoint_every_steps=4, resume=True,
                outdir=tmp_path / "cut", snapshots=3)
    same_rows(a.rows, b.rows)
    same_rows(a.segments, b.segments)
    same_rows([a.summary], [b.summary])
    assert [t for t, _ in a.snapshots] == [t for t, _ in b.snapshots] and len(a.snapshots) == 4  # and the start
    np.testing.assert_array_equal(a.final_phase, b.final_phase)
    for x, y in ((ref.solver, run.solver), (ref.separator, run.separator)):
        for k in ("xi", "c", "phi") if x is ref.solver else ("c",):
            np.testing.assert_array_equal(getattr(x, k), getattr(y, k))
    s, r = ref.solver, run.solver
    assert (s.t, s.charge, s._dt_next, s.steps) == (r.t, r.charge, r._dt_next, r.steps)
    assert s.rng.bit_generator.state == r.rng.bit_generator.state
    # a finished run resumes to its result without stepping again
    c = PhaseFieldRun(cfg, host).run(segs, checkpoint_dir=tmp_path / "cut", checkpoint_every_steps=4, resume=True,
                                     progress=lambda row: pytest.fail("stepped after the final checkpoint"))
    same_rows(a.rows, c.rows)


def test_checkpoint_of_another_config_or_host_is_refused(tmp_path):
    cfg = _config()
    host = cfg.host.build(np.random.SeedSequence(0))
    segs = cfg.protocol.segments()[:1]
    PhaseFieldRun(cfg, host).run(segs, checkpoint_dir=tmp_path, checkpoint_every_steps=2)
    path = RunCheckpointer(None, tmp_path).files()[-1]
    other = _config(["phasefield.tol_xi=0.001"])
    with pytest.raises(CheckpointError, match="config digest .* refusing to resume a different configuration"):
        PhaseFieldRun(other, host).run(segs, checkpoint_dir=tmp_path, resume=True)
    host2 = cfg.host.build(np.random.SeedSequence(0))
    host2.eta_nuc = host2.eta_nuc + 0.01
    with pytest.raises(CheckpointError, match="another host"):
        restore_checkpoint(PhaseFieldRun(cfg, host2), path)
    with pytest.raises(CheckpointError, match="another protocol"):
        restore_checkpoint(PhaseFieldRun(cfg, host), path, cfg.protocol.segments())
    # the same case as a KMC run is another config (model=kmc)
    with pytest.raises(CheckpointError, match="config digest"):
        restore_checkpoint(PlatingSimulation(cfg.model_copy(update={"model": "kmc"}), host), path)


def test_ensemble_checkpoints_phasefield_replicas(tmp_path):
    """--checkpoint-every with model=phasefield: the replicas run with checkpoints and give the
    tables of the ensemble without them."""
    cfg = make_config({"protocol": {"kind": "schedule", "steps": ["plate at 20 mA/cm^2 for 0.01 mAh/cm^2"]}}, NOISY)
    with_ck = run_ensemble(cfg, 2, outdir=tmp_path / "ck", workers=1, progress=False, checkpoint_every_steps=1)
    run_ensemble(cfg, 2, outdir=tmp_path / "plain", workers=1, progress=False)
    assert not with_ck.failures and len(with_ck.records) == 2
    for name in ("replicas.csv", "statistics.csv"):
        assert (tmp_path / "ck" / name).read_text() == (tmp_path / "plain" / name).read_text()
    assert not (tmp_path / "ck" / "checkpoints").exists()  # all recorded: removed


def test_solver_state_round_trip_with_iterative_solves():
    """PhaseFieldSolver.state_dict / load_state_dict on the iterative path (multigrid for c and
    phi, Jacobi-CG for xi here: direct_max below the grid), noise on: a fresh solver loaded with
    the state of one stopped midway steps to the bit as the one that never stopped."""
    prm = HONG2018.replace(noise_amplitude=0.002)
    h = 0.5e-6
    phase, xi = planar_electrode((8, 1, 12), h, prm, 2e-6, seed_radius=1e-6)

    def solver():
        return PhaseFieldSolver(phase, h, prm, xi=xi, rng=7, direct_max=10)

    def rest(s):
        s.set_top(potential=-1e-3)
        s.advance(0.05, Galvanostatic(-100.0))
        s.advance(0.02, Potentiostatic(-0.1))

    ref, a = solver(), solver()
    assert ref._mg is not None and not ref._lin["xi"].direct
    for s in (ref, a):
        s.advance(0.05, Galvanostatic(-100.0))
    rest(ref)
    b = solver()
    b.load_state_dict(a.state_dict())
    rest(b)
    assert not ref._lin["xi"].amg  # Jacobi throughout: nothing outside the state
    for k in ("xi", "c", "phi"):
        np.testing.assert_array_equal(getattr(ref, k), getattr(b, k))
    assert (ref.t, ref.charge, ref._dt_next, ref.steps, ref.rejected) == (b.t, b.charge, b._dt_next, b.steps, b.rejected)
    assert ref.steps > 40 and ref.rejected > 0 and ref.balance() == b.balance()  # (45 + 7 rejected)
