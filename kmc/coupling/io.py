"""Output files.  Whole files are written atomically (temp file in the same folder, then
rename), so a killed run never leaves a half-written one; time series grow row by row through
:class:`SeriesWriter`, flushed per row, under a ``.partial.csv`` name until the run ends.  Files
get the user's normal permissions (umask), JSON is strict (NaN and inf become null) and a CSV
cell that has no value (NaN) is left empty."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: colleagues could not read results
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())


def write_json(path, obj) -> None:
    write_text(path, json.dumps(strict_json(obj), indent=2, sort_keys=False, allow_nan=False,
                                default=_json_default) + "\n")


def strict_json(obj):
    """``obj`` with every non-finite float (NaN, inf) replaced by None, numpy scalars and arrays
    as Python values: what strict JSON parsers accept."""
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return strict_json(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _cell(v):
    if isinstance(v, float):
        return f"{v + 0.0:.10g}" if math.isfinite(v) else ""  # + 0.0: no "-0"
    return "" if v is None else v


def _columns(rows: Sequence[Mapping[str, object]]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def write_csv(path, rows: Sequence[Mapping[str, object]]) -> None:
    """Tidy CSV: one row per record, column names carry units (``Time [s]``)."""
    if not rows:
        raise ValueError("write_csv: no rows to write")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_columns(rows), lineterminator="\n", restval="")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(v) for k, v in r.items()})
    write_text(path, buf.getvalue())


class SeriesWriter:
    """A time series written as it grows: rows are appended to ``<stem>.partial.csv`` and
    flushed one by one, so a crash or Ctrl-C keeps every row so far; :meth:`finish` renames the
    file to ``<stem>.csv`` (the run ended).  The columns are those of the first row."""

    def __init__(self, path, rows: Sequence[Mapping[str, object]] = ()):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.stem + ".partial.csv")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = None
        self._writer = None
        if rows:  # a resumed run: start from the rows it had
            write_csv(self.partial, rows)
            self._open(_columns(rows), header=False)

    def _open(self, fields, header: bool) -> None:
        self._fh = open(self.partial, "a" if not header else "w", newline="", encoding="utf-8")
        os.chmod(self.partial, 0o666 & ~_umask())
        self._writer = csv.DictWriter(self._fh, fieldnames=fields, lineterminator="\n", restval="",
                                      extrasaction="ignore")
        if header:
            self._writer.writeheader()

    def append(self, row: Mapping[str, object]) -> None:
        if self._writer is None:
            self._open(list(row), header=True)
        self._writer.writerow({k: _cell(v) for k, v in row.items()})
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def finish(self) -> Path:
        self.close()
        if self.partial.exists():
            os.replace(self.partial, self.path)
        return self.path


@contextlib.contextmanager
def streamed_series(path, rows: Sequence[Mapping[str, object]] = ()) -> Iterator[SeriesWriter | None]:
    """A :class:`SeriesWriter` for a run's rows (None when ``path`` is None): closed whatever
    happens, renamed to its final name only when the block ends without an exception."""
    writer = SeriesWriter(path, rows=rows) if path is not None else None
    try:
        yield writer
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        writer.finish()


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_npz(path, **arrays) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def write_vti(path, cell_data: Mapping[str, np.ndarray], spacing: float) -> Path:
    """VTK ImageData (.vti) with one value per voxel, spacing in um (ParaView-friendly)."""
    from pyevtk.hl import imageToVTK

    path = Path(path)
    if path.suffix != ".vti":
        raise ValueError(f"write_vti: path must end in .vti, got {path}")
    data = {}
    for k, a in cell_data.items():
        a = np.asarray(a)
        if a.dtype == np.bool_:
            a = a.astype(np.uint8)
        if a.dtype.kind == "f":
            a = np.nan_to_num(a.astype(np.float64), nan=0.0)
        data[k] = np.ascontiguousarray(a)
    h_um = spacing * 1e6
    with atomic_path(path, suffix=".vti") as tmp:
        base = str(tmp)[: -len(".vti")]
        imageToVTK(base, origin=(0.0, 0.0, 0.0), spacing=(h_um,) * 3, cellData=data)
    return path


def write_pvd(path, entries: Sequence[tuple[float, str]]) -> None:
    """ParaView collection index: ``entries`` are (time in s, file name relative to the pvd)."""
    lines = ['<?xml version="1.0"?>',
             '<VTKFile type="Collection" version="0.1" byte_order="LittleEndian">', "  <Collection>"]
    for t, name in entries:
        lines.append(f'    <DataSet timestep="{t:.9g}" group="" part="0" file="{name}"/>')
    lines += ["  </Collection>", "</VTKFile>", ""]
    write_text(path, "\n".join(lines))


_VTK_TYPES = {"UInt8": np.uint8, "Int8": np.int8, "Int32": np.int32, "Int64": np.int64, "UInt32": np.uint32,
              "UInt64": np.uint64, "Float32": np.float32, "Float64": np.float64}


def read_vti(path) -> tuple[dict[str, np.ndarray], float]:
    """Read a snapshot written by :func:`write_vti`: (cell arrays [x, y, z], spacing in m)."""
    import re

    raw = Path(path).read_bytes()
    marker = raw.index(b'<AppendedData encoding="raw">')
    head = raw[:marker].decode()
    start = raw.index(b"_", marker) + 1
    extent = [int(v) for v in re.search(r'WholeExtent="([^"]+)"', head).group(1).split()]
    shape = (extent[1] - extent[0], extent[3] - extent[2], extent[5] - extent[4])
    spacing_um = float(re.search(r'Spacing="([^"]+)"', head).group(1).split()[0])
    out = {}
    for name, typ, off in re.findall(r'<DataArray Name="([^"]+)"[^>]*type="([^"]+)"[^>]*offset="(\d+)"', head):
        pos = start + int(off)
        nbytes = int(np.frombuffer(raw, np.uint64, 1, pos)[0])
        data = np.frombuffer(raw, _VTK_TYPES[typ], nbytes // np.dtype(_VTK_TYPES[typ]).itemsize, pos + 8)
        out[name] = data.reshape(shape, order="F").copy()  # VTK runs x fastest
    return out, spacing_um * 1e-6
