"""Figures laid out by hand (kmc.studies.plots._margins: drawn once, not cropped to what was
drawn): nothing falls outside the canvas, for one panel, one row and panels wrapping into rows;
figures drawn side by side (a forked child) are all written, by this process if the child fails."""
import os
import time

import numpy as np
import pytest

from continuum.constants import HOST_CONDUCTIVE, LITHIUM
from kmc.coupling import columns as col
from kmc.studies import plots


def _deposit(seed: int):
    rng = np.random.default_rng(seed)
    phase = np.zeros((24, 20, 29), np.uint8)
    phase[:, :, 0] = HOST_CONDUCTIVE
    phase[:, :, 1:4][rng.random((24, 20, 3)) < 0.4] = LITHIUM
    host = np.zeros_like(phase)
    host[:, :, 0] = HOST_CONDUCTIVE
    return phase, host


@pytest.mark.parametrize("n", [1, 6, 8])
def test_fixed_layouts_keep_every_artist_on_the_canvas(n, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path, tight=True: figures.append((fig, tight)))
    deposits = {f"Porous host {i}\nPulse, equal on-current": _deposit(i) for i in range(n)}
    rows = [{col.PLATED_CAP: 0.01 * k, col.POTENTIAL: -0.2 - 0.01 * k, col.RMS_ROUGHNESS: 0.1 * k,
             "Applied current density [mA.cm-2]": 38.0 * (k % 2)} for k in range(20)]
    plots.plot_cross_sections("x.png", {k: (p, p == LITHIUM) for k, (p, _) in deposits.items()}, 1e-6,
                              title="Deposits after plating (x-z section through the middle)")
    plots.plot_height_maps("h.png", deposits, 1e-6)
    plots.plot_series("s.png", {k.replace("\n", " | "): rows for k in deposits}, col.PLATED_CAP,
                      [col.POTENTIAL, col.RMS_ROUGHNESS], under_current=[col.POTENTIAL])
    assert len(figures) == 3
    for fig, tight in figures:
        assert not tight
        fig.canvas.draw()
        box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches
        width, height = fig.get_size_inches()
        assert box.x0 > -0.02 and box.y0 > -0.02 and box.x1 < width + 0.02 and box.y1 < height + 0.02, \
            (fig.axes[0].get_title(), tuple(box.bounds), (width, height))
        plots.plt.close(fig)


def _write(path, text):
    path.write_text(text)


def _fails_in_a_child(path, parent_pid):
    if os.getpid() != parent_pid:
        raise RuntimeError("drawn in the child only")
    path.write_text("drawn here")


def _hangs_in_a_child(path, parent_pid):
    if os.getpid() != parent_pid:
        time.sleep(60)
    path.write_text("drawn here")


def test_figures_side_by_side_are_all_drawn_even_when_the_child_fails_or_hangs(tmp_path):
    pid = os.getpid()
    plots.draw_side_by_side([(_write, (tmp_path / "a", "A")), (_write, (tmp_path / "b", "B"))])
    assert (tmp_path / "a").read_text() == "A" and (tmp_path / "b").read_text() == "B"
    plots.draw_side_by_side([(_fails_in_a_child, (tmp_path / "c", pid)), (_write, (tmp_path / "d", "D"))])
    assert (tmp_path / "c").read_text() == "drawn here"
    t0 = time.monotonic()
    plots.draw_side_by_side([(_hangs_in_a_child, (tmp_path / "e", pid)), (_write, (tmp_path / "f", "F"))], timeout=1.0)
    assert (tmp_path / "e").read_text() == "drawn here" and time.monotonic() - t0 < 30
