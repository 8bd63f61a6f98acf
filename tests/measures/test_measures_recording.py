"""The catalogue over HTTP, and recording every instrument: the service scores, strictly."""

import pytest

from tests.support.clinic import CourseDriver, open_course
from tests.support.measures import day, phq9, record

# (instrument, body fields, total, severity): totals worked out by hand from domain.md's rules.
SCORED = [
    ("phq-9", {"items": [1, 2, 3, 0, 1, 2, 3, 0, 0]}, 12, "moderate"),
    ("gad-7", {"items": [3, 3, 3, 3, 3, 0, 0]}, 15, "severe"),
    ("epds", {"items": [0, 1, 2, 3, 0, 1, 2, 3, 1, 0]}, 13, "probable"),
    ("hamd-17", {"items": [2, 1, 0, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 0, 2, 1, 0]}, 18, "moderate"),
    # sleep max(1,3,0,2)=3 + mood 2 + appetite max(0,1,3,0)=3 + 1+2+0+1+2 + psychomotor max(0,3)=3 = 17
    ("qids-sr16", {"items": [1, 3, 0, 2, 2, 0, 1, 3, 0, 1, 2, 0, 1, 2, 0, 3]}, 17, "severe"),
    ("wsas", {"items": [2, 4, 6, 8, 0]}, 20, "significant"),
    ("mspss", {"items": [3] * 11 + [2]}, 2.92, "low"),  # 35 / 12
    ("mspss", {"items": [3] * 12}, 3, "moderate"),  # exactly 3.00 is moderate
    ("bdi-ii", {"total": 25}, 25, "moderate"),
]


async def test_catalogue_lists_every_instrument_and_reads_one(client, world):
    listed = await client.get("/v1/instruments", headers=world.researcher.headers)
    assert listed.status_code == 200
    assert [i["id"] for i in listed.json()] == ["phq-9", "gad-7", "epds", "hamd-17", "qids-sr16", "wsas", "mspss", "bdi-ii"]
    phq = (await client.get("/v1/instruments/phq-9", headers=world.clinician.headers)).json()
    assert (phq["item_count"], phq["risk_items"], phq["caseness"], phq["reliable_change"]) == (9, [9], 10, 6)
    assert phq["bands"][3] == {"code": "moderately_severe", "label": "Moderately severe", "low": 15, "high": 19}
    missing = await client.get("/v1/instruments/phq-10", headers=world.clinician.headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert (await client.get("/v1/instruments")).status_code == 401


@pytest.mark.parametrize(("instrument", "fields", "total", "severity"), SCORED)
async def test_each_instrument_is_scored_by_the_service(client, world, instrument, fields, total, severity):
    course = await open_course(client, world.clinician)
    stored = await record(client, world.clinician, course, instrument, **fields)
    assert (stored["instrument"], stored["total"], stored["severity"]) == (instrument, total, severity)
    assert isinstance(stored["total"], float if instrument == "mspss" else int)
    assert stored["risk_items"] == [] and stored["risk_flag_open"] is False
    assert (stored["change_from_baseline"], stored["reliable_change"]) == (0, None)
    assert stored["items"] == fields.get("items")
    assert stored["session_number"] == 0 and stored["version"] == 1
    read = await client.get(f"/v1/courses/{course['id']}/measures/{stored['id']}", headers=world.clinician.headers)
    assert read.status_code == 200 and read.headers["ETag"] == '"1"'
    assert read.json() == stored


async def test_mspss_total_reads_back_as_a_two_decimal_mean(client, world):
    course = await open_course(client, world.clinician)
    stored = await record(client, world.clinician, course, "mspss", [3] * 11 + [2])
    listed = (await client.get(f"/v1/courses/{course['id']}/measures", headers=world.clinician.headers)).json()
    assert listed["data"][0]["total"] == 2.92
    whole = await record(client, world.clinician, course, "phq-9", [0] * 9)
    assert whole["total"] == 0 and isinstance(whole["total"], int)
    assert stored["total"] == 2.92


BAD = [
    ("phq-9", {"items": [0] * 8}, ["items"]),
    ("phq-9", {"items": [0] * 10}, ["items"]),
    ("phq-9", {"items": [0, 0, 4, 0, 0, 0, 0, 0, 0]}, ["items", 2]),
    ("phq-9", {"items": [0, 0, 0, 0, 0, 0, 0, 0, -1]}, ["items", 8]),
    ("phq-9", {"items": [1.5, 0, 0, 0, 0, 0, 0, 0, 0]}, ["items", 0]),
    ("phq-9", {"items": [0, 2.0, 0, 0, 0, 0, 0, 0, 0]}, ["items", 1]),
    ("phq-9", {"items": [0, 0, 0, True, 0, 0, 0, 0, 0]}, ["items", 3]),
    ("phq-9", {"items": [0, 0, 0, 0, "2", 0, 0, 0, 0]}, ["items", 4]),
    ("phq-9", {"items": [0, 0, 0, 0, 0, None, 0, 0, 0]}, ["items", 5]),
    ("phq-9", {"items": [0, 0, 0, 0, 0, 0, [1], 0, 0]}, ["items", 6]),
    ("phq-9", {}, ["items"]),
    ("phq-9", {"items": [0] * 9, "total": 0}, ["total"]),
    ("mspss", {"items": [0] * 12}, ["items", 0]),
    ("hamd-17", {"items": [0, 0, 0, 3] + [0] * 13}, ["items", 3]),  # item 4 is 0-2
    ("bdi-ii", {"items": [0] * 21, "total": 10}, ["items"]),
    ("bdi-ii", {"items": []}, ["items"]),
    ("bdi-ii", {}, ["total"]),
    ("bdi-ii", {"total": 64}, ["total"]),
    ("bdi-ii", {"total": 20.0}, ["total"]),
    ("bdi-ii", {"total": "20"}, ["total"]),
]


@pytest.mark.parametrize(("instrument", "fields", "loc"), BAD)
async def test_bad_items_are_422_naming_the_offending_item(client, world, instrument, fields, loc):
    course = await open_course(client, world.clinician)
    body = {"instrument": instrument, "administered_on": course["started_on"], **fields}
    response = await client.post(f"/v1/courses/{course['id']}/measures", json=body, headers=world.clinician.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [e["loc"] for e in problem["errors"]] == [loc]
    if len(loc) == 2:
        assert f"item {loc[1] + 1} " in problem["errors"][0]["message"]
    listed = (await client.get(f"/v1/courses/{course['id']}/measures", headers=world.clinician.headers)).json()
    assert listed["data"] == []


@pytest.mark.parametrize(("body", "loc"), [
    ({"instrument": "phq-10", "items": [0] * 9}, ["instrument"]),
    ({"instrument": "phq-9", "items": [0] * 9, "score": 3}, ["score"]),
    ({"instrument": "phq-9", "items": [0] * 9, "severity": "mild"}, ["severity"]),
    ({"instrument": "phq-9", "items": [0] * 9, "administered_on": "yesterday"}, ["administered_on"]),
    ({"instrument": "phq-9", "items": [0] * 9, "administered_on": "2999-01-01"}, ["administered_on"]),
])
async def test_unknown_instruments_fields_and_dates_are_422(client, world, body, loc):
    course = await open_course(client, world.clinician)
    body = {"administered_on": course["started_on"], **body}
    response = await client.post(f"/v1/courses/{course['id']}/measures", json=body, headers=world.clinician.headers)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["errors"]] == [loc]


async def test_measure_linked_to_a_session_takes_its_number_and_another_courses_session_is_404(client, world):
    course = await open_course(client, world.clinician)
    drive = CourseDriver(client, world.clinician, course)
    await drive.session()
    second = await drive.session()
    missed = await drive.session("missed")
    linked = await record(client, world.clinician, course, "phq-9", phq9(9), on=day(course, 2), session_id=second["id"])
    assert (linked["session_id"], linked["session_number"]) == (second["id"], 2)
    # A missed appointment has no number: the measure falls back to the attended sessions held so far.
    at_missed = await record(client, world.clinician, course, "phq-9", phq9(8), on=day(course, 3), session_id=missed["id"])
    assert at_missed["session_number"] == 2
    other = await open_course(client, world.clinician)
    foreign = await CourseDriver(client, world.clinician, other).session()
    refused = await record(client, world.clinician, course, "phq-9", phq9(9), session_id=foreign["id"], expect=404)
    assert refused["code"] == "not_found"


async def test_measures_list_filters_by_instrument_and_pages(client, world):
    course = await open_course(client, world.clinician)
    for total in (20, 15, 10):
        await record(client, world.clinician, course, "phq-9", phq9(total))
    await record(client, world.clinician, course, "gad-7", [1] * 7)
    url = f"/v1/courses/{course['id']}/measures"
    first = (await client.get(f"{url}?limit=2", headers=world.clinician.headers)).json()
    assert [m["total"] for m in first["data"]] == [20, 15]
    rest = (await client.get(f"{url}?limit=2&cursor={first['next_cursor']}", headers=world.clinician.headers)).json()
    assert [m["total"] for m in rest["data"]] == [10, 7] and rest["next_cursor"] is None
    gad = (await client.get(f"{url}?instrument=gad-7", headers=world.clinician.headers)).json()["data"]
    assert [(m["instrument"], m["change_from_baseline"]) for m in gad] == [("gad-7", 0)]
    assert (await client.get(f"{url}?instrument=nope", headers=world.clinician.headers)).status_code == 422
    other_list = (await client.get(f"/v1/courses/{course['id']}/sessions?cursor={first['next_cursor']}",
                                   headers=world.clinician.headers))
    assert other_list.json()["code"] == "invalid_cursor"


async def test_course_facts_kept_on_each_record_match_a_full_recount(app, client, world):
    """Recording updates the course row's measure facts from the row itself; a recount from every measure agrees."""
    from app.core.db import transaction
    from app.courses.repository import get as get_course
    from app.deps import Principal
    from app.measures.repository import course_facts

    course = await open_course(client, world.clinician)
    drive = CourseDriver(client, world.clinician, course)
    # Out of order on purpose: back-dated, same-day, before and after sessions, with and without a risk item.
    await record(client, world.clinician, course, "phq-9", phq9(15), on=day(course, 3))
    for _ in range(3):
        await drive.session()  # held on days 1, 2, 3
    await record(client, world.clinician, course, "gad-7", [1] * 7, on=day(course, 1))
    await record(client, world.clinician, course, "phq-9", phq9(12, item9=1), on=day(course, 2))
    await record(client, world.clinician, course, "phq-9", phq9(9), on=day(course, 3))
    await record(client, world.clinician, course, "phq-9", phq9(18), on=day(course, 0))

    principal = Principal("user", world.clinician.id, world.org_id, frozenset(), ("clinician",))
    async with transaction(app.state.engine, write=False) as db:
        kept = await get_course(db, principal, course["id"])
        recounted = await course_facts(db, course["id"])
    assert {name: kept[name] for name in recounted} == recounted
    assert recounted["first_measure_on"].isoformat() == day(course, 0)
    assert recounted["last_measure_on"].isoformat() == day(course, 3)
    assert recounted["last_measure_session_number"] == 3 and recounted["risk_flag_open"] is True
