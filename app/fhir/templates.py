"""Measures as NDJSON lines, fast: the FHIR view's own mapping, rendered once per shape, filled in per row.

A Bulk Data export renders two resources for each of a million measures. ``app.fhir.mapping``
builds each as dicts and orjson writes them (about 9 us a measure); here the mapping renders one
prototype per shape of measure (instrument, severity band, number of items, linked to a session or
not, patient with an EHR identifier or not) with marker values in the variable places, and the
prototype becomes an f-string over the database row itself: each slot reads its column (or the
answers, split from their JSON text), so a row costs two f-strings and no intermediate objects.
The mapping stays the one definition of the resources: a change there changes the templates, and
a test compares the two renderings for every shape.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from datetime import date
from typing import Any

import orjson

from app import instruments
from app.core.http import dumps
from app.fhir import mapping
from app.instruments.scoring import round2

# The columns a measure row has, in this order (app.fhir.bulk selects them so): version as text,
# total as a float, the answers as their JSON text.
COLUMNS = ("id", "version", "course_id", "administered_on", "patient_id", "total", "session_id",
           "patient_external_id", "instrument", "severity", "items_json")
_AT = {name: n for n, name in enumerate(COLUMNS)}

# Marker values: strings where the mapping copies a string, numbers where it writes a number; each
# marker's Python expression reads the row ``r``, the answers ``i``, or a local the fill function
# looks up once for both resources (``d``: the date as text, ``e``: the EHR identifier escaped).
_SLOTS = {"~~id~~": "r[{id}]", "~~version~~": "r[{version}]", "~~course~~": "r[{course_id}]",
          "~~date~~": "d", "~~patient~~": "r[{patient_id}]", "~~session~~": "r[{session_id}]",
          "~~external~~": "e", "987654321": "int(r[{total}])", "98765.43": "mean(r[{total}])"}
_SLOTS = {marker: expression.format(**_AT) for marker, expression in _SLOTS.items()}
_LOCALS = {"d": f"days[r[{_AT['administered_on']}]]", "e": f"escaped[r[{_AT['patient_external_id']}]]"}
_TOTAL_INT, _TOTAL_MEAN, _ITEM_BASE = 987654321, 98765.43, 7770000
_SLOTS_PER_STRING = 14
_MARKER = re.compile(r"~~[a-z]+~~|987654321|98765\.43|777\d{4}")


def _mean(total: float) -> str:
    """A mean item score as the mapping writes it (rounded half-up to 2 places, as orjson writes floats)."""
    return orjson.dumps(round2(total)).decode()


def _expression(rendered: bytes) -> str:
    """The f-string expression of a prototype rendering, split at its markers."""
    text = rendered.decode()
    slots = [_SLOTS.get(m) or f"i[{int(m) - _ITEM_BASE - 1}]" for m in _MARKER.findall(text)]
    pieces = [_literal(part) + (f"{{{slot}}}" if slot else "")
              for part, slot in itertools.zip_longest(_MARKER.split(text), slots)]
    # f-strings of up to 14 slots: CPython builds a longer one through a list, at twice the cost a slot.
    return " + ".join("f" + repr("".join(pieces[n:n + _SLOTS_PER_STRING]))
                      for n in range(0, len(pieces), _SLOTS_PER_STRING))


def template(*renderings: bytes) -> Any:
    """``fill(r, i, escaped, days)``: a row's line of each prototype rendering (a tuple of them when several)."""
    expressions = [_expression(rendered) for rendered in renderings]
    used = "".join(expressions)
    source = ["def fill(r, i, escaped, days):"]
    source += [f"    {name} = {lookup}" for name, lookup in _LOCALS.items() if f"{{{name}}}" in used]
    source.append(f"    return {', '.join(expressions)}")
    namespace: dict[str, Any] = {"mean": _mean}
    exec("\n".join(source), namespace)  # noqa: S102 - built here, from the mapping
    return namespace["fill"]


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


_templates: dict[tuple, tuple[Any, Any, Any]] = {}


def _templates_for(key: tuple) -> tuple[Any, Any, Any]:
    """A shape's fill functions: both resources' lines, the QuestionnaireResponse's alone, the Observation's alone."""
    found = _templates.get(key)
    if found is None:
        # The response writes a total-only answer as int(total); the Observation a mean as round2(total).
        mean = instruments.get_instrument(key[0]).scoring == "mean"
        answers, score = _prototype(*key, _TOTAL_INT), _prototype(*key, _TOTAL_MEAN if mean else _TOTAL_INT)
        response = dumps(mapping.questionnaire_response(answers["measure"], answers["patient"]))
        observation = dumps(mapping.observation(score["measure"], score["patient"]))
        found = (template(response, observation), template(response), template(observation))
        _templates[key] = found
    return found


class _Escaped(dict):
    """Strings as they sit between a JSON string's quotes (an EHR identifier may hold anything), each once."""

    def __missing__(self, text: str) -> str:
        escaped = self[text] = orjson.dumps(text)[1:-1].decode()
        return escaped


class _Days(dict):
    """Dates as ISO text, each once (a date read as text is kept as it is)."""

    def __missing__(self, day: date | str) -> str:
        text = self[day] = day if isinstance(day, str) else day.isoformat()
        return text


_escaped, _days = _Escaped(), _Days()  # shared by every batch, emptied when they grow past _CACHED entries
_CACHED = 100_000
CHUNK_ROWS = 512  # rows joined into one piece of NDJSON while their lines are still in the CPU's cache


def measure_ndjson(rows: Sequence[Sequence[Any]], questionnaire_response: bool, observation: bool) -> tuple[list[bytes], list[bytes]]:
    """The rows' QuestionnaireResponse and Observation NDJSON, in pieces of CHUNK_ROWS lines each (one a line's end).

    Rendering, joining and encoding a few hundred rows at a time keeps each piece in the cache
    through all three: a whole part at once (megabytes) went to memory and back at each step.
    """
    responses: list[bytes] = []
    observations: list[bytes] = []
    for start in range(0, len(rows), CHUNK_ROWS):
        for pieces, lines in zip((responses, observations),
                                 measure_lines(rows[start:start + CHUNK_ROWS], questionnaire_response, observation)):
            if lines:
                lines.append("")  # the last line's end, without copying the piece once more
                pieces.append("\n".join(lines).encode())
    return responses, observations


def measure_lines(rows: Sequence[Sequence[Any]], questionnaire_response: bool, observation: bool) -> tuple[list[str], list[str]]:
    """The rows' QuestionnaireResponse and Observation lines (an empty list for a type not asked for),
    as the mapping renders them; each row holds COLUMNS in order."""
    for cache in (_escaped, _days):
        if len(cache) > _CACHED:
            cache.clear()
    escaped, days, known = _escaped, _days, _templates.get
    responses: list[str] = []
    observations: list[str] = []
    if not (questionnaire_response or observation):
        return responses, observations
    both = questionnaire_response and observation
    which, alone = (0, None) if both else (1, responses) if questionnaire_response else (2, observations)
    items_at, instrument_at, severity_at = _AT["items_json"], _AT["instrument"], _AT["severity"]
    session_at, external_at = _AT["session_id"], _AT["patient_external_id"]
    for r in rows:
        text = r[items_at]
        if text is None or text == "null":
            items = None
        else:  # a JSON array of integers, as orjson ("[1,0]") or the json module ("[1, 0]") wrote it
            inner = text.replace(" ", "")[1:-1]
            items = inner.split(",") if inner else []
        key = (r[instrument_at], r[severity_at], None if items is None else len(items), r[session_at] is not None,
               r[external_at] is not None)
        fill = (known(key) or _templates_for(key))[which]
        if both:
            response, score = fill(r, items, escaped, days)
            responses.append(response)
            observations.append(score)
        else:
            alone.append(fill(r, items, escaped, days))
    return responses, observations
