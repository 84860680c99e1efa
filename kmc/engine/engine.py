"""Python orchestration of the KMC: validate inputs, own the work arrays, call the kernels.

One :meth:`KMCEngine.advance` = fields frozen for ``duration`` seconds of KMC time.  Per call:
relabel connectivity (optional), copy the fields into work arrays, one jitted setup (rates,
rate groups, leap levels, packet lists), then the jitted event loop (re-entered only if the
packet store must grow).  Same state + fields + seed -> bit-identical result.

Choices documented here (../shared/docs/model.md, "Kinetic Monte Carlo" leaves them open; docs/model.md, "What an
event does"):

* ``eta = phi_s - phi_l``: the caller references phi_s to a lithium electrode at c_ref.
* A voxel reduced in a call takes phi_s of the conductor it was reduced on; a voxel oxidised
  in a call takes phi_l (and, implicit transport, c) of the electrolyte voxel across the
  oxidising face.  A surface-hopping voxel carries its phi_s; the voxel it leaves takes the
  target's phi_l.
* Other packets in a voxel being reduced move to a uniformly chosen free electrolyte face
  neighbour (re-drawn if a capped neighbour is full).  If they have nowhere to go the
  reduction does not happen (counted as ``blocked_reductions``; it is a null event).
* Dead lithium: lithium dead at the start of the call (``connected`` False after relabel)
  never reacts.  Within a call, after every oxidation / surface hop a cheap local test
  (3x3x3 cube connectivity of the conductor neighbours) runs, and only when it fails a flood
  of at most ``dead_check_budget`` voxels; a component that is exhausted without reaching
  z = 0 is marked dead at once.  Larger cut-off pieces are caught by the next relabel.
* The occupancy cap blocks hops/insertions into full voxels (null events); leaps are off
  when a cap is set (a leap cannot see full voxels on its way).
* Region counts are by the voxel that turns into (reduction) or out of (oxidation) lithium.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from continuum.constants import ELECTROLYTE, HOST_CONDUCTIVE, LITHIUM
from continuum.parameters import PhysicalParameters

from . import kernels as K
from .seeds import seed_sequence
from .rates import RateConstants, SurfaceDiffusion
from .lattice import LatticeState

_MAX_FIELD_EXPONENT = 200.0


@dataclass
class Release:
    """One-at-a-time release (diffusion-limited aggregation driver).

    Whenever no packet is left, one is released at a uniformly random point of the sphere of
    radius ``r_max + margin`` voxels around ``center`` (voxel coordinates; the circle in a
    slab with one dimension of size 1), where r_max is the
    largest distance of lithium formed during the call from the centre (start it with
    ``initial_radius``).  A walker farther than ``kill_factor * (r_max + margin)`` is removed.
    """

    center: tuple
    margin: float = 5.0
    kill_factor: float = 3.0
    initial_radius: float = 0.0


@dataclass
class AdvanceResult:
    """What one :meth:`KMCEngine.advance` did."""

    elapsed: float  # KMC time advanced [s]
    counts: dict  # per event type (see kernels.COUNTER_NAMES)
    region_reductions: np.ndarray  # int64[8]
    region_oxidations: np.ndarray  # int64[8]
    packet_charge: float  # C per packet
    status: str
    wall_time: float
    face_reductions: Optional[np.ndarray] = None  # int64[nx,ny,nz,6] by conductor voxel, dir to electrolyte
    face_oxidations: Optional[np.ndarray] = None  # int64[nx,ny,nz,6] by lithium voxel, dir to electrolyte
    release_radius: float = 0.0

    def __getattr__(self, name):
        counts = self.__dict__.get("counts")
        if counts is not None and name in counts:
            return counts[name]
        raise AttributeError(name)

    @property
    def charge(self) -> float:
        """Net charge passed [C], anodic positive: (oxidations - reductions) * q."""
        return (self.counts["oxidations"] - self.counts["reductions"]) * self.packet_charge

    @property
    def attempts(self) -> int:
        return self.counts["n_events"] + self.counts["null_events"]

    @property
    def attempts_per_event(self) -> float:
        return self.attempts / max(1, self.counts["n_events"])

    def faraday_balanced(self) -> bool:
        c = self.counts
        return (c["reductions"] - c["oxidations"]) == (c["lithium_created"] - c["lithium_removed"])


_STATUS = {K.ST_DONE: "duration", K.ST_MAXEV: "max_events", K.ST_NOEVENTS: "no_events",
           K.ST_MAXRED: "max_reductions", K.ST_MAXOX: "max_oxidations", K.ST_OVERFLOW: "rate_overflow",
           K.ST_RELFAIL: "release_failed"}


def _field(a, shape, name):
    if a is None:
        raise ValueError(f"{name}: required")
    arr = np.asarray(a)
    if arr.ndim == 0:
        arr = np.full(shape, float(arr))
    if arr.shape != tuple(shape):
        raise ValueError(f"{name}: shape {arr.shape} does not match the grid {tuple(shape)}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name}: must be a real float array, got dtype {arr.dtype}")
    return arr


def _aligned_records(n):
    """int32[n, 4] whose rows start on 16-byte boundaries inside 64-byte cache lines."""
    raw = np.zeros(n * 4 + 16, np.int32)
    off = (-raw.ctypes.data % 64) // 4
    return raw[off:off + n * 4].reshape(n, 4)


class KMCEngine:
    """Lattice KMC of lithium plating/stripping on a :class:`LatticeState` (changed in place).

    transport: 'explicit' (packets hop) or 'implicit' (no packets; reduction at rate
    k_red c V_m per face from a given concentration field).  leaps: True (up to 16-hop leaps),
    False, or the largest leap length (a power of two).  occupancy_cap: max packets per voxel
    or None.  surface_diffusion: :class:`SurfaceDiffusion` (or dict) or None (off).
    interface_energy: gamma of the lithium/electrolyte interface [J/m^2]; > 0 makes reduction and
    oxidation depend on the coordination of the voxel they create or remove
    (:func:`kmc.engine.rates.coordination_shift`); 0 (default): off.
    seed: int, SeedSequence or None; each advance draws one integer from it for Numba.
    """

    def __init__(self, state: LatticeState, params: PhysicalParameters, *,
                 transport: str = "explicit", leaps=True, occupancy_cap: Optional[int] = None,
                 surface_diffusion=None, seed=None, dead_check: bool = True,
                 dead_check_budget: int = 4096, relabel: bool = True, face_counts: bool = False,
                 interface_energy: float = 0.0):
        if not isinstance(state, LatticeState):
            raise ValueError("state: must be a LatticeState")
        if not isinstance(params, PhysicalParameters):
            raise ValueError("params: must be a PhysicalParameters")
        if transport not in ("explicit", "implicit"):
            raise ValueError(f"transport = {transport!r}: must be 'explicit' or 'implicit'")
        if occupancy_cap is not None and (int(occupancy_cap) != occupancy_cap or occupancy_cap < 1):
            raise ValueError(f"occupancy_cap = {occupancy_cap!r}: must be a positive integer or None")
        if leaps is True:
            kmax = 4
        elif leaps is False or leaps is None or leaps == 0 or leaps == 1:
            kmax = 0
        else:
            n = int(leaps)
            if n != leaps or n < 2 or n & (n - 1) or n > 1 << 10:
                raise ValueError(f"leaps = {leaps!r}: must be True, False or a power of two in [2, 1024]")
            kmax = n.bit_length() - 1
        if occupancy_cap is not None or transport == "implicit":
            kmax = 0
        if isinstance(surface_diffusion, dict):
            surface_diffusion = SurfaceDiffusion(**surface_diffusion)
        if surface_diffusion is not None and not isinstance(surface_diffusion, SurfaceDiffusion):
            raise ValueError("surface_diffusion: must be a SurfaceDiffusion, a dict or None")
        if int(dead_check_budget) < 1:
            raise ValueError("dead_check_budget: must be >= 1")
        self.state = state
        self.params = params
        self.transport = transport
        self.leap_levels = kmax
        self.occupancy_cap = None if occupancy_cap is None else int(occupancy_cap)
        self.surface_diffusion = surface_diffusion or SurfaceDiffusion()
        self.dead_check = bool(dead_check)
        self.dead_check_budget = int(dead_check_budget)
        self.relabel = bool(relabel)
        self.face_counts = bool(face_counts)
        self.rates = RateConstants.from_parameters(params, state.spacing, self.surface_diffusion,
                                                   interface_energy=float(interface_energy))
        self._seed_seq = seed_sequence(seed)
        self._work = None
        self.time = 0.0
        self.n_calls = 0

    # -- work arrays, allocated once per grid ---------------------------------------------
    def _work_arrays(self):
        N = self.state.phase.size
        w = self._work
        if w is not None and w["N"] == N:
            return w
        implicit = self.transport == "implicit"
        w = {
            "N": N,
            "vox": _aligned_records(N),
            "SG": np.zeros(N, np.uint8),
            "spos": np.empty(N, np.int64),
            "SI": np.empty(N, np.int64),
            "stamp": np.zeros(N, np.int64),

            "PHIL": np.empty(N, np.float64),
            "PHIS": np.empty(N, np.float64),
            "CONC": np.zeros(N if implicit else 1, np.float64),
            "pstart": np.zeros(K.NG + 1, np.int64),
            "sstart": np.zeros(K.NG + 1, np.int64),
            "tree": np.zeros(2 * K.NLEAF, np.float64),
            "stack": np.empty(self.dead_check_budget + 8, np.int64),
        }
        # hot per-voxel data share one 16-byte record (one cache line holds 4 voxels): the
        # event loop reads U, R, head, group and leap level of a voxel with one miss
        rec = w["vox"]
        w["U"] = rec.view(np.float32)[:, 0]
        w["RV"] = rec.view(np.float32)[:, 1]
        w["head"] = rec[:, 2]
        w["G"] = rec.view(np.uint8)[:, 12]
        w["L"] = rec.view(np.uint8)[:, 13]
        self._work = w
        return w

    def _check_fields(self, phi_l, phi_s, phi_top, c_top, concentration, region):
        st = self.state
        shape = st.phase.shape
        phase = st.phase
        phi_l = _field(phi_l, shape, "phi_l")
        phi_s = _field(phi_s, shape, "phi_s")
        elec = phase == ELECTROLYTE
        if not np.all(np.isfinite(phi_l[elec])):
            raise ValueError("phi_l: NaN or inf in an electrolyte voxel")
        cond = st.connected & ((phase == HOST_CONDUCTIVE) | (phase == LITHIUM))
        if not np.all(np.isfinite(phi_s[cond])):
            raise ValueError("phi_s: NaN or inf in a connected conductor voxel")
        try:
            phi_top = float(phi_top)
        except (TypeError, ValueError):
            raise ValueError(f"phi_top = {phi_top!r}: must be a float [V]") from None
        if not math.isfinite(phi_top):
            raise ValueError(f"phi_top = {phi_top!r}: must be finite")
        f = self.params.f
        if elec.any() and 0.5 * f * np.max(np.abs(phi_l[elec] - phi_top)) > _MAX_FIELD_EXPONENT:
            raise ValueError("phi_l: |phi_l - phi_top| exceeds 400/f (~10 V): not a physical field")
        if self.transport == "explicit":
            if c_top is None:
                raise ValueError("c_top: required in explicit transport (mol/m^3 of the reservoir "
                                 "above the top face; 0 closes the inflow)")
            try:
                c_top = float(c_top)
            except (TypeError, ValueError):
                raise ValueError(f"c_top = {c_top!r}: must be a float [mol/m^3]") from None
            if not (math.isfinite(c_top) and c_top >= 0):
                raise ValueError(f"c_top = {c_top!r}: must be finite and >= 0")
            if concentration is not None:
                raise ValueError("concentration: only used with transport='implicit'")
        else:
            c_top = 0.0 if c_top is None else float(c_top)
            concentration = _field(concentration, shape, "concentration")
            cel = concentration[elec]
            if not np.all(np.isfinite(cel)) or np.any(cel < 0):
                raise ValueError("concentration: must be finite and >= 0 in electrolyte voxels")
        if region is not None:
            region = np.asarray(region)
            if region.shape != shape:
                raise ValueError(f"region: shape {region.shape} does not match the grid {shape}")
            if not np.issubdtype(region.dtype, np.integer) or region.min() < 0 or region.max() > 7:
                raise ValueError("region: must be integer region ids 0..7")
        return phi_l, phi_s, phi_top, c_top, concentration, region

    # -- the call ------------------------------------------------------------------------
    def advance(self, duration, *, phi_l, phi_s, phi_top=0.0, c_top=None, concentration=None,
                region=None, max_events=None, max_reductions=None, max_oxidations=None,
                release: Optional[Release] = None) -> AdvanceResult:
        """Advance the lattice by ``duration`` seconds of KMC time with frozen fields.

        phi_l, phi_s: float64 full grids [V] (phi_l read on electrolyte voxels, phi_s on
        connected conductors); phi_top: potential of the reservoir above the top face [V];
        c_top: reservoir concentration [mol/m^3] (explicit); concentration: full grid
        [mol/m^3] (implicit); region: uint8 ids 0..7 for per-region counts; max_events: stop
        after this many executed events; max_reductions: stop once reductions minus oxidations
        reach it (a galvanostat's charge counter; the DLA driver with release); then duration
        may be inf; max_oxidations: stop once oxidations minus reductions reach it (the same
        counter while stripping).  The call stops before the first event past ``duration``.
        """
        t0 = time.perf_counter()
        duration = self._check_limits(duration, max_events, max_reductions, release, max_oxidations)
        st = self.state
        if self.relabel:
            st.relabel()
        phi_l, phi_s, phi_top, c_top, concentration, region = self._check_fields(
            phi_l, phi_s, phi_top, c_top, concentration, region)
        st.validate()
        if self.transport == "implicit" and st.n_packets:
            raise ValueError("state: implicit transport takes no packets (clear_packets() first)")
        prm = self._float_parameters(c_top, release)
        w = self._work_arrays()
        self._load_fields(w, phi_l, phi_s, phi_top, concentration)
        n0 = st.n_packets
        ctx = self._context(w, self._packet_records(max(2 * n0, n0 + 4096)), region, prm,
                            self._int_parameters(release))
        K.setup_call(ctx, n0)
        if ctx.counters[K.C_OVERFLOW]:
            raise ValueError("rates: an event rate exceeds 2^38 x the packet hop rate; check the "
                             "fields (overpotential) and parameters")
        max_ev = np.iinfo(np.int64).max if max_events is None else int(max_events)
        max_red = -1 if max_reductions is None else int(max_reductions)
        max_ox = -1 if max_oxidations is None else int(max_oxidations)
        while True:
            status = K.run_events(ctx, duration, max_ev, max_red, max_ox, self._next_kernel_seed(),
                                  None if release is None else True)
            if status != K.ST_GROW:
                break
            n = int(ctx.packet_start[K.NG])
            P2 = np.zeros((2 * ctx.packets.shape[0], K.N_FIELDS), np.int64)
            P2[:n] = ctx.packets[:n]
            ctx = ctx._replace(packets=P2)
        if status == K.ST_OVERFLOW:
            raise ValueError("rates: an event rate exceeded 2^38 x the packet hop rate during the call")
        if status == K.ST_RELFAIL:
            raise ValueError("release: found no electrolyte voxel on the release sphere")
        self._last_ctx = ctx
        return self._finish_call(ctx, status, time.perf_counter() - t0)

    def _check_limits(self, duration, max_events, max_reductions, release, max_oxidations=None) -> float:
        try:
            duration = float(duration)
        except (TypeError, ValueError):
            raise ValueError(f"duration = {duration!r}: must be a number of seconds") from None
        if math.isnan(duration) or duration <= 0:
            raise ValueError(f"duration = {duration!r}: must be > 0")
        if math.isinf(duration) and max_events is None and max_reductions is None and max_oxidations is None:
            raise ValueError("duration: inf needs max_events, max_reductions or max_oxidations")
        if max_events is not None and (int(max_events) != max_events or max_events < 0):
            raise ValueError(f"max_events = {max_events!r}: must be a non-negative integer")
        if max_reductions is not None and (int(max_reductions) != max_reductions or max_reductions < 0):
            raise ValueError(f"max_reductions = {max_reductions!r}: must be a non-negative integer")
        if max_oxidations is not None and (int(max_oxidations) != max_oxidations or max_oxidations < 0):
            raise ValueError(f"max_oxidations = {max_oxidations!r}: must be a non-negative integer")
        if release is not None and self.transport != "explicit":
            raise ValueError("release: needs transport='explicit'")
        return duration

    def _load_fields(self, w, phi_l, phi_s, phi_top, concentration) -> None:
        """Fields -> work arrays (unused voxels get harmless finite values)."""
        PHIL, PHIS, U = w["PHIL"], w["PHIS"], w["U"]
        implicit = self.transport == "implicit"
        elec = (self.state.phase == ELECTROLYTE).ravel()
        if implicit:
            w["RV"][:] = 0.0
        np.copyto(PHIL, np.nan_to_num(np.asarray(phi_l, np.float64).ravel(), nan=0.0, posinf=0.0, neginf=0.0))
        np.copyto(PHIS, np.nan_to_num(np.asarray(phi_s, np.float64).ravel(), nan=0.0, posinf=0.0, neginf=0.0))
        # U = exp(-f (phi_l - phi_top) / 2), 0 off the electrolyte: hop rate = (D+/h^2) U_j / U_i
        u64 = np.exp(np.clip((PHIL - phi_top) * (-0.5 * self.rates.f), -_MAX_FIELD_EXPONENT, _MAX_FIELD_EXPONENT))
        u64[~elec] = 0.0
        U[...] = u64
        if implicit:
            np.copyto(w["CONC"], np.where(elec, np.asarray(concentration, np.float64).ravel(), 0.0))

    def _float_parameters(self, c_top, release) -> np.ndarray:
        rc = self.rates
        prm = np.zeros(K.N_PRM, np.float64)
        prm[K.P_HOP] = rc.hop
        prm[K.P_KRED0] = rc.k_red0
        prm[K.P_KOX0] = rc.k_ox0
        prm[K.P_AAF] = rc.alpha_a_f
        prm[K.P_ACF] = rc.alpha_c_f
        prm[K.P_VM] = rc.molar_volume
        prm[K.P_INS0] = rc.hop * c_top * rc.molar_volume
        prm[K.P_UTOP] = 1.0  # U is referenced to phi_top
        prm[K.P_SDNU] = rc.surface_nu
        prm[K.P_SDEB] = rc.surface_bond_over_kt
        prm[K.P_COORD] = rc.coordination_shift
        if release is not None:
            c = tuple(float(a) for a in release.center)
            if len(c) != 3:
                raise ValueError("release.center: must be (x, y, z) in voxel units")
            prm[K.P_CX], prm[K.P_CY], prm[K.P_CZ] = c
            prm[K.P_MARGIN] = float(release.margin)
            prm[K.P_KILL] = float(release.kill_factor)
            prm[K.P_RMAX] = float(release.initial_radius)
            if release.kill_factor <= 1 or release.margin <= 0:
                raise ValueError("release: kill_factor must be > 1 and margin > 0")
        return prm

    def _int_parameters(self, release) -> np.ndarray:
        ip = np.zeros(K.N_IP, np.int64)
        ip[K.I_NX], ip[K.I_NY], ip[K.I_NZ] = self.state.phase.shape
        ip[K.I_IMPLICIT] = int(self.transport == "implicit")
        ip[K.I_KMAX] = self.leap_levels
        ip[K.I_CAP] = 0 if self.occupancy_cap is None else self.occupancy_cap
        ip[K.I_SD] = int(self.surface_diffusion.enabled)
        ip[K.I_RELEASE] = int(release is not None)
        ip[K.I_DEADCHK] = int(self.dead_check)
        ip[K.I_BUDGET] = self.dead_check_budget
        ip[K.I_NEXTID] = self.state.next_packet_id
        ip[K.I_STAMP] = 0
        ip[K.I_FACECNT] = int(self.face_counts)
        return ip

    def _next_kernel_seed(self) -> int:
        """The Numba generator's seed for the next kernel chunk: one child of the engine's stream."""
        return int(self._seed_seq.spawn(1)[0].generate_state(1, dtype=np.uint32)[0])

    def _finish_call(self, ctx, status, wall) -> AdvanceResult:
        """Packets back into the lattice state; the call's counts as an AdvanceResult."""
        st = self.state
        nx, ny, nz = st.phase.shape
        P, prm, cnt, regc, face = ctx.packets, ctx.prm, ctx.counters, ctx.region_counts, ctx.face_counts
        n = int(ctx.packet_start[K.NG])
        st.packets = P[:n, K.VOX].copy()
        st.packet_ids = P[:n, K.PID].copy()
        st.packet_images = P[:n, K.WX:K.WY + 1].copy()
        st.next_packet_id = int(ctx.ip[K.I_NEXTID])
        if self.occupancy_cap is None:  # kept in-call only under a cap
            st._count_occupancy()
        elapsed = float(prm[K.P_T])
        self.time += elapsed
        self.n_calls += 1
        counts = {name: int(cnt[i]) for i, name in enumerate(K.COUNTER_NAMES)}
        res = AdvanceResult(
            elapsed=elapsed, counts=counts, region_reductions=regc[0].copy(),
            region_oxidations=regc[1].copy(), packet_charge=self.rates.packet_charge,
            status=_STATUS.get(status, str(status)), wall_time=wall,
            face_reductions=face[0].reshape(nx, ny, nz, 6) if self.face_counts else None,
            face_oxidations=face[1].reshape(nx, ny, nz, 6) if self.face_counts else None,
            release_radius=float(prm[K.P_RMAX]))
        if not res.faraday_balanced():
            raise RuntimeError(f"KMC accounting broken: {counts}")
        return res

    def _packet_records(self, cap):
        st = self.state
        P = np.zeros((cap, K.N_FIELDS), np.int64)
        n = st.n_packets
        if n:
            x, y, z = np.unravel_index(st.packets, st.phase.shape)
            P[:n, K.VOX] = st.packets
            P[:n, K.PID] = st.packet_ids
            P[:n, K.PX] = x
            P[:n, K.PY] = y
            P[:n, K.PZ] = z
            P[:n, K.WX] = st.packet_images[:, 0]
            P[:n, K.WY] = st.packet_images[:, 1]
        return P

    def _context(self, w, P, region, prm, ip) -> K.KernelContext:
        st = self.state
        N = st.phase.size
        reg = (np.zeros(N, np.uint8) if region is None
               else np.ascontiguousarray(np.asarray(region).ravel(), dtype=np.uint8))
        face = np.zeros((2, N, 6) if self.face_counts else (2, 1, 6), np.int64)
        w["stamp"][:] = 0
        return K.KernelContext(
            phase=st.phase.reshape(-1), connected=st.connected.reshape(-1), occupancy=st.occupancy.reshape(-1),
            head=w["head"], group=w["G"], leap=w["L"], site_group=w["SG"], site_pos=w["spos"], region=reg,
            stamp=w["stamp"], reduction_total=w["RV"], u=w["U"], phi_l=w["PHIL"], phi_s=w["PHIS"],
            eta_nuc=st.eta_nuc.reshape(-1), activity=st.activity.reshape(-1), concentration=w["CONC"],
            packets=P, packet_start=w["pstart"], sites=w["SI"], site_start=w["sstart"], tree=w["tree"],
            bounds=K.group_bounds(6.0 * self.rates.hop), prm=prm, ip=ip, counters=np.zeros(K.N_CNT, np.int64),
            region_counts=np.zeros((2, 8), np.int64), stack=w["stack"], face_counts=face)

    # -- checkpoints ---------------------------------------------------------------------
    def rng_state(self) -> dict:
        ss = self._seed_seq
        return {"entropy": ss.entropy, "spawn_key": tuple(ss.spawn_key),
                "n_children_spawned": ss.n_children_spawned}

    def state_dict(self) -> dict:
        """The engine's own state (its random stream and clocks); the lattice is the caller's."""
        return {"rng": self.rng_state(), "time": self.time, "n_calls": self.n_calls}

    def load_state_dict(self, d: dict) -> None:
        rng = d["rng"]
        self._seed_seq = np.random.SeedSequence(rng["entropy"], spawn_key=tuple(rng["spawn_key"]),
                                                n_children_spawned=int(rng["n_children_spawned"]))
        self.time = float(d["time"])
        self.n_calls = int(d["n_calls"])

    def verify_incremental(self) -> dict:
        """Diagnostics for tests: recompute every rate, group and leap level of the last call's
        final configuration from scratch (same in-call fields, no relabel) and compare with
        what the event loop maintained incrementally.  Returns counts of mismatches (all 0
        when the incremental updates are right; leap levels may only be lower)."""
        ctx = getattr(self, "_last_ctx", None)
        if ctx is None:
            raise RuntimeError("verify_incremental: no call yet")
        w = self._work
        n = int(w["pstart"][K.NG])
        P = ctx.packets
        inc = {k: w[k].copy() for k in ("G", "L", "SG", "RV")}
        pk_inc = np.sort(P[:n, K.PID])
        occ = np.bincount(P[:n, K.VOX], minlength=w["N"])
        total_inc = float(w["tree"][1])
        sites_inc = np.sort(w["SI"][:int(w["sstart"][K.NG])])
        # packet-group membership must follow the voxel's group
        grp_of_pos = np.repeat(np.arange(K.NG), np.diff(w["pstart"]))
        member_bad = int(np.count_nonzero(grp_of_pos != inc["G"][P[:n, K.VOX]]))
        K.setup_call(ctx, n)
        fresh = {k: w[k] for k in ("G", "L", "SG", "RV")}
        same_leap = inc["L"] == fresh["L"]
        return {
            "rv": int(np.count_nonzero(inc["RV"] != fresh["RV"])),
            "group": int(np.count_nonzero((inc["G"] != fresh["G"]) & same_leap)),
            "leap_too_high": int(np.count_nonzero(inc["L"] > fresh["L"])),
            "site_group": int(np.count_nonzero(inc["SG"] != fresh["SG"])),
            "sites": int(not np.array_equal(sites_inc, np.sort(w["SI"][:int(w["sstart"][K.NG])]))),
            "occupancy": int(np.count_nonzero(occ != self.state.occupancy.reshape(-1))),
            "packets": int(not np.array_equal(pk_inc, np.sort(P[:n, K.PID]))),
            "membership": member_bad,
            "total_rate_rel": abs(total_inc - float(w["tree"][1])) / max(1e-300, float(w["tree"][1])),
        }
