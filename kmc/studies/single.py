"""One run of the configured host under the configured protocol (``python -m kmc run``, and
what each replica of ``python -m kmc ensemble`` runs by default)."""
from __future__ import annotations

import json
from pathlib import Path

from ..coupling import columns as col
from ..coupling.io import write_csv
from .base import Study, summary_row


class SingleRun(Study):
    name = "single"
    help = "the configured host under the configured protocol"
    key_observables = [col.RMS_ROUGHNESS, col.MAX_HEIGHT, col.INTERFACE_AREA, col.TIPS, col.LITHIUM_ABOVE]

    def protocols(self, config):
        return {config.protocol.kind: config.protocol.segments()}

    def provenance_extra(self, config, plan):
        return {"host": next(iter(plan.hosts.values())).summary()}

    def series_path(self, outdir: Path, case) -> Path:
        return outdir / "timeseries.csv"

    def write_outputs(self, config, plan, results, outdir: Path, echo) -> None:
        from .plots import plot_cross_sections, plot_series

        result = next(iter(results.values()))
        write_csv(outdir / "summary.csv", [summary_row(result)])
        plot_cross_sections(outdir / "cross_section.png", {"final": (result.final_phase, result.connected)},
                            result.host.spacing)
        plot_series(outdir / "series.png", {"run": result.rows}, col.TIME, [col.POTENTIAL, col.PLATED_CAP,
                                                                            col.RMS_ROUGHNESS])
        echo(json.dumps(dict(result.summary), indent=1, default=str))
