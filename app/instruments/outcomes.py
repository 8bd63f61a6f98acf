"""Outcomes of a course per instrument, and the paired PHQ-9 + GAD-7 result (domain.md).

Inputs are already-scored administrations (`MeasurePoint`), given oldest first. They are
sorted again, defensively, by (administered_on, position in the input): same-day
administrations keep the caller's order. Flags an instrument does not define are None.
"""

from collections.abc import Sequence
from datetime import date
from typing import NamedTuple

from app.instruments.catalogue import Number, get_instrument
from app.instruments.scoring import round2


class MeasurePoint(NamedTuple):
    """One scored administration of an instrument within a course (a named tuple: outcomes build one per measure)."""

    measure_id: str
    administered_on: date
    session_number: int | None
    total: Number
    severity: str


def change_from_baseline(instrument_id: str, baseline_total: Number, total: Number) -> Number:
    """Change = latest - baseline, in the instrument's own units (MSPSS to 2 decimals).

    The sign is raw: a fall is an improvement on every instrument except the MSPSS, where
    higher is better and a rise is the improvement.
    """
    get_instrument(instrument_id)
    change = total - baseline_total
    return change if isinstance(change, int) else round2(change)


def reliable_change(instrument_id: str, baseline_total: Number, total: Number) -> str | None:
    """Classify baseline -> total as "improved", "unchanged" or "deteriorated".

    Improved / deteriorated when the score moved by at least the reliable-change threshold
    ("at least": a PHQ-9 fall of exactly 6 counts) in the good / bad direction; good is down,
    or up where higher is better. None when the instrument has no threshold (MSPSS).

    The caller reports null for the baseline administration itself (api.md).
    """
    inst = get_instrument(instrument_id)
    if inst.reliable_change is None:
        return None
    gain = change_from_baseline(instrument_id, baseline_total, total)
    if not inst.higher_is_better:
        gain = -gain
    if gain >= inst.reliable_change:
        return "improved"
    if -gain >= inst.reliable_change:
        return "deteriorated"
    return "unchanged"


def instrument_outcome(instrument_id: str, points: Sequence[MeasurePoint]) -> dict:
    """api.md's per-instrument outcome object for one course; ValueError when `points` is empty.

    - baseline: the first administration; latest: the most recent (the same one when there is
      a single administration: change 0, reliable flags False).
    - response: latest <= 50% of baseline; None when baseline is 0 (no halving is possible)
      and None for the MSPSS, where higher is better and halving is not an improvement.
    - remission: latest below the remission threshold ("< 5", "<= 7"...); None where n/a.
    - reliable_improvement / reliable_deterioration: see `reliable_change`; None where n/a.
    - case_at_baseline / case_at_latest: total at or above the caseness cut-off; None where n/a.
    - recovery: a case at baseline and not a case at latest. False (not None) when the baseline
      was not a case: the NHS Talking Therapies recovery *rate* counts only courses with
      case_at_baseline true, so filter on that flag. None where caseness is n/a.
    - reliable_recovery: recovery and reliable improvement; None when either is None.
    """
    inst = get_instrument(instrument_id)
    course = _in_order(points)
    if not course:
        raise ValueError(f"no {inst.id} administrations to report")
    first, last = course[0], course[-1]
    rc = reliable_change(inst.id, first.total, last.total)
    improved = None if rc is None else rc == "improved"
    case_first, case_last = _case(inst.id, first.total), _case(inst.id, last.total)
    recovery = None if case_first is None else case_first and not case_last
    return {
        "instrument": inst.id,
        "baseline": _summary(first),
        "latest": _summary(last),
        "change": change_from_baseline(inst.id, first.total, last.total),
        "response": _response(inst.higher_is_better, first.total, last.total),
        "remission": None if inst.remission_below is None else last.total < inst.remission_below,
        "reliable_improvement": improved,
        "reliable_deterioration": None if rc is None else rc == "deteriorated",
        "case_at_baseline": case_first,
        "case_at_latest": case_last,
        "recovery": recovery,
        "reliable_recovery": None if None in (recovery, improved) else recovery and improved,
        "trajectory": [
            {
                "measure_id": p.measure_id,
                "administered_on": p.administered_on.isoformat(),
                "session_number": p.session_number,
                "total": p.total,
            }
            for p in course
        ],
    }


def paired_outcome(
    phq9: Sequence[MeasurePoint], gad7: Sequence[MeasurePoint]
) -> dict | None:
    """The NHS Talking Therapies paired PHQ-9 + GAD-7 result; None unless both were given.

    - case_at_intake: either instrument's baseline (its first administration) at caseness
      (PHQ-9 >= 10 or GAD-7 >= 8).
    - recovery: a case at intake and both below caseness at the latest paired administration,
      meaning the latest date on which both a PHQ-9 and a GAD-7 were administered (on that
      date, the last of each in input order). A later single PHQ-9 or GAD-7 does not count.
      False when not a case at intake; None when no date has both (it cannot be judged).
    - reliable_improvement: either improved reliably (baseline to latest, per instrument) and
      neither deteriorated reliably.
    - reliable_deterioration: either deteriorated reliably.
    """
    phq, gad = _in_order(phq9), _in_order(gad7)
    if not phq or not gad:
        return None
    case_at_intake = _case("phq-9", phq[0].total) or _case("gad-7", gad[0].total)
    recovery = False
    if case_at_intake:
        phq_by_day = {p.administered_on: p for p in phq}  # last one per date wins
        gad_by_day = {p.administered_on: p for p in gad}
        shared = phq_by_day.keys() & gad_by_day.keys()
        if shared:
            day = max(shared)
            recovery = not _case("phq-9", phq_by_day[day].total) and not _case(
                "gad-7", gad_by_day[day].total
            )
        else:
            recovery = None
    changes = (
        reliable_change("phq-9", phq[0].total, phq[-1].total),
        reliable_change("gad-7", gad[0].total, gad[-1].total),
    )
    return {
        "case_at_intake": case_at_intake,
        "recovery": recovery,
        "reliable_improvement": "improved" in changes and "deteriorated" not in changes,
        "reliable_deterioration": "deteriorated" in changes,
    }


def _in_order(points: Sequence[MeasurePoint]) -> list[MeasurePoint]:
    return [p for _, p in sorted(enumerate(points), key=lambda ip: (ip[1].administered_on, ip[0]))]


def _summary(p: MeasurePoint) -> dict:
    return {
        "measure_id": p.measure_id,
        "administered_on": p.administered_on.isoformat(),
        "total": p.total,
        "severity": p.severity,
    }


def _case(instrument_id: str, total: Number) -> bool | None:
    caseness = get_instrument(instrument_id).caseness
    return None if caseness is None else total >= caseness


def _response(higher_is_better: bool, baseline: Number, latest: Number) -> bool | None:
    if higher_is_better or baseline <= 0:
        return None
    return latest * 2 <= baseline
