"""The mapping tables cover every value the API stores, and what they produce is valid FHIR R4 (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from app import rules
from app.fhir import mapping
from app.sessions.schemas import Modality
from tests.support.fhir import validate

PATIENT = {"id": "p-1", "external_id": None}
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _course(phase: str, ended_on: date | None = None) -> dict:
    return {"id": "c-1", "version": 3, "updated_at": NOW, "phase": phase, "protocol": "ipt-b", "therapist_id": "t-1",
            "started_on": date(2026, 9, 1), "ended_on": ended_on}


@pytest.mark.parametrize(("phase", "status"), [
    ("initial", "active"), ("middle", "active"), ("termination", "active"),
    ("completed", "finished"), ("discontinued", "cancelled"),
])
def test_episode_status_follows_the_phase(phase, status):
    ended = date(2026, 11, 1) if phase in rules.CLOSED_PHASES else None
    episode = mapping.episode_of_care(_course(phase, ended), PATIENT, None)
    validate(episode)
    assert episode["status"] == status
    assert episode["period"] == ({"start": date(2026, 9, 1), "end": ended} if ended else {"start": date(2026, 9, 1)})
    assert "diagnosis" not in episode


def test_every_phase_attendance_and_modality_is_mapped():
    assert set(mapping.EPISODE_STATUS) == set(rules.PHASES)
    assert set(mapping.ENCOUNTER_STATUS) == set(rules.ATTENDANCE)
    assert set(mapping.ENCOUNTER_CLASS) == set(Modality.__args__)


@pytest.mark.parametrize(("attendance", "modality", "status", "klass"), [
    ("attended", "in_person", "finished", "AMB"), ("missed", "video", "cancelled", "VR"),
    ("cancelled", "telephone", "cancelled", "VR"),
])
def test_session_status_and_class(attendance, modality, status, klass):
    session = {"id": "s-1", "course_id": "c-1", "version": 1, "updated_at": NOW, "held_on": date(2026, 9, 2),
               "attendance": attendance, "modality": modality, "duration_minutes": None, "problem_areas_addressed": []}
    encounter = mapping.encounter(session, PATIENT)
    validate(encounter)
    assert (encounter["status"], encounter["class"]["code"]) == (status, klass)
    assert "length" not in encounter and "reasonCode" not in encounter


def test_a_draft_formulation_gives_provisional_conditions_and_a_patient_without_external_id_no_identifier():
    formulation = {"id": "f-1", "version": 2, "updated_at": NOW, "created_at": NOW, "status": "draft", "agreed_on": None,
                   "problem_areas": [{"area": "role_transition", "focal": True, "primary": False, "details": {}},
                                     {"area": "grief", "focal": False, "primary": False, "details": {}}]}
    [condition] = mapping.conditions(formulation, PATIENT)
    validate(condition)
    assert condition["id"] == "f-1-role-transition"
    assert condition["verificationStatus"]["coding"][0]["code"] == "provisional"
    assert condition["recordedDate"] == NOW
    assert condition["subject"] == {"reference": "Patient/p-1", "type": "Patient"}
    episode = mapping.episode_of_care(_course("initial"), PATIENT, formulation)
    assert episode["diagnosis"] == [{"condition": {"reference": "Condition/f-1-role-transition"}, "rank": 2}]


def test_the_validator_used_by_these_tests_refuses_what_r4_refuses():
    session = {"id": "s-1", "course_id": "c-1", "version": 1, "updated_at": NOW, "held_on": date(2026, 9, 2),
               "attendance": "missed", "modality": "video", "duration_minutes": 50, "problem_areas_addressed": ["grief"]}
    encounter = mapping.encounter(session, PATIENT)
    with pytest.raises(AssertionError):
        validate({**encounter, "status": "missed"})  # not in R4's Encounter.status value set
    with pytest.raises(ValueError):
        validate({**encounter, "class": [encounter["class"]]})  # R5's shape, not R4's
    with pytest.raises(ValueError):
        validate({**encounter, "note": "free text"})  # no such element
