"""Host geometry without plating (`python -m kmc host_analysis`), written on the Python API:
eight realisations of a 32 um deep random porous host and of a fibre mat, their SA, SV,
throat and porosity profile.

    python scenarios/host_analysis.py [OUT_DIR]
"""
import sys

from kmc import make_config
from kmc.studies.host_analysis import analyse_hosts, statistics, write_host_analysis


def main(out: str = "runs/scenario_host_analysis") -> None:
    config = make_config(overrides=["host.host_layers=32", "host.feature_size_um=2"])
    analyses = analyse_hosts(config, ["random_porous", "fibre_mat"], replicas=8)
    write_host_analysis(config, analyses, out)
    for row in statistics(analyses):
        print(f"{row['Host']:>14} {row['Observable']:<34} {row['Mean']:.3g} [{row['CI95 low']:.3g}, "
              f"{row['CI95 high']:.3g}]")
    print(f"outputs in {out}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
