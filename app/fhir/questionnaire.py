"""Each instrument of the catalogue as a FHIR R4 Questionnaire, the definition the view's QuestionnaireResponses answer.

Built from the catalogue, so a Questionnaire never drifts from how measures are scored: linkIds are the
item numbers "1".."n" (a total-only instrument, the licensed BDI-II: one item "total"), every item is a
required integer whose answerOptions are the item's range, and LOINC codes appear only where the
catalogue has them (PHQ-9, GAD-7 items and panels; the EPDS panel); no code is made up for the others.
Item wording is not published: several instruments are copyrighted, and the scores need only the numbers.
"""

from __future__ import annotations

import re
from typing import Any

from app import instruments
from app.fhir.codesystem import LOINC
from app.fhir.mapping import QUESTIONNAIRE_BASE, Resource
from app.instruments import Instrument

TOTAL_LINK_ID = "total"  # the one item of a total-only instrument (mapping.questionnaire_response)
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"


def url(instrument_id: str) -> str:
    """The Questionnaire's canonical URL, the one every emitted QuestionnaireResponse.questionnaire names."""
    return QUESTIONNAIRE_BASE + instrument_id


def _name(instrument: Instrument) -> str:
    """A computer-friendly name (R4's inv-0: a capital, then letters, digits and underscores)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", instrument.id).upper()


def _loinc(code: str) -> list[dict[str, str]]:
    return [{"system": LOINC, "code": code}]


def _items(instrument: Instrument) -> list[dict[str, Any]]:
    if instrument.total_only:
        return [{"linkId": TOTAL_LINK_ID, "text": "Total score", "type": "integer", "required": True,
                 "extension": [{"url": MIN_VALUE, "valueInteger": int(instrument.total_min)},
                               {"url": MAX_VALUE, "valueInteger": int(instrument.total_max)}]}]
    items = []
    for number, (low, high) in enumerate(instrument.item_ranges, start=1):
        item: dict[str, Any] = {"linkId": str(number), "text": f"Item {number}", "type": "integer", "required": True,
                                "answerOption": [{"valueInteger": v} for v in range(low, high + 1)]}
        if instrument.loinc_items:
            item["code"] = _loinc(instrument.loinc_items[number - 1])
        items.append(item)
    return items


def questionnaire(instrument: Instrument) -> Resource:
    """One instrument as an active Questionnaire: id the instrument's id, its canonical url, its items."""
    resource: Resource = {
        "resourceType": "Questionnaire",
        "id": instrument.id,
        "url": url(instrument.id),
        "version": instrument.version,
        "name": _name(instrument),
        "title": instrument.name,
        "status": "active",
        "subjectType": ["Patient"],
        "publisher": "IPT API",
        "description": instrument.description,
        "copyright": instrument.licence,
    }
    if instrument.loinc_panel:
        resource["code"] = _loinc(instrument.loinc_panel)
    resource["item"] = _items(instrument)
    return resource


QUESTIONNAIRES: dict[str, Resource] = {i: questionnaire(instruments.get_instrument(i)) for i in instruments.INSTRUMENTS}
BY_URL: dict[str, str] = {q["url"]: i for i, q in QUESTIONNAIRES.items()}


def instrument_of(canonical: str) -> str | None:
    """The instrument a canonical names (``url`` or ``url|version`` of the published version), None if none."""
    address, _, version = canonical.partition("|")
    instrument_id = BY_URL.get(address)
    if instrument_id is None or (version and version != QUESTIONNAIRES[instrument_id]["version"]):
        return None
    return instrument_id
