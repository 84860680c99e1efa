"""The lattice KMC engine: lattice state, event rate laws, the engine and its Numba kernels."""
from .engine import AdvanceResult, KMCEngine, Release
from .lattice import LatticeState
from .rates import EVENT_TYPES, RateConstants, SurfaceDiffusion
