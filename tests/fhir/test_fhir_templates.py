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


def _record(row: dict, items_json: str | None) -> tuple:
    """The row as the export reads it: app.fhir.templates.COLUMNS in order, the version as text, the answers as JSON text."""
    values = {**row, "version": str(row["version"]), "items_json": items_json}
    return tuple(values[name] for name in templates.COLUMNS)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(x) for x in c))
def test_the_templates_render_exactly_what_the_mapping_renders(case):
    row = _row(*case)
    patient = {"id": row["patient_id"], "external_id": row["patient_external_id"]}
    # The answers as either writer stores them: orjson (the app) and the json module (older rows, the bench's seed).
    stored = ["null"] if row["items"] is None else [json.dumps(row["items"]), json.dumps(row["items"], separators=(",", ":"))]
    for items_json in (*stored, None) if row["items"] is None else stored:
        [qr], [obs] = templates.measure_lines([_record(row, items_json)], True, True)
        assert qr.encode() == dumps(mapping.questionnaire_response(row, patient))
        assert obs.encode() == dumps(mapping.observation(row, patient))
        json.loads(obs)


def test_a_batch_renders_each_row_in_order_and_only_the_types_asked_for():
    rows = [_record(_row("phq-9", "mild", True, True, None), "[1, 2, 3, 0, 1, 2, 3, 0, 1]"),
            _record(_row("gad-7", "severe", False, False, "EHR-2"), "null")]
    responses, observations = templates.measure_lines(rows, True, False)
    assert observations == [] and [json.loads(line)["questionnaire"].rsplit("/", 1)[1] for line in responses] == ["phq-9", "gad-7"]
    assert [a["answer"][0]["valueInteger"] for a in json.loads(responses[0])["item"]] == [1, 2, 3, 0, 1, 2, 3, 0, 1]
    responses, observations = templates.measure_lines(rows, False, True)
    assert responses == [] and [json.loads(line)["resourceType"] for line in observations] == ["Observation"] * 2
    assert templates.measure_lines(rows, False, False) == ([], [])


def test_an_empty_answer_list_renders_as_the_mapping_does():
    row = {**_row("phq-9", "minimal", True, False, None), "items": []}
    [qr], _ = templates.measure_lines([_record(row, "[]")], True, False)
    assert qr.encode() == dumps(mapping.questionnaire_response(row, {"id": row["patient_id"], "external_id": None}))
