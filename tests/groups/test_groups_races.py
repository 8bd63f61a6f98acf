"""Group IPT under real concurrent HTTP clients against a live server, on both databases (and through PgBouncer)."""

from __future__ import annotations

from tests.conftest import VIA_PGBOUNCER
from tests.courses.test_courses_races import CLIENTS, _race
from tests.groups.test_groups_walk import _day, _group, _members, _post
from tests.support.world import create_patient

pytestmark = VIA_PGBOUNCER


async def test_twenty_clients_joining_a_group_of_eight_leave_exactly_eight_members(client, world, live_url):
    group = await _group(client, world, capacity=8)
    patients = [await create_patient(client, world.clinician) for _ in range(CLIENTS)]
    url = f"/v1/groups/{group['id']}/members"
    answers = _race(live_url, [("POST", url, {"patient_id": p["id"]}, world.clinician.headers) for p in patients])
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 8 + [409] * (CLIENTS - 8), [a.text for a in answers if a.status_code not in (201, 409)]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"group_full"}
    members = (await client.get(url, headers=world.clinician.headers)).json()
    assert len(members) == 8
    assert (await client.get(f"/v1/groups/{group['id']}", headers=world.clinician.headers)).json()["members"] == 8


async def test_two_facilitators_recording_the_last_group_session_at_once_one_wins(client, world, live_url):
    group = await _group(client, world, facilitator_ids=[world.clinician.id, world.clinician2.id])
    members = await _members(client, world, group, 3)
    url = f"/v1/groups/{group['id']}"
    for member in members:
        await _post(client, world.clinician, f"{url}/members/{member['id']}/pre-group-meetings", {"held_on": _day(0)})
    attendance = [{"member_id": m["id"], "attendance": "attended"} for m in members]
    for number in range(1, 8):
        await _post(client, world.clinician, f"{url}/sessions", {"held_on": _day(number), "attendance": attendance})
    body = {"held_on": _day(8), "attendance": attendance}
    answers = _race(live_url, [("POST", f"{url}/sessions", body, actor.headers) for actor in (world.clinician, world.clinician2)])
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    sessions = (await client.get(f"{url}/sessions", headers=world.clinician.headers)).json()
    assert [s["number"] for s in sessions] == list(range(1, 9))
    for member in members:
        course = (await client.get(f"/v1/courses/{member['course_id']}", headers=world.clinician.headers)).json()
        assert (course["sessions_attended"], course["phase"]) == (8, "completed")
