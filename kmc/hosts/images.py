"""Hosts from segmented 3-D images (numpy arrays, .npy, .tif/.tiff)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from continuum.constants import HOST_CONDUCTIVE, HOST_DIELECTRIC

from .host import _HOST_PHASES, ETA_NUC_BARE, Host, _check_num, _check_spacing_um, _finish


def load_voxel_image(source: Union[str, Path, np.ndarray], spacing_um: float, *, pore_value: Any = True,
                     add_collector: bool = True, reservoir: int = 0,
                     solid_phase: int = HOST_CONDUCTIVE, axes: Optional[str] = None,
                     flip_z: bool = False, eta_nuc: float = ETA_NUC_BARE,
                     name: Optional[str] = None) -> Host:
    """Host from a 3-D segmented image (array, .npy, or .tif/.tiff with tifffile installed).

    Voxels equal to ``pore_value`` are electrolyte (True = pore, as in PoreSpy); all others
    become ``solid_phase`` (HOST_CONDUCTIVE or HOST_DIELECTRIC). ``axes`` names the image axes
    (default 'xyz' for arrays and .npy, 'zyx' for TIFF stacks, whose pages run along z);
    image z = 0 faces the collector unless ``flip_z``. With ``add_collector`` a collector layer
    is prepended; otherwise the image's own z = 0 layer must be all solid and becomes the
    (conductive) collector. ``reservoir`` [voxels] electrolyte layers are appended on top.
    ``spacing_um`` is the voxel edge [um] (``Host.spacing`` holds it in metres); a value
    below 1e-3 um (a length in metres, say) is refused.
    """
    spacing = _check_spacing_um(spacing_um) * 1e-6  # [m]: SI inside
    if solid_phase not in _HOST_PHASES:
        raise ValueError(f"solid_phase={solid_phase!r} is not allowed: must be HOST_CONDUCTIVE "
                         f"({HOST_CONDUCTIVE}) or HOST_DIELECTRIC ({HOST_DIELECTRIC})")
    reservoir = _check_num("reservoir", reservoir, 0, integer=True)
    is_tiff = False
    if isinstance(source, np.ndarray):
        img, label = source, "array"
        digest = hashlib.sha256(np.ascontiguousarray(source).tobytes()).hexdigest()
    else:
        path = Path(source)
        suffix = path.suffix.lower()
        label = str(path)
        if suffix == ".npy":
            img = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            try:
                import tifffile
            except ImportError as exc:
                raise ImportError("reading TIFF images needs the optional package 'tifffile' "
                                  "(pip install tifffile, or pip install 'lithium-kmc[tiff]'); "
                                  "alternatively save the stack as .npy") from exc
            img, is_tiff = tifffile.imread(path), True
        else:
            raise ValueError(f"source={label!r}: unsupported file type {suffix!r}; "
                             "use .npy, .tif or .tiff, or pass a numpy array")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()  # the file as read: provenance
    img = np.asarray(img)
    if img.ndim != 3:
        raise ValueError(f"image from {label} must be 3-D, got shape {img.shape}")
    axes = axes if axes is not None else ("zyx" if is_tiff else "xyz")
    if not isinstance(axes, str) or sorted(axes) != ["x", "y", "z"]:
        raise ValueError(f"axes={axes!r} must be a permutation of 'xyz'")
    img = np.transpose(img, [axes.index(a) for a in "xyz"])
    if flip_z:
        img = img[:, :, ::-1]
    pore = np.asarray(img == pore_value)
    if pore.shape != img.shape or not pore.any():
        vals = np.unique(img)
        raise ValueError(f"pore_value={pore_value!r} matches no voxel of the image from {label} "
                         f"(values present: {vals[:8].tolist()}{' ...' if vals.size > 8 else ''})")
    solid = ~pore
    nx, ny, nzi = img.shape
    if add_collector:
        phase = np.zeros((nx, ny, nzi + 1 + reservoir), dtype=np.uint8)
        phase[:, :, 0] = HOST_CONDUCTIVE
        phase[:, :, 1:nzi + 1][solid] = solid_phase
    else:
        if not solid[:, :, 0].all():
            raise ValueError("add_collector=False needs the image's z=0 layer to be entirely solid "
                             f"(it becomes the collector); {int(np.count_nonzero(pore[:, :, 0]))} "
                             "voxels there are pore")
        phase = np.zeros((nx, ny, nzi + reservoir), dtype=np.uint8)
        phase[:, :, :nzi][solid] = solid_phase
        phase[:, :, 0] = HOST_CONDUCTIVE
    if phase.shape[2] < 2:
        raise ValueError(f"image from {label} is too thin: need at least one layer above the collector")
    meta = {"generator": "load_voxel_image", "source": label, "image_shape": [int(s) for s in img.shape],
            "axes": axes, "flip_z": bool(flip_z), "pore_value": repr(pore_value),
            "add_collector": bool(add_collector), "reservoir": reservoir,
            "solid_phase": int(solid_phase), "sha256": digest}
    return _finish(phase, spacing, name or (Path(label).stem if label != "array" else "voxel_image"),
                   meta, eta_nuc)
