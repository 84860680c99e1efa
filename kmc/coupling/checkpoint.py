"""Checkpoint and resume of one coupled run.

A checkpoint is what the run's ``state_dict()`` returns (``PlatingSimulation``: each component
states its own state: lattice, engine, galvanostat, salt balance, clocks, the last potential
solution, the recorded rows; ``PhaseFieldRun``: the solver's, the separator's, its ledgers and
rows), plus where the run is in its protocol (segment index and that segment's end
time) and digests of the config, the host and the segment list, checked on load.  This module
only serialises: it knows no simulation attribute.

Format 2: one compressed ``.npz`` written atomically (kmc.coupling.io.write_npz) holding the
arrays plus a ``meta`` JSON string (no pickles: a checkpoint can be inspected and loaded without
``allow_pickle``).  :class:`RunCheckpointer` names them ``<label>.ckpt-<steps>.npz`` and keeps
the newest two, so a kill while writing one still leaves a good one.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from .columns import POTENTIAL
from .io import _json_default, write_npz

FORMAT_VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint that cannot be used for this run (other config, host or protocol; unreadable)."""


# -- digests ------------------------------------------------------------------------------
def host_digest(host) -> str:
    """Hash of the host arrays the run depends on (phase, nucleation overpotential, activity)."""
    h = hashlib.sha256()
    for name in ("phase", "eta_nuc", "activity"):
        a = getattr(host, name, None)
        if a is not None:
            a = np.ascontiguousarray(a)
            h.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    h.update(repr(float(host.spacing)).encode())
    return h.hexdigest()[:16]


def segments_digest(segments: Sequence) -> str:
    """Hash of a protocol's segment list (float reprs are exact)."""
    return hashlib.sha256(repr([dataclasses.astuple(s) for s in segments]).encode()).hexdigest()[:16]


# -- generic (de)serialisation of the solution dataclasses -----------------------------------
_ALLOWED_MODULES = ("continuum.", "kmc.")


def _encode(obj, prefix: str, arrays: dict):
    """JSON-able description of ``obj``; arrays go into ``arrays`` under dotted keys."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj
    if isinstance(obj, np.generic):
        return {"__scalar__": obj.item(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.ndarray):
        arrays[prefix] = obj
        return {"__array__": prefix}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        return {"__dataclass__": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: _encode(getattr(obj, f.name), f"{prefix}.{f.name}", arrays)
                           for f in dataclasses.fields(obj)}}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{prefix}.{i}", arrays) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{prefix}.{i}", arrays) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        return {"__dict__": [[str(k), _encode(v, f"{prefix}.{k}", arrays)] for k, v in obj.items()]}
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {prefix}")


def _decode(d, arrays):
    if isinstance(d, list):
        return [_decode(v, arrays) for v in d]
    if not isinstance(d, dict):
        return d
    if "__array__" in d:
        return np.array(arrays[d["__array__"]])
    if "__scalar__" in d:
        return np.dtype(d["dtype"]).type(d["__scalar__"])
    if "__tuple__" in d:
        return tuple(_decode(v, arrays) for v in d["__tuple__"])
    if "__dict__" in d:
        return {k: _decode(v, arrays) for k, v in d["__dict__"]}
    if "__dataclass__" in d:
        mod, qual = d["__dataclass__"].split(":")
        if not mod.startswith(_ALLOWED_MODULES):  # never import arbitrary code from a file
            raise CheckpointError(f"checkpoint names an unexpected class {d['__dataclass__']}")
        cls = importlib.import_module(mod)
        for part in qual.split("."):
            cls = getattr(cls, part)
        return cls(**{k: _decode(v, arrays) for k, v in d["fields"].items()})
    return d


# -- save / load ----------------------------------------------------------------------------
def save_checkpoint(sim, path, segment_index: int, *, segment_t_end: float | None = None,
                    segments: Sequence | None = None, ends: Sequence[str] = (), extra: dict | None = None) -> Path:
    """Write ``sim.state_dict()`` atomically to ``path`` (.npz).

    ``segment_index``: the protocol segment the run is in (``len(segments)`` when done);
    ``segment_t_end``: that segment's end time (a resumed segment must stop at exactly the same
    float, so it is stored rather than recomputed); ``ends``: why earlier segments ended;
    ``extra``: JSON-able bookkeeping of the caller (e.g. snapshot progress).
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    state = sim.state_dict()
    rows = state.pop("rows")  # plain JSON already
    meta = {
        "format": FORMAT_VERSION,
        "config_digest": sim.config.digest(),
        "host_digest": host_digest(sim.host),
        "segments_digest": None if segments is None else segments_digest(segments),
        "segment_index": int(segment_index),
        "segment_t_end": None if segment_t_end is None else float(segment_t_end),
        "ends": list(ends),
        "state": _encode(state, "state", arrays),
        "rows": rows,
        "extra": extra or {},
    }
    arrays["meta"] = np.array(json.dumps(meta, default=_json_default))
    write_npz(path, **arrays)
    return path


def read_checkpoint(path) -> tuple[dict, dict]:
    """(meta, arrays) of a checkpoint file; CheckpointError if it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as e:  # truncated zip, missing member, bad JSON: all mean "unusable"
        raise CheckpointError(f"checkpoint {path} is unreadable: {type(e).__name__}: {e}") from None
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format {meta.get('format')}, expected {FORMAT_VERSION}")
    return meta, arrays


def check_config(path, config, meta: dict | None = None) -> None:
    """CheckpointError unless ``path`` was written with ``config``."""
    meta = meta if meta is not None else read_checkpoint(path)[0]
    if meta["config_digest"] != config.digest():
        raise CheckpointError(f"checkpoint {path} was written with config digest {meta['config_digest']}, "
                              f"this run has {config.digest()}: refusing to resume a different configuration")


def restore_checkpoint(sim, path, segments: Sequence | None = None) -> dict:
    """Load ``path`` into an existing simulation built from the same config and host.
    Returns the position: segment_index, segment_t_end, ends, extra, path."""
    meta, arrays = read_checkpoint(path)
    check_config(path, sim.config, meta)
    if meta["host_digest"] != host_digest(sim.host):
        raise CheckpointError(f"checkpoint {path} was written for another host (digest {meta['host_digest']})")
    if segments is not None and meta["segments_digest"] not in (None, segments_digest(segments)):
        raise CheckpointError(f"checkpoint {path} was written for another protocol (segment list differs)")
    state = _decode(meta["state"], arrays)
    state["rows"] = meta["rows"]
    sim.load_state_dict(state)
    return {"segment_index": int(meta["segment_index"]), "segment_t_end": meta["segment_t_end"],
            "ends": list(meta["ends"]), "extra": meta["extra"], "path": str(path)}


# -- periodic checkpoints inside PlatingSimulation.run -----------------------------------------
class RunCheckpointer:
    """What ``PlatingSimulation.run(checkpoint_dir=...)`` calls: a checkpoint every
    ``every_steps`` macro-steps (and one at the end), the newest ``keep`` kept."""

    DEFAULT_EVERY = 25

    def __init__(self, sim, directory, *, label: str = "run", every_steps: int | None = None,
                 segments: Sequence | None = None, keep: int = 2):
        if every_steps is not None and (int(every_steps) != every_steps or every_steps < 1):
            raise ValueError(f"checkpoint_every_steps = {every_steps!r}: must be a positive integer")
        self.sim = sim
        self.dir = Path(directory)
        self.label = label
        self.every = int(every_steps or self.DEFAULT_EVERY)
        self.segments = segments
        self.keep = max(int(keep), 1)

    def files(self) -> list[Path]:
        """This label's checkpoints, oldest first."""
        return sorted(self.dir.glob(f"{self.label}.ckpt-*.npz"))

    def resume(self) -> dict | None:
        """Restore the newest usable checkpoint into the simulation; None if there is none.
        A foreign config/host/protocol raises; an unreadable newest file falls back to the
        one before it."""
        for path in reversed(self.files()):
            try:
                return restore_checkpoint(self.sim, path, self.segments)
            except CheckpointError as e:
                if "unreadable" not in str(e):
                    raise
                warnings.warn(f"{e}; trying the previous checkpoint", stacklevel=2)
        return None

    def save(self, segment_index, segment_t_end, ends, extra=None) -> Path:
        path = self.dir / f"{self.label}.ckpt-{self.sim.steps:09d}.npz"
        save_checkpoint(self.sim, path, segment_index, segment_t_end=segment_t_end, segments=self.segments,
                        ends=ends, extra=extra)
        for old in self.files()[:-self.keep]:  # only after the new one is safely in place
            old.unlink(missing_ok=True)
        after = getattr(self.sim, "after_checkpoint", None)  # a run that continues as a resumed one would
        if after is not None:
            after()
        return path

    def after_step(self, segment_index, segment, segment_t_end, row, ends, extra=None) -> None:
        """Called after every macro-step (after the progress callback and snapshots)."""
        if self.sim.steps % self.every:
            return
        cut = segment.cutoff_potential
        if cut is not None and row[POTENTIAL] > cut:  # the test run_segment makes
            # run_segment returns "cutoff" right after this step: resume in the next segment
            self.save(segment_index + 1, None, list(ends) + ["cutoff"], extra)
        else:
            self.save(segment_index, segment_t_end, ends, extra)
