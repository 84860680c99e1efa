"""Hosts of different surface area (SA) and pore volume (SV) under a held potential and a constant
current (the quick default of `python -m kmc sa_sv`), written on the Python API; with a replica
count, the ensemble whose per-replica fits the README quotes.

    python scenarios/sa_sv.py [OUT_DIR] [REPLICAS]
"""
import sys

from kmc import get_study, make_config, run_study
from kmc.coupling import columns as col
from kmc.hosts.analysis import host_analysis
from kmc.studies.sa_sv import POTENTIOSTATIC, run_sa_sv_ensemble


def main(out: str = "runs/scenario_sa_sv", replicas: str = "1") -> None:
    study = get_study("sa_sv")
    config = make_config(overrides=study.overrides)
    if int(replicas) > 1:  # replica_fits.csv, fit_statistics.csv: slope and R^2 per fit, mean [95 % CI]
        run_sa_sv_ensemble(config, out, int(replicas), workers=2)
        return
    results = run_study(study, config, out, echo=lambda text: None, overwrite=True)  # a demo: rerun in place
    for label, r in results.items():
        s, host = r.summary, host_analysis(r.host)
        if POTENTIOSTATIC in label:
            print(f"{label}: SA {host['SA']:.2f}, SV {host['SV_per_um']:.3f}/um; hold current initial "
                  f"{s[col.HOLD_INITIAL_CURRENT]:.2f}, late {s[col.HOLD_LATE_CURRENT]:.2f} mA/cm^2")
    print(f"outputs in {out} (fits.csv, current.png)")


if __name__ == "__main__":  # worker processes import this file: run only as a script
    main(*sys.argv[1:3])
