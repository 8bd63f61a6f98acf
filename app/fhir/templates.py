"""Measures as NDJSON lines, fast: the FHIR view's own mapping, rendered once per shape, filled in per row.

A Bulk Data export renders two resources for each of a million measures. ``app.fhir.mapping``
builds each as dicts and orjson writes them (about 9 us a measure); here the mapping renders one
prototype per shape of measure (instrument, severity band, number of items, linked to a session or
not, patient with an EHR identifier or not) with marker values in the variable places, and each
row's values are put in the markers' places (bytes formatting, about 2 us a measure). The mapping
stays the one definition of the resources: a change there changes the templates, and a test
compares the two renderings for every shape.
"""

from __future__ import annotations

import functools
import itertools
import re
from typing import Any

import orjson

from app import instruments
from app.core.http import dumps
from app.fhir import mapping
from app.instruments.scoring import round2

# Marker values: strings where the mapping copies a string, numbers where it writes a number. A row's
# values sit in one list in this order (items last), and each template picks its slots from it.
_TEXT = ("~~id~~", "~~version~~", "~~course~~", "~~date~~", "~~patient~~", "987654321", "~~session~~",
         "~~external~~", "98765.43")
_TOTAL_INT, _TOTAL_MEAN, _ITEM_BASE = 987654321, 98765.43, 7770000
_MARKER = re.compile(r"~~[a-z]+~~|987654321|98765\.43|777\d{4}")
_INDEX = {marker: n for n, marker in enumerate(_TEXT)}


class Template:
    """A rendered prototype split at its markers: ``fill`` puts a row's values in their places.

    ``fill`` is made per template as an f-string over the row's values list (compiled once): no
    format string is parsed per row, and every literal part is the mapping's own bytes.
    """

    __slots__ = ("fill",)

    def __init__(self, rendered: bytes) -> None:
        text = rendered.decode()
        slots = [_INDEX[m] if m in _INDEX else len(_TEXT) + int(m) - _ITEM_BASE - 1 for m in _MARKER.findall(text)]
        literals = _MARKER.split(text)
        body = "".join(_literal(part) + (f"{{v[{slot}]}}" if n < len(slots) else "")
                       for n, (part, slot) in enumerate(itertools.zip_longest(literals, slots)))
        namespace: dict[str, Any] = {}
        exec(f"def fill(v):\n    return f{body!r}", namespace)  # noqa: S102 - the source is built here, from the mapping
        self.fill: Any = namespace["fill"]


def _literal(text: str) -> str:
    """A literal part of the rendering, safe inside an f-string."""
    return text.replace("{", "{{").replace("}", "}}")


def _prototype(instrument: str, severity: str, items: int | None, session: bool, external: bool,
               total: float) -> dict[str, Any]:
    measure = {"id": "~~id~~", "version": "~~version~~", "course_id": "~~course~~", "instrument": instrument,
               "administered_on": "~~date~~", "severity": severity, "session_id": "~~session~~" if session else None,
               "items": None if items is None else [_ITEM_BASE + n for n in range(1, items + 1)],
               "total": total}
    patient = {"id": "~~patient~~", "external_id": "~~external~~" if external else None}
    return {"measure": measure, "patient": patient}


_templates: dict[tuple, tuple[Template, Template, bool]] = {}


def _templates_for(key: tuple) -> tuple[Template, Template, bool]:
    found = _templates.get(key)
    if found is None:
        # The response writes a total-only answer as int(total); the Observation a mean as round2(total).
        mean = instruments.get_instrument(key[0]).scoring == "mean"
        answers, score = _prototype(*key, _TOTAL_INT), _prototype(*key, _TOTAL_MEAN if mean else _TOTAL_INT)
        found = (Template(dumps(mapping.questionnaire_response(answers["measure"], answers["patient"]))),
                 Template(dumps(mapping.observation(score["measure"], score["patient"]))), mean)
        _templates[key] = found
    return found


@functools.lru_cache(maxsize=4096)
def _escaped(text: str) -> str:
    """A string as it sits between a JSON string's quotes (an EHR identifier may hold anything)."""
    return orjson.dumps(text)[1:-1].decode()


@functools.lru_cache(maxsize=4096)
def _iso(day: Any) -> str:
    return day if isinstance(day, str) else day.isoformat()


def measure_lines(row: Any, items: list | None, questionnaire_response: bool, observation: bool) -> tuple[str, str]:
    """A measure row's QuestionnaireResponse and Observation lines ("" for a type not asked for), as the
    mapping renders them; ``items`` are the row's answers, parsed."""
    external, session, total = row["patient_external_id"], row["session_id"], row["total"]
    key = (row["instrument"], row["severity"], None if items is None else len(items), session is not None,
           external is not None)
    qr, obs, mean = _templates.get(key) or _templates_for(key)
    values = [row["id"], row["version"], row["course_id"], _iso(row["administered_on"]), row["patient_id"],
              int(total), session, None if external is None else _escaped(external),
              orjson.dumps(round2(total)).decode() if mean else None]
    if items is not None:
        values += items
    return (qr.fill(values) if questionnaire_response else "", obs.fill(values) if observation else "")
