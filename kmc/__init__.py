"""Lattice kinetic Monte Carlo of lithium plating and stripping in voxelised hosts."""

__version__ = "0.1.0"
