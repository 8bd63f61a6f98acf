"""A posted QuestionnaireResponse read against its Questionnaire: the course it names, then the measure input.

Pure: JSON in, either the input of POST /v1/courses/{id}/measures or an ``Unprocessable`` whose errors each
carry a FHIRPath ``expression`` naming the element (an item by its linkId). Messages are fixed text: nothing
the caller wrote (an answer's string, an item's text) is ever copied into an error, only linkIds that look
like ids, and an unknown element is named by its position instead.

R4's QuestionnaireResponse has no element for an EpisodeOfCare (basedOn is CarePlan|ServiceRequest, partOf
Observation|Procedure), so the course is named by the FHIR extensions pack's ``workflow-episodeOfCare``
extension, the one FHIR defines for "the episode of care that establishes the context" of an event; the
emitted QuestionnaireResponses carry it too (mapping.questionnaire_response), so what is read can be posted.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from app import instruments
from app.core.errors import Unprocessable
from app.fhir import mapping
from app.fhir import questionnaire as q

EPISODE_OF_CARE = mapping.EPISODE_OF_CARE
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # a FHIR id
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(T[0-9:.]+(Z|[+-]\d{2}:\d{2}))?$")  # R4 dateTime to the day or second
_EXTENSION = f"QuestionnaireResponse.extension('{EPISODE_OF_CARE}')"


class Issues:
    """The problems found so far; ``raise_if_any`` refuses with all of them at once."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    def add(self, expression: str, message: str, issue: str = "invalid") -> None:
        self.errors.append({"loc": [expression], "message": message, "expression": [expression], "issue": issue})

    def raise_if_any(self) -> None:
        if self.errors:
            raise Unprocessable(self.errors[0]["message"], errors=self.errors)


def refuse(expression: str, message: str, issue: str = "invalid") -> Unprocessable:
    """One problem as the error to raise."""
    issues = Issues()
    issues.add(expression, message, issue)
    return Unprocessable(message, errors=issues.errors)


def _reference_id(value: Any, resource_type: str) -> str | None:
    """The id of a relative reference ``{resource_type}/{id}``, None for anything else."""
    reference = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(reference, str) or not reference.startswith(resource_type + "/"):
        return None
    found = reference.removeprefix(resource_type + "/")
    return found if _ID.match(found) else None


def course_id(resource: Any) -> str:
    """The course a QuestionnaireResponse names: it must be one, with one workflow-episodeOfCare extension."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "QuestionnaireResponse":
        raise refuse("resourceType", "The body must be a QuestionnaireResponse resource.", "structure")
    extensions = resource.get("extension") or []
    named = [e for e in extensions if isinstance(e, dict) and e.get("url") == EPISODE_OF_CARE] \
        if isinstance(extensions, list) else []
    found = _reference_id(named[0].get("valueReference"), "EpisodeOfCare") if len(named) == 1 else None
    if found is None:
        raise refuse(_EXTENSION, "Name the course with one workflow-episodeOfCare extension whose valueReference is "
                                 "EpisodeOfCare/<course id>.", "required")
    return found


def _item_expression(link_id: Any, index: int) -> str:
    if isinstance(link_id, str) and _ID.match(link_id):
        return f"QuestionnaireResponse.item.where(linkId='{link_id}')"
    return f"QuestionnaireResponse.item[{index}]"


def _answers(resource: dict[str, Any], definition: dict[str, Any], issues: Issues) -> dict[str, int]:
    """Each item's one whole-number answer by linkId, checked against the Questionnaire's items."""
    items = {item["linkId"]: item for item in definition["item"]}
    given = resource.get("item")
    if not isinstance(given, list):
        issues.add("QuestionnaireResponse.item", "The response needs its items, one per question.", "required")
        return {}
    answers: dict[str, int] = {}
    seen: set[str] = set()
    for index, item in enumerate(given):
        link_id = item.get("linkId") if isinstance(item, dict) else None
        where = _item_expression(link_id, index)
        if not isinstance(link_id, str) or link_id not in items:  # (a list or an object is no linkId, nor hashable)
            issues.add(where, "No item of the Questionnaire has this linkId.", "structure")
            continue
        if link_id in seen:
            issues.add(where, "This item is answered more than once.", "structure")
            continue
        seen.add(link_id)
        if item.get("item"):
            issues.add(where, "The Questionnaire's items have no nested items.", "structure")
            continue
        answer = item.get("answer")
        value = answer[0].get("valueInteger") if isinstance(answer, list) and len(answer) == 1 \
            and isinstance(answer[0], dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or len(answer[0]) != 1:
            issues.add(where, "Answer this item with exactly one answer holding a valueInteger.", "value")
            continue
        low, high = _range(items[link_id])
        if not low <= value <= high:
            issues.add(where, f"The answer must be a whole number from {low} to {high}.", "value")
            continue
        answers[link_id] = value
    for link_id in items:
        if link_id not in seen:  # an item answered wrongly has its own issue already
            issues.add(_item_expression(link_id, 0), "This item is required.", "required")
    return answers


def _range(item: dict[str, Any]) -> tuple[int, int]:
    if "answerOption" in item:
        values = [o["valueInteger"] for o in item["answerOption"]]
        return min(values), max(values)
    bounds = {e["url"]: e["valueInteger"] for e in item["extension"]}
    return bounds[q.MIN_VALUE], bounds[q.MAX_VALUE]


def _authored(value: Any, issues: Issues) -> date | None:
    """The day the questionnaire was answered: R4 dateTime to the day or later, read as written (its local day)."""
    match = _DATE.match(value) if isinstance(value, str) else None
    if match is None:
        issues.add("QuestionnaireResponse.authored", "authored is required: the date (or dateTime) it was answered.",
                   "required")
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        issues.add("QuestionnaireResponse.authored", "authored is not a real date.", "value")
        return None


def measure_input(resource: dict[str, Any], patient_id: str) -> dict[str, Any]:
    """The measure a QuestionnaireResponse of the course's patient records (POST /v1/courses/{id}/measures' body)."""
    issues = Issues()
    canonical = resource.get("questionnaire")
    instrument_id = q.instrument_of(canonical) if isinstance(canonical, str) else None
    if instrument_id is None:
        issues.add("QuestionnaireResponse.questionnaire", "questionnaire must be the canonical URL of one of the "
                                                          "server's Questionnaires (GET /fhir/r4/Questionnaire).")
    if resource.get("status") != "completed":
        issues.add("QuestionnaireResponse.status", "Only a completed QuestionnaireResponse can be scored.", "value")
    if _reference_id(resource.get("subject"), "Patient") != patient_id:
        issues.add("QuestionnaireResponse.subject", "subject must be Patient/<id> of the course's patient.", "value")
    day = _authored(resource.get("authored"), issues)
    data: dict[str, Any] = {"instrument": instrument_id, "administered_on": day}
    if "encounter" in resource:
        session_id = _reference_id(resource["encounter"], "Encounter")
        if session_id is None:
            issues.add("QuestionnaireResponse.encounter", "encounter must be Encounter/<id> of a session of the course.")
        data["session_id"] = session_id
    if instrument_id is not None:
        answers = _answers(resource, q.QUESTIONNAIRES[instrument_id], issues)
        if instruments.get_instrument(instrument_id).total_only:
            data["total"] = answers.get(q.TOTAL_LINK_ID)
        else:
            data["items"] = [answers.get(str(n)) for n in range(1, instruments.get_instrument(instrument_id).item_count + 1)]
    issues.raise_if_any()
    return data


def expression_of(loc: list[Any], instrument_id: str) -> str:
    """A FHIRPath for a /v1 error location (``["items", 2]``, ``["administered_on"]``), for errors the service raises."""
    field = loc[0] if loc else None
    if field == "items" and len(loc) > 1 and isinstance(loc[1], int):
        return _item_expression(str(loc[1] + 1), 0)
    if field == "total" or (field == "items" and instruments.get_instrument(instrument_id).total_only):
        return _item_expression(q.TOTAL_LINK_ID, 0)
    return {"administered_on": "QuestionnaireResponse.authored", "session_id": "QuestionnaireResponse.encounter",
            "instrument": "QuestionnaireResponse.questionnaire"}.get(field, "QuestionnaireResponse")
