"""The galvanostat's control: a model that passes only part of the current its fields are set
to (the KMC's lattice coordination against the fields' Butler-Volmer) still keeps pace with
the applied charge; one that passes at least 0.75 of it sees the same targets as before the
efficiency estimate (twice the applied current at most)."""
import math

import pytest

from kmc.coupling.galvanostat import EFFICIENCY_MEMORY, Galvanostat

Q = 1e-3  # C per packet


def _galvanostat():
    return Galvanostat(footprint=1.0, packet_charge=Q, exchange_current_density=10.0, spacing=1e-6,
                       compliance_potential=-1.0)


def _run(efficiency, applied, steps=200, dt=1.0):
    """A model that passes ``efficiency`` of its target each step (to the charge, no packets);
    returns the galvanostat and the targets it set."""
    g, targets = _galvanostat(), []
    for _ in range(steps):
        target = g.target_current(applied, dt)
        targets.append(target)
        g.record_step(applied, dt, efficiency * target * dt, capped=False, target=target)
    return g, targets


@pytest.mark.parametrize("applied", [-20 * Q, 20 * Q])  # plating, stripping: 20 packets per step
def test_a_model_passing_a_third_of_its_target_keeps_pace(applied):
    """Passing a third of the target needs three times the applied current (the ceiling is
    4.5x): the debt settles at (1/eff - 1) = 2 steps' charge (the deadbeat target's offset)
    instead of growing by a third of the applied charge per step once twice the applied
    current is all it may ask."""
    g, targets = _run(1 / 3, applied)
    owed = g.owed_charge(applied, 0.0)
    assert abs(owed) == pytest.approx(2 * abs(applied), rel=1e-3)
    assert targets[-1] == pytest.approx(3 * applied, rel=1e-3)
    assert g.efficiency(applied) == pytest.approx(1 / 3, rel=1e-9)
    assert g.charge_error_percent() < 1.0
    # the clip at twice the applied current alone: a debt of 1/3 of the applied charge per step
    capped = _galvanostat()
    for _ in range(200):
        target = float(min(max(capped.owed_charge(applied, 1.0), min(0.0, 2 * applied)), max(0.0, 2 * applied)))
        capped.record_step(applied, 1.0, target / 3, capped=False)
    assert capped.charge_error_percent() > 30.0


def test_a_model_passing_its_whole_target_sees_the_targets_of_twice_the_applied_current():
    """Efficiency at or above 0.75 leaves the ceiling at exactly twice the applied current (the
    same floats as the clip alone); below, the ceiling lets the model pass 1.5x the applied
    current (REPAY_CURRENT); a step with no target (a cap reached) leaves the estimate alone."""
    applied = -20 * Q
    g, targets = _run(1.0, applied, steps=5)
    assert targets == pytest.approx([applied] * 5, rel=1e-12)  # paid as it goes
    g.record_step(applied, 1.0, -100 * Q, capped=False, target=-40 * Q)  # ahead: 2.5x its target
    assert g.efficiency(applied) > 1.0
    g.record_step(applied, 1.0, 150 * Q, capped=False)  # 150 packets behind (another model's debt)
    assert g.target_current(applied, 1.0) == 2 * applied
    sums = list(g.efficiency_sums)
    g.record_step(applied, 1.0, 0.0, capped=True, target=None)
    assert g.efficiency_sums == sums
    g.record_step(applied, 1.0, 1.0, capped=False)  # 1000 packets behind: the ceiling binds
    for efficiency, ceiling in ((0.8, 2.0), (0.75, 2.0), (0.5, 3.0), (0.1, 15.0), (0.01, 30.0)):
        g.efficiency_sums[:2] = [1.0, efficiency]
        assert g.target_current(applied, 1.0) == pytest.approx(ceiling * applied, rel=1e-12)


def test_the_estimate_forgets_and_keeps_the_signs_apart():
    """Stripping steps do not move the plating estimate; the steps before weigh
    EFFICIENCY_MEMORY per step, so after a switch from a third to all of the target the
    estimate climbs back to one (weights in closed form)."""
    g = _galvanostat()
    for _ in range(50):
        g.record_step(-Q, 1.0, -Q / 3, capped=False, target=-Q)
    g.record_step(Q, 1.0, 0.1 * Q, capped=False, target=Q)  # stripping at a tenth
    assert g.efficiency(-Q) == pytest.approx(1 / 3, rel=1e-9)
    assert g.efficiency(Q) == pytest.approx(0.1)
    m = EFFICIENCY_MEMORY
    before = sum(m**j for j in range(50)) * Q  # the 50 steps' asked charge
    for n in range(1, 4):
        g.record_step(-Q, 1.0, -Q, capped=False, target=-Q)
        recent = sum(m**j for j in range(n)) * Q
        assert g.efficiency(-Q) == pytest.approx((m**n * before / 3 + recent) / (m**n * before + recent), rel=1e-12)
    restored = _galvanostat()
    restored.load_state_dict(g.state_dict())
    assert restored.efficiency(-Q) == g.efficiency(-Q) and restored.efficiency(Q) == g.efficiency(Q)
    assert math.isclose(_galvanostat().efficiency(-Q), 1.0)
