"""The phase machine (rules.md P1-P7) and the closed course (S6), through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.clinic import AGREED_FORMULATION, CourseDriver, open_course


def refused(response, status: int, code: str, rule: str | None = None, **context) -> dict:
    """Assert a problem response: status, code, rule and the context fields a client branches on."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    if rule is not None:
        assert body["rule"] == rule, body
    for name, value in context.items():
        assert body[name] == value, (name, body)
    return body


async def _transition(drive: CourseDriver, to: str, **extra):
    return await drive.client.post(f"{drive.url}/transitions", json={"to": to, **extra}, headers=drive.actor.headers)


async def _in_phase(client, actor, phase: str) -> CourseDriver:
    """An ipc course of 3 sessions in `phase`, with one attended session in each open phase it passed."""
    drive = CourseDriver(client, actor, await open_course(client, actor, "ipc", planned_sessions=3))
    if phase == "discontinued":
        await drive.move("discontinued", reason="moved_away")
        return drive
    for step in ("middle", "termination", "completed"):
        if drive.course["phase"] == phase:
            break
        if step == "middle":
            await drive.session()
            await drive.prepare_middle()
        await drive.move(step)
        if step != "completed":
            await drive.session()
    return drive


async def _phase_history(drive: CourseDriver) -> list[tuple[str, str]]:
    listed = (await drive.client.get(f"{drive.url}/transitions", headers=drive.actor.headers)).json()["data"]
    return [(t["from_phase"], t["to_phase"]) for t in listed]


@pytest.mark.parametrize(
    ("phase", "to", "allowed"),
    [
        ("initial", "termination", ["discontinued", "middle"]),
        ("initial", "completed", ["discontinued", "middle"]),
        ("middle", "middle", ["discontinued", "termination"]),
        ("middle", "completed", ["discontinued", "termination"]),
        ("termination", "middle", ["completed", "discontinued"]),
        ("completed", "discontinued", []),
        ("discontinued", "middle", []),
    ],
)
async def test_phase_moves_not_drawn_are_invalid_phase_transition(client, world, phase, to, allowed):
    drive = await _in_phase(client, world.clinician, phase)
    before = await drive.read()
    body = refused(await _transition(drive, to, reason="other"), 409, "invalid_phase_transition", "P1",
                   allowed=allowed, to=to)
    assert body["from"] == phase
    after = await drive.read()
    assert (after["phase"], after["version"]) == (phase, before["version"])


async def test_going_back_to_initial_is_refused_by_p1(client, world):
    drive = await _in_phase(client, world.clinician, "middle")
    refused(await _transition(drive, "initial"), 409, "invalid_phase_transition", "P1")
    assert (await drive.read())["phase"] == "middle"


async def test_middle_phase_needs_an_agreed_formulation_with_one_primary_focus(client, world):
    actor = world.clinician
    drive = CourseDriver(client, actor, await open_course(client, actor, "ipt"))
    await drive.session()
    relationship = {"label": "Mother", "relationship": "parent", "ring": 2}
    assert (await client.post(f"{drive.url}/inventory", json=relationship, headers=actor.headers)).status_code == 201
    refused(await _transition(drive, "middle"), 409, "formulation_required", "P2", problem="missing")

    draft = {**AGREED_FORMULATION, "status": "draft"}
    written = await client.put(f"{drive.url}/formulation", json=draft, headers=actor.headers)
    assert written.status_code == 201, written.text
    refused(await _transition(drive, "middle"), 409, "formulation_required", "P2", problem="not_agreed")

    no_primary = {**AGREED_FORMULATION, "problem_areas": [{"area": "grief", "focal": True, "primary": False}]}
    written = await client.put(f"{drive.url}/formulation", json=no_primary,
                               headers={**actor.headers, "If-Match": written.headers["ETag"]})
    assert written.status_code == 200, written.text
    refused(await _transition(drive, "middle"), 409, "formulation_required", "P2", problem="no_primary_area")

    not_focal = {**AGREED_FORMULATION, "problem_areas": [{"area": "grief", "focal": False, "primary": False}]}
    written = await client.put(f"{drive.url}/formulation", json=not_focal,
                               headers={**actor.headers, "If-Match": written.headers["ETag"]})
    refused(await _transition(drive, "middle"), 409, "formulation_required", "P2", problem="no_focal_area")

    two_focal = {**AGREED_FORMULATION, "problem_areas": [
        {"area": "grief", "focal": True, "primary": True},
        {"area": "role_dispute", "focal": True, "primary": False, "details": {"stage": "impasse"}}]}
    written = await client.put(f"{drive.url}/formulation", json=two_focal,
                               headers={**actor.headers, "If-Match": written.headers["ETag"]})
    assert written.status_code == 200, written.text
    moved = await _transition(drive, "middle")
    assert moved.status_code == 200, moved.text
    assert moved.json()["phase"] == "middle"


async def test_middle_phase_needs_the_interpersonal_inventory(client, world):
    actor = world.clinician
    drive = CourseDriver(client, actor, await open_course(client, actor, "ipt"))
    await drive.session()
    written = await client.put(f"{drive.url}/formulation", json=AGREED_FORMULATION, headers=actor.headers)
    assert written.status_code == 201, written.text
    refused(await _transition(drive, "middle"), 409, "inventory_required", "P3", inventory_count=0)
    relationship = {"label": "Friend (K)", "relationship": "friend", "ring": 3}
    assert (await client.post(f"{drive.url}/inventory", json=relationship, headers=actor.headers)).status_code == 201
    assert (await _transition(drive, "middle")).status_code == 200


@pytest.mark.parametrize(
    ("phase", "to", "rule"),
    [("initial", "middle", "P4"), ("middle", "termination", "P5"), ("termination", "completed", "P6")],
)
async def test_a_phase_cannot_end_before_a_session_was_attended_in_it(client, world, phase, to, rule):
    actor = world.clinician
    drive = CourseDriver(client, actor, await open_course(client, actor, "ipt"))
    await drive.prepare_middle()
    for step in ("middle", "termination"):
        if drive.course["phase"] == phase:
            break
        await drive.session()
        await drive.move(step)
    # A missed and a cancelled appointment do not count as sessions of the phase.
    await drive.session("missed")
    await drive.session("cancelled")
    refused(await _transition(drive, to), 409, "invalid_phase_transition", rule, attended_in_phase=0)
    assert (await drive.read())["phase"] == phase
    session = await drive.session()
    assert session["phase"] == phase
    moved = await _transition(drive, to)
    assert moved.status_code == 200, moved.text
    assert moved.json()["phase"] == to
    assert (await _phase_history(drive))[-1] == (phase, to)


@pytest.mark.parametrize("phase", ["initial", "middle", "termination"])
async def test_discontinuing_needs_a_listed_reason_from_any_open_phase(client, world, phase):
    drive = await _in_phase(client, world.clinician, phase)
    body = refused(await _transition(drive, "discontinued"), 422, "validation_error", "P7")
    assert set(body["allowed"]) == {"patient_withdrew", "lost_to_follow_up", "referred_on",
                                    "clinical_deterioration", "moved_away", "other"}
    refused(await _transition(drive, "discontinued", reason="felt_better"), 422, "validation_error")
    assert (await drive.read())["phase"] == phase
    closed = await _transition(drive, "discontinued", reason="clinical_deterioration", note="admitted")
    assert closed.status_code == 200, closed.text
    course = closed.json()
    assert (course["phase"], course["end_reason"]) == ("discontinued", "clinical_deterioration")
    assert course["ended_on"] == datetime.now(UTC).date().isoformat()
    listed = (await client.get(f"{drive.url}/transitions", headers=world.clinician.headers)).json()["data"]
    last = listed[-1]
    assert (last["from_phase"], last["to_phase"], last["reason"], last["note"]) == (
        phase, "discontinued", "clinical_deterioration", "admitted")
    assert (last["by_type"], last["by_id"]) == ("user", world.clinician.id)


@pytest.mark.parametrize("phase", ["completed", "discontinued"])
async def test_a_closed_course_refuses_every_change(client, world, phase):
    actor = world.clinician
    drive = CourseDriver(client, actor, await open_course(client, actor, "ipc", planned_sessions=3))
    await drive.session()
    await drive.prepare_middle()
    session = await drive.session("missed")
    if phase == "completed":
        await drive.move("middle")
        await drive.session()
        await drive.move("termination")
        session = await drive.session()
        await drive.move("completed")
    else:
        await drive.move("discontinued", reason="patient_withdrew")
    course = await drive.read()
    assert course["ended_on"] is not None
    url = drive.url
    formulation = (await client.get(f"{url}/formulation", headers=actor.headers)).json()
    relationship = (await client.get(f"{url}/inventory", headers=actor.headers)).json()["data"][0]
    day = (drive.day + timedelta(days=1)).isoformat()

    def matching(resource: dict) -> dict:
        return {**actor.headers, "If-Match": f'"{resource["version"]}"'}

    attempts = [
        ("POST", f"{url}/sessions", {"held_on": day, "attendance": "attended"}, actor.headers),
        ("POST", f"{url}/sessions", {"held_on": day, "attendance": "missed"}, actor.headers),
        ("PATCH", f"{url}/sessions/{session['id']}", {"note": "late note"}, matching(session)),
        ("DELETE", f"{url}/sessions/{session['id']}", None, matching(session)),
        ("PUT", f"{url}/formulation", AGREED_FORMULATION, matching(formulation)),
        ("POST", f"{url}/inventory", {"label": "Sister", "relationship": "sibling", "ring": 2}, actor.headers),
        ("PATCH", f"{url}/inventory/{relationship['id']}", {"ring": 2}, matching(relationship)),
        ("DELETE", f"{url}/inventory/{relationship['id']}", None, matching(relationship)),
        ("POST", f"{url}/timeline", {"occurred_on": day, "event": "moved house", "mood_change": "worse"},
         actor.headers),
        ("PATCH", url, {"diagnosis": "F33.1"}, matching(course)),
        ("PATCH", url, {"planned_sessions": 4}, matching(course)),
        ("POST", f"{url}/extensions", {"sessions": 1, "reason": "more"}, world.supervisor.headers),
        ("POST", f"{url}/extensions", {"sessions": 1, "reason": "more"}, world.ehr.headers),
    ]
    for method, path, body, headers in attempts:
        response = await client.request(method, path, json=body, headers=headers)
        refused(response, 409, "course_closed", rule=None, phase=phase)
        assert response.json()["rule"] in ("S6", "S9"), response.json()

    assert await drive.read() == course
    sessions = (await client.get(f"{url}/sessions", headers=actor.headers)).json()["data"]
    assert sessions[-1] == session
    assert (await client.get(f"{url}/formulation", headers=actor.headers)).json() == formulation
    assert (await client.get(f"{url}/inventory", headers=actor.headers)).json()["data"] == [relationship]
    assert (await client.get(f"{url}/timeline", headers=actor.headers)).json()["data"] == []
    assert (await client.get(f"{url}/extensions", headers=actor.headers)).json()["data"] == []
