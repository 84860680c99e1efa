"""Named work arrays that a solver reuses from one solve to the next.

A fresh page of memory costs a page fault when it is first written; on a virtual machine the
host serves it (256 MB first touched: 3.4 s of wall time, 1.3 CPU-s, on the 2-core machine of
the benchmarks), and numpy's large arrays come straight from the kernel each time they are
allocated.  A 128^3 potential solve's temporaries (grid-sized right-hand sides, the Newton
matrix's links, the multigrid's vectors) cost more in faults than in arithmetic when they are
allocated anew, so they are taken from a :class:`Scratch` instead.

A scratch array is valid until the next request of the same name: only what lives inside one
solve belongs here, never what a solver keeps between solves or returns.
"""
from __future__ import annotations

import numpy as np


class Scratch:
    """Work arrays by name, kept between requests; a request for more elements than a name
    holds allocates anew with 1/16 to spare (a solver for a slightly larger deposit then takes
    the last one's arrays as they are)."""

    def __init__(self):
        self._arrays: dict[tuple[str, np.dtype], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._arrays)

    def array(self, name: str, shape, dtype=np.float64) -> np.ndarray:
        """A C-contiguous array of ``shape`` (contents undefined)."""
        shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
        size = int(np.prod(shape))
        key = (name, np.dtype(dtype))
        buf = self._arrays.get(key)
        if buf is None or buf.size < size:
            buf = np.empty(size + size // 16, dtype=dtype)
            self._arrays[key] = buf
        return buf[:size].reshape(shape)

    def zeros(self, name: str, shape, dtype=np.float64) -> np.ndarray:
        """:meth:`array` filled with zeros."""
        out = self.array(name, shape, dtype)
        out.fill(0)
        return out

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())
