"""GET /fhir/r4/metadata: the FHIR view's CapabilityStatement, valid R4, readable without a token, and true to
the routes the view serves."""

from __future__ import annotations

import sqlalchemy as sa

from tests.support.fhir import FHIR_JSON, validate


async def _audit_rows(app) -> int:
    async with app.state.engine.connect() as db:
        return (await db.execute(sa.text("SELECT count(*) FROM audit_event"))).scalar_one()


async def test_the_capability_statement_is_valid_r4_and_needs_no_token(app, client):
    before = await _audit_rows(app)
    response = await client.get("/fhir/r4/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR_JSON)
    statement = response.json()
    validate(statement)
    assert (statement["resourceType"], statement["kind"], statement["fhirVersion"]) == (
        "CapabilityStatement", "instance", "4.0.1")
    assert statement["implementation"]["url"] == str(client.base_url).rstrip("/") + "/fhir/r4"
    [rest] = statement["rest"]
    assert [service["coding"][0]["code"] for service in rest["security"]["service"]] == ["SMART-on-FHIR", "OAuth"]
    [uris] = rest["security"]["extension"]
    assert uris["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    assert uris["extension"] == [{"url": "token", "valueUri": str(client.base_url).rstrip("/") + "/v1/auth/token"}]
    assert await _audit_rows(app) == before  # no data read, nothing to audit


async def test_the_capability_statement_claims_exactly_what_the_view_serves(app, client, world):
    statement = (await client.get("/fhir/r4/metadata")).json()
    claimed = set()
    for resource in statement["rest"][0]["resource"]:
        claimed |= {(resource["type"], i["code"]) for i in resource.get("interaction", [])}
        claimed |= {(resource["type"], f"${o['name']}") for o in resource.get("operation", [])}
    claimed |= {("system", f"${o['name']}") for o in statement["rest"][0].get("operation", [])}
    served = set()
    for route in app.routes:
        path = getattr(route, "path", "")
        parts = path.split("/")[3:]  # /fhir/r4/{type}/...
        if not path.startswith("/fhir/r4/") or parts == ["metadata"] or parts[0] in (".well-known", "bulk"):
            continue  # SMART discovery, and the Bulk Data jobs' status and file URLs (the manifest hands them out)
        for method in route.methods:
            if len(parts) == 1 and parts[0].startswith("$"):
                served.add(("system", parts[0]))
            elif parts[-1].startswith("$"):
                served.add((parts[0], parts[-1]))
            elif method == "GET":
                served.add((parts[0], "read" if len(parts) == 2 else "search-type"))
            elif method == "POST":
                served.add((parts[0], "create"))
    assert claimed == served
    assert {("EpisodeOfCare", "read"), ("EpisodeOfCare", "$everything"), ("CodeSystem", "read"), ("Patient", "read"),
            ("Practitioner", "read"), ("Observation", "read")} <= claimed
    # and the claimed reads answer as claimed: a token is needed, and with one, an unknown id is a 404 outcome
    assert (await client.get("/fhir/r4/CodeSystem/problem-area")).status_code == 401
    unknown = await client.get("/fhir/r4/EpisodeOfCare/00000000-0000-7000-8000-000000000000", headers=world.clinician.headers)
    assert (unknown.status_code, unknown.json()["resourceType"]) == (404, "OperationOutcome")
