"""The project's own FHIR CodeSystems, built from the catalogues (domain.md) so a code never drifts from the data.

Canonical URLs live under ``https://ipt.example/fhir/CodeSystem/`` (the host api.md's problem types
use); each is also served read-only at ``/fhir/r4/CodeSystem/{id}``. Codes are the API's own codes,
so a FHIR consumer and a /v1 consumer see the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app import instruments, rules
from app.rules.protocols import MEMBER_PROTOCOLS

BASE = "https://ipt.example/fhir/CodeSystem/"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"

# domain.md, "The four problem areas": display, then definition (what it is chosen for, and its goals).
_PROBLEM_AREAS = {
    "grief": ("Grief", (
        "The episode is linked to the death of someone important (complicated bereavement). "
        "Goals: help mourning happen; rebuild interests and relationships that can partly fill the loss."
    )),
    "role_dispute": ("Role dispute", (
        "The episode is linked to a relationship where the two sides expect different things of each other. "
        "Goals: name the dispute, choose a plan, change communication or expectations."
    )),
    "role_transition": ("Role transition", (
        "The episode is linked to a life change, wanted or not: job, move, birth, illness, divorce, retirement. "
        "Goals: mourn the old role, see the new one more fairly, gain mastery and support in it."
    )),
    "interpersonal_deficits": ("Interpersonal deficits", (
        "None of the other areas applies: few relationships, isolation (also called interpersonal sensitivity, "
        "or loneliness in group IPT); the area of last resort. "
        "Goals: reduce isolation; improve current and build new relationships."
    )),
}
_STAGES = {
    "renegotiation": ("Renegotiation", "The two sides are still trying to resolve the dispute."),
    "impasse": ("Impasse", "Talking about the dispute has stopped."),
    "dissolution": ("Dissolution", "The relationship is being ended."),
}


@dataclass(frozen=True)
class CodeSystem:
    """One code system: its id (also the last segment of its canonical URL), names and concepts."""

    id: str
    name: str
    title: str
    description: str
    concepts: tuple[tuple[str, str, str], ...]  # (code, display, definition)

    @property
    def url(self) -> str:
        """The canonical URL."""
        return BASE + self.id

    @property
    def codes(self) -> frozenset[str]:
        """Its codes."""
        return frozenset(c for c, _, _ in self.concepts)

    def display(self, code: str) -> str:
        """The display of one of its codes."""
        return next(display for c, display, _ in self.concepts if c == code)

    def coding(self, code: str) -> dict[str, str]:
        """A Coding of one of its codes, with the display."""
        return {"system": self.url, "code": code, "display": self.display(code)}

    def resource(self) -> dict[str, Any]:
        """The CodeSystem resource (complete content)."""
        return {
            "resourceType": "CodeSystem",
            "id": self.id,
            "url": self.url,
            "name": self.name,
            "title": self.title,
            "status": "active",
            "experimental": False,
            "publisher": "IPT API",
            "description": self.description,
            "caseSensitive": True,
            "content": "complete",
            "count": len(self.concepts),
            "concept": [{"code": c, "display": d, "definition": text} for c, d, text in self.concepts],
        }


def _in_order(table: dict[str, tuple[str, str]], codes: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    return tuple((code, *table[code]) for code in codes)


PROBLEM_AREA = CodeSystem(
    "ipt-problem-area", "IptProblemArea", "IPT problem areas",
    "The four interpersonal problem areas of Interpersonal Psychotherapy; a course works on one focal area, "
    "at most two (one primary).",
    _in_order(_PROBLEM_AREAS, rules.PROBLEM_AREAS),
)
ROLE_DISPUTE_STAGE = CodeSystem(
    "ipt-role-dispute-stage", "IptRoleDisputeStage", "IPT role dispute stages",
    "The stage a role dispute is in, recorded with the role dispute problem area.",
    _in_order(_STAGES, rules.ROLE_DISPUTE_STAGES),
)
PROTOCOL = CodeSystem(
    "ipt-protocol", "IptProtocol", "IPT protocols",
    "The IPT variants a course can follow (GET /v1/protocols has each one's contract numbers), and the group "
    "protocols a group member's course follows.",
    tuple((p.id, p.name, p.description) for p in (*rules.PROTOCOLS.values(), *MEMBER_PROTOCOLS.values())),
)
INSTRUMENT = CodeSystem(
    "ipt-instrument", "IptInstrument", "IPT outcome instruments",
    "The outcome instruments of the IPT catalogue (GET /v1/instruments). As an Observation code, a code names "
    "the instrument's total score as the service computes it (the item mean for the MSPSS); LOINC codes are "
    "used alongside where LOINC has one.",
    tuple((i.id, i.name, i.description) for i in instruments.INSTRUMENTS.values()),
)


def _severity(instrument: instruments.Instrument) -> CodeSystem:
    """The severity bands of one instrument: the band codes of the API, each with its range of totals."""
    suffix = instrument.id.replace("-", "").upper()
    score = "Item mean" if instrument.scoring == "mean" else "Total"
    return CodeSystem(
        f"ipt-severity-{instrument.id}", f"IptSeverity{suffix}", f"{instrument.name} severity bands",
        f"The severity bands of the {instrument.name} total, as the service reports them.",
        tuple((b.code, b.label, f"{score} from {b.low} to {b.high}.") for b in instrument.bands),
    )


SEVERITY = {i.id: _severity(i) for i in instruments.INSTRUMENTS.values()}
CODE_SYSTEMS: dict[str, CodeSystem] = {
    cs.id: cs for cs in (PROBLEM_AREA, ROLE_DISPUTE_STAGE, PROTOCOL, INSTRUMENT, *SEVERITY.values())
}
