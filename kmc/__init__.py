"""Lattice kinetic Monte Carlo of lithium plating and stripping in voxelised hosts."""

__version__ = "0.1.0"
from .hosts import (Host, activity_gradient, channel_array, coat_dielectric, decorate_lithiophilic_seeds, fibre_mat, load_voxel_image, overlapping_spheres, planar_foil, porosity_gradient, random_porous, um_to_voxels)  # noqa: E402,F401
from .engine.lattice import LatticeState  # noqa: E402,F401
from .engine.rates import EVENT_TYPES, RateConstants, SurfaceDiffusion  # noqa: E402,F401
from .engine import AdvanceResult, KMCEngine, Release  # noqa: E402,F401
