"""Checkpoint and resume of one :class:`~kmc.simulation.PlatingSimulation`.

A checkpoint holds everything the macro-step loop reads, so a resumed run continues
bit-identically: the lattice (``LatticeState.to_dict``), the engine's SeedSequence state and
clock, the simulation clocks and counters, the mean-field concentration, the separator column,
the last potential solution (the next solve warm-starts from it and ``step_length`` reads its
face count, so it changes results and must be kept), the recorded rows, and where the run is
in its protocol (segment index and that segment's end time).  The config digest, a digest of
the host and one of the segment list are stored and checked on load.

Format: one compressed ``.npz`` written atomically (kmc.io.write_npz) holding arrays plus a
``meta`` JSON string (no pickles: a checkpoint can be inspected and loaded without
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

from .io import _json_default, write_npz
from ..engine.lattice import LatticeState

FORMAT_VERSION = 1

# Simulation attributes the checkpoint saves explicitly ...
_SCALARS = ("time", "applied_charge", "kmc_charge", "reductions", "oxidations", "steps",
            "compliance_steps", "limited_steps")
_ARRAYS = ("concentration", "region_reductions")
_HANDLED = set(_SCALARS) | set(_ARRAYS) | {"state", "engine", "separator", "solution", "rows", "timing"}
# ... and those the constructor rebuilds identically from (config, host).
_DERIVED = {"config", "params", "host", "h", "footprint", "region", "packet_charge"}


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


def _plain(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str, np.generic))


# -- save / load ----------------------------------------------------------------------------
def save_checkpoint(sim, path, segment_index: int, *, segment_t_end: float | None = None,
                    segments: Sequence | None = None, ends: Sequence[str] = (), extra: dict | None = None) -> Path:
    """Write ``sim``'s full state atomically to ``path`` (.npz).

    ``segment_index``: the protocol segment the run is in (``len(segments)`` when done);
    ``segment_t_end``: that segment's end time (a resumed segment must stop at exactly the same
    float, so it is stored rather than recomputed); ``ends``: why earlier segments ended;
    ``extra``: JSON-able bookkeeping of the caller (e.g. snapshot progress).
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for k, v in sim.state.to_dict().items():
        arrays[f"state.{k}"] = np.asarray(v)
    for name in _ARRAYS:
        arrays[f"sim.{name}"] = np.asarray(getattr(sim, name))
    arrays["separator.c"] = np.asarray(sim.separator.c)
    other = {}
    for name, v in vars(sim).items():  # attributes added to the simulation after this was written
        if name in _HANDLED or name in _DERIVED or name.startswith("_"):
            continue
        if isinstance(v, np.ndarray):
            arrays[f"other.{name}"] = v
            other[name] = {"__array__": f"other.{name}"}
        elif _plain(v):
            other[name] = _encode(v, name, arrays)
        else:
            warnings.warn(f"checkpoint: PlatingSimulation.{name} ({type(v).__name__}) is not saved; "
                          "a resumed run may differ (teach kmc/checkpoint.py about it)", stacklevel=2)
    meta = {
        "format": FORMAT_VERSION,
        "config_digest": sim.config.digest(),
        "host_digest": host_digest(sim.host),
        "segments_digest": None if segments is None else segments_digest(segments),
        "segment_index": int(segment_index),
        "segment_t_end": None if segment_t_end is None else float(segment_t_end),
        "ends": list(ends),
        "sim": {name: (getattr(sim, name).item() if isinstance(getattr(sim, name), np.generic)
                       else getattr(sim, name)) for name in _SCALARS},
        "other": other,
        "engine": {"rng": sim.engine.rng_state(), "time": sim.engine.time, "n_calls": sim.engine.n_calls},
        "separator": {"flux": sim.separator.flux, "time": sim.separator.time},
        "solution": _encode(sim.solution, "solution", arrays),
        "rows": sim.rows,
        "timing": sim.timing,
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


def restore_checkpoint(sim, path, segments: Sequence | None = None) -> dict:
    """Load ``path`` into an existing simulation built from the same config and host.
    Returns the position: segment_index, segment_t_end, ends, extra."""
    meta, arrays = read_checkpoint(path)
    digest = sim.config.digest()
    if meta["config_digest"] != digest:
        raise CheckpointError(f"checkpoint {path} was written with config digest {meta['config_digest']}, "
                              f"this run has {digest}: refusing to resume a different configuration")
    if meta["host_digest"] != host_digest(sim.host):
        raise CheckpointError(f"checkpoint {path} was written for another host (digest {meta['host_digest']})")
    if segments is not None and meta["segments_digest"] not in (None, segments_digest(segments)):
        raise CheckpointError(f"checkpoint {path} was written for another protocol (segment list differs)")
    state = LatticeState.from_dict({k[6:]: v for k, v in arrays.items() if k.startswith("state.")})
    sim.state = state
    sim.engine.state = state  # the engine changes the lattice in place: both must hold the same one
    sim.engine._work = None  # sized per grid; rebuilt (and fully initialised) on the next advance
    sim.engine.set_rng_state(meta["engine"]["rng"])
    sim.engine.time = float(meta["engine"]["time"])
    sim.engine.n_calls = int(meta["engine"]["n_calls"])
    for name in _SCALARS:
        cur = getattr(sim, name)
        setattr(sim, name, type(cur)(meta["sim"][name]))
    for name in _ARRAYS:
        setattr(sim, name, np.array(arrays[f"sim.{name}"]))
    for name, v in meta["other"].items():
        setattr(sim, name, _decode(v, arrays))
    sim.separator.c = np.array(arrays["separator.c"])
    sim.separator.flux = float(meta["separator"]["flux"])
    sim.separator.time = float(meta["separator"]["time"])
    sim.solution = _decode(meta["solution"], arrays)
    sim.rows = meta["rows"]
    sim.timing = dict(meta["timing"])
    return {"segment_index": int(meta["segment_index"]), "segment_t_end": meta["segment_t_end"],
            "ends": list(meta["ends"]), "extra": meta["extra"], "path": str(path)}


def load_checkpoint(path, config, host, segments: Sequence | None = None):
    """A :class:`PlatingSimulation` for ``config`` and ``host`` in the state of ``path``, and
    its position in the protocol (see :func:`restore_checkpoint`).  Raises CheckpointError if
    the checkpoint belongs to another config, host or protocol."""
    from .simulation import PlatingSimulation

    meta, _ = read_checkpoint(path)  # fail on a foreign config before building anything
    if meta["config_digest"] != config.digest():
        raise CheckpointError(f"checkpoint {path} was written with config digest {meta['config_digest']}, "
                              f"this config has {config.digest()}: refusing to resume a different configuration")
    sim = PlatingSimulation(config, host)
    return sim, restore_checkpoint(sim, path, segments)


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
        return path

    def after_step(self, segment_index, segment, segment_t_end, row, ends, extra=None) -> None:
        """Called after every macro-step (after the progress callback and snapshots)."""
        if self.sim.steps % self.every:
            return
        from .simulation import POTENTIAL

        cut = segment.cutoff_potential
        if cut is not None and row[POTENTIAL] > cut:  # the test run_segment makes
            # run_segment returns "cutoff" right after this step: resume in the next segment
            self.save(segment_index + 1, None, list(ends) + ["cutoff"], extra)
        else:
            self.save(segment_index, segment_t_end, ends, extra)
