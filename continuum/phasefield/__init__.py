"""Nonlinear phase-field model of lithium electrodeposition (Chen et al. 2015; Hong &
Viswanathan 2018) on the voxel grid: ../shared/MODEL.md section 9, docs/phasefield.md."""
from .fields import (free_mask, height_map, interface_area, lithium_amount, lithium_mask, lithium_volume,
                     logistic_profile, order_parameter_from_mask, planar_electrode, signed_distance)
from .parameters import HONG2018, HONG2018_SCALES, PhaseFieldParameters
from .numerics import interpolation
from .solver import Galvanostatic, PhaseFieldSolver, Potentiostatic, flat_front_velocity, relaxed_order_parameter

__all__ = [
    "PhaseFieldParameters", "HONG2018", "HONG2018_SCALES", "PhaseFieldSolver", "Potentiostatic",
    "Galvanostatic", "flat_front_velocity", "interpolation", "free_mask", "height_map", "interface_area",
    "lithium_amount", "lithium_mask", "lithium_volume", "logistic_profile", "order_parameter_from_mask",
    "planar_electrode", "relaxed_order_parameter", "signed_distance",
]
