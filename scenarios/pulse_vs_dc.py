"""Pulse versus DC plating into a porous host and a planar foil (quick default).

    python scenarios/pulse_vs_dc.py [--out DIR] [--set key=value ...]
"""
import sys

from kmc.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["pulse_vs_dc", *sys.argv[1:]]))
