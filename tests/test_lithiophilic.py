"""The lithiophilic study: one skeleton in five decorations, the seed-enrichment measure, and
the command's outputs."""
import csv

import numpy as np
import pytest

from kmc import get_study, make_config
from kmc.cli import main
from kmc.coupling.streams import root_sequence
from kmc.studies.lithiophilic import CLUSTERS, SEED_ENRICHMENT, seed_enrichment
from continuum import ELECTROLYTE, HOST_CONDUCTIVE, LITHIUM


def test_hosts_share_one_skeleton_and_differ_in_their_seeds():
    st = get_study("lithiophilic")
    cfg = make_config({}, st.overrides)
    hosts = st.plan(cfg, root_sequence(0)).hosts
    bare = hosts["Bare host"]
    assert not bare.seed_mask.any()
    z_mean = {}
    for label, h in hosts.items():
        assert np.array_equal(h.phase, bare.phase), label
        if label != "Bare host":
            assert h.seed_mask.any() and np.all(h.eta_nuc[h.seed_mask] == 0.0), label
            z_mean[label] = np.nonzero(h.seed_mask)[2].mean()
    assert z_mean["Seeds bottom"] < z_mean["Seeds uniform"] < z_mean["Seeds top"]
    grad = hosts["Double gradient"]
    top = grad.host_layers
    upper = grad.phase[:, :, top] == HOST_CONDUCTIVE
    assert np.all(grad.activity[:, :, top][upper] <= 0.1 * bare.activity[:, :, top][upper] + 1e-12)


def test_seed_enrichment_by_hand():
    phase = np.full((4, 1, 3), ELECTROLYTE, np.uint8)
    phase[:, :, 0] = HOST_CONDUCTIVE  # four surface voxels, one a seed
    seeds = np.zeros(phase.shape, bool)
    seeds[0, 0, 0] = True
    assert np.isnan(seed_enrichment(phase, seeds))  # no lithium yet
    phase[0, 0, 1] = LITHIUM  # lithium only on the seed: 1 / (1/4)
    assert seed_enrichment(phase, seeds) == pytest.approx(4.0)
    phase[1, 0, 1] = LITHIUM  # and on one bare voxel: (1/2) / (1/4)
    assert seed_enrichment(phase, seeds) == pytest.approx(2.0)


def test_command_writes_summary_and_figures(tmp_path):
    out = tmp_path / "lp"
    args = ["lithiophilic", "--out", str(out), "--no-progress", "--workers", "1",
            "--set", "host.nx=16", "--set", "host.ny=16", "--set", "host.host_layers=8",
            "--set", "host.reservoir_layers=8", "--set", "snapshots=0", "--set", "protocol.capacity_mAh_cm2=0.1"]
    assert main(args) == 0
    for name in ("summary.csv", "timeseries.csv", "fill.png", "cross_sections.png", "host.json"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["Host"] for r in rows] == ["Bare host", "Seeds uniform", "Seeds bottom", "Seeds top", "Double gradient"]
    assert rows[0][SEED_ENRICHMENT] == ""  # no seeds on the bare host
    for r in rows:
        assert int(r[CLUSTERS]) >= 1


def test_first_run_compiles_in_two_workers_and_changes_nothing(tmp_path, monkeypatch):
    """With nothing compiled yet, a 2-worker study first compiles the KMC's and the
    continuum's kernels side by side (kmc.studies.parallel); the cases' results are those of a
    single worker."""
    import kmc.studies.base as base
    import kmc.studies.parallel as parallel
    import kmc.workers as workers_module

    calls = []
    monkeypatch.setattr(base, "_kernels_compiled", lambda: False)
    monkeypatch.setattr(workers_module, "process_pool", lambda n, make=workers_module.process_pool: calls.append(n) or make(n))
    summaries = {}
    for workers in ("1", "2"):
        out = tmp_path / workers
        args = ["lithiophilic", "--out", str(out), "--no-progress", "--workers", workers,
                "--set", "host.nx=12", "--set", "host.ny=12", "--set", "host.host_layers=6",
                "--set", "host.reservoir_layers=6", "--set", "snapshots=0",
                "--set", "protocol.capacity_mAh_cm2=0.15"]
        assert main(args) == 0
        summaries[workers] = (out / "summary.csv").read_text()
    assert calls == [2]
    assert summaries["1"] == summaries["2"]
    parallel.compile_kmc_kernels()  # cached now: both return at once, compiling nothing new
    parallel.compile_continuum_kernels()
