"""Schemathesis hooks for tests/test_schemathesis.py (loaded by the schemathesis process via its config)."""

from __future__ import annotations

import schemathesis


@schemathesis.hook
def map_case(context, case):
    """Drop a drawn ``cursor`` from positive cases: a cursor is an opaque token the server signed for one
    list, so a drawn one is refused (422 ``invalid_cursor``) however well formed. Real cursors are followed
    through the lists' links in the stateful phase; negative cases keep theirs."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    if case.query and "cursor" in case.query:
        case.query = {name: value for name, value in case.query.items() if name != "cursor"}
    _order_years(case.query)
    _plausible_birth_date(case.body)
    _no_drawn_key_sets(case)
    _no_drawn_facilitators(case)
    return case


def _no_drawn_facilitators(case):
    """A group's facilitators must be active clinicians of the organization (G7, a documented 422): positive cases
    leave them out, so the caller facilitates; tests/groups cover named facilitators."""
    if case.path in ("/v1/groups", "/v1/groups/{group_id}") and isinstance(case.body, dict):
        case.body.pop("facilitator_ids", None)


def _no_drawn_key_sets(case):
    """An integration's ``jwks`` must hold real public keys (a drawn modulus does not parse) and its ``jwks_url``
    must resolve to a public address, and not both may be given: documented 422s no schema can state. Positive
    cases register with a secret; tests/identity/test_identity_smart*.py cover key sets with real keys."""
    if case.path in ("/v1/integrations", "/v1/integrations/{integration_id}") and isinstance(case.body, dict):
        case.body.pop("jwks", None)
        case.body.pop("jwks_url", None)


def _order_years(query):
    """``started_year_from`` after ``started_year_to`` is a documented 422 (a cross-field rule JSON Schema
    cannot state), so positive cases keep the range in order."""
    if not query or "started_year_from" not in query or "started_year_to" not in query:
        return
    try:
        reversed_range = int(query["started_year_from"]) > int(query["started_year_to"])
    except (TypeError, ValueError):
        return
    if reversed_range:
        query["started_year_from"], query["started_year_to"] = query["started_year_to"], query["started_year_from"]


def _plausible_birth_date(body):
    """A future birth date, or one before 1890, is a documented 422 ("a past date after 1890") that the
    date format cannot state, so positive cases carry a plausible one."""
    if isinstance(body, dict) and isinstance(body.get("birth_date"), str):
        year = body["birth_date"][:4]
        if not year.isdigit() or not 1890 <= int(year) <= 2020:
            body["birth_date"] = "1980-01-01"

