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
from ..coupling.io import write_json
from ..coupling.simulation import PlatingSimulation, RunResult
from ..coupling.streams import provenance, root_sequence, study_streams
from ..coupling.waveforms import Segment
from ..hosts import Host


@dataclass
class Case:
    """One run of a study: a host under a protocol, with its own seed stream."""

    host_label: str
    protocol_label: str
    host: Host
    segments: list[Segment]
    seed: np.random.SeedSequence

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

    def write_outputs(self, config: SimulationConfig, plan: StudyPlan, results: dict[str, RunResult],
                      outdir: Path, echo) -> None:
        raise NotImplementedError


def run_case(config: SimulationConfig, host: Host, segments, seed_sequence, label: str, outdir=None, progress=None):
    """One coupled run of a host under a protocol."""
    sim = PlatingSimulation(config, host, seed_sequence=seed_sequence)
    return sim.run(segments, label=label, outdir=outdir, progress=progress)


def _run_job(job):
    config, case, snapdir = job
    return case.label, run_case(config, case.host, case.segments, case.seed, case.slug, snapdir)


def run_study(study: Study, config: SimulationConfig, outdir: str | Path, *, progress: bool = True,
              workers: int | None = None, echo=print) -> dict[str, RunResult]:
    """Plan, run every case (``workers`` processes; cases are independent, so running them in
    parallel changes nothing in the results), write the study's outputs into ``outdir``."""
    from tqdm.auto import tqdm

    outdir = Path(outdir)
    t_start = time.perf_counter()
    plan = study.plan(config, root_sequence(config.seed))
    write_json(outdir / "config.json", provenance(config, **study.provenance_extra(config, plan)))
    durations = {case.label: sum(seg.duration for seg in case.segments) for case in plan.cases}
    bar = tqdm(total=round(sum(durations.values()), 6), unit="s", desc=f"{study.name} (simulated time)",
               disable=not progress, bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s simulated [{elapsed}<{remaining}]")
    jobs = [(config, case, outdir / "snapshots") for case in plan.cases]
    results: dict[str, RunResult] = {}
    n_workers = max(1, min(workers if workers else (os.cpu_count() or 1), len(jobs)))
    if n_workers == 1:
        for config_, case, snapdir in jobs:
            start = bar.n

            def tick(row, start=start):  # the bar follows the case's simulated time
                bar.update(start + row[col.TIME] - bar.n)

            results[case.label] = run_case(config_, case.host, case.segments, case.seed, case.slug, snapdir, tick)
            bar.update(start + durations[case.label] - bar.n)
    else:
        from concurrent.futures import as_completed

        from .parallel import process_pool

        with process_pool(n_workers) as pool:
            for fut in as_completed([pool.submit(_run_job, job) for job in jobs]):
                label, results[label] = fut.result()
                bar.set_postfix_str(label)
                bar.update(durations[label])
        results = {case.label: results[case.label] for case in plan.cases}
    bar.close()
    study.write_outputs(config, plan, results, outdir, echo)
    wall = time.perf_counter() - t_start
    timing = {"wall [s]": wall}
    for r in results.values():
        for k, v in r.timing.items():
            timing[k] = timing.get(k, 0.0) + v
    write_json(outdir / "timing.json", timing)
    echo(f"wall time {wall:.1f} s (continuum {timing['continuum [s]']:.1f} s, KMC {timing['kmc [s]']:.1f} s, "
         f"observables {timing['observables [s]']:.1f} s); outputs in {outdir}")
    return results
