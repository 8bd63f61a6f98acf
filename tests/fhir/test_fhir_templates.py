"""The Bulk Data export's fast rendering of measures equals the FHIR view's mapping, for every shape of measure."""

from __future__ import annotations

import itertools
import json
from datetime import date

import pytest

from app import instruments
from app.core.http import dumps
from app.fhir import mapping, templates
from app.fhir.codesystem import SEVERITY

CASES = [
    (instrument.id, severity, items, session, external)
    for instrument in instruments.INSTRUMENTS.values()
    for severity in sorted(SEVERITY[instrument.id].codes)
    for items, session, external in itertools.product((True, False), (True, False), (None, "EHR-1", 'q"uo\\te%s ü'))
]


def _row(instrument_id: str, severity: str, with_items: bool, session: bool, external: str | None) -> dict:
    instrument = instruments.get_instrument(instrument_id)
    count = len(instrument.items) if hasattr(instrument, "items") and instrument.items else 9
    items = [(n * 7) % 4 for n in range(count)] if with_items else None
    total = 3.33 if instrument.scoring == "mean" else 17
    return {"id": "01a23ea8-5b4a-7000-868c-35726eb18f89", "version": 3, "course_id": "01a23ea8-5b4a-7000-868c-000000000001",
            "instrument": instrument_id, "administered_on": date(2026, 11, 3), "severity": severity, "items": items,
            "total": total, "session_id": "01a23ea8-5b4a-7000-868c-000000000002" if session else None,
            "patient_id": "01a23ea8-5b4a-7000-868c-000000000003", "patient_external_id": external}


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(x) for x in c))
def test_the_templates_render_exactly_what_the_mapping_renders(case):
    row = _row(*case)
    patient = {"id": row["patient_id"], "external_id": row["patient_external_id"]}
    qr, obs = templates.measure_lines(row, row["items"], True, True)
    assert qr.encode() == dumps(mapping.questionnaire_response(row, patient))
    assert obs.encode() == dumps(mapping.observation(row, patient))
    json.loads(obs)


def test_only_the_types_asked_for_are_rendered():
    row = _row("phq-9", "mild", True, True, None)
    assert templates.measure_lines(row, row["items"], False, True)[0] == ""
    assert templates.measure_lines(row, row["items"], True, False)[1] == ""
