"""Finite-volume field solvers on voxel grids (potential, concentration, kinetics).

This layer knows nothing of the KMC: it takes phase and site-property arrays and returns
fields.
"""
from .constants import (BOLTZMANN, ELECTROLYTE, FARADAY, GAS_CONSTANT, HOST_CONDUCTIVE,
                        HOST_DIELECTRIC, LITHIUM, PHASE_NAMES)
from .grid import collector_connected, conductor_mask, dead_lithium_mask
from .parameters import Electrolyte, Kinetics, PhysicalParameters, describe_validation_error
from .kinetics import butler_volmer, equilibrium_overpotential, reaction_branches
from .faces import DIRECTION_OFFSETS, InterfaceFaces, interface_faces
from .potential import PotentialSolution, PotentialSolver
from .concentration import ConcentrationSolver
from .separator import SeparatorColumn, limiting_current_density

__all__ = [
    "BOLTZMANN", "ELECTROLYTE", "FARADAY", "GAS_CONSTANT", "HOST_CONDUCTIVE", "HOST_DIELECTRIC",
    "LITHIUM", "PHASE_NAMES", "collector_connected", "conductor_mask", "dead_lithium_mask",
    "Electrolyte", "Kinetics", "PhysicalParameters", "describe_validation_error",
    "butler_volmer", "equilibrium_overpotential", "reaction_branches", "DIRECTION_OFFSETS",
    "InterfaceFaces", "interface_faces", "PotentialSolution", "PotentialSolver",
    "ConcentrationSolver", "SeparatorColumn", "limiting_current_density",
]
