"""Registry of host kinds: the configuration's ``host.kind`` names one of these builders.

A builder has the signature ``builder(spec, spacing_um, seed) -> Host``: ``spec`` carries the
fields of the configuration's host section (:class:`kmc.coupling.config.HostSpec`),
``spacing_um`` is the voxel edge [um] (``spec.spacing_um``, passed on as is to the generators,
which take ``spacing_um`` too) and ``seed`` an int or ``numpy.random.SeedSequence``.
:func:`build_host` applies the decorations the spec asks for (seeds, bands, dielectric coat) after
the builder, so a builder makes the bare skeleton only. A new host kind is one builder
function plus one ``@register_host("name")``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..engine.seeds import seed_sequence
from .decorations import activity_gradient, band_dielectric, coat_dielectric, decorate_lithiophilic_seeds
from .generators import (channel_array, fibre_mat, overlapping_spheres, planar_foil,
                         porosity_gradient, random_porous)
from .host import Host, um_to_voxels
from .images import load_voxel_image

HostBuilder = Callable[[Any, float, Any], Host]


@dataclass(frozen=True)
class HostKind:
    """One registered host kind.

    needs_seed   the builder draws random numbers (so replicas with different seeds differ).
    """

    kind: str
    builder: HostBuilder
    needs_seed: bool
    description: str


_REGISTRY: dict[str, HostKind] = {}


def register_host(kind: str, *, needs_seed: bool = True,
                  description: str = "") -> Callable[[HostBuilder], HostBuilder]:
    """Decorator registering ``builder(spec, spacing_um, seed) -> Host`` as host kind ``kind``.

    ``spacing_um`` is the voxel edge in micrometres (the configuration's ``host.spacing_um``);
    hand it to the generators / :func:`~kmc.hosts.images.load_voxel_image` unchanged, and
    convert lengths in um to voxels with ``um_to_voxels(length_um, spacing_um)``.

    ``needs_seed`` defaults to True so that a random builder is never taken for a
    deterministic one; ``description`` defaults to the first line of the builder's docstring.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"host kind {kind!r} must be a non-empty string")

    def register(builder: HostBuilder) -> HostBuilder:
        if kind in _REGISTRY:
            raise ValueError(f"host kind {kind!r} is already registered")
        doc = (builder.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[kind] = HostKind(kind, builder, bool(needs_seed), description or doc)
        return builder

    return register


def unregister_host(kind: str) -> None:
    """Remove a registered kind (for tests and plug-ins that register temporarily)."""
    get_host_kind(kind)
    del _REGISTRY[kind]


def host_kinds() -> tuple[str, ...]:
    """Registered kinds, in registration order."""
    return tuple(_REGISTRY)


def get_host_kind(kind: str) -> HostKind:
    """The registry entry of ``kind``; ValueError naming the allowed kinds if there is none."""
    try:
        return _REGISTRY[kind]
    except (KeyError, TypeError):
        raise ValueError(f"{kind!r} is not a host kind: must be one of {list(_REGISTRY)}") from None


def build_host(spec: Any, seed: Any) -> Host:
    """Build ``spec.kind`` from ``spec``, then seed / band / coat it as the spec asks, and validate.

    The builder draws from ``seed``; the seed decoration from a fixed child of it (spawn key
    + (1,)), so its draws are independent of the skeleton's (the same stream for both would
    place seeds by the very numbers that shaped the host).
    """
    builder = get_host_kind(spec.kind).builder
    host = builder(spec, spec.spacing_um, seed)
    if spec.seed_fraction > 0:
        root = seed_sequence(seed)
        decoration = np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + (1,))
        host = decorate_lithiophilic_seeds(host, spec.seed_fraction, eta_nuc_seed=spec.seed_eta_nuc_V,
                                           weighting=spec.seed_weighting, seed=decoration)
    if getattr(spec, "band_period_um", 0.0) > 0:
        host = _bands(host, spec)
    if spec.dielectric_top_fraction > 0:
        host = coat_dielectric(host, top_fraction=spec.dielectric_top_fraction)
    bottom, top = getattr(spec, "activity_bottom", 1.0), getattr(spec, "activity_top", 1.0)
    if (bottom, top) != (1.0, 1.0):
        host = activity_gradient(host, bottom, top)
    return host.validate()


def _bands(host: Host, spec) -> Host:
    """:func:`band_dielectric` as ``spec.band_*`` ask (the period in um: a whole number of voxels)."""
    spacing_um = spec.spacing_um
    fields = (f"host.band_period_um={spec.band_period_um:g}, host.band_dielectric_fraction="
              f"{spec.band_dielectric_fraction:g}")
    period = um_to_voxels(spec.band_period_um, spacing_um)
    if abs(period - round(period)) > 1e-6 * max(1.0, period):
        raise ValueError(f"host.band_period_um={spec.band_period_um:g} is {period:g} voxels of "
                         f"host.spacing_um={spacing_um:g}: must be a whole number of voxels")
    try:
        return band_dielectric(host, int(round(period)), spec.band_dielectric_fraction, wiring=spec.band_wiring)
    except ValueError as e:
        raise ValueError(f"{fields}: {e}") from None


# ----------------------------------------------------------------------------------------
# built-in kinds (lengths in the spec are in um; the generators take voxels)
# ----------------------------------------------------------------------------------------
def _common(spec) -> dict:
    return dict(reservoir=spec.reservoir_layers, eta_nuc=spec.bare_eta_nuc_V)


@register_host("planar_foil", needs_seed=False)
def _planar_foil(spec, spacing_um, seed) -> Host:
    """Bare current collector: a flat foil one voxel thick."""
    return planar_foil(spec.shape, spacing_um, thickness=1, reservoir=spec.reservoir_layers,
                       eta_nuc=spec.bare_eta_nuc_V)


@register_host("random_porous")
def _random_porous(spec, spacing_um, seed) -> Host:
    """Blurred noise thresholded to ``porosity`` (feature size ``feature_size_um``)."""
    return random_porous(spec.shape, spacing_um, spec.porosity, um_to_voxels(spec.feature_size_um, spacing_um),
                         seed=seed, **_common(spec))


@register_host("channel_array", needs_seed=False)
def _channel_array(spec, spacing_um, seed) -> Host:
    """Square array of pillars (or holes, ``channels_are_holes``) of ``radius_um`` at ``pitch_um``."""
    return channel_array(spec.shape, spacing_um, int(round(um_to_voxels(spec.pitch_um, spacing_um))),
                         um_to_voxels(spec.radius_um, spacing_um),
                         kind="channels" if spec.channels_are_holes else "pillars", **_common(spec))


@register_host("fibre_mat")
def _fibre_mat(spec, spacing_um, seed) -> Host:
    """Random in-plane fibres of ``radius_um`` fitted to ``porosity``."""
    return fibre_mat(spec.shape, spacing_um, spec.porosity, um_to_voxels(spec.radius_um, spacing_um),
                     seed=seed, **_common(spec))


@register_host("overlapping_spheres")
def _overlapping_spheres(spec, spacing_um, seed) -> Host:
    """Overlapping solid spheres of ``radius_um`` fitted to ``porosity``."""
    return overlapping_spheres(spec.shape, spacing_um, spec.porosity, um_to_voxels(spec.radius_um, spacing_um),
                               seed=seed, **_common(spec))


@register_host("porosity_gradient")
def _porosity_gradient(spec, spacing_um, seed) -> Host:
    """Blurred noise with porosity linear in z from ``porosity`` to ``porosity_top``."""
    return porosity_gradient(spec.shape, spacing_um, spec.porosity, spec.porosity_top,
                             um_to_voxels(spec.feature_size_um, spacing_um), seed=seed, **_common(spec))


@register_host("image", needs_seed=False)
def _image(spec, spacing_um, seed) -> Host:
    """Segmented voxel image at ``image_path`` (.npy/.tif, True = pore)."""
    if not spec.image_path:
        raise ValueError("host.image_path is required when host.kind is 'image'")
    return load_voxel_image(spec.image_path, spacing_um, reservoir=spec.reservoir_layers,
                            eta_nuc=spec.bare_eta_nuc_V, pore_value=spec.image_pore_value, axes=spec.image_axes,
                            flip_z=spec.image_flip_z)
