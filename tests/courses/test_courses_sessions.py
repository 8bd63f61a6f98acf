"""Therapy sessions through the API: numbering, phase stamping, deleting the latest, editing details."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.clinic import CourseDriver, open_course


def refused(response, status: int, code: str, rule: str | None = None) -> dict:
    """Assert a problem response: status, code and rule."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    if rule is not None:
        assert body["rule"] == rule, body
    return body


def matching(actor, resource: dict) -> dict:
    return {**actor.headers, "If-Match": f'"{resource["version"]}"'}


async def _sessions(drive: CourseDriver) -> list[dict]:
    response = await drive.client.get(f"{drive.url}/sessions", params={"limit": 200}, headers=drive.actor.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_attended_sessions_are_numbered_without_gaps_and_carry_their_phase(client, world):
    drive = CourseDriver(client, world.clinician, await open_course(client, world.clinician, "ipc", planned_sessions=4))
    await drive.session()
    await drive.session("missed")
    await drive.prepare_middle()
    await drive.move("middle")
    await drive.session("cancelled")
    await drive.session()
    await drive.session()
    await drive.move("termination")
    await drive.session("missed")
    await drive.session()
    listed = await _sessions(drive)
    assert [(s["attendance"], s["number"], s["phase"]) for s in listed] == [
        ("attended", 1, "initial"),
        ("missed", None, "initial"),
        ("cancelled", None, "middle"),
        ("attended", 2, "middle"),
        ("attended", 3, "middle"),
        ("missed", None, "termination"),
        ("attended", 4, "termination"),
    ]
    course = await drive.read()
    assert (course["sessions_attended"], course["sessions_remaining"], course["session_limit"]) == (4, 0, 4)
    one = await client.get(f"{drive.url}/sessions/{listed[3]['id']}", headers=world.clinician.headers)
    assert one.status_code == 200
    assert one.json() == listed[3]
    assert one.headers["ETag"] == f'"{listed[3]["version"]}"'


async def test_only_the_latest_session_can_be_deleted_and_its_number_is_given_back(client, world):
    actor = world.clinician
    drive = CourseDriver(client, actor, await open_course(client, actor, "ipt"))
    first = await drive.session()
    second = await drive.session()
    missed = await drive.session("missed")
    for earlier in (first, second):
        response = await client.delete(f"{drive.url}/sessions/{earlier['id']}", headers=matching(actor, earlier))
        refused(response, 409, "session_out_of_order", "S7")
    assert len(await _sessions(drive)) == 3

    url = f"{drive.url}/sessions/{missed['id']}"
    refused(await client.delete(url, headers=actor.headers), 428, "precondition_required")
    refused(await client.delete(url, headers={**actor.headers, "If-Match": '"7"'}), 412, "precondition_failed")
    assert (await client.delete(url, headers=matching(actor, missed))).status_code == 204
    assert (await client.get(url, headers=actor.headers)).status_code == 404

    url = f"{drive.url}/sessions/{second['id']}"
    assert (await client.delete(url, headers=matching(actor, second))).status_code == 204
    course = await drive.read()
    assert (course["sessions_attended"], course["sessions_remaining"]) == (1, 15)
    # The deleted session's date is no longer the latest: a session the day after the first is in order again.
    drive.day = drive.day - timedelta(days=2)
    again = await drive.session()
    assert (again["number"], again["held_on"]) == (2, second["held_on"])
    assert [s["number"] for s in await _sessions(drive)] == [1, 2]


async def test_deleting_every_session_lets_the_course_start_over(client, world):
    actor = world.clinician
    drive = CourseDriver(client, actor, await open_course(client, actor, "ipc", started_days_ago=5))
    only = await drive.session()
    assert (await client.delete(f"{drive.url}/sessions/{only['id']}", headers=matching(actor, only))).status_code == 204
    course = await drive.read()
    assert (course["sessions_attended"], course["sessions_remaining"]) == (0, 6)
    drive.day = drive.day - timedelta(days=2)
    restarted = await drive.session()  # dated before the deleted session: no stale latest date holds it back
    assert (restarted["number"], restarted["held_on"]) == (1, course["started_on"])


@pytest.mark.parametrize(
    "change",
    [{"held_on": "2020-01-01"}, {"attendance": "missed"}, {"number": 9}, {"phase": "middle"}, {"notes": "typo"}],
)
async def test_session_patch_refuses_date_attendance_and_unknown_fields(client, world, change):
    actor = world.clinician
    drive = CourseDriver(client, actor, await open_course(client, actor, "ipt"))
    session = await drive.session()
    url = f"{drive.url}/sessions/{session['id']}"
    body = refused(await client.patch(url, json=change, headers=matching(actor, session)), 422, "validation_error")
    assert [e["loc"] for e in body["errors"]] == [list(change)]
    assert (await client.get(url, headers=actor.headers)).json() == session


async def test_session_patch_changes_note_and_modality_with_if_match(client, world):
    actor = world.clinician
    drive = CourseDriver(client, actor, await open_course(client, actor, "ipt"))
    session = await drive.session()
    url = f"{drive.url}/sessions/{session['id']}"
    change = {"note": "Talked about the move.", "modality": "telephone", "duration_minutes": 50}
    refused(await client.patch(url, json=change, headers=actor.headers), 428, "precondition_required")
    stale = {**actor.headers, "If-Match": f'"{session["version"] + 1}"'}
    refused(await client.patch(url, json=change, headers=stale), 412, "precondition_failed")
    assert (await client.get(url, headers=actor.headers)).json() == session

    changed = await client.patch(url, json=change, headers=matching(actor, session))
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert {k: body[k] for k in change} == change
    assert (body["held_on"], body["attendance"], body["number"]) == (session["held_on"], "attended", 1)
    assert body["version"] == session["version"] + 1
    assert changed.headers["ETag"] == f'"{body["version"]}"'
    again = await client.patch(url, json={"note": "again"}, headers=matching(actor, session))
    refused(again, 412, "precondition_failed")
