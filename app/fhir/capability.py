"""The FHIR view's CapabilityStatement: what a FHIR client may ask of this server, read at ``[base]/metadata``.

FHIR clients (and SMART on FHIR apps) read it before anything else, without a token: it names
no data, only the resources the view serves, their read interaction, EpisodeOfCare's
$everything, and the bearer token every other request needs.
"""

from __future__ import annotations

from typing import Any

from app.fhir.codesystem import BASE

FHIR_VERSION = "4.0.1"  # FHIR R4
CHANGED_ON = "2026-12-04"  # the statement's date: change it when the view's capabilities change
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"  # SMART's token URL extension
EVERYTHING = BASE.replace("/CodeSystem/", "/OperationDefinition/") + "EpisodeOfCare-everything"


# What the view's resources point at, each readable on its own (app/fhir/reads.py).
REFERENCED = (
    ("Patient", "A patient in reach: id, the EHR's identifier, gender, birth date; never a name."),
    ("Practitioner", "A user of the organization (a course's therapist): id and whether active."),
    ("Condition", "A focal problem area of a course's formulation."),
    ("Encounter", "A session of a course."),
    ("QuestionnaireResponse", ("The answers of one administration of a measure; create records one (clinical:write), "
                               "naming its course by the workflow-episodeOfCare extension, scored as /v1 scores it.")),
    ("Observation", "The score of one administration of a measure."),
)

CREATED = {"QuestionnaireResponse": [{"code": "create"}]}  # app/fhir/questionnaire_router.py
BULK_DATA = "http://hl7.org/fhir/uv/bulkdata"  # Bulk Data Access 2.0's canonical base (app/fhir/bulk_router.py)
PATIENT_EXPORT = {"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/patient-export",
                  "documentation": "Every patient in reach and their compartment as NDJSON (Bulk Data)."}


def capability_statement(base: str, software_version: str) -> dict[str, Any]:
    """The CapabilityStatement of the FHIR view served at ``base`` (its URL, ending in /fhir/r4)."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": CHANGED_ON,
        "publisher": "IPT API",
        "kind": "instance",
        "software": {"name": "IPT API", "version": software_version},
        "implementation": {"description": "FHIR R4 view of courses of interpersonal psychotherapy; measures may be posted",
                           "url": base},
        "fhirVersion": FHIR_VERSION,
        "instantiates": [f"{BULK_DATA}/CapabilityStatement/bulk-data"],
        "format": ["application/fhir+json", "application/fhir+ndjson"],
        "rest": [{
            "mode": "server",
            "documentation": "Every request but this one needs a bearer token: reads the clinical:read scope (a "
                             "Questionnaire any token), a QuestionnaireResponse create clinical:write; a clinician "
                             "sees only the courses they treat. Errors are OperationOutcome.",
            "security": {
                "extension": [{"url": OAUTH_URIS, "extension": [
                    {"url": "token", "valueUri": base.removesuffix("/fhir/r4") + "/v1/auth/token"}]}],
                "service": [{"coding": [{"system": SECURITY_SERVICE, "code": code, "display": code}]}
                            for code in ("SMART-on-FHIR", "OAuth")],
                "description": "A bearer access token from POST /v1/auth/token: SMART Backend Services (a client "
                               "assertion signed RS384/ES384, system scopes; see .well-known/smart-configuration), "
                               "client credentials or a password.",
            },
            "resource": [
                {"type": "EpisodeOfCare", "interaction": [{"code": "read"}],
                 "operation": [{"name": "everything", "definition": EVERYTHING,
                                "documentation": "The course and everything recorded in it as a searchset "
                                                 "Bundle: Conditions, Encounters, QuestionnaireResponses "
                                                 "and Observations."}]},
                {"type": "CodeSystem", "interaction": [{"code": "read"}],
                 "documentation": "The project's own code systems (problem areas, protocols, instruments, ...)."},
                {"type": "Questionnaire", "interaction": [{"code": "read"}, {"code": "search-type"}],
                 "searchParam": [{"name": "url", "type": "uri"}],
                 "documentation": "The instruments of the catalogue, answered by QuestionnaireResponses (any token)."},
                *({"type": kind, "interaction": [{"code": "read"}, *CREATED.get(kind, ())], "documentation": text,
                   **({"operation": [PATIENT_EXPORT]} if kind == "Patient" else {})}
                  for kind, text in REFERENCED),
                {"type": "Group", "interaction": [{"code": "read"}],
                 "documentation": "A group IPT group as a Group of its members (read and export); a clinician's "
                                  "caseload, by the clinician's Practitioner id, for export only.",
                 "operation": [{"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/group-export",
                                "documentation": "The group's (or caseload's) patients and their compartment as NDJSON."}]},
            ],
            "operation": [{"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/export",
                           "documentation": "Everything in reach, Practitioners included, as NDJSON (Bulk Data): "
                                            "kick off with Prefer: respond-async, poll Content-Location."}],
        }],
    }
