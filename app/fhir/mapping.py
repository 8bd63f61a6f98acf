"""Pure mappings from stored rows to FHIR R4 resources: ids, codes, dates and numbers only.

Nothing here copies free text (session notes, formulation summary and goals, diagnosis text, area
details such as ``with_whom``) or a person's name: a FHIR consumer gets what it can code, and the
/v1 API stays the only way to read clinical text. Decisions where FHIR and IPT do not line up:

- EpisodeOfCare.status: an open phase is ``active``; ``completed`` is ``finished``; ``discontinued``
  (ended early) is ``cancelled``, which R4 defines as ended before it was finished.
- Encounter.status: ``attended`` is ``finished``; ``missed`` and ``cancelled`` are both ``cancelled``
  (R4 has no no-show status for an Encounter: "ended before it has begun").
- Encounter.class: ``in_person`` is AMB (ambulatory), ``video`` and ``telephone`` are VR (virtual).
- Condition: one per focal problem area; verificationStatus ``confirmed`` once the formulation is
  agreed, ``provisional`` while it is a draft; clinicalStatus stays ``active`` (nothing recorded says
  the difficulty resolved; the episode's status says whether treatment ended); a role dispute's
  stage is ``stage.summary``; primary and secondary are EpisodeOfCare.diagnosis rank 1 and 2.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from app import instruments
from app.fhir import codesystem as cs
from app.instruments.scoring import round2

EXTERNAL_ID_SYSTEM = "https://ipt.example/fhir/sid/patient-external-id"  # the EHR's id, unique in the organization
QUESTIONNAIRE_BASE = "https://ipt.example/fhir/Questionnaire/"
# The extensions pack's "episode of care that establishes the context" of an event: R4's QuestionnaireResponse
# has no element that can name an EpisodeOfCare (app.fhir.intake reads it from posted responses).
EPISODE_OF_CARE = "http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare"

EPISODE_STATUS = {"initial": "active", "middle": "active", "termination": "active",
                  "completed": "finished", "discontinued": "cancelled"}
ENCOUNTER_STATUS = {"attended": "finished", "missed": "cancelled", "cancelled": "cancelled"}
ENCOUNTER_CLASS = {"in_person": ("AMB", "ambulatory"), "video": ("VR", "virtual"), "telephone": ("VR", "virtual")}
VERIFICATION = {"agreed": ("confirmed", "Confirmed"), "draft": ("provisional", "Provisional")}
SURVEY = {"system": cs.OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}
Resource = dict[str, Any]


def reference(resource_type: str, resource_id: str) -> dict[str, str]:
    """A relative literal reference (resolved against the view's base, so inside a Bundle too)."""
    return {"reference": f"{resource_type}/{resource_id}"}


def patient_reference(patient: dict[str, Any]) -> dict[str, Any]:
    """The patient by id, with the EHR's external_id as a logical identifier: never a name."""
    ref: dict[str, Any] = {"reference": f"Patient/{patient['id']}", "type": "Patient"}
    if patient.get("external_id"):
        ref["identifier"] = {
            "type": {"coding": [{"system": cs.IDENTIFIER_TYPE, "code": "MR", "display": "Medical record number"}]},
            "system": EXTERNAL_ID_SYSTEM,
            "value": patient["external_id"],
        }
    return ref


GENDER = {"female": "female", "male": "male", "other": "other", "unknown": "unknown"}


def patient(row: dict[str, Any]) -> Resource:
    """The patient a course's resources point at: id, the EHR's identifier, gender and birth date, never a name."""
    resource: Resource = {"resourceType": "Patient", "id": row["id"], "meta": _meta(row),
                          "gender": GENDER.get(row.get("sex") or "unknown", "unknown")}
    identifier = patient_reference(row).get("identifier")
    if identifier:
        resource["identifier"] = [identifier]
    if row.get("birth_date"):
        resource["birthDate"] = row["birth_date"]
    return resource


def practitioner(user: dict[str, Any]) -> Resource:
    """A course's therapist as a Practitioner: its id and whether the account is active (no name, as everywhere here)."""
    return {"resourceType": "Practitioner", "id": user["id"], "meta": _meta(user), "active": bool(user["active"])}


def group(row: dict[str, Any], members: list[dict[str, Any]]) -> Resource:
    """A group IPT group as a Group of actual persons: its protocol as code, the lead facilitator managing it,
    each member a Patient (inactive once they left); never the group's name (a label a clinic types freely)."""
    resource: Resource = {
        "resourceType": "Group", "id": row["id"], "meta": _meta(row), "type": "person", "actual": True,
        "code": _concept(cs.PROTOCOL.coding(row["protocol"])),
        "quantity": sum(1 for m in members if m["status"] == "active"),
    }
    if row.get("facilitator_ids"):
        resource["managingEntity"] = {"reference": f"Practitioner/{row['facilitator_ids'][0]}", "type": "Practitioner"}
    if members:
        resource["member"] = [
            {"entity": {"reference": f"Patient/{m['patient_id']}", "type": "Patient"},
             "period": {"start": m["created_at"], **({"end": m["left_on"]} if m["left_on"] else {})},
             "inactive": m["status"] != "active"}
            for m in members]
    return resource


def _concept(*codings: dict[str, str]) -> dict[str, Any]:
    return {"coding": list(codings)}


def _meta(row: dict[str, Any]) -> dict[str, Any]:
    """The row's version as FHIR's versionId (and its last change, where the row keeps one)."""
    meta: dict[str, Any] = {"versionId": str(row["version"])}
    if row.get("updated_at") is not None:
        meta["lastUpdated"] = row["updated_at"]
    return meta


def focal_areas(formulation: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The formulation's focal problem areas, primary first."""
    if formulation is None:
        return []
    areas = [a for a in formulation["problem_areas"] if a.get("focal") and a.get("area") in cs.PROBLEM_AREA.codes]
    return sorted(areas, key=lambda a: not a.get("primary"))


def condition_id(formulation: dict[str, Any], area: str) -> str:
    """A stable FHIR id for a problem area of a formulation (FHIR ids allow no underscore)."""
    return f"{formulation['id']}-{area.replace('_', '-')}"


def episode_of_care(course: dict[str, Any], patient: dict[str, Any], formulation: dict[str, Any] | None) -> Resource:
    """A course as an EpisodeOfCare: status from the phase, the protocol as type, the focal areas as diagnoses."""
    period = {"start": course["started_on"]}
    if course.get("ended_on") is not None:
        period["end"] = course["ended_on"]
    resource: Resource = {
        "resourceType": "EpisodeOfCare",
        "id": course["id"],
        "meta": _meta(course),
        "status": EPISODE_STATUS[course["phase"]],
        "type": [_concept(cs.PROTOCOL.coding(course["protocol"]))],
        "patient": patient_reference(patient),
        "careManager": {"reference": f"Practitioner/{course['therapist_id']}", "type": "Practitioner"},
        "period": period,
    }
    diagnoses = [
        {"condition": reference("Condition", condition_id(formulation, a["area"])), "rank": 1 if a.get("primary") else 2}
        for a in focal_areas(formulation)
    ]
    if diagnoses:
        resource["diagnosis"] = diagnoses
    return resource


def conditions(formulation: dict[str, Any] | None, patient: dict[str, Any]) -> list[Resource]:
    """One Condition per focal problem area, coded in the project's problem-area CodeSystem."""
    if formulation is None:
        return []
    status, display = VERIFICATION[formulation["status"]]
    recorded = formulation.get("agreed_on") or formulation["created_at"]
    out = []
    for area in focal_areas(formulation):
        resource: Resource = {
            "resourceType": "Condition",
            "id": condition_id(formulation, area["area"]),
            "meta": _meta(formulation),
            "clinicalStatus": _concept({"system": cs.CONDITION_CLINICAL, "code": "active", "display": "Active"}),
            "verificationStatus": _concept({"system": cs.CONDITION_VERIFICATION, "code": status, "display": display}),
            "category": [_concept({"system": cs.CONDITION_CATEGORY, "code": "problem-list-item",
                                   "display": "Problem List Item"})],
            "code": _concept(cs.PROBLEM_AREA.coding(area["area"])),
            "subject": patient_reference(patient),
            "recordedDate": recorded,
        }
        stage = (area.get("details") or {}).get("stage")
        if area["area"] == "role_dispute" and stage in cs.ROLE_DISPUTE_STAGE.codes:
            resource["stage"] = [{"summary": _concept(cs.ROLE_DISPUTE_STAGE.coding(stage))}]
        out.append(resource)
    return out


def encounter(session: dict[str, Any], patient: dict[str, Any]) -> Resource:
    """A therapy session as an Encounter of the course's episode: status, class, date, duration, areas addressed."""
    code, display = ENCOUNTER_CLASS[session["modality"]]
    status = ENCOUNTER_STATUS[session["attendance"]]
    period = {"start": session["held_on"]}
    if status == "finished":
        period["end"] = session["held_on"]
    resource: Resource = {
        "resourceType": "Encounter",
        "id": session["id"],
        "meta": _meta(session),
        "status": status,
        "class": {"system": cs.ACT_CODE, "code": code, "display": display},
        "subject": patient_reference(patient),
        "episodeOfCare": [reference("EpisodeOfCare", session["course_id"])],
        "period": period,
    }
    if session.get("duration_minutes"):
        resource["length"] = {"value": session["duration_minutes"], "unit": "min", "system": cs.UCUM, "code": "min"}
    areas = [a for a in session.get("problem_areas_addressed") or () if a in cs.PROBLEM_AREA.codes]
    if areas:
        resource["reasonCode"] = [_concept(cs.PROBLEM_AREA.coding(a)) for a in areas]
    return resource


def _linked(resource: Resource, measure: dict[str, Any]) -> Resource:
    if measure.get("session_id"):
        resource["encounter"] = reference("Encounter", measure["session_id"])
    return resource


def questionnaire_response(measure: dict[str, Any], patient: dict[str, Any]) -> Resource:
    """The responses of one administration: items "1".."n" as integers (a licensed BDI-II: its total only), in its course."""
    items = measure.get("items")
    if items is None:
        answers = [{"linkId": "total", "answer": [{"valueInteger": int(measure["total"])}]}]
    else:
        answers = [{"linkId": str(n), "answer": [{"valueInteger": int(v)}]} for n, v in enumerate(items, start=1)]
    return _linked({
        "resourceType": "QuestionnaireResponse",
        "id": measure["id"],
        "meta": _meta(measure),
        "extension": [{"url": EPISODE_OF_CARE, "valueReference": reference("EpisodeOfCare", measure["course_id"])}],
        "questionnaire": QUESTIONNAIRE_BASE + measure["instrument"],
        "status": "completed",
        "subject": patient_reference(patient),
        "authored": measure["administered_on"],
        "item": answers,
    }, measure)


def observation(measure: dict[str, Any], patient: dict[str, Any]) -> Resource:
    """The total of one administration: LOINC where the catalogue has a code, its severity band as interpretation."""
    instrument = instruments.get_instrument(measure["instrument"])
    codings = [{"system": cs.LOINC, "code": instrument.loinc_total}] if instrument.loinc_total else []
    codings.append(cs.INSTRUMENT.coding(instrument.id))
    resource: Resource = {
        "resourceType": "Observation",
        "id": f"{measure['id']}-total",
        "meta": _meta(measure),
        "status": "final",
        "category": [_concept(SURVEY)],
        "code": {"coding": codings,
                 "text": f"{instrument.name} {'mean item score' if instrument.scoring == 'mean' else 'total score'}"},
        "subject": patient_reference(patient),
        "effectiveDateTime": measure["administered_on"],
        "interpretation": [_concept(cs.SEVERITY[instrument.id].coding(measure["severity"]))],
        "derivedFrom": [reference("QuestionnaireResponse", measure["id"])],
    }
    if instrument.scoring == "mean":
        resource["valueQuantity"] = {"value": round2(measure["total"]), "unit": "{score}", "system": cs.UCUM,
                                     "code": "{score}"}
    else:
        resource["valueInteger"] = int(measure["total"])
    return _linked(resource, measure)


def bundle(resources: Iterable[Resource], base: str, self_url: str, timestamp: datetime) -> Resource:
    """A searchset Bundle; each entry's fullUrl is ``{base}/{type}/{id}``, so relative references resolve in it."""
    entries = [
        {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
        for r in resources
    ]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": timestamp,
        "total": len(entries),
        "link": [{"relation": "self", "url": self_url}],
        "entry": entries,
    }


def collection(resources: Iterable[Resource], base: str, timestamp: datetime) -> Resource:
    """A collection Bundle (what one request created, not a search), each entry with its fullUrl."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": timestamp,
        "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources],
    }
