"""The FHIR R4 view of a course: every resource validates, references resolve, codes and values are the
stored ones, and no free text leaves."""

from __future__ import annotations

import pytest

from app.fhir.codesystem import ACT_CODE, BASE, LOINC
from app.fhir.mapping import EXTERNAL_ID_SYSTEM
from tests.support.fhir import (
    FHIR_JSON,
    MSPSS_ITEMS,
    RecordedCourse,
    by_type,
    coding,
    record_course,
    references,
    validate,
)
from tests.support.measures import gad7, phq9
from tests.support.world import make_world

PROBLEM_AREA = BASE + "ipt-problem-area"
STAGE = BASE + "ipt-role-dispute-stage"
INSTRUMENT = BASE + "ipt-instrument"


@pytest.fixture(scope="module")
async def recorded(app, client) -> RecordedCourse:
    """One recorded course per database, shared by this module's read-only tests."""
    return await record_course(client, await make_world(app))


@pytest.fixture(scope="module")
async def everything(client, recorded) -> dict:
    response = await client.get(f"/fhir/r4/EpisodeOfCare/{recorded.course['id']}/$everything",
                                headers=recorded.world.clinician.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == FHIR_JSON
    return response.json()


def _base() -> str:
    return "http://testserver/fhir/r4"


async def test_everything_is_a_valid_r4_bundle_with_a_full_url_per_entry(everything):
    validate(everything)
    assert everything["type"] == "searchset"
    assert everything["total"] == len(everything["entry"]) == 1 + 2 + 3 + 2 * 4
    full_urls = [e["fullUrl"] for e in everything["entry"]]
    assert len(set(full_urls)) == len(full_urls)
    for entry in everything["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"{_base()}/{resource['resourceType']}/{resource['id']}"


async def test_references_resolve_inside_the_bundle_except_patient_and_practitioner(everything, recorded):
    full_urls = {e["fullUrl"] for e in everything["entry"]}
    checked = 0
    for entry in everything["entry"]:
        for ref in references(entry["resource"]):
            kind = ref["reference"].split("/")[0]
            if kind == "Patient":
                assert ref["reference"] == f"Patient/{recorded.patient['id']}"
                assert ref["identifier"]["system"] == EXTERNAL_ID_SYSTEM
                assert ref["identifier"]["value"] == recorded.patient["external_id"]
            elif kind == "Practitioner":
                assert ref["reference"] == f"Practitioner/{recorded.world.clinician.id}"
            else:
                assert f"{_base()}/{ref['reference']}" in full_urls, f"{ref['reference']} does not resolve in the Bundle"
                checked += 1
    # diagnoses 2, encounters' episode 3, measures' encounter 2 + 2, observations' derivedFrom 4,
    # the responses' workflow-episodeOfCare extension 4
    assert checked == 17


async def test_episode_of_care_carries_phase_status_protocol_period_therapist_and_ranked_diagnoses(everything, recorded):
    [episode] = by_type(everything)["EpisodeOfCare"]
    assert episode["id"] == recorded.course["id"]
    assert episode["status"] == "active"
    assert coding(episode["type"][0], BASE + "ipt-protocol")["code"] == "ipt"
    assert episode["period"] == {"start": recorded.course["started_on"]}
    assert episode["careManager"]["reference"] == f"Practitioner/{recorded.world.clinician.id}"
    conditions = {c["code"]["coding"][0]["code"]: c for c in by_type(everything)["Condition"]}
    ranks = {d["condition"]["reference"]: d["rank"] for d in episode["diagnosis"]}
    assert ranks == {f"Condition/{conditions['role_dispute']['id']}": 1, f"Condition/{conditions['grief']['id']}": 2}


async def test_focal_problem_areas_are_conditions_in_the_project_code_system_with_the_dispute_stage(everything, recorded):
    conditions = {coding(c["code"], PROBLEM_AREA)["code"]: c for c in by_type(everything)["Condition"]}
    assert set(conditions) == {"role_dispute", "grief"}
    dispute, grief = conditions["role_dispute"], conditions["grief"]
    assert coding(dispute["code"], PROBLEM_AREA)["display"] == "Role dispute"
    assert coding(dispute["stage"][0]["summary"], STAGE) == {"system": STAGE, "code": "impasse", "display": "Impasse"}
    assert "stage" not in grief
    for condition in (dispute, grief):
        assert condition["verificationStatus"]["coding"][0]["code"] == "confirmed"
        assert condition["clinicalStatus"]["coding"][0]["code"] == "active"
        assert condition["subject"]["reference"] == f"Patient/{recorded.patient['id']}"


async def test_sessions_are_encounters_with_status_from_attendance_and_class_from_modality(everything, recorded):
    encounters = {e["id"]: e for e in by_type(everything)["Encounter"]}
    first, missed, third = (encounters[s["id"]] for s in recorded.sessions)
    assert (first["status"], missed["status"], third["status"]) == ("finished", "cancelled", "finished")
    assert [e["class"]["code"] for e in (first, missed, third)] == ["AMB", "VR", "VR"]
    assert {e["class"]["system"] for e in encounters.values()} == {ACT_CODE}
    assert first["period"] == {"start": recorded.sessions[0]["held_on"], "end": recorded.sessions[0]["held_on"]}
    assert missed["period"] == {"start": recorded.sessions[1]["held_on"]}
    assert first["length"]["value"] == 50 and first["length"]["code"] == "min"
    assert coding(first["reasonCode"][0], PROBLEM_AREA)["code"] == "role_dispute"
    for encounter in encounters.values():
        assert encounter["episodeOfCare"] == [{"reference": f"EpisodeOfCare/{recorded.course['id']}"}]


def _measure_resources(everything: dict, measure: dict) -> tuple[dict, dict]:
    resources = by_type(everything)
    [response] = [r for r in resources["QuestionnaireResponse"] if r["id"] == measure["id"]]
    [observation] = [o for o in resources["Observation"]
                     if o["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{measure['id']}"}]]
    return response, observation


async def test_phq9_is_a_questionnaire_response_and_a_loinc_total_with_its_band_and_session(everything, recorded):
    measure = recorded.measures["phq-9"]
    response, observation = _measure_resources(everything, measure)
    assert response["status"] == "completed"
    assert [i["linkId"] for i in response["item"]] == [str(n) for n in range(1, 10)]
    assert [i["answer"][0]["valueInteger"] for i in response["item"]] == phq9(12, item9=1)
    assert response["item"][8]["answer"] == [{"valueInteger": 1}]  # the risk item
    assert response["authored"] == measure["administered_on"]
    assert observation["status"] == "final"
    assert coding(observation["category"][0], "http://terminology.hl7.org/CodeSystem/observation-category")["code"] == "survey"
    assert coding(observation["code"], LOINC)["code"] == "44261-6"
    assert observation["valueInteger"] == 12 == measure["total"]
    band = coding(observation["interpretation"][0], BASE + "ipt-severity-phq-9")
    assert (band["code"], band["display"]) == ("moderate", "Moderate") and measure["severity"] == "moderate"
    assert observation["effectiveDateTime"] == measure["administered_on"]
    session = f"Encounter/{recorded.sessions[0]['id']}"
    assert observation["encounter"] == response["encounter"] == {"reference": session}


async def test_gad7_total_carries_its_loinc_code_and_band(everything, recorded):
    measure = recorded.measures["gad-7"]
    response, observation = _measure_resources(everything, measure)
    assert [i["answer"][0]["valueInteger"] for i in response["item"]] == gad7(9)
    assert coding(observation["code"], LOINC)["code"] == "70274-6"
    assert observation["valueInteger"] == 9
    assert coding(observation["interpretation"][0], BASE + "ipt-severity-gad-7")["code"] == measure["severity"] == "mild"
    assert "encounter" not in observation and "encounter" not in response


async def test_mspss_mean_is_a_quantity_coded_in_the_project_instrument_system(everything, recorded):
    measure = recorded.measures["mspss"]
    response, observation = _measure_resources(everything, measure)
    assert [i["answer"][0]["valueInteger"] for i in response["item"]] == MSPSS_ITEMS
    assert [c["system"] for c in observation["code"]["coding"]] == [INSTRUMENT]
    assert coding(observation["code"], INSTRUMENT)["code"] == "mspss"
    assert observation["valueQuantity"]["value"] == 4.25 == measure["total"]
    assert "valueInteger" not in observation
    assert coding(observation["interpretation"][0], BASE + "ipt-severity-mspss")["code"] == "moderate"
    assert observation["encounter"] == {"reference": f"Encounter/{recorded.sessions[2]['id']}"}


async def test_bdi2_keeps_its_total_only(everything, recorded):
    measure = recorded.measures["bdi-ii"]
    response, observation = _measure_resources(everything, measure)
    assert response["item"] == [{"linkId": "total", "answer": [{"valueInteger": 22}]}]
    assert coding(observation["code"], INSTRUMENT)["code"] == "bdi-ii"
    assert observation["valueInteger"] == 22
    assert coding(observation["interpretation"][0], BASE + "ipt-severity-bdi-ii")["code"] == "moderate"


async def test_no_free_text_or_name_leaves_the_fhir_view(client, everything, recorded):
    assert recorded.marker not in str(everything)
    response = await client.get(f"/fhir/r4/EpisodeOfCare/{recorded.course['id']}", headers=recorded.world.clinician.headers)
    assert recorded.marker not in response.text
    # the marker was stored: the /v1 API still shows it to the clinician
    v1 = await client.get(f"/v1/courses/{recorded.course['id']}/sessions/{recorded.sessions[0]['id']}",
                          headers=recorded.world.clinician.headers)
    assert recorded.marker in v1.text


async def test_episode_of_care_read_validates_and_matches_the_bundle(client, everything, recorded):
    response = await client.get(f"/fhir/r4/EpisodeOfCare/{recorded.course['id']}", headers=recorded.world.clinician.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == FHIR_JSON
    episode = response.json()
    validate(episode)
    assert response.headers["etag"] == f'W/"{episode["meta"]["versionId"]}"'
    assert episode == by_type(everything)["EpisodeOfCare"][0]


@pytest.mark.parametrize("who", ["supervisor", "ehr"])
async def test_supervisor_and_integration_read_any_course_of_their_organization(client, recorded, who):
    response = await client.get(f"/fhir/r4/EpisodeOfCare/{recorded.course['id']}/$everything",
                                headers=recorded.world.actors[who].headers)
    assert response.status_code == 200
    assert response.json()["total"] == 14
