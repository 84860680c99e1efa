"""Lithiophilic seeds (uniform, bottom, top) and a double-gradient host against a bare host
(the quick default of `python -m kmc lithiophilic`), written on the Python API.

    python scenarios/lithiophilic.py [OUT_DIR]
"""
import sys

from kmc import get_study, make_config, run_study
from kmc.coupling import columns as col


def main(out: str = "runs/scenario_lithiophilic") -> None:
    study = get_study("lithiophilic")
    config = make_config(overrides=study.overrides)
    results = run_study(study, config, out, echo=lambda text: None, overwrite=True)  # a demo: rerun in place
    for label, r in results.items():
        s = r.summary
        print(f"{label}: lithium inside {s[col.LITHIUM_INSIDE]:.3f}, above {s[col.LITHIUM_ABOVE]:.3f} mAh/cm^2")
    print(f"outputs in {out}")


if __name__ == "__main__":  # worker processes import this file: run only as a script
    main(*sys.argv[1:2])
