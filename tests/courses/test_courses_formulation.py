"""Formulation (S10), interpersonal inventory and timeline of a course, through the API."""

from __future__ import annotations

import copy

import pytest

from tests.support.clinic import AGREED_FORMULATION, open_course


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


def area(code: str, focal: bool = True, primary: bool = False, **details) -> dict:
    return {"area": code, "focal": focal, "primary": primary, "details": details}


def formulation(*areas: dict, status: str = "draft") -> dict:
    return {"diagnosis": "F32.1", "summary": "Low mood since the dispute.", "status": status,
            "problem_areas": list(areas)}


async def test_formulation_put_creates_then_replaces_only_with_the_current_etag(client, world):
    actor = world.clinician
    course = await open_course(client, actor)
    url = f"/v1/courses/{course['id']}/formulation"
    refused(await client.get(url, headers=actor.headers), 404, "not_found")

    created = await client.put(url, json=AGREED_FORMULATION, headers=actor.headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["ETag"] == f'"{body["version"]}"'
    assert body["status"] == "agreed"
    assert body["agreed_on"] is not None
    goal = body["problem_areas"][0]["goals"][0]
    assert goal["id"] and (goal["text"], goal["status"]) == ("Build support in the new role", "active")
    assert (await client.get(url, headers=actor.headers)).json() == body

    replacement = copy.deepcopy(AGREED_FORMULATION)
    replacement["status"] = "draft"
    replacement["problem_areas"][0]["goals"] = [
        {"id": goal["id"], "text": "Build support in the new role", "status": "achieved"},
        {"text": "Talk to the old team"},
    ]
    refused(await client.put(url, json=replacement, headers=actor.headers), 428, "precondition_required")
    stale = {**actor.headers, "If-Match": f'"{body["version"] + 1}"'}
    refused(await client.put(url, json=replacement, headers=stale), 412, "precondition_failed")
    assert (await client.get(url, headers=actor.headers)).json() == body

    replaced = await client.put(url, json=replacement, headers={**actor.headers, "If-Match": created.headers["ETag"]})
    assert replaced.status_code == 200, replaced.text
    new = replaced.json()
    assert new["version"] == body["version"] + 1 and replaced.headers["ETag"] == f'"{new["version"]}"'
    assert (new["status"], new["agreed_on"]) == ("draft", None)
    goals = new["problem_areas"][0]["goals"]
    assert goals[0] == {"id": goal["id"], "text": "Build support in the new role", "status": "achieved"}
    assert goals[1]["id"] and goals[1]["id"] != goal["id"] and goals[1]["status"] == "active"
    refused(await client.put(url, json=replacement, headers={**actor.headers, "If-Match": created.headers["ETag"]}),
            412, "precondition_failed")


async def test_formulation_holds_at_most_two_focal_areas_with_one_primary(client, world):
    actor = world.clinician
    course = await open_course(client, actor)
    url = f"/v1/courses/{course['id']}/formulation"
    three_focal = formulation(area("grief", primary=True), area("role_dispute"), area("role_transition"))
    refused(await client.put(url, json=three_focal, headers=actor.headers), 422, "too_many_focal_areas", "S10",
            limit=2, current=3)
    two_primaries = formulation(area("grief", primary=True), area("role_dispute", primary=True))
    refused(await client.put(url, json=two_primaries, headers=actor.headers), 422, "too_many_focal_areas", "S10",
            limit=1, current=2)
    refused(await client.get(url, headers=actor.headers), 404, "not_found")

    two_focal_one_aside = formulation(
        area("grief", primary=True), area("role_dispute"), area("interpersonal_deficits", focal=False), status="agreed")
    written = await client.put(url, json=two_focal_one_aside, headers=actor.headers)
    assert written.status_code == 201, written.text
    assert [(a["area"], a["focal"], a["primary"]) for a in written.json()["problem_areas"]] == [
        ("grief", True, True), ("role_dispute", True, False), ("interpersonal_deficits", False, False)]


@pytest.mark.parametrize(
    "areas",
    [
        [area("loneliness", primary=True)],
        [area("grief", primary=True), area("grief")],
        [area("grief", focal=False, primary=True)],
        [area("role_dispute", primary=True, stage="ceasefire")],
        [area("role_dispute", primary=True, stage="impasse", partner_name="Jo")],
        [area("grief", primary=True, stage="impasse")],
        [area("interpersonal_deficits", primary=True, old_role="worker")],
    ],
    ids=["unknown_area", "same_area_twice", "primary_not_focal", "unknown_stage", "unknown_detail",
         "detail_of_another_area", "details_on_deficits"],
)
async def test_formulation_with_an_invalid_problem_area_is_a_validation_error(client, world, areas):
    actor = world.clinician
    course = await open_course(client, actor)
    url = f"/v1/courses/{course['id']}/formulation"
    refused(await client.put(url, json=formulation(*areas), headers=actor.headers), 422, "validation_error")
    refused(await client.get(url, headers=actor.headers), 404, "not_found")


@pytest.mark.parametrize("stage", ["renegotiation", "impasse", "dissolution"])
async def test_role_dispute_accepts_each_stage_and_the_details_of_its_area(client, world, stage):
    actor = world.clinician
    course = await open_course(client, actor)
    body = formulation(area("role_dispute", primary=True, with_whom="partner", stage=stage),
                       area("grief", deceased_relationship="father", died_on="2026-01-05"))
    written = await client.put(f"/v1/courses/{course['id']}/formulation", json=body, headers=actor.headers)
    assert written.status_code == 201, written.text
    assert [a["details"] for a in written.json()["problem_areas"]] == [
        {"with_whom": "partner", "stage": stage}, {"deceased_relationship": "father", "died_on": "2026-01-05"}]


async def test_inventory_relationships_are_created_read_changed_and_deleted(client, world):
    actor = world.clinician
    course = await open_course(client, actor)
    url = f"/v1/courses/{course['id']}/inventory"
    for ring in (0, 4):
        bad = {"label": "Partner", "relationship": "partner", "ring": ring}
        body = refused(await client.post(url, json=bad, headers=actor.headers), 422, "validation_error")
        assert [e["loc"] for e in body["errors"]] == [["ring"]]
    made = []
    for ring, relationship in ((1, "partner"), (3, "colleague")):
        response = await client.post(url, json={"label": f"R{ring}", "relationship": relationship, "ring": ring,
                                                "linked_problem_area": "role_dispute"}, headers=actor.headers)
        assert response.status_code == 201, response.text
        assert response.headers["ETag"] == f'"{response.json()["version"]}"'
        made.append(response.json())
    assert (await client.get(url, headers=actor.headers)).json()["data"] == made

    item = f"{url}/{made[0]['id']}"
    assert (await client.get(item, headers=actor.headers)).json() == made[0]
    matching = {**actor.headers, "If-Match": f'"{made[0]["version"]}"'}
    for ring in (0, 4):
        refused(await client.patch(item, json={"ring": ring}, headers=matching), 422, "validation_error")
    refused(await client.patch(item, json={"ring": 2}, headers=actor.headers), 428, "precondition_required")
    changed = await client.patch(item, json={"ring": 2, "difficulties": "argues about money"}, headers=matching)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["ring"], changed.json()["version"]) == (2, made[0]["version"] + 1)
    refused(await client.patch(item, json={"ring": 3}, headers=matching), 412, "precondition_failed")
    refused(await client.delete(item, headers=actor.headers), 428, "precondition_required")
    refused(await client.delete(item, headers=matching), 412, "precondition_failed")
    gone = await client.delete(item, headers={**actor.headers, "If-Match": changed.headers["ETag"]})
    assert gone.status_code == 204
    refused(await client.get(item, headers=actor.headers), 404, "not_found")
    assert [r["id"] for r in (await client.get(url, headers=actor.headers)).json()["data"]] == [made[1]["id"]]


async def test_timeline_events_are_recorded_and_listed_in_order(client, world):
    actor = world.clinician
    course = await open_course(client, actor)
    url = f"/v1/courses/{course['id']}/timeline"
    events = [{"occurred_on": "2025-03-01", "event": "Lost job", "mood_change": "much_worse"},
              {"occurred_on": "2024-06-01", "event": "Moved in with partner", "mood_change": "better"}]
    made = []
    for event in events:
        response = await client.post(url, json=event, headers=actor.headers)
        assert response.status_code == 201, response.text
        assert {k: response.json()[k] for k in event} == event
        made.append(response.json())
    bad_mood = await client.post(url, json={**events[0], "mood_change": "meh"}, headers=actor.headers)
    refused(bad_mood, 422, "validation_error")
    listed = (await client.get(url, headers=actor.headers)).json()["data"]
    assert listed == made
