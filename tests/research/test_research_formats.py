"""CSV and NDJSON carry the same rows; every column is in the dictionary; course rows agree with the clinical outcomes."""

from __future__ import annotations

import pytest

from app.instruments import INSTRUMENTS
from tests.support.research import (
    DATASETS,
    FORMATS,
    PROFILES,
    csv_as_ndjson,
    csv_table,
    dictionary,
    export,
    ndjson_rows,
)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("dataset", DATASETS)
async def test_csv_read_back_equals_the_ndjson_rows(client, planted, dataset, profile):
    world, _ = planted
    ndjson = await export(client, world.researcher, dataset, profile=profile)
    csv_response = await export(client, world.researcher, dataset, format="csv", profile=profile)
    assert ndjson.headers["content-type"] == "application/x-ndjson"
    assert csv_response.headers["content-type"].startswith("text/csv")
    rows = ndjson_rows(ndjson)
    assert rows and csv_as_ndjson(csv_response, await dictionary(client, world.researcher), dataset) == rows


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dataset", DATASETS)
async def test_the_dictionary_lists_every_column_that_appears_in_order(client, planted, dataset, fmt, profile):
    world, _ = planted
    response = await export(client, world.researcher, dataset, format=fmt, profile=profile)
    appearing = csv_table(response)[0] if fmt == "csv" else list(ndjson_rows(response)[0])
    [documented] = [d for d in (await dictionary(client, world.researcher))["datasets"] if d["name"] == dataset]
    expected = [c["name"] for c in documented["columns"] if profile in c["profiles"] and fmt in c["formats"]]
    assert appearing == expected
    for column in documented["columns"]:
        assert column["meaning"] and column["type"], column["name"]
    assert appearing[0] == "profile"
    assert {c["name"] for c in documented["columns"] if c["profiles"] == ["limited"]} == (
        {"day"} if dataset == "measures" else {"ended_day"})


async def test_every_row_names_its_profile(client, planted):
    world, _ = planted
    for profile in PROFILES:
        for dataset in DATASETS:
            response = await export(client, world.researcher, dataset, profile=profile)
            assert response.headers["x-export-profile"] == profile
            assert {row["profile"] for row in ndjson_rows(response)} == {profile}


async def test_measure_rows_follow_the_course_in_order(client, planted):
    world, _ = planted
    rows = [r for r in ndjson_rows(await export(client, world.researcher, "measures")) if r["age_at_start"] == "90+"]
    assert [(r["instrument"], r["session_number"], r["phase"], r["total"], r["severity"]) for r in rows] == [
        ("phq-9", 0, "initial", 19, "moderately_severe"),
        ("gad-7", 0, "initial", 14, "moderate"),
        ("phq-9", 2, "middle", 8, "mild"),
        ("gad-7", 2, "middle", 5, "mild"),
        ("bdi-ii", 2, "middle", 31, "severe"),
    ]
    assert rows[0]["items"] == [3, 3, 3, 3, 3, 2, 0, 0, 2] and rows[-1]["items"] is None
    assert {(r["protocol"], r["sex"], r["problem_area_primary"]) for r in rows} == {("ipc", "female", "role_dispute")}


async def test_course_rows_carry_the_clinical_outcomes_and_how_the_course_ended(client, planted):
    world, seeded = planted
    course = seeded.courses[0]
    clinical = (await client.get(f"/v1/courses/{course['id']}/outcomes", headers=world.clinician.headers)).json()
    rows = {r["age_at_start"]: r for r in ndjson_rows(await export(client, world.researcher, "courses"))}
    row, other = rows["90+"], rows[None]
    assert (row["phase"], row["end_reason"], row["sessions_attended"], row["finished_course"]) == (
        "discontinued", "moved_away", 2, True)
    assert (row["planned_sessions"], row["extension_sessions"]) == (6, 1)
    by_instrument = {o["instrument"]: o for o in clinical["instruments"]}
    assert set(by_instrument) == {"phq-9", "gad-7", "bdi-ii"}
    for instrument in INSTRUMENTS:
        prefix = instrument.replace("-", "_")
        outcome = by_instrument.get(instrument)
        if outcome is None:
            assert row[f"{prefix}_administrations"] == 0 and row[f"{prefix}_change"] is None
            continue
        assert row[f"{prefix}_administrations"] == len(outcome["trajectory"])
        assert row[f"{prefix}_baseline_total"] == outcome["baseline"]["total"]
        assert row[f"{prefix}_latest_total"] == outcome["latest"]["total"]
        assert row[f"{prefix}_baseline_session"] == outcome["trajectory"][0]["session_number"]
        assert row[f"{prefix}_latest_session"] == outcome["trajectory"][-1]["session_number"]
        for flag in ("change", "response", "remission", "reliable_improvement", "reliable_deterioration",
                     "case_at_baseline", "case_at_latest", "recovery", "reliable_recovery"):
            assert row[f"{prefix}_{flag}"] == outcome[flag], (instrument, flag)
    for flag, value in clinical["paired"].items():
        assert row[f"paired_{flag}"] == value
    assert (row["phq_9_recovery"], row["paired_recovery"]) == (True, True)
    # The open course: no sessions (not a finished course), a GAD-7 only, so no paired result.
    assert (other["phase"], other["end_reason"], other["sessions_attended"], other["finished_course"]) == (
        "initial", None, 0, False)
    assert other["gad_7_administrations"] == 1 and other["paired_case_at_intake"] is None
