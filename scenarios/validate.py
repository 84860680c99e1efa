"""The KMC ensemble against the phase field (the quick default of `python -m kmc validate`),
written on the Python API.

    python scenarios/validate.py [OUT_DIR] [REPLICAS]
"""
import sys

from kmc import make_config, run_study
from kmc.studies.base import AcceptanceError
from kmc.studies.validate import Validate


def main(out: str = "runs/scenario_validate", replicas: str = "8") -> None:
    study = Validate(int(replicas))
    config = make_config(overrides=study.overrides)
    try:
        run_study(study, config, out, overwrite=True)  # prints the verdict table; a demo: rerun in place
    except AcceptanceError as e:  # everything is written; the exit status says the verdict
        sys.exit(f"error: {e}")
    print(f"validation.csv, cross_sections.png, depth_profile.png, versus_capacity.png in {out}")


if __name__ == "__main__":  # worker processes import this file: run only as a script
    main(*sys.argv[1:3])
