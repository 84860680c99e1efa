"""Command line: ``python -m kmc pulse_vs_dc`` and friends.

Bad input exits with a one-line error naming the problem (exit code 2) and writes nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .coupling.config import ConfigError, SimulationConfig, make_config

PULSE_VS_DC_HELP = """\
Plate the same capacity with DC and with pulsed current into a porous conductive host and
into a planar foil, and compare the deposits side by side (height, roughness, interface
area, tips, lithium inside vs above the host, cell potential).

Pulses (1 s on, 1 s open circuit) are compared twice: with the DC current as the pulse
on-current, and with the DC current as the pulse's average current. The study's current,
38 mA/cm^2, sits just under the cell's transport limit (printed at the end), where pulsing
matters; well below it growth is reaction-limited and the protocols agree. The quick default
(24 x 24 um footprint, 0.2 mAh/cm^2) takes about a minute on a 2-core laptop; --full runs a
larger lattice and capacity; --replicas N adds confidence intervals and p-values.

Examples:
  python -m kmc pulse_vs_dc
  python -m kmc pulse_vs_dc --out runs/pvd --seed 3 --set protocol.current_density_mA_cm2=8
  python -m kmc pulse_vs_dc --set protocol.on_time_s=0.5 --set protocol.off_time_s=2
  python -m kmc pulse_vs_dc --full --replicas 8
Any configuration field can be set with --set key=value (see `python -m kmc config`).
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="output folder (default: runs/<command>-seed<seed>)")
    p.add_argument("--seed", type=int, default=None, help="root random seed (default 0)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration field, e.g. --set protocol.capacity_mAh_cm2=0.2 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m kmc", description="Kinetic Monte Carlo of lithium plating in 3D hosts.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pulse_vs_dc", help="compare pulsed and DC plating in a porous host and a foil",
                       description=PULSE_VS_DC_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    p.add_argument("--full", action="store_true", help="full-size run (48 x 48 x 49 um, 0.5 mAh/cm^2 at 33 mA/cm^2; about 10 minutes on 2 cores)")
    p.add_argument("--replicas", type=int, default=1, help="independent replicas per case (ensemble statistics)")
    p.add_argument("--workers", type=int, default=None, help="local worker processes for the cases or replicas (default: cores; 1: serial)")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://host:port) for replicas")
    r = sub.add_parser("run", help="run one simulation from a JSON config file",
                       description="Run one coupled simulation described by a JSON config (any subset of fields).")
    r.add_argument("config", nargs="?", default=None, help="JSON config file (default: all defaults)")
    _common(r)
    e = sub.add_parser("ensemble", help="independent replicas of a run (or of pulse_vs_dc) with statistics",
                       description="Run N independent replicas (own host realisation and random streams each, "
                                   "spawned from the root seed) locally or on a Dask cluster; resumable: a rerun "
                                   "skips finished replicas. Writes replicas.csv and statistics.csv.")
    e.add_argument("config", nargs="?", default=None, help="JSON config file (default: all defaults)")
    _common(e)
    e.add_argument("--replicas", type=int, required=True, help="number of replicas")
    e.add_argument("--workers", type=int, default=None, help="local worker processes (default: cores; 1: serial)")
    e.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://host:port)")
    e.add_argument("--cases", choices=["single", "pulse_vs_dc"], default="single",
                   help="what each replica runs: the configured case, or the pulse-vs-DC study")
    e.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                   help="also checkpoint each run every STEPS macro-steps (resume mid-replica)")
    c = sub.add_parser("config", help="print the default configuration (JSON) with every field")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return ap


def _load(path: str | None) -> dict:
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"config file {path!r} is not valid JSON: {e}") from None
    return data.get("config", data)  # accept a previous run's config.json too


def _config(args, base: dict, extra: list[str] = ()) -> SimulationConfig:
    overrides = list(extra) + list(args.overrides)
    if getattr(args, "seed", None) is not None:
        if args.seed < 0:
            raise ConfigError(f"--seed {args.seed} is out of range: must be >= 0")
        overrides.append(f"seed={args.seed}")
    return make_config(base, overrides)


def _check_host(config: SimulationConfig) -> None:
    """Ensembles write their index before any replica builds a host: build one first, so an
    impossible host spec fails cleanly. (Single runs and the study build their hosts before
    they write anything.)"""
    import numpy as np

    config.host.build(np.random.SeedSequence(config.seed))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "config":
            print(json.dumps(make_config({}, args.overrides).model_dump(mode="json"), indent=2))
            return 0
        if args.command == "pulse_vs_dc":
            from .studies.pulse_vs_dc import FULL_OVERRIDES, STUDY_OVERRIDES, run_pulse_vs_dc

            if args.replicas < 1:
                raise ConfigError(f"--replicas {args.replicas} is out of range: must be >= 1")
            config = _config(args, {}, STUDY_OVERRIDES + (FULL_OVERRIDES if args.full else []))
            out = Path(args.out or f"runs/pulse_vs_dc-seed{config.seed}")
            if args.replicas > 1 or args.scheduler:
                from .studies.ensemble import run_pulse_vs_dc_ensemble

                _check_host(config)

                run_pulse_vs_dc_ensemble(config, out, replicas=args.replicas, workers=args.workers,
                                         scheduler=args.scheduler, progress=not args.no_progress)
            else:
                run_pulse_vs_dc(config, out, progress=not args.no_progress, workers=args.workers)
            return 0
        if args.command == "ensemble":
            from .studies.ensemble import format_comparison, run_ensemble, run_pulse_vs_dc_ensemble

            for name in ("replicas", "workers", "checkpoint_every"):
                v = getattr(args, name)
                if v is not None and v < 1:
                    raise ConfigError(f"--{name.replace('_', '-')} {v} is out of range: must be >= 1")
            config = _config(args, _load(args.config))
            _check_host(config)
            out = Path(args.out or f"runs/ensemble-seed{config.seed}")
            kw = dict(workers=args.workers, scheduler=args.scheduler, progress=not args.no_progress,
                      checkpoint_every_steps=args.checkpoint_every)
            if args.cases == "pulse_vs_dc":
                run_pulse_vs_dc_ensemble(config, out, args.replicas, **kw)
            else:
                res = run_ensemble(config, args.replicas, outdir=out, echo=print, **kw)
                if res.rows:
                    print(format_comparison(res.statistics, []))
            return 0
        if args.command == "run":
            from .studies.pulse_vs_dc import run_single

            config = _config(args, _load(args.config))
            out = Path(args.out or f"runs/run-seed{config.seed}")
            run_single(config, out, progress=not args.no_progress)
            return 0
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1
