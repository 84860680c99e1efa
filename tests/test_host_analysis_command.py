"""`python -m kmc host_analysis`: host geometry over replicas, the hosts the studies' replicas plate."""
import csv
import json

import pytest

from kmc.cli import main
from kmc.coupling.config import ConfigError, SimulationConfig, apply_overrides
from kmc.coupling.streams import replica_sequence, study_streams
from kmc.hosts.analysis import host_analysis
from kmc.studies.host_analysis import analyse_hosts, statistics

SMALL = ["host.nx=12", "host.ny=12", "host.host_layers=8", "host.reservoir_layers=4"]


def _config(extra=()):
    return SimulationConfig.model_validate(apply_overrides(SimulationConfig().model_dump(mode="json"),
                                                           SMALL + list(extra)))


def test_replica_r_is_the_host_a_study_replica_r_plates():
    config = _config()
    runs = analyse_hosts(config, ["random_porous"], replicas=3)["random_porous"]
    host = config.host.build(study_streams(replica_sequence(config.seed, 2), 5)[0])
    assert runs[2] == host_analysis(host)
    assert runs[0]["SA"] != runs[1]["SA"]  # independent realisations


def test_channel_statistics_are_exact_and_random_ones_have_an_interval():
    """Channels are the same every replica (zero-width CI at the closed-form porosity); random
    hosts scatter, and the CI holds their mean."""
    config = _config(["host.pitch_um=6", "host.radius_um=2", "host.channels_are_holes=true"])
    rows = statistics(analyse_hosts(config, ["channel_array", "random_porous"], replicas=4))
    por = {r["Host"]: r for r in rows if r["Observable"].startswith("Porosity")}
    ch = por["channel_array"]
    assert ch["Std"] == 0 and ch["CI95 low"] == ch["CI95 high"] == ch["Mean"]
    sa = {r["Host"]: r for r in rows if r["Observable"].startswith("SA")}
    assert sa["random_porous"]["CI95 low"] < sa["random_porous"]["Mean"] < sa["random_porous"]["CI95 high"]


def test_command_writes_tables_and_rejects_bad_input(tmp_path, capsys):
    out = tmp_path / "ha"
    assert main(["host_analysis", "--out", str(out), "--replicas", "2", "--kinds", "random_porous",
                 "channel_array", *sum((["--set", s] for s in SMALL + ["host.pitch_um=6"]), [])]) == 0
    rows = list(csv.DictReader(open(out / "hosts.csv")))
    assert [(r["Host"], r["Replica"]) for r in rows] == [("random_porous", "0"), ("random_porous", "1"),
                                                          ("channel_array", "0"), ("channel_array", "1")]
    assert set(json.loads((out / "host.json").read_text())) == {"random_porous", "channel_array"}
    assert (out / "porosity_profiles.png").stat().st_size > 0
    assert "random_porous: Porosity" in capsys.readouterr().out
    bad = tmp_path / "bad"
    assert main(["host_analysis", "--out", str(bad), "--replicas", "0"]) == 2
    assert main(["host_analysis", "--out", str(bad), "--set", "host.porosity=1.5"]) == 2
    assert not bad.exists()
    assert main(["host_analysis", "--out", str(out), "--replicas", "2"]) == 2  # holds files: no --overwrite
    with pytest.raises(ConfigError, match="replicas"):
        analyse_hosts(_config(), ["random_porous"], replicas=1.5)
    assert all(float(r["SA [-]"]) >= 0.5 for r in rows)  # at least the collector under the pores
