"""Whole courses through the API, for every protocol, to completed and to discontinued."""

import pytest

from app.rules import PROTOCOLS
from tests.support.clinic import CourseDriver, open_course


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
async def test_full_course_reaches_completed_for_every_protocol(client, world, protocol):
    spec = PROTOCOLS[protocol]
    course = await open_course(client, world.clinician, protocol)
    assert course["planned_sessions"] == spec.default_planned
    assert course["phase"] == "initial"
    drive = CourseDriver(client, world.clinician, course)
    await drive.session()
    await drive.prepare_middle()
    await drive.move("middle")
    middle_sessions = spec.default_planned - spec.termination_min - 1
    for _ in range(middle_sessions):
        await drive.session()
    await drive.move("termination")
    for _ in range(spec.termination_min):
        last = await drive.session()
    assert last["number"] == spec.default_planned
    assert last["phase"] == "termination"
    await drive.session(expect=409)
    done = await drive.move("completed")
    assert done["phase"] == "completed"
    assert done["ended_on"] is not None
    assert done["end_reason"] == "completed"
    assert done["sessions_attended"] == spec.default_planned
    assert done["sessions_remaining"] == 0
    history = (await client.get(f"{drive.url}/transitions", headers=world.clinician.headers)).json()["data"]
    assert [(t["from_phase"], t["to_phase"]) for t in history] == [
        ("initial", "middle"), ("middle", "termination"), ("termination", "completed")]
    assert all(t["by_id"] == world.clinician.id for t in history)


async def test_course_discontinued_with_reason_closes_it(client, world):
    drive = CourseDriver(client, world.clinician, await open_course(client, world.clinician))
    await drive.session()
    refused = await drive.move("discontinued", expect=422)
    assert refused["rule"] == "P7"
    closed = await drive.move("discontinued", reason="lost_to_follow_up")
    assert (closed["phase"], closed["end_reason"]) == ("discontinued", "lost_to_follow_up")
    assert closed["ended_on"] is not None
