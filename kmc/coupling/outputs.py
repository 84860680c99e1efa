"""The output folder of a run or study: checked before anything is written, guarded against
overwriting another run, and carrying a ``status.json`` that says whether what is there is
complete (``running`` until the end; ``complete``, ``interrupted`` or ``failed`` after).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from .config import ConfigError
from .io import write_json

# What a run writes: --overwrite removes these (and nothing else) from a folder it reuses.
RUN_FILES = ("config.json", "status.json", "timeseries.csv", "timeseries.partial.csv", "summary.csv",
             "segments.csv", "cycles.csv", "timing.json", "host.json")
RUN_DIRS = ("snapshots", "cases", "checkpoints")
RUN_GLOBS = ("*.png",)


def check_writable(path) -> None:
    """ConfigError unless ``path`` is (or can be made as) a folder this process can write."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"--out {p}: is a file, not a folder")
    probe = p if p.exists() else next((a for a in p.parents if a.exists()), Path("."))
    if not probe.is_dir():
        raise ConfigError(f"--out {p}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {p}: {probe} is not writable")


class OutputFolder:
    """``path`` for a run of the configuration with digest ``digest``."""

    def __init__(self, path, digest: str, *, overwrite: bool = False, resume: bool = False):
        self.path = Path(path)
        self.digest = digest
        self.overwrite = bool(overwrite)
        self.resume = bool(resume)

    def _previous_digest(self) -> str | None:
        cfg = self.path / "config.json"
        try:
            return json.loads(cfg.read_text(encoding="utf-8")).get("config_digest")
        except (OSError, ValueError, AttributeError):
            return None

    def check(self) -> None:
        """ConfigError (one line, nothing written) when the folder cannot take this run."""
        p = self.path
        check_writable(p)
        holds_run = p.is_dir() and any((p / f).exists() for f in ("config.json", "status.json"))
        if self.resume:
            if not holds_run:
                raise ConfigError(f"--resume: {p} holds no run to resume")
            prev = self._previous_digest()
            if prev != self.digest:
                raise ConfigError(f"--resume: {p} holds a run of another configuration (digest {prev}, this one "
                                  f"{self.digest})")
            return
        if holds_run and not self.overwrite:
            same = self._previous_digest() == self.digest
            raise ConfigError(f"--out {p} already holds a run{' of this configuration' if same else ''}: "
                              f"{'--resume continues it, ' if same else ''}--overwrite replaces it, "
                              "or choose another --out")

    def prepare(self) -> None:
        """Create the folder; with overwrite, remove the files an earlier run wrote there."""
        p = self.path
        if self.overwrite and p.is_dir() and not self.resume:
            for name in RUN_FILES:
                (p / name).unlink(missing_ok=True)
            for name in RUN_DIRS:
                shutil.rmtree(p / name, ignore_errors=True)
            for pattern in RUN_GLOBS:
                for f in p.glob(pattern):
                    f.unlink(missing_ok=True)
        p.mkdir(parents=True, exist_ok=True)

    def status(self, state: str, **info) -> None:
        """``running``, ``complete``, ``interrupted`` or ``failed`` (with a reason)."""
        write_json(self.path / "status.json", {"state": state, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                               **info})
