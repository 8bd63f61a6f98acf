"""Risk flags: raised by a positive risk item, announced at once, closed only by a clinician's acknowledgement."""

import asyncio

import sqlalchemy as sa

from app.webhooks.models import OutboxEvent
from tests.support.clinic import CourseDriver, open_course
from tests.support.measures import course_codes, day, phq9, record


async def acknowledge(client, actor, course, measure_id, expect=201, note="Safety plan reviewed; no current intent."):
    response = await client.post(f"/v1/courses/{course['id']}/risk-acknowledgements",
                                 json={"measure_id": measure_id, "note": note}, headers=actor.headers)
    assert response.status_code == expect, response.text
    return response.json()


async def flagged_courses(client, actor, flag: str) -> set[str]:
    response = await client.get(f"/v1/courses?risk_flag_open={flag}&limit=200", headers=actor.headers)
    assert response.status_code == 200, response.text
    return {c["id"] for c in response.json()["data"]}


async def test_positive_item_9_flags_the_measure_and_course_until_the_therapist_acknowledges(client, world):
    course = await open_course(client, world.clinician)
    measure = await record(client, world.clinician, course, "phq-9", phq9(15, item9=2))
    assert (measure["risk_items"], measure["risk_flag_open"], measure["total"]) == ([9], True, 15)
    read = (await client.get(f"/v1/courses/{course['id']}", headers=world.clinician.headers)).json()
    assert read["risk_flag_open"] is True
    assert "risk_flag_open" in [a["code"] for a in read["advisories"]]
    assert course["id"] in await flagged_courses(client, world.clinician, "true")
    assert course["id"] not in await flagged_courses(client, world.clinician, "false")

    await acknowledge(client, world.clinician2, course, measure["id"], expect=404)
    forbidden = await acknowledge(client, world.ehr, course, measure["id"], expect=403)
    assert forbidden["code"] == "forbidden"
    ack = await acknowledge(client, world.clinician, course, measure["id"])
    assert (ack["measure_id"], ack["by_type"], ack["by_id"], ack["course_id"]) == (
        measure["id"], "user", world.clinician.id, course["id"])

    after = (await client.get(f"/v1/courses/{course['id']}/measures/{measure['id']}", headers=world.clinician.headers)).json()
    assert (after["risk_flag_open"], after["acknowledged_by_id"], after["version"]) == (False, world.clinician.id, 2)
    assert after["acknowledged_at"] is not None and after["risk_items"] == [9]
    assert "risk_flag_open" not in await course_codes(client, world.clinician, course)
    assert course["id"] in await flagged_courses(client, world.clinician, "false")
    again = await acknowledge(client, world.clinician, course, measure["id"], expect=409)
    assert again["code"] == "risk_flag_not_open"
    listed = (await client.get(f"/v1/courses/{course['id']}/risk-acknowledgements", headers=world.clinician.headers)).json()
    assert [a["id"] for a in listed["data"]] == [ack["id"]]


async def test_course_flag_stays_open_until_every_flagged_measure_is_acknowledged(client, world):
    course = await open_course(client, world.clinician)
    first = await record(client, world.ehr, course, "phq-9", phq9(10, item9=1))
    second = await record(client, world.clinician, course, "epds", [0] * 9 + [2])
    assert second["risk_items"] == [10]
    calm = await record(client, world.clinician, course, "phq-9", phq9(4))
    assert (await acknowledge(client, world.clinician, course, calm["id"], expect=409))["code"] == "risk_flag_not_open"
    await acknowledge(client, world.clinician, course, first["id"])
    assert "risk_flag_open" in await course_codes(client, world.clinician, course)
    await acknowledge(client, world.supervisor, course, second["id"])
    assert "risk_flag_open" not in await course_codes(client, world.clinician, course)


async def test_acknowledgement_input_is_checked(client, world):
    course = await open_course(client, world.clinician)
    measure = await record(client, world.clinician, course, "hamd-17", [0, 0, 1] + [0] * 14)
    assert measure["risk_items"] == [3]
    url = f"/v1/courses/{course['id']}/risk-acknowledgements"
    for body in ({"measure_id": measure["id"]}, {"measure_id": measure["id"], "note": ""},
                 {"measure_id": measure["id"], "note": "ok", "at": "2026-01-01"}):
        assert (await client.post(url, json=body, headers=world.clinician.headers)).status_code == 422
    other = await open_course(client, world.clinician)
    await acknowledge(client, world.clinician, other, measure["id"], expect=404)
    researcher = await acknowledge(client, world.researcher, course, measure["id"], expect=403)
    assert researcher["code"] == "forbidden"


async def test_flag_on_a_closed_course_can_still_be_acknowledged_but_no_measure_recorded(client, world):
    course = await open_course(client, world.clinician)
    drive = CourseDriver(client, world.clinician, course)
    measure = await record(client, world.clinician, course, "qids-sr16", [0] * 11 + [1] + [0] * 4)
    assert measure["risk_items"] == [12]
    await drive.session()
    await drive.move("discontinued", reason="clinical_deterioration")
    refused = await record(client, world.clinician, course, "phq-9", phq9(5), expect=409)
    assert (refused["code"], refused["rule"]) == ("course_closed", "S6")
    assert "risk_flag_open" in await course_codes(client, world.clinician, course)
    await acknowledge(client, world.clinician, course, measure["id"])
    assert await course_codes(client, world.clinician, course) == []


async def test_another_organization_sees_404_everywhere(client, world, other_world):
    course = await open_course(client, world.clinician)
    measure = await record(client, world.clinician, course, "phq-9", phq9(12, item9=1))
    base = f"/v1/courses/{course['id']}"
    for outsider in (other_world.supervisor, other_world.ehr, world.clinician2):
        for path in ("/measures", f"/measures/{measure['id']}", "/outcomes", "/outcomes/chart.svg?instrument=phq-9",
                     "/risk-acknowledgements"):
            response = await client.get(base + path, headers=outsider.headers)
            assert (response.status_code, response.json()["code"]) == (404, "not_found"), path
        await record(client, outsider, course, "phq-9", phq9(3), expect=404)
    await acknowledge(client, other_world.supervisor, course, measure["id"], expect=404)


async def test_outbox_announces_each_measure_and_each_risk_flag_in_the_same_transaction(client, world, app):
    course = await open_course(client, world.clinician)
    calm = await record(client, world.clinician, course, "gad-7", [1] * 7, on=day(course, 1))
    risky = await record(client, world.clinician, course, "phq-9", phq9(21, item9=3), on=day(course, 1))
    await record(client, world.clinician, course, "phq-9", [9] * 9, expect=422)  # refused: nothing announced
    async with app.state.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(OutboxEvent.type, OutboxEvent.data)
            .where(OutboxEvent.organization_id == world.org_id, OutboxEvent.type.in_(["measure.recorded", "risk.flagged"]))
            .order_by(OutboxEvent.id)
        )).all()
    common = {"course_id": course["id"], "patient_id": course["patient_id"]}
    assert [(r.type, r.data) for r in rows] == [
        ("measure.recorded", {**common, "measure_id": calm["id"], "instrument": "gad-7", "administered_on": day(course, 1),
                              "total": 7, "severity": "mild", "session_number": 0}),
        ("measure.recorded", {**common, "measure_id": risky["id"], "instrument": "phq-9", "administered_on": day(course, 1),
                              "total": 21, "severity": "severe", "session_number": 0}),
        ("risk.flagged", {**common, "measure_id": risky["id"], "instrument": "phq-9", "risk_items": [9]}),
    ]


async def test_racing_acknowledgements_of_one_flag_have_one_winner(client, world):
    course = await open_course(client, world.clinician)
    measure = await record(client, world.clinician, course, "phq-9", phq9(12, item9=1))
    url = f"/v1/courses/{course['id']}/risk-acknowledgements"
    body = {"measure_id": measure["id"], "note": "Reviewed."}
    responses = await asyncio.gather(*(
        client.post(url, json=body, headers=actor.headers)
        for actor in [world.clinician, world.supervisor] * 5
    ))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 9
    listed = (await client.get(url, headers=world.clinician.headers)).json()["data"]
    assert len(listed) == 1
