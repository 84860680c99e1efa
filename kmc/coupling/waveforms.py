"""Current waveforms, plate / rest / strip schedules and potentiostatic holds.

Everything compiles to a list of ``Segment``s, constant current or (``hold``) constant
potential; the coupling loop never lets a macro-step cross a segment edge. Sign convention
inside: current density > 0 is anodic (stripping), < 0 plating, 0 open circuit. Users write
magnitudes with a verb ("plate at 2 mA/cm^2 for 0.5 mAh/cm^2"), the way battery researchers
do; a held potential is signed ("hold at -50 mV for 600 s": negative plates).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from .units import MA_PER_CM2, MAH_PER_CM2, time_to_si


@dataclass(frozen=True)
class Segment:
    """Constant applied current density for at most ``duration`` seconds, or (``held_potential``
    set) a potentiostatic hold: the cell potential is held and the current is the run's output.

    The held potential is the cell potential of the galvanostatic runs (docs/model.md, "Units,
    signs, references"): the electrode's potential phi_s against a lithium reference electrode at
    c_ref in the bulk beyond the separator (phi_l = 0 there).  With E_eq,ref = 0 it is the total
    overpotential of the electrode: interface, concentration and ohmic (domain and separator)
    parts together.  Negative plates, positive strips."""

    current_density: float  # A/m^2, SI sign (negative = plating)
    duration: float  # s
    label: str  # 'plate', 'strip', 'rest', 'on', 'off', 'reverse'
    cutoff_potential: float | None = None  # V: stop a strip when the electrode potential exceeds it
    until_stripped: bool = False  # stop a strip when no connected lithium is left
    until_charge: bool = False  # capacity-terminated: ends on the charge the model passed, not the clock
    held_potential: float | None = None  # V: potentiostatic hold (current_density is then 0 and unused)

    @property
    def potentiostatic(self) -> bool:
        return self.held_potential is not None


def _positive(name: str, value: float) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name}={value!r} is out of range: must be > 0")
    return float(value)


def dc_plating(current_density_mA_cm2: float, capacity_mAh_cm2: float) -> list[Segment]:
    """Plate a capacity at constant current."""
    j = _positive("current_density_mA_cm2", current_density_mA_cm2) * MA_PER_CM2
    q = _positive("capacity_mAh_cm2", capacity_mAh_cm2) * MAH_PER_CM2
    return [Segment(-j, q / j, "plate", until_charge=True)]


def pulse_plating(on_current_mA_cm2: float, on_time_s: float, off_time_s: float, capacity_mAh_cm2: float,
                  reverse_current_mA_cm2: float = 0.0, reverse_time_s: float = 0.0) -> list[Segment]:
    """Square pulses (on, then open circuit off-time), optionally pulse-reverse (a short
    anodic pulse after each on-pulse), until the net plated capacity is reached. The last
    on-pulse is shortened so the capacity is met exactly."""
    j_on = _positive("on_current_mA_cm2", on_current_mA_cm2) * MA_PER_CM2
    t_on = _positive("on_time_s", on_time_s)
    if off_time_s < 0:
        raise ValueError(f"off_time_s={off_time_s!r} is out of range: must be >= 0")
    if reverse_current_mA_cm2 < 0 or reverse_time_s < 0:
        raise ValueError("reverse_current_mA_cm2 and reverse_time_s must be >= 0")
    q_target = _positive("capacity_mAh_cm2", capacity_mAh_cm2) * MAH_PER_CM2
    j_rev = reverse_current_mA_cm2 * MA_PER_CM2
    q_rev = j_rev * reverse_time_s
    if q_rev >= j_on * t_on:
        raise ValueError("pulse-reverse strips at least as much as each on-pulse plates: no net plating")
    segs: list[Segment] = []
    q = 0.0
    while q_target - q > 1e-12 * q_target:
        t = min(t_on, (q_target - q) / j_on)
        q += j_on * t
        if q >= q_target * (1 - 1e-12):
            segs.append(Segment(-j_on, t, "on", until_charge=True))  # the pulse that completes the capacity
            break
        segs.append(Segment(-j_on, t, "on"))
        if q_rev > 0:
            segs.append(Segment(j_rev, reverse_time_s, "reverse"))
            q -= q_rev
        if off_time_s > 0:
            segs.append(Segment(0.0, off_time_s, "off"))
    return segs


def cycling(plating: list[Segment], cycles: int, strip_current_mA_cm2: float, cutoff_V: float | None = None,
            rest_s: float = 0.0) -> list[Segment]:
    """``cycles`` plate/strip cycles: the ``plating`` segments, then a strip at
    ``strip_current_mA_cm2`` until fully stripped (or, with ``cutoff_V``, until the cell
    potential exceeds it, whichever comes first), each followed by ``rest_s`` of open circuit
    when it is > 0 (a Coulombic-efficiency test of a cycler)."""
    if int(cycles) != cycles or cycles < 1:
        raise ValueError(f"cycles={cycles!r} is out of range: must be an integer >= 1")
    j = _positive("strip_current_mA_cm2", strip_current_mA_cm2) * MA_PER_CM2
    if rest_s < 0:
        raise ValueError(f"rest_s={rest_s!r} is out of range: must be >= 0")
    rest = [Segment(0.0, float(rest_s), "rest")] if rest_s > 0 else []
    strip = Segment(j, _MAX_OPEN_STRIP_S, "strip", cutoff_V, until_stripped=True)
    return [seg for _ in range(int(cycles)) for seg in (*plating, *rest, strip, *rest)]


def expected_duration(segments: Iterable[Segment]) -> float:
    """The protocol's length [s] for progress bars and snapshot times: an open-ended strip
    ('until ... cutoff', 'fully stripped', bounded at 1e7 s) counts as the time to strip what
    the protocol has plated by then (net) at its current."""
    total = net = 0.0
    for s in segments:
        q = -s.current_density * s.duration  # C/m^2, plating positive
        if s.current_density > 0 and s.duration >= _MAX_OPEN_STRIP_S:
            total += net / s.current_density
            net = 0.0
            continue
        total += s.duration
        net = max(0.0, net + q)
    return total


def average_current(segments: Iterable[Segment]) -> float:
    """Time-averaged current density (A/m^2, SI sign); a hold, whose current is an output,
    counts as 0."""
    segs = list(segments)
    t = sum(s.duration for s in segs)
    return sum(s.current_density * s.duration for s in segs) / t


_NUM = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_CUR = _NUM + r"\s*mA\s*/\s*cm\^?2"
_TIME_UNIT = r"(ms|s|sec|min|h)\b"
_RE_REST = re.compile(rf"^rest\s+for\s+{_NUM}\s*{_TIME_UNIT}$", re.I)
_SIGNED = r"([-+]?" + _NUM[1:]
_RE_HOLD = re.compile(rf"^hold\s+at\s+{_SIGNED}\s*(mV|V)\s+for\s+{_NUM}\s*{_TIME_UNIT}$", re.I)
_RE_VERB = re.compile(rf"^(plate|strip)\s+at\s+{_CUR}\s*", re.I)
# the clauses a plate/strip step may carry, each matched at the start of what is left
_CLAUSES = {
    "capacity": re.compile(rf"^for\s+{_NUM}\s*mAh\s*/\s*cm\^?2\s*", re.I),
    "duration": re.compile(rf"^for\s+{_NUM}\s*{_TIME_UNIT}\s*", re.I),
    "cutoff": re.compile(rf"^until\s+(-?{_NUM[1:-1]})\s*(m?V)\s+cutoff\b\s*", re.I),
    "stripped": re.compile(r"^(?:until|or)\s+fully\s+stripped\b\s*", re.I),
    "or": re.compile(r"^or\s+", re.I),
}
_STEP_FORMS = ("'plate at X mA/cm^2 for Y mAh/cm^2' (or 'for T s'), 'rest for T s', "
               "'strip at X mA/cm^2 [for Y mAh/cm^2 | for T s] [until V V cutoff] [or fully stripped]', "
               "'hold at V mV for T s'")
#: Largest |held potential| [V] a hold may ask for (the galvanostat's compliance limit is -1 V by default).
MAX_HELD_POTENTIAL_V = 1.0
_MAX_OPEN_STRIP_S = 1e7  # a strip "until ..." needs some bound; 116 days is never reached in practice


def _clauses(text: str, rest: str) -> dict:
    """The clauses of a plate/strip step; any text that is not a clause is an error."""
    found: dict = {}
    while rest:
        for name, rx in _CLAUSES.items():
            m = rx.match(rest)
            if m:
                break
        else:
            raise ValueError(f"schedule step {text!r}: cannot read {rest!r}; expected {_STEP_FORMS}")
        if name != "or":
            if name in found or (name in ("capacity", "duration") and ({"capacity", "duration"} & set(found))):
                raise ValueError(f"schedule step {text!r}: {m.group(0).strip()!r} repeats a clause")
            found[name] = m
        rest = rest[m.end():]
    return found


def parse_step(text: str) -> Segment:
    """Parse one schedule step, e.g. ``"plate at 2 mA/cm^2 for 0.5 mAh/cm^2"``,
    ``"rest for 10 s"``, ``"strip at 1 mA/cm^2 until 0 V cutoff or fully stripped"``,
    ``"hold at -50 mV for 600 s"``.  Text
    that is not part of the grammar is an error, never ignored."""
    s = " ".join(str(text).strip().split())
    if s.lower().startswith("hold"):
        return _parse_hold(text, s)
    m = _RE_REST.match(s)
    if m:
        return Segment(0.0, _positive(f"rest duration in {text!r}", time_to_si(float(m.group(1)), m.group(2))), "rest")
    m = _RE_VERB.match(s)
    if not m:
        raise ValueError(f"cannot parse schedule step {text!r}: expected {_STEP_FORMS}")
    verb, j = m.group(1).lower(), _positive(f"current density in {text!r}", float(m.group(2))) * MA_PER_CM2
    found = _clauses(text, s[m.end():])
    duration = None
    if "capacity" in found:
        duration = _positive(f"capacity in {text!r}", float(found["capacity"].group(1))) * MAH_PER_CM2 / j
    elif "duration" in found:
        d = found["duration"]
        duration = _positive(f"duration in {text!r}", time_to_si(float(d.group(1)), d.group(2)))
    cutoff = None
    if "cutoff" in found:
        c = found["cutoff"]
        cutoff = float(c.group(1)) * (1e-3 if c.group(2).lower() == "mv" else 1.0)
    stripped = "stripped" in found
    by_charge = "capacity" in found
    if verb == "plate":
        if duration is None:
            raise ValueError(f"schedule step {text!r}: a plating step needs 'for X mAh/cm^2' or 'for T s'")
        if cutoff is not None or stripped:
            raise ValueError(f"schedule step {text!r}: cutoffs apply to strip steps only")
        return Segment(-j, duration, "plate", until_charge=by_charge)
    if duration is None and cutoff is None and not stripped:
        raise ValueError(f"schedule step {text!r}: a strip step needs 'for ...', 'until V cutoff' or 'fully stripped'")
    return Segment(j, duration if duration is not None else _MAX_OPEN_STRIP_S, "strip", cutoff, stripped,
                   until_charge=by_charge)


def _parse_hold(text: str, s: str) -> Segment:
    """``hold at V (mV|V) for T (ms|s|sec|min|h)``: a potentiostatic hold (see :class:`Segment`)."""
    m = _RE_HOLD.match(s)
    if not m:
        raise ValueError(f"schedule step {text!r}: expected 'hold at V mV for T s' (V signed, the electrode "
                         "potential against a lithium reference at c_ref beyond the separator; negative plates; "
                         "time units ms, s, sec, min, h)")
    v = float(m.group(1)) * (1e-3 if m.group(2).lower() == "mv" else 1.0)
    if not abs(v) <= MAX_HELD_POTENTIAL_V:
        raise ValueError(f"schedule step {text!r}: held potential {v * 1e3:g} mV is out of range: must be within "
                         f"+-{MAX_HELD_POTENTIAL_V * 1e3:g} mV")
    duration = _positive(f"hold duration in {text!r}", time_to_si(float(m.group(3)), m.group(4)))
    if duration >= _MAX_OPEN_STRIP_S:
        raise ValueError(f"schedule step {text!r}: hold duration {duration:g} s is out of range: must be "
                         f"< {_MAX_OPEN_STRIP_S:g} s")
    return Segment(0.0, duration, "hold", held_potential=v)


def parse_schedule(steps: Iterable[str]) -> list[Segment]:
    segs = [parse_step(s) for s in steps]
    if not segs:
        raise ValueError("schedule is empty: give at least one step")
    return segs
