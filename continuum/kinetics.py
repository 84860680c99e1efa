"""Butler-Volmer interface kinetics (docs/model.md, "Interface kinetics"), shared by the continuum and the KMC.

Sign convention: interfacial current density ``i > 0`` is anodic (stripping, current from the
conductor into the electrolyte), ``i < 0`` is plating.  The overpotential is
``eta = phi_s - phi_l`` measured against a lithium reference at ``c_ref`` (E_eq,ref = 0), so
the Nernst shift sits in the concentration factor ``c / c_ref`` of the cathodic branch.

On a lithium face both branches act::

    i = i0 a [exp(alpha_a f eta) - (c/c_ref) exp(-alpha_c f eta)]

On a bare host face (HOST_CONDUCTIVE, nothing to strip) only the cathodic branch acts, with the
site's nucleation overpotential added to eta::

    i = -i0 a (c/c_ref) exp(-alpha_c f (eta + eta_nuc))

The KMC rates are these branches divided by the packet charge, so the KMC must call
:func:`reaction_branches` rather than re-deriving them.
"""
from __future__ import annotations

import numpy as np

from .parameters import PhysicalParameters

# exp() arguments are clipped here: beyond it the branch is astronomically dominant anyway and
# the Newton damping in the solvers never asks for it; clipping only prevents inf/NaN.
_MAX_EXPONENT = 200.0


def _exp(x):
    return np.exp(np.clip(x, -_MAX_EXPONENT, _MAX_EXPONENT))


def reaction_branches(eta, c, params: PhysicalParameters, *, activity=1.0, eta_nuc=0.0,
                      on_lithium=True):
    """Partial current densities (anodic, cathodic), both >= 0, in A/m^2; ``i = anodic - cathodic``.

    ``eta`` [V], ``c`` [mol/m^3] (the electrolyte concentration next to the face; negative values
    are treated as 0), ``activity`` and ``eta_nuc`` are the site's exchange-current multiplier and
    nucleation overpotential, ``on_lithium`` selects the face type.  On lithium faces eta_nuc is
    ignored (a lithium site always has eta_nuc = 0).  All arguments broadcast.
    """
    k = params.kinetics
    f = params.f
    on_li = np.asarray(on_lithium, dtype=bool)
    eta = np.asarray(eta, dtype=np.float64)
    shift = np.where(on_li, 0.0, eta_nuc)
    pref = k.exchange_current_density * np.asarray(activity, dtype=np.float64)
    ratio = np.maximum(np.asarray(c, dtype=np.float64), 0.0) / params.c_ref
    anodic = np.where(on_li, pref * _exp(k.alpha_a * f * eta), 0.0)
    cathodic = pref * ratio * _exp(-k.alpha_c * f * (eta + shift))
    return anodic, cathodic


def butler_volmer(eta, c, params: PhysicalParameters, *, activity=1.0, eta_nuc=0.0,
                  on_lithium=True, derivative=False):
    """Interfacial current density i(eta) [A/m^2] (vectorised; see the module docstring).

    With ``derivative=True`` returns ``(i, di/deta)``; di/deta > 0 always, which is what keeps
    the linearised potential problem symmetric positive definite.
    """
    anodic, cathodic = reaction_branches(eta, c, params, activity=activity, eta_nuc=eta_nuc,
                                         on_lithium=on_lithium)
    i = anodic - cathodic
    if not derivative:
        return i
    k = params.kinetics
    di = params.f * (k.alpha_a * anodic + k.alpha_c * cathodic)
    return i, di


def equilibrium_overpotential(c, params: PhysicalParameters):
    """eta at which a lithium face carries no net current at concentration c (Nernst):
    ``ln(c/c_ref) / ((alpha_a + alpha_c) f)``; 0 at c = c_ref."""
    k = params.kinetics
    return np.log(np.asarray(c, dtype=np.float64) / params.c_ref) / ((k.alpha_a + k.alpha_c) * params.f)
