"""The committed OpenAPI document is the contract: it matches the app, and every operation is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.main import create_app

COMMITTED = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"
METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}
PROBLEM_REF = "#/components/schemas/Problem"
UNAUTHENTICATED = {("post", "/v1/auth/token")}


@pytest.fixture(scope="module")
def document() -> dict:
    """The app's OpenAPI document, normalised the way ``ipt openapi`` writes it."""
    return json.loads(json.dumps(create_app().openapi(), sort_keys=True))


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def test_committed_openapi_matches_the_app(document):
    assert COMMITTED.exists(), "openapi/openapi.json is missing: run `make openapi` and commit it"
    committed = json.loads(COMMITTED.read_text())
    assert committed == document, "openapi/openapi.json is out of date with the app: run `make openapi` and commit it"


def test_every_operation_has_a_unique_tag_prefixed_operation_id_and_a_summary(document):
    seen: dict[str, str] = {}
    for method, path, operation in _operations(document):
        where = f"{method.upper()} {path}"
        op_id = operation.get("operationId", "")
        assert re.fullmatch(r"[a-z][a-z0-9_]*-[a-z][a-z0-9_]*", op_id), f"{where}: operationId {op_id!r} is not tag-name"
        assert op_id.split("-")[0] == operation["tags"][0], f"{where}: operationId does not start with its tag"
        assert op_id not in seen, f"{where} and {seen.get(op_id)} share operationId {op_id}"
        seen[op_id] = where
        assert operation.get("summary", "").strip(), f"{where} has no summary"
        assert operation.get("description", "").strip(), f"{where} has no description (the route's docstring)"


def test_bearer_scheme_is_declared(document):
    schemes = document["components"]["securitySchemes"]
    assert any(s.get("type") == "http" and s.get("scheme") == "bearer" for s in schemes.values())


def _bearer_names(document: dict) -> set[str]:
    schemes = document["components"]["securitySchemes"]
    return {name for name, s in schemes.items() if s.get("type") == "http" and s.get("scheme") == "bearer"}


def test_every_v1_operation_requires_the_bearer_token_and_documents_its_problems(document):
    bearer = _bearer_names(document)
    checked = 0
    for method, path, operation in _operations(document):
        if not path.startswith("/v1/") or (method, path) in UNAUTHENTICATED:
            continue
        checked += 1
        where = f"{method.upper()} {path}"
        declared = {name for requirement in operation.get("security", []) for name in requirement}
        assert declared & bearer, f"{where} does not declare the bearer security scheme"
        expected = {"401", "422"} | ({"404"} if "{" in path else set())
        responses = operation["responses"]
        for status in sorted(expected):
            assert status in responses, f"{where} does not list a {status} response"
            content = responses[status].get("content", {})
            assert content.get("application/problem+json", {}).get("schema", {}).get("$ref") == PROBLEM_REF, (
                f"{where} {status} is not documented as application/problem+json Problem"
            )
    assert checked > 0


def test_problem_responses_are_not_documented_as_plain_json(document):
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            content = response.get("content", {})
            if "application/problem+json" in content:
                assert "application/json" not in content, f"{method.upper()} {path} {status} lists two media types"


def test_json_success_responses_document_their_body_not_a_bare_string(document):
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                media = response.get("content", {}).get("application/json", {})
                assert media.get("schema") != {"type": "string"}, f"{method.upper()} {path} {status}"


def test_patient_operations_name_their_models(document):
    patients = document["paths"]["/v1/patients"]
    one = document["paths"]["/v1/patients/{patient_id}"]
    ref = lambda op, status: op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
    assert ref(patients["post"], "201").endswith("/PatientPublic")
    assert ref(patients["get"], "200").endswith("/ListOf_PatientPublic_")
    assert ref(one["get"], "200").endswith("/PatientPublic")
    assert ref(one["patch"], "200").endswith("/PatientPublic")
    for status in ("409", "412", "428"):
        assert status in one["patch"]["responses"]
    assert "409" in patients["post"]["responses"]
