"""The seed tree: every random stream of a run, a study or an ensemble is spawned from the
configuration's root seed, here and nowhere else, so a result depends only on (config, seed).

    root = SeedSequence(config.seed)
    ├── python -m kmc run:  a study of one case: root.spawn(2) = (host, run)
    ├── a study:            root.spawn(1 + n_cases) = (hosts, case 0, case 1, ...)
    ├── ensemble replica r: SeedSequence(root.entropy, spawn_key=(r,)), then as above
    └── one run:            run.spawn(2) = (lattice packets, KMC engine)

Also the one provenance record every output folder carries (``config.json``).
"""
from __future__ import annotations

import platform

import numpy as np


def root_sequence(seed: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed)


def study_streams(root: np.random.SeedSequence, n_cases: int):
    """(hosts stream, [one stream per case]) of a study, in case order."""
    host_ss, *case_ss = root.spawn(1 + n_cases)
    return host_ss, case_ss


def simulation_streams(run: np.random.SeedSequence) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """(lattice, engine) streams of one coupled simulation."""
    lattice_ss, engine_ss = run.spawn(2)
    return lattice_ss, engine_ss


def replica_sequence(seed: int, index: int) -> np.random.SeedSequence:
    """Replica ``index``'s root: ``SeedSequence(seed).spawn(N)[index]`` for any N."""
    root = root_sequence(seed)
    return np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + (int(index),))


def provenance(config, **extra) -> dict:
    """What produced an output folder: package, version, Python, seed and its entropy, the config
    digest and the full configuration, plus ``extra`` (hosts, cases, ...)."""
    from .. import __version__

    root = root_sequence(config.seed)
    return {"package": "lithium-kmc", "version": __version__, "python": platform.python_version(),
            "seed": config.seed, "seed_entropy": root.entropy, "config_digest": config.digest(),
            "transport_consistent": config.physics.transport_consistent,
            **extra, "config": config.model_dump(mode="json")}
