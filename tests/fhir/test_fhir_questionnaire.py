"""The catalogue as FHIR R4 Questionnaires: valid, at the canonical URL the emitted QuestionnaireResponses name,
with the linkIds, answer ranges and LOINC codes they use; read by id and searched by url with any token."""

from __future__ import annotations

import pytest

from app import instruments
from app.fhir.codesystem import LOINC
from app.fhir.mapping import QUESTIONNAIRE_BASE
from tests.support.fhir import FHIR_JSON, RecordedCourse, by_type, coding, record_course, validate
from tests.support.world import make_world

PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
GAD7_ITEMS = ["69725-0", "68509-8", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
ITEM_TYPES = {"group", "display", "boolean", "decimal", "integer", "date", "dateTime", "time", "string", "text", "url",
              "choice", "open-choice", "attachment", "reference", "quantity"}  # R4's required binding


@pytest.fixture(scope="module")
async def recorded(app, client) -> RecordedCourse:
    return await record_course(client, await make_world(app))


async def _get(client, url: str, headers: dict, expect: int = 200) -> dict:
    response = await client.get(url, headers=headers)
    assert response.status_code == expect, response.text
    assert response.headers["content-type"] == FHIR_JSON
    return response.json()


def _codes(element: dict) -> list[str]:
    return [c["code"] for c in element.get("code", []) if c["system"] == LOINC]


@pytest.mark.parametrize("instrument_id", list(instruments.INSTRUMENTS))
async def test_every_instrument_is_a_valid_active_questionnaire_at_its_canonical_url(client, world, instrument_id):
    resource = await _get(client, f"/fhir/r4/Questionnaire/{instrument_id}", world.researcher.headers)  # no clinical scope
    validate(resource)
    instrument = instruments.get_instrument(instrument_id)
    assert (resource["id"], resource["url"], resource["status"]) == (instrument_id, QUESTIONNAIRE_BASE + instrument_id,
                                                                     "active")
    assert all(item["type"] in ITEM_TYPES and item["required"] for item in resource["item"])
    if instrument.total_only:
        [item] = resource["item"]
        assert (item["linkId"], item["type"], "answerOption" in item) == ("total", "integer", False)
        assert [e["valueInteger"] for e in item["extension"]] == [instrument.total_min, instrument.total_max]
    else:
        assert [i["linkId"] for i in resource["item"]] == [str(n) for n in range(1, instrument.item_count + 1)]
        for item, (low, high) in zip(resource["item"], instrument.item_ranges, strict=True):
            assert item["type"] == "integer"
            assert [o["valueInteger"] for o in item["answerOption"]] == list(range(low, high + 1))
    assert "text" not in resource and all(set(i["text"].split()) <= {"Item", "Total", "score", i["linkId"]}
                                          for i in resource["item"])  # no copyrighted wording


async def test_loinc_codes_are_the_catalogues_and_none_is_made_up(client, world):
    found = {i: await _get(client, f"/fhir/r4/Questionnaire/{i}", world.clinician.headers) for i in instruments.INSTRUMENTS}
    assert _codes(found["phq-9"]) == ["44249-1"] and [_codes(i) for i in found["phq-9"]["item"]] == [[c] for c in PHQ9_ITEMS]
    assert _codes(found["gad-7"]) == ["69737-5"] and [_codes(i) for i in found["gad-7"]["item"]] == [[c] for c in GAD7_ITEMS]
    assert _codes(found["epds"]) == ["71354-5"] and all("code" not in i for i in found["epds"]["item"])
    for instrument_id in ("hamd-17", "qids-sr16", "wsas", "mspss", "bdi-ii"):
        assert "code" not in found[instrument_id] and all("code" not in i for i in found[instrument_id]["item"])


async def test_every_emitted_response_answers_its_questionnaire(client, recorded):
    """The view's QuestionnaireResponses name a Questionnaire found by url, with its linkIds and answers in range,
    and the Observations' LOINC totals belong to the same instruments."""
    headers = recorded.world.clinician.headers
    everything = await _get(client, f"/fhir/r4/EpisodeOfCare/{recorded.course['id']}/$everything", headers)
    grouped = by_type(everything)
    for response, observation in zip(grouped["QuestionnaireResponse"], grouped["Observation"], strict=True):
        found = (await client.get("/fhir/r4/Questionnaire", params={"url": response["questionnaire"]}, headers=headers)).json()
        [entry] = found["entry"]
        definition = {item["linkId"]: item for item in entry["resource"]["item"]}
        answered = {item["linkId"]: item["answer"][0]["valueInteger"] for item in response["item"]}
        assert set(answered) == set(definition)
        for link_id, value in answered.items():
            options = [o["valueInteger"] for o in definition[link_id].get("answerOption", [])]
            assert value in options or not options
        instrument = instruments.get_instrument(entry["resource"]["id"])
        if instrument.loinc_total:
            assert coding(observation["code"], LOINC)["code"] == instrument.loinc_total


async def test_search_by_url_finds_one_all_or_none(client, world):
    headers = world.ehr.headers
    everything = await _get(client, "/fhir/r4/Questionnaire", headers)
    validate(everything)
    assert (everything["type"], everything["total"]) == ("searchset", len(instruments.INSTRUMENTS))
    assert [e["resource"]["id"] for e in everything["entry"]] == list(instruments.INSTRUMENTS)
    assert all(e["fullUrl"] == f"http://testserver/fhir/r4/Questionnaire/{e['resource']['id']}" for e in everything["entry"])
    for url in (QUESTIONNAIRE_BASE + "gad-7", QUESTIONNAIRE_BASE + "gad-7|2006"):
        one = (await client.get("/fhir/r4/Questionnaire", params={"url": url}, headers=headers)).json()
        validate(one)
        assert [e["resource"]["id"] for e in one["entry"]] == ["gad-7"]
    for url in (QUESTIONNAIRE_BASE + "nope", QUESTIONNAIRE_BASE + "gad-7|1999", "http://loinc.org/69737-5", ""):
        none = (await client.get("/fhir/r4/Questionnaire", params={"url": url}, headers=headers)).json()
        validate(none)
        assert (none["total"], none["entry"]) == (0, [])


async def test_questionnaires_need_a_token_and_an_unknown_one_is_not_found(client, world):
    assert (await client.get("/fhir/r4/Questionnaire/phq-9")).status_code == 401
    assert (await client.get("/fhir/r4/Questionnaire")).status_code == 401
    outcome = await _get(client, "/fhir/r4/Questionnaire/phq-10", world.clinician.headers, 404)
    validate(outcome)
    assert outcome["issue"][0]["code"] == "not-found"
