"""The wetting layer's dynamic coordination energy (continuum.phasefield, ``contact_bond_shift``;
docs/phasefield.md "Validation"): each host contact reacts, in both branches, at eta + (3 - n)
delta, n its host faces plus its neighbouring bond cells' lithium, updated every step.  Detailed
balance per contact (a closed form), lithium and charge conservation, and step flow along a
floor (a contact beside lithium plates faster than one on the bare floor: the static shift
cannot give that).  The front's (``front_bond_shift``): every voxel's front term at the same
shift (a closed form), and conservation with it."""
import math

import numpy as np
import pytest

from continuum import FARADAY, HOST_CONDUCTIVE, HOST_DIELECTRIC, LITHIUM
from continuum.phasefield import HONG2018, Galvanostatic, PhaseFieldSolver, Potentiostatic, planar_electrode
from continuum.phasefield import solver as S

DELTA = 0.0419  # V per bond: the KMC's at its roughening-point interface energy, 1 um voxels
FAST_IONS = HONG2018.replace(noise_amplitude=0.0, diffusivity_electrolyte=1e-6, diffusivity_solid=1e-6)


def _floor_with_step(nx=12, nz=6, step=5):
    """2D: the collector (z = 0, conductive) and on it a lithium step of two layers over x <
    ``step``; the rest of the floor bare."""
    phase = np.zeros((nx, 1, nz), np.uint8)
    phase[:, :, 0] = HOST_CONDUCTIVE
    phase[:step, :, 1:3] = LITHIUM
    return phase


def _cell_blocks(a, cell):
    """``a`` (3D) viewed as blocks of ``cell`` voxels per edge: axes 1, 3 and 5 run inside a block."""
    nx, ny, nz = (k // cell for k in a.shape)
    return a.reshape(nx, cell, ny, cell, nz, cell)


def _neighbour_cells(shape, free, cell):
    """(k, W) for each free voxel k (flat indices ``free``) and each face-neighbour cell W of its
    bond cell: x and y periodic, nothing beyond z's ends (3D, ``cell`` voxels per edge)."""
    nx, ny, nz = (k // cell for k in shape)
    for k, v in enumerate(free):
        X, Y, Z = np.array(np.unravel_index(v, shape)) // cell
        for dx, dy, dz in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
            if 0 <= Z + dz < nz:
                yield k, ((X + dx) % nx, (Y + dy) % ny, Z + dz)


def _bond_count_closed_form(phase, xi_free, free, cell=2):
    """n per free voxel: non-free neighbour bond cells (host) count 1, free ones their mean of xi
    clipped to [0, 1] (`_neighbour_cells`)."""
    full = np.zeros(phase.shape)
    full.ravel()[free] = np.clip(xi_free, 0.0, 1.0)
    theta = _cell_blocks(full, cell).mean(axis=(1, 3, 5))
    free_cell = _cell_blocks(phase, cell).min(axis=(1, 3, 5)) == 0
    n = np.zeros(free.size)
    for k, W in _neighbour_cells(phase.shape, free, cell):
        n[k] += theta[W] if free_cell[W] else 1.0
    return n


def test_parameter_is_validated():
    assert HONG2018.contact_bond_shift == 0.0
    with pytest.raises(ValueError, match="contact_bond_shift"):
        HONG2018.replace(contact_bond_shift=-0.01)
    assert HONG2018.front_bond_shift == 0.0
    with pytest.raises(ValueError, match="front_bond_shift"):
        HONG2018.replace(front_bond_shift=1.5)
    phase = np.zeros((6, 1, 6), np.uint8)
    phase[:, :, 0] = HOST_CONDUCTIVE
    with pytest.raises(ValueError, match="bond_cell"):
        PhaseFieldSolver(phase, 1e-6, FAST_IONS.replace(contact_bond_shift=DELTA), xi=np.zeros(phase.shape),
                         bond_cell=4)


def test_contact_branches_obey_detailed_balance_with_the_neighbours_lithium():
    """Per contact, oxidation / reduction = exp(f (eta + s)) / (m c+/c0) with s = (3 - n) delta, n
    = host faces + the neighbouring bond cells' lithium: at eta = 0 and c+ = c0 the contact's
    reaction vanishes at Langmuir's theta / (1 - theta) = m exp(-f s), to round-off, for any
    neighbour filling; and s is the closed form.  3D, bond cells of 2 voxels per edge, a
    conductive floor and a dielectric wall, eta_nuc 40 mV and activity 0.7."""
    prm = FAST_IONS.replace(contact_bond_shift=DELTA, alpha_a=0.3, alpha_c=0.7)
    phase = np.zeros((8, 4, 8), np.uint8)
    phase[:, :, :2] = HOST_CONDUCTIVE  # the floor: one bond cell thick
    phase[:2, :, 2:] = HOST_DIELECTRIC  # a wall (a bond, no contact)
    cond = phase == HOST_CONDUCTIVE
    s = PhaseFieldSolver(phase, 1e-6, prm, xi=np.zeros(phase.shape), eta_nuc=np.where(cond, 0.04, 0.0),
                         activity=np.where(cond, 0.7, 1.0), bond_cell=2)
    g = s.geo
    m = 0.7 * math.exp(-prm.alpha_c * prm.f * 0.04)
    rng = np.random.default_rng(1)
    xi = np.where(g.contact, 0.0, rng.uniform(0.0, 1.0, g.n))  # lithium in the neighbouring cells
    g.update_coordination(xi)
    # the closed form of s: the floor below each contact's bond cell, the cell above and its four
    # side cells (periodic in y: ny = 2 cells, the same one twice)
    assert g.contact.sum() == 6 * 4  # the free voxels on the floor
    n = _bond_count_closed_form(phase, xi, g.free)[g.contact]
    np.testing.assert_allclose(g.coordination_shift[g.contact], (3.0 - n) * DELTA, rtol=1e-12)
    assert np.ptp(g.coordination_shift[g.contact]) > 0.5 * DELTA  # the neighbours' lithium matters
    # detailed balance: R = 0 at Langmuir's coverage, at eta = 0 and c+ = c0
    e = 1e-3 * prm.bulk_concentration
    c = np.full(g.n, prm.bulk_concentration - e * e / (4 * prm.bulk_concentration))  # c+ = c0
    sh = g.coordination_shift[g.contact]
    ratio = m * np.exp(-prm.f * sh)
    x = xi.copy()
    x[g.contact] = ratio / (1.0 + ratio)
    act = np.flatnonzero(g.contact)
    R = S._reaction(g, prm, x, c, np.zeros(act.size), act, derivatives=False)[0]
    scale = prm.kinetic_coefficient * g.face_weight[act] * x[act] * np.exp(prm.alpha_a * prm.f * sh)
    assert np.all(np.abs(R) < 1e-12 * scale), np.max(np.abs(R) / scale)
    # and the branches' ratio at any eta: oxidation / reduction = exp(f (eta + s)) / m
    for eta in (-0.08, 0.03):
        ox = g.anodic_factor[act] * math.exp(prm.alpha_a * prm.f * eta)
        red = g.cathodic_factor[act] * math.exp(-prm.alpha_c * prm.f * eta)
        np.testing.assert_allclose(ox / red, np.exp(prm.f * (eta + sh)) / m, rtol=1e-12)


@pytest.mark.parametrize("front", [False, True], ids=["contacts", "contacts and front"])
def test_lithium_and_charge_are_conserved_with_the_dynamic_shift(front):
    """Galvanostatic plating, a potentiostatic hold and stripping on a host with conductive and
    dielectric parts and a lithium film, the contacts' shift (and the front's) changing every
    step: lithium and charge conserved to 1e-6 of what moved, as without it."""
    h = 0.5e-6
    prm = HONG2018.replace(contact_bond_shift=DELTA, front_bond_shift=DELTA if front else 0.0)
    shape = (16, 1, 24)
    phase, xi = planar_electrode(shape, h, prm, 1.5 * h)
    phase[4, :, 1:12] = HOST_CONDUCTIVE
    phase[12:, :, 2:4] = HOST_DIELECTRIC
    xi[phase == HOST_CONDUCTIVE] = 1.0
    xi[phase == HOST_DIELECTRIC] = 0.0
    s = PhaseFieldSolver(phase, h, prm, xi=xi, eta_nuc=np.where(phase == HOST_CONDUCTIVE, 0.02, 0.0), rng=7,
                         bond_cell=2)
    assert s.geo.contact.any()
    metal0 = s.lithium_amount()
    shifts = [s.geo.coordination_shift[s.geo.contact].copy()]
    s.advance(1.0, Galvanostatic(-20.0))
    shifts.append(s.geo.coordination_shift[s.geo.contact].copy())
    applied = -20.0 * s.footprint_area
    assert s.charge == pytest.approx(applied, rel=1e-6)
    s.advance(0.5, Potentiostatic(-0.05))
    s.advance(0.5, Galvanostatic(10.0))
    assert not np.array_equal(shifts[0], shifts[1])  # the shift followed the lithium
    moved = abs(s.lithium_amount() - metal0) + abs(applied) / FARADAY
    bal = s.balance()
    assert abs(bal["lithium"]) < 1e-6 * moved
    assert abs(bal["charge"]) < 1e-6 * abs(applied)


def _floor_run(dynamic, eta=-0.1, duration=5.0):
    """The floor with a lithium step at uniform eta (ions fast); returns the gain of each floor
    contact (x = step .. nx - 1, z = 1) and the solver.  ``dynamic``: the coordination energy
    per contact; else the static one a flat floor's contact has (n = 1: 2 delta in eta_nuc)."""
    h = 1e-6
    phase = _floor_with_step()
    cond = phase == HOST_CONDUCTIVE
    xi = np.where(phase == LITHIUM, 1.0, 0.0)
    prm = FAST_IONS.replace(contact_bond_shift=DELTA if dynamic else 0.0)
    s = PhaseFieldSolver(phase, h, prm, xi=xi, c=prm.bulk_concentration,
                         eta_nuc=np.where(cond, 0.0 if dynamic else 2 * DELTA, 0.0))
    s.set_top(potential=eta)
    s.advance(duration, Potentiostatic(eta))
    return s.order_parameter[5:, 0, 1], s


def test_a_floor_contact_beside_lithium_plates_faster_step_flow():
    """Step flow, the KMC's way of filling a pore's floor: a floor contact beside a lithium step has
    two bonds (the floor and the step), s = delta, one in the middle of the bare floor has one, s
    ~ 2 delta, so in the linear regime the first gains exp(alpha_c f delta) = 2.25 times as much
    (measured 2.2; the middle contact's neighbours hold ~1 % lithium); the contact at the
    periodic image of the step (x = nx - 1) too.  With the static shift (2 delta for every floor
    contact, in eta_nuc) they gain the same (within 2 %, measured 1.00)."""
    expected = math.exp(FAST_IONS.alpha_c * FAST_IONS.f * DELTA)
    gain, s = _floor_run(True)
    mid = gain[3]  # x = 8, three voxels from lithium either way
    assert 0.1 > gain.max() and mid > 1e-3  # linear regime, plated
    assert gain[0] / mid == pytest.approx(expected, rel=0.1)
    assert gain[-1] / mid == pytest.approx(expected, rel=0.1)
    static, _ = _floor_run(False)
    assert static[0] / static[3] == pytest.approx(1.0, abs=0.02)
    assert static[3] == pytest.approx(mid, rel=0.1)  # the bare floor: the same shift in both


def test_front_reaction_runs_at_the_coordination_shift_of_its_bond_cell():
    """``front_bond_shift``: every free voxel's front term (h'(xi) [...]) runs at eta + (3 - n)
    delta_f, n its bond cell's host faces plus its neighbouring cells' lithium (the KMC's law for
    lithium on lithium, in mean field): the factors and R against the closed form to 1e-12, so
    the front is at rest exactly where eta = -s_f at c+ = c0; off, the factors are exactly 1.
    3D, bond cells of 2, a conductive floor and a dielectric wall, alpha_a 0.3, alpha_c 0.7."""
    prm = FAST_IONS.replace(front_bond_shift=DELTA, alpha_a=0.3, alpha_c=0.7)
    phase = np.zeros((8, 4, 8), np.uint8)
    phase[:, :, :2] = HOST_CONDUCTIVE
    phase[:2, :, 2:] = HOST_DIELECTRIC
    s = PhaseFieldSolver(phase, 1e-6, prm, xi=np.zeros(phase.shape), bond_cell=2)
    g = s.geo
    rng = np.random.default_rng(3)
    xi = rng.uniform(-0.05, 1.05, g.n)  # lithium everywhere, a little outside [0, 1] too
    g.update_coordination(xi)
    shift = (3.0 - _bond_count_closed_form(phase, xi, g.free)) * DELTA
    assert np.ptp(shift) > 2 * DELTA  # host corners, walls and open cells differ
    np.testing.assert_allclose(g.front_anodic, np.exp(prm.alpha_a * prm.f * shift), rtol=1e-12)
    np.testing.assert_allclose(g.front_cathodic, np.exp(-prm.alpha_c * prm.f * shift), rtol=1e-12)
    act = np.flatnonzero(~g.contact & (xi > 0.02) & (xi < 0.98))
    c = np.full(g.n, 0.6 * prm.bulk_concentration)
    e = 1e-3 * prm.bulk_concentration
    cp = 0.5 * (c[act] + np.sqrt(c[act] ** 2 + e * e)) / prm.bulk_concentration
    t = xi[act]
    dh = 30.0 * t * t * (1.0 - t) ** 2
    for eta in (-0.06, 0.02):
        u = eta + shift[act]
        R = S._reaction(g, prm, xi, c, np.full(act.size, eta), act, derivatives=False)[0]
        expected = prm.kinetic_coefficient * dh * (np.exp(prm.alpha_a * prm.f * u) - cp * np.exp(-prm.alpha_c * prm.f * u))
        np.testing.assert_allclose(R, expected, rtol=1e-12)
    # at rest where eta = -s_f (c+ = c0)
    c0 = np.full(g.n, prm.bulk_concentration - e * e / (4 * prm.bulk_concentration))
    R = S._reaction(g, prm, xi, c0, -shift[act], act, derivatives=False)[0]
    assert np.all(np.abs(R) < 1e-12 * prm.kinetic_coefficient * dh * g.front_anodic[act])
    # off: the factors are exactly 1 and the front term is Butler-Volmer at eta
    off = PhaseFieldSolver(phase, 1e-6, prm.replace(front_bond_shift=0.0), xi=np.zeros(phase.shape), bond_cell=2).geo
    off.update_coordination(xi)
    assert np.all(off.front_anodic == 1.0) and np.all(off.front_cathodic == 1.0)


def test_quasi_chemical_bonds_are_bethes_pair_closure():
    """``bond_closure = "quasi_chemical"`` (docs/phasefield.md "Pair correlations"): a voxel's bond
    to a neighbour j counts j's filling given the voxel empty (in the reduction) or filled (in the
    oxidation), from the pair probabilities of Bethe's closure p11 p00 = exp(f delta) p10 p01 at
    the marginals theta_i, theta_j.  Checked on a 1D column (a conductive collector, free voxels
    above, lithium only in the first two): the relation to 1e-9, the marginal theta_j =
    theta_i P(j | filled) + (1 - theta_i) P(j | empty) to 1e-12, the limits at theta_i = 0 and 1,
    P(j | filled) > theta_j > P(j | empty) between them (the bond attracts), the contact's anodic factor at its
    host bond plus P(j | filled); a bad closure is a ValueError."""
    with pytest.raises(ValueError, match="bond_closure = 'bethe': must be one of mean_field, quasi_chemical"):
        HONG2018.replace(bond_closure="bethe")
    prm = FAST_IONS.replace(front_bond_shift=DELTA, contact_bond_shift=DELTA, alpha_a=0.3, alpha_c=0.7,
                            bond_closure="quasi_chemical")
    phase = np.zeros((1, 1, 8), np.uint8)
    phase[:, :, 0] = HOST_CONDUCTIVE
    g = PhaseFieldSolver(phase, 1e-6, prm, xi=np.zeros(phase.shape)).geo
    w = math.exp(prm.f * DELTA)
    for t1, t2 in ((0.3, 0.6), (0.8, 0.1), (0.5, 0.0), (0.5, 1.0), (0.05, 0.95)):
        xi = np.zeros(g.n)
        xi[:2] = t1, t2  # z = 1 (the contact) and z = 2
        g.update_coordination(xi)
        given_filled = 3.0 - np.log(g.front_anodic[1]) / (prm.alpha_a * prm.f * DELTA)  # z = 2's bonds: to z = 1
        given_empty = 3.0 + np.log(g.front_cathodic[1]) / (prm.alpha_c * prm.f * DELTA)
        assert t2 * given_filled + (1.0 - t2) * given_empty == pytest.approx(t1, abs=1e-12)
        if t2 == 0.0:  # surely empty: its condition is the marginal
            assert given_empty == pytest.approx(t1, abs=1e-12)
            assert given_filled == pytest.approx(w * t1 / (1.0 - t1 + w * t1), rel=1e-12) and given_filled > t1
        elif t2 == 1.0:
            assert given_filled == pytest.approx(t1, abs=1e-12)
            assert given_empty == pytest.approx(t1 / (t1 + w * (1.0 - t1)), rel=1e-12) and given_empty < t1
        else:
            assert given_filled > t1 > given_empty
            p11, p10 = t2 * given_filled, t2 * (1.0 - given_filled)
            p01, p00 = (1.0 - t2) * given_empty, (1.0 - t2) * (1.0 - given_empty)
            assert p11 * p00 == pytest.approx(w * p10 * p01, rel=1e-9)
        # the contact (z = 1): one host bond plus z = 2 given the contact filled, the same closure
        a = w - 1.0
        roots = np.roots([a, -(1.0 + a * (t1 + t2)), w * t1 * t2])
        p11 = min(r.real for r in roots if -1e-12 <= r.real <= min(t1, t2) + 1e-12) if 0 < t1 * t2 else 0.0
        filled = p11 / t1
        np.testing.assert_allclose(g.anodic_factor[0], np.exp(prm.alpha_a * prm.f * (2.0 - filled) * DELTA), rtol=1e-10)


def _solid_bonds(phase, free, cell=2):
    """Per free voxel: its bond cell's non-free neighbour cells, all and conductive (`_neighbour_cells`)."""
    blocks = _cell_blocks(phase, cell)
    solid = blocks.min(axis=(1, 3, 5)) != 0
    conductive = (blocks == HOST_CONDUCTIVE).all(axis=(1, 3, 5))
    host, cond = np.zeros(free.size), np.zeros(free.size)
    for k, W in _neighbour_cells(phase.shape, free, cell):
        host[k] += solid[W]
        cond[k] += solid[W] and conductive[W]
    return host, cond


def test_face_channels_sum_a_voxels_reaction_over_its_faces():
    """``face_channels`` (docs/phasefield.md "The KMC's face channels"): with n a voxel's bonds (host
    faces h, c of them conductive, plus its neighbours' lithium), its reduction runs through its
    faces to conductor and its oxidation through its faces to electrolyte. The front's factors are
    (n - (h - c)) / 3 and (6 - n) / 3 times the coordination's (a flat front's half-filled layer
    keeps its rate). A contact's reduction is per conductive host face at the host's site factor m
    and per lithium face at 1, (c m + n - h) / c, its oxidation (6 - n) / c, times the
    coordination's. Closed forms to 1e-12 (mean field; 3D, bond cells of 2, a conductive floor, a
    dielectric wall, eta_nuc 40 mV, activity 0.7, alpha_a 0.3, alpha_c 0.7). Asked for without
    both shifts, or not a bool: a ValueError."""
    with pytest.raises(ValueError, match="face_channels = True needs contact_bond_shift > 0 and front_bond_shift > 0"):
        FAST_IONS.replace(face_channels=True, contact_bond_shift=DELTA)
    with pytest.raises(ValueError, match="face_channels = 'kmc': must be True or False"):
        FAST_IONS.replace(face_channels="kmc")
    prm = FAST_IONS.replace(contact_bond_shift=DELTA, front_bond_shift=DELTA, alpha_a=0.3, alpha_c=0.7)
    phase = np.zeros((8, 4, 8), np.uint8)
    phase[:, :, :2] = HOST_CONDUCTIVE
    phase[:2, :, 2:] = HOST_DIELECTRIC
    cond = phase == HOST_CONDUCTIVE
    sites = {"eta_nuc": np.where(cond, 0.04, 0.0), "activity": np.where(cond, 0.7, 1.0), "bond_cell": 2}
    plain = PhaseFieldSolver(phase, 1e-6, prm, xi=np.zeros(phase.shape), **sites).geo
    g = PhaseFieldSolver(phase, 1e-6, prm.replace(face_channels=True), xi=np.zeros(phase.shape), **sites).geo
    m = 0.7 * math.exp(-prm.alpha_c * prm.f * 0.04)
    rng = np.random.default_rng(5)
    xi = rng.uniform(-0.05, 1.05, g.n)
    g.update_coordination(xi)
    plain.update_coordination(xi)
    n = _bond_count_closed_form(phase, xi, g.free)
    host, conductive = _solid_bonds(phase, g.free)
    assert set(np.unique(host)) >= {0.0, 1.0, 2.0} and np.any(host > conductive)  # open, floor, wall, corner
    np.testing.assert_allclose(g.front_cathodic, plain.front_cathodic * (n - (host - conductive)) / 3.0, rtol=1e-12)
    np.testing.assert_allclose(g.front_anodic, plain.front_anodic * (6.0 - n) / 3.0, rtol=1e-12)
    on = g.contact
    assert on.sum() > 10 and np.all(conductive[on] >= 1)
    shift = (3.0 - n[on]) * DELTA
    red = np.exp(-prm.alpha_c * prm.f * shift) * (conductive[on] * m + n[on] - host[on]) / conductive[on]
    np.testing.assert_allclose(g.cathodic_factor[on], red, rtol=1e-12)
    ox = np.exp(prm.alpha_a * prm.f * shift) * (6.0 - n[on]) / conductive[on]
    np.testing.assert_allclose(g.anodic_factor[on], ox, rtol=1e-12)
    # a bare flat floor keeps the wetting layer's rate per host face: one channel, m; five to electrolyte
    bare = np.zeros(g.n)
    g.update_coordination(bare)
    flat = on & (host == 1.0)
    assert flat.any()
    np.testing.assert_allclose(g.cathodic_factor[flat], m * np.exp(-prm.alpha_c * prm.f * 2 * DELTA), rtol=1e-12)
    np.testing.assert_allclose(g.anodic_factor[flat], 5.0 * np.exp(prm.alpha_a * prm.f * 2 * DELTA), rtol=1e-12)
