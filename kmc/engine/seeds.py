"""Seeds and generators: the one conversion from what a user passes (None, a non-negative int,
a SeedSequence, a Generator) to numpy's random objects.  Randomness never comes from numpy's
global state; the seed tree of runs and studies is in :mod:`kmc.coupling.streams`."""
from __future__ import annotations

import numbers

import numpy as np


def seed_sequence(seed=None) -> np.random.SeedSequence:
    """SeedSequence for ``seed``: itself, ``SeedSequence(seed)`` for a non-negative int, a fresh
    one (OS entropy, recorded in its ``entropy``) for None."""
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)) and seed >= 0:
        return np.random.SeedSequence(int(seed))
    raise ValueError(f"seed={seed!r} must be a non-negative int or numpy.random.SeedSequence")


def generator(rng=None, seed=None) -> tuple[np.random.Generator, dict]:
    """A Generator from ``rng`` (used as is) or ``seed`` (see :func:`seed_sequence`), and a
    JSON-friendly record of where its randomness came from."""
    if rng is not None and seed is not None:
        raise ValueError("give either rng or seed, not both")
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng={rng!r} must be a numpy.random.Generator")
        return rng, {"rng": "caller-supplied numpy Generator (not reproducible from metadata)"}
    ss = seed_sequence(seed)
    return np.random.default_rng(ss), {"seed_entropy": ss.entropy,
                                       "seed_spawn_key": [int(k) for k in ss.spawn_key]}
