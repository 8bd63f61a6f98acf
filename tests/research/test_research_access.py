"""Who reaches the export, the data-use agreement gate, tenancy, and the audit trail an export leaves."""

from __future__ import annotations

import sqlalchemy as sa

from tests.support.clinic import open_course
from tests.support.measures import gad7, record
from tests.support.research import export, ndjson_rows, sign_data_use_agreement


async def _events(app, request_id: str) -> list[dict]:
    async with app.state.engine.connect() as db:
        rows = await db.execute(sa.text("SELECT * FROM audit_event WHERE request_id = :r ORDER BY at, id"), {"r": request_id})
        return [dict(r) for r in rows.mappings().all()]


def _details(event: dict) -> dict:
    import json

    details = event["details"]
    return json.loads(details) if isinstance(details, str) else details


async def test_limited_needs_a_data_use_agreement_then_works_until_it_is_withdrawn(client, world):
    course = await open_course(client, world.clinician)
    await record(client, world.clinician, course, "gad-7", gad7(9))
    for dataset in ("measures", "courses"):
        refused = await export(client, world.researcher, dataset, expect=403, profile="limited")
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "data_use_agreement_required"
        assert "x-export-profile" not in refused.headers
        await export(client, world.researcher, dataset)  # safe_harbor needs no agreement
    await sign_data_use_agreement(client, world)
    response = await export(client, world.researcher, "measures", profile="limited")
    assert response.headers["x-export-profile"] == "limited"
    assert [r["day"] for r in ndjson_rows(response)] == [0]
    await sign_data_use_agreement(client, world, value=False)
    assert (await export(client, world.researcher, "courses", expect=403, profile="limited")).json()["code"] == (
        "data_use_agreement_required")


async def test_only_research_export_reaches_the_export_and_researchers_reach_nothing_identified(client, world):
    for path in ("/v1/research/measures", "/v1/research/courses", "/v1/research/dictionary"):
        for actor in (world.clinician, world.supervisor, world.admin, world.ehr):
            response = await client.get(path, headers=actor.headers)
            assert response.status_code == 403, (path, response.text)
            assert response.json()["code"] == "forbidden"
        assert (await client.get(path)).status_code == 401
        assert (await client.get(path, headers=world.researcher.headers)).status_code == 200
    course = await open_course(client, world.clinician)
    for path in ("/v1/patients", "/v1/courses", f"/v1/courses/{course['id']}", f"/v1/patients/{course['patient_id']}",
                 f"/v1/courses/{course['id']}/measures", f"/v1/courses/{course['id']}/outcomes", "/v1/organization",
                 "/v1/audit-events"):
        response = await client.get(path, headers=world.researcher.headers)
        assert response.status_code == 403, (path, response.text)


async def test_an_export_reaches_only_its_own_organization(client, world, other_world):
    mine = await open_course(client, world.clinician)
    await record(client, world.clinician, mine, "gad-7", gad7(9))
    theirs = await open_course(client, other_world.clinician)
    await record(client, other_world.clinician, theirs, "gad-7", gad7(9))
    await record(client, other_world.clinician, theirs, "gad-7", gad7(4), on=theirs["started_on"])
    for dataset, expected in (("measures", (1, 2)), ("courses", (1, 1))):
        own = ndjson_rows(await export(client, world.researcher, dataset))
        other = ndjson_rows(await export(client, other_world.researcher, dataset))
        assert (len(own), len(other)) == expected
        assert not {r["course"] for r in own} & {r["course"] for r in other}
        assert not {r["patient"] for r in own} & {r["patient"] for r in other}


async def test_an_export_is_audited_when_it_starts_and_when_it_ends_with_rows_and_profile(app, client, world):
    course = await open_course(client, world.clinician)
    for total in (12, 9, 5):
        await record(client, world.clinician, course, "gad-7", gad7(total))
    await sign_data_use_agreement(client, world)
    response = await export(client, world.researcher, "measures", format="csv", profile="limited", instrument="gad-7")
    started, finished = await _events(app, response.headers["x-request-id"])
    for event in (started, finished):
        assert (event["action"], event["resource_type"], event["outcome"]) == ("export", "research_measures", 200)
        assert (event["actor_type"], event["actor_id"], event["organization_id"]) == ("user", world.researcher.id, world.org_id)
        assert event["patient_id"] is None and event["ip"] == "127.0.0.1"
    assert _details(started) == {"dataset": "measures", "profile": "limited", "format": "csv",
                                 "filters": {"instrument": "gad-7"}, "stage": "started"}
    assert _details(finished) == {"dataset": "measures", "profile": "limited", "format": "csv",
                                  "filters": {"instrument": "gad-7"}, "stage": "finished", "rows": 3}

    response = await export(client, world.researcher, "courses")
    started, finished = await _events(app, response.headers["x-request-id"])
    assert (_details(finished)["rows"], _details(finished)["profile"], finished["resource_type"]) == (
        1, "safe_harbor", "research_courses")


async def test_a_refused_export_is_audited_as_denied(app, client, world):
    response = await export(client, world.researcher, "courses", expect=403, profile="limited")
    [event] = await _events(app, response.headers["x-request-id"])
    assert (event["action"], event["outcome"], event["actor_id"]) == ("denied", 403, world.researcher.id)
    response = await client.get("/v1/research/measures", headers=world.clinician.headers)
    [event] = await _events(app, response.headers["x-request-id"])
    assert (event["action"], event["outcome"]) == ("denied", 403)


async def test_get_exports_ignore_idempotency_keys_and_are_never_replayed(client, world):
    course = await open_course(client, world.clinician)
    await record(client, world.clinician, course, "gad-7", gad7(9))
    headers = {**world.researcher.headers, "Idempotency-Key": "export-1"}
    first = await client.get("/v1/research/measures", headers=headers)
    await record(client, world.clinician, course, "gad-7", gad7(7))
    second = await client.get("/v1/research/measures", headers=headers)
    assert (len(ndjson_rows(first)), len(ndjson_rows(second))) == (1, 2)
    assert "idempotent-replayed" not in second.headers
