"""Outcome definitions (domain.md) on hand-computed courses."""

import dataclasses
from datetime import date, timedelta

import pytest

from app.instruments import (
    INSTRUMENTS,
    MeasurePoint,
    change_from_baseline,
    instrument_outcome,
    paired_outcome,
    reliable_change,
    severity_of,
)

START = date(2026, 1, 5)


def course(instrument_id, *totals, start=START, prefix=None):
    """Weekly administrations at sessions 1, 2, ... with the given totals, oldest first."""
    return [
        MeasurePoint(
            measure_id=f"{prefix or instrument_id}-{n}",
            administered_on=start + timedelta(weeks=n - 1),
            session_number=n,
            total=total,
            severity=severity_of(instrument_id, total),
        )
        for n, total in enumerate(totals, start=1)
    ]


def test_phq9_course_from_20_to_8_is_a_reliable_recovery_with_response_but_no_remission():
    result = instrument_outcome("phq-9", course("phq-9", 20, 15, 8))
    assert result == {
        "instrument": "phq-9",
        "baseline": {"measure_id": "phq-9-1", "administered_on": "2026-01-05", "total": 20,
                     "severity": "severe"},
        "latest": {"measure_id": "phq-9-3", "administered_on": "2026-01-19", "total": 8,
                   "severity": "mild"},
        "change": -12,
        "response": True,  # 8 <= 10
        "remission": False,  # 8 is not < 5
        "reliable_improvement": True,  # fell 12 >= 6
        "reliable_deterioration": False,
        "case_at_baseline": True,  # 20 >= 10
        "case_at_latest": False,  # 8 < 10
        "recovery": True,
        "reliable_recovery": True,
        "trajectory": [
            {"measure_id": "phq-9-1", "administered_on": "2026-01-05", "session_number": 1,
             "total": 20},
            {"measure_id": "phq-9-2", "administered_on": "2026-01-12", "session_number": 2,
             "total": 15},
            {"measure_id": "phq-9-3", "administered_on": "2026-01-19", "session_number": 3,
             "total": 8},
        ],
    }


def test_recovery_without_reliable_change_is_not_a_reliable_recovery():
    result = instrument_outcome("phq-9", course("phq-9", 11, 9))  # case -> not a case, fell 2
    assert (result["recovery"], result["reliable_improvement"]) == (True, False)
    assert result["reliable_recovery"] is False
    assert result["response"] is False  # 9 > 5.5


def test_baseline_of_0_has_no_response_and_a_rise_of_6_is_reliable_deterioration():
    result = instrument_outcome("phq-9", course("phq-9", 0, 6))
    assert result["change"] == 6
    assert result["response"] is None
    assert result["reliable_deterioration"] is True
    assert result["reliable_improvement"] is False
    assert result["remission"] is False  # 6 is not < 5
    assert (result["case_at_baseline"], result["recovery"]) == (False, False)
    assert result["reliable_recovery"] is False


def test_a_single_measure_is_both_baseline_and_latest_with_no_change():
    result = instrument_outcome("phq-9", course("phq-9", 14))
    assert result["baseline"] == result["latest"]
    assert result["change"] == 0
    assert result["response"] is False  # 14 is not <= 7
    assert (result["reliable_improvement"], result["reliable_deterioration"]) == (False, False)
    assert (result["case_at_baseline"], result["case_at_latest"]) == (True, True)
    assert (result["recovery"], result["reliable_recovery"]) == (False, False)
    assert len(result["trajectory"]) == 1


def test_a_single_measure_of_0_has_no_response():
    assert instrument_outcome("gad-7", course("gad-7", 0))["response"] is None


@pytest.mark.parametrize(
    "baseline, latest, response", [(20, 10, True), (20, 11, False), (15, 7, True), (15, 8, False)]
)
def test_response_is_latest_at_most_half_of_baseline(baseline, latest, response):
    assert instrument_outcome("phq-9", course("phq-9", baseline, latest))["response"] is response


@pytest.mark.parametrize(
    "instrument_id, remitted, not_remitted",
    [("phq-9", 4, 5), ("gad-7", 4, 5), ("epds", 9, 10), ("hamd-17", 7, 8),
     ("qids-sr16", 5, 6), ("wsas", 9, 10), ("bdi-ii", 13, 14)],
)
def test_remission_follows_each_instruments_rule(instrument_id, remitted, not_remitted):
    assert instrument_outcome(instrument_id, course(instrument_id, 20, remitted))["remission"]
    assert not instrument_outcome(instrument_id, course(instrument_id, 20, not_remitted))[
        "remission"
    ]


def test_mspss_rise_is_an_improvement_and_undefined_flags_are_null():
    result = instrument_outcome("mspss", course("mspss", 2.5, 3.25, 4.0))
    assert result["change"] == 1.5
    assert (result["baseline"]["severity"], result["latest"]["severity"]) == ("low", "moderate")
    for flag in ("response", "remission", "reliable_improvement", "reliable_deterioration",
                 "case_at_baseline", "case_at_latest", "recovery", "reliable_recovery"):
        assert result[flag] is None, flag


def test_mspss_change_is_rounded_to_two_decimals():
    assert change_from_baseline("mspss", 2.92, 3.08) == 0.16


def test_mspss_reliable_change_is_undefined():
    assert reliable_change("mspss", 1.0, 7.0) is None


def test_reliable_change_direction_follows_higher_is_better(monkeypatch):
    with_threshold = dataclasses.replace(INSTRUMENTS["mspss"], reliable_change=1.0)
    monkeypatch.setitem(INSTRUMENTS, "mspss", with_threshold)
    assert reliable_change("mspss", 3.0, 4.0) == "improved"
    assert reliable_change("mspss", 4.0, 3.0) == "deteriorated"
    assert reliable_change("mspss", 3.0, 3.99) == "unchanged"


RC = [i.id for i in INSTRUMENTS.values() if i.reliable_change is not None]


@pytest.mark.parametrize("instrument_id", RC)
def test_reliable_change_counts_at_exactly_the_threshold_and_not_one_below(instrument_id):
    threshold = int(INSTRUMENTS[instrument_id].reliable_change)
    base = 20
    assert reliable_change(instrument_id, base, base - threshold) == "improved"
    assert reliable_change(instrument_id, base, base - threshold + 1) == "unchanged"
    assert reliable_change(instrument_id, base, base + threshold) == "deteriorated"
    assert reliable_change(instrument_id, base, base + threshold - 1) == "unchanged"


def test_phq9_fall_of_6_is_reliable_and_5_is_not_in_the_outcome_object():
    assert instrument_outcome("phq-9", course("phq-9", 15, 9))["reliable_improvement"] is True
    assert instrument_outcome("phq-9", course("phq-9", 15, 10))["reliable_improvement"] is False


def test_out_of_order_points_are_sorted_by_date_and_same_day_ones_keep_input_order():
    points = course("phq-9", 20, 12, 6)
    same_day = points[2]._replace(measure_id="phq-9-3b", total=7)
    result = instrument_outcome("phq-9", [points[2], same_day, points[0], points[1]])
    assert result["baseline"]["measure_id"] == "phq-9-1"
    assert result["latest"]["measure_id"] == "phq-9-3b"
    assert [p["measure_id"] for p in result["trajectory"]] == [
        "phq-9-1", "phq-9-2", "phq-9-3", "phq-9-3b"
    ]


def test_an_empty_course_has_no_outcome():
    with pytest.raises(ValueError):
        instrument_outcome("phq-9", [])


def test_paired_is_null_unless_both_phq9_and_gad7_were_given():
    assert paired_outcome(course("phq-9", 12), []) is None
    assert paired_outcome([], course("gad-7", 12)) is None


def test_paired_recovery_when_both_fall_below_caseness():
    result = paired_outcome(course("phq-9", 15, 4), course("gad-7", 12, 3))
    assert result == {"case_at_intake": True, "recovery": True,
                      "reliable_improvement": True, "reliable_deterioration": False}


def test_paired_one_improves_reliably_and_the_other_deteriorates_reliably():
    # PHQ-9 18 -> 8 (fell 10 >= 6); GAD-7 6 -> 12 (rose 6 >= 4)
    result = paired_outcome(course("phq-9", 18, 8), course("gad-7", 6, 12))
    assert result == {"case_at_intake": True, "recovery": False,  # GAD-7 12 >= 8 at the end
                      "reliable_improvement": False, "reliable_deterioration": True}


def test_paired_case_at_intake_when_only_gad7_is_at_caseness():
    result = paired_outcome(course("phq-9", 5, 4), course("gad-7", 8, 3))
    assert result["case_at_intake"] is True
    assert result["recovery"] is True
    assert result["reliable_improvement"] is True  # GAD-7 fell 5 >= 4, PHQ-9 did not worsen


def test_paired_not_a_case_at_intake_is_never_a_recovery():
    result = paired_outcome(course("phq-9", 9, 2), course("gad-7", 7, 1))
    assert (result["case_at_intake"], result["recovery"]) == (False, False)


def test_paired_recovery_is_judged_on_the_latest_date_with_both_measures():
    phq = course("phq-9", 16, 6, 12)  # the third PHQ-9, back at caseness, has no GAD-7
    gad = course("gad-7", 10, 5)
    assert paired_outcome(phq, gad)["recovery"] is True
    gad_at_end = course("gad-7", 10, 5, 5)
    assert paired_outcome(phq, gad_at_end)["recovery"] is False


def test_paired_recovery_is_null_when_no_date_has_both_measures():
    phq = course("phq-9", 16, 6)
    gad = course("gad-7", 10, 5, start=START + timedelta(days=1))
    result = paired_outcome(phq, gad)
    assert result["case_at_intake"] is True
    assert result["recovery"] is None
    assert result["reliable_improvement"] is True  # PHQ-9 fell 10, GAD-7 fell 5
