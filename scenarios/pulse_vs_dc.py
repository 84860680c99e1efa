"""Pulse versus DC plating into a porous host and a planar foil (the quick default of
`python -m kmc pulse_vs_dc`), written on the Python API.

    python scenarios/pulse_vs_dc.py [OUT_DIR]
"""
import sys

from kmc import get_study, make_config, run_study
from kmc.coupling import columns as col


def main(out: str = "runs/scenario_pulse_vs_dc") -> None:
    study = get_study("pulse_vs_dc")
    config = make_config(overrides=study.overrides)
    results = run_study(study, config, out, echo=lambda text: None, overwrite=True)  # a demo: rerun in place
    for host in ("Porous host", "Planar foil"):
        dc = results[f"{host} | DC"].summary
        for protocol in ("Pulse, equal on-current", "Pulse, equal average"):
            pulse = results[f"{host} | {protocol}"].summary
            print(f"{host}, {protocol}: RMS roughness {pulse[col.RMS_ROUGHNESS] / dc[col.RMS_ROUGHNESS]:.2f} x DC, "
                  f"lithium above the host {pulse[col.LITHIUM_ABOVE]:.3f} vs {dc[col.LITHIUM_ABOVE]:.3f} mAh/cm^2")
    print(f"outputs in {out}")


if __name__ == "__main__":  # worker processes import this file: run only as a script
    main(*sys.argv[1:2])
