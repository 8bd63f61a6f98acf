"""The pure parts of the export, without a database: ages, problem areas, items, pseudonyms, the column catalogue."""

from __future__ import annotations

from datetime import date

import orjson
import pytest

from app.research import columns
from app.research.encoding import CsvEncoder, NdjsonEncoder
from app.research.pseudonyms import Pseudonymizer
from app.research.rows import CourseRows, MeasureRows, age_at_start, focal_areas, items_json

START = date(2026, 3, 15)


@pytest.mark.parametrize(("born", "age"), [
    (date(1980, 3, 15), 46), (date(1980, 3, 16), 45), (date(1936, 3, 16), 89), (date(1936, 3, 15), "90+"),
    (date(1900, 1, 1), "90+"), (None, None), (date(2026, 3, 16), None),
])
def test_age_at_start_is_whole_years_capped_at_90_plus(born, age):
    assert age_at_start(born, START) == age


def test_focal_areas_are_codes_only_primary_first_and_unknown_codes_dropped():
    areas = [
        {"area": "grief", "focal": True, "primary": False, "details": {"deceased_relationship": "Aunt Mabel"}},
        {"area": "role_transition", "focal": False, "primary": False},
        {"area": "role_dispute", "focal": True, "primary": True, "details": {"with_whom": "Bob"}},
    ]
    assert focal_areas(areas) == ("role_dispute", "grief")
    assert focal_areas(orjson.dumps(areas).decode()) == ("role_dispute", "grief")
    assert focal_areas([{"area": "Mabel's funeral", "focal": True, "primary": True}]) == (None, None)
    assert focal_areas(None) == focal_areas("null") == focal_areas([]) == (None, None)


@pytest.mark.parametrize(("stored", "exported"), [
    ("[3, 2, 0]", "[3, 2, 0]"), ("[]", "[]"), ("null", None), (None, None), ('["Mabel", 1]', None),
    ("[1, 2.5]", None), ([1, 2], "[1,2]"), ('{"a": 1}', None),
])
def test_items_leave_only_as_lists_of_whole_numbers(stored, exported):
    assert items_json(stored) == exported


def test_pseudonyms_are_keyed_prefixed_and_separate_patients_from_courses():
    one, two = Pseudonymizer("key-one"), Pseudonymizer("key-two")
    real = "01a21652-f11f-7000-81f4-e46becdbbb8e"
    assert one("patient", real) == one("patient", real)
    assert one("patient", real) != two("patient", real)
    assert one("patient", real)[2:] != one("course", real)[2:]
    assert one("patient", real).startswith("p_") and one("course", real).startswith("c_")
    assert len(one("course", real)) == 26 and real not in one("course", real)
    assert "key-one" not in repr(one)
    with pytest.raises(ValueError):
        Pseudonymizer("")


def _measure_row(course_id: str, instrument: str, items: str | None, total: float, severity: str, number: int,
                 phase: str | None) -> tuple:
    return (course_id, "patient-" + course_id, "ipt", START, date(1950, 1, 1), "female", None, None, instrument,
            date(2026, 3, 20), items, total, severity, number, phase)


def test_measure_rows_share_course_facts_and_refuse_values_outside_the_catalogue():
    rows = MeasureRows(Pseudonymizer("k"), "limited").batch([
        _measure_row("c1", "phq-9", "[1, 1, 1, 1, 1, 1, 1, 1, 0]", 8.0, "mild", 1, "initial"),
        _measure_row("c1", "mspss", "[5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 4]", 4.916666, "moderate", 1, "Dr Who"),
        _measure_row("c1", "phq-9", None, 8.0, "dreadful", 0, None),
        _measure_row("c1", "made-up", None, 8.0, "mild", 0, None),
    ])
    assert len(rows) == 3 and rows[0][0] is rows[1][0] is rows[2][0]  # one facts tuple per course
    assert rows[0][0][3] is None and rows[0][0][5:8] == (76, "female", 2026)  # no group: an individual course
    assert rows[0][1] == ("initial", 1, 5, "phq-9", 8, "mild", "[1, 1, 1, 1, 1, 1, 1, 1, 0]")
    assert rows[1][1][0] is None and rows[1][1][4] == 4.92  # a phase that is not a phase; the MSPSS mean
    assert rows[2][1][5] is None  # a severity not in the instrument's bands


def test_course_rows_hold_one_course_at_a_time_across_batches():
    rows = CourseRows(Pseudonymizer("k"), "safe_harbor")
    course = ("c1", "p1", "ipt", START, None, "male", None, None, 16, 0, "completed", "completed", 12, date(2026, 6, 1))
    first = rows.batch([course + ("phq-9", date(2026, 3, 15), 0, 18.0, "moderately_severe")])
    assert first == []  # the course may go on in the next batch
    second = rows.batch([course + ("phq-9", date(2026, 6, 1), 12, 4.0, "minimal"),
                         ("c2",) + course[1:] + (None,) * 5])
    [(facts, values)] = second
    assert facts[2] == Pseudonymizer("k")("course", "c1")
    names = [c.name for c in columns.columns("courses", "safe_harbor", "ndjson")][len(columns.COURSE_FACTS):]
    row = dict(zip(names, values, strict=True))
    assert (row["phq_9_administrations"], row["phq_9_change"], row["phq_9_remission"], row["finished_course"]) == (
        2, -14, True, True)
    [(_, last)] = rows.finish()
    assert dict(zip(names, last, strict=True))["phq_9_administrations"] == 0
    assert rows.finish() == []


def test_encoders_write_ndjson_lines_and_rfc4180_csv():
    cols = columns.columns("measures", "safe_harbor", "ndjson")
    pairs = MeasureRows(Pseudonymizer("k"), "safe_harbor").batch([
        _measure_row("c1", "gad-7", "[1, 0, 0, 0, 0, 0, 0]", 1.0, "minimal", 0, None)])
    line = NdjsonEncoder(cols).encode(pairs)
    assert line.endswith(b"\n") and orjson.loads(line)["items"] == [1, 0, 0, 0, 0, 0, 0]
    csv = CsvEncoder(columns.columns("measures", "safe_harbor", "csv"), spread_items=True)
    header, body = csv.header(), csv.encode(pairs)
    assert header.endswith(b"\r\n") and body.endswith(b"\r\n") and header.count(b",") == body.count(b",")
    assert b",1,0,0,0,0,0,0," + b"," * 9 + b"\r\n" in body  # item_1..item_7, then item_8..item_17 empty


def test_every_column_name_is_unique_within_an_export_and_documented():
    for dataset in columns.DATASETS:
        for profile in columns.PROFILES:
            for fmt in columns.FORMATS:
                names = [c.name for c in columns.columns(dataset, profile, fmt)]
                assert len(names) == len(set(names)), (dataset, profile, fmt)
    documented = columns.dictionary()
    assert [d["name"] for d in documented["datasets"]] == ["measures", "courses"]
    assert {p["name"] for p in documented["profiles"]} == {"safe_harbor", "limited"}
