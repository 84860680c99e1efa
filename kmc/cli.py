"""Command line: ``python -m kmc pulse_vs_dc`` and friends.  Every registered study
(:mod:`kmc.studies`) is a subcommand.

Bad input exits with a one-line error naming the problem (exit code 2) and writes nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .coupling.config import ConfigError, SimulationConfig, format_config, make_config
from .studies.base import AcceptanceError, ChargeToleranceError
from .studies.ensemble import EnsembleIncomplete


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="output folder (default: runs/<command>-seed<seed>-<config digest>)")
    p.add_argument("--seed", type=int, default=None, help="root random seed (default 0)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration field, e.g. --set protocol.capacity_mAh_cm2=0.2 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--model", choices=("kmc", "phasefield"), default=None,
                   help="kmc (default) or phasefield: the phase-field model on the same hosts and protocols "
                        "(same as --set model=...; options: --set phasefield.refinement=2 ...)")


def _folder(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace the run an existing --out folder holds")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run of this configuration in --out from its checkpoints")
    p.add_argument("--allow-coarse", action="store_true",
                   help="run even when the protocol plates fewer than 100 packets (warned and recorded)")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                   help="checkpoint each case every STEPS macro-steps (default 25), for --resume")


def _parallel(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes for the cases or replicas (default: cores; 1: serial)")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://host:port) for replicas "
                   "(validate: for its cases, whose workers write into --out: a shared file system)")


def build_parser() -> argparse.ArgumentParser:
    from .studies import STUDIES

    ap = argparse.ArgumentParser(prog="python -m kmc", description="Kinetic Monte Carlo of lithium plating in 3D hosts.")
    sub = ap.add_subparsers(dest="command", required=True)
    for name, study in STUDIES.items():
        if name == "single":  # that one is `run`
            continue
        p = sub.add_parser(name, help=study.help, description=study.description or study.help,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(p)
        p.add_argument("--full", action="store_true", help="the full-size study (" + " ".join(study.full_overrides) + ")")
        if hasattr(study, "add_arguments"):  # its own options (validate: --replicas are its KMC replicas)
            study.add_arguments(p)
        else:
            p.add_argument("--replicas", type=int, default=1, help="independent replicas per case (ensemble statistics)")
        _parallel(p)
        _folder(p)
    r = sub.add_parser("run", help="run one simulation from a JSON config file",
                       description="Run one coupled simulation described by a JSON config (any subset of fields).")
    r.add_argument("config", nargs="?", default=None, help="JSON config file (default: all defaults)")
    _common(r)
    _folder(r)
    e = sub.add_parser("ensemble", help="independent replicas of a run (or of a study) with statistics",
                       description="Run N independent replicas (own host realisation and random streams each, "
                                   "spawned from the root seed) locally or on a Dask cluster; resumable: a rerun "
                                   "skips finished replicas. Writes replicas.csv and statistics.csv.")
    e.add_argument("config", nargs="?", default=None, help="JSON config file (default: all defaults)")
    _common(e)
    e.add_argument("--replicas", type=int, required=True, help="number of replicas")
    _parallel(e)
    e.add_argument("--cases", choices=sorted(STUDIES), default="single",
                   help="what each replica runs: the configured case (single), or a study")
    e.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                   help="also checkpoint each run every STEPS macro-steps (resume mid-replica)")
    from .hosts import host_kinds
    from .studies.host_analysis import DEFAULT_KINDS, HELP as HOSTS_HELP

    h = sub.add_parser("host_analysis", help="host geometry (porosity, SA, SV, tortuosity, throats) over replicas",
                       description=HOSTS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    h.add_argument("--out", default=None, help="output folder (default: runs/host_analysis-seed<seed>-<digest>)")
    h.add_argument("--seed", type=int, default=None, help="root random seed (default 0)")
    h.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration field, e.g. --set host.porosity=0.7 (repeatable)")
    h.add_argument("--kinds", nargs="+", default=list(DEFAULT_KINDS),
                   choices=[k for k in host_kinds() if k not in ("image", "planar_foil")],
                   help="host kinds to build (default: %(default)s)")
    h.add_argument("--replicas", type=int, default=8, help="realisations of each kind (default 8)")
    h.add_argument("--overwrite", action="store_true", help="write into an --out folder that holds files")
    c = sub.add_parser("config", help="every configuration field: its value (default or --set), unit and meaning")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    c.add_argument("--json", action="store_true", help="the configuration as JSON (a file `run` reads)")
    return ap


def _load(path: str | None) -> dict:
    """The configuration in a JSON file (or a previous run's config.json), as a dict."""
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path!r} is not UTF-8 text: {e.reason} at byte {e.start}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"config file {path!r} is not valid JSON: {e}") from None
    except OSError as e:
        raise ConfigError(f"config file {path!r} cannot be read: {e.strerror}") from None
    if isinstance(data, dict) and "config" in data:  # a previous run's config.json
        data = data["config"]
        where = f"config file {path!r}: its 'config' entry"
    else:
        where = f"config file {path!r}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a JSON object of configuration sections, got {type(data).__name__}")
    return data


def _config(args, base: dict, extra: list[str] = ()) -> SimulationConfig:
    overrides = list(extra) + list(args.overrides)
    if getattr(args, "model", None) is not None:
        overrides.append(f"model={args.model}")
    if getattr(args, "seed", None) is not None:
        if args.seed < 0:
            raise ConfigError(f"--seed {args.seed} is out of range: must be >= 0")
        overrides.append(f"seed={args.seed}")
    return make_config(base, overrides)


def _check_counts(args, names) -> None:
    for name in names:
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise ConfigError(f"--{name.replace('_', '-')} {v} is out of range: must be >= 1")


def _check_hosts(study_name: str, config: SimulationConfig) -> None:
    """Ensembles write their index before any replica builds a host: plan replica 0 first (the
    same hosts from the same stream it will use), so an impossible host spec fails cleanly."""
    from .coupling.streams import replica_sequence
    from .studies import get_study

    get_study(study_name).plan(config, replica_sequence(config.seed, 0))


def _out(args, command: str, config: SimulationConfig) -> Path:
    """--out, or a default folder named by the command, the seed and the config digest (two
    configurations never share one)."""
    return Path(args.out or f"runs/{command}-seed{config.seed}-{config.digest()[:8]}")


def _check_scheduler(address) -> None:
    """An unreachable Dask scheduler is a one-line error before anything is written."""
    if address is None:
        return
    try:
        from dask.distributed import Client
    except ImportError:
        raise ConfigError("--scheduler needs Dask: pip install 'lithium-kmc[dask]'") from None
    try:
        Client(address, timeout=5).close()
    except Exception as e:  # OSError, TimeoutError, ValueError for a malformed address
        raise ConfigError(f"--scheduler {address}: cannot connect ({type(e).__name__}: {e})") from None


def _run_study_command(args) -> None:
    from .studies import get_study, run_study

    study = get_study(args.command)
    _check_counts(args, ("replicas", "workers", "checkpoint_every"))
    own_replicas = hasattr(study, "from_args")
    if own_replicas:  # a study with its own options runs its replicas as its cases (on Dask too)
        study, args.replicas = study.from_args(args), 1
    config = _config(args, {}, study.overrides + (study.full_overrides if args.full else []))
    out = _out(args, study.name, config)
    _check_scheduler(args.scheduler)
    if args.replicas > 1 or (args.scheduler and not own_replicas):
        from .studies.ensemble import run_study_ensemble

        _check_hosts(study.name, config)
        _check_replicas(run_study_ensemble(study.name, config, out, replicas=args.replicas, workers=args.workers,
                                           scheduler=args.scheduler, progress=not args.no_progress))
    else:
        run_study(study, config, out, progress=not args.no_progress, workers=args.workers,
                  overwrite=args.overwrite, resume=args.resume, allow_coarse=args.allow_coarse,
                  checkpoint_every=args.checkpoint_every, scheduler=args.scheduler)


def _run_ensemble_command(args) -> None:
    from .studies.ensemble import format_comparison, run_ensemble, run_study_ensemble

    _check_counts(args, ("replicas", "workers", "checkpoint_every"))
    config = _config(args, _load(args.config))
    _check_hosts(args.cases, config)
    _check_scheduler(args.scheduler)
    out = _out(args, "ensemble", config)
    kw = dict(workers=args.workers, scheduler=args.scheduler, progress=not args.no_progress,
              checkpoint_every_steps=args.checkpoint_every)
    if args.cases != "single":
        res = run_study_ensemble(args.cases, config, out, args.replicas, **kw)
    else:
        res = run_ensemble(config, args.replicas, outdir=out, echo=print, **kw)
        if res.rows:
            print(format_comparison(res.statistics, []))
    _check_replicas(res)


def _check_replicas(res) -> None:
    from .studies.ensemble import EnsembleIncomplete

    if res.failures:
        raise EnsembleIncomplete(f"{len(res.failures)} replica(s) failed: "
                                 + "; ".join(f"{r}: {rec['error']}" for r, rec in sorted(res.failures.items()))
                                 + f" (see {res.outdir / 'replicas'}/*.failed.json; a rerun retries them)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "config":
            config = make_config({}, args.overrides)
            print(json.dumps(config.model_dump(mode="json"), indent=2) if args.json else format_config(config))
        elif args.command == "ensemble":
            _run_ensemble_command(args)
        elif args.command == "host_analysis":
            from .studies.host_analysis import analyse_hosts, format_statistics, statistics, write_host_analysis

            config = _config(args, {})
            _check_counts(args, ("replicas",))
            out = _out(args, "host_analysis", config)
            if out.exists() and any(out.iterdir()) and not args.overwrite:
                raise ConfigError(f"--out {out} holds files: pass --overwrite to replace them, or another --out")
            analyses = analyse_hosts(config, args.kinds, args.replicas)  # before anything is written
            write_host_analysis(config, analyses, out)
            print(format_statistics(statistics(analyses)))
            print(f"mean [95 % CI] over {args.replicas} replicas; outputs in {out}")
        elif args.command == "run":
            from .studies import get_study, run_study

            config = _config(args, _load(args.config))
            _check_counts(args, ("checkpoint_every",))
            run_study(get_study("single"), config, _out(args, "run", config), progress=not args.no_progress,
                      workers=1, overwrite=args.overwrite, resume=args.resume, allow_coarse=args.allow_coarse,
                      checkpoint_every=args.checkpoint_every)
        else:
            _run_study_command(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (AcceptanceError, ChargeToleranceError, EnsembleIncomplete) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: what was computed is kept (status.json says where); --resume continues", file=sys.stderr)
        return 130
    return 0
