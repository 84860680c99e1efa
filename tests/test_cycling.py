"""Cycling (issue 14): stop conditions of stripping segments, the lithium inventory and dead
lithium (formed, reconnected), Coulombic efficiency per cycle."""
import copy
import math

import numpy as np
import pytest

from continuum.constants import ELECTROLYTE, LITHIUM
from continuum.grid import collector_connected, face_dilate
from kmc.coupling import columns as col
from kmc.coupling.config import make_config
from kmc.coupling.galvanostat import Galvanostat
from kmc.coupling.observables import DeadLithiumLedger, cycle_balance
from kmc.coupling.simulation import PlatingSimulation
from kmc.coupling.units import MA_PER_CM2, MAH_PER_CM2
from kmc.coupling.waveforms import parse_schedule, parse_step
from kmc.engine import KMCEngine
from kmc.engine.lattice import LatticeState

from _kmc_helpers import H, advance_checked, params, slab

# A 16 x 16 um foil under 8 um of electrolyte; steps of about 6 % of the faces keep it fast.
FOIL = ["host.kind=planar_foil", "host.nx=16", "host.ny=16", "host.host_layers=2", "host.reservoir_layers=8",
        "kmc.interface_change_fraction=0.06"]
PLATE = "plate at 8 mA/cm^2 for 0.1 mAh/cm^2"  # 124 packets


def _packet_capacity(cfg) -> float:
    """One packet over the footprint [mAh/cm^2]."""
    h = cfg.host.spacing_um * 1e-6
    return cfg.physics.packet_charge(h) / (cfg.host.nx * cfg.host.ny * h**2) / MAH_PER_CM2


@pytest.fixture(scope="module")
def plated():
    """The foil after plating 0.1 mAh/cm^2 (seed 0): every stop-condition test strips it."""
    cfg = make_config({}, FOIL)
    host = cfg.host.build(np.random.SeedSequence(0))
    sim = PlatingSimulation(cfg, host)
    assert sim.run_segment(parse_step(PLATE)) == "charge"
    return cfg, host, sim.state_dict()


def _strip(plated, step):
    """Run one stripping step on a copy of the plated foil: (sim, why, its rows, strippable
    lithium left after each of its rows)."""
    cfg, host, state = plated
    sim = PlatingSimulation(cfg, host)
    sim.load_state_dict(copy.deepcopy(state))
    start = len(sim.rows)
    left = []
    why = sim.run_segment(parse_step(step), on_step=lambda row: left.append(sim._has_lithium_to_strip()),
                          refine_end=True)
    assert sim.segment_log[-1][col.ENDED_BY] == why
    return sim, why, sim.rows[start:], left


# -- stop conditions -------------------------------------------------------------------------
@pytest.mark.parametrize("step", ["strip at 8 mA/cm^2 for 3 s", "strip at 8 mA/cm^2 for 3 s or fully stripped"])
def test_duration_ends_a_strip_on_the_clock(plated, step):
    sim, why, rows, left = _strip(plated, step)
    seg = sim.segment_log[-1]
    assert why == "duration" and all(left)  # lithium left: 'or fully stripped' does not end it
    assert seg[col.SEGMENT_DURATION] == pytest.approx(3.0, abs=1e-9)
    assert seg[col.APPLIED_CAP] == pytest.approx(-8 * MA_PER_CM2 * 3.0 / MAH_PER_CM2, rel=1e-12)


def test_capacity_ends_a_strip_on_the_charge_passed(plated):
    """'for 0.05 mAh/cm^2' ends on the charge the KMC passed, within half a packet: the last
    step's oxidations are capped at the packets still owed (no overshoot)."""
    cfg = plated[0]
    sim, why, rows, left = _strip(plated, "strip at 8 mA/cm^2 for 0.05 mAh/cm^2")
    seg = sim.segment_log[-1]
    assert why == "charge" and all(left)
    assert abs(-seg[col.PASSED_CAP] - 0.05) <= 0.5 * _packet_capacity(cfg) + 1e-12
    assert seg[col.APPLIED_CAP] == pytest.approx(-0.05, rel=1e-9)


def test_cutoff_ends_a_strip_at_the_first_step_above_it(plated):
    sim, why, rows, left = _strip(plated, "strip at 8 mA/cm^2 until 150 mV cutoff")
    v = np.array([r[col.POTENTIAL] for r in rows])
    assert why == "cutoff"
    assert v[-1] > 0.150 and np.all(v[:-1] <= 0.150)  # the first step past it, not a later one
    assert all(left), "the cutoff must come before the lithium runs out (else the test is empty)"
    assert len(rows) >= 3


def test_fully_stripped_ends_a_strip_when_no_live_lithium_faces_the_electrolyte(plated):
    cfg = plated[0]
    sim, why, rows, left = _strip(plated, "strip at 8 mA/cm^2 until fully stripped")
    seg = sim.segment_log[-1]
    assert why == "fully stripped"
    assert left[-1] is False and all(left[:-1])  # ends at the first step with nothing to strip
    li = sim.state.phase == LITHIUM
    assert not np.any(li & sim.state.connected & face_dilate(sim.state.phase == ELECTROLYTE))
    # the strip passed all the lithium but what is left (dead, or live and buried); the anodic
    # charge the KMC still owed when it ran out (at most two packets: the steps shrink with the
    # lithium) is written off, so the run owes nothing that the next plating would pay
    before = sim.rows[-len(rows) - 1][col.LITHIUM]
    assert -seg[col.PASSED_CAP] == pytest.approx(before - rows[-1][col.LITHIUM], abs=1e-12)
    assert rows[-1][col.LITHIUM] < 0.1 * before
    assert 0 <= seg[col.WRITTEN_OFF] <= 2 * _packet_capacity(cfg)
    gs = sim.galvanostat
    assert gs.applied_charge - gs.realised_charge <= 1e-9 * sim.packet_charge
    assert gs.exhausted_strips == 1 and gs.charge_error_percent() < 1.0


@pytest.mark.parametrize("step, reason", [("strip at 8 mA/cm^2 for 1 mAh/cm^2", "lithium exhausted"),
                                          ("strip at 8 mA/cm^2 for 1 mAh/cm^2 until 5 V cutoff", "cutoff")])
def test_a_strip_that_runs_out_says_why(plated, step, reason):
    """Without 'or fully stripped' a strip that runs out of lithium ends as 'lithium exhausted'
    (it asked for more than there was), or, with a cutoff, as 'cutoff': with nothing left to
    oxidise the electrode's potential passes any cutoff."""
    sim, why, rows, left = _strip(plated, step)
    assert why == reason and left[-1] is False and all(left[:-1])
    assert -sim.segment_log[-1][col.PASSED_CAP] < 0.1 + 1e-9


def test_max_oxidations_stops_the_kmc_at_the_cap():
    """The engine's oxidation cap: strongly anodic lithium stops at exactly the cap."""
    p = params(exchange_current_density_mA_cm2=1e3)
    ph = slab(12, 12, 12, lithium_layers=2)
    st = LatticeState.from_arrays(ph, H)
    eng = KMCEngine(st, p, seed=1, transport="implicit")
    kw = dict(phi_l=np.zeros(ph.shape), phi_s=np.full(ph.shape, 0.2), concentration=np.full(ph.shape, p.c_ref))
    free = advance_checked(KMCEngine(st.copy(), p, seed=1, transport="implicit"), 1.0, **kw)
    assert free.oxidations - free.reductions > 50  # uncapped it would pass far more
    r = advance_checked(eng, 1.0, max_oxidations=17, **kw)
    assert r.status == "max_oxidations" and r.oxidations - r.reductions == 17


def test_galvanostat_caps_a_strip_at_what_is_owed():
    q = 1.0
    g = Galvanostat(footprint=1.0, packet_charge=q, exchange_current_density=10.0, spacing=1e-6,
                    compliance_potential=-1.0)
    g.record_step(3.0, 1.0, 2.0, capped=False)  # one packet behind after a 3-packet step
    assert g.oxidation_cap(3.0, 4.0, 1.0, final=True) == 4  # 3 applied + 1 owed
    assert g.oxidation_cap(3.0, 4.0, 1.0, final=False) == math.ceil(4 + 5 * 2 + 5)
    assert g.oxidation_cap(-3.0, -3.0, 1.0, final=True) is None  # plating: reduction_cap's business
    assert g.oxidation_cap(0.0, 0.0, 1.0, final=False) is None


# -- the lithium inventory and dead lithium -----------------------------------------------------
def test_neck_dissolved_under_a_cluster_makes_it_dead_and_a_deposit_makes_it_live_again():
    """A mushroom: a one-voxel neck under a 27-voxel cap.  Oxidising the neck cuts the cap (and
    the neck above the cut) off: 29 voxels turn dead.  A packet reduced into the gap on the live
    stub touches them: the next relabel finds them connected, 29 voxels reconnected, and they
    strip again."""
    p = params(exchange_current_density_mA_cm2=1e3)
    ph = slab(16, 16, 20)
    ph[8, 8, 1:6] = LITHIUM  # neck
    ph[7:10, 7:10, 6:9] = LITHIUM  # cap
    st = LatticeState.from_arrays(ph, H)
    ledger = DeadLithiumLedger(st.phase, st.connected)
    eng = KMCEngine(st, p, seed=3, transport="implicit", face_counts=True)
    zero = np.zeros(ph.shape)
    phi_s = np.full(ph.shape, -0.3)
    phi_s[8, 8, 3] = 0.3  # only this neck voxel oxidises
    r = advance_checked(eng, 1.0, phi_l=zero, phi_s=phi_s, concentration=zero, max_events=1)
    assert r.oxidations == 1 and st.phase[8, 8, 3] == ELECTROLYTE
    st.relabel()
    assert ledger.update(st.phase, st.connected) == (29, 0)
    assert int(st.dead_lithium.sum()) == 29
    # a deposit into the gap, reduced on the live stub below it
    c = np.zeros(ph.shape)
    c[8, 8, 3] = p.c_ref
    r = advance_checked(eng, 10.0, phi_l=zero, phi_s=np.full(ph.shape, -0.3), concentration=c, max_reductions=1)
    assert r.reductions == 1 and st.phase[8, 8, 3] == LITHIUM
    assert not st.connected[8, 8, 4]  # within the call the dead piece stays dead
    st.relabel()
    assert ledger.update(st.phase, st.connected) == (0, 29)
    assert int(st.dead_lithium.sum()) == 0 and (ledger.formed, ledger.reconnected) == (29, 29)
    # live again: the cap strips (anodic on the cap only, so the neck stays whole)
    phi_s = np.full(ph.shape, -0.3)
    phi_s[7:10, 7:10, 6:9] = 0.3
    r = advance_checked(eng, 0.05, phi_l=zero, phi_s=phi_s, concentration=zero)
    assert r.oxidations > 10 and r.face_oxidations[7:10, 7:10, 6:9].sum() == r.oxidations


def test_ledger_refuses_dead_lithium_that_reacted():
    ph = slab(6, 6, 8)
    ph[2, 2, 3] = LITHIUM  # floating: dead
    st = LatticeState.from_arrays(ph, H)
    ledger = DeadLithiumLedger(st.phase, st.connected)
    ph2 = st.phase.copy()
    ph2[2, 2, 3] = ELECTROLYTE
    with pytest.raises(RuntimeError, match="dead lithium"):
        ledger.update(ph2, st.connected)


CYCLES = ["plate at 8 mA/cm^2 for 0.1 mAh/cm^2", "rest for 2 s", "strip at 8 mA/cm^2 until fully stripped",
          "plate at 8 mA/cm^2 for 0.1 mAh/cm^2", "strip at 8 mA/cm^2 until fully stripped"]


def _cycle(seed, check=None, steps=CYCLES):
    cfg = make_config({}, FOIL + [f"seed={seed}"])
    sim = PlatingSimulation(cfg, cfg.host.build(np.random.SeedSequence(seed)))
    res = sim.run(parse_schedule(steps), snapshots=0, progress=(lambda row: check(sim, row)) if check else None)
    return sim, res


def _inventory(sim, row):
    """plated = stripped + live + dead, in packets, after every macro-step; dead lithium is
    exactly what formed minus what was reconnected."""
    st = sim.state
    li = st.phase == LITHIUM
    live = int(np.count_nonzero(li & st.connected))
    dead = int(np.count_nonzero(li & ~st.connected))
    assert sim.reductions == sim.oxidations + live + dead
    assert dead == sim.dead_ledger.formed - sim.dead_ledger.reconnected
    assert np.array_equal(st.connected, collector_connected(st.phase))  # recorded = true connectivity
    assert row[col.DEAD_LITHIUM] == pytest.approx(row[col.DEAD_FORMED] - row[col.DEAD_RECONNECTED], abs=1e-15)
    sim._checked = getattr(sim, "_checked", 0) + 1


@pytest.fixture(scope="module")
def two_cycles():
    """Two plate / fully-strip cycles on the foil (seed 0), the inventory checked at every step."""
    return _cycle(0, check=_inventory)


def test_inventory_closes_at_every_step_and_ce_is_below_one(two_cycles):
    sim, res = two_cycles
    assert sim._checked == len(res.rows) - 1  # every macro-step was checked
    cycles = cycle_balance(res.segments)
    assert len(cycles) == 2
    lithium0 = 0.0
    for c in cycles:
        assert c[col.CYCLE_PLATED] == pytest.approx(0.1, rel=0.01)
        assert 0.5 < c[col.COULOMBIC_EFFICIENCY] < 1.0
        assert c[col.COULOMBIC_EFFICIENCY] == pytest.approx(c[col.CYCLE_STRIPPED] / c[col.CYCLE_PLATED])
        assert c[col.STRIP_ENDED_BY] == "fully stripped"
        # net plated (plated - stripped + open circuit) is exactly the cycle's change of lithium
        assert c[col.CYCLE_NET] == pytest.approx(c[col.CYCLE_LITHIUM_END] - lithium0, abs=1e-12)
        lithium0 = c[col.CYCLE_LITHIUM_END]
    assert cycles[-1][col.CUMULATIVE_LOSS] == pytest.approx(res.summary[col.LITHIUM], abs=1e-12)
    assert sum(c[col.DEAD_FORMED] for c in cycles) > 0, "no dead lithium formed: the test would be empty"
    assert cycles[-1][col.CYCLE_DEAD_END] == pytest.approx(res.summary[col.DEAD_LITHIUM])
    assert res.summary[col.CHARGE_ERROR] < 1.0


def test_ce_is_repeatable_per_seed(two_cycles):
    """The same seed gives the same first cycle, bit for bit (rerun alone: nothing of the second
    cycle can reach back into it); another seed another one."""
    first = cycle_balance(two_cycles[1].segments)[0]
    assert cycle_balance(_cycle(0, steps=CYCLES[:3])[1].segments) == [first]
    (other,) = cycle_balance(_cycle(1, steps=CYCLES[:3])[1].segments)
    assert other[col.COULOMBIC_EFFICIENCY] != first[col.COULOMBIC_EFFICIENCY]
    assert other[col.COULOMBIC_EFFICIENCY] < 1.0


def test_a_cycling_run_interrupted_mid_strip_resumes_to_the_same_result(two_cycles, tmp_path):
    """Checkpoints carry the dead-lithium ledger and the strip's start marks: a run stopped in
    the middle of its first strip and resumed ends exactly as the uninterrupted one."""
    _, full = two_cycles
    cfg = make_config({}, FOIL + ["seed=0"])
    host = cfg.host.build(np.random.SeedSequence(0))
    seen = []

    def stop(row):
        seen.append(row[col.STEP])
        if seen.count("strip") == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        PlatingSimulation(cfg, host).run(parse_schedule(CYCLES), snapshots=0, progress=stop,
                                         checkpoint_dir=tmp_path, checkpoint_every_steps=1)
    res = PlatingSimulation(cfg, host).run(parse_schedule(CYCLES), snapshots=0, checkpoint_dir=tmp_path,
                                           checkpoint_every_steps=1, resume=True)
    assert [r[col.TIME] for r in res.rows] == [r[col.TIME] for r in full.rows]
    assert cycle_balance(res.segments) == cycle_balance(full.segments)
    assert res.summary[col.DEAD_FORMED] == full.summary[col.DEAD_FORMED] > 0


def test_cycle_balance_phases():
    """Pulse-reverse pulses and rests belong to the plating they interrupt; a cycle starts at
    the plating after a strip."""
    def seg(label, current, passed, ended="duration"):
        return {col.STEP: label, col.CURRENT: current, col.PASSED_CAP: passed, col.ENDED_BY: ended,
                col.DEAD_FORMED: 0.0, col.DEAD_RECONNECTED: 0.0, col.LITHIUM: 0.0, col.DEAD_LITHIUM: 0.0}

    segs = [seg("on", 10, 0.05), seg("reverse", -5, -0.01), seg("off", 0, 0.0), seg("on", 10, 0.06, "charge"),
            seg("rest", 0, 0.0), seg("strip", -2, -0.08, "fully stripped"), seg("rest", 0, 0.001),
            seg("on", 10, 0.1, "charge"), seg("strip", -2, -0.05, "cutoff")]
    c0, c1 = cycle_balance(segs)
    assert c0[col.CYCLE_PLATED] == pytest.approx(0.10) and c0[col.CYCLE_STRIPPED] == pytest.approx(0.08)
    assert c0[col.CYCLE_OPEN_CIRCUIT] == pytest.approx(0.001) and c0[col.CYCLE_NET] == pytest.approx(0.021)
    assert c0[col.COULOMBIC_EFFICIENCY] == pytest.approx(0.8) and c0[col.STRIP_ENDED_BY] == "fully stripped"
    assert c1[col.CYCLE_PLATED] == pytest.approx(0.1) and c1[col.STRIP_ENDED_BY] == "cutoff"
    assert c1[col.CUMULATIVE_LOSS] == pytest.approx(0.021 + 0.05)


# -- coordination-dependent kinetics ------------------------------------------------------------
def _tips_on_a_flat_deposit(n=64, spacing=4, holes=False):
    """Two lithium layers on the collector with one-voxel tips on top every `spacing` voxels
    (a tip: 1 bond, 5 faces; a voxel of the flat top: 5 bonds, 1 face), or, ``holes``, with
    one-voxel pits in the top layer instead (a pit: 5 bonds, 5 reduction faces; the electrolyte
    over the flat top: 1 bond, 1 face)."""
    ph = slab(n, n, 8, lithium_layers=2)
    sites = np.zeros((n, n), bool)
    sites[::spacing, ::spacing] = True
    if holes:
        ph[:, :, 2][sites] = ELECTROLYTE
    else:
        ph[:, :, 3][sites] = LITHIUM
    return ph, sites


def _first_events(ph, p, gamma, reaction, trials=120, per_trial=5):
    """Face counts of the first ``per_trial`` events of ``trials`` independent calls from the
    same lattice (implicit transport; the lattice barely changes within a call)."""
    counts = 0
    for seed in range(trials):
        st = LatticeState.from_arrays(ph, H)
        eng = KMCEngine(st, p, seed=seed, transport="implicit", face_counts=True, interface_energy=gamma)
        zero = np.zeros(ph.shape)
        if reaction == "reduction":  # cathodic, salt everywhere: reductions (oxidation 50x slower)
            r = advance_checked(eng, 1e3, phi_l=zero, phi_s=np.full(ph.shape, -0.1),
                                concentration=np.full(ph.shape, p.c_ref), max_reductions=per_trial)
            counts = counts + r.face_reductions
        else:  # anodic, no salt: oxidations only
            r = advance_checked(eng, 1e3, phi_l=zero, phi_s=np.full(ph.shape, 0.1), concentration=zero,
                                max_oxidations=per_trial)
            counts = counts + r.face_oxidations
    return counts, eng


@pytest.mark.parametrize("reaction", ["oxidation", "reduction"])
def test_low_coordination_lithium_dissolves_faster_and_plates_slower(reaction):
    """With gamma set, a tip (1 bond) strips faster per face than a voxel of a flat face (5
    bonds), by exp(alpha_a f 4 delta); a pit (5 bonds) fills faster per face than the flat top
    (1 bond), by exp(alpha_c f 4 delta) (the same shift in both branches: detailed balance);
    with gamma = 0 they react alike.  Counted over the first events of independent calls."""
    p = params(exchange_current_density_mA_cm2=100.0)
    delta = 0.010  # V per bond
    gamma = delta * 96485.33212 * H / (2 * p.lithium_molar_volume)  # J/m^2 (37 at 1 um voxels)
    ph, sites = _tips_on_a_flat_deposit(holes=reaction == "reduction")
    n_low, n_high = 5 * int(sites.sum()), int((~sites).sum())  # faces of the low / high kind
    ratios = {}
    for g in (0.0, gamma):
        counts, eng = _first_events(ph, p, g, reaction)
        assert eng.rates.coordination_shift == pytest.approx(delta if g else 0.0, rel=1e-12, abs=1e-15)
        if reaction == "oxidation":  # tips at z = 3 (5 faces each), the flat top at z = 2
            low, high = int(counts[:, :, 3].sum()), int(counts[:, :, 2].sum())
            expected = eng.rates.oxidation(0.1, bonds=1) / eng.rates.oxidation(0.1, bonds=5)
        else:  # into a pit at z = 2 (from its 4 walls and its floor), onto the flat top at z = 3
            walls = ((0, -1, 0), (1, 1, 0), (2, -1, 1), (3, 1, 1))  # direction from the wall into the pit
            low = int(sum(counts[:, :, 2, d][np.roll(sites, shift, axis)].sum() for d, shift, axis in walls)
                      + counts[:, :, 1, 4][sites].sum())
            high = int(counts[:, :, 2, 4][~sites].sum())
            expected = eng.rates.reduction(-0.1, bonds=5) / eng.rates.reduction(-0.1, bonds=1)
        # nearly every event was of one of the two kinds (a few land where an earlier one of the
        # same call changed the lattice, e.g. on a filled pit)
        assert counts.sum() >= 120 * 5 and low + high >= 0.98 * counts.sum()
        assert expected == pytest.approx(math.exp(0.5 * p.f * 4 * delta) if g else 1.0)
        ratios[g] = (low / n_low) / (high / n_high)
        se = math.sqrt(1 / low + 1 / high)  # of the log of the ratio
        assert abs(math.log(ratios[g]) - math.log(expected)) < 4 * se, (g, ratios[g], expected, se)
    assert ratios[gamma] > 1.5 * ratios[0.0]


def test_coordination_rates_stay_consistent_through_phase_changes():
    """With the shift on, every cached rate the event loop updated after 600 phase changes
    equals a rebuild (a phase change alters its neighbours' coordination)."""
    p = params(exchange_current_density_mA_cm2=100.0)
    ph, _ = _tips_on_a_flat_deposit(n=32)
    for phis, conc in ((0.05, 0.0), (-0.05, p.c_ref)):
        st = LatticeState.from_arrays(ph, H, concentration=conc or None, seed=1)
        for transport in ("implicit", "explicit"):
            s = st.copy()
            if transport == "implicit":
                s.clear_packets()
            eng = KMCEngine(s, p, seed=2, transport=transport, interface_energy=20.0)
            kw = dict(phi_l=np.zeros(ph.shape), phi_s=np.full(ph.shape, phis))
            kw.update(concentration=np.full(ph.shape, conc)) if transport == "implicit" else kw.update(c_top=conc)
            r = advance_checked(eng, 100.0, max_events=None, max_oxidations=600 if phis > 0 else None,
                                max_reductions=600 if phis < 0 else None, **kw)
            assert r.oxidations + r.reductions >= 300
            check = eng.verify_incremental()
            check.pop("total_rate_rel")  # leap levels may only be lower than a rebuild's (as in test_kmc_engine)
            assert not any(check.values()), check


def test_coordination_off_is_bit_identical_to_the_kinetics_without_it():
    """gamma = 0 (the default) leaves every KMC call as it was before the coordination shift
    existed: counts and final lattices of these calls were recorded with that code (commit
    dee750c), both transport modes, stripping, plating and a dead piece.  Re-recorded when the
    event loop's selection became a two-stage pipeline (the uniforms are drawn in another
    order): dee750c with only that draw order changed (u of attempt i+2 drawn at attempt i)
    gives these same values, so the record still compares the two paths."""
    import hashlib

    from continuum.constants import HOST_CONDUCTIVE
    from continuum.parameters import PhysicalParameters

    p = PhysicalParameters(kinetics={"exchange_current_density_mA_cm2": 100.0})
    got = []
    for transport in ("explicit", "implicit"):
        ph = np.zeros((12, 12, 14), np.uint8)
        ph[:, :, 0] = HOST_CONDUCTIVE
        ph[:, :, 1:3] = LITHIUM
        ph[2:5, 3:6, 3:6] = LITHIUM
        ph[8, 8, 3:8] = LITHIUM
        ph[5, 9, 6:8] = LITHIUM  # floating: dead
        st = LatticeState.from_arrays(ph, 1e-6, concentration=1000.0 if transport == "explicit" else None, seed=5)
        eng = KMCEngine(st, p, seed=7, transport=transport)
        phi_l = np.broadcast_to(-np.arange(ph.shape[2]) * 1e-3, ph.shape).copy()
        for phis in (0.05, -0.05, 0.08):
            kw = dict(phi_l=phi_l, phi_s=np.full(ph.shape, phis))
            kw.update(c_top=1000.0) if transport == "explicit" else kw.update(concentration=np.full(ph.shape, 1000.0))
            r = eng.advance(0.2, **kw)
            got.append((transport, r.reductions, r.oxidations, r.hops, r.dead_marked,
                        hashlib.sha256(st.phase.tobytes()).hexdigest()[:12]))
    assert got == [("explicit", 3, 22, 5329, 6, "8182201581f3"), ("explicit", 16, 2, 4668, 0, "eae69cb2fbbd"),
                   ("explicit", 1, 25, 5959, 5, "ace74ec836a4"), ("implicit", 5, 22, 0, 3, "81513bdadcab"),
                   ("implicit", 13, 5, 0, 0, "29a9c0c7705d"), ("implicit", 5, 35, 0, 0, "dbe086971e5a")]


# -- the cycling protocol and study ------------------------------------------------------------
def test_protocol_cycles_compile_to_plate_strip_pairs():
    cfg = make_config({}, ["protocol.cycles=3", "protocol.strip_current_density_mA_cm2=2", "protocol.rest_s=4",
                           "protocol.strip_cutoff_V=0.5"])
    segs = cfg.protocol.segments()
    assert [s.label for s in segs] == ["plate", "rest", "strip", "rest"] * 3
    strip = segs[2]
    assert strip.current_density == pytest.approx(2 * MA_PER_CM2) and strip.until_stripped
    assert strip.cutoff_potential == 0.5 and not strip.until_charge
    # progress and snapshot times count an open-ended strip as stripping what was plated:
    # 0.2 mAh/cm^2 at 8 mA/cm^2 (90 s), at 2 mA/cm^2 (360 s), two 4-s rests, three times
    from kmc.coupling.waveforms import expected_duration

    assert expected_duration(segs) == pytest.approx(3 * (90 + 4 + 360 + 4))
    assert make_config({}, []).protocol.segments() == make_config({}, ["protocol.cycles=0"]).protocol.segments()
    pulsed = make_config({}, ["protocol.kind=pulse", "protocol.cycles=2"]).protocol.segments()
    assert [s.label for s in pulsed].count("strip") == 2
    assert pulsed[-1].current_density == pytest.approx(8 * MA_PER_CM2)  # strips at the on-current by default


@pytest.mark.parametrize("override, field", [("protocol.cycles=-1", "protocol.cycles"),
                                             ("protocol.strip_current_density_mA_cm2=0",
                                              "protocol.strip_current_density_mA_cm2"),
                                             ("protocol.strip_cutoff_V=-0.2", "protocol.strip_cutoff_V")])
def test_bad_cycling_fields_are_named(override, field):
    from kmc.coupling.config import ConfigError

    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        make_config({}, [override])
    with pytest.raises(ConfigError, match="protocol.cycles"):
        make_config({}, ["protocol.kind=schedule", 'protocol.steps=["plate at 2 mA/cm^2 for 1 s"]',
                         "protocol.cycles=2"])


def test_cycling_outputs_of_a_run(two_cycles, tmp_path):
    """The study's tables and figures from one two-cycle run: rows fall into their cycles,
    summary.csv carries the mean CE, the figures are PNGs."""
    from kmc.coupling.io import read_csv
    from kmc.studies.base import Case
    from kmc.studies.cycling import format_cycles, row_cycles, write_outputs

    sim, res = two_cycles
    ks = row_cycles(res)
    assert ks[0] == 0 and ks[1] == 1 and ks[-1] == 2 and np.all(np.diff(ks) >= 0)
    for k in (1, 2):  # each cycle holds its plating and its strip
        assert {r[col.STEP] for r, kk in zip(res.rows, ks) if kk == k} >= {"plate", "strip"}
    case = Case("Planar foil", "DC", res.host, [], None)
    write_outputs(sim.config, {case.label: res}, [case], tmp_path)
    (row,) = read_csv(tmp_path / "summary.csv")
    assert float(row[col.MEAN_CE]) == pytest.approx(np.mean([c[col.COULOMBIC_EFFICIENCY]
                                                             for c in cycle_balance(res.segments)]))
    assert res.summary[col.cycle_ce(2)] == pytest.approx(cycle_balance(res.segments)[1][col.COULOMBIC_EFFICIENCY])
    for png in ("cross_sections.png", "coulombic_efficiency.png", "voltage_capacity.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "CE per cycle" in format_cycles({case.label: res}, [case])


def test_study_cases_pulse_reverse_and_a_strip_current_sweep():
    """The default cases: DC, pulse and pulse-reverse plating stripped at the plating current,
    and DC plating stripped at 5 and 40 mA/cm^2; labels unique, DC the reference."""
    from kmc.studies import get_study
    from kmc.studies.base import Case

    study = get_study("cycling")
    cfg = make_config({}, study.overrides)
    prots = study.protocols(cfg)
    assert list(prots) == ["DC", "Pulse", "Pulse-reverse", "DC, strip 5 mA.cm-2", "DC, strip 40 mA.cm-2"]
    assert study.reference_protocol in prots
    strips = {k: {s.current_density / MA_PER_CM2 for s in v if s.label == "strip"} for k, v in prots.items()}
    assert strips == {"DC": {20}, "Pulse": {20}, "Pulse-reverse": {20}, "DC, strip 5 mA.cm-2": {5},
                      "DC, strip 40 mA.cm-2": {40}}
    for segs in prots.values():
        assert [s.label for s in segs].count("strip") == 5
    first = prots["Pulse-reverse"][:3]  # 1 s on at 20, 0.25 s anodic at 20, 1 s open circuit
    assert [(s.label, s.current_density / MA_PER_CM2, s.duration) for s in first] == [
        ("on", -20, 1.0), ("reverse", 20, 0.25), ("off", 0, 1.0)]
    cases = study.plan(cfg, np.random.SeedSequence(0)).cases
    assert len({c.label for c in cases}) == len({c.slug for c in cases}) == 10
    assert all("/" not in c.slug for c in cases)
    no_reverse = make_config({}, study.overrides + ["protocol.reverse_time_s=0"])
    assert "Pulse-reverse" not in study.protocols(no_reverse)
    assert isinstance(cases[0], Case)


def test_lithium_centre_height_closed_forms():
    """0.5 for a uniform fill of the host's layers, (z - 1/2) / host height for one layer z,
    NaN with nothing inside or no host."""
    from kmc.coupling.observables import lithium_centre_height

    li = np.zeros((4, 4, 10), bool)
    assert math.isnan(lithium_centre_height(li, 5))
    li[:, :, 1:5] = True  # host layers 1..4 (top = 5), and lithium above the host (ignored)
    li[:, :, 7] = True
    assert lithium_centre_height(li, 5) == pytest.approx(0.5)
    li[:, :, 2:5] = False
    assert lithium_centre_height(li, 5) == pytest.approx(0.5 / 4)
    assert math.isnan(lithium_centre_height(li, 1))  # a foil: the collector layer only


def test_pore_emptying_interpolates_the_middle_of_the_hosts_emptying():
    """The centre height where the lithium inside has fallen halfway from the strip's start to
    its end: 10 -> 8 -> 4 -> 2 leaves the middle (6) halfway between the rows at 8 and 4."""
    from types import SimpleNamespace

    from kmc.studies.cycling import CENTRE_AT_HALF_STRIP, CENTRE_AT_STRIP_START, EMPTYING_SHIFT, pore_emptying

    def row(t, step, j, inside, centre):
        return {col.TIME: t, col.STEP: step, col.CURRENT: j, col.LITHIUM_INSIDE: inside,
                col.LITHIUM_CENTRE_HEIGHT: centre}

    rows = [row(0, "start", 0, 0, math.nan), row(1, "plate", 20, 5, 0.5), row(2, "plate", 20, 10, 0.5),
            row(3, "strip", -20, 8, 0.45), row(4, "strip", -20, 4, 0.3), row(5, "strip", -20, 2, 0.2)]
    segs = [{col.SEGMENT_START: 0, col.SEGMENT_DURATION: 2, col.CURRENT: 20, col.STEP: "plate"},
            {col.SEGMENT_START: 2, col.SEGMENT_DURATION: 3, col.CURRENT: -20, col.STEP: "strip"}]
    (c,) = pore_emptying(SimpleNamespace(rows=rows, segments=segs))
    assert c[CENTRE_AT_STRIP_START] == 0.5
    assert c[CENTRE_AT_HALF_STRIP] == pytest.approx(0.45 + 0.5 * (0.3 - 0.45))
    assert c[EMPTYING_SHIFT] == pytest.approx(0.375 - 0.5)
    for r in rows[1:]:  # a foil: nothing inside, nothing to say
        r[col.LITHIUM_INSIDE], r[col.LITHIUM_CENTRE_HEIGHT] = 0.0, math.nan
    assert math.isnan(pore_emptying(SimpleNamespace(rows=rows, segments=segs))[0][EMPTYING_SHIFT])


# A 16-um random porous host, 16 x 16 um, under a poorly conducting electrolyte (kappa 0.05 S/m,
# 1/50 of the default), mean-field transport; plated at 2 mA/cm^2 to 0.2 mAh/cm^2.
EMPTYING_HOST = ["host.nx=16", "host.ny=16", "host.host_layers=16", "host.reservoir_layers=12",
                 "host.feature_size_um=2", "kmc.transport=implicit", "physics.electrolyte.measured_conductivity=0.05",
                 "kmc.max_macro_step_s=20", "kmc.interface_change_fraction=0.05"]


def test_pores_empty_from_the_top_when_ion_transport_limits_the_strip():
    """Ohmic drop across the pores over the anodic Tafel slope, N = j L / (kappa_eff b): at
    40 mA/cm^2 N ~ 5, the lithium near the separator dissolves first and the centre height of
    what is left inside falls (measured -0.14 after stripping 75 %); at 2 mA/cm^2 (N ~ 0.3)
    the pores empty far more evenly (-0.04).  Each seed strips the same plated host at both
    currents, so the difference is paired (measured -0.10, 7 standard errors; 5 seeds)."""
    shifts = {2: [], 40: []}
    for seed in range(5):
        cfg = make_config({}, EMPTYING_HOST + [f"seed={seed}"])
        host = cfg.host.build(np.random.SeedSequence(seed))
        sim = PlatingSimulation(cfg, host)
        assert sim.run_segment(parse_step("plate at 2 mA/cm^2 for 0.2 mAh/cm^2"), refine_end=True) == "charge"
        state, start = sim.state_dict(), sim.rows[-1][col.LITHIUM_CENTRE_HEIGHT]
        assert sim.rows[-1][col.LITHIUM_ABOVE] < 0.5 * sim.rows[-1][col.LITHIUM_INSIDE]  # mostly in the host
        for j in shifts:
            strip = PlatingSimulation(cfg, host)
            strip.load_state_dict(copy.deepcopy(state))
            strip.run_segment(parse_step(f"strip at {j} mA/cm^2 for 0.15 mAh/cm^2"), refine_end=True)
            shifts[j].append(strip.rows[-1][col.LITHIUM_CENTRE_HEIGHT] - start)
    fast, paired = np.array(shifts[40]), np.array(shifts[40]) - np.array(shifts[2])
    se = lambda x: x.std(ddof=1) / math.sqrt(x.size)  # noqa: E731
    assert fast.mean() < -3 * se(fast), shifts  # emptied from the top
    assert paired.mean() < -3 * se(paired), shifts  # the more so, the faster the strip


def test_ensemble_cycle_figure_reads_ce_and_dead_lithium_per_cycle(tmp_path):
    """cycle_statistics turns the summary's per-cycle columns into rows with CIs, which
    plot_cycles draws as bars."""
    from kmc.studies.ensemble import CHECKPOINT_COL, cycle_statistics
    from kmc.studies.plots import plot_cycles

    def stat(case, obs, mean):
        return {"Case": case, "Host": case.split(" | ")[0], "Protocol": case.split(" | ")[1], CHECKPOINT_COL: 100,
                "Observable": obs, "n": 8, "Mean": mean, "Std": 0.01, "CI95 low": mean - 0.02,
                "CI95 high": mean + 0.02}

    rows = [stat(c, f(k), m) for c in ("Porous host | DC", "Planar foil | DC") for k in (1, 2)
            for f, m in ((col.cycle_ce, 0.9 + 0.01 * k), (col.cycle_dead, 0.01 * k))]
    rows.append({**stat("Porous host | DC", col.MEAN_CE, 0.9), CHECKPOINT_COL: 50})  # not the end: ignored
    table = cycle_statistics(rows)
    assert list(table) == ["Porous host | DC", "Planar foil | DC"]
    second = table["Planar foil | DC"][1]
    assert second[col.CYCLE] == 2 and second[col.COULOMBIC_EFFICIENCY] == pytest.approx(0.92)
    assert second[f"{col.CYCLE_DEAD_END} CI95 high"] == pytest.approx(0.04)
    assert cycle_statistics([r for r in rows if "cycle" not in r["Observable"]]) == {}
    plot_cycles(tmp_path / "ce.png", table, title="2 replicas")
    assert (tmp_path / "ce.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_cycling_study_end_to_end(tmp_path):
    """`python -m kmc cycling` on a small lattice: ten cases (porous host and foil; DC, pulse,
    pulse-reverse, DC stripped at 5 and 40 mA/cm^2) of two cycles each; CE per cycle, dead
    lithium, where the pores emptied, figures, summary (a few minutes)."""
    from kmc.cli import main
    from kmc.coupling.io import read_csv
    from kmc.studies.cycling import EMPTYING_SHIFT

    out = tmp_path / "cyc"
    sets = ["host.nx=16", "host.ny=16", "host.host_layers=4", "host.reservoir_layers=8", "protocol.cycles=2",
            "protocol.capacity_mAh_cm2=0.1", "kmc.interface_change_fraction=0.08"]
    rc = main(["cycling", "--out", str(out), "--no-progress", "--workers", "2"] + sum((["--set", s] for s in sets), []))
    assert rc == 0
    cycles = read_csv(out / "cycles.csv")
    protocols = ("DC", "Pulse", "Pulse-reverse", "DC, strip 5 mA.cm-2", "DC, strip 40 mA.cm-2")
    assert len(cycles) == 10 * 2
    assert {(c["Host"], c["Protocol"]) for c in cycles} == {(h, p) for h in ("Porous host", "Planar foil")
                                                             for p in protocols}
    for c in cycles:
        # the plating phase's net: the pulses' currents plus their off-times' exchange (which
        # the galvanostat's next pulse pays back)
        assert float(c[col.CYCLE_PLATED]) + float(c[col.CYCLE_OPEN_CIRCUIT]) == pytest.approx(0.1, rel=0.02)
        assert c[col.STRIP_ENDED_BY] == "fully stripped"
        if c[col.CYCLE] == "1":  # nothing dead yet to reconnect: the first cycle cannot return more
            assert 0.5 < float(c[col.COULOMBIC_EFFICIENCY]) < 1.0
    summary = read_csv(out / "summary.csv")
    assert len(summary) == 10 and all(0.5 < float(r[col.MEAN_CE]) < 1.1 for r in summary)
    for r in summary:  # a host's strips empty its pores somewhere; a foil has none (NaN: an empty cell)
        assert (r[EMPTYING_SHIFT] != "") == (r["Host"] == "Porous host")
        assert r["Host"] != "Porous host" or abs(float(r[EMPTYING_SHIFT])) < 0.5
    assert len(read_csv(out / "pore_emptying.csv")) == 10 * 2
    for png in ("cross_sections.png", "coulombic_efficiency.png", "voltage_capacity.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json_state(out) == "complete"


@pytest.mark.slow
def test_cycling_ensemble_gives_ce_per_cycle_with_cis(tmp_path):
    """Two replicas of the study on a tiny lattice (mean-field transport, one cycle): every
    cycle's CE and dead lithium get a CI, the pore emptying joins the statistics, the figure is
    drawn and every protocol is compared with DC."""
    from kmc.studies import get_study
    from kmc.studies.cycling import EMPTYING_SHIFT
    from kmc.studies.ensemble import run_study_ensemble

    sets = ["host.nx=8", "host.ny=8", "host.host_layers=4", "host.reservoir_layers=6", "protocol.cycles=1",
            "protocol.capacity_mAh_cm2=0.1", "kmc.transport=implicit", "kmc.interface_change_fraction=0.1"]
    cfg = make_config({}, get_study("cycling").overrides + sets)
    res = run_study_ensemble("cycling", cfg, tmp_path / "ens", replicas=2, workers=1, progress=False, echo=None)
    final = [s for s in res.statistics if s[col.CAPACITY_CHECKPOINT] == 100]
    ce = [s for s in final if s["Observable"] == col.cycle_ce(1)]
    assert len(ce) == 10 and all(s["n"] == 2 and s["CI95 low"] <= s["Mean"] <= s["CI95 high"] for s in ce)
    shift = {s["Case"]: s["n"] for s in final if s["Observable"] == EMPTYING_SHIFT}  # a foil has none
    assert shift == {c["Case"]: 2 for c in ce if c["Host"] == "Porous host"}
    assert {c["Protocol"] for c in res.comparison} == {"Pulse", "Pulse-reverse", "DC, strip 5 mA.cm-2",
                                                       "DC, strip 40 mA.cm-2"}
    assert (tmp_path / "ens" / "coulombic_efficiency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def json_state(out):
    import json

    return json.loads((out / "status.json").read_text())["state"]
