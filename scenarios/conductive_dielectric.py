"""Channel hosts with alternating conductive and dielectric wall bands against all-conductive
and dielectric-top ones (the quick default of `python -m kmc conductive_dielectric`), written
on the Python API: where the lithium went, and when lithium connected each floating band.

    python scenarios/conductive_dielectric.py [OUT_DIR]
"""
import csv
import sys
from pathlib import Path

from kmc import get_study, make_config, run_study
from kmc.coupling import columns as col


def main(out: str = "runs/scenario_conductive_dielectric") -> None:
    study = get_study("conductive_dielectric")
    config = make_config(overrides=study.overrides)
    results = run_study(study, config, out, echo=lambda text: None, overwrite=True)  # a demo: rerun in place
    for label, r in results.items():
        s = r.summary
        print(f"{label}: lithium inside {s[col.LITHIUM_INSIDE]:.2f}, above {s[col.LITHIUM_ABOVE]:.3f} mAh/cm^2")
    with open(Path(out) / "connections.csv", newline="") as fh:
        for e in csv.DictReader(fh):
            when = (f"between {float(e['Capacity last unconnected [mAh.cm-2]']):.2f} and "
                    f"{float(e['Capacity connected [mAh.cm-2]']):.2f} mAh/cm^2"
                    if e["Connected at end [-]"] == "True" else "never")
            print(f"{e['Host']}: the floating band in layers {e['Bottom layer [-]']}-{e['Top layer [-]']} was "
                  f"connected by lithium {when}")
    print(f"outputs in {out}")


if __name__ == "__main__":  # worker processes import this file: run only as a script
    main(*sys.argv[1:2])
