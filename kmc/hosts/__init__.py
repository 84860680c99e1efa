"""Voxel host skeletons for lithium plating (docs/model.md, section "Hosts").

Modules: :mod:`.host` (the :class:`Host` record and its checks), :mod:`.generators`
(synthetic hosts), :mod:`.decorations` (seeds, dielectric coats, activity gradients),
:mod:`.images` (hosts from segmented images), :mod:`.registry` (the host kinds the
configuration's ``host.kind`` names).

Conventions
-----------
* Arrays are indexed ``[x, y, z]``, periodic in x and y.
* Layer ``z = 0`` is the current collector, entirely HOST_CONDUCTIVE; every generator
  includes it and builds the host on top of it.
* ``z = nz - 1`` faces the separator / bulk electrolyte. Generators leave ``reservoir``
  pure-electrolyte layers above the host (default :data:`DEFAULT_RESERVOIR`), so the host
  occupies layers ``1 .. nz - 1 - reservoir``.
* The builders take the voxel edge as ``spacing_um`` in micrometres (values below 1e-3 um,
  e.g. a length in metres, are refused); ``Host.spacing`` stores it in metres (SI inside).
  Every other geometric argument is in voxels (convert micrometres with
  ``um_to_voxels(length_um, spacing_um)``).
* Randomness comes only from an explicit ``rng`` (``numpy.random.Generator``) or ``seed``
  (int or ``SeedSequence``), never numpy's global state. With neither, a fresh
  ``SeedSequence`` is drawn and its entropy stored in ``host.metadata["seed_entropy"]``.
"""
from .decorations import activity_gradient, band_dielectric, coat_dielectric, decorate_lithiophilic_seeds
from .generators import (channel_array, fibre_mat, overlapping_spheres, planar_foil,
                         porosity_gradient, random_porous)
from .host import DEFAULT_RESERVOIR, ETA_NUC_BARE, POROSITY_TOLERANCE, Host, um_to_voxels
from .images import load_voxel_image
from .registry import (HostKind, build_host, get_host_kind, host_kinds, register_host,
                       unregister_host)

__all__ = [
    "ETA_NUC_BARE", "DEFAULT_RESERVOIR", "POROSITY_TOLERANCE", "Host", "um_to_voxels",
    "planar_foil", "channel_array", "random_porous", "overlapping_spheres", "fibre_mat",
    "porosity_gradient", "decorate_lithiophilic_seeds", "coat_dielectric", "band_dielectric",
    "activity_gradient", "load_voxel_image",
    "HostKind", "register_host", "unregister_host", "host_kinds", "get_host_kind", "build_host",
]
