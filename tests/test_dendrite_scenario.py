"""scenarios/dendrite_vs_smooth.py (the README's figure) on a small cell, so the script cannot
rot: 8 x 12 um at h = 0.5 um, a 1 um seed on a front at 2 um, to a mean thickness of 3 um.
Even here the seed leads more at -0.45 V (measured 1.6x its initial lead) and is absorbed at
-0.2 V (0.46x); the full cell's numbers are in the README and the slow test in
tests/test_phasefield.py."""
import runpy
from pathlib import Path

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "dendrite_vs_smooth.py"


def test_scenario_runs_both_cases_and_writes_the_figure(tmp_path):
    main = runpy.run_path(str(SCENARIO))["main"]  # not as __main__: defines, runs nothing
    out = tmp_path / "dendrite_vs_smooth.png"
    results = main(str(out), cases=((-0.45, 0.02), (-0.2, 0.1)), shape=(16, 1, 24), front=2e-6, seed_radius=1e-6,
                   thickness=3e-6)
    grew = {r["potential"]: r["lead"][-1] / r["lead"][0] for r in results}
    assert grew[-0.45] > 1.2 and grew[-0.2] < 0.8, grew
    assert all(3e-6 <= r["mean"][-1] < 3.5e-6 for r in results)  # stopped at the thickness
    assert out.stat().st_size < 200_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
