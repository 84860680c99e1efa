"""Porosity-gradient and vertical-channel hosts against a random porous host of the same mean
porosity (the quick default of `python -m kmc gradient_hosts`), written on the Python API.

    python scenarios/gradient_hosts.py [OUT_DIR]
"""
import sys

from kmc import get_study, make_config, run_study
from kmc.coupling import columns as col


def main(out: str = "runs/scenario_gradient_hosts") -> None:
    study = get_study("gradient_hosts")
    config = make_config(overrides=study.overrides)
    results = run_study(study, config, out, echo=lambda text: None, overwrite=True)  # a demo: rerun in place
    for label, r in results.items():
        s = r.summary
        print(f"{label}: lithium inside {s[col.LITHIUM_INSIDE]:.2f}, above {s[col.LITHIUM_ABOVE]:.2f} mAh/cm^2")
    print(f"outputs in {out}")


if __name__ == "__main__":  # worker processes import this file: run only as a script
    main(*sys.argv[1:2])
