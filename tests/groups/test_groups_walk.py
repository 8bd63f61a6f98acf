"""Group IPT end to end: a whole 8-session group of 8 through every rule, a member leaving at session 4 and one
absent from session 6; the members' own courses; the refusals G1-G9; reach; a fixed statement count."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from tests.support.statements import recording
from tests.support.world import create_patient, make_world

START = date.today() - timedelta(days=70)


def _day(n: int) -> str:
    return (START + timedelta(days=7 * n)).isoformat()


async def _post(client, actor, url: str, body: dict, expect: int = 201) -> dict:
    response = await client.post(url, json=body, headers=actor.headers)
    assert response.status_code == expect, response.text
    return response.json()


async def _group(client, world, capacity: int = 8, **extra) -> dict:
    body = {"name": "Tuesday group", "facilitator_ids": [world.clinician.id], "capacity": capacity, **extra}
    return await _post(client, world.clinician, "/v1/groups", body)


async def _members(client, world, group: dict, count: int) -> list[dict]:
    members = []
    for _ in range(count):
        patient = await create_patient(client, world.clinician)
        members.append(await _post(client, world.clinician, f"/v1/groups/{group['id']}/members", {"patient_id": patient["id"]}))
    return members


def _refused(response, status: int, code: str, rule: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    if rule:
        assert body.get("rule") == rule, body


async def test_a_whole_eight_session_group_of_eight(client, world):
    group = await _group(client, world)
    assert (group["phase"], group["planned_sessions"], group["members"], group["status"]) == ("pre_group", 8, 0, "open")
    url = f"/v1/groups/{group['id']}"
    members = await _members(client, world, group, 8)
    # G2: a ninth does not fit.
    ninth = await create_patient(client, world.clinician)
    _refused(await client.post(f"{url}/members", json={"patient_id": ninth["id"]}, headers=world.clinician.headers),
             409, "group_full", "G2")
    # G3: no group session before the members present have held their pre-group meeting.
    everyone = [{"member_id": m["id"], "attendance": "attended"} for m in members]
    _refused(await client.post(f"{url}/sessions", json={"held_on": _day(1), "attendance": everyone},
                               headers=world.clinician.headers), 409, "pre_group_required", "G3")
    for member in members:
        held = await _post(client, world.clinician, f"{url}/members/{member['id']}/pre-group-meetings", {"held_on": _day(0)})
        assert held["pre_group_meetings"] == 1
    # G8: group-ipt holds one pre-group meeting.
    _refused(await client.post(f"{url}/members/{members[0]['id']}/pre-group-meetings", json={"held_on": _day(0)},
                               headers=world.clinician.headers), 409, "pre_group_complete", "G8")
    # G6: a member's formulation has one focal area.
    two = {"status": "agreed", "problem_areas": [{"area": "grief", "focal": True, "primary": True},
                                                 {"area": "role_dispute", "focal": True, "primary": False}]}
    course_url = f"/v1/courses/{members[0]['course_id']}"
    _refused(await client.put(f"{course_url}/formulation", json=two, headers=world.clinician.headers),
             422, "too_many_focal_areas", "G6")
    one = {"status": "agreed", "problem_areas": [{"area": "grief", "focal": True, "primary": True}]}
    assert (await client.put(f"{course_url}/formulation", json=one, headers=world.clinician.headers)).status_code == 201

    phases = []
    for number in range(1, 9):
        active = [m for m in members if not (number > 4 and m is members[3])]  # member 4 leaves after session 4
        attendance = [{"member_id": m["id"], "attendance": "missed" if (number == 6 and m is members[5]) else "attended"}
                      for m in active]
        session = await _post(client, world.clinician, f"{url}/sessions", {"held_on": _day(number), "attendance": attendance,
                                                                          "duration_minutes": 90})
        assert session["number"] == number
        phases.append(session["phase"])
        if number == 1:
            # G1: closed after group session 1.
            late = await create_patient(client, world.clinician)
            _refused(await client.post(f"{url}/members", json={"patient_id": late["id"]}, headers=world.clinician.headers),
                     409, "group_closed", "G1")
        if number == 4:
            left = await client.delete(f"{url}/members/{members[3]['id']}", params={"reason": "moved_away"},
                                       headers=world.clinician.headers)
            assert left.status_code == 200, left.text
            assert (left.json()["status"], left.json()["left_reason"]) == ("left", "moved_away")
            # G5: not dated before the latest.
            _refused(await client.post(f"{url}/sessions", json={"held_on": _day(3), "attendance": []},
                                       headers=world.clinician.headers), 409, "session_out_of_order", "G5")
    assert phases == ["initial"] + ["middle"] * 6 + ["termination"]
    # G4 / G5: the group is over.
    response = await client.post(f"{url}/sessions", json={"held_on": _day(9), "attendance": []}, headers=world.clinician.headers)
    assert response.status_code == 409 and response.json()["rule"] in ("G4", "G5")

    done = (await client.get(url, headers=world.clinician.headers)).json()
    assert (done["status"], done["phase"], done["sessions_held"], done["members"]) == ("completed", "completed", 8, 7)
    listed = (await client.get(f"{url}/sessions", headers=world.clinician.headers)).json()
    assert [s["number"] for s in listed] == list(range(1, 9))
    assert {a["member_id"]: a["attendance"] for a in listed[5]["attendance"]}[members[5]["id"]] == "missed"
    assert members[3]["id"] not in {a["member_id"] for a in listed[5]["attendance"]}

    # Each member's own course counts the group sessions they attended, stamped with the group's phases.
    courses = {m["id"]: (await client.get(f"/v1/courses/{m['course_id']}", headers=world.clinician.headers)).json()
               for m in members}
    assert (courses[members[0]["id"]]["sessions_attended"], courses[members[0]["id"]]["phase"]) == (8, "completed")
    assert courses[members[5]["id"]]["sessions_attended"] == 7
    assert (courses[members[3]["id"]]["sessions_attended"], courses[members[3]["id"]]["phase"]) == (4, "discontinued")
    assert courses[members[3]["id"]]["end_reason"] == "moved_away"
    sessions = (await client.get(f"/v1/courses/{members[5]['course_id']}/sessions", headers=world.clinician.headers)).json()
    assert [(s["number"], s["attendance"], s["phase"]) for s in sessions["data"]][4:7] == [
        (5, "attended", "middle"), (None, "missed", "middle"), (6, "attended", "middle")]
    # G9: a member's course is not driven on its own.
    _refused(await client.post(f"{course_url}/sessions", json={"held_on": _day(9), "attendance": "attended"},
                               headers=world.clinician.headers), 409, "group_course", "G9")
    patient = await create_patient(client, world.clinician)
    _refused(await client.post("/v1/courses", json={"patient_id": patient["id"], "protocol": "group-ipt"},
                               headers=world.clinician.headers), 409, "group_course", "G9")


@pytest.mark.parametrize(("body", "code", "rule"), [
    ({"planned_sessions": 7}, "planned_sessions_out_of_range", "G4"),
    ({"planned_sessions": 17}, "planned_sessions_out_of_range", "G4"),
    ({"capacity": 13}, "validation_error", None),
    ({"capacity": 1}, "validation_error", None),
])
async def test_a_group_plan_out_of_range_is_refused(client, world, body, code, rule):
    response = await client.post("/v1/groups", json={"name": "G", "facilitator_ids": [world.clinician.id], **body},
                                 headers=world.clinician.headers)
    assert response.status_code == 422 and response.json()["code"] == "validation_error", response.text


def test_the_group_rules_refuse_a_plan_out_of_range_whatever_the_schema_lets_through():
    from app.rules import groups as rules
    from app.rules.errors import RuleViolation

    for planned, capacity, held, members, code in ((7, 8, 0, 0, "planned_sessions_out_of_range"),
                                                   (17, 8, 0, 0, "planned_sessions_out_of_range"),
                                                   (8, 8, 9, 0, "planned_sessions_out_of_range"),
                                                   (8, 13, 0, 0, "validation_error"), (8, 3, 0, 5, "validation_error")):
        with pytest.raises(RuleViolation) as refused:
            rules.check_group_plan("group-ipt", planned, capacity, held, members)
        assert refused.value.code == code


async def test_without_facilitators_named_the_caller_facilitates_and_an_integration_must_name_them(client, world):
    mine = await _post(client, world.clinician, "/v1/groups", {"name": "G"})
    assert mine["facilitator_ids"] == [world.clinician.id]
    response = await client.post("/v1/groups", json={"name": "G"}, headers=world.ehr.headers)
    assert response.status_code == 422 and "facilitator_ids" in response.text


async def test_facilitators_are_one_or_two_active_clinicians(client, world):
    for facilitators in ([world.admin.id], ["nobody"], [world.researcher.id, world.clinician.id]):
        response = await client.post("/v1/groups", json={"name": "G", "facilitator_ids": facilitators},
                                     headers=world.clinician.headers)
        _refused(response, 422, "invalid_facilitator", "G7")
    three = [world.clinician.id, world.clinician2.id, world.supervisor.id]
    response = await client.post("/v1/groups", json={"name": "G", "facilitator_ids": three}, headers=world.clinician.headers)
    assert response.status_code == 422  # the schema holds at most two
    both = await _group(client, world, facilitator_ids=[world.clinician.id, world.clinician2.id])
    assert both["facilitator_ids"] == [world.clinician.id, world.clinician2.id]


async def test_group_ipt_a_holds_two_pre_group_meetings_and_a_twelve_session_group_ends_in_two(client, world):
    group = await _group(client, world, protocol="group-ipt-a", planned_sessions=12)
    [member] = await _members(client, world, group, 1)
    url = f"/v1/groups/{group['id']}"
    await _post(client, world.clinician, f"{url}/members/{member['id']}/pre-group-meetings", {"held_on": _day(0)})
    attended = [{"member_id": member["id"], "attendance": "attended"}]
    _refused(await client.post(f"{url}/sessions", json={"held_on": _day(1), "attendance": attended},
                               headers=world.clinician.headers), 409, "pre_group_required", "G3")
    await _post(client, world.clinician, f"{url}/members/{member['id']}/pre-group-meetings", {"held_on": _day(0)})
    phases = [(await _post(client, world.clinician, f"{url}/sessions", {"held_on": _day(n), "attendance": attended}))["phase"]
              for n in range(1, 13)]
    assert phases == ["initial"] + ["middle"] * 9 + ["termination"] * 2


async def test_another_clinicians_or_organizations_group_is_a_404_and_etags_guard_changes(client, world, other_world):
    group = await _group(client, world)
    url = f"/v1/groups/{group['id']}"
    for stranger in (world.clinician2, other_world.clinician, other_world.ehr):
        assert (await client.get(url, headers=stranger.headers)).status_code == 404
        assert (await client.get(f"{url}/members", headers=stranger.headers)).status_code == 404
    assert (await client.get(url, headers=world.supervisor.headers)).status_code == 200
    assert (await client.get(url, headers=world.ehr.headers)).status_code == 200
    listed = (await client.get("/v1/groups", headers=world.clinician2.headers)).json()
    assert group["id"] not in [g["id"] for g in listed["data"]]
    read = await client.get(url, headers=world.clinician.headers)
    assert (await client.patch(url, json={"name": "Wednesday"}, headers=world.clinician.headers)).status_code == 428
    stale = {**world.clinician.headers, "If-Match": '"999"'}
    assert (await client.patch(url, json={"name": "Wednesday"}, headers=stale)).status_code == 412
    fresh = {**world.clinician.headers, "If-Match": read.headers["etag"]}
    changed = await client.patch(url, json={"name": "Wednesday", "facilitator_ids": [world.clinician.id, world.clinician2.id]},
                                 headers=fresh)
    assert changed.status_code == 200, changed.text
    assert (await client.get(url, headers=world.clinician2.headers)).status_code == 200  # now a facilitator
    [member] = await _members(client, world, group, 1)
    fresh = {**world.clinician.headers, "If-Match": changed.headers["etag"]}
    fresh["If-Match"] = (await client.get(url, headers=world.clinician.headers)).headers["etag"]
    lead = {"planned_sessions": 12, "facilitator_ids": [world.clinician2.id, world.clinician.id]}
    assert (await client.patch(url, json=lead, headers=fresh)).status_code == 200
    course = (await client.get(f"/v1/courses/{member['course_id']}", headers=world.clinician2.headers)).json()
    assert (course["planned_sessions"], course["therapist_id"]) == (12, world.clinician2.id)  # the course follows


async def test_group_webhook_events_carry_ids_only(app, client, world):
    group = await _group(client, world)
    [member] = await _members(client, world, group, 1)
    url = f"/v1/groups/{group['id']}"
    await _post(client, world.clinician, f"{url}/members/{member['id']}/pre-group-meetings", {"held_on": _day(0)})
    await _post(client, world.clinician, f"{url}/sessions",
                {"held_on": _day(1), "attendance": [{"member_id": member["id"], "attendance": "attended"}]})
    assert (await client.delete(f"{url}/members/{member['id']}", params={"reason": "other"},
                                headers=world.clinician.headers)).status_code == 200
    async with app.state.engine.connect() as db:
        rows = (await db.execute(sa.text("SELECT type, data FROM outbox_event WHERE organization_id = :o AND type LIKE 'group.%'"),
                                 {"o": world.org_id})).all()
    types = sorted(r[0] for r in rows)
    assert types == ["group.member_joined", "group.member_left", "group.session_recorded"]
    assert "Tuesday" not in str(rows) and "Test Patient" not in str(rows)


async def test_recording_a_group_session_runs_the_same_statements_for_two_members_as_for_ten(app, client):
    counts = {}
    for size in (2, 10):
        world = await make_world(app)
        group = await _group(client, world, capacity=12)
        members = await _members(client, world, group, size)
        url = f"/v1/groups/{group['id']}"
        for member in members:
            await _post(client, world.clinician, f"{url}/members/{member['id']}/pre-group-meetings", {"held_on": _day(0)})
        body = {"held_on": _day(1), "attendance": [{"member_id": m["id"], "attendance": "attended"} for m in members]}
        async with recording(app) as sent:
            await _post(client, world.clinician, f"{url}/sessions", body)
        counts[size] = len(sent)
    assert counts[2] == counts[10] > 0, counts


async def test_a_members_course_reads_in_fhir_with_an_encounter_per_group_session(client, world):
    from tests.support.fhir import validate

    group = await _group(client, world)
    [member] = await _members(client, world, group, 1)
    url = f"/v1/groups/{group['id']}"
    await _post(client, world.clinician, f"{url}/members/{member['id']}/pre-group-meetings", {"held_on": _day(0)})
    for number, attendance in ((1, "attended"), (2, "missed")):
        await _post(client, world.clinician, f"{url}/sessions",
                    {"held_on": _day(number), "attendance": [{"member_id": member["id"], "attendance": attendance}]})
    bundle = await client.get(f"/fhir/r4/EpisodeOfCare/{member['course_id']}/$everything", headers=world.clinician.headers)
    assert bundle.status_code == 200, bundle.text
    validate(bundle.json())
    episode, *rest = [e["resource"] for e in bundle.json()["entry"]]
    assert episode["type"][0]["coding"][0]["code"] == "group-ipt"
    assert sorted(r["status"] for r in rest if r["resourceType"] == "Encounter") == ["cancelled", "finished"]


async def test_group_outcomes_count_the_members_and_rate_them_by_the_course_definitions(client, world):
    from tests.support.measures import phq9

    group = await _group(client, world, facilitator_ids=[world.clinician.id, world.clinician2.id])
    members = await _members(client, world, group, 3)
    url = f"/v1/groups/{group['id']}"
    for member in members:
        await _post(client, world.clinician, f"{url}/members/{member['id']}/pre-group-meetings", {"held_on": _day(0)})
    for member, (first, last) in zip(members[:2], ((20, 4), (20, 15)), strict=True):
        for day, total in ((0, first), (2, last)):
            await _post(client, world.clinician, f"/v1/courses/{member['course_id']}/measures",
                        {"instrument": "phq-9", "administered_on": _day(day), "items": phq9(total)})
    everyone = [{"member_id": m["id"], "attendance": "attended"} for m in members]
    await _post(client, world.clinician, f"{url}/sessions", {"held_on": _day(1), "attendance": everyone})
    await client.delete(f"{url}/members/{members[2]['id']}", params={"reason": "patient_withdrew"}, headers=world.clinician.headers)
    await _post(client, world.clinician, f"{url}/sessions", {"held_on": _day(2), "attendance": [
        {"member_id": members[0]["id"], "attendance": "attended"}, {"member_id": members[1]["id"], "attendance": "missed"}]})

    lead = (await client.get(f"{url}/outcomes", headers=world.clinician.headers)).json()
    assert (lead["members"], lead["active"], lead["left"], lead["completers"], lead["sessions_held"]) == (3, 2, 1, 0, 2)
    assert lead["attendance_rate"] == 0.8  # 4 of the 5 member-sessions recorded
    [phq] = lead["instruments"]
    assert (phq["instrument"], phq["members_measured"], phq["response_rate"], phq["remission_rate"]) == ("phq-9", 2, 0.5, 0.5)
    assert [m["member_id"] for m in lead["per_member"]] == [m["id"] for m in members]
    assert [o["response"] for o in lead["per_member"][0]["outcomes"]] == [True]
    # The co-facilitator reads the members' courses while they are in the group; the one who left is a pseudonym.
    second = (await client.get(f"{url}/outcomes", headers=world.clinician2.headers))
    assert second.status_code == 200, second.text
    seen = second.json()["per_member"]
    assert [m.get("member_id") for m in seen[:2]] == [members[0]["id"], members[1]["id"]]
    assert seen[2]["member"].startswith("m_") and "member_id" not in seen[2]
    assert members[2]["id"] not in second.text and members[2]["patient_id"] not in second.text
    for member, expected in ((members[0], 200), (members[2], 404)):
        read = await client.get(f"/v1/courses/{member['course_id']}", headers=world.clinician2.headers)
        assert read.status_code == expected
        assert (await client.get(f"/v1/patients/{member['patient_id']}", headers=world.clinician2.headers)).status_code == expected
    assert (await client.get(f"{url}/outcomes", headers=world.clinician2.headers)).json()["per_member"][2]["member"] == \
        seen[2]["member"]  # stable


async def test_a_group_reads_as_a_fhir_group_and_exports_its_members(app, client, world):
    from tests.fhir.test_fhir_bulk import download, finished, kick_off
    from tests.support.fhir import validate

    group = await _group(client, world)
    members = await _members(client, world, group, 2)
    other = await create_patient(client, world.clinician)  # in the caseload, not in the group
    url = f"/v1/groups/{group['id']}"
    await client.delete(f"{url}/members/{members[1]['id']}", params={"reason": "other"}, headers=world.clinician.headers)
    read = await client.get(f"/fhir/r4/Group/{group['id']}", headers=world.clinician.headers)
    assert read.status_code == 200, read.text
    validate(read.json())
    resource = read.json()
    assert (resource["type"], resource["actual"], resource["quantity"]) == ("person", True, 1)
    assert [(m["entity"]["reference"], m["inactive"]) for m in resource["member"]] == [
        (f"Patient/{members[0]['patient_id']}", False), (f"Patient/{members[1]['patient_id']}", True)]
    assert "name" not in resource and "Tuesday" not in read.text
    assert (await client.get(f"/fhir/r4/Group/{group['id']}", headers=world.clinician2.headers)).status_code == 404
    manifest = await finished(app, client, world.ehr, await kick_off(client, world.ehr, f"/fhir/r4/Group/{group['id']}/$export"))
    exported = await download(client, world.ehr, manifest)
    assert sorted(p["id"] for p in exported["Patient"]) == sorted(m["patient_id"] for m in members)
    assert other["id"] not in {p["id"] for p in exported["Patient"]}
    assert sorted(e["id"] for e in exported["EpisodeOfCare"]) == sorted(m["course_id"] for m in members)


async def test_the_research_export_gives_a_members_rows_the_groups_pseudonym(client, world):
    from tests.support.measures import phq9
    from tests.support.research import export, ndjson_rows, sign_data_use_agreement

    group = await _group(client, world)
    members = await _members(client, world, group, 2)
    solo = await create_patient(client, world.clinician)
    solo_course = await _post(client, world.clinician, "/v1/courses", {"patient_id": solo["id"], "protocol": "ipt",
                                                                       "started_on": _day(0)})
    for course_id in [m["course_id"] for m in members] + [solo_course["id"]]:
        await _post(client, world.clinician, f"/v1/courses/{course_id}/measures",
                    {"instrument": "phq-9", "administered_on": date.today().isoformat(), "items": phq9(10)})
    await sign_data_use_agreement(client, world)
    for dataset in ("measures", "courses"):
        rows = ndjson_rows(await export(client, world.researcher, dataset))
        groups = [r["group"] for r in rows]
        named = [g for g in groups if g is not None]
        assert len(named) == 2 and len(set(named)) == 1 and named[0].startswith("g_")  # one cluster, pseudonymous
        assert group["id"] not in str(rows) and None in groups
        assert {r["protocol"] for r in rows} == {"group-ipt", "ipt"}


async def test_a_retried_group_session_with_its_idempotency_key_is_recorded_once_and_audited(app, client, world):
    group = await _group(client, world)
    [member] = await _members(client, world, group, 1)
    url = f"/v1/groups/{group['id']}"
    await _post(client, world.clinician, f"{url}/members/{member['id']}/pre-group-meetings", {"held_on": _day(0)})
    body = {"held_on": _day(1), "attendance": [{"member_id": member["id"], "attendance": "attended"}]}
    headers = {**world.clinician.headers, "Idempotency-Key": "group-session-1"}
    first = await client.post(f"{url}/sessions", json=body, headers=headers)
    again = await client.post(f"{url}/sessions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json() and again.headers.get("idempotent-replayed") == "true"
    assert len((await client.get(f"{url}/sessions", headers=world.clinician.headers)).json()) == 1
    other = await client.post(f"{url}/sessions", json={**body, "held_on": _day(2)}, headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    async with app.state.engine.connect() as db:
        event = (await db.execute(sa.text("SELECT action, resource_type, resource_id, actor_id, outcome FROM audit_event "
                                          "WHERE request_id = :r"), {"r": first.headers["x-request-id"]})).one()
    assert tuple(event) == ("create", "group", group["id"], world.clinician.id, 201)
