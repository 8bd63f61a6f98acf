"""GET /v1/audit-events: audit:read only, the caller's organization only, with its filters and pages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.support.world import create_patient


async def _all_events(client, admin, query: str = "") -> list[dict]:
    """Every page of the list (limit 2 per page, so paging is exercised)."""
    events, cursor = [], None
    while True:
        url = f"/v1/audit-events?limit=2{query}" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(url, headers=admin.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= 2
        events += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return events


async def test_admin_lists_own_organizations_events_with_filters_and_pages(client, world, other_world):
    patient = await create_patient(client, world.clinician)
    for _ in range(2):
        assert (await client.get(f"/v1/patients/{patient['id']}", headers=world.clinician.headers)).status_code == 200
    assert (await client.get("/v1/patients", headers=world.supervisor.headers)).status_code == 200
    assert (await client.get("/v1/patients", headers=world.researcher.headers)).status_code == 403
    foreign = await create_patient(client, other_world.clinician)
    assert (await client.get(f"/v1/patients/{foreign['id']}", headers=other_world.clinician.headers)).status_code == 200

    events = await _all_events(client, world.admin)
    assert {e["organization_id"] for e in events} == {world.org_id}
    assert foreign["id"] not in {e["patient_id"] for e in events}
    assert other_world.clinician.id not in {e["actor_id"] for e in events}
    assert len({e["id"] for e in events}) == len(events)  # pages neither repeat nor skip
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    expected_fields = {"id", "at", "actor_type", "actor_id", "organization_id", "action", "resource_type", "resource_id",
                       "patient_id", "request_id", "ip", "user_agent", "outcome", "hash", "prev_hash"}
    assert expected_fields <= set(events[0])

    by_patient = await _all_events(client, world.admin, f"&patient_id={patient['id']}")
    assert [(e["action"], e["outcome"]) for e in by_patient] == [("create", 201), ("read", 200), ("read", 200)]
    assert {e["actor_id"] for e in by_patient} == {world.clinician.id}

    by_actor = await _all_events(client, world.admin, f"&actor_id={world.supervisor.id}")
    assert len(by_actor) == 1 and by_actor[0]["resource_type"] == "patient"

    denied = await _all_events(client, world.admin, "&action=denied")
    assert [(e["actor_id"], e["outcome"]) for e in denied] == [(world.researcher.id, 403)]
    reads = await _all_events(client, world.admin, f"&action=read&actor_id={world.clinician.id}")
    assert len(reads) == 2

    foreign_filter = await _all_events(client, world.admin, f"&actor_id={other_world.clinician.id}")
    assert foreign_filter == []


async def test_since_and_until_bound_the_events_by_time(client, world):
    assert (await client.get("/v1/patients", headers=world.clinician.headers)).status_code == 200
    await asyncio.sleep(0.05)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.05)
    assert (await client.get("/v1/patients", headers=world.supervisor.headers)).status_code == 200

    def stamp(moment: datetime) -> str:
        return moment.isoformat().replace("+00:00", "Z")

    async def actors(query: str) -> list[str]:
        # The admin's own listing requests are audited too; leave them out.
        events = await _all_events(client, world.admin, query + "&action=read")
        return [e["actor_id"] for e in events if e["actor_id"] != world.admin.id]

    assert await actors(f"&until={stamp(middle)}") == [world.clinician.id]
    assert await actors(f"&since={stamp(middle)}") == [world.supervisor.id]
    # An offset other than Z names the same instant.
    shifted = middle.astimezone(UTC).replace(tzinfo=None) + timedelta(hours=2)
    assert await actors(f"&since={shifted.isoformat()}%2B02:00") == [world.supervisor.id]
    assert await actors(f"&since={stamp(middle - timedelta(hours=1))}&until={stamp(middle)}") == [world.clinician.id]
    future = await _all_events(client, world.admin, f"&since={stamp(datetime.now(UTC) + timedelta(hours=1))}")
    assert future == []


async def test_audit_events_need_audit_read(client, world):
    for actor in (world.clinician, world.supervisor, world.researcher, world.ehr):
        response = await client.get("/v1/audit-events", headers=actor.headers)
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "forbidden"
    assert (await client.get("/v1/audit-events")).status_code == 401


async def test_audit_events_cannot_be_changed_through_the_api(client, world):
    assert (await client.get("/v1/patients", headers=world.clinician.headers)).status_code == 200
    events = (await client.get("/v1/audit-events?limit=1", headers=world.admin.headers)).json()["data"]
    assert events
    event_id = events[0]["id"]
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        url = "/v1/audit-events" if method == "POST" else f"/v1/audit-events/{event_id}"
        response = await client.request(method, url, json={}, headers=world.admin.headers)
        assert response.status_code in (404, 405), (method, response.status_code)
