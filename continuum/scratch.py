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
        # the last view handed out per name and dtype (as asked for), with its shape and buffer:
        # a repeated request returns it while the buffer is the name's (a solve's hot path asks
        # for the same arrays thousands of times; np.prod and np.ndim cost more than the array)
        self._views: dict = {}

    def __len__(self) -> int:
        return len(self._arrays)

    def array(self, name: str, shape, dtype=np.float64) -> np.ndarray:
        """A C-contiguous array of ``shape`` (contents undefined)."""
        hit = self._views.get((name, dtype)) if type(shape) is tuple or type(shape) is int else None
        if hit is not None and hit[0] == shape and self._arrays.get(hit[1]) is hit[2]:
            return hit[3]
        asked = shape
        shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
        size = int(np.prod(shape))
        key = (name, np.dtype(dtype))
        buf = self._arrays.get(key)
        if buf is None or buf.size < size:
            buf = np.empty(size + size // 16, dtype=dtype)
            self._arrays[key] = buf
        out = buf[:size].reshape(shape)
        if type(asked) is tuple or type(asked) is int:
            self._views[(name, dtype)] = (asked, key, buf, out)
        return out

    def zeros(self, name: str, shape, dtype=np.float64) -> np.ndarray:
        """:meth:`array` filled with zeros."""
        out = self.array(name, shape, dtype)
        out.fill(0)
        return out

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())
