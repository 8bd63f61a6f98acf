"""The FHIR operations are documented like the /v1 ones (bearer, errors), with OperationOutcome as their error
body: tests/test_openapi.py checks /v1 operations for problem+json, which the FHIR view does not send."""

from __future__ import annotations

import json

import pytest

from app.main import create_app

OUTCOME = "#/components/schemas/FhirOperationOutcome"


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(json.dumps(create_app().openapi(), sort_keys=True))


def test_every_fhir_operation_needs_the_bearer_token_and_documents_its_outcomes(document):
    operations = [(path, method, op) for path, item in document["paths"].items() if path.startswith("/fhir/")
                  for method, op in item.items()]
    served = [m for route in create_app().routes if getattr(route, "path", "").startswith("/fhir/")
              and "/.well-known/" not in route.path for m in route.methods]  # SMART discovery: in the contract at /
    # every FHIR route is in the contract: reads of all 9 types, $everything, metadata, the Questionnaire search and
    # the QuestionnaireResponse create
    assert len(operations) == len(served) >= 13
    metadata = document["paths"]["/fhir/r4/metadata"]["get"]
    assert "security" not in metadata and "application/fhir+json" in metadata["responses"]["200"]["content"]
    for path, method, operation in operations:
        if path == "/fhir/r4/metadata":  # read before any token is had, as FHIR clients do
            continue
        assert operation["security"] == [{"HTTPBearer": []}], path
        assert operation["operationId"].startswith("fhir-")
        success = "201" if method == "post" else "202" if "$export" in path or method == "delete" else "200"
        bulk_job = path.startswith("/fhir/r4/bulk/")  # a manifest (application/json), a file (NDJSON), a cancel
        assert bulk_job or "application/fhir+json" in operation["responses"][success]["content"], path
        searched = method == "get" and "{" not in path  # a search finds nothing rather than nothing found
        for status in ("401", "422") if searched else ("401", "404", "422"):
            content = operation["responses"][status]["content"]
            assert list(content) == ["application/fhir+json"], f"{path} {status}"
            assert content["application/fhir+json"]["schema"]["$ref"] == OUTCOME
