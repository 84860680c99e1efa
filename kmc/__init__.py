"""Lattice kinetic Monte Carlo of lithium plating and stripping in voxelised hosts.

Layers, lowest first (docs/model.md, "Layout"): ``continuum`` (field solvers) <-
``kmc.engine`` (lattice KMC) <- ``kmc.hosts`` <- ``kmc.coupling`` (one coupled run) <-
``kmc.studies`` and ``kmc.cli``.  The names below are the public Python API; they load on
first use (``python -m kmc`` starts its workers before numpy is imported, kmc.__main__).
"""
from importlib import import_module

__version__ = "0.1.0"

_PUBLIC = {
    ".hosts": ("Host", "activity_gradient", "band_dielectric", "channel_array", "coat_dielectric",
               "decorate_lithiophilic_seeds", "fibre_mat", "load_voxel_image", "overlapping_spheres", "planar_foil",
               "porosity_gradient", "random_porous", "um_to_voxels"),
    ".engine": ("AdvanceResult", "EVENT_TYPES", "KMCEngine", "LatticeState", "RateConstants", "Release",
                "SurfaceDiffusion"),
    ".coupling.config": ("ConfigError", "SimulationConfig", "make_config"),
    ".coupling.simulation": ("PlatingSimulation", "RunResult"),
    ".studies": ("STUDIES", "get_study", "run_case", "run_study"),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'kmc' has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name], __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
