"""Plate/strip cycling of a porous host and a planar foil (the quick default of
`python -m kmc cycling`: DC, pulse and pulse-reverse plating, DC stripped at 5, 20 and 40
mA/cm^2), written on the Python API, then one extra foil run cycled from a schedule to show
the per-cycle balance of a single simulation.

    python scenarios/cycling.py [OUT_DIR]
"""
import sys

import numpy as np

from kmc import PlatingSimulation, get_study, make_config, run_study
from kmc.coupling import columns as col
from kmc.coupling.observables import cycle_balance
from kmc.studies.cycling import EMPTYING_SHIFT, emptying_summary


def main(out: str = "runs/scenario_cycling") -> None:
    study = get_study("cycling")
    config = make_config(overrides=study.overrides)
    results = run_study(study, config, out, echo=lambda text: None, overwrite=True)  # a demo: rerun in place
    for label, res in results.items():
        ce = [c[col.COULOMBIC_EFFICIENCY] for c in cycle_balance(res.segments)]
        shift = emptying_summary(res)[EMPTYING_SHIFT]  # < 0: the strips emptied the pores from the top
        print(f"{label}: CE per cycle {np.round(ce, 3).tolist()}, dead lithium after the last strip "
              f"{res.summary[col.DEAD_LITHIUM]:.4f} mAh/cm^2"
              + (f", pore emptying shift {shift:+.3f}" if np.isfinite(shift) else ""))
    print(f"outputs in {out}")

    # One run from a schedule: plate, rest, strip until fully stripped, twice.
    cfg = make_config(overrides=["host.kind=planar_foil", "host.nx=16", "host.ny=16", "host.reservoir_layers=12",
                                 "protocol.kind=schedule",
                                 'protocol.steps=["plate at 8 mA/cm^2 for 0.1 mAh/cm^2", "rest for 5 s", '
                                 '"strip at 8 mA/cm^2 until 1 V cutoff or fully stripped", '
                                 '"plate at 8 mA/cm^2 for 0.1 mAh/cm^2", '
                                 '"strip at 8 mA/cm^2 until 1 V cutoff or fully stripped"]'])
    sim = PlatingSimulation(cfg, cfg.host.build(np.random.SeedSequence(cfg.seed)))
    res = sim.run(cfg.protocol.segments(), snapshots=0)
    for c in cycle_balance(res.segments):
        print(f"foil schedule, cycle {c[col.CYCLE]}: plated {c[col.CYCLE_PLATED]:.4f}, stripped "
              f"{c[col.CYCLE_STRIPPED]:.4f} mAh/cm^2, CE {c[col.COULOMBIC_EFFICIENCY]:.3f}, dead lithium formed "
              f"{c[col.DEAD_FORMED]:.4f}, reconnected {c[col.DEAD_RECONNECTED]:.4f} mAh/cm^2; strip ended by "
              f"{c[col.STRIP_ENDED_BY]}")


if __name__ == "__main__":  # worker processes import this file: run only as a script
    main(*sys.argv[1:2])
