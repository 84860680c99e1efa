"""Top deposition in a deep porous host and the review's remedies (the quick default of
`python -m kmc top_deposition`), written on the Python API.

    python scenarios/top_deposition.py [OUT_DIR]
"""
import sys

from kmc import get_study, make_config, run_study
from kmc.coupling import columns as col


def main(out: str = "runs/scenario_top_deposition") -> None:
    study = get_study("top_deposition")
    config = make_config(overrides=study.overrides)
    results = run_study(study, config, out, echo=lambda text: None, overwrite=True)  # a demo: rerun in place
    for label, r in results.items():
        s = r.summary
        inside = s[col.LITHIUM_INSIDE] / (s[col.LITHIUM_INSIDE] + s[col.LITHIUM_ABOVE])
        print(f"{label}: {100 * inside:.1f} % of the lithium inside the host, "
              f"{s[col.LITHIUM_ABOVE]:.3f} mAh/cm^2 above it")
    print(f"outputs in {out}")


if __name__ == "__main__":  # worker processes import this file: run only as a script
    main(*sys.argv[1:2])
