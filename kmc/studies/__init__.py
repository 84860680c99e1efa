"""Studies: one module per study behind one protocol (:class:`~kmc.studies.base.Study`: plan
cases -> run -> summarise -> figures), the ensemble machinery and the figures.  The registry
below is what the CLI, ``python -m kmc ensemble --cases`` and the ensemble read."""
from __future__ import annotations

from .base import Case, Study, StudyPlan, run_case, run_study
from .conductive_dielectric import ConductiveDielectric
from .cycling import Cycling
from .gradient_hosts import GradientHosts
from .lithiophilic import Lithiophilic
from .pulse_vs_dc import PulseVsDC
from .sa_sv import SaSv
from .single import SingleRun
from .top_deposition import TopDeposition
from .validate import Validate

STUDIES: dict[str, Study] = {}


def register_study(study: Study) -> Study:
    if not study.name or study.name in STUDIES:
        raise ValueError(f"study name {study.name!r}: must be new and non-empty")
    STUDIES[study.name] = study
    return study


def get_study(name: str) -> Study:
    try:
        return STUDIES[name]
    except KeyError:
        raise ValueError(f"study {name!r} is unknown: must be one of {sorted(STUDIES)}") from None


register_study(SingleRun())
register_study(PulseVsDC())
register_study(Cycling())
register_study(TopDeposition())
register_study(GradientHosts())
register_study(Lithiophilic())
register_study(SaSv())
register_study(ConductiveDielectric())
register_study(Validate())

__all__ = ["Case", "Study", "StudyPlan", "STUDIES", "get_study", "register_study", "run_case", "run_study"]
