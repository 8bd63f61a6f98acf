"""A FHIR client library over real HTTP: fhirpy finds the PHQ-9 Questionnaire by its canonical url on a live
``ipt serve``, fhir.resources builds a QuestionnaireResponse answering it, and fhirpy posts it and reads it back;
an invalid one comes back as the library's OperationOutcome error, naming the item."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

from app.fhir.intake import EPISODE_OF_CARE
from app.fhir.mapping import QUESTIONNAIRE_BASE
from tests.support.clinic import open_course
from tests.support.measures import day, phq9


def _response(course: dict, questionnaire: dict, answers: list[int]) -> dict:
    """A QuestionnaireResponse built and checked by fhir.resources' R4B model, one answer per item."""
    model = QuestionnaireResponse(
        extension=[{"url": EPISODE_OF_CARE, "valueReference": {"reference": f"EpisodeOfCare/{course['id']}"}}],
        questionnaire=questionnaire["url"], status="completed", authored=day(course, 1),
        subject={"reference": f"Patient/{course['patient_id']}"},
        item=[{"linkId": item["linkId"], "answer": [{"valueInteger": value}]}
              for item, value in zip(questionnaire["item"], answers, strict=True)],
    )
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def test_fhirpy_posts_a_fhir_resources_questionnaire_response_to_a_live_server(client, world, live_url):
    course = await open_course(client, world.clinician)
    fhir = AsyncFHIRClient(f"{live_url}/fhir/r4", authorization=world.clinician.headers["Authorization"])
    [questionnaire] = await fhir.resources("Questionnaire").search(url=QUESTIONNAIRE_BASE + "phq-9").fetch()
    assert (questionnaire["id"], len(questionnaire["item"])) == ("phq-9", 9)
    bundle = await fhir.execute("QuestionnaireResponse", method="post",
                                data=_response(course, questionnaire, phq9(16, item9=1)))
    assert bundle["type"] == "collection"
    stored, observation = (entry["resource"] for entry in bundle["entry"])
    assert (observation["valueInteger"], observation["interpretation"][0]["coding"][0]["code"]) == (16, "moderately_severe")
    read = await fhir.reference("QuestionnaireResponse", stored["id"]).to_resource()
    assert read.serialize() == stored
    measures = (await client.get(f"/v1/courses/{course['id']}/measures", headers=world.clinician.headers)).json()["data"]
    assert [(m["id"], m["total"], m["risk_items"]) for m in measures] == [(stored["id"], 16, [9])]

    wrong = _response(course, questionnaire, [*phq9(3)[:-1], 4])  # item 9 out of range
    with pytest.raises(OperationOutcome) as refused:
        await fhir.execute("QuestionnaireResponse", method="post", data=wrong)
    [issue] = refused.value.resource["issue"]
    assert issue["expression"] == ["QuestionnaireResponse.item.where(linkId='9')"]
