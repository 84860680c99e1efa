"""Lattice kinetic Monte Carlo of lithium plating and stripping in voxelised hosts.

Layers, lowest first (docs/model.md, "Layout"): ``continuum`` (field solvers) <-
``kmc.engine`` (lattice KMC) <- ``kmc.hosts`` <- ``kmc.coupling`` (one coupled run) <-
``kmc.studies`` and ``kmc.cli``.  The names below are the public Python API.
"""

__version__ = "0.1.0"
from .hosts import (Host, activity_gradient, band_dielectric, channel_array, coat_dielectric, decorate_lithiophilic_seeds, fibre_mat, load_voxel_image, overlapping_spheres, planar_foil, porosity_gradient, random_porous, um_to_voxels)  # noqa: E402,F401
from .engine import AdvanceResult, EVENT_TYPES, KMCEngine, LatticeState, RateConstants, Release, SurfaceDiffusion  # noqa: E402,F401
from .coupling.config import ConfigError, SimulationConfig, make_config  # noqa: E402,F401
from .coupling.simulation import PlatingSimulation, RunResult  # noqa: E402,F401
from .studies import STUDIES, get_study, run_case, run_study  # noqa: E402,F401
