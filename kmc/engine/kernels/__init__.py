"""Numba kernels of the lattice KMC, split along their floors (lowest first): layout (records,
slots, neighbours), selection (composition-rejection groups and stores), rate_cache (cached
rates and their refresh), leaps, dead_lithium, effects (what an event does), loop (setup and
the event loop).  The Python engine (:mod:`kmc.engine.engine`) owns every array and calls
:func:`setup_call` and :func:`run_events`.  Design and measured speed: docs/kernels.md.
"""
from .layout import (C_OVERFLOW, COUNTER_NAMES, I_BUDGET, I_CAP, I_DEADCHK, I_FACECNT, I_IMPLICIT, I_KMAX,
                     I_NEXTID, I_NX, I_NY, I_NZ, I_RELEASE, I_SD, I_STAMP, N_CNT, N_FIELDS, N_IP, N_PRM, NG, NLEAF,
                     P_AAF, P_ACF, P_COORD, P_CX, P_CY, P_CZ, P_HOP, P_INS0, P_KILL, P_KOX0, P_KRED0, P_MARGIN, P_RMAX,
                     P_SDEB, P_SDNU, P_T, P_UTOP, P_VM, PID, PX, PY, PZ, ST_DONE, ST_GROW, ST_MAXEV, ST_MAXRED,
                     ST_MAXOX, ST_NOEVENTS, ST_OVERFLOW, ST_RELFAIL, VOX, WX, WY, KernelContext, group_bounds)
from .leaps import leap_levels
from .loop import run_events, setup_call
