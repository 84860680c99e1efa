"""Stochastic ensembles: N independent replicas of a study, locally or on a Dask cluster.

Replica ``r`` draws every random stream (host realisation, packets, KMC) from
``SeedSequence(config.seed).spawn(N)[r]``, i.e. ``SeedSequence(entropy, spawn_key=(r,))``:
its result does not depend on N, on the order replicas finish or on where they ran, so an
ensemble can be extended, resumed or moved to a cluster and stay the same.

Layout of ``outdir``::

    ensemble.json                 config, digest, seed entropy, case kind (guards the folder)
    replicas/replica_0003.json    one finished replica: seed info, observables at 25/50/75 %
                                  of the applied capacity and at the end (100)
    replicas/replica_0003.failed.json   a replica that raised: seed info, error, traceback
    replicas.csv                  tidy: one row per replica x case x capacity checkpoint
    statistics.csv                tidy: n, mean, std, 95 % CI (t distribution) per
                                  case x checkpoint x observable
    comparison.csv, distributions.png   pulse vs DC (run_pulse_vs_dc_ensemble)
    coulombic_efficiency.png      runs that cycle: CE and dead lithium per cycle, mean and 95 % CI

Every file is written atomically (kmc.coupling.io) the moment a replica arrives, so a kill at any time
loses no finished replica and leaves no partial file; a rerun skips replicas whose result file
exists with the same config digest and retries failed ones.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..coupling import columns as col
from ..coupling.columns import APPLIED_CAP, STEP
from ..coupling.config import ConfigError, SimulationConfig
from ..coupling.io import write_csv, write_json
from ..coupling.streams import provenance, replica_sequence
from .base import run_case
from .parallel import executor
from .pulse_vs_dc import KEY_OBSERVABLES

CAPACITY_CHECKPOINTS = (25, 50, 75, 100)  # % of the applied capacity; 100 = the end of the run
LABELS = ("Case", "Host", "Protocol")
CHECKPOINT_COL = col.CAPACITY_CHECKPOINT


class EnsembleError(ConfigError):
    """An ensemble that cannot run as asked (foreign output folder, missing Dask, bad counts)."""


class EnsembleIncomplete(RuntimeError):
    """Some replicas failed: the others are written; the command exits non-zero naming them."""


class EnsembleWarning(UserWarning):
    """A replica failed; the others go on."""


# -- cases: what one replica runs ----------------------------------------------------------------
def study_cases(name: str):
    """What one replica of a registered study runs: the study's cases on the replica's own
    seed stream (its host realisations included), as [(labels, RunResult)]."""
    def cases(config: SimulationConfig, ss: np.random.SeedSequence, run=None) -> list:
        from . import get_study

        run = run or run_case
        study = get_study(name)
        plan = study.plan(config, ss)
        out = []
        for c in plan.cases:
            res = run(c.config_for(config), c.host, c.segments, c.seed, c.slug)
            if hasattr(study, "case_summary"):  # the study's own scalars (cycling: where the pores emptied)
                res.summary.update(study.case_summary(res))
            out.append(({"Case": c.label, "Host": c.host_label, "Protocol": c.protocol_label}, res))
        return out
    cases.__qualname__ = cases.__name__ = f"{name}_cases"
    return cases


single_case = study_cases("single")


def _cases_fn(cases):
    from . import STUDIES

    if cases is None:
        return "single", single_case
    if isinstance(cases, str):
        if cases not in STUDIES:
            raise EnsembleError(f"cases={cases!r}: must be one of {sorted(STUDIES)} or a function")
        return cases, study_cases(cases)
    if callable(cases):  # a module-level function(config, seed_sequence) -> [(labels, RunResult)]
        return f"{cases.__module__}.{cases.__qualname__}", cases
    raise EnsembleError(f"cases={cases!r}: must be a name or a function")


# -- one replica (runs in a worker) --------------------------------------------------------------
def replica_seed(config: SimulationConfig, index: int) -> np.random.SeedSequence:
    """Replica ``index``'s root stream: ``SeedSequence(config.seed).spawn(N)[index]`` for any N."""
    return replica_sequence(config.seed, index)


def _numeric(v) -> bool:
    """A number with a value: NaN ('none here', e.g. the centre of the lithium inside a foil)
    stays out of the records, whose equality and JSON it would break."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def capacity_rows(rows: list[dict], summary: dict | None = None) -> list[dict]:
    """Observables at 25/50/75 % of the run's applied capacity (first row reaching it) and at
    the end (100), numeric columns only."""
    target = max(r[APPLIED_CAP] for r in rows)
    out = []
    for pct in CAPACITY_CHECKPOINTS:
        if pct == 100 or target <= 0:
            row = rows[-1]
        else:
            row = next(r for r in rows if r[APPLIED_CAP] >= pct / 100 * target * (1 - 1e-9))
        rec = {CHECKPOINT_COL: pct}
        rec.update({k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()
                    if k != STEP and _numeric(v)})
        if pct == 100 and summary is not None:
            rec[col.MEAN_POTENTIAL] = float(summary[col.MEAN_POTENTIAL])
            rec[col.CHARGE_ERROR] = float(summary[col.CHARGE_ERROR])
            # the run's other end-only scalars (a cycling run's CE per cycle, mean CE, loss)
            rec.update({k: float(v) for k, v in summary.items() if k not in rec and _numeric(v)})
        out.append(rec)
    return out


def _seed_info(config, index):
    ss = replica_seed(config, index)
    return {"replica": int(index), "seed": config.seed, "entropy": ss.entropy, "spawn_key": list(ss.spawn_key)}


def _checkpointed_run(ckpt_dir, every):
    """run_case with mid-run checkpoints (a killed long replica resumes where it was)."""
    def run(config, host, segments, ss, label):
        return run_case(config, host, segments, ss, label, checkpoint_dir=ckpt_dir, checkpoint_every=every,
                        resume=True)
    return run


def run_replica(config_data: dict, index: int, cases=None, checkpoint_dir=None, checkpoint_every_steps=None) -> dict:
    """Run replica ``index`` and return its record; never raises (a failure is a record)."""
    t0 = time.perf_counter()
    config = SimulationConfig.model_validate(config_data)
    kind, fn = _cases_fn(cases)
    info = {**_seed_info(config, index), "config_digest": config.digest(), "cases": kind,
            "host": os.uname().nodename if hasattr(os, "uname") else "", "pid": os.getpid()}
    try:
        run = None if checkpoint_dir is None else _checkpointed_run(checkpoint_dir, checkpoint_every_steps)
        results = []
        for labels, res in (fn(config, replica_seed(config, index)) if run is None
                            else fn(config, replica_seed(config, index), run=run)):
            for rec in capacity_rows(res.rows, res.summary):
                results.append({**labels, **rec})
        return {**info, "status": "ok", "wall [s]": time.perf_counter() - t0, "results": results}
    except Exception as e:  # reported with the seed; the other replicas go on
        return {**info, "status": "failed", "wall [s]": time.perf_counter() - t0,
                "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


# -- statistics ----------------------------------------------------------------------------------
def describe(values) -> dict:
    """n, mean, sample std and the 95 % t-interval of the mean (NaN where n < 2)."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = x.size
    mean = float(x.mean()) if n else float("nan")
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "Mean": mean, "Std": std, "CI95 low": mean - half, "CI95 high": mean + half}


def replica_table(records: dict[int, dict]) -> list[dict]:
    """Tidy rows (replica x case x checkpoint), in replica order so the table never depends on
    the order replicas finished."""
    rows = []
    for r in sorted(records):
        rec = records[r]
        for res in rec["results"]:
            rows.append({"Replica": r, "Spawn key": "-".join(map(str, rec["spawn_key"])), **res})
    cols = list(dict.fromkeys(k for row in rows for k in row))  # end-only columns (charge error) too
    return [{k: row.get(k, math.nan) for k in cols} for row in rows]  # NaN: no value (not recorded)


def statistics_table(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["Case"], row["Host"], row["Protocol"], row[CHECKPOINT_COL]), []).append(row)
    out = []
    for (case, host, prot, pct), grp in groups.items():
        obs = [k for k in grp[0] if k not in LABELS + ("Replica", "Spawn key", CHECKPOINT_COL)
               and any(_numeric(g[k]) for g in grp)]
        for k in obs:
            out.append({"Case": case, "Host": host, "Protocol": prot, CHECKPOINT_COL: pct, "Observable": k,
                        **describe(g.get(k) for g in grp)})
    return out


def compare_protocols(rows: list[dict], reference: str = "DC", observables=KEY_OBSERVABLES,
                      checkpoint: int = 100) -> list[dict]:
    """Each protocol against ``reference`` on the same host: ratio of means with a 95 % CI
    (delta method on log(ratio), samples treated as independent, which is conservative since a
    replica shares its host across protocols), Welch's t-test and the paired t-test."""
    from scipy import stats

    final = [r for r in rows if r[CHECKPOINT_COL] == checkpoint]
    by: dict[tuple, dict[int, dict]] = {}
    for r in final:
        by.setdefault((r["Host"], r["Protocol"]), {})[r["Replica"]] = r
    z = float(stats.norm.ppf(0.975))
    out = []
    hosts_ = list(dict.fromkeys(h for h, _ in by))
    for h in hosts_:
        ref = by.get((h, reference))
        if ref is None:
            continue
        for (hh, p), grp in by.items():
            if hh != h or p == reference:
                continue
            for k in observables:
                x = np.array([grp[i][k] for i in sorted(grp)], float)
                y = np.array([ref[i][k] for i in sorted(ref)], float)
                common = sorted(set(grp) & set(ref))
                mx, my = x.mean(), y.mean()
                ratio = mx / my if my != 0 else float("nan")
                lo = hi = float("nan")
                if x.size > 1 and y.size > 1 and mx > 0 and my > 0:
                    se = math.sqrt(x.var(ddof=1) / (x.size * mx**2) + y.var(ddof=1) / (y.size * my**2))
                    lo, hi = ratio * math.exp(-z * se), ratio * math.exp(z * se)
                p_welch = p_pair = float("nan")
                if x.size > 1 and y.size > 1:
                    with warnings.catch_warnings():  # identical samples: scipy warns and returns NaN
                        warnings.simplefilter("ignore")
                        p_welch = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
                        if len(common) > 1:
                            p_pair = float(stats.ttest_rel([grp[i][k] for i in common],
                                                           [ref[i][k] for i in common]).pvalue)
                out.append({"Host": h, "Protocol": p, "Reference": reference, "Observable": k,
                            "n": int(x.size), "n reference": int(y.size), "Mean": float(mx),
                            "Mean reference": float(my), "Ratio of means": ratio,
                            "Ratio CI95 low": lo, "Ratio CI95 high": hi,
                            "p (Welch t)": p_welch, "p (paired t)": p_pair,
                            "Significant (p<0.05)": bool(p_welch < 0.05)})
    return out


def cycle_statistics(stats_rows: list[dict]) -> dict[str, list[dict]]:
    """Per case with cycles, each cycle's Coulombic efficiency and dead lithium after it (the
    run summary's ``cycle_ce(k)``, ``cycle_dead(k)``): mean and 95 % CI, as rows for
    :func:`plots.plot_cycles`."""
    final = {(s["Case"], s["Observable"]): s for s in stats_rows if s[CHECKPOINT_COL] == 100}
    out: dict[str, list[dict]] = {}
    for case in dict.fromkeys(c for c, _ in final):
        k = 1
        while (case, col.cycle_ce(k)) in final:
            row = {col.CYCLE: k}
            for key, obs in ((col.COULOMBIC_EFFICIENCY, col.cycle_ce(k)), (col.CYCLE_DEAD_END, col.cycle_dead(k))):
                s = final.get((case, obs), {})
                row.update({key: s.get("Mean", math.nan), f"{key} CI95 low": s.get("CI95 low", math.nan),
                            f"{key} CI95 high": s.get("CI95 high", math.nan)})
            out.setdefault(case, []).append(row)
            k += 1
    return out


def plot_distributions(path, rows: list[dict], observables=KEY_OBSERVABLES, checkpoint: int = 100) -> None:
    """Replica values of each observable per case (points) with mean and 95 % CI (bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..coupling.io import atomic_path

    final = [r for r in rows if r[CHECKPOINT_COL] == checkpoint]
    cases = list(dict.fromkeys(r["Case"] for r in final))
    fig, axes = plt.subplots(1, len(observables), figsize=(4.2 * len(observables), 0.5 * len(cases) + 2.5),
                             squeeze=False)
    for ax, k in zip(axes[0], observables):
        for j, c in enumerate(cases):
            v = np.array([r[k] for r in final if r["Case"] == c], float)
            jitter = np.linspace(-0.15, 0.15, v.size) if v.size > 1 else np.zeros(v.size)
            ax.plot(v, j + jitter, "o", ms=3, alpha=0.5, color="0.4")
            d = describe(v)
            err = [[d["Mean"] - d["CI95 low"]], [d["CI95 high"] - d["Mean"]]] if d["n"] > 1 else None
            ax.errorbar([d["Mean"]], [j], xerr=err, fmt="D", color="C3", capsize=4)
        ax.set_yticks(range(len(cases)))
        ax.set_yticklabels(cases if ax is axes[0][0] else [""] * len(cases), fontsize=8)
        ax.set_xlabel(k)
        ax.invert_yaxis()
    fig.suptitle(f"{len(set(r['Replica'] for r in final))} replicas: values, mean and 95 % CI")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


# -- the driver ----------------------------------------------------------------------------------
@dataclass
class EnsembleResult:
    outdir: Path
    records: dict = field(default_factory=dict)  # replica -> record (status ok)
    failures: dict = field(default_factory=dict)  # replica -> failure record
    rows: list = field(default_factory=list)  # replicas.csv
    statistics: list = field(default_factory=list)  # statistics.csv
    skipped: int = 0  # replicas found finished on disk
    wall: float = 0.0
    comparison: list = field(default_factory=list)  # comparison.csv (pulse vs DC)


def _replica_path(outdir: Path, r: int, failed=False) -> Path:
    return outdir / "replicas" / f"replica_{r:04d}{'.failed' if failed else ''}.json"


def _read_done(path: Path, digest: str, kind: str):
    try:
        rec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # cannot happen with atomic writes; treat as not done
    if rec.get("status") == "ok" and rec.get("config_digest") == digest and rec.get("cases") == kind:
        return rec
    return None


def _guard_outdir(outdir: Path, config: SimulationConfig, kind: str, replicas: int) -> None:
    from ..coupling.outputs import check_writable

    check_writable(outdir)
    manifest = outdir / "ensemble.json"
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        if old.get("config_digest") != config.digest() or old.get("cases") != kind:
            raise EnsembleError(f"{outdir} holds an ensemble of another configuration (digest "
                                f"{old.get('config_digest')}, cases {old.get('cases')}); this one is "
                                f"{config.digest()}, {kind}: choose another --out")
    write_json(manifest, provenance(config, cases=kind, replicas=replicas,
                                    replica_streams="SeedSequence(seed_entropy, spawn_key=(replica,))",
                                    capacity_checkpoints_percent=list(CAPACITY_CHECKPOINTS)))


def run_ensemble(config: SimulationConfig, replicas: int, *, outdir, cases=None, workers: int | None = None,
                 scheduler=None, progress: bool = True, checkpoint_every_steps: int | None = None,
                 echo: Callable[[str], None] | None = None) -> EnsembleResult:
    """Run replicas ``0 .. replicas-1`` of ``cases`` ('single' (default), 'pulse_vs_dc' or a
    module-level function(config, seed_sequence) -> [(labels, RunResult)]) and write the
    layout described in the module docstring.

    Backends: ``scheduler`` (a Dask address or ``dask.distributed.Client``) > a local
    process pool of ``workers`` processes (default ``os.cpu_count()``) > ``workers=1``:
    serially in this process.  ``checkpoint_every_steps``: each case also checkpoints its
    macro-step loop under ``outdir/checkpoints`` (needs a folder the workers share).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    if int(replicas) != replicas or replicas < 1:
        raise EnsembleError(f"replicas = {replicas!r}: must be an integer >= 1")
    workers = (os.cpu_count() or 1) if workers is None else workers
    if int(workers) != workers or workers < 1:
        raise EnsembleError(f"workers = {workers!r}: must be an integer >= 1")
    kind, fn = _cases_fn(cases)
    outdir = Path(outdir)
    digest = config.digest()
    _guard_outdir(outdir, config, kind, replicas)
    result = EnsembleResult(outdir=outdir)
    todo = _collect_finished(result, replicas, digest, kind)
    if result.records:
        _write_tables(result)
    data = config.model_dump(mode="json")
    from . import STUDIES

    cases_arg = kind if kind in STUDIES else fn  # a name travels to workers; closures do not

    def ckdir(r):
        return None if checkpoint_every_steps is None else str(outdir / "checkpoints" / f"replica_{r:04d}")

    bar = tqdm(total=replicas, initial=result.skipped, unit="replica", desc="ensemble", disable=not progress)

    def arrived(rec):
        r = rec["replica"]
        if rec["status"] == "ok":
            write_json(_replica_path(outdir, r), rec)  # the result file first: it is what resume trusts
            _replica_path(outdir, r, failed=True).unlink(missing_ok=True)
            result.records[r] = rec
            result.failures.pop(r, None)
            _write_tables(result)
            if checkpoint_every_steps is not None:
                shutil.rmtree(ckdir(r), ignore_errors=True)
        else:
            write_json(_replica_path(outdir, r, failed=True), rec)
            result.failures[r] = rec
            msg = (f"replica {r} failed (seed {rec['seed']}, entropy {rec['entropy']}, spawn key "
                   f"{tuple(rec['spawn_key'])}): {rec['error']}")
            warnings.warn(msg, EnsembleWarning, stacklevel=3)
            print(f"warning: {msg}", file=sys.stderr)
        bar.update(1)

    _dispatch(todo, lambda r: (data, r, cases_arg, ckdir(r), checkpoint_every_steps), arrived, workers, scheduler,
              failure=lambda r, e: {**_seed_info(config, r), "config_digest": digest, "cases": kind, "status": "failed",
                                    "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
    bar.close()
    if checkpoint_every_steps is not None and not result.failures:
        shutil.rmtree(outdir / "checkpoints", ignore_errors=True)  # all replicas recorded: not needed
    result.wall = time.perf_counter() - t0
    if echo is not None:
        echo(f"{len(result.records)}/{replicas} replicas done ({result.skipped} found on disk, "
             f"{len(result.failures)} failed) in {result.wall:.1f} s; outputs in {outdir}")
    return result


def _collect_finished(result: EnsembleResult, replicas: int, digest: str, kind: str) -> list[int]:
    """Load the replicas already finished on disk into ``result``; returns the ones to run."""
    todo = []
    for r in range(replicas):
        rec = _read_done(_replica_path(result.outdir, r), digest, kind)
        if rec is None:
            todo.append(r)
        else:
            result.records[r] = rec
    result.skipped = replicas - len(todo)
    return todo


def _dispatch(todo, args_of, arrived, workers, scheduler, failure) -> None:
    """Run ``run_replica(*args_of(r))`` for every replica in ``todo`` (serially, in a process
    pool or on Dask) and hand each record to ``arrived`` as it comes; a worker that died
    becomes ``failure(r, exception)``."""
    if not todo:
        return
    if workers == 1 and scheduler is None:
        for r in todo:
            arrived(run_replica(*args_of(r)))
        return
    submit, as_completed, close = executor(workers, scheduler, len(todo))
    futures = {}
    try:
        futures = {submit(run_replica, *args_of(r)): r for r in todo}
        for fut in as_completed(list(futures)):
            try:
                rec = fut.result()
            except Exception as e:  # the worker itself died (segfault, OOM kill, lost Dask worker)
                rec = failure(futures[fut], e)
            arrived(rec)
    finally:
        close(list(futures))


def _write_tables(result: EnsembleResult) -> None:
    result.rows = replica_table(result.records)
    result.statistics = statistics_table(result.rows)
    if result.rows:
        write_csv(result.outdir / "replicas.csv", result.rows)
        write_csv(result.outdir / "statistics.csv", result.statistics)


# -- comparison with the reference protocol ---------------------------------------------------------
def format_comparison(stats_rows: list[dict], comparison: list[dict], observables=KEY_OBSERVABLES) -> str:
    lines = ["final deposits: mean [95 % CI] over replicas"]
    final = [s for s in stats_rows if s[CHECKPOINT_COL] == 100 and s["Observable"] in observables]
    for case in dict.fromkeys(s["Case"] for s in final):
        vals = {s["Observable"]: s for s in final if s["Case"] == case}
        cells = [f"{k.split(' [')[0]} {v['Mean']:.3g} [{v['CI95 low']:.3g}, {v['CI95 high']:.3g}]"
                 for k, v in vals.items()]
        lines.append(f"  {case} (n={next(iter(vals.values()))['n']}): " + "; ".join(cells))
    if comparison:
        lines.append(f"each protocol / {comparison[0]['Reference']} on the same host, "
                     "ratio of means [95 % CI], Welch p:")
        for c in comparison:
            lines.append(f"  {c['Host']} | {c['Protocol']}: {c['Observable']} {c['Ratio of means']:.3g} "
                         f"[{c['Ratio CI95 low']:.3g}, {c['Ratio CI95 high']:.3g}], p = {c['p (Welch t)']:.3g}"
                         + (" *" if c["Significant (p<0.05)"] else ""))
    return "\n".join(lines)


def run_study_ensemble(name: str, config: SimulationConfig, out, replicas: int, workers: int | None = None,
                       scheduler=None, progress: bool = True, echo=print, **kwargs) -> EnsembleResult:
    """A registered study with ``replicas`` independent host realisations and streams per case:
    per-case statistics, distribution plots and, for studies with a reference protocol, each
    protocol's ratio to it with CIs and significance."""
    from . import get_study

    study = get_study(name)
    res = run_ensemble(config, replicas, outdir=out, cases=name, workers=workers, scheduler=scheduler,
                       progress=progress, echo=echo, **kwargs)
    if not res.rows:
        raise EnsembleError(f"no replica finished; see {Path(out) / 'replicas'}/*.failed.json")
    comparison = []
    if study.reference_protocol:
        comparison = compare_protocols(res.rows, study.reference_protocol, study.key_observables)
        if comparison:
            write_csv(Path(out) / "comparison.csv", comparison)
    plot_distributions(Path(out) / "distributions.png", res.rows, study.key_observables)
    per_cycle = cycle_statistics(res.statistics)
    if per_cycle:  # runs that cycle: CE and dead lithium of every cycle with their CIs
        from .plots import plot_cycles

        n = len(res.records)
        plot_cycles(Path(out) / "coulombic_efficiency.png", per_cycle, title=f"{n} replicas: mean and 95 % CI")
    res.comparison = comparison
    if echo is not None:
        echo(format_comparison(res.statistics, comparison, study.key_observables))
    return res


def run_pulse_vs_dc_ensemble(config: SimulationConfig, out, replicas: int, **kwargs) -> EnsembleResult:
    """Pulse vs DC with ``replicas`` replicas (see :func:`run_study_ensemble`)."""
    return run_study_ensemble("pulse_vs_dc", config, out, replicas, **kwargs)
