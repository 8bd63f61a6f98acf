"""POST /fhir/r4/QuestionnaireResponse records a measure exactly as POST /v1/courses/{id}/measures does (score, risk
flag, audit, webhooks, Idempotency-Key), answers a collection Bundle of what it stored, and refuses what does not
answer its Questionnaire with an OperationOutcome naming the item, never echoing what the caller wrote."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from app.fhir.intake import EPISODE_OF_CARE
from app.fhir.mapping import QUESTIONNAIRE_BASE
from app.webhooks.models import OutboxEvent
from tests.support.clinic import open_course
from tests.support.fhir import FHIR_JSON, validate
from tests.support.measures import day, phq9, record

URL = "/fhir/r4/QuestionnaireResponse"
MARKER = "LEAKMARK-free-text"


def response_of(course: dict, instrument: str, items: list[int] | None = None, *, total: int | None = None,
                on: str | None = None) -> dict[str, Any]:
    """A completed QuestionnaireResponse of the course's patient, as an EHR would post it."""
    answers = [{"linkId": "total", "answer": [{"valueInteger": total}]}] if items is None else [
        {"linkId": str(n), "text": f"{MARKER} question {n}", "answer": [{"valueInteger": v}]}
        for n, v in enumerate(items, start=1)]
    return {
        "resourceType": "QuestionnaireResponse",
        "extension": [{"url": EPISODE_OF_CARE, "valueReference": {"reference": f"EpisodeOfCare/{course['id']}"}}],
        "questionnaire": QUESTIONNAIRE_BASE + instrument,
        "status": "completed",
        "subject": {"reference": f"Patient/{course['patient_id']}"},
        "authored": on or day(course, 1),
        "item": answers,
    }


async def _post(client, actor, body: Any, expect: int = 201, **headers: str):
    content = body if isinstance(body, bytes) else None
    response = await client.post(URL, json=None if content else body, content=content,
                                 headers={**actor.headers, "Content-Type": FHIR_JSON, **headers})
    assert response.status_code == expect, response.text
    assert response.headers["content-type"] == FHIR_JSON
    return response


async def _measures(client, actor, course: dict) -> list[dict]:
    response = await client.get(f"/v1/courses/{course['id']}/measures", headers=actor.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def _rows(app, query: str, **params: Any) -> list[dict]:
    async with app.state.engine.connect() as db:
        return [dict(r) for r in (await db.execute(sa.text(query), params)).mappings().all()]


SCORED = ("instrument", "administered_on", "items", "total", "severity", "risk_items", "risk_flag_open", "session_number",
          "change_from_baseline", "reliable_change")


async def test_a_posted_phq9_is_the_measure_v1_records_with_its_risk_flag_audit_and_webhooks(app, client, world):
    via_v1, via_fhir = [await open_course(client, world.clinician) for _ in range(2)]
    items = phq9(17, item9=2)
    expected = await record(client, world.clinician, via_v1, "phq-9", items, on=day(via_v1, 1))
    response = await _post(client, world.clinician, response_of(via_fhir, "phq-9", items))
    bundle = response.json()
    validate(bundle)
    assert bundle["type"] == "collection"
    stored, observation = (e["resource"] for e in bundle["entry"])
    [measure] = await _measures(client, world.clinician, via_fhir)
    assert {k: measure[k] for k in SCORED} == {k: expected[k] for k in SCORED}
    assert (measure["total"], measure["severity"], measure["risk_items"]) == (17, "moderately_severe", [9])
    # the answer is what the view serves, at the Location given
    assert response.headers["location"] == f"http://testserver/fhir/r4/QuestionnaireResponse/{measure['id']}"
    read = await client.get(response.headers["location"], headers=world.clinician.headers)
    assert read.json() == stored and read.headers["etag"] == response.headers["etag"]
    assert (await client.get(f"/fhir/r4/Observation/{measure['id']}-total", headers=world.clinician.headers)).json() \
        == observation
    assert observation["valueInteger"] == 17 and stored["extension"][0]["valueReference"]["reference"] == \
        f"EpisodeOfCare/{via_fhir['id']}"
    assert MARKER not in response.text  # the items' text is not kept
    course = (await client.get(f"/v1/courses/{via_fhir['id']}", headers=world.clinician.headers)).json()
    assert course["risk_flag_open"] is True
    [event] = await _rows(app, "SELECT * FROM audit_event WHERE request_id = :r", r=response.headers["x-request-id"])
    assert (event["action"], event["outcome"], event["resource_type"], event["resource_id"], event["patient_id"]) == (
        "create", 201, "measure", measure["id"], via_fhir["patient_id"])
    async with app.state.engine.connect() as db:
        announced = (await db.execute(sa.select(OutboxEvent.type, OutboxEvent.data).where(
            OutboxEvent.organization_id == world.org_id, OutboxEvent.type.in_(["measure.recorded", "risk.flagged"]))
            .order_by(OutboxEvent.id))).all()
    mine = [(r.type, r.data["total"] if r.type == "measure.recorded" else r.data["risk_items"]) for r in announced
            if r.data["measure_id"] == measure["id"]]
    assert mine == [("measure.recorded", 17), ("risk.flagged", [9])]


async def test_total_only_and_mean_scored_instruments_and_a_session_link(client, world):
    course = await open_course(client, world.clinician)
    session = (await client.post(f"/v1/courses/{course['id']}/sessions", headers=world.clinician.headers,
                                 json={"held_on": day(course, 2), "attendance": "attended"})).json()
    bdi = response_of(course, "bdi-ii", total=22, on=day(course, 2)) | {"encounter": {"reference": f"Encounter/{session['id']}"}}
    stored = (await _post(client, world.clinician, bdi)).json()["entry"][0]["resource"]
    assert stored["item"] == [{"linkId": "total", "answer": [{"valueInteger": 22}]}]
    assert stored["encounter"] == {"reference": f"Encounter/{session['id']}"}
    mspss = [4, 4, 4, 4, 5, 5, 5, 5, 4, 4, 4, 3]
    observation = (await _post(client, world.ehr, response_of(course, "mspss", mspss))).json()["entry"][1]["resource"]
    assert observation["valueQuantity"]["value"] == 4.25
    measures = await _measures(client, world.clinician, course)
    assert [(m["instrument"], m["total"], m["session_id"], m["session_number"]) for m in measures] == [
        ("bdi-ii", 22, session["id"], 1), ("mspss", 4.25, None, 0)]


async def test_what_the_view_serves_can_be_posted_back(client, world):
    course = await open_course(client, world.clinician)
    first = (await _post(client, world.clinician, response_of(course, "gad-7", [1] * 7))).json()["entry"][0]["resource"]
    again = {k: v for k, v in first.items() if k not in ("id", "meta")}
    second = (await _post(client, world.clinician, again)).json()["entry"][0]["resource"]
    assert second["id"] != first["id"] and second["item"] == first["item"]
    assert len(await _measures(client, world.clinician, course)) == 2


async def test_idempotency_key_replays_once_recorded_and_refuses_another_body(app, client, world):
    course = await open_course(client, world.clinician)
    body, key = response_of(course, "phq-9", phq9(12, item9=1)), f"fhir-{uuid.uuid4().hex}"
    first = await _post(client, world.clinician, body, **{"Idempotency-Key": key})
    again = await _post(client, world.clinician, body, **{"Idempotency-Key": key})
    assert again.headers["idempotent-replayed"] == "true"
    assert (again.json(), again.headers["location"], again.headers["etag"]) == (
        first.json(), first.headers["location"], first.headers["etag"])
    other = await _post(client, world.clinician, response_of(course, "phq-9", phq9(13)), 422, **{"Idempotency-Key": key})
    assert other.json()["issue"][0]["details"]["coding"][0]["code"] == "idempotency_key_reused"
    assert len(await _measures(client, world.clinician, course)) == 1
    flagged = await _rows(app, "SELECT id FROM outbox_event WHERE type = 'risk.flagged' AND organization_id = :o",
                          o=world.org_id)
    assert len(flagged) == 1


def _set_answer(link_id: str, answer: Any) -> Callable[[dict], None]:
    def change(body: dict) -> None:
        next(i for i in body["item"] if i["linkId"] == link_id)["answer"] = answer
    return change


def _drop(link_id: str) -> Callable[[dict], None]:
    return lambda body: body.update(item=[i for i in body["item"] if i["linkId"] != link_id])


FUTURE = (date.today() + timedelta(days=3)).isoformat()
INVALID = {
    "unknown linkId": (lambda b: b["item"].append({"linkId": "10", "answer": [{"valueInteger": 1}]}),
                       "QuestionnaireResponse.item.where(linkId='10')", "structure"),
    "missing required item": (_drop("9"), "QuestionnaireResponse.item.where(linkId='9')", "required"),
    "answer out of range": (_set_answer("3", [{"valueInteger": 4}]), "QuestionnaireResponse.item.where(linkId='3')", "value"),
    "free text for an integer": (_set_answer("2", [{"valueString": f"I feel awful {MARKER}"}]),
                                 "QuestionnaireResponse.item.where(linkId='2')", "value"),
    "a coding for an integer": (_set_answer("2", [{"valueCoding": {"code": "LA6568-5"}}]),
                                "QuestionnaireResponse.item.where(linkId='2')", "value"),
    "two answers": (_set_answer("1", [{"valueInteger": 1}, {"valueInteger": 2}]),
                    "QuestionnaireResponse.item.where(linkId='1')", "value"),
    "a boolean for an integer": (_set_answer("1", [{"valueInteger": True}]),
                                 "QuestionnaireResponse.item.where(linkId='1')", "value"),
    "answered twice": (lambda b: b["item"].append(copy.deepcopy(b["item"][0])),
                       "QuestionnaireResponse.item.where(linkId='1')", "structure"),
    "free text as a linkId": (lambda b: b["item"].append({"linkId": f"my {MARKER}", "answer": [{"valueInteger": 1}]}),
                              "QuestionnaireResponse.item[9]", "structure"),
    "an object as a linkId": (lambda b: b["item"].append({"linkId": {"a": 1}, "answer": [{"valueInteger": 1}]}),
                              "QuestionnaireResponse.item[9]", "structure"),
    "not an item": (lambda b: b["item"].append(["1", 2]), "QuestionnaireResponse.item[9]", "structure"),
    "unknown questionnaire": (lambda b: b.update(questionnaire=QUESTIONNAIRE_BASE + "phq-10"),
                              "QuestionnaireResponse.questionnaire", "invalid"),
    "another version": (lambda b: b.update(questionnaire=QUESTIONNAIRE_BASE + "phq-9|1999"),
                        "QuestionnaireResponse.questionnaire", "invalid"),
    "not completed": (lambda b: b.update(status="in-progress"), "QuestionnaireResponse.status", "value"),
    "another patient": (lambda b: b.update(subject={"reference": "Patient/someone-else"}),
                        "QuestionnaireResponse.subject", "value"),
    "no authored": (lambda b: b.pop("authored"), "QuestionnaireResponse.authored", "required"),
    "a future date": (lambda b: b.update(authored=FUTURE), "QuestionnaireResponse.authored", "value"),
    "no course": (lambda b: b.pop("extension"), f"QuestionnaireResponse.extension('{EPISODE_OF_CARE}')", "required"),
    "not a QuestionnaireResponse": (lambda b: b.update(resourceType="Observation"), "resourceType", "structure"),
    "no items": (lambda b: b.pop("item"), "QuestionnaireResponse.item", "required"),
}


@pytest.mark.parametrize("case", list(INVALID))
async def test_a_response_that_does_not_answer_its_questionnaire_is_an_outcome_naming_the_item(client, world, case):
    change, expression, issue_type = INVALID[case]
    course = await open_course(client, world.clinician)
    body = response_of(course, "phq-9", phq9(12, item9=1))
    change(body)
    response = await _post(client, world.clinician, body, 422)
    outcome = response.json()
    validate(outcome)
    first = outcome["issue"][0]
    assert (first["code"], first["expression"]) == (issue_type, [expression])
    assert all(i["details"]["coding"][0]["code"] == "validation_error" for i in outcome["issue"])
    assert MARKER not in response.text and "awful" not in response.text
    assert await _measures(client, world.clinician, course) == []


async def test_every_wrong_item_is_named_at_once(client, world):
    course = await open_course(client, world.clinician)
    body = response_of(course, "gad-7", [1] * 7)
    body["item"][2]["answer"] = [{"valueInteger": 9}]
    body["item"].pop()
    outcome = (await _post(client, world.clinician, body, 422)).json()
    assert [i["expression"][0] for i in outcome["issue"]] == [
        "QuestionnaireResponse.item.where(linkId='3')", "QuestionnaireResponse.item.where(linkId='7')"]


async def test_a_total_out_of_range_names_the_total_item(client, world):
    course = await open_course(client, world.clinician)
    outcome = (await _post(client, world.clinician, response_of(course, "bdi-ii", total=64), 422)).json()
    assert outcome["issue"][0]["expression"] == ["QuestionnaireResponse.item.where(linkId='total')"]


@pytest.mark.parametrize(("body", "status", "issue"), [
    (b'{"resourceType": "QuestionnaireResponse",', 400, "invalid"),
    (b"[1, 2, 3]", 422, "structure"),
    (b"null", 422, "structure"),
    (b'"QuestionnaireResponse"', 422, "structure"),
])
async def test_malformed_bodies_are_outcomes_never_errors(client, world, body, status, issue):
    outcome = (await _post(client, world.clinician, body, status)).json()
    validate(outcome)
    assert outcome["issue"][0]["code"] == issue


async def test_only_fhir_json_is_read(client, world):
    course = await open_course(client, world.clinician)
    body = response_of(course, "gad-7", [0] * 7)
    plain = await client.post(URL, json=body, headers=world.clinician.headers)  # application/json is fine too
    assert plain.status_code == 201, plain.text
    xml = await client.post(URL, content=b"<QuestionnaireResponse/>",
                            headers={**world.clinician.headers, "Content-Type": "application/fhir+xml"})
    assert (xml.status_code, xml.json()["issue"][0]["code"]) == (415, "not-supported")


async def test_another_organizations_or_clinicians_course_is_not_found_and_nothing_is_recorded(app, client, world,
                                                                                                other_world):
    course = await open_course(client, world.clinician)
    body = response_of(course, "phq-9", phq9(5))
    for outsider in (world.clinician2, other_world.clinician, other_world.ehr, other_world.supervisor):
        refused = await _post(client, outsider, body, 404)
        outcome = refused.json()
        validate(outcome)
        assert outcome["issue"][0]["code"] == "not-found"
    unknown = response_of({**course, "id": "00000000-0000-7000-8000-000000000000"}, "phq-9", phq9(5))
    await _post(client, world.clinician, unknown, 404)
    await _post(client, world.researcher, body, 403)  # no clinical:write
    assert await _measures(client, world.clinician, course) == []
    [event] = await _rows(app, "SELECT * FROM audit_event WHERE request_id = :r", r=refused.headers["x-request-id"])
    assert (event["action"], event["outcome"], event["resource_type"], event["resource_id"], event["patient_id"]) == (
        "denied", 404, "course", course["id"], None)


async def test_a_closed_course_refuses_as_v1_does(client, world):
    course = await open_course(client, world.clinician)
    moved = await client.post(f"/v1/courses/{course['id']}/transitions", json={"to": "discontinued", "reason": "moved_away"},
                              headers=world.clinician.headers)
    assert moved.status_code == 200, moved.text
    v1 = await client.post(f"/v1/courses/{course['id']}/measures", headers=world.clinician.headers,
                           json={"instrument": "gad-7", "administered_on": day(course, 1), "items": [0] * 7})
    outcome = (await _post(client, world.clinician, response_of(course, "gad-7", [0] * 7), v1.status_code)).json()
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == v1.json()["code"]
