"""The study protocol: a study plans its cases (hosts x protocols, each with its own seed
stream), the runner runs them (serially or in a process pool), and the study summarises and
draws them.  The CLI, the ensemble and ``--cases`` all read the registry in
:mod:`kmc.studies`, so a new study is one module with one :class:`Study` subclass.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..coupling import columns as col
from ..coupling.config import SimulationConfig
from ..coupling.io import write_csv, write_json
from ..coupling.observables import cycle_balance, is_stripping_segment
from ..coupling.simulation import RunResult
from ..coupling.streams import provenance, root_sequence, study_streams
from ..coupling.waveforms import Segment, expected_duration
from ..hosts import Host
from ..hosts.analysis import host_analysis
from .parallel import kernels_compiled as _kernels_compiled


# summary.csv: the final deposit, the cell potential and the charge error of each case
SUMMARY_COLUMNS = [col.MAX_HEIGHT, col.MEAN_HEIGHT, col.RMS_ROUGHNESS, col.INTERFACE_AREA, col.TIPS,
                   col.LITHIUM_INSIDE, col.LITHIUM_ABOVE, col.DEAD_LITHIUM, col.PLATED_CAP, col.MEAN_POTENTIAL,
                   col.CHARGE_ERROR]


@dataclass
class Case:
    """One run of a study: a host under a protocol, with its own seed stream."""

    host_label: str
    protocol_label: str
    host: Host
    segments: list[Segment]
    seed: np.random.SeedSequence
    config: SimulationConfig | None = None  # the case's own physics (a study varying it); None: the study's

    def config_for(self, study_config: SimulationConfig) -> SimulationConfig:
        return study_config if self.config is None else self.config

    @property
    def label(self) -> str:
        return f"{self.host_label} | {self.protocol_label}"

    @property
    def slug(self) -> str:
        return (self.host_label + "_" + self.protocol_label).lower().replace(" ", "_").replace("(", "").replace(
            ")", "").replace("-", "_").replace(",", "")


@dataclass
class StudyPlan:
    hosts: dict[str, Host]
    cases: list[Case]


class Study:
    """Base of every study.  Subclasses set ``name`` and ``help`` and implement
    :meth:`protocols` (and :meth:`hosts` when they compare hosts) and :meth:`write_outputs`."""

    name = ""
    help = ""
    description = ""  # the CLI's long help
    overrides: list[str] = []  # the study's defaults on top of the configuration's
    full_overrides: list[str] = []  # ``--full`` adds these
    key_observables: list[str] = []  # what ensembles compare cases on
    reference_protocol: str | None = None  # ensembles give every other protocol's ratio to it

    def hosts(self, config: SimulationConfig, seed: np.random.SeedSequence) -> dict[str, Host]:
        """The hosts the study compares, all built from the one hosts stream."""
        return {config.host.kind: config.host.build(seed)}

    def protocols(self, config: SimulationConfig) -> dict[str, list[Segment]]:
        raise NotImplementedError

    def plan(self, config: SimulationConfig, root: np.random.SeedSequence) -> StudyPlan:
        """Hosts and cases (host x protocol order); the hosts stream comes first, then one stream
        per case, so a case's result depends only on the root seed (kmc.coupling.streams)."""
        prots = self.protocols(config)
        host_ss, case_ss = study_streams(root, self.n_cases(config, prots))
        host_map = self.hosts(config, host_ss)
        pairs = [(h, p) for h in host_map for p in prots]
        return StudyPlan(host_map, [Case(h, p, host_map[h], prots[p], ss) for (h, p), ss in zip(pairs, case_ss)])

    def n_cases(self, config: SimulationConfig, prots: dict) -> int:
        """Cases the plan will hold (the seed tree is spawned before the hosts are built)."""
        return len(prots) * len(self.host_labels(config))

    def host_labels(self, config: SimulationConfig) -> list[str]:
        return [config.host.kind]

    def provenance_extra(self, config: SimulationConfig, plan: StudyPlan) -> dict:
        return {"hosts": {k: v.summary() for k, v in plan.hosts.items()}}

    def series_path(self, outdir: Path, case: Case) -> Path:
        """Where a case's time series streams to while it runs."""
        return outdir / "cases" / f"{case.slug}.csv"

    def write_outputs(self, config: SimulationConfig, plan: StudyPlan, results: dict[str, RunResult],
                      outdir: Path, echo) -> str | None:
        """Write the study's files and print its summary; a study with an acceptance check of
        its own returns a one-line account of the checks that failed (None: passed, or none)."""
        raise NotImplementedError


class HostVersusFoil(Study):
    """A study of the configured host against a planar foil of the same footprint and reservoir."""

    def host_labels(self, config):
        return ["Porous host", "Planar foil"]

    def hosts(self, config, seed):
        foil = config.host.model_copy(update={"kind": "planar_foil", "seed_fraction": 0.0,
                                              "dielectric_top_fraction": 0.0, "activity_bottom": 1.0,
                                              "activity_top": 1.0, "band_period_um": 0.0})
        return {"Porous host": config.host.build(seed), "Planar foil": foil.build(seed)}


class HostComparison(Study):
    """Hosts (``host_variants``: label -> config.host updates, built from one hosts stream)
    compared under the configured DC plating."""

    host_variants: dict[str, dict] = {}

    def host_labels(self, config):
        return list(self.host_variants)

    def host_specs(self, config) -> dict:
        """label -> the host specification of each variant (studies whose variants depend on
        the configuration override this; a ValueError becomes the user's ConfigError)."""
        return {label: config.host.model_copy(update=update) for label, update in self.host_variants.items()}

    def hosts(self, config, seed):
        from ..coupling.config import ConfigError

        try:
            specs = self.host_specs(config)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return {label: spec.build(seed) for label, spec in specs.items()}

    def protocols(self, config):
        from ..coupling.waveforms import dc_plating

        p = config.protocol
        return {"DC": dc_plating(p.current_density_mA_cm2, p.capacity_mAh_cm2)}


class ChargeToleranceError(RuntimeError):
    """A run ended with a charge error above the tolerance (its outputs are written)."""


class AcceptanceError(RuntimeError):
    """A study ran to the end and its own acceptance check failed (its outputs are written;
    ``results`` holds the runs)."""

    def __init__(self, message: str, results: dict | None = None):
        super().__init__(message)
        self.results = results


def run_case(config: SimulationConfig, host: Host, segments, seed_sequence, label: str, outdir=None, progress=None,
             series=None, checkpoint_dir=None, resume: bool = False, checkpoint_every: int | None = None):
    """One run of a host under a protocol: the coupled KMC run, or the phase field (config.model)."""
    from ..coupling.phasefield_run import model_run

    sim = model_run(config, host, seed_sequence)
    return sim.run(segments, label=label, outdir=outdir, progress=progress, series=series,
                   checkpoint_dir=checkpoint_dir, checkpoint_every_steps=checkpoint_every, resume=resume)


def _run_job(job, progress=None):
    from ..workers import stamp

    config, case, outdir, series, checkpoints, resume, every = job
    stamp(f"case start {case.label}")
    result = run_case(case.config_for(config), case.host, case.segments, case.seed, case.slug, outdir / "snapshots",
                      progress, series, checkpoints, resume, every)
    stamp(f"case done {case.label}")
    return case.label, result


# A case estimated shorter (preflight.estimate_seconds) is not checkpointed unless asked
# (--checkpoint-every): --resume reruns it, which costs less than its checkpoints (~55 ms each,
# four or five of a quick pulse_vs_dc's 6 s of cases). KMC runs only: a phase-field checkpoint
# also resets the solver state (as a resumed run would), so skipping one would change the run.
CHECKPOINT_MIN_SECONDS = 60.0


def _checkpoint_dir(config: SimulationConfig, case: Case, outdir: Path, cost: float, resume: bool, every):
    """Where the case checkpoints, or None (short KMC cases; see CHECKPOINT_MIN_SECONDS)."""
    path = outdir / "checkpoints" / case.slug
    if every is not None or cost >= CHECKPOINT_MIN_SECONDS or case.config_for(config).model != "kmc":
        return path
    return path if resume and path.is_dir() else None  # an earlier run's checkpoints are still used


def summary_row(result: RunResult, case: Case | None = None) -> dict:
    """One line of summary.csv: the final deposit, the time-weighted cell potential under
    current and the charge error."""
    labels = {} if case is None else {"Host": case.host_label, "Protocol": case.protocol_label}
    return {**labels, **{k: result.summary[k] for k in SUMMARY_COLUMNS}}


def labelled_rows(results: dict[str, RunResult], cases: list[Case], what: str) -> list[dict]:
    """Every case's rows (``what``: 'rows' for the time series, 'segments') with Host and
    Protocol columns first."""
    return [{"Host": c.host_label, "Protocol": c.protocol_label, **r} for c in cases
            for r in getattr(results[c.label], what)]


def _preflight(study: Study, config: SimulationConfig, plan: StudyPlan, workers: int, allow_coarse: bool) -> list:
    from ..coupling.preflight import check_case, check_memory, estimate_seconds

    warnings = []
    phasefield = config.model == "phasefield"
    for case in plan.cases:
        if phasefield:  # its own checks (the KMC's apply in part)
            from ..coupling.phasefield_run import check_phasefield_case

            warnings += check_phasefield_case(case.config_for(config), case.host, case.segments, case.label)
        else:
            warnings += check_case(config, case.host, case.segments, case.label, allow_coarse=allow_coarse)
    cells = config.phasefield.refinement ** 3 if phasefield else 1  # phase-field cells per voxel, at most
    check_memory(max(c.host.phase.size for c in plan.cases) * cells, min(workers, len(plan.cases)))
    total = 0.0 if phasefield else sum(estimate_seconds(config, c.host, c.segments) for c in plan.cases) / workers
    if total > 600:  # worth saying before a long wait
        warnings.append(f"rough estimate: {total / 60:.0f} min of wall time on {workers} laptop core(s)")
    return warnings


def run_study(study: Study, config: SimulationConfig, outdir: str | Path, *, progress: bool = True,
              workers: int | None = None, echo=print, overwrite: bool = False, resume: bool = False,
              allow_coarse: bool = False, checkpoint_every: int | None = None,
              scheduler=None) -> dict[str, RunResult]:
    """Plan the study, check it and its output folder (before anything is written), run every
    case (``workers`` processes, or on the Dask ``scheduler``, an address or Client, whose
    workers write into ``outdir``: a file system they share; cases are independent, so running
    them in parallel changes nothing), then write the study's outputs.  Time series stream into
    the folder as the cases run and checkpoints let ``resume`` continue an interrupted study.  A
    case whose charge error exceeds the tolerance raises :class:`ChargeToleranceError`, and a
    study whose own acceptance check fails :class:`AcceptanceError`, both after everything is
    written."""
    from ..coupling.outputs import OutputFolder
    from ..coupling.preflight import check_memory
    from ..workers import stamp

    t_start = time.perf_counter()
    n_workers = max(1, workers if workers else (os.cpu_count() or 1))
    if config.host.kind != "image":  # before any host is built: a huge one would not fit to be checked
        check_memory(int(np.prod(config.host.shape)), n_workers)
    plan = study.plan(config, root_sequence(config.seed))
    n_workers = min(n_workers, len(plan.cases))
    warnings = _preflight(study, config, plan, n_workers, allow_coarse)
    folder = OutputFolder(outdir, config.digest(), overwrite=overwrite, resume=resume)
    folder.check()
    folder.prepare()
    outdir = folder.path
    write_json(outdir / "config.json", provenance(config, **study.provenance_extra(config, plan),
                                                  **({"warnings": warnings} if warnings else {})))
    write_json(outdir / "host.json", {label: host_analysis(h) for label, h in plan.hosts.items()})
    for w in warnings:
        echo(f"warning: {w}")
    if not _kernels_compiled():
        echo("compiling kernels (first run only, about 25 s)...")
    folder.status("running", cases=[c.label for c in plan.cases])
    stamp("cases start")
    try:
        results = _run_cases(study, config, plan, outdir, n_workers, progress, resume, checkpoint_every, scheduler)
    except KeyboardInterrupt:
        folder.status("interrupted", reason="interrupted (Ctrl-C)", series=str(outdir),
                      note="time series up to the last macro-step are in the .partial.csv files; --resume continues")
        raise
    except Exception as e:
        folder.status("failed", reason=f"{type(e).__name__}: {e}")
        raise
    stamp("cases done")
    failed_acceptance = study.write_outputs(config, plan, results, outdir, echo)
    stamp("outputs written")
    write_csv(outdir / "segments.csv", labelled_rows(results, plan.cases, "segments"))
    cycles = [{"Host": c.host_label, "Protocol": c.protocol_label, **row} for c in plan.cases
              if any(is_stripping_segment(seg) for seg in results[c.label].segments)
              for row in cycle_balance(results[c.label].segments)]
    if cycles:  # runs that strip: plated, stripped, Coulombic efficiency, dead lithium per cycle
        write_csv(outdir / "cycles.csv", cycles)
    wall = time.perf_counter() - t_start
    timing = {"wall [s]": wall}
    for r in results.values():
        for k, v in r.timing.items():
            timing[k] = timing.get(k, 0.0) + v
    write_json(outdir / "timing.json", timing)
    echo(f"wall time {wall:.1f} s (continuum {timing['continuum [s]']:.1f} s, KMC {timing['kmc [s]']:.1f} s, "
         f"observables {timing['observables [s]']:.1f} s); outputs in {outdir}")
    _finish(folder, results, failed_acceptance)
    return results


def _finish(folder, results: dict[str, RunResult], failed_acceptance: str | None = None) -> None:
    """status.json complete, or failed with the cases that missed the charge tolerance; a
    complete study whose acceptance failed says so there and raises :class:`AcceptanceError`."""
    import shutil

    from ..coupling.galvanostat import CHARGE_TOLERANCE_PERCENT

    missed = {k: r.summary[col.CHARGE_ERROR] for k, r in results.items()
              if not r.summary[col.CHARGE_ERROR] <= CHARGE_TOLERANCE_PERCENT}
    if missed:
        reason = "charge error above the {:g} % tolerance: {}".format(
            CHARGE_TOLERANCE_PERCENT, "; ".join(f"{k} {v:.2f} %" for k, v in missed.items()))
        folder.status("failed", reason=reason)
        raise ChargeToleranceError(f"{reason} (outputs written to {folder.path})")
    shutil.rmtree(folder.path / "checkpoints", ignore_errors=True)  # complete: nothing to resume
    if failed_acceptance is None:
        folder.status("complete")
        return
    folder.status("complete", acceptance=failed_acceptance)
    raise AcceptanceError(f"{failed_acceptance} (outputs written to {folder.path})", results)


def _run_cases(study, config, plan, outdir, n_workers, progress, resume, every,
               scheduler=None) -> dict[str, RunResult]:
    from tqdm.auto import tqdm

    from ..coupling.preflight import estimate_seconds

    durations = {case.label: expected_duration(case.segments) for case in plan.cases}
    bar = tqdm(total=sum(durations.values()), unit="s", desc=f"{study.name} (simulated time)",
               disable=not progress, bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s simulated [{elapsed}<{remaining}]")
    cost = [estimate_seconds(case.config_for(config), case.host, case.segments) for case in plan.cases]
    checkpoints = [_checkpoint_dir(config, case, outdir, c, resume, every) for case, c in zip(plan.cases, cost)]
    jobs = [(config, case, outdir, study.series_path(outdir, case), ckpt, resume, every)
            for case, ckpt in zip(plan.cases, checkpoints)]
    results: dict[str, RunResult] = {}
    try:
        if scheduler is not None:
            results = _run_on_dask(jobs, scheduler, bar, durations)
        elif n_workers == 1:
            for job, case in zip(jobs, plan.cases):
                start = bar.n

                def tick(row, start=start, label=case.label):  # the bar follows the case's simulated time
                    _advance(bar, start + min(row[col.TIME], durations[label]))  # a charge-terminated end may run over
                    bar.set_postfix_str(f"{label}: {row[col.PLATED_CAP]:.3f} mAh/cm^2 plated", refresh=False)

                results[case.label] = _run_job(job, tick)[1]
                _advance(bar, start + durations[case.label])
        else:  # longest first, so the last case to finish does not start last (results do not depend on it)
            from continuum.constants import ELECTROLYTE

            # equal estimates: more electrolyte first (the field solves' unknowns; a foil also took 1.3-2x a
            # porous host's macro-steps under the same protocol in pulse_vs_dc)
            pores = [np.count_nonzero(case.host.phase == ELECTROLYTE) for case in plan.cases]
            order = sorted(range(len(jobs)), key=lambda i: (-cost[i], -pores[i]))
            results = _run_in_pool([jobs[i] for i in order], n_workers, bar, durations,
                                   compile_first=not _kernels_compiled(), last_started=_import_plotting_meanwhile)
    finally:
        bar.close()
    return {case.label: results[case.label] for case in plan.cases}


def _import_plotting_meanwhile() -> None:
    """Import matplotlib and the figures module in a background thread, so the outputs start
    drawing at once when the last case is in (0.4 CPU-s of a quick study). Called once the last
    case has a worker: earlier, the import would slow all cases; later (a worker idle), the
    last two cases of a balanced study end so close together that the import came after
    them. The import lock makes a later import wait for it."""
    import threading

    def _load():
        from . import plots  # noqa: F401

    threading.Thread(target=_load, name="import-plots", daemon=True).start()


def _advance(bar, value: float) -> None:
    """Set the bar to ``value`` (simulated seconds), never past its total."""
    bar.n = min(bar.total, value)
    bar.refresh()


def _run_on_dask(jobs, scheduler, bar, durations) -> dict[str, RunResult]:
    """Cases as Dask tasks (each worker writes its case's series and snapshots into the study's
    folder); a Ctrl-C or a failed case cancels the others."""
    from .parallel import executor

    submit, as_completed, close = executor(1, scheduler, len(jobs))
    futures, results = [], {}
    try:
        futures = [submit(_run_job, job) for job in jobs]
        for fut in as_completed(futures):
            label, results[label] = fut.result()
            bar.set_postfix_str(label)
            _advance(bar, bar.n + durations[label])
    finally:
        close(futures)
    return results


def _run_in_pool(jobs, n_workers, bar, durations, compile_first: bool = False,
                 last_started=None) -> dict[str, RunResult]:
    """Cases in worker processes; Ctrl-C ends them at once (not after their current case).
    ``compile_first`` (nothing compiled yet): two workers compile the KMC's and the continuum's
    kernels side by side before any case starts, and each then loads the other half from
    Numba's cache (every worker would otherwise compile all of them). ``last_started`` is
    called (once) as soon as every case left has a worker."""
    import multiprocessing
    from concurrent.futures import as_completed, wait

    from ..workers import end_pool, process_pool
    from .parallel import compile_continuum_kernels, compile_kmc_kernels

    results = {}
    pool = process_pool(n_workers)
    try:
        if compile_first and n_workers >= 2:
            for fut in wait([pool.submit(compile_kmc_kernels), pool.submit(compile_continuum_kernels)]).done:
                fut.result()
        if last_started is not None and len(jobs) <= n_workers:
            last_started()
        for fut in as_completed([pool.submit(_run_job, job) for job in jobs]):
            label, results[label] = fut.result()
            if last_started is not None and len(jobs) - len(results) == n_workers:
                last_started()  # this result's worker took the last case
            bar.set_postfix_str(label)
            _advance(bar, bar.n + durations[label])
    except BaseException:
        for child in multiprocessing.active_children():
            child.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    end_pool(pool)
    return results
